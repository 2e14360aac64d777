"""Run batch transforms in-process or as Ray tasks over shards.

Everything above the service is a batch transform over DataFrames or NumPy
arrays, so one function serves both modes: ``LocalExecutor`` calls it in
this process (the embedded default), ``RayExecutor`` ships each shard to a
Ray task on a local or remote cluster. Large shared inputs (a fitted model)
go into Ray's object store once, not once per task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vitrine.errors import MissingDependencyError

EXECUTORS = ("local", "ray")


def shard_frame(df: pd.DataFrame, n_shards: int) -> list[tuple[int, pd.DataFrame]]:
    """Split a frame into at most ``n_shards`` contiguous (row offset, shard) pairs."""
    n_shards = max(1, min(n_shards, len(df) or 1))
    bounds = np.linspace(0, len(df), n_shards + 1).astype(int)
    return [(int(a), df.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


class LocalExecutor:
    """Runs every shard in this process, one after another."""

    name = "local"

    def map(self, fn: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
        return [fn(item, **shared) for item in items]

    @property
    def parallelism(self) -> int:
        return 1

    def shutdown(self) -> None:
        pass


class RayExecutor:
    """Runs shards as Ray tasks.

    Parameters
    ----------
    address : Ray cluster address ("auto" for a running cluster); None starts
        a local one for this process.
    num_cpus : CPUs of the local cluster when one is started.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus

    def _ray(self):
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError("Ray is not installed; install `vitrine[scale]`") from exc
        if not ray.is_initialized():
            kwargs = {"address": self.address} if self.address else {"num_cpus": self.num_cpus}
            ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **kwargs)
        return ray

    @property
    def parallelism(self) -> int:
        return max(1, int(self._ray().cluster_resources().get("CPU", 1)))

    def map(self, fn: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
        ray = self._ray()
        refs = {k: ray.put(v) for k, v in shared.items()}
        task = ray.remote(_call)
        return ray.get([task.remote(fn, item, **refs) for item in items])

    def shutdown(self) -> None:
        try:
            import ray
        except ImportError:
            return
        if ray.is_initialized():
            ray.shutdown()


def _call(fn: Callable[..., Any], item: Any, **shared: Any) -> Any:
    # Ray resolves top-level ObjectRef arguments before the call, so the
    # shared values arrive here as the objects themselves.
    return fn(item, **shared)


def get_executor(name: str = "local", address: str | None = None, num_cpus: int | None = None):
    """An executor by name: "local" (default) or "ray"."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus)
    raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
