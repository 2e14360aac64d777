"""Dependencies shared by the routes: the app state, the current engine, API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vitrine.engine import Engine
from vitrine.serve.keys import KeyInfo
from vitrine.serve.state import AppState

bearer = HTTPBearer(auto_error=False, description="an API key from `vitrine keys create NAME`")


# Dependencies that only read attributes are ``async``: FastAPI runs a plain
# ``def`` dependency in the thread pool, a hand-off per dependency per request.


async def get_state(request: Request) -> AppState:
    return request.app.state.vitrine


StateDep = Annotated[AppState, Depends(get_state)]


async def get_engine(state: StateDep) -> Engine:
    """The engine serving this request (read once, so a reload never splits a request)."""
    engine = state.engine
    if engine is None:
        raise HTTPException(503, f"no model is loaded: {state.load_error or 'run `vitrine fit` first'}")
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def _check_key(state: AppState, creds: HTTPAuthorizationCredentials | None) -> KeyInfo:
    if creds is None or not creds.credentials:
        raise HTTPException(401, "an API key is required: send `Authorization: Bearer KEY` "
                                 "(create one with `vitrine keys create NAME`)",
                            headers={"WWW-Authenticate": "Bearer"})
    info = state.keys.verify(creds.credentials)
    if info is None:
        raise HTTPException(403, "the API key is not valid")
    return info


async def require_key(state: StateDep,
                      creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> KeyInfo:
    """Every write needs a valid key."""
    return await run_in_threadpool(_check_key, state, creds)  # reads the key file when it changed


async def require_read(state: StateDep,
                       creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> KeyInfo | None:
    """Reads are open unless ``settings.open_reads`` is False."""
    if state.settings.open_reads:
        return None
    return await run_in_threadpool(_check_key, state, creds)


WriteKey = Depends(require_key)
ReadKey = Depends(require_read)
