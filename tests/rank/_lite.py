"""A light engine for ranker tests: BM25-only retriever, popularity personalizer."""

from __future__ import annotations

from pathlib import Path

from vitrine.data.catalog import Catalog
from vitrine.data.dataset import load_dataset
from vitrine.data.store import pseudonymize_series
from vitrine.engine import Engine
from vitrine.personal import Personalizer
from vitrine.rank import SearchRanker
from vitrine.retrieve import Retriever


def lite_engine(dataset, home: Path, ranker: SearchRanker | None = None, personal: bool = True) -> Engine:
    """Fit catalog, a lexical-only retriever and a cheap personalizer, then ``ranker``."""
    ds = load_dataset(dataset) if not hasattr(dataset, "products") else dataset
    e = Engine(home=home)
    e.catalog_ = Catalog(ds.products, root=ds.root)
    e.retriever_ = Retriever(text_model="none", image_model="none", cache_dir="").fit(e.catalog_)
    ev = ds.events
    if ev is not None and not ds.pseudonymized:
        ev = ev.assign(user_id=pseudonymize_series(ev["user_id"], e.settings.secret))
    try:
        e.personal_ = Personalizer(sources=("itemknn", "popularity"), tune=False).fit(ev if personal else None, e.catalog_)
    except TypeError:  # foundation personalizer
        e.personal_ = Personalizer().fit(ev if personal else None, e.catalog_)
    e.ranker_ = (ranker or SearchRanker()).fit(e, ds)
    return e
