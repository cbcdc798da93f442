"""bytecm: a general-purpose bitwise context-mixing byte compressor (lpaq-style).

Used for binary data (the whole-file ``bytecm`` mode 4 and, when smaller than zstd, the
binary section of hybrid mode 2).  Every byte is coded as 8 binary decisions, most
significant bit first.  For each bit:

* **context models**: orders 0, 1, 2, 3, 4, 6, a word context (hash of the current run of
  letters) and two sparse contexts (bytes 2-3 back; byte 1 and 3 back), each a hashed table of
  adaptive probability counters; version 2 adds orders 5 and 8, a word bigram (the current
  and the previous word) and two column contexts (the byte at the same column of the
  previous line, with the column and with the last byte: tables, logs, fixed-width text).
  A context's counters for one nibble share a 64-byte slot of 16
  ``uint32`` (entry 0 holds a check tag, entries 1..15 the counters indexed by the bits of the
  nibble seen so far), so each model costs one cache line per nibble.  A version 1 counter is
  a 22-bit probability and a 10-bit count ``n``; it moves towards the bit by ``1 / (n + 1.5)``,
  ``n`` capped at ``LIMIT``.  Each model gives the mixer ``stretch(p)`` and a confidence term.
  Version 2 counters keep a 16-bit probability, an 8-bit count (cap ``LIMIT_V2``) and an 8-bit
  bit history (the last up to 7 bits seen in that context, after a leading 1); the history
  indexes an adaptive map of that model and bit position, whose stretched probability is a
  third input (an indirect model: it learns what a history like "1110" is followed by, which
  a single counter cannot; it is what gains most on logs and repetitive records).
* **match model**: the last ``MATCH_MIN`` bytes are hashed to find the most recent earlier
  occurrence; while the following bytes keep agreeing, the byte after it predicts the next
  bit, through an adaptive counter selected by the match length (bucketed) and the predicted
  bit.
* **mixing**: three logistic mixers (weight sets selected by the partial byte ``c0``, by the
  last byte, and by the match-length bucket and bit position; version 2 adds two, selected by
  ``c0`` and the byte two back, and by ``c0`` and how many of the order-n contexts had been
  seen before) and a final mixer over them, then two adaptive probability maps (APM / SSE,
  contexts ``c0``, in version 2 with the match state, and ``c0`` + last byte) averaged with
  the mixer output.
* **coder**: a 32-bit binary arithmetic coder with 16-bit probabilities.

Determinism invariants (the encoder and the decoder run the *same* function, ``_run``, with
the bit either read from the input or decoded):

* integer and fixed-point arithmetic only: every value is an ``int64`` (or a ``uint32`` /
  ``int32`` / ``uint16`` array element promoted to ``int64``); the hashes multiply 32-bit
  values by constants below 2^31, so no product exceeds 2^63 (no signed overflow); there is
  no float anywhere in ``_run`` (``tests/test_bytecm.py`` checks the compiled LLVM IR) and
  numba runs without fastmath;
* the squash table is integer interpolation of a fixed 33-point table, stretch its exact
  inverse by search, the counter rate table an integer division: all identical everywhere;
* every array index is masked or clamped into its array by construction: table indices are
  ``(k << mem_log) + (hash >> shift) * 16 + j`` with ``j < 16``, the history index is in
  ``[0, pos)``, the match pointer in ``[0, pos)``, the byte above is read below
  ``line_start <= pos``, and the decoder reads the payload only
  below its length (past the end it reads zero bytes, so a truncated payload decodes to
  wrong bytes, caught by the block CRC-32, and the loop always stops after ``8 * n_bytes``
  bits: no hang);
* the encoder writes only below its output capacity and reports overflow (then the caller
  does not use bytecm for that input).

Payload layout::

    u8 version (1 or 2) | u8 mem_log (MIN_MEM_LOG..MAX_MEM_LOG) | arithmetic-coded bits

``compress`` writes version 2 (``tests/bench/bench_bytecm.py`` compares both: 1-4 % smaller on
text and structured data, up to a third on logs, at a third to 40 % of version 1's speed);
version 1 archives decode unchanged, pinned by ``formats/golden/bytecm/records.v1.nc``.
``mem_log`` fixes every table size (``2^mem_log`` counters per context model, ``2^(mem_log-2)``
match pointers), so memory is about ``NCTX * 4 * 2^mem_log + 2^mem_log + n_bytes`` bytes plus
9 MiB of APM and mixer tables (version 2: ``NCTX_V2`` models and 23 MiB of tables): 157 MiB
at the maximum 22 (reached from 256 KiB of input), 250 MiB for version 2.  The encoder picks
it from the input size (``mem_log_for``); the decoder uses the recorded value and refuses
values outside the range.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .errors import UnsupportedVersionError, corrupt

VERSION = 2  # written by compress
VERSIONS = (1, 2)  # decoded
MIN_MEM_LOG = 16
MAX_MEM_LOG = 22
HEADER_BYTES = 2
_NO_TRACE = np.zeros(0, dtype=np.int64)

NCTX = 9  # context models: orders 0,1,2,3,4,6, word, sparse a, sparse b
NCTX_V2 = 14  # v2 adds orders 5 and 8, a word bigram and two column contexts
MATCH_MIN = 6  # bytes hashed to find a match
MAX_MATCH = 65535
LIMIT = 1023  # counter count cap (adaptation rate floor 1 / (LIMIT + 1.5))
LIMIT_V2 = 255  # v2 keeps the count in 8 bits
MIX_LR = 16  # mixer learning rate (error multiplier)
N_LEN_BUCKETS = 28

_MASK32 = 0xFFFFFFFF

_SQUASH_POINTS = np.array(
    [1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994,
     3348, 3607, 3785, 3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094],
    dtype=np.int64,
)


def _squash_table() -> np.ndarray:
    """squash(d) for d in -2047..2047 (index d + 2047): 4096 / (1 + e^(-d/256)), integer."""
    out = np.zeros(4095, dtype=np.int64)
    for d in range(-2047, 2048):
        w = d & 127
        i = (d >> 7) + 16
        out[d + 2047] = (int(_SQUASH_POINTS[i]) * (128 - w) + int(_SQUASH_POINTS[i + 1]) * w + 64) >> 7
    return out


def _stretch_table(squash: np.ndarray) -> np.ndarray:
    """stretch(p) for p in 0..4095: the d whose squash is nearest from above (inverse)."""
    out = np.zeros(4096, dtype=np.int64)
    pi = 0
    for d in range(-2047, 2048):
        v = int(squash[d + 2047])
        for p in range(pi, v + 1):
            out[p] = d
        pi = max(pi, v + 1)
    for p in range(pi, 4096):
        out[p] = 2047
    return out


SQUASH = _squash_table()
STRETCH = _stretch_table(SQUASH)
#: Counter rate: 65536 / (n + 1.5), integer.
RATE = np.array([131072 // (2 * n + 3) for n in range(1024)], dtype=np.int64)


def mem_log_for(n_bytes: int) -> int:
    """Table size (log2 counters per model) for an input of ``n_bytes``: about 2 counters
    per input bit, between ``MIN_MEM_LOG`` and ``MAX_MEM_LOG``."""
    log = MIN_MEM_LOG
    while log < MAX_MEM_LOG and (1 << log) < 2 * 8 * n_bytes:
        log += 1
    return log


@njit(cache=True, inline="always")
def _hash(a, b):
    x = ((a & 0xFFFFFFFF) * 0x2F0F3A6B + (b & 0xFFFFFFFF) * 0x1B873593 + 0x3C6EF372) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x5BD1E995) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0x27D4EB2F) & 0xFFFFFFFF
    x ^= x >> 16
    return x


@njit(cache=True, inline="always")
def _squash(d, sq):
    if d > 2047:
        d = 2047
    if d < -2047:
        d = -2047
    return sq[d + 2047]


@njit(cache=True, inline="always")
def _counter_update(e, y, rate, limit):
    """A counter of 22-bit probability and 10-bit count (version 1's context counters, the
    match model's, version 2's bit-history maps) after coding ``y``; ``n`` stops at ``limit``."""
    p22 = e >> 10
    n = e & 1023
    p22 += (((y << 22) - p22) * rate[n]) >> 16
    if n < limit:
        n += 1
    return (p22 << 10) | n


@njit(cache=True, inline="always")
def _context_count(e, v2):
    """The visit count ``n`` of a context counter: its low 10 bits in version 1, bits 8-15 in
    version 2 (whose low byte is the bit history)."""
    return (e >> 8) & 255 if v2 else e & 1023


@njit(cache=True)
def _run(encode, data, payload, n_bytes, mem_log, version, sq, st, rate, trace):
    """Encode ``data`` into ``payload`` (returns the byte count, or -1 if it would overflow)
    or decode ``payload`` into ``data`` (returns the number of payload bytes consumed,
    counting reads past the end).  ``n_bytes`` bytes; ``mem_log`` and ``version`` as
    recorded.  Version 2 adds to version 1 what the comments marked "v2" say.  ``trace``
    receives each bit's ``p16`` (8 entries per byte) unless it is empty."""
    M32 = 0xFFFFFFFF
    v2 = version >= 2
    nctx = NCTX_V2 if v2 else NCTX
    n_per = 3 if v2 else 2  # mixer inputs per context model
    nin = n_per * nctx + 3
    nmix = 5 if v2 else 3
    # context model tables: nctx regions of 2^mem_log uint32
    tab = np.zeros(nctx << mem_log, dtype=np.uint32)
    slot_shift = 32 - (mem_log - 4)
    # v2: bit-history maps, per context model and bit position (history byte -> counter)
    hmap = np.full(nctx * 8 * 256 if v2 else 1, 1 << 31, dtype=np.uint32)
    # match model
    mt_log = mem_log - 2
    mtab = np.zeros(1 << mt_log, dtype=np.int32)
    msm = np.full(64 * 2, 1 << 31, dtype=np.uint32)  # counters (p22 << 10 | n) by len bucket, bit
    # first-layer mixers, each a table of weight sets, selected by: c0; the last byte; the
    # match-length bucket and bit position; v2: the last byte and c0; v2: how many of the
    # order-n contexts were seen before, and c0.  Then one final mixer.
    set_base = np.array([0, 256, 512, 512 + 64 * 8, 512 + 64 * 8 + 65536], dtype=np.int64)
    n_sets = 512 + 64 * 8 + (65536 + 16 * 256 if v2 else 0)
    wm = np.full(n_sets * nin, 1 << 14, dtype=np.int32)
    wf = np.full(nmix, 65536 // nmix, dtype=np.int64)
    sel = np.zeros(nmix, dtype=np.int64)
    dmix = np.zeros(nmix, dtype=np.int64)
    pmix = np.zeros(nmix, dtype=np.int64)
    # APMs: 33 buckets of 16-bit probabilities per context (v2: apm1's context adds the
    # match model's state)
    n_apm1 = 256 * 64 if v2 else 256
    apm1 = np.zeros(n_apm1 * 33, dtype=np.int32)
    apm2 = np.zeros(65536 * 33, dtype=np.int32)
    for i in range(33):
        v = sq[min(max((i - 16) * 128, -2047), 2047) + 2047] * 16
        for c in range(n_apm1):
            apm1[c * 33 + i] = v
        for c in range(65536):
            apm2[c * 33 + i] = v

    x = np.zeros(nin, dtype=np.int64)
    ctxh = np.zeros(nctx, dtype=np.int64)  # per-byte context hashes
    slot = np.zeros(nctx, dtype=np.int64)  # per-nibble slot base (absolute index)
    cidx = np.zeros(nctx, dtype=np.int64)  # counter index for the current bit
    hidx = np.zeros(nctx, dtype=np.int64)  # v2: bit-history map index for the current bit

    # coder state
    x1 = 0
    x2 = M32
    xd = 0
    ip = 0  # payload position (decoder reads / encoder writes)
    cap = payload.shape[0]
    if not encode:
        for _ in range(4):
            b = 0
            if ip < cap:
                b = np.int64(payload[ip])
            ip += 1
            xd = (xd << 8) | b

    c4 = 0  # last 4 bytes
    c8 = 0  # the 4 before
    word = 0
    pword = 0  # v2: the word before
    line_start = 0  # v2: where the current line (after the last b"\n") starts
    pline_start = 0  # v2: where the line before it starts
    mptr = 0
    mlen = 0
    mbyte = 0  # predicted byte (valid when mlen > 0)
    for pos in range(n_bytes):
        # ---- byte boundary: context hashes
        c1 = c4 & 0xFF
        ctxh[0] = 0
        ctxh[1] = _hash(c1, 1)
        ctxh[2] = _hash(c4 & 0xFFFF, 2)
        ctxh[3] = _hash(c4 & 0xFFFFFF, 3)
        ctxh[4] = _hash(c4, 4)
        ctxh[5] = _hash(_hash(c4, c8 & 0xFFFF), 6)
        ctxh[6] = _hash(word, 7 + (c1 << 8))
        ctxh[7] = _hash(c4 & 0xFFFF00, 8)
        ctxh[8] = _hash(c4 & 0xFF00FF, 9)
        if v2:
            ctxh[9] = _hash(_hash(c4, c8 & 0xFF), 10)  # order 5
            ctxh[10] = _hash(_hash(c4, c8), 11)  # order 8
            ctxh[11] = _hash(_hash(word, pword), 12 + (c1 << 8))  # word bigram
            # columns: the byte above (same column of the previous line, 256 + byte; 0 if
            # that line is shorter) with the column, and with the last byte
            col = pos - line_start
            above = 0
            if col < line_start - pline_start:
                above = np.int64(data[pline_start + col]) | 256
            ctxh[12] = _hash(above | (min(col, 255) << 9), 13)
            ctxh[13] = _hash(above | (c1 << 9), 14)
        # ---- match model: extend or look up
        if pos >= MATCH_MIN:
            h = _hash(c4, c8 & 0xFFFF) >> (32 - mt_log)
            if mlen > 0:
                if mlen < MAX_MATCH:
                    mlen += 1
                mptr += 1
            else:
                cand = np.int64(mtab[h])
                if cand > 0 and cand < pos:
                    ln = 0
                    while ln < MAX_MATCH and ln < cand and data[cand - 1 - ln] == data[pos - 1 - ln]:
                        ln += 1
                    if ln >= MATCH_MIN:
                        mlen = ln
                        mptr = cand
            mtab[h] = pos
        if mlen > 0 and mptr < pos:
            mbyte = np.int64(data[mptr]) | 256
        else:
            mlen = 0
        if mlen == 0:
            lb = 0
        elif mlen < 16:
            lb = mlen
        else:
            lb = 12
            t = mlen
            while t > 1:
                t >>= 1
                lb += 1
            if lb >= N_LEN_BUCKETS:
                lb = N_LEN_BUCKETS - 1

        c0 = 1
        byte = 0
        if encode:
            byte = np.int64(data[pos])
        for bit in range(8):
            # ---- nibble boundary: find or claim each model's slot
            if bit == 0 or bit == 4:
                found = 0  # v2: order-n contexts (orders 1-6 and 8) whose slot already existed
                for k in range(nctx):
                    hh = _hash(ctxh[k], c0 + (k << 8))
                    chk = (hh & 0xFFFF) | 0x10000  # never 0 (0 marks an empty slot)
                    base = (k << mem_log) + ((hh >> slot_shift) << 4)
                    alt = base ^ 16
                    claimed = False
                    if np.int64(tab[base]) == chk:
                        s = base
                    elif np.int64(tab[alt]) == chk:
                        s = alt
                    else:
                        # replace the less used of the two (count of the first counter)
                        n_base = _context_count(np.int64(tab[base + 1]), v2)
                        n_alt = _context_count(np.int64(tab[alt + 1]), v2)
                        s = base if n_base <= n_alt else alt
                        tab[s] = chk
                        for j in range(1, 16):
                            # p = 1/2, n = 0 (v2: and an empty history, 1)
                            tab[s + j] = (1 << 31) | 1 if v2 else 1 << 31
                        claimed = True
                    if v2 and not claimed and ((1 <= k <= 5) or k == 9 or k == 10):
                        found += 1
                    slot[k] = s
            # index within the slot: 1, 1b, 1bb, 1bbb of the bits of this nibble
            if bit < 4:
                j = c0
            else:
                j = (c0 & ((1 << (bit - 4)) - 1)) | (1 << (bit - 4))
            # ---- inputs
            ni = 0
            for k in range(nctx):
                ix = slot[k] + j
                cidx[k] = ix
                e = np.int64(tab[ix])
                p12 = e >> 20
                n = _context_count(e, v2)
                s_ = st[p12]
                if n == 0:
                    x[ni] = 0
                    x[ni + 1] = 0
                else:
                    x[ni] = s_
                    # confidence: stronger for well-visited contexts
                    cn = n if n < 31 else 31
                    x[ni + 1] = (s_ * cn) >> 5
                if v2:
                    hidx[k] = (k * 8 + bit) * 256 + (e & 255)
                    x[ni + 2] = st[np.int64(hmap[hidx[k]]) >> 20]
                ni += n_per
            expbit = 0
            if mlen > 0:
                expbit = (mbyte >> (7 - bit)) & 1
                if (mbyte >> (8 - bit)) != c0:
                    mlen = 0
                    lb = 0
            mi = lb * 2 + expbit
            if mlen > 0:
                e = np.int64(msm[mi])
                s_ = st[e >> 20]
                x[ni] = s_
                x[ni + 1] = (expbit * 2 - 1) * (lb << 5)
            else:
                x[ni] = 0
                x[ni + 1] = 0
            ni += 2
            x[ni] = 256
            # ---- mixers
            sel[0] = c0
            sel[1] = set_base[1] + (c4 & 0xFF)
            sel[2] = set_base[2] + lb * 8 + bit
            if v2:
                sel[3] = set_base[3] + ((c4 & 0xFF00) | c0)
                sel[4] = set_base[4] + found * 256 + c0
            df = 0
            for m in range(nmix):
                b_ = sel[m] * nin
                dm = 0
                for i in range(nin):
                    dm += wm[b_ + i] * x[i]
                dm >>= 16
                dm = min(max(dm, -2047), 2047)
                dmix[m] = dm
                pmix[m] = _squash(dm, sq)
                df += wf[m] * dm
            df >>= 16
            df = min(max(df, -2047), 2047)
            pm = _squash(df, sq)
            # ---- APMs
            sv = df + 2048  # 1..4095
            lo = sv >> 7
            wt = sv & 127
            a1c = c0
            if v2 and mlen > 0:
                a1c |= mi << 8
            a1i = a1c * 33 + lo
            a1 = (apm1[a1i] * (128 - wt) + apm1[a1i + 1] * wt) >> 7
            h2 = (c0 | ((c4 & 0xFF) << 8)) * 33 + lo
            a2 = (apm2[h2] * (128 - wt) + apm2[h2 + 1] * wt) >> 7
            p16 = (pm * 16 + a1 + a2 * 2) >> 2
            if p16 < 32:
                p16 = 32
            if p16 > 65535 - 32:
                p16 = 65535 - 32
            # ---- code the bit (p16 = P(bit = 1) * 65536)
            if trace.shape[0]:
                trace[pos * 8 + bit] = p16
            rng = x2 - x1
            xmid = x1 + (rng >> 16) * p16 + (((rng & 0xFFFF) * p16) >> 16)
            if encode:
                y = (byte >> (7 - bit)) & 1
            else:
                y = 1 if xd <= xmid else 0
            if y:
                x2 = xmid
            else:
                x1 = xmid + 1
            while ((x1 ^ x2) & 0xFF000000) == 0:
                if encode:
                    if ip >= cap:
                        return -1
                    payload[ip] = x2 >> 24
                else:
                    b = 0
                    if ip < cap:
                        b = np.int64(payload[ip])
                    xd = ((xd << 8) & M32) | b
                ip += 1
                x1 = (x1 << 8) & M32
                x2 = ((x2 << 8) & M32) | 255
            # ---- update
            for k in range(nctx):
                ix = cidx[k]
                e = np.int64(tab[ix])
                if v2:
                    # 16-bit probability, 8-bit count, 8-bit history (a leading 1, then
                    # the last bits seen here, at most 7)
                    p16c = e >> 16
                    n = _context_count(e, True)
                    hs = e & 255
                    p16c += (((y << 16) - p16c) * rate[n]) >> 16
                    if n < LIMIT_V2:
                        n += 1
                    hs = (hs << 1) | y
                    if hs >= 256:
                        hs = (hs & 127) | 128
                    tab[ix] = (p16c << 16) | (n << 8) | hs
                    hmap[hidx[k]] = _counter_update(np.int64(hmap[hidx[k]]), y, rate, 1023)
                else:
                    tab[ix] = _counter_update(e, y, rate, LIMIT)
            if mlen > 0:
                msm[mi] = _counter_update(np.int64(msm[mi]), y, rate, 1023)
            ef = ((y << 12) - pm) * 2
            for m in range(nmix):
                em = ((y << 12) - pmix[m]) * MIX_LR
                b_ = sel[m] * nin
                for i in range(nin):
                    wm[b_ + i] += (x[i] * em) >> 14
                wf[m] += (dmix[m] * ef) >> 14
            tgt = y * 65535
            a1j = a1i + (wt >> 6)
            apm1[a1j] += (tgt - apm1[a1j]) >> 6
            a2j = h2 + (wt >> 6)
            apm2[a2j] += (tgt - apm2[a2j]) >> 6
            c0 = (c0 << 1) | y
        byte = c0 & 0xFF
        if not encode:
            data[pos] = byte
        # ---- byte update
        c8 = ((c8 << 8) | (c4 >> 24)) & M32
        c4 = ((c4 << 8) | byte) & M32
        if (byte >= 65 and byte <= 90) or (byte >= 97 and byte <= 122):
            lc = byte | 32
            word = ((word + lc) * 0x2F0F3A6B) & M32
        elif word != 0:
            pword = word
            word = 0
        if byte == 10:
            pline_start = line_start
            line_start = pos + 1
    if encode:
        # flush: the shortest byte string v (zero-padded) with x1 <= v <= x2
        for nb in range(1, 5):
            sh = 32 - 8 * nb
            low = (1 << sh) - 1
            v = (x1 + low) & (M32 ^ low) if sh > 0 else x1
            if v >= x1 and v <= x2 and v <= M32:
                for i in range(nb):
                    if ip >= cap:
                        return -1
                    payload[ip] = (v >> (24 - 8 * i)) & 0xFF
                    ip += 1
                break
    return ip


def compress(data: bytes, mem_log: int | None = None, version: int = VERSION) -> bytes | None:
    """The bytecm payload of ``data``, or None if it would be larger than ``data`` + 64 bytes
    (then it is not worth using; the caller stores or uses zstd).  ``version`` 1 writes the
    older model (kept for tests and golden files)."""
    mem_log, out, used = _encode(data, mem_log, version, _NO_TRACE)
    if used < 0:
        return None
    return bytes([version, mem_log]) + out[:used].tobytes()


def bit_predictions(data: bytes, version: int = VERSION) -> np.ndarray:
    """``P(bit = 1) * 65536`` with which :func:`compress` codes each bit of ``data`` (int64,
    8 per byte, most significant bit first): bytecm's view of the text, for mixing per bit
    with other models (``tests/bench/bridge_estimate.py``)."""
    trace = np.zeros(8 * len(data), dtype=np.int64)
    _encode(data, None, version, trace)
    return trace


def _encode(data: bytes, mem_log: int | None, version: int, trace: np.ndarray) -> tuple[int, np.ndarray, int]:
    """Run the encoder over ``data``: ``(mem_log, output buffer, bytes used or -1)``."""
    data = bytes(data)
    n = len(data)
    if mem_log is None:
        mem_log = mem_log_for(n)
    if not MIN_MEM_LOG <= mem_log <= MAX_MEM_LOG:
        raise ValueError(f"mem_log {mem_log} outside {MIN_MEM_LOG}..{MAX_MEM_LOG}")
    if version not in VERSIONS:
        raise ValueError(f"bytecm version {version} unknown (knows {VERSIONS})")
    src = np.frombuffer(data, dtype=np.uint8).copy()
    out = np.zeros(n + 64, dtype=np.uint8)
    return mem_log, out, _run(True, src, out, n, mem_log, version, SQUASH, STRETCH, RATE, trace)


def check_header(payload: bytes) -> tuple[int, int]:
    """The ``(version, mem_log)`` of a bytecm payload, after checking both."""
    if len(payload) < HEADER_BYTES:
        raise corrupt("a bytecm payload shorter than its 2-byte header")
    version = payload[0]
    if version not in VERSIONS:
        raise UnsupportedVersionError(
            f"bytecm payload version {version}, unknown to this version of nacrith (knows "
            f"{', '.join(map(str, VERSIONS))}); upgrade nacrith to read it"
        )
    mem_log = payload[1]
    if not MIN_MEM_LOG <= mem_log <= MAX_MEM_LOG:
        raise corrupt(f"bytecm memory parameter {mem_log} outside {MIN_MEM_LOG}..{MAX_MEM_LOG}")
    return version, mem_log


def decompress(payload: bytes, n_bytes: int) -> bytes:
    """The ``n_bytes`` bytes coded in ``payload``.  A damaged payload raises FormatError or
    gives wrong bytes (the caller checks the block CRC-32); it never reads out of bounds."""
    version, mem_log = check_header(payload)
    if n_bytes < 0:
        raise ValueError("n_bytes must be >= 0")
    body = np.frombuffer(bytes(payload[HEADER_BYTES:]), dtype=np.uint8).copy()
    out = np.zeros(n_bytes, dtype=np.uint8)
    used = _run(False, out, body, n_bytes, mem_log, version, SQUASH, STRETCH, RATE, _NO_TRACE)
    if used > len(body) + 4:
        raise corrupt("a bytecm payload ends before its data")
    return out.tobytes()
