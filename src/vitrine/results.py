"""Typed results shared by the engine, the API and evaluation."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Results(NamedTuple):
    """Ranked products.

    Attributes
    ----------
    item_ids : product ids, best first.
    scores : array of shape (n,), the score each was ranked by.
    explanations : per item, score contribution by source (text, image,
        reviews, price, popularity, personal), or None when not requested.
    """

    item_ids: list[str]
    scores: np.ndarray
    explanations: list[dict[str, float]] | None = None

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.item_ids)


class Candidates(NamedTuple):
    """Candidate rows from retrieval with the score of each source.

    Attributes
    ----------
    rows : int64 array (n,) of catalog rows.
    scores : float array (n,), fused retrieval score (higher is better).
    sources : source name -> float array (n,), that source's score for each
        row (NaN where the source did not retrieve it).
    """

    rows: np.ndarray
    scores: np.ndarray
    sources: dict[str, np.ndarray]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (stable for ties)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]
