"""LambdaMART boosters averaged over seeds: prediction, explanations and files; the click model's soft clicks."""

import numpy as np

from vitrine.rank.lambdamart import ClickModel, LambdaMART


def _queries(seed: int = 0, n_queries: int = 60, size: int = 15):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_queries * size, 4))
    y = np.clip(np.round(1.5 + X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.5, len(X))), 0, 3).astype(int)
    return X, y, np.full(n_queries, size)


def test_boosters_are_averaged_and_round_trip(tmp_path) -> None:
    X, y, groups = _queries()
    names = ["text_a", "text_b", "price_c", "rating_d"]
    m = LambdaMART(n_estimators=60, patience=20, n_models=3, num_threads=1, seed=4).fit(X, y, groups, names)
    assert len(m.boosters_) == 3
    members = [b.predict(X, num_iteration=b.best_iteration or None) for b in m.boosters_]
    assert not np.allclose(members[0], members[1])  # other seeds, other early-stopping splits
    np.testing.assert_allclose(m.predict(X), np.mean(members, axis=0))
    # explanations stay additive: the groups plus the base give the averaged score
    contrib = m.contributions(X[:5])
    np.testing.assert_allclose([sum(c.values()) for c in contrib], m.predict(X[:5]), rtol=1e-6, atol=1e-9)
    m.save(tmp_path / "r")
    back = LambdaMART.load(tmp_path / "r", names)
    np.testing.assert_allclose(back.predict(X), m.predict(X))
    # a later single-booster fit saved in the same folder leaves no stale member behind
    LambdaMART(n_estimators=20, n_models=1, num_threads=1).fit(X, y, groups, names).save(tmp_path / "r")
    assert len(LambdaMART.load(tmp_path / "r", names).boosters_) == 1


def test_a_thread_can_cap_its_predictions_threads_without_changing_them() -> None:
    import threading

    from vitrine.rank.lambdamart import _threads, predict_threads

    X, y, groups = _queries(1)
    m = LambdaMART(n_estimators=30, n_models=1, num_threads=2).fit(X, y, groups, ["a", "b", "c", "d"])
    before = m.predict(X)
    seen = {}

    def capped() -> None:  # as a server thread does (serve.state.one_native_thread)
        predict_threads(1)
        seen["kw"], seen["scores"] = _threads(), m.predict(X)

    t = threading.Thread(target=capped)
    t.start()
    t.join()
    assert seen["kw"] == {"num_threads": 1} and _threads() == {}  # per thread: this one is untouched
    np.testing.assert_allclose(seen["scores"], before)


def test_the_click_model_learns_a_soft_click_as_a_share() -> None:
    # A judged product joins the click model as an examined row whose click is its
    # grade's share of the best gain; the model must estimate that share, not 1.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, 4000)
    X = np.c_[x, rng.normal(size=len(x))]
    click = np.where(x == 1, 0.8, 0.2)
    m = ClickModel(n_estimators=200, min_data_in_leaf=20, num_threads=1).fit(X, click, np.full(200, 20), ["a", "b"])
    p = 1 / (1 + np.exp(-m.predict(X)))
    assert abs(p[x == 1].mean() - 0.8) < 0.03 and abs(p[x == 0].mean() - 0.2) < 0.03
