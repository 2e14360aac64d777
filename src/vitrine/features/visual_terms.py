"""Visual terms: the words a product photo predicts, scored like a lexical field.

The image tower learns two things from the products that have both a photo
and text: a vector in the text encoder's space (contrastive), and the
probability of each frequent word of the product's visual text (title,
category, colour) being in that text (one logistic output per word). For a
product with a photo and no text, the second gives a query likelihood: the
sum over the query's known words of log P(word | photo) ranks the products
whose photos most probably show *every* word of the query, which is what a
``<gender> <colour> <type>`` query asks for. A cosine in embedding space
blurs that conjunction (a navy shirt is near a blue one and near a navy
jacket); the per-word likelihood keeps it.

Storage is sparse so that a million-product catalog stays small: each
product keeps its ``keep`` most probable words; every other word gets the
product's floor (the highest log-probability it did not keep), so the
stored part is the excess over the floor.

Example usage::

    vt = VisualTerms.build(texts_of_training_products)
    tower.fit(images, text_vectors, terms=vt.targets(texts_of_training_products))
    vecs, logp = tower.encode(images_of_all)
    vt.set_rows(np.arange(n), logp, n_rows=n)
    vt.score("men navy blue shirt", rows)   # mean log P(word | photo), or None
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vitrine.features.lexical import column_sums, tokenize


class VisualTerms:
    """Vocabulary of visual words and per-product log P(word | photo).

    Parameters
    ----------
    min_df : a word must appear in this many training texts to be learned.
    max_terms : at most this many words (the most frequent) are learned.
    keep : words stored per product (the rest share the product's floor).
    """

    def __init__(self, *, min_df: int = 3, max_terms: int = 2048, keep: int = 64) -> None:
        self.min_df = min_df
        self.max_terms = max_terms
        self.keep = keep

    @classmethod
    def build(cls, texts: Sequence[str], **params) -> VisualTerms:
        self = cls(**params)
        df = Counter(t for text in texts for t in set(tokenize(text)))
        words = [t for t, c in sorted(df.items(), key=lambda kv: (-kv[1], kv[0])) if c >= self.min_df]
        self.vocab_ = {t: j for j, t in enumerate(words[: self.max_terms])}
        self.excess_ = sp.csc_matrix((0, len(self.vocab_)), dtype=np.float32)
        self.floor_ = np.zeros(0, np.float32)
        self.rivals_ = self._rivals(self.targets(texts))
        return self

    @staticmethod
    def _rivals(y: np.ndarray, lift: float = 0.1, min_expected: float = 5.0) -> sp.csr_matrix:
        """Word pairs that (nearly) never share a text though both are common: "blue"/"navy", "men"/"women".

        Pairs co-occurring under ``lift`` times what independence predicts,
        where independence predicts at least ``min_expected`` texts (so that
        the shortfall is evidence, not chance).
        """
        m = sp.csr_matrix(y, dtype=np.float32)
        n = max(m.shape[0], 1)
        df = np.asarray(m.sum(0)).ravel()
        co = (m.T @ m).toarray()
        expected = np.outer(df, df) / n
        return sp.csr_matrix((co < lift * expected) & (expected >= min_expected))

    def __len__(self) -> int:
        return len(self.vocab_)

    def targets(self, texts: Sequence[str]) -> np.ndarray:
        """Multi-hot (n, V) uint8: which vocabulary words each text contains."""
        out = np.zeros((len(texts), len(self.vocab_)), np.uint8)
        for i, text in enumerate(texts):
            cols = [self.vocab_[t] for t in set(tokenize(text)) if t in self.vocab_]
            out[i, cols] = 1
        return out

    def query_terms(self, query: str) -> list[int]:
        return sorted({self.vocab_[t] for t in tokenize(query or "") if t in self.vocab_})

    def set_rows(self, rows: np.ndarray, logp: np.ndarray, n_rows: int) -> None:
        """Store log-probabilities (len(rows), V) for catalog rows, growing to ``n_rows``."""
        rows = np.asarray(rows, np.int64)
        self._grow(n_rows)
        k = min(self.keep, logp.shape[1])
        if k == logp.shape[1]:
            top = np.tile(np.arange(k), (len(rows), 1))
            floor = logp.min(1)
        else:
            part = np.argpartition(-logp, k, axis=1)
            top, floor = part[:, :k], np.take_along_axis(logp, part[:, k:k + 1], 1)[:, 0]
        vals = np.take_along_axis(logp, top, 1) - floor[:, None]
        csr = self.excess_.tocsr()
        keep_mask = np.ones(csr.shape[0], bool)
        keep_mask[rows] = False
        old = sp.diags(keep_mask.astype(np.float32)) @ csr  # drop previous values of these rows
        new = sp.csr_matrix((vals.ravel().astype(np.float32), (np.repeat(rows, k), top.ravel())), shape=csr.shape)
        self.excess_ = (old + new).tocsc()
        self.floor_[rows] = floor

    def logp(self, rows: np.ndarray) -> np.ndarray:
        """Dense log-probabilities (len(rows), V) as stored (words not kept read as the floor)."""
        rows = np.asarray(rows, np.int64)
        return self.excess_.tocsr()[rows].toarray() + self.floor_[rows][:, None]

    def borrow(self, rows: np.ndarray, weights: np.ndarray, neighbour_words: np.ndarray, share: float = 0.25) -> None:
        """Mix rows' photo probabilities with their neighbours' words: (1 - share) P + share * sum_k w_k y_k.

        ``weights`` (r, k) sum to one per row; ``neighbour_words`` (r, k, V) multi-hot.
        """
        vote = np.einsum("rk,rkv->rv", weights, neighbour_words.astype(np.float32))
        p = (1 - share) * np.exp(self.logp(rows)) + share * vote
        self.set_rows(rows, np.log(np.clip(p, 1e-4, 1.0)), n_rows=len(self.floor_))

    def seen(self, rows: np.ndarray, threshold: float, texts: Sequence[str]) -> list[list[str]]:
        """Per row, the words its photo shows with probability >= ``threshold`` that its text is silent on.

        Silent: the text neither says the word nor a rival of it (a navy
        shirt's photo may look blue, but its text has chosen "navy"). Most
        probable first.
        """
        words = np.array(list(self.vocab_), dtype=object)
        if not len(words):
            return [[] for _ in rows]
        lp = self.logp(rows)
        rivals = getattr(self, "rivals_", None)
        out = []
        for row, text in zip(lp, texts, strict=True):
            cols = [self.vocab_[t] for t in set(tokenize(text)) if t in self.vocab_]
            ok = row >= np.log(threshold)
            if cols:
                ok[cols] = False
                if rivals is not None and rivals.shape[0] == len(words):
                    ok[rivals[cols].indices] = False
            hit = np.flatnonzero(ok)
            out.append(words[hit[np.argsort(-row[hit], kind="stable")]].tolist())
        return out

    def clear_rows(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.int64)
        rows = rows[rows < len(self.floor_)]
        csr = self.excess_.tocsr()
        mask = np.ones(csr.shape[0], np.float32)
        mask[rows] = 0
        self.excess_ = (sp.diags(mask) @ csr).tocsc()
        self.floor_[rows] = 0.0

    def _grow(self, n_rows: int) -> None:
        if n_rows > self.excess_.shape[0]:
            self.excess_ = sp.vstack([self.excess_, sp.csc_matrix((n_rows - self.excess_.shape[0], len(self.vocab_)),
                                                                  dtype=np.float32)]).tocsc()
            self.floor_ = np.concatenate([self.floor_, np.zeros(n_rows - len(self.floor_), np.float32)])

    def score(self, query: str, rows: np.ndarray | None = None) -> np.ndarray | None:
        """Mean log P(word | photo) over the query's known words; None when it has none."""
        cols = self.query_terms(query)
        if not cols:
            return None
        s = column_sums(self.excess_, cols) / len(cols) + self.floor_
        return s if rows is None else s[np.asarray(rows, np.int64)]

    def save(self, folder: Path) -> None:
        import json

        folder.mkdir(parents=True, exist_ok=True)
        words = sorted(self.vocab_, key=self.vocab_.get)
        (folder / "visual_terms.json").write_text(json.dumps(
            {"words": words, "params": {"min_df": self.min_df, "max_terms": self.max_terms, "keep": self.keep}},
            ensure_ascii=False))
        sp.save_npz(folder / "visual_terms.npz", self.excess_.tocsc())
        sp.save_npz(folder / "visual_rivals.npz", getattr(self, "rivals_", sp.csr_matrix((0, 0), dtype=bool)))
        np.save(folder / "visual_floor.npy", self.floor_)

    @classmethod
    def load(cls, folder: Path) -> VisualTerms | None:
        import json

        if not (folder / "visual_terms.json").exists():
            return None
        meta = json.loads((folder / "visual_terms.json").read_text())
        self = cls(**meta["params"])
        self.vocab_ = {t: j for j, t in enumerate(meta["words"])}
        self.excess_ = sp.load_npz(folder / "visual_terms.npz").tocsc().astype(np.float32)
        self.floor_ = np.load(folder / "visual_floor.npy")
        rivals = folder / "visual_rivals.npz"
        self.rivals_ = sp.load_npz(rivals).tocsr() if rivals.exists() else None
        return self
