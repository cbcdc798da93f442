"""Float probabilities -> integer frequencies for the arithmetic coder.

Why this module exists
----------------------
This is the *one* place where floating point meets the bitstream.  The encoder and the decoder
must derive bit-identical integer frequencies from the model's logits, so the mapping is
defined here once, using only correctly rounded IEEE-754 binary64 operations (``+ - * /``,
conversions) and exact integer arithmetic, with no dependence on libm or on summation order:

1. Weights ``w_i`` in ``[0, 1]`` whose maximum is exactly ``1.0``:

   * from logits (float32): ``mx`` = largest finite logit; ``d_i = float64(logit_i) - mx``;
     ``w_i = exp_nonpos(d_i)``, which is 0 for non-finite logits (NaN, +-inf) and for
     ``d_i < -708``.  If no logit is finite, every ``w_i = 1``.
   * from probabilities (float64): ``q_i = p_i`` if ``0 < p_i < inf`` else ``0``;
     ``m = max q``; ``w_i = q_i / m``.  If ``m == 0``, every ``w_i = 1`` (uniform).

   ``exp_nonpos`` is our own exponential: range reduction by ``ln 2`` (Cody–Waite split),
   a degree-13 Taylor polynomial evaluated by Horner, and an exact power of two built from
   its bit pattern.  So the weights do not depend on which libm or SIMD variant a machine has.
2. Fixed point: ``u_i = floor(w_i * 2**44)`` (exact), ``S = sum u_i`` (exact integer,
   ``2**44 <= S <= 2**62``).  Integer sums are associative, so any evaluation order (and
   any vectorisation) gives the same ``S``.
3. ``a`` = the first index with ``w_i == 1.0`` (the most probable symbol, lowest index on ties).
4. ``scale = (TOTAL - V) / float64(S)``; ``freq_i = 1 + floor(float64(u_i) * scale)``; the
   remainder ``TOTAL - sum(freq)`` (always ``>= 0``, see below) is added to ``freq_a``.

So every symbol gets at least 1 (any symbol can be coded, whatever the model says), the total is
exactly ``TOTAL = 2**24``, and quantisation costs about ``V / TOTAL`` of the probability mass
(0.3% for a 49,152-token vocabulary, i.e. ~0.004 bit per token).

Remainder ``>= 0``: ``float64(S)`` and ``scale`` are each rounded with relative error at most
``2**-53`` and so is every product ``u_i * scale``; hence
``sum_i u_i * scale * (1 + e_i) <= (TOTAL - V) * (1 + 4 * 2**-53) < TOTAL - V + 1``, and a sum of
floors, being an integer below ``TOTAL - V + 1``, is at most ``TOTAL - V``.

The per-token fused kernels :func:`interval_from_logits` and :func:`symbol_from_logits` repeat
exactly these steps on a caller-provided scratch array (no allocation) and return the same
integers as :func:`freqs_from_logits` followed by :func:`symbol_interval` / :func:`find_symbol`.
No ``fastmath`` anywhere: determinism beats speed here (and the loops still vectorise).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from nacrith.coder import TOTAL, TOTAL_BITS

__all__ = [
    "TOTAL",
    "TOTAL_BITS",
    "MAX_VOCAB",
    "WEIGHT_BITS",
    "exp_nonpos",
    "freqs_from_logits",
    "freqs_from_probs",
    "freqs_from_scores",
    "symbol_interval",
    "cumulative",
    "find_symbol",
    "interval_from_logits",
    "symbol_from_logits",
    "interval_from_scores",
    "symbol_from_scores",
]

# Largest supported vocabulary: V < TOTAL so every symbol can have frequency >= 1, and
# V * 2**WEIGHT_BITS <= 2**62 so the fixed-point sum fits in int64.
MAX_VOCAB = 1 << 18
WEIGHT_BITS = 44
_WEIGHT_ONE = float(1 << WEIGHT_BITS)

# --- exp on [-708, 0] from basic IEEE operations ------------------------------------------
_EXP_MIN_ARG = -708.0  # below this, exp would need a subnormal power of two: treat as 0
_LOG2E = 1.4426950408889634  # 1 / ln 2 (rounded; only selects n, any n near d/ln2 works)
_LN2_HI = 6.93147180369123816490e-01  # fdlibm ln2_hi: low 32 bits zero, so n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_C = [1.0 / math.factorial(k) for k in range(14)]  # correctly rounded 1/k!
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C
_INT32_MIN = -(1 << 31)


@njit(cache=True, inline="always")
def exp_nonpos(d: float) -> float:
    """``exp(d)`` for ``-708 <= d <= 0``; exactly 0.0 for every other input (NaN included).

    ``d = -n ln2 + r`` with ``n = floor(0.5 - d / ln2)`` (so ``0 <= n <= 1021`` and
    ``|r| <= ln2 / 2`` up to rounding); ``exp(r)`` by Horner on the degree-13 Taylor polynomial
    (truncation error < 2**-57 relative) and ``2**-n`` built exactly from its bit pattern.
    Accurate to a few ulp; branch-free so that loops over it vectorise.
    """
    ok = d >= _EXP_MIN_ARG and d <= 0.0
    if not ok:
        d = 0.0
    n = np.int64(0.5 - d * _LOG2E)  # argument >= 0.5 > 0, so truncation == floor
    nf = np.float64(n)
    r = (d + nf * _LN2_HI) + nf * _LN2_LO
    p = _C13
    p = p * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _C1
    p = p * r + _C0
    e = p * np.int64((1023 - n) << 52).view(np.float64)  # 2**-n, a normal number
    return e if ok else 0.0


@njit(cache=True)
def _check_vocab(v: int) -> None:
    if v < 1 or v > MAX_VOCAB:
        raise ValueError("cdf: vocabulary size must be 1..262144")


@njit(cache=True)
def _max_finite_logit(logits: np.ndarray) -> float:
    """Largest finite value of float32 ``logits`` as float64, or -inf if there is none.

    Works on the bit patterns: a float32's bits ``x`` map to the int32 key
    ``x ^ ((x >> 31) & 0x7FFFFFFF)``, which orders like the float (-0.0 just below +0.0);
    non-finite values (exponent all ones) get the key INT32_MIN, below every finite key.
    An integer max is exact in any order, so this loop vectorises without fast-math.
    """
    if logits.itemsize != 4:
        raise TypeError("cdf: logits must be a float32 array")
    bits = logits.view(np.int32)
    acc = np.int32(_INT32_MIN)
    for i in range(bits.shape[0]):
        x = bits[i]
        key = x ^ ((x >> 31) & 0x7FFFFFFF)
        key = key if (x & 0x7F800000) != 0x7F800000 else np.int32(_INT32_MIN)
        acc = max(acc, key)
    if acc == _INT32_MIN:
        return -np.inf
    x = acc ^ ((acc >> 31) & 0x7FFFFFFF)  # the key map is its own inverse
    return np.float64(np.int32(x).view(np.float32))


@njit(cache=True)
def _weights_from_logits(logits: np.ndarray, work: np.ndarray) -> int:
    """Steps 1-2 (logits): write ``w_i`` into ``work[:V]``; return ``S = sum floor(w_i * 2**44)``."""
    v = logits.shape[0]
    mx = _max_finite_logit(logits)
    if mx == -np.inf:  # no finite logit at all: uniform
        for i in range(v):
            work[i] = 1.0
        return v << WEIGHT_BITS
    acc = 0
    for i in range(v):
        e = exp_nonpos(np.float64(logits[i]) - mx)
        work[i] = e
        acc += np.int64(e * _WEIGHT_ONE)
    return acc


@njit(cache=True)
def _fixed_sum(w: np.ndarray) -> int:
    """``S = sum floor(w_i * 2**44)`` (exact)."""
    acc = 0
    for i in range(w.shape[0]):
        acc += np.int64(w[i] * _WEIGHT_ONE)
    return acc


@njit(cache=True)
def _first_one(w: np.ndarray, v: int) -> int:
    """Step 3: the first index ``i < v`` with ``w[i] >= 1.0`` (blocked so the scan vectorises)."""
    full = v - (v % 64)
    for i in range(0, full, 64):
        c = 0
        for k in range(64):
            c += w[i + k] >= 1.0
        if c:
            for k in range(64):
                if w[i + k] >= 1.0:
                    return i + k
    for i in range(full, v):
        if w[i] >= 1.0:
            return i
    raise AssertionError("cdf: no weight equals 1.0")


@njit(cache=True, inline="always")
def _freq_minus_one(w: float, scale: float) -> int:
    """``floor(float64(floor(w * 2**44)) * scale)``: all operands >= 0, truncation == floor."""
    return np.int64(np.float64(np.int64(w * _WEIGHT_ONE)) * scale)


@njit(cache=True)
def _partial_freq_sum(w: np.ndarray, start: int, stop: int, scale: float) -> int:
    """``sum (freq_i - 1)`` for ``start <= i < stop``, before the remainder."""
    # Loop over a view from 0: numba can then prove the index non-negative, drop the
    # negative-index wraparound and vectorise (a ``range(start, stop)`` loop does not).
    x = w[start:stop]
    t = 0
    for i in range(x.shape[0]):
        t += _freq_minus_one(x[i], scale)
    return t


@njit(cache=True)
def _freqs_from_weights(w: np.ndarray, s: int) -> np.ndarray:
    """Step 4 on a full weight vector with fixed-point sum ``s``."""
    v = w.shape[0]
    arg = _first_one(w, v)
    scale = (TOTAL - v) / np.float64(s)
    out = np.empty(v, dtype=np.int64)
    total = 0
    for i in range(v):
        f = 1 + _freq_minus_one(w[i], scale)
        out[i] = f
        total += f
    rem = TOTAL - total
    if rem < 0:  # impossible (see module docstring); fail loudly rather than miscode
        raise AssertionError("cdf: negative remainder")
    out[arg] += rem
    return out


@njit(cache=True)
def freqs_from_logits(logits: np.ndarray) -> np.ndarray:
    """Integer frequencies (np.int64[V], each >= 1, sum == TOTAL) from logits.

    The logits are float32 by definition; other real dtypes are first rounded to float32.
    """
    v = logits.shape[0]
    _check_vocab(v)
    x = logits.astype(np.float32)  # a copy; keeps one definition for every input dtype
    w = np.empty(v, dtype=np.float64)
    s = _weights_from_logits(x, w)
    return _freqs_from_weights(w, s)


@njit(cache=True)
def freqs_from_probs(p: np.ndarray) -> np.ndarray:
    """Integer frequencies (np.int64[V], each >= 1, sum == TOTAL) from probabilities.

    ``p`` need not be normalised; NaN, infinite, zero and negative entries count as
    probability 0 (they still get frequency 1); an input without any positive finite entry
    is treated as uniform.
    """
    v = p.shape[0]
    _check_vocab(v)
    w = np.empty(v, dtype=np.float64)
    m = 0.0
    for i in range(v):
        x = np.float64(p[i])
        if x > 0.0 and x < np.inf:
            w[i] = x
            if x > m:
                m = x
        else:
            w[i] = 0.0
    if m == 0.0:
        for i in range(v):
            w[i] = 1.0
    else:
        for i in range(v):
            w[i] = w[i] / m  # q <= m, so w <= 1, and w == 1.0 where q == m
    return _freqs_from_weights(w, _fixed_sum(w))


@njit(cache=True)
def symbol_interval(freqs: np.ndarray, sym: int):
    """``(cum_low, freq)`` of symbol ``sym``: the sum of the frequencies before it, its own."""
    if sym < 0 or sym >= freqs.shape[0]:
        raise ValueError("cdf: symbol out of range")
    c = 0
    for i in range(sym):
        c += freqs[i]
    return c, np.int64(freqs[sym])


@njit(cache=True)
def cumulative(freqs: np.ndarray) -> np.ndarray:
    """Cumulative table ``cum`` (np.int64[V + 1]): ``cum[0] = 0``, ``cum[i + 1] = cum[i] + freqs[i]``."""
    v = freqs.shape[0]
    cum = np.empty(v + 1, dtype=np.int64)
    c = 0
    cum[0] = 0
    for i in range(v):
        c += freqs[i]
        cum[i + 1] = c
    return cum


@njit(cache=True)
def find_symbol(cum: np.ndarray, target: int) -> int:
    """The symbol ``s`` with ``cum[s] <= target < cum[s + 1]`` (binary search).

    ``target`` must lie in ``[cum[0], cum[-1])``; zero-width entries are skipped naturally.
    """
    lo = 0
    hi = cum.shape[0] - 1
    if hi < 1 or target < cum[0] or target >= cum[hi]:
        raise ValueError("cdf: target outside the cumulative table")
    # Invariant: cum[lo] <= target < cum[hi].
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if cum[mid] <= target:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def _check_work(logits: np.ndarray, work: np.ndarray) -> int:
    v = logits.shape[0]
    _check_vocab(v)
    if work.shape[0] < v:
        raise ValueError("cdf: scratch array shorter than the vocabulary")
    return v


@njit(cache=True)
def _interval_from_weights(work: np.ndarray, v: int, s: int, sym: int):
    """Steps 3-4 for one symbol, given weights in ``work[:v]`` and their fixed-point sum."""
    if sym < 0 or sym >= v:
        raise ValueError("cdf: symbol out of range")
    arg = _first_one(work, v)
    scale = (TOTAL - v) / np.float64(s)
    below = _partial_freq_sum(work, 0, sym, scale)
    freq = 1 + _freq_minus_one(work[sym], scale)
    above = _partial_freq_sum(work, sym + 1, v, scale)
    rem = TOTAL - (v + below + above + (freq - 1))
    if rem < 0:
        raise AssertionError("cdf: negative remainder")
    cum_low = sym + below
    if arg < sym:
        cum_low += rem
    elif arg == sym:
        freq += rem
    return cum_low, freq


@njit(cache=True)
def _symbol_from_weights(work: np.ndarray, v: int, s: int, target: int):
    """Steps 3-4 inverted: the symbol whose interval contains ``target``."""
    if target < 0 or target >= TOTAL:
        raise ValueError("cdf: target outside [0, 2**24)")
    arg = _first_one(work, v)
    scale = (TOTAL - v) / np.float64(s)
    rem = TOTAL - (v + _partial_freq_sum(work, 0, v, scale))
    if rem < 0:
        raise AssertionError("cdf: negative remainder")
    # Skip whole blocks whose frequencies end at or before target, then scan one block.
    c = 0
    start = 0
    while start < v:
        stop = min(start + 64, v)
        block = (stop - start) + _partial_freq_sum(work, start, stop, scale)
        if start <= arg < stop:
            block += rem
        if target < c + block:
            break
        c += block
        start = stop
    for i in range(start, v):
        f = 1 + _freq_minus_one(work[i], scale)
        if i == arg:
            f += rem
        if target < c + f:
            return i, c, f
        c += f
    # Unreachable: the frequencies sum to TOTAL > target.
    raise AssertionError("cdf: target not found")


@njit(cache=True)
def interval_from_logits(logits: np.ndarray, sym: int, work: np.ndarray):
    """``(cum_low, freq)`` of ``sym`` under :func:`freqs_from_logits`, without allocating.

    ``logits``: float32[V] (TypeError otherwise); ``work``: float64 scratch of length >= V
    (overwritten).
    """
    v = _check_work(logits, work)
    s = _weights_from_logits(logits, work)
    return _interval_from_weights(work, v, s, sym)


@njit(cache=True)
def symbol_from_logits(logits: np.ndarray, target: int, work: np.ndarray):
    """``(sym, cum_low, freq)``: the symbol whose interval under :func:`freqs_from_logits`
    contains ``target`` (in ``[0, TOTAL)``), without allocating.  Arguments as above."""
    v = _check_work(logits, work)
    s = _weights_from_logits(logits, work)
    return _symbol_from_weights(work, v, s, target)


# --- float64 scores (the ensemble's mixed log-domain scores) --------------------------------


@njit(cache=True)
def weights_from_scores(scores: np.ndarray, v: int) -> int:
    """Step 1-2 for float64 scores, in place: ``scores[:v]`` becomes ``w_i = exp_nonpos(s_i - mx)``
    with ``mx`` the largest finite score (uniform if none); returns the fixed-point sum ``S``.

    Same rules as for logits; a maximum is exact in any order, so this is deterministic.
    """
    _check_vocab(v)
    mx = -np.inf
    for i in range(v):
        x = scores[i]
        if x > mx and x < np.inf:
            mx = x
    if mx == -np.inf:
        for i in range(v):
            scores[i] = 1.0
        return v << WEIGHT_BITS
    acc = 0
    for i in range(v):
        e = exp_nonpos(scores[i] - mx)
        scores[i] = e
        acc += np.int64(e * _WEIGHT_ONE)
    return acc


@njit(cache=True)
def freqs_from_scores(scores: np.ndarray, v: int) -> np.ndarray:
    """Integer frequencies (np.int64[v], each >= 1, sum == TOTAL) from float64 scores in
    ``scores[:v]`` (overwritten by their weights): the ones :func:`interval_from_scores` codes with."""
    s = weights_from_scores(scores, v)
    return _freqs_from_weights(scores[:v], s)


@njit(cache=True)
def interval_from_scores(scores: np.ndarray, v: int, sym: int):
    """``(cum_low, freq, S)`` of ``sym`` from float64 scores in ``scores[:v]`` (overwritten by
    their weights; ``S`` is the weights' fixed-point sum, so ``p_i = w_i * 2**44 / S``)."""
    s = weights_from_scores(scores, v)
    lo, f = _interval_from_weights(scores, v, s, sym)
    return lo, f, s


@njit(cache=True)
def symbol_from_scores(scores: np.ndarray, v: int, target: int):
    """``(sym, cum_low, freq, S)`` for ``target`` from float64 scores (overwritten as above)."""
    s = weights_from_scores(scores, v)
    sym, lo, f = _symbol_from_weights(scores, v, s, target)
    return sym, lo, f, s
