import numpy as np
import pytest
import torch

from vitrine.features.text import TextEncoder

torch.set_num_threads(1)


def test_encode_unit_norm_and_semantic(tmp_path) -> None:
    enc = TextEncoder(cache_dir=tmp_path)
    v = enc.encode(["red running shoes", "crimson sneakers for jogging", "stainless steel kettle"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_cache_means_refit_encodes_nothing(tmp_path) -> None:
    texts = ["blue kettle", "green cap", "blue kettle", ""]
    first = TextEncoder(cache_dir=tmp_path)
    a = first.encode(texts)
    assert first.encoded_ == 3  # duplicates encoded once
    second = TextEncoder(cache_dir=tmp_path)  # a new process would see the same files
    b = second.encode(texts)
    assert second.encoded_ == 0
    np.testing.assert_array_equal(a, b)
    third = TextEncoder(cache_dir=tmp_path)
    third.encode(texts + ["yellow scarf"])
    assert third.encoded_ == 1


def test_cache_is_keyed_by_model(tmp_path) -> None:
    TextEncoder(cache_dir=tmp_path).encode(["blue kettle"])
    dirs = list((tmp_path / "text").iterdir())
    assert len(dirs) == 1 and dirs[0].name.startswith("model-")


def test_unknown_model_path_fails_clearly(tmp_path) -> None:
    with pytest.raises(Exception):  # noqa: B017 - sentence-transformers raises its own error types
        TextEncoder(str(tmp_path / "no-such-model")).encode(["x"])
