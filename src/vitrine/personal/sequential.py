"""Self-attention next-item model (SASRec-style) in PyTorch.

A causal transformer reads a shopper's recent products (oldest first) and
predicts the next one. Training uses full-softmax cross-entropy over the
catalog (sampled softmax above ``full_softmax_max`` products), item embeddings
are tied between input and output and to product vectors (an id embedding
plus a learned projection of the product's vector, so a product bought by few
shoppers still lands near products that read alike), and training stops at a
time budget (``max_seconds``) or after ``epochs``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from vitrine.threads import torch_threads


def _torch():
    import torch

    return torch


def _build_module(n_items: int, dim: int, max_len: int, layers: int, heads: int, dropout: float,
                  content: np.ndarray | None = None):
    """The network; ``content`` (n_items, c) ties each item embedding to a projection of its vector."""
    torch = _torch()
    nn = torch.nn

    class SASRecModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)  # row r -> index r + 1
            self.pos = nn.Embedding(max_len, dim)
            self.drop = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout, batch_first=True,
                                               norm_first=True, activation="gelu")
            self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            mask = torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1)
            self.register_buffer("causal", mask, persistent=False)
            nn.init.normal_(self.item.weight, std=dim ** -0.5)
            nn.init.normal_(self.pos.weight, std=0.02)
            self.proj = None
            if content is not None:
                c = torch.as_tensor(np.ascontiguousarray(content, dtype=np.float32))  # shared, not copied
                # not persisted: save() folds the projection into ``item``
                self.register_buffer("content", c, persistent=False)
                self.proj = nn.Linear(c.shape[1], dim, bias=False)
                nn.init.normal_(self.proj.weight, std=0.1)

        def embed(self, idx):  # idx: item indices (row + 1; 0 is padding and stays zero)
            e = self.item(idx)
            if self.proj is None:
                return e
            return e + self.proj(self.content[(idx - 1).clamp(min=0)]) * (idx > 0).unsqueeze(-1)

        def forward(self, seq):  # seq: (B, L) item indices, left-padded with 0
            length = seq.shape[1]
            x = self.embed(seq) * math.sqrt(dim) * 0.5 + self.pos.weight[-length:][None]
            x = self.drop(x) * (seq > 0).unsqueeze(-1)
            h = self.enc(x, mask=self.causal[:length, :length], is_causal=True)
            return self.norm(h)

        def output(self):
            w = self.item.weight[1:]
            return w if self.proj is None else w + self.proj(self.content)

        def folded_state(self) -> dict:
            """State of the equivalent untied network (the projection added into ``item``)."""
            state = {k: v for k, v in self.state_dict().items() if not k.startswith("proj.")}
            if self.proj is not None:
                with torch.no_grad():
                    state["item.weight"] = torch.cat([self.item.weight[:1], self.output()])
            return state

    return SASRecModule()


def pad_left(seqs: list[np.ndarray], max_len: int) -> np.ndarray:
    """Last ``max_len`` items of each sequence as index = row + 1, left-padded with 0."""
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = s[-max_len:]
        if len(s):
            out[i, max_len - len(s):] = s + 1
    return out


class SASRec:
    """Sequential next-item recommender.

    Parameters
    ----------
    dim, layers, heads, dropout, max_len : transformer shape. Dropout 0.5, as SASRec's
        authors used on sparse Amazon data: most shoppers have under ten events. Dim 32:
        in the blends it did as well as 64 on full rankings and better on candidate lists
        (docs/bench/personal.md).
    lr, batch_size, epochs : optimisation; training stops early at ``max_seconds``.
    full_softmax_max : above this many products, use sampled softmax with
        ``negatives`` shared uniform negatives.
    tie_content : when ``fit`` gets product vectors, add a learned projection
        of them to every item embedding (otherwise they only initialise it).
    device : "cpu", "cuda" or "auto".
    """

    def __init__(self, *, dim: int = 32, layers: int = 1, heads: int = 2, dropout: float = 0.5,
                 max_len: int = 50, lr: float = 3e-3, batch_size: int = 128, epochs: int = 200,
                 max_seconds: float = 120.0, full_softmax_max: int = 0, negatives: int = 256,
                 tie_content: bool = True, device: str = "auto", seed: int = 0) -> None:
        self.dim, self.layers, self.heads, self.dropout, self.max_len = dim, layers, heads, dropout, max_len
        self.lr, self.batch_size, self.epochs, self.max_seconds = lr, batch_size, epochs, max_seconds
        self.full_softmax_max, self.negatives, self.device, self.seed = full_softmax_max, negatives, device, seed
        self.tie_content = tie_content

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in ("dim", "layers", "heads", "dropout", "max_len", "lr", "batch_size",
                                              "epochs", "max_seconds", "full_softmax_max", "negatives",
                                              "tie_content", "device", "seed")}

    def _device(self) -> str:
        from vitrine.config import resolve_device

        return resolve_device(self.device)

    def fit(self, seqs: list[np.ndarray], n_items: int, init: np.ndarray | None = None,
            max_seconds: float | None = None) -> SASRec:
        """Train on item sequences (catalog rows, oldest first).

        ``init`` (n_items, d) product vectors: tied to the item embeddings
        (``tie_content``) or projected to ``dim`` to start them.
        """
        torch = _torch()
        torch.manual_seed(self.seed)
        self.n_items_ = n_items
        usable = init is not None and init.shape[0] == n_items and init.shape[1] > 0
        content = None
        if usable and self.tie_content:
            content = init / (np.linalg.norm(init, axis=1, keepdims=True) + 1e-9)
        self.module_ = _build_module(n_items, self.dim, self.max_len, self.layers, self.heads, self.dropout,
                                     content=content)
        if usable and content is None:
            rng = np.random.default_rng(self.seed)
            proj = init @ rng.normal(size=(init.shape[1], self.dim)) if init.shape[1] != self.dim else init
            proj = proj / (np.linalg.norm(proj, axis=1, keepdims=True) + 1e-9) * 0.5
            with torch.no_grad():
                w = self.module_.item.weight
                w[1:] = 0.5 * w[1:] + torch.as_tensor(proj, dtype=w.dtype)
        self.module_.to(self._device())
        self.history_: list[float] = []
        self.seconds_ = 0.0
        self.epochs_done_ = 0
        self.train_more(seqs, max_seconds=self.max_seconds if max_seconds is None else max_seconds)
        return self

    def train_more(self, seqs: list[np.ndarray], max_seconds: float, epochs: int | None = None) -> SASRec:
        """Continue training (e.g. on longer sequences) for a time budget."""
        torch = _torch()
        dev = self._device()
        data = [s for s in seqs if len(s) > 1]
        if not data or max_seconds <= 0:
            return self
        x = torch.as_tensor(pad_left([s[:-1] for s in data], self.max_len))
        y = torch.as_tensor(pad_left([s[1:] for s in data], self.max_len)) - 1  # -1: no target
        if not hasattr(self, "opt_"):
            self.opt_ = torch.optim.Adam(self.module_.parameters(), lr=self.lr)
        lens = torch.as_tensor([min(len(s) - 1, self.max_len) for s in data])
        gen = torch.Generator().manual_seed(self.seed + self.epochs_done_)
        t0 = time.time()
        epochs = self.epochs if epochs is None else epochs
        self.module_.train()
        with torch_threads(dev) as gov:
            for _ in range(epochs):
                # batches of similar length (shuffled within and across), trimmed to their longest sequence
                noise = torch.rand(len(data), generator=gen)
                order = torch.argsort(lens.float() + noise * 2.0)
                batches = list(torch.split(order, self.batch_size))
                batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
                total, count = 0.0, 0
                for idx in batches:
                    width = int(lens[idx].max())
                    xb, yb = x[idx][:, -width:].to(dev), y[idx][:, -width:].to(dev)
                    h = self.module_(xb)
                    mask = yb >= 0
                    hv, tv = h[mask], yb[mask]
                    if self.n_items_ <= self.full_softmax_max or self.negatives >= self.n_items_:
                        logits = hv @ self.module_.output().T
                        loss = torch.nn.functional.cross_entropy(logits, tv)
                    else:
                        neg = torch.randint(0, self.n_items_, (self.negatives,), device=dev)
                        # only the rows the loss reads: a tied catalog table costs a projection per row
                        pos_logit = (hv * self.module_.embed(tv + 1)).sum(-1, keepdim=True)
                        neg_logit = hv @ self.module_.embed(neg + 1).T
                        neg_logit = neg_logit.masked_fill(neg[None] == tv[:, None], float("-inf"))
                        logits = torch.cat([pos_logit, neg_logit], dim=1)
                        loss = torch.nn.functional.cross_entropy(logits, torch.zeros_like(tv))
                    self.opt_.zero_grad()
                    loss.backward()
                    self.opt_.step()
                    total += float(loss.detach()) * len(tv)
                    count += len(tv)
                    gov.tick(len(idx) * width)  # a batch costs about its padded length
                    if time.time() - t0 > max_seconds:
                        break
                self.history_.append(total / max(count, 1))
                self.epochs_done_ += 1
                if time.time() - t0 > max_seconds:
                    break
        self.seconds_ += time.time() - t0
        self.module_.eval()
        self._cache_items()
        return self

    def _cache_items(self) -> None:
        torch = _torch()
        with torch.no_grad():
            self.item_emb_ = self.module_.output().detach().cpu().numpy().astype(np.float32)

    def encode(self, seqs: list[np.ndarray], batch: int = 512) -> np.ndarray:
        """Shopper states (n, dim) after reading each sequence; score = state @ item embeddings."""
        torch = _torch()
        dev = self._device()
        out = np.zeros((len(seqs), self.dim), dtype=np.float32)
        self.module_.eval()
        with torch.no_grad():
            for b in range(0, len(seqs), batch):
                part = [np.asarray(s)[np.asarray(s) < self.n_items_] for s in seqs[b: b + batch]]
                x = torch.as_tensor(pad_left(part, self.max_len), device=dev)
                h = self.module_(x)[:, -1]
                out[b: b + len(part)] = h.cpu().numpy()
        return out

    def scores(self, state: np.ndarray, n_items: int) -> np.ndarray:
        s = self.item_emb_ @ state
        if n_items > len(s):
            s = np.concatenate([s, np.full(n_items - len(s), s.min() if len(s) else 0.0, np.float32)])
        return s

    def save(self, folder: Path) -> None:
        torch = _torch()
        state = {k: v.detach().cpu().numpy() for k, v in self.module_.folded_state().items()}
        np.savez(folder / "sasrec.npz", **state)
        (folder / "sasrec.json").write_text(json.dumps({"params": self._params(), "n_items": self.n_items_,
                                                         "history": self.history_, "seconds": self.seconds_}))
        del torch

    @classmethod
    def load(cls, folder: Path) -> SASRec:
        torch = _torch()
        meta = json.loads((folder / "sasrec.json").read_text())
        self = cls(**meta["params"])
        self.n_items_, self.history_, self.seconds_ = meta["n_items"], meta["history"], meta["seconds"]
        self.epochs_done_ = len(self.history_)
        self.module_ = _build_module(self.n_items_, self.dim, self.max_len, self.layers, self.heads, self.dropout)
        z = np.load(folder / "sasrec.npz", allow_pickle=False)
        self.module_.load_state_dict({k: torch.as_tensor(z[k]) for k in z.files}, strict=False)
        self.module_.to(self._device()).eval()
        self._cache_items()
        return self
