import numpy as np
import pytest
import torch

from vitrine.features.text import BF16_MIN_TEXTS, TextEncoder

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


def test_bf16_batches_agree_with_float32_and_few_texts_stay_float32(tmp_path) -> None:
    import contextlib

    texts = [f"{c} {a} running shoe size {i}" for i, (c, a) in
             enumerate((c, a) for c in ("red", "blue", "green", "black", "white", "grey", "pink", "navy")
                       for a in ("trail", "road", "kids", "winter", "light", "wide", "retro", "pro", "knit"))]
    assert len(texts) >= BF16_MIN_TEXTS
    exact = TextEncoder(precision="fp32").encode(texts)
    bf16 = TextEncoder(precision="bf16").encode(texts)
    cos = (exact * bf16).sum(axis=1)
    assert cos.min() > 0.999 and not np.array_equal(exact, bf16)  # computed another way, to the same vectors
    assert isinstance(TextEncoder(precision="bf16")._precision("cpu", BF16_MIN_TEXTS - 1), contextlib.nullcontext)
    assert isinstance(TextEncoder(precision="bf16")._precision("cuda", 1000), contextlib.nullcontext)
    with pytest.raises(ValueError, match="precision"):
        TextEncoder(precision="half")
