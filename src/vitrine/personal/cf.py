"""Collaborative filtering: item-kNN, user-kNN, transitions, ALS with content-tied factors.

Every model is fitted from a user x item matrix or from per-user item
sequences (catalog rows, oldest first) and scores one shopper from that
shopper's history alone (rows and event weights), so a live profile that
changed a second ago is scored exactly like a fitted one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp


def user_item_matrix(seqs: list[np.ndarray], wts: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Users x items CSR of summed event weights (rows in the order of ``seqs``)."""
    lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    rows = np.repeat(np.arange(len(seqs)), lens)
    cols = np.concatenate(seqs) if len(seqs) else np.zeros(0, np.int64)
    data = np.concatenate(wts).astype(np.float32) if len(wts) else np.zeros(0, np.float32)
    m = sp.csr_matrix((data, (rows, cols)), shape=(len(seqs), n_items), dtype=np.float32)
    m.sum_duplicates()
    return m


def _top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row."""
    m = m.tocsr()
    indptr, indices, data = [0], [], []
    for i in range(m.shape[0]):
        a, b = m.indptr[i], m.indptr[i + 1]
        d, c = m.data[a:b], m.indices[a:b]
        if len(d) > k:
            keep = np.argpartition(-d, k - 1)[:k]
            d, c = d[keep], c[keep]
        indices.append(c)
        data.append(d)
        indptr.append(indptr[-1] + len(d))
    return sp.csr_matrix((np.concatenate(data) if data else [], np.concatenate(indices) if indices else [],
                          indptr), shape=m.shape, dtype=np.float32)


def _save_csr(path: Path, m: sp.csr_matrix) -> None:
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.asarray(m.shape))


def _load_csr(path: Path) -> sp.csr_matrix:
    z = np.load(path, allow_pickle=False)
    return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))


def history_weights(weights: np.ndarray, decay: float, window: int) -> np.ndarray:
    """Weight of each history entry (oldest first): event weight x decay^age over the last ``window``."""
    n = len(weights)
    age = np.arange(n)[::-1]
    w = np.asarray(weights, dtype=np.float32) * decay ** age.astype(np.float32)
    w[age >= window] = 0.0
    return w


class ItemKNN:
    """Item-based kNN on cosine-normalised co-occurrence, scored with recency decay.

    Parameters
    ----------
    neighbours : similar items kept per item (None: all co-occurring items, which
        keeps the long tail that sampled-candidate protocols need).
    decay, window : history entry of age a (0 = newest) weighs decay^a, last ``window`` only.
    shrink : added to the cosine denominator (damps pairs seen once).
    """

    def __init__(self, *, neighbours: int | None = None, decay: float = 0.8, window: int = 20,
                 shrink: float = 0.0) -> None:
        self.neighbours, self.decay, self.window, self.shrink = neighbours, decay, window, shrink

    def fit(self, user_items: sp.csr_matrix) -> ItemKNN:
        x = user_items.copy().tocsr()
        x.data[:] = 1.0
        co = (x.T @ x).tocsr().astype(np.float32)
        co.setdiag(0)
        co.eliminate_zeros()
        n = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        norm = np.sqrt(n)
        coo = co.tocoo()
        coo.data = coo.data / (norm[coo.row] * norm[coo.col] + self.shrink)
        sim = coo.tocsr()
        self.sim_ = _top_per_row(sim, self.neighbours) if self.neighbours else sim
        self.counts_ = n
        self.items_ = x.T.tocsr()  # item x user incidence: exact similarities for any pair
        return self

    def score(self, rows: np.ndarray, weights: np.ndarray, n_items: int) -> np.ndarray:
        out = np.zeros(n_items, dtype=np.float32)
        if not len(rows):
            return out
        w = history_weights(weights, self.decay, self.window)
        keep = (w > 0) & (rows < self.sim_.shape[0])
        if keep.any():
            v = sp.csr_matrix((w[keep], (np.zeros(keep.sum(), np.int64), rows[keep])),
                              shape=(1, self.sim_.shape[0]))
            s = (v @ self.sim_).toarray().ravel()
            out[: len(s)] = s
        return out

    def score_rows(self, rows: np.ndarray, weights: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Exact scores of ``targets`` (catalog rows) for a history, shape (len(targets),).

        Computed from the full co-occurrence of each target with the history,
        so a target outside every history item's kept ``neighbours`` still
        gets its similarity (what ranking a fixed candidate list needs).
        """
        targets = np.asarray(targets, dtype=np.int64)
        out = np.zeros(len(targets), dtype=np.float32)
        items = getattr(self, "items_", None)
        if not len(rows) or not len(targets):
            return out
        if items is None or not self.neighbours:  # the kept matrix is already exact
            full = self.score(rows, weights, max(self.sim_.shape[0], int(targets.max()) + 1))
            return full[targets]
        w = history_weights(weights, self.decay, self.window)
        n = items.shape[0]
        keep = (w > 0) & (rows < n)
        ok = targets < n
        if not keep.any() or not ok.any():
            return out
        h, t = rows[keep], targets[ok]
        co = (items[h] @ items[t].T).toarray()  # (len(h), len(t)) co-occurrence counts
        norm = np.sqrt(self.counts_)
        sim = co / (norm[h][:, None] * norm[t][None, :] + self.shrink + 1e-12)
        sim[h[:, None] == t[None, :]] = 0.0  # no self-similarity, as in the fitted matrix
        out[ok] = w[keep] @ sim
        return out

    def neighbours_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        if row >= self.sim_.shape[0]:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        a, b = self.sim_.indptr[row], self.sim_.indptr[row + 1]
        c, d = self.sim_.indices[a:b].astype(np.int64), self.sim_.data[a:b]
        o = np.lexsort((c, -d))
        return c[o], d[o]

    def save(self, folder: Path) -> None:
        _save_csr(folder / "itemknn.npz", self.sim_)
        np.save(folder / "item_counts.npy", self.counts_, allow_pickle=False)
        if self.neighbours and getattr(self, "items_", None) is not None:
            _save_csr(folder / "itemknn_items.npz", self.items_)

    def load_state(self, folder: Path) -> ItemKNN:
        self.sim_ = _load_csr(folder / "itemknn.npz")
        self.counts_ = np.load(folder / "item_counts.npy", allow_pickle=False)
        path = folder / "itemknn_items.npz"
        self.items_ = _load_csr(path) if path.exists() else None
        return self


class UserKNN:
    """User-based kNN: score items by what the most similar shoppers interacted with.

    Parameters
    ----------
    neighbours : similar shoppers used per user.
    """

    def __init__(self, *, neighbours: int = 100) -> None:
        self.neighbours = neighbours

    def fit(self, user_items: sp.csr_matrix) -> UserKNN:
        x = user_items.copy().tocsr()
        x.data[:] = 1.0
        n = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
        n[n == 0] = 1.0
        self.users_ = sp.diags(1.0 / n).dot(x).tocsr().astype(np.float32)
        self.items_t_ = self.users_.T.tocsr()
        return self

    def score(self, rows: np.ndarray, n_items: int) -> np.ndarray:
        out = np.zeros(n_items, dtype=np.float32)
        rows = np.unique(rows[rows < self.users_.shape[1]])
        if not len(rows):
            return out
        sims = np.asarray(self.items_t_[rows].sum(axis=0)).ravel() / np.sqrt(len(rows))
        k = min(self.neighbours, int((sims > 0).sum()))
        if k == 0:
            return out
        top = np.argpartition(-sims, k - 1)[:k]
        s = np.asarray(self.users_[top].T @ sims[top]).ravel()
        out[: len(s)] = s
        return out

    def forget_row(self, i: int) -> None:
        """Take one shopper out of the neighbour pool (erasure)."""
        if 0 <= i < self.users_.shape[0]:
            self.users_.data[self.users_.indptr[i]: self.users_.indptr[i + 1]] = 0.0
            self.users_.eliminate_zeros()
            self.items_t_ = self.users_.T.tocsr()

    def save(self, folder: Path) -> None:
        _save_csr(folder / "userknn.npz", self.users_)

    def load_state(self, folder: Path) -> UserKNN:
        self.users_ = _load_csr(folder / "userknn.npz")
        self.items_t_ = self.users_.T.tocsr()
        return self


def propagate(matrix: sp.csr_matrix, rows: np.ndarray, n_items: int, decay: float, window: int) -> np.ndarray:
    """Scores reached from a history through an item-item matrix, newest items weighing most.

    ``rows`` is the history, oldest first; returns an array of shape (n_items,).
    """
    out = np.zeros(n_items, dtype=np.float32)
    if not len(rows):
        return out
    w = history_weights(np.ones(len(rows), np.float32), decay, window)
    keep = (w > 0) & (rows < matrix.shape[0])
    if keep.any():
        v = sp.csr_matrix((w[keep], (np.zeros(keep.sum(), np.int64), rows[keep])), shape=(1, matrix.shape[0]))
        s = (v @ matrix).toarray().ravel()
        out[: len(s)] = s
    return out


class Transitions:
    """First-order item-to-next-item transitions, scored from the newest items.

    Parameters
    ----------
    decay, window : the newest item weighs 1, the one before decay, ... (last ``window``).
    shrink : added to each row total before normalising counts to probabilities.
    """

    def __init__(self, *, decay: float = 0.3, window: int = 3, shrink: float = 1.0) -> None:
        self.decay, self.window, self.shrink = decay, window, shrink

    def fit(self, seqs: list[np.ndarray], n_items: int) -> Transitions:
        src = [s[:-1] for s in seqs if len(s) > 1]
        dst = [s[1:] for s in seqs if len(s) > 1]
        a = np.concatenate(src) if src else np.zeros(0, np.int64)
        b = np.concatenate(dst) if dst else np.zeros(0, np.int64)
        keep = a != b
        t = sp.csr_matrix((np.ones(keep.sum(), np.float32), (a[keep], b[keep])), shape=(n_items, n_items))
        t.sum_duplicates()
        tot = np.asarray(t.sum(axis=1)).ravel() + self.shrink
        self.prob_ = sp.diags(1.0 / tot).dot(t).tocsr().astype(np.float32)
        return self

    def score(self, rows: np.ndarray, n_items: int) -> np.ndarray:
        return propagate(self.prob_, rows, n_items, self.decay, self.window)

    def save(self, folder: Path) -> None:
        _save_csr(folder / "transitions.npz", self.prob_)

    def load_state(self, folder: Path) -> Transitions:
        self.prob_ = _load_csr(folder / "transitions.npz")
        return self


class SeqKNN:
    """Directional item kNN: how often j follows i within a few steps, cosine-normalised.

    Parameters
    ----------
    gap : pairs up to this many steps apart count, step d weighing gap_decay^(d-1).
    neighbours : followers kept per item.
    decay, window : scoring weight decay^age over the newest ``window`` history items.
    """

    def __init__(self, *, gap: int = 5, gap_decay: float = 0.6, neighbours: int | None = None,
                 decay: float = 0.6, window: int = 8) -> None:
        self.gap, self.gap_decay, self.neighbours = gap, gap_decay, neighbours
        self.decay, self.window = decay, window

    def fit(self, seqs: list[np.ndarray], n_items: int) -> SeqKNN:
        a_all, b_all, w_all = [], [], []
        for d in range(1, self.gap + 1):
            a = [s[:-d] for s in seqs if len(s) > d]
            b = [s[d:] for s in seqs if len(s) > d]
            if not a:
                break
            a, b = np.concatenate(a), np.concatenate(b)
            keep = a != b
            a_all.append(a[keep])
            b_all.append(b[keep])
            w_all.append(np.full(keep.sum(), self.gap_decay ** (d - 1), np.float32))
        if a_all:
            a, b, w = np.concatenate(a_all), np.concatenate(b_all), np.concatenate(w_all)
        else:
            a = b = np.zeros(0, np.int64)
            w = np.zeros(0, np.float32)
        f = sp.csr_matrix((w, (a, b)), shape=(n_items, n_items), dtype=np.float32)
        f.sum_duplicates()
        n = np.bincount(np.concatenate(seqs), minlength=n_items).astype(np.float32) if seqs else np.zeros(n_items)
        norm = np.sqrt(np.maximum(n, 1.0))
        coo = f.tocoo()
        coo.data = coo.data / (norm[coo.row] * norm[coo.col])
        sim = coo.tocsr()
        self.sim_ = _top_per_row(sim, self.neighbours) if self.neighbours else sim
        return self

    def score(self, rows: np.ndarray, n_items: int) -> np.ndarray:
        return propagate(self.sim_, rows, n_items, self.decay, self.window)

    def save(self, folder: Path) -> None:
        _save_csr(folder / "seqknn.npz", self.sim_)

    def load_state(self, folder: Path) -> SeqKNN:
        self.sim_ = _load_csr(folder / "seqknn.npz")
        return self


class ALS:
    """Implicit-feedback matrix factorisation (``implicit`` ALS) with content-tied item factors.

    Items with no training events get factors from a ridge map of their
    content vectors onto the factors of items with events, so a new product
    is scored like the products it resembles.

    Parameters
    ----------
    factors, regularization, alpha, iterations : as in ``implicit.als``.
    ridge : regularisation of the content -> factor map.
    """

    def __init__(self, *, factors: int = 128, regularization: float = 0.1, alpha: float = 20.0,
                 iterations: int = 15, ridge: float = 1.0, threads: int = 2, seed: int = 0) -> None:
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.ridge, self.threads, self.seed = iterations, ridge, threads, seed

    def fit(self, user_items: sp.csr_matrix, content: np.ndarray | None = None) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit solves users in parallel (OpenMP), each solve calling BLAS; from 256 factors
        # up, a threaded BLAS inside those loops ran 4x slower and printed an OpenBLAS
        # "Detect OpenMP Loop" warning per call (2.76 M lines for one fit on amazon-beauty):
        # one BLAS thread each. The model is built inside too: its constructor warns otherwise.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, num_threads=self.threads, random_state=self.seed,
            )
            model.fit(user_items.astype(np.float32), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        counts = np.diff(user_items.tocsc().indptr)
        self.map_ = None
        if content is not None and content.shape[1] > 0:
            warm = counts > 0
            if warm.sum() >= 10:
                d = content[warm].astype(np.float64)
                a = d.T @ d + self.ridge * np.eye(d.shape[1])
                self.map_ = np.linalg.solve(a, d.T @ self.item_factors_[warm]).astype(np.float32)
                cold = ~warm
                self.item_factors_[cold] = content[cold] @ self.map_
        self._prepare()
        return self

    def _prepare(self) -> None:
        y = self.item_factors_.astype(np.float64)
        self.yty_ = y.T @ y

    def add_items(self, content: np.ndarray | None, n_new: int) -> None:
        """Factors for products added after fit (from content, else zeros)."""
        if self.map_ is not None and content is not None:
            new = (content @ self.map_).astype(np.float32)
        else:
            new = np.zeros((n_new, self.item_factors_.shape[1]), np.float32)
        self.item_factors_ = np.vstack([self.item_factors_, new])
        self._prepare()

    def user_vector(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Least-squares user factor for a history (the ALS user step, one user)."""
        f = self.item_factors_.shape[1]
        if not len(rows):
            return np.zeros(f, np.float32)
        u, inv = np.unique(rows, return_inverse=True)
        r = np.zeros(len(u))
        np.add.at(r, inv, weights)
        c = self.alpha * r
        y = self.item_factors_[u].astype(np.float64)
        a = self.yty_ + (y.T * (c - 1.0)) @ y + self.regularization * np.eye(f)
        b = (y.T * c).sum(axis=1)
        return np.linalg.solve(a, b).astype(np.float32)

    def save(self, folder: Path, name: str = "als") -> None:
        arrays = {"user": self.user_factors_, "item": self.item_factors_}
        if self.map_ is not None:
            arrays["map"] = self.map_
        np.savez(folder / f"{name}.npz", **arrays)

    def load_state(self, folder: Path, name: str = "als") -> ALS:
        z = np.load(folder / f"{name}.npz", allow_pickle=False)
        self.user_factors_, self.item_factors_ = z["user"], z["item"]
        self.map_ = z["map"] if "map" in z else None
        self._prepare()
        return self
