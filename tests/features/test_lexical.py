import numpy as np
import pytest

from vitrine.features.lexical import BM25Index, column_sums, tokenize

DOCS = [
    "red running shoes for men", "blue running shoes", "red kettle stainless steel", "steel water bottle",
    "men's red cotton shirt", "green cap", "running socks, red and white", "shoes shoes shoes rack",
]


def test_parity_with_bm25s_on_one_field() -> None:
    bm25s = pytest.importorskip("bm25s")
    ours = BM25Index(fields={"title": 1.0}, k1=1.2, b=0.75).fit([{"title": d} for d in DOCS])
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    ref.index([tokenize(d) for d in DOCS], show_progress=False)
    for q in ["red shoes", "steel", "running red socks", "shoes"]:
        expect = ref.get_scores(tokenize(q))
        got = ours.score(q)
        np.testing.assert_allclose(got / (ours.k1 + 1), expect, rtol=1e-4, atol=1e-6)


def test_field_weights_rank_title_matches_first() -> None:
    docs = [{"title": "kettle", "description": "a red thing"}, {"title": "red kettle", "description": "a thing"}]
    idx = BM25Index().fit(docs)
    s = idx.score("red")
    assert s[1] > s[0] > 0


def test_append_and_replace_match_a_refit_on_same_stats() -> None:
    docs = [{"title": d} for d in DOCS]
    idx = BM25Index(fields={"title": 1.0}).fit(docs[:6])
    idx.append(docs[6:])
    assert idx.n_docs_ == 8 and idx.score("socks")[6] > 0
    idx.replace(0, {"title": "purple umbrella"})
    assert idx.score("umbrella")[0] > 0 and idx.score("running")[0] == 0


def test_replacing_rows_at_once_equals_scoring_them_as_appended() -> None:
    import copy

    docs = [{"title": d, "description": d[::-1]} for d in DOCS]
    idx = BM25Index(fields={"title": 1.0, "description": 0.5}).fit(docs)
    new = [{"title": "purple umbrella", "description": "rain"}, {"title": "red red socks", "description": ""}]
    ref = copy.deepcopy(idx)
    ref.append(new)  # rows 8 and 9: the new texts scored with the fitted statistics
    before = {f: m.tocsr() for f, m in idx.matrices_.items()}
    idx.replace_rows(np.array([5, 2]), new)
    assert idx.n_docs_ == len(DOCS)
    for f, m in idx.matrices_.items():
        m, r = m.tocsr(), ref.matrices_[f].tocsr()
        assert m.shape == (len(DOCS), len(idx.vocab_))
        for row in range(len(DOCS)):
            want = r[8] if row == 5 else r[9] if row == 2 else before[f][row]
            np.testing.assert_array_equal(m[row].toarray().ravel()[: want.shape[1]], want.toarray().ravel())
    assert idx.sequence(5).tolist() == ref.sequence(8).tolist() and idx.sequence(2).tolist() == ref.sequence(9).tolist()
    assert [idx.sequence(r).tolist() for r in (0, 1, 3, 4, 6, 7)] == [ref.sequence(r).tolist() for r in (0, 1, 3, 4, 6, 7)]
    assert idx.score("umbrella").argmax() == 5 and idx.score("socks").argmax() == 2


def test_a_term_only_a_later_field_of_an_appended_document_has_is_searchable() -> None:
    """A live upsert whose description brings a new word: searching it raised IndexError (HTTP 500)."""
    idx = BM25Index(fields={"title": 1.0, "description": 0.5}).fit(
        [{"title": "red shoe", "description": "nice"}, {"title": "blue hat", "description": "warm"}])
    idx.append([{"title": "green cap", "description": "zebra"}])
    assert {m.shape[1] for m in idx.matrices_.values()} == {len(idx.vocab_)}
    s = idx.score("zebra")
    assert s.argmax() == 2 and s[2] > 0 and s[:2].max() == 0


def test_chinese_is_segmented() -> None:
    toks = tokenize("红色跑步鞋 running")
    assert "running" in toks and len(toks) >= 3
    idx = BM25Index(fields={"title": 1.0}).fit([{"title": "红色跑步鞋"}, {"title": "蓝色水壶"}])
    assert idx.score("跑步鞋")[0] > 0 and idx.score("跑步鞋")[1] == 0


def test_unspaced_scripts_match_a_word_inside_a_longer_run() -> None:
    # Japanese and Thai write no spaces, Korean joins particles to words: the query
    # word sits inside a longer run of the title.
    titles = ["ナイキスニーカー赤", "アディダスのサンダル", "รองเท้าผ้าใบสีแดง", "red sneakers", "빨간 운동화를 추천"]
    idx = BM25Index(fields={"title": 1.0}).fit([{"title": t} for t in titles])
    for query, want in [("スニーカー", 0), ("サンダル", 1), ("ผ้าใบ", 2), ("운동화", 4)]:
        s = idx.score(query)
        assert s.argmax() == want and s[want] > 0 and np.delete(s, want).max() == 0, query
    assert tokenize("ナイキ スニーカー") == ["ナイ", "イキ", "スニ", "ニー", "ーカ", "カー"]
    assert tokenize("赤いスニーカー")[0] == "赤"  # the kanji still goes through jieba


def test_a_query_typed_without_accents_finds_the_accented_title() -> None:
    titles = ["Camión de juguete rojo", "Zapatos para niño", "Straßenschuhe Größe 42", "Crème brûlée set",
              "red truck"]
    idx = BM25Index(fields={"title": 1.0}).fit([{"title": t} for t in titles])
    for query, want in [("camion", 0), ("zapato nino", 1), ("strassenschuhe grosse", 2), ("CREME BRULEE", 3),
                        ("camio\u0301n", 0)]:  # a query in decomposed form (letter + combining accent)
        s = idx.score(query)
        assert s.argmax() == want and s[want] > 0 and np.delete(s, want).max() == 0, query
    # only Latin letters fold: kana with a voicing mark and Cyrillic й stay what they are
    assert tokenize("ガ") == ["ガ"] and tokenize("й") == ["й"]


def test_save_load(tmp_path) -> None:
    import json
    import warnings

    idx = BM25Index().fit([{"title": d} for d in DOCS])
    idx.save(tmp_path / "lex")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same tokenizer: no warning
        back = BM25Index.load(tmp_path / "lex")
    np.testing.assert_allclose(back.score("red shoes"), idx.score("red shoes"))
    params = tmp_path / "lex" / "bm25_params.json"
    params.write_text(json.dumps({k: v for k, v in json.loads(params.read_text()).items() if k != "tokenizer"}))
    with pytest.warns(UserWarning, match="vitrine fit"):  # an index from before the version was written
        BM25Index.load(tmp_path / "lex")


def test_char_trigrams_mark_word_boundaries() -> None:
    from vitrine.features.lexical import char_trigrams

    assert char_trigrams("Sinks") == ["#si", "sin", "ink", "nk#"]  # plural stemmed like the word analyzer
    assert char_trigrams("a") == []  # stopword


def test_trigram_index_matches_a_misspelled_word_that_word_bm25_misses(tmp_path) -> None:
    docs = [{"title": "vacuum cleaner bags"}, {"title": "toilet seat"}, {"title": "garden hose"}]
    word = BM25Index(fields={"title": 1.0}).fit(docs)
    tri = BM25Index(fields={"title": 1.0}, analyzer="char3").fit(docs)
    assert word.score("vaccum").max() == 0
    s = tri.score("vaccum")
    assert s.argmax() == 0 and s[0] > 0 and s[2] == 0
    assert tri.score("toliet").argmax() == 1
    tri.save(tmp_path / "tri")
    back = BM25Index.load(tmp_path / "tri")
    np.testing.assert_allclose(back.score("toliet seat"), tri.score("toliet seat"))


def test_title_sequences_keep_token_order_through_append_replace_and_save(tmp_path) -> None:
    idx = BM25Index().fit([{"title": d} for d in DOCS[:3]])

    def words(row):
        vocab = {c: t for t, c in idx.vocab_.items()}
        return [vocab[int(c)] for c in idx.sequence(row)]

    assert words(1) == tokenize(DOCS[1]) == ["blue", "running", "shoe"]
    idx.append([{"title": "steel water bottle"}])
    assert words(3) == ["steel", "water", "bottle"] and words(2) == tokenize(DOCS[2])
    idx.replace(0, {"title": "green cap"})
    assert words(0) == ["green", "cap"] and words(3) == ["steel", "water", "bottle"] and idx.n_docs_ == 4
    idx.save(tmp_path / "i")
    back = BM25Index.load(tmp_path / "i")
    assert [back.sequence(r).tolist() for r in range(4)] == [idx.sequence(r).tolist() for r in range(4)]
    assert BM25Index(analyzer="char3").fit([{"title": "x"}]).sequences_ is None


def test_column_sums_equal_scipys_slice_and_sum() -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    m = sp.random(300, 40, density=0.1, format="csc", dtype=np.float32, random_state=1)
    m[:, 7] = 0  # an empty column
    m.eliminate_zeros()
    for cols in ([3], [7], [3, 3], [7, 3, 12], list(rng.integers(0, 40, 6))):
        want = np.asarray(m[:, cols].sum(axis=1)).ravel()
        got = column_sums(m, cols)
        assert got.dtype == np.float32 and got.shape == (300,)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
