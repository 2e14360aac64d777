"""Through the Engine: record_event changes that shopper's next recommendations at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitrine.config import Settings
from vitrine.data.dataset import Dataset


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import vitrine.engine as engine_mod
    from vitrine.personal import Personalizer

    class Fast(Personalizer):
        def __init__(self, **kw):
            super().__init__(**{**kw, "seq_seconds": 600.0, "tune": False,  # epochs bound SASRec, not seconds
                                "seq_params": {**(kw.get("seq_params") or {}), "epochs": 10},
                                "als_params": {"factors": 16, "iterations": 3, "threads": 1}})

    rng = np.random.default_rng(1)
    n_items = 80
    products = pd.DataFrame({"product_id": [f"p{i}" for i in range(n_items)],
                             "title": [f"item {i}" for i in range(n_items)],
                             "category": [f"top > c{i % 8}" for i in range(n_items)],
                             "brand": [f"b{i % 5}" for i in range(n_items)]})
    rows = []
    for u in range(150):
        start = int(rng.integers(n_items))
        for t in range(int(rng.integers(3, 9))):
            rows.append((f"u{u}", f"p{(start + 2 * t) % n_items}", pd.Timestamp("2024-01-01") + pd.Timedelta(hours=t),
                         "purchase" if t % 3 == 0 else "click"))
    events = pd.DataFrame(rows, columns=["user_id", "product_id", "timestamp", "event"])
    home = tmp_path_factory.mktemp("home")
    original = engine_mod.Personalizer
    engine_mod.Personalizer = Fast
    try:
        eng = engine_mod.Engine(settings=Settings(home=home), home=home)
        eng.fit(Dataset(products=products, events=events))
    finally:
        engine_mod.Personalizer = original
    return eng


def test_record_event_changes_next_recommendations(engine) -> None:
    before = engine.recommend("u3", k=10).item_ids
    engine.record_event("u3", "p41", "purchase", timestamp=pd.Timestamp("2024-02-01"))
    after = engine.recommend("u3", k=10).item_ids
    assert after != before
    assert "p41" not in after  # bought: not recommended again (repurchase off)
    assert "p43" in engine.recommend("u3", k=20).item_ids  # the product that follows p41 in the logs


def test_new_shopper_and_forget(engine) -> None:
    engine.record_event("stranger", "p10", "click", timestamp=pd.Timestamp("2024-02-01"))
    key = engine.user_key("stranger")
    assert engine.personal_.knows(key)
    recs = engine.recommend("stranger", k=5).item_ids
    assert "p12" in engine.recommend("stranger", k=20).item_ids and len(recs) == 5
    engine.forget_user("stranger")
    assert not engine.personal_.knows(key)


def test_similar_uses_behaviour(engine) -> None:
    res = engine.similar("p20", k=5)
    assert len(res) == 5 and "p20" not in res.item_ids
    assert "p22" in res.item_ids or "p18" in res.item_ids
