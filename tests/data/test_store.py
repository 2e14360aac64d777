"""The DuckDB store: atomic ingest, idempotent upserts, pseudonymisation, erasure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vitrine.config import Settings
from vitrine.data.store import SERVED_COLUMNS, Store, pseudonymize, pseudonymize_series, served_path
from vitrine.engine import Engine
from vitrine.errors import DataValidationError



def write_table(folder: Path, name: str, rows: list[dict], fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.{fmt}"
    df = pd.DataFrame(rows)
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path, index=False)
    return path


RAW_USERS = ("alice.raw.id.7391", "bob.raw.id.2846", "carol.raw.id.5512")
SECRET = "store-test-secret"


def make_shop(folder: Path, fmt: str = "parquet", price: float = 10.0) -> Path:
    products = [{"product_id": f"p{i}", "title": f"thing {i}", "price": price + i} for i in range(5)]
    events = [
        {"user_id": u, "product_id": f"p{(j + k) % 5}", "timestamp": f"2024-01-0{k + 1}T10:00:00",
         "event": "click", "session_id": f"s{j}{k}"}
        for j, u in enumerate(RAW_USERS) for k in range(3)
    ]
    reviews = [{"product_id": "p1", "text": "good", "rating": 4, "user_id": u} for u in RAW_USERS]
    write_table(folder, "products", products, fmt)
    write_table(folder, "events", events, fmt)
    write_table(folder, "reviews", reviews, fmt)
    return folder


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "home" / "store.duckdb", secret=SECRET)
    yield s
    s.close()


# -- atomicity ------------------------------------------------------------------


def test_bad_events_with_good_products_change_nothing(store, tmp_path):
    shop = make_shop(tmp_path / "shop")
    store.ingest(shop)
    before = store.counts()
    bad = tmp_path / "bad"
    write_table(bad, "products", [{"product_id": "new1", "price": 1.0}, {"product_id": "p0", "price": 999.0}], "csv")
    write_table(bad, "events", [{"user_id": "x", "product_id": "new1", "timestamp": "never", "event": "click"}], "csv")
    with pytest.raises(DataValidationError, match="events.csv row 1, field 'timestamp'"):
        store.ingest(bad)
    assert store.counts() == before
    assert store.query("SELECT price FROM products WHERE product_id = 'p0'")["price"].item() == 10.0
    assert store.query("SELECT count(*) AS n FROM products WHERE product_id = 'new1'")["n"].item() == 0


def test_failure_mid_write_rolls_back(store, tmp_path, monkeypatch):
    store.ingest(make_shop(tmp_path / "shop"))
    before = store.counts()
    prices = store.query("SELECT product_id, price FROM products ORDER BY product_id")

    def boom(self, events, **kw):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(Store, "_append_events", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        store.ingest(make_shop(tmp_path / "shop2", price=50.0))  # products and reviews written first
    assert store.counts() == before
    assert store.query("SELECT product_id, price FROM products ORDER BY product_id").equals(prices)
    monkeypatch.undo()
    store.ingest(make_shop(tmp_path / "shop2", price=50.0))  # the store is still usable
    assert store.counts()["events"] == before["events"]  # the same log: nothing new
    assert store.query("SELECT min(price) AS m FROM products")["m"].item() == 50.0


def test_rollback_survives_reopen(tmp_path, monkeypatch):
    path = tmp_path / "home" / "store.duckdb"
    with Store(path, secret=SECRET) as s:
        s.ingest(make_shop(tmp_path / "shop"))
        before = s.counts()
        monkeypatch.setattr(Store, "_append_events", lambda self, e, **kw: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            s.ingest(make_shop(tmp_path / "shop2", price=70.0))
    monkeypatch.undo()
    with Store(path, secret=SECRET) as s:
        assert s.counts() == before
        assert s.query("SELECT max(price) AS m FROM products")["m"].item() == 14.0


# -- idempotence ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_ingesting_the_same_folder_twice_stores_it_once(store, tmp_path, fmt):
    shop = make_shop(tmp_path / "shop", fmt)
    store.ingest(shop)
    first = store.counts()
    assert first == {"products": 5, "reviews": 3, "events": 9, "users": 3, "judgments": 0}
    store.ingest(shop)
    assert store.counts() == first
    assert store.query("SELECT sum(n_events) AS n FROM users")["n"].item() == 9
    store.ingest(make_shop(tmp_path / "shop2", fmt, price=20.0))  # changed products replace the old ones
    assert store.counts()["products"] == 5
    assert store.query("SELECT min(price) AS m FROM products")["m"].item() == 20.0


def test_ingest_adds_only_the_rows_not_stored_and_keeps_real_repeats(store, tmp_path):
    store.ingest(make_shop(tmp_path / "shop"))
    old = pd.read_parquet(tmp_path / "shop" / "events.parquet")
    fresh = {"user_id": RAW_USERS[0], "product_id": "p4", "timestamp": "2024-01-02T12:00:00", "event": "purchase"}
    # a later export: two stored rows, one of them listed twice (a real second click), and a new row
    log = pd.concat([old.iloc[:2], old.iloc[:1], pd.DataFrame([fresh])], ignore_index=True)
    write_table(tmp_path / "later", "events", log.to_dict("records"), "parquet")
    reviews = [{"product_id": "p1", "text": "good", "rating": 4, "user_id": RAW_USERS[0]},
               {"product_id": "p2", "text": "meh", "rating": 2, "user_id": RAW_USERS[1]}]
    write_table(tmp_path / "later", "reviews", reviews, "parquet")
    store.ingest(tmp_path / "later")
    assert store.counts() == {"products": 5, "reviews": 4, "events": 11, "users": 3, "judgments": 0}
    key = pseudonymize(RAW_USERS[0], SECRET)
    n = store.query("SELECT n_events FROM users WHERE user_id = ?", [key])["n_events"].item()
    assert n == 5  # three stored + the repeat + the purchase
    assert store.query("SELECT count(*) AS n FROM events WHERE event = 'purchase'")["n"].item() == 1


def test_live_events_always_append(store, tmp_path):
    store.ingest(make_shop(tmp_path / "shop"))
    click = pd.DataFrame([{"user_id": "live", "product_id": "p0", "timestamp": pd.Timestamp("2024-02-01"),
                           "event": "click"}])
    store.append_events(click, pseudonymized=False)
    store.append_events(click, pseudonymized=False)  # the same click twice is two clicks
    assert store.counts()["events"] == 11


def test_appends_are_numbered_in_order_and_a_store_from_before_gets_the_column(tmp_path):
    path = tmp_path / "home" / "store.duckdb"
    with Store(path, secret=SECRET) as s:
        s.ingest(make_shop(tmp_path / "shop"))
        s._con.execute("ALTER TABLE events DROP COLUMN arrival")  # as stores written before 2026-11-23 are
    click = pd.DataFrame([{"user_id": "late", "product_id": "p0", "timestamp": pd.Timestamp("2001-01-01"),
                           "event": "click"}])
    with Store(path, secret=SECRET) as s:
        assert s.to_dataset().meta["events_arrival"] == 0  # every numbered append comes after the old rows
        first, second = s.append_events(click, pseudonymized=False), s.append_events(click, pseudonymized=False)
        assert 0 < first < second
        numbered = s.query("SELECT arrival FROM events WHERE arrival IS NOT NULL ORDER BY arrival")["arrival"]
        assert numbered.tolist() == [first, second]
        assert s.query("SELECT count(*) AS n FROM events WHERE arrival IS NULL")["n"].item() == 9
        ds = s.to_dataset()
        assert ds.meta["events_arrival"] == second and "arrival" not in ds.events.columns


def test_user_first_and_last_seen(store, tmp_path):
    store.ingest(make_shop(tmp_path / "shop"))
    key = pseudonymize(RAW_USERS[0], SECRET)
    row = store.query("SELECT * FROM users WHERE user_id = ?", [key]).iloc[0]
    assert row["first_seen"] == pd.Timestamp("2024-01-01 10:00") and row["last_seen"] == pd.Timestamp("2024-01-03 10:00")
    assert row["n_events"] == 3


def test_delete_and_reinsert_product(store, tmp_path):
    store.ingest(make_shop(tmp_path / "shop"))
    assert store.delete_product("p0") is True
    assert store.delete_product("nope") is False
    assert "p0" not in store.product_ids()
    assert set(store.query("SELECT product_id FROM deleted_products")["product_id"]) == {"p0", "nope"}
    store.ingest(make_shop(tmp_path / "shop"))
    assert "p0" in store.product_ids()
    assert set(store.query("SELECT product_id FROM deleted_products")["product_id"]) == {"nope"}


def test_to_dataset_round_trip(store, tmp_path):
    store.ingest(make_shop(tmp_path / "shop"))
    ds = store.to_dataset()
    assert ds.pseudonymized and len(ds.products) == 5 and len(ds.events) == 9 and len(ds.reviews) == 3
    assert ds.events["timestamp"].is_monotonic_increasing
    other = Store(tmp_path / "h2" / "s.duckdb", secret=SECRET)
    other.write(ds)  # already pseudonymised: not hashed twice
    assert set(other.query("SELECT user_id FROM users")["user_id"]) == set(store.query("SELECT user_id FROM users")["user_id"])
    other.close()


# -- pseudonymisation -------------------------------------------------------------


def _all_bytes(folder: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file())


def test_raw_user_ids_never_reach_disk(tmp_path):
    home = tmp_path / "home"
    shop = make_shop(tmp_path / "shop")
    s = Store(home / "store.duckdb", secret=SECRET)
    s.ingest(shop)
    s.append_events(pd.DataFrame([{"user_id": "dave.raw.id.9120", "product_id": "p1",
                                   "timestamp": pd.Timestamp("2024-02-01"), "event": "purchase"}]), pseudonymized=False)
    assert s.counts()["users"] == 4
    blob_open = _all_bytes(home)  # WAL included while the store is open
    s.close()
    blob = _all_bytes(home) + blob_open
    assert len(blob) > 0
    for raw in (*RAW_USERS, "dave.raw.id.9120"):
        assert raw.encode() not in blob
        assert raw.encode("utf-16-le") not in blob
    for key in (pseudonymize(u, SECRET) for u in RAW_USERS):
        with Store(home / "store.duckdb", secret=SECRET) as s2:
            assert s2.query("SELECT count(*) AS n FROM events WHERE user_id = ?", [key])["n"].item() == 3


def test_pseudonymize_is_keyed_and_stable():
    a = pseudonymize("alice", "k1")
    assert a == pseudonymize("alice", "k1")
    assert a != pseudonymize("alice", "k2")
    assert a != pseudonymize("bob", "k1")
    assert len(a) == 32 and "alice" not in a
    s = pseudonymize_series(pd.Series(["alice", "bob", "alice", 42]), "k1")
    assert s.tolist() == [a, pseudonymize("bob", "k1"), a, pseudonymize("42", "k1")]
    assert pseudonymize_series(pd.Series([], dtype=object), "k1").empty


def test_different_secrets_give_different_keys(tmp_path):
    shop = make_shop(tmp_path / "shop")
    keys = []
    for secret in ("one", "two"):
        with Store(tmp_path / secret / "s.duckdb", secret=secret) as s:
            s.ingest(shop)
            keys.append(set(s.query("SELECT user_id FROM users")["user_id"]))
    assert len(keys[0]) == len(keys[1]) == 3
    assert not keys[0] & keys[1]
    assert keys[0] == {pseudonymize(u, "one") for u in RAW_USERS}


# -- erasure ----------------------------------------------------------------------


def _per_user(store: Store) -> dict[str, tuple[int, int, int]]:
    out = {}
    for u in RAW_USERS:
        k = pseudonymize(u, SECRET)
        out[u] = tuple(
            store.query(f"SELECT count(*) AS n FROM {t} WHERE user_id = ?", [k])["n"].item()
            for t in ("events", "reviews", "users")
        )
    return out


def test_store_forget_user(store, tmp_path):
    store.ingest(make_shop(tmp_path / "shop"))
    before = store.counts()
    n = store.forget_user(pseudonymize(RAW_USERS[1], SECRET))
    assert n == 3 + 1 + 1
    per = _per_user(store)
    assert per[RAW_USERS[1]] == (0, 0, 0)
    assert per[RAW_USERS[0]] == per[RAW_USERS[2]] == (3, 1, 1)
    after = store.counts()
    assert after == {"products": before["products"], "events": 6, "reviews": 2, "users": 2, "judgments": 0}
    assert store.forget_user(pseudonymize("nobody", SECRET)) == 0


def test_engine_forget_user(tmp_path):
    engine = Engine(settings=Settings(secret=SECRET), home=tmp_path / "home")
    engine.ingest(make_shop(tmp_path / "shop"))
    assert engine.forget_user(RAW_USERS[0]) == 5
    per = _per_user(engine.store)
    assert per[RAW_USERS[0]] == (0, 0, 0) and per[RAW_USERS[1]] == (3, 1, 1)
    assert engine.store.counts()["products"] == 5
    assert engine.forget_user(RAW_USERS[0]) == 0
    engine.close()


def test_served_rows_are_batched_off_the_request_path_and_survive_close(tmp_path):
    import time

    from vitrine.data.store import SERVED_BATCH

    path = tmp_path / "s.duckdb"
    s = Store(path, secret="k")
    rec = {"request_id": "r", "query": "q", "user_id": "u", "position": 1, "product_id": "p", "score": 0.5,
           "features": {"bm25_title": 1.5, "src_image": None}}
    s.log_served([rec] * (SERVED_BATCH - 1))
    assert len(s._served) == SERVED_BATCH - 1  # below a batch: queued, no insert
    s.log_served([rec])
    deadline = time.time() + 10
    while s._served and time.time() < deadline:  # the writer thread takes the full batch
        time.sleep(0.01)
    assert not s._served
    s.log_served([{**rec, "request_id": "tail"}])  # a part batch is written at close
    s.close()
    again = Store(path, secret="k")
    got = again.query("SELECT request_id, count(*) AS n FROM served GROUP BY request_id ORDER BY request_id")
    assert got.to_dict("list") == {"request_id": ["r", "tail"], "n": [SERVED_BATCH, 1]}
    assert again.served_features(["tail"])["features"].tolist() == [rec["features"]]
    again.close()


def _ingest_shop_with_judgments(store, folder, grades: list[tuple[str, str, int, str]]):
    shop = make_shop(folder)
    rows = [{"query": q, "product_id": p, "grade": g, "split": sp} for q, p, g, sp in grades]
    write_table(shop, "judgments", rows, "csv")
    return store.ingest(shop)


def test_judgments_are_stored_upserted_and_train_fits_without_test_ones(store, tmp_path):
    grades = [("thing", "p1", 3, "train"), ("thing", "p2", 0, "train"), ("other", "p3", 2, "test")]
    _ingest_shop_with_judgments(store, tmp_path / "shop", grades)
    assert store.counts()["judgments"] == 3
    regrade = [{"query": "thing", "product_id": "p2", "grade": 1, "split": "train"}]
    write_table(tmp_path / "later", "judgments", regrade, "csv")
    store.ingest(tmp_path / "later")  # a new grade for the same pair replaces the old one
    assert store.counts()["judgments"] == 3
    train = store.to_dataset().judgments
    assert sorted(zip(train["product_id"], train["grade"])) == [("p1", 3.0), ("p2", 1.0)]


def test_a_pair_repeated_in_one_judgments_file_is_stored_once_with_its_last_grade(store, tmp_path):
    grades = [("thing", "p1", 1, "train"), ("thing", "p2", 0, "train"), ("thing", "p1", 3, "train")]
    ds = _ingest_shop_with_judgments(store, tmp_path / "shop", grades)
    (w,) = [w for w in ds.warnings if w.file == "judgments.csv"]
    assert (w.count, w.examples) == (1, [1]) and "later row's grade is kept" in str(w)
    assert store.counts()["judgments"] == 2
    train = store.to_dataset().judgments
    assert sorted(zip(train["product_id"], train["grade"])) == [("p1", 3.0), ("p2", 0.0)]


def test_reads_after_counts_and_deletes_leave_the_connection_usable(tmp_path):
    """A one-row read is read to its end: a DuckDB result left open refuses the next
    ``register`` (served-feature writes, served reads) on the same connection."""
    s = Store(tmp_path / "s.duckdb", secret="k")
    rec = {"request_id": "r", "query": "q", "user_id": "u", "position": 1, "product_id": "p", "score": 0.5,
           "features": {"bm25_title": 1.5}}
    for read in (s.counts, lambda: s.delete_product("nope"), lambda: s.forget_user("nobody")):
        read()
        s.log_served([rec])
        s.flush_served()
        read()
        assert len(s.served_features(["r"])) >= 1
    s.close()


def test_served_rows_queued_in_a_store_nobody_closed_are_written_at_exit(tmp_path) -> None:
    import subprocess
    import sys

    import duckdb

    # 1,200 rows: the writer thread has started (batches of 500) and 200 are still queued at exit.
    script = f"""
from vitrine.data.store import Store
s = Store({str(tmp_path / 'store.duckdb')!r}, secret="k")
for i in range(1200):
    s.log_served([{{"request_id": f"r{{i}}", "query": "q", "user_id": "u", "position": 1,
                   "product_id": "p", "score": 1.0, "features": {{"f": 1.0}}}}])
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    con = duckdb.connect(str(served_path(tmp_path / "store.duckdb")), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM served_rows").fetchall()[0][0] == 1200
    finally:
        con.close()


def _served_row(request_id: str, user_id: str = "u") -> dict:
    return {"request_id": request_id, "query": "q", "user_id": user_id, "position": 1, "product_id": "p",
            "score": 0.5, "features": {"bm25_title": 1.5}}


def test_event_appends_never_wait_for_the_served_log(tmp_path) -> None:
    """The served log is a database of its own: its inserts and checkpoints (seconds, every few
    thousand searches) must not hold up an acknowledged event batch."""
    import threading

    import duckdb

    path = tmp_path / "store.duckdb"
    s = Store(path, secret="k")
    s.log_served([_served_row("r1")])
    s.flush_served()
    events = pd.DataFrame([{"user_id": "u", "product_id": "p", "event": "click",
                            "timestamp": pd.Timestamp("2026-01-01")}])
    done = threading.Event()
    with s._flush_lock:  # a served insert (and its checkpoint) in progress
        threading.Thread(target=lambda: (s.append_events(events, pseudonymized=False), done.set())).start()
        assert done.wait(10), "an event append waited for the served log"
    assert s.counts()["events"] == 1 and len(s.served_features(["r1"])) == 1
    s.close()
    with duckdb.connect(str(path), read_only=True) as con:  # nothing served in the store's own file
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'served'").fetchall()[0][0]
    ro = Store(path, secret="k", read_only=True)
    assert ro.served_features(["r1"])["product_id"].tolist() == ["p"]
    ro.close()


def test_an_older_store_keeps_its_served_rows_in_the_new_served_log(tmp_path) -> None:
    import duckdb

    path = tmp_path / "store.duckdb"
    Store(path, secret="k").close()
    served_path(path).unlink()
    with duckdb.connect(str(path)) as con:  # the layout before the served log had its own file
        con.execute(f"CREATE TABLE served ({SERVED_COLUMNS})")
        con.execute("INSERT INTO served VALUES ('old', now()::TIMESTAMP, 'u', 'q', 1, 'p', 0.5, '{\"f\": 1.0}')")
    ro = Store(path, secret="k", read_only=True)  # read as it is, without moving anything
    assert ro.served_features(["old"])["features"].tolist() == [{"f": 1.0}]
    ro.close()
    s = Store(path, secret="k")
    s.log_served([_served_row("new", user_id="v")])
    got = s.query("SELECT request_id FROM served ORDER BY request_id")["request_id"].tolist()
    assert got == ["new", "old"]
    assert s.forget_user("u") == 1 and s.query("SELECT request_id FROM served")["request_id"].tolist() == ["new"]
    s.close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'served'").fetchall()[0][0]
    Store(path, secret="k").close()  # opening again moves nothing twice


def test_the_served_log_keeps_each_list_of_feature_names_once(tmp_path) -> None:
    import duckdb

    path = tmp_path / "store.duckdb"
    s = Store(path, secret="k")
    page = {"bm25_title": 1.5, "src_image": float("nan"), "aff_brand": None, "ctr": float("inf")}
    for i in range(3):
        s.log_served([{**_served_row(f"r{i}"), "position": p, "features": page} for p in (1, 2)])
    s.log_served([{**_served_row("other"), "features": {"bm25_title": 2.0}}])
    missing = {"bm25_title": 1.5, "src_image": None, "aff_brand": None, "ctr": None}
    assert s.served_features(["r1"])["features"].tolist() == [missing, missing]
    as_json = s.query("SELECT features FROM served WHERE request_id = 'other'")["features"].iat[0]
    assert json.loads(as_json) == {"bm25_title": 2.0}  # the ``served`` view still reads as JSON
    s.close()
    with duckdb.connect(str(served_path(path)), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM served_rows").fetchall()[0][0] == 7
        assert con.execute("SELECT count(*) FROM served_names").fetchall()[0][0] == 2


def test_a_served_log_of_json_rows_is_converted_in_place(tmp_path) -> None:
    import duckdb

    path = tmp_path / "store.duckdb"
    Store(path, secret="k").close()
    with duckdb.connect(str(served_path(path))) as con:  # the log's own file, features as JSON
        con.execute("DROP TABLE served_rows")
        con.execute("DROP TABLE served_names")
        con.execute(f"CREATE TABLE served ({SERVED_COLUMNS})")
        con.execute("INSERT INTO served VALUES ('old', now()::TIMESTAMP, 'u', 'q', 1, 'p', 0.5, "
                    "'{\"f\": 1.0, \"g\": null}')")
    ro = Store(path, secret="k", read_only=True)
    assert ro.served_features(["old"])["features"].tolist() == [{"f": 1.0, "g": None}]
    ro.close()
    s = Store(path, secret="k")
    assert s.served_features(["old"])["features"].tolist() == [{"f": 1.0, "g": None}]
    s.close()
    with duckdb.connect(str(served_path(path)), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"served_rows", "served_names"}


def test_product_changes_list_live_upserts_and_deletes_after_a_time(store, tmp_path):
    from vitrine.data.dataset import coerce_table
    from vitrine.data.schema import PRODUCTS
    from vitrine.data.store import utc_now

    store.ingest(make_shop(tmp_path / "shop"))  # a folder ingest: not a live change
    since = utc_now()
    assert store.product_changes(since)[0].empty and store.product_changes(since)[1] == []
    live, _ = coerce_table(pd.DataFrame([{"product_id": "p1", "title": "thing one, renamed"},
                                         {"product_id": "p9", "title": "new thing"}]), PRODUCTS, "products")
    store.upsert_products(live)
    for pid in ("p2", "p9", "p3"):
        store.delete_product(pid)
    ups, gone = store.product_changes(since)
    assert ups["product_id"].tolist() == ["p1"] and ups["title"].tolist() == ["thing one, renamed"]
    assert gone == ["p2", "p3", "p9"]  # p9: added, then deleted
    store.ingest(make_shop(tmp_path / "shop"))  # ingested again: p2 and p3 are back in the store
    assert store.product_changes(since)[1] == ["p9"]
    assert store.product_changes(utc_now())[1] == []


def test_an_old_store_opened_read_only_still_reads_its_events(tmp_path):
    path = tmp_path / "home" / "store.duckdb"
    with Store(path, secret=SECRET) as s:
        s.ingest(make_shop(tmp_path / "shop"))
        s._con.execute("ALTER TABLE events DROP COLUMN arrival")
    ro = Store(path, secret=SECRET, read_only=True)
    ds = ro.to_dataset()
    assert len(ds.events) == 9 and ds.meta["events_arrival"] == 0
    ro.close()


def test_product_changes_after_a_number_of_the_log(store, tmp_path):
    store.ingest(make_shop(tmp_path / "shop"))
    assert store.product_log_mark() == 0 and store.to_dataset().meta["product_log_mark"] == 0
    store.upsert_products(store.query("SELECT * FROM products WHERE product_id = 'p1'"))
    first = store.product_log_mark()
    store.delete_product("p2")
    assert store.product_log_mark() > first
    assert store.to_dataset().meta["product_log_mark"] == store.product_log_mark()
    ups, gone = store.product_changes(after=0)
    assert ups["product_id"].tolist() == ["p1"] and gone == ["p2"]
    ups, gone = store.product_changes(after=first)
    assert ups.empty and gone == ["p2"]
    assert store.product_changes(after=store.product_log_mark())[1] == []
