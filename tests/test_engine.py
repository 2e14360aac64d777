"""The Engine facade end to end on a small synthetic shop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitrine.engine import Engine, Filters, Rules
from vitrine.errors import DataValidationError, NotFittedError, NotFoundError


@pytest.fixture(scope="module")
def fitted(fitted_home, tmp_path_factory):
    import shutil

    home = tmp_path_factory.mktemp("engine") / "home"
    shutil.copytree(fitted_home, home)
    engine = Engine.load(home)
    yield engine
    engine.close()


def test_not_fitted_raises(tmp_path) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        Engine(home=tmp_path).search("shoe")


def test_search_finds_matching_category(fitted: Engine) -> None:
    products = fitted.catalog_.products
    leaf = products["category"].dropna().iloc[0].split(" > ")[-1]
    res = fitted.search(leaf.lower(), k=10)
    assert len(res) == 10
    cats = products.set_index("product_id").loc[res.item_ids, "category"]
    assert (cats.str.endswith(leaf)).mean() >= 0.8


def test_search_paging_and_filters(fitted: Engine) -> None:
    page1 = fitted.search(None, k=5)
    page2 = fitted.search(None, k=5, offset=5)
    assert not set(page1.item_ids) & set(page2.item_ids)
    cat = fitted.catalog_.products["category"].dropna().iloc[0].split(" > ")[0]
    res = fitted.search(None, k=20, filters=Filters(category=cat, price_max=100.0))
    rows = fitted.catalog_.products.set_index("product_id").loc[res.item_ids]
    assert len(res) > 0
    assert rows["category"].str.startswith(cat).all()
    assert (rows["price"] <= 100.0).all()


def test_rules_pin_and_bury(fitted: Engine) -> None:
    base = fitted.search("shirt", k=10)
    last, first = base.item_ids[-1], base.item_ids[0]
    res = fitted.search("shirt", k=10, rules=Rules(pin=[last], bury=[first]))
    assert res.item_ids[0] == last
    assert first not in res.item_ids


def test_record_event_changes_recommendations_at_once(fitted: Engine) -> None:
    before = fitted.recommend("newcomer-1", k=10).item_ids
    products = fitted.catalog_.products
    # Buying in one leaf category should pull that category into the feed.
    cat = products["category"].value_counts().index[-1]
    picks = products.loc[products["category"] == cat, "product_id"].iloc[:3]
    for pid in picks:
        fitted.record_event("newcomer-1", pid, "purchase")
    after = fitted.recommend("newcomer-1", k=10).item_ids
    assert after != before
    assert not set(picks) & set(after), "bought products are excluded by default"


def test_forget_user_erases_store_and_profile(fitted: Engine) -> None:
    pid = fitted.catalog_.ids[0]
    fitted.record_event("erase-me", pid, "click")
    key = fitted.user_key("erase-me")
    assert fitted.personal_.knows(key)
    removed = fitted.forget_user("erase-me")
    assert removed >= 1
    assert not fitted.personal_.knows(key)

    left = fitted.store.query("SELECT count(*) AS n FROM events WHERE user_id = ?", [key])["n"].iat[0]
    assert left == 0


def test_bad_event_is_refused_whole(fitted: Engine) -> None:
    n0 = fitted.store.counts()["events"]
    good = {"user_id": "x", "product_id": fitted.catalog_.ids[0], "event": "click"}
    bad = {"user_id": "x", "product_id": "no-such-product", "event": "click"}
    with pytest.raises(DataValidationError, match="product_id"):
        fitted.record_events([good, bad])
    with pytest.raises(DataValidationError, match="unknown event type"):
        fitted.record_events([{**good, "event": "teleport"}])
    assert fitted.store.counts()["events"] == n0


def test_upsert_is_searchable_at_once_and_delete_hides(fitted: Engine) -> None:
    fitted.upsert_products([{"product_id": "zz-new", "title": "Quixotic zebra lamp", "price": 12.0,
                             "description": "A quixotic zebra lamp for the desk.", "category": "Home > Lighting"}])
    top = fitted.retrieve("quixotic zebra", k=3)
    assert fitted.catalog_.ids[top.rows[0]] == "zz-new"
    # The learned ranker has never seen this product (no sales, no reviews); its text must still win.
    assert "zz-new" in fitted.search("quixotic zebra", k=3).item_ids
    # A bare title is retrievable at once too (the click model ranks it lower: it leans on descriptions).
    fitted.upsert_products([{"product_id": "zz-bare", "title": "Obsidian walrus clock"}])
    assert fitted.catalog_.ids[fitted.retrieve("obsidian walrus", k=3).rows[0]] == "zz-bare"
    fitted.delete_product("zz-new")
    fitted.delete_product("zz-bare")
    assert "zz-new" not in fitted.search("quixotic zebra", k=3).item_ids
    # A deleted product keeps its row until the next fit, but nothing answers for it.
    for ask in (fitted.similar, fitted.product):
        with pytest.raises(NotFoundError, match="deleted"):
            ask("zz-new")
    # Upserted again, it is back.
    fitted.upsert_products([{"product_id": "zz-new", "title": "Quixotic zebra lamp"}])
    assert fitted.product("zz-new")["title"] == "Quixotic zebra lamp"
    assert len(fitted.similar("zz-new", k=3)) == 3
    fitted.delete_product("zz-new")


def test_similar_excludes_itself(fitted: Engine) -> None:
    pid = fitted.catalog_.ids[5]
    res = fitted.similar(pid, k=5)
    assert len(res) == 5 and pid not in res.item_ids
    with pytest.raises(NotFoundError):
        fitted.similar("nope")


def test_save_load_roundtrip(fitted_home) -> None:
    first = Engine.load(fitted_home, replay=False)
    second = Engine.load(fitted_home, replay=False)
    for q in ("dress", "red shirt", None):
        a, b = first.search(q, k=10), second.search(q, k=10)
        assert a.item_ids == b.item_ids
        np.testing.assert_allclose(a.scores, b.scores)
    assert first.recommend("u001", k=5).item_ids == second.recommend("u001", k=5).item_ids


def test_user_ids_are_pseudonymised(fitted: Engine, small_shop) -> None:
    raw = pd.read_parquet(small_shop / "events.parquet")["user_id"].iloc[0]
    stored = fitted.store.query("SELECT DISTINCT user_id FROM events")["user_id"]
    assert raw not in set(stored)
    assert fitted.user_key(raw) in set(stored)


def test_served_features_are_logged_and_erased(fitted: Engine) -> None:
    fitted.search("shirt", user_id="logger", k=5, request_id="req-1")
    served = fitted.store.query("SELECT * FROM served WHERE request_id = 'req-1' ORDER BY position")
    assert served["position"].tolist() == [1, 2, 3, 4, 5]
    assert served["user_id"].iat[0] == fitted.user_key("logger")
    import json

    feats = json.loads(served["features"].iat[0])
    assert len(feats) > 3 and all(v is None or isinstance(v, float) for v in feats.values())
    back = fitted.store.to_dataset().served(["req-1", "nope"])
    assert len(back) == 5 and set(back["request_id"]) == {"req-1"}
    page2 = fitted.search("shirt", user_id="logger", k=5, offset=5, request_id="req-2")
    served2 = fitted.store.query("SELECT * FROM served WHERE request_id = 'req-2' ORDER BY position")
    assert served2["position"].tolist() == [6, 7, 8, 9, 10] and served2["product_id"].tolist() == list(page2.item_ids)
    fitted.forget_user("logger")
    assert fitted.store.query("SELECT count(*) AS n FROM served WHERE request_id = 'req-1'")["n"].iat[0] == 0


def test_pins_outside_retrieval_and_candidates_for_facets(fitted: Engine) -> None:
    far = fitted.search("shirt", k=600).item_ids[-1]
    res, rows = fitted.search("shirt", k=5, rules=Rules(pin=[far]), return_candidates=True)
    assert res.item_ids[0] == far
    assert fitted.catalog_.index_of(far) in set(rows)


def test_reload_replays_live_events(fitted: Engine) -> None:
    products = fitted.catalog_.products
    cat = products["category"].value_counts().index[0]
    picks = products.loc[products["category"] == cat, "product_id"].iloc[:3].tolist()
    for pid in picks:
        fitted.record_event("replayer", pid, "purchase")
    key = fitted.user_key("replayer")
    assert not Engine.load(fitted.home, replay=False).personal_.knows(key)
    loaded = Engine.load(fitted.home)
    assert loaded.personal_.knows(key)
    live = set(fitted.recommend("replayer", k=10).item_ids)
    assert len(live & set(loaded.recommend("replayer", k=10).item_ids)) >= 5


def test_saving_a_loaded_engine_does_not_replay_its_events_twice(copy_home) -> None:
    """Events already in the profiles when a loaded engine is saved must not be replayed into them again."""
    engine = Engine.load(copy_home)
    picks = engine.catalog_.products["product_id"].iloc[:3].tolist()
    for pid in picks:
        engine.record_event("twice", pid, "click")
    engine.close()
    key = engine.user_key("twice")
    loaded = Engine.load(copy_home)  # replays the three clicks
    once = list(loaded.personal_.profiles_.get(key).rows)
    assert len(once) == 3
    loaded.record_event("twice", picks[0], "purchase")  # observed live, then saved with the profile
    loaded.save()
    loaded.close()
    again = Engine.load(copy_home)
    assert list(again.personal_.profiles_.get(key).rows) == [*once, again.catalog_.index_of(picks[0])]
    again.close()


def test_a_late_event_dated_before_the_fit_is_replayed_once(copy_home) -> None:
    """Replay goes by when the store got an event, not by its (client-set) date."""
    writer = Engine.load(copy_home)
    pid = writer.catalog_.products["product_id"].iloc[7]
    writer.record_event("backfill", pid, "purchase", timestamp="2001-01-01T00:00:00")
    writer.close()
    key = writer.user_key("backfill")
    loaded = Engine.load(copy_home)
    assert list(loaded.personal_.profiles_.get(key).rows) == [loaded.catalog_.index_of(pid)]
    loaded.save()
    loaded.close()
    again = Engine.load(copy_home)
    assert len(again.personal_.profiles_.get(key).rows) == 1
    again.close()


def test_an_event_dated_in_the_future_hides_nothing_stored_after_it(copy_home) -> None:
    engine = Engine.load(copy_home)
    a, b = engine.catalog_.products["product_id"].iloc[[3, 4]]
    engine.record_event("ahead", a, "click", timestamp="2099-01-01T00:00:00")  # a clock running ahead
    engine.save()  # the saved profiles hold it, and the marks say so
    engine.record_event("ontime", b, "click")
    engine.close()
    loaded = Engine.load(copy_home)
    assert list(loaded.personal_.profiles_.get(loaded.user_key("ontime")).rows) == [loaded.catalog_.index_of(b)]
    assert len(loaded.personal_.profiles_.get(loaded.user_key("ahead")).rows) == 1
    loaded.close()


def test_events_another_writer_appended_between_its_own_are_applied_once(copy_home) -> None:
    """An append by someone else (a folder ingest into the same store) between two of this
    engine's own appends reaches its profiles at once, and is not replayed again after a save."""
    engine = Engine.load(copy_home)
    a, b, c = engine.catalog_.products["product_id"].iloc[[5, 6, 8]]
    engine.record_event("mine", a, "click")
    other = pd.DataFrame({"user_id": ["other"], "product_id": [b], "event": ["purchase"],
                          "timestamp": [pd.Timestamp("2001-01-01")]})
    engine.store.append_events(other, pseudonymized=False)
    engine.record_event("mine", c, "click")
    key = engine.user_key("other")
    assert list(engine.personal_.profiles_.get(key).rows) == [engine.catalog_.index_of(b)]
    assert len(engine.personal_.profiles_.get(engine.user_key("mine")).rows) == 2
    engine.save()
    engine.close()
    loaded = Engine.load(copy_home)
    assert len(loaded.personal_.profiles_.get(key).rows) == 1
    loaded.close()


def test_a_model_saved_before_appends_were_numbered_replays_by_event_time(copy_home) -> None:
    import json

    engine = Engine.load(copy_home)
    pid = engine.catalog_.products["product_id"].iloc[2]
    engine.record_event("dated", pid, "click")
    engine.close()
    (saved,) = (copy_home / "models").iterdir()
    meta = json.loads((saved / "engine.json").read_text())
    del meta["arrival_through"]  # as homes saved before 2026-11-23 have it
    (saved / "engine.json").write_text(json.dumps(meta))
    loaded = Engine.load(copy_home)
    assert loaded.arrival_through_ is None
    assert list(loaded.personal_.profiles_.get(loaded.user_key("dated")).rows) == [loaded.catalog_.index_of(pid)]
    loaded.close()


def test_forget_user_drops_ranker_state_of_a_trained_shopper(fitted: Engine, small_shop) -> None:
    raw = pd.read_parquet(small_shop / "events.parquet")["user_id"].value_counts().index[0]
    key = fitted.user_key(raw)
    assert key in fitted.ranker_.exposure_ and fitted.personal_.knows(key)
    fitted.forget_user(raw)
    assert key not in fitted.ranker_.exposure_ and not fitted.personal_.knows(key)
    on = fitted.search("dress", user_id=raw, k=10).item_ids
    assert on == fitted.search("dress", k=10).item_ids  # nothing left to personalize with


def test_fit_trains_logged_pages_on_the_features_they_were_served_with(copy_home) -> None:
    """search (logged) -> impression and click events under its request id -> fit reads the log back."""
    engine = Engine.load(copy_home)
    res = engine.search("shirt", user_id="served-shopper", k=5, request_id="srv-1")
    page = [{"user_id": "served-shopper", "product_id": pid, "event": "impression", "query": "shirt",
             "request_id": "srv-1", "position": i + 1} for i, pid in enumerate(res.item_ids)]
    click = {**page[1], "event": "click"}
    engine.record_events([*page, click])
    old = engine.search("shirt", user_id="served-shopper", k=5, request_id="srv-old")
    engine.record_events([{**p, "request_id": "srv-old", "product_id": pid}
                          for p, pid in zip(page, old.item_ids, strict=True)])
    engine.store.query("UPDATE vitrine_served.served_rows SET logged_at = logged_at - INTERVAL 400 DAY "
                       "WHERE request_id = 'srv-old'")  # logged 400 days ago: past VITRINE_SERVED_DAYS (180)
    engine.fit()
    assert engine.ranker_.served_rows_ == 5  # the one recent logged page; every other page is recomputed
    logged = engine.store.query("SELECT DISTINCT request_id FROM served_rows")["request_id"].tolist()
    assert logged == ["srv-1"]
    engine.close()


def test_erasure_reaches_the_saved_model_and_survives_a_reload(copy_home, small_shop) -> None:
    """A reload (a restart, ``POST /admin/reload``) must not bring an erased shopper back from the saved model."""
    counts = pd.read_parquet(small_shop / "events.parquet")["user_id"].value_counts()
    raw, other = counts.index[0], counts.index[1]
    engine = Engine.load(copy_home)
    key, other_key = engine.user_key(raw), engine.user_key(other)
    idx = engine.personal_.user_index_[key]
    other_rows = list(engine.personal_.profiles_.get(other_key).rows)
    files = [p for p in (copy_home / "models").rglob("*") if p.is_file()]

    def holders() -> list:  # JSON writes the key as UTF-8, NumPy's .npz string arrays as UTF-32
        return [p.name for p in (copy_home / "models").rglob("*") if p.is_file()
                and any(enc in p.read_bytes() for enc in (key.encode(), key.encode("utf-32-le")))]

    assert {"profiles.json", "personal.json", "exposure.npz"} <= set(holders())
    engine.forget_user(raw)
    assert engine.personal_.userknn_.users_[idx].nnz == 0  # their history recommends to nobody now
    engine.close()

    assert holders() == []
    assert not [p for p in (copy_home / "models").iterdir() if p.name.startswith(".")]  # no temporary copies
    loaded = Engine.load(copy_home)
    assert not loaded.personal_.knows(key) and key not in loaded.personal_.user_index_
    assert key not in loaded.ranker_.exposure_ and loaded.personal_.userknn_.users_[idx].nnz == 0
    if loaded.personal_.seq_users_ is not None:
        assert not loaded.personal_.seq_users_[idx].any()
    assert list(loaded.personal_.profiles_.get(other_key).rows) == other_rows  # everyone else is untouched
    assert loaded.recommend(raw, k=10).item_ids == loaded.recommend(None, k=10).item_ids
    assert len(files) == len([p for p in (copy_home / "models").rglob("*") if p.is_file()])
    loaded.close()


def test_live_catalog_changes_survive_a_reload(copy_home) -> None:
    """Products added and deleted after the fit are in the store; a reload applies them to the saved model."""
    engine = Engine.load(copy_home)
    victim = engine.search("shirt", k=1).item_ids[0]
    engine.upsert_products([{"product_id": "zx-teapot", "title": "Zorblax quantum teapot", "price": 42.0,
                             "in_stock": True},
                            {"product_id": "zx-gone", "title": "Zorblax quantum kettle", "price": 40.0}])
    engine.delete_product(victim)
    engine.delete_product("zx-gone")  # added, then deleted: deleted
    assert "zx-teapot" in engine.search("zorblax teapot", k=5).item_ids
    engine.close()

    loaded = Engine.load(copy_home)
    assert "zx-teapot" in loaded.search("zorblax teapot", k=5).item_ids
    assert loaded.product("zx-teapot")["price"] == 42.0
    assert victim not in loaded.search("shirt", k=50).item_ids
    assert "zx-gone" not in loaded.search("zorblax kettle", k=50).item_ids
    before = Engine.load(copy_home, replay=False)  # the saved model alone still has the old catalog
    assert before.catalog_.get_index("zx-teapot") is None and victim in before.search("shirt", k=50).item_ids
    loaded.close()
    before.close()


def test_a_save_keeps_the_newest_versions_and_the_catalog_log_they_need(copy_home) -> None:
    """Refits must not grow a home without bound: old versions and the live log no kept model replays go."""
    import json
    import shutil

    from vitrine.config import Settings

    models = copy_home / "models"
    (current,) = [f.name for f in models.iterdir()]
    for old in ("20000101-000000", "20000102-000000"):
        shutil.copytree(models / current, models / old)
    engine = Engine.load(copy_home, settings=Settings(keep_models=2))
    engine.upsert_products([{"product_id": "zx-early", "title": "Zorblax early lamp"}])
    mid = pd.Timestamp.now(tz="UTC").tz_localize(None)
    engine.upsert_products([{"product_id": "zx-late", "title": "Zorblax late lamp"}])
    victim = engine.search("shirt", k=1).item_ids[0]
    engine.delete_product(victim)
    # The newest fit and the kept older one both began after the first change.
    meta = json.loads((models / "20000102-000000" / "engine.json").read_text())
    (models / "20000102-000000" / "engine.json").write_text(json.dumps({**meta, "fitted_at": str(mid)}))
    engine.fitted_at_ = str(mid)
    engine.save()
    assert sorted(f.name for f in models.iterdir()) == ["20000102-000000", current]
    assert engine.store.query("SELECT product_id FROM product_log ORDER BY seq")["product_id"].tolist() == [
        "zx-late", victim]
    engine.close()

    loaded = Engine.load(copy_home)  # the changes after the fit still reach the model
    assert "zx-late" in loaded.search("zorblax late lamp", k=3).item_ids
    assert victim not in loaded.search("shirt", k=50).item_ids
    loaded.close()


def test_catch_up_applies_what_reached_the_store_after_the_load(copy_home) -> None:
    """An engine that loaded before other writes reads them on catch_up, once each."""
    early = Engine.load(copy_home)
    writer = Engine.load(copy_home)
    pid = writer.catalog_.products["product_id"].iloc[5]
    victim = writer.search("shirt", k=1).item_ids[0]
    writer.record_event("latecomer", pid, "purchase")
    writer.upsert_products([{"product_id": "zx-late", "title": "Zorblax late lamp"}])
    writer.delete_product(victim)
    key = early.user_key("latecomer")
    assert not early.personal_.knows(key) and early.catalog_.get_index("zx-late") is None
    assert early.catch_up() >= 3
    assert list(early.personal_.profiles_.get(key).rows) == [early.catalog_.index_of(pid)]
    assert "zx-late" in early.search("zorblax late lamp", k=3).item_ids
    assert victim not in early.search("shirt", k=50).item_ids
    assert early.catch_up() == 0  # nothing applied twice, however soon the next read
    assert len(early.personal_.profiles_.get(key).rows) == 1
    writer.close()
    early.close()


def test_a_model_saved_without_its_fit_time_catches_up_on_the_whole_catalog_log(copy_home) -> None:
    import json

    engine = Engine.load(copy_home)
    victim = engine.search("shirt", k=1).item_ids[0]
    engine.upsert_products([{"product_id": "zx-old-home", "title": "Zorblax vintage lamp"}])
    engine.delete_product(victim)
    engine.close()
    (saved,) = (copy_home / "models").iterdir()
    meta = json.loads((saved / "engine.json").read_text())
    del meta["fitted_at"], meta["catalog_through"]  # as homes saved before 2026-11-21 have it
    (saved / "engine.json").write_text(json.dumps(meta))
    loaded = Engine.load(copy_home)
    assert "zx-old-home" in loaded.search("zorblax vintage lamp", k=3).item_ids
    assert victim not in loaded.search("shirt", k=50).item_ids
    loaded.close()


def test_a_home_of_saved_models_alone_loads_without_creating_a_store(copy_home) -> None:
    for f in copy_home.glob("store.duckdb*"):
        f.unlink()
    engine = Engine.load(copy_home)
    assert engine.catch_up() == 0 and len(engine.search("shirt", k=3)) == 3
    assert not (copy_home / "store.duckdb").exists()


def test_retriever_add_with_a_row_twice_keeps_the_indexes_aligned(copy_home) -> None:
    engine = Engine.load(copy_home, replay=False)
    n = len(engine.catalog_)
    rows = engine.catalog_.upsert(pd.DataFrame([{"product_id": "zx-twice", "title": "Quokka basalt lantern"}]))
    engine.retriever_.add(np.concatenate([rows, rows]))
    assert engine.retriever_.lexical_.n_docs_ == n + 1 == len(engine.catalog_)
    assert engine.retriever_.retrieve("quokka basalt lantern", k=1).rows.tolist() == rows.tolist()
    engine.close()
