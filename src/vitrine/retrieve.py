"""Candidate generation: lexical, dense, image and personal sources, fused.

The foundation version has one source (field-weighted BM25) with popularity
to break ties and to answer empty queries; the product-understanding work
adds dense text, image and cross-modal sources behind the same interface.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vitrine.data.catalog import Catalog
from vitrine.errors import NotFittedError
from vitrine.features.lexical import BM25Index
from vitrine.results import Candidates, top_k

TEXT_FIELDS = ("title", "brand", "category", "color", "tags", "description")


def product_doc(catalog: Catalog, i: int) -> dict[str, str]:
    doc = {f: catalog.text(i, f) for f in TEXT_FIELDS}
    doc["category"] = doc["category"].replace(">", " ")
    doc["tags"] = doc["tags"].replace("|", " ")
    return doc


def popularity_prior(catalog: Catalog) -> np.ndarray:
    """log(1 + sales) scaled to [0, 1]; zeros when the catalog has no sales."""
    sales = np.nan_to_num(catalog.products["sales"].to_numpy(dtype=float, na_value=0.0))
    pop = np.log1p(np.maximum(sales, 0))
    return (pop / pop.max()).astype(np.float32) if pop.max() > 0 else np.zeros(len(catalog), np.float32)


def rrf(rankings: dict[str, np.ndarray], k: int = 60, weights: dict[str, float] | None = None) -> dict[int, float]:
    """Reciprocal-rank fusion: sum over sources of w / (k + rank)."""
    fused: dict[int, float] = {}
    for name, rows in rankings.items():
        w = (weights or {}).get(name, 1.0)
        for r, row in enumerate(rows):
            fused[int(row)] = fused.get(int(row), 0.0) + w / (k + r + 1)
    return fused


class Retriever:
    """Retrieves candidate rows for a text (and later image) query.

    Attributes
    ----------
    lexical_ : fitted BM25Index over the catalog's text fields.
    popularity_ : array (n_products,), popularity prior in [0, 1].
    """

    def __init__(self, *, depth: int = 200) -> None:
        self.depth = depth

    def fit(self, catalog: Catalog, progress: bool = False) -> Retriever:
        self.catalog_ = catalog
        self.lexical_ = BM25Index().fit([product_doc(catalog, i) for i in range(len(catalog))])
        self.popularity_ = popularity_prior(catalog)
        return self

    def _check(self) -> None:
        if not hasattr(self, "lexical_"):
            raise NotFittedError(type(self).__name__)

    def retrieve(self, query_text: str | None = None, query_image=None, k: int | None = None) -> Candidates:
        """Candidates for a query; an empty query returns the most popular products."""
        self._check()
        k = k or self.depth
        active = self.catalog_.active
        pop = np.where(active, self.popularity_[: len(active)], -np.inf)
        if not query_text:
            rows = top_k(pop, k)
            return Candidates(rows, pop[rows], {"popularity": pop[rows]})
        bm = self.lexical_.score(query_text)
        bm = np.where(active, bm, -np.inf)
        matched = np.flatnonzero(bm > 0)
        # Popularity breaks ties among equal text matches, never outranks a better match.
        combined = bm + 1e-3 * pop
        rows = matched[top_k(combined[matched], k)]
        return Candidates(rows, combined[rows], {"lexical": bm[rows], "popularity": pop[rows]})

    def score_rows(self, query_text: str | None, rows: np.ndarray, query_image=None) -> Candidates:
        """Every source's score for given rows (rerank and cross-modal evaluation)."""
        self._check()
        rows = np.asarray(rows, dtype=np.int64)
        bm = self.lexical_.score(query_text)[rows] if query_text else np.zeros(len(rows), np.float32)
        pop = self.popularity_[rows]
        return Candidates(rows, bm + 1e-3 * pop, {"lexical": bm, "popularity": pop})

    def similar(self, row: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Products sharing the most weighted text with product ``row``."""
        self._check()
        doc = product_doc(self.catalog_, row)
        scores = self.lexical_.score(" ".join([doc["title"], doc["brand"], doc["category"]]))
        scores = np.where(self.catalog_.active, scores, -np.inf)
        scores[row] = -np.inf
        rows = top_k(scores, k)
        return rows, scores[rows]

    def add(self, rows: np.ndarray) -> None:
        """Index products appended to or replaced in the catalog."""
        self._check()
        for row in rows:
            doc = product_doc(self.catalog_, int(row))
            if row < self.lexical_.n_docs_:
                self.lexical_.replace(int(row), doc)
            else:
                self.lexical_.append([doc])
        self.popularity_ = np.concatenate(
            [self.popularity_, np.zeros(len(self.catalog_) - len(self.popularity_), np.float32)]
        )

    def save(self, folder: Path) -> None:
        self.lexical_.save(folder / "lexical")
        np.save(folder / "popularity.npy", self.popularity_, allow_pickle=False)
        (folder / "retriever.json").write_text(json.dumps({"depth": self.depth}))

    @classmethod
    def load(cls, folder: Path, catalog: Catalog) -> Retriever:
        self = cls(**json.loads((folder / "retriever.json").read_text()))
        self.catalog_ = catalog
        self.lexical_ = BM25Index.load(folder / "lexical")
        self.popularity_ = np.load(folder / "popularity.npy", allow_pickle=False)
        return self
