"""Review text embeddings pooled per product.

Each review is embedded by the same text encoder (and on-disk cache) as the
product text; a product's review vector is the unit-norm mean of its most
recent ``max_reviews`` review embeddings. Products without reviews have no
vector (zero row, ``has`` False). Rating statistics (count, Bayesian average
of review stars) are not computed here: they are the ranker's
``review_count_log`` / ``review_rating_bayes`` in
:func:`vitrine.rank.features.product_table`, which
:func:`vitrine.features.attributes.numeric_table` feeds to the fusion.

Encoding cost is one encoder call per distinct review text, capped by
``max_reviews`` per product and ``max_chars`` per review; the cache makes a
re-fit free.

Example usage::

    vecs, has = pool_reviews(reviews, catalog.ids, encoder)   # (n, d), (n,)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def review_texts(
    reviews: pd.DataFrame | None, product_ids: Sequence, max_reviews: int = 5, max_chars: int = 300
) -> list[list[str]]:
    """For each product id, the texts of its ``max_reviews`` most recent non-empty reviews."""
    out: list[list[str]] = [[] for _ in range(len(product_ids))]
    if reviews is None or not len(reviews) or "text" not in reviews or max_reviews <= 0:
        return out
    pos = pd.Index(pd.Series(product_ids, dtype=object).astype(str))
    r = reviews[["product_id", "text"] + (["timestamp"] if "timestamp" in reviews else [])].copy()
    r["text"] = r["text"].fillna("").astype(str).str.strip().str[:max_chars]
    r = r[r["text"] != ""]
    r["_row"] = pos.get_indexer(r["product_id"].astype(str))
    r = r[r["_row"] >= 0]
    if "timestamp" in r:
        r = r.sort_values(["_row", "timestamp"], ascending=[True, False], kind="stable")
    else:
        r = r.sort_values("_row", kind="stable")
    r = r.groupby("_row", sort=False).head(max_reviews)
    for row, text in zip(r["_row"].to_numpy(), r["text"].to_numpy(), strict=True):
        out[int(row)].append(text)
    return out


def pool_reviews(
    reviews: pd.DataFrame | None, product_ids: Sequence, encoder, max_reviews: int = 5, max_chars: int = 300,
    progress: bool = False,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Pooled review vectors for ``product_ids``.

    Returns
    -------
    vecs : (len(product_ids), d) unit-norm mean of each product's review
        embeddings (zero rows without reviews), or None when no product has one.
    has : (len(product_ids),) bool.
    """
    texts = review_texts(reviews, product_ids, max_reviews, max_chars)
    has = np.array([bool(t) for t in texts], bool)
    if encoder is None or not has.any():
        return None, has
    flat = [t for ts in texts for t in ts]
    owner = np.repeat(np.arange(len(texts)), [len(ts) for ts in texts])
    emb = encoder.encode(flat, progress=progress)
    vecs = np.zeros((len(texts), emb.shape[1]), np.float64)
    np.add.at(vecs, owner, emb)
    norm = np.linalg.norm(vecs, axis=1, keepdims=True)
    return (vecs / np.where(norm > 0, norm, 1.0)).astype(np.float32), has
