"""Operations: refit on the store while serving, swap in the latest saved model."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException

from vitrine.errors import VitrineError
from vitrine.serve.deps import StateDep, WriteKey
from vitrine.serve.schemas import ErrorOut, FitOut, ReloadOut

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/fit", response_model=FitOut, status_code=202, dependencies=[WriteKey],
             responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def start_fit(state: StateDep) -> dict:
    """Refit every model on the store in the background, save it and swap it in (GET /admin/fit: progress)."""
    try:
        return state.start_fit()
    except VitrineError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/fit", response_model=FitOut, dependencies=[WriteKey],
            responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}})
def fit_status(state: StateDep) -> dict:
    """The last fit started by POST /admin/fit: running, done (with the model it swapped in) or failed."""
    return dict(state.fit_status)


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
