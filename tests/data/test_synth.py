"""The synthetic marketplace: determinism, click model, hidden attributes, validity."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vitrine.data import load_dataset
from vitrine.data import synth_text as T
from vitrine.data.synth import generate, load_truth, parse_query, utility
from vitrine.errors import VitrineError

TABLES = ("products", "events", "reviews", "judgments")


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "shop"
    generate(out, products=2000, users=500, seed=3)
    return out


@pytest.fixture(scope="module")
def shop_zh(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_zh") / "shop"
    generate(out, products=600, users=100, seed=5, lang="zh", sessions_per_user=3)
    return out


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    kw = {"products": 300, "users": 60, "sessions_per_user": 3}
    a = generate(tmp_path / "a", seed=11, **kw)
    b = generate(tmp_path / "b", seed=11, **kw)
    c = generate(tmp_path / "c", seed=12, **kw)
    for name in TABLES:
        assert a.tables[name].read_bytes() == b.tables[name].read_bytes(), name
    assert (a.truth / "preferences.npz").read_bytes() == (b.truth / "preferences.npz").read_bytes()
    assert (a.path / "images" / "p007.png").read_bytes() == (b.path / "images" / "p007.png").read_bytes()
    assert a.tables["events"].read_bytes() != c.tables["events"].read_bytes()
    assert a.tables["products"].read_bytes() != c.tables["products"].read_bytes()


def test_regenerating_replaces_folder(tmp_path: Path) -> None:
    out = tmp_path / "shop"
    generate(out, products=100, users=20, sessions_per_user=2, seed=1)
    s = generate(out, products=80, users=20, sessions_per_user=2, seed=1)
    assert len(pd.read_parquet(s.tables["products"])) == 80
    assert len(list((out / "images").iterdir())) == 80


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(VitrineError, match="not written by `vitrine synth`"):
        generate(tmp_path, products=50, users=10)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lang": "fr"}, "Unknown language 'fr'"),
        ({"products": 0}, "products must be a positive integer"),
        ({"propensities": [0.5] * 3}, "propensities must be 20"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate(tmp_path / "x", **kwargs)


def test_passes_validator(shop: Path, shop_zh: Path) -> None:
    for folder in (shop, shop_zh):
        ds = load_dataset(folder)
        assert ds.warnings == []
        for name in TABLES:
            assert len(ds.table(name)) > 0, name
        assert ds.meta["source"] == "vitrine synth"
        assert ds.products["image"].notna().all()
        assert ds.products["category"].str.count(" > ").eq(2).all()


def test_events_structure(shop: Path) -> None:
    ev = pd.read_parquet(shop / "events.parquet")
    assert set(ev["event"]) == {"impression", "click", "add_to_cart", "purchase"}
    imp = ev[ev["event"] == "impression"]
    per_page = imp.groupby("request_id").size()
    assert per_page.between(1, 20).all() and per_page.median() >= 10
    assert imp.groupby("request_id")["position"].agg(lambda p: sorted(p) == list(range(1, len(p) + 1))).all()
    assert ev["timestamp"].is_monotonic_increasing
    span = ev["timestamp"].max() - ev["timestamp"].min()
    assert pd.Timedelta(days=80) < span <= pd.Timedelta(days=90)
    # Browsing pages carry no query, search pages do; both exist.
    assert ev["query"].isna().any() and ev["query"].notna().any()
    # Every click follows an impression of the same product on the same page.
    shown = set(zip(imp["request_id"], imp["product_id"], strict=True))
    clicks = ev[ev["event"] == "click"]
    assert all(k in shown for k in zip(clicks["request_id"], clicks["product_id"], strict=True))


def test_ctr_falls_with_position_as_configured(shop: Path) -> None:
    ev = pd.read_parquet(shop / "events.parquet")
    n_imp = ev[ev["event"] == "impression"].groupby("position").size()
    n_clk = ev[ev["event"] == "click"].groupby("position").size().reindex(n_imp.index, fill_value=0)
    ctr = (n_clk / n_imp).to_numpy()
    assert ctr[0] > ctr[2] > ctr[5] > ctr[12]
    prop = np.asarray(load_truth(shop).propensities)
    np.testing.assert_allclose(prop, 1.0 / np.arange(1, 21) ** 0.8)
    # Raw CTR ratios follow the propensities roughly (the logging ranker adds a little).
    ratio = ctr[:10] / ctr[0]
    assert np.all(np.abs(ratio - prop[:10] / prop[0]) < 0.12)
    # Given the true attractiveness, the examination estimate matches closely.
    pages = pd.read_parquet(shop / "truth" / "pages.parquet")
    g = pages.groupby("position")
    est = (g["clicked"].sum() / g["attractiveness"].sum()).to_numpy()
    np.testing.assert_allclose(est[:10], prop[:10], rtol=0.2)


def test_custom_propensities(tmp_path: Path) -> None:
    prop = np.linspace(0.9, 0.3, 20)
    s = generate(tmp_path / "s", products=400, users=150, seed=2, propensities=prop, images=False)
    pages = pd.read_parquet(s.truth / "pages.parquet")
    np.testing.assert_allclose(pages["examination"], prop[pages["position"] - 1])
    g = pages[pages["position"] <= 10].groupby("position")
    est = (g["clicked"].sum() / g["attractiveness"].sum()).to_numpy()
    np.testing.assert_allclose(est, prop[:10], rtol=0.25)


def _dominant_color(path: Path) -> int:
    img = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    fg = img[(img != np.asarray(T.BACKGROUND_RGB)).any(axis=1)]
    vals, counts = np.unique(fg, axis=0, return_counts=True)
    top = vals[counts.argmax()].astype(float)
    return int(np.argmin(((np.asarray(T.COLOR_RGB, dtype=float) - top) ** 2).sum(1)))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_color_only_in_image(shop: Path, shop_zh: Path, lang: str) -> None:
    folder = shop if lang == "en" else shop_zh
    truth = load_truth(folder).products
    prods = pd.read_parquet(folder / "products.parquet")
    assert (prods["product_id"] == truth["product_id"]).all()
    hidden = ~truth["color_in_text"].to_numpy()
    assert hidden.sum() == len(prods) // 3
    h = prods[hidden]
    assert h["color"].isna().all()
    assert prods.loc[~hidden, "color"].notna().all()
    text = (h["title"] + " " + h["description"] + " " + h["tags"]).str.lower()
    if lang == "en":
        pattern = r"\b(?:" + "|".join(T.COLORS) + r")\b"
        assert not text.str.contains(pattern, regex=True).any()
        # The visible two thirds do name their colour.
        vis = prods[~hidden]
        assert all(c in t.lower() for c, t in zip(vis["color"], vis["title"], strict=True))
    else:
        assert not text.map(lambda t: any(ch in t for ch in T.COLOR_CHARS_ZH)).any()
    # The image shows the true colour.
    rows = np.flatnonzero(hidden)[:150]
    for i in rows:
        got = _dominant_color(folder / prods["image"].iat[i])
        assert T.COLORS[got] == truth["color"].iat[i], prods["product_id"].iat[i]


def test_zh_text_is_chinese(shop_zh: Path) -> None:
    cjk = re.compile(r"[\u4e00-\u9fff]")
    prods = pd.read_parquet(shop_zh / "products.parquet")
    assert prods["title"].map(lambda t: bool(cjk.search(t))).all()
    assert prods["category"].map(lambda t: bool(cjk.search(t))).all()
    rev = pd.read_parquet(shop_zh / "reviews.parquet")
    assert rev["text"].map(lambda t: bool(cjk.search(t))).all()
    q = pd.read_parquet(shop_zh / "events.parquet")["query"].dropna()
    assert q.map(lambda t: bool(cjk.search(t))).all()


def test_reviews_follow_hidden_quality(shop: Path) -> None:
    truth = load_truth(shop).products.set_index("product_id")
    rev = pd.read_parquet(shop / "reviews.parquet")
    q = truth.loc[rev["product_id"], "quality"].to_numpy()
    assert np.corrcoef(q, rev["rating"])[0, 1] > 0.6
    fit = truth.loc[rev["product_id"], "size_fit"].to_numpy()
    small = rev["text"].str.contains("size up|Runs small", regex=True).to_numpy()
    assert small.any() and (fit[small] == "small").all()


def test_utility_is_recomputable(shop: Path) -> None:
    truth = load_truth(shop)
    pages = pd.read_parquet(shop / "truth" / "pages.parquet")
    req = pd.read_parquet(shop / "truth" / "requests.parquet").set_index("request_id")
    sample = pages.sample(3000, random_state=0)
    r = req.loc[sample["request_id"]]
    got = utility(
        truth, r["user_id"].to_numpy(), sample["product_id"].to_numpy(),
        query=r["intent_query"].to_numpy(), time=r["timestamp"].to_numpy(),
    )  # fmt: skip
    np.testing.assert_allclose(got, sample["utility"].to_numpy(), rtol=1e-9, atol=1e-9)
    # One user against the catalog, no query, no drift: finite scores for an ideal ranking.
    all_p = truth.products["product_id"].to_numpy()
    scores = utility(truth, "u000", all_p)
    assert scores.shape == (len(all_p),) and np.isfinite(scores).all()
    with pytest.raises(VitrineError, match="product id 'nope'"):
        utility(truth, "u000", ["nope"])


def test_parse_query_roundtrip(shop: Path, shop_zh: Path) -> None:
    for folder, lang in ((shop, "en"), (shop_zh, "zh")):
        queries = load_truth(folder).queries
        for row in queries.itertuples():
            want = (row.leaf, row.color, row.brand, row.material, row.style)
            assert parse_query(row.query, lang) == want, row.query


def test_judgments(shop: Path) -> None:
    j = pd.read_parquet(shop / "judgments.parquet")
    assert set(j["grade"]) == {0, 1, 2, 3}
    assert set(j["split"]) == {"train", "test"}
    assert j.groupby("query")["split"].nunique().eq(1).all()
    assert not j.duplicated(["query", "product_id"]).any()
    # Hidden-colour products of the right colour are judged relevant: text alone misses them.
    truth = load_truth(shop).products.set_index("product_id")
    top = j[j["grade"] == 3]
    assert (~truth.loc[top["product_id"], "color_in_text"]).any()
