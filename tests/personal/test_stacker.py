"""The learned blend of personal sources: its metric, what it learns, and when it is refused."""

from __future__ import annotations

import numpy as np
import pytest

from vitrine.personal.stacker import Stacker, features, ndcg_of_target


def test_ndcg_of_target_hand_computed() -> None:
    scores = [np.array([3.0, 2.0, 1.0]), np.array([3.0, 2.0, 1.0]), np.array([1.0, 1.0, 0.0]),
              np.array([1.0, 2.0]), np.arange(12.0)]
    got = ndcg_of_target(scores, np.array([0, 2, 0, -1, 0]))
    # rank 0; rank 2; one tie counts half (rank 0.5); no target in the list; rank 11 is past the cutoff
    assert got == pytest.approx([1.0, 1 / np.log2(4), 1 / np.log2(2.5), 0.0, 0.0])


def _lists(rng, n: int, rule: bool):
    """Lists of 20 with two sources; the held-out product (index 0) is high on source 0 for
    long histories and on source 1 for short ones, a rule no single linear weighting expresses."""
    X, blends, hist = [], [], []
    for i in range(n):
        z = rng.normal(size=(20, 2)).astype(np.float32)
        h = 40 if i % 2 else 1
        if rule:
            z[0, 0 if h == 40 else 1] += 2.5
            z[0, 1 if h == 40 else 0] -= 2.5
        b = z.sum(axis=1)
        X.append(features(z, b, h))
        blends.append(b)
        hist.append(h)
    return X, blends


def test_learns_a_rule_the_linear_blend_misses_and_is_kept() -> None:
    rng = np.random.default_rng(0)
    X, blends = _lists(rng, 1200, rule=True)
    st = Stacker(seed=0).fit(X, blends, np.zeros(len(X), np.int64), np.arange(len(X)) // 2)
    assert st.kept_
    assert st.check_["stacker"] > st.check_["linear"] + 0.2
    # and on fresh lists it ranks the product first far more often than the blend
    X2, blends2 = _lists(rng, 400, rule=True)
    learned = ndcg_of_target([st.predict(x) for x in X2], np.zeros(400, np.int64)).mean()
    linear = ndcg_of_target(blends2, np.zeros(400, np.int64)).mean()
    assert learned > linear + 0.2


def test_refused_when_it_cannot_beat_the_linear_blend() -> None:
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(20, 7)).astype(np.float32) for _ in range(600)]  # features carry nothing
    blends = [np.r_[5.0, rng.normal(size=19)] for _ in range(600)]  # the blend already puts it first
    st = Stacker(seed=0).fit(X, blends, np.zeros(600, np.int64), np.arange(600))
    assert not st.kept_ and not hasattr(st, "booster_")
    assert st.check_["linear"] == 1.0 and st.check_["stacker"] < 1.0


def test_lists_without_the_product_are_left_out_and_too_few_refuse() -> None:
    rng = np.random.default_rng(2)
    X, blends = _lists(rng, 300, rule=True)
    targets = np.full(300, -1)
    targets[:50] = 0  # fewer than 100 lists that contain the product
    st = Stacker().fit(X, blends, targets, np.arange(300))
    assert not st.kept_ and st.check_ == {}
    empty = Stacker().fit([], [], np.zeros(0, np.int64), np.zeros(0, np.int64))  # every list dropped upstream
    assert not empty.kept_


def test_the_check_scores_at_the_stackers_cutoff() -> None:
    """At k=1 only lists that put the product first count; the blend's score is that share."""
    rng = np.random.default_rng(3)
    X, blends = _lists(rng, 800, rule=True)
    st = Stacker(seed=0, k=1).fit(X, blends, np.zeros(len(X), np.int64), np.arange(len(X)) // 2)
    check = np.random.default_rng(0).choice(400, size=100, replace=False)  # the stacker's check shoppers
    lists = [i for i in range(800) if i // 2 in set(check.tolist())]
    first = np.mean([float((blends[i][1:] < blends[i][0]).all()) for i in lists])
    assert st.check_["linear"] == pytest.approx(first, abs=1e-4)
