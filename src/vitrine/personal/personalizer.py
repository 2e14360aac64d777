"""The personal layer the engine talks to.

Foundation version: event-weighted popularity plus a live per-user history
(seen products, recent items). Later work puts CF, ALS and the sequential
model behind the same methods.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
import pandas as pd

from vitrine.config import DEFAULT_EVENT_WEIGHTS
from vitrine.data.catalog import Catalog
from vitrine.errors import NotFittedError
from vitrine.results import top_k


class Personalizer:
    """Recommendations and per-shopper scores from behaviour.

    Parameters
    ----------
    event_weights : weight of each event type (purchase > cart > click).
    history : how many recent products a live profile keeps.

    Attributes
    ----------
    popularity_ : array (n_products,), event-weighted popularity.
    seen_ : user key -> set of catalog rows the user interacted with.
    recent_ : user key -> deque of recent catalog rows, newest last.
    """

    def __init__(self, *, event_weights: dict[str, float] | None = None, history: int = 50) -> None:
        self.event_weights = event_weights
        self.history = history

    def _weights(self) -> dict[str, float]:
        return self.event_weights or DEFAULT_EVENT_WEIGHTS

    def fit(self, events: pd.DataFrame | None, catalog: Catalog, item_vectors: np.ndarray | None = None) -> Personalizer:
        """Learn from events whose ``user_id`` are pseudonymised keys."""
        self.catalog_ = catalog
        self.popularity_ = np.zeros(len(catalog), dtype=np.float32)
        self.seen_: dict[str, set[int]] = defaultdict(set)
        self.recent_: dict[str, deque] = defaultdict(lambda: deque(maxlen=self.history))
        if events is not None and len(events):
            ev = events.sort_values("timestamp", kind="stable")
            rows = catalog.indices(ev["product_id"], missing="mark")
            w = ev["event"].map(self._weights()).fillna(0.0).to_numpy(dtype=np.float32)
            ok = rows >= 0
            np.add.at(self.popularity_, rows[ok], w[ok] + 0.01)  # impressions count a little
            for user, row, wt in zip(ev["user_id"].to_numpy()[ok], rows[ok], w[ok], strict=True):
                if wt > 0:
                    self.seen_[user].add(int(row))
                    self.recent_[user].append(int(row))
        return self

    def _check(self) -> None:
        if not hasattr(self, "popularity_"):
            raise NotFittedError(type(self).__name__)

    def observe(self, user_key: str, product_row: int, event: str) -> None:
        """Update the live profile with one event (no retraining)."""
        self._check()
        if product_row >= len(self.popularity_):
            self.popularity_ = np.concatenate(
                [self.popularity_, np.zeros(product_row + 1 - len(self.popularity_), np.float32)]
            )
        w = self._weights().get(event, 0.0)
        self.popularity_[product_row] += w + 0.01
        if w > 0:
            self.seen_[user_key].add(product_row)
            self.recent_[user_key].append(product_row)

    def forget(self, user_key: str) -> None:
        self.seen_.pop(user_key, None)
        self.recent_.pop(user_key, None)

    def knows(self, user_key: str) -> bool:
        return bool(self.recent_.get(user_key))

    def score(self, user_key: str | None, rows: np.ndarray) -> np.ndarray:
        """Personal affinity of a user for candidate rows (0 for unknown users).

        Foundation version: share of the user's recent products in the same leaf category.
        """
        self._check()
        out = np.zeros(len(rows), dtype=np.float32)
        recent = self.recent_.get(user_key) if user_key else None
        if not recent:
            return out
        cats = self.catalog_.products["category"]
        mine = pd.Series([cats.iat[r] for r in recent]).value_counts(normalize=True)
        return np.array([mine.get(cats.iat[int(r)], 0.0) for r in rows], dtype=np.float32)

    def score_all(self, user_key: str | None) -> np.ndarray:
        """Recommendation score of every catalog row for a user, shape (n_products,)."""
        self._check()
        scores = np.log1p(self.popularity_[: len(self.catalog_)]).astype(np.float32)
        if user_key and self.knows(user_key):
            scores = scores / (scores.max() or 1.0) + self.score(user_key, np.arange(len(scores)))
        return scores

    def recommend(self, user_key: str | None, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        scores = self.score_all(user_key).copy()
        if user_key and exclude_seen and self.seen_.get(user_key):
            scores[list(self.seen_[user_key])] = -np.inf
        scores = np.where(self.catalog_.active, scores, -np.inf)
        rows = top_k(scores, k)
        rows = rows[np.isfinite(scores[rows])]
        return rows, scores[rows]

    def similar(self, row: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Behaviour-based neighbours (none in the foundation version)."""
        return np.zeros(0, np.int64), np.zeros(0, np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "popularity.npy", self.popularity_, allow_pickle=False)
        recent = {u: list(map(int, d)) for u, d in self.recent_.items()}
        seen = {u: sorted(map(int, s)) for u, s in self.seen_.items()}
        (folder / "profiles.json").write_text(json.dumps({"recent": recent, "seen": seen}))
        (folder / "personal.json").write_text(
            json.dumps({"event_weights": self.event_weights, "history": self.history})
        )

    @classmethod
    def load(cls, folder: Path, catalog: Catalog) -> Personalizer:
        self = cls(**json.loads((folder / "personal.json").read_text()))
        self.catalog_ = catalog
        self.popularity_ = np.load(folder / "popularity.npy", allow_pickle=False)
        prof = json.loads((folder / "profiles.json").read_text())
        self.seen_ = defaultdict(set, {u: set(v) for u, v in prof["seen"].items()})
        self.recent_ = defaultdict(lambda: deque(maxlen=self.history))
        for u, v in prof["recent"].items():
            self.recent_[u].extend(v)
        return self
