"""The thread governor: timed steps choose the thread count, and it is timed again later."""

from __future__ import annotations

import numpy as np
import pytest

from vitrine import threads
from vitrine.threads import ThreadGovernor, lightgbm_threads, torch_threads


class FakeLoop:
    """A loop whose step time depends on the thread count in use (``cost[threads]`` seconds)."""

    def __init__(self, cost: dict[int, float], start: int = 2) -> None:
        self.cost, self.threads, self.now, self.switches = dict(cost), start, 0.0, []

    def set_threads(self, k: int) -> None:
        self.threads = k
        self.switches.append(k)

    def clock(self) -> float:
        return self.now

    def run(self, gov: ThreadGovernor, steps: int, units: float = 1.0) -> list[int]:
        used = []
        for _ in range(steps):
            used.append(self.threads)
            self.now += self.cost[self.threads] * units
            gov.tick(units)
        return used


# The last case: one thread a little faster is within the noise of three steps, so all threads stay.
@pytest.mark.parametrize(("cost", "winner"), [({2: 1.0, 1: 1.6}, 2), ({2: 8.0, 1: 1.0}, 1), ({2: 1.0, 1: 0.95}, 2)])
def test_the_faster_thread_count_wins(cost, winner):
    loop = FakeLoop(cost)
    gov = ThreadGovernor(loop.set_threads, 2, hold=1000.0, clock=loop.clock)
    used = loop.run(gov, 40)
    assert used[-1] == winner
    assert gov.choices_ == {winner: 1}
    # timing the loser costs a few steps, not a share of the run
    assert sum(u != winner for u in used) <= 1 + gov.probe


def test_a_neighbour_that_arrives_later_is_noticed():
    loop = FakeLoop({2: 1.0, 1: 1.7})
    gov = ThreadGovernor(loop.set_threads, 2, hold=20.0, clock=loop.clock)
    assert loop.run(gov, 30)[-1] == 2
    loop.cost = {2: 9.0, 1: 1.8}  # another process now holds a core: two threads crawl
    assert loop.run(gov, 60)[-1] == 1
    loop.cost = {2: 1.0, 1: 1.7}  # and it left again
    assert loop.run(gov, 200)[-1] == 2
    assert gov.choices_[1] >= 1 and gov.choices_[2] >= 2


def test_the_starting_count_stays_a_choice():
    # 16 cores, 4 held by other processes: 16 threads crawl, one is slow, 12 is best.
    loop = FakeLoop({16: 9.0, 12: 1.0, 1: 8.0}, start=12)
    gov = ThreadGovernor(loop.set_threads, 16, hold=5.0, start=12, clock=loop.clock)
    assert gov.options == (16, 12, 1)
    used = loop.run(gov, 100)
    assert used[-1] == 12 and set(gov.choices_) == {12}


def test_steps_are_compared_per_unit():
    # Two threads take longer steps, but were handed steps twice as large: they still win per unit.
    loop = FakeLoop({2: 1.0, 1: 1.6})
    gov = ThreadGovernor(loop.set_threads, 2, hold=1000.0, clock=loop.clock)
    for i in range(30):
        loop.now += loop.cost[loop.threads] * (2.0 if loop.threads == 2 else 1.0)
        gov.tick(2.0 if loop.threads == 2 else 1.0)
        assert i < 29 or loop.threads == 2


def test_one_thread_leaves_nothing_to_choose():
    loop = FakeLoop({1: 1.0}, start=1)
    gov = ThreadGovernor(loop.set_threads, 1, clock=loop.clock)
    loop.run(gov, 20)
    assert loop.switches == [] and gov.choices_ == {}


def test_torch_threads_restores_the_count(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "busy_cores", lambda samples=5: 0)
    with torch_threads() as gov:
        gov.set_threads(1)
    assert torch.get_num_threads() == before


def _settings_env(monkeypatch, value: str | None) -> None:
    from vitrine.config import get_settings

    if value is None:
        monkeypatch.delenv("VITRINE_ADAPTIVE_THREADS", raising=False)
    else:
        monkeypatch.setenv("VITRINE_ADAPTIVE_THREADS", value)
    get_settings.cache_clear()


def test_switched_off_the_governor_never_switches(monkeypatch):
    _settings_env(monkeypatch, "false")
    try:
        with lightgbm_threads(4) as cb:
            assert cb.gov.options == ()
        torch = pytest.importorskip("torch")
        with torch_threads() as gov:
            assert gov.options == ()
        assert torch.get_num_threads() >= 1
    finally:
        _settings_env(monkeypatch, None)


def test_a_busy_neighbour_lowers_the_starting_count(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda samples=5: 1)
    assert threads.start_threads(2) == 1
    monkeypatch.setattr(threads, "busy_cores", lambda samples=5: 0)
    assert threads.start_threads(2) == 2
    monkeypatch.setattr(threads, "busy_cores", lambda samples=5: None)  # not Linux: no guess
    assert threads.start_threads(2) == 2


def test_busy_cores_reads_this_machine():
    busy = threads.busy_cores()
    assert busy is None or busy >= 0


def test_lightgbm_switches_threads_between_rounds_and_builds_the_same_model(monkeypatch):
    """Inside ``lightgbm.train`` the governor moves to the count whose rounds are
    faster, and the model is the one LightGBM builds without it (switching
    through ``Booster.reset_parameter`` would restart the bagging draws)."""
    import lightgbm as lgb
    from lightgbm.basic import _LIB

    from vitrine.rank.lambdamart import _train

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5))
    y = (X[:, 0] + rng.normal(size=3000) > 0).astype(int) + (X[:, 1] > 1)
    params = {"objective": "lambdarank", "num_threads": 2, "verbose": -1, "min_data_in_leaf": 5,
              "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8, "deterministic": True,
              "force_row_wise": True, "seed": 3}

    def train():
        return _train(params, lgb.Dataset(X, y, group=np.full(150, 20)), 40)

    _settings_env(monkeypatch, "false")
    plain = train().predict(X)
    _settings_env(monkeypatch, None)

    monkeypatch.setattr(threads, "busy_cores", lambda samples=5: 0)
    caps: list[int] = []
    real = _LIB.LGBM_SetMaxThreads

    def spy(k):
        caps.append(k.value)
        return real(k)

    monkeypatch.setattr(_LIB, "LGBM_SetMaxThreads", spy)
    now = [0.0]

    def clock():  # rounds on two threads "take" 5 s, on one 1 s: a neighbour holds a core
        now[0] += 5.0 if (caps[-1] if caps else 2) == 2 else 1.0
        return now[0]

    monkeypatch.setattr(threads, "_clock", clock)
    booster = train()
    assert 1 in caps[:-1]  # it ran on one thread ...
    assert caps[-1] == -1  # ... and gave LightGBM back its own count afterwards
    assert booster.current_iteration() == 40
    np.testing.assert_array_equal(booster.predict(X), plain)
