"""The FastAPI app: ``create_app(home)`` serves the API and the storefront of one home.

Example usage::

    from vitrine.serve.app import create_app
    app = create_app(home=".vitrine")      # uvicorn-ready ASGI app
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vitrine.config import Settings, get_settings
from vitrine.errors import DataValidationError, NotFittedError, NotFoundError, VitrineError
from vitrine.serve.routes import ROUTERS
from vitrine.serve.state import AppState
from vitrine.version import __version__

log = logging.getLogger("vitrine.serve")
STATIC = Path(__file__).parent / "static"


def _operation_id(route: APIRoute) -> str:
    """Stable OpenAPI operation ids: the handler's name (unique across routers)."""
    return route.name


class _TooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class LimitAndMeasure:
    """ASGI middleware: refuse bodies over the size limit (413); time every request.

    The limit is checked on Content-Length first and then on the bytes that
    actually arrive, so a chunked upload cannot slip past it. Latency goes to
    the histogram under the route template (``/recommend/{user_id}``), never
    the raw path, so no user id lands in metric labels.
    """

    def __init__(self, app: ASGIApp, state: AppState, max_bytes: int) -> None:
        self.app, self.state, self.max_bytes = app, state, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500, "started": False}
        limit = self.max_bytes

        async def send_(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        try:
            for name, value in scope.get("headers", []):
                if name == b"content-length":
                    try:
                        too_big = int(value) > limit
                    except ValueError:
                        too_big = False
                    if too_big:
                        await JSONResponse({"detail": str(_TooLarge(limit).detail)}, 413)(scope, receive, send_)
                        return
            seen = 0

            async def receive_() -> Message:
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise _TooLarge(limit)
                return message

            try:
                await self.app(scope, receive_, send_)
            except _TooLarge as exc:
                if status["started"]:
                    raise
                await JSONResponse({"detail": exc.detail}, 413)(scope, receive, send_)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static/")
                                                        else "unmatched")
            self.state.metrics.observe(scope["method"], endpoint, status["code"], time.perf_counter() - start)


class RedactIds(logging.Filter):
    """Access-log filter: no user id from paths or query strings, no keys."""

    _path = re.compile(r"^/(recommend|users)/[^/?]+")
    _query = re.compile(r"(user_id|key|token)=[^&]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = self._query.sub(r"\1=<redacted>", self._path.sub(r"/\1/<redacted>", args[2]))
            record.args = tuple(args)
        return True


def _problems(exc: DataValidationError) -> list[dict]:
    return [{"file": p.file, "row": p.row, "column": p.column, "message": p.message} for p in exc.problems]


def serve_threads(settings: Settings) -> int:
    """Requests served at once: ``VITRINE_SERVE_THREADS``, else one per core (at least 2,
    so that one slow request, an upload or a reload, does not hold up every other)."""
    return settings.serve_threads or max(2, os.cpu_count() or 2)


def create_app(home: str | Path | None = None, settings: Settings | None = None) -> FastAPI:
    """The vitrine HTTP app over one home folder.

    Parameters
    ----------
    home : vitrine home (default ``settings.home``); its current saved model is
        loaded now; without one, the app starts and answers 503 until
        ``POST /admin/reload`` finds a model.
    settings : default from ``VITRINE_*`` environment variables.
    """
    settings = settings or get_settings()
    home = Path(home) if home is not None else Path(settings.home)
    state = AppState(home, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        import anyio.to_thread

        # Sync endpoints run in worker threads. Searches are CPU work that mostly
        # holds the GIL: threads beyond the cores only take turns on it and thrash
        # (docs/bench/serve.md: 8 connections gave 64 req/s with anyio's default 40
        # threads, 99 with 2), so extra requests wait in line instead.
        anyio.to_thread.current_default_thread_limiter().total_tokens = serve_threads(settings)
        # A thread back from native code (LightGBM, FAISS, DuckDB release the GIL) or with a
        # response to write waits for the GIL up to this long while another thread runs
        # Python: Python's 5 ms default left a core idle at times; 1 ms served about 10% more.
        previous = sys.getswitchinterval()
        sys.setswitchinterval(settings.serve_switch_ms / 1000)
        try:
            yield
        finally:
            sys.setswitchinterval(previous)

    app = FastAPI(
        lifespan=lifespan,
        title="vitrine",
        version=__version__,
        summary="Multimodal, personalized product search, recommendations and a storefront.",
        description=(
            "Writes need `Authorization: Bearer KEY` (create a key with `vitrine keys create NAME`). "
            + ("Reads are open." if settings.open_reads else "Reads need a key too.")
        ),
        generate_unique_id_function=_operation_id,
    )
    app.state.vitrine = state
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(LimitAndMeasure, state=state, max_bytes=settings.max_request_bytes)

    @app.exception_handler(DataValidationError)
    async def _data_error(request: Request, exc: DataValidationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "problems": _problems(exc)}, 422)

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 404)

    @app.exception_handler(NotFittedError)
    async def _not_fitted(request: Request, exc: NotFittedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 503)

    @app.exception_handler(VitrineError)
    async def _vitrine_error(request: Request, exc: VitrineError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 400)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        msg = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors[:10])
        return JSONResponse({"detail": f"invalid request: {msg}", "errors": errors}, 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        route = request.scope.get("route")
        # the type and the route template only: messages could carry ids
        log.error("unexpected %s on %s", type(exc).__name__, getattr(route, "path", "?"))
        return JSONResponse({"detail": "internal error"}, 500)

    logging.getLogger("uvicorn.access").addFilter(RedactIds())
    return app
