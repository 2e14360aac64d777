"""Vector index on FAISS: exact for small catalogs, HNSW for large ones.

Vectors are addressed by catalog row (int64 ids). ``add`` inserts or replaces
rows, ``remove`` deletes them; HNSW graphs cannot drop nodes, so removed or
replaced rows there are tombstoned and filtered out of results (the next
``fit`` rebuilds the graph). Scores are inner products (cosine on unit-norm
vectors). ``save`` writes to a temporary folder and renames it into place.

Example usage::

    index = VectorIndex().build(vectors)          # rows 0..n-1
    rows, scores = index.search(query_vector, k=10)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

KINDS = ("auto", "flat", "hnsw")


def _faiss():
    import faiss

    return faiss


def _search(index, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS search; one query runs on one OpenMP thread.

    A single query is a millisecond of work, and FAISS still starts an OpenMP
    team for it (the id translation of ``IndexIDMap`` is a parallel loop). On
    a busy machine the team's threads wait for a core in turn, which turned a
    1 ms search into 100 ms under serving load. The thread count is an
    OpenMP setting of the calling thread, so it is set and restored here.
    """
    if len(q) > 1:
        return index.search(q, k)
    faiss = _faiss()
    prev = faiss.omp_get_max_threads()
    if prev == 1:
        return index.search(q, k)
    faiss.omp_set_num_threads(1)
    try:
        return index.search(q, k)
    finally:
        faiss.omp_set_num_threads(prev)


class VectorIndex:
    """Inner-product nearest-neighbour search over catalog rows.

    Parameters
    ----------
    kind : "flat" (exact), "hnsw" (approximate graph), or "auto": flat below
        ``hnsw_threshold`` vectors, HNSW above.
    hnsw_threshold : catalog size at which "auto" switches to HNSW.
    m, ef_construction, ef_search : HNSW graph parameters.

    Attributes
    ----------
    kind_ : the index kind chosen at build.
    dim_ : vector dimension.
    """

    def __init__(
        self,
        *,
        kind: str = "auto",
        hnsw_threshold: int = 200_000,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose from {', '.join(KINDS)}")
        self.kind = kind
        self.hnsw_threshold = hnsw_threshold
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search

    def _new(self, dim: int, kind: str):
        faiss = _faiss()
        if kind == "hnsw":
            base = faiss.IndexHNSWFlat(dim, self.m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = self.ef_construction
            base.hnsw.efSearch = self.ef_search
        else:
            base = faiss.IndexFlatIP(dim)
        return faiss.IndexIDMap2(base) if kind == "flat" else faiss.IndexIDMap(base)

    def build(self, vectors: np.ndarray, rows: np.ndarray | None = None) -> VectorIndex:
        """Index ``vectors`` (n, dim) under ``rows`` (default 0..n-1)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = np.arange(len(vectors), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.dim_ = int(vectors.shape[1])
        self.kind_ = self.kind if self.kind != "auto" else ("hnsw" if len(rows) >= self.hnsw_threshold else "flat")
        self.index_ = self._new(self.dim_, self.kind_)
        self.dead_: set[int] = set()
        self.live_: set[int] = set()
        if len(rows):
            self.index_.add_with_ids(vectors, rows)
            self.live_.update(int(r) for r in rows)
        return self

    def __len__(self) -> int:
        return len(self.live_)

    def __contains__(self, row: int) -> bool:
        return int(row) in self.live_

    def add(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        """Insert rows, replacing any already indexed under the same row."""
        rows = np.asarray(rows, np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(rows), self.dim_)
        if not len(rows):
            return
        self.remove(rows)
        if self.kind_ == "hnsw":
            # A tombstoned row can't come back in a graph without duplicates; rebuild
            # only in that rare case, otherwise insert.
            back = [int(r) for r in rows if int(r) in self.dead_]
            if back:
                self._rebuild_without_dead()
        self.index_.add_with_ids(vectors, rows)
        self.live_.update(int(r) for r in rows)

    def _rebuild_without_dead(self) -> None:
        live = np.fromiter(sorted(self.live_), dtype=np.int64)
        vecs = self._reconstruct_live(live)
        self.index_ = self._new(self.dim_, self.kind_)
        if len(live):
            self.index_.add_with_ids(vecs, live)
        self.dead_ = set()

    def _reconstruct_live(self, live: np.ndarray) -> np.ndarray:
        base = _faiss().downcast_index(self.index_.index)
        id_map = _faiss().vector_to_array(self.index_.id_map)
        pos = {int(r): i for i, r in enumerate(id_map)}
        return np.stack([base.reconstruct(pos[int(r)]) for r in live]) if len(live) else np.zeros((0, self.dim_))

    def remove(self, rows: np.ndarray) -> None:
        """Delete rows (unknown rows are ignored)."""
        rows = [int(r) for r in np.asarray(rows, np.int64) if int(r) in self.live_]
        if not rows:
            return
        if self.kind_ == "flat":
            self.index_.remove_ids(np.asarray(rows, np.int64))
        else:
            self.dead_.update(rows)
        self.live_.difference_update(rows)

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and scores per query.

        Returns two arrays: rows (int64) and scores, each of shape (k',) for
        one query vector or (n_queries, k') for a matrix; k' <= k.
        """
        single = np.ndim(queries) == 1
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(int(k), len(self.live_))
        if k <= 0:
            empty = np.zeros((len(q), 0))
            return (empty[0].astype(np.int64), empty[0]) if single else (empty.astype(np.int64), empty)
        fetch = min(k + len(self.dead_), self.index_.ntotal)
        scores, rows = _search(self.index_, q, fetch)
        if self.dead_:
            out_r = np.full((len(q), k), -1, np.int64)
            out_s = np.full((len(q), k), -np.inf, np.float32)
            for i in range(len(q)):
                keep = [(r, s) for r, s in zip(rows[i], scores[i], strict=True)
                        if r >= 0 and int(r) not in self.dead_][:k]
                if keep:
                    out_r[i, : len(keep)] = [r for r, _ in keep]
                    out_s[i, : len(keep)] = [s for _, s in keep]
            rows, scores = out_r, out_s
        else:
            rows, scores = rows[:, :k], scores[:, :k]
        return (rows[0], scores[0]) if single else (rows, scores)

    def save(self, folder: str | Path) -> None:
        """Write atomically: a temporary folder, then rename over ``folder``."""
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _faiss().write_index(self.index_, str(tmp / "index.faiss"))
        np.save(tmp / "dead.npy", np.fromiter(sorted(self.dead_), np.int64, len(self.dead_)), allow_pickle=False)
        np.save(tmp / "live.npy", np.fromiter(sorted(self.live_), np.int64, len(self.live_)), allow_pickle=False)
        params = {"kind": self.kind, "hnsw_threshold": self.hnsw_threshold, "m": self.m,
                  "ef_construction": self.ef_construction, "ef_search": self.ef_search}
        (tmp / "vector_index.json").write_text(json.dumps({"params": params, "kind_": self.kind_, "dim": self.dim_}))
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: str | Path) -> VectorIndex:
        folder = Path(folder)
        meta = json.loads((folder / "vector_index.json").read_text())
        self = cls(**meta["params"])
        self.kind_, self.dim_ = meta["kind_"], meta["dim"]
        self.index_ = _faiss().read_index(str(folder / "index.faiss"))
        if self.kind_ == "hnsw":
            _faiss().downcast_index(self.index_.index).hnsw.efSearch = self.ef_search
        self.dead_ = {int(r) for r in np.load(folder / "dead.npy", allow_pickle=False)}
        self.live_ = {int(r) for r in np.load(folder / "live.npy", allow_pickle=False)}
        return self
