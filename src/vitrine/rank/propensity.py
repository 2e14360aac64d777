"""Examination propensities from click logs: EM on a position-based model.

The position-based click model (PBM) says a result at position k of a page
for query q is clicked when it is examined (probability theta_k, position
only) and attractive (probability gamma_{q,d}, query-product only):

    P(click | q, d, k) = theta_k * gamma_{q,d}

Because the logging ranker shows the same product at different positions for
the same query (its scores are noisy, pages differ in length), theta and
gamma are identifiable up to a common scale, fixed by theta_1 = 1 (the top
result is always examined). EM (Chuklin et al., *Click Models for Web
Search*, 2015, ch. 4) alternates the posterior of the hidden (examined,
attractive) pair for unclicked impressions with closed-form updates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def impressions_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """One row per impression with its label: request_id, query, user_id,
    product_id, position, timestamp, click (0/1) and grade (purchase 3 >
    cart 2 > click 1 > skipped impression 0).

    Needs ``request_id`` and ``position``; events without them are ignored.
    """
    cols = ["request_id", "query", "user_id", "product_id", "position", "timestamp", "click", "grade"]
    if events is None or not len(events) or "request_id" not in events or "position" not in events:
        return pd.DataFrame(columns=cols)
    ev = events.dropna(subset=["request_id", "position"])
    imp = ev[ev["event"] == "impression"][["request_id", "query", "user_id", "product_id", "position", "timestamp"]]
    imp = imp.drop_duplicates(["request_id", "product_id"])
    code = ev["event"].map({"click": 1, "add_to_cart": 2, "purchase": 3}).fillna(0)
    act = ev.assign(grade=code)[["request_id", "product_id", "grade"]]
    act = act[act["grade"] > 0].groupby(["request_id", "product_id"], as_index=False)["grade"].max()
    out = imp.merge(act, on=["request_id", "product_id"], how="left")
    out["grade"] = out["grade"].fillna(0).astype(np.int8)
    out["click"] = (out["grade"] > 0).astype(np.int8)
    out["position"] = out["position"].astype(np.int64)
    return out[cols].reset_index(drop=True)


def estimate_propensities(
    impressions: pd.DataFrame,
    *,
    method: str = "conditional",
    max_position: int | None = None,
    n_iter: int = 200,
    tol: float = 1e-7,
    prior: float = 1.0,
) -> np.ndarray:
    """Examination probability per position 1..max_position, by EM on the PBM.

    Parameters
    ----------
    impressions : rows with ``query`` (NaN for browsing pages), ``product_id``,
        ``position`` (1-based) and ``click`` (0/1), as from
        :func:`impressions_from_events`.
    max_position : length of the returned array (default: the largest position).
    method : "conditional" (default): maximise the likelihood conditional on
        each pair's total clicks, in which gamma cancels (so the thousands of
        rarely shown pairs cannot bias theta, the incidental-parameter
        problem of plain EM); solved by a minorise-maximise (EM-like)
        fixed point. "em": plain EM over theta and every gamma.
    n_iter, tol : iterations and convergence tolerance on theta.
    prior : (method="em") pseudo-impressions (Beta smoothing) on each gamma towards the mean
        click rate, so pairs seen once do not explain clicks away.

    Returns
    -------
    ndarray (max_position,), theta_1 = 1, NaN for positions never shown.
    """
    pos = impressions["position"].to_numpy(np.int64) - 1
    c = impressions["click"].to_numpy(np.float64)
    q = impressions["query"].fillna("\x00browse").astype(str)
    pair = pd.factorize(q + "\x01" + impressions["product_id"].astype(str))[0]
    K = int(max_position or pos.max() + 1)
    keep = pos < K
    pos, c, pair = pos[keep], c[keep], pair[keep]
    n_pair = int(pair.max()) + 1 if len(pair) else 0
    n_k = np.bincount(pos, minlength=K).astype(np.float64)
    theta = np.where(n_k > 0, 0.5, np.nan)
    base = c.mean() if len(c) else 0.0
    gamma = np.full(n_pair, min(0.5, 2 * base + 1e-3))
    if method == "conditional":
        return _conditional(pos, c, pair, n_pair, K, n_iter, tol)
    if method != "em":
        raise ValueError(f"unknown method {method!r}; choose 'conditional' or 'em'")
    n_pair_imp = np.bincount(pair, minlength=n_pair).astype(np.float64)
    a0, b0 = prior * base, prior * (1 - base)
    for _ in range(n_iter):
        t = theta[pos]
        g = gamma[pair]
        denom = np.maximum(1.0 - t * g, 1e-12)
        exam = c + (1 - c) * t * (1 - g) / denom  # P(E=1 | obs)
        attr = c + (1 - c) * (1 - t) * g / denom  # P(R=1 | obs)
        new_theta = np.bincount(pos, weights=exam, minlength=K) / np.maximum(n_k, 1)
        new_theta = np.where(n_k > 0, np.clip(new_theta, 1e-6, 1.0), np.nan)
        gamma = np.clip((np.bincount(pair, weights=attr, minlength=n_pair) + a0) / (n_pair_imp + a0 + b0), 1e-6, 1.0)
        done = np.nanmax(np.abs(new_theta - theta)) < tol
        theta = new_theta
        if done:
            break
    return theta / theta[0] if np.isfinite(theta[0]) and theta[0] > 0 else theta


def _conditional(pos, c, pair, n_pair, K, n_iter, tol) -> np.ndarray:
    """theta maximising prod_pairs Multinomial(clicks by position | total clicks).

    E[c_pk] = n_pk theta_k gamma_p, so given the pair's total clicks C_p the
    expected share at position k is n_pk theta_k / sum_j n_pj theta_j: gamma
    cancels, and the estimating equation is unbiased for Bernoulli clicks too.
    """
    cell = pair * K + pos
    n_pk = np.bincount(cell, minlength=n_pair * K).reshape(n_pair, K)
    c_pk = np.bincount(cell, weights=c, minlength=n_pair * K).reshape(n_pair, K)
    C = c_pk.sum(1)
    informative = (C > 0) & ((n_pk > 0).sum(1) > 1)
    n_pk, c_pk, C = n_pk[informative], c_pk[informative], C[informative]
    shown = (n_pk.sum(0) > 0)
    theta = np.where(shown, 0.5, np.nan)
    clicks_k = c_pk.sum(0)
    for _ in range(n_iter):
        t = np.nan_to_num(theta)
        denom = n_pk @ t
        new = clicks_k / np.maximum((C / np.maximum(denom, 1e-12)) @ n_pk, 1e-12)
        new = np.where(shown, new / new[0] if new[0] > 0 else new, np.nan)
        done = np.nanmax(np.abs(new - theta)) < tol
        theta = new
        if done:
            break
    return np.clip(theta, 1e-6, None)


def ipw(positions: np.ndarray, propensities: np.ndarray, clip: float = 0.05) -> np.ndarray:
    """Inverse-propensity weights 1 / theta_position, theta clipped below at ``clip``."""
    p = np.asarray(propensities, dtype=np.float64)
    p = np.where(np.isfinite(p), p, np.nanmin(p) if np.isfinite(p).any() else 1.0)
    idx = np.clip(np.asarray(positions, dtype=np.int64) - 1, 0, len(p) - 1)
    return 1.0 / np.maximum(p[idx], clip)
