"""Operations: swap in the latest saved model."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException

from vitrine.errors import VitrineError
from vitrine.serve.deps import StateDep, WriteKey
from vitrine.serve.schemas import ErrorOut, ReloadOut

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/reload", response_model=ReloadOut, dependencies=[WriteKey],
             responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def reload_model(state: StateDep) -> dict:
    """Load the latest saved model and swap it in without dropping requests."""
    t = time.perf_counter()
    try:
        new, old = state.reload()
    except VitrineError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"model_version": new, "previous_version": old, "seconds": round(time.perf_counter() - t, 3)}
