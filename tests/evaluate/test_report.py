"""The HTML report: written with its plots, and readable."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np

from vitrine.evaluate.report import write_report


class _Imgs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.src.append(dict(attrs)["src"])


def test_report_html_opens_and_images_exist(tmp_path) -> None:
    path = write_report(
        tmp_path / "rep",
        curves={"vitrine": {1: 0.5, 5: 0.6, 10: 0.65}, "bm25": {1: 0.4, 5: 0.5, 10: 0.55}},
        segments={"1 word": {"vitrine": 0.6, "bm25": 0.5}, "2 words": {"vitrine": 0.7, "bm25": 0.6}},
        propensities=1 / np.arange(1, 21) ** 0.8,
        true_propensities=1 / np.arange(1, 21) ** 0.8,
        importance={"bm25_title": 10.0, "aff_leaf": 4.0, "price_pct_cat": 1.0},
        summary={"ndcg@10": 0.65},
    )
    text = path.read_text(encoding="utf-8")
    assert re.search(r"<title>.*</title>", text)
    p = _Imgs()
    p.feed(text)
    assert len(p.src) == 4
    for src in p.src:
        img = path.parent / src
        assert img.exists() and img.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
