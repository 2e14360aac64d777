"""The search ranker the engine talks to.

Foundation version: a fixed linear blend of retrieval sources and the
shopper's affinity. The learning-to-rank work replaces the insides
(LambdaMART over assembled features) behind the same ``fit``/``rank``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vitrine.results import Candidates

# Which explanation bucket each retrieval source's contribution goes to.
SOURCE_GROUP = {"lexical": "text", "dense": "text", "image": "image", "popularity": "popularity"}


class SearchRanker:
    """Scores retrieval candidates for one query and (optionally) one shopper.

    Parameters
    ----------
    weights : source name -> weight of its min-max-scaled score; "personal"
        weighs the shopper affinity.
    """

    def __init__(self, *, weights: dict[str, float] | None = None) -> None:
        self.weights = weights

    def _w(self) -> dict[str, float]:
        return self.weights or {"lexical": 1.0, "dense": 1.0, "image": 1.0, "popularity": 0.1, "personal": 0.5}

    def fit(self, engine, dataset) -> SearchRanker:  # noqa: ARG002 - learned in the ranking work
        self.fitted_ = True
        return self

    def rank(
        self, query: str | None, cands: Candidates, personal: np.ndarray | None, **context: object
    ) -> tuple[np.ndarray, list[dict[str, float]]]:
        """Return (scores, explanations) aligned with ``cands.rows``."""
        w = self._w()
        parts: dict[str, np.ndarray] = {}
        for name, vals in cands.sources.items():
            v = np.nan_to_num(np.asarray(vals, dtype=np.float64), nan=0.0, neginf=0.0)
            span = v.max() - v.min() if len(v) else 0.0
            scaled = (v - v.min()) / span if span > 0 else np.zeros_like(v)
            group = SOURCE_GROUP.get(name, name)
            parts[group] = parts.get(group, 0.0) + w.get(name, 0.0) * scaled
        if personal is not None:
            parts["personal"] = w["personal"] * np.asarray(personal, dtype=np.float64)
        total = sum(parts.values()) if parts else np.zeros(len(cands.rows))
        expl = [{g: float(v[i]) for g, v in parts.items()} for i in range(len(cands.rows))]
        return np.asarray(total, dtype=np.float64), expl

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ranker.json").write_text(json.dumps({"weights": self.weights}))

    @classmethod
    def load(cls, folder: Path) -> SearchRanker:
        self = cls(**json.loads((folder / "ranker.json").read_text()))
        self.fitted_ = True
        return self
