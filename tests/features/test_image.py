import io
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vitrine.features.image import (
    CLIPImageEncoder,
    ImageTower,
    ImageWarning,
    load_image,
    load_image_encoder,
    load_images,
)

torch.set_num_threads(1)


def _png(color, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_load_image_pads_to_square_and_reads_bytes_paths_pil(tmp_path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(_png((255, 0, 0)))
    for src in (p, str(p), p.read_bytes(), Image.open(p)):
        arr = load_image(src, size=16)
        assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8
        assert tuple(arr[8, 8]) == (255, 0, 0) and tuple(arr[0, 8]) == (255, 255, 255)  # padded rows are white


def test_bad_images_warn_and_give_no_vector(tmp_path) -> None:
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "text.png").write_text("hello")
    big = tmp_path / "huge.png"
    Image.new("L", (3000, 3000)).save(big)
    good = tmp_path / "ok.png"
    good.write_bytes(_png((0, 0, 255)))
    srcs = [str(tmp_path / "corrupt.jpg"), str(tmp_path / "text.png"), str(tmp_path / "missing.png"), None,
            str(good)]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        imgs, ok = load_images(srcs, size=8, labels=["a", "b", "c", "d", "e"])
        assert load_image(big, size=8, max_pixels=1_000_000) is None
    assert ok.tolist() == [False, False, False, False, True]
    msgs = [str(x.message) for x in w if issubclass(x.category, ImageWarning)]
    assert len(msgs) == 4 and "product a" in msgs[0] and "over the limit" in msgs[-1]


def _colour_set(n=192, size=16, seed=0):
    """Images whose only content is a colour, and 'text' vectors naming that colour."""
    rng = np.random.default_rng(seed)
    palette = np.array([[220, 20, 20], [20, 160, 20], [20, 20, 220], [230, 200, 20]], np.uint8)
    labels = rng.integers(0, 4, n)
    imgs = np.full((n, size, size, 3), 255, np.uint8)
    for i, c in enumerate(labels):
        a, b = rng.integers(2, 6, 2)
        imgs[i, a: a + 8, b: b + 8] = palette[c]
    basis = np.linalg.qr(rng.normal(size=(32, 4)))[0].T.astype(np.float32)  # 4 orthonormal "colour words"
    return imgs, basis[labels], labels, basis


@pytest.mark.parametrize("cnn", [False, True])
def test_tower_learns_to_map_images_into_text_space(cnn, tmp_path) -> None:
    imgs, tv, labels, basis = _colour_set()
    tower = ImageTower(size=16, cnn=cnn, head_epochs=40, epochs=2, max_seconds=30, batch_size=64).fit(imgs, tv)
    z = tower.encode_images(imgs)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-4)
    pred = (z @ basis.T).argmax(1)
    assert (pred == labels).mean() > 0.9
    tower.save(tmp_path / "t")
    back = load_image_encoder(tmp_path / "t")
    np.testing.assert_allclose(back.encode_images(imgs[:5]), z[:5], atol=1e-5)


def test_tower_respects_time_budget() -> None:
    imgs, tv, _, _ = _colour_set(n=256)
    tower = ImageTower(size=16, head_epochs=10_000, epochs=10_000, max_seconds=2.0).fit(imgs, tv)
    assert tower.seconds_ < 6


def test_tower_members_share_the_budget_average_and_round_trip(tmp_path) -> None:
    imgs, tv, labels, basis = _colour_set(n=256)
    terms = np.eye(4, dtype=np.uint8)[labels]
    tower = ImageTower(size=16, head_epochs=40, epochs=2, max_seconds=8.0, batch_size=64, members=2)
    tower.fit(imgs, tv, terms=terms)
    assert len(tower.nets_) == 2 and tower.seconds_ < 14
    z, logp = tower.encode(imgs)
    assert ((z @ basis.T).argmax(1) == labels).mean() > 0.9
    assert (logp.argmax(1) == labels).mean() > 0.9
    # The members differ (own seeds), and the ensemble is their average.
    one = ImageTower(size=16, members=1)
    one.dim_, one.n_terms_, one.nets_ = tower.dim_, tower.n_terms_, tower.nets_[:1]
    z0, _ = one.encode(imgs)
    assert not np.allclose(z0, z, atol=1e-3)
    tower.save(tmp_path / "t")
    back = load_image_encoder(tmp_path / "t")
    z2, logp2 = back.encode(imgs[:5])
    np.testing.assert_allclose(z2, z[:5], atol=1e-5)
    np.testing.assert_allclose(logp2, logp[:5], atol=1e-4)


def _tiny_clip(folder):
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({c: len(vocab) + i for i, c in enumerate(chars)})
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(chars)})
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    tok.save_pretrained(folder)
    cfg = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 32,
                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"]},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=24,
    )
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(folder)


def test_clip_encoder_loads_a_local_model(tmp_path) -> None:
    _tiny_clip(tmp_path / "clip")
    enc = CLIPImageEncoder(str(tmp_path / "clip"), device="cpu")
    imgs = np.stack([load_image(_png(c), size=40) for c in [(255, 0, 0), (0, 0, 255), (255, 0, 0)]])
    enc.fit(imgs, None)
    assert enc.size == 32 and enc.dim_ == 24
    z = enc.encode_images(imgs)
    assert z.shape == (3, 24)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(z[0], z[2], atol=1e-5)  # same picture, same vector
    assert not np.allclose(z[0], z[1])
    q = enc.encode_query("red shirt", None)
    assert q.shape == (24,) and abs(np.linalg.norm(q) - 1) < 1e-5
    enc.save(tmp_path / "saved")
    back = load_image_encoder(tmp_path / "saved")
    np.testing.assert_allclose(back.encode_images(imgs[:1]), z[:1], atol=1e-5)
