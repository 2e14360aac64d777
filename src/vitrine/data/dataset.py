"""Read and validate a dataset folder.

Every problem is located to file, row (1-based data row, header excluded) and
column. Structural problems (wrong types, impossible values, duplicate ids)
are errors: the whole dataset is refused and nothing is stored. Referential
problems that a real log always has a few of (events or reviews naming a
product the catalog lacks, missing image files) are counted warnings: the
rows are dropped or the field cleared, and the count is reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vitrine.data.schema import EVENT_TYPES, SPLITS, TABLE_FORMATS, TABLES, TableSpec
from vitrine.errors import DataValidationError, Problem, VitrineError

MAX_PROBLEMS_PER_CHECK = 50  # enough to fix a pattern; the count covers the rest


@dataclass
class Warning_:
    """A counted, non-fatal finding (rows dropped or fields cleared)."""

    file: str
    column: str
    message: str
    count: int
    examples: list[int] = field(default_factory=list)  # 1-based rows

    def __str__(self) -> str:
        rows = ", ".join(str(r) for r in self.examples[:5])
        return f"{self.file}, field '{self.column}': {self.message} ({self.count} rows, e.g. {rows})"


@dataclass
class Dataset:
    """A validated dataset folder held as pandas DataFrames.

    Attributes
    ----------
    products, events, reviews, judgments, candidates : DataFrame or None
        Tables as in ARCHITECTURE.md; absent tables are None. Every column of
        the spec is present (missing optional columns are filled with nulls);
        text columns (tags "|"-joined) are pandas' ``str`` dtype with NaN for
        missing, numbers float64 (NaN for missing), booleans object
        (True/False/None) and timestamps naive UTC ``datetime64[ns]``.
    root : Path or None
        Folder that image paths are relative to.
    meta : dict
        Contents of ``dataset.json``.
    pseudonymized : bool
        True when ``user_id`` columns already hold keyed hashes (read from a
        store), False for raw ids from files.
    served : callable or None
        Read from a store only: ``served(request_ids)`` returns the features
        logged for the results shown under those requests (columns
        request_id, product_id, and features as ``{name: value}``, None where
        a value was missing).
    """

    products: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    reviews: pd.DataFrame | None = None
    judgments: pd.DataFrame | None = None
    candidates: pd.DataFrame | None = None
    root: Path | None = None
    meta: dict = field(default_factory=dict)
    warnings: list[Warning_] = field(default_factory=list)
    pseudonymized: bool = False
    served: Callable[[Sequence[str]], pd.DataFrame] | None = None

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or (self.root.name if self.root else "dataset"))

    def table(self, name: str) -> pd.DataFrame | None:
        return getattr(self, name)


def find_table(folder: Path, name: str) -> Path | None:
    """Return the file holding table ``name`` in ``folder``, or None."""
    found = [folder / f"{name}{ext}" for ext in TABLE_FORMATS if (folder / f"{name}{ext}").exists()]
    if len(found) > 1:
        raise VitrineError(
            f"{folder}: table '{name}' is given twice ({', '.join(p.name for p in found)}); keep one"
        )
    return found[0] if found else None


def read_file(path: Path) -> pd.DataFrame:
    """Read a Parquet, CSV or JSONL file with every column as given (CSV as strings)."""
    if path.suffix not in TABLE_FORMATS:
        raise VitrineError(f"{path}: unknown table format; use one of {', '.join(TABLE_FORMATS)}")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if path.stat().st_size == 0:
            return pd.DataFrame()
        return pd.read_json(path, lines=True, dtype=False)
    except Exception as exc:  # parser errors vary by format; all mean "unreadable"
        row = _bad_jsonl_line(path) if path.suffix == ".jsonl" else None
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError([Problem(path.name, row, None, f"cannot be read: {detail}")]) from exc


def _bad_jsonl_line(path: Path) -> int | None:
    """1-based number of the first line of a JSONL file that is not a JSON object."""
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    if not isinstance(json.loads(line), dict):
                        return n
                except ValueError:
                    return n
    except (OSError, UnicodeDecodeError):
        return None
    return None


class _Checker:
    """Collects problems for one file, capped per check but fully counted."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def flag(self, mask: np.ndarray, column: str, message_for) -> None:
        rows = np.flatnonzero(mask)
        for r in rows[:MAX_PROBLEMS_PER_CHECK]:
            self.problems.append(Problem(self.file, int(r) + 1, column, message_for(int(r))))
        if len(rows) > MAX_PROBLEMS_PER_CHECK:
            self.problems.append(
                Problem(self.file, None, column, f"{len(rows) - MAX_PROBLEMS_PER_CHECK} more rows like the above")
            )


STR_DTYPE = pd.StringDtype(na_value=np.nan)  # pandas' default "str": Arrow-backed when pyarrow is there


def _as_str(s: pd.Series) -> pd.Series:
    """Text as pandas' ``str`` dtype, missing values NaN (ids given as numbers become their digits).

    Columns that already hold text (Parquet strings, CSV) are kept as they
    are, without a Python object per value: 10M-row logs stay cheap.
    """
    present = s.notna()
    if pd.api.types.is_float_dtype(s):
        vals = s.to_numpy(dtype="float64", na_value=np.nan)
        fin = vals[np.isfinite(vals)]
        if len(fin) and np.all(fin == np.round(fin)) and np.abs(fin).max() < 2**53:
            # JSONL integer ids with gaps are read as floats: 7.0 means "7".
            s = pd.Series(np.where(np.isfinite(vals), vals, 0).astype(np.int64), index=s.index)
    if isinstance(s.dtype, pd.StringDtype):
        out = s
    elif pd.api.types.is_string_dtype(s):  # object column of str and nulls
        out = s.where(present, None).astype(STR_DTYPE)
    else:
        out = s.astype("object").map(lambda v: v if isinstance(v, str) else str(v)).astype(STR_DTYPE)
    if out.dtype != STR_DTYPE:
        out = out.astype(STR_DTYPE)
    return out.where(present)


def _to_arrow(values) -> pa.Array:
    if isinstance(values, pd.Series):
        arr = pa.array(values if isinstance(values.dtype, pd.StringDtype) else values.astype(STR_DTYPE))
    else:
        arr = pa.array(list(values) if not isinstance(values, list | np.ndarray) else values, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def isin(series: pd.Series, values) -> np.ndarray:
    """Boolean mask of ``series`` values found in ``values`` (hash join in Arrow, no Python loop)."""
    if not len(series):
        return np.zeros(0, dtype=bool)
    mask = pc.is_in(_to_arrow(series), value_set=_to_arrow(values))
    return mask.to_numpy(zero_copy_only=False).astype(bool) & series.notna().to_numpy()


def _tags(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.StringDtype):  # "a|b" text: normalise with vectorised string ops
        t = _as_str(s).str.replace(r"\s*\|\s*", "|", regex=True).str.replace(r"\|{2,}", "|", regex=True)
        t = t.str.strip().str.strip("|")
        return t.where(t.notna())

    def norm(v: object) -> str | None:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, list | tuple | np.ndarray):
            return "|".join(str(t).strip() for t in v if str(t).strip())
        return "|".join(t.strip() for t in str(v).split("|") if t.strip())

    return s.map(norm).astype(STR_DTYPE)


def _bool(s: pd.Series, chk: _Checker, column: str) -> pd.Series:
    truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if pd.api.types.is_bool_dtype(s) and not s.isna().any():
        return s.astype("object")

    def conv(v: object) -> object:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):  # pd.NA: a nullable boolean column
            return None
        if isinstance(v, bool | np.bool_):
            return bool(v)
        return truth.get(str(v).strip().lower(), "?")

    out = s.astype("object").map(conv)
    bad = out.map(lambda v: v == "?").to_numpy(dtype=bool)
    chk.flag(bad, column, lambda r: f"expected a boolean (true/false), got {s.iloc[r]!r}")
    return out.where(~bad, None).astype("object")


def _number(s: pd.Series, chk: _Checker, column: str, kind: str, lo, hi) -> pd.Series:
    num = pd.to_numeric(s, errors="coerce")
    bad_type = (num.isna() & s.notna()).to_numpy()
    chk.flag(bad_type, column, lambda r: f"expected a number, got {s.iloc[r]!r}")
    vals = num.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        if lo is not None:
            chk.flag(vals < lo, column, lambda r: f"expected >= {lo:g}, got {vals[r]:g}")
        if hi is not None:
            chk.flag(vals > hi, column, lambda r: f"expected <= {hi:g}, got {vals[r]:g}")
        if kind == "int":
            frac = np.isfinite(vals) & (vals != np.round(vals))
            chk.flag(frac, column, lambda r: f"expected a whole number, got {vals[r]:g}")
    chk.flag(np.isinf(vals), column, lambda r: "expected a finite number, got infinity")
    return pd.Series(vals, index=s.index)


def _timestamp(s: pd.Series, chk: _Checker, column: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        out = pd.to_datetime(s).dt.tz_convert(None) if getattr(s.dt, "tz", None) else pd.to_datetime(s)
        return out.astype("datetime64[ns]")
    if pd.api.types.is_bool_dtype(s):
        chk.flag(s.notna().to_numpy(), column, lambda r: f"cannot parse timestamp {s.iloc[r]!r}")
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().sum() == s.notna().sum() and s.notna().any():
        # Numbers are epoch seconds (or milliseconds when they look like it).
        unit = "ms" if num.abs().max() > 1e11 else "s"
        vals = num.to_numpy(dtype="float64", na_value=np.nan)
        limit = 9.2e12 if unit == "s" else 9.2e15  # datetime64[ns] ends in 2262
        bad = ~np.isfinite(vals) & s.notna().to_numpy() | (np.abs(np.nan_to_num(vals)) > limit)
        chk.flag(bad, column, lambda r: f"cannot parse timestamp {s.iloc[r]!r} (epoch {unit} out of range)")
        vals = np.where(bad, np.nan, vals)
        return pd.to_datetime(pd.Series(vals, index=s.index), unit=unit, errors="coerce").astype("datetime64[ns]")
    out = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    bad = (out.isna() & s.notna()).to_numpy()
    chk.flag(bad, column, lambda r: f"cannot parse timestamp {s.iloc[r]!r}")
    return out.dt.tz_localize(None).astype("datetime64[ns]")


def coerce_table(df: pd.DataFrame, spec: TableSpec, file: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Check columns, types and ranges of one table; return it in canonical form."""
    chk = _Checker(file)
    missing = [c for c in spec.required if c not in df.columns]
    if missing:
        chk.problems.append(
            Problem(file, None, ", ".join(missing), f"required column(s) missing; {spec.name} needs {spec.required}")
        )
        return df, chk.problems
    df = df.reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    for col in spec.columns:
        if col.name not in df.columns:
            if col.kind in ("str", "tags"):
                out[col.name] = pd.Series(np.nan, index=df.index, dtype=STR_DTYPE)
            elif col.kind in ("float", "int"):
                out[col.name] = np.nan
            elif col.kind == "timestamp":
                out[col.name] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
            else:
                out[col.name] = pd.Series([None] * len(df), index=df.index, dtype="object")
            continue
        s = df[col.name]
        if col.required:
            empty = s.isna().to_numpy()
            if col.kind == "str":
                text = _as_str(s)
                empty = empty | (text.str.strip() == "").to_numpy(dtype=bool, na_value=False)
            chk.flag(empty, col.name, lambda r: "required value is empty")
        if col.kind == "str":
            out[col.name] = text if col.required else _as_str(s)
        elif col.kind == "tags":
            out[col.name] = _tags(s)
        elif col.kind in ("float", "int"):
            out[col.name] = _number(s, chk, col.name, col.kind, col.min, col.max)
        elif col.kind == "bool":
            out[col.name] = _bool(s, chk, col.name)
        elif col.kind == "timestamp":
            out[col.name] = _timestamp(s, chk, col.name)
    if spec.name == "events":
        ev = out["event"]
        bad = (~ev.isin(EVENT_TYPES) & ev.notna()).to_numpy()
        chk.flag(bad, "event", lambda r: f"unknown event type {ev.iloc[r]!r}; expected one of {list(EVENT_TYPES)}")
    if spec.name == "judgments":
        sp = out["split"]
        bad = (~sp.isin(SPLITS) & sp.notna()).to_numpy()
        chk.flag(bad, "split", lambda r: f"unknown split {sp.iloc[r]!r}; expected one of {list(SPLITS)}")
    if spec.name == "products":
        pid = out["product_id"]
        dup = pid.duplicated(keep="first").to_numpy() & pid.notna().to_numpy()
        if dup.any():
            codes, _ = pd.factorize(pid)
            first_of_code = np.full(codes.max() + 2, -1, dtype=np.int64)
            order = np.arange(len(codes))[::-1]
            first_of_code[codes[::-1]] = order  # last write wins: the earliest row
            chk.flag(dup, "product_id",
                     lambda r: f"duplicate product id {pid.iat[r]!r} (first at row {first_of_code[codes[r]] + 1})")
    return out, chk.problems


def _drop_rows(df: pd.DataFrame, drop: np.ndarray, file: str, column: str, message: str,
               warnings: list[Warning_]) -> pd.DataFrame:
    """Rows where ``drop`` is true removed, with one counted warning naming the file's rows."""
    if drop.any():
        rows = np.flatnonzero(drop)
        warnings.append(Warning_(file, column, message, len(rows), (rows[:20] + 1).tolist()))
        df = df[~drop].reset_index(drop=True)
    return df


def _drop_unknown(df: pd.DataFrame, known: pa.Array, file: str, warnings: list[Warning_]) -> pd.DataFrame:
    unknown = ~isin(df["product_id"], known)
    return _drop_rows(df, unknown, file, "product_id", "names a product not in the catalog; rows skipped", warnings)


def _drop_repeated_judgments(df: pd.DataFrame, file: str, warnings: list[Warning_]) -> pd.DataFrame:
    """One grade per (query, product): the last row wins, as a later file's row does in the store."""
    rep = df.duplicated(["query", "product_id"], keep="last").to_numpy()
    return _drop_rows(df, rep, file, "product_id", "repeats a (query, product_id) pair; a later row's grade is kept",
                      warnings)


def _files_in(folder: str, cache: dict[str, frozenset[str]]) -> frozenset[str]:
    if folder not in cache:
        try:
            with os.scandir(folder) as it:
                cache[folder] = frozenset(e.name for e in it if e.is_file())
        except OSError:
            cache[folder] = frozenset()
    return cache[folder]


def _check_images(products: pd.DataFrame, root: Path, file: str, warnings: list[Warning_]) -> None:
    """Clear (with a counted warning) local image paths that name no file.

    One directory listing per folder instead of one ``stat`` per product, so a
    million products with images in one folder cost one ``scandir``.
    """
    img = products["image"]
    has = img.notna().to_numpy()
    local = has & ~img.fillna("").str.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://").to_numpy()
    missing = np.zeros(len(products), dtype=bool)
    idx = np.flatnonzero(local)
    if len(idx):
        rel = _as_str(img.iloc[idx].reset_index(drop=True))
        full = rel.where(rel.str.startswith("/"), str(root) + "/" + rel)
        parts = full.str.rpartition("/")
        parent, base = parts[0], parts[2]
        ok = np.zeros(len(idx), dtype=bool)
        cache: dict[str, frozenset[str]] = {}
        for d in parent.unique():
            here = (parent == d).to_numpy(dtype=bool, na_value=False)
            files = _files_in(d or "/", cache)
            if files:
                ok[here] = isin(base[here], list(files))
        missing[idx[~ok]] = True
    if missing.any():
        rows = np.flatnonzero(missing)
        warnings.append(Warning_(file, "image", "image file not found; product kept without image",
                                 len(rows), (rows[:20] + 1).tolist()))
        products.loc[missing, "image"] = None


def load_dataset(
    path: str | Path,
    tables: Iterable[str] | None = None,
    known_products: Iterable[str] = (),
    check_images: bool = True,
) -> Dataset:
    """Read and validate a dataset folder.

    Parameters
    ----------
    path : folder holding ``products.*``, ``events.*`` and the other tables.
    tables : names to read (default: all present).
    known_products : product ids already stored, so events may name them
        (any iterable of str, or a pyarrow array).
    check_images : verify that local image files exist.

    Raises
    ------
    DataValidationError
        listing every structural problem (file, row, column), before anything is stored.
    """
    root = Path(path)
    if not root.is_dir():
        raise VitrineError(f"{root}: dataset folder not found")
    wanted = list(tables) if tables is not None else list(TABLES)
    ds = Dataset(root=root.resolve())
    meta_path = root / "dataset.json"
    if meta_path.exists():
        try:
            ds.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataValidationError([Problem("dataset.json", exc.lineno, None, f"invalid JSON: {exc.msg}")]) from exc
    problems: list[Problem] = []
    files: dict[str, str] = {}
    for name in wanted:
        f = find_table(root, name)
        if f is None:
            continue
        files[name] = f.name
        df, probs = coerce_table(read_file(f), TABLES[name], f.name)
        problems += probs
        setattr(ds, name, df)
    if not files:
        raise VitrineError(
            f"{root}: no tables found; expected products, events, reviews, judgments or candidates "
            f"as {', '.join(TABLE_FORMATS)}"
        )
    if problems:
        raise DataValidationError(problems)
    if isinstance(known_products, pa.ChunkedArray):
        known_products = known_products.combine_chunks()
    known = (known_products.cast(pa.large_string()) if isinstance(known_products, pa.Array)
             else _to_arrow(list(known_products)))
    if ds.products is not None:
        known = pa.concat_arrays([known, _to_arrow(ds.products["product_id"])])
        if check_images:
            _check_images(ds.products, ds.root, files["products"], ds.warnings)
    if ds.judgments is not None:  # before rows are dropped, so warnings name rows of the file
        ds.judgments = _drop_repeated_judgments(ds.judgments, files["judgments"], ds.warnings)
    if ds.products is not None or len(known):
        for name in ("events", "reviews", "judgments", "candidates"):
            df = ds.table(name)
            if df is not None:
                setattr(ds, name, _drop_unknown(df, known, files[name], ds.warnings))
    return ds
