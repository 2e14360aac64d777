"""The dataset folder format (see ARCHITECTURE.md), as data.

One constant per table so that readers, validators, the store and error
messages all list the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENT_TYPES: tuple[str, ...] = ("impression", "click", "add_to_cart", "purchase")
TABLE_FORMATS: tuple[str, ...] = (".parquet", ".csv", ".jsonl")
SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str", "float", "int", "bool", "timestamp", "tags"
    required: bool = False
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


PRODUCTS = TableSpec(
    "products",
    (
        Column("product_id", "str", required=True),
        Column("title", "str"),
        Column("description", "str"),
        Column("brand", "str"),
        Column("category", "str"),
        Column("color", "str"),
        Column("tags", "tags"),
        Column("price", "float", min=0.0),
        Column("sales", "float", min=0.0),
        Column("rating", "float", min=0.0, max=5.0),
        Column("rating_count", "float", min=0.0),
        Column("image", "str"),
        Column("in_stock", "bool"),
        Column("created_at", "timestamp"),
    ),
)

EVENTS = TableSpec(
    "events",
    (
        Column("user_id", "str", required=True),
        Column("product_id", "str", required=True),
        Column("timestamp", "timestamp", required=True),
        Column("event", "str", required=True),
        Column("query", "str"),
        Column("session_id", "str"),
        Column("request_id", "str"),
        Column("position", "int", min=1),
    ),
)

REVIEWS = TableSpec(
    "reviews",
    (
        Column("product_id", "str", required=True),
        Column("text", "str", required=True),
        Column("rating", "float", min=0.0, max=5.0),
        Column("user_id", "str"),
        Column("timestamp", "timestamp"),
    ),
)

JUDGMENTS = TableSpec(
    "judgments",
    (
        Column("query", "str", required=True),
        Column("product_id", "str", required=True),
        Column("grade", "float", required=True, min=0.0, max=3.0),
        Column("split", "str"),
    ),
)

CANDIDATES = TableSpec(
    "candidates",
    (
        Column("user_id", "str", required=True),
        Column("product_id", "str", required=True),
    ),
)

TABLES: dict[str, TableSpec] = {
    t.name: t for t in (PRODUCTS, EVENTS, REVIEWS, JUDGMENTS, CANDIDATES)
}
