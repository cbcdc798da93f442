"""Tests for nacrith.cdf: the float -> integer frequency mapping.

Checks the invariants the coder relies on (every freq >= 1, total exactly 2**24), robustness to
hostile floats, that the fused per-token kernels agree exactly with the reference path, and that
quantisation costs (almost) nothing in coded length.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nacrith.cdf import (
    MAX_VOCAB,
    TOTAL,
    cumulative,
    exp_nonpos,
    find_symbol,
    freqs_from_logits,
    freqs_from_probs,
    interval_from_logits,
    symbol_from_logits,
    symbol_interval,
)
from nacrith.coder import ArithmeticDecoder, ArithmeticEncoder

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-300, 5e-324, 1e300, 3.4e38, -3.4e38]


def check_invariants(freqs: np.ndarray, v: int) -> None:
    assert freqs.dtype == np.int64
    assert freqs.shape == (v,)
    assert int(freqs.min()) >= 1
    assert int(freqs.sum()) == TOTAL


@st.composite
def float_vectors(draw, min_v: int = 1, max_v: int = 300, dtype=np.float64):
    v = draw(st.integers(min_v, max_v))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "wide", "peaked", "ties", "special"]))
    if kind == "normal":
        x = rng.standard_normal(v)
    elif kind == "wide":
        x = rng.standard_normal(v) * 300.0
    elif kind == "peaked":
        x = rng.standard_normal(v) * 3.0
        x[rng.integers(0, v)] += 25.0
    elif kind == "ties":
        x = rng.integers(-3, 3, size=v).astype(np.float64)
    else:
        x = rng.standard_normal(v) * 10.0
        idx = rng.integers(0, v, size=max(1, v // 4))
        x[idx] = rng.choice(np.array(SPECIAL_FLOATS), size=idx.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype)


# --------------------------------------------------------------------------- invariants


@SETTINGS
@given(float_vectors())
def test_probs_invariants(p):
    with np.errstate(over="ignore", invalid="ignore"):
        freqs = freqs_from_probs(np.abs(p))
    check_invariants(freqs, p.shape[0])
    check_invariants(freqs_from_probs(p), p.shape[0])  # negatives / NaN / inf count as 0


@SETTINGS
@given(float_vectors(dtype=np.float32))
def test_logits_invariants_and_determinism(logits):
    freqs = freqs_from_logits(logits)
    check_invariants(freqs, logits.shape[0])
    assert np.array_equal(freqs, freqs_from_logits(logits.copy()))


@pytest.mark.parametrize("v", [2, 49152, 151936, MAX_VOCAB])
def test_large_vocab_invariants(v):
    rng = np.random.default_rng(v)
    logits = (rng.standard_normal(v) * 4).astype(np.float32)
    logits[rng.integers(0, v)] = 30.0
    check_invariants(freqs_from_logits(logits), v)
    check_invariants(freqs_from_probs(rng.random(v)), v)
    check_invariants(freqs_from_probs(np.zeros(v)), v)


def test_degenerate_inputs():
    # all zero / all invalid -> uniform; the remainder goes to the first symbol
    for p in [np.zeros(10), np.full(10, np.nan), -np.ones(10), np.full(10, np.inf)]:
        f = freqs_from_probs(p)
        check_invariants(f, 10)
        assert (f[1:] == f[1]).all() and f[0] >= f[1]
    f = freqs_from_logits(np.full(10, np.nan, dtype=np.float32))
    assert np.array_equal(f, freqs_from_probs(np.ones(10)))
    f = freqs_from_logits(np.full(7, -np.inf, dtype=np.float32))
    check_invariants(f, 7)
    # a single symbol takes everything
    assert freqs_from_probs(np.array([0.3])).tolist() == [TOTAL]
    assert freqs_from_logits(np.array([-5.0], dtype=np.float32)).tolist() == [TOTAL]
    # one certain symbol: everything else exactly 1
    f = freqs_from_probs(np.array([0.0, 0.0, 1.0, 0.0]))
    assert f.tolist() == [1, 1, TOTAL - 3, 1]
    # masked (-inf) and NaN logits still get frequency 1
    f = freqs_from_logits(np.array([0.0, -np.inf, np.nan, np.inf, 0.0], dtype=np.float32))
    assert f[1] == f[2] == f[3] == 1 and f[0] >= f[4] and f.sum() == TOTAL
    # huge finite probabilities do not overflow the normalisation
    check_invariants(freqs_from_probs(np.array([1e308, 1e308, 1e308, 1.0])), 4)


def test_logits_dtypes():
    rng = np.random.default_rng(8)
    x64 = rng.standard_normal(300) * 4
    f32 = freqs_from_logits(x64.astype(np.float32))
    assert np.array_equal(freqs_from_logits(x64), f32)  # other dtypes are rounded to float32
    work = np.empty(300)
    with pytest.raises(TypeError):
        interval_from_logits(x64, 0, work)  # the per-token kernels insist on float32
    with pytest.raises(TypeError):
        symbol_from_logits(x64, 0, work)
    # non-contiguous float32 views are fine
    big = rng.standard_normal(600).astype(np.float32)
    view = big[::2]
    freqs = freqs_from_logits(view.copy())
    for s in [0, 17, 299]:
        assert interval_from_logits(view, s, work) == symbol_interval(freqs, s)


def test_vocab_size_limits():
    with pytest.raises(ValueError):
        freqs_from_probs(np.zeros(0))
    with pytest.raises(ValueError):
        freqs_from_logits(np.zeros(MAX_VOCAB + 1, dtype=np.float32))
    with pytest.raises(ValueError):
        interval_from_logits(np.zeros(10, dtype=np.float32), 0, np.empty(9))


def test_close_to_probabilities():
    rng = np.random.default_rng(2)
    v = 5000
    logits = (rng.standard_normal(v) * 3).astype(np.float32)
    f = freqs_from_logits(logits)
    x = logits.astype(np.float64)
    p = np.exp(x - x.max())
    p /= p.sum()
    expected = 1 + np.floor(p * (TOTAL - v))
    arg = int(np.argmax(p))
    diff = np.abs(f - expected)
    diff[arg] = 0
    assert diff.max() <= 1
    assert abs(int(f[arg]) - expected[arg]) <= v + 2  # remainder is below V
    # and the probability path agrees the same way
    g = freqs_from_probs(p)
    d2 = np.abs(g - f)
    d2[arg] = 0
    assert d2.max() <= 1


def test_exp_nonpos_accuracy():
    rng = np.random.default_rng(4)
    ds = np.concatenate([-rng.random(20000) * 708.0, -rng.random(2000) * 1e-6, [0.0, -708.0, -0.5 * math.log(2)]])
    for d in ds.tolist():
        want = math.exp(d)
        got = exp_nonpos(d)
        assert abs(got - want) <= 4e-16 * want, d
    assert exp_nonpos(0.0) == 1.0
    for d in [1e-300, 0.5, math.inf, -math.inf, math.nan, -708.0001, -1000.0]:
        assert exp_nonpos(d) == 0.0


# --------------------------------------------------------------------------- lookups


def test_cumulative_find_symbol_interval():
    freqs = np.array([3, 1, 5, 1], dtype=np.int64)
    cum = cumulative(freqs)
    assert cum.tolist() == [0, 3, 4, 9, 10]
    assert [find_symbol(cum, t) for t in range(10)] == [0, 0, 0, 1, 2, 2, 2, 2, 2, 3]
    assert [symbol_interval(freqs, s) for s in range(4)] == [(0, 3), (3, 1), (4, 5), (9, 1)]
    for bad in [-1, 10]:
        with pytest.raises(ValueError):
            find_symbol(cum, bad)
    with pytest.raises(ValueError):
        symbol_interval(freqs, 4)


# --------------------------------------------------------------------------- fused kernels


@SETTINGS
@given(float_vectors(max_v=2000, dtype=np.float32), st.data())
def test_fused_kernels_match_reference(logits, data):
    v = logits.shape[0]
    freqs = freqs_from_logits(logits)
    cum = cumulative(freqs)
    work = np.full(v + data.draw(st.integers(0, 3)), np.nan)  # longer scratch is fine
    syms = data.draw(st.lists(st.integers(0, v - 1), min_size=1, max_size=5))
    syms.append(int(np.argmax(freqs)))
    for s in syms:
        assert interval_from_logits(logits, s, work) == (int(cum[s]), int(freqs[s]))
    targets = data.draw(st.lists(st.integers(0, TOTAL - 1), min_size=1, max_size=5))
    targets += [0, TOTAL - 1, int(cum[v // 2]), max(0, int(cum[v // 2]) - 1)]
    for t in targets:
        s = int(find_symbol(cum, t))
        assert symbol_from_logits(logits, t, work) == (s, int(cum[s]), int(freqs[s]))


@pytest.mark.parametrize("v", [49152, MAX_VOCAB])
def test_fused_kernels_match_reference_large(v):
    rng = np.random.default_rng(v + 1)
    logits = (rng.standard_normal(v) * 5).astype(np.float32)
    logits[123] = 40.0
    freqs = freqs_from_logits(logits)
    cum = cumulative(freqs)
    work = np.empty(v)
    for s in [0, 122, 123, 124, v - 1, int(rng.integers(0, v))]:
        assert interval_from_logits(logits, s, work) == (int(cum[s]), int(freqs[s]))
    for t in [0, int(cum[123]), int(cum[124]), TOTAL - 1, int(rng.integers(0, TOTAL))]:
        s = int(find_symbol(cum, t))
        assert symbol_from_logits(logits, t, work) == (s, int(cum[s]), int(freqs[s]))


# --------------------------------------------------------------------------- coding cost


def test_quantisation_overhead_is_tiny():
    """Coded length of tokens drawn from realistic peaked distributions vs -sum(log2 p)."""
    v = 49152
    rng = np.random.default_rng(12345)
    zipf = -1.1 * np.log(np.arange(1, v + 1))  # heavy tail like a language model's
    work = np.empty(v)
    enc = ArithmeticEncoder()
    ideal_bits = 0.0
    coded = []
    for _ in range(600):
        temp = rng.choice([0.12, 0.2, 0.35, 0.7, 1.5])  # from near-certain to ~10 bits
        logits = (rng.permutation(zipf) / temp + rng.standard_normal(v) * 0.5).astype(np.float32)
        x = logits.astype(np.float64)
        p = np.exp(x - x.max())
        p /= p.sum()
        sym = int(rng.choice(v, p=p))
        ideal_bits -= math.log2(p[sym])
        cl, f = interval_from_logits(logits, sym, work)
        enc.encode(cl, f)
        coded.append((logits, sym))
    data = enc.finish()
    assert 600 < ideal_bits < 600 * 4  # ~3.7 bits per token, like a small LM on text
    # 0.5% plus the flush (at most 3 bytes); measured: 0.25% here (flush included).
    assert len(data) * 8 <= ideal_bits * 1.005 + 24, (len(data) * 8, ideal_bits)
    # and it decodes with the fused decoder kernel
    dec = ArithmeticDecoder(data)
    for logits, sym in coded[:100]:
        s, cl, f = symbol_from_logits(logits, dec.target(), work)
        assert s == sym
        dec.consume(cl, f)
