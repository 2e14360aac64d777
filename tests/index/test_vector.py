import numpy as np
import pytest

from vitrine.index.vector import VectorIndex


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def vecs():
    return _unit(np.random.default_rng(23).normal(size=(300, 16)))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_finds_exact_neighbours(vecs, kind) -> None:
    index = VectorIndex(kind=kind).build(vecs)
    rows, scores = index.search(vecs[7], k=5)
    assert rows[0] == 7 and scores[0] == pytest.approx(1.0, abs=1e-5)
    exact = np.argsort(-(vecs @ vecs[7]))[:5]
    assert len(set(rows) & set(exact)) >= 4


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_add_replace_remove(vecs, kind) -> None:
    index = VectorIndex(kind=kind).build(vecs[:200])
    index.add(vecs[200:210], np.arange(200, 210))
    assert index.search(vecs[205], k=1)[0][0] == 205
    index.remove(np.array([205, 7]))
    rows, _ = index.search(np.stack([vecs[205], vecs[7]]), k=3)
    assert 205 not in rows and 7 not in rows
    assert len(index) == 208
    # replace row 3 with the vector of row 250: row 3 now answers for it
    index.add(vecs[250][None], np.array([3]))
    assert index.search(vecs[250], k=1)[0][0] == 3
    assert index.search(vecs[3], k=1)[0][0] != 3
    # a removed row can come back
    index.add(vecs[7][None], np.array([7]))
    assert index.search(vecs[7], k=1)[0][0] == 7


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_save_load_roundtrip(tmp_path, vecs, kind) -> None:
    index = VectorIndex(kind=kind).build(vecs)
    index.remove(np.array([11]))
    index.save(tmp_path / "idx")
    index.save(tmp_path / "idx")  # overwriting an existing save works
    back = VectorIndex.load(tmp_path / "idx")
    assert back.kind_ == kind and len(back) == 299
    r1, s1 = index.search(vecs[:4], k=5)
    r2, s2 = back.search(vecs[:4], k=5)
    np.testing.assert_array_equal(r1, r2)
    assert 11 not in back.search(vecs[11], k=3)[0]
    assert not list(tmp_path.glob(".idx*"))  # no temporary folders left


def test_auto_kind_switches_on_size(vecs) -> None:
    assert VectorIndex(hnsw_threshold=1000).build(vecs).kind_ == "flat"
    assert VectorIndex(hnsw_threshold=100).build(vecs).kind_ == "hnsw"


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex(kind="ivf")


def test_k_larger_than_index(vecs) -> None:
    rows, scores = VectorIndex().build(vecs[:3]).search(vecs[0], k=10)
    assert sorted(rows) == [0, 1, 2] and len(scores) == 3
