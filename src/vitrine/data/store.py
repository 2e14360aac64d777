"""The embedded store: a DuckDB file with products, reviews, events, users and judgments,
and beside it a second one with the served-feature log.

The served log (layout in :mod:`vitrine.data.served_log`) is its own
database, attached to the same connection, because it is by far the most
written table: about 4 kB a search. DuckDB checkpoints
a database when its write-ahead log passes 16 MB, and a commit waits for a
checkpoint of its own database; with the log in the store, every few thousand
searches an acknowledged event batch waited seconds for one (8.3 s, and a
whole ingest run at 2,100 events/s instead of 15,000).

User ids are pseudonymised with a keyed hash before they reach the file, so
raw shopper ids never land on disk. Ingest runs in one transaction: a bad
file raises before anything is written, and a failure mid-write rolls back.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import threading
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from vitrine.data import served_log
from vitrine.data.dataset import Dataset, coerce_table, load_dataset
from vitrine.data.schema import EVENTS, JUDGMENTS, PRODUCTS, REVIEWS, TableSpec
from vitrine.errors import DataValidationError

SERVED_BATCH = 500  # served-feature rows queued before one insert
SERVED_DB = served_log.DB
SERVED_COLUMNS = served_log.JSON_COLUMNS  # the ``served`` view's columns (and the older layout's table)
_SQL_TYPES = {"str": "VARCHAR", "tags": "VARCHAR", "float": "DOUBLE", "int": "BIGINT",
              "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}


def pseudonymize(user_id: str, secret: str) -> str:
    """Keyed hash of a raw user id (HMAC-SHA256, 128 bits, hex)."""
    return hmac.new(secret.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()[:32]


def pseudonymize_series(ids: pd.Series, secret: str) -> pd.Series:
    """Vectorised over unique ids: logs repeat each shopper many times."""
    codes, uniques = pd.factorize(ids.astype(str))
    hashed = np.array([pseudonymize(u, secret) for u in uniques], dtype=object)
    out = hashed[codes] if len(uniques) else np.array([], dtype=object)
    return pd.Series(out, index=ids.index, dtype="object")


def _ddl(spec: TableSpec, key: str | None = None, extra: str = "") -> str:
    cols = [f'"{c.name}" {_SQL_TYPES[c.kind]}' for c in spec.columns]
    if key:
        cols.append(f'PRIMARY KEY ("{key}")')
    return f"CREATE TABLE IF NOT EXISTS {spec.name} ({', '.join(cols)}{extra})"


def served_path(store_path: str | Path) -> Path:
    """The served log's file beside a store file: ``store.duckdb`` -> ``store.served.duckdb``."""
    p = Path(store_path)
    return p.with_name(f"{p.stem}.served{p.suffix}")


def _finish_served(ref: weakref.ref) -> None:
    """At interpreter exit, for a store nobody closed: write the queued served
    rows and end the writer thread. A writer thread still alive at teardown
    aborted the process ("FATAL: exception not rethrown", exit 134) and lost
    the queue."""
    store = ref()
    if store is None or store._closing:
        return
    store._stop_writer()
    with store._lock:
        store.flush_served()


class Store:
    """DuckDB-backed store for a vitrine home.

    Parameters
    ----------
    path : file of the DuckDB database (created if missing).
    secret : key of the user-id pseudonymisation.
    """

    def __init__(self, path: str | Path, secret: str, read_only: bool = False) -> None:
        self.path = Path(path)
        self.secret = secret
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(self.path), read_only=read_only)
        self._lock = threading.RLock()
        self._served: list[dict] = []  # served-feature records not yet written (see log_served)
        self._served_lock = threading.Lock()  # guards _served only, so a search never waits on an insert
        # Serialises served inserts, which take neither the store's lock nor its connection:
        # an event append never waits for the log's insert or checkpoint.
        self._flush_lock = threading.Lock()
        self._served_con: duckdb.DuckDBPyConnection | None = None
        self._names_ids: dict[tuple[str, ...], str] = {}  # feature-name lists seen -> their ids
        self._names_written: set[str] = set()
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()
        self._closing = False
        self._attach_served(read_only)
        if not read_only:
            self._create()

    def _create(self) -> None:
        with self._lock:
            self._con.execute(_ddl(PRODUCTS, key="product_id"))
            self._con.execute(_ddl(REVIEWS))
            self._con.execute(_ddl(EVENTS))
            # Which append stored each event, in order: a loaded model replays the appends after
            # the last one its profiles hold, whatever the events' own (client-set) timestamps say.
            self._con.execute("CREATE SEQUENCE IF NOT EXISTS event_arrival_seq")
            self._con.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS arrival BIGINT")
            self._con.execute(_ddl(JUDGMENTS))
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS users (user_id VARCHAR PRIMARY KEY, "
                "first_seen TIMESTAMP, last_seen TIMESTAMP, n_events BIGINT)"
            )
            self._con.execute("CREATE TABLE IF NOT EXISTS deleted_products (product_id VARCHAR PRIMARY KEY)")
            # Live catalog changes, in order: a model fitted before them catches up when loaded.
            self._con.execute("CREATE SEQUENCE IF NOT EXISTS product_log_seq")
            self._con.execute("CREATE TABLE IF NOT EXISTS product_log "
                              "(seq BIGINT, changed_at TIMESTAMP, product_id VARCHAR, op VARCHAR)")
            # Features exactly as served, per shown result, for training on what was served.
            for sql in served_log.create_sql():
                self._con.execute(sql)
            self._move_served_log()
            self._served_views(served_log.rows_from_log())

    def _attach_served(self, read_only: bool) -> None:
        """Attach the served log's database (see the module docstring). A read-only store reads
        whichever layout it finds, as it is; without a log at all, an empty one."""
        path = served_path(self.path)
        if not read_only or path.exists():
            quoted = str(path).replace("'", "''")
            # IF NOT EXISTS: stores on one file in one process share one DuckDB instance, attachments included.
            self._con.execute(f"ATTACH IF NOT EXISTS '{quoted}' AS {SERVED_DB}" + (" (READ_ONLY)" if read_only else ""))
        if not read_only:
            return
        if self._has_table(SERVED_DB, served_log.ROWS):
            self._served_views(served_log.rows_from_log())
        elif self._has_table(SERVED_DB, "served"):
            self._served_views(served_log.rows_from_json(f"{SERVED_DB}.served"), json_table=f"{SERVED_DB}.served")
        elif self._has_own_served():
            self._served_views(served_log.rows_from_json(self._own_served()), json_table=self._own_served())
        else:
            self._con.execute(f"CREATE TEMP TABLE _no_served ({served_log.ROW_COLUMNS}, names VARCHAR[], "
                              "features FLOAT[])")
            self._served_views("SELECT * FROM _no_served")

    def _served_views(self, rows_select: str, json_table: str | None = None) -> None:
        views = served_log.view_sql(rows_select)
        if json_table is not None:  # a JSON-layout table is its own ``served``
            views[1] = f"CREATE OR REPLACE TEMP VIEW served AS SELECT * FROM {json_table}"
        for sql in views:
            self._con.execute(sql)

    def _has_table(self, database: str, table: str) -> bool:
        return bool(_scalar(self._con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? "
                                       "AND schema_name = 'main' AND table_name = ?", [database, table]))

    def _database(self) -> str:
        return _scalar(self._con, "SELECT current_database()")

    def _own_served(self) -> str:
        """The older layout's table, fully named: the TEMP view ``served`` is ``temp.main.served``."""
        db = self._database().replace('"', '""')
        return f'"{db}".main.served'

    def _has_own_served(self) -> bool:
        return self._has_table(self._database(), "served")

    def _move_served_log(self) -> None:
        """Convert older layouts' ``served`` tables (features as JSON) into the served log.

        One in the log's own file converts in one transaction. One in the store's file takes two
        commits (a transaction writes one database): the copy, then the drop. A crash between them
        leaves both, and the next open, finding the log no longer empty, only drops."""
        if self._has_table(SERVED_DB, "served"):
            with _transaction(self._con):
                for sql in served_log.copy_json_rows(f"{SERVED_DB}.served"):
                    self._con.execute(sql)
                self._con.execute(f"DROP TABLE {SERVED_DB}.served")
        if not self._has_own_served():
            return
        if not _scalar(self._con, f"SELECT count(*) FROM {SERVED_DB}.{served_log.ROWS}"):
            for sql in served_log.copy_json_rows(self._own_served()):
                self._con.execute(sql)
        self._con.execute(f"DROP TABLE {self._own_served()}")

    def close(self) -> None:
        self._stop_writer()
        with self._lock:
            self.flush_served()
            if self._served_con is not None:
                self._served_con.close()
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ingest ---------------------------------------------------------------
    def product_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._con.execute("SELECT product_id FROM products").fetchall()}

    def _product_id_array(self) -> pa.ChunkedArray:
        """Stored product ids as Arrow (no Python object per id)."""
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "extra copy": cheap next to a Python set
            return self._con.execute("SELECT product_id FROM products").to_arrow_table().column(0)

    def ingest(self, folder: str | Path) -> Dataset:
        """Validate a dataset folder and store it in one transaction.

        Products are upserted by id and judgments by (query, product_id);
        reviews and events add the rows not stored yet. Returns the
        validated dataset (with its warnings).
        """
        known = self._product_id_array()
        ds = load_dataset(folder, tables=("products", "reviews", "events", "judgments"), known_products=known)
        self.write(ds)
        return ds

    def write(self, ds: Dataset, log_products: bool = False) -> None:
        """Store a validated dataset in one transaction (all of it or nothing).

        ``log_products``: record the products as live changes (``product_log``).
        """
        events = self._pseudonymized(ds.events, ds.pseudonymized)
        reviews = self._pseudonymized(ds.reviews, ds.pseudonymized)
        products = ds.products
        if products is not None and ds.root is not None:
            products = _absolute_images(products, ds.root)
        with self._lock:
            con = self._con
            with _transaction(con):
                if products is not None and len(products):
                    self._upsert_products(products)
                    if log_products:
                        with _registered(con, "_pl", products[["product_id"]]):
                            con.execute("INSERT INTO product_log SELECT nextval('product_log_seq'), ?, product_id, "
                                        "'upsert' FROM _pl", [utc_now()])
                if reviews is not None and len(reviews):
                    with _registered(con, "_r", reviews[REVIEWS.names]):
                        sql, params = (_not_stored(con, "_r", REVIEWS, "product_id IN (SELECT product_id FROM _r)")
                                       or ("SELECT * FROM _r", []))
                        con.execute(f"INSERT INTO reviews {sql}", params)
                if events is not None and len(events):
                    self._append_events(events, skip_stored=True)
                if ds.judgments is not None and len(ds.judgments):
                    self._upsert_judgments(ds.judgments)

    def _upsert_products(self, products: pd.DataFrame) -> None:
        con = self._con
        with _registered(con, "_p", products[PRODUCTS.names]):
            con.execute("INSERT OR REPLACE INTO products SELECT * FROM _p")
            con.execute("DELETE FROM deleted_products WHERE product_id IN (SELECT product_id FROM _p)")

    def _upsert_judgments(self, judgments: pd.DataFrame) -> None:
        """A later grade for the same query and product replaces the stored one."""
        con = self._con
        with _registered(con, "_j", judgments[JUDGMENTS.names]):
            con.execute("DELETE FROM judgments WHERE (query, product_id) IN (SELECT query, product_id FROM _j)")
            con.execute("INSERT INTO judgments SELECT * FROM _j")

    def _pseudonymized(self, df: pd.DataFrame | None, already: bool) -> pd.DataFrame | None:
        if df is None or already or "user_id" not in df:
            return df
        df = df.copy()
        mask = df["user_id"].notna()
        df.loc[mask, "user_id"] = pseudonymize_series(df.loc[mask, "user_id"], self.secret)
        return df

    def _append_events(self, events: pd.DataFrame, skip_stored: bool = False) -> int:
        """Insert events and update ``users``; return the append's arrival number.

        ``skip_stored``: leave out copies of stored rows. Folder ingest skips
        them so that loading the same log twice stores it once; live events
        are always new (a click twice is two clicks). Every append takes the
        next arrival number (one writer at a time, so numbers follow commits).
        """
        con = self._con
        arrival = int(_scalar(con, "SELECT nextval('event_arrival_seq')"))
        with _registered(con, "_e", events[EVENTS.names]):
            src = "_e"
            new = skip_stored and _not_stored(con, "_e", EVENTS, "timestamp BETWEEN ? AND ?",
                                              [events["timestamp"].min(), events["timestamp"].max()])
            if new:
                con.execute(f"CREATE OR REPLACE TEMP TABLE _e_new AS {new[0]}", new[1])
                src = "_e_new"
            con.execute(f"INSERT INTO events SELECT *, ? FROM {src}", [arrival])
            con.execute(
                f"""
                INSERT INTO users
                SELECT user_id, min(timestamp), max(timestamp), count(*) FROM {src} GROUP BY user_id
                ON CONFLICT (user_id) DO UPDATE SET
                  first_seen = least(users.first_seen, excluded.first_seen),
                  last_seen = greatest(users.last_seen, excluded.last_seen),
                  n_events = users.n_events + excluded.n_events
                """
            )
            if src == "_e_new":
                con.execute("DROP TABLE _e_new")
        return arrival

    def append_events(self, events: pd.DataFrame, pseudonymized: bool = True) -> int:
        """Append events durably (committed before returning); return the append's arrival number.

        Frames that are not yet in canonical form (missing optional columns)
        are validated first; problems raise ``DataValidationError``.
        """
        if any(c not in events.columns for c in EVENTS.names):
            events, problems = coerce_table(events, EVENTS, "events")
            if problems:
                raise DataValidationError(problems)
        events = self._pseudonymized(events, pseudonymized)
        with self._lock:
            with _transaction(self._con):
                return self._append_events(events)

    def upsert_products(self, products: pd.DataFrame) -> None:
        """Add or replace products live (logged for :meth:`product_changes`)."""
        with self._lock:
            self.write(Dataset(products=products, pseudonymized=True), log_products=True)

    def delete_product(self, product_id: str) -> bool:
        """Remove a product and remember the deletion; return whether it was stored."""
        with self._lock:
            with _transaction(self._con):
                n = _scalar(self._con, "SELECT count(*) FROM products WHERE product_id = ?", [product_id])
                self._con.execute("DELETE FROM products WHERE product_id = ?", [product_id])
                self._con.execute("INSERT OR IGNORE INTO deleted_products VALUES (?)", [product_id])
                self._con.execute("INSERT INTO product_log SELECT nextval('product_log_seq'), ?, ?, 'delete'",
                                  [utc_now(), product_id])
        return bool(n)

    def product_changes(self, since=None, *, after: int | None = None) -> tuple[pd.DataFrame, list[str]]:
        """Live catalog changes logged after the time ``since``, or after the log's number ``after``:
        (upserted products as stored now, deleted ids).

        Each product counts once, by its last change; a product upserted and
        then deleted is only deleted. Folder ingests are not logged, but what
        they stored is what an upsert returns and what a deletion checks.
        """
        where, mark = ("seq > ?", int(after)) if after is not None else ("changed_at > CAST(? AS TIMESTAMP)", since)
        last = f"SELECT product_id, arg_max(op, seq) AS op FROM product_log WHERE {where} GROUP BY product_id"
        with self._lock:
            ups = self._con.execute(f"SELECT p.* FROM products p JOIN ({last}) c USING (product_id) "
                                    "WHERE c.op = 'upsert' ORDER BY p.product_id", [mark]).df()
            # The store is the truth: a product deleted live and then ingested again is not gone.
            gone = self._con.execute(f"SELECT product_id FROM ({last}) WHERE op = 'delete' AND product_id NOT IN "
                                     "(SELECT product_id FROM products) ORDER BY product_id", [mark]).df()
        return ups, gone["product_id"].tolist()

    def product_log_mark(self) -> int:
        """The number of the last live catalog change logged (0: none), for ``product_changes(after=)``."""
        with self._lock:
            return int(_scalar(self._con, "SELECT coalesce(max(seq), 0) FROM product_log"))

    def prune_product_log(self, through) -> int:
        """Drop the live catalog changes logged at or before ``through``; return how many."""
        with self._lock:
            n = _scalar(self._con, "SELECT count(*) FROM product_log WHERE changed_at <= CAST(? AS TIMESTAMP)",
                        [through])
            self._con.execute("DELETE FROM product_log WHERE changed_at <= CAST(? AS TIMESTAMP)", [through])
        return int(n)

    # -- erasure --------------------------------------------------------------
    def log_served(self, records: list[dict]) -> None:
        """Queue one row per shown result with its served features (``{name: value}``).

        Rows are written in batches of ``SERVED_BATCH`` by a background
        thread (one insert per request would cost more than the search, and
        the request should not wait for the batch either), and before any
        read, erasure or close. Unlike events, served rows were never
        acknowledged to anyone: a crash loses at most about one batch.
        """
        if not records:
            return
        # Encoded here, a page at a time, so that a batch insert stays a few ms.
        now = pd.Timestamp.now("UTC").tz_localize(None)
        rows = []
        for r in records:
            names, nid, values = served_log.encode(r["features"], self._names_ids)
            rows.append({**r, "logged_at": now, "names": names, "names_id": nid, "features": values})
        with self._served_lock:
            self._served.extend(rows)
            full = len(self._served) >= SERVED_BATCH
        if full:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="vitrine-served", daemon=True)
                self._writer.start()
                atexit.register(_finish_served, weakref.ref(self))
            self._wake.set()

    def _stop_writer(self) -> None:
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join()

    def _write_loop(self) -> None:
        while not self._closing:
            self._wake.wait()
            self._wake.clear()
            if not self._closing:
                self.flush_served()

    def flush_served(self) -> None:
        """Write the queued served rows (on a connection of their own, without the store's lock)."""
        with self._flush_lock:
            with self._served_lock:
                records, self._served = self._served, []
            if not records:
                return
            batch = served_log.batch(records)
            if self._served_con is None:
                self._served_con = self._con.cursor()
            con = self._served_con
            new = {r["names_id"]: list(r["names"]) for r in records if r["names_id"] not in self._names_written}
            if new:
                with _registered(con, "_n", pd.DataFrame({"names_id": list(new), "names": list(new.values())})):
                    con.execute(f"INSERT OR IGNORE INTO {SERVED_DB}.{served_log.NAMES} SELECT * FROM _n")
                self._names_written.update(new)
            with _registered(con, "_s", batch):
                con.execute(served_log.insert_sql("_s"))

    def prune_served(self, before) -> int:
        """Drop the served-feature rows logged before ``before``; return how many.

        DuckDB reuses the freed pages for later rows rather than shrinking the file.
        """
        log = f"{SERVED_DB}.{served_log.ROWS}"
        with self._lock:
            self.flush_served()
            n = _scalar(self._con, f"SELECT count(*) FROM {log} WHERE logged_at < CAST(? AS TIMESTAMP)", [before])
            if n:
                self._con.execute(f"DELETE FROM {log} WHERE logged_at < CAST(? AS TIMESTAMP)", [before])
        return int(n)

    def forget_user(self, user_key: str) -> int:
        """Erase a (pseudonymised) user's events, reviews and profile; return rows removed."""
        with self._lock:
            self.flush_served()
            # The served log first, in its own commit (a transaction writes one database); a crash
            # before the second commit leaves the events, and erasing again finishes the job.
            log = f"{SERVED_DB}.{served_log.ROWS}"
            n = _scalar(self._con, f"SELECT count(*) FROM {log} WHERE user_id = ?", [user_key])
            self._con.execute(f"DELETE FROM {log} WHERE user_id = ?", [user_key])
            with _transaction(self._con):
                for table in ("events", "reviews", "users"):
                    n += _scalar(self._con, f"SELECT count(*) FROM {table} WHERE user_id = ?", [user_key])
                    self._con.execute(f"DELETE FROM {table} WHERE user_id = ?", [user_key])
        return n

    # -- reads ----------------------------------------------------------------
    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self._lock:
            self.flush_served()
            return self._con.execute(sql, params or []).df()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                t: _scalar(self._con, f"SELECT count(*) FROM {t}")
                for t in ("products", "reviews", "events", "users", "judgments")
            }

    def to_dataset(self) -> Dataset:
        """Everything stored, as a Dataset with pseudonymised user ids."""
        # Read before the catalog: a change logged in between is applied again by a catch-up, harmlessly.
        catalog_mark = self.product_log_mark() if self._has_table(self._database(), "product_log") else 0
        products = self.query("SELECT * FROM products ORDER BY product_id")
        reviews = self.query("SELECT * FROM reviews")
        cols = ", ".join(f'"{c}"' for c in EVENTS.names)
        # One read, so the mark is exactly the last append these events include.
        numbered = _scalar(self._con, "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'events' "
                                      "AND column_name = 'arrival'")  # not in an old store opened read-only
        events = self.query(f"SELECT {cols}, {'arrival' if numbered else 'NULL AS arrival'} FROM events "
                            "ORDER BY timestamp")
        # 0 when no stored event has a number (none yet, or all stored before appends were numbered).
        arrival = events.pop("arrival").max() if len(events) else None
        arrival = 0 if arrival is None or pd.isna(arrival) else int(arrival)
        # Judgments a folder marked split=test stay out of training, as in `vitrine evaluate`.
        judgments = self.query("SELECT * FROM judgments WHERE split IS DISTINCT FROM 'test' ORDER BY query, product_id")
        return Dataset(
            products=products if len(products) else None,
            reviews=reviews if len(reviews) else None,
            events=events if len(events) else None,
            judgments=judgments if len(judgments) else None,
            root=None,
            meta={"name": self.path.parent.name,
                  "events_arrival": arrival, "product_log_mark": catalog_mark},
            pseudonymized=True,
            served=self.served_features,
        )

    def served_features(self, request_ids) -> pd.DataFrame:
        """Logged features of the results shown under ``request_ids``: request_id, product_id and
        features (``{name: value}``, None where the value was missing)."""
        ids = pd.DataFrame({"request_id": pd.Series(list(request_ids), dtype=str)}).drop_duplicates()
        with self._lock:
            self.flush_served()
            with _registered(self._con, "_ids", ids):
                df = self._con.execute(f"SELECT s.request_id, s.product_id, s.names, s.features "
                                       f"FROM {served_log.ROWS} s JOIN _ids USING (request_id)").df()
        out = df[["request_id", "product_id"]].copy()
        out["features"] = served_log.as_dicts(df)
        return out


def utc_now() -> pd.Timestamp:
    """Wall-clock UTC, naive (the store's timestamps): when a change happened or a fit began."""
    return pd.Timestamp.now("UTC").tz_localize(None)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """The single value of a one-row query, with the result read to its end: DuckDB 2 keeps a
    result that ``fetchone`` left open, and then refuses ``register`` on the connection."""
    return con.execute(sql, params or []).fetchall()[0][0]


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame | pa.Table) -> Iterator[None]:
    """Expose ``df`` to SQL as ``name`` for the duration of the block."""
    con.register(name, df)
    try:
        yield
    finally:
        con.unregister(name)


def _not_stored(con: duckdb.DuckDBPyConnection, name: str, spec: TableSpec, scope: str,
                params: list | None = None) -> tuple[str, list] | None:
    """(SELECT, parameters) of the rows of registered frame ``name`` not already in ``spec``'s table.

    A multiset difference: a row given k times of which j are stored adds
    k - j copies, so a log ingested again adds nothing and a log with a real
    repeated row keeps it. Only stored rows matching ``scope`` (a condition
    with ``?`` for ``params``) are compared, which keeps the check cheap; when
    none match, None: the whole frame is new.
    """
    params = list(params or [])
    cols = ", ".join(f'"{c.name}"' for c in spec.columns)
    stored = f"SELECT {cols} FROM {spec.name} WHERE {scope}"
    if not _scalar(con, f"SELECT count(*) FROM ({stored})", params):
        return None
    same = " AND ".join(f'k."{c.name}" IS NOT DISTINCT FROM s."{c.name}"' for c in spec.columns)
    sql = f"""
        WITH k AS (SELECT *, row_number() OVER (PARTITION BY {cols}) AS _k FROM {name}),
             s AS (SELECT {cols}, count(*) AS _c FROM ({stored}) GROUP BY ALL)
        SELECT k.* EXCLUDE (_k) FROM k LEFT JOIN s ON {same} WHERE k._k > coalesce(s._c, 0)"""
    return sql, params


def _absolute_images(products: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Store image paths absolute so the home does not depend on the source folder's cwd."""
    img = products["image"]
    rel = img.notna() & ~img.fillna("").str.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|/)")
    if not rel.any():
        return products
    products = products.copy()
    products.loc[rel, "image"] = [str(root / p) for p in img[rel]]
    return products
