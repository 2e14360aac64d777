"""Operations: refit on the store while serving, list the saved models, swap one in (the latest by default)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from vitrine import saved
from vitrine.errors import NotFoundError, VitrineError
from vitrine.serve.deps import StateDep, WriteKey
from vitrine.serve.schemas import ErrorOut, FitOut, ReloadOut, SavedModelOut

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


@router.get("/models", response_model=list[SavedModelOut], dependencies=[WriteKey],
            responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}})
def list_models(state: StateDep) -> list[dict]:
    """The home's saved model versions, oldest first; ``current`` is the one a reload serves."""
    return saved.list_versions(state.home)


@router.post("/reload", response_model=ReloadOut, dependencies=[WriteKey],
             responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut},
                        409: {"model": ErrorOut}})
def reload_model(
    state: StateDep,
    version: Annotated[str | None, Query(description="a saved version to serve from now on (a rollback); "
                                                     "default: the current one")] = None,
) -> dict:
    """Load the current saved model, or the given version, and swap it in without dropping requests."""
    t = time.perf_counter()
    try:
        new, old = state.reload(version)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except VitrineError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"model_version": new, "previous_version": old, "seconds": round(time.perf_counter() - t, 3)}
