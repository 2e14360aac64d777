"""LightGBM LambdaMART over assembled features, with grouped contributions."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from vitrine.rank.features import GROUPS, feature_group
from vitrine.rank.labels import MAX_LABEL, label_gain
from vitrine.threads import lightgbm_threads


_local = threading.local()


def predict_threads(n: int) -> None:
    """LightGBM threads for this thread's predictions (0: the model's own
    ``num_threads``, which a saved booster applies whatever OpenMP was told)."""
    _local.n = n


def _threads() -> dict:
    n = getattr(_local, "n", 0)
    return {"num_threads": n} if n else {}


def _train(params: dict, data, rounds: int, callbacks: list | None = None, **kw):
    """``lightgbm.train`` on as many of ``params``' threads as run fastest (vitrine.threads)."""
    import lightgbm as lgb

    with lightgbm_threads(int(params.get("num_threads", 0))) as governor:
        return lgb.train(params, data, num_boost_round=rounds, callbacks=[*(callbacks or []), governor], **kw)


def by_group(values: np.ndarray, names: list[str], base) -> list[dict[str, float]]:
    """Per row, the feature columns of ``values`` summed by feature group, plus "base" (one number, or one per row)."""
    groups = [feature_group(n) for n in names]
    base = np.broadcast_to(np.asarray(base, dtype=np.float64), (len(values),))
    out = []
    for row, b in zip(np.asarray(values), base, strict=True):
        d = dict.fromkeys(GROUPS, 0.0)
        for g, v in zip(groups, row, strict=True):
            d[g] += float(v)
        d["base"] = float(b)
        out.append(d)
    return out


class LambdaMART:
    """Gradient-boosted trees trained with the LambdaRank objective.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_data_in_leaf : tree ensemble size and shape.
    num_threads : LightGBM threads.
    valid_fraction : share of query groups held out for early stopping.
    patience : rounds without a better validation NDCG before stopping.
    cutoff : NDCG cutoff of early stopping; LambdaMART's pairs reach twice as deep.
    n_models : boosters averaged, each with its own seed and early-stopping split (seed,
        seed + 1, ...): on Home Depot's judgments single boosters scored 0.4328-0.4379
        retrieve NDCG@10 by seed, their average 0.4379 (docs/bench/rank.md).
    seed : random seed.
    """

    def __init__(self, *, n_estimators: int = 400, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_data_in_leaf: int = 40, num_threads: int = 2, valid_fraction: float = 0.1,
                 patience: int = 40, n_models: int = 1, seed: int = 0,
                 monotone: dict[str, int] | None = None, cutoff: int = 10) -> None:  # fmt: skip
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.num_threads = num_threads
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.n_models = n_models
        self.seed = seed
        self.monotone = monotone
        self.cutoff = cutoff

    def _constraints(self) -> dict:
        """LightGBM's monotone constraints for the named features (+1 up, -1 down), if any."""
        if not self.monotone:
            return {}
        return {"monotone_constraints": [int(self.monotone.get(n, 0)) for n in self.feature_names_]}

    def _params(self, seed: int | None = None) -> dict:
        return {
            "objective": "lambdarank", "metric": "ndcg", "eval_at": [self.cutoff],
            "label_gain": label_gain(MAX_LABEL), "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1,
            "lambdarank_truncation_level": 2 * self.cutoff, "num_threads": self.num_threads,
            "seed": self.seed if seed is None else seed, "verbose": -1, "deterministic": True,
            "force_row_wise": True, **self._constraints(),
        }  # fmt: skip

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, names: list[str],
            weight: np.ndarray | None = None) -> LambdaMART:  # fmt: skip
        """Train; ``groups`` are the sizes of consecutive query groups in X."""
        self.feature_names_ = list(names)
        self.boosters_ = [self._fit_one(X, y, groups, names, weight, self.seed + i)
                          for i in range(max(1, self.n_models))]
        self.booster_ = self.boosters_[0]
        return self

    def _fit_one(self, X, y, groups, names, weight, seed: int):
        import lightgbm as lgb

        starts = np.concatenate([[0], np.cumsum(groups)])
        rng = np.random.default_rng(seed)
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
            cbs.append(lgb.early_stopping(self.patience, verbose=False))
        return _train(self._params(seed), dtr, self.n_estimators, cbs, valid_sets=sets[1:] or None)

    def _members(self) -> list:
        return getattr(self, "boosters_", None) or [self.booster_]

    def predict(self, X: np.ndarray) -> np.ndarray:
        kw = _threads()
        return np.mean([b.predict(X, num_iteration=b.best_iteration or None, **kw) for b in self._members()],
                       axis=0).astype(np.float64)

    def contributions(self, X: np.ndarray) -> list[dict[str, float]]:
        """Per row, the score broken down by feature group (plus "base"), averaged over the boosters."""
        c = np.asarray(np.mean([b.predict(X, pred_contrib=True, num_iteration=b.best_iteration or None,
                                          **_threads()) for b in self._members()], axis=0))
        return by_group(c[:, :-1], self.feature_names_, c[:, -1])

    def importance(self) -> dict[str, float]:
        """Total gain per feature (mean over the boosters)."""
        gains = np.mean([b.feature_importance("gain") for b in self._members()], axis=0)
        return dict(zip(self.feature_names_, map(float, gains), strict=True))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("lambdamart_*.txt"):  # load reads members until a number is missing
            stale.unlink()
        for i, b in enumerate(self._members()):
            b.save_model(str(folder / ("lambdamart.txt" if i == 0 else f"lambdamart_{i}.txt")))

    @classmethod
    def load(cls, folder: Path, names: list[str]) -> LambdaMART:
        import lightgbm as lgb

        self = cls()
        files = [folder / "lambdamart.txt"]
        while (f := folder / f"lambdamart_{len(files)}.txt").exists():
            files.append(f)
        self.boosters_ = [lgb.Booster(model_file=str(f)) for f in files]
        self.booster_ = self.boosters_[0]
        self.n_models = len(files)
        self.feature_names_ = list(names)
        return self


class ClickModel(LambdaMART):
    """Pointwise gradient-boosted attractiveness model under the position-based
    click model: P(click | x, position k) = theta_k * sigmoid(f(x)).

    Fitted by maximum likelihood with the examination propensities theta held
    fixed (estimated from the same logs), so ``sigmoid(f(x))`` estimates the
    probability of a click *when examined* -- position bias is corrected in
    the likelihood instead of by inverse-propensity weights (no 1/theta
    variance blow-up). ``theta = 1`` everywhere gives the naive (uncorrected)
    click model. Rows with ``theta = 1`` and ``click = 0`` can also encode
    known non-relevant candidates (e.g. grade-0 judgments).

    Boosting uses the gradient of the negative log-likelihood in f and its
    expected Fisher information as the hessian (always positive).
    """

    def __init__(self, *, n_estimators: int = 400, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_data_in_leaf: int = 100, num_threads: int = 2, valid_fraction: float = 0.1,
                 seed: int = 0, monotone: dict[str, int] | None = None) -> None:  # fmt: skip
        super().__init__(n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves,
                         min_data_in_leaf=min_data_in_leaf, num_threads=num_threads,
                         valid_fraction=valid_fraction, seed=seed, monotone=monotone)

    def _params(self) -> dict:
        return {
            "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf, "min_sum_hessian_in_leaf": 1e-3,
            "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "lambda_l2": 1.0,
            "num_threads": self.num_threads, "seed": self.seed, "verbose": -1, "deterministic": True,
            "force_row_wise": True, **self._constraints(),
        }  # fmt: skip

    @staticmethod
    def _grad_hess(f: np.ndarray, click: np.ndarray, theta: np.ndarray, weight: np.ndarray):
        s = 1.0 / (1.0 + np.exp(-np.clip(f, -30, 30)))
        q = np.clip(1.0 - theta * s, 1e-9, None)
        # A soft click (a judged grade as a share of the best) mixes the two cases.
        g = click * -(1.0 - s) + (1.0 - click) * theta * s * (1.0 - s) / q
        h = theta * s * (1.0 - s) ** 2 / q
        return weight * g, np.maximum(weight * h, 1e-9)

    @staticmethod
    def nll(f: np.ndarray, click: np.ndarray, theta: np.ndarray, weight: np.ndarray) -> float:
        s = 1.0 / (1.0 + np.exp(-np.clip(f, -30, 30)))
        p = np.clip(theta * s, 1e-9, 1 - 1e-9)
        return float(-(weight * (click * np.log(p) + (1 - click) * np.log(1 - p))).sum() / weight.sum())

    def fit(self, X: np.ndarray, click: np.ndarray, groups: np.ndarray, names: list[str],
            weight: np.ndarray | None = None, theta: np.ndarray | None = None) -> ClickModel:  # fmt: skip
        """``groups``: sizes of consecutive pages (held out together for early
        stopping); ``theta``: examination probability of each row (1 = always examined)."""
        import lightgbm as lgb

        self.feature_names_ = list(names)
        n = len(click)
        click = np.asarray(click, dtype=np.float64)
        theta = np.ones(n) if theta is None else np.clip(np.asarray(theta, dtype=np.float64), 1e-3, 1.0)
        weight = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
        starts = np.concatenate([[0], np.cumsum(groups)])
        rng = np.random.default_rng(self.seed)
        n_g = len(groups)
        valid_g = rng.random(n_g) < self.valid_fraction if n_g >= 20 else np.zeros(n_g, bool)
        valid = np.repeat(valid_g, groups)
        tr, va = ~valid, valid
        # Start from the (theta-adjusted) base rate.
        rate = float(np.clip((weight[tr] * click[tr]).sum() / (weight[tr] * theta[tr]).sum(), 1e-4, 0.99))
        self.init_ = float(np.log(rate / (1 - rate)))
        kw = {"feature_name": [nm.replace(" ", "_") for nm in names], "free_raw_data": True}
        dtr = lgb.Dataset(X[tr], click[tr], init_score=np.full(int(tr.sum()), self.init_), **kw)
        ctr, ttr, wtr = click[tr], theta[tr], weight[tr]

        def fobj(preds, _data):
            return self._grad_hess(preds, ctr, ttr, wtr)

        params = dict(self._params(), objective=fobj)
        booster = _train(params, dtr, self.n_estimators)
        best = self.n_estimators
        if va.any():
            Xv, cv, tv, wv = X[va], click[va], theta[va], weight[va]
            losses = [self.nll(self.init_ + booster.predict(Xv, num_iteration=i, raw_score=True), cv, tv, wv)
                      for i in range(10, self.n_estimators + 1, 10)]
            best = 10 * (int(np.argmin(losses)) + 1)
            self.valid_nll_ = float(min(losses))
        self.booster_ = booster
        self.best_iteration_ = best
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Logit of the attractiveness (click probability when examined)."""
        raw = self.booster_.predict(X, num_iteration=self.best_iteration_, raw_score=True, **_threads())
        return self.init_ + raw

    def contributions(self, X: np.ndarray) -> list[dict[str, float]]:
        c = np.asarray(self.booster_.predict(X, pred_contrib=True, num_iteration=self.best_iteration_,
                                             **_threads()))
        return by_group(c[:, :-1], self.feature_names_, c[:, -1] + self.init_)

    def save(self, folder: Path) -> None:
        import json

        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / "clickmodel.txt"))
        (folder / "clickmodel.json").write_text(json.dumps({"init": self.init_, "best": self.best_iteration_}))

    @classmethod
    def load(cls, folder: Path, names: list[str]) -> ClickModel:
        import json

        import lightgbm as lgb

        self = cls()
        self.booster_ = lgb.Booster(model_file=str(folder / "clickmodel.txt"))
        meta = json.loads((folder / "clickmodel.json").read_text())
        self.init_, self.best_iteration_ = float(meta["init"]), int(meta["best"])
        self.feature_names_ = list(names)
        return self
