"""Visual terms: sparse per-product log P(word | photo), scored like a lexical field."""

from __future__ import annotations

import numpy as np
import pytest

from vitrine.features.visual_terms import VisualTerms

TEXTS = ["men navy blue shirt", "women red dress", "men red shirt", "women navy dress", "men blue jeans"] * 2


def test_vocabulary_keeps_frequent_words_and_targets_mark_them():
    vt = VisualTerms.build(TEXTS, min_df=3)
    assert set(vt.vocab_) == {"men", "women", "navy", "blue", "shirt", "red", "dress"}  # jeans appears twice
    y = vt.targets(["men red jeans"])
    assert y.sum() == 2 and y[0, vt.vocab_["men"]] == 1 and y[0, vt.vocab_["red"]] == 1


def test_score_is_mean_log_probability_of_the_query_words():
    vt = VisualTerms.build(TEXTS, min_df=3, keep=7)
    rng = np.random.default_rng(0)
    logp = np.log(rng.uniform(0.01, 1, (4, len(vt))))
    vt.set_rows(np.arange(4), logp, n_rows=4)
    q = [vt.vocab_["men"], vt.vocab_["red"]]
    np.testing.assert_allclose(vt.score("men red"), logp[:, q].mean(1), rtol=1e-5)
    assert vt.score("bicycle") is None  # no known word: no opinion


def test_sparse_storage_ranks_like_dense_on_kept_words_and_floors_the_rest():
    vt = VisualTerms.build(TEXTS, min_df=3, keep=2)
    logp = np.log(np.array([[0.9, 0.8, 0.1, 0.05, 0.02, 0.01, 0.3]] * 2))
    vt.set_rows(np.array([0, 1]), logp, n_rows=3)
    j = np.argsort(-logp[0])
    top, third = j[0], j[2]
    inv = {v: k for k, v in vt.vocab_.items()}
    assert vt.score(inv[top])[0] == pytest.approx(logp[0, top], rel=1e-5)
    # a word outside the kept ones gets the highest log-probability that was not kept
    assert vt.score(inv[j[-1]])[0] == pytest.approx(logp[0, third], rel=1e-5)
    assert vt.score(inv[top])[2] == 0.0  # row 2 has no photo scores yet


def test_rows_are_replaced_cleared_and_saved(tmp_path):
    vt = VisualTerms.build(TEXTS, min_df=3)
    vt.set_rows(np.arange(3), np.log(np.full((3, len(vt)), 0.5)), n_rows=3)
    vt.set_rows(np.array([1]), np.log(np.full((1, len(vt)), 0.9)), n_rows=4)
    s = vt.score("men")
    assert s.shape == (4,) and s[1] > s[0] and s[0] == pytest.approx(s[2])
    vt.clear_rows(np.array([2]))
    vt.save(tmp_path / "vt")
    back = VisualTerms.load(tmp_path / "vt")
    np.testing.assert_allclose(back.score("men red"), vt.score("men red"))
    assert back.score("men")[2] == 0.0
    assert VisualTerms.load(tmp_path / "missing") is None


def test_borrow_moves_probability_towards_the_neighbours_words():
    vt = VisualTerms.build(TEXTS, min_df=3)
    vt.set_rows(np.arange(2), np.log(np.full((2, len(vt)), 0.2)), n_rows=2)
    red, navy = vt.vocab_["red"], vt.vocab_["navy"]
    words = np.zeros((1, 2, len(vt)), np.uint8)
    words[0, :, red] = 1
    vt.borrow(np.array([0]), np.array([[0.5, 0.5]]), words, share=0.25)
    p = np.exp(vt.logp(np.array([0, 1])))
    assert p[0, red] == pytest.approx(0.75 * 0.2 + 0.25, rel=1e-4)
    assert p[0, navy] == pytest.approx(0.75 * 0.2, rel=1e-4)
    assert p[1, red] == pytest.approx(0.2, rel=1e-4)  # other rows untouched


def _catalogue_texts(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return [f"{rng.choice(['men', 'women'])} {rng.choice(['red', 'blue', 'green'])} {rng.choice(['shirt', 'dress'])}"
            for _ in range(n)]


def test_rivals_are_common_words_that_never_share_a_text():
    vt = VisualTerms.build(_catalogue_texts(), min_df=3)
    r = vt.rivals_.toarray()
    v = vt.vocab_
    assert r[v["men"], v["women"]] and r[v["red"], v["blue"]] and r[v["shirt"], v["dress"]]
    assert not r[v["men"], v["red"]] and not r[v["blue"], v["dress"]]
    assert not VisualTerms.build(TEXTS, min_df=3).rivals_.toarray().any()  # ten texts are no evidence


def test_seen_words_are_what_the_photo_shows_and_the_text_is_silent_on(tmp_path):
    vt = VisualTerms.build(_catalogue_texts(), min_df=3)
    p = np.full((1, len(vt)), 0.05)
    p[0, vt.vocab_["red"]], p[0, vt.vocab_["men"]] = 0.95, 0.9
    p[0, vt.vocab_["shirt"]] = 0.6
    vt.set_rows(np.zeros(1, np.int64), np.log(p), n_rows=1)
    assert vt.seen(np.zeros(1, np.int64), 0.5, ["plain tee"]) == [["red", "men", "shirt"]]
    assert vt.seen(np.zeros(1, np.int64), 0.5, ["women shirt"]) == [["red"]]  # "women" rules out "men"
    assert vt.seen(np.zeros(1, np.int64), 0.5, ["blue dress"]) == [["men"]]  # the merchant chose the colour
    vt.save(tmp_path / "vt")
    back = VisualTerms.load(tmp_path / "vt")
    assert back.seen(np.zeros(1, np.int64), 0.5, ["blue dress"]) == [["men"]]
