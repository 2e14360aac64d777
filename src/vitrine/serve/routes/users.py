"""Shoppers: erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from vitrine.serve.deps import EngineDep, StateDep, WriteKey
from vitrine.serve.schemas import ErasedOut, ErrorOut, Id

router = APIRouter(prefix="/users", tags=["users"])


@router.delete("/{user_id}", response_model=ErasedOut, dependencies=[WriteKey],
               responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut},
                          503: {"model": ErrorOut}})
def forget_user(engine: EngineDep, state: StateDep, user_id: Annotated[Id, Path()]) -> dict:
    """Erase a shopper: stored events, reviews, profile and per-user state, in memory and in the saved models."""
    del engine  # asked for so that the route answers 503 until a model is loaded
    return {"erased": True, "removed_rows": int(state.forget_user(user_id))}
