"""What one app holds: the current Engine (swapped atomically), keys, rules, metrics."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from vitrine.config import Settings
from vitrine.engine import Engine
from vitrine.errors import VitrineError
from vitrine.serve.keys import KeyStore
from vitrine.serve.metrics import Metrics
from vitrine.serve.rules import RulesStore
from vitrine.serve.suggest import SuggestIndex


_thread = threading.local()


def one_native_thread() -> None:
    """Run native code (OpenMP in FAISS, LightGBM and torch; OpenBLAS) of the
    calling thread on one thread, once per thread.

    Each request does milliseconds of native work; split over an OpenMP team
    it gains nothing and, on a machine with more runnable threads than cores,
    team members wait for a core in turn (a 1 ms FAISS search took 100 ms
    under load). Requests already run in parallel on the server's thread
    pool, releasing the GIL inside native code. OpenMP thread counts belong
    to the calling thread, hence once per thread rather than once per process.
    """
    if getattr(_thread, "limited", False):
        return
    _thread.limited = True
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except Exception:  # noqa: BLE001 - an optimisation only
        pass


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers.

    Every request's engine work happens under it, in the server's worker
    threads, so entering also limits that thread's native thread count
    (:func:`one_native_thread`).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextlib.contextmanager
    def read(self):
        one_native_thread()
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self):
        one_native_thread()
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class AppState:
    """Shared state of one vitrine app.

    The engine is read once per request (``state.engine``), so a reload that
    swaps the reference lets in-flight requests finish on the old engine while
    new ones get the new one: no request is dropped.
    """

    def __init__(self, home: Path, settings: Settings) -> None:
        self.home = home
        self.settings = settings
        self.keys = KeyStore(home)
        self.rules = RulesStore(home)
        self.metrics = Metrics()
        self.suggest = SuggestIndex()
        self.lock = RWLock()  # reads share, in-memory writes (events, upserts, erasure) are exclusive
        self._swap = threading.Lock()
        self._reload = threading.Lock()
        self.started = time.time()
        self.engine: Engine | None = None
        self.load_error: str | None = None
        try:
            self.engine = Engine.load(home, settings=settings)
        except VitrineError as exc:
            self.load_error = str(exc)
        self.metrics.set_model(self.engine)

    def reload(self) -> tuple[str | None, str | None]:
        """Load the latest saved model and swap it in; return (new, old) versions."""
        with self._reload:  # one reload at a time; requests keep flowing meanwhile
            new = Engine.load(self.home, settings=self.settings)
            with contextlib.suppress(Exception):  # warm caches before the swap
                new.search("warmup", k=1)
            with self._swap:
                old, self.engine = self.engine, new
                self.load_error = None
        self.metrics.set_model(new)
        self.suggest.invalidate()
        return new.version_, (old.version_ if old is not None else None)
