"""How many threads a training or encoding loop runs on, chosen by timing it.

PyTorch and LightGBM parallelise with OpenMP, whose threads wait for each
other at every barrier. When another process holds one of the cores (a
server beside a refit, a second evaluation, a build) one of those threads
is descheduled and the rest spin until it returns. On the 2-core machine,
beside one busy process, two threads ran image-tower steps, MiniLM encoding
and LightGBM rounds 3-5x slower than one thread, which ran at its usual
speed (docs/bench/threads.md). No fixed setting wins both
ways: on an idle machine two threads are 1.5-2x faster than one.

:class:`ThreadGovernor` times a few steps of the loop on each thread count,
keeps the fastest, and times them again every ``hold`` seconds, since a
neighbour comes and goes. The loop calls :meth:`ThreadGovernor.tick` after
each step, with the step's size when steps differ (sequences of different
lengths). ``VITRINE_ADAPTIVE_THREADS=false`` turns it off.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PROBE_STEPS = 3  # timed steps per thread count
HOLD_SECONDS = 30.0  # time on the chosen count before timing again
LOSING = 1.5  # per unit this much slower than the best count: stop timing it
# One thread must beat all of them by this much to be chosen. Beside a busy process it wins
# by 2.5-5x; on an idle machine all threads are only 1.25x faster for small models (SASRec at
# dim 32), so three noisy steps could otherwise pick one thread for the next 30 s.
FEWER_MARGIN = 1.1


class ThreadGovernor:
    """Times steps on ``most`` threads, on the starting count and on one thread,
    and runs on the fastest.

    Parameters
    ----------
    set_threads : applies a thread count to the loop's library.
    most : the thread count the loop would use without a governor; with
        ``most <= 1`` there is nothing to choose and ``tick`` does nothing.
    probe, hold : steps timed per count; seconds between rounds of timing.
    start : the count the loop starts on (default ``most``).
    clock : seconds, monotonic (default: ``time.perf_counter``).

    Attributes
    ----------
    threads_ : the count in use now.
    choices_ : how many rounds of timing ended on each count.
    """

    def __init__(self, set_threads: Callable[[int], None], most: int, *, probe: int = PROBE_STEPS,
                 hold: float = HOLD_SECONDS, start: int | None = None,
                 clock: Callable[[], float] | None = None) -> None:  # fmt: skip
        self.set_threads, self.most, self.probe, self.hold = set_threads, int(most), probe, hold
        self.clock = clock or _clock
        self.threads_ = max(1, self.most if start is None else min(int(start), self.most))
        # The starting count stays a choice: on 16 cores with 4 held elsewhere, 12 beats 16 and 1.
        self.options = tuple(sorted({self.most, self.threads_, 1}, reverse=True)) if self.most > 1 else ()
        self.choices_: dict[int, int] = {}
        self._last: float | None = None
        self._start_round()

    def _start_round(self) -> None:
        # The count in use goes first: timing it needs no switch.
        self._queue = sorted(self.options, key=lambda c: c != self.threads_)
        self._means: dict[int, float] = {}
        self._hold_until: float | None = None
        self._next_trial()

    def _next_trial(self) -> None:
        self._trial = self._queue.pop(0) if self._queue else None
        self._spent, self._units, self._n = 0.0, 0.0, 0
        if self._trial is None:
            return
        self._use(self._trial)

    def _use(self, threads: int) -> None:
        if threads != self.threads_:
            self.set_threads(threads)
            self.threads_ = threads

    def tick(self, units: float = 1.0) -> None:
        """Call once after each step of the loop; ``units``: the step's size when
        steps differ (sequences of different lengths), so counts are compared per unit."""
        if not self.options:
            return
        now = self.clock()
        dt, self._last = (None if self._last is None else now - self._last), now
        if self._trial is None:
            if self._hold_until is not None and now >= self._hold_until:
                self._start_round()
            return
        if dt is None or units <= 0:
            return
        self._spent += dt
        self._units += units
        self._n += 1
        best = min(self._means.values(), default=None)
        # A count already half as slow again as the best one loses: no more of its steps are spent on timing.
        if self._n >= self.probe or (best is not None and self._spent > LOSING * best * self._units):
            self._means[self._trial] = self._spent / self._units
            self._next_trial()
            if self._trial is None:
                pick = min(self._means, key=lambda c: self._means[c] * (FEWER_MARGIN if c < self.most else 1.0))
                self.choices_[pick] = self.choices_.get(pick, 0) + 1
                self._use(pick)
                self._hold_until = now + self.hold


def _clock() -> float:
    return time.perf_counter()


def adaptive() -> bool:
    from vitrine.config import get_settings

    return bool(get_settings().adaptive_threads)


def busy_cores(samples: int = 5) -> int | None:
    """Threads of other processes running or waiting for a core right now
    (Linux ``/proc``; the median of a few looks), or None where unknown."""
    counts = []
    try:
        for i in range(samples):
            with open("/proc/stat") as f:
                running = next(int(line.split()[1]) for line in f if line.startswith("procs_running"))
            own = 0
            for task in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{task}/stat") as f:
                    own += f.read().rsplit(")", 1)[1].split()[0] == "R"
            counts.append(max(0, running - own))
            if i + 1 < samples:
                time.sleep(0.002)
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return sorted(counts)[len(counts) // 2]


def start_threads(most: int) -> int:
    """The count a loop starts on: ``most``, less the cores other processes hold."""
    if most <= 1 or not adaptive():
        return most
    busy = busy_cores()
    return most if busy is None else max(1, min(most, cores() - busy))


@contextmanager
def torch_threads(device: str = "cpu") -> Iterator[ThreadGovernor]:
    """A governor over PyTorch's intra-op threads (idle unless ``device`` is the
    CPU); the count is restored on exit."""
    import torch

    before = torch.get_num_threads()
    most = before if adaptive() and device == "cpu" else 1
    start = start_threads(most) if most > 1 else before
    if start != before:
        torch.set_num_threads(start)
    gov = ThreadGovernor(torch.set_num_threads, most, start=start)
    try:
        yield gov
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class LightGBMThreads:
    """A LightGBM callback that ticks a governor once per boosting round."""

    order = 40  # LightGBM sorts callbacks by it: after early stopping's 30
    before_iteration = False

    def __init__(self, gov: ThreadGovernor) -> None:
        self.gov = gov

    def __call__(self, env) -> None:  # noqa: ARG002
        self.gov.tick()


@contextmanager
def lightgbm_threads(threads: int) -> Iterator[LightGBMThreads]:
    """A governor over LightGBM's threads (``threads``: the model's ``num_threads``,
    0 for all cores), as a callback for ``lightgbm.train``.

    It moves LightGBM's process-wide thread cap (``LGBM_SetMaxThreads``), not
    the booster's ``num_threads``: ``Booster.reset_parameter`` in the middle of
    training also restarts the bagging and feature-fraction draws, so the
    model would depend on when the governor switched.
    """
    from ctypes import byref, c_int

    from lightgbm.basic import _LIB

    before = c_int(-1)
    _LIB.LGBM_GetMaxThreads(byref(before))
    most = int(threads) if threads > 0 else cores()
    start = start_threads(most)

    def cap(k: int) -> None:
        _LIB.LGBM_SetMaxThreads(c_int(int(k)))

    if start != most:
        cap(start)
    try:
        yield LightGBMThreads(ThreadGovernor(cap, most if adaptive() else 1, start=start))
    finally:
        _LIB.LGBM_SetMaxThreads(before)


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
