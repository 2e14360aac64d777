"""Engine: the one public facade over retrieval, shopper models and ranking.

The CLI, the HTTP service and evaluation all call this class and nothing
below it, so what is evaluated is what is served.

Example usage::

    engine = Engine().fit("shop/")               # a dataset folder
    engine.search("red running shoes", user_id="alice", k=10)
    engine.record_event("alice", "p42", "click")  # changes alice's next results
    engine.save("home/")
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vitrine.config import Settings, get_settings, resolve_device
from vitrine.data.catalog import Catalog
from vitrine.data.dataset import Dataset, coerce_table, load_dataset
from vitrine.data.schema import EVENT_TYPES, EVENTS, PRODUCTS
from vitrine.data.store import Store, pseudonymize, pseudonymize_series, utc_now
from vitrine.errors import DataValidationError, NotFittedError, NotFoundError, Problem, VitrineError
from vitrine.personal import Personalizer
from vitrine.rank import SearchRanker
from vitrine.results import Candidates, Results
from vitrine.retrieve import Retriever
from vitrine.saved import (
    MODELS_DIR,
    current_version,
    fit_times,
    models_lock,
    prune,
    set_current,
    version_names,
)
from vitrine.version import __version__

STORE_FILE = "store.duckdb"


@dataclass
class Filters:
    """Structured filters of a search (all optional)."""

    category: str | None = None  # prefix of the category path, case-insensitive
    brand: str | None = None
    color: str | None = None
    price_min: float | None = None
    price_max: float | None = None
    in_stock: bool | None = None

    def active(self) -> bool:
        return any(v is not None for v in self.__dict__.values())


@dataclass
class Rules:
    """Merchandising rules for one query: pin to the top, boost, or bury."""

    pin: list[str] = field(default_factory=list)
    boost: dict[str, float] = field(default_factory=dict)
    bury: list[str] = field(default_factory=list)


class Engine:
    """Multimodal, personalized search and recommendations.

    Parameters
    ----------
    settings : Settings, default from ``VITRINE_*`` environment variables.
    home : folder for the store and models (default ``settings.home``).

    Attributes
    ----------
    catalog_, retriever_, personal_, ranker_ : fitted components.
    """

    def __init__(self, settings: Settings | None = None, home: str | Path | None = None) -> None:
        self.settings = settings or get_settings()
        self.home = Path(home) if home is not None else Path(self.settings.home)
        self._store: Store | None = None
        self._lock = threading.RLock()
        self.version_: str | None = None
        # The last live catalog change (the store's product_log number) the catalog holds (None: unknown,
        # so catch-up goes by time from the fit's start, as models saved before these marks did).
        self.catalog_through_: int | None = None
        # The last store append of events the shopper profiles hold (None: unknown, so replay goes by
        # event time past ``fitted_through_``, as models saved before arrival numbers did).
        self.arrival_through_: int | None = None

    # -- identity -------------------------------------------------------------
    def user_key(self, user_id: str | None) -> str | None:
        """The pseudonymous key a raw user id is stored and modelled under."""
        return None if user_id is None or user_id == "" else pseudonymize(str(user_id), self.settings.secret)

    # -- store ----------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.home / STORE_FILE, secret=self.settings.secret)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def ingest(self, folder: str | Path) -> Dataset:
        """Validate a dataset folder and add it to this home's store."""
        return self.store.ingest(folder)

    def _size_query_caches(self) -> None:
        """Repeated queries: their candidates and query-product features are kept (VITRINE_RESULT_CACHE)."""
        self.retriever_.result_cache_size = self.settings.result_cache
        self.ranker_.memo_size = self.settings.result_cache

    # -- fit ------------------------------------------------------------------
    def fit(self, dataset: Dataset | str | Path | None = None, progress: bool = False) -> Engine:
        """Learn every component from a dataset (folder, Dataset, or the store when None)."""
        started = utc_now()  # live catalog changes after this reach a loaded model by catch-up
        arrival = catalog_mark = None
        if dataset is None:
            if self.settings.served_days:  # else the log grows by every shown result, forever
                self.store.prune_served(started - pd.Timedelta(days=self.settings.served_days))
            dataset = self.store.to_dataset()
            arrival, catalog_mark = dataset.meta.get("events_arrival"), dataset.meta.get("product_log_mark")
        elif not isinstance(dataset, Dataset):
            dataset = load_dataset(dataset)
        if dataset.products is None or not len(dataset.products):
            raise VitrineError("cannot fit: the dataset has no products (ingest a catalog first)")
        events = dataset.events
        if events is not None and not dataset.pseudonymized:
            events = events.copy()
            events["user_id"] = pseudonymize_series(events["user_id"], self.settings.secret)
        catalog = Catalog(dataset.products, root=dataset.root)
        # Reviews and (training) judgments only matter to a learned item fusion (VITRINE_ITEM_FUSION).
        retriever = Retriever().fit(catalog, progress=progress, reviews=dataset.reviews, judgments=dataset.judgments)
        item_vectors = retriever.item_vectors() if hasattr(retriever, "item_vectors") else None
        personal = Personalizer(
            event_weights=self.settings.event_weights, seed=self.settings.seed,
            seq_params={"device": resolve_device(self.settings.device)},
            learned_blends=self.settings.learned_blends, cutoff=self.settings.cutoff,
        ).fit(events, catalog, item_vectors=item_vectors, candidates=dataset.candidates)
        with self._lock:
            self.catalog_, self.retriever_, self.personal_ = catalog, retriever, personal
            self.ranker_ = SearchRanker(model=self.settings.ranker, device=self.settings.device,
                                       lambdamart_models=self.settings.ranker_models,
                                       check_max_queries=self.settings.ranker_check_queries,
                                       cutoff=self.settings.cutoff).fit(self, dataset)
            self._size_query_caches()
            self.version_ = time.strftime("%Y%m%d-%H%M%S")
            self.fitted_at_ = str(started)
            # Events after this instant reach a loaded model by replay from the store.
            self.fitted_through_ = (
                str(events["timestamp"].max()) if events is not None and len(events) else None
            )
            self.arrival_through_ = arrival
            self.catalog_through_ = catalog_mark
        return self

    def _check(self) -> None:
        if not hasattr(self, "catalog_"):
            raise NotFittedError("Engine")

    # -- serving --------------------------------------------------------------
    def _results(self, rows: np.ndarray, scores: np.ndarray, expl=None) -> Results:
        ids = [str(x) for x in self.catalog_.ids[np.asarray(rows, dtype=np.int64)]] if len(rows) else []
        return Results(ids, np.asarray(scores, dtype=np.float64), expl)

    def _filter_mask(self, rows: np.ndarray, filters: Filters | None) -> np.ndarray:
        if filters is None or not filters.active():
            return np.ones(len(rows), dtype=bool)
        p = self.catalog_.products.iloc[rows]
        mask = np.ones(len(rows), dtype=bool)
        if filters.category:
            mask &= p["category"].fillna("").str.lower().str.startswith(filters.category.lower()).to_numpy()
        for col in ("brand", "color"):
            want = getattr(filters, col)
            if want:
                mask &= (p[col].fillna("").str.lower() == want.lower()).to_numpy()
        price = p["price"].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            if filters.price_min is not None:
                mask &= price >= filters.price_min
            if filters.price_max is not None:
                mask &= price <= filters.price_max
        if filters.in_stock is not None:
            stock = p["in_stock"].map(lambda v: True if v is None or v != v else bool(v)).to_numpy(dtype=bool)
            mask &= stock == filters.in_stock
        return mask

    def _personal_scores(self, ukey: str | None, rows: np.ndarray) -> np.ndarray | None:
        """The personalizer's affinity for ``rows``, only when the ranker reads it."""
        if not ukey or not self.ranker_.reads_personal_model():
            return None
        return self.personal_.score(ukey, rows)

    def retrieve(self, query: str | None = None, query_image=None, k: int | None = None,
                 cache: bool = True) -> Candidates:
        """Candidates before ranking (all sources, fused); ``cache=False`` bypasses the result cache."""
        self._check()
        return self.retriever_.retrieve(query_text=query, query_image=query_image, k=k, cache=cache)

    def score(self, query: str | None, rows: np.ndarray, user_id: str | None = None, query_image=None) -> np.ndarray:
        """Ranker scores of given catalog rows for a query (no retrieval step)."""
        self._check()
        cands = self.retriever_.score_rows(query, np.asarray(rows, dtype=np.int64), query_image=query_image)
        ukey = self.user_key(user_id)
        personal = self._personal_scores(ukey, cands.rows)
        scores, _ = self.ranker_.rank(query, cands, personal, user_key=ukey, engine=self)
        return scores

    def search(
        self,
        query: str | None = None,
        user_id: str | None = None,
        k: int = 10,
        *,
        query_image=None,
        filters: Filters | None = None,
        rules: Rules | None = None,
        offset: int = 0,
        personalize: bool = True,
        explain: bool = False,
        depth: int = 200,
        request_id: str | None = None,
        return_candidates: bool = False,
    ) -> Results | tuple[Results, np.ndarray]:
        """Search the catalog for a shopper.

        Parameters
        ----------
        query : text query (may be None with ``query_image``).
        user_id : raw shopper id; pseudonymised here, never stored raw.
        k, offset : page size and start.
        query_image : path, bytes or PIL image for image and image+text search.
        filters, rules : structured filters and merchandising rules.
        personalize : use the shopper's profile (off gives the anonymous ranking).
        explain : attach per-source score breakdowns.
        request_id : when given, the features of every shown result are logged
            to the store under it, so later training uses exactly what was served.
        return_candidates : also return every filtered candidate row (for facets).
        """
        self._check()
        needed = depth if not (filters and filters.active()) else max(depth, 2000)
        cands = self.retriever_.retrieve(query_text=query, query_image=query_image, k=max(needed, offset + k))
        cands = self._with_pins(query, cands, rules, query_image)
        keep = self._filter_mask(cands.rows, filters)
        cands = Candidates(cands.rows[keep], cands.scores[keep], {s: v[keep] for s, v in cands.sources.items()})
        ukey = self.user_key(user_id) if personalize else None
        personal = self._personal_scores(ukey, cands.rows)
        # Logged features are the very arrays the ranker scores (assembled once).
        feats = self.ranker_.features(query, cands, personal, user_key=ukey, engine=self) if request_id else None
        scores, expl = self.ranker_.rank(query, cands, personal, user_key=ukey, engine=self, feats=feats)
        scores = self._apply_rules(cands.rows, scores, rules)
        ranked = np.lexsort((cands.rows, -scores))
        order = ranked[offset: offset + k]
        if request_id is not None:
            self._log_served(request_id, query, ukey, cands, feats, scores, ranked[offset: offset + k], offset)
        res = self._results(cands.rows[order], scores[order], [expl[i] for i in order] if explain else None)
        return (res, cands.rows) if return_candidates else res

    def _with_pins(self, query, cands: Candidates, rules: Rules | None, query_image) -> Candidates:
        """Add pinned products that retrieval did not find (pins hold regardless of relevance)."""
        if rules is None or not rules.pin:
            return cands
        pins = self.catalog_.indices(rules.pin)
        pins = pins[self.catalog_.active[pins] & ~np.isin(pins, cands.rows)]
        if not len(pins):
            return cands
        extra = self.retriever_.score_rows(query, pins, query_image=query_image)
        names = set(cands.sources) | set(extra.sources)
        nan_a, nan_b = np.full(len(cands.rows), np.nan), np.full(len(pins), np.nan)
        sources = {s: np.concatenate([cands.sources.get(s, nan_a), extra.sources.get(s, nan_b)]) for s in names}
        return Candidates(np.concatenate([cands.rows, pins]), np.concatenate([cands.scores, extra.scores]), sources)

    def _log_served(self, request_id, query, ukey, cands, feats, scores, shown, offset: int) -> None:
        from vitrine.rank.features import log_record

        records = log_record(request_id, query, ukey, self.catalog_.ids[cands.rows], scores, feats, shown, len(shown),
                             first=offset + 1)
        self.store.log_served(records)

    def _apply_rules(self, rows: np.ndarray, scores: np.ndarray, rules: Rules | None) -> np.ndarray:
        if rules is None:
            return scores
        scores = scores.copy()
        ids = self.catalog_.ids[rows]
        top = scores.max() if len(scores) else 0.0
        span = (scores.max() - scores.min()) if len(scores) else 1.0
        for i, pid in enumerate(ids):
            if pid in rules.boost:
                scores[i] += rules.boost[pid] * (span or 1.0)
            if pid in rules.bury:
                scores[i] -= 10 * (span or 1.0) + abs(top)
        for rank, pid in enumerate(rules.pin):
            hit = np.flatnonzero(ids == pid)
            if len(hit):
                scores[hit] = top + 10 * (span or 1.0) + (len(rules.pin) - rank)
        return scores

    def recommend(self, user_id: str | None, k: int = 10, exclude_seen: bool | None = None) -> Results:
        """Home-feed recommendations for a shopper (popular products for strangers)."""
        self._check()
        excl = (not self.settings.repurchase) if exclude_seen is None else exclude_seen
        rows, scores = self.personal_.recommend(self.user_key(user_id), k=k, exclude_seen=excl)
        return self._results(rows, scores)

    def similar(self, product_id: str, k: int = 10) -> Results:
        """Products like this one, by behaviour and content."""
        self._check()
        row = self._live_row(product_id)
        rows, scores = self.personal_.similar(row, k=k)
        if len(rows) < k:
            crow, cscore = self.retriever_.similar(row, k=k)
            fresh = ~np.isin(crow, rows)
            base = scores.min() if len(scores) else 0.0
            rows = np.concatenate([rows, crow[fresh]])[:k]
            span = cscore[fresh].max() if fresh.any() else 1.0
            scores = np.concatenate([scores, base - 1 + cscore[fresh] / (span or 1.0)])[:k]
        return self._results(rows, scores)

    # -- live updates ---------------------------------------------------------
    def record_events(self, events: list[dict] | pd.DataFrame, durable: bool = True) -> int:
        """Validate, store (durably, when a home store exists) and apply events.

        Each event: user_id, product_id, event, and optionally timestamp,
        query, session_id, request_id, position. Returns the number applied.
        """
        self._check()
        df = pd.DataFrame(events) if not isinstance(events, pd.DataFrame) else events.copy()
        if "timestamp" not in df or df["timestamp"].isna().all():
            df["timestamp"] = utc_now()
        df, problems = coerce_table(df, EVENTS, "events")
        rows = self.catalog_.indices(df["product_id"], missing="mark") if not problems else np.zeros(0)
        if not problems:
            for r in np.flatnonzero(rows < 0)[:20]:
                problems.append(Problem("events", int(r) + 1, "product_id",
                                        f"unknown product id {df['product_id'].iat[r]!r}"))
        if problems:
            raise DataValidationError(problems)
        df["user_id"] = pseudonymize_series(df["user_id"], self.settings.secret)
        with self._lock:
            arrival = self.store.append_events(df, pseudonymized=True) if durable else None
            if arrival is not None and self.arrival_through_ is not None and arrival > self.arrival_through_ + 1:
                # Someone else appended since this engine's last append (a folder ingest into the
                # same store); moving the mark past their events would skip them until a load.
                self._replay(before=arrival)
            for ukey, row, ev in zip(df["user_id"], rows, df["event"], strict=True):
                self.personal_.observe(ukey, int(row), ev)
            self._observed_through(df["timestamp"].max(), arrival)
        return len(df)

    def _observed_through(self, timestamp, arrival: int | None = None) -> None:
        """Move the replay marks: the profiles now hold the events up to ``timestamp``, and
        the store's appends up to ``arrival``.

        A save writes the marks with the profiles, so a load replays only what
        came after them, never what the saved profiles already counted. Without
        an arrival mark (a model fitted from a folder, or saved before the
        store numbered its appends) replay goes by event time, so one is not
        started from a live event: the appends before it would be skipped.
        """
        if arrival is not None and self.arrival_through_ is not None:
            self.arrival_through_ = max(self.arrival_through_, int(arrival))
        if timestamp is None or pd.isna(timestamp):
            return
        mark = getattr(self, "fitted_through_", None)
        if mark is None or pd.Timestamp(timestamp) > pd.Timestamp(mark):
            self.fitted_through_ = str(pd.Timestamp(timestamp))

    def record_event(self, user_id: str, product_id: str, event: str, **fields) -> None:
        """Record one event; the shopper's next results reflect it at once."""
        if event not in EVENT_TYPES:
            raise VitrineError(f"unknown event type {event!r}; expected one of {list(EVENT_TYPES)}")
        self.record_events([{"user_id": user_id, "product_id": product_id, "event": event, **fields}])

    def forget_user(self, user_id: str) -> int:
        """Erase a shopper: events, profile and per-user state. Returns stored rows removed."""
        key = self.user_key(user_id)
        with self._lock:
            n = self.store.forget_user(key) if (self.home / STORE_FILE).exists() or self._store else 0
            if hasattr(self, "personal_"):
                self.personal_.forget(key)
            if hasattr(self, "ranker_") and hasattr(self.ranker_, "forget"):
                self.ranker_.forget(key)
            if getattr(getattr(self, "retriever_", None), "fusion_", None) is not None and n:
                self.retriever_.set_reviews(self.store.query("SELECT * FROM reviews"))  # their reviews leave the item vectors
            self._erase_saved(key)
        return n

    def _erase_saved(self, key: str) -> int:
        """Erase a shopper from every saved model of the home (else a reload would bring their profile back).

        Each version folder that holds something of theirs is copied as hard
        links, the copy's files that change are written anew (never in place),
        and the copy takes the folder's name; returns the folders changed.
        """
        with models_lock(self.home):
            return self._erase_saved_locked(key)

    def _erase_saved_locked(self, key: str) -> int:
        models = self.home / MODELS_DIR
        changed = 0
        for folder in (models / name for name in version_names(self.home)):
            tmp = models / f".{folder.name}.erase-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(folder, tmp, copy_function=os.link)
            mine = Personalizer.erase_saved(tmp / "personal", key) | SearchRanker.erase_saved(tmp / "ranker", key)
            if not mine:
                shutil.rmtree(tmp)
                continue
            old = models / f".{folder.name}.erased-{os.getpid()}"
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old)
            changed += 1
        return changed

    # -- catalog updates ------------------------------------------------------
    def upsert_products(self, products: list[dict] | pd.DataFrame, durable: bool = True) -> list[str]:
        """Add or replace products; they are searchable when this returns."""
        self._check()
        df = pd.DataFrame(products) if not isinstance(products, pd.DataFrame) else products
        df, problems = coerce_table(df, PRODUCTS, "products")
        if problems:
            raise DataValidationError(problems)
        with self._lock:
            if durable:
                self.store.upsert_products(df)
                self._catalog_observed(self.store.product_log_mark())
            rows = self.catalog_.upsert(df)
            self.retriever_.add(rows)
            vecs = self.retriever_.item_vectors() if hasattr(self.retriever_, "item_vectors") else None
            self.personal_.add(rows, item_vectors=vecs)
            if hasattr(self.ranker_, "refresh_products"):
                self.ranker_.refresh_products(self.catalog_.products)
        return list(df["product_id"])

    def delete_product(self, product_id: str, durable: bool = True) -> None:
        self._check()
        with self._lock:
            row = self.catalog_.delete(product_id)
            if hasattr(self.retriever_, "remove"):
                self.retriever_.remove(np.array([row]))
            if durable:
                self.store.delete_product(product_id)
                self._catalog_observed(self.store.product_log_mark())

    def _live_row(self, product_id: str) -> int:
        """Catalog row of a product that has not been deleted (a deleted one keeps its row until the next fit)."""
        row = self.catalog_.index_of(product_id)
        if not self.catalog_.active[row]:
            raise NotFoundError(f"product id {product_id!r} was deleted from the catalog")
        return row

    def product(self, product_id: str) -> dict:
        self._check()
        rec = self.catalog_.products.iloc[self._live_row(product_id)].to_dict()
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}

    # -- persistence ----------------------------------------------------------
    def save(self, home: str | Path | None = None) -> Path:
        """Write the fitted engine atomically: a new version folder, then the CURRENT pointer."""
        self._check()
        home = Path(home) if home is not None else self.home
        models = home / MODELS_DIR
        version = self.version_ or time.strftime("%Y%m%d-%H%M%S")
        final = models / version
        tmp = models / f".{version}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with self._lock:
            self.catalog_.save(tmp)
            self.retriever_.save(tmp / "retriever")
            self.personal_.save(tmp / "personal")
            self.ranker_.save(tmp / "ranker")
            root = str(self.catalog_.root) if self.catalog_.root else None
            (tmp / "engine.json").write_text(json.dumps({
                "vitrine": __version__, "version": version, "root": root,
                "fitted_through": getattr(self, "fitted_through_", None),
                "arrival_through": self.arrival_through_,
                "catalog_through": self.catalog_through_,
                "fitted_at": getattr(self, "fitted_at_", None),
            }))
        with models_lock(home):
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            set_current(home, version)
            prune(home, self.settings.keep_models)
            # The live catalog log before the oldest kept fit is replayed by no kept model.
            marks = fit_times(home)
            if home.resolve() == self.home.resolve() and (home / STORE_FILE).exists() and all(marks):
                self.store.prune_product_log(min(pd.Timestamp(m) for m in marks))
        return final

    @classmethod
    def load(cls, home: str | Path | None = None, settings: Settings | None = None, replay: bool = True) -> Engine:
        """Load the current fitted engine from a home folder.

        With ``replay``, live catalog changes stored after the fit began
        (upserted and deleted products) are applied, and events stored after
        the model's training data (live events recorded since the fit) are
        replayed into the shopper profiles, so a reload never forgets what
        shoppers just did nor brings back a deleted product.
        """
        self = cls(settings=settings, home=home)
        current = current_version(self.home)
        if current is None:
            raise VitrineError(f"{self.home}: no fitted model; run `vitrine fit --home {self.home}` first")
        folder = self.home / MODELS_DIR / current
        meta = json.loads((folder / "engine.json").read_text())
        catalog = Catalog.load(folder, root=Path(meta["root"]) if meta.get("root") else None)
        self.catalog_ = catalog
        self.retriever_ = Retriever.load(folder / "retriever", catalog)
        self.personal_ = Personalizer.load(folder / "personal", catalog)
        self.ranker_ = SearchRanker.load(folder / "ranker")
        self._size_query_caches()
        self.version_ = folder.name  # the folder is the identity (a copy keeps its engine.json)
        self.fitted_through_ = meta.get("fitted_through")
        self.arrival_through_ = meta.get("arrival_through")  # None: saved before appends were numbered
        self.catalog_through_ = meta.get("catalog_through")
        self.fitted_at_ = meta.get("fitted_at")  # None: saved before catalog catch-up existed
        if replay:
            self.catch_up()
        return self

    def catch_up(self) -> int:
        """Apply what the store gained since this engine last read it; return how many changes.

        Loading does it once: live catalog changes logged after the fit
        read the catalog, and events stored after those the profiles hold. The service
        does it again just before swapping a newly loaded engine in, under
        the lock every write waits for, so nothing that arrived while the
        engine was loading is lost. Both logs are numbered in the order the
        store took them and the engine remembers the last number of each it
        holds, so a change is applied once (a catalog change that lands during
        the read may come again next time, which is harmless).
        """
        if self._store is None and not (self.home / STORE_FILE).exists():
            return 0  # a home of saved models alone: nothing was stored since
        return self._catch_up_catalog() + self._replay()

    def _catch_up_catalog(self) -> int:
        """Apply the live product upserts and deletes logged after what the catalog holds; returns how many."""
        mark = self.store.product_log_mark()
        if self.catalog_through_ is not None:
            ups, gone = self.store.product_changes(after=self.catalog_through_)
        else:
            # Saved before the marks: by time from the fit's start (the whole log if unknown). Each logged
            # product comes back as the store holds it now, so what the fit had is applied again, unchanged.
            ups, gone = self.store.product_changes(str(self.fitted_at_ or "1970-01-01"))
        if len(ups):
            self.upsert_products(ups, durable=False)
        for pid in gone:
            row = self.catalog_.get_index(pid)
            if row is not None and self.catalog_.active[row]:
                self.delete_product(pid, durable=False)
        self._catalog_observed(mark, adopt=True)
        return len(ups) + len(gone)

    def _catalog_observed(self, mark: int, adopt: bool = False) -> None:
        """The catalog now holds the store's live changes up to ``mark``.

        Only a catch-up, which read the log from the fit's start, may start
        a mark; a live change alone may not (those logged before it, since
        the fit, would be skipped).
        """
        if self.catalog_through_ is not None:
            self.catalog_through_ = max(self.catalog_through_, int(mark))
        elif adopt:
            self.catalog_through_ = int(mark)

    def _replay(self, before: int | None = None) -> int:
        """Apply the stored events the profiles do not hold yet (appended before ``before``, if
        given), in event-time order.

        By arrival: every append after the last one the profiles hold, so a
        late event dated before the others (a phone's queued clicks, a
        backfill) still counts, and a clock running ahead does not hide what
        follows. Models without an arrival mark go by event time.
        """
        sql = "SELECT user_id, product_id, event, timestamp, arrival FROM events"
        params: list = []
        if self.arrival_through_ is not None:
            sql += " WHERE arrival > ?"
            params.append(int(self.arrival_through_))
            if before is not None:
                sql += " AND arrival < ?"
                params.append(int(before))
        elif self.fitted_through_ is not None:
            sql += " WHERE timestamp > CAST(? AS TIMESTAMP)"
            params.append(self.fitted_through_)
        ev = self.store.query(sql + " ORDER BY timestamp, arrival", params)
        rows = self.catalog_.indices(ev["product_id"], missing="mark")
        for ukey, row, kind in zip(ev["user_id"], rows, ev["event"], strict=True):
            if row >= 0:
                self.personal_.observe(ukey, int(row), kind)
        if len(ev):
            self._observed_through(ev["timestamp"].max(), ev["arrival"].max())
        return int((rows >= 0).sum())
