"""Training labels: graded judgments, and click logs with position-bias weights.

Judgment grades (0-3, possibly fractional) become integer LightGBM labels on
a half-grade scale, ``label = round(2 * grade)``, with label gain
``2^(label / 2) - 1`` so the objective optimises the same NDCG gain
(2^grade - 1) as the evaluation.

Log labels per impression: purchase 3 > add-to-cart 2 > click 1 > skipped 0
(on the same half-grade scale: 6, 4, 2, 0). Debiasing weights: a clicked
impression at position k counts 1 / theta_k (inverse propensity), a
skipped one counts 1 (Joachims et al., *Unbiased Learning-to-Rank with Biased
Feedback*, WSDM 2017).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitrine.rank.propensity import ipw

MAX_LABEL = 6


def grade_to_label(grade) -> np.ndarray:
    """Half-grade integer labels 0..6 from grades 0..3."""
    g = np.nan_to_num(np.asarray(grade, dtype=np.float64), nan=0.0)
    return np.clip(np.rint(2.0 * g), 0, MAX_LABEL).astype(np.int32)


def grade_to_click(grade) -> np.ndarray:
    """Soft clicks for the click model: a grade's gain 2^grade - 1 as a share of the top grade's."""
    g = np.nan_to_num(np.asarray(grade, dtype=np.float64), nan=0.0)
    top = 2.0 ** (MAX_LABEL / 2.0) - 1.0
    return np.clip((2.0 ** g - 1.0) / top, 0.0, 1.0)


def label_gain(max_label: int = MAX_LABEL) -> list[float]:
    """LightGBM ``label_gain`` matching gain 2^grade - 1 on the half-grade scale."""
    return [float(2.0 ** (i / 2.0) - 1.0) for i in range(max_label + 1)]


def judgment_groups(judgments: pd.DataFrame) -> dict[str, dict[str, float]]:
    """query -> {product_id: grade} (the max grade when judged twice)."""
    if judgments is None or not len(judgments):
        return {}
    j = judgments.groupby(["query", "product_id"], as_index=False)["grade"].max()
    return {q: dict(zip(g["product_id"], g["grade"], strict=True)) for q, g in j.groupby("query", sort=True)}


def log_labels(impressions: pd.DataFrame, propensities: np.ndarray | None, clip: float = 0.05) -> pd.DataFrame:
    """Add ``label`` (half-grade scale) and ``weight`` (IPW for clicked rows,
    1 for skipped; all 1 without propensities) to impressions."""
    out = impressions.copy()
    out["label"] = (2 * out["grade"].astype(np.int32)).clip(0, MAX_LABEL)
    w = np.ones(len(out))
    if propensities is not None and len(out):
        clicked = out["grade"].to_numpy() > 0
        w[clicked] = ipw(out["position"].to_numpy()[clicked], propensities, clip=clip)
    out["weight"] = w
    return out
