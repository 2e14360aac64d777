"""Candidate generation: lexical, dense text and image sources, fused.

Sources (the names in :attr:`Candidates.sources`, each a score per row):

* ``lexical``: field-weighted BM25 (:class:`~vitrine.features.lexical.BM25Index`);
  0 where no query term matches.
* ``dense``: cosine between the query and the product text embedding
  (:class:`~vitrine.features.text.TextEncoder`); NaN for products without text.
  For an image query with the built-in tower, the image vector is in the text
  space, so it is compared with the product text as well.
* ``image``: cosine between the query (text mapped into the image space, or
  the query image) and the product image vector; NaN for products without a
  usable image. Products with no text get their image vector enriched with
  the text of their nearest neighbours *by image* (see ``propagate``).
* ``popularity``: log(1 + sales) scaled to [0, 1].
* ``item`` (only with a learned ``item_fusion``): the query against the fused
  item vector of :class:`~vitrine.features.fusion.ModalityFusion` (text,
  image, pooled reviews, brand, category and numeric attributes); for the
  ``attention`` fusion the score is query-conditioned. NaN for products with
  no modality.

The retriever's own ``scores`` fuse the sources by weighted reciprocal-rank
fusion (``fusion="rrf"``) or a weighted sum of per-source z-scores over the
candidates (``fusion="zsum"``). The search ranker may use ``sources`` instead.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from vitrine.data.catalog import Catalog
from vitrine.errors import NotFittedError
from vitrine.features.attributes import (
    NumericScaler,
    ValueEmbeddings,
    brand_values,
    category_values,
    numeric_table,
)
from vitrine.features.fusion import METHODS as FUSION_METHODS
from vitrine.features.fusion import ModalityFusion
from vitrine.features.lexical import DEFAULT_FIELDS, BM25Index
from vitrine.features.reviews import pool_reviews
from vitrine.features.visual_terms import VisualTerms
from vitrine.index.vector import VectorIndex
from vitrine.lru import lru_get, lru_put
from vitrine.results import Candidates, top_k

TEXT_FIELDS = ("title", "brand", "category", "color", "tags", "description")
SOURCES = ("lexical", "ngram", "dense", "image", "popularity", "item")
NGRAM_FIELDS = {"title": 1.0}  # typo-tolerant matching where it matters most
FUSIONS = ("rrf", "zsum")
ITEM_FUSIONS = ("average",) + FUSION_METHODS
QUERY_CACHE_SIZE = 4096  # query vectors kept (text and image query vectors together)
RESULT_CACHE_SIZE = 1024  # candidate lists of text queries kept; any catalog change clears them
# Whole-catalog source scores of recent text queries, so that a search and its facet list, which
# retrieve the same query at two depths, scan the catalog once. Bounded in bytes: an entry is
# a few arrays of catalog length.
SCAN_CACHE_BYTES = 32 << 20
# A photo's word is evidence, not the merchant's statement: it weighs less than a title word (3.0).
SEEN_WEIGHT = 1.0
SEEN_LIMIT = 8  # words per product, so a confused photo cannot match every query
DEFAULT_WEIGHTS = {"lexical": 1.0, "ngram": 0.5, "dense": 1.0, "image": 1.0, "popularity": 0.0, "item": 1.0}


def product_doc(catalog: Catalog, i: int) -> dict[str, str]:
    doc = {f: catalog.text(i, f) for f in TEXT_FIELDS}
    doc["category"] = doc["category"].replace(">", " ")
    doc["tags"] = doc["tags"].replace("|", " ")
    return doc


def dense_text(catalog: Catalog, i: int, description_chars: int = 300) -> str:
    """The text a product is embedded from: title, brand, category, colour, tags, start of description."""
    d = product_doc(catalog, i)
    parts = [d["title"], d["brand"], d["category"], d["color"], d["tags"], d["description"][:description_chars]]
    return ". ".join(p.strip() for p in parts if p and p.strip())


VISUAL_FIELDS = ("title", "category", "color")


def visual_text(catalog: Catalog, i: int) -> str:
    """The text the image tower learns to predict: fields a photo can show (no brand, tags, description)."""
    d = product_doc(catalog, i)
    return ". ".join(d[f].strip() for f in VISUAL_FIELDS if d[f] and d[f].strip())


def judged_descriptions(catalog: Catalog, judgments, rows: np.ndarray, per_product: int = 8) -> dict[int, str]:
    """Words for products that have none: the training queries judged best for each.

    An images-only catalog gives the tower nothing to learn from but these
    (query, photo) pairs. Only products in the ``rows`` mask get one, so a
    product's own text always wins.
    """
    if judgments is None or not len(judgments):
        return {}
    j = judgments[judgments["grade"].astype(float) > 0]
    j = j.assign(_row=catalog.indices(j["product_id"].astype(str), missing="mark"))
    j = j[(j["_row"] >= 0)]
    j = j[rows[j["_row"].to_numpy()]]
    if not len(j):
        return {}
    # The best grade a product has, and only the queries that gave it that.
    j = j[j["grade"].astype(float) == j.groupby("_row")["grade"].transform("max").astype(float)]
    out = {}
    for row, g in j.groupby("_row", sort=False):
        qs = list(dict.fromkeys(str(q) for q in g["query"]))[:per_product]
        out[int(row)] = ". ".join(qs)
    return out


def popularity_prior(catalog: Catalog) -> np.ndarray:
    """log(1 + sales) scaled to [0, 1]; zeros when the catalog has no sales."""
    sales = np.nan_to_num(catalog.products["sales"].to_numpy(dtype=float, na_value=0.0))
    pop = np.log1p(np.maximum(sales, 0))
    return (pop / pop.max()).astype(np.float32) if pop.max() > 0 else np.zeros(len(catalog), np.float32)


def rrf(rankings: dict[str, np.ndarray], k: int = 60, weights: dict[str, float] | None = None) -> dict[int, float]:
    """Reciprocal-rank fusion: sum over sources of w / (k + rank)."""
    fused: dict[int, float] = {}
    for name, rows in rankings.items():
        w = (weights or {}).get(name, 1.0)
        for r, row in enumerate(rows):
            fused[int(row)] = fused.get(int(row), 0.0) + w / (k + r + 1)
    return fused


def rrf_scores(sources: dict[str, np.ndarray], weights: dict[str, float], k: int = 60) -> np.ndarray:
    """RRF of aligned per-row source scores: each source ranks the rows it scored (non-NaN, > -inf)."""
    n = len(next(iter(sources.values()))) if sources else 0
    out = np.zeros(n, np.float64)
    for name, v in sources.items():
        w = weights.get(name, 0.0)
        if not w:
            continue
        v = np.asarray(v, np.float64)
        ok = np.isfinite(v)
        if name in ("lexical", "ngram"):
            ok &= v > 0
        idx = np.flatnonzero(ok)
        order = idx[np.lexsort((idx, -v[idx]))]
        out[order] += w / (k + 1 + np.arange(len(order)))
    return out


def zsum_scores(sources: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted sum of per-source z-scores over the rows (missing values count as the source's minimum)."""
    n = len(next(iter(sources.values()))) if sources else 0
    out = np.zeros(n, np.float64)
    for name, v in sources.items():
        w = weights.get(name, 0.0)
        v = np.asarray(v, np.float64)
        ok = np.isfinite(v)
        if not w or ok.sum() < 2:
            continue
        mu, sd = v[ok].mean(), v[ok].std()
        z = np.where(ok, (v - mu) / (sd or 1.0), (v[ok].min() - mu) / (sd or 1.0))
        out += w * z
    return out


def pseudo_queries(catalog: Catalog, rows: np.ndarray, seed: int = 0) -> list[str]:
    """Self-supervised training queries: a random 2-4 word span of each product's title
    (its leaf category when it has no title)."""
    rng = np.random.default_rng(seed)
    out = []
    for r in rows:
        words = catalog.text(int(r), "title").split()
        if not words:
            words = catalog.text(int(r), "category").split(">")[-1].split()
        n = min(len(words), int(rng.integers(2, 5)))
        start = int(rng.integers(0, len(words) - n + 1)) if words else 0
        out.append(" ".join(words[start: start + n]))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.where(n > 0, n, 1.0)).astype(np.float32)


def _read_only(c: Candidates) -> Candidates:
    """The same candidates with arrays nobody can write (they are shared through the cache)."""
    for a in (c.rows, c.scores, *c.sources.values()):
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return c


def _invalidates(method):
    """Mark a method that changes what retrieval returns: the kept candidate lists
    are dropped before it starts and again when it ends, so that nothing computed
    while it ran is kept (``retrieve`` keeps a list only if no change began meanwhile)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        self._changed()
        try:
            return method(self, *args, **kwargs)
        finally:
            self._changed()

    return wrapper


class Retriever:
    """Retrieves candidate rows for a text query, an image query, or both.

    Parameters
    ----------
    depth : candidates per source (and returned) when ``k`` is not given.
    text_model : sentence-transformers name or path; None reads
        ``settings.text_model`` (empty: the bundled all-MiniLM-L6-v2); "none"
        disables the dense source.
    image_model : "tower" (CNN trained in fit), "none", or a CLIP path; None
        reads ``settings.image_model``.
    image_size : pixels per side the tower sees.
    tower_seconds, tower_epochs : training budget of the tower; seconds default
        to ``settings.tower_seconds`` when that setting exists, else 90, and
        small catalogs get less: min(tower_seconds, 5 + 0.02 * training images).
    tower_members : the tower is an ensemble of up to this many networks
        (own seeds, equal shares of the budget, outputs averaged); each
        member needs 30 s of the budget, so small catalogs train one.
    fusion : "rrf" or "zsum" (see module docstring).
    weights : source -> weight in the fused score.
    propagate : neighbours (by image) whose text enriches the image vector of
        a product that has no text; 0 turns it off.
    ngram : also index titles by character trigrams (source ``ngram``:
        BM25 over trigrams, so misspelled query words still match).
    visual_terms : the tower also learns P(word | photo) for the frequent words
        of products' visual text (:mod:`vitrine.features.visual_terms`); a
        text query's image score adds the mean log-probability of its words.
    image_words : a product with text and a photo also gets, in a lexical
        field ``seen`` (weight ``SEEN_WEIGHT``), the visual words its photo
        shows with at least this probability that its text does not say
        ("blue" for a blue shirt titled "Cotton shirt", but not when the
        text names a word that never shares a text with "blue", such as
        "navy": the merchant has chosen); None turns it off.
        Needs ``visual_terms``. Text-less products are left to the image
        source, whose visual-word likelihood already scores them.
    item_fusion : how the item vector is made from the modalities: "average"
        (unit mean of the text and image vectors, untrained), or a learned
        :class:`~vitrine.features.fusion.ModalityFusion` method ("concat",
        "weighted", "attention") over text, image, pooled reviews, brand,
        category and numeric attributes, which also adds the ``item`` source;
        None reads ``settings.item_fusion``.
    fusion_seconds : training budget of the learned fusion.
    fusion_pseudo : self-supervised (title span -> product) training pairs.
    max_reviews : most recent reviews pooled per product (0: no review modality).
    query_tuning : when ``fit`` gets judgments (at least 100 judged queries),
        tune the top layers of a copy of the text model so that queries land
        near their relevant products (:mod:`vitrine.features.query_tuning`);
        product vectors are unchanged.
    query_tuning_seconds : training budget of that tuning.
    cache_dir : embedding cache root; None uses ``settings.home / "cache"``.
    device : "cpu", "cuda" or "auto"; None reads ``settings.device``.

    Attributes
    ----------
    lexical_ : fitted BM25Index over the catalog's text fields.
    popularity_ : (n,) popularity prior in [0, 1].
    text_vectors_ : (n, d) unit-norm text embeddings (zero rows where no text).
    has_text_ : (n,) bool.
    image_vectors_ : (n, d_img) unit-norm image vectors (zero rows where none), or None.
    has_image_ : (n,) bool.
    review_vectors_ : (n, d) pooled review vectors (zero rows where none), or None.
    has_review_ : (n,) bool.
    brands_, categories_ : :class:`~vitrine.features.attributes.ValueEmbeddings`, or None.
    numeric_ : (n, 2k) scaled numeric attributes with missing indicators, or None.
    fusion_ : fitted ModalityFusion, or None for "average".
    item_vectors_ : (n, d) unit-norm fused item vectors (zero rows where no content), or None.
    query_encoder_ : tuned :class:`~vitrine.features.query_tuning.QueryTuner` for query vectors, or None.
    """

    def __init__(
        self,
        *,
        depth: int = 200,
        text_model: str | None = None,
        image_model: str | None = None,
        image_size: int = 64,
        tower_seconds: float | None = None,
        tower_epochs: int = 30,
        tower_members: int = 3,
        fusion: str = "rrf",
        weights: dict[str, float] | None = None,
        propagate: int = 10,
        visual_terms: bool = True,
        image_words: float | None = 0.3,
        ngram: bool = True,
        item_fusion: str | None = None,
        fusion_seconds: float = 20.0,
        fusion_pseudo: int = 2000,
        max_reviews: int = 5,
        query_tuning: bool = True,
        query_tuning_seconds: float = 180.0,
        cache_dir: str | None = None,
        device: str | None = None,
    ) -> None:
        self.depth = depth
        self.text_model = text_model
        self.image_model = image_model
        self.image_size = image_size
        self.tower_seconds = tower_seconds
        self.tower_epochs = tower_epochs
        self.tower_members = tower_members
        self.fusion = fusion
        self.weights = weights
        self.propagate = propagate
        self.visual_terms = visual_terms
        self.image_words = image_words
        self.ngram = ngram
        self.item_fusion = item_fusion
        self.fusion_seconds = fusion_seconds
        self.fusion_pseudo = fusion_pseudo
        self.max_reviews = max_reviews
        self.query_tuning = query_tuning
        self.query_tuning_seconds = query_tuning_seconds
        self.cache_dir = cache_dir
        self.device = device

    # ------------------------------------------------------------------ fit
    def _resolve(self) -> None:
        from vitrine.config import get_settings

        s = get_settings()
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose from {', '.join(FUSIONS)}")
        self.text_model_ = s.text_model if self.text_model is None else self.text_model
        self.image_model_ = s.image_model if self.image_model is None else self.image_model
        self.device_ = s.device if self.device is None else self.device
        self.cache_dir_ = str(Path(s.home) / "cache") if self.cache_dir is None else self.cache_dir
        self.weights_ = {**DEFAULT_WEIGHTS, **(self.weights or {})}
        ts = self.tower_seconds if self.tower_seconds is not None else getattr(s, "tower_seconds", None)
        self.tower_seconds_ = float(ts) if ts is not None else 90.0
        self.seed_ = s.seed
        fz = self.item_fusion if self.item_fusion is not None else getattr(s, "item_fusion", "average")
        if fz not in ITEM_FUSIONS:
            raise ValueError(f"unknown item fusion {fz!r}; choose from {', '.join(ITEM_FUSIONS)}")
        self.item_fusion_ = fz

    def _text_encoder(self):
        from vitrine.config import get_settings
        from vitrine.features.text import TextEncoder

        if self.text_model_ == "none":
            return None
        # The precision is the machine's (not saved): a model loaded elsewhere encodes as that CPU does best.
        return TextEncoder(self.text_model_, cache_dir=self.cache_dir_ or None, device=self.device_,
                           precision=get_settings().text_precision)

    def fit(self, catalog: Catalog, progress: bool = False, *, reviews=None, judgments=None) -> Retriever:
        """Index the catalog and train the image tower and (when chosen) the modality fusion.

        Parameters
        ----------
        catalog : the products.
        progress : show progress bars.
        reviews : optional reviews table (product_id, text, rating, timestamp)
            for the review modality and review statistics.
        judgments : optional training judgments (query, product_id, grade);
            grade >= 2 pairs train the learned fusion beside the
            self-supervised title-span pairs. Never pass test judgments.
        """
        import torch

        from vitrine.features.image import image_encoder, load_images

        self._resolve()
        self.catalog_ = catalog
        n = len(catalog)
        docs = [product_doc(catalog, i) for i in range(n)]
        self.ngram_ = BM25Index(fields=NGRAM_FIELDS, analyzer="char3").fit(docs) if self.ngram else None
        self.popularity_ = popularity_prior(catalog)
        self._qcache: OrderedDict = OrderedDict()
        self._changed()
        # dense text
        self.text_encoder_ = self._text_encoder()
        texts = [dense_text(catalog, i) for i in range(n)]
        self.has_text_ = np.array([bool(t) for t in texts], bool)
        if self.text_encoder_ is not None and self.has_text_.any():
            rows = np.flatnonzero(self.has_text_)
            vecs = self.text_encoder_.encode([texts[i] for i in rows], progress=progress)
            self.text_vectors_ = np.zeros((n, vecs.shape[1]), np.float32)
            self.text_vectors_[rows] = vecs
            self.dense_index_ = VectorIndex().build(vecs, rows)
        else:
            self.text_vectors_, self.dense_index_ = None, None
        self.query_encoder_ = self._tune_queries(judgments, progress)
        # images
        self.image_encoder_, self.image_vectors_, self.visual_terms_ = None, None, None
        self.has_image_ = np.zeros(n, bool)
        paths = [catalog.image_path(i) for i in range(n)]
        enc = image_encoder(self.image_model_, size=self.image_size, max_seconds=self.tower_seconds_,
                            epochs=self.tower_epochs, seed=self.seed_, device=self.device_)
        if enc is not None and any(p is not None for p in paths):
            size = self.image_size if enc.name == "tower" else 224
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                imgs, ok = load_images(paths, size=size, labels=list(catalog.ids), progress=progress)
            described = judged_descriptions(catalog, judgments, ~self.has_text_)
            if enc.name == "tower":
                words = self.has_text_.copy()
                words[list(described)] = True
                train = ok & words
                if self.text_encoder_ is None or train.sum() < 16:
                    enc = None  # nothing to align images with
            else:
                train = ok & self.has_text_ if self.text_vectors_ is not None else ok
            if enc is not None:
                torch.set_num_threads(max(1, torch.get_num_threads()))
                tv, terms = None, None
                if enc.name == "tower":
                    enc.max_seconds = min(self.tower_seconds_, 5.0 + 0.02 * int(train.sum()))
                    enc.members = max(1, min(self.tower_members, int(enc.max_seconds // 30)))
                    vtexts = [visual_text(catalog, i) or described.get(i, "") for i in np.flatnonzero(train)]
                    tv = self.text_encoder_.encode(vtexts, progress=progress)
                    if self.visual_terms:
                        self.visual_terms_ = VisualTerms.build(vtexts)
                        terms = self.visual_terms_.targets(vtexts) if len(self.visual_terms_) else None
                        if terms is None:
                            self.visual_terms_ = None
                    enc.fit(imgs[train], tv, progress=progress, terms=terms)
                    vecs, logp = enc.encode(imgs[ok])
                    if self.visual_terms_ is not None:
                        self.visual_terms_.set_rows(np.flatnonzero(ok), logp, n)
                else:
                    enc.fit(imgs[train], tv, progress=progress)
                    vecs = enc.encode_images(imgs[ok])
                self.image_encoder_ = enc
                self.has_image_ = ok
                self.image_vectors_ = np.zeros((n, vecs.shape[1]), np.float32)
                self.image_vectors_[ok] = vecs
                self._enrich_text_less()
                self.image_index_ = VectorIndex().build(self.image_vectors_[ok], np.flatnonzero(ok))
            del imgs
        # The lexical index waits for the photos: its "seen" field holds what they show.
        self.lexical_ = BM25Index(fields=self._lexical_fields()).fit(self._with_seen(docs, np.arange(n)))
        del docs
        self.fusion_ = None
        if self.item_fusion_ != "average" and self.text_encoder_ is not None:
            self._fit_modalities(reviews, progress)
            self._fit_fusion(judgments, progress)
        self._build_items()
        return self

    # ------------------------------------------------------------------ modalities and fusion
    def _fit_modalities(self, reviews, progress: bool = False) -> None:
        """Review, brand, category and numeric modalities (only needed by a learned fusion)."""
        products = self.catalog_.products
        self.review_vectors_, self.has_review_ = pool_reviews(
            reviews, self.catalog_.ids, self.text_encoder_, max_reviews=self.max_reviews, progress=progress)
        self.review_stats_ = None
        if reviews is not None and len(reviews) and "rating" in reviews:
            # Only what the numeric attributes need (no user ids, no text).
            self.review_stats_ = reviews[["product_id", "rating"]].astype({"product_id": str}).copy()
        self.brands_ = ValueEmbeddings().fit(brand_values(products), self.text_encoder_)
        self.categories_ = ValueEmbeddings().fit(category_values(products), self.text_encoder_)
        raw, self.numeric_names_ = numeric_table(products, self.review_stats_)
        self.scaler_ = NumericScaler().fit(raw) if self.numeric_names_ else None
        self.numeric_ = self.scaler_.transform(raw) if self.scaler_ is not None else None

    def _modalities(self, rows: np.ndarray | None = None) -> tuple[dict, dict]:
        """Modality name -> vectors and presence masks, for ``rows`` (all rows when None)."""
        sel = (lambda a: a) if rows is None else (lambda a: a[rows])
        mods, masks = {}, {}
        if self.text_vectors_ is not None:
            mods["text"], masks["text"] = sel(self.text_vectors_), sel(self.has_text_)
        if self.image_vectors_ is not None:
            mods["image"], masks["image"] = sel(self.image_vectors_), sel(self.has_image_)
        if getattr(self, "review_vectors_", None) is not None:
            mods["reviews"], masks["reviews"] = sel(self.review_vectors_), sel(self.has_review_)
        for attr, name in (("brands_", "brand"), ("categories_", "category")):
            emb = getattr(self, attr, None)
            if emb is not None:
                v, has = emb.vectors(rows)
                if v is not None:
                    mods[name], masks[name] = v, has
        if getattr(self, "numeric_", None) is not None:
            mods["numeric"] = sel(self.numeric_)
            masks["numeric"] = np.ones(len(mods["numeric"]), bool)
        return mods, masks

    def _fit_fusion(self, judgments, progress: bool = False) -> None:
        rng = np.random.default_rng(self.seed_)
        texts, rows = [], []
        if judgments is not None and len(judgments):
            j = judgments[pd.to_numeric(judgments["grade"], errors="coerce") >= 2]
            jr = self.catalog_.indices(j["product_id"].astype(str), missing="mark")
            j = j[jr >= 0].assign(_row=jr[jr >= 0])
            qs = j["query"].astype(str).unique()
            if len(qs) > 4000:
                j = j[j["query"].isin(set(rng.choice(qs, 4000, replace=False)))]
            texts += j["query"].astype(str).tolist()
            rows += j["_row"].tolist()
        cand = np.flatnonzero(self.has_text_)
        if self.fusion_pseudo and len(cand):
            pick = rng.choice(cand, size=min(len(cand), self.fusion_pseudo), replace=False)
            for q, r in zip(pseudo_queries(self.catalog_, pick, self.seed_), pick, strict=True):
                if q:
                    texts.append(q)
                    rows.append(int(r))
        if len(rows) < 8:
            return
        qv = self.text_encoder_.encode(texts, progress=progress)
        mods, masks = self._modalities()
        self.fusion_ = ModalityFusion(method=self.item_fusion_, seconds=self.fusion_seconds,
                                      seed=self.seed_).fit(mods, masks, qv, np.asarray(rows, np.int64))

    def _lexical_fields(self) -> dict[str, float]:
        if self.image_words is None or getattr(self, "visual_terms_", None) is None:
            return dict(DEFAULT_FIELDS)
        return {**DEFAULT_FIELDS, "seen": SEEN_WEIGHT}

    def _with_seen(self, docs: list[dict[str, str]], rows: np.ndarray) -> list[dict[str, str]]:
        """Docs of ``rows`` plus, when the index has a ``seen`` field, what their photos show that their text does not."""
        if "seen" not in self._lexical_fields():
            return docs
        vt = self.visual_terms_
        rows = np.asarray(rows, np.int64)
        shown = (rows < len(vt.floor_)) & self.has_image_[rows] & self.has_text_[rows]
        for d in docs:
            d["seen"] = ""
        if shown.any():
            idx = np.flatnonzero(shown)
            texts = [" ".join(v for f, v in docs[i].items() if f != "seen" and v) for i in idx]
            for i, words in zip(idx, vt.seen(rows[idx], self.image_words, texts), strict=True):
                docs[i]["seen"] = " ".join(words[:SEEN_LIMIT])
        return docs

    def _enrich_text_less(self, rows: np.ndarray | None = None) -> None:
        """Blend the image vector of text-less products with their image-neighbours' text.

        Only for the tower (image vectors live in the text space). A product
        with no text is described by the text of the ``propagate`` products
        whose images look most like its own (weighted by that similarity).
        """
        if not self.propagate or self.image_encoder_ is None or self.image_encoder_.name != "tower":
            return
        donors = np.flatnonzero(self.has_image_ & self.has_text_)
        if rows is None:
            rows = np.flatnonzero(self.has_image_ & ~self.has_text_)
        if len(donors) < self.propagate or not len(rows):
            return
        self.raw_image_vectors_ = getattr(self, "raw_image_vectors_", {})
        dv = self.image_vectors_[donors]
        kk = self.propagate
        for s in range(0, len(rows), 2048):
            part = rows[s: s + 2048]
            base = np.stack([self.raw_image_vectors_.get(int(r), self.image_vectors_[r]) for r in part])
            sim = base @ dv.T
            nn = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
            w = np.exp(np.take_along_axis(sim, nn, 1) / 0.05)
            w /= w.sum(1, keepdims=True)
            borrowed = _unit(np.einsum("rk,rkd->rd", w, self.text_vectors_[donors[nn]]))
            self._borrow_terms(part, donors[nn], w)
            for r, b in zip(part, base, strict=True):
                self.raw_image_vectors_[int(r)] = b
            self.image_vectors_[part] = _unit(0.5 * base + borrowed)

    def _borrow_terms(self, rows: np.ndarray, neighbours: np.ndarray, weights: np.ndarray) -> None:
        """Text-less products also borrow their image-neighbours' visual words (a kNN vote beside the tower's)."""
        vt = getattr(self, "visual_terms_", None)
        if vt is None:
            return
        uniq, inv = np.unique(neighbours, return_inverse=True)
        words = vt.targets([visual_text(self.catalog_, int(d)) for d in uniq])
        vt.borrow(rows, weights, words[inv.reshape(neighbours.shape)])

    def _build_items(self, rows: np.ndarray | None = None) -> None:
        """Fused item vectors: the learned fusion's, or the average of text and (tower) image vectors."""
        if getattr(self, "fusion_", None) is not None:
            n = len(self.catalog_)
            if rows is None or getattr(self, "item_vectors_", None) is None:
                mods, masks = self._modalities()
                self.item_vectors_ = self.fusion_.transform(mods, masks)
                rows = np.arange(n)
            else:
                if len(self.item_vectors_) < n:
                    self.item_vectors_ = np.concatenate(
                        [self.item_vectors_, np.zeros((n - len(self.item_vectors_), self.item_vectors_.shape[1]),
                                                      np.float32)])
                mods, masks = self._modalities(rows)
                self.item_vectors_[rows] = self.fusion_.transform(mods, masks)
            has = np.flatnonzero(np.any(self.item_vectors_[rows] != 0, axis=1))
            if getattr(self, "item_index_", None) is None or len(rows) == n:
                keep = np.asarray(rows)[has]
                self.item_index_ = VectorIndex().build(self.item_vectors_[keep], keep)
            else:
                self.item_index_.remove(np.asarray(rows, np.int64))
                self.item_index_.add(self.item_vectors_[rows[has]], np.asarray(rows)[has])
            return
        self.item_index_ = None
        tv, iv = self.text_vectors_, self.image_vectors_
        same_space = self.image_encoder_ is not None and self.image_encoder_.name == "tower"
        if tv is None and iv is None:
            self.item_vectors_ = None
            return
        if tv is None:
            self.item_vectors_ = iv.copy()
        elif iv is None:
            self.item_vectors_ = tv.copy()
        elif same_space:
            self.item_vectors_ = _unit(tv + iv)
        else:  # CLIP: separate spaces; concatenate so both inform similarity
            self.item_vectors_ = _unit(np.concatenate([tv, iv], 1))

    def _check(self) -> None:
        if not hasattr(self, "lexical_"):
            raise NotFittedError(type(self).__name__)

    # ------------------------------------------------------------------ queries
    def _changed(self) -> None:
        """Forget every cached candidate list: the catalog, an index or a modality changed."""
        self._version = getattr(self, "_version", 0) + 1
        self._rcache: OrderedDict = OrderedDict()
        self._scans: OrderedDict = OrderedDict()

    def _cached(self, key: tuple, compute, cache: OrderedDict | None = None, size: int = QUERY_CACHE_SIZE):
        """An LRU (default: the query vectors, text and image together): a hit
        moves to the back, the least recently used go past ``size``.
        Concurrent requests may compute the same value twice; never fail."""
        cache = self._qcache if cache is None else cache
        v = lru_get(cache, key)
        if v is None:
            v = compute()
            lru_put(cache, key, v, size)
        return v

    def _tune_queries(self, judgments, progress: bool):
        if not self.query_tuning or self.text_encoder_ is None or self.text_vectors_ is None or judgments is None:
            return None
        from vitrine.config import resolve_device
        from vitrine.features.query_tuning import QueryTuner

        tuner = QueryTuner(max_seconds=self.query_tuning_seconds, seed=self.seed_)
        pairs = tuner.pairs(judgments, lambda ids: self.catalog_.indices(ids, missing="mark"))
        return tuner.fit(self.text_encoder_._st(), pairs, self.text_vectors_, device=resolve_device(self.device_),
                         progress=progress)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors in the text space (the tuned query encoder's when there is one)."""
        if getattr(self, "query_encoder_", None) is not None:
            return self.query_encoder_.encode(texts)
        enc = self.text_encoder_
        saved, enc.cache_dir = enc.cache_dir, None  # queries do not go to the disk cache
        try:
            return enc.encode(texts)
        finally:
            enc.cache_dir = saved

    def _encode_query(self, q: str) -> np.ndarray:
        return self.encode_queries([q])[0]

    def _text_vec(self, q: str) -> np.ndarray | None:
        if self.text_encoder_ is None or not q:
            return None
        return self._cached(("t", q), lambda: self._encode_query(q))

    def _image_query_vec(self, q: str | None, qv: np.ndarray | None) -> np.ndarray | None:
        if self.image_encoder_ is None or not q:
            return None
        return self._cached(("i", q), lambda: self.image_encoder_.encode_query(q, qv))

    def warm_queries(self, queries: list[str], batch: int = 256) -> int:
        """Encode queries (most important first) into the query cache in batches
        (a batch costs far less per query than one encoder call per query);
        returns how many were encoded. At most QUERY_CACHE_SIZE are kept."""
        self._check()
        todo = [q for q in dict.fromkeys(queries) if q and ("t", q) not in self._qcache][:QUERY_CACHE_SIZE]
        if self.text_encoder_ is None or not todo:
            return 0
        tower = self.image_encoder_ is not None and self.image_encoder_.name == "tower"
        for i in range(0, len(todo), batch):
            chunk = todo[i: i + batch]
            for q, v in zip(chunk, self.encode_queries(chunk), strict=True):
                self._cached(("t", q), lambda v=v: v)
                if tower:  # the tower's query vector is the text vector: free
                    self._image_query_vec(q, v)
        return len(todo)

    def _query_image_vec(self, query_image) -> np.ndarray | None:
        from vitrine.features.image import load_image

        if self.image_encoder_ is None or query_image is None:
            return None
        size = self.image_size if self.image_encoder_.name == "tower" else 224
        arr = load_image(query_image, size=size, label="query image")
        return None if arr is None else self.image_encoder_.encode_images(arr[None])[0]

    def _query(self, query_text, query_image) -> dict[str, np.ndarray | None]:
        qv = self._text_vec(query_text)
        iq = self._image_query_vec(query_text, qv)
        img = self._query_image_vec(query_image)
        tower = self.image_encoder_ is not None and self.image_encoder_.name == "tower"
        dense_q = qv
        if img is not None:
            iq = img if iq is None else _unit(iq + img)
            if tower:  # the tower's image vector lives in the text space
                dense_q = img if dense_q is None else _unit(dense_q + img)
        return {"text": query_text, "dense": dense_q, "image": iq}

    def _source_scores(self, qs: dict, rows: np.ndarray, full: dict | None = None) -> dict[str, np.ndarray]:
        """Every source's score for ``rows``; ``full`` holds whole-catalog lexical scores already computed."""
        out: dict[str, np.ndarray] = {}
        q = qs["text"]
        full = full or {}
        for name, index in (("lexical", self.lexical_), ("ngram", getattr(self, "ngram_", None))):
            if index is None:
                continue
            if not q:
                out[name] = np.zeros(len(rows), np.float32)
                continue
            s = full[name] if name in full else index.score(q)
            out[name] = s[rows].astype(np.float32)
        if self.text_vectors_ is not None:
            d = self.text_vectors_[rows] @ qs["dense"] if qs["dense"] is not None else np.zeros(len(rows), np.float32)
            out["dense"] = np.where(self.has_text_[rows], d, np.nan).astype(np.float32)
        if self.image_vectors_ is not None:
            out["image"] = self._image_scores(qs, rows)
        out["popularity"] = self.popularity_[rows]
        if getattr(self, "fusion_", None) is not None:
            out["item"] = self._item_scores(qs["dense"], rows)
        return out

    def _item_scores(self, qv: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
        has = np.any(self.item_vectors_[rows] != 0, axis=1)
        if qv is None:
            d = np.zeros(len(rows), np.float32)
        elif self.fusion_.method == "attention":
            mods, masks = self._modalities(rows)
            d = self.fusion_.score(qv, mods, masks)
        else:
            d = self.item_vectors_[rows] @ qv
        return np.where(has, d, np.nan).astype(np.float32)

    def _fuse(self, sources: dict[str, np.ndarray]) -> np.ndarray:
        if self.fusion == "zsum":
            return zsum_scores(sources, self.weights_)
        return rrf_scores(sources, self.weights_)

    def _active_top(self, index: VectorIndex | None, qv: np.ndarray | None, n: int) -> np.ndarray:
        if index is None or qv is None or not len(index):
            return np.zeros(0, np.int64)
        active = self.catalog_.active
        fetch = n
        while True:
            rows, _ = index.search(qv, fetch)
            rows = rows[rows >= 0]
            keep = rows[active[rows]]
            if len(keep) >= n or fetch >= len(index):
                return keep[:n]
            fetch = min(len(index), fetch * 4)

    def retrieve(self, query_text: str | None = None, query_image=None, k: int | None = None,
                 cache: bool = True) -> Candidates:
        """Fused candidates for a text and/or image query; no query returns the most popular products.

        A text query's candidates are kept (``result_cache_size`` lists, default
        ``RESULT_CACHE_SIZE``, 0 keeps none; read-only arrays) until the catalog
        or an index changes: a repeated query, much of a shop's traffic, skips
        the vector scans and BM25 (about half of a search's CPU time).
        ``cache=False`` neither reads nor fills that cache, for one-off lists
        that would push out the lists searches reuse.
        """
        self._check()
        k = k or self.depth
        size = getattr(self, "result_cache_size", RESULT_CACHE_SIZE)
        if query_image is not None or not query_text or size <= 0 or not cache:
            return self._retrieve(query_text, query_image, k)
        version, kept = self._version, self._rcache
        # The active mask is part of the key: deleting a product flips it, sometimes without telling us.
        key = (query_text, k, hash(self.catalog_.active.tobytes()))
        got = lru_get(kept, key)
        if got is None:
            got = _read_only(self._retrieve(query_text, None, k))
            if self._version == version:  # a catalog change meanwhile: do not keep what it outdated
                lru_put(kept, key, got, size)
        return got

    def _retrieve(self, query_text: str | None, query_image, k: int) -> Candidates:
        active = self.catalog_.active
        qs = self._query(query_text, query_image)
        if not query_text and qs["image"] is None and qs["dense"] is None:
            pop = np.where(active, self.popularity_[: len(active)], -np.inf)
            rows = top_k(pop, k)
            return Candidates(rows, pop[rows], {"popularity": pop[rows]})
        n = max(k, self.depth)
        pools = []
        full = self._scan(qs) if query_image is not None else self._cached(
            ("scan", query_text, self._version), lambda: self._scan(qs), self._scans, self._scan_cache_size())
        for name in ("lexical", "ngram"):
            if name in full:
                s = np.where(active[: len(full[name])], full[name], 0)
                matched = np.flatnonzero(s > 0)
                pools.append(matched[top_k(s[matched], n)])
        for name in ("dense", "image"):
            if name in full:
                s = np.where(active[: len(full[name])], full[name], -np.inf)
                top = top_k(s, n)
                pools.append(top[np.isfinite(s[top])])
            else:
                pools.append(self._active_top(getattr(self, f"{name}_index_", None), qs[name], n))
        pools.append(self._visual_term_top(query_text, active, n))
        pools.append(self._active_top(getattr(self, "item_index_", None), qs["dense"], n))
        rows = np.unique(np.concatenate(pools)).astype(np.int64)
        if not len(rows):
            return Candidates(rows, np.zeros(0), {s: np.zeros(0, np.float32) for s in ("lexical", "popularity")})
        src = self._source_scores(qs, rows, full)
        fused = self._fuse(src) + 1e-6 * src["popularity"]
        order = top_k(fused, k)
        return Candidates(rows[order], fused[order], {s: v[order] for s, v in src.items()})

    def _scan(self, qs: dict) -> dict[str, np.ndarray]:
        """Whole-catalog scores of a query for the sources that read every product anyway: BM25
        (``lexical``, ``ngram``), and the ``dense`` and ``image`` cosines where their index is
        exact (a flat index scans every vector too). -inf where a product has no vector. Each
        depth's pool is then a top-k of these, so both depths of one query share a scan."""
        full: dict[str, np.ndarray] = {}
        if qs["text"]:
            for name, index in (("lexical", self.lexical_), ("ngram", getattr(self, "ngram_", None))):
                if index is not None:
                    full[name] = index.score(qs["text"])
        for name, index, vectors, has in (
                ("dense", getattr(self, "dense_index_", None), self.text_vectors_, self.has_text_),
                ("image", getattr(self, "image_index_", None), self.image_vectors_, self.has_image_)):
            if index is not None and qs[name] is not None and index.kind_ == "flat":
                full[name] = np.where(has[: len(vectors)], vectors @ qs[name], -np.inf).astype(np.float32)
        for a in full.values():  # shared through the cache
            a.flags.writeable = False
        return full

    def _scan_cache_size(self) -> int:
        per_entry = 16 * max(1, len(self.popularity_))  # up to four float32 arrays
        return max(2, SCAN_CACHE_BYTES // per_entry)

    def _visual_term_top(self, query_text: str | None, active: np.ndarray, n: int) -> np.ndarray:
        """Products whose photos most probably show every word of the query (text-less ones included)."""
        vt = getattr(self, "visual_terms_", None)
        s = vt.score(query_text) if vt is not None and query_text else None
        if s is None:
            return np.zeros(0, np.int64)
        m = len(s)
        s = np.where(active[:m] & self.has_image_[:m], s, -np.inf)
        top = top_k(s, n)
        return top[np.isfinite(s[top])]

    def _image_scores(self, qs: dict, rows: np.ndarray) -> np.ndarray:
        """Image source: cosine to the query's image-space vector, plus (tower with visual terms, text query)
        the mean log P(word | photo) of the query's words; NaN without a usable image."""
        d = self.image_vectors_[rows] @ qs["image"] if qs["image"] is not None else np.zeros(len(rows), np.float32)
        vt = getattr(self, "visual_terms_", None)
        if vt is not None and qs["text"]:
            ts = vt.score(qs["text"], np.minimum(rows, len(vt.floor_) - 1))
            if ts is not None:
                d = d + np.where(rows < len(vt.floor_), ts, 0.0)
        return np.where(self.has_image_[rows], d, np.nan).astype(np.float32)

    def score_rows(self, query_text: str | None, rows: np.ndarray, query_image=None) -> Candidates:
        """Every source's score for given rows (rerank and cross-modal evaluation)."""
        self._check()
        rows = np.asarray(rows, dtype=np.int64)
        src = self._source_scores(self._query(query_text, query_image), rows)
        return Candidates(rows, self._fuse(src) + 1e-6 * src["popularity"], src)

    def similar(self, row: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Products whose fused item vector (text and image) is closest to product ``row``'s."""
        self._check()
        iv = getattr(self, "item_vectors_", None)
        if iv is None or not np.any(iv[row]):
            doc = product_doc(self.catalog_, row)
            scores = self.lexical_.score(" ".join([doc["title"], doc["brand"], doc["category"]]))
        else:
            scores = iv @ iv[row]
        scores = np.where(self.catalog_.active[: len(scores)], scores, -np.inf)
        scores[row] = -np.inf
        rows = top_k(scores, k)
        rows = rows[np.isfinite(scores[rows])]
        return rows, scores[rows]

    def item_vectors(self) -> np.ndarray | None:
        """(n_products, d) fused content vectors (unit norm; zero rows for products with no content)."""
        self._check()
        return self.item_vectors_

    def baseline_scorers(self) -> dict:
        """Single-source scorers f(query, rows) -> scores, for evaluation side by side."""
        self._check()
        out = {"bm25": lambda q, rows: self.lexical_.score(q)[rows]}
        if self.text_vectors_ is not None:
            def dense(q, rows):
                v = self.text_vectors_[rows] @ self._text_vec(q)
                return np.where(self.has_text_[rows], v, -2.0)

            out["dense"] = dense
        if self.image_vectors_ is not None:
            def image(q, rows):
                v = self._image_scores(self._query(q, None), np.asarray(rows, np.int64))
                return np.nan_to_num(v, nan=-1e9)

            out["image"] = image
        if getattr(self, "fusion_", None) is not None:
            def item(q, rows):
                return np.nan_to_num(self._item_scores(self._query(q, None)["dense"], np.asarray(rows)), nan=-2.0)

            out["item"] = item
        if self.text_vectors_ is not None or self.image_vectors_ is not None:
            out["hybrid"] = lambda q, rows: self.score_rows(q, rows).scores
        return out

    # ------------------------------------------------------------------ updates
    @_invalidates
    def add(self, rows: np.ndarray, reviews=None) -> None:
        """Index products appended to or replaced in the catalog (no retraining).

        ``reviews`` optionally gives these products' reviews (their review
        vectors are pooled from it; without it they keep no review vector).
        """
        from vitrine.features.image import load_images

        self._check()
        rows = np.asarray(rows, np.int64)
        n = len(self.catalog_)
        grow = n - len(self.popularity_)
        self.popularity_ = np.concatenate([self.popularity_, np.zeros(max(0, grow), np.float32)])

        def pad(a, fill=0):
            if a is None or len(a) >= n:
                return a
            shape = (n - len(a),) + a.shape[1:]
            return np.concatenate([a, np.full(shape, fill, a.dtype)])

        self.has_text_, self.has_image_ = pad(self.has_text_, False), pad(self.has_image_, False)
        self.text_vectors_, self.image_vectors_ = pad(self.text_vectors_), pad(self.image_vectors_)
        if not len(rows):
            return
        texts = [dense_text(self.catalog_, int(r)) for r in rows]
        self.has_text_[rows] = [bool(t) for t in texts]
        if self.text_vectors_ is not None:
            has = self.has_text_[rows]
            self.text_vectors_[rows] = 0
            if has.any():
                self.text_vectors_[rows[has]] = self.text_encoder_.encode([t for t, h in zip(texts, has, strict=True) if h])
            self.dense_index_.remove(rows)
            self.dense_index_.add(self.text_vectors_[rows[has]], rows[has])
        if self.image_vectors_ is not None:
            enc = self.image_encoder_
            size = self.image_size if enc.name == "tower" else 224
            imgs, ok = load_images([self.catalog_.image_path(int(r)) for r in rows], size=size,
                                   labels=[str(self.catalog_.ids[r]) for r in rows])
            self.has_image_[rows] = ok
            self.image_vectors_[rows] = 0
            raw = getattr(self, "raw_image_vectors_", {})
            for r in rows:
                raw.pop(int(r), None)
            vt = getattr(self, "visual_terms_", None)
            if vt is not None and not ok.all():  # set_rows below replaces the others' words
                vt.clear_rows(rows[~ok])
            if ok.any():
                if enc.name == "tower":
                    vecs, logp = enc.encode(imgs[ok])
                    if vt is not None and logp is not None:
                        vt.set_rows(rows[ok], logp, n)
                else:
                    vecs = enc.encode_images(imgs[ok])
                self.image_vectors_[rows[ok]] = vecs
                self._enrich_text_less(rows[ok & ~self.has_text_[rows]])
            self.image_index_.remove(rows)
            self.image_index_.add(self.image_vectors_[rows[ok]], rows[ok])
        self._index_docs(rows)
        if getattr(self, "fusion_", None) is not None:
            self._add_modalities(rows, reviews)
            self._build_items(rows)
        else:
            self._build_items()

    def _index_docs(self, rows: np.ndarray) -> None:
        """Lexical and trigram rows for added or replaced products (after their photos are read)."""
        rows = np.unique(rows)  # a row given twice is indexed once (its text is the catalog's)
        docs = [product_doc(self.catalog_, int(r)) for r in rows]
        seen = self._with_seen([dict(d) for d in docs], rows) if "seen" in self.lexical_.fields_ else docs
        for index, batch in ((self.lexical_, seen), (getattr(self, "ngram_", None), docs)):
            if index is None:
                continue
            old = rows < index.n_docs_
            index.replace_rows(rows[old], [d for d, o in zip(batch, old, strict=True) if o])
            new = np.flatnonzero(~old)
            if len(new):  # rows appended to the catalog (sorted: in row order)
                index.append([batch[i] for i in new])

    def _add_modalities(self, rows: np.ndarray, reviews) -> None:
        n = len(self.catalog_)
        sub = self.catalog_.products.iloc[rows]
        if getattr(self, "review_vectors_", None) is not None or reviews is not None:
            ids = self.catalog_.ids[rows]
            vecs, has = pool_reviews(reviews, ids, self.text_encoder_, max_reviews=self.max_reviews)
            if getattr(self, "review_vectors_", None) is None and vecs is None:
                pass
            else:
                d = (vecs if vecs is not None else self.review_vectors_).shape[1]
                rv = getattr(self, "review_vectors_", None)
                rv = np.zeros((n, d), np.float32) if rv is None else rv
                hr = getattr(self, "has_review_", np.zeros(0, bool))
                if len(rv) < n:
                    rv = np.concatenate([rv, np.zeros((n - len(rv), d), np.float32)])
                if len(hr) < n:
                    hr = np.concatenate([hr, np.zeros(n - len(hr), bool)])
                rv[rows] = vecs if vecs is not None else 0
                hr[rows] = has
                self.review_vectors_, self.has_review_ = rv, hr
        if reviews is not None and len(reviews) and "rating" in reviews:
            new = reviews[["product_id", "rating"]].astype({"product_id": str})
            old = self.review_stats_
            self.review_stats_ = new if old is None else pd.concat(
                [old[~old["product_id"].isin(set(new["product_id"]))], new], ignore_index=True)
        if self.brands_ is not None:
            self.brands_.set(rows, brand_values(sub), self.text_encoder_)
        if self.categories_ is not None:
            self.categories_.set(rows, category_values(sub), self.text_encoder_)
        if self.scaler_ is not None:
            # Percentiles and recency are catalog-relative: recompute every row with the fitted scaling.
            raw, _ = numeric_table(self.catalog_.products, self.review_stats_, names=self.numeric_names_)
            self.numeric_ = self.scaler_.transform(raw)

    @_invalidates
    def set_reviews(self, reviews) -> None:
        """Replace the review modality from a new reviews table (e.g. after erasing a shopper):
        pooled review vectors, review statistics and item vectors; the fusion is not retrained."""
        self._check()
        if getattr(self, "fusion_", None) is None:
            return
        n = len(self.catalog_)
        vecs, has = pool_reviews(reviews, self.catalog_.ids, self.text_encoder_, max_reviews=self.max_reviews)
        if vecs is None and "reviews" in self.fusion_.names_:
            vecs = np.zeros((n, self.fusion_.dims_[self.fusion_.names_.index("reviews")]), np.float32)
        self.review_vectors_, self.has_review_ = vecs, has
        self.review_stats_ = None
        if reviews is not None and len(reviews) and "rating" in reviews:
            self.review_stats_ = reviews[["product_id", "rating"]].astype({"product_id": str}).copy()
        if self.scaler_ is not None:
            raw, _ = numeric_table(self.catalog_.products, self.review_stats_, names=self.numeric_names_)
            self.numeric_ = self.scaler_.transform(raw)
        self.item_index_ = None
        self._build_items()

    @_invalidates
    def remove(self, rows: np.ndarray) -> None:
        """Drop rows from the vector indexes (the catalog's active mask already hides them)."""
        for idx in (getattr(self, "dense_index_", None), getattr(self, "image_index_", None)):
            if idx is not None:
                idx.remove(np.asarray(rows, np.int64))

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.lexical_.save(folder / "lexical")
        if getattr(self, "ngram_", None) is not None:
            self.ngram_.save(folder / "ngram")
        np.save(folder / "popularity.npy", self.popularity_, allow_pickle=False)
        np.save(folder / "has_text.npy", self.has_text_, allow_pickle=False)
        np.save(folder / "has_image.npy", self.has_image_, allow_pickle=False)
        if self.text_vectors_ is not None:
            np.save(folder / "text_vectors.npy", self.text_vectors_, allow_pickle=False)
            self.dense_index_.save(folder / "dense_index")
        if self.image_vectors_ is not None:
            np.save(folder / "image_vectors.npy", self.image_vectors_, allow_pickle=False)
            raw = getattr(self, "raw_image_vectors_", {})
            keys = np.fromiter(raw, np.int64, len(raw))
            np.save(folder / "raw_image_rows.npy", keys, allow_pickle=False)
            np.save(folder / "raw_image_vectors.npy",
                    np.stack([raw[int(r)] for r in keys]) if len(keys) else np.zeros((0, 1), np.float32),
                    allow_pickle=False)
            self.image_index_.save(folder / "image_index")
            self.image_encoder_.save(folder / "image_encoder")
            if getattr(self, "visual_terms_", None) is not None:
                self.visual_terms_.save(folder / "visual_terms")
        if getattr(self, "fusion_", None) is not None:
            self._save_fusion(folder / "fusion")
        if getattr(self, "query_encoder_", None) is not None:
            self.query_encoder_.save(folder / "query_encoder")
        params = {k: getattr(self, k) for k in ("depth", "text_model", "image_model", "image_size", "tower_seconds",
                                                  "tower_epochs", "tower_members", "fusion", "weights", "propagate", "visual_terms", "image_words", "ngram", "item_fusion",
                                                  "fusion_seconds", "fusion_pseudo", "max_reviews", "query_tuning",
                                                  "query_tuning_seconds", "cache_dir",
                                                  "device")}
        fitted = {"text_model_": self.text_model_, "image_model_": self.image_model_, "device_": self.device_,
                  "cache_dir_": self.cache_dir_, "weights_": self.weights_, "seed_": self.seed_,
                  "tower_seconds_": self.tower_seconds_, "item_fusion_": getattr(self, "item_fusion_", "average")}
        (folder / "retriever.json").write_text(json.dumps({"params": params, "fitted": fitted}))

    def _save_fusion(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.fusion_.save(folder / "model")
        np.save(folder / "item_vectors.npy", self.item_vectors_, allow_pickle=False)
        self.item_index_.save(folder / "item_index")
        if self.review_vectors_ is not None:
            np.save(folder / "review_vectors.npy", self.review_vectors_, allow_pickle=False)
        np.save(folder / "has_review.npy", self.has_review_, allow_pickle=False)
        if self.review_stats_ is not None:
            self.review_stats_.to_parquet(folder / "review_stats.parquet", index=False)
        self.brands_.save(folder, "brand")
        self.categories_.save(folder, "category")
        meta = {"numeric_names": self.numeric_names_}
        if self.scaler_ is not None:
            meta["mean"], meta["std"] = self.scaler_.mean_.tolist(), self.scaler_.std_.tolist()
            np.save(folder / "numeric.npy", self.numeric_, allow_pickle=False)
        (folder / "modalities.json").write_text(json.dumps(meta))

    def _load_fusion(self, folder: Path) -> None:
        self.fusion_ = ModalityFusion.load(folder / "model")
        self.item_vectors_ = np.load(folder / "item_vectors.npy", allow_pickle=False)
        self.item_index_ = VectorIndex.load(folder / "item_index")
        rv = folder / "review_vectors.npy"
        self.review_vectors_ = np.load(rv, allow_pickle=False) if rv.exists() else None
        self.has_review_ = np.load(folder / "has_review.npy", allow_pickle=False)
        rs = folder / "review_stats.parquet"
        self.review_stats_ = pd.read_parquet(rs) if rs.exists() else None
        self.brands_ = ValueEmbeddings.load(folder, "brand")
        self.categories_ = ValueEmbeddings.load(folder, "category")
        meta = json.loads((folder / "modalities.json").read_text())
        self.numeric_names_ = meta["numeric_names"]
        self.scaler_, self.numeric_ = None, None
        if "mean" in meta:
            self.scaler_ = NumericScaler()
            self.scaler_.mean_, self.scaler_.std_ = np.asarray(meta["mean"]), np.asarray(meta["std"])
            self.numeric_ = np.load(folder / "numeric.npy", allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, catalog: Catalog) -> Retriever:
        from vitrine.features.image import load_image_encoder

        folder = Path(folder)
        meta = json.loads((folder / "retriever.json").read_text())
        self = cls(**meta.get("params", {}))
        for key, v in meta.get("fitted", {}).items():
            setattr(self, key, v)
        if "fitted" not in meta:  # a foundation-era save: lexical only
            self._resolve()
            self.text_model_ = "none"
        self.catalog_ = catalog
        self._qcache = OrderedDict()
        self._changed()
        self.lexical_ = BM25Index.load(folder / "lexical")
        self.ngram_ = BM25Index.load(folder / "ngram") if (folder / "ngram").exists() else None
        self.popularity_ = np.load(folder / "popularity.npy", allow_pickle=False)
        n = len(self.popularity_)
        ht, hi = folder / "has_text.npy", folder / "has_image.npy"
        self.has_text_ = np.load(ht) if ht.exists() else np.zeros(n, bool)
        self.has_image_ = np.load(hi) if hi.exists() else np.zeros(n, bool)
        self.text_vectors_ = self.image_vectors_ = self.image_encoder_ = self.visual_terms_ = None
        self.dense_index_ = None
        self.text_encoder_ = self._text_encoder() if (folder / "text_vectors.npy").exists() else None
        if self.text_encoder_ is not None:
            self.text_vectors_ = np.load(folder / "text_vectors.npy", allow_pickle=False)
            self.dense_index_ = VectorIndex.load(folder / "dense_index")
        self.query_encoder_ = None
        if self.text_encoder_ is not None and (folder / "query_encoder").exists():
            from vitrine.config import resolve_device
            from vitrine.features.query_tuning import QueryTuner

            self.query_encoder_ = QueryTuner.load(folder / "query_encoder", self.text_encoder_._st(),
                                                  device=resolve_device(self.device_))
        if (folder / "image_vectors.npy").exists():
            self.image_vectors_ = np.load(folder / "image_vectors.npy", allow_pickle=False)
            rr = np.load(folder / "raw_image_rows.npy", allow_pickle=False)
            rv = np.load(folder / "raw_image_vectors.npy", allow_pickle=False)
            self.raw_image_vectors_ = {int(r): v for r, v in zip(rr, rv, strict=True)}
            self.image_index_ = VectorIndex.load(folder / "image_index")
            self.image_encoder_ = load_image_encoder(folder / "image_encoder")
            self.visual_terms_ = VisualTerms.load(folder / "visual_terms")
        self.fusion_ = None
        if (folder / "fusion").exists():
            self._load_fusion(folder / "fusion")
        else:
            self._build_items()
        return self
