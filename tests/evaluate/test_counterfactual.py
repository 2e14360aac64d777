"""Counterfactual CTR estimates against the simulator's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitrine.data.synth import generate
from vitrine.evaluate.counterfactual import ips_ctr, new_positions, true_ctr
from vitrine.rank.propensity import estimate_propensities, impressions_from_events


def _logged(tmp_path, seed: int):
    s = generate(tmp_path / f"s{seed}", products=400, users=250, seed=seed, images=False, sessions_per_user=6)
    ev = pd.read_parquet(s.tables["events"])
    imp = impressions_from_events(ev)
    truth = pd.read_parquet(s.truth / "pages.parquet")
    prods = pd.read_parquet(s.tables["products"])
    return imp, truth, prods


def _sales_ranker(prods: pd.DataFrame):
    sales = dict(zip(prods["product_id"], np.log1p(prods["sales"].astype(float)), strict=True))
    return lambda page: page["product_id"].map(sales).to_numpy()


def test_ips_interval_covers_true_ctr_in_9_of_10_seeds(tmp_path) -> None:
    hits, ests = 0, []
    for seed in range(10):
        imp, truth, prods = _logged(tmp_path, seed)
        theta = estimate_propensities(imp, max_position=20)
        pos = new_positions(imp, _sales_ranker(prods))
        est = ips_ctr(imp, pos, theta)
        key = truth.set_index(["request_id", "product_id"])
        t = truth.assign(new=pd.Series(pos, index=pd.MultiIndex.from_frame(imp[["request_id", "product_id"]]))
                         .reindex(key.index).to_numpy())
        exam = truth.groupby("position")["examination"].first().sort_index().to_numpy()
        true = true_ctr(t, t["new"].to_numpy(), exam)
        hits += est.covers(true)
        ests.append((est, true))
        assert est.low < est.value < est.high
    assert hits >= 9, ests


def test_ips_identity_ranker_equals_logged_clicks(tmp_path) -> None:
    imp, _, _ = _logged(tmp_path, 42)
    est = ips_ctr(imp, imp["position"].to_numpy(), np.linspace(1, 0.1, 20))
    observed = imp.groupby("request_id")["click"].sum().mean()
    assert est.value == pytest.approx(observed)
