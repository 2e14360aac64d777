"""Neural search ranker: query-conditioned attention over a candidate's
modalities, target attention over the shopper's recent products, listwise
loss plus click (CTR) and purchase (CVR) heads.

It reads the same assembled features as the LightGBM rankers
(:func:`vitrine.rank.features.assemble`, standardised), plus what the engine
already holds: the query's words and dense vector, each product's words
(title, brand, colour, category, tags, hashed into a shared embedding
table), its dense text and image vectors when the retriever has them, and
the shopper's recent products.

Per candidate the network builds one token per modality: ``catalog`` (the
product's words), ``text`` (text-group features + dense text vector),
``image`` (image-group features + image vector), ``reviews``, ``price``,
``popularity``, ``personal`` (shopper features + the target-attention
read-out of the history) and ``context``. The query vector attends over
these tokens (softmax weights per candidate, kept for explanations); the
weighted tokens and the query go through an MLP into two heads:

* CTR: ``c(x)``, the log-odds of a click when examined; the ranking score.
* CVR: ``v(x)``, the log-odds of cart/purchase given a click.

Loss per batch of result lists (Notes).

Notes
-----
* Listwise softmax cross-entropy per list, target distribution proportional
  to ``weight * gain``: judgments use gain ``2^grade - 1``; logged pages use
  purchase 3 > cart 2 > click 1 > skipped 0 with clicked rows weighted by
  ``1 / theta_position`` (the same inverse-propensity weights as the
  LambdaMART path, :func:`vitrine.rank.labels.log_labels`).
* CTR head on logged impressions: the position-based model
  ``P(click | x, k) = theta_k * sigmoid(c(x))`` (as the default LightGBM
  click model), so ``sigmoid(c)`` is the click probability when examined.
* CVR head as in ESMM (Ma et al., SIGIR 2018): ``P(conversion | x, k) =
  theta_k * sigmoid(c) * sigmoid(v)`` over all logged impressions, so the CVR
  head is not trained only on the clicked (selected) rows.
* Target attention as in DIN (Zhou et al., KDD 2018): the candidate's item
  vector scores each recent product, the softmax-weighted sum of their
  vectors feeds the ``personal`` token.
"""

from __future__ import annotations

import copy
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from tqdm import tqdm

from vitrine.rank.features import GROUPS, feature_group, live_history, to_matrix
from vitrine.rank.ranker import LazyExplanations, SearchRanker
from vitrine.threads import torch_threads

N_BUCKETS = 1 << 15  # hashed word embedding rows (index 0 = padding)
ITEM_TOKENS = 24  # words kept per product
QUERY_TOKENS = 12
HISTORY_LEN = 50
# Modality tokens and the explanation group each one is reported under.
TOKEN_GROUP = {"catalog": "text", "text": "text", "image": "image", "reviews": "reviews", "price": "price",
               "popularity": "popularity", "personal": "personal", "context": "context"}
TOKENS = tuple(TOKEN_GROUP)


def hash_tokens(text: str | None, n: int) -> list[int]:
    """Up to ``n`` distinct word ids of ``text`` (vitrine's BM25 tokenizer, crc32-hashed)."""
    from vitrine.features.lexical import tokenize

    if not text:
        return []
    return [1 + zlib.crc32(t.encode("utf-8")) % (N_BUCKETS - 1) for t in dict.fromkeys(tokenize(text))][:n]


def product_tokens(products, n: int = ITEM_TOKENS) -> np.ndarray:
    """(n_products, n) int32 word ids of title, brand, colour, category and tags (0 = padding)."""
    cols = [c for c in ("brand", "color", "category", "tags", "title") if c in products]
    out = np.zeros((len(products), n), np.int32)
    if not cols:
        return out
    text = products[cols].astype("object").where(products[cols].notna(), "").astype(str)
    joined = text.agg(" ".join, axis=1).str.replace("|", " ", regex=False).str.replace(">", " ", regex=False)
    for i, t in enumerate(joined.tolist()):
        ids = hash_tokens(t, n)
        out[i, : len(ids)] = ids
    return out


@dataclass
class ListGroup:
    """One training list (a logged page or a judged query's candidates).

    X : (n, n_features) assembled features in ``feature_names`` order (NaN = missing).
    rows : (n,) catalog rows.  query : query text or None.  history : shopper's recent rows.
    gain, weight : listwise target ``weight * gain`` (zeros: no listwise term).
    theta, click, conv : examination propensity and outcomes of logged impressions, or None.
    """

    X: np.ndarray
    rows: np.ndarray
    query: str | None
    history: np.ndarray
    gain: np.ndarray
    weight: np.ndarray
    theta: np.ndarray | None = None
    click: np.ndarray | None = None
    conv: np.ndarray | None = None


class _Net(nn.Module):
    def __init__(self, layout: dict[str, list[int]], dims: dict[str, int], d: int, hidden: int,
                 dropout: float = 0.0, words: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.use_words = words
        self.tokens = [t for t in TOKENS if t in layout or t == "catalog" or (t == "text" and dims["text"])
                       or (t == "image" and dims["image"])]
        self.layout = layout
        self.d = d
        self.words = nn.EmbeddingBag(N_BUCKETS, d, mode="mean", padding_idx=0)
        self.feat = nn.ModuleDict({t: nn.Linear(len(c), d) for t, c in layout.items()})
        self.text_vec = nn.Linear(dims["text"], d) if dims["text"] else None
        self.image_vec = nn.Linear(dims["image"], d) if dims["image"] else None
        self.query_vec = nn.Linear(dims["query"], d) if dims["query"] else None
        self.norm = nn.ModuleDict({t: nn.LayerNorm(d) for t in self.tokens})
        self.q_norm = nn.LayerNorm(d)
        self.item_norm = nn.LayerNorm(d)
        self.recency = nn.Embedding(HISTORY_LEN, d)
        self.ta_q, self.ta_k = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.ta_out = nn.Linear(2 * d, d)
        self.att_q, self.att_k = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.att_bias = nn.Parameter(torch.zeros(len(self.tokens)))
        g = len(self.tokens)
        self.drop = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(g * d + 2 * d, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden // 2), nn.GELU())
        self.ctr = nn.Linear(hidden // 2, 1)
        self.cvr = nn.Linear(hidden // 2, 1)

    def _bag(self, ids: torch.Tensor) -> torch.Tensor:
        """Mean word embedding per row of ``ids`` (zeros for an all-padding row)."""
        if not self.use_words:
            return torch.zeros(*ids.shape[:-1], self.d, device=ids.device)
        flat = ids.reshape(-1, ids.shape[-1])
        out = self.words(flat) if flat.shape[0] else flat.new_zeros((0, self.d), dtype=torch.float32)
        return out.reshape(*ids.shape[:-1], self.d)

    def item(self, words, tvec, ivec) -> torch.Tensor:
        """Item vector (catalog words + dense text + image), shared by candidates and history."""
        e = self._bag(words)
        if self.text_vec is not None:
            e = e + self.text_vec(tvec)
        if self.image_vec is not None:
            e = e + self.image_vec(ivec)
        return self.item_norm(e)

    def forward(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gl = b["group"]
        q = self._bag(b["q_words"])
        if self.query_vec is not None:
            q = q + self.query_vec(b["q_vec"])
        q = self.q_norm(q)[gl]  # (n, d)
        e_c = self.item(b["words"], b["tvec"], b["ivec"])  # (n, d)
        # Target attention: candidate vs the shopper's recent products.
        hmask = b["h_mask"]  # (g, H)
        h = self.item(b["h_words"], b["h_tvec"], b["h_ivec"]) + self.recency.weight[None, : hmask.shape[1]]
        k = self.ta_k(h)[gl]  # (n, H, d)
        logit = torch.einsum("nd,nhd->nh", self.ta_q(e_c), k) / self.d**0.5
        m = hmask[gl]
        a = torch.softmax(logit.masked_fill(~m, -1e9), dim=1) * m.any(1, keepdim=True)
        u = torch.einsum("nh,nhd->nd", a, h[gl])
        ta = self.ta_out(torch.cat([u, u * e_c], 1))
        x = b["X"]
        toks = []
        for t in self.tokens:
            v = self.feat[t](x[:, self.layout[t]]) if t in self.layout else torch.zeros_like(e_c)
            if t == "catalog":
                v = v + self._bag(b["words"])
            elif t == "text" and self.text_vec is not None:
                v = v + self.text_vec(b["tvec"])
            elif t == "image" and self.image_vec is not None:
                v = v + self.image_vec(b["ivec"])
            elif t == "personal":
                v = v + ta
            toks.append(self.norm[t](v))
        T = torch.stack(toks, 1)  # (n, G, d)
        s = torch.einsum("nd,ngd->ng", self.att_q(q), self.att_k(T)) / self.d**0.5 + self.att_bias
        w = torch.softmax(s, 1)
        pooled = self.drop((w.unsqueeze(2) * T).reshape(len(T), -1) * len(self.tokens))
        z = self.mlp(torch.cat([pooled, q, q * e_c], 1))
        return self.ctr(z).squeeze(1), self.cvr(z).squeeze(1), w


class NeuralRanker:
    """The network, its input preparation, training loop and persistence.

    Parameters
    ----------
    dim : width of every modality token and of the item/query vectors.
    hidden : width of the MLP's first layer.
    epochs, max_seconds : training stops at whichever comes first.
    batch_groups : lists per optimisation step.
    lr, weight_decay : AdamW settings.
    aux_weight : weight of the CTR + CTCVR likelihood terms against the listwise loss.
    valid_fraction : share of lists held out; the epoch with the lowest held-out loss is kept.
    device : "cpu", "cuda" or "auto" (training; scoring runs on the CPU).
    seed : seeds torch and the list shuffling.

    Attributes
    ----------
    net_ : the fitted network (CPU, eval mode).
    feature_names_ : assembled features read, in column order.
    mean_, std_ : standardisation of those features.
    words_ : (n_products, ITEM_TOKENS) product word ids at fit.
    base_ : mean training score (explanations report parts of ``score - base_``).
    history_ : per epoch, training and held-out loss and seconds.
    """

    def __init__(self, *, dim: int = 32, hidden: int = 128, epochs: int = 30, max_seconds: float = 120.0,
                 batch_groups: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4, aux_weight: float = 1.0,
                 valid_fraction: float = 0.1, dropout: float = 0.2, words: bool = True, device: str = "cpu",
                 seed: int = 0) -> None:  # fmt: skip
        self.dim = dim
        self.hidden = hidden
        self.epochs = epochs
        self.max_seconds = max_seconds
        self.batch_groups = batch_groups
        self.lr = lr
        self.weight_decay = weight_decay
        self.aux_weight = aux_weight
        self.valid_fraction = valid_fraction
        self.dropout = dropout
        self.words = words
        self.device = device
        self.seed = seed

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in ("dim", "hidden", "epochs", "max_seconds", "batch_groups", "lr",
                                              "weight_decay", "aux_weight", "valid_fraction", "dropout", "words",
                                              "device", "seed")}

    # -- inputs -----------------------------------------------------------------
    def _standardise(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.std_
        Z = np.clip(np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0), -5.0, 5.0)
        miss = ~np.isfinite(X[:, self.nan_cols_]) if len(self.nan_cols_) else np.zeros((len(X), 0), bool)
        return np.concatenate([Z, miss.astype(np.float32)], 1).astype(np.float32)

    @staticmethod
    def _vectors(retriever, name: str) -> np.ndarray | None:
        v = getattr(retriever, name, None)
        return None if v is None else np.asarray(v, dtype=np.float32)

    def _take(self, table: np.ndarray | None, dim: int, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), dim), np.float32)
        if table is not None and dim and table.shape[1] == dim:
            ok = (rows >= 0) & (rows < len(table))
            out[ok] = table[rows[ok]]
        return out

    def _words(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), ITEM_TOKENS), np.int64)
        ok = (rows >= 0) & (rows < len(self.words_))
        out[ok] = self.words_[rows[ok]]
        return out

    def _batch(self, engine, groups: list[ListGroup], qvecs: list[np.ndarray | None],
               device: str) -> dict[str, torch.Tensor]:
        ret = getattr(engine, "retriever_", None)
        tv, iv = self._vectors(ret, "text_vectors_"), self._vectors(ret, "image_vectors_")
        rows = np.concatenate([g.rows for g in groups]).astype(np.int64)
        gl = np.repeat(np.arange(len(groups)), [len(g.rows) for g in groups])
        H = max(1, max(min(len(g.history), HISTORY_LEN) for g in groups))
        hist = np.full((len(groups), H), -1, np.int64)
        for i, g in enumerate(groups):
            h = np.asarray(g.history, np.int64)[-HISTORY_LEN:][::-1]  # most recent first (recency 0)
            hist[i, : len(h)] = h
        qw = np.zeros((len(groups), QUERY_TOKENS), np.int64)
        for i, g in enumerate(groups):
            ids = hash_tokens(g.query, QUERY_TOKENS)
            qw[i, : len(ids)] = ids
        dq = self.dims_["query"]
        qv = np.zeros((len(groups), dq), np.float32)
        for i, v in enumerate(qvecs):
            if v is not None and dq and len(v) == dq:
                qv[i] = v
        hflat = hist.reshape(-1)
        b = {
            "X": self._standardise(np.concatenate([g.X for g in groups])), "group": gl, "words": self._words(rows),
            "tvec": self._take(tv, self.dims_["text"], rows), "ivec": self._take(iv, self.dims_["image"], rows),
            "q_words": qw, "q_vec": qv, "h_mask": hist >= 0,
            "h_words": self._words(hflat).reshape(len(groups), H, ITEM_TOKENS),
            "h_tvec": self._take(tv, self.dims_["text"], hflat).reshape(len(groups), H, -1),
            "h_ivec": self._take(iv, self.dims_["image"], hflat).reshape(len(groups), H, -1),
        }
        return {k: torch.as_tensor(v).to(device) for k, v in b.items()}

    @staticmethod
    def _query_vec(engine, query: str | None) -> np.ndarray | None:
        f = getattr(getattr(engine, "retriever_", None), "_text_vec", None)
        if f is None or not query:
            return None
        try:
            return f(query)
        except Exception:  # noqa: BLE001 - no dense query vector: the word bag alone
            return None

    # -- training ---------------------------------------------------------------
    def fit(self, engine, groups: list[ListGroup], feature_names: list[str]) -> NeuralRanker:
        """Train on result lists whose ``X`` columns follow ``feature_names``."""
        from vitrine.config import resolve_device

        if not groups:
            raise ValueError("NeuralRanker.fit needs at least one result list")
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        device = resolve_device(self.device)
        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"
        self.feature_names_ = list(feature_names)
        # Two passes over the lists: no float64 copy of every feature value.
        nf = len(self.feature_names_)
        cnt, s1, s2, nan = np.zeros(nf), np.zeros(nf), np.zeros(nf), np.zeros(nf, bool)
        for g in groups:
            fin = np.isfinite(g.X)
            cnt += fin.sum(0)
            s1 += np.where(fin, g.X, 0).sum(0, dtype=np.float64)
            nan |= (~fin).any(0)
        mean = s1 / np.maximum(cnt, 1)
        for g in groups:
            dev = np.where(np.isfinite(g.X), g.X - mean, 0.0)
            s2 += (dev * dev).sum(0)
        var = s2 / np.maximum(cnt, 1)
        self.mean_ = mean.astype(np.float32)
        self.std_ = np.where(var > 1e-12, np.sqrt(var), 1.0).astype(np.float32)
        self.nan_cols_ = np.flatnonzero(nan).astype(np.int64)
        cols = [feature_group(n) for n in self.feature_names_]
        cols += [cols[j] for j in self.nan_cols_]  # a missing indicator belongs to its feature's group
        layout: dict[str, list[int]] = {}
        for j, gname in enumerate(cols):
            layout.setdefault(gname if gname in TOKEN_GROUP else "text", []).append(j)
        ret = getattr(engine, "retriever_", None)
        tv, iv = self._vectors(ret, "text_vectors_"), self._vectors(ret, "image_vectors_")
        q0 = next((v for v in (self._query_vec(engine, g.query) for g in groups[:50]) if v is not None), None)
        self.dims_ = {"text": 0 if tv is None else tv.shape[1], "image": 0 if iv is None else iv.shape[1],
                      "query": 0 if q0 is None else len(q0)}
        self.layout_ = layout
        self.words_ = product_tokens(engine.catalog_.products)
        qvecs = [self._query_vec(engine, g.query) for g in groups] if self.dims_["query"] else [None] * len(groups)
        net = _Net(layout, self.dims_, self.dim, self.hidden, self.dropout, self.words).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n = len(groups)
        valid = rng.random(n) < self.valid_fraction if n >= 20 else np.zeros(n, bool)
        tr, va = np.flatnonzero(~valid), np.flatnonzero(valid)
        t0 = time.monotonic()
        best, best_loss, bad = None, np.inf, 0
        self.history_: list[dict] = []

        def batches(idx):
            for s in range(0, len(idx), self.batch_groups):
                sel = idx[s: s + self.batch_groups]
                yield sel, self._batch(engine, [groups[i] for i in sel], [qvecs[i] for i in sel], device)

        bar = tqdm(range(self.epochs), desc="rank: neural epochs", disable=None, leave=False)
        for epoch in bar:
            net.train()
            tot, m = 0.0, 0
            with torch_threads(device) as gov:
                for sel, b in batches(rng.permutation(tr)):
                    loss = self._loss(net, b, [groups[i] for i in sel], device)
                    opt.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                    opt.step()
                    tot, m = tot + loss.item() * len(sel), m + len(sel)
                    gov.tick(len(sel))
            net.eval()
            with torch.no_grad():
                vl = sum(float(self._loss(net, b, [groups[i] for i in sel], device)) * len(sel)
                         for sel, b in batches(va)) / max(len(va), 1) if len(va) else tot / max(m, 1)
            self.history_.append({"epoch": epoch, "train": tot / max(m, 1), "valid": vl,
                                  "seconds": round(time.monotonic() - t0, 2)})
            bar.set_postfix(train=f"{tot / max(m, 1):.4f}", valid=f"{vl:.4f}")
            if vl < best_loss - 1e-5:
                best, best_loss, bad = copy.deepcopy(net.state_dict()), vl, 0
            else:
                bad += 1
            if bad >= 4 or time.monotonic() - t0 > self.max_seconds:
                break
        if best is not None:
            net.load_state_dict(best)
        self.net_ = net.to("cpu").eval()
        self.device_ = device
        with torch.no_grad():
            some = [groups[i] for i in tr[:256]]
            b = self._batch(engine, some, [qvecs[i] for i in tr[:256]], "cpu")
            c, _, w = self.net_(b)
        self.base_ = float(c.mean())
        share: dict[str, float] = {}
        for t, a in zip(self.net_.tokens, w.mean(0).tolist(), strict=True):
            share[TOKEN_GROUP[t]] = share.get(TOKEN_GROUP[t], 0.0) + a
        self.importance_ = share
        return self

    def _loss(self, net: _Net, b, groups: list[ListGroup], device: str) -> torch.Tensor:
        c, v, _ = net(b)
        gl = b["group"]
        ng = len(groups)
        tgt = torch.as_tensor(np.concatenate([g.gain * g.weight for g in groups]), dtype=torch.float32,
                              device=device)
        # Listwise softmax cross-entropy within each list.
        mx = torch.full((ng,), -1e9, device=device).scatter_reduce(0, gl, c.detach(), "amax")
        lse = torch.log(torch.zeros(ng, device=device).index_add(0, gl, torch.exp(c - mx[gl]))) + mx
        tot = torch.zeros(ng, device=device).index_add(0, gl, tgt)
        has = tot > 0
        p = tgt / tot.clamp_min(1e-12)[gl]
        lw = -torch.zeros(ng, device=device).index_add(0, gl, p * (c - lse[gl]))
        loss = lw[has].sum() / max(int(has.sum()), 1)
        logged = [g.theta is not None for g in groups]
        if any(logged) and self.aux_weight > 0:
            parts = [(g.theta, g.click, g.conv) if g.theta is not None else
                     (np.zeros(len(g.rows)), np.zeros(len(g.rows)), np.zeros(len(g.rows))) for g in groups]
            mask = torch.as_tensor(np.concatenate([np.full(len(g.rows), g.theta is not None) for g in groups]),
                                   device=device)
            th, cl, cv = (torch.as_tensor(np.concatenate([p_[i] for p_ in parts]), dtype=torch.float32,
                                          device=device) for i in range(3))
            eps = 1e-6
            p_click = (th * torch.sigmoid(c)).clamp(eps, 1 - eps)
            p_conv = (th * torch.sigmoid(c) * torch.sigmoid(v)).clamp(eps, 1 - eps)
            nll = -(cl * torch.log(p_click) + (1 - cl) * torch.log1p(-p_click))
            nll = nll - (cv * torch.log(p_conv) + (1 - cv) * torch.log1p(-p_conv))
            # Per list (mean over its rows), so long lists do not outweigh logged pages.
            per = torch.zeros(ng, device=device).index_add(0, gl, nll * mask)
            size = torch.zeros(ng, device=device).index_add(0, gl, mask.float())
            ok = size > 0
            loss = loss + self.aux_weight * (per[ok] / size[ok]).sum() / max(int(ok.sum()), 1)
        return loss

    # -- scoring ----------------------------------------------------------------
    def score(self, engine, query: str | None, rows: np.ndarray, X: np.ndarray, history: np.ndarray):
        """(ctr logits, cvr logits, attention (n, n_tokens)) for one list of candidates."""
        g = ListGroup(X, np.asarray(rows, np.int64), query, np.asarray(history, np.int64),
                      np.zeros(len(rows)), np.zeros(len(rows)))
        qv = self._query_vec(engine, query) if self.dims_["query"] else None
        b = self._batch(engine, [g], [qv], "cpu")
        with torch.no_grad():
            c, v, w = self.net_(b)
        return c.numpy().astype(np.float64), v.numpy().astype(np.float64), w.numpy().astype(np.float64)

    def explain(self, scores: np.ndarray, weights: np.ndarray) -> list[dict[str, float]]:
        """Per candidate, ``score - base`` split by the modality attention weights into
        the explanation groups, plus ``base``: the parts sum to the score."""
        out = []
        tok = [TOKEN_GROUP[t] for t in self.net_.tokens]
        for s, w in zip(scores, weights, strict=True):
            d = dict.fromkeys(GROUPS, 0.0)
            for gname, a in zip(tok, w, strict=True):
                d[gname] += float(a) * (float(s) - self.base_)
            d["base"] = self.base_
            out.append(d)
        return out

    def attention(self, weights: np.ndarray) -> list[dict[str, float]]:
        """Per candidate, the modality attention weights by token name (they sum to 1)."""
        return [dict(zip(self.net_.tokens, map(float, w), strict=True)) for w in weights]

    def importance(self) -> dict[str, float]:
        """Mean attention weight per explanation group over the held-out check lists."""
        return dict(getattr(self, "importance_", {}))

    # -- persistence ------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        meta = {"params": self._params(), "feature_names": self.feature_names_, "dims": self.dims_,
                "layout": self.layout_, "base": self.base_, "history": self.history_,
                "importance": self.importance()}
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        np.savez(folder / "neural.npz", mean=self.mean_, std=self.std_, nan_cols=self.nan_cols_,
                 words=self.words_, **arrays)
        (folder / "neural.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Path) -> NeuralRanker:
        folder = Path(folder)
        meta = json.loads((folder / "neural.json").read_text())
        self = cls(**meta["params"])
        self.feature_names_ = meta["feature_names"]
        self.dims_ = meta["dims"]
        self.layout_ = {k: list(v) for k, v in meta["layout"].items()}
        self.base_ = meta["base"]
        self.history_ = meta.get("history", [])
        self.importance_ = meta.get("importance", {})
        with np.load(folder / "neural.npz", allow_pickle=False) as z:
            self.mean_, self.std_, self.nan_cols_, self.words_ = z["mean"], z["std"], z["nan_cols"], z["words"]
            state = {k[4:]: torch.as_tensor(z[k]) for k in z.files if k.startswith("net.")}
        self.net_ = _Net(self.layout_, self.dims_, self.dim, self.hidden, self.dropout, self.words)
        self.net_.load_state_dict(state)
        self.net_.eval()
        return self


class NeuralSearchRanker(SearchRanker):
    """``SearchRanker(model="neural")``: the same assembled features, scored by
    :class:`NeuralRanker` (``SearchRanker.__new__`` returns this class for that
    model, so the engine, ``save`` and ``load`` need not know about it)."""

    def _fit_neural(self, engine, dataset, rng) -> None:
        """Lists from logged pages (IPW gains, propensities, clicks, conversions,
        the shopper's history before the page) and from judged queries (the
        retrieved candidates plus the judged ones, graded, with a random
        logged shopper's history as the click model's judged negatives; and the
        judged products alone), then :meth:`NeuralRanker.fit`."""
        from vitrine.rank.labels import judgment_groups
        from vitrine.rank.ranker import _concat, _list_relative, _prime_queries, _usable

        lists: list[tuple[dict, ListGroup]] = []
        if getattr(dataset, "events", None) is not None and len(dataset.events):
            lgroups = self._log_groups(engine, dataset, rng)
            th_all = self.propensities_
            if th_all is not None:
                th_all = np.asarray(th_all, dtype=np.float64)
                th_all = np.where(np.isfinite(th_all), th_all, np.nanmin(th_all))
            for (f, y, w), pos, (_, h, _), (q, rows) in zip(lgroups, self._log_pos, self._log_users,
                                                            self._log_meta, strict=True):
                grade = y.astype(np.float64) / 2.0
                theta = (th_all[np.clip(pos - 1, 0, len(th_all) - 1)]
                         if self.debias and th_all is not None else np.ones(len(y)))
                lists.append((f, ListGroup(None, rows, q, h, gain=grade, weight=np.asarray(w, np.float64),
                                           theta=theta, click=(y > 0).astype(np.float64),
                                           conv=(y >= 4).astype(np.float64))))
        judg = getattr(dataset, "judgments", None)
        if judg is not None and len(judg):
            groups = judgment_groups(judg)
            queries = list(groups)
            if len(queries) > self.max_queries:
                queries = list(rng.choice(queries, size=self.max_queries, replace=False))
            _prime_queries(engine.retriever_, queries)
            cat = engine.catalog_
            for q in tqdm(queries, desc="rank: judged queries", disable=None, leave=False):
                judged = groups[q]
                jr = cat.indices(list(judged), missing="mark")
                gmap = {int(r): g for r, g in zip(jr.tolist(), judged.values(), strict=True) if r >= 0}
                jrows = np.asarray(list(gmap), dtype=np.int64)
                if not len(jrows):
                    continue
                cands = engine.retriever_.retrieve(query_text=q, k=min(self.depth, 100))
                missing = jrows[~np.isin(jrows, cands.rows)]
                if len(missing):
                    cands = _concat(cands, engine.retriever_.score_rows(q, missing))
                ukey, h, x = (self._log_users[int(rng.integers(len(self._log_users)))]
                              if self._log_users else (None, np.zeros(0, np.int64), None))
                for c in (cands, engine.retriever_.score_rows(q, jrows) if len(jrows) > 1 else None):
                    if c is None:
                        continue
                    grade = np.asarray([gmap.get(int(r), 0.0) for r in c.rows], dtype=np.float64)
                    f = self._feats(engine, q, c, None, ukey, history=h, use_personal_model=False, exposure=x)
                    lists.append((f, ListGroup(None, np.asarray(c.rows, np.int64), q, h,
                                               gain=2.0 ** grade - 1.0, weight=np.ones(len(grade)))))
        if not lists:
            return
        # List-relative features differ between logged pages (10-20 results) and
        # served lists (100+), as for the click model.
        names = sorted({k for f, _ in lists for k in f if not _list_relative(k)})
        groups = []
        for f, g in lists:
            g.X = to_matrix(f, names, len(g.rows))
            groups.append(g)
        del lists  # the feature dicts: a second copy of every value
        usable = _usable(np.concatenate([g.X for g in groups]))
        self.feature_names_ = [n for n, u in zip(names, usable, strict=True) if u]
        for g in groups:
            g.X = g.X[:, usable]
        self.model_ = NeuralRanker(epochs=self.neural_epochs, max_seconds=self.neural_seconds,
                                   device=self.device, seed=self.seed).fit(engine, groups, self.feature_names_)

    def rank(self, query, cands, personal, **context):
        """Return (scores, explanations) aligned with ``cands.rows``: the CTR head's
        logit, and per candidate ``score - base`` split by modality attention."""
        engine = context.get("engine")
        if self.model_ is None or engine is None or not len(cands.rows):
            return self._blend(cands, personal)
        ukey = context.get("user_key")
        f = context.get("feats")
        if f is None:
            f = self._feats(engine, query, cands, personal, ukey)
        X = to_matrix(f, self.feature_names_, len(cands.rows))
        hist = (live_history(getattr(engine, "personal_", None), ukey) if ukey and self.personal_features
                else np.zeros(0, np.int64))
        c, _, w = self.model_.score(engine, query, cands.rows, X, hist)
        return c, LazyExplanations(lambda: self.model_.explain(c, w), len(c))

    def attention(self, query, cands, personal=None, user_key=None, engine=None) -> list[dict[str, float]]:
        """Per candidate, the modality attention weights by token (they sum to 1)."""
        f = self._feats(engine, query, cands, personal, user_key)
        X = to_matrix(f, self.feature_names_, len(cands.rows))
        hist = (live_history(getattr(engine, "personal_", None), user_key) if user_key and self.personal_features
                else np.zeros(0, np.int64))
        return self.model_.attention(self.model_.score(engine, query, cands.rows, X, hist)[2])
