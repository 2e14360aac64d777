"""Products similar to a product."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from vitrine.serve import present
from vitrine.serve.deps import EngineDep, ReadKey, StateDep
from vitrine.serve.schemas import ErrorOut, Id, ItemsOut

router = APIRouter(prefix="/similar", tags=["similar"])


@router.get("/{product_id}", response_model=ItemsOut, dependencies=[ReadKey],
            responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def similar(
    engine: EngineDep,
    state: StateDep,
    product_id: Annotated[Id, Path()],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict:
    """Products like this one, by behaviour and content."""
    with state.lock.read():
        if not present.passes(engine, product_id, None):
            raise HTTPException(404, f"product id {product_id!r} is not in the catalog")
        res = engine.similar(product_id, k=limit + 10)
        keep = [i for i, pid in enumerate(res.item_ids)
                if pid != product_id and present.passes(engine, pid, None)][:limit]
        return {"request_id": uuid.uuid4().hex, "model_version": engine.version_,
                "items": present.items(engine, [res.item_ids[i] for i in keep], [res.scores[i] for i in keep])}
