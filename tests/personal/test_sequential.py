"""SASRec's item embeddings tied to product vectors."""

from __future__ import annotations

import numpy as np

from vitrine.personal.sequential import SASRec

GROUPS, PER_GROUP, COLD = 8, 30, 5  # the last COLD products of each group never occur in a sequence


def _shop(seed: int = 0):
    """Shoppers who buy within one group; product vectors say the group (noisily)."""
    rng = np.random.default_rng(seed)
    n = GROUPS * PER_GROUP
    group = np.repeat(np.arange(GROUPS), PER_GROUP)
    vectors = np.eye(GROUPS)[group] + 0.3 * rng.normal(size=(n, GROUPS))
    warm = [np.arange(g * PER_GROUP, (g + 1) * PER_GROUP - COLD) for g in range(GROUPS)]
    seqs = []
    for _ in range(600):
        g = rng.integers(GROUPS)
        seqs.append(rng.choice(warm[g], size=rng.integers(3, 9)))
    cold = np.concatenate([np.arange((g + 1) * PER_GROUP - COLD, (g + 1) * PER_GROUP) for g in range(GROUPS)])
    return seqs, vectors.astype(np.float32), group, cold


def _cold_auc(model: SASRec, seqs, group, cold) -> float:
    """How often a shopper's state scores a cold product of their group above one of another group."""
    states = model.encode(seqs[:200])
    wins = []
    for s, st in zip(seqs[:200], states, strict=True):
        sc = model.scores(st, len(group))[cold]
        same = group[cold] == group[s[0]]
        wins.append((sc[same][:, None] > sc[~same][None]).mean())
    return float(np.mean(wins))


def test_tied_embeddings_place_products_nobody_bought_by_their_vectors():
    seqs, vectors, group, cold = _shop()
    kw = {"dim": 16, "epochs": 60, "max_seconds": 600, "negatives": 64, "seed": 0}
    tied = SASRec(**kw).fit(seqs, len(group), init=vectors)
    # vectors that only start the embeddings fade as cold products are pushed down as negatives
    untied = SASRec(**kw, tie_content=False).fit(seqs, len(group), init=vectors)
    auc_tied, auc_untied = _cold_auc(tied, seqs, group, cold), _cold_auc(untied, seqs, group, cold)
    assert auc_tied > 0.9, auc_tied
    assert auc_tied > auc_untied + 0.05, (auc_tied, auc_untied)


def test_saved_model_scores_as_the_tied_one_did(tmp_path):
    seqs, vectors, group, _ = _shop(1)
    model = SASRec(dim=16, epochs=3, max_seconds=600, negatives=64).fit(seqs, len(group), init=vectors)
    model.save(tmp_path)
    back = SASRec.load(tmp_path)
    assert back.module_.proj is None  # the projection was folded into the item table
    np.testing.assert_allclose(back.item_emb_, model.item_emb_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back.encode(seqs[:50]), model.encode(seqs[:50]), rtol=1e-4, atol=1e-5)
