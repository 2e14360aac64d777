"""LightGBM LambdaMART over assembled features, with grouped contributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitrine.rank.features import GROUPS, feature_group
from vitrine.rank.labels import MAX_LABEL, label_gain


class LambdaMART:
    """Gradient-boosted trees trained with the LambdaRank objective.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_data_in_leaf : tree ensemble size and shape.
    num_threads : LightGBM threads.
    valid_fraction : share of query groups held out for early stopping.
    seed : random seed.
    """

    def __init__(self, *, n_estimators: int = 400, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_data_in_leaf: int = 40, num_threads: int = 2, valid_fraction: float = 0.1,
                 seed: int = 0) -> None:  # fmt: skip
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.num_threads = num_threads
        self.valid_fraction = valid_fraction
        self.seed = seed

    def _params(self) -> dict:
        return {
            "objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
            "label_gain": label_gain(MAX_LABEL), "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1,
            "lambdarank_truncation_level": 20, "num_threads": self.num_threads,
            "seed": self.seed, "verbose": -1, "deterministic": True, "force_row_wise": True,
        }  # fmt: skip

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, names: list[str],
            weight: np.ndarray | None = None) -> LambdaMART:  # fmt: skip
        """Train; ``groups`` are the sizes of consecutive query groups in X."""
        import lightgbm as lgb

        self.feature_names_ = list(names)
        starts = np.concatenate([[0], np.cumsum(groups)])
        rng = np.random.default_rng(self.seed)
        n_g = len(groups)
        valid = rng.random(n_g) < self.valid_fraction if n_g >= 20 else np.zeros(n_g, bool)
        def take(mask):
            idx = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in np.flatnonzero(mask)] or [np.zeros(0, int)])
            return idx, groups[mask]
        tr, gtr = take(~valid)
        kw = {"feature_name": [n.replace(" ", "_") for n in names], "free_raw_data": True}
        dtr = lgb.Dataset(X[tr], y[tr], group=gtr, weight=None if weight is None else weight[tr], **kw)
        sets, cbs = [dtr], []
        if valid.any():
            va, gva = take(valid)
            sets.append(lgb.Dataset(X[va], y[va], group=gva, reference=dtr, **kw))
            cbs.append(lgb.early_stopping(40, verbose=False))
        self.booster_ = lgb.train(self._params(), dtr, num_boost_round=self.n_estimators,
                                  valid_sets=sets[1:] or None, callbacks=cbs)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster_.predict(X, num_iteration=self.booster_.best_iteration or None).astype(np.float64)

    def contributions(self, X: np.ndarray) -> list[dict[str, float]]:
        """Per row, the score broken down by feature group (plus "base")."""
        c = self.booster_.predict(X, pred_contrib=True, num_iteration=self.booster_.best_iteration or None)
        groups = [feature_group(n) for n in self.feature_names_]
        out = []
        for row in np.asarray(c):
            d = dict.fromkeys(GROUPS, 0.0)
            for g, v in zip(groups, row[:-1], strict=True):
                d[g] += float(v)
            d["base"] = float(row[-1])
            out.append(d)
        return out

    def importance(self) -> dict[str, float]:
        """Total gain per feature."""
        gains = self.booster_.feature_importance("gain")
        return dict(zip(self.feature_names_, map(float, gains), strict=True))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / "lambdamart.txt"))

    @classmethod
    def load(cls, folder: Path, names: list[str]) -> LambdaMART:
        import lightgbm as lgb

        self = cls()
        self.booster_ = lgb.Booster(model_file=str(folder / "lambdamart.txt"))
        self.feature_names_ = list(names)
        return self
