"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from vitrine.evaluate.metrics import (
    average_precision_at_k,
    coverage,
    dcg_at_k,
    evaluate_rankings,
    f1_at_k,
    hit_rate_at_k,
    intra_list_diversity,
    metrics_by_cutoff,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
)

RANKED = ["a", "b", "c", "d", "e"]
REL = {"b", "d", "z"}  # z never ranked


def test_dcg_by_hand() -> None:
    assert dcg_at_k([3, 2, 0, 1], k=4) == pytest.approx(3 + 2 / math.log2(3) + 0 + 1 / math.log2(5))
    assert dcg_at_k([], k=3) == 0.0


def test_ndcg_graded_by_hand() -> None:
    grades = {"a": 0, "b": 2, "c": 3}
    # ranked a, b, c: gains 0, 3, 7 ; ideal c, b: 7, 3
    dcg = 0 + 3 / math.log2(3) + 7 / 2.0
    idcg = 7 + 3 / math.log2(3)
    assert ndcg_at_k(grades, ["a", "b", "c"], k=3) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(grades, ["c", "b", "a"], k=3) == pytest.approx(1.0)
    assert ndcg_at_k({"x": 0}, ["x"], k=3) == 0.0


def test_ndcg_binary_cutoff() -> None:
    # hits at ranks 2 and 4 of k=3: only rank 2 counts; ideal has 3 relevant in top 3
    dcg = 1 / math.log2(3)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(REL, RANKED, k=3) == pytest.approx(dcg / idcg)


def test_hit_mrr_precision_recall_f1_map_by_hand() -> None:
    assert hit_rate_at_k(REL, RANKED, 1) == 0.0
    assert hit_rate_at_k(REL, RANKED, 2) == 1.0
    assert mrr_at_k(REL, RANKED, 5) == pytest.approx(0.5)
    assert mrr_at_k(REL, RANKED, 1) == 0.0
    assert precision_at_k(REL, RANKED, 4) == pytest.approx(2 / 4)
    assert recall_at_k(REL, RANKED, 4) == pytest.approx(2 / 3)
    p, r = 0.5, 2 / 3
    assert f1_at_k(REL, RANKED, 4) == pytest.approx(2 * p * r / (p + r))
    # AP@5: hits at 2 (1/2) and 4 (2/4) -> (0.5 + 0.5) / min(5, 3)
    assert average_precision_at_k(REL, RANKED, 5) == pytest.approx(1.0 / 3)
    assert f1_at_k(set(), RANKED, 3) == 0.0
    assert average_precision_at_k(set(), RANKED, 3) == 0.0


def test_evaluate_rankings_missing_query_scores_zero() -> None:
    truth = {"q1": {"a": 1}, "q2": {"b": 1}}
    out = evaluate_rankings(truth, {"q1": ["a"]}, k=1, metrics=("hr", "ndcg"))
    assert out == {"hr@1": 0.5, "ndcg@1": 0.5}


def test_metrics_by_cutoff() -> None:
    truth = {"q": {"b": 1}}
    out = metrics_by_cutoff(truth, {"q": RANKED}, cutoffs=(1, 2, 5), metrics=("hr",))
    assert out == {1: {"hr@1": 0.0}, 2: {"hr@2": 1.0}, 5: {"hr@5": 1.0}}


def test_coverage_diversity_novelty_by_hand() -> None:
    runs = [["a", "b"], ["b", "c"]]
    assert coverage(runs, n_products=10, k=2) == pytest.approx(3 / 10)
    assert coverage(runs, n_products=10, k=1) == pytest.approx(2 / 10)
    cat = {"a": "x", "b": "x", "c": "y"}
    # list 1: {x} -> 1/2 ; list 2: {x, y} -> 2/2
    assert intra_list_diversity(runs, cat, k=2) == pytest.approx(0.75)
    pop = {"a": 0.5, "b": 0.25, "c": 0.125}
    # -log2: a 1, b 2, c 3 ; items a, b, b, c -> mean (1 + 2 + 2 + 3) / 4
    assert novelty(runs, pop, k=2) == pytest.approx(2.0)
