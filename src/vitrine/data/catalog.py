"""Catalog: products with stable integer row indices.

Models address products by row index (arrays, FAISS ids, sparse matrices);
the catalog maps ids to rows. Rows are never reused: a deleted product keeps
its row, marked inactive, so every array built at fit time stays aligned with
products added later by upsert.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vitrine.data.schema import PRODUCTS
from vitrine.errors import NotFoundError


def _missing(v: object) -> bool:
    """True for None, NaN, NaT and pd.NA (scalars only)."""
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # arrays and lists are values, not "missing"
        return False


class Catalog:
    """Products table plus id <-> row mapping and an active mask.

    Attributes
    ----------
    products : DataFrame with the PRODUCTS columns, one row per index.
    active : bool array of shape (n_products,), False for deleted products.
    root : folder that relative image paths are resolved against.
    """

    def __init__(self, products: pd.DataFrame, root: Path | None = None) -> None:
        products = products.reset_index(drop=True)
        for col in PRODUCTS.names:
            if col not in products:
                products[col] = None
        self.products = products[PRODUCTS.names].copy()
        for col in self.products:
            # pandas' nullable booleans (DuckDB gives them; Parquet keeps them) hold pd.NA, whose
            # truth value raises: the rest of the code reads a missing flag as None.
            if isinstance(self.products[col].dtype, pd.BooleanDtype):
                v = self.products[col]
                self.products[col] = v.astype(object).where(v.notna(), None)
        self.root = root
        self.active = np.ones(len(products), dtype=bool)
        self._index = {pid: i for i, pid in enumerate(self.products["product_id"])}

    def __len__(self) -> int:
        return len(self.products)

    @property
    def ids(self) -> np.ndarray:
        """Product ids by row (do not modify: the array is shared).

        Kept between calls, since converting the column costs about a
        millisecond on a 20k catalog and every served page reads it. A row's
        id never changes (upsert replaces in place), so only appends refresh it.
        """
        got = getattr(self, "_ids", None)
        if got is None or len(got) != len(self.products):
            got = self._ids = self.products["product_id"].to_numpy(dtype=object)
            got.flags.writeable = False
        return got

    def index_of(self, product_id: str) -> int:
        try:
            return self._index[product_id]
        except KeyError:
            raise NotFoundError(f"product id {product_id!r} is not in the catalog") from None

    def get_index(self, product_id: str) -> int | None:
        return self._index.get(product_id)

    def indices(self, product_ids, missing: str = "drop") -> np.ndarray:
        """Rows of ``product_ids``; unknown ids are dropped, or -1 with missing="mark"."""
        rows = [self._index.get(p, -1) for p in product_ids]
        arr = np.asarray(rows, dtype=np.int64)
        return arr if missing == "mark" else arr[arr >= 0]

    def text(self, i: int, field: str) -> str:
        v = self.products.at[i, field]
        return "" if _missing(v) else str(v)

    def image_path(self, i: int) -> str | None:
        v = self.products.at[i, "image"]
        if _missing(v) or not str(v):
            return None
        v = str(v)
        if "://" in v or self.root is None or Path(v).is_absolute():
            return v
        return str(self.root / v)

    def upsert(self, products: pd.DataFrame) -> np.ndarray:
        """Insert new products or replace existing ones; return their rows.

        Replaced products keep their row; new ones are appended in one
        concatenation (so a large batch costs one copy of the table, not one
        per product). Within a batch, the last record of an id wins.
        """
        recs = products.reset_index(drop=True)
        for col in PRODUCTS.names:
            if col not in recs:
                recs[col] = None
        recs = recs[PRODUCTS.names]
        ids = recs["product_id"].tolist()
        last = recs.drop_duplicates("product_id", keep="last")
        new_ids: list = []
        for rec in last.to_dict("records"):
            pid = rec["product_id"]
            i = self._index.get(pid)
            if i is None:
                new_ids.append(pid)
                continue
            for c, v in rec.items():
                self.products.at[i, c] = v
            self.active[i] = True
        if new_ids:
            fresh = last[last["product_id"].isin(set(new_ids))]
            start = len(self.products)
            if start:
                self.products = pd.concat([self.products, fresh], ignore_index=True)
            else:
                self.products = fresh.reset_index(drop=True).copy()
            for k, pid in enumerate(fresh["product_id"]):
                self._index[pid] = start + k
            self.active = np.concatenate([self.active, np.ones(len(fresh), dtype=bool)])
        return np.asarray([self._index[p] for p in ids], dtype=np.int64)

    def delete(self, product_id: str) -> int:
        i = self.index_of(product_id)
        self.active[i] = False
        return i

    def to_frame(self) -> pd.DataFrame:
        return self.products

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.products.to_parquet(folder / "catalog.parquet", index=False)
        np.save(folder / "catalog_active.npy", self.active, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, root: Path | None = None) -> Catalog:
        cat = cls(pd.read_parquet(folder / "catalog.parquet"), root=root)
        cat.active = np.load(folder / "catalog_active.npy", allow_pickle=False)
        return cat
