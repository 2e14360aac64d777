"""What past judged queries teach about new ones: the ranker's ``mem_*`` features.

Two memories, both fitted on the training judgments (query, product, grade):

* **Word association.** For each query word, which title words the products
  judged for queries containing it carry more often than the catalog does
  (smoothed log lift, positive part). A query "l bracket" learns "angle",
  which BM25 cannot: ``mem_assoc_sum`` sums the lifts of a title's words over
  the query's words, ``mem_assoc_max`` takes each query word's best title
  word, ``mem_assoc_known`` is the share of query words the memory has seen.
* **Similar past queries.** The ``k`` judged queries nearest to this one by
  query vector: ``mem_qknn_vote`` sums similarity x grade over those queries'
  judgments of the product, ``mem_qknn_cos`` is the product vector's cosine
  with the similarity-weighted centroid of what they judged relevant, and
  ``mem_qknn_top`` the similarity of the nearest one.

Training features must not see their own query's judgments, or the ranker
learns to trust a memory that at serving never knows the answer that well.
So the memory is cross-fitted: every judged query falls in one of ``folds``
folds, and :meth:`QueryMemory.view` of a judged query leaves its fold out;
any other query (and every query at serving) sees all of it.
"""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vitrine.features.lexical import tokenize
from vitrine.rank.features import _csr, _row_entries

NAMES = ("mem_assoc_sum", "mem_assoc_max", "mem_assoc_known", "mem_qknn_vote", "mem_qknn_cos", "mem_qknn_top")


def fold_of(query: str, folds: int) -> int:
    """A query's cross-fitting fold (stable across processes, unlike ``hash``)."""
    return zlib.crc32(query.encode("utf-8")) % folds


def title_terms(lex) -> sp.csr_matrix | None:
    """Binary (rows x vocabulary) title words of the lexical index, or None."""
    m = getattr(lex, "matrices_", {}).get("title") if lex is not None else None
    if m is None:
        return None
    t = _csr(lex, "title", m).copy()  # the row-major copy serving gathers from; every stored weight is > 0
    t.data = np.ones_like(t.data, dtype=np.float32)
    return t


def association(query_words: list[list[int]], titles: sp.csr_matrix, weights: np.ndarray,
                background: np.ndarray, n_words: int, smoothing: float) -> sp.csr_matrix:
    """(query words x title words) smoothed log lift, positive part.

    query_words : per judged pair, its query's word ids; titles : the judged
    products' binary title words, one row per pair; background : share of
    catalog titles holding each title word.
    """
    rr = np.repeat(np.arange(len(query_words)), [len(w) for w in query_words])
    cc = np.asarray([c for w in query_words for c in w], dtype=np.int64)
    q = sp.csr_matrix((np.ones(len(cc), np.float32), (rr, cc)), shape=(len(query_words), n_words))
    w = sp.diags(weights.astype(np.float32))
    co = (q.T @ w @ titles).tocoo()
    seen = np.asarray(q.T @ weights).ravel()
    p = background[co.col]
    lift = np.log((co.data + smoothing * p) / (seen[co.row] + smoothing) / p)
    keep = lift > 0
    return sp.csr_matrix((lift[keep].astype(np.float32), (co.row[keep], co.col[keep])), shape=co.shape)


class QueryMemory:
    """Judged queries kept for the ``mem_*`` ranker features (module docstring).

    Parameters
    ----------
    k : similar past queries read per query.
    folds : cross-fitting folds of the training features.
    smoothing : pseudo-count pulling a word pair's lift toward 1.

    Attributes
    ----------
    queries_ : judged query texts; ``qvec_`` (n, d) their unit query vectors;
        ``centroid_`` (n, d) the grade-weighted mean vector of what each judged.
    judged_ : per query, (product ids, grade / 3).
    words_ : query word -> row of ``assoc_``; ``assoc_`` {fold or None: lift matrix}.
    """

    def __init__(self, *, k: int = 20, folds: int = 5, smoothing: float = 5.0) -> None:
        self.k, self.folds, self.smoothing = k, folds, smoothing

    def fit(self, groups: dict[str, dict[str, float]], catalog, retriever) -> QueryMemory:
        """Learn from ``query -> {product_id: grade}`` (training judgments only)."""
        lex = getattr(retriever, "lexical_", None)
        titles = title_terms(lex)
        vecs = getattr(retriever, "text_vectors_", None)
        queries, judged = [], []
        for q, g in groups.items():
            rows = catalog.indices(list(g), missing="mark")
            grades = np.clip(np.asarray(list(g.values()), dtype=np.float64) / 3.0, 0.0, 1.0)
            ok = (rows >= 0) & (grades > 0)
            if ok.any():
                queries.append(q)
                judged.append((rows[ok], grades[ok]))
        self.queries_, self.known_ = queries, set(queries)
        self.fold_ = np.asarray([fold_of(q, self.folds) for q in queries], dtype=np.int64)
        self.judged_ = [(np.asarray(catalog.ids)[r], g) for r, g in judged]
        self.qvec_ = self.centroid_ = None
        if vecs is not None and queries and hasattr(retriever, "encode_queries"):
            qv = np.asarray(retriever.encode_queries(queries), dtype=np.float32)
            self.qvec_ = qv / (np.linalg.norm(qv, axis=1, keepdims=True) + 1e-9)
            cen = np.stack([g @ vecs[r] for r, g in judged]).astype(np.float32)
            self.centroid_ = cen
        self.words_: dict[str, int] = {}
        self.assoc_: dict = {}
        if titles is not None and queries:
            qwords = [[self.words_.setdefault(w, len(self.words_)) for w in set(tokenize(q))] for q in queries]
            background = np.maximum(np.asarray(titles.sum(0)).ravel() / titles.shape[0], 1e-9)
            pair_q = np.repeat(np.arange(len(queries)), [len(r) for r, _ in judged])
            pair_rows = np.concatenate([r for r, _ in judged])
            pair_w = np.concatenate([g for _, g in judged])
            for fold in [None, *range(self.folds)]:
                keep = np.ones(len(pair_q), bool) if fold is None else self.fold_[pair_q] != fold
                self.assoc_[fold] = association([qwords[i] for i in pair_q[keep]], titles[pair_rows[keep]],
                                                pair_w[keep], background, len(self.words_), self.smoothing)
        return self

    def serving_only(self) -> QueryMemory:
        """Drop the per-fold tables once training is over (serving reads the whole memory)."""
        self.assoc_ = {None: self.assoc_[None]} if None in self.assoc_ else {}
        return self

    def view(self, query: str | None) -> MemoryView:
        """The memory a training query may read: all of it but its own fold when it was judged."""
        return MemoryView(self, fold_of(query, self.folds) if query in self.known_ else None)

    # -- persistence --------------------------------------------------------------
    def save(self, path: Path) -> None:
        state = {"params": {"k": self.k, "folds": self.folds, "smoothing": self.smoothing},
                 "queries": self.queries_, "fold": self.fold_, "judged": self.judged_, "qvec": self.qvec_,
                 "centroid": self.centroid_, "words": self.words_, "assoc": self.assoc_.get(None)}
        with open(path, "wb") as fh:
            pickle.dump(state, fh)

    @classmethod
    def load(cls, path: Path) -> QueryMemory:
        with open(path, "rb") as fh:
            s = pickle.load(fh)
        self = cls(**s["params"])
        self.queries_, self.fold_, self.judged_ = s["queries"], s["fold"], s["judged"]
        self.known_ = set(self.queries_)
        self.qvec_, self.centroid_, self.words_ = s["qvec"], s["centroid"], s["words"]
        self.assoc_ = {} if s["assoc"] is None else {None: s["assoc"]}
        return self


class MemoryView:
    """A :class:`QueryMemory` with one fold (or none) left out."""

    def __init__(self, memory: QueryMemory, fold: int | None) -> None:
        self.memory, self.fold = memory, fold

    def features(self, engine, query: str | None, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The ``mem_*`` columns for catalog ``rows`` (NaN where a part is unknown)."""
        n = len(rows)
        if not query or not n:
            return {}
        out = self._assoc(engine, query, rows)
        out.update(self._neighbours(engine, query, rows))
        return out

    def _assoc(self, engine, query: str, rows: np.ndarray) -> dict[str, np.ndarray]:
        mem = self.memory
        a = mem.assoc_.get(self.fold)
        lex = getattr(getattr(engine, "retriever_", None), "lexical_", None)
        m = getattr(lex, "matrices_", {}).get("title") if lex is not None else None
        if a is None or m is None:
            return {}
        toks = tokenize(query)
        ids = [mem.words_[w] for w in toks if w in mem.words_]
        n = len(rows)
        known = len(ids) / max(len(toks), 1)
        total, best = np.zeros(n, np.float32), np.zeros(n, np.float32)
        csr = _csr(lex, "title", m)
        ok = rows < csr.shape[0]
        idx, lens = _row_entries(csr, rows[ok])
        cols = csr.indices[idx]
        owner = np.repeat(np.flatnonzero(ok), lens)
        for i in ids:
            lo, hi = a.indptr[i], a.indptr[i + 1]
            keys, vals = a.indices[lo:hi], a.data[lo:hi]
            if not len(keys):
                continue
            pos = np.minimum(np.searchsorted(keys, cols), len(keys) - 1)
            v = np.where(keys[pos] == cols, vals[pos], 0.0).astype(np.float32)
            total += np.bincount(owner, weights=v, minlength=n).astype(np.float32)
            top = np.zeros(n, np.float32)
            np.maximum.at(top, owner, v)
            best += top
        denom = max(len(toks), 1)
        return {"mem_assoc_sum": total / denom, "mem_assoc_max": best / denom,
                "mem_assoc_known": np.full(n, known, np.float32)}

    def _neighbours(self, engine, query: str, rows: np.ndarray) -> dict[str, np.ndarray]:
        mem = self.memory
        retriever = getattr(engine, "retriever_", None)
        vecs = getattr(retriever, "text_vectors_", None)
        if mem.qvec_ is None or vecs is None or not len(mem.queries_):
            return {}
        qv = retriever._text_vec(query)
        if qv is None:
            return {}
        qv = np.asarray(qv, dtype=np.float32)
        sims = mem.qvec_ @ (qv / (np.linalg.norm(qv) + 1e-9))
        if self.fold is not None:
            sims = np.where(mem.fold_ == self.fold, -np.inf, sims)
        k = min(mem.k, int(np.isfinite(sims).sum()))
        n = len(rows)
        if k <= 0:
            return {}
        top = np.argpartition(-sims, k - 1)[:k]
        w = np.maximum(sims[top], 0.0)
        votes: dict = {}
        for i, s in zip(top.tolist(), w.tolist(), strict=True):
            pids, grades = mem.judged_[i]
            for p, g in zip(pids.tolist(), grades.tolist(), strict=True):
                votes[p] = votes.get(p, 0.0) + s * g
        ids = np.asarray(engine.catalog_.ids, dtype=object)
        in_cat = rows < len(ids)
        vote = np.zeros(n, np.float32)
        vote[in_cat] = [votes.get(p, 0.0) for p in ids[rows[in_cat]].tolist()]
        cen = w @ mem.centroid_[top]
        cen = cen / (np.linalg.norm(cen) + 1e-9)
        cos = np.full(n, np.nan, np.float32)
        has = rows < len(vecs)
        cos[has] = vecs[rows[has]] @ cen
        if getattr(retriever, "has_text_", None) is not None:
            ht = np.zeros(n, bool)
            ht[has] = retriever.has_text_[rows[has]]
            cos[~ht] = np.nan
        return {"mem_qknn_vote": vote, "mem_qknn_cos": cos.astype(np.float32),
                "mem_qknn_top": np.full(n, float(sims[top].max()), np.float32)}
