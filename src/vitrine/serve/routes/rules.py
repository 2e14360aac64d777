"""Merchandising rules per query: pin, boost, bury."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from vitrine.serve.deps import ReadKey, StateDep, WriteKey
from vitrine.serve.schemas import ErrorOut, RulesIn, RulesOut, Text

router = APIRouter(prefix="/rules", tags=["rules"])
QueryPath = Annotated[Text, Path(min_length=1, max_length=512, description="the query the rules apply to")]
WERR = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}}


@router.get("", response_model=list[RulesOut], dependencies=[ReadKey])
def list_rules(state: StateDep) -> list[dict]:
    """List every query's rules."""
    return [{"query": q, **r} for q, r in sorted(state.rules.all().items())]


@router.get("/{query}", response_model=RulesOut, dependencies=[ReadKey], responses={404: {"model": ErrorOut}})
def get_rules(state: StateDep, query: QueryPath) -> dict:
    """Get the rules of a query."""
    rec = state.rules.raw(query)
    if rec is None:
        raise HTTPException(404, "no rules for this query")
    return {"query": query, **rec}


@router.put("/{query}", response_model=RulesOut, dependencies=[WriteKey], responses=WERR)
def put_rules(state: StateDep, query: QueryPath, rules: RulesIn) -> dict:
    """Set the rules of a query (replacing any)."""
    if not query.strip():
        raise HTTPException(422, "the query must not be blank")
    rec = state.rules.put(query, rules.pin, rules.boost, rules.bury)
    return {"query": query, **rec}


@router.delete("/{query}", status_code=204, dependencies=[WriteKey], responses=WERR)
def delete_rules(state: StateDep, query: QueryPath) -> Response:
    """Remove the rules of a query."""
    if not state.rules.delete(query):
        raise HTTPException(404, "no rules for this query")
    return Response(status_code=204)
