"""Float probabilities -> integer frequencies for the arithmetic coder.

Why this module exists
----------------------
This is the *one* place where floating point meets the bitstream.  The encoder and the decoder
must derive bit-identical integer frequencies from the model's logits, so the mapping is
defined here once, with a fixed order of operations:

1. weights ``w_i``:

   * from logits (float32, converted to float64): ``mx`` = largest finite logit;
     ``w_i = exp_nonpos(logit_i - mx)`` where non-finite logits (NaN, +-inf) and
     differences below ``-708`` give ``w_i = 0``; if no logit is finite, all ``w_i = 1``.
   * from probabilities (float64): ``q_i = p_i`` if ``0 < p_i < inf`` else ``0``;
     ``m = max q``; ``w_i = q_i / m``; if ``m == 0``, all ``w_i = 1`` (uniform).

   ``exp_nonpos`` is our own exponential built from IEEE-754 ``+ - *`` only (range reduction
   by ``ln 2`` plus a degree-13 Taylor polynomial and an exact power-of-two table), so the
   result does not depend on which libm or SIMD variant the machine has.
2. ``s`` = sum of ``w_i`` accumulated in 8 lanes (lane ``i % 8``, each in increasing ``i``),
   combined as ``((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))``.  ``a`` = first index of the largest
   ``w_i``.
3. ``scale = (TOTAL - V) / s``; ``freq_i = 1 + floor(w_i * scale)``; the remainder
   ``TOTAL - sum(freq)`` (always >= 0, see below) is added to ``freq_a``.

So every symbol gets at least 1 (any symbol can be coded, whatever the model says), the total is
exactly ``TOTAL = 2**24`` and the quantisation loss is about ``V / TOTAL`` of the probability
mass (0.3% for a 49,152-token vocabulary, i.e. ~0.004 bit per token).

Remainder >= 0: ``w_i*scale`` is rounded with relative error <= 2**-53 and ``s`` has relative
error <= (V + 8) * 2**-53, so ``sum floor(w_i*scale) <= (TOTAL - V)(1 + (V + 10) 2**-53)
< TOTAL - V + 1`` for ``V <= 2**18``; an integer below ``TOTAL - V + 1`` is ``<= TOTAL - V``.

The per-token fused kernels :func:`interval_from_logits` and :func:`symbol_from_logits` repeat
exactly these steps on a caller-provided scratch array (no allocation) and return the same
integers as :func:`freqs_from_logits` followed by :func:`symbol_interval` / :func:`find_symbol`.
No ``fastmath`` and no parallel reductions anywhere: determinism beats speed here.
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
    "exp_nonpos",
    "freqs_from_logits",
    "freqs_from_probs",
    "symbol_interval",
    "cumulative",
    "find_symbol",
    "interval_from_logits",
    "symbol_from_logits",
]

# Largest supported vocabulary (the remainder proof above needs V <= 2**18; the coder needs
# V < TOTAL so that every symbol can have frequency >= 1).
MAX_VOCAB = 1 << 18

# --- exp on (-inf, 0] from basic IEEE operations ------------------------------------------
_EXP_MIN_ARG = -708.0  # below this the result would be (near-)subnormal: treat as 0
_LOG2E = 1.4426950408889634  # 1 / ln 2
_LN2_HI = 6.93147180369123816490e-01  # fdlibm ln2_hi: low 32 bits zero, n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
# 2**-n for n = 0..1022, exact in binary64 (all normal numbers).
_POW2_NEG = np.array([math.ldexp(1.0, -n) for n in range(1023)], dtype=np.float64)
_C = [1.0 / math.factorial(k) for k in range(14)]
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C


@njit(cache=True)
def exp_nonpos(d: float) -> float:
    """``exp(d)`` for ``-708 <= d <= 0``; 0.0 for every other input (NaN included).

    ``d = -n ln2 + r`` with ``n = floor(0.5 - d log2e)`` and ``|r| <= ln2 / 2 (+tiny)``;
    ``exp(r)`` by Horner on the degree-13 Taylor polynomial (truncation error < 2**-57),
    times the exact table value ``2**-n``.  Relative error is a few ulp.
    """
    if not (d >= _EXP_MIN_ARG and d <= 0.0):
        return 0.0
    t = d * _LOG2E
    n = np.int64(0.5 - t)  # 0.5 - t >= 0.5 > 0, so truncation == floor; 0 <= n <= 1021
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
    return p * _POW2_NEG[n]


@njit(cache=True)
def _check_vocab(v: int) -> None:
    if v < 1 or v > MAX_VOCAB:
        raise ValueError("cdf: vocabulary size must be 1..262144")


@njit(cache=True)
def _weights_from_logits(logits: np.ndarray, work: np.ndarray) -> None:
    """Step 1 (logits): write the weights ``w_i`` into ``work[:V]``."""
    v = logits.shape[0]
    mx = -np.inf
    for i in range(v):
        x = np.float64(logits[i])
        if x > mx and x < np.inf:  # NaN and +-inf never qualify
            mx = x
    if mx == -np.inf:  # no finite logit at all: uniform
        for i in range(v):
            work[i] = 1.0
        return
    for i in range(v):
        work[i] = exp_nonpos(np.float64(logits[i]) - mx)


@njit(cache=True)
def _sum_argmax(w: np.ndarray, v: int):
    """Step 2: the 8-lane sum of ``w[:v]`` and the first index of its maximum."""
    l0 = 0.0
    l1 = 0.0
    l2 = 0.0
    l3 = 0.0
    l4 = 0.0
    l5 = 0.0
    l6 = 0.0
    l7 = 0.0
    full = v - (v % 8)
    for i in range(0, full, 8):
        l0 += w[i]
        l1 += w[i + 1]
        l2 += w[i + 2]
        l3 += w[i + 3]
        l4 += w[i + 4]
        l5 += w[i + 5]
        l6 += w[i + 6]
        l7 += w[i + 7]
    rest = v - full
    if rest > 0:
        l0 += w[full]
    if rest > 1:
        l1 += w[full + 1]
    if rest > 2:
        l2 += w[full + 2]
    if rest > 3:
        l3 += w[full + 3]
    if rest > 4:
        l4 += w[full + 4]
    if rest > 5:
        l5 += w[full + 5]
    if rest > 6:
        l6 += w[full + 6]
    s = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
    best = w[0]
    arg = 0
    for i in range(1, v):
        if w[i] > best:
            best = w[i]
            arg = i
    return s, arg


@njit(cache=True)
def _freqs_from_weights(w: np.ndarray) -> np.ndarray:
    """Step 3 on a full weight vector (max weight 1.0, so s >= 1)."""
    v = w.shape[0]
    s, arg = _sum_argmax(w, v)
    scale = (TOTAL - v) / s
    out = np.empty(v, dtype=np.int64)
    total = 0
    for i in range(v):
        f = 1 + np.int64(w[i] * scale)  # w*scale >= 0: truncation == floor
        out[i] = f
        total += f
    rem = TOTAL - total
    if rem < 0:  # impossible (see module docstring); fail loudly rather than miscode
        raise AssertionError("cdf: negative remainder")
    out[arg] += rem
    return out


@njit(cache=True)
def freqs_from_logits(logits: np.ndarray) -> np.ndarray:
    """Integer frequencies (np.int64[V], each >= 1, sum == TOTAL) from float32 logits."""
    v = logits.shape[0]
    _check_vocab(v)
    w = np.empty(v, dtype=np.float64)
    _weights_from_logits(logits, w)
    return _freqs_from_weights(w)


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
            w[i] = w[i] / m
    return _freqs_from_weights(w)


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
def interval_from_logits(logits: np.ndarray, sym: int, work: np.ndarray):
    """``(cum_low, freq)`` of ``sym`` under :func:`freqs_from_logits`, without allocating.

    ``work`` is float64 scratch of length >= V (overwritten).
    """
    v = _check_work(logits, work)
    if sym < 0 or sym >= v:
        raise ValueError("cdf: symbol out of range")
    _weights_from_logits(logits, work)
    s, arg = _sum_argmax(work, v)
    scale = (TOTAL - v) / s
    total = 0
    cum_low = 0
    freq = 0
    for i in range(v):
        f = 1 + np.int64(work[i] * scale)
        if i == sym:
            cum_low = total
            freq = f
        total += f
    rem = TOTAL - total
    if rem < 0:
        raise AssertionError("cdf: negative remainder")
    if arg < sym:
        cum_low += rem
    elif arg == sym:
        freq += rem
    return cum_low, freq


@njit(cache=True)
def symbol_from_logits(logits: np.ndarray, target: int, work: np.ndarray):
    """``(sym, cum_low, freq)`` of the symbol whose interval under :func:`freqs_from_logits`
    contains ``target`` (in ``[0, TOTAL)``), without allocating.  ``work`` as above."""
    v = _check_work(logits, work)
    if target < 0 or target >= TOTAL:
        raise ValueError("cdf: target outside [0, 2**24)")
    _weights_from_logits(logits, work)
    s, arg = _sum_argmax(work, v)
    scale = (TOTAL - v) / s
    total = 0
    for i in range(v):
        f = 1 + np.int64(work[i] * scale)
        work[i] = np.float64(f)  # exact: f <= 2**24
        total += f
    rem = TOTAL - total
    if rem < 0:
        raise AssertionError("cdf: negative remainder")
    c = 0
    for i in range(v):
        f = np.int64(work[i])
        if i == arg:
            f += rem
        if target < c + f:
            return i, c, f
        c += f
    # Unreachable: the frequencies sum to TOTAL > target.
    raise AssertionError("cdf: target not found")
