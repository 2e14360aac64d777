"""Prometheus metrics of one app (its own registry, so apps in one process don't clash)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request latency per endpoint, events ingested, index size, model version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "vitrine_request_seconds", "Request latency by endpoint (route template).",
            ["method", "endpoint", "status"], buckets=BUCKETS, registry=self.registry,
        )
        self.events = Counter("vitrine_events_ingested", "Events stored and applied.",
                              ["event"], registry=self.registry)
        self.index_size = Gauge("vitrine_index_products", "Active products in the index.",
                                registry=self.registry)
        self.model = Gauge("vitrine_model_info", "The served model version (value 1).",
                           ["version"], registry=self.registry)
        self.model_loaded = Gauge("vitrine_model_loaded_timestamp_seconds",
                                  "When the served model was swapped in.", registry=self.registry)
        self._engine = None

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.latency.labels(method, endpoint, str(status)).observe(seconds)

    def set_model(self, engine) -> None:
        self.model.clear()
        self._engine = engine
        if engine is not None:
            self.model.labels(engine.version_ or "unknown").set(1)
            self.model_loaded.set(time.time())

    def render(self) -> bytes:
        engine = self._engine
        if engine is not None and hasattr(engine, "catalog_"):
            self.index_size.set(int(engine.catalog_.active.sum()))
        return generate_latest(self.registry)
