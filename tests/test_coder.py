"""Tests for nacrith.coder: round trips, extreme CDFs, truncated input, spec fidelity, golden files.

The coder is the part of the format that must never change silently, so besides round trips
the stream is compared with an independent, deliberately naive reference implementation of
the specification (pure Python, bit lists) and with the committed golden bitstreams.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from nacrith.cdf import cumulative, find_symbol, freqs_from_probs
from nacrith.coder import (
    DEC_STATE_LEN,
    ENC_STATE_LEN,
    TOTAL,
    ArithmeticDecoder,
    ArithmeticEncoder,
    decoder_consume,
    decoder_init,
    decoder_target,
    encoder_finish,
    encoder_init,
    encoder_put,
    encoder_put_inplace,
    new_decoder_state,
    new_encoder_state,
)

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_golden_module():
    path = ROOT / "formats" / "make_coder_golden.py"
    spec = importlib.util.spec_from_file_location("make_coder_golden", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_coder_golden"] = mod
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- helpers


def encode_intervals(intervals) -> bytes:
    enc = ArithmeticEncoder()
    for cl, f in intervals:
        enc.encode(int(cl), int(f))
    return enc.finish()


def check_decode_intervals(data: bytes, intervals) -> None:
    dec = ArithmeticDecoder(data)
    for cl, f in intervals:
        t = dec.target()
        assert cl <= t < cl + f
        dec.consume(int(cl), int(f))


def encode_symbols(freqs: np.ndarray, symbols) -> bytes:
    cum = cumulative(freqs)
    enc = ArithmeticEncoder()
    for s in symbols:
        enc.encode(int(cum[s]), int(freqs[s]))
    return enc.finish()


def decode_symbols(freqs: np.ndarray, data: bytes, n: int) -> list[int]:
    cum = cumulative(freqs)
    dec = ArithmeticDecoder(data)
    out = []
    for _ in range(n):
        s = int(find_symbol(cum, dec.target()))
        dec.consume(int(cum[s]), int(freqs[s]))
        out.append(s)
    return out


def reference_encode(intervals) -> bytes:
    """Naive transcription of the bitstream definition in nacrith/coder.py's docstring."""
    half, quarter = 1 << 31, 1 << 30
    low, high, pending = 0, (1 << 32) - 1, 0
    bits: list[int] = []

    def out(bit: int) -> None:
        nonlocal pending
        bits.append(bit)
        bits.extend([1 - bit] * pending)
        pending = 0

    for cl, f in intervals:
        rng = high - low + 1
        high = low + rng * (cl + f) // TOTAL - 1
        low = low + rng * cl // TOTAL
        while True:
            if high < half:
                out(0)
            elif low >= half:
                out(1)
                low -= half
                high -= half
            elif low >= quarter and high < 3 * quarter:
                pending += 1
                low -= quarter
                high -= quarter
            else:
                break
            low, high = 2 * low, 2 * high + 1
    pending += 1
    out(0 if low < quarter else 1)
    bits.extend([0] * (-len(bits) % 8))
    data = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
    return data.rstrip(b"\0")


@st.composite
def intervals_strategy(draw, max_size: int = 300):
    n = draw(st.integers(0, max_size))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    width_bits = rng.integers(0, 25, size=n)
    freqs = np.minimum(1 + (rng.integers(0, 1 << 62, size=n) % (1 << width_bits)), TOTAL)
    cum_low = rng.integers(0, 1 << 62, size=n) % (TOTAL - freqs + 1)
    return list(zip(cum_low.tolist(), freqs.tolist()))


# --------------------------------------------------------------------------- round trips


@SETTINGS
@given(intervals_strategy())
def test_round_trip_random_intervals(intervals):
    data = encode_intervals(intervals)
    check_decode_intervals(data, intervals)


@SETTINGS
@given(intervals_strategy(max_size=200))
def test_matches_reference_implementation(intervals):
    assert encode_intervals(intervals) == reference_encode(intervals)


def test_matches_reference_long_pending_runs():
    mid = [(TOTAL // 2 - 1, 2)] * 120 + [(0, 1)] + [(TOTAL // 2 - 1, 2)] * 40 + [(TOTAL - 1, 1)] * 3
    assert encode_intervals(mid) == reference_encode(mid)
    check_decode_intervals(encode_intervals(mid), mid)


@SETTINGS
@given(
    v=st.integers(2, 400),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    alpha=st.sampled_from([0.01, 0.1, 1.0, 10.0]),
)
def test_round_trip_random_cdf(v, seed, n, alpha):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(v, alpha))
    freqs = freqs_from_probs(p)
    symbols = rng.integers(0, v, size=n).tolist()  # not drawn from p: rare symbols too
    data = encode_symbols(freqs, symbols)
    assert decode_symbols(freqs, data, n) == symbols


@pytest.mark.parametrize("v", [2, 3, 255, 4096, 49152, 262144])
def test_extreme_cdf(v):
    freqs = np.ones(v, dtype=np.int64)
    freqs[0] = TOTAL - (v - 1)
    rng = np.random.default_rng(v)
    symbols = [0 if rng.random() < 0.8 else int(rng.integers(1, v)) for _ in range(600)]
    symbols += [v - 1] * 20 + [0] * 200
    data = encode_symbols(freqs, symbols)
    assert decode_symbols(freqs, data, len(symbols)) == symbols
    # Cost sanity: each rare symbol costs about 24 bits, the common one almost nothing.
    n_rare = sum(1 for s in symbols if s != 0)
    assert len(data) * 8 <= n_rare * 24.01 + 64


@pytest.mark.parametrize("v", [1000, 262144])
def test_big_vocab_round_trip(v):
    rng = np.random.default_rng(7)
    freqs = freqs_from_probs(rng.random(v) ** 8)
    symbols = rng.integers(0, v, size=300).tolist()
    data = encode_symbols(freqs, symbols)
    assert decode_symbols(freqs, data, len(symbols)) == symbols


@SETTINGS
@given(st.lists(st.integers(0, 24).flatmap(lambda b: st.tuples(st.integers(0, (1 << b) - 1), st.just(b))), max_size=300))
def test_uniform_round_trip(items):
    enc = ArithmeticEncoder(initial_capacity=1)
    for value, bits in items:
        enc.encode_uniform(value, bits)
        enc.encode(5, 7)  # interleave with ordinary intervals
    data = enc.finish()
    dec = ArithmeticDecoder(data)
    for value, bits in items:
        assert dec.decode_uniform(bits) == value
        t = dec.target()
        assert 5 <= t < 12
        dec.consume(5, 7)
    total_bits = sum(b for _, b in items) + len(items) * (24 - np.log2(7))
    assert len(data) * 8 <= total_bits + 16


def test_uniform_is_exact_bits():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 256, size=5000).tolist()
    enc = ArithmeticEncoder()
    for v in values:
        enc.encode_uniform(v, 8)
    data = enc.finish()
    assert len(data) <= 5001  # 8 bits each plus the flush
    # Uniform 8-bit values with a fresh coder are just the bytes themselves.
    assert data[: len(values) - 1] == bytes(values[:-1])
    dec = ArithmeticDecoder(data)
    assert [dec.decode_uniform(8) for _ in values] == values


def test_uniform_argument_checks():
    enc = ArithmeticEncoder()
    with pytest.raises(ValueError):
        enc.encode_uniform(256, 8)
    with pytest.raises(ValueError):
        enc.encode_uniform(-1, 8)
    with pytest.raises(ValueError):
        enc.encode_uniform(0, 25)
    enc.encode_uniform(0, 0)  # zero bits: no-op
    assert enc.finish() == ArithmeticEncoder().finish()
    assert ArithmeticDecoder(b"").decode_uniform(0) == 0


# --------------------------------------------------------------------------- edge cases


def test_invalid_intervals_raise():
    enc = ArithmeticEncoder()
    for cl, f in [(0, 0), (-1, 5), (TOTAL - 1, 2), (0, TOTAL + 1), (5, -1)]:
        with pytest.raises(ValueError):
            enc.encode(cl, f)
    enc.encode(0, TOTAL)  # the whole range is fine (costs nothing)
    dec = ArithmeticDecoder(enc.finish())
    with pytest.raises(ValueError):
        dec.consume(0, 0)


def test_finish_is_idempotent_and_final():
    enc = ArithmeticEncoder()
    enc.encode(100, 1000)
    first = enc.finish()
    assert enc.finish() == first
    with pytest.raises(ValueError):
        enc.encode(0, 1)


def test_empty_stream_and_no_trailing_zero_bytes():
    empty = ArithmeticEncoder().finish()
    assert empty == b"\x40"  # bits 01, padded
    rng = np.random.default_rng(3)
    for _ in range(50):
        ivs = [(int(c), 1) for c in rng.integers(0, TOTAL, size=int(rng.integers(1, 30)))]
        data = encode_intervals(ivs)
        assert data[-1] != 0  # the flush always contains a 1 bit, so never empty either
        check_decode_intervals(data, ivs)
    assert encode_intervals([(0, TOTAL // 4)]) == b"\x10"  # bits 00 then flush 01


def test_whole_range_costs_nothing():
    enc = ArithmeticEncoder()
    for _ in range(10000):
        enc.encode(0, TOTAL)
    assert enc.finish() == b"\x40"


def test_output_buffer_grows():
    rng = np.random.default_rng(5)
    values = rng.integers(0, 1 << 24, size=3000).tolist()
    enc = ArithmeticEncoder(initial_capacity=1)
    for v in values:
        enc.encode_uniform(v, 24)
    data = enc.finish()
    assert 9000 <= len(data) <= 9001
    dec = ArithmeticDecoder(data)
    assert [dec.decode_uniform(24) for _ in values] == values


@SETTINGS
@given(st.binary(max_size=64), st.integers(2, 300), st.integers(0, 2**32 - 1))
def test_decoder_garbage_input_never_fails(data, v, seed):
    rng = np.random.default_rng(seed)
    freqs = freqs_from_probs(rng.dirichlet(np.full(v, 0.3)))
    out = decode_symbols(freqs, data, 500)
    assert len(out) == 500 and all(0 <= s < v for s in out)


def test_truncated_data_decodes_something():
    rng = np.random.default_rng(11)
    v = 1000
    freqs = freqs_from_probs(rng.dirichlet(np.full(v, 0.05)))
    symbols = rng.integers(0, v, size=2000).tolist()
    data = encode_symbols(freqs, symbols)
    for cut in [0, 1, 3, len(data) // 2, len(data) - 1]:
        out = decode_symbols(freqs, data[:cut], len(symbols))
        assert len(out) == len(symbols)
        assert all(0 <= s < v for s in out)
    # The prefix decodes correctly as long as enough bits survive.
    half = decode_symbols(freqs, data[: len(data) // 2], len(symbols))
    assert half[:100] == symbols[:100]


def test_decoder_does_not_alias_caller_buffer():
    ivs = [(10, 20), (1000, 5), (0, 3)] * 20
    buf = bytearray(encode_intervals(ivs))
    dec = ArithmeticDecoder(buf)
    buf[:] = b"\xff" * len(buf)
    for cl, f in ivs:
        assert cl <= dec.target() < cl + f
        dec.consume(cl, f)


# --------------------------------------------------------------------------- numba kernels


@njit(cache=False)
def _jit_encode(cum_lows, freqs):
    state = np.zeros(ENC_STATE_LEN, dtype=np.int64)
    encoder_init(state)
    buf = np.empty(1, dtype=np.uint8)  # grows inside numba
    for i in range(cum_lows.shape[0]):
        buf = encoder_put(state, buf, cum_lows[i], freqs[i])
    buf, n = encoder_finish(state, buf)
    return buf[:n].copy()


@njit(cache=False)
def _jit_check(data, cum_lows, freqs):
    state = np.zeros(4, dtype=np.int64)
    decoder_init(state, data)
    for i in range(cum_lows.shape[0]):
        t = decoder_target(state)
        if not (cum_lows[i] <= t < cum_lows[i] + freqs[i]):
            return i
        decoder_consume(state, data, cum_lows[i], freqs[i])
    return -1


def test_kernels_callable_from_njit():
    rng = np.random.default_rng(9)
    freqs = np.minimum(1 + rng.integers(0, 1 << 20, size=2000), TOTAL)
    cum_lows = rng.integers(0, 1 << 40, size=2000) % (TOTAL - freqs + 1)
    data = _jit_encode(cum_lows, freqs).tobytes()
    assert data == encode_intervals(zip(cum_lows.tolist(), freqs.tolist()))
    assert _jit_check(np.frombuffer(data, dtype=np.uint8), cum_lows, freqs) == -1
    assert new_encoder_state().dtype == np.int64
    assert new_decoder_state().shape == (DEC_STATE_LEN,)


def test_put_inplace_reports_needed_capacity():
    state = new_encoder_state()
    buf = np.empty(0, dtype=np.uint8)
    need = encoder_put_inplace(state, buf, 0, 1)  # would emit 24 bits: no room
    assert need > 0
    assert (state == new_encoder_state()).all()  # nothing happened
    buf = np.zeros(need, dtype=np.uint8)
    assert encoder_put_inplace(state, buf, 0, 1) == 0
    buf, n = encoder_finish(state, buf)
    assert bytes(buf[:n]) == encode_intervals([(0, 1)])
    with pytest.raises(ValueError):
        encoder_put_inplace(new_encoder_state(), buf, 0, 0)


# --------------------------------------------------------------------------- golden files


def test_golden_bitstreams_pinned():
    mod = _load_golden_module()
    files = mod.generate()
    golden_dir = ROOT / "formats" / "golden" / "coder"
    on_disk = sorted(p.name for p in golden_dir.iterdir() if p.is_file())
    assert on_disk == sorted(files)
    for name, data in files.items():
        assert (golden_dir / name).read_bytes() == data, f"{name} changed: the bitstream format moved"


def test_golden_bitstreams_decode():
    mod = _load_golden_module()
    golden_dir = ROOT / "formats" / "golden" / "coder"
    for name, ops in mod.cases().items():
        data = (golden_dir / f"{name}.bin").read_bytes()
        dec = ArithmeticDecoder(data)
        for kind, a, b in ops:
            if kind == "i":
                t = dec.target()
                assert a <= t < a + b, name
                dec.consume(a, b)
            else:
                assert dec.decode_uniform(b) == a, name
    assert ArithmeticEncoder().finish() == (golden_dir / "empty.bin").read_bytes()
