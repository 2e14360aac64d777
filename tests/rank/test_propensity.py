"""Position bias: examination propensities estimated from the logs of the synthetic shop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vitrine.data.synth import generate
from vitrine.rank.labels import grade_to_label, label_gain, log_labels
from vitrine.rank.propensity import estimate_propensities, impressions_from_events, ipw


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    s = generate(tmp_path_factory.mktemp("prop") / "shop", products=1000, users=1500, seed=4, images=False)
    ev = pd.read_parquet(s.tables["events"])
    true = np.asarray(json.loads((s.truth / "propensities.json").read_text())["examination"])
    return impressions_from_events(ev), true


def test_impressions_carry_graded_labels(logs) -> None:
    imp, _ = logs
    assert set(imp["grade"].unique()) <= {0, 1, 2, 3}
    assert (imp["click"] == (imp["grade"] > 0)).all()
    assert imp.groupby("request_id")["position"].min().eq(1).all()


def test_estimate_within_005_of_truth_at_every_shown_position(logs) -> None:
    imp, true = logs
    est = estimate_propensities(imp, max_position=20)
    shown = np.isfinite(est)
    assert shown.sum() == 20
    assert est[0] == pytest.approx(1.0)
    assert np.abs(est[shown] - true[shown]).max() < 0.05, np.round(est - true, 3)


def test_plain_em_is_biased_by_rare_pairs(logs) -> None:
    """Why the default conditions on each pair's clicks: plain EM over every gamma overestimates."""
    imp, true = logs
    em = estimate_propensities(imp, method="em", max_position=20, n_iter=100)
    cond = estimate_propensities(imp, max_position=20)
    assert np.abs(em - true).max() > np.abs(cond - true).max()


def test_labels_and_weights() -> None:
    assert grade_to_label([0, 1.0, 2.25, 3, np.nan]).tolist() == [0, 2, 4, 6, 0]
    assert label_gain()[6] == pytest.approx(7.0) and label_gain()[2] == pytest.approx(1.0)
    imp = pd.DataFrame({"position": [1, 2, 4], "grade": [1, 0, 3]})
    lab = log_labels(imp, np.array([1.0, 0.5, 0.4, 0.25]))
    assert lab["label"].tolist() == [2, 0, 6]
    assert lab["weight"].tolist() == [1.0, 1.0, 4.0]
    assert ipw([1, 30], np.array([1.0, 0.01]), clip=0.05).tolist() == [1.0, 20.0]
