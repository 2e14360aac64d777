"""Search: text, image and image+text, with filters, facets, paging and rules."""

from __future__ import annotations

import uuid
from dataclasses import astuple
from typing import Annotated

import orjson
from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from vitrine.engine import Engine, Filters
from vitrine.serve import present
from vitrine.serve.deps import EngineDep, ReadKey, StateDep
from vitrine.serve.images import decode_upload
from vitrine.serve.schemas import ErrorOut, SearchOut, Text
from vitrine.serve.state import AppState

router = APIRouter(prefix="/search", tags=["search"])

FACET_DEPTH = 1000
ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut},
          503: {"model": ErrorOut}}

QText = Annotated[Text | None, Query(max_length=512, description="text query")]
QUser = Annotated[Text | None, Query(max_length=256, description="shopper id (pseudonymised, never stored raw)")]
QField = Annotated[Text | None, Query(max_length=500)]
QPrice = Annotated[float | None, Query(ge=0, le=1e9)]


def _filters(category, brand, color, price_min, price_max, in_stock) -> Filters:
    if price_min is not None and price_max is not None and price_min > price_max:
        raise HTTPException(422, f"price_min ({price_min}) is above price_max ({price_max})")
    return Filters(category=category or None, brand=brand or None, color=color or None,
                   price_min=price_min, price_max=price_max, in_stock=in_stock)


def run_search(state: AppState, engine: Engine, *, q: str | None, user_id: str | None, filters: Filters,
               limit: int, offset: int, personalize: bool, explain: bool, facets: bool,
               image=None) -> dict:
    """Rank, apply the query's rules, attach facets; shared by text and image search."""
    q = (q or "").strip() or None
    user_id = user_id or None
    rules = state.rules.get(q) if q else None
    request_id = uuid.uuid4().hex
    with state.lock.read():
        # Logged under the id the page returns, which its impression and click events carry.
        res = engine.search(q, user_id=user_id, k=limit, query_image=image, filters=filters,
                            rules=rules, offset=offset, personalize=personalize, explain=explain,
                            request_id=request_id if state.settings.log_served else None)
        ids, scores = list(res.item_ids), list(res.scores)
        expl = list(res.explanations) if res.explanations is not None else None
        pinned: set[str] = set()
        if rules is not None and rules.pin:
            pinned = set(rules.pin)
            if offset == 0:  # pins the retriever did not find are still shown first
                for rank, pid in enumerate(rules.pin):
                    if pid not in ids and present.passes(engine, pid, filters):
                        at = min(rank, len(ids))
                        ids.insert(at, pid)
                        scores.insert(at, None)
                        if expl is not None:
                            expl.insert(at, {"pinned": 1.0})
                ids, scores = ids[:limit], scores[:limit]
                expl = expl[:limit] if expl is not None else None
        out = {
            "request_id": request_id,
            "query": q,
            "offset": offset,
            "limit": limit,
            "total": None,
            "personalized": bool(personalize and user_id),
            "model_version": engine.version_,
            "items": present.items(engine, ids, scores, expl, offset=offset, pinned=pinned),
            "facets": None,
        }
        if facets:
            key = (id(engine), q, astuple(filters)) if image is None else None
            got = state.facets.get(key) if key is not None else None
            if got is None:
                # Not kept by the retriever: the counts are kept here, and a deep list there would
                # push out the lists that searches reuse.
                cands = engine.retrieve(q, query_image=image, k=FACET_DEPTH, cache=False)
                got = present.facets(engine, cands.rows, filters)
                if key is not None:
                    state.facets.put(key, got)
            out["facets"], out["total"] = got
    return out


def _page(out: dict) -> Response:
    """A page from :func:`run_search` as the JSON body of ``SearchOut``. Written
    straight from the dict: FastAPI would first validate our own output
    against the model, about 6 % of a search's time holding the GIL. A test
    checks that the body is what validation would have written."""
    return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.get("", response_model=SearchOut, dependencies=[ReadKey], responses=ERRORS)
def search(
    engine: EngineDep,
    state: StateDep,
    q: QText = None,
    user_id: QUser = None,
    category: Annotated[Text | None, Query(max_length=500, description="category path prefix")] = None,
    brand: QField = None,
    color: QField = None,
    price_min: QPrice = None,
    price_max: QPrice = None,
    in_stock: bool | None = None,
    offset: Annotated[int, Query(ge=0, le=1000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    personalize: bool = True,
    explain: bool = False,
    facets: bool = True,
) -> Response:
    """Search the catalog for a shopper."""
    f = _filters(category, brand, color, price_min, price_max, in_stock)
    return _page(run_search(state, engine, q=q, user_id=user_id, filters=f, limit=limit, offset=offset,
                            personalize=personalize, explain=explain, facets=facets))


@router.post("/image", response_model=SearchOut, dependencies=[ReadKey],
             responses={**ERRORS, 413: {"model": ErrorOut}, 415: {"model": ErrorOut}})
async def search_image(
    engine: EngineDep,
    state: StateDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or GIF")],
    q: Annotated[Text | None, Form(max_length=512)] = None,
    user_id: Annotated[Text | None, Form(max_length=256)] = None,
    category: Annotated[Text | None, Form(max_length=500)] = None,
    brand: Annotated[Text | None, Form(max_length=500)] = None,
    color: Annotated[Text | None, Form(max_length=500)] = None,
    price_min: Annotated[float | None, Form(ge=0, le=1e9)] = None,
    price_max: Annotated[float | None, Form(ge=0, le=1e9)] = None,
    in_stock: Annotated[bool | None, Form()] = None,
    offset: Annotated[int, Form(ge=0, le=1000)] = 0,
    limit: Annotated[int, Form(ge=1, le=100)] = 10,
    personalize: Annotated[bool, Form()] = True,
    explain: Annotated[bool, Form()] = False,
    facets: Annotated[bool, Form()] = True,
) -> Response:
    """Search by an uploaded image, optionally with text."""
    f = _filters(category, brand, color, price_min, price_max, in_stock)
    data = await image.read()
    img = decode_upload(data, image.content_type, state.settings.max_request_bytes)
    return _page(await run_in_threadpool(
        run_search, state, engine, q=q, user_id=user_id, filters=f, limit=limit, offset=offset,
        personalize=personalize, explain=explain, facets=facets, image=img,
    ))
