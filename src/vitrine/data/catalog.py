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
        self.root = root
        self.active = np.ones(len(products), dtype=bool)
        self._index = {pid: i for i, pid in enumerate(self.products["product_id"])}

    def __len__(self) -> int:
        return len(self.products)

    @property
    def ids(self) -> np.ndarray:
        return self.products["product_id"].to_numpy(dtype=object)

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
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    def image_path(self, i: int) -> str | None:
        v = self.products.at[i, "image"]
        if v is None or (isinstance(v, float) and np.isnan(v)) or not str(v):
            return None
        v = str(v)
        if "://" in v or self.root is None or Path(v).is_absolute():
            return v
        return str(self.root / v)

    def upsert(self, products: pd.DataFrame) -> np.ndarray:
        """Insert new products or replace existing ones; return their rows."""
        rows = []
        for rec in products.to_dict("records"):
            pid = rec["product_id"]
            row = {c: rec.get(c) for c in PRODUCTS.names}
            if pid in self._index:
                i = self._index[pid]
                for c, v in row.items():
                    self.products.at[i, c] = v
                self.active[i] = True
            else:
                i = len(self.products)
                self.products.loc[i] = row
                self._index[pid] = i
                self.active = np.append(self.active, True)
            rows.append(i)
        return np.asarray(rows, dtype=np.int64)

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
