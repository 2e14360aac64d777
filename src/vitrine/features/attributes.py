"""Numeric and categorical product attributes as model inputs.

* numeric: log price, price percentile within the leaf category, log sales,
  Bayesian rating, log rating count, recency, and review statistics; the
  values come from :func:`vitrine.rank.features.product_table` (the ranker's
  product features), so the two never disagree. :class:`NumericScaler` turns
  them into z-scores with missing values at 0 (the mean) and one "missing"
  indicator per column.
* categorical: brand and category embeddings taken from the text encoder's
  embedding of the brand name and of the category path. Each distinct value
  is encoded once and stored in a small table; rows hold a code into it, so a
  20k-product catalog with 300 brands stores 300 vectors, not 20k.

Example usage::

    X, names = numeric_table(catalog.products, reviews)
    scaler = NumericScaler().fit(X)
    Z = scaler.transform(X)                         # (n, 2 * len(names))
    brands = ValueEmbeddings().fit(brand_values(catalog.products), encoder)
    B, has = brands.vectors()                       # (n, d), (n,)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

# Columns of product_table used as numeric inputs (any subset may be absent).
NUMERIC = ("price_log", "price_pct_cat", "sales_log", "rating_bayes", "rating_count_log", "recency",
           "review_count_log", "review_rating_bayes")


def numeric_table(products: pd.DataFrame, reviews: pd.DataFrame | None = None,
                  names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Raw numeric attributes, (n_products, k) float32 with NaN where unknown, and their names.

    ``recency`` is 1 / (1 + age in days / 30), age counted back from the
    newest product's ``created_at``. With ``names`` (the columns of an earlier
    call), exactly those columns come back, all-NaN where no longer available.
    """
    from vitrine.rank.features import product_table  # the ranker's definitions: one source of truth

    cols = dict(product_table(products, reviews).columns)
    if "fresh_days" in cols:
        cols["recency"] = (1.0 / (1.0 + np.maximum(cols.pop("fresh_days"), 0) / 30.0)).astype(np.float32)
    if names is None:
        names = [c for c in NUMERIC if c in cols and np.isfinite(cols[c]).any()]
    if not names:
        return np.zeros((len(products), 0), np.float32), []
    nan = np.full(len(products), np.nan, np.float32)
    return np.stack([np.asarray(cols.get(c, nan), np.float32) for c in names], 1), list(names)


class NumericScaler:
    """z-scores with missing values at 0, plus a 0/1 "missing" column per input column.

    Attributes
    ----------
    mean_, std_ : (k,) statistics of the finite values seen in ``fit``.
    """

    def fit(self, X: np.ndarray) -> NumericScaler:
        X = np.asarray(X, np.float64)
        fin = np.isfinite(X)
        cnt = np.maximum(fin.sum(0), 1)
        self.mean_ = np.where(fin, X, 0).sum(0) / cnt
        var = np.where(fin, (X - self.mean_) ** 2, 0).sum(0) / cnt
        self.std_ = np.where(var > 0, np.sqrt(var), 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, 2k) float32: clipped z-scores (0 where missing), then the missing indicators."""
        X = np.asarray(X, np.float64)
        if X.shape[1] != len(self.mean_):
            raise ValueError(f"expected {len(self.mean_)} numeric columns, got {X.shape[1]}")
        fin = np.isfinite(X)
        z = np.clip(np.where(fin, (X - self.mean_) / self.std_, 0.0), -5, 5)
        return np.concatenate([z, (~fin).astype(np.float64)], 1).astype(np.float32)


def brand_values(products: pd.DataFrame) -> list[str]:
    """Per product, the text its brand embedding is made from ("" when none)."""
    if "brand" not in products:
        return [""] * len(products)
    return [str(b).strip() for b in products["brand"].fillna("").astype(str)]


def category_values(products: pd.DataFrame) -> list[str]:
    """Per product, the category path as words ("Men > Shoes > Sandals" -> "Men Shoes Sandals")."""
    if "category" not in products:
        return [""] * len(products)
    return [" ".join(p.strip() for p in str(c).split(">") if p.strip())
            for c in products["category"].fillna("").astype(str)]


class ValueEmbeddings:
    """Embedding of a categorical value by the text encoder, one vector per distinct value.

    Attributes
    ----------
    values_ : distinct non-empty values, in first-seen order.
    table_ : (n_values, d) unit-norm embeddings of ``values_``.
    codes_ : (n_products,) index into ``values_``; -1 where the value is empty.
    """

    def fit(self, values: list[str], encoder) -> ValueEmbeddings:
        self.values_: list[str] = []
        self._pos: dict[str, int] = {}
        self.table_ = np.zeros((0, 0), np.float32)
        self.codes_ = np.zeros(0, np.int64)
        self.set(np.arange(len(values)), values, encoder)
        return self

    def set(self, rows: np.ndarray, values: list[str], encoder) -> None:
        """Assign values to rows (appended rows grow the code array); new values are encoded."""
        rows = np.asarray(rows, np.int64)
        if len(rows) and rows.max() >= len(self.codes_):
            self.codes_ = np.concatenate([self.codes_, np.full(rows.max() + 1 - len(self.codes_), -1, np.int64)])
        new = [v for v in dict.fromkeys(values) if v and v not in self._pos]
        if new:
            vecs = encoder.encode(new)
            self.table_ = vecs if not len(self.table_) else np.concatenate([self.table_, vecs])
            for v in new:
                self._pos[v] = len(self.values_)
                self.values_.append(v)
        self.codes_[rows] = [self._pos[v] if v else -1 for v in values]

    def vectors(self, rows: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
        """(len(rows), d) vectors (zero rows where no value) and the has-value mask; None when no value exists."""
        codes = self.codes_ if rows is None else self.codes_[np.asarray(rows, np.int64)]
        has = codes >= 0
        if not len(self.table_):
            return None, has
        out = np.zeros((len(codes), self.table_.shape[1]), np.float32)
        out[has] = self.table_[codes[has]]
        return out, has

    def save(self, folder: Path, name: str) -> None:
        np.save(folder / f"{name}_table.npy", self.table_, allow_pickle=False)
        np.save(folder / f"{name}_codes.npy", self.codes_, allow_pickle=False)
        (folder / f"{name}_values.json").write_text(json.dumps(self.values_))

    @classmethod
    def load(cls, folder: Path, name: str) -> ValueEmbeddings:
        self = cls()
        self.table_ = np.load(folder / f"{name}_table.npy", allow_pickle=False)
        self.codes_ = np.load(folder / f"{name}_codes.npy", allow_pickle=False)
        self.values_ = json.loads((folder / f"{name}_values.json").read_text())
        self._pos = {v: i for i, v in enumerate(self.values_)}
        return self
