"""The tuned linear blend of retrieval sources and the cross-validated choice against LambdaMART."""

import numpy as np
import pytest

from vitrine.rank.lambdamart import LambdaMART
from vitrine.rank.linear import LinearBlend, choose, group_ndcg, scale_in_groups

NAMES = ["src_lexical", "src_lexical_rel", "src_dense", "price_pct"]


def test_group_ndcg_by_hand() -> None:
    # Half-grade labels: label 2 (grade 1) gains 1, label 6 (grade 3) gains 7.
    got = group_ndcg(np.array([3, 2, 1, 1, 0.0]), np.array([0, 2, 2, 0, 6]), np.array([3, 2]))
    first = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    second = (7 / np.log2(3)) / 7
    np.testing.assert_allclose(got, [first, second])
    # No relevant row: undefined, not zero.
    assert np.isnan(group_ndcg(np.array([1.0, 0.0]), np.array([0, 0]), np.array([2])))[0]
    # Ties fall to the tie-break order.
    assert group_ndcg(np.zeros(2), np.array([0, 6]), np.array([2]), tiebreak=np.array([1, 0]))[0] == 1.0


def test_scale_in_groups() -> None:
    Z = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0], [10.0, 1.0], [20.0, 3.0]])
    out = scale_in_groups(Z, np.array([3, 2]))
    np.testing.assert_allclose(out, [[0, 0], [1, 0], [0, 0], [0, 0], [1, 1]])


def _lists(seed: int, n_groups: int, size: int = 12, signal: str = "dense"):
    """Candidate lists whose labels follow ``signal``: the dense score, or a bump in price_pct."""
    rng = np.random.default_rng(seed)
    n = n_groups * size
    lex, dense, price = rng.random(n), rng.random(n), rng.random(n)
    if signal == "dense":
        y = np.clip(np.rint(6 * dense + rng.normal(0, 1.0, n)), 0, 6)
    else:  # a rule no weighted sum of the sources can express
        y = np.where(np.abs(price - 0.5) < 0.15, 6, 0) * (rng.random(n) < 0.9)
    X = np.column_stack([lex, lex, dense, price])
    return X, y.astype(int), np.full(n_groups, size)


def test_blend_learns_which_source_ranks_and_scores_one_list_alone() -> None:
    X, y, sizes = _lists(0, 40)
    lin = LinearBlend().fit(X, y, sizes, NAMES)
    assert lin.cols_ == ["src_lexical", "src_dense"]
    assert lin.weights_["src_dense"] > 0 and lin.weights_["src_lexical"] <= 0.25 * lin.weights_["src_dense"]
    assert lin.train_ndcg_ > np.nanmean(group_ndcg(X[:, 0], y, sizes))
    # Serving scores one list at a time: the same scores as scoring it inside the batch.
    first = slice(0, int(sizes[0]))
    np.testing.assert_allclose(lin.predict(X[first]), lin.predict(X, sizes)[first])
    parts = lin.contributions(X[first])
    np.testing.assert_allclose([sum(d.values()) for d in parts], lin.predict(X[first]))
    assert all(d["text"] > 0 for d, s in zip(parts, lin.predict(X[first])) if s > 0)


def test_blend_round_trips(tmp_path) -> None:
    X, y, sizes = _lists(1, 20)
    lin = LinearBlend().fit(X, y, sizes, NAMES)
    lin.save(tmp_path)
    back = LinearBlend.load(tmp_path, NAMES)
    np.testing.assert_allclose(back.predict(X, sizes), lin.predict(X, sizes))


def _trees(X, y, sizes):
    return LambdaMART(n_estimators=80, patience=20, num_threads=1, min_data_in_leaf=5).fit(X, y, sizes, NAMES)


@pytest.mark.parametrize(("signal", "n_groups", "kept"), [("dense", 60, "blended"), ("price", 200, "trees")])
def test_choose_keeps_what_ranks_held_out_queries_better(signal, n_groups, kept) -> None:
    X, y, sizes = _lists(2, n_groups, signal=signal)
    queries = np.repeat(np.arange(n_groups // 2), 2)  # two lists per query, as judged queries give
    check = choose(X, y, sizes, queries, NAMES, _trees, folds=4)
    assert (check["kept"] == "trees") == (kept == "trees"), check
    assert check["queries"] == n_groups // 2 and check["groups"] > 0
    by = check["ndcg_by_lam"]
    assert set(by) == {0.0, 0.25, 0.5, 1.0, 2.0, 4.0, "inf"}
    if kept == "trees":
        assert by[0.0] > by["inf"] + 0.1
    else:  # the blend's source alone ranks better, and the gain is clear of the margin
        assert by["inf"] > by[0.0] and by[check["lam"]] - by[0.0] > check["margin_se"] * check["gain_se"]


def test_choose_keeps_the_trees_unless_the_gain_is_clear() -> None:
    """Twelve queries: the blend is ahead out of fold by about one standard error."""
    X, y, sizes = _lists(2, 24)
    queries = np.repeat(np.arange(12), 2)
    check = choose(X, y, sizes, queries, NAMES, _trees, folds=4, margin_se=3.0)
    by = check["ndcg_by_lam"]
    assert by["inf"] > by[0.0] and check["kept"] == "trees" and check["lam"] == 0.0
    assert choose(X, y, sizes, queries, NAMES, _trees, folds=4, margin_se=0.0)["kept"] != "trees"


def test_the_cutoff_reaches_the_blend_the_check_and_lambdamart() -> None:
    """A shop showing 3 results gets models tuned and stopped on NDCG@3, not @10."""
    X, y, sizes = _lists(3, 40)
    lin = LinearBlend(cutoff=3).fit(X, y, sizes, NAMES)
    at = {k: np.nanmean(group_ndcg(lin.predict(X, sizes), y, sizes, k)) for k in (3, 10)}
    assert lin.train_ndcg_ == pytest.approx(at[3], abs=1e-9) and abs(at[3] - at[10]) > 1e-3
    trees = LambdaMART(n_estimators=30, patience=10, num_threads=1, min_data_in_leaf=5, cutoff=3)
    trees.fit(X, y, np.full(40, 12), NAMES)
    assert set(trees.booster_.best_score["valid_0"]) == {"ndcg@3"}
    queries = np.repeat(np.arange(20), 2)
    at3 = choose(X, y, sizes, queries, NAMES, _trees, folds=4, k=3)["ndcg_by_lam"]
    at10 = choose(X, y, sizes, queries, NAMES, _trees, folds=4)["ndcg_by_lam"]
    assert at3[0.0] != pytest.approx(at10[0.0])
