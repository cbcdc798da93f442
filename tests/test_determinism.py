"""The numeric configuration really is deterministic: the codec relies on these equalities.

The encoder evaluates tokens in batches while the decoder evaluates one token per call;
that is only correct if the logits are bit-identical (flash attention on, a Q8_0 K cache):
every test runs for each configuration archives may use (``codec.EXACT_NUMERICS``).
"""

from __future__ import annotations

import numpy as np
import pytest

from nacrith.codec import EXACT_NUMERICS


TEXT = (
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    b"nothing to do: once or twice she had peeped into the book her sister was reading, but it had "
    b"no pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without "
    b"pictures or conversations?' So she was considering in her own mind (as well as she could, for "
    b"the hot day made her feel very sleepy and stupid), whether the pleasure of making a daisy-chain "
    b"would be worth the trouble of getting up and picking the daisies, when suddenly a White Rabbit "
    b"with pink eyes ran close by her."
)


@pytest.fixture(params=EXACT_NUMERICS, ids=lambda n: f"k{n.type_k}v{n.type_v}")
def numeric(request):
    return request.param


@pytest.fixture(scope="module")
def tokens(engine):
    syms = engine.tokenizer.encode(TEXT)
    return np.concatenate(([engine.start_token], syms)).astype(np.int64)


def one_by_one(ctx, tokens):
    ctx.clear()
    return np.stack([ctx.decode((int(t),), i)[0] for i, t in enumerate(tokens)])


def batched(ctx, tokens, size):
    ctx.clear()
    rows = [ctx.decode(tokens[s : s + size], s) for s in range(0, len(tokens), size)]
    return np.concatenate(rows)


def test_batched_logits_equal_one_token_logits(engine, tokens, numeric):
    ctx = engine.context(512, numeric)
    ref = one_by_one(ctx, tokens)
    for size in (ctx.n_batch, 7, 100):
        got = batched(ctx, tokens, size)
        assert np.array_equal(got, ref), f"batch size {size}: max |d| {np.abs(got - ref).max()}"


def test_thread_count_does_not_change_logits(engine, tokens, numeric):
    ctx = engine.context(512, numeric)
    ctx.set_threads(1)
    one = batched(ctx, tokens, ctx.n_batch)
    ctx.set_threads(2)
    two = batched(ctx, tokens, ctx.n_batch)
    ctx.set_threads(engine.threads)
    assert np.array_equal(one, two)


def test_repeated_runs_identical(engine, tokens, numeric):
    ctx = engine.context(512, numeric)
    assert np.array_equal(batched(ctx, tokens, 64), batched(ctx, tokens, 64))


def stream_with_slides(ctx, tokens, batch, window=160, slide=48, sinks=4):
    """Evaluate like the codec: batches never cross a slide."""
    ctx.clear()
    rows, pos, i = [], 0, 0
    while i < len(tokens):
        if pos == window:
            ctx.slide(0, sinks, slide, window)
            pos -= slide
        n = min(batch, window - pos, len(tokens) - i)
        rows.append(ctx.decode(tokens[i : i + n], pos))
        pos += n
        i += n
    return np.concatenate(rows)


@pytest.fixture(scope="module")
def long_tokens(engine):
    syms = engine.tokenizer.encode(TEXT * 3)
    return np.concatenate(([engine.start_token], syms)).astype(np.int64)


def test_slid_window_batched_equals_one_token(engine, long_tokens, numeric):
    ctx = engine.context(160, numeric)
    assert len(long_tokens) > 2 * 160  # several slides
    assert np.array_equal(stream_with_slides(ctx, long_tokens, 64), stream_with_slides(ctx, long_tokens, 1))


def test_lockstep_streams_equal_streams_alone(engine, long_tokens, numeric):
    """Several sequences in one llama_decode give each the logits it gets alone."""
    n = 3
    alone_ctx = engine.context(160, numeric)
    parts = [long_tokens[k * 40 : k * 40 + 120] for k in range(n)]
    alone = [stream_with_slides(alone_ctx, p, 32, window=100, slide=30) for p in parts]
    ctx = engine.context(100, numeric, lanes=n)
    ctx.clear()
    pos = [0] * n
    got = [[] for _ in range(n)]
    for i in range(120):
        for k in range(n):
            if pos[k] == 100:
                ctx.slide(k, 4, 30, 100)
                pos[k] -= 30
        lanes = [(k + i) % n for k in range(n)]  # the order within the batch must not matter
        rows = ctx.decode_multi([parts[k][i] for k in lanes], [pos[k] for k in lanes], lanes)
        for k, row in zip(lanes, rows):
            got[k].append(row)
            pos[k] += 1
    for k in range(n):
        assert np.array_equal(np.stack(got[k]), alone[k]), k
