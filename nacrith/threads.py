"""How many llama.cpp threads to run: the default, and the adaptive count while running.

The default is like ``zstd -T0``: every core this process may run on (its CPU affinity,
capped by a cgroup CPU quota where one is set), never a sample of how idle the machine looks
at start-up, which one busy moment turned into a single thread for a whole run.

Running that many threads is fast on a quiet machine and collapses on a busy one: llama.cpp
(built with OpenMP) waits at a barrier after every operation of the graph, hundreds per
token, and when another process holds the core of one of our threads, the others wait at
every barrier for the scheduler to bring it back; the whole decode runs at the speed of
the scheduler instead of at a share of the CPU (measurements in the README, "Speed and
threads").  One thread has no barriers and gets its fair share like any other process.

The thread count never changes the logits (every output value is computed whole by one
thread; ``tests/test_determinism.py`` and ``tests/test_threads.py`` check it), so it may
change between any two ``llama_decode`` calls.  :class:`ThreadGovernor` does that: it times
every call, keyed by its shape (tokens and outputs), and

* every ``REFRESH`` calls but at most once per ``PROBE_GAP`` seconds (per shape), or at once
  when the recent calls have become ``COLLAPSE`` times slower than the best seen, runs
  ``BURST`` calls (one, for calls over ``LONG_CALL`` seconds) with the next lower count and
  moves down when that is faster;
* below the top, re-tries the next higher count after a hold that doubles (up to
  ``HOLD_MAX`` seconds) each time it is still slower, so a collapsing count costs a few
  calls now and then, and a machine that has become quiet gets its threads back.

``NACRITH_ADAPTIVE_THREADS=0`` turns the adaptation off (a fixed count, for measurements).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections import Counter, deque
from typing import Callable, Hashable


def available_cores() -> int:
    """Cores this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> float | None:
    """CPUs' worth of time the cgroup may use ("max 100000": no limit, None)."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def default_threads() -> int:
    """llama.cpp threads when none are asked for: every available core (see the module doc)."""
    return available_cores()


def adaptive_enabled() -> bool:
    return os.environ.get("NACRITH_ADAPTIVE_THREADS", "1") != "0"


_calls: Counter = Counter()  # llama_decode calls per thread count, every governor of the process


def stats() -> dict[int, int]:
    """llama_decode calls per thread count so far in this process (for the benchmarks)."""
    return dict(sorted(_calls.items()))


class ThreadGovernor:
    """Chooses the thread count of each ``llama_decode`` from the times of earlier ones.

    Use: ``t = g.threads_for(shape)`` before a call, ``g.record(shape, t, seconds)`` after.
    The counts tried are ``max_threads`` halved down to 1.
    """

    WINDOW = 8  # recent calls at the current count whose median is its time
    REFRESH = 64  # calls at the current count between measurements of the next lower count
    FIRST = 3  # calls of a new shape before its first such measurement
    BURST = 3  # calls per measurement of another count (their median is its time)
    PROBE_GAP = 60.0  # seconds between periodic measurements of the lower count, per shape
    LONG_CALL = 0.1  # calls this long are measured once: a burst of them costs seconds
    COLLAPSE = 3.0  # median of the last 4 calls this many times the best: measure lower at once
    MARGIN = 0.95  # another count must take at most this fraction of the time to be chosen
    HOLD_MIN = 1.0  # seconds at a lower count before trying the higher one again ...
    HOLD_MAX = 32.0  # ... doubling after each try that was still slower, up to this

    def __init__(self, max_threads: int, clock: Callable[[], float] = time.perf_counter):
        levels = [max(1, int(max_threads))]
        while levels[-1] > 1:
            levels.append(levels[-1] // 2)
        self.levels = levels
        self.i = 0  # index of the current count in levels
        self.clock = clock
        self.recent: dict[tuple, deque] = {}
        self.best: dict[tuple, float] = {}
        self.since_lower: dict[Hashable, int] = {}
        self.last_lower: dict[Hashable, float] = {}  # when each shape's lower count was last measured
        self.urgent: set = set()  # shapes whose calls collapsed: measure lower at once
        self.probe: tuple[int, Hashable, list[float]] | None = None  # (threads, shape, times)
        self.probe_waited = 0  # calls of other shapes since the probe began
        self.hold = self.HOLD_MIN
        self.next_up = 0.0
        self.calls: Counter = Counter()
        self.switches = 0

    @property
    def current(self) -> int:
        return self.levels[self.i]

    def threads_for(self, shape: Hashable) -> int:
        if self.probe is not None and self.probe[1] != shape:
            # A shape may not come again (the last batch of a stream): give up on it soon.
            self.probe_waited += 1
            if self.probe_waited > 2 * self.BURST:
                self.since_lower[self.probe[1]] = 0
                self.probe = None
        if self.probe is None:
            self.probe_waited = 0
            lower = self.i + 1 < len(self.levels)
            due = (
                self.since_lower.get(shape, self.REFRESH - self.FIRST) >= self.REFRESH
                and self.clock() - self.last_lower.get(shape, -math.inf) >= self.PROBE_GAP
            )
            if lower and (shape in self.urgent or due):
                self.probe = (self.levels[self.i + 1], shape, [])
                self.urgent.discard(shape)
                self.last_lower[shape] = self.clock()
            elif self.i > 0 and self.clock() >= self.next_up and len(self._recent(shape, self.current)) >= 4:
                self.probe = (self.levels[self.i - 1], shape, [])
        if self.probe is not None and self.probe[1] == shape:
            return self.probe[0]
        return self.current

    def record(self, shape: Hashable, threads: int, seconds: float) -> None:
        self.calls[threads] += 1
        _calls[threads] += 1
        key = (shape, threads)
        if seconds < self.best.get(key, math.inf):
            self.best[key] = seconds
        if self.probe is not None and self.probe[1] == shape and self.probe[0] == threads:
            self.probe[2].append(seconds)
            recent = self._recent(shape, self.current)
            # A higher count that has collapsed costs many calls' time per call: one is enough.
            hopeless = threads > self.current and recent and seconds > 2 * statistics.median(recent)
            long = bool(recent) and statistics.median(recent) > self.LONG_CALL
            if len(self.probe[2]) >= (1 if long else self.BURST) or hopeless:
                self._judge()
            return
        if threads != self.current:
            return  # a count set from outside between calls: nothing to learn
        recent = self._recent(shape, threads)
        recent.append(seconds)
        self.since_lower[shape] = self.since_lower.get(shape, self.REFRESH - self.FIRST) + 1
        if len(recent) >= 4 and statistics.median(list(recent)[-4:]) > self.COLLAPSE * self.best[key]:
            self.urgent.add(shape)

    def _recent(self, shape: Hashable, threads: int) -> deque:
        q = self.recent.get((shape, threads))
        if q is None:
            q = self.recent[(shape, threads)] = deque(maxlen=self.WINDOW)
        return q

    def _judge(self) -> None:
        threads, shape, times = self.probe
        self.probe = None
        tried = statistics.median(times)
        recent = self._recent(shape, self.current)
        now_time = statistics.median(recent) if recent else math.inf
        faster = tried < now_time * self.MARGIN
        if threads < self.current:
            self.since_lower[shape] = 0
            if faster:
                self._switch(self.i + 1, shape, times)
                self.next_up = self.clock() + self.hold
        elif faster:
            self._switch(self.i - 1, shape, times)
            self.hold = self.HOLD_MIN
        else:
            self.hold = min(self.hold * 2, self.HOLD_MAX)
            self.next_up = self.clock() + self.hold

    def _switch(self, i: int, shape: Hashable, times: list[float]) -> None:
        self.i = i
        self.switches += 1
        # What was measured at this count before is stale now, except the burst just run.
        for key in [k for k in self.recent if k[1] == self.current]:
            del self.recent[key]
        self._recent(shape, self.current).extend(times)
        self.since_lower = {}
