"""Home-feed recommendations for a shopper."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from vitrine.serve import present
from vitrine.serve.deps import EngineDep, ReadKey, StateDep
from vitrine.serve.schemas import ErrorOut, Id, ItemsOut

router = APIRouter(prefix="/recommend", tags=["recommend"])


@router.get("/{user_id}", response_model=ItemsOut, dependencies=[ReadKey],
            responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def recommend(
    engine: EngineDep,
    state: StateDep,
    user_id: Annotated[Id, Path(description="shopper id (pseudonymised, never stored raw)")],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    exclude_seen: bool | None = None,
) -> dict:
    """Recommend products for a shopper (popular ones for a stranger)."""
    with state.lock.read():
        res = engine.recommend(user_id, k=limit + 10, exclude_seen=exclude_seen)
        keep = [i for i, pid in enumerate(res.item_ids) if present.passes(engine, pid, None)][:limit]
        ids = [res.item_ids[i] for i in keep]
        scores = [res.scores[i] for i in keep]
        return {"request_id": uuid.uuid4().hex, "model_version": engine.version_,
                "items": present.items(engine, ids, scores)}
