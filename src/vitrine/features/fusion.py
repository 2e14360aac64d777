"""Learned fusion of a product's modality vectors into one item vector.

Inputs are per-product modality vectors, each with a presence mask: text,
image, reviews, brand, category (all in the text encoder's space when the
image tower is used) and numeric attributes (any width). Outputs live in the
query space (the text encoder's), so a query vector scores them directly.

Methods (``ModalityFusion(method=...)``):

* ``concat``: concatenation of the (masked) modality vectors, projected by a
  learned linear map to the query space. The map is parametrised as scaled
  identity blocks for the modalities already in the query space (softmax
  weights, starting equal) plus a full correction matrix (starting at zero,
  trained at a hundredth of the step size), so training starts from the
  plain average and the d_total x d matrix does not overfit at once.
* ``weighted``: a learned softmax weight per modality; the item vector is the
  unit-norm weighted sum of the present modalities (modalities in another
  space get a learned linear projection first).
* ``attention``: query-conditioned attention over modalities: for query q the
  score of a product is sum_m a_m(q) cos(q, v_m) with a(q) = softmax(A q + b)
  over the modalities the product has. The query-free item vector (for the
  vector index, ``similar`` and personalization) uses the attention averaged
  over the training queries.

Training pairs (query vector, positive product row) come from the caller:
judgments of the training split, logged clicks, or self-supervised pseudo
queries cut from product titles. The loss is softmax cross-entropy of the
positive against the other products in the batch plus random catalog
products; 10 % of the pairs are held out and the parameters with the lowest
held-out loss are kept. Training stops after ``seconds`` or ``epochs``.

Example usage::

    fz = ModalityFusion(method="weighted").fit(mods, masks, query_vecs, positive_rows)
    items = fz.transform(mods, masks)          # (n, d), unit norm
    fz.modality_weights()                      # {"text": 0.7, "image": 0.2, ...}
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vitrine.threads import torch_threads

METHODS = ("concat", "weighted", "attention")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown fusion method {method!r}; choose from {', '.join(METHODS)}")


class ModalityFusion:
    """Fuses modality vectors into one item vector in the query space.

    Parameters
    ----------
    method : "concat", "weighted" or "attention" (see module docstring).
    seconds, epochs : training budget (whichever ends first).
    batch_size : training pairs per step.
    negatives : random catalog products added to each batch's candidates.
    temperature : softmax temperature of the scores.
    lr : Adam learning rate.
    seed : seeds the pair split, batches and initialisation.

    Attributes
    ----------
    names_ : modality names, in input order.
    dims_ : width of each modality.
    dim_ : width of the query space (and of item vectors).
    state_ : name -> float32 array, the learned parameters.
    history_ : held-out loss after each epoch.
    """

    def __init__(self, *, method: str = "weighted", seconds: float = 20.0, epochs: int = 30, batch_size: int = 256,
                 negatives: int = 256, temperature: float = 0.05, lr: float = 3e-3, seed: int = 0) -> None:
        self.method = method
        self.seconds = seconds
        self.epochs = epochs
        self.batch_size = batch_size
        self.negatives = negatives
        self.temperature = temperature
        self.lr = lr
        self.seed = seed

    # ------------------------------------------------------------------ model
    def _init_state(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        m, d = len(self.names_), self.dim_
        st: dict[str, np.ndarray] = {}
        same = [k for k, w in zip(self.names_, self.dims_, strict=True) if w == d]
        if self.method == "concat":
            # Projection = per-modality scaled identity blocks (softmax of w) + a full correction W.
            st["w"] = np.where([k in same for k in self.names_], 0.0, -30.0).astype(np.float32)
            st["W"] = np.zeros((sum(self.dims_), d), np.float32)
            return st
        for k, w in zip(self.names_, self.dims_, strict=True):
            if k not in same:
                st[f"P_{k}"] = (rng.standard_normal((w, d)) * 0.1 / np.sqrt(w)).astype(np.float32)
        if self.method == "weighted":
            st["w"] = np.zeros(m, np.float32)
        else:
            st["A"] = np.zeros((m, d), np.float32)
            st["b"] = np.zeros(m, np.float32)
        return st

    @staticmethod
    def _unit_t(x):
        import torch

        return x / torch.clamp(torch.linalg.norm(x, dim=-1, keepdim=True), min=1e-8)

    def _views(self, p, X: list, M):
        """Per-modality vectors in the query space, (n, m, d), unit norm, zero where missing."""
        import torch

        out = []
        for j, k in enumerate(self.names_):
            v = X[j] @ p[f"P_{k}"] if f"P_{k}" in p else X[j]
            out.append(self._unit_t(v) * M[:, j: j + 1])
        return torch.stack(out, 1)

    def _items(self, p, X: list, M, alpha=None):
        """Query-free item vectors (n, d), unit norm."""
        import torch

        if self.method == "concat":
            xs = [x * M[:, j: j + 1] for j, x in enumerate(X)]
            w = torch.softmax(p["w"], 0)
            base = sum(w[j] * x for j, x in enumerate(xs) if x.shape[1] == self.dim_)
            return self._unit_t(base + torch.cat(xs, 1) @ p["W"])
        V = self._views(p, X, M)
        w = torch.softmax(p["w"], 0) if self.method == "weighted" else alpha
        return self._unit_t(torch.einsum("nmd,m->nd", V, w))

    def _scores(self, p, Q, X: list, M):
        """Scores (n_queries, n_items) of queries Q (unit) against items."""
        import torch

        if self.method != "attention":
            return Q @ self._items(p, X, M).T
        V = self._views(p, X, M)  # (n, m, d)
        cos = torch.einsum("qd,nmd->qnm", Q, V)
        logits = (Q @ p["A"].T + p["b"])[:, None, :]  # (q, 1, m)
        logits = logits.masked_fill(M[None] <= 0, -1e9)
        a = torch.softmax(logits, -1) * (M[None] > 0)
        return (a * cos).sum(-1)

    # ------------------------------------------------------------------ fit
    def fit(self, mods: dict[str, np.ndarray], masks: dict[str, np.ndarray], queries: np.ndarray,
            rows: np.ndarray) -> ModalityFusion:
        """Learn from (query vector, positive product row) pairs.

        Parameters
        ----------
        mods : modality name -> (n_products, d_m) vectors.
        masks : modality name -> (n_products,) bool, True where the modality exists.
        queries : (n_pairs, d) unit-norm query vectors.
        rows : (n_pairs,) the positive product row of each query.
        """
        import torch

        _check_method(self.method)
        if not mods:
            raise ValueError("fusion needs at least one modality")
        queries = np.asarray(queries, np.float32)
        rows = np.asarray(rows, np.int64)
        if len(queries) != len(rows):
            raise ValueError(f"found {len(queries)} query vectors but {len(rows)} positive rows")
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        self.names_ = list(mods)
        self.dims_ = [int(mods[k].shape[1]) for k in self.names_]
        self.dim_ = int(queries.shape[1]) if len(queries) else max(self.dims_)
        state = self._init_state(rng)
        self.history_: list[float] = []
        n = len(next(iter(mods.values())))
        X = [torch.from_numpy(np.ascontiguousarray(mods[k], np.float32)) for k in self.names_]
        M = torch.from_numpy(np.stack([np.asarray(masks[k], np.float32) for k in self.names_], 1))
        self.alpha_ = np.full(len(self.names_), 1.0 / len(self.names_), np.float32)
        if len(rows) < 8:
            self.state_ = state
            return self
        order = rng.permutation(len(rows))
        n_val = max(1, len(rows) // 10)
        val, tr = order[:n_val], order[n_val:]
        p = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in state.items()}
        # Scalars and attention logits get a larger step than projections (they are few and start
        # flat); the concat correction matrix a much smaller one (it has d_total x d entries and
        # overfits a few thousand pairs within an epoch at the projections' rate).
        groups = {"w": 10.0, "A": 10.0, "b": 10.0, "W": 0.01}
        opt = torch.optim.Adam([{"params": [v], "lr": self.lr * groups.get(k, 1.0)} for k, v in p.items()])
        Qall = torch.from_numpy(queries)
        rows_t = torch.from_numpy(rows)
        val_neg = torch.from_numpy(rng.choice(n, size=min(n, 4 * self.negatives), replace=False))

        def loss_of(idx, neg):
            cand = torch.unique(torch.cat([rows_t[idx], neg]))
            s = self._scores(p, Qall[idx], [x[cand] for x in X], M[cand]) / self.temperature
            target = torch.searchsorted(cand, rows_t[idx])
            return torch.nn.functional.cross_entropy(s, target)

        def val_loss():
            with torch.no_grad():
                return float(np.mean([loss_of(torch.from_numpy(val[s: s + 512]), val_neg).item()
                                      for s in range(0, len(val), 512)]))

        best, best_state = val_loss(), {k: v.detach().clone() for k, v in p.items()}
        self.history_.append(best)
        t0 = time.time()
        with torch_threads() as gov:
            for _ in range(self.epochs):
                perm = rng.permutation(tr)
                for s in range(0, len(perm), self.batch_size):
                    idx = torch.from_numpy(perm[s: s + self.batch_size])
                    neg = torch.from_numpy(rng.integers(0, n, self.negatives))
                    opt.zero_grad()
                    loss = loss_of(idx, neg)
                    loss.backward()
                    opt.step()
                    gov.tick()
                    if time.time() - t0 > self.seconds:
                        break
                v = val_loss()
                gov.tick(0)  # the validation pass is not a step: restart the step clock
                self.history_.append(v)
                if v < best:
                    best, best_state = v, {k: t.detach().clone() for k, t in p.items()}
                if time.time() - t0 > self.seconds:
                    break
        self.state_ = {k: v.numpy().astype(np.float32) for k, v in best_state.items()}
        if self.method == "attention":
            logits = queries @ self.state_["A"].T + self.state_["b"]
            e = np.exp(logits - logits.max(1, keepdims=True))
            self.alpha_ = (e / e.sum(1, keepdims=True)).mean(0).astype(np.float32)
        return self

    # ------------------------------------------------------------------ use
    def _tensors(self, mods, masks):
        import torch

        missing = [k for k in self.names_ if k not in mods]
        if missing:
            raise ValueError(f"fusion was fitted with modalities {self.names_}; missing {missing}")
        X = [torch.from_numpy(np.ascontiguousarray(mods[k], np.float32)) for k in self.names_]
        M = torch.from_numpy(np.stack([np.asarray(masks[k], np.float32) for k in self.names_], 1))
        p = {k: torch.from_numpy(v) for k, v in self.state_.items()}
        return p, X, M

    def transform(self, mods: dict[str, np.ndarray], masks: dict[str, np.ndarray], chunk: int = 8192) -> np.ndarray:
        """(n, d) unit-norm query-free item vectors (zero rows for products with no modality)."""
        import torch

        n = len(next(iter(mods.values())))
        out = np.zeros((n, self.dim_), np.float32)
        with torch.no_grad():
            for s in range(0, n, chunk):
                part = {k: v[s: s + chunk] for k, v in mods.items()}
                pm = {k: v[s: s + chunk] for k, v in masks.items()}
                p, X, M = self._tensors(part, pm)
                v = self._items(p, X, M, torch.from_numpy(self.alpha_)).numpy()
                out[s: s + chunk] = np.where(M.numpy().any(1, keepdims=True), v, 0)
        return out

    def score(self, query: np.ndarray, mods: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> np.ndarray:
        """(n,) scores of one unit-norm query vector against the given products (query-conditioned for attention)."""
        import torch

        with torch.no_grad():
            p, X, M = self._tensors(mods, masks)
            q = torch.from_numpy(np.asarray(query, np.float32)[None])
            return self._scores(p, q, X, M)[0].numpy() if self.method == "attention" else \
                self._items(p, X, M, torch.from_numpy(self.alpha_)).numpy() @ q[0].numpy()

    def modality_weights(self) -> dict[str, float]:
        """Share of each modality in the item vector: softmax weights, mean attention, or the
        projection's Frobenius-norm share (concat)."""
        if self.method == "weighted":
            w = np.exp(self.state_["w"] - self.state_["w"].max())
            w = w / w.sum()
        elif self.method == "attention":
            w = self.alpha_
        else:  # concat: the identity-block weights (the correction W is not attributed)
            w = np.exp(self.state_["w"] - self.state_["w"].max())
            w = w / w.sum()
        return {k: float(v) for k, v in zip(self.names_, w, strict=True)}

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "fusion.npz", alpha_=self.alpha_, **self.state_)
        params = {k: getattr(self, k) for k in ("method", "seconds", "epochs", "batch_size", "negatives",
                                                 "temperature", "lr", "seed")}
        (folder / "fusion.json").write_text(json.dumps({
            "params": params, "names": self.names_, "dims": self.dims_, "dim": self.dim_,
            "history": self.history_}))

    @classmethod
    def load(cls, folder: Path) -> ModalityFusion:
        folder = Path(folder)
        meta = json.loads((folder / "fusion.json").read_text())
        self = cls(**meta["params"])
        self.names_, self.dims_, self.dim_ = meta["names"], meta["dims"], meta["dim"]
        self.history_ = meta.get("history", [])
        with np.load(folder / "fusion.npz", allow_pickle=False) as z:
            self.state_ = {k: z[k] for k in z.files if k != "alpha_"}
            self.alpha_ = z["alpha_"]
        return self
