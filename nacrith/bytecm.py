"""bytecm: a general-purpose bitwise context-mixing byte compressor (lpaq-style).

Used for binary data (the whole-file ``bytecm`` mode 4 and, when smaller than zstd, the
binary section of hybrid mode 2).  Every byte is coded as 8 binary decisions, most
significant bit first.  For each bit:

* **context models**: orders 0, 1, 2, 3, 4, 6, a word context (hash of the current run of
  letters) and two sparse contexts (bytes 2-3 back; byte 1 and 3 back), each a hashed table of
  adaptive probability counters.  A context's counters for one nibble share a 64-byte slot of
  16 ``uint32`` (entry 0 holds a check tag, entries 1..15 the counters indexed by the bits of the
  nibble seen so far), so each model costs one cache line per nibble.  A counter is a 22-bit
  probability and a 10-bit count ``n``; it moves towards the bit by ``1 / (n + 1.5)``, ``n``
  capped at ``LIMIT``.  Each model gives the mixer ``stretch(p)`` and a confidence term.
* **match model**: the last ``MATCH_MIN`` bytes are hashed to find the most recent earlier
  occurrence; while the following bytes keep agreeing, the byte after it predicts the next
  bit, through an adaptive counter selected by the match length (bucketed) and the predicted
  bit.
* **mixing**: three logistic mixers (weight sets selected by the partial byte ``c0``, by the
  last byte, and by the match-length bucket and bit position) and a final 3-input mixer,
  then two adaptive probability maps (APM / SSE, contexts ``c0`` and ``c0`` + last byte)
  averaged with the mixer output.
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
  ``[0, pos)``, the match pointer in ``[0, pos)``, and the decoder reads the payload only
  below its length (past the end it reads zero bytes, so a truncated payload decodes to
  wrong bytes, caught by the block CRC-32, and the loop always stops after ``8 * n_bytes``
  bits: no hang);
* the encoder writes only below its output capacity and reports overflow (then the caller
  does not use bytecm for that input).

Payload layout (version 1)::

    u8 version (= 1) | u8 mem_log (MIN_MEM_LOG..MAX_MEM_LOG) | arithmetic-coded bits

``mem_log`` fixes every table size (``2^mem_log`` counters per context model, ``2^(mem_log-2)``
match pointers), so memory is about ``NCTX * 4 * 2^mem_log + 2^mem_log + n_bytes`` bytes
plus 9 MiB of APM and mixer tables: 157 MiB at the maximum 22 (reached from 256 KiB of input).  The encoder picks it from the input size (``mem_log_for``); the
decoder uses the recorded value and refuses values outside the range.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .errors import FormatError, UnsupportedVersionError

VERSION = 1
MIN_MEM_LOG = 16
MAX_MEM_LOG = 22
HEADER_BYTES = 2

NCTX = 9  # context models: orders 0,1,2,3,4,6, word, sparse a, sparse b
NIN = 2 * NCTX + 2 + 1  # two inputs per context model, two for the match model, one bias
MATCH_MIN = 6  # bytes hashed to find a match
MAX_MATCH = 65535
LIMIT = 1023  # counter count cap (adaptation rate floor 1 / (LIMIT + 1.5))
MIX_LR = 16  # mixer learning rate (error multiplier)
N_LEN_BUCKETS = 28

_MASK32 = 0xFFFFFFFF
_RESTORE_HINT = "the archive is damaged; restore it from a good copy"

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


@njit(cache=True)
def _run(encode, data, payload, n_bytes, mem_log, sq, st, rate):
    """Encode ``data`` into ``payload`` (returns the byte count, or -1 if it would overflow)
    or decode ``payload`` into ``data`` (returns the number of payload bytes consumed,
    counting reads past the end).  ``n_bytes`` bytes; ``mem_log`` as recorded."""
    M32 = 0xFFFFFFFF
    nctx = 9
    nin = 2 * nctx + 3
    # context model tables: nctx regions of 2^mem_log uint32
    tab = np.zeros(nctx << mem_log, dtype=np.uint32)
    slot_shift = 32 - (mem_log - 4)
    # match model
    mt_log = mem_log - 2
    mtab = np.zeros(1 << mt_log, dtype=np.int32)
    msm = np.full(64 * 2, 1 << 31, dtype=np.uint32)  # counters (p22 << 10 | n) by len bucket, bit
    # mixers: 3 first-layer mixers with selected weight sets, one final mixer
    n_sets0 = 256
    n_sets1 = 256
    n_sets2 = 64 * 8
    w0 = np.full(n_sets0 * nin, 1 << 14, dtype=np.int32)
    w1 = np.full(n_sets1 * nin, 1 << 14, dtype=np.int32)
    w2 = np.full(n_sets2 * nin, 1 << 14, dtype=np.int32)
    wf = np.full(3, 65536 // 3, dtype=np.int64)
    # APMs: 33 buckets of 16-bit probabilities per context
    apm1 = np.zeros(256 * 33, dtype=np.int32)
    apm2 = np.zeros(65536 * 33, dtype=np.int32)
    for i in range(33):
        v = sq[min(max((i - 16) * 128, -2047), 2047) + 2047] * 16
        for c in range(256):
            apm1[c * 33 + i] = v
        for c in range(65536):
            apm2[c * 33 + i] = v

    x = np.zeros(nin, dtype=np.int64)
    ctxh = np.zeros(nctx, dtype=np.int64)  # per-byte context hashes
    slot = np.zeros(nctx, dtype=np.int64)  # per-nibble slot base (absolute index)
    cidx = np.zeros(nctx, dtype=np.int64)  # counter index for the current bit

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
                for k in range(nctx):
                    hh = _hash(ctxh[k], c0 + (k << 8))
                    chk = (hh & 0xFFFF) | 0x10000  # never 0 (0 marks an empty slot)
                    base = (k << mem_log) + ((hh >> slot_shift) << 4)
                    alt = base ^ 16
                    if np.int64(tab[base]) == chk:
                        s = base
                    elif np.int64(tab[alt]) == chk:
                        s = alt
                    else:
                        # replace the less used of the two (count of the first counter)
                        if (np.int64(tab[base + 1]) & 1023) <= (np.int64(tab[alt + 1]) & 1023):
                            s = base
                        else:
                            s = alt
                        tab[s] = chk
                        for j in range(1, 16):
                            tab[s + j] = 1 << 31  # p = 1/2, n = 0
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
                n = e & 1023
                s_ = st[p12]
                if n == 0:
                    x[ni] = 0
                    x[ni + 1] = 0
                else:
                    x[ni] = s_
                    # confidence: stronger for well-visited contexts
                    cn = n if n < 31 else 31
                    x[ni + 1] = (s_ * cn) >> 5
                ni += 2
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
            sel0 = c0 * nin
            sel1 = (c4 & 0xFF) * nin
            sel2 = (lb * 8 + bit) * nin
            d0 = 0
            d1 = 0
            d2 = 0
            for i in range(nin):
                d0 += w0[sel0 + i] * x[i]
                d1 += w1[sel1 + i] * x[i]
                d2 += w2[sel2 + i] * x[i]
            d0 >>= 16
            d1 >>= 16
            d2 >>= 16
            d0 = min(max(d0, -2047), 2047)
            d1 = min(max(d1, -2047), 2047)
            d2 = min(max(d2, -2047), 2047)
            p0 = _squash(d0, sq)
            p1 = _squash(d1, sq)
            p2 = _squash(d2, sq)
            df = (wf[0] * d0 + wf[1] * d1 + wf[2] * d2) >> 16
            df = min(max(df, -2047), 2047)
            pm = _squash(df, sq)
            # ---- APMs
            sv = df + 2048  # 1..4095
            lo = sv >> 7
            wt = sv & 127
            a1i = c0 * 33 + lo
            a1 = (apm1[a1i] * (128 - wt) + apm1[a1i + 1] * wt) >> 7
            h2 = (c0 | ((c4 & 0xFF) << 8)) * 33 + lo
            a2 = (apm2[h2] * (128 - wt) + apm2[h2 + 1] * wt) >> 7
            p16 = (pm * 16 + a1 + a2 * 2) >> 2
            if p16 < 32:
                p16 = 32
            if p16 > 65535 - 32:
                p16 = 65535 - 32
            # ---- code the bit (p16 = P(bit = 1) * 65536)
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
                p22 = e >> 10
                n = e & 1023
                p22 += (((y << 22) - p22) * rate[n]) >> 16
                if n < LIMIT:
                    n += 1
                tab[ix] = (p22 << 10) | n
            if mlen > 0:
                e = np.int64(msm[mi])
                p22 = e >> 10
                n = e & 1023
                p22 += (((y << 22) - p22) * rate[n]) >> 16
                if n < 1023:
                    n += 1
                msm[mi] = (p22 << 10) | n
            e0 = ((y << 12) - p0) * MIX_LR
            e1 = ((y << 12) - p1) * MIX_LR
            e2 = ((y << 12) - p2) * MIX_LR
            for i in range(nin):
                xi = x[i]
                w0[sel0 + i] += (xi * e0) >> 14
                w1[sel1 + i] += (xi * e1) >> 14
                w2[sel2 + i] += (xi * e2) >> 14
            ef = ((y << 12) - pm) * 2
            wf[0] += (d0 * ef) >> 14
            wf[1] += (d1 * ef) >> 14
            wf[2] += (d2 * ef) >> 14
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
        else:
            word = 0
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


def compress(data: bytes, mem_log: int | None = None) -> bytes | None:
    """The bytecm payload of ``data``, or None if it would be larger than ``data`` + 64 bytes
    (then it is not worth using; the caller stores or uses zstd)."""
    data = bytes(data)
    n = len(data)
    if mem_log is None:
        mem_log = mem_log_for(n)
    if not MIN_MEM_LOG <= mem_log <= MAX_MEM_LOG:
        raise ValueError(f"mem_log {mem_log} outside {MIN_MEM_LOG}..{MAX_MEM_LOG}")
    src = np.frombuffer(data, dtype=np.uint8).copy()
    out = np.zeros(n + 64, dtype=np.uint8)
    used = _run(True, src, out, n, mem_log, SQUASH, STRETCH, RATE)
    if used < 0:
        return None
    return bytes([VERSION, mem_log]) + out[:used].tobytes()


def check_header(payload: bytes) -> int:
    """The ``mem_log`` of a bytecm payload, after checking its version and range."""
    if len(payload) < HEADER_BYTES:
        raise FormatError("corrupt archive: a bytecm payload shorter than its 2-byte header; " + _RESTORE_HINT)
    if payload[0] != VERSION:
        raise UnsupportedVersionError(
            f"bytecm payload version {payload[0]}, unknown to this version of nacrith (knows {VERSION}); "
            "upgrade nacrith to read it"
        )
    mem_log = payload[1]
    if not MIN_MEM_LOG <= mem_log <= MAX_MEM_LOG:
        raise FormatError(
            f"corrupt archive: bytecm memory parameter {mem_log} outside {MIN_MEM_LOG}..{MAX_MEM_LOG}; "
            + _RESTORE_HINT
        )
    return mem_log


def decompress(payload: bytes, n_bytes: int) -> bytes:
    """The ``n_bytes`` bytes coded in ``payload``.  A damaged payload raises FormatError or
    gives wrong bytes (the caller checks the block CRC-32); it never reads out of bounds."""
    mem_log = check_header(payload)
    if n_bytes < 0:
        raise ValueError("n_bytes must be >= 0")
    body = np.frombuffer(bytes(payload[HEADER_BYTES:]), dtype=np.uint8).copy()
    out = np.zeros(n_bytes, dtype=np.uint8)
    used = _run(False, out, body, n_bytes, mem_log, SQUASH, STRETCH, RATE)
    if used > len(body) + 4:
        raise FormatError("corrupt archive: a bytecm payload ends before its data; " + _RESTORE_HINT)
    return out.tobytes()
