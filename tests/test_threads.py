"""The default thread count and the adaptive one: never a change of bits, and no collapse.

Speed itself is measured by ``tests/bench/contention.py``, not here; these tests drive the
governor with simulated call times and check the logits with real ones.
"""

from __future__ import annotations

import itertools

import os
from collections import Counter

import numpy as np
import pytest

from nacrith import threads
from nacrith.threads import ThreadGovernor


def test_default_is_the_affinity_not_an_idle_sample(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    assert threads.default_threads() == 6
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 2.5)
    assert threads.default_threads() == 3


def test_cgroup_quota_parsing(tmp_path):
    f = tmp_path / "cpu.max"
    f.write_text("max 100000\n")
    assert threads._cgroup_quota(str(f)) is None
    f.write_text("150000 100000\n")
    assert threads._cgroup_quota(str(f)) == 1.5
    assert threads._cgroup_quota(str(tmp_path / "missing")) is None


class Sim:
    """A fake clock and a cost per call that the test changes as the "machine" changes."""

    def __init__(self, max_threads: int, cost):
        self.now = 0.0
        self.cost = cost  # (threads, shape) -> seconds
        self.g = ThreadGovernor(max_threads, clock=lambda: self.now)

    def run(self, calls: int, shape=(1, 1)) -> Counter:
        used = Counter()
        for _ in range(calls):
            t = self.g.threads_for(shape)
            s = self.cost(t, shape)
            self.now += s
            self.g.record(shape, t, s)
            used[t] += 1
        return used


def quiet(t, shape):
    return {1: 0.010, 2: 0.006, 4: 0.004}[t]


def test_quiet_machine_keeps_the_most_threads():
    sim = Sim(4, quiet)
    used = sim.run(2000)
    assert sim.g.current == 4
    assert used[4] > 0.9 * 2000


def test_collapse_drops_threads_within_a_few_calls_and_recovers():
    sim = Sim(2, quiet)
    sim.run(200)
    assert sim.g.current == 2
    # Another process takes a core: two threads wait at every barrier (20x slower), one
    # thread still gets its share of a core.
    sim.cost = lambda t, shape: 0.012 if t == 1 else 0.120
    used = sim.run(20)
    assert sim.g.current == 1
    assert used[2] <= 8
    # Under lasting contention the retries of two threads get rarer (the hold doubles).
    start = sim.now
    used = sim.run(5000)
    assert sim.g.current == 1
    assert used[2] * 0.120 < 0.1 * (sim.now - start)  # under 10 % of the time spent retrying
    # The other process ends: two threads come back after at most one hold.
    sim.cost = quiet
    sim.run(int(ThreadGovernor.HOLD_MAX / 0.010) + 200)
    assert sim.g.current == 2


def test_fewer_threads_kept_where_they_are_faster():
    sim = Sim(2, lambda t, shape: 0.010 if t == 1 else 0.013)
    sim.run(3000)
    assert sim.g.current == 1


def test_a_shape_that_never_comes_again_does_not_block_adaptation():
    sim = Sim(2, quiet)
    for n in range(2, 40):  # the last, shorter batch of each of many streams
        sim.run(ThreadGovernor.FIRST + 1, (n, 0))
    sim.cost = lambda t, shape: 0.012 if t == 1 else 0.120
    sim.run(30)
    assert sim.g.current == 1


def test_counts_are_halvings_down_to_one():
    assert ThreadGovernor(6).levels == [6, 3, 1]
    assert ThreadGovernor(1).levels == [1]
    g = ThreadGovernor(1)
    assert all(g.threads_for((1, 1)) == 1 for _ in range(100))


def test_shapes_are_timed_apart():
    # Batches of 128 take far longer per call than one token: that is not a collapse.
    sim = Sim(2, lambda t, shape: quiet(t, shape) * shape[0])
    for _ in range(50):
        sim.run(10, (1, 1))
        sim.run(10, (128, 128))
    assert sim.g.current == 2


# -- with the model: the thread count never changes the logits --------------------------------

TEXT = (
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    b"nothing to do: once or twice she had peeped into the book her sister was reading."
)


@pytest.fixture(scope="module")
def tokens(engine):
    return np.asarray(engine.llm_tokens(engine.tokenizer.encode(TEXT)), dtype=np.int64)


def one_token_rows(ctx, tokens, lanes):
    ctx.clear()
    for seq in range(lanes):
        ctx.decode(tokens[:8], 0, seq, logits_from=8)
    rows = [ctx.decode_multi([int(t)] * lanes, [i] * lanes, list(range(lanes))) for i, t in enumerate(tokens[8:], 8)]
    return np.stack(rows)


@pytest.mark.parametrize("lanes", [1, 3])
def test_one_token_logits_equal_with_one_and_two_threads(engine, tokens, lanes):
    from nacrith.native import LlamaContext

    ctx = LlamaContext(engine.model, n_ctx=256 * lanes, n_batch=64, n_seq=lanes, n_threads=2)
    ctx.set_threads(1)
    one = one_token_rows(ctx, tokens, lanes)
    ctx.set_threads(2)
    two = one_token_rows(ctx, tokens, lanes)
    assert one.tobytes() == two.tobytes()
    # An adaptive context that switches between 1 and 2 threads every few calls: same bytes.
    ctx = LlamaContext(engine.model, n_ctx=256 * lanes, n_batch=64, n_seq=lanes, n_threads=2, adaptive=True)
    g = ctx.governor
    turns = itertools.count()
    g.threads_for = lambda shape: 1 + next(turns) % 2  # another count at every call
    mixed = one_token_rows(ctx, tokens, lanes)
    assert set(g.calls) == {1, 2}
    assert mixed.tobytes() == one.tobytes()
