"""What one app holds: the current Engine (swapped atomically), keys, rules, metrics."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from vitrine import saved
from vitrine.config import Settings
from vitrine.engine import STORE_FILE, Engine
from vitrine.errors import VitrineError
from vitrine.serve import present
from vitrine.serve.keys import KeyStore
from vitrine.serve.metrics import Metrics
from vitrine.serve.rules import RulesStore
from vitrine.serve.suggest import SuggestIndex


log = logging.getLogger("vitrine.serve")
_thread = threading.local()
WARM_QUERIES = 2000  # most frequent logged queries encoded at load
FACET_CACHE = 2048  # (query, filters) facet counts kept


class LRU:
    """A small thread-safe LRU mapping."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            v = self._data.get(key)
            if v is None:
                self.misses += 1
                return None
            self.hits += 1
            self._data.move_to_end(key)
            return v

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def warm(engine: Engine) -> int:
    """Encode the most frequent logged queries into the engine's query cache,
    in batches, so that a search for them pays no text-encoder call (one
    MiniLM call per query costs more than the rest of a search). Returns how
    many were encoded; never fails."""
    try:
        if not (engine.home / STORE_FILE).exists() or not hasattr(engine.retriever_, "warm_queries"):
            return 0
        t = time.perf_counter()
        q = engine.store.query(
            "SELECT query FROM events WHERE query IS NOT NULL AND query <> '' "
            "GROUP BY query ORDER BY count(*) DESC, query LIMIT ?", [WARM_QUERIES])
        n = engine.retriever_.warm_queries([str(x).strip() for x in q["query"]])
        log.info("query cache: %d logged queries encoded in %.1f s", n, time.perf_counter() - t)
        return n
    except Exception as exc:  # noqa: BLE001 - an optimisation only
        log.warning("query cache warm-up skipped: %s", type(exc).__name__)
        return 0


def settle_heap() -> None:
    """Exempt what is alive now (the engine, its catalog's strings, jieba's
    dictionary: about 580k objects on the demo shop) from the garbage
    collector's full passes. Each full pass walked them all, 350 ms with every
    request in flight stalled behind it (docs/bench/serve.md: p99 of 236 ms
    where the median was 8); frozen, a pass walks only what came after.
    Garbage from before (an old engine after a reload) is collected first."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


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
    from vitrine.rank.lambdamart import predict_threads

    predict_threads(1)  # a saved booster's num_threads would override the OpenMP limit below
    # threadpoolctl limits the libraries loaded now: load the engine's first.
    for name in ("faiss", "lightgbm", "torch"):
        with contextlib.suppress(ImportError):
            __import__(name)
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
        # Facet counts per (engine, query, filters): they depend on the catalog and
        # retrieval only, so they are shared by every shopper; cleared on catalog changes.
        self.facets = LRU(FACET_CACHE)
        self._swap = threading.Lock()
        self._reload = threading.RLock()  # reentrant: a fit's swap holds it across its own reload
        self._fit_lock = threading.Lock()
        self.fit_status: dict = {"state": "idle"}
        self._erased_during_fit: list[str] = []
        self.started = time.time()
        self.engine: Engine | None = None
        self.load_error: str | None = None
        try:
            self.engine = Engine.load(home, settings=settings)
        except VitrineError as exc:
            self.load_error = str(exc)
        if self.engine is not None:
            warm(self.engine)
        self.metrics.set_model(self.engine)
        settle_heap()

    @contextlib.contextmanager
    def writing(self) -> Iterator[Engine]:
        """The write lock, and the engine serving under it.

        A request resolves its engine when it begins; a reload may swap that
        engine out before the request gets the lock. Writing to the engine
        current under the lock lands the write in the model that serves
        next (a reload catches the new engine up under this lock too).
        """
        with self.lock.write():
            yield self.engine

    def catalog_changed(self) -> None:
        """Forget what depends on the catalog (after an upsert or a delete)."""
        self.facets.clear()
        present.catalog_changed()
        self.suggest.invalidate()

    def forget_user(self, user_id: str) -> int:
        """Erase a shopper (``Engine.forget_user``) while no reload runs: a reload that read the
        saved model before the erasure reached it would bring the shopper back."""
        with self._reload, self.lock.write():
            engine = self.engine
            n = engine.forget_user(user_id)
            with self._fit_lock:
                if self.fit_status["state"] == "running":  # it may have read their events already
                    self._erased_during_fit.append(user_id)
        self.suggest.forget(engine.user_key(user_id))
        return n

    def start_fit(self) -> dict:
        """Refit every model on the store in a background thread, save it, then swap it in.

        A separate ``vitrine fit`` cannot run while this process holds the
        store (DuckDB lets one process write it); this fit reads it through
        a connection of this process. Searches go on meanwhile, sharing the
        cores with it.
        """
        with self._fit_lock:
            if self.fit_status["state"] == "running":
                raise VitrineError("a fit is already running; GET /admin/fit tells when it is done")
            self.fit_status = {"state": "running", "started": time.time()}
            self._erased_during_fit = []
        threading.Thread(target=self._fit, name="vitrine-fit", daemon=True).start()
        return dict(self.fit_status)

    def _fit(self) -> None:
        started = self.fit_status["started"]
        try:
            engine = Engine(home=self.home, settings=self.settings)
            try:
                engine.fit()
                engine.save()
                # Erasures wait from here to the swap; those made while the fit read and
                # learnt from the store are applied to the new model first.
                with self._reload:
                    with self._fit_lock:
                        erased, self._erased_during_fit = self._erased_during_fit, []
                    for user_id in erased:
                        engine.forget_user(user_id)
                    new, old = self.reload()
            finally:
                engine.close()
            status = {"state": "done", "model_version": new, "previous_version": old}
        except Exception as exc:  # reported by GET /admin/fit; the served model is untouched
            status = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
        finished = time.time()
        with self._fit_lock:
            self.fit_status = {**status, "started": started, "finished": finished,
                               "seconds": round(finished - started, 1)}

    def reload(self, version: str | None = None) -> tuple[str | None, str | None]:
        """Load the current saved model (first making ``version`` current, if given) and swap it in;
        return (new, old) versions."""
        with self._reload:  # one reload at a time; requests keep flowing meanwhile
            before = saved.current_version(self.home)
            if version is not None:
                saved.set_current(self.home, version)
            try:
                new = Engine.load(self.home, settings=self.settings)
            except Exception:
                if version is not None and before is not None:  # the serving model stays the current one
                    saved.set_current(self.home, before)
                raise
            warm(new)
            with contextlib.suppress(Exception):  # warm caches before the swap
                new.search("warmup", k=1)
            # Writes wait while what reached the store during the load is applied and the engine swapped.
            with self.lock.write():
                new.catch_up()
                with self._swap:
                    old, self.engine = self.engine, new
                    self.load_error = None
        self.metrics.set_model(new)
        self.catalog_changed()
        versions = new.version_, (old.version_ if old is not None else None)
        del old
        with self.lock.write():  # searches that had the old engine are done with it
            pass
        settle_heap()
        return versions
