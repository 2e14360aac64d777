"""The personal layer the engine talks to: a tuned blend of shopper models.

Sources, each scoring every catalog row for one shopper from that shopper's
live profile:

==============  ==============================================================
``itemknn``     item-kNN on cosine co-occurrence, recency-decayed history
``userknn``     user-kNN (products of the most similar shoppers)
``transitions`` first-order item-to-next-item transitions from the newest items
``seqknn``      directional kNN: products that follow the newest items within a few steps
``als``         implicit ALS; products without events get factors from content
``mf``          low-rank ALS (16 factors): broad taste, robust against random candidates
``sasrec``      self-attention next-item model over the recent sequence
``content``     attribute profile (category, brand, colour, tags, price band)
``title``       title-word profile (TF-IDF of words shared by two or more products)
``vector``      product vectors of the retriever (only when given to fit)
``popularity``  event-weighted popularity (log)
==============  ==============================================================

``fit`` carves each shopper's last training event off as a validation
holdout, fits every source on the rest, tunes the blend weights of the
z-scored sources for NDCG@10 on that holdout, then refits on all events.
Two blends come out of tuning: ``weights_`` (the ``tune_objective``, full
ranking by default: what ``recommend`` ranks by) and ``candidate_weights_``
(NDCG@10 of the held-out product among 19 random products: what
``score_candidates`` ranks a given candidate list by). With enough tuning
shoppers, two learned blends (``vitrine.personal.stacker``) are then fitted on
the same holdout and kept where they beat the linear ones on shoppers they did
not see: one reorders a given candidate list, one the head of the full ranking.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitrine.config import DEFAULT_EVENT_WEIGHTS
from vitrine.data.catalog import Catalog
from vitrine.errors import NotFittedError
from vitrine.personal.cf import ALS, ItemKNN, SeqKNN, Transitions, UserKNN, history_weights, user_item_matrix
from vitrine.personal.content import ContentEncoder
from vitrine.personal.profiles import ATTRIBUTES, AttributeCodes, Profile, Profiles
from vitrine.personal.stacker import Stacker
from vitrine.personal.stacker import features as stacker_features
from vitrine.results import top_k

SOURCES = ("itemknn", "userknn", "transitions", "seqknn", "als", "mf", "sasrec", "content", "title", "vector",
           "popularity")
DEFAULT_BLEND = {"itemknn": 1.0, "userknn": 0.25, "transitions": 0.5, "seqknn": 0.5, "als": 0.5, "mf": 0.0,
                 "sasrec": 1.0, "content": 0.1, "title": 0.1, "vector": 0.1, "popularity": 0.1}
#: Sources only the candidate-list blend uses (the full-ranking blend keeps weight 0: a low-rank
#: model ranks random candidates well but dilutes the head of a full-catalog ranking).
CANDIDATE_ONLY = ("mf",)
SAMPLED_SETS = 3  # random candidate lists per tuning shopper for the sampled objective
# Random products beside the held-out one in each such list (amazon-games' protocol). Lists of 99,
# for a candidate file of 99 per shopper, scored 0.4471 against 0.4439 on beauty, within the spread,
# for 1.5 times the tuning time and 0.5 GB more (docs/bench/personal.md): the lists stay this size.
SAMPLED_NEGATIVES = 19
DRAW_GRID = np.round(np.arange(0.0, 2.0001, 0.1), 1)  # exponents draw_exponent chooses among
DRAW_MIN = 200  # drawn products below which draw_exponent keeps the uniform draw: too few to tell
MF_PARAMS = {"factors": 16, "regularization": 0.1, "alpha": 20.0, "iterations": 15}
TIE_BREAK = 1e-3  # popularity z-score added in score_candidates so that exact ties fall back to popularity
BEHAVIOUR = ("itemknn", "userknn", "transitions", "seqknn", "sasrec", "popularity")
STACK_USERS = 500  # tuning shoppers below which no learned blend is tried (too few lists to check it on)
HEAD = 200  # products of the full ranking's head that the learned blend reorders
#: Catalogs above this many products place cold products by quantiles of a fixed sample of this size
#: (a full sort per source per request cost 50-80 ms at 1M products; the sample put cold products
#: within 0.009 in quantile of the exact place, bench_personal.py --only cold-quantiles).
QUANTILE_SAMPLE = 32768
GRID = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
CANDIDATE_GRID = (*GRID, 8.0, 12.0)  # the candidate blend leans on few sources: room above 6
#: Feature names of :meth:`Personalizer.features` (stable; the ranker reads them by name).
FEATURES = (
    "personal_blend", "personal_itemknn", "personal_userknn", "personal_transitions", "personal_seqknn", "personal_als",
    "personal_sasrec", "personal_content", "personal_vector", "personal_popularity",
    "aff_category", "aff_brand", "aff_color", "aff_price_band",
    "seen_before", "bought_before", "user_events",
)


def _replace(path: Path, write) -> None:
    """Write ``path`` as a new file (``write(path)``): unlinked first, so a hard link elsewhere keeps the old."""
    path.unlink(missing_ok=True)
    write(path)


def draw_exponent(pool: np.ndarray, counts: np.ndarray) -> float:
    """How a shop draws the products of its candidate lists: the ``a`` of (count + 1)^a.

    ``pool`` holds the catalog rows of every product in the lists, ``counts``
    each product's training events. The maximum-likelihood ``a`` on a grid
    from 0 (uniform over the catalog, amazon-games' protocol) to 2; 1 is in
    proportion to popularity (BERT4Rec's protocol). Give it drawn products
    only: held-out products, chosen like purchases, pull ``a`` up (amazon-games'
    lists with their held-out products read 0.1 instead of 0), so
    ``vitrine evaluate recommend`` removes any that a file names.
    """
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) < DRAW_MIN:
        return 0.0
    logc = np.log1p(np.asarray(counts, dtype=np.float64))
    seen = logc[pool].sum()
    best, at = -np.inf, 0.0
    for a in DRAW_GRID:
        ll = a * seen - len(pool) * np.log(np.exp(a * logc).sum())
        if ll > best + 1e-9:
            best, at = ll, float(a)
    return at


def _zscore(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=np.float32)
    sd = float(s.std())
    return (s - float(s.mean())) / sd if sd > 1e-12 else np.zeros_like(s)


@functools.lru_cache(maxsize=4)
def quantile_rows(n: int, size: int) -> np.ndarray | None:
    """A fixed sample of ``size`` of ``n`` rows (sorted, read-only), or None when ``n <= size`` (every row)."""
    if n <= size:
        return None
    rows = np.sort(np.random.default_rng(n).choice(n, size=size, replace=False))
    rows.flags.writeable = False
    return rows


def place_by_quantile(sim: np.ndarray, cold: np.ndarray, scores: list[np.ndarray],
                      sample: np.ndarray | None = None) -> None:
    """In each of ``scores`` (in place), give each ``cold`` row the value at the quantile its ``sim``
    has among all rows; with ``sample``, quantiles are read from those rows alone."""
    cold = np.flatnonzero(cold)  # indices: each source is then written at these rows, not scanned whole
    ref = sim if sample is None else sim[sample]
    m = len(ref)
    q = np.clip(np.searchsorted(np.sort(ref), sim[cold], side="right") - 1, 0, m - 1)
    uq, inv = np.unique(q, return_inverse=True)
    for v in scores:
        col = v if sample is None else v[sample]
        part = np.partition(col, uq) if len(uq) < 64 else np.sort(col)
        v[cold] = part[uq][inv]


def _sequences(events: pd.DataFrame, catalog: Catalog, weights: dict[str, float]):
    """Per-user positive events in time order: keys, rows, event weights, purchase flags."""
    ev = events.reset_index(drop=True)
    ev = ev.assign(_o=np.arange(len(ev))).sort_values(["timestamp", "_o"], kind="stable")
    rows = catalog.indices(ev["product_id"], missing="mark")
    w = ev["event"].map(weights).fillna(0.0).to_numpy(dtype=np.float32)
    ok = (rows >= 0) & (w > 0)
    users = ev["user_id"].to_numpy(dtype=object)[ok]
    rows, w = rows[ok], w[ok]
    buy = (ev["event"].to_numpy(dtype=object)[ok] == "purchase")
    codes, keys = pd.factorize(users, sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(keys) + 1))
    out = []
    for i, key in enumerate(keys):
        sel = order[bounds[i]: bounds[i + 1]]
        out.append((str(key), rows[sel], w[sel], buy[sel]))
    return out


def head_lists(blocks: list[np.ndarray], listed: list[bool], w: np.ndarray,
               hist: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The head stacker's training lists: each block's linear-blend top ``HEAD`` (features, blend,
    index of the held-out product or -1).

    Every other product of a block is in some source's top products; a held-out product
    that is not must not enter its list, or "in no source's top" would mark it (a learned
    blend once lifted exactly such products, far below popularity on the test split).
    """
    X, blends, targets = [], [], []
    for j, zb in enumerate(blocks):
        fine = np.flatnonzero(np.isfinite(zb).all(axis=1))
        if not listed[j]:
            fine = fine[fine != 0]
        head = fine[top_k(zb[fine] @ w, HEAD)]
        b = zb[head] @ w
        X.append(stacker_features(zb[head], b, hist[j]))
        blends.append(b)
        at = np.flatnonzero(head == 0)
        targets.append(int(at[0]) if len(at) else -1)
    return X, blends, np.asarray(targets)


class Personalizer:
    """Recommendations, per-shopper scores and ranking features from behaviour.

    Parameters
    ----------
    event_weights : weight of each event type (purchase > cart > click > impression).
    history : positive events a live profile keeps.
    sources : which sources to fit (subset of ``SOURCES``).
    blend : starting (or, with ``tune=False``, fixed) weight of each z-scored source.
    tune : tune blend weights on a validation holdout carved from the training events.
    tune_users : shoppers sampled for tuning. 8000 rather than 3000: the head stacker's check
        then clears its standard error on amazon-beauty and amazon-games in both seeds tried
        (NDCG@10 +0.002, tuning 110-160 s instead of 40-46 s, peak memory +0.3-0.5 GB).
    tune_objective : "full" (NDCG@``cutoff`` ranking the whole catalog), "sampled"
        (NDCG@``cutoff`` among the held-out product and 19 random products, the
        ``--candidates`` protocol) or "both" (sum of the two, each relative to
        the starting weights).
    cutoff : the list length tuning and the learned blends optimise (NDCG@cutoff);
        ``vitrine evaluate recommend --k`` sets it, a shop sets ``VITRINE_CUTOFF``.
    seq_seconds : training-time budget of the sequential model (split between
        the validation fit and the final top-up).
    seq_params, als_params, knn_params, mf_params : keyword arguments of the models
        (``mf_params`` override ``MF_PARAMS`` of the low-rank ALS).
    diversity : in ``recommend``, penalty (in blend units) per already chosen
        product of the same leaf category (0 = off).
    learned_blends : after tuning, try the learned blends (``vitrine.personal.stacker``).
    seed : random seed.

    Attributes
    ----------
    weights_ : tuned blend weights (full ranking: ``score_all``, ``recommend``).
    candidate_weights_ : blend weights tuned for ranking a given candidate
        list (``score_candidates``); equal to ``weights_`` without tuning.
    candidate_draw_ : exponent ``a`` of the (events + 1)^a draw of the candidate lists given
        to fit (``draw_exponent``; 0, uniform, without them), which the tuning lists follow.
    candidate_stacker_, head_stacker_ : learned blends for candidate lists and for the
        full ranking's head (``None`` when not kept); their checks are in ``tuning_``.
    popularity_ : array (n_products,), event-weighted popularity.
    profiles_ : live shopper profiles.
    timings_ : seconds spent fitting each source.
    """

    def __init__(
        self, *, event_weights: dict[str, float] | None = None, history: int = 200,
        sources: tuple[str, ...] = SOURCES, blend: dict[str, float] | None = None, tune: bool = True,
        tune_users: int = 8000, tune_objective: str = "full", cutoff: int = 10,
        seq_seconds: float = 150.0, seq_params: dict | None = None,
        als_params: dict | None = None, knn_params: dict | None = None, mf_params: dict | None = None,
        diversity: float = 0.1, learned_blends: bool = True, seed: int = 0,
    ) -> None:
        self.event_weights = event_weights
        self.history = history
        self.sources = tuple(sources)
        self.blend = blend
        self.tune = tune
        self.tune_users = tune_users
        self.tune_objective = tune_objective
        self.cutoff = cutoff
        self.seq_seconds = seq_seconds
        self.seq_params = seq_params
        self.als_params = als_params
        self.knn_params = knn_params
        self.mf_params = mf_params
        self.diversity = diversity
        self.learned_blends = learned_blends
        self.seed = seed

    # -- configuration ---------------------------------------------------------
    def _weights(self) -> dict[str, float]:
        return self.event_weights or DEFAULT_EVENT_WEIGHTS

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in (
            "event_weights", "history", "sources", "blend", "tune", "tune_users", "tune_objective", "cutoff",
            "seq_seconds", "seq_params", "als_params", "knn_params", "mf_params", "diversity", "learned_blends",
            "seed")}

    # -- fit --------------------------------------------------------------------
    def fit(self, events: pd.DataFrame | None, catalog: Catalog, item_vectors: np.ndarray | None = None,
            candidates: pd.DataFrame | None = None) -> Personalizer:
        """Learn from events whose ``user_id`` are pseudonymised keys.

        ``item_vectors`` (n_products, d), when given, tie item factors to
        product vectors and add the ``vector`` source; otherwise content
        vectors are built from catalog attributes. ``candidates`` (a
        ``product_id`` column), the lists the shop will ask
        ``score_candidates`` to rank: the candidate blend is then tuned on
        lists drawn the way these were (``draw_exponent``), not uniformly.
        """
        t_all = time.time()
        self.catalog_ = catalog
        n = self.n_items_ = len(catalog)
        self.timings_: dict[str, float] = {}
        t = time.time()
        self.content_ = ContentEncoder().fit(catalog)
        self.title_ = ContentEncoder(dims=0, kind="title", min_df=2).fit(catalog)
        self.codes_ = AttributeCodes()
        self.codes_.update(catalog, self.content_.bands_)
        self.vectors_ = None
        if item_vectors is not None and len(item_vectors) == n:
            v = np.asarray(item_vectors, dtype=np.float32)
            self.vectors_ = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
        self.timings_["content"] = time.time() - t

        self.popularity_ = np.zeros(n, dtype=np.float32)
        counts = np.zeros(n, dtype=np.float64)  # chosen events per product
        self.profiles_ = Profiles(history=self.history)
        seqs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        if events is not None and len(events):
            rows = catalog.indices(events["product_id"], missing="mark")
            w = events["event"].map(self._weights()).fillna(0.0).to_numpy(dtype=np.float32)
            ok = rows >= 0
            np.add.at(self.popularity_, rows[ok], w[ok] + 0.01)  # impressions count a little
            np.add.at(counts, rows[ok & (w > 0)], 1.0)
            seqs = _sequences(events, catalog, self._weights())
        for key, r, w, b in seqs:
            for row, wt, buy in zip(r, w, b, strict=True):
                self.profiles_.add(key, int(row), float(wt), bool(buy), self.codes_, bump=False)
        self.user_index_ = {key: i for i, (key, *_rest) in enumerate(seqs)}
        self.candidate_draw_, draw = 0.0, None  # draw: None is uniform
        if candidates is not None and len(candidates):
            pool = catalog.indices(candidates["product_id"], missing="mark")
            self.candidate_draw_ = draw_exponent(pool[pool >= 0], counts)
            if self.candidate_draw_ > 0:
                draw = (counts + 1.0) ** self.candidate_draw_
                draw /= draw.sum()

        self.weights_ = {s: DEFAULT_BLEND[s] for s in self._active()}
        if self.blend:
            self.weights_.update({s: w for s, w in self.blend.items() if s in self.weights_})
        self.candidate_weights_ = dict(self.weights_)
        budget = float(self.seq_seconds)
        self.tuning_: dict = {}
        self.candidate_stacker_ = self.head_stacker_ = None
        if self.tune and len(seqs) >= 50:
            val = [(k, r[:-1], w[:-1], r[-1]) for k, r, w, _ in seqs if len(r) >= 2]
            if len(val) >= 50:
                self._fit_sources([r for _, r, _, _ in val], [w for _, _, w, _ in val],
                                  seq_budget=0.7 * budget)
                self._tune(val, draw)
                budget = 0.3 * budget
        self._fit_sources([r for _, r, _, _ in seqs], [w for _, _, w, _ in seqs], seq_budget=budget,
                          continue_seq=hasattr(self, "sasrec_"))
        self.pop_source_ = self.popularity_
        self._precompute([(r, w) for _, r, w, _ in seqs])
        self.timings_["total"] = time.time() - t_all
        return self

    def _active(self) -> tuple[str, ...]:
        act = [s for s in self.sources if s in SOURCES]
        if self.vectors_ is None and "vector" in act:
            act.remove("vector")
        if "title" in act and not getattr(getattr(self, "title_", None), "vocab_", None):
            act.remove("title")  # no titles (or none shared by two products)
        return tuple(act)

    def _fit_sources(self, rows: list[np.ndarray], wts: list[np.ndarray], seq_budget: float,
                     continue_seq: bool = False) -> None:
        n = self.n_items_
        act = self._active()
        ui = user_item_matrix(rows, wts, n)
        # popularity from the same events as the other sources (no leak of the validation holdout)
        self.pop_source_ = np.asarray(ui.sum(axis=0)).ravel().astype(np.float32)
        self.cold_ = self.pop_source_ <= 0  # products without events: behaviour sources imputed from content
        dense = self.vectors_ if self.vectors_ is not None else self.content_.dense()

        # One bar step per source: SASRec alone can take minutes. Off when not on a terminal.
        bar = tqdm(total=len(act), desc="fit personal", unit="source", disable=None, leave=False)

        def timed(name, fn):
            t = time.time()
            bar.set_postfix_str(name)
            out = fn()
            self.timings_[name] = self.timings_.get(name, 0.0) + time.time() - t
            bar.update(1)
            return out

        if "itemknn" in act:
            self.itemknn_ = timed("itemknn", lambda: ItemKNN(**(self.knn_params or {})).fit(ui))
        if "userknn" in act:
            self.userknn_ = timed("userknn", lambda: UserKNN().fit(ui))
        if "transitions" in act:
            self.transitions_ = timed("transitions", lambda: Transitions().fit(rows, n))
        if "seqknn" in act:
            self.seqknn_ = timed("seqknn", lambda: SeqKNN().fit(rows, n))
        if "als" in act and ui.nnz:
            self.als_ = timed("als", lambda: ALS(**{"seed": self.seed, **(self.als_params or {})}).fit(ui, dense))
            self.als_rows_ = None  # fitted user factors are aligned with ``rows``; set by _precompute
        if "mf" in act and ui.nnz:
            mf_params = {"seed": self.seed, **MF_PARAMS, **(self.mf_params or {})}
            self.mf_ = timed("mf", lambda: ALS(**mf_params).fit(ui, dense))
        if "sasrec" in act and ui.nnz:
            from vitrine.personal.sequential import SASRec

            if continue_seq:
                timed("sasrec", lambda: self.sasrec_.train_more(rows, max_seconds=seq_budget))
            else:
                params = {"seed": self.seed, **(self.seq_params or {})}
                self.sasrec_ = timed("sasrec", lambda: SASRec(**params).fit(rows, n, init=dense,
                                                                            max_seconds=seq_budget))
        bar.close()

    def _precompute(self, hist: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Cache per-user model states of fitted shoppers (ALS factors, sequence states)."""
        self.cache_: dict[str, tuple[int, dict]] = {}
        self.als_users_ = self.als_.user_factors_ if hasattr(self, "als_") else None
        self.seq_users_ = None
        if hasattr(self, "sasrec_"):
            self.seq_users_ = self.sasrec_.encode([r for r, _ in hist])

    # -- tuning -----------------------------------------------------------------
    def _tune(self, val: list[tuple[str, np.ndarray, np.ndarray, int]], draw: np.ndarray | None = None) -> None:
        """Tune the blends on the holdout ``val``; ``draw`` gives each product's chance in the
        sampled lists (None: uniform)."""
        t = time.time()
        k, m = self.cutoff, SAMPLED_NEGATIVES
        rng = np.random.default_rng(self.seed)
        pick = rng.choice(len(val), size=min(self.tune_users, len(val)), replace=False)
        act = self._active()
        depth = 100
        seq_states = self.sasrec_.encode([val[i][1] for i in pick]) if hasattr(self, "sasrec_") else None
        blocks, listed, sampled, owners, hist = [], [], [], [], []
        for j, i in enumerate(pick):
            _, r, w, target = val[i]
            st = {"als": self.als_.user_vector(r, w) if hasattr(self, "als_") else None,
                  "mf": self.mf_.user_vector(r, w) if hasattr(self, "mf_") else None,
                  "sasrec": seq_states[j] if seq_states is not None else None}
            z = self._source_scores(r, w, st, act)
            mat = np.stack([z[s] for s in act])  # (S, n)
            mat[:, np.unique(r)] = -np.inf
            cand = set()
            for row in mat:
                cand.update(top_k(row, depth).tolist())
            listed.append(int(target) in cand)
            cand.discard(int(target))
            cand = np.asarray([int(target), *sorted(cand)], dtype=np.int64)
            blocks.append(mat[:, cand].T)
            # SAMPLED_SETS lists of the held-out product and m random products (less noise than one)
            negs = rng.choice(self.n_items_, size=min(self.n_items_, 2 * (m + 1) * SAMPLED_SETS), replace=False,
                              p=draw)
            negs = negs[np.isfinite(mat[0, negs]) & (negs != target)]
            for part in range(SAMPLED_SETS):
                sel = negs[m * part: m * (part + 1)]
                if part == 0 or len(sel) == m:
                    sampled.append(np.concatenate([mat[:, [int(target)]], mat[:, sel]], axis=1).T)
                    owners.append(j)
            hist.append(min(len(r), self.history))
        width = max(b.shape[0] for b in blocks)
        z = np.full((len(blocks), width, len(act)), -np.inf, dtype=np.float32)
        for j, b in enumerate(blocks):
            z[j, : b.shape[0]] = b
        z = np.where(np.isfinite(z), z, -1e4)
        pad = np.ones((len(blocks), width), dtype=bool)
        for j, b in enumerate(blocks):
            pad[j, : b.shape[0]] = False

        width_s = max(b.shape[0] for b in sampled)
        zs = np.full((len(sampled), width_s, len(act)), -1e4, dtype=np.float32)
        for j, b in enumerate(sampled):
            zs[j, : b.shape[0]] = np.where(np.isfinite(b), b, -1e4)

        def full(wv: np.ndarray) -> float:
            s = z @ wv
            s[pad] = -np.inf
            rank = (s[:, 1:] > s[:, :1]).sum(axis=1)
            return float(np.where(rank < k, 1.0 / np.log2(rank + 2), 0.0).mean())

        def few(wv: np.ndarray) -> float:
            s = zs @ wv
            # a tie counts half: the evaluation breaks ties at random, not for the held-out product
            rank = (s[:, 1:] > s[:, :1]).sum(axis=1) + 0.5 * (s[:, 1:] == s[:, :1]).sum(axis=1)
            return float(np.where(rank < k, 1.0 / np.log2(rank + 2), 0.0).mean())

        w0 = np.array([self.weights_[s] for s in act], dtype=np.float32)
        f0, s0 = max(full(w0), 1e-6), max(few(w0), 1e-6)

        def ndcg(wv: np.ndarray) -> float:
            if self.tune_objective == "full":
                return full(wv)
            if self.tune_objective == "sampled":
                return few(wv)
            return full(wv) / f0 + few(wv) / s0

        def ascend(objective, w: np.ndarray, fixed: tuple[str, ...] = (),
                   grid: tuple[float, ...] = GRID) -> tuple[np.ndarray, float]:
            """Coordinate ascent over ``grid``, three sweeps (sources in ``fixed`` keep their weight)."""
            best = objective(w)
            for _ in range(3):
                for i in range(len(act)):
                    if act[i] in fixed:
                        continue
                    for g in grid:
                        cand = w.copy()
                        cand[i] = g
                        if not cand.any():
                            continue
                        v = objective(cand)
                        if v > best + 1e-6:
                            best, w = v, cand
            return w, best

        w0[[i for i, s in enumerate(act) if s in CANDIDATE_ONLY]] = 0.0
        start = ndcg(w0)
        w, best = ascend(ndcg, w0.copy(), fixed=CANDIDATE_ONLY)
        # the candidate-list blend starts from the tuned one and climbs the sampled objective
        wc, _ = ascend(few, w.copy(), grid=CANDIDATE_GRID)
        self.weights_ = {s: float(x) for s, x in zip(act, w, strict=True)}
        self.candidate_weights_ = {s: float(x) for s, x in zip(act, wc, strict=True)}
        self.tuning_ = {"users": len(pick), "objective": self.tune_objective, "start": start, "best": best,
                        "candidate_draw": self.candidate_draw_,
                        f"full_ndcg@{k}": full(w), f"sampled_ndcg@{k}": few(w),
                        f"candidates_full_ndcg@{k}": full(wc), f"candidates_sampled_ndcg@{k}": few(wc)}
        if self.learned_blends and len(pick) >= STACK_USERS:
            self._fit_stackers(blocks, listed, sampled, np.asarray(owners), np.asarray(hist), w, wc)
        self.tuning_["seconds"] = round(time.time() - t, 2)

    def _fit_stackers(self, blocks: list[np.ndarray], listed: list[bool], sampled: list[np.ndarray],
                      owners: np.ndarray, hist: np.ndarray, w: np.ndarray, wc: np.ndarray) -> None:
        """Learned blends (vitrine.personal.stacker) for candidate lists and the full ranking's head.

        ``blocks`` hold each tuning shopper's held-out product (row 0; ``listed`` says whether
        some source had it in its top products) and the union of every source's top products.
        ``sampled`` are the held-out product (row 0) among 19 random ones, of shopper ``owners``.
        """
        # A held-out product the shopper had already interacted with is masked (-inf) like the
        # rest of the history: such lists would teach "masked means relevant", so none is used.
        X, blends, users = [], [], []
        for j, zl in enumerate(sampled):
            if np.isfinite(zl[0]).all():
                b = zl @ wc
                X.append(stacker_features(zl, b, hist[owners[j]]))
                blends.append(b)
                users.append(owners[j])
        cand = Stacker(seed=self.seed, k=self.cutoff).fit(X, blends, np.zeros(len(X), np.int64), np.asarray(users))
        X, blends, targets = head_lists(blocks, listed, w, hist)
        head = Stacker(seed=self.seed, k=self.cutoff).fit(X, blends, targets, np.arange(len(blocks)))
        self.candidate_stacker_ = cand if cand.kept_ else None
        self.head_stacker_ = head if head.kept_ else None
        for name, st in (("candidate_stacker", cand), ("head_stacker", head)):
            self.tuning_[name] = {"kept": st.kept_, **st.check_}

    # -- scoring ----------------------------------------------------------------
    def _check(self) -> None:
        if not hasattr(self, "popularity_"):
            raise NotFittedError(type(self).__name__)

    def _sync(self) -> None:
        """Extend item-side arrays to products added to the catalog since fit."""
        n_new = len(self.catalog_) - self.n_items_
        if n_new <= 0:
            return
        self._changed()
        rows = self.content_.extend(self.catalog_)
        if hasattr(self, "title_"):
            self.title_.extend(self.catalog_)
        self.codes_.update(self.catalog_, self.content_.bands_)
        self.popularity_ = self.pop_source_ = np.concatenate([self.popularity_, np.zeros(n_new, np.float32)])
        if self.vectors_ is not None:
            self.vectors_ = np.vstack([self.vectors_, np.zeros((n_new, self.vectors_.shape[1]), np.float32)])
        if hasattr(self, "als_"):
            dense = self.content_.dense(rows) if self.vectors_ is None else None
            self.als_.add_items(dense, n_new)
        if hasattr(self, "mf_"):
            dense = self.content_.dense(rows) if self.vectors_ is None else None
            self.mf_.add_items(dense, n_new)
        self.n_items_ = len(self.catalog_)
        self.cache_.clear()

    def add(self, rows: np.ndarray | None = None, item_vectors: np.ndarray | None = None) -> None:
        """Take in products added or changed in the catalog (content and content-tied factors)."""
        self._check()
        self._sync()
        self._changed()
        if rows is not None:
            self.content_.refresh(self.catalog_, np.asarray(rows))
            if hasattr(self, "title_"):
                self.title_.refresh(self.catalog_, np.asarray(rows))
            self.codes_.update(self.catalog_, self.content_.bands_)
        if item_vectors is not None and self.vectors_ is not None and len(item_vectors) == self.n_items_:
            v = np.asarray(item_vectors, dtype=np.float32)
            self.vectors_ = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)

    def _states(self, key: str, p: Profile) -> dict:
        hit = self.cache_.get(key)
        if hit is not None and hit[0] == p.version:
            return hit[1]
        st: dict = {"als": None, "mf": None, "sasrec": None}
        idx = self.user_index_.get(key)
        r, w = np.asarray(p.rows, np.int64), np.asarray(p.weights, np.float32)
        if hasattr(self, "als_"):
            if p.version == 0 and idx is not None and self.als_users_ is not None:
                st["als"] = self.als_users_[idx]
            else:
                st["als"] = self.als_.user_vector(r, w)
        if hasattr(self, "mf_"):
            st["mf"] = self.mf_.user_vector(r, w)  # 16 factors: solving is cheaper than storing
        if hasattr(self, "sasrec_"):
            if p.version == 0 and idx is not None and self.seq_users_ is not None:
                st["sasrec"] = self.seq_users_[idx]
            else:
                st["sasrec"] = self.sasrec_.encode([r])[0]
        if len(self.cache_) > 100_000:
            self.cache_.clear()
        self.cache_[key] = (p.version, st)
        return st

    def _source_scores(self, rows: np.ndarray, wts: np.ndarray, st: dict, act: tuple[str, ...]) -> dict:
        """Z-scored score of every catalog row from each source, for one history."""
        n = self.n_items_
        out: dict[str, np.ndarray] = {}
        has = len(rows) > 0
        for s in act:
            if s == "popularity":
                v = np.log1p(self.pop_source_[:n])
            elif not has:
                v = np.zeros(n, np.float32)
            elif s == "itemknn":
                v = self.itemknn_.score(rows, wts, n)
            elif s == "userknn":
                v = self.userknn_.score(rows, n)
            elif s == "transitions":
                v = self.transitions_.score(rows, n)
            elif s == "seqknn":
                v = self.seqknn_.score(rows, n)
            elif s == "als":
                v = self.als_.item_factors_[:n] @ st["als"]
            elif s == "mf":
                v = self.mf_.item_factors_[:n] @ st["mf"]
            elif s == "sasrec":
                v = self.sasrec_.scores(st["sasrec"], n)
            elif s == "content":
                hw = history_weights(wts, 0.9, 50)
                prof = self.content_.matrix_[rows].T @ hw
                v = np.asarray(self.content_.matrix_[:n] @ prof).ravel()
            elif s == "title":
                hw = history_weights(wts, 0.9, 50)
                prof = self.title_.matrix_[rows].T @ hw
                v = np.asarray(self.title_.matrix_[:n] @ prof).ravel()
            elif s == "vector":
                hw = history_weights(wts, 0.9, 50)
                v = self.vectors_[:n] @ (self.vectors_[rows].T @ hw)
            else:  # pragma: no cover - guarded by _active
                raise ValueError(f"unknown source {s!r}")
            out[s] = _zscore(v)
        like = [out[s] for s in ("content", "title", "vector", "als", "mf") if s in out]
        cold = np.resize(self.cold_, n) if len(self.cold_) != n else self.cold_
        if len(self.cold_) < n:
            cold[len(self.cold_):] = True
        if like and has and cold.any():
            # a cold product takes, in each behaviour source, the value at the quantile its
            # content-like score has among all products (same scale as warm products)
            sample = quantile_rows(n, QUANTILE_SAMPLE)
            place_by_quantile(np.mean(like, axis=0), cold, [out[s] for s in BEHAVIOUR if s in out], sample)
        return out

    def _blend(self, z: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
        weights = self.weights_ if weights is None else weights
        total = np.zeros(len(next(iter(z.values()))) if z else self.n_items_, dtype=np.float32)
        for s, v in z.items():
            wt = weights.get(s, 0.0)
            if wt:
                total += wt * v
        return total

    def _user_scores(self, user_key: str | None, weights: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        self._check()
        self._sync()
        weights = self.weights_ if weights is None else weights
        act = tuple(s for s in self._active() if weights.get(s, 0.0) or s == "popularity")
        # One search asks twice (the affinity score, then the ranker's features): remember the last
        # answer until any event, erasure or catalog change (_version) makes it stale.
        p = self.profiles_.get(user_key)
        key = (user_key, act, getattr(self, "_version", 0), id(self.profiles_), id(p),
               len(p.rows) if p is not None else 0, getattr(p, "events", 0))
        memo = getattr(self, "_memo", None)
        if memo is not None and memo[0] == key:
            return dict(memo[1])
        if p is None or not p.rows:
            out = self._source_scores(np.zeros(0, np.int64), np.zeros(0, np.float32), {}, act)
        else:
            out = self._source_scores(np.asarray(p.rows, np.int64), np.asarray(p.weights, np.float32),
                                      self._states(user_key, p), act)
        self._memo = (key, out)
        return dict(out)

    def _changed(self) -> None:
        self._version = getattr(self, "_version", 0) + 1
        self._memo = None

    def _every_source(self) -> dict[str, float]:
        """Weights that make ``_user_scores`` compute every active source (what a learned blend reads)."""
        return {s: 1.0 for s in self._active()}

    def _stacked(self, stacker: Stacker, z: dict[str, np.ndarray], blend: np.ndarray, rows: np.ndarray,
                 n_history: int) -> np.ndarray:
        zm = np.stack([z[s][rows] for s in self._active()], axis=1)
        return stacker.predict(stacker_features(zm, blend, n_history))

    def score_all(self, user_key: str | None) -> np.ndarray:
        """Recommendation score of every catalog row for a user, shape (n_products,).

        The tuned blend; with a learned head blend, the blend's top ``HEAD`` products the
        shopper has not interacted with are reordered by it and lifted above the rest. A
        shopper without a history gets popularity.
        """
        p = self.profiles_.get(user_key)
        if p is None or not p.rows:
            # A stranger ranks by popularity: the blend was tuned on shoppers with a history and
            # may weigh popularity 0, which tied every product (the catalog's first rows came first).
            return self._blend(self._user_scores(None), {"popularity": 1.0})
        if getattr(self, "head_stacker_", None) is None:
            return self._blend(self._user_scores(user_key))
        z = self._user_scores(user_key, self._every_source())
        out = self._blend(z)
        masked = out.copy()
        masked[list(p.seen)] = -np.inf
        head = top_k(masked, HEAD)
        head = head[np.isfinite(masked[head])]
        if len(head):
            pred = self._stacked(self.head_stacker_, z, out[head], head, len(p.rows))
            out[head] = out[head].max() + 1.0 + (pred - pred.min())
        return out

    def score_candidates(self, user_key: str | None, rows: np.ndarray) -> np.ndarray:
        """Scores of a given candidate list (catalog rows) for a user, shape (len(rows),).

        Ranks a fixed list, e.g. the held-out product among sampled ones:
        every source gives its exact score to each candidate (item-kNN from
        the full co-occurrence, even when ``knn_params`` keeps few
        neighbours), sources are blended with ``candidate_weights_`` (tuned
        on the sampled-candidate objective) or, when one was kept, by the
        learned candidate blend (``candidate_stacker_``), and exact ties fall
        back to popularity. Unknown users get popularity.
        """
        self._check()
        rows = np.asarray(rows, dtype=np.int64)
        weights = getattr(self, "candidate_weights_", None) or self.weights_
        stacker = getattr(self, "candidate_stacker_", None)
        z = self._user_scores(user_key, weights if stacker is None else self._every_source())
        p = self.profiles_.get(user_key)
        if p is not None and p.rows and "itemknn" in z and getattr(self.itemknn_, "neighbours", None):
            # the kept neighbour lists are truncated: exact similarities for these rows,
            # on the z-scale of the catalog-wide scores
            hist, wts = np.asarray(p.rows, np.int64), np.asarray(p.weights, np.float32)
            raw = self.itemknn_.score(hist, wts, self.n_items_)
            sd = float(raw.std())
            if sd > 1e-12:
                col = z["itemknn"].copy()
                warm = ~np.resize(self.cold_, self.n_items_)[rows]
                exact = (self.itemknn_.score_rows(hist, wts, rows) - float(raw.mean())) / sd
                col[rows[warm]] = exact[warm]
                z["itemknn"] = col
        out = self._blend(z, weights)[rows]
        if stacker is not None and p is not None and p.rows:
            out = self._stacked(stacker, z, out, rows, len(p.rows))
        if "popularity" in z:
            out = out + TIE_BREAK * z["popularity"][rows]
        return out.astype(np.float32)

    def score(self, user_key: str | None, rows: np.ndarray) -> np.ndarray:
        """Personal affinity of a user for candidate rows (0 for unknown users).

        The blended score, centred on the user's mean over the catalog.
        """
        self._check()
        rows = np.asarray(rows, dtype=np.int64)
        if not self.knows(user_key):
            return np.zeros(len(rows), dtype=np.float32)
        s = self._blend(self._user_scores(user_key))
        return (s - s.mean())[rows].astype(np.float32)

    def features(self, user_key: str | None, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Shopper x product features for the ranker, each an array aligned with ``rows``.

        Names are in ``FEATURES``: ``personal_<source>`` are the z-scored
        source scores (0 for unknown shoppers or an unused source),
        ``personal_blend`` their tuned blend, ``aff_<attribute>`` the share of
        the shopper's decayed event weight on the product's leaf category,
        brand, colour and price band, ``seen_before``/``bought_before`` flags
        and ``user_events`` the shopper's positive event count.
        """
        self._check()
        rows = np.asarray(rows, dtype=np.int64)
        m = len(rows)
        out = {f: np.zeros(m, dtype=np.float32) for f in FEATURES}
        p = self.profiles_.get(user_key)
        z = self._user_scores(user_key)
        for s, v in z.items():
            if f"personal_{s}" in out:  # names stay those of FEATURES whatever the sources
                out[f"personal_{s}"] = v[rows].astype(np.float32)
        out["personal_blend"] = self._blend(z)[rows].astype(np.float32)
        if p is None:
            return out
        for a in ATTRIBUTES:
            aff = p.affinity[a]
            tot = sum(aff.values()) or 1.0
            codes = self.codes_.codes[a]
            out[f"aff_{a}"] = np.array([aff.get(int(codes[r]), 0.0) / tot if r < len(codes) else 0.0
                                        for r in rows], dtype=np.float32)
        out["seen_before"] = np.isin(rows, list(p.seen)).astype(np.float32)
        out["bought_before"] = np.isin(rows, list(p.bought)).astype(np.float32)
        out["user_events"] = np.full(m, float(p.events), dtype=np.float32)
        return out

    def recommend(self, user_key: str | None, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and scores; bought products are excluded when ``exclude_seen``.

        A per-category diversity penalty (``diversity``) reorders the head of the list.
        """
        scores = self.score_all(user_key).astype(np.float64)
        p = self.profiles_.get(user_key)
        if p is not None and exclude_seen and p.bought:
            scores[list(p.bought)] = -np.inf
        active = np.resize(self.catalog_.active, len(scores))
        scores = np.where(active, scores, -np.inf)
        head = top_k(scores, max(k * 5, 50) if self.diversity > 0 else k)
        head = head[np.isfinite(scores[head])]
        if self.diversity > 0 and len(head) > k:
            cats = self.codes_.codes["category"]
            adj = scores[head].copy()
            used: dict[int, int] = {}
            chosen: list[int] = []
            avail = np.ones(len(head), dtype=bool)
            for _ in range(min(k, len(head))):
                pen = np.array([used.get(int(cats[r]), 0) if r < len(cats) else 0 for r in head], np.float64)
                cur = np.where(avail, adj - self.diversity * pen, -np.inf)
                j = int(np.argmax(cur))
                chosen.append(j)
                avail[j] = False
                c = int(cats[head[j]]) if head[j] < len(cats) else -1
                if c >= 0:
                    used[c] = used.get(c, 0) + 1
            head = head[chosen]
        else:
            head = head[:k]
        return head, scores[head]

    def similar(self, row: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Behaviour neighbours: item-kNN co-occurrence plus next-item transitions."""
        self._check()
        if not hasattr(self, "itemknn_"):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        c, d = self.itemknn_.neighbours_of(int(row))
        if hasattr(self, "transitions_") and row < self.transitions_.prob_.shape[0]:
            t = self.transitions_.prob_[int(row)]
            merged: dict[int, float] = dict(zip(c.tolist(), d.tolist(), strict=True))
            for j, v in zip(t.indices.tolist(), t.data.tolist(), strict=True):
                merged[j] = merged.get(j, 0.0) + 0.5 * v
            merged.pop(int(row), None)
            c = np.fromiter(merged.keys(), np.int64, len(merged))
            d = np.fromiter(merged.values(), np.float32, len(merged))
        active = np.resize(self.catalog_.active, self.n_items_)
        keep = active[c] if len(c) else np.zeros(0, bool)
        c, d = c[keep], d[keep]
        o = np.lexsort((c, -d))[:k]
        return c[o], d[o]

    # -- live updates -----------------------------------------------------------
    def observe(self, user_key: str, product_row: int, event: str) -> None:
        """Update the live profile with one event (no retraining)."""
        self._check()
        self._sync()
        self._changed()
        w = self._weights().get(event, 0.0)
        if product_row >= len(self.popularity_):
            return
        self.popularity_[product_row] += w + 0.01
        if w > 0:
            self.profiles_.add(user_key, int(product_row), w, event == "purchase", self.codes_)

    def forget(self, user_key: str) -> None:
        """Erase a shopper's profile and cached states."""
        if not hasattr(self, "profiles_"):
            return
        self._changed()
        self.profiles_.forget(user_key)
        self.cache_.pop(user_key, None)
        idx = self.user_index_.pop(user_key, None)
        if idx is not None:
            if isinstance(self.als_users_, np.ndarray):
                self.als_users_[idx] = 0.0
            if self.seq_users_ is not None:
                self.seq_users_[idx] = 0.0
            for name in ("als_", "mf_"):  # fitted factors (the live ALS state above may be a copy)
                m = getattr(self, name, None)
                if m is not None and idx < len(m.user_factors_):
                    m.user_factors_[idx] = 0.0
            if hasattr(self, "userknn_"):
                self.userknn_.forget_row(idx)  # their history no longer recommends to others

    @staticmethod
    def erase_saved(folder: Path, user_key: str) -> bool:
        """Erase one shopper from a saved personalizer; returns whether anything was theirs.

        Each changed file is unlinked and written anew, never rewritten in
        place, so a folder of hard links to another (Engine's erasure works
        on such a copy) leaves the other untouched.
        """
        folder = Path(folder)
        meta = json.loads((folder / "personal.json").read_text())
        profiles = Profiles.load(folder / "profiles.json")
        known = user_key in meta["users"]
        if not known and profiles.get(user_key) is None:
            return False
        profiles.forget(user_key)
        _replace(folder / "profiles.json", profiles.save)
        if not known:
            return True
        i = meta["users"].index(user_key)
        idx = meta["user_positions"][i]
        del meta["users"][i], meta["user_positions"][i]
        _replace(folder / "personal.json", lambda p: p.write_text(json.dumps(meta)))
        with np.load(folder / "user_states.npz", allow_pickle=False) as z:
            states = {k: z[k] for k in z.files}
        for a in states.values():
            a[idx] = 0.0
        _replace(folder / "user_states.npz", lambda p: np.savez(p, **states))
        for name in ("als", "mf"):
            if (folder / f"{name}.npz").exists():
                m = ALS().load_state(folder, name=name)
                if idx < len(m.user_factors_):
                    m.user_factors_[idx] = 0.0
                _replace(folder / f"{name}.npz", lambda _p, m=m, name=name: m.save(folder, name=name))
        if (folder / "userknn.npz").exists():
            u = UserKNN().load_state(folder)
            u.forget_row(idx)
            _replace(folder / "userknn.npz", lambda _p: u.save(folder))
        return True

    def knows(self, user_key: str | None) -> bool:
        p = self.profiles_.get(user_key) if hasattr(self, "profiles_") else None
        return bool(p and p.rows)

    # -- baselines --------------------------------------------------------------
    def baseline_scorers(self, train_events: pd.DataFrame) -> dict:
        """Item-kNN and ALS (the ``implicit`` reference setting) on ``train_events``, same split."""
        self._check()
        seqs = _sequences(train_events, self.catalog_, self._weights())
        n = len(self.catalog_)
        rows = [r for _, r, _, _ in seqs]
        wts = [w for _, _, w, _ in seqs]
        index = {k: i for i, (k, *_r) in enumerate(seqs)}
        ui = user_item_matrix(rows, wts, n)
        knn = ItemKNN().fit(ui)
        als = ALS(factors=256, regularization=0.1, alpha=20.0, iterations=20, seed=self.seed).fit(ui)
        empty = np.zeros(n, np.float32)

        def knn_f(key: str) -> np.ndarray:
            i = index.get(key)
            return empty if i is None else knn.score(rows[i], wts[i], n)

        def als_f(key: str) -> np.ndarray:
            i = index.get(key)
            return empty if i is None else als.item_factors_ @ als.user_factors_[i]

        return {"item-knn": knn_f, "als": als_f}

    # -- persistence ------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "popularity.npy", self.popularity_, allow_pickle=False)
        np.save(folder / "cold.npy", self.cold_, allow_pickle=False)
        self.profiles_.save(folder / "profiles.json")
        self.content_.save(folder)
        if hasattr(self, "title_"):
            self.title_.save(folder, name="title")
        if self.vectors_ is not None:
            np.save(folder / "vectors.npy", self.vectors_, allow_pickle=False)
        for name in ("itemknn_", "userknn_", "transitions_", "seqknn_", "als_"):
            if hasattr(self, name):
                getattr(self, name).save(folder)
        if hasattr(self, "mf_"):
            self.mf_.save(folder, name="mf")
        if hasattr(self, "sasrec_"):
            self.sasrec_.save(folder)
        for name in ("candidate_stacker", "head_stacker"):
            st = getattr(self, f"{name}_", None)
            (folder / f"{name}.txt").unlink(missing_ok=True)
            if st is not None:
                st.save(folder / f"{name}.txt")
        users = sorted(self.user_index_, key=self.user_index_.get)
        arrays = {}
        if isinstance(self.als_users_, np.ndarray):
            arrays["als"] = self.als_users_
        if self.seq_users_ is not None:
            arrays["seq"] = self.seq_users_
        np.savez(folder / "user_states.npz", **arrays)
        params = self._params()
        params["sources"] = list(params["sources"])
        (folder / "personal.json").write_text(json.dumps({
            "params": params, "weights": self.weights_, "candidate_weights": self.candidate_weights_,
            "n_items": self.n_items_, "users": users,
            "codes": self.codes_.to_json(), "timings": self.timings_, "tuning": self.tuning_,
            "user_positions": [self.user_index_[u] for u in users],
        }))

    @classmethod
    def load(cls, folder: Path, catalog: Catalog) -> Personalizer:
        folder = Path(folder)
        meta = json.loads((folder / "personal.json").read_text())
        params = meta["params"]
        params["sources"] = tuple(params["sources"])
        self = cls(**params)
        self.catalog_ = catalog
        self.n_items_ = meta["n_items"]
        self.weights_, self.timings_, self.tuning_ = meta["weights"], meta["timings"], meta["tuning"]
        self.candidate_weights_ = meta.get("candidate_weights", dict(self.weights_))
        self.codes_ = AttributeCodes.from_json(meta["codes"])
        self.popularity_ = np.load(folder / "popularity.npy", allow_pickle=False)
        self.pop_source_ = self.popularity_
        self.cold_ = np.load(folder / "cold.npy", allow_pickle=False)
        self.profiles_ = Profiles.load(folder / "profiles.json")
        self.content_ = ContentEncoder.load(folder)
        if (folder / "title.json").exists():
            self.title_ = ContentEncoder.load(folder, name="title")
        self.vectors_ = np.load(folder / "vectors.npy") if (folder / "vectors.npy").exists() else None
        if (folder / "itemknn.npz").exists():
            self.itemknn_ = ItemKNN(**(self.knn_params or {})).load_state(folder)
        if (folder / "userknn.npz").exists():
            self.userknn_ = UserKNN().load_state(folder)
        if (folder / "transitions.npz").exists():
            self.transitions_ = Transitions().load_state(folder)
        if (folder / "seqknn.npz").exists():
            self.seqknn_ = SeqKNN().load_state(folder)
        if (folder / "als.npz").exists():
            self.als_ = ALS(**(self.als_params or {})).load_state(folder)
        if (folder / "mf.npz").exists():
            self.mf_ = ALS(**{**MF_PARAMS, **(self.mf_params or {})}).load_state(folder, name="mf")
        if (folder / "sasrec.npz").exists():
            from vitrine.personal.sequential import SASRec

            self.sasrec_ = SASRec.load(folder)
        for name in ("candidate_stacker", "head_stacker"):
            path = folder / f"{name}.txt"
            setattr(self, f"{name}_", Stacker.load(path) if path.exists() else None)
        self.user_index_ = dict(zip(meta["users"], meta["user_positions"], strict=True))
        z = np.load(folder / "user_states.npz", allow_pickle=False)
        self.als_users_ = z["als"] if "als" in z.files else None
        self.seq_users_ = z["seq"] if "seq" in z.files else None
        self.cache_ = {}
        return self
