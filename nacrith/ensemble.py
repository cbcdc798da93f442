"""The ensemble: cheap online models that learn the document and correct the LLM.

For every symbol the LLM gives logits ``z``; the ensemble turns them into float64 *scores*

    s_t = a * (z_t - max z) + b_t + sum_f w_f * F_f(t)

and ``cdf`` turns the scores into integer frequencies (``w = exp(s - max s)``).  The parts:

* **bias head** ``b`` (one value per vocabulary entry): a per-document correction of the
  LLM's log-probabilities, learned by gradient descent on the coding loss.
* **token n-gram models**, orders 1..K over the token history, in hashed tables of bounded
  size (a bucket of ``SLOTS`` successor counts per context).  A successor ``t`` seen ``c``
  times in a context seen ``N`` times adds the feature ``c / N`` under the feature index of
  its order, its count bucket and whether the context was deterministic.
* **match model** (LZP on tokens): the last ``match_min`` tokens are hashed to the last place
  they occurred; while the text keeps repeating, the token that followed is predicted, with
  a feature per match-length bucket.  It captures long repeats (markup, URLs, code) that
  neither the LLM window nor short n-grams see.
* **mixer**: the weights ``a`` and ``w`` are the sum of a global set and a set selected by a
  small context (how peaked the LLM is, the longest n-gram order that has statistics, the
  match length), learned online by SGD on ``-log2 p``; a constant learning rate keeps them
  following the local situation (forgetting), unlike a cumulative-loss mixture.  Version 2
  adds a third set selected by a hash of the previous token (``prev_sets``).
* **APM / SSE** (version 2, ``apm_rate``): after mixing, the probability of one token (the
  match model's prediction while a match runs, else the most probable token) is refined by
  an adaptive table indexed by a small context and the quantised stretch ``ln(p / (1 - p))``
  (interpolated between the two nearest of 33 entries), averaged with the input in the
  stretch domain; the other tokens are rescaled together.  The mixer and the bias head learn
  from the probabilities before this stage.

Determinism: every operation is an IEEE binary64 ``+ - * /`` or a comparison, in a fixed order,
compiled by numba without ``fastmath``; the only exponential is ``cdf.exp_nonpos``.  Encoder
and decoder call the same jitted step with the same state, so they compute the same bits.
Everything that changes the results is in :class:`EnsembleConfig`, recorded in the header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numba import njit

from . import cdf

SLOTS = 8  # successors kept per n-gram context
MAX_ORDER = 6
_COUNT_BUCKETS = 4  # N = 1, 2-3, 4-7, 8+
_NGRAM_FEATS = _COUNT_BUCKETS * 2  # x (deterministic context or not)
_MATCH_BUCKETS = 8
_GAP_BUCKETS = 4
_MATCH_STATES = 3  # none, short, long
_MATCH_MAX_BACK = 64  # how far a new match is verified backwards (its initial length)
_RATE_ONE = 1 << 16
_APM_ENTRIES = 33  # stretch -8..8 in steps of 1/2
_APM_MATCH = 3  # match state: none, short, long
_WEIGHT_ONE = float(1 << cdf.WEIGHT_BITS)
ALPHA = 1.0
INIT_NGRAM = 0.3  # learning rates are stored as integers in units of 2**-16

_CONFIG = struct.Struct("<BBBBBBHHHH")  # version 1 (and 0)
_CONFIG2 = struct.Struct("<BBBBBBHHHHHB")  # version 2: + apm_rate, prev_sets
_LAYOUTS = {0: _CONFIG, 1: _CONFIG, 2: _CONFIG2}
VERSION = 2  # the newest version this code reads and writes

# --- the jitted steps' state arrays (np.int64 / np.float64), by index ---------------------
# EnsembleState.ints: settings.
INT_ORDER = 0  # n-gram order k (contexts of 1..k tokens)
INT_NGRAM_MASK = 1  # n-gram buckets - 1
INT_MATCH_MIN = 2  # tokens a match must repeat (0: no match model)
INT_MATCH_MASK = 3  # match table entries - 1
INT_MIXER_CONTEXTS = 4  # 1: weight sets selected by context
INT_PREV_MASK = 5  # previous-token weight sets - 1 (-1: none)
INT_APM = 6  # 1: APM stage
INTS_LEN = 7
# EnsembleState.counters: what the steps learned.
C_SEEN = 0  # tokens seen (the history's length)
C_MATCH_PTR = 1  # history index of the token the match predicts
C_MATCH_LEN = 2  # current match length (0: no match)
C_SET = 3  # weight set selected for the next token (-1: none)
C_CANDIDATES = 4  # candidates found for the next token
C_LONGEST = 5  # longest n-gram order with statistics for the next token
C_BASE = 6  # where this segment's history starts in ``hist`` (0 with one segment)
COUNTERS_LEN = 7
# EnsembleState.rates: learning rates.
RATE_MIX = 0
RATE_BIAS = 1
RATE_LLM = 2
RATE_APM = 3


@dataclass(frozen=True)
class EnsembleConfig:
    """Every setting of the ensemble; all of them change the bitstream.

    ``version`` 0 means "LLM alone" (the other fields are then ignored and must be zero).
    """

    version: int = 1
    ngram_order: int = 4  # 0 = no n-gram model
    ngram_bits: int = 16  # 2**bits contexts per order
    match_min: int = 6  # tokens hashed to find a match; 0 = no match model
    match_bits: int = 18  # 2**bits entries in the match table
    mixer_contexts: int = 1  # 0: one global weight set; 1: + a set selected by context
    mix_rate: int = 300  # SGD rate of the mixer weights, units of 2**-16
    bias_rate: int = 8000  # SGD rate of the bias head, units of 2**-16; 0 = no bias head
    llm_rate: int = 20  # SGD rate of the LLM's weight (its inverse temperature), units of 2**-16
    skip: int = 0  # match length from which the LLM is skipped (confidence skip); 0 = never
    # Version 2 only (must be 0 in version 1):
    apm_rate: int = 0  # adaptation rate of the APM/SSE stage, units of 2**-16; 0 = no APM stage
    prev_sets: int = 0  # log2 of the mixer weight sets selected by the previous token; 0 = none

    def check(self, error: type[Exception] = ValueError) -> "EnsembleConfig":
        if self.version == 0:
            if self != LLM_ONLY:
                raise error("ensemble version 0 (LLM alone) must have every other field 0")
            return self
        if self.version not in (1, 2):
            raise error(f"unknown ensemble version {self.version}")
        if self.version == 1 and (self.apm_rate or self.prev_sets):
            raise error("apm_rate and prev_sets need ensemble version 2")
        if not 0 <= self.apm_rate < 1 << 16:
            raise error(f"apm_rate must be in 0..65535, got {self.apm_rate}")
        if not (self.prev_sets == 0 or 4 <= self.prev_sets <= 12):
            raise error(f"prev_sets must be 0 or 4..12, got {self.prev_sets}")
        if not 0 <= self.ngram_order <= MAX_ORDER:
            raise error(f"ngram_order must be in 0..{MAX_ORDER}, got {self.ngram_order}")
        if not 8 <= self.ngram_bits <= 22:
            raise error(f"ngram_bits must be in 8..22, got {self.ngram_bits}")
        if not (self.match_min == 0 or 2 <= self.match_min <= 32):
            raise error(f"match_min must be 0 or 2..32, got {self.match_min}")
        if not 8 <= self.match_bits <= 24:
            raise error(f"match_bits must be in 8..24, got {self.match_bits}")
        if self.mixer_contexts not in (0, 1):
            raise error(f"mixer_contexts must be 0 or 1, got {self.mixer_contexts}")
        if not (self.skip == 0 or (self.match_min and max(self.match_min, 4) <= self.skip <= 1024)):
            raise error(f"skip must be 0 or a match length in max(4, match_min)..1024 with a match model, got {self.skip}")
        return self

    @property
    def enabled(self) -> bool:
        return self.version != 0

    def header_bytes(self) -> bytes:
        """The header value: one byte naming a preset when this is one, else :meth:`to_bytes`."""
        for number, preset in PRESETS.items():
            if preset == self:
                return bytes([number])
        return self.to_bytes()

    def to_bytes(self) -> bytes:
        """Every field spelled out (14 bytes in versions 0 and 1, 17 in version 2)."""
        fields = (
            self.version, self.ngram_order, self.ngram_bits, self.match_min, self.match_bits,
            self.mixer_contexts, self.mix_rate, self.bias_rate, self.llm_rate, self.skip,
        )
        if self.version >= 2:
            return _CONFIG2.pack(*fields, self.apm_rate, self.prev_sets)
        return _CONFIG.pack(*fields)

    @staticmethod
    def from_bytes(
        raw: bytes, error: type[Exception] = ValueError, unsupported: type[Exception] | None = None
    ) -> "EnsembleConfig":
        """Parse a header value: a preset number (1 byte) or every field (14 bytes in
        version 1, 17 in version 2).

        ``unsupported`` (default: ``error``) is raised for a preset or version this code does not know.
        """
        newer = unsupported or error
        if len(raw) == 1:
            if raw[0] not in PRESETS:
                raise newer(f"archive uses ensemble preset {raw[0]}, unknown to this nacrith: upgrade nacrith")
            return PRESETS[raw[0]]
        if len(raw) == 0:
            raise error("ensemble settings must not be empty")
        if raw[0] > VERSION:
            raise newer(f"archive uses ensemble version {raw[0]}, unknown to this nacrith: upgrade nacrith")
        layout = _LAYOUTS[raw[0]]
        if len(raw) != layout.size:
            raise error(f"ensemble settings of version {raw[0]} must be 1 or {layout.size} bytes, got {len(raw)}")
        return EnsembleConfig(*layout.unpack(raw)).check(error)

    def describe(self) -> str:
        if not self.enabled:
            return "LLM alone"
        parts = [f"n-gram orders 1-{self.ngram_order}" if self.ngram_order else "no n-gram"]
        parts.append(f"match >= {self.match_min} tokens" if self.match_min else "no match model")
        parts.append(f"bias head rate {self.bias_rate / _RATE_ONE:g}" if self.bias_rate else "no bias head")
        parts.append(f"mixer rate {self.mix_rate / _RATE_ONE:g}" + (", context sets" if self.mixer_contexts else ""))
        if self.prev_sets:
            parts.append(f"{1 << self.prev_sets} previous-token weight sets")
        if self.apm_rate:
            parts.append(f"APM rate {self.apm_rate / _RATE_ONE:g}")
        if self.skip:
            parts.append(f"LLM skipped from match length {self.skip}")
        return "; ".join(parts)


LLM_ONLY = EnsembleConfig(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
PRESET_1 = EnsembleConfig()  # the default of the first ensemble (version 1)
DEFAULT_ENSEMBLE = EnsembleConfig(version=2, apm_rate=1311, prev_sets=10)
# Settings a header may name by one byte (numbers are never reused).
PRESETS = {1: PRESET_1, 2: DEFAULT_ENSEMBLE}
# The byte layouts are also stored verbatim in formats/ (container spec, key 14).
SIZE = _CONFIG.size


def n_features(order: int) -> int:
    return 1 + order * _NGRAM_FEATS + _MATCH_BUCKETS


def n_sets(order: int) -> int:
    return _GAP_BUCKETS * (order + 1) * _MATCH_STATES


def n_apm_contexts(order: int) -> int:
    return _APM_MATCH * 2 * (order + 1)


class EnsembleState:
    """The learned state of one stream (fresh for every stream, so streams stay independent).

    A stream may be coded as several **segments** (contiguous parts of its text whose symbols
    are coded in turn, one of each per round; see ``nacrith.codec``).  Every table (n-grams,
    match table, mixer weights, bias head, APM, skip counts) is shared, so each learns from
    every symbol of the stream; each segment has its own history, i.e. its own n-gram
    contexts and match state.  The histories are regions of one array, segment ``s`` starting
    at ``sum(segment_lengths[:s])``: a match found in another segment's region follows it while
    that region has been written (unwritten entries hold -1 and end the match).
    """

    def __init__(
        self, config: EnsembleConfig, n_vocab: int, capacity: int = 4096, segment_lengths: tuple[int, ...] | None = None
    ):
        c = config.check()
        k = c.ngram_order
        nb = 1 << c.ngram_bits
        self.config = c
        self.n_vocab = n_vocab
        # int settings passed to the jitted steps (indices INT_*)
        self.ints = np.zeros(INTS_LEN, dtype=np.int64)
        self.ints[INT_ORDER] = k
        self.ints[INT_NGRAM_MASK] = nb - 1
        self.ints[INT_MATCH_MIN] = c.match_min
        self.ints[INT_MATCH_MASK] = (1 << c.match_bits) - 1
        self.ints[INT_MIXER_CONTEXTS] = c.mixer_contexts
        self.ints[INT_PREV_MASK] = (1 << c.prev_sets) - 1 if c.prev_sets else -1
        self.ints[INT_APM] = 1 if c.apm_rate else 0
        self.rates = np.zeros(4, dtype=np.float64)  # indices RATE_*
        self.rates[RATE_MIX] = c.mix_rate / _RATE_ONE
        self.rates[RATE_BIAS] = c.bias_rate / _RATE_ONE
        self.rates[RATE_LLM] = c.llm_rate / _RATE_ONE
        self.rates[RATE_APM] = c.apm_rate / _RATE_ONE
        if segment_lengths is None or len(segment_lengths) <= 1:
            # Token history; grows by doubling (capacity is a hint, never trusted for allocation).
            self.hist = np.zeros(max(16, min(capacity, 1 << 16)), dtype=np.int32)
            self.segment_counters = np.zeros((1, COUNTERS_LEN), dtype=np.int64)  # indices C_*
            self._ends = None
        else:
            # Exactly the stream's symbols (the caller's lengths come from checked block headers).
            self.hist = np.full(max(1, sum(segment_lengths)), -1, dtype=np.int32)
            self.segment_counters = np.zeros((len(segment_lengths), COUNTERS_LEN), dtype=np.int64)
            bases = np.concatenate(([0], np.cumsum(segment_lengths)[:-1]))
            self.segment_counters[:, C_BASE] = bases
            self.segment_counters[:, C_SEEN] = bases
            self._ends = bases + np.asarray(segment_lengths)
        #: Segment 0's counters (the only ones of a one-segment state).
        self.counters = self.segment_counters[0]
        self.ng_check = np.zeros((max(k, 1), nb), dtype=np.uint32)
        self.ng_tok = np.zeros((max(k, 1), nb, SLOTS), dtype=np.int32)
        self.ng_cnt = np.zeros((max(k, 1), nb, SLOTS), dtype=np.int32)
        self.match_table = np.zeros(1 << c.match_bits if c.match_min else 1, dtype=np.int32)
        d = n_features(k)
        self.w_global = np.zeros(d, dtype=np.float64)
        self.w_global[0] = 1.0  # the LLM at its own temperature
        self.w_global[1 : 1 + k * _NGRAM_FEATS] = INIT_NGRAM  # the Bayesian combination
        self.w_sets = np.zeros((n_sets(k), d), dtype=np.float64)
        self.w_prev = np.zeros((1 << c.prev_sets if c.prev_sets else 1, d), dtype=np.float64)
        self.apm = np.zeros((n_apm_contexts(k) if c.apm_rate else 1, _APM_ENTRIES), dtype=np.float64)
        _apm_init(self.apm)
        self.bias = np.zeros(n_vocab, dtype=np.float64)
        n_cand = max(k, 1) * SLOTS + 1
        self.cand_tok = np.zeros(n_cand, dtype=np.int64)
        self.cand_feat = np.zeros(n_cand, dtype=np.int64)
        self.cand_val = np.zeros(n_cand, dtype=np.float64)
        # Confidence skip: [hits, trials] of skipped predictions, per match-length bucket.
        self.skip_counts = np.zeros((_MATCH_BUCKETS, 2), dtype=np.int64)
        self.skipped = 0  # symbols coded without the LLM (for reports)

    def arrays(self, seg: int = 0):
        return (
            self.ints, self.rates, self.hist, self.segment_counters[seg], self.ng_check, self.ng_tok, self.ng_cnt,
            self.match_table, self.w_global, self.w_sets, self.bias,
            self.cand_tok, self.cand_feat, self.cand_val, self.w_prev, self.apm,
        )

    # -- confidence skip -------------------------------------------------------------------
    #
    # When the match model has followed a repeat for at least ``config.skip`` tokens, the next
    # symbol is first coded as one binary event, "the match continues", with an adaptive
    # probability from integer counts.  On a hit nothing else is coded and the LLM's logits are
    # not needed (the decoder feeds the token to the model later, together with the next one);
    # on a miss the symbol is coded as usual, logits and all.  The decision depends only on
    # state both sides share, so it is the same on both sides.

    def skip_prediction(self, seg: int = 0) -> int:
        """The token the match model predicts if segment ``seg``'s next symbol may skip the
        LLM, else -1."""
        counters = self.segment_counters[seg]
        if self.config.skip and counters[C_MATCH_LEN] >= self.config.skip:
            ptr = int(counters[C_MATCH_PTR])
            if ptr < self.hist.shape[0]:
                return int(self.hist[ptr])  # -1 (no skip) in a region not yet written
        return -1

    def _hit_freq(self, seg: int) -> tuple[int, int]:
        bucket = _py_bucket(int(self.segment_counters[seg, C_MATCH_LEN]), _MATCH_EDGES)
        hits, trials = (int(x) for x in self.skip_counts[bucket])
        freq = ((2 * hits + 1) * cdf.TOTAL) // (2 * trials + 2)  # exact integers
        return bucket, min(max(freq, 1), cdf.TOTAL - 1)

    def _count(self, bucket: int, hit: bool) -> None:
        c = self.skip_counts[bucket]
        c[0] += hit
        c[1] += 1
        if c[1] > 1000:  # keep adapting: halve old evidence
            c[0] = (c[0] + 1) >> 1
            c[1] = (c[1] + 1) >> 1

    def encode_skip(self, token: int, predicted: int, seg: int = 0) -> tuple[tuple[int, int], bool]:
        """The interval of the event "match continues" for ``token``, and whether it did; on a
        hit the token is learned here (the caller codes nothing more)."""
        bucket, freq = self._hit_freq(seg)
        hit = token == predicted
        self._count(bucket, hit)
        if hit:
            self.observe(token, seg)
            return (0, freq), True
        return (freq, cdf.TOTAL - freq), False

    def decode_skip(self, target: int, predicted: int, seg: int = 0) -> tuple[tuple[int, int], bool]:
        """Inverse of :meth:`encode_skip` for a decoder ``target``."""
        bucket, freq = self._hit_freq(seg)
        hit = target < freq
        self._count(bucket, hit)
        if hit:
            self.observe(predicted, seg)
            return (0, freq), True
        return (freq, cdf.TOTAL - freq), False

    def observe(self, token: int, seg: int = 0) -> None:
        """Learn ``token`` without logits (history, n-grams, match model; the mixer is unchanged)."""
        self._room(seg)
        _observe(token, self.ints, self.hist, self.segment_counters[seg], self.ng_check, self.ng_tok, self.ng_cnt,
                 self.match_table)
        self.skipped += 1

    def _room(self, seg: int) -> None:
        """Make sure the jitted step may write ``hist[C_SEEN]`` of segment ``seg``."""
        seen = self.segment_counters[seg, C_SEEN]
        if self._ends is not None:
            if seen >= self._ends[seg]:
                raise ValueError(f"ensemble: segment {seg} is longer than its declared length")
        elif seen >= self.hist.shape[0]:
            grown = np.zeros(2 * self.hist.shape[0], dtype=np.int32)
            grown[: self.hist.shape[0]] = self.hist
            self.hist = grown

    def encode(self, logits: np.ndarray, token: int, work: np.ndarray, seg: int = 0) -> tuple[int, int]:
        """Code ``token`` (an LLM token id) after these logits: ``(cum_low, freq)``; learns."""
        if not 0 <= token < self.n_vocab or logits.shape[0] != self.n_vocab or work.shape[0] < self.n_vocab:
            raise ValueError("ensemble: token, logits or scratch do not match the vocabulary")
        self._room(seg)
        return _encode_step(logits, token, work, *self.arrays(seg))

    def frequencies(self, logits: np.ndarray, work: np.ndarray, seg: int = 0) -> np.ndarray:
        """The integer frequencies (np.int64[n_vocab], sum ``cdf.TOTAL``) that the next
        :meth:`encode` or :meth:`decode` of segment ``seg`` codes with; learns nothing."""
        if logits.shape[0] != self.n_vocab or work.shape[0] < self.n_vocab:
            raise ValueError("ensemble: logits or scratch do not match the vocabulary")
        self._room(seg)
        a = self.arrays(seg)
        _predict(logits, work, a[0], *a[2:])  # every argument but the rates
        return cdf.freqs_from_scores(work, self.n_vocab)

    def decode(self, logits: np.ndarray, target: int, work: np.ndarray, seg: int = 0) -> tuple[int, int, int]:
        """The token whose interval holds ``target``: ``(token, cum_low, freq)``; learns."""
        if logits.shape[0] != self.n_vocab or work.shape[0] < self.n_vocab:
            raise ValueError("ensemble: logits or scratch do not match the vocabulary")
        self._room(seg)
        return _decode_step(logits, target, work, *self.arrays(seg))


# -- jitted parts ---------------------------------------------------------------------------

_H1 = np.uint64(0x9E3779B97F4A7C15)
_H2 = np.uint64(0xC2B2AE3D27D4EB4F)


@njit(cache=True, inline="always")
def _mix(h, t):
    h = (h ^ np.uint64(t + 1)) * _H1
    return h ^ (h >> np.uint64(29))


_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@njit(cache=True)
def ln_pos(x):
    """Natural log of ``x`` clamped to ``[1e-300, 1e300]``, from basic IEEE operations only
    (no libm, so every machine gets the same bits): ``x = m * 2**e`` with
    ``m`` in ``[sqrt(1/2), sqrt(2))``, ``ln m = 2 atanh((m - 1) / (m + 1))`` by its series."""
    x = min(max(x, 1e-300), 1e300)
    bits = np.float64(x).view(np.int64)
    e = ((bits >> 52) & 0x7FF) - 1023
    m = np.int64((bits & 0x000FFFFFFFFFFFFF) | (1023 << 52)).view(np.float64)
    if m > 1.4142135623730951:
        m = m * 0.5
        e += 1
    f = (m - 1.0) / (m + 1.0)
    q = f * f
    t = 1.0 / 21.0
    t = t * q + 1.0 / 19.0
    t = t * q + 1.0 / 17.0
    t = t * q + 1.0 / 15.0
    t = t * q + 1.0 / 13.0
    t = t * q + 1.0 / 11.0
    t = t * q + 1.0 / 9.0
    t = t * q + 1.0 / 7.0
    t = t * q + 1.0 / 5.0
    t = t * q + 1.0 / 3.0
    t = t * q + 1.0
    ef = np.float64(e)
    return ef * _LN2_HI + (ef * _LN2_LO + 2.0 * f * t)


# Bucket edges: a value v falls in bucket i when edges[i-1] <= v < edges[i].
_COUNT_EDGES = np.array([2.0, 4.0, 8.0])  # context seen N times: 1, 2-3, 4-7, 8+
_MATCH_EDGES = np.array([8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0])  # match length in tokens
_GAP_EDGES = np.array([1.0, 2.5, 5.0])  # top-1 minus top-2 logit


def _py_bucket(value: int, edges: np.ndarray) -> int:
    """:func:`_bucket` in Python (integer value, same edges, same result)."""
    return int(np.searchsorted(edges, value, side="right"))


@njit(cache=True)
def _bucket(value, edges):
    i = 0
    while i < edges.shape[0] and value >= edges[i]:
        i += 1
    return i


@njit(cache=True)
def _gap_bucket(logits):
    """How peaked the LLM is: the gap between its two largest logits, in 4 buckets."""
    a = -np.inf
    b = -np.inf
    for i in range(logits.shape[0]):
        x = np.float64(logits[i])
        if x > a:
            b = a
            a = x
        elif x > b:
            b = x
    g = a - b
    if not g < np.inf:  # NaN or inf: treat as very peaked
        return _GAP_EDGES.shape[0]
    return _bucket(g, _GAP_EDGES)


@njit(cache=True)
def _slot(h, k, ng_mask):
    """(bucket, check) of the order-(k+1) context whose running hash is ``h``."""
    hk = (h ^ np.uint64(k + 1)) * _H2
    return np.int64(hk & np.uint64(ng_mask)), np.uint32((hk >> np.uint64(32)) | np.uint64(1))


@njit(cache=True)
def _features(logits, ints, hist, counters, ng_check, ng_tok, ng_cnt, match_table,
              cand_tok, cand_feat, cand_val):
    """Look up the n-gram contexts and the match for the next token; fill the candidate list.

    Returns (number of candidates, selected weight set).
    """
    order, ng_mask, match_min = ints[INT_ORDER], ints[INT_NGRAM_MASK], ints[INT_MATCH_MIN]
    use_sets = ints[INT_MIXER_CONTEXTS]
    n = counters[C_SEEN]
    nc = 0
    longest = 0
    h = np.uint64(0)
    for k in range(order):
        if k >= n - counters[C_BASE]:
            break
        h = _mix(h, hist[n - 1 - k])
        bucket, check = _slot(h, k, ng_mask)
        if ng_check[k, bucket] != check:
            continue
        total = 0
        distinct = 0
        for s in range(ng_tok.shape[2]):
            c = ng_cnt[k, bucket, s]
            if c > 0:
                total += c
                distinct += 1
        if total == 0:
            continue
        longest = k + 1
        feat = 1 + k * _NGRAM_FEATS + _bucket(np.float64(total), _COUNT_EDGES) * 2 + (1 if distinct == 1 else 0)
        for s in range(ng_tok.shape[2]):
            c = ng_cnt[k, bucket, s]
            if c > 0:
                cand_tok[nc] = ng_tok[k, bucket, s]
                cand_feat[nc] = feat
                cand_val[nc] = np.float64(c)  # a count; _scores turns it into the feature
                nc += 1
    mstate = 0
    if match_min > 0:
        length = _match_length(hist, counters)
        if length > 0:
            ptr = counters[C_MATCH_PTR]
            cand_tok[nc] = hist[ptr]
            cand_feat[nc] = 1 + order * _NGRAM_FEATS + _bucket(np.float64(length), _MATCH_EDGES)
            cand_val[nc] = -1.0  # marks the match candidate
            nc += 1
            mstate = 1 if length < 16 else 2
    if use_sets:
        sel = (_gap_bucket(logits) * (order + 1) + longest) * 3 + mstate
    else:
        sel = -1
    counters[C_SET] = sel
    counters[C_CANDIDATES] = nc
    counters[C_LONGEST] = longest
    return nc


@njit(cache=True)
def _scores(logits, work, v, w_global, w_sets, sel, bias, cand_tok, cand_feat, cand_val, nc, w_prev, sel2):
    """Write the mixed scores into ``work[:v]``; returns the LLM logits' maximum."""
    mx = -np.inf
    for i in range(v):
        x = np.float64(logits[i])
        if x > mx and x < np.inf:
            mx = x
    a = w_global[0]
    if sel >= 0:
        a = a + w_sets[sel, 0]
    if sel2 >= 0:
        a = a + w_prev[sel2, 0]
    z = 0.0
    for i in range(nc):
        if cand_val[i] > 0.0:  # n-gram candidates need the LLM's probabilities
            for i in range(v):
                z += cdf.exp_nonpos(np.float64(logits[i]) - mx)
            break
    # n-gram feature: with the LLM as the Dirichlet prior of a context's successor counts,
    # P(t) = (c_t + alpha p_t) / (N + alpha), whose log-ratio to the LLM is ln(1 + c_t / (alpha p_t))
    # for seen successors and a constant for the rest (which the softmax ignores).
    for j in range(nc):
        c = cand_val[j]
        if c > 0.0:
            p = cdf.exp_nonpos(np.float64(logits[cand_tok[j]]) - mx) / z
            cand_val[j] = ln_pos(1.0 + c / (ALPHA * max(p, 1e-12)))
        else:
            cand_val[j] = 1.0
    for i in range(v):
        work[i] = a * (np.float64(logits[i]) - mx) + bias[i]
    for j in range(nc):
        f = cand_feat[j]
        w = w_global[f]
        if sel >= 0:
            w = w + w_sets[sel, f]
        if sel2 >= 0:
            w = w + w_prev[sel2, f]
        work[cand_tok[j]] += w * cand_val[j]
    return mx


@njit(cache=True)
def _learn(logits, token, work, v, s_fixed, mx, rates, w_global, w_sets, sel, bias,
           cand_tok, cand_feat, cand_val, nc, w_prev, sel2, tgt, p_tgt):
    """One SGD step on -ln p(token); ``work[:v]`` holds the weights ``w_i`` (p_i = w_i * 2**44 / S).

    With an APM stage (``tgt >= 0``) the gradients are those of the distribution before it:
    ``p_tgt`` for ``tgt`` and the others scaled by ``(1 - p_tgt) / (1 - w_tgt * 2**44 / S)``.
    """
    mix_rate = rates[RATE_MIX]
    bias_rate = rates[RATE_BIAS]
    llm_rate = rates[RATE_LLM]
    to_p = np.float64(1 << cdf.WEIGHT_BITS) / np.float64(s_fixed)
    if tgt >= 0:
        to_p = to_p * (1.0 - p_tgt) / max(1.0 - work[tgt] * to_p, 1e-12)
    # d(-ln p_y)/d s_t = p_t - [t == y]
    if llm_rate > 0.0:
        e_llm = 0.0
        for i in range(v):
            e_llm += work[i] * (np.float64(logits[i]) - mx)
        if tgt >= 0:
            e_llm = e_llm * to_p + (p_tgt - work[tgt] * to_p) * (np.float64(logits[tgt]) - mx)
            g0 = e_llm - (np.float64(logits[token]) - mx)
        else:
            g0 = e_llm * to_p - (np.float64(logits[token]) - mx)
        w_global[0] = min(4.0, max(0.05, w_global[0] - llm_rate * g0))
        if sel >= 0:
            w_sets[sel, 0] = min(4.0, max(-2.0, w_sets[sel, 0] - llm_rate * g0))
        if sel2 >= 0:
            w_prev[sel2, 0] = min(4.0, max(-2.0, w_prev[sel2, 0] - llm_rate * g0))
    if mix_rate > 0.0:
        for j in range(nc):
            t = cand_tok[j]
            if t == tgt:
                g = p_tgt * cand_val[j]
            else:
                g = work[t] * to_p * cand_val[j]
            if t == token:
                g -= cand_val[j]
            f = cand_feat[j]
            w_global[f] = min(24.0, max(-8.0, w_global[f] - mix_rate * g))
            if sel >= 0:
                w_sets[sel, f] = min(24.0, max(-8.0, w_sets[sel, f] - mix_rate * g))
            if sel2 >= 0:
                w_prev[sel2, f] = min(24.0, max(-8.0, w_prev[sel2, f] - mix_rate * g))
    if bias_rate > 0.0:
        r = bias_rate * to_p
        for i in range(v):
            bias[i] -= r * work[i]
        if tgt >= 0:
            bias[tgt] += r * work[tgt] - bias_rate * p_tgt
        bias[token] += bias_rate
        if bias[token] > 16.0:
            bias[token] = 16.0


@njit(cache=True)
def _squash(x):
    """``1 / (1 + exp(-x))`` from :func:`cdf.exp_nonpos`."""
    if x >= 0.0:
        return 1.0 / (1.0 + cdf.exp_nonpos(-x))
    e = cdf.exp_nonpos(x)
    return e / (1.0 + e)


@njit(cache=True)
def _apm_init(apm):
    """Every context starts as the identity: entry ``j`` holds ``squash((j - 16) / 2)``."""
    for j in range(apm.shape[1]):
        p = _squash((j - 16) * 0.5)
        for c in range(apm.shape[0]):
            apm[c, j] = p


@njit(cache=True)
def _apm_stage(work, v, ints, hist, counters, apm):
    """Refine the mixed scores in ``work[:v]`` (in place) by the APM table.

    Returns (target token or -1, its probability before the stage, context, entry, fraction).
    """
    ms = -np.inf
    top = -1
    for i in range(v):
        x = work[i]
        if x > ms and x < np.inf:
            ms = x
            top = i
    if top < 0:
        return -1, 0.0, 0, 0, 0.0
    order = ints[INT_ORDER]
    length = _match_length(hist, counters) if ints[INT_MATCH_MIN] > 0 else 0
    tgt = hist[counters[C_MATCH_PTR]] if length > 0 else top
    # fixed-point sum (exact integers, so the order of the additions cannot matter)
    acc = 0
    for i in range(v):
        acc += np.int64(cdf.exp_nonpos(work[i] - ms) * _WEIGHT_ONE)
    p = np.float64(np.int64(cdf.exp_nonpos(work[tgt] - ms) * _WEIGHT_ONE)) / np.float64(acc)
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    st = ln_pos(p / (1.0 - p))
    mstate = 0 if length == 0 else (1 if length < 16 else 2)
    ctx = (mstate * 2 + (1 if tgt == top else 0)) * (order + 1) + counters[C_LONGEST]
    pos = (st + 8.0) * 2.0
    pos = min(max(pos, 0.0), 31.999)
    j = np.int64(pos)
    fr = pos - np.float64(j)
    pa = apm[ctx, j] * (1.0 - fr) + apm[ctx, j + 1] * fr
    pa = min(max(pa, 1e-6), 1.0 - 1e-6)
    st2 = 0.5 * st + 0.5 * ln_pos(pa / (1.0 - pa))
    work[tgt] += st2 - st
    return tgt, p, ctx, j, fr


@njit(cache=True)
def _apm_learn(apm, rate, token, tgt, ctx, j, fr):
    y = 1.0 if token == tgt else 0.0
    apm[ctx, j] += rate * (1.0 - fr) * (y - apm[ctx, j])
    apm[ctx, j + 1] += rate * fr * (y - apm[ctx, j + 1])


@njit(cache=True)
def _match_length(hist, counters):
    """The current match length, 0 when the token it predicts is not known: past the end of
    the history or, with several segments, not yet written in another segment's region (with
    one segment the pointer always points at a written token)."""
    length = counters[C_MATCH_LEN]
    if length > 0:
        ptr = counters[C_MATCH_PTR]
        if ptr >= hist.shape[0] or hist[ptr] < 0:
            return 0
    return length


@njit(cache=True)
def _observe(token, ints, hist, counters, ng_check, ng_tok, ng_cnt, match_table):
    """Enter ``token`` into the history, the n-gram tables and the match model."""
    order, ng_mask = ints[INT_ORDER], ints[INT_NGRAM_MASK]
    match_min, match_mask = ints[INT_MATCH_MIN], ints[INT_MATCH_MASK]
    n = counters[C_SEEN]
    base = counters[C_BASE]
    h = np.uint64(0)
    for k in range(order):
        if k >= n - base:
            break
        h = _mix(h, hist[n - 1 - k])
        bucket, check = _slot(h, k, ng_mask)
        if ng_check[k, bucket] != check:
            ng_check[k, bucket] = check
            for s in range(ng_tok.shape[2]):
                ng_cnt[k, bucket, s] = 0
        found = -1
        low = 0
        for s in range(ng_tok.shape[2]):
            if ng_cnt[k, bucket, s] > 0 and ng_tok[k, bucket, s] == token:
                found = s
                break
            if ng_cnt[k, bucket, s] < ng_cnt[k, bucket, low]:
                low = s
        if found >= 0:
            ng_cnt[k, bucket, found] += 1
            if ng_cnt[k, bucket, found] > 1000:
                for s in range(ng_tok.shape[2]):
                    ng_cnt[k, bucket, s] = (ng_cnt[k, bucket, s] + 1) >> 1
        else:
            ng_tok[k, bucket, low] = token
            ng_cnt[k, bucket, low] = 1
    hist[n] = token
    n += 1
    counters[C_SEEN] = n
    if match_min > 0:
        length = _match_length(hist, counters)
        if length > 0 and hist[counters[C_MATCH_PTR]] == token:
            counters[C_MATCH_PTR] += 1
            counters[C_MATCH_LEN] = length + 1
        else:
            counters[C_MATCH_LEN] = 0
        if n - base >= match_min:
            h = np.uint64(0)
            for j in range(match_min):
                h = _mix(h, hist[n - 1 - j])
            slot = np.int64(h & np.uint64(match_mask))
            if counters[C_MATCH_LEN] == 0:
                cand = np.int64(match_table[slot])  # position after an earlier occurrence
                if cand > 0 and cand != n:
                    # verify (hash collisions) and measure the match backwards, within this
                    # segment's own history
                    length = 0
                    while (length < _MATCH_MAX_BACK and length < cand and length < n - base
                           and hist[cand - 1 - length] == hist[n - 1 - length]):
                        length += 1
                    if length >= match_min:
                        counters[C_MATCH_PTR] = cand
                        counters[C_MATCH_LEN] = length
            match_table[slot] = n


@njit(cache=True)
def _predict(logits, work, ints, hist, counters, ng_check, ng_tok, ng_cnt, match_table, w_global,
             w_sets, bias, cand_tok, cand_feat, cand_val, w_prev, apm):
    """Features and mixed scores (into ``work``) for the next token.

    Returns (candidates, weight set, previous-token set, max logit, APM target, its
    probability before the APM stage, APM context, entry, fraction).
    """
    nc = _features(logits, ints, hist, counters, ng_check, ng_tok, ng_cnt, match_table,
                   cand_tok, cand_feat, cand_val)
    sel = counters[C_SET]
    n = counters[C_SEEN]
    sel2 = -1
    if ints[INT_PREV_MASK] >= 0 and n > counters[C_BASE]:
        sel2 = np.int64(_mix(np.uint64(0), hist[n - 1]) & np.uint64(ints[INT_PREV_MASK]))
    v = logits.shape[0]
    mx = _scores(logits, work, v, w_global, w_sets, sel, bias, cand_tok, cand_feat, cand_val, nc, w_prev, sel2)
    tgt, p_tgt, ctx, j, fr = -1, 0.0, 0, 0, 0.0
    if ints[INT_APM]:
        tgt, p_tgt, ctx, j, fr = _apm_stage(work, v, ints, hist, counters, apm)
    return nc, sel, sel2, mx, tgt, p_tgt, ctx, j, fr


@njit(cache=True)
def _encode_step(logits, token, work, ints, rates, hist, counters, ng_check, ng_tok, ng_cnt,
                 match_table, w_global, w_sets, bias, cand_tok, cand_feat, cand_val, w_prev, apm):
    v = logits.shape[0]
    nc, sel, sel2, mx, tgt, p_tgt, ctx, j, fr = _predict(
        logits, work, ints, hist, counters, ng_check, ng_tok, ng_cnt, match_table,
        w_global, w_sets, bias, cand_tok, cand_feat, cand_val, w_prev, apm)
    lo, f, s_fixed = cdf.interval_from_scores(work, v, token)
    _learn(logits, token, work, v, s_fixed, mx, rates, w_global, w_sets, sel, bias, cand_tok, cand_feat, cand_val, nc,
           w_prev, sel2, tgt, p_tgt)
    if tgt >= 0:
        _apm_learn(apm, rates[RATE_APM], token, tgt, ctx, j, fr)
    _observe(token, ints, hist, counters, ng_check, ng_tok, ng_cnt, match_table)
    return lo, f


@njit(cache=True)
def _decode_step(logits, target, work, ints, rates, hist, counters, ng_check, ng_tok, ng_cnt,
                 match_table, w_global, w_sets, bias, cand_tok, cand_feat, cand_val, w_prev, apm):
    v = logits.shape[0]
    nc, sel, sel2, mx, tgt, p_tgt, ctx, j, fr = _predict(
        logits, work, ints, hist, counters, ng_check, ng_tok, ng_cnt, match_table,
        w_global, w_sets, bias, cand_tok, cand_feat, cand_val, w_prev, apm)
    token, lo, f, s_fixed = cdf.symbol_from_scores(work, v, target)
    _learn(logits, token, work, v, s_fixed, mx, rates, w_global, w_sets, sel, bias, cand_tok, cand_feat, cand_val, nc,
           w_prev, sel2, tgt, p_tgt)
    if tgt >= 0:
        _apm_learn(apm, rates[RATE_APM], token, tgt, ctx, j, fr)
    _observe(token, ints, hist, counters, ng_check, ng_tok, ng_cnt, match_table)
    return token, lo, f
