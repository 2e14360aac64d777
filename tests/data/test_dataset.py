"""Readers and validation of a dataset folder: every kind of bad input, in every format.

Each bad input must give a message that names the file, the row and the
column, and nothing may be stored; valid edge cases must load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitrine.data.dataset import coerce_table, load_dataset, read_file
from vitrine.data.schema import PRODUCTS
from vitrine.data.store import Store
from vitrine.errors import DataValidationError, VitrineError

FORMATS = ("csv", "jsonl", "parquet")


def write_table(folder: Path, name: str, rows: list[dict], fmt: str) -> Path:
    """Write ``rows`` as ``folder/name.fmt`` (lists become "a|b" in CSV)."""
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    path = folder / f"{name}.{fmt}"
    if fmt == "csv":
        df = df.map(lambda v: "|".join(v) if isinstance(v, list) else v)
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        with path.open("w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    else:
        df.to_parquet(path, index=False)
    return path


GOOD_PRODUCTS = [
    {"product_id": "p1", "title": "red shoe", "price": 10.0, "rating": 4.5},
    {"product_id": "p2", "title": "blue hat", "price": 0.0, "rating": 0.0},
    {"product_id": "p3", "title": "green bag", "price": 99.5, "rating": 5.0},
]
GOOD_EVENTS = [
    {"user_id": "shopper-a", "product_id": "p1", "timestamp": "2024-01-01T10:00:00", "event": "click"},
    {"user_id": "shopper-a", "product_id": "p2", "timestamp": "2024-01-01T10:01:00", "event": "purchase"},
    {"user_id": "shopper-b", "product_id": "p3", "timestamp": "2024-01-02T09:00:00", "event": "impression"},
]


@pytest.fixture
def store(tmp_path: Path):
    """A store already holding a small good dataset, to check bad ingests change nothing."""
    good = tmp_path / "good"
    write_table(good, "products", GOOD_PRODUCTS, "parquet")
    write_table(good, "events", GOOD_EVENTS, "parquet")
    s = Store(tmp_path / "home" / "store.duckdb", secret="test-secret")
    s.ingest(good)
    yield s
    s.close()


def assert_refused(store: Store, folder: Path, file: str, row: int | None, column: str | None, text: str):
    """Ingest must raise one problem located as given, and leave the store as it was."""
    before = store.counts()
    with pytest.raises(DataValidationError) as info:
        store.ingest(folder)
    probs = info.value.problems
    match = [
        p for p in probs
        if p.file == file and p.row == row and (column is None or p.column == column) and text in p.message
    ]
    assert match, f"no problem at {file} row {row} column {column} with {text!r}; got {[str(p) for p in probs]}"
    msg = str(info.value)
    assert file in msg and text in msg
    if row is not None:
        assert f"row {row}" in msg
    if column is not None:
        assert f"'{column}'" in msg
    assert store.counts() == before
    return info.value


# -- bad input ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicate_product_ids(store, tmp_path, fmt):
    rows = GOOD_PRODUCTS + [{"product_id": "p4", "title": "x"}, {"product_id": "p2", "title": "again"}]
    write_table(tmp_path / "bad", "products", rows, fmt)
    err = assert_refused(store, tmp_path / "bad", f"products.{fmt}", 5, "product_id", "duplicate product id 'p2'")
    assert "first at row 2" in str(err)


@pytest.mark.parametrize("fmt", FORMATS)
def test_negative_price(store, tmp_path, fmt):
    rows = [dict(r) for r in GOOD_PRODUCTS]
    rows[1]["price"] = -3.0
    write_table(tmp_path / "bad", "products", rows, fmt)
    assert_refused(store, tmp_path / "bad", f"products.{fmt}", 2, "price", "expected >= 0, got -3")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rating", [5.5, -0.5])
def test_rating_outside_0_5(store, tmp_path, fmt, rating):
    rows = [dict(r) for r in GOOD_PRODUCTS]
    rows[2]["rating"] = rating
    write_table(tmp_path / "bad", "products", rows, fmt)
    want = "expected <= 5" if rating > 5 else "expected >= 0"
    assert_refused(store, tmp_path / "bad", f"products.{fmt}", 3, "rating", want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_review_rating_outside_0_5(store, tmp_path, fmt):
    reviews = [{"product_id": "p1", "text": "fine", "rating": 4.0}, {"product_id": "p2", "text": "meh", "rating": 7.0}]
    write_table(tmp_path / "bad", "reviews", reviews, fmt)
    assert_refused(store, tmp_path / "bad", f"reviews.{fmt}", 2, "rating", "expected <= 5, got 7")


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_event_type(store, tmp_path, fmt):
    events = [dict(e) for e in GOOD_EVENTS]
    events[1]["event"] = "wishlist"
    write_table(tmp_path / "bad", "events", events, fmt)
    err = assert_refused(store, tmp_path / "bad", f"events.{fmt}", 2, "event", "unknown event type 'wishlist'")
    assert "add_to_cart" in str(err)  # the message lists what is allowed


@pytest.mark.parametrize("fmt", FORMATS)
def test_unparseable_timestamp(store, tmp_path, fmt):
    events = [dict(e) for e in GOOD_EVENTS]
    events[2]["timestamp"] = "next tuesday"
    write_table(tmp_path / "bad", "events", events, fmt)
    assert_refused(store, tmp_path / "bad", f"events.{fmt}", 3, "timestamp", "cannot parse timestamp 'next tuesday'")


def test_epoch_timestamp_out_of_range(store, tmp_path):
    events = [dict(e) for e in GOOD_EVENTS]
    for i, e in enumerate(events):
        e["timestamp"] = 1_700_000_000 + i
    events[0]["timestamp"] = 10**19
    write_table(tmp_path / "bad", "events", events, "jsonl")
    assert_refused(store, tmp_path / "bad", "events.jsonl", 1, "timestamp", "cannot parse timestamp")


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_required_column(store, tmp_path, fmt):
    events = [{k: v for k, v in e.items() if k != "event"} for e in GOOD_EVENTS]
    write_table(tmp_path / "bad", "events", events, fmt)
    err = assert_refused(store, tmp_path / "bad", f"events.{fmt}", None, "event", "required column(s) missing")
    assert err.problems[0].row is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_product_id_column(store, tmp_path, fmt):
    write_table(tmp_path / "bad", "products", [{"title": "a"}, {"title": "b"}], fmt)
    assert_refused(store, tmp_path / "bad", f"products.{fmt}", None, "product_id", "required column(s) missing")


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_required_value(store, tmp_path, fmt):
    rows = [{"product_id": "p1", "title": "a"}, {"product_id": None, "title": "b"}]
    if fmt == "jsonl":
        rows[1]["product_id"] = "  "  # blank text is as empty as a null
    write_table(tmp_path / "bad", "products", rows, fmt)
    assert_refused(store, tmp_path / "bad", f"products.{fmt}", 2, "product_id", "required value is empty")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "column, value, text",
    [
        ("price", "cheap", "expected a number, got 'cheap'"),
        ("in_stock", "maybe", "expected a boolean"),
        ("created_at", "not a date", "cannot parse timestamp"),
    ],
)
def test_wrong_types_in_products(store, tmp_path, fmt, column, value, text):
    rows = [dict(r) for r in GOOD_PRODUCTS]
    for r in rows:
        r[column] = {"price": "1.5", "in_stock": "true", "created_at": "2023-05-01"}[column]
    rows[1][column] = value
    write_table(tmp_path / "bad", "products", rows, fmt)
    assert_refused(store, tmp_path / "bad", f"products.{fmt}", 2, column, text)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value, text", [("first", "expected a number"), (1.5, "whole number"), (0, "expected >= 1")])
def test_wrong_position(store, tmp_path, fmt, value, text):
    events = [dict(e, position=i + 1) for i, e in enumerate(GOOD_EVENTS)]
    events[0]["position"] = value
    if fmt == "parquet" and isinstance(value, str):
        for e in events:
            e["position"] = str(e["position"])
    write_table(tmp_path / "bad", "events", events, fmt)
    assert_refused(store, tmp_path / "bad", f"events.{fmt}", 1, "position", text)


def test_every_problem_reported_at_once(store, tmp_path):
    rows = [
        {"product_id": "p1", "price": "-1", "rating": "9"},
        {"product_id": "p1", "price": "x", "rating": "2"},
    ]
    write_table(tmp_path / "bad", "products", rows, "csv")
    events = [dict(e) for e in GOOD_EVENTS]
    events[0]["event"] = "like"
    write_table(tmp_path / "bad", "events", events, "csv")
    before = store.counts()
    with pytest.raises(DataValidationError) as info:
        store.ingest(tmp_path / "bad")
    where = {(p.file, p.row, p.column) for p in info.value.problems}
    assert {
        ("products.csv", 1, "price"),
        ("products.csv", 1, "rating"),
        ("products.csv", 2, "price"),
        ("products.csv", 2, "product_id"),
        ("events.csv", 1, "event"),
    } <= where
    assert store.counts() == before


def test_many_problems_are_capped_but_counted(tmp_path):
    rows = [{"product_id": f"p{i}", "price": -1.0} for i in range(120)]
    write_table(tmp_path / "bad", "products", rows, "parquet")
    with pytest.raises(DataValidationError) as info:
        load_dataset(tmp_path / "bad")
    msg = str(info.value)
    assert "70 more rows like the above" in " ".join(p.message for p in info.value.problems)
    assert "more problems" in msg  # the message itself stays short


@pytest.mark.parametrize("fmt", FORMATS)
def test_table_given_twice(store, tmp_path, fmt):
    other = "csv" if fmt != "csv" else "jsonl"
    write_table(tmp_path / "bad", "products", GOOD_PRODUCTS, fmt)
    write_table(tmp_path / "bad", "products", GOOD_PRODUCTS, other)
    before = store.counts()
    with pytest.raises(VitrineError, match="table 'products' is given twice") as info:
        store.ingest(tmp_path / "bad")
    assert f"products.{fmt}" in str(info.value) and f"products.{other}" in str(info.value)
    assert store.counts() == before


def test_unreadable_jsonl_names_the_line(store, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "products.jsonl").write_text('{"product_id": "p1"}\n{"product_id": "p2"\n{"product_id": "p3"}\n')
    assert_refused(store, bad, "products.jsonl", 2, None, "cannot be read")


def test_unreadable_parquet(store, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "products.parquet").write_bytes(b"this is not parquet")
    assert_refused(store, bad, "products.parquet", None, None, "cannot be read")


def test_not_a_folder_and_empty_folder(tmp_path):
    with pytest.raises(VitrineError, match="dataset folder not found"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VitrineError, match="no tables found"):
        load_dataset(tmp_path / "empty")


def test_invalid_dataset_json(tmp_path):
    write_table(tmp_path / "d", "products", GOOD_PRODUCTS, "csv")
    (tmp_path / "d" / "dataset.json").write_text('{"name": "x",\n "oops"}')
    with pytest.raises(DataValidationError, match="dataset.json row 2: invalid JSON"):
        load_dataset(tmp_path / "d")


# -- counted warnings -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_events_naming_unknown_products_are_counted_and_skipped(store, tmp_path, fmt):
    events = [dict(e) for e in GOOD_EVENTS]
    events += [
        {"user_id": "shopper-c", "product_id": "ghost-1", "timestamp": "2024-01-03", "event": "click"},
        {"user_id": "shopper-c", "product_id": "p1", "timestamp": "2024-01-03", "event": "click"},
        {"user_id": "shopper-c", "product_id": "ghost-2", "timestamp": "2024-01-03", "event": "purchase"},
    ]
    write_table(tmp_path / "ev", "events", events, fmt)
    before = store.counts()
    ds = store.ingest(tmp_path / "ev")  # products known from the store
    (w,) = ds.warnings
    assert (w.file, w.column, w.count, w.examples) == (f"events.{fmt}", "product_id", 2, [4, 6])
    assert "not in the catalog; rows skipped" in str(w)
    assert store.counts()["events"] == before["events"] + 1  # the fixture stored GOOD_EVENTS already
    assert len(ds.events) == 4 and set(ds.events["product_id"]) == {"p1", "p2", "p3"}


def test_reviews_naming_unknown_products_are_counted(tmp_path):
    write_table(tmp_path / "d", "products", GOOD_PRODUCTS, "csv")
    write_table(tmp_path / "d", "reviews", [{"product_id": "p1", "text": "ok"}, {"product_id": "zz", "text": "?"}], "csv")
    ds = load_dataset(tmp_path / "d")
    (w,) = ds.warnings
    assert (w.file, w.count, w.examples) == ("reviews.csv", 1, [2])
    assert list(ds.reviews["product_id"]) == ["p1"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_image_files_are_counted_and_cleared(tmp_path, fmt):
    d = tmp_path / "d"
    (d / "img").mkdir(parents=True)
    (d / "img" / "a.png").write_bytes(b"\x89PNG")
    (d / "img" / "sub").mkdir()
    rows = [
        {"product_id": "p1", "image": "img/a.png"},
        {"product_id": "p2", "image": "img/missing.png"},
        {"product_id": "p3", "image": "https://cdn.example.com/p3.jpg"},  # URLs are not checked
        {"product_id": "p4", "image": None},
        {"product_id": "p5", "image": str(d / "img" / "a.png")},  # absolute path
        {"product_id": "p6", "image": "img/sub"},  # a folder is not an image file
        {"product_id": "p7", "image": "nodir/x.png"},
    ]
    write_table(d, "products", rows, fmt)
    ds = load_dataset(d)
    (w,) = ds.warnings
    assert (w.file, w.column, w.count, w.examples) == (f"products.{fmt}", "image", 3, [2, 6, 7])
    img = ds.products["image"].tolist()
    assert img[0] == "img/a.png" and img[2].startswith("https://") and img[4].endswith("a.png")
    assert pd.isna(img[1]) and pd.isna(img[5]) and pd.isna(img[6])
    assert len(ds.products) == 7  # products are kept, only the image is cleared
    assert not load_dataset(d, check_images=False).warnings


# -- valid edge cases ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_products_with_only_ids_and_tags(tmp_path, fmt):
    rows = [{"product_id": "p1", "tags": ["red", " wool "]}, {"product_id": "p2", "tags": ["blue"]}]
    if fmt == "csv":
        rows = [{"product_id": "p1", "tags": "red| wool |"}, {"product_id": "p2", "tags": "blue"}]
    write_table(tmp_path / "d", "products", rows, fmt)
    ds = load_dataset(tmp_path / "d")
    assert ds.products["tags"].tolist() == ["red|wool", "blue"]
    assert list(ds.products.columns) == PRODUCTS.names  # optional columns filled with nulls
    assert ds.products["title"].isna().all() and ds.products["price"].isna().all()
    assert ds.events is None and not ds.warnings


def test_products_with_images_only(tmp_path):
    d = tmp_path / "d"
    (d / "images").mkdir(parents=True)
    for i in range(3):
        (d / "images" / f"{i}.png").write_bytes(b"\x89PNG")
    write_table(d, "products", [{"product_id": f"p{i}", "image": f"images/{i}.png"} for i in range(3)], "jsonl")
    ds = load_dataset(d)
    assert not ds.warnings and ds.products["image"].notna().all()
    with Store(tmp_path / "h" / "s.duckdb", secret="k") as s:
        s.ingest(d)
        stored = s.query("SELECT product_id, image FROM products ORDER BY product_id")
    assert stored["image"].map(lambda p: Path(p).is_file()).all()  # stored absolute, still resolvable


def test_events_only_folder(tmp_path):
    write_table(tmp_path / "d", "events", GOOD_EVENTS, "csv")
    ds = load_dataset(tmp_path / "d")
    assert ds.products is None and len(ds.events) == 3


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
@pytest.mark.parametrize("scale, unit", [(1, "s"), (1000, "ms")])
def test_epoch_int_timestamps(tmp_path, fmt, scale, unit):
    events = [dict(e, timestamp=(1_700_000_000 + 60 * i) * scale) for i, e in enumerate(GOOD_EVENTS)]
    write_table(tmp_path / "d", "events", events, fmt)
    ts = load_dataset(tmp_path / "d").events["timestamp"]
    assert ts.dtype == "datetime64[ns]"
    assert ts.iloc[0] == pd.Timestamp(1_700_000_000, unit="s")
    assert (ts.diff().dropna() == pd.Timedelta(minutes=1)).all()


def test_timezones_become_utc(tmp_path):
    events = [dict(e) for e in GOOD_EVENTS]
    events[0]["timestamp"] = "2024-01-01T10:00:00+02:00"
    events[1]["timestamp"] = "2024-01-01T08:00:00Z"
    write_table(tmp_path / "d", "events", events, "csv")
    ts = load_dataset(tmp_path / "d").events["timestamp"]
    assert ts.iloc[0] == ts.iloc[1] == pd.Timestamp("2024-01-01 08:00:00")
    df = pd.DataFrame(GOOD_EVENTS)
    df["timestamp"] = pd.to_datetime(["2024-01-01T10:00:00"] * 3).tz_localize("Europe/Paris")
    write_table(tmp_path / "p", "events", df.to_dict("records"), "parquet")
    ts = load_dataset(tmp_path / "p").events["timestamp"]
    assert ts.iloc[0] == pd.Timestamp("2024-01-01 09:00:00")


def test_numeric_ids_read_as_text(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "products.jsonl").write_text('{"product_id": 7, "price": 1}\n{"product_id": 12}\n')
    (tmp_path / "d" / "events.jsonl").write_text(
        '{"user_id": 42, "product_id": 7, "timestamp": 1700000000, "event": "click"}\n'
        '{"user_id": 43, "product_id": 12, "timestamp": 1700000001, "event": "click", "position": 2}\n'
    )
    ds = load_dataset(tmp_path / "d")
    assert ds.products["product_id"].tolist() == ["7", "12"]
    assert ds.events["user_id"].tolist() == ["42", "43"]
    assert ds.events["product_id"].tolist() == ["7", "12"] and not ds.warnings


def test_booleans_and_numbers_from_text(tmp_path):
    rows = [
        {"product_id": "a", "in_stock": "yes", "price": "1.5", "sales": "3"},
        {"product_id": "b", "in_stock": "FALSE", "price": "0", "sales": ""},
        {"product_id": "c", "in_stock": "", "price": "", "sales": "0"},
    ]
    write_table(tmp_path / "d", "products", rows, "csv")
    p = load_dataset(tmp_path / "d").products
    assert p["in_stock"].tolist() == [True, False, None]
    assert p["product_id"].dtype == "str"
    assert p["price"].tolist()[:2] == [1.5, 0.0] and np.isnan(p["price"].iloc[2])


def test_nullable_boolean_column_with_missing_values(tmp_path):
    """pandas' nullable boolean (what DuckDB and many Parquet writers give) has pd.NA, not None or NaN."""
    folder = tmp_path / "d"
    folder.mkdir()
    pd.DataFrame({"product_id": ["a", "b", "c"],
                  "in_stock": pd.array([True, None, False], dtype="boolean")}).to_parquet(folder / "products.parquet")
    p = load_dataset(folder).products
    assert p["in_stock"].tolist() == [True, None, False]


def test_judgments_and_candidates(tmp_path):
    write_table(tmp_path / "d", "products", GOOD_PRODUCTS, "csv")
    write_table(tmp_path / "d", "judgments", [
        {"query": "shoe", "product_id": "p1", "grade": 3, "split": "train"},
        {"query": "shoe", "product_id": "p2", "grade": 0, "split": "test"},
    ], "csv")
    write_table(tmp_path / "d", "candidates", [{"user_id": "u", "product_id": "p3"}], "csv")
    ds = load_dataset(tmp_path / "d")
    assert len(ds.judgments) == 2 and len(ds.candidates) == 1
    write_table(tmp_path / "b", "judgments", [{"query": "q", "product_id": "p1", "grade": 4, "split": "dev"}], "csv")
    with pytest.raises(DataValidationError) as info:
        load_dataset(tmp_path / "b")
    where = {(p.row, p.column) for p in info.value.problems}
    assert where == {(1, "grade"), (1, "split")}


def test_coerce_table_direct_and_read_file_formats(tmp_path):
    df, problems = coerce_table(pd.DataFrame({"product_id": ["a", "b"], "rating": [1, 6]}), PRODUCTS, "api")
    assert [str(p) for p in problems] == ["api row 2, field 'rating': expected <= 5, got 6"]
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(VitrineError, match="unknown table format"):
        read_file(tmp_path / "x.txt")
