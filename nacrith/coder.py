"""Pure 32-bit binary arithmetic coder (Witten–Neal–Cleary style, with pending bits).

Why this module exists
----------------------
The compressor turns every token into an integer interval ``[cum_low, cum_low + freq)`` of a
fixed total ``TOTAL = 2**24`` (see :mod:`nacrith.cdf`) and this module turns the sequence of
intervals into bits and back.  It is deliberately *pure*: integers in, bytes out, no I/O, no
model imports, no floating point.  Every operation is exact integer arithmetic, so the
bitstream is a function of the interval sequence only and is identical on every platform.

Bitstream definition (normative, pinned by ``formats/golden/coder``)
-------------------------------------------------------------------
State: ``low``/``high`` are 32-bit code values, initially ``0`` / ``2**32 - 1``; ``pending``
counts deferred (underflow) bits.  To code an interval ``(cum_low, freq)``::

    range = high - low + 1                       # 2 .. 2**32, product below fits in 64 bits
    high  = low + (range * (cum_low + freq)) // TOTAL - 1
    low   = low + (range * cum_low) // TOTAL

then renormalise, repeatedly, while one of the cases applies:

* ``high < HALF``: output ``0`` followed by ``pending`` ones; ``pending = 0``.
* ``low >= HALF``: output ``1`` followed by ``pending`` zeros; ``pending = 0``;
  ``low -= HALF; high -= HALF``.
* ``QUARTER <= low and high < 3*QUARTER``: ``pending += 1``;
  ``low -= QUARTER; high -= QUARTER``.

and after each applied case ``low = 2*low; high = 2*high + 1``.  Bits are packed MSB first.
``finish`` does ``pending += 1`` and outputs ``0`` + pending ones if ``low < QUARTER``, else
``1`` + pending zeros; the last byte is zero-padded and then *all trailing zero bytes are
removed*.  The decoder reads zero bits past the end of its input, which makes the stripped
and the unstripped stream decode identically.

Decoding mirrors the encoder with a 32-bit window ``value`` of the stream;
``target = ((value - low + 1) * TOTAL - 1) // range`` lies in the interval of the coded
symbol, the caller maps it to ``(cum_low, freq)`` and calls ``consume``.

Uniform values (``encode_uniform(value, bits)``) are the interval
``(value << (24 - bits), 1 << (24 - bits))``: exactly ``bits`` bits of information.

Two layers are provided:

* numba kernels (``encoder_init``/``encoder_put``/``encoder_put_inplace``/``encoder_finish``,
  ``decoder_init``/``decoder_target``/``decoder_consume``/``decoder_get_uniform``) working on
  preallocated ``np.int64`` state arrays plus a growable ``np.uint8`` output buffer, so that
  other ``@njit`` code (the per-token codec loop) can call them without Python overhead;
* thin Python classes :class:`ArithmeticEncoder` / :class:`ArithmeticDecoder` over those
  kernels, for callers that code one token at a time from Python.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "TOTAL_BITS",
    "TOTAL",
    "ENC_STATE_LEN",
    "DEC_STATE_LEN",
    "ArithmeticEncoder",
    "ArithmeticDecoder",
    "new_encoder_state",
    "new_decoder_state",
    "encoder_init",
    "encoder_put",
    "encoder_put_inplace",
    "encoder_finish",
    "decoder_init",
    "decoder_target",
    "decoder_consume",
    "decoder_get_uniform",
]

TOTAL_BITS = 24
TOTAL = 1 << TOTAL_BITS

CODE_BITS = 32
_MASK = (1 << CODE_BITS) - 1  # initial `high`
_HALF = 1 << (CODE_BITS - 1)
_QUARTER = 1 << (CODE_BITS - 2)
_THREE_QUARTERS = 3 << (CODE_BITS - 2)

# --- encoder state layout (np.int64 array) -----------------------------------------------
ENC_LOW = 0  # low end of the current interval, 0 <= low < 2**32
ENC_HIGH = 1  # high end (inclusive), low <= high < 2**32
ENC_PENDING = 2  # deferred underflow bits, each the opposite of the next emitted bit
ENC_BITBUF = 3  # bits of the partially filled output byte (MSB first), < 2**ENC_NBITS
ENC_NBITS = 4  # number of bits in ENC_BITBUF, 0..7
ENC_POS = 5  # number of complete bytes written to the output buffer
ENC_DONE = 6  # 1 once encoder_finish has run
ENC_STATE_LEN = 8

# --- decoder state layout (np.int64 array) -----------------------------------------------
DEC_LOW = 0
DEC_HIGH = 1
DEC_VALUE = 2  # 32-bit window of the code stream; low <= value <= high for valid input
DEC_BITPOS = 3  # index of the next bit to read; bits past the end of the data read as 0
DEC_STATE_LEN = 4

_MIN_CAPACITY = 64


def new_encoder_state() -> np.ndarray:
    """Return a fresh, initialised encoder state array."""
    state = np.zeros(ENC_STATE_LEN, dtype=np.int64)
    encoder_init(state)
    return state


def new_decoder_state() -> np.ndarray:
    """Return a zeroed decoder state array (call :func:`decoder_init` with the data)."""
    return np.zeros(DEC_STATE_LEN, dtype=np.int64)


# ======================================================================================
# Encoder kernels
# ======================================================================================


@njit(cache=True)
def encoder_init(state: np.ndarray) -> None:
    """Reset ``state`` (np.int64[ENC_STATE_LEN]) to the start of a new stream."""
    state[ENC_LOW] = 0
    state[ENC_HIGH] = _MASK
    state[ENC_PENDING] = 0
    state[ENC_BITBUF] = 0
    state[ENC_NBITS] = 0
    state[ENC_POS] = 0
    state[ENC_DONE] = 0


@njit(cache=True)
def _capacity_needed(state: np.ndarray) -> int:
    """Buffer length that guarantees room for everything one put (or finish) can write.

    One put emits at most ``pending + 26`` bits: after the interval update the range is at
    least 64 (``range > 2**30 = 64 * TOTAL`` and ``freq >= 1``) and every renormalisation step
    doubles it without exceeding ``2**32``, so there are at most 26 steps, each emitting at
    most one bit besides the flushed pending bits.  ``finish`` emits ``pending + 2`` bits and
    one padded byte.  The bound below covers both with margin.
    """
    return state[ENC_POS] + (state[ENC_NBITS] + state[ENC_PENDING] + 40) // 8 + 1


@njit(cache=True)
def _grow(buf: np.ndarray, pos: int, need: int) -> np.ndarray:
    """A copy of ``buf[:pos]`` in a new array of at least ``need`` bytes (doubling)."""
    new_n = max(2 * buf.shape[0], _MIN_CAPACITY)
    while new_n < need:
        new_n *= 2
    out = np.empty(new_n, dtype=np.uint8)
    out[:pos] = buf[:pos]
    return out


@njit(cache=True)
def _emit(buf, pos, bitbuf, nbits, bit, pending):
    """Append ``bit`` followed by ``pending`` copies of ``1 - bit``; returns ``pos, bitbuf, nbits``.

    The caller has reserved the room (see ``_capacity_needed``).
    Invariant kept: ``0 <= nbits < 8`` and ``bitbuf < 2**nbits`` on return.
    """
    bitbuf = (bitbuf << 1) | bit
    nbits += 1
    if nbits == 8:
        buf[pos] = bitbuf
        pos += 1
        bitbuf = 0
        nbits = 0
    inv = 1 - bit
    # Fill the current byte bit by bit, then write whole bytes of `inv` at once.
    while pending > 0 and nbits != 0:
        bitbuf = (bitbuf << 1) | inv
        nbits += 1
        pending -= 1
        if nbits == 8:
            buf[pos] = bitbuf
            pos += 1
            bitbuf = 0
            nbits = 0
    if pending >= 8:
        fill = 0xFF * inv
        while pending >= 8:
            buf[pos] = fill
            pos += 1
            pending -= 8
    while pending > 0:  # fewer than 8 left, nbits == 0 here
        bitbuf = (bitbuf << 1) | inv
        nbits += 1
        pending -= 1
    return pos, bitbuf, nbits


@njit(cache=True)
def _check_put(state: np.ndarray, cum_low: int, freq: int) -> None:
    if freq < 1 or cum_low < 0 or cum_low + freq > TOTAL:
        raise ValueError("arithmetic coder: invalid interval (need freq >= 1, 0 <= cum_low, cum_low + freq <= 2**24)")
    if state[ENC_DONE] != 0:
        raise ValueError("arithmetic coder: encoder already finished")


@njit(cache=True)
def _put_core(state: np.ndarray, buf: np.ndarray, cum_low: int, freq: int) -> None:
    """The interval update and renormalisation; arguments checked, room reserved."""
    low = state[ENC_LOW]
    high = state[ENC_HIGH]
    # Entry invariant (established by init and by the loop below):
    #   0 <= low < HALF <= high <= 2**32 - 1, and NOT (QUARTER <= low and high < 3*QUARTER),
    #   hence range = high - low + 1 >= QUARTER + 2 > 2**30  (initially range = 2**32).
    rng = high - low + 1
    # 64-bit products: rng <= 2**32 and cum <= 2**24, so rng * cum <= 2**56 < 2**63.
    # New range = floor(rng*(cum_low+freq)/TOTAL) - floor(rng*cum_low/TOTAL)
    #           >= floor(rng*freq/TOTAL) >= 64, because rng > 2**30 = 64*TOTAL and freq >= 1:
    # the interval is never empty (low <= high) and at most 26 doublings follow.
    high = low + ((rng * (cum_low + freq)) >> TOTAL_BITS) - 1
    low = low + ((rng * cum_low) >> TOTAL_BITS)
    pending = state[ENC_PENDING]
    pos = state[ENC_POS]
    bitbuf = state[ENC_BITBUF]
    nbits = state[ENC_NBITS]
    while True:
        # Loop invariant: 0 <= low <= high <= 2**32 - 1.
        if high < _HALF:
            pos, bitbuf, nbits = _emit(buf, pos, bitbuf, nbits, 0, pending)
            pending = 0
        elif low >= _HALF:
            pos, bitbuf, nbits = _emit(buf, pos, bitbuf, nbits, 1, pending)
            pending = 0
            low -= _HALF
            high -= _HALF
        elif low >= _QUARTER and high < _THREE_QUARTERS:
            # Interval straddles the midpoint inside the middle half: defer the bit.
            pending += 1
            low -= _QUARTER
            high -= _QUARTER
        else:
            break
        # Each step doubles the range; since the range is at most 2**32 the loop ends.
        low = low << 1
        high = (high << 1) | 1
    # Exit invariant: low < HALF <= high and (low < QUARTER or high >= 3*QUARTER),
    # i.e. range > 2**30 again (see entry invariant).
    state[ENC_LOW] = low
    state[ENC_HIGH] = high
    state[ENC_PENDING] = pending
    state[ENC_POS] = pos
    state[ENC_BITBUF] = bitbuf
    state[ENC_NBITS] = nbits


@njit(cache=True)
def encoder_put(state: np.ndarray, buf: np.ndarray, cum_low: int, freq: int) -> np.ndarray:
    """Code the interval ``[cum_low, cum_low + freq)`` of ``TOTAL``.

    Requires ``freq >= 1``, ``cum_low >= 0`` and ``cum_low + freq <= TOTAL``.  Returns the output
    buffer, which is a new (doubled) array when the old one was full: always keep the result.
    For use inside ``@njit`` code; from Python prefer :func:`encoder_put_inplace` (returning an
    array to Python costs more than the coding itself).
    """
    _check_put(state, cum_low, freq)
    need = _capacity_needed(state)
    if need > buf.shape[0]:
        buf = _grow(buf, state[ENC_POS], need)
    _put_core(state, buf, cum_low, freq)
    return buf


@njit(cache=True)
def encoder_put_inplace(state: np.ndarray, buf: np.ndarray, cum_low: int, freq: int) -> int:
    """Like :func:`encoder_put` but never reallocates: returns 0 when done, or, doing nothing,
    the buffer length needed (the caller grows ``buf``, keeping ``buf[:state[ENC_POS]]``,
    and calls again)."""
    _check_put(state, cum_low, freq)
    need = _capacity_needed(state)
    if need > buf.shape[0]:
        return need
    _put_core(state, buf, cum_low, freq)
    return 0


@njit(cache=True)
def encoder_finish(state: np.ndarray, buf: np.ndarray):
    """Flush the stream; returns ``(buf, n)`` with the complete code in ``buf[:n]``.

    Emits ``pending + 2`` bits that select a point inside ``[low, high]`` whatever bits follow
    as zeros (``QUARTER`` when ``low < QUARTER``, else ``HALF``), pads the last byte with zeros
    and drops trailing zero bytes (the decoder reads zeros past the end).  Idempotent.
    """
    if state[ENC_DONE] != 0:
        return buf, state[ENC_POS]
    need = _capacity_needed(state)
    if need > buf.shape[0]:
        buf = _grow(buf, state[ENC_POS], need)
    low = state[ENC_LOW]
    pending = state[ENC_PENDING] + 1
    pos = state[ENC_POS]
    bitbuf = state[ENC_BITBUF]
    nbits = state[ENC_NBITS]
    # By the exit invariant low < HALF <= high; if low >= QUARTER then high >= 3*QUARTER.
    #   low <  QUARTER: bits 0,1 then zeros -> value QUARTER in [low, high]
    #   low >= QUARTER: bits 1,0 then zeros -> value HALF    in [low, high]
    if low < _QUARTER:
        pos, bitbuf, nbits = _emit(buf, pos, bitbuf, nbits, 0, pending)
    else:
        pos, bitbuf, nbits = _emit(buf, pos, bitbuf, nbits, 1, pending)
    if nbits > 0:
        buf[pos] = bitbuf << (8 - nbits)
        pos += 1
    while pos > 0 and buf[pos - 1] == 0:
        pos -= 1
    state[ENC_PENDING] = 0
    state[ENC_BITBUF] = 0
    state[ENC_NBITS] = 0
    state[ENC_POS] = pos
    state[ENC_DONE] = 1
    return buf, pos


# ======================================================================================
# Decoder kernels
# ======================================================================================


@njit(cache=True)
def decoder_init(state: np.ndarray, data: np.ndarray) -> None:
    """Start decoding ``data`` (np.uint8 array): load the first 32 bits into the window."""
    n = data.shape[0]
    value = 0
    for i in range(4):
        value <<= 8
        if i < n:
            value |= data[i]
    state[DEC_LOW] = 0
    state[DEC_HIGH] = _MASK
    state[DEC_VALUE] = value
    state[DEC_BITPOS] = 32


@njit(cache=True)
def decoder_target(state: np.ndarray) -> int:
    """Return the point in ``[0, TOTAL)`` that lies inside the interval of the next symbol."""
    low = state[DEC_LOW]
    rng = state[DEC_HIGH] - low + 1
    # (value - low + 1) <= 2**32, times TOTAL <= 2**56: fits in int64.
    t = ((state[DEC_VALUE] - low + 1) * TOTAL - 1) // rng
    # For any input the caller steers with (target -> interval containing it), low <= value
    # <= high holds and t is already in range; clamp only guards against misuse.
    if t < 0:
        t = 0
    elif t >= TOTAL:
        t = TOTAL - 1
    return t


@njit(cache=True)
def decoder_consume(state: np.ndarray, data: np.ndarray, cum_low: int, freq: int) -> None:
    """Remove the interval ``[cum_low, cum_low + freq)`` (the decoded symbol) from the stream."""
    if freq < 1 or cum_low < 0 or cum_low + freq > TOTAL:
        raise ValueError("arithmetic coder: invalid interval (need freq >= 1, 0 <= cum_low, cum_low + freq <= 2**24)")
    low = state[DEC_LOW]
    high = state[DEC_HIGH]
    value = state[DEC_VALUE]
    bitpos = state[DEC_BITPOS]
    n = data.shape[0]
    # Same update and invariants as encoder_put.
    rng = high - low + 1
    high = low + ((rng * (cum_low + freq)) >> TOTAL_BITS) - 1
    low = low + ((rng * cum_low) >> TOTAL_BITS)
    while True:
        if high < _HALF:
            pass
        elif low >= _HALF:
            low -= _HALF
            high -= _HALF
            value -= _HALF
        elif low >= _QUARTER and high < _THREE_QUARTERS:
            low -= _QUARTER
            high -= _QUARTER
            value -= _QUARTER
        else:
            break
        low = low << 1
        high = (high << 1) | 1
        byte_index = bitpos >> 3
        bit = 0
        if byte_index < n:
            bit = (data[byte_index] >> (7 - (bitpos & 7))) & 1
        value = (value << 1) | bit
        bitpos += 1
    # `value` may leave [low, high] only if the caller consumed an interval that does not
    # contain target(); it is kept within 33 bits by masking so garbage never overflows.
    value &= (1 << 33) - 1
    state[DEC_LOW] = low
    state[DEC_HIGH] = high
    state[DEC_VALUE] = value
    state[DEC_BITPOS] = bitpos


@njit(cache=True)
def decoder_get_uniform(state: np.ndarray, data: np.ndarray, bits: int) -> int:
    """Decode a value coded with ``encode_uniform(value, bits)`` (0 <= bits <= 24)."""
    if bits < 0 or bits > TOTAL_BITS:
        raise ValueError("arithmetic coder: uniform width must be 0..24 bits")
    if bits == 0:
        return 0
    shift = TOTAL_BITS - bits
    v = decoder_target(state) >> shift
    decoder_consume(state, data, v << shift, 1 << shift)
    return v


# ======================================================================================
# Python classes
# ======================================================================================


class ArithmeticEncoder:
    """Encoder for one stream.  ``encode`` per symbol, then ``finish`` once for the bytes."""

    __slots__ = ("_state", "_buf", "_result")

    def __init__(self, initial_capacity: int = 1 << 16) -> None:
        self._state = new_encoder_state()
        self._buf = np.empty(max(int(initial_capacity), _MIN_CAPACITY), dtype=np.uint8)
        self._result: bytes | None = None

    def encode(self, cum_low: int, freq: int) -> None:
        """Code the interval ``[cum_low, cum_low + freq)`` of ``TOTAL``."""
        need = encoder_put_inplace(self._state, self._buf, cum_low, freq)
        if need:
            self._grow(need)
            encoder_put_inplace(self._state, self._buf, cum_low, freq)

    def _grow(self, need: int) -> None:
        new = np.empty(max(2 * len(self._buf), need), dtype=np.uint8)
        pos = int(self._state[ENC_POS])
        new[:pos] = self._buf[:pos]
        self._buf = new

    def encode_uniform(self, value: int, bits: int) -> None:
        """Code ``value`` in ``[0, 2**bits)`` with exactly ``bits`` bits (``bits <= 24``)."""
        if not 0 <= bits <= TOTAL_BITS:
            raise ValueError(f"uniform width must be 0..24 bits, got {bits}")
        if not 0 <= value < (1 << bits):
            raise ValueError(f"value {value} does not fit in {bits} bits")
        if bits == 0:
            return
        shift = TOTAL_BITS - bits
        self.encode(value << shift, 1 << shift)

    @property
    def bits_so_far(self) -> int:
        """Bits committed so far, counting pending bits (the final length is about 2 more)."""
        s = self._state
        return int(s[ENC_POS] * 8 + s[ENC_NBITS] + s[ENC_PENDING])

    def finish(self) -> bytes:
        """Flush and return the complete code.  Further calls return the same bytes."""
        if self._result is None:
            buf, n = encoder_finish(self._state, self._buf)
            self._result = bytes(buf[:n])
            self._buf = np.empty(0, dtype=np.uint8)
        return self._result


class ArithmeticDecoder:
    """Decoder for one stream; bits past the end of ``data`` read as zeros.

    Per symbol: ``t = target()``, find the symbol whose interval contains ``t``, then
    ``consume(cum_low, freq)`` of that symbol.  Garbage or truncated input never raises or
    hangs; it just decodes some symbols (callers verify lengths and checksums).
    """

    __slots__ = ("_state", "_data")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        # A private, writable copy: one array type for the kernels, immune to caller mutation.
        self._data = np.frombuffer(bytearray(data), dtype=np.uint8)
        self._state = new_decoder_state()
        decoder_init(self._state, self._data)

    def target(self) -> int:
        """Return a value in ``[0, TOTAL)`` locating the next symbol."""
        return decoder_target(self._state)

    def consume(self, cum_low: int, freq: int) -> None:
        """Remove the decoded symbol's interval ``[cum_low, cum_low + freq)``."""
        decoder_consume(self._state, self._data, cum_low, freq)

    def decode_uniform(self, bits: int) -> int:
        """Decode a value written with ``encode_uniform(value, bits)``."""
        return decoder_get_uniform(self._state, self._data, bits)

    @property
    def bits_consumed(self) -> int:
        """Bits read from the stream so far (may exceed ``8 * len(data)``: zeros past the end)."""
        return int(self._state[DEC_BITPOS])
