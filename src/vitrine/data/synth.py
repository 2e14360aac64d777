"""A synthetic marketplace with hidden ground truth (`vitrine synth`).

``generate(out)`` writes a whole shop as a dataset folder (ARCHITECTURE.md):
products with images, search and browsing logs, reviews and relevance
judgments, plus a ``truth/`` subfolder holding what a real shop never shows:
product quality, the true colour of products whose colour is only visible in
the image, shopper preferences, the examination probability of each result
position and the utility that drove every click.

The generative story
--------------------
* Products sit in a tree of 6 top categories x 12 mid categories x 24 leaf types
  (each leaf has a silhouette). Each has a brand (with a price tier), colour,
  material, style, pattern, hidden quality and, for worn items, a hidden size
  fit. Price is lognormal around the leaf's base price, scaled by brand tier.
* Exactly a third of the products (``product index % 3 == 2`` after a seeded
  shuffle, listed in ``truth/products.parquet`` as ``color_in_text=False``)
  show their colour only in the image: title, description and tags never name
  it and ``color`` is empty. About a fifth omit the material from the text;
  it then appears only in reviews. Quality and size fit appear only in reviews.
* Shoppers have hidden affinities for leaf types, brands, colours and styles,
  and a price sensitivity. Leaf and colour affinities drift over time along a
  per-user random walk in a 4-dimensional latent space (weekly knots).
* Utility (see :func:`utility`) of product p for user u under query q at time t::

      u = W_REL * grade(q, p) + aff_leaf + aff_brand + aff_color + aff_style
          + drift(u, t) + W_QUALITY * quality(p)
          - price_sensitivity(u) * log(price(p) / leaf_base_price)
          + W_PAIR * pair_noise(u, p)

  ``grade`` is the query relevance (0-3, also used for judgments; 0 without a
  query) and ``pair_noise`` a fixed standard normal per (user, product) pair
  derived from a hash, so utility is recomputable. Every event adds fresh
  noise ``N(0, EVENT_NOISE)`` on top, which is not recomputable.
* Search pages: a query from an intent (leaf, optionally colour, brand, style
  or material), 10-20 results ordered by a logging ranker that sees only text
  match and popularity (plus noise), never preferences. Clicks follow a
  position-based model, ``P(click) = examination(position) * sigmoid(
  CLICK_SLOPE * (u + noise - CLICK_OFFSET))``; add-to-cart and purchase follow
  further sigmoids of utility. Browsing pages list a leaf category (chosen from
  the user's affinities) with the same ranker and click model and an empty query.

Files
-----
``products``, ``events``, ``reviews``, ``judgments`` (.parquet), ``images/<id>.png``
and ``dataset.json`` as in ARCHITECTURE.md, and in ``truth/``:

* ``params.json``: seed, weights, click-model constants, vocabulary (codes -> words).
* ``propensities.json``: ``{"positions": [1..20], "examination": [...]}``.
* ``products.parquet``: product_id, leaf/_index, mid_index, top_index, color/_index
  (true colour), color_in_text, material/_index, material_in_text, style/_index,
  brand_index, brand_tier, pattern, quality, size_fit ("small"/"true"/"large"/""),
  popularity, prior_sales, log_rel_price, image_variant.
* ``users.parquet``: user_id, price_sensitivity, activity, favorite_leaf, favorite_color.
* ``preferences.npz``: the preference arrays used by :func:`utility` (see :class:`Truth`).
* ``queries.parquet``: query, leaf, color, brand, material, style (codes, -1 unsaid),
  searched (appears in the log as a query), split.
* ``requests.parquet``: one row per result page: request_id, session_id, user_id,
  timestamp, search, query (null when browsing), intent_query (the hidden intent;
  the leaf name for browsing pages).
* ``pages.parquet``: one row per impression: request_id, position, product_id,
  examination, utility (deterministic part), attractiveness (with event noise), clicked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vitrine.data import synth_text as T
from vitrine.errors import NotFoundError, VitrineError

__all__ = ["SynthSummary", "Truth", "generate", "load_truth", "relevance", "utility"]

GENERATOR_VERSION = 1
START = np.datetime64("2024-01-01T00:00:00", "s")
MAX_PAGE = 20
MIN_PAGE = 10
POOL = 40  # candidates the logging ranker keeps per query before noise

# Utility weights.
W_REL = 1.5
W_QUALITY = 0.6
W_PAIR = 0.5
# Click model and conversion.
PROPENSITY_POWER = 0.8
CLICK_SLOPE = 1.2
CLICK_OFFSET = 6.5
EVENT_NOISE = 0.5
CART_SLOPE = 1.5
CART_OFFSET = 8.0
BUY_SLOPE = 1.5
BUY_OFFSET = 8.0
# Logging ranker.
RANKER_NOISE = 1.0
# Session mix.
SEARCH_SHARE = 0.7
SECOND_PAGE_SHARE = 0.35
DRIFT_DIM = 4
DRIFT_STEP = 0.15  # sd of a weekly step of the latent walk
COLOR_ONLY_IN_IMAGE = 3  # one product in this many


# ---------------------------------------------------------------------------
# Public results.


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote.

    Attributes
    ----------
    path : dataset folder.
    tables : table name -> file (products, events, reviews, judgments).
    truth : the ``truth/`` folder.
    products, users, sessions, requests, events, impressions, clicks,
    add_to_carts, purchases, reviews, judgments, queries : row counts.
    color_only_in_image : products whose colour only the image shows.
    seconds : wall time.
    """

    path: Path
    tables: dict[str, Path]
    truth: Path
    products: int
    users: int
    sessions: int
    requests: int
    events: int
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int
    reviews: int
    judgments: int
    queries: int
    color_only_in_image: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Truth:
    """Hidden ground truth of a synthetic shop, as read by :func:`load_truth`.

    Attributes
    ----------
    params : contents of ``truth/params.json`` (weights, vocabulary, seed).
    products : ``truth/products.parquet``, one row per product in catalog order.
    users : ``truth/users.parquet``, one row per user.
    queries : ``truth/queries.parquet``: every generated query and its intent
        (leaf, color, brand, material, style as codes, -1 when unspecified).
    preferences : arrays from ``truth/preferences.npz``: ``category`` (n_users,
        n_leaves), ``brand`` (n_users, n_brands), ``color`` (n_users, n_colors),
        ``style`` (n_users, n_styles), ``price_sensitivity`` (n_users,),
        ``drift_knots`` (n_users, n_knots, 4), ``drift_category`` (n_leaves, 4),
        ``drift_color`` (n_colors, 4), ``knot_days`` (n_knots,).
    propensities : examination probability of positions 1..20, shape (20,).
    """

    params: dict
    products: pd.DataFrame
    users: pd.DataFrame
    queries: pd.DataFrame
    preferences: dict[str, np.ndarray]
    propensities: np.ndarray
    _product_index: pd.Index = field(repr=False, default=None)  # type: ignore[assignment]
    _user_index: pd.Index = field(repr=False, default=None)  # type: ignore[assignment]
    _intents: dict[str, tuple[int, int, int, int, int]] = field(repr=False, default_factory=dict)

    def product_codes(self, product_ids: Sequence[str] | np.ndarray | str) -> np.ndarray:
        """Row numbers of ``product_ids`` in ``products``; raises NotFoundError for unknown ids."""
        return _codes(self._product_index, product_ids, "product")

    def user_codes(self, user_ids: Sequence[str] | np.ndarray | str) -> np.ndarray:
        """Row numbers of ``user_ids`` in ``users``; raises NotFoundError for unknown ids."""
        return _codes(self._user_index, user_ids, "user")

    def intent(self, query: str | None) -> tuple[int, int, int, int, int] | None:
        """(leaf, color, brand, material, style) codes of a query; None for no query."""
        if query is None or (isinstance(query, float) and np.isnan(query)) or query == "":
            return None
        hit = self._intents.get(query)
        if hit is None:
            hit = parse_query(query, self.params["language"])
            self._intents[query] = hit
        return hit


def _codes(index: pd.Index, ids, what: str) -> np.ndarray:
    arr = np.asarray(ids, dtype=object)
    codes = index.get_indexer(arr.ravel()).reshape(arr.shape)
    if (codes < 0).any():
        bad = arr.ravel()[np.flatnonzero(codes.ravel() < 0)[0]]
        raise NotFoundError(f"{what} id {bad!r} is not in the synthetic truth; check the dataset folder")
    return codes


# ---------------------------------------------------------------------------
# The model: arrays shared by the generator and by `utility`.


@dataclass
class _Model:
    leaf: np.ndarray  # per product
    mid: np.ndarray
    top: np.ndarray
    color: np.ndarray
    brand: np.ndarray
    material: np.ndarray
    style: np.ndarray
    quality: np.ndarray
    log_rel_price: np.ndarray
    cat: np.ndarray  # (U, L)
    brand_aff: np.ndarray
    color_aff: np.ndarray
    style_aff: np.ndarray
    price_sens: np.ndarray
    knots: np.ndarray  # (U, K, D)
    drift_cat: np.ndarray  # (L, D)
    drift_col: np.ndarray  # (C, D)
    knot_days: np.ndarray
    seed: int


def relevance(
    leaf: np.ndarray,
    mid: np.ndarray,
    color: np.ndarray,
    brand: np.ndarray,
    material: np.ndarray,
    style: np.ndarray,
    intent: tuple[np.ndarray | int, ...],
) -> np.ndarray:
    """Query relevance grade 0-3 of products (attribute codes) for an intent.

    ``intent`` is (leaf, color, brand, material, style) codes, -1 where the query
    does not say; arrays broadcast. Grade 3: right leaf and every stated attribute;
    2: right leaf, some but not all stated attributes; 1: right leaf and none of
    them, or a sibling leaf (same mid category) with every stated attribute;
    0 otherwise. A query that names no leaf matches every leaf.
    """
    q_leaf, q_col, q_brand, q_mat, q_style = (np.asarray(x) for x in intent)
    n_spec = np.zeros(np.broadcast_shapes(leaf.shape, q_leaf.shape), dtype=np.int8)
    n_ok = np.zeros_like(n_spec)
    for q, p in ((q_col, color), (q_brand, brand), (q_mat, material), (q_style, style)):
        spec = q >= 0
        n_spec = n_spec + spec
        n_ok = n_ok + (spec & (p == q))
    leaf_ok = (q_leaf < 0) | (leaf == q_leaf)
    leaf_tab = np.asarray([lf.mid for lf in T.LEAVES])
    sibling = (q_leaf >= 0) & (mid == leaf_tab[np.maximum(q_leaf, 0)]) & ~leaf_ok
    all_ok = n_ok == n_spec
    grade = np.where(
        leaf_ok,
        np.where(all_ok, 3, np.where(n_ok > 0, 2, 1)),
        np.where(sibling & all_ok, 1, 0),
    )
    return grade.astype(np.int8)


def _pair_noise(u: np.ndarray, p: np.ndarray, seed: int) -> np.ndarray:
    """A fixed N(0, 1) draw per (user, product) pair, from a splitmix64 hash."""
    with np.errstate(over="ignore"):
        x = u.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x = x ^ (p.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
        x = x + np.uint64((seed * 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    u1 = ((x >> np.uint64(40)).astype(np.float64) + 0.5) / float(1 << 24)
    u2 = ((x & np.uint64(0xFFFFFF)).astype(np.float64) + 0.5) / float(1 << 24)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _drift(m: _Model, u: np.ndarray, p: np.ndarray, days: np.ndarray) -> np.ndarray:
    k = np.clip(np.searchsorted(m.knot_days, days, side="right") - 1, 0, len(m.knot_days) - 2)
    w = np.clip((days - m.knot_days[k]) / (m.knot_days[k + 1] - m.knot_days[k]), 0.0, 1.0)
    z = m.knots[u, k] * (1.0 - w)[..., None] + m.knots[u, k + 1] * w[..., None]
    return np.einsum("...d,...d->...", z, m.drift_cat[m.leaf[p]] + m.drift_col[m.color[p]])


def _utility(
    m: _Model,
    u: np.ndarray,
    p: np.ndarray,
    intent: tuple[np.ndarray | int, ...] | None,
    days: np.ndarray | None,
) -> np.ndarray:
    """Deterministic utility of products ``p`` for users ``u`` (codes, broadcast)."""
    u, p = np.broadcast_arrays(np.asarray(u), np.asarray(p))
    val = (
        m.cat[u, m.leaf[p]]
        + m.brand_aff[u, m.brand[p]]
        + m.color_aff[u, m.color[p]]
        + m.style_aff[u, m.style[p]]
        + W_QUALITY * m.quality[p]
        - m.price_sens[u] * m.log_rel_price[p]
        + W_PAIR * _pair_noise(u, p, m.seed)
    )
    if intent is not None:
        val = val + W_REL * relevance(
            m.leaf[p], m.mid[p], m.color[p], m.brand[p], m.material[p], m.style[p], intent
        )
    if days is not None:
        val = val + _drift(m, u, p, np.broadcast_to(np.asarray(days, dtype=np.float64), u.shape))
    return val


# ---------------------------------------------------------------------------
# Public truth API.


def load_truth(folder: str | Path) -> Truth:
    """Read the hidden truth of a synthetic shop.

    Parameters
    ----------
    folder : the dataset folder written by :func:`generate`, or its ``truth/``.
    """
    root = Path(folder)
    if (root / "truth" / "params.json").exists():
        root = root / "truth"
    if not (root / "params.json").exists():
        raise VitrineError(f"{folder}: no synthetic truth here; expected truth/params.json from `vitrine synth`")
    params = json.loads((root / "params.json").read_text())
    products = pd.read_parquet(root / "products.parquet")
    users = pd.read_parquet(root / "users.parquet")
    queries = pd.read_parquet(root / "queries.parquet")
    with np.load(root / "preferences.npz", allow_pickle=False) as z:
        prefs = {k: z[k] for k in z.files}
    prop = np.asarray(json.loads((root / "propensities.json").read_text())["examination"])
    intents = {
        q: (int(a), int(b), int(c), int(d), int(e))
        for q, a, b, c, d, e in zip(
            queries["query"], queries["leaf"], queries["color"], queries["brand"],
            queries["material"], queries["style"], strict=True,
        )
    }  # fmt: skip
    return Truth(
        params=params,
        products=products,
        users=users,
        queries=queries,
        preferences=prefs,
        propensities=prop,
        _product_index=pd.Index(products["product_id"]),
        _user_index=pd.Index(users["user_id"]),
        _intents=intents,
    )


def _model_from_truth(truth: Truth) -> _Model:
    p, pr = truth.products, truth.preferences
    return _Model(
        leaf=p["leaf_index"].to_numpy(),
        mid=p["mid_index"].to_numpy(),
        top=p["top_index"].to_numpy(),
        color=p["color_index"].to_numpy(),
        brand=p["brand_index"].to_numpy(),
        material=p["material_index"].to_numpy(),
        style=p["style_index"].to_numpy(),
        quality=p["quality"].to_numpy(),
        log_rel_price=p["log_rel_price"].to_numpy(),
        cat=pr["category"],
        brand_aff=pr["brand"],
        color_aff=pr["color"],
        style_aff=pr["style"],
        price_sens=pr["price_sensitivity"],
        knots=pr["drift_knots"],
        drift_cat=pr["drift_category"],
        drift_col=pr["drift_color"],
        knot_days=pr["knot_days"],
        seed=int(truth.params["seed"]),
    )


def utility(
    truth: Truth,
    user_ids: str | Sequence[str] | np.ndarray,
    product_ids: str | Sequence[str] | np.ndarray,
    query: str | None | Sequence[str | None] = None,
    time: object = None,
) -> np.ndarray:
    """Hidden utility of products for users, as the simulator used it (without event noise).

    Parameters
    ----------
    truth : from :func:`load_truth`.
    user_ids, product_ids : ids; broadcast against each other (one user and
        many products, or equal-length arrays of pairs).
    query : None (browsing, no relevance term), one query string, or one per
        pair (broadcast like the ids). Queries the simulator did not generate
        are parsed from the vocabulary.
    time : None (long-term preferences, no drift) or timestamps (scalar or
        broadcast like the ids) at which to evaluate drifting preferences.

    Returns
    -------
    ndarray of float64 with the broadcast shape of the ids. Sorting a user's
    candidates by it descending gives the ideal ranking.
    """
    m = getattr(truth, "_model", None)
    if m is None:
        m = _model_from_truth(truth)
        truth._model = m  # type: ignore[attr-defined]
    u = truth.user_codes(user_ids)
    p = truth.product_codes(product_ids)
    u, p = np.broadcast_arrays(u, p)
    days = None
    if time is not None:
        ts = pd.to_datetime(np.asarray(time).ravel()).to_numpy("datetime64[ms]")
        days = (ts - START).astype(np.int64) / 86_400_000.0
        days = np.broadcast_to(days.reshape(np.shape(time)), u.shape)
    if query is None or isinstance(query, str):
        it = truth.intent(query)
        return _utility(m, u, p, it, days)
    qs = np.broadcast_to(np.asarray(query, dtype=object), u.shape)
    out = np.empty(u.shape, dtype=np.float64)
    for q in pd.unique(qs.ravel()):
        sel = qs == q
        it = truth.intent(q)
        d = None if days is None else days[sel]
        out[sel] = _utility(m, u[sel], p[sel], it, d)
    return out


def _phrases(lang: str) -> list[tuple[str, int, int]]:
    v = T.vocab(lang)
    out: list[tuple[str, int, int]] = []
    for field_i, words in enumerate(
        (v.leaves_query, v.colors_query, v.brands, v.materials_query, v.styles_query)
    ):
        for i, w in enumerate(words):
            out.append((w.lower(), field_i, i))
        if field_i == 0:
            out += [(w.lower(), 0, i) for i, w in enumerate(v.leaves)]
        if field_i == 3:
            out += [(w.lower(), 3, i) for i, w in enumerate(v.materials)]
    out.sort(key=lambda x: -len(x[0]))
    return out


def parse_query(query: str, lang: str = "en") -> tuple[int, int, int, int, int]:
    """Intent codes (leaf, color, brand, material, style; -1 = unsaid) read from a query's words."""
    text = query.lower()
    found = [-1] * 5
    for phrase, f, i in _phrases(lang):
        if lang == "zh":
            pos = text.find(phrase)
            span = (pos, pos + len(phrase)) if pos >= 0 else None
        else:
            mt = re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text)
            span = mt.span() if mt else None
        if span is None:
            continue
        if found[f] < 0:
            found[f] = i
        text = text[: span[0]] + " " * (span[1] - span[0]) + text[span[1] :]
    return (found[0], found[1], found[2], found[3], found[4])


# ---------------------------------------------------------------------------
# Images: one template per (leaf shape, colour, pattern, variant), encoded once.


def _polygon(xx: np.ndarray, yy: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
    inside = np.zeros(xx.shape, dtype=bool)
    n = len(pts)
    for i in range(n):
        x0, y0 = pts[i]
        x1, y1 = pts[(i + 1) % n]
        if y0 == y1:
            continue
        cond = (yy >= min(y0, y1)) & (yy < max(y0, y1))
        xc = x0 + (yy - y0) * (x1 - x0) / (y1 - y0)
        inside ^= cond & (xx < xc)
    return inside


def _shape_mask(shape: str, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    def rect(x0, y0, x1, y1):
        return (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)

    def ell(cx, cy, rx, ry):
        return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0

    def poly(*pts):
        return _polygon(xx, yy, list(pts))

    if shape == "tshirt":
        return poly((0.3, 0.15), (0.42, 0.15), (0.5, 0.22), (0.58, 0.15), (0.7, 0.15), (0.9, 0.32),
                    (0.8, 0.44), (0.7, 0.37), (0.7, 0.88), (0.3, 0.88), (0.3, 0.37), (0.2, 0.44),
                    (0.1, 0.32))  # fmt: skip
    if shape == "jacket":
        body = poly((0.3, 0.12), (0.7, 0.12), (0.9, 0.3), (0.93, 0.86), (0.8, 0.86), (0.72, 0.42),
                    (0.72, 0.88), (0.28, 0.88), (0.28, 0.42), (0.2, 0.86), (0.07, 0.86),
                    (0.1, 0.3))  # fmt: skip
        return body & ~rect(0.485, 0.14, 0.515, 0.9)
    if shape == "dress":
        return poly((0.4, 0.1), (0.6, 0.1), (0.62, 0.38), (0.84, 0.9), (0.16, 0.9), (0.38, 0.38))
    if shape == "trousers":
        return poly((0.28, 0.1), (0.72, 0.1), (0.78, 0.9), (0.56, 0.9), (0.5, 0.36), (0.44, 0.9),
                    (0.22, 0.9))  # fmt: skip
    if shape == "sneaker":
        return poly((0.08, 0.42), (0.35, 0.42), (0.55, 0.55), (0.86, 0.6), (0.93, 0.72),
                    (0.93, 0.8), (0.08, 0.8))  # fmt: skip
    if shape == "boot":
        return poly((0.3, 0.1), (0.58, 0.1), (0.6, 0.58), (0.86, 0.66), (0.9, 0.86), (0.3, 0.86))
    if shape == "sandal":
        return (ell(0.5, 0.8, 0.4, 0.07) | rect(0.28, 0.45, 0.35, 0.8) | rect(0.6, 0.5, 0.67, 0.8)
                | rect(0.28, 0.45, 0.67, 0.53))  # fmt: skip
    if shape == "slipper":
        return (ell(0.5, 0.76, 0.42, 0.32) & (yy <= 0.76)) | rect(0.08, 0.72, 0.92, 0.82)
    if shape == "backpack":
        handle = ell(0.5, 0.24, 0.11, 0.09) & ~ell(0.5, 0.24, 0.06, 0.05) & (yy < 0.28)
        return ell(0.5, 0.45, 0.27, 0.2) | rect(0.23, 0.45, 0.77, 0.9) | handle
    if shape == "tote":
        straps = ell(0.5, 0.4, 0.2, 0.28) & ~ell(0.5, 0.4, 0.15, 0.23) & (yy < 0.4)
        return rect(0.2, 0.4, 0.8, 0.9) | straps
    if shape == "handbag":
        handle = ell(0.5, 0.42, 0.18, 0.22) & ~ell(0.5, 0.42, 0.13, 0.17) & (yy < 0.42)
        return poly((0.3, 0.42), (0.7, 0.42), (0.86, 0.86), (0.14, 0.86)) | handle
    if shape == "wallet":
        return rect(0.12, 0.32, 0.88, 0.72) & ~ell(0.5, 0.52, 0.045, 0.045)
    if shape == "mug":
        handle = ell(0.66, 0.55, 0.17, 0.16) & ~ell(0.66, 0.55, 0.1, 0.09) & (xx > 0.64)
        return rect(0.22, 0.28, 0.64, 0.86) | handle
    if shape == "lamp":
        return (poly((0.34, 0.1), (0.66, 0.1), (0.8, 0.42), (0.2, 0.42)) | rect(0.47, 0.42, 0.53, 0.82)
                | ell(0.5, 0.85, 0.22, 0.06))  # fmt: skip
    if shape == "cushion":
        return np.abs(xx - 0.5) ** 4 + np.abs(yy - 0.5) ** 4 <= 0.35**4
    if shape == "vase":
        return ell(0.5, 0.63, 0.27, 0.27) | rect(0.42, 0.15, 0.58, 0.42) | rect(0.37, 0.11, 0.63, 0.17)
    if shape == "headphones":
        band = ell(0.5, 0.52, 0.35, 0.36) & ~ell(0.5, 0.52, 0.29, 0.3) & (yy < 0.56)
        return band | ell(0.18, 0.62, 0.08, 0.15) | ell(0.82, 0.62, 0.08, 0.15)
    if shape == "speaker":
        return (rect(0.28, 0.12, 0.72, 0.9) & ~(ell(0.5, 0.63, 0.14, 0.14) & ~ell(0.5, 0.63, 0.09, 0.09))
                & ~ell(0.5, 0.3, 0.05, 0.05))  # fmt: skip
    if shape == "phonecase":
        body = np.abs((xx - 0.5) / 0.19) ** 6 + np.abs((yy - 0.5) / 0.4) ** 6 <= 1.0
        return body & ~ell(0.4, 0.2, 0.045, 0.045)
    if shape == "watch":
        return ell(0.5, 0.5, 0.22, 0.22) | rect(0.4, 0.06, 0.6, 0.94)
    if shape == "ball":
        return ell(0.5, 0.5, 0.37, 0.37)
    if shape == "mat":
        return rect(0.12, 0.4, 0.78, 0.7) | ell(0.78, 0.55, 0.1, 0.15)
    if shape == "bottle":
        return rect(0.37, 0.3, 0.63, 0.9) | ell(0.5, 0.31, 0.13, 0.09) | rect(0.43, 0.1, 0.57, 0.3)
    if shape == "cap":
        return (ell(0.47, 0.62, 0.3, 0.3) & (yy <= 0.62)) | poly((0.47, 0.56), (0.94, 0.6),
                                                                (0.94, 0.66), (0.47, 0.66))  # fmt: skip
    raise ValueError(f"Unknown shape {shape!r}; add it to _shape_mask.")


VARIANTS: tuple[tuple[float, float, float], ...] = (  # (scale, dx, dy)
    (1.0, 0.0, 0.0),
    (0.9, -0.03, 0.02),
    (0.9, 0.03, 0.02),
    (0.95, 0.0, -0.02),
)


class _ImageCache:
    """PNG bytes per (leaf, colour, pattern, variant), drawn with NumPy on first use."""

    def __init__(self, size: int) -> None:
        self.size = size
        c = (np.arange(size) + 0.5) / size
        self.yy, self.xx = np.meshgrid(c, c, indexing="ij")
        px = np.arange(size)
        pyy, pxx = np.meshgrid(px, px, indexing="ij")
        stripe_w = max(2, size // 16)
        self.stripes = ((pxx + pyy) // stripe_w) % 3 == 0
        cell = 0.125
        dx = (self.xx % cell) - cell / 2
        dy = (self.yy % cell) - cell / 2
        self.dots = dx**2 + dy**2 <= (0.32 * cell) ** 2
        self.masks: dict[tuple[int, int], np.ndarray] = {}
        self.png: dict[tuple[int, int, int, int], bytes] = {}

    def mask(self, leaf: int, variant: int) -> np.ndarray:
        key = (leaf, variant)
        if key not in self.masks:
            s, dx, dy = VARIANTS[variant]
            xx = (self.xx - 0.5 - dx) / s + 0.5
            yy = (self.yy - 0.5 - dy) / s + 0.5
            self.masks[key] = _shape_mask(T.LEAVES[leaf].shape, xx, yy)
        return self.masks[key]

    def get(self, leaf: int, color: int, pattern: int, variant: int) -> bytes:
        key = (leaf, color, pattern, variant)
        png = self.png.get(key)
        if png is None:
            from PIL import Image

            img = np.empty((self.size, self.size, 3), dtype=np.uint8)
            img[:] = T.BACKGROUND_RGB
            m = self.mask(leaf, variant)
            rgb = np.asarray(T.COLOR_RGB[color], dtype=np.float64)
            img[m] = rgb.astype(np.uint8)
            if pattern:
                # Pattern ink: a darker shade, lighter for very dark colours.
                ink = rgb * 0.55 if rgb.mean() > 60 else rgb + 90
                if rgb.mean() > 240:
                    ink = np.asarray((150.0, 160.0, 185.0))
                pm = m & (self.stripes if pattern == 1 else self.dots)
                img[pm] = ink.astype(np.uint8)
            buf = BytesIO()
            Image.fromarray(img, "RGB").save(buf, format="PNG", compress_level=6)
            png = buf.getvalue()
            self.png[key] = png
        return png


def _write_images(
    folder: Path, names: list[str], leaf, color, pattern, variant, size: int, bar
) -> None:
    cache = _ImageCache(size)
    folder.mkdir(parents=True, exist_ok=True)
    key = ((leaf.astype(np.int64) * 16 + color) * 4 + pattern) * 4 + variant
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    base = str(folder) + os.sep
    blobs: dict[int, bytes] = {}
    step = max(1, len(names) // 100)
    for i, (name, k) in enumerate(zip(names, key.tolist(), strict=True)):
        b = blobs.get(k)
        if b is None:
            b = cache.get(int(leaf[i]), int(color[i]), int(pattern[i]), int(variant[i]))
            blobs[k] = b
        fd = os.open(base + name, flags, 0o644)
        try:
            os.write(fd, b)
        finally:
            os.close(fd)
        if bar is not None and (i + 1) % step == 0:
            bar.update(step)
    if bar is not None:
        bar.update(len(names) - step * (len(names) // step))


# ---------------------------------------------------------------------------
# Generation.


def _ids(prefix: str, n: int) -> np.ndarray:
    w = max(1, len(str(max(n - 1, 0))))
    return np.asarray([f"{prefix}{i:0{w}d}" for i in range(n)], dtype=object)


def _gumbel_argmax(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=-1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=False)


def _check_args(products, users, lang, sessions_per_user, image_size, propensities) -> np.ndarray:
    if not isinstance(products, int | np.integer) or products < 1:
        raise ValueError(f"products must be a positive integer, got {products!r}.")
    if not isinstance(users, int | np.integer) or users < 1:
        raise ValueError(f"users must be a positive integer, got {users!r}.")
    if lang not in T.LANGUAGES:
        raise ValueError(f"Unknown language {lang!r}; choose from {list(T.LANGUAGES)}.")
    if not sessions_per_user > 0:
        raise ValueError(f"sessions_per_user must be > 0, got {sessions_per_user!r}.")
    if not 8 <= image_size <= 1024:
        raise ValueError(f"image_size must be between 8 and 1024 pixels, got {image_size!r}.")
    if propensities is None:
        return 1.0 / np.arange(1, MAX_PAGE + 1) ** PROPENSITY_POWER
    prop = np.asarray(propensities, dtype=np.float64)
    if prop.shape != (MAX_PAGE,) or not ((prop > 0) & (prop <= 1)).all():
        raise ValueError(
            f"propensities must be {MAX_PAGE} examination probabilities in (0, 1], one per "
            f"position; got {prop.shape[0] if prop.ndim == 1 else prop.shape} values."
        )
    return prop


def _prepare_out(out: Path) -> Path:
    if out.exists():
        if not out.is_dir():
            raise VitrineError(f"{out}: exists and is not a folder; choose another output path")
        meta = out / "dataset.json"
        is_synth = meta.exists() and '"vitrine synth"' in meta.read_text(errors="ignore")
        if any(out.iterdir()) and not is_synth:
            raise VitrineError(
                f"{out}: folder is not empty and was not written by `vitrine synth`; "
                "choose an empty or new folder"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.synth-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "truth").mkdir(parents=True)
    return tmp


def _swap_in(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate(
    out: str | Path,
    products: int = 2000,
    users: int = 500,
    seed: int = 0,
    lang: str = "en",
    sessions_per_user: float = 8.0,
    progress: bool = False,
    image_size: int = 64,
    *,
    days: int = 90,
    images: bool = True,
    propensities: Sequence[float] | None = None,
    judged_queries: int = 200,
    pages_truth: bool = True,
) -> SynthSummary:
    """Generate a synthetic shop with hidden ground truth as a dataset folder.

    Parameters
    ----------
    out : folder to write (created; replaced if it holds an earlier synthetic shop).
    products, users : catalog and shopper counts.
    seed : same seed, same bytes in every table.
    lang : "en" or "zh" (Chinese titles, descriptions, queries and reviews).
    sessions_per_user : mean number of sessions per shopper over ``days``.
    progress : show a tqdm progress bar.
    image_size : side of each product PNG in pixels.
    days : length of the log window (starting 2024-01-01).
    images : write the PNG files (the ``image`` column is always filled).
    propensities : examination probability of positions 1..20 (default 1/position**0.8).
    judged_queries : how many distinct queries get relevance judgments.
    pages_truth : also write ``truth/pages.parquet`` (one row per impression).

    Returns
    -------
    SynthSummary with counts and paths.

    Raises
    ------
    ValueError for impossible arguments; VitrineError when ``out`` holds other data.
    """
    t_start = time.perf_counter()
    prop = _check_args(products, users, lang, sessions_per_user, image_size, propensities)
    out = Path(out)
    v = T.vocab(lang)
    n_p, n_u = int(products), int(users)
    timings: dict[str, float] = {}
    stages = ["products", "images", "users", "sessions", "clicks", "events", "reviews", "catalog",
              "judgments", "truth"]  # fmt: skip
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(stages) - 1 + (n_p if images else 0), desc="synth", unit="step")

    def stage(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 4)
        if bar is not None:
            bar.set_postfix_str(name)
            if name != "images":
                bar.update(1)
        return time.perf_counter()

    tmp = _prepare_out(out)
    try:
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)]
        t0 = time.perf_counter()
        cat = _make_products(rngs[0], n_p, v)
        t0 = stage("products", t0)
        if images:
            _write_images(
                tmp / "images", [f"{pid}.png" for pid in cat["product_id"]], cat["leaf"],
                cat["color"], cat["pattern"], cat["variant"], image_size, bar,
            )  # fmt: skip
        t0 = stage("images", t0)
        usr = _make_users(rngs[1], n_u, days)
        model = _Model(
            leaf=cat["leaf"], mid=cat["mid"], top=cat["top"], color=cat["color"], brand=cat["brand"],
            material=cat["material"], style=cat["style"], quality=cat["quality"],
            log_rel_price=cat["log_rel_price"], cat=usr["category"], brand_aff=usr["brand"],
            color_aff=usr["color"], style_aff=usr["style"], price_sens=usr["price_sensitivity"],
            knots=usr["drift_knots"], drift_cat=usr["drift_category"], drift_col=usr["drift_color"],
            knot_days=usr["knot_days"], seed=int(seed),
        )  # fmt: skip
        t0 = stage("users", t0)
        pages = _make_pages(rngs[2], model, cat, usr, sessions_per_user, days, v)
        t0 = stage("sessions", t0)
        imp = _simulate_clicks(rngs[3], model, pages, prop)
        t0 = stage("clicks", t0)
        ev = _events_table(rngs[4], pages, imp, cat, usr)
        _write_parquet(ev["table"], tmp / "events.parquet")
        t0 = stage("events", t0)
        cat["sales"] = cat["prior_sales"] + np.bincount(imp["product"][imp["purchase"]], minlength=n_p)
        rev = _make_reviews(rngs[5], cat, n_u, days, v)
        _write_parquet(rev["table"], tmp / "reviews.parquet")
        t0 = stage("reviews", t0)
        _write_parquet(_products_table(rngs[6], cat, rev, v), tmp / "products.parquet")
        t0 = stage("catalog", t0)
        jud = _make_judgments(rngs[7], model, cat, pages, judged_queries)
        _write_parquet(jud, tmp / "judgments.parquet")
        t0 = stage("judgments", t0)
        _write_truth(tmp / "truth", cat, usr, pages, imp, prop, seed, lang, days, pages_truth)
        meta = {
            "name": f"synth-{lang}-{n_p}-s{seed}",
            "source": "vitrine synth",
            "language": lang,
            "protocol": "rerank",
            "description": "Synthetic marketplace with hidden ground truth in truth/.",
            "currency": v.currency,
            "generator_version": GENERATOR_VERSION,
            "seed": int(seed),
            "products": n_p,
            "users": n_u,
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        stage("truth", t0)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    n_ev = ev["table"].num_rows
    return SynthSummary(
        path=out,
        tables={n: out / f"{n}.parquet" for n in ("products", "events", "reviews", "judgments")},
        truth=out / "truth",
        products=n_p,
        users=n_u,
        sessions=int(pages["n_sessions"]),
        requests=len(pages["user"]),
        events=n_ev,
        impressions=len(imp["product"]),
        clicks=int(imp["click"].sum()),
        add_to_carts=int(imp["cart"].sum()),
        purchases=int(imp["purchase"].sum()),
        reviews=rev["table"].num_rows,
        judgments=jud.num_rows,
        queries=int(pages["n_queries"]),
        color_only_in_image=int((~cat["color_in_text"]).sum()),
        seconds=round(time.perf_counter() - t_start, 3),
        timings=timings,
    )


def _make_products(rng: np.random.Generator, n: int, v: T.Vocab) -> dict:
    n_leaf = len(T.LEAVES)
    leaf_w = rng.dirichlet(np.full(n_leaf, 8.0))
    leaf = np.sort(rng.choice(n_leaf, size=n, p=leaf_w)).astype(np.int16)
    rng.shuffle(leaf)
    lt = T.LEAVES
    top = np.asarray([lf.top for lf in lt], dtype=np.int16)[leaf]
    mid = np.asarray([lf.mid for lf in lt], dtype=np.int16)[leaf]
    # Brands: BRANDS_PER_TOP per top category, Zipf-ish shares.
    bw = 1.0 / np.arange(1, T.BRANDS_PER_TOP + 1) ** 0.7
    rng.shuffle(bw)
    brand = (top * T.BRANDS_PER_TOP + rng.choice(T.BRANDS_PER_TOP, size=n, p=bw / bw.sum())).astype(np.int16)
    tier = np.asarray(T.BRAND_TIERS)[brand % T.BRANDS_PER_TOP]
    n_col = len(T.COLORS)
    cw = rng.dirichlet(np.full(n_col, 5.0))
    color = rng.choice(n_col, size=n, p=cw).astype(np.int16)
    mat_tab = np.full((n_leaf, 5), -1, dtype=np.int16)
    mat_n = np.zeros(n_leaf, dtype=np.int64)
    for i, lf in enumerate(lt):
        mat_tab[i, : len(lf.materials)] = lf.materials
        mat_n[i] = len(lf.materials)
    material = mat_tab[leaf, (rng.random(n) * mat_n[leaf]).astype(np.int64)]
    style = rng.integers(0, len(T.STYLES), size=n).astype(np.int16)
    pattern = rng.choice(3, size=n, p=[0.6, 0.25, 0.15]).astype(np.int8)
    variant = rng.integers(0, len(VARIANTS), size=n).astype(np.int8)
    quality = rng.normal(0.0, 1.0, n) + 0.3 * (tier - 1)
    sized = np.asarray([lf.sized for lf in lt])[leaf]
    size_fit = np.where(sized, rng.choice(3, size=n, p=[0.2, 0.6, 0.2]), -1).astype(np.int8)
    base = np.asarray([lf.base_price for lf in lt])[leaf]
    log_rel = 0.35 * (tier - 1) + 0.1 * quality + rng.normal(0.0, 0.3, n)
    price = np.round(base * np.exp(log_rel) * v.price_factor, 2)
    price = np.maximum(price, 0.99)
    log_rel_price = np.log(price / (base * v.price_factor))
    popularity = rng.normal(0.0, 1.0, n)
    prior_sales = np.floor(np.exp(2.0 + popularity + 0.4 * quality + rng.normal(0, 0.3, n))).astype(np.int64)
    # Exactly a third (rounded down) show their colour only in the image.
    color_in_text = np.ones(n, dtype=bool)
    color_in_text[rng.permutation(n)[: n // COLOR_ONLY_IN_IMAGE]] = False
    material_in_text = rng.random(n) >= 0.2
    in_stock = rng.random(n) < 0.95
    created = START - (rng.random(n) * 720 * 86400).astype("timedelta64[s]")
    return {
        "product_id": _ids("p", n), "leaf": leaf, "top": top, "mid": mid, "brand": brand,
        "tier": tier, "color": color, "material": material, "style": style, "pattern": pattern,
        "variant": variant, "quality": quality, "size_fit": size_fit, "price": price,
        "log_rel_price": log_rel_price, "popularity": popularity, "prior_sales": prior_sales,
        "color_in_text": color_in_text, "material_in_text": material_in_text,
        "in_stock": in_stock, "created_at": created,
    }  # fmt: skip


def _make_users(rng: np.random.Generator, n: int, days: int) -> dict:
    n_leaf, n_top = len(T.LEAVES), len(T.TOPS)
    leaf_top = np.asarray([lf.top for lf in T.LEAVES])
    top_aff = rng.normal(0.0, 1.0, (n, n_top))
    category = top_aff[:, leaf_top] + rng.normal(0.0, 0.5, (n, n_leaf))
    n_brand = T.BRANDS_PER_TOP * n_top
    brand = rng.normal(0.0, 0.4, (n, n_brand))
    fav = rng.random((n, n_brand)) < 0.1
    brand = brand + fav * 1.0
    color = rng.normal(0.0, 0.7, (n, len(T.COLORS)))
    style = rng.normal(0.0, 0.4, (n, len(T.STYLES)))
    price_sens = np.exp(rng.normal(0.0, 0.5, n))
    activity = np.exp(rng.normal(0.0, 0.8, n))
    knot_days = np.arange(0, days + 7, 7, dtype=np.float64)
    steps = rng.normal(0.0, DRIFT_STEP, (n, len(knot_days), DRIFT_DIM))
    steps[:, 0] = 0.0
    knots = np.cumsum(steps, axis=1)
    drift_category = rng.normal(0.0, 1.0, (n_leaf, DRIFT_DIM))
    drift_color = rng.normal(0.0, 0.7, (len(T.COLORS), DRIFT_DIM))
    return {
        "user_id": _ids("u", n), "category": category, "brand": brand, "color": color,
        "style": style, "price_sensitivity": price_sens, "activity": activity,
        "knot_days": knot_days, "drift_knots": knots, "drift_category": drift_category,
        "drift_color": drift_color,
    }  # fmt: skip


def _query_text(intent: tuple[int, int, int, int, int], v: T.Vocab) -> str:
    leaf, col, brand, mat, sty = intent
    words = []
    if brand >= 0:
        words.append(v.brands[brand] + (" " if v.sep == "" else ""))
    if sty >= 0:
        words.append(v.styles_query[sty])
    if col >= 0:
        words.append(v.colors_query[col])
    if mat >= 0:
        words.append(v.materials_query[mat])
    words.append(v.leaves_query[leaf])
    text = (" " if v.sep == " " else "").join(words)
    return text.lower() if v.sep == " " else text


def _make_pages(rng, m: _Model, cat: dict, usr: dict, spu: float, days: int, v: T.Vocab) -> dict:
    n_u, n_p = len(usr["user_id"]), len(cat["leaf"])
    n_s = max(1, int(round(n_u * spu)))
    # Every user gets a session; the rest follow activity.
    extra = max(0, n_s - n_u)
    act = usr["activity"] / usr["activity"].sum()
    s_user = np.concatenate([np.arange(min(n_u, n_s)), rng.choice(n_u, size=extra, p=act)])
    s_start = rng.random(n_s) * (days * 86400 - 3600)
    order = np.lexsort((s_start, s_user))
    s_user, s_start = s_user[order], s_start[order]
    s_search = rng.random(n_s) < SEARCH_SHARE
    n_pages = 1 + (rng.random(n_s) < SECOND_PAGE_SHARE)
    # Pages.
    sess = np.repeat(np.arange(n_s), n_pages)
    first = np.r_[True, sess[1:] != sess[:-1]]
    page_t = s_start[sess] + np.where(first, 0.0, 300.0 + rng.random(len(sess)) * 300.0)
    page_t = np.round(page_t * 1000.0) / 1000.0  # whole milliseconds, as written
    user = s_user[sess]
    search = s_search[sess]
    n = len(sess)
    d = page_t / 86400.0
    k = np.clip(np.searchsorted(m.knot_days, d, side="right") - 1, 0, len(m.knot_days) - 2)
    w = ((d - m.knot_days[k]) / (m.knot_days[k + 1] - m.knot_days[k]))[:, None]
    z = m.knots[user, k] * (1 - w) + m.knots[user, k + 1] * w  # (n, D)
    leaf = _gumbel_argmax(rng, m.cat[user] + z @ m.drift_cat.T)
    col_pref = _gumbel_argmax(rng, m.color_aff[user] + z @ m.drift_col.T)
    top = np.asarray([lf.top for lf in T.LEAVES])[leaf]
    brand_cols = top[:, None] * T.BRANDS_PER_TOP + np.arange(T.BRANDS_PER_TOP)
    brand_pref = brand_cols[np.arange(n), _gumbel_argmax(rng, m.brand_aff[user[:, None], brand_cols])]
    style_pref = _gumbel_argmax(rng, m.style_aff[user])
    mats = [lf.materials for lf in T.LEAVES]
    mat_n = np.asarray([len(x) for x in mats])
    mat_tab = np.asarray([list(x) + [x[0]] * (5 - len(x)) for x in mats])
    mat_pick = mat_tab[leaf, (rng.random(n) * mat_n[leaf]).astype(np.int64)]
    r = rng.random(n)
    kind = np.searchsorted(np.cumsum([0.35, 0.25, 0.12, 0.1, 0.1, 0.08]), r, side="right")
    kind = np.where(search, kind, 0)  # browsing pages: the leaf only
    q_col = np.where((kind == 1) | (kind == 5), col_pref, -1)
    q_brand = np.where(kind == 2, brand_pref, -1)
    q_style = np.where(kind == 3, style_pref, -1)
    q_mat = np.where((kind == 4) | (kind == 5), mat_pick, -1)
    key = ((((leaf.astype(np.int64) * 64 + q_col + 1) * 64 + q_brand + 1) * 64 + q_mat + 1) * 64) + q_style + 1
    uniq, qidx = np.unique(key, return_inverse=True)
    intents = []
    for kk in uniq.tolist():
        s_ = kk % 64 - 1
        kk //= 64
        m_ = kk % 64 - 1
        kk //= 64
        b_ = kk % 64 - 1
        kk //= 64
        c_ = kk % 64 - 1
        intents.append((kk // 64, c_, b_, m_, s_))
    q_text = np.asarray([_query_text(it, v) for it in intents], dtype=object)
    pool, pool_score = _pools(m, cat, intents, n_p)
    searched = np.zeros(len(uniq), dtype=bool)
    searched[qidx[search]] = True
    return {
        "user": user, "session": sess, "time": page_t, "search": search, "qidx": qidx,
        "intents": np.asarray(intents, dtype=np.int64).reshape(-1, 5), "q_text": q_text,
        "pool": pool, "pool_score": pool_score, "n_sessions": n_s,
        "n_queries": int(searched.sum()), "searched": searched,
    }  # fmt: skip


def _observable_score(m: _Model, cat: dict, idx: np.ndarray, it) -> np.ndarray:
    """What the logging ranker sees: text match on visible attributes, plus popularity."""
    leaf, col, brand, mat, sty = it
    s = 2.0 * (m.leaf[idx] == leaf) + 0.5 * (m.mid[idx] == T.LEAVES[leaf].mid)
    if col >= 0:
        s = s + ((m.color[idx] == col) & cat["color_in_text"][idx])
    if brand >= 0:
        s = s + (m.brand[idx] == brand)
    if mat >= 0:
        s = s + ((m.material[idx] == mat) & cat["material_in_text"][idx])
    if sty >= 0:
        s = s + (m.style[idx] == sty)
    return s + 0.3 * np.log1p(cat["prior_sales"][idx])


def _pools(m: _Model, cat: dict, intents: list, n_p: int) -> tuple[np.ndarray, np.ndarray]:
    """Top POOL candidates (catalog codes, -1 pad) and their ranker scores per intent."""
    by_leaf = [np.flatnonzero(m.leaf == i) for i in range(len(T.LEAVES))]
    by_top = [np.flatnonzero(m.top == i) for i in range(len(T.TOPS))]
    k = min(POOL, n_p)
    pool = np.full((len(intents), POOL), -1, dtype=np.int64)
    score = np.full((len(intents), POOL), -np.inf)
    for qi, it in enumerate(intents):
        cand = by_leaf[it[0]]
        if len(cand) < k:
            cand = by_top[T.LEAVES[it[0]].top]
            if len(cand) < k:
                cand = np.arange(n_p)
        s = _observable_score(m, cat, cand, it)
        if len(cand) > k:
            top = np.argpartition(-s, k - 1)[:k]
        else:
            top = np.arange(len(cand))
        top = top[np.lexsort((cand[top], -s[top]))]
        pool[qi, : len(top)] = cand[top]
        score[qi, : len(top)] = s[top]
    return pool, score


def _simulate_clicks(rng, m: _Model, pages: dict, prop: np.ndarray) -> dict:
    n = len(pages["user"])
    qidx = pages["qidx"]
    noisy = pages["pool_score"][qidx] + rng.normal(0.0, RANKER_NOISE, (n, POOL))
    order = np.argsort(-noisy, axis=1, kind="stable")[:, :MAX_PAGE]
    shown = np.take_along_axis(pages["pool"][qidx], order, axis=1)
    n_show = np.minimum(rng.integers(MIN_PAGE, MAX_PAGE + 1, size=n), (pages["pool"][qidx] >= 0).sum(1))
    pos = np.broadcast_to(np.arange(1, MAX_PAGE + 1), (n, MAX_PAGE))
    valid = (pos <= n_show[:, None]) & (shown >= 0)
    page = np.broadcast_to(np.arange(n)[:, None], (n, MAX_PAGE))[valid]
    product = shown[valid]
    position = pos[valid]
    user = pages["user"][page]
    it = tuple(pages["intents"][qidx[page], j] for j in range(5))
    days = np.round(pages["time"][page] * 1000.0) / 86_400_000.0
    u = _utility(m, user, product, it, days)
    noise = rng.normal(0.0, EVENT_NOISE, len(u))
    attract = _sigmoid(CLICK_SLOPE * (u + noise - CLICK_OFFSET))
    exam = prop[position - 1]
    r = rng.random((3, len(u)))
    click = r[0] < exam * attract
    cart = click & (r[1] < _sigmoid(CART_SLOPE * (u + noise - CART_OFFSET)))
    purchase = cart & (r[2] < _sigmoid(BUY_SLOPE * (u + noise - BUY_OFFSET)))
    return {
        "page": page, "product": product, "position": position.astype(np.int16), "utility": u,
        "attract": attract, "exam": exam, "click": click, "cart": cart, "purchase": purchase,
    }  # fmt: skip


def _events_table(rng, pages: dict, imp: dict, cat: dict, usr: dict) -> dict:
    page = imp["page"]
    t_imp = pages["time"][page]
    t_click = t_imp + 2.0 * imp["position"] + rng.random(len(page)) * 20.0
    t_cart = t_click + 20.0 + rng.random(len(page)) * 100.0
    t_buy = t_cart + 30.0 + rng.random(len(page)) * 270.0
    sel = [np.arange(len(page)), np.flatnonzero(imp["click"]), np.flatnonzero(imp["cart"]),
           np.flatnonzero(imp["purchase"])]  # fmt: skip
    times = [t_imp, t_click, t_cart, t_buy]
    rows = np.concatenate(sel)
    code = np.concatenate([np.full(len(s), c, dtype=np.int8) for c, s in enumerate(sel)])
    ts = np.concatenate([t[s] for t, s in zip(times, sel, strict=True)])
    ts_ms = np.round(ts * 1000.0).astype(np.int64)
    order = np.lexsort((imp["position"][rows], code, page[rows], ts_ms))
    rows, code, ts_ms = rows[order], code[order], ts_ms[order]
    pg = page[rows]
    n_pages = len(pages["user"])
    req_ids = pa.array(_ids("r", n_pages), type=pa.string())
    ses_ids = pa.array(_ids("s", int(pages["n_sessions"])), type=pa.string())
    q = pages["qidx"][pg]
    q_arr = pa.array(q, mask=~pages["search"][pg])
    start_ms = START.astype("datetime64[ms]").astype(np.int64)
    table = pa.table(
        {
            "user_id": pc.take(pa.array(usr["user_id"], type=pa.string()), pa.array(pages["user"][pg])),
            "product_id": pc.take(pa.array(cat["product_id"], type=pa.string()), pa.array(imp["product"][rows])),
            "timestamp": pa.array(start_ms + ts_ms, type=pa.timestamp("ms")),
            "event": pc.take(pa.array(["impression", "click", "add_to_cart", "purchase"]), pa.array(code)),
            "query": pc.take(pa.array(pages["q_text"], type=pa.string()), q_arr),
            "session_id": pc.take(ses_ids, pa.array(pages["session"][pg])),
            "request_id": pc.take(req_ids, pa.array(pg)),
            "position": pa.array(imp["position"][rows].astype(np.int32)),
        }
    )
    return {"table": table}


def _pick(rng, n: int, options: int) -> np.ndarray:
    return rng.integers(0, options, size=n)


def _products_table(rng, cat: dict, rev: dict, v: T.Vocab) -> pa.Table:
    n = len(cat["leaf"])
    sep = v.sep
    leaf, col, mat, sty, pat, brand, top = (cat[k] for k in ("leaf", "color", "material", "style", "pattern", "brand", "top"))
    cit, mit = cat["color_in_text"], cat["material_in_text"]
    show_style = rng.random(n) < 0.6
    s1 = _pick(rng, n, 4)
    s2 = _pick(rng, n, len(v.generic_sentences))
    titles, descs, tags, colors, cats = [], [], [], [], []
    en = v.sep == " "
    for i in range(n):
        lf, c, mt, st, pt, b = int(leaf[i]), int(col[i]), int(mat[i]), int(sty[i]), int(pat[i]), int(brand[i])
        words = []
        if show_style[i]:
            words.append(v.styles[st])
        if cit[i]:
            words.append(v.colors[c])
        if pt:
            words.append(v.patterns[pt])
        if mit[i]:
            words.append(v.materials[mt])
        words.append(v.leaves[lf])
        if en:
            titles.append(v.brands[b] + " " + " ".join(words))
            sw = v.styles_query[st]
            d = f"{'An' if sw[0] in 'aeiou' else 'A'} {sw} {v.leaves_query[lf]}"
            if cit[i]:
                d += f" in {v.colors_query[c]}"
            if mit[i]:
                d += f", made of {v.materials_query[mt]}"
            if pt:
                d += " with a striped pattern" if pt == 1 else " with polka dots"
            d += f" by {v.brands[b]}. "
        else:
            titles.append(v.brands[b] + " " + "".join(words))
            d = f"这款{v.styles[st]}{v.leaves[lf]}"
            if cit[i]:
                d += f"为{v.colors[c]}"
            if mit[i]:
                d += f"，采用{v.materials[mt]}材质"
            if pt:
                d += "，带条纹图案" if pt == 1 else "，带波点图案"
            d += f"，来自{v.brands[b]}。"
        d += v.top_sentences[int(top[i])][s1[i]] + (" " if en else "") + v.generic_sentences[s2[i]]
        descs.append(d)
        tg = [v.leaves_query[lf], v.styles_query[st], v.pattern_tags[pt]]
        if cit[i]:
            tg.append(v.colors_query[c])
        if mit[i]:
            tg.append(v.materials_query[mt])
        tags.append("|".join(tg))
        colors.append(v.colors_query[c] if cit[i] else None)
        lfo = T.LEAVES[lf]
        cats.append(f"{v.tops[lfo.top]} > {v.mids[lfo.mid]} > {v.leaves[lf]}")
    rc = rev["count"] + rng.poisson(2.0 * rev["count"] + 0.5)
    rating = np.clip(3.2 + 1.1 * cat["quality"] + rng.normal(0, 1, n) / np.sqrt(np.maximum(rc, 1)), 1, 5)
    rating = np.round(rating, 1)
    return pa.table(
        {
            "product_id": pa.array(cat["product_id"], type=pa.string()),
            "title": pa.array(titles, type=pa.string()),
            "description": pa.array(descs, type=pa.string()),
            "brand": pc.take(pa.array(v.brands), pa.array(brand)),
            "category": pa.array(cats, type=pa.string()),
            "color": pa.array(colors, type=pa.string()),
            "tags": pa.array(tags, type=pa.string()),
            "price": pa.array(cat["price"]),
            "sales": pa.array(cat["sales"].astype(np.int64)),
            "rating": pa.array(rating, mask=rc == 0),
            "rating_count": pa.array(rc.astype(np.int64)),
            "image": pa.array([f"images/{p}.png" for p in cat["product_id"]], type=pa.string()),
            "in_stock": pa.array(cat["in_stock"]),
            "created_at": pa.array(cat["created_at"].astype("datetime64[ms]").astype(np.int64), type=pa.timestamp("ms")),
        }
    )


def _make_reviews(rng, cat: dict, n_u: int, days: int, v: T.Vocab) -> dict:
    n = len(cat["leaf"])
    lam = np.clip(0.3 + 0.35 * np.log1p(cat["prior_sales"]), 0.0, 6.0)
    count = rng.poisson(lam)
    prod = np.repeat(np.arange(n), count)
    m = len(prod)
    q = cat["quality"][prod]
    stars = np.clip(np.round(3.2 + 1.1 * q + rng.normal(0, 0.8, m)), 1, 5).astype(np.int64)
    s_var = _pick(rng, m, 3)
    fit = cat["size_fit"][prod]
    fit_say = (fit >= 0) & (rng.random(m) < 0.6)
    f_var = _pick(rng, m, 2)
    mit = cat["material_in_text"][prod]
    mat_say = rng.random(m) < np.where(mit, 0.3, 0.7)
    m_var = _pick(rng, m, 2)
    mats = cat["material"][prod]
    joiner = " " if v.sep == " " else ""
    texts = []
    for i in range(m):
        parts = [v.review_by_stars[stars[i] - 1][s_var[i]]]
        if fit_say[i]:
            parts.append(v.review_fit[fit[i]][f_var[i]])
        if mat_say[i]:
            tmpl = (v.review_material_good if stars[i] >= 4 else v.review_material_bad)[m_var[i]]
            word = v.materials_query[mats[i]] if v.sep == " " else v.materials[mats[i]]
            sent = tmpl.format(material=word)
            parts.append(sent[0].upper() + sent[1:])
        texts.append(joiner.join(parts))
    user = rng.integers(0, n_u, size=m)
    ts = START.astype("datetime64[ms]").astype(np.int64) + (rng.random(m) * days * 86400e3).astype(np.int64)
    uid = _ids("u", n_u)
    table = pa.table(
        {
            "product_id": pc.take(pa.array(cat["product_id"], type=pa.string()), pa.array(prod)),
            "text": pa.array(texts, type=pa.string()),
            "rating": pa.array(stars.astype(np.float64)),
            "user_id": pc.take(pa.array(uid, type=pa.string()), pa.array(user)),
            "timestamp": pa.array(ts, type=pa.timestamp("ms")),
        }
    )
    return {"table": table, "count": count}


def _split_of(query: str) -> str:
    h = int.from_bytes(hashlib.md5(query.encode("utf-8")).digest()[:4], "little")
    return "test" if h % 10 < 3 else "train"


def _make_judgments(rng, m: _Model, cat: dict, pages: dict, n_queries: int) -> pa.Table:
    cand_q = np.flatnonzero(pages["searched"])
    if n_queries < len(cand_q):
        cand_q = np.sort(rng.choice(cand_q, size=n_queries, replace=False))
    n_p = len(m.leaf)
    by_leaf = [np.flatnonzero(m.leaf == i) for i in range(len(T.LEAVES))]
    qs, ps, gs = [], [], []
    for qi in cand_q.tolist():
        it = tuple(int(x) for x in pages["intents"][qi])
        pool = pages["pool"][qi]
        parts = [pool[pool >= 0][:20]]
        lp = by_leaf[it[0]]
        if len(lp):
            g = relevance(m.leaf[lp], m.mid[lp], m.color[lp], m.brand[lp], m.material[lp], m.style[lp], it)
            exact = lp[g == 3]
            parts.append(rng.choice(exact, size=min(10, len(exact)), replace=False))
            parts.append(rng.choice(lp, size=min(10, len(lp)), replace=False))
        parts.append(rng.choice(n_p, size=min(5, n_p), replace=False))
        prods = np.unique(np.concatenate(parts))
        grade = relevance(m.leaf[prods], m.mid[prods], m.color[prods], m.brand[prods], m.material[prods], m.style[prods], it)
        qs.append(np.full(len(prods), qi))
        ps.append(prods)
        gs.append(grade)
    q = np.concatenate(qs) if qs else np.zeros(0, dtype=np.int64)
    p = np.concatenate(ps) if ps else np.zeros(0, dtype=np.int64)
    g = np.concatenate(gs) if gs else np.zeros(0, dtype=np.int8)
    splits = np.asarray([_split_of(t) for t in pages["q_text"]], dtype=object)
    return pa.table(
        {
            "query": pc.take(pa.array(pages["q_text"], type=pa.string()), pa.array(q)),
            "product_id": pc.take(pa.array(cat["product_id"], type=pa.string()), pa.array(p)),
            "grade": pa.array(g.astype(np.int64)),
            "split": pc.take(pa.array(splits, type=pa.string()), pa.array(q)),
        }
    )


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez`` but byte-identical across runs (fixed zip timestamps)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def _write_truth(folder: Path, cat: dict, usr: dict, pages: dict, imp: dict, prop: np.ndarray,
                 seed: int, lang: str, days: int, pages_truth: bool) -> None:  # fmt: skip
    v = T.vocab(lang)
    leaf = cat["leaf"]
    fit_names = np.asarray(list(T.SIZE_FITS) + [""], dtype=object)
    products = pa.table(
        {
            "product_id": pa.array(cat["product_id"], type=pa.string()),
            "leaf": pc.take(pa.array([lf.key for lf in T.LEAVES]), pa.array(leaf)),
            "leaf_index": pa.array(leaf.astype(np.int32)),
            "mid_index": pa.array(cat["mid"].astype(np.int32)),
            "top_index": pa.array(cat["top"].astype(np.int32)),
            "color": pc.take(pa.array(list(T.COLORS)), pa.array(cat["color"])),
            "color_index": pa.array(cat["color"].astype(np.int32)),
            "color_in_text": pa.array(cat["color_in_text"]),
            "material": pc.take(pa.array(list(T.MATERIALS)), pa.array(cat["material"])),
            "material_index": pa.array(cat["material"].astype(np.int32)),
            "material_in_text": pa.array(cat["material_in_text"]),
            "style": pc.take(pa.array(list(T.STYLES)), pa.array(cat["style"])),
            "style_index": pa.array(cat["style"].astype(np.int32)),
            "brand_index": pa.array(cat["brand"].astype(np.int32)),
            "brand_tier": pa.array(cat["tier"].astype(np.int32)),
            "pattern": pc.take(pa.array(list(T.PATTERNS)), pa.array(cat["pattern"])),
            "quality": pa.array(cat["quality"]),
            "size_fit": pa.array(fit_names[cat["size_fit"]], type=pa.string()),
            "popularity": pa.array(cat["popularity"]),
            "prior_sales": pa.array(cat["prior_sales"]),
            "log_rel_price": pa.array(cat["log_rel_price"]),
            "image_variant": pa.array(cat["variant"].astype(np.int32)),
        }
    )
    _write_parquet(products, folder / "products.parquet")
    u = usr
    _write_parquet(
        pa.table(
            {
                "user_id": pa.array(u["user_id"], type=pa.string()),
                "price_sensitivity": pa.array(u["price_sensitivity"]),
                "activity": pa.array(u["activity"]),
                "favorite_leaf": pc.take(pa.array([lf.key for lf in T.LEAVES]), pa.array(u["category"].argmax(1))),
                "favorite_color": pc.take(pa.array(list(T.COLORS)), pa.array(u["color"].argmax(1))),
            }
        ),
        folder / "users.parquet",
    )
    _savez(
        folder / "preferences.npz",
        {k: u[k] for k in ("category", "brand", "color", "style", "price_sensitivity", "drift_knots",
                           "drift_category", "drift_color", "knot_days")},
    )  # fmt: skip
    it = pages["intents"]
    _write_parquet(
        pa.table(
            {
                "query": pa.array(pages["q_text"], type=pa.string()),
                "leaf": pa.array(it[:, 0]), "color": pa.array(it[:, 1]), "brand": pa.array(it[:, 2]),
                "material": pa.array(it[:, 3]), "style": pa.array(it[:, 4]),
                "searched": pa.array(pages["searched"]),
                "split": pa.array([_split_of(t) for t in pages["q_text"]], type=pa.string()),
            }
        ),
        folder / "queries.parquet",
    )  # fmt: skip
    n_pages = len(pages["user"])
    req_ids = pa.array(_ids("r", n_pages), type=pa.string())
    q = pages["qidx"]
    _write_parquet(
        pa.table(
            {
                "request_id": req_ids,
                "session_id": pc.take(pa.array(_ids("s", int(pages["n_sessions"])), type=pa.string()), pa.array(pages["session"])),
                "user_id": pc.take(pa.array(usr["user_id"], type=pa.string()), pa.array(pages["user"])),
                "timestamp": pa.array(START.astype("datetime64[ms]").astype(np.int64) + np.round(pages["time"] * 1000).astype(np.int64), type=pa.timestamp("ms")),
                "search": pa.array(pages["search"]),
                "query": pc.take(pa.array(pages["q_text"], type=pa.string()), pa.array(q, mask=~pages["search"])),
                "intent_query": pc.take(pa.array(pages["q_text"], type=pa.string()), pa.array(q)),
            }
        ),
        folder / "requests.parquet",
    )  # fmt: skip
    if pages_truth:
        _write_parquet(
            pa.table(
                {
                    "request_id": pc.take(req_ids, pa.array(imp["page"])),
                    "position": pa.array(imp["position"].astype(np.int32)),
                    "product_id": pc.take(pa.array(cat["product_id"], type=pa.string()), pa.array(imp["product"])),
                    "examination": pa.array(imp["exam"]),
                    "utility": pa.array(imp["utility"]),
                    "attractiveness": pa.array(imp["attract"]),
                    "clicked": pa.array(imp["click"]),
                }
            ),
            folder / "pages.parquet",
        )  # fmt: skip
    (folder / "propensities.json").write_text(
        json.dumps(
            {
                "positions": list(range(1, MAX_PAGE + 1)),
                "examination": [float(x) for x in prop],
                "model": "P(click) = examination[position] * sigmoid(click_slope * (utility + noise - click_offset))",
            },
            indent=2,
        )
        + "\n"
    )
    params = {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "language": lang,
        "start": str(START),
        "days": int(days),
        "weights": {"relevance": W_REL, "quality": W_QUALITY, "pair_noise": W_PAIR},
        "click_model": {
            "click_slope": CLICK_SLOPE, "click_offset": CLICK_OFFSET, "event_noise_sd": EVENT_NOISE,
            "cart_slope": CART_SLOPE, "cart_offset": CART_OFFSET, "buy_slope": BUY_SLOPE,
            "buy_offset": BUY_OFFSET, "ranker_noise_sd": RANKER_NOISE,
        },
        "vocabulary": {
            "leaves": [lf.key for lf in T.LEAVES], "leaf_names": list(v.leaves),
            "leaf_mid": [lf.mid for lf in T.LEAVES], "leaf_top": [lf.top for lf in T.LEAVES],
            "tops": list(v.tops), "mids": list(v.mids), "colors": list(T.COLORS),
            "color_names": list(v.colors), "color_rgb": [list(c) for c in T.COLOR_RGB],
            "background_rgb": list(T.BACKGROUND_RGB), "brands": list(v.brands),
            "materials": list(T.MATERIALS), "styles": list(T.STYLES), "patterns": list(T.PATTERNS),
        },
        "utility": (
            "W_REL*grade(query) + category[u,leaf] + brand[u,brand] + color[u,color] + style[u,style]"
            " + drift(u,t) + W_QUALITY*quality - price_sensitivity[u]*log_rel_price + W_PAIR*pair_noise(u,p)"
        ),
    }  # fmt: skip
    (folder / "params.json").write_text(json.dumps(params, indent=2, ensure_ascii=False) + "\n")
