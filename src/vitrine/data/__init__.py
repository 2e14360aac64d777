"""Data layer: dataset schema and validation, readers, DuckDB store, simulator."""

from vitrine.data.dataset import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
