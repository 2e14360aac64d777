"""Content vectors built from catalog attributes, for cold start.

When the product-understanding retriever supplies no item vectors, products
are still described by what the catalog says: category path (every prefix),
brand, colour, tags and a price band. ``ContentEncoder`` turns those into
TF-IDF weighted, L2-normalised sparse rows, and into a small dense projection
(truncated SVD) that ties collaborative and sequential item factors to content.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vitrine.data.catalog import Catalog

PRICE_BANDS = 5


def _s(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v).strip()


def _tags(v) -> list[str]:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    if isinstance(v, (list, tuple, np.ndarray)):
        return [str(t).strip().lower() for t in v if str(t).strip()]
    return [t.strip().lower() for t in str(v).split("|") if t.strip()]


def category_path(v) -> list[str]:
    """Category path parts: ``"A > B > C"`` -> ``["a", "b", "c"]``."""
    return [p.strip().lower() for p in _s(v).split(">") if p.strip()]


def price_bands(catalog: Catalog, edges: dict[str, list[float]] | None = None) -> tuple[np.ndarray, dict]:
    """Price band 0..4 of each product within its top category (-1 when no price).

    Band edges are the quintiles of log price per top category at fit time;
    ``edges`` reuses fitted edges for products added later.
    """
    p = catalog.products
    price = pd.to_numeric(p["price"], errors="coerce").to_numpy(dtype=float)
    top = np.array([(category_path(c) or [""])[0] for c in p["category"]], dtype=object)
    if edges is None:
        edges = {}
        for t in set(top):
            v = price[(top == t) & np.isfinite(price) & (price > 0)]
            if len(v) >= PRICE_BANDS:
                edges[t] = list(np.quantile(np.log(v), np.linspace(0, 1, PRICE_BANDS + 1)[1:-1]))
    out = np.full(len(p), -1, dtype=np.int64)
    for i, (t, x) in enumerate(zip(top, price, strict=True)):
        if np.isfinite(x) and x > 0 and t in edges:
            out[i] = int(np.searchsorted(edges[t], np.log(x)))
    return out, edges


def product_tokens(catalog: Catalog, rows: np.ndarray, bands: np.ndarray) -> list[list[str]]:
    """Attribute tokens of each product row (category prefixes, brand, colour, tags, price band)."""
    p = catalog.products
    out = []
    for r in rows:
        toks = []
        path = category_path(p["category"].iat[r])
        for j in range(len(path)):
            toks.append("cat:" + ">".join(path[: j + 1]))
        b, c = _s(p["brand"].iat[r]).lower(), _s(p["color"].iat[r]).lower()
        if b:
            toks.append("brand:" + b)
        if c:
            toks.append("color:" + c)
        toks.extend("tag:" + t for t in _tags(p["tags"].iat[r]))
        if bands[r] >= 0:
            top = path[0] if path else ""
            toks.append(f"price:{top}:{bands[r]}")
        out.append(toks)
    return out


WORD = re.compile(r"\w\w+")


def title_tokens(catalog: Catalog, rows: np.ndarray, bands: np.ndarray) -> list[list[str]]:
    """Lower-cased title words (two characters or more) of each product row."""
    p = catalog.products
    if "title" not in p.columns:
        return [[] for _ in rows]
    return [["word:" + w for w in WORD.findall(_s(p["title"].iat[r]).lower())] for r in rows]


TOKENIZERS = {"attributes": product_tokens, "title": title_tokens}


class ContentEncoder:
    """Sparse attribute (or title-word) vectors and a dense projection of them.

    Parameters
    ----------
    dims : size of the dense projection (truncated SVD of the sparse rows).
    kind : "attributes" (category prefixes, brand, colour, tags, price band)
        or "title" (title words).
    min_df : tokens of fewer products are dropped (1 keeps all).

    Attributes
    ----------
    vocab_ : token -> column.
    idf_ : array (n_tokens,), inverse document frequency.
    matrix_ : csr_matrix (n_products, n_tokens), TF-IDF rows, L2-normalised.
    basis_ : array (n_tokens, dims), projection to the dense space.
    bands_ : array (n_products,), price band of each product (-1 unknown).
    """

    def __init__(self, *, dims: int = 64, kind: str = "attributes", min_df: int = 1) -> None:
        self.dims, self.kind, self.min_df = dims, kind, min_df

    def _tokens(self, catalog: Catalog, rows: np.ndarray, bands: np.ndarray) -> list[list[str]]:
        if self.kind not in TOKENIZERS:
            raise ValueError(f"unknown content kind {self.kind!r}; choose from {sorted(TOKENIZERS)}")
        return TOKENIZERS[self.kind](catalog, rows, bands)

    def fit(self, catalog: Catalog) -> ContentEncoder:
        self.bands_, self.edges_ = price_bands(catalog)
        toks = self._tokens(catalog, np.arange(len(catalog)), self.bands_)
        df: dict[str, int] = {}
        for t in toks:
            for w in set(t):
                df[w] = df.get(w, 0) + 1
        vocab: dict[str, int] = {}
        for t in toks:
            for w in t:
                if df[w] >= self.min_df:
                    vocab.setdefault(w, len(vocab))
        self.vocab_ = vocab
        raw = self._raw(toks)
        df = np.asarray((raw > 0).sum(axis=0)).ravel()
        self.idf_ = np.log((1 + raw.shape[0]) / (1 + df)) + 1.0
        self.matrix_ = self._weight(raw)
        self.basis_ = self._svd(self.matrix_)
        return self

    def _raw(self, toks: list[list[str]]) -> sp.csr_matrix:
        indptr, indices = [0], []
        for t in toks:
            cols = sorted({self.vocab_[w] for w in t if w in self.vocab_})
            indices.extend(cols)
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.float32)
        return sp.csr_matrix((data, np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
                             shape=(len(toks), max(1, len(self.vocab_))))

    def _weight(self, raw: sp.csr_matrix) -> sp.csr_matrix:
        m = raw.multiply(self.idf_[None, : raw.shape[1]].astype(np.float32)).tocsr()
        norm = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norm[norm == 0] = 1.0
        return sp.diags(1.0 / norm).dot(m).tocsr().astype(np.float32)

    def _svd(self, m: sp.csr_matrix) -> np.ndarray:
        k = min(self.dims, min(m.shape) - 1)
        if k < 1 or m.nnz == 0:
            return np.zeros((m.shape[1], 0), dtype=np.float32)
        from scipy.sparse.linalg import svds

        _, _, vt = svds(m.astype(np.float64), k=k, random_state=0)
        return np.ascontiguousarray(vt.T, dtype=np.float32)

    def dense(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Dense projection, shape (n_rows, dims), rows L2-normalised."""
        m = self.matrix_ if rows is None else self.matrix_[rows]
        d = np.asarray(m @ self.basis_, dtype=np.float32)
        n = np.linalg.norm(d, axis=1, keepdims=True)
        return d / np.where(n > 0, n, 1.0)

    def extend(self, catalog: Catalog) -> np.ndarray:
        """Encode products added to the catalog since fit; return their rows."""
        n0 = self.matrix_.shape[0]
        if len(catalog) <= n0:
            return np.zeros(0, dtype=np.int64)
        rows = np.arange(n0, len(catalog))
        bands, _ = price_bands(catalog, self.edges_)
        self.bands_ = np.concatenate([self.bands_, bands[rows]])
        toks = self._tokens(catalog, rows, bands)
        self.matrix_ = sp.vstack([self.matrix_, self._weight(self._raw(toks))]).tocsr()
        return rows

    def refresh(self, catalog: Catalog, rows: np.ndarray) -> None:
        """Re-encode existing rows whose attributes changed (upsert of a known id)."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[rows < self.matrix_.shape[0]]
        if not len(rows):
            return
        bands, _ = price_bands(catalog, self.edges_)
        self.bands_[rows] = bands[rows]
        new = self._weight(self._raw(self._tokens(catalog, rows, bands))).tolil()
        m = self.matrix_.tolil()
        for j, r in enumerate(rows):
            m[r] = new[j]
        self.matrix_ = m.tocsr()

    def save(self, folder: Path, name: str = "content") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        m = self.matrix_
        np.savez(folder / f"{name}.npz", data=m.data, indices=m.indices, indptr=m.indptr,
                 shape=np.asarray(m.shape), idf=self.idf_, basis=self.basis_, bands=self.bands_)
        (folder / f"{name}.json").write_text(json.dumps({"dims": self.dims, "kind": self.kind, "min_df": self.min_df,
                                                         "vocab": self.vocab_, "edges": self.edges_}))

    @classmethod
    def load(cls, folder: Path, name: str = "content") -> ContentEncoder:
        meta = json.loads((folder / f"{name}.json").read_text())
        self = cls(dims=meta["dims"], kind=meta.get("kind", "attributes"), min_df=meta.get("min_df", 1))
        self.vocab_, self.edges_ = meta["vocab"], meta["edges"]
        z = np.load(folder / f"{name}.npz", allow_pickle=False)
        self.matrix_ = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        self.idf_, self.basis_, self.bands_ = z["idf"], z["basis"], z["bands"]
        return self
