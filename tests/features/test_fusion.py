"""Learned modality fusion on synthetic modalities where the signal is known."""

import numpy as np
import pytest
import torch

from vitrine.features.fusion import ModalityFusion

torch.set_num_threads(1)


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _setup(n=1500, d=32, pairs=1500, seed=0):
    """Queries are noisy copies of the 'signal' modality; 'noise' is unrelated; 'num' is narrow."""
    rng = np.random.default_rng(seed)
    mods = {"noise": _unit(rng.standard_normal((n, d))), "signal": _unit(rng.standard_normal((n, d))),
            "num": rng.standard_normal((n, 4)).astype(np.float32)}
    masks = {k: np.ones(n, bool) for k in mods}
    rows = rng.integers(0, n, pairs)
    q = _unit(mods["signal"][rows] + 0.5 * _unit(rng.standard_normal((pairs, d))))
    return mods, masks, q, rows


def _recall_at_1(fz, mods, masks, q, rows):
    items = fz.transform(mods, masks)
    return float(np.mean(np.argmax(q @ items.T, 1) == rows))


@pytest.mark.parametrize("method", ["weighted", "concat", "attention"])
def test_fusion_upweights_the_modality_that_carries_the_signal(method) -> None:
    mods, masks, q, rows = _setup()
    fz = ModalityFusion(method=method, seconds=20, epochs=15).fit(mods, masks, q, rows)
    w = fz.modality_weights()
    assert w["signal"] > 2 * w["noise"], w
    assert fz.history_[-1] < fz.history_[0]
    items = fz.transform(mods, masks)
    assert items.shape == (1500, 32)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1, atol=1e-4)
    _, _, tq, trows = _setup(seed=0, pairs=1800)  # same products and first 1500 queries, 300 more
    assert _recall_at_1(fz, mods, masks, tq[1500:], trows[1500:]) > 0.9


def test_attention_is_query_conditioned() -> None:
    """Half the queries describe modality a, half modality b: attention must follow the query."""
    rng = np.random.default_rng(1)
    n, d = 1200, 32
    a, b = _unit(rng.standard_normal((n, d))), _unit(rng.standard_normal((n, d)))
    kind = _unit(rng.standard_normal((2, d)))  # a direction that tells the two query types apart
    rows = rng.integers(0, n, 2400)
    which = np.arange(2400) % 2
    q = _unit(np.where(which[:, None] == 0, a[rows], b[rows]) + 0.8 * kind[which])
    mods, masks = {"a": a, "b": b}, {"a": np.ones(n, bool), "b": np.ones(n, bool)}
    fz = ModalityFusion(method="attention", seconds=30, epochs=20).fit(mods, masks, q, rows)
    A, bias = fz.state_["A"], fz.state_["b"]
    logits = q @ A.T + bias
    prefers_a = logits[:, 0] > logits[:, 1]
    assert prefers_a[which == 0].mean() > 0.9 and (~prefers_a[which == 1]).mean() > 0.9
    s = fz.score(q[0], mods, masks)
    assert s.shape == (n,) and np.argmax(s) == rows[0]


def test_missing_modalities_and_save_load(tmp_path) -> None:
    mods, masks, q, rows = _setup(n=400, pairs=400)
    masks["signal"][:10] = False
    fz = ModalityFusion(method="weighted", seconds=5, epochs=3).fit(mods, masks, q, rows)
    none = {k: np.zeros(400, bool) for k in masks}
    assert not fz.transform(mods, none).any()  # no modality, no vector
    fz.save(tmp_path / "f")
    back = ModalityFusion.load(tmp_path / "f")
    np.testing.assert_allclose(back.transform(mods, masks), fz.transform(mods, masks), atol=1e-6)
    np.testing.assert_allclose(back.score(q[0], mods, masks), fz.score(q[0], mods, masks), atol=1e-6)
    assert back.modality_weights() == pytest.approx(fz.modality_weights())


def test_bad_inputs() -> None:
    mods, masks, q, rows = _setup(n=50, pairs=50)
    with pytest.raises(ValueError, match="unknown fusion method 'sum'"):
        ModalityFusion(method="sum").fit(mods, masks, q, rows)
    with pytest.raises(ValueError, match="50 query vectors but 49 positive rows"):
        ModalityFusion().fit(mods, masks, q, rows[:49])
    fz = ModalityFusion(seconds=1, epochs=1).fit(mods, masks, q, rows)
    with pytest.raises(ValueError, match="missing"):
        fz.transform({"noise": mods["noise"]}, masks)
