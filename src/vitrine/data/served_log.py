"""Layout of the served-feature log (one row per shown result, its features as served).

A row keeps its feature values as a FLOAT list and the id of its list of
feature names, stored once in ``served_names``: a ranker serves the same
hundred-odd names on every page, and as JSON objects they were more than
half of the log (1.0 kB a row on disk; 0.42 kB now). Missing or
non-finite values are NULL.

Two views on the store's connection read it: ``served_rows`` (names and
values as lists) for training, and ``served`` (features as one JSON object)
for people querying the log by hand. Older stores kept ``served`` as a table
with a JSON column; :func:`copy_json_rows` converts those rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

DB = "vitrine_served"  # the served log's database, as attached
ROWS = "served_rows"
NAMES = "served_names"
ROW_COLUMNS = ("request_id VARCHAR, logged_at TIMESTAMP, user_id VARCHAR, query VARCHAR, position INTEGER, "
               "product_id VARCHAR, score DOUBLE")
KEYS = "request_id, logged_at, user_id, query, position, product_id, score"
#: Columns of the older layout's ``served`` table, and of the ``served`` view.
JSON_COLUMNS = f"{ROW_COLUMNS}, features JSON"
SEP = "\x1f"  # joins a names list before hashing; cannot occur in a feature name
# An older layout's JSON ``features`` read as the new columns (keys and values in the same order).
JSON_NAMES = "CAST(json_keys(features) AS VARCHAR[])"
JSON_VALUES = "CAST(json_extract(features, '$.*') AS FLOAT[])"


def create_sql() -> list[str]:
    return [f"CREATE TABLE IF NOT EXISTS {DB}.{ROWS} ({ROW_COLUMNS}, names_id VARCHAR, features FLOAT[])",
            f"CREATE TABLE IF NOT EXISTS {DB}.{NAMES} (names_id VARCHAR PRIMARY KEY, names VARCHAR[])"]


def names_id(names: tuple[str, ...]) -> str:
    return hashlib.md5(SEP.join(names).encode()).hexdigest()[:16]


def rows_from_log() -> str:
    return (f"SELECT {', '.join('s.' + k for k in KEYS.split(', '))}, n.names, s.features "
            f"FROM {DB}.{ROWS} s JOIN {DB}.{NAMES} n USING (names_id)")


def rows_from_json(table: str) -> str:
    """The older layout read as the new one (for a read-only open that cannot convert it)."""
    return f"SELECT {KEYS}, {JSON_NAMES} AS names, {JSON_VALUES} AS features FROM {table}"


def view_sql(rows_select: str) -> list[str]:
    return [f"CREATE OR REPLACE TEMP VIEW {ROWS} AS {rows_select}",
            f"CREATE OR REPLACE TEMP VIEW served AS SELECT {KEYS}, "
            f"CAST(to_json(map_from_entries(list_zip(names, features))) AS JSON) AS features FROM {ROWS}"]


def copy_json_rows(table: str) -> list[str]:
    """Statements that append an older JSON-layout table's rows to the log."""
    nid = f"substr(md5(array_to_string({JSON_NAMES}, chr(31))), 1, 16)"  # as names_id() computes it
    return [f"INSERT OR IGNORE INTO {DB}.{NAMES} SELECT DISTINCT {nid}, {JSON_NAMES} FROM {table}",
            f"INSERT INTO {DB}.{ROWS} SELECT {KEYS}, {nid}, {JSON_VALUES} FROM {table}"]


def encode(features: Mapping[str, float | None],
           known: dict[tuple[str, ...], str]) -> tuple[tuple[str, ...], str, np.ndarray]:
    """(names, names id, float32 values with NaN for missing) of one row; ``known`` caches the ids."""
    names = tuple(features)
    nid = known.get(names)
    if nid is None:
        nid = known[names] = names_id(names)
    values = np.array(list(features.values()), dtype=np.float32)  # None becomes NaN
    return names, nid, values


def batch(records: list[dict]) -> pa.Table:
    """Queued rows as one Arrow table: DuckDB reads the values without a Python object per row
    (a pandas column of arrays took three times as long to insert, holding the GIL)."""
    values = [r["features"] for r in records]
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int32)
    flat = np.concatenate(values) if values else np.zeros(0, np.float32)
    cols = {k: pa.array([r[k] for r in records]) for k in KEYS.split(", ")}
    cols["names_id"] = pa.array([r["names_id"] for r in records], pa.string())
    cols["features"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32()))
    return pa.table(cols)


def insert_sql(frame: str) -> str:
    """Append a registered frame (row columns, names_id, features as float arrays) to the log."""
    return (f"INSERT INTO {DB}.{ROWS} SELECT {KEYS}, names_id, "
            f"list_transform(features, lambda x: CASE WHEN isfinite(x) THEN x END) FROM {frame}")


def as_dicts(df: pd.DataFrame) -> list[dict[str, float | None]]:
    """Each row's features as {name: value}, None where missing."""
    out = []
    for names, values in zip(df["names"], df["features"], strict=True):
        # DuckDB hands a list with NULLs to pandas as a masked array
        arr = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan).tolist()
        out.append({n: (None if v != v else v) for n, v in zip(list(names), arr, strict=True)})
    return out
