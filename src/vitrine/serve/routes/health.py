"""Liveness and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from vitrine.serve.deps import StateDep
from vitrine.serve.schemas import HealthOut

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=HealthOut)
def health(state: StateDep) -> dict:
    """Report whether a model is loaded."""
    engine = state.engine
    n = int(engine.catalog_.active.sum()) if engine is not None else 0
    return {"status": "ok" if engine is not None else "no-model",
            "model_version": engine.version_ if engine is not None else None,
            "products": n, "uptime_s": round(time.time() - state.started, 1)}


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(state: StateDep) -> Response:
    """Prometheus metrics: latency per endpoint, events, index size, model version."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
