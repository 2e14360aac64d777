"""Query completion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from vitrine.serve.deps import EngineDep, ReadKey, StateDep
from vitrine.serve.schemas import ErrorOut, SuggestOut, Text

router = APIRouter(prefix="/suggest", tags=["suggest"])


@router.get("", response_model=SuggestOut, dependencies=[ReadKey],
            responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def suggest(
    engine: EngineDep,
    state: StateDep,
    q: Annotated[Text, Query(min_length=1, max_length=200, description="what the shopper typed so far")],
    user_id: Annotated[Text | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 8,
) -> dict:
    """Complete a query from logged queries and catalog terms."""
    with state.lock.read():
        out = state.suggest.suggest(engine, q, user_key=engine.user_key(user_id), limit=limit)
    return {"query": q, "suggestions": out}
