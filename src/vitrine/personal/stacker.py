"""A learned blend of the personal sources: LambdaMART over their z-scores.

The tuned linear blend gives every source one weight for every shopper and
every list. Which source to trust depends on the case: a co-purchase count
says much when it is far above the rest of the list and little when the
whole list ties at zero; a shopper with two events is better served by
popularity than one with forty. A small LambdaMART model over the same
z-scores, each score's gap to the list's best, the linear blend and the
shopper's history length learns such rules from the tuning holdout.

It is trained on three quarters of the tuning shoppers and kept only when it
ranks the held-out product better than the linear blend on the other
quarter, by more than one standard error of the paired gain (``kept_``); a
kept model is refit on all of them with the number of rounds that check
chose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROUNDS = (100, 200, 300, 400)  # boosting rounds compared on the check shoppers
CHECK_SHARE = 0.25
PARAMS = {"objective": "lambdarank", "learning_rate": 0.03, "num_leaves": 7, "min_data_in_leaf": 100,
          "feature_fraction": 0.7, "verbose": -1, "num_threads": 1}


def features(z: np.ndarray, blend: np.ndarray, n_history: int) -> np.ndarray:
    """(m, 2S + 3) features of one list: z-scores (m, S), their gaps to the list's best, blend, its gap."""
    z = np.where(np.isfinite(z), z, -1e4).astype(np.float32)
    b = np.where(np.isfinite(blend), blend, -1e4).astype(np.float32)[:, None]
    hist = np.full((len(z), 1), np.log1p(n_history), np.float32)
    return np.concatenate([z, z - z.max(axis=0), b, b - b.max(), hist], axis=1)


def ndcg_of_target(scores: list[np.ndarray], targets: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of one relevant item per list (index ``targets[i]``, -1 when absent); ties count half."""
    out = np.zeros(len(scores))
    for i, (s, t) in enumerate(zip(scores, targets, strict=True)):
        if t < 0:
            continue
        rank = (s > s[t]).sum() + 0.5 * ((s == s[t]).sum() - 1)
        out[i] = 1.0 / np.log2(rank + 2) if rank < k else 0.0
    return out


class Stacker:
    """LambdaMART over per-list source features (see the module docstring).

    Attributes
    ----------
    kept_ : whether the model beat the linear blend on the check shoppers (by one standard error).
    booster_ : the fitted ``lightgbm.Booster`` (when kept).
    check_ : NDCG@k of the linear blend and of the model on the check shoppers, and the rounds chosen.
    """

    def __init__(self, seed: int = 0, k: int = 10) -> None:
        self.seed, self.k = seed, k

    def _train(self, X: list[np.ndarray], targets: np.ndarray, rounds: int):
        import lightgbm as lgb

        rng = np.random.default_rng(self.seed)
        keep = [i for i, t in enumerate(targets) if t >= 0]  # a list without the product teaches nothing
        # shuffled rows: the product sits first in every list, and LightGBM sorts ties by position
        order = [rng.permutation(len(X[i])) for i in keep]
        y = np.concatenate([o == targets[i] for i, o in zip(keep, order, strict=True)]).astype(np.float32)
        data = lgb.Dataset(np.concatenate([X[i][o] for i, o in zip(keep, order, strict=True)]), y,
                           group=[len(X[i]) for i in keep])
        # LambdaMART's pairs reach twice the cutoff: a product just below it still moves up
        params = {**PARAMS, "seed": self.seed, "lambdarank_truncation_level": 2 * self.k}
        return lgb.train(params, data, num_boost_round=rounds)

    def fit(self, X: list[np.ndarray], blends: list[np.ndarray], targets: np.ndarray,
            users: np.ndarray) -> Stacker:
        """Fit on lists ``X`` (features of each), keep only if better than ``blends`` on check shoppers.

        ``targets`` is the held-out product's index in each list (-1 when the list lacks it) and
        ``users`` the tuning shopper of each list (lists of one shopper stay on one side).
        """
        targets = np.asarray(targets, dtype=np.int64)
        self.kept_, self.check_ = False, {}
        shoppers = np.unique(users)
        if len(shoppers) < 2:
            return self
        rng = np.random.default_rng(self.seed)
        check_users = rng.choice(shoppers, size=max(1, int(len(shoppers) * CHECK_SHARE)), replace=False)
        check = np.isin(users, check_users)
        fit_i, check_i = np.flatnonzero(~check), np.flatnonzero(check)
        if (targets[fit_i] >= 0).sum() < 100:
            return self
        booster = self._train([X[i] for i in fit_i], targets[fit_i], max(ROUNDS))
        linear = ndcg_of_target([blends[i] for i in check_i], targets[check_i], self.k)
        stacked = np.concatenate([X[i] for i in check_i])
        cuts = np.cumsum([len(X[i]) for i in check_i])[:-1]
        by_rounds = {r: ndcg_of_target(np.split(booster.predict(stacked, num_iteration=r), cuts), targets[check_i],
                                       self.k) for r in ROUNDS}
        rounds = max(by_rounds, key=lambda r: by_rounds[r].mean())
        gain = by_rounds[rounds] - linear
        se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else np.inf
        self.check_ = {"linear": round(float(linear.mean()), 4), "stacker": round(float(by_rounds[rounds].mean()), 4),
                       "gain_se": round(se, 4), "rounds": int(rounds), "lists": len(X), "check_lists": len(check_i)}
        # kept when better by more than one standard error of the paired gain: a model that only
        # ties the blend on the check shoppers is noise the shop's own data does not vouch for
        self.kept_ = bool(gain.mean() > se)
        if not self.kept_:
            return self
        self.booster_ = self._train(X, targets, rounds)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster_.predict(X, num_threads=1).astype(np.float32)

    def save(self, path: Path) -> None:
        Path(path).write_text(self.booster_.model_to_string())

    @classmethod
    def load(cls, path: Path) -> Stacker:
        import lightgbm as lgb

        self = cls()
        self.booster_ = lgb.Booster(model_str=Path(path).read_text())
        return self
