"""Counterfactual evaluation from logs, and checks against a simulator's truth.

Estimators (each with a 95% normal-approximation confidence interval):

* :func:`ips_ctr` -- item-level IPS under the position-based model. A new
  ranker re-orders each logged page; a click on product d logged at position
  k counts theta_{k'} / theta_k where k' is d's new position. Unbiased for
  the new ranking's expected clicks per page when the propensities are right
  (clicks per page are averaged over pages; the interval uses the page-level
  variance). With ``event="purchase"`` (or cart) it estimates conversions per
  page the same way (a conversion needs a click, which is position-biased; the
  conversion given the click is not).
* :func:`snips_ctr` -- self-normalised IPS over the logging ranker's own
  randomness (item-position model, Li et al., *Offline Evaluation of Ranking
  Policies with Click Models*, KDD 2018): a logged slot (q, d, k) counts when
  the new ranker also puts d at k, weighted by 1 / pi_log(d at k | q), the
  share of the query's logged pages that showed d at k; the total is
  normalised by the sum of those weights (its expectation is the number of
  slots). It needs no examination model but only covers slots the logger
  actually produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% confidence interval."""

    value: float
    low: float
    high: float
    n: int

    def covers(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def _mean_ci(x: np.ndarray) -> Estimate:
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    m = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return Estimate(m, m - Z95 * se, m + Z95 * se, n)


def new_positions(pages: pd.DataFrame, score: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
    """Position (1-based) of every logged impression when each page is
    re-ordered by ``score(page_rows) -> scores`` (higher first)."""
    out = np.empty(len(pages), dtype=np.int64)
    for _, idx in pages.groupby("request_id", sort=False).indices.items():
        s = np.asarray(score(pages.iloc[idx]), dtype=np.float64)
        order = np.lexsort((np.arange(len(idx)), -s))
        pos = np.empty(len(idx), dtype=np.int64)
        pos[order] = np.arange(1, len(idx) + 1)
        out[idx] = pos
    return out


def ips_ctr(
    pages: pd.DataFrame, new_position: np.ndarray, propensities: np.ndarray, event: str = "click",
    clip: float = 0.01,
) -> Estimate:
    """Expected clicks (or conversions) per page of the re-ordered pages.

    Parameters
    ----------
    pages : logged impressions: ``request_id``, ``position``, and ``click``
        (0/1) or ``grade`` (purchase 3 > cart 2 > click 1) as from
        :func:`vitrine.rank.propensity.impressions_from_events`.
    new_position : each impression's position under the new ranker.
    propensities : examination per position (1-based positions index [pos-1]).
    event : "click", "add_to_cart" or "purchase".
    """
    theta = np.maximum(np.asarray(propensities, dtype=np.float64), clip)
    k = pages["position"].to_numpy(np.int64) - 1
    k2 = np.minimum(np.asarray(new_position, dtype=np.int64) - 1, len(theta) - 1)
    need = {"click": 1, "add_to_cart": 2, "purchase": 3}[event]
    r = (pages["grade"].to_numpy() >= need) if "grade" in pages else pages["click"].to_numpy() > 0
    contrib = r * theta[k2] / theta[k]
    per_page = pd.Series(contrib).groupby(pages["request_id"].to_numpy()).sum().to_numpy()
    return _mean_ci(per_page)


def snips_ctr(pages: pd.DataFrame, new_position: np.ndarray, event: str = "click") -> Estimate:
    """Self-normalised item-position IPS of clicks per page (see module docstring)."""
    q = pages["query"].fillna("\x00").astype(str).to_numpy() if "query" in pages else np.zeros(len(pages), str)
    pid = pages["product_id"].astype(str).to_numpy()
    k = pages["position"].to_numpy(np.int64)
    n_pages_q = pd.Series(pages["request_id"].to_numpy()).groupby(q).nunique()
    slot = pd.Series(np.ones(len(pages))).groupby([q, pid, k]).transform("sum").to_numpy()
    pi_log = slot / n_pages_q.reindex(q).to_numpy()
    match = np.asarray(new_position) == k
    w = match / pi_log
    need = {"click": 1, "add_to_cart": 2, "purchase": 3}[event]
    r = (pages["grade"].to_numpy() >= need) if "grade" in pages else pages["click"].to_numpy() > 0
    rid = pages["request_id"].to_numpy()
    num = pd.Series(w * r).groupby(rid).sum()
    den = pd.Series(w).groupby(rid).sum()
    slots = pd.Series(np.ones(len(pages))).groupby(rid).sum()
    a, b, s = num.to_numpy(), den.to_numpy(), slots.to_numpy()
    if b.sum() <= 0:
        return Estimate(float("nan"), float("nan"), float("nan"), len(a))
    # Ratio estimator: clicks per slot = sum(a) / sum(b), times mean slots per page.
    ratio = a.sum() / b.sum()
    n = len(a)
    resid = a - ratio * b
    se_ratio = np.sqrt(np.sum(resid**2) / max(n - 1, 1) / n) / (b.mean() or 1.0)
    scale = float(s.mean())
    v = ratio * scale
    return Estimate(float(v), float(v - Z95 * se_ratio * scale), float(v + Z95 * se_ratio * scale), n)


def true_ctr(pages_truth: pd.DataFrame, new_position: np.ndarray, propensities: np.ndarray) -> float:
    """The simulator's expected clicks per page of the re-ordered pages:
    sum over a page of theta(new position) x attractiveness (``truth/pages.parquet``)."""
    theta = np.asarray(propensities, dtype=np.float64)
    k2 = np.minimum(np.asarray(new_position, dtype=np.int64) - 1, len(theta) - 1)
    v = theta[k2] * pages_truth["attractiveness"].to_numpy()
    return float(pd.Series(v).groupby(pages_truth["request_id"].to_numpy()).sum().mean())


def simulated_search_ndcg(engine, folder, requests: pd.DataFrame, k: int = 10, personalize: bool = True,
                          depth: int = 100) -> float:  # fmt: skip
    """Mean NDCG@k of ``engine.search`` against the simulator's hidden truth.

    For each request (rows of ``truth/requests.parquet`` with a query), the
    engine retrieves ``depth`` candidates and ranks them for the shopper; the
    gain of a product is its true click probability when examined,
    sigmoid(click_slope * (utility(user, product, query, time) - click_offset)),
    and the ideal ranking sorts the same candidates by that gain.
    """
    from vitrine.data.synth import load_truth, utility

    truth = load_truth(folder)
    cm = truth.params["click_model"]
    ids = engine.catalog_.ids
    vals = []
    for uid, q, ts in zip(requests["user_id"], requests["query"], requests["timestamp"], strict=True):
        cands = engine.retrieve(q, k=depth)
        if not len(cands.rows):
            continue
        pids = ids[cands.rows]
        u = utility(truth, uid, pids, query=q, time=np.datetime64(ts, "ms"))
        gain = 1.0 / (1.0 + np.exp(-cm["click_slope"] * (u - cm["click_offset"])))
        res = engine.search(q, user_id=uid if personalize else None, k=k, depth=depth)
        g = dict(zip(pids, gain, strict=True))
        got = np.asarray([g.get(p, 0.0) for p in res.item_ids])
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = np.sort(gain)[::-1][:k]
        idcg = float((ideal * disc[: len(ideal)]).sum())
        if idcg > 0:
            vals.append(float((got * disc[: len(got)]).sum()) / idcg)
    return float(np.mean(vals)) if vals else 0.0
