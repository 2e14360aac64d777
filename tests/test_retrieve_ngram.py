"""The trigram source: misspelled queries still retrieve, and it survives upsert and save/load."""

import numpy as np
import pandas as pd

from vitrine.data.catalog import Catalog
from vitrine.retrieve import Retriever

TITLES = ["Cordless vacuum cleaner", "Toilet seat with soft close", "Garden hose 50 ft", "Kitchen sink faucet",
          "LED ceiling light", "Stainless steel toilet brush"]


def _fitted(ngram: bool = True) -> tuple[Retriever, Catalog]:
    cat = Catalog(pd.DataFrame({"product_id": [f"p{i}" for i in range(len(TITLES))], "title": TITLES}))
    return Retriever(text_model="none", image_model="none", ngram=ngram).fit(cat), cat


def test_misspelled_query_finds_the_product_only_with_trigrams():
    r, cat = _fitted()
    c = r.retrieve("vaccum cleanr", k=3)
    assert cat.ids[c.rows[0]] == "p0" and c.sources["ngram"][0] > 0
    plain, _ = _fitted(ngram=False)
    assert "p0" not in set(cat.ids[plain.retrieve("vaccum cleanr", k=3).rows])


def test_trigram_source_follows_upserts_and_persistence(tmp_path):
    r, cat = _fitted()
    rows = cat.upsert(pd.DataFrame({"product_id": ["p6"], "title": ["Wheelbarrow with pneumatic tyre"]}))
    r.add(rows)
    assert cat.ids[r.retrieve("wheelbarow", k=1).rows[0]] == "p6"
    r.save(tmp_path / "r")
    back = Retriever.load(tmp_path / "r", cat)
    q = "toliet brush"
    np.testing.assert_allclose(back.score_rows(q, np.arange(len(cat))).sources["ngram"],
                               r.score_rows(q, np.arange(len(cat))).sources["ngram"])
