"""Container format v1: the byte layout around nacrith's coded data.

Why a separate, model-free module: the container is the part of an archive
that must stay readable by any tool (``nacrith info``, fuzzers, future
versions) without loading a language model.  Everything here is standard
library only and operates on plain binary file objects, so it can be tested
exhaustively and reused by the codec for both the neural (mode 0) and the
stored (mode 1) paths.

The normative description is ``formats/container-v1.md``; this module is its
reference implementation.  Parsing principles:

* Input is untrusted.  Every length read from the archive is checked against
  :class:`Limits` *before* anything is allocated for it, and payloads are
  read in bounded chunks so a short file that claims a huge payload costs no
  more memory than the file itself.
* Every failure is a :class:`~nacrith.errors.NacrithError` subclass:
  ``TruncatedError`` when the input ends early, ``FormatError`` for corrupt
  structure, ``UnsupportedVersionError`` for features from a newer format,
  ``LimitError`` for sizes beyond the configured limits.
* The reader never consumes bytes past the trailer, so concatenated archives
  (several members back to back) can be processed with :func:`iter_members`.

Checks that need the original bytes (the per-block CRC-32 and the final
BLAKE2b digest) belong to the decoder, which produces those bytes; the
reader exposes the stored values for it.
"""

from __future__ import annotations

import enum
import hashlib
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .errors import FormatError, LimitError, TruncatedError, UnsupportedVersionError

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "MODE_MODEL",
    "MODE_STORED",
    "MODE_HYBRID",
    "MODE_ZSTD",
    "MODE_BYTECM",
    "KNOWN_MODES",
    "mode_name",
    "DIGEST_SIZE",
    "MIN_WINDOW",
    "MAX_WINDOW",
    "ParamKey",
    "CodecParams",
    "Header",
    "BlockHeader",
    "Trailer",
    "Limits",
    "DEFAULT_LIMITS",
    "ArchiveInfo",
    "ArchiveReader",
    "encode_header",
    "encode_block",
    "encode_end",
    "encode_stored",
    "block_crc32",
    "new_digest",
    "iter_members",
    "read_info",
    "read_info_all",
    "summary",
    "format_info",
]

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

#: First four bytes of every archive.  The high-bit first byte makes text
#: tools treat the file as binary and catches 7-bit transport damage.
MAGIC = b"\x89NCR"
#: The container version this module reads and writes.
FORMAT_VERSION = 1

MODE_MODEL = 0  # payloads are arithmetic-coded model symbols
MODE_STORED = 1  # payloads are the original bytes verbatim
MODE_HYBRID = 2  # region table, zstd-coded binary regions, model-coded text (nacrith.hybrid)
MODE_ZSTD = 3  # payloads are zstd frames of the original bytes
MODE_BYTECM = 4  # payloads are bytecm (context-mixing) streams of the original bytes
KNOWN_MODES = (MODE_MODEL, MODE_STORED, MODE_HYBRID, MODE_ZSTD, MODE_BYTECM)
#: Modes whose header must carry the model parameters.
MODEL_MODES = (MODE_MODEL, MODE_HYBRID)
_MODE_NAMES = {
    MODE_MODEL: "model",
    MODE_STORED: "stored",
    MODE_HYBRID: "hybrid",
    MODE_ZSTD: "zstd",
    MODE_BYTECM: "bytecm",
}


def mode_name(mode: int) -> str:
    """The name of a container mode ("model", "stored", "hybrid", "zstd", "bytecm"), else "unknown"."""
    return _MODE_NAMES.get(mode, "unknown")


#: Size in bytes of the BLAKE2b digest of the original data in the trailer.
DIGEST_SIZE = 16

# Fixed-size pieces (all little-endian).
_HEADER_FIXED = struct.Struct("<4sBBH")  # magic, version, mode, params_len
_U32 = struct.Struct("<I")
# Block fields n_symbols, n_bytes and payload_len are unsigned LEB128 varints
# (minimal encoding, value <= u32 max, so at most this many bytes each).
_VARINT_MAX_BYTES = 5
_TRAILER_BODY = struct.Struct(f"<Q{DIGEST_SIZE}s")  # original_size, digest
_TRAILER = struct.Struct(f"<Q{DIGEST_SIZE}sI")  # ... + trailer_crc

_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
# Payloads are read in pieces of at most this size, so memory follows the
# bytes actually present rather than the length the archive claims.
_READ_CHUNK = 1 << 20

_MIB = 1 << 20

#: Range of the ``window`` parameter (KV positions kept per stream).
MIN_WINDOW = 2
MAX_WINDOW = 8192


class ParamKey(enum.IntEnum):
    """Header parameter keys of container v1 (see the spec's registry)."""

    MODEL_SHA256 = 1
    TOKENIZER = 2
    CDF_TOTAL_BITS = 3
    BLOCK_TOKENS = 4
    FLASH_ATTN = 5
    KV_TYPES = 6
    START_TOKEN = 7
    ESCAPE_TOKEN = 8
    BACKEND = 9
    STREAM_TOKENS = 10
    WINDOW = 11
    SLIDE = 12
    SINKS = 13
    ENSEMBLE = 14
    FINGERPRINT = 15


# Required value length per key (None: variable, 0..255 bytes).
_KEY_LENGTHS: dict[int, int | None] = {
    ParamKey.MODEL_SHA256: 32,
    ParamKey.TOKENIZER: 1,
    ParamKey.CDF_TOTAL_BITS: 1,
    ParamKey.BLOCK_TOKENS: 4,
    ParamKey.FLASH_ATTN: 1,
    ParamKey.KV_TYPES: 2,
    ParamKey.START_TOKEN: 4,
    ParamKey.ESCAPE_TOKEN: 4,
    ParamKey.BACKEND: None,
    ParamKey.STREAM_TOKENS: 4,
    ParamKey.WINDOW: 4,
    ParamKey.SLIDE: 4,
    ParamKey.SINKS: 4,
    ParamKey.FINGERPRINT: None,
    ParamKey.ENSEMBLE: None,
}
_OPTIONAL_KEYS = frozenset((ParamKey.BACKEND, ParamKey.FINGERPRINT, ParamKey.ENSEMBLE))
_REQUIRED_KEYS = frozenset(int(k) for k in ParamKey if k not in _OPTIONAL_KEYS)

# A few ggml tensor type ids, for display only.
_GGML_TYPE_NAMES = {
    0: "f32",
    1: "f16",
    2: "q4_0",
    3: "q4_1",
    6: "q5_0",
    7: "q5_1",
    8: "q8_0",
    20: "iq4_nl",
    30: "bf16",
}

_RESTORE_HINT = "the archive is damaged; restore it from a good copy"
_TRUNC_HINT = (
    "the file was probably cut short (interrupted copy, download or write); "
    "obtain a complete copy"
)


# --------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecParams:
    """Everything a decoder must reproduce exactly to decode mode 0 data."""

    model_sha256: bytes
    tokenizer: int
    cdf_total_bits: int
    block_tokens: int
    flash_attn: bool
    type_k: int
    type_v: int
    start_token: int
    escape_token: int
    #: Symbols per independent stream (consecutive blocks in archive order
    #: whose model state continues across block boundaries); >= 1.  The codec
    #: additionally requires a multiple of ``block_tokens``.
    stream_tokens: int
    #: KV positions the model keeps per stream (MIN_WINDOW..MAX_WINDOW).
    window: int
    #: Positions removed when the window is full (>= 1).
    slide: int
    #: Leading positions never removed (attention sinks); sinks + slide < window.
    sinks: int
    backend: str = ""
    #: Where the archive was made (llama.cpp build, CPU kernels, numerics), from
    #: :mod:`nacrith.fingerprint`; informative only, "" when not recorded.
    fingerprint: str = ""
    #: The ensemble's settings, opaque here (parsed and checked by :mod:`nacrith.ensemble`);
    #: empty: the LLM alone.
    ensemble: bytes = b""

    def __post_init__(self) -> None:
        # Programming errors on the writing side: plain ValueError/TypeError.
        if not isinstance(self.model_sha256, (bytes, bytearray)) or len(self.model_sha256) != 32:
            raise ValueError("model_sha256 must be 32 raw bytes (a SHA-256 digest)")
        for name in ("tokenizer", "cdf_total_bits", "type_k", "type_v"):
            _check_uint(name, getattr(self, name), 0xFF)
        for name in (
            "block_tokens", "start_token", "escape_token", "stream_tokens", "window", "slide", "sinks"
        ):
            _check_uint(name, getattr(self, name), _U32_MAX)
        problem = window_problem(self.stream_tokens, self.window, self.slide, self.sinks)
        if problem:
            raise ValueError(problem)
        if not isinstance(self.flash_attn, bool):
            raise TypeError("flash_attn must be a bool")
        if not isinstance(self.backend, str):
            raise TypeError("backend must be a str")
        if len(self.backend.encode("utf-8")) > 255:
            raise ValueError("backend string must encode to at most 255 UTF-8 bytes")
        if not isinstance(self.ensemble, (bytes, bytearray)) or len(self.ensemble) > 255:
            raise ValueError("ensemble must be at most 255 bytes")
        if not isinstance(self.fingerprint, str):
            raise TypeError("fingerprint must be a str")
        if len(self.fingerprint.encode("utf-8")) > 255:
            raise ValueError("fingerprint must encode to at most 255 UTF-8 bytes")


@dataclass(frozen=True)
class Header:
    """Parsed archive header; ``size`` counts every header byte incl. the CRC."""

    version: int
    mode: int
    params: CodecParams | None
    size: int


@dataclass(frozen=True)
class BlockHeader:
    """Header fields of one block (the payload travels separately)."""

    n_symbols: int
    n_bytes: int
    payload_len: int
    crc32: int


@dataclass(frozen=True)
class Trailer:
    """Archive trailer: total original size and BLAKE2b-128 of the original."""

    original_size: int
    digest: bytes


@dataclass(frozen=True)
class Limits:
    """Upper bounds applied to sizes declared by an untrusted archive."""

    max_block_bytes: int = 64 * _MIB
    max_block_payload: int = 80 * _MIB
    max_block_symbols: int = 64 * _MIB
    max_total_bytes: int = 1 << 40

    def __post_init__(self) -> None:
        for name in ("max_block_bytes", "max_block_payload", "max_block_symbols", "max_total_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ArchiveInfo:
    """Summary of one archive member, as shown by ``nacrith info``."""

    header: Header
    n_blocks: int
    total_symbols: int
    total_bytes: int
    compressed_size: int
    trailer: Trailer

    @property
    def ratio(self) -> float | None:
        """original / compressed (higher is better); None for empty input."""
        if self.trailer.original_size == 0 or self.compressed_size == 0:
            return None
        return self.trailer.original_size / self.compressed_size

    @property
    def bits_per_byte(self) -> float | None:
        """8 * compressed / original, archive overhead included."""
        if self.trailer.original_size == 0:
            return None
        return 8.0 * self.compressed_size / self.trailer.original_size


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _check_uint(name: str, value: object, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} must be in [0, {maximum}], got {value}")


def window_problem(stream_tokens: int, window: int, slide: int, sinks: int) -> str | None:
    """Why the stream/window parameters are invalid, or None (shared by the header reader and
    writer and by ``codec.Layout.check``)."""
    if stream_tokens < 1:
        return f"stream_tokens must be >= 1, got {stream_tokens}"
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        return f"window must be in [{MIN_WINDOW}, {MAX_WINDOW}], got {window}"
    if slide < 1:
        return f"slide must be >= 1, got {slide}"
    if sinks + slide >= window:
        return f"sinks + slide must be < window, got sinks={sinks}, slide={slide}, window={window}"
    return None


def block_crc32(data: bytes) -> int:
    """CRC-32 (zlib polynomial) of a block's original bytes, as stored."""
    return zlib.crc32(data) & 0xFFFFFFFF


def new_digest() -> "hashlib._Hash":
    """A fresh streaming hasher for the trailer digest (BLAKE2b, 16 bytes)."""
    return hashlib.blake2b(digest_size=DIGEST_SIZE)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _encode_params(params: CodecParams) -> bytes:
    entries: list[tuple[int, bytes]] = [
        (ParamKey.MODEL_SHA256, bytes(params.model_sha256)),
        (ParamKey.TOKENIZER, bytes([params.tokenizer])),
        (ParamKey.CDF_TOTAL_BITS, bytes([params.cdf_total_bits])),
        (ParamKey.BLOCK_TOKENS, _U32.pack(params.block_tokens)),
        (ParamKey.FLASH_ATTN, bytes([1 if params.flash_attn else 0])),
        (ParamKey.KV_TYPES, bytes([params.type_k, params.type_v])),
        (ParamKey.START_TOKEN, _U32.pack(params.start_token)),
        (ParamKey.ESCAPE_TOKEN, _U32.pack(params.escape_token)),
    ]
    if params.backend:
        entries.append((ParamKey.BACKEND, params.backend.encode("utf-8")))
    entries += [
        (ParamKey.STREAM_TOKENS, _U32.pack(params.stream_tokens)),
        (ParamKey.WINDOW, _U32.pack(params.window)),
        (ParamKey.SLIDE, _U32.pack(params.slide)),
        (ParamKey.SINKS, _U32.pack(params.sinks)),
    ]
    if params.ensemble:
        entries.append((ParamKey.ENSEMBLE, bytes(params.ensemble)))
    if params.fingerprint:
        entries.append((ParamKey.FINGERPRINT, params.fingerprint.encode("utf-8")))
    out = bytearray()
    for key, value in sorted(entries, key=lambda entry: entry[0]):  # keys strictly increasing
        out += bytes([int(key), len(value)])
        out += value
    return bytes(out)


def encode_header(mode: int, params: CodecParams | None) -> bytes:
    """Serialize a v1 header (magic through header_crc).

    Modes 0 and 2 require ``params``; modes 1, 3 and 4 accept ``None`` (empty params).
    """
    if mode not in KNOWN_MODES:
        raise ValueError(f"unknown mode {mode!r}; v1 defines {KNOWN_MODES}")
    if params is None:
        if mode in MODEL_MODES:
            raise ValueError(f"mode {mode} ({mode_name(mode)}) requires CodecParams")
        body = b""
    else:
        body = _encode_params(params)
    head = _HEADER_FIXED.pack(MAGIC, FORMAT_VERSION, mode, len(body)) + body
    return head + _U32.pack(zlib.crc32(head) & 0xFFFFFFFF)


def _encode_varint(value: int) -> bytes:
    """Minimal unsigned LEB128 encoding of ``value`` (caller checks the range)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_block(n_symbols: int, n_bytes: int, crc32: int, payload: bytes) -> bytes:
    """Serialize one block: varint n_symbols, n_bytes, payload_len; u32 crc32; payload."""
    _check_uint("n_symbols", n_symbols, _U32_MAX)
    _check_uint("n_bytes", n_bytes, _U32_MAX)
    _check_uint("crc32", crc32, _U32_MAX)
    if n_symbols == 0:
        raise ValueError("n_symbols must be >= 1 (0 is the end marker)")
    if n_bytes == 0:
        raise ValueError("n_bytes must be >= 1 (encoders must not emit empty blocks)")
    payload = bytes(payload)
    _check_uint("payload_len", len(payload), _U32_MAX)
    return (
        _encode_varint(n_symbols)
        + _encode_varint(n_bytes)
        + _encode_varint(len(payload))
        + _U32.pack(crc32)
        + payload
    )


def encode_end(original_size: int, digest: bytes) -> bytes:
    """Serialize the end marker (varint 0, one byte) followed by the trailer."""
    _check_uint("original_size", original_size, _U64_MAX)
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != DIGEST_SIZE:
        raise ValueError(f"digest must be {DIGEST_SIZE} bytes (BLAKE2b-128)")
    body = _TRAILER_BODY.pack(original_size, bytes(digest))
    return _encode_varint(0) + body + _U32.pack(zlib.crc32(body) & 0xFFFFFFFF)


def encode_stored(
    data: bytes,
    *,
    block_bytes: int = 1 * _MIB,
    params: CodecParams | None = None,
) -> bytes:
    """A complete mode 1 (stored) archive of ``data``.

    Used as the fallback when neural coding would not shrink the input.
    ``block_bytes`` must not exceed the readers' default limit.
    """
    if not 1 <= block_bytes <= DEFAULT_LIMITS.max_block_bytes:
        raise ValueError(f"block_bytes must be in [1, {DEFAULT_LIMITS.max_block_bytes}]")
    data = bytes(data)
    parts = [encode_header(MODE_STORED, params)]
    for start in range(0, len(data), block_bytes):
        chunk = data[start : start + block_bytes]
        parts.append(encode_block(len(chunk), len(chunk), block_crc32(chunk), chunk))
    parts.append(encode_end(len(data), hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()))
    return b"".join(parts)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _read_upto(fileobj: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at EOF."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = fileobj.read(min(n - got, _READ_CHUNK))
        if not chunk:
            break
        parts.append(bytes(chunk))
        got += len(chunk)
    return b"".join(parts)


def _text_param(values: dict[int, bytes], key: ParamKey) -> str:
    """An optional UTF-8 text parameter ("" when absent); FormatError if it is not UTF-8."""
    try:
        return values.get(key, b"").decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(
            f"corrupt archive header: {key.name.lower()} parameter is not valid UTF-8; " + _RESTORE_HINT
        ) from None


def _parse_params(mode: int, raw: bytes) -> CodecParams | None:
    values: dict[int, bytes] = {}
    pos = 0
    prev_key = 0
    while pos < len(raw):
        if pos + 2 > len(raw):
            raise FormatError(
                f"corrupt archive header: parameter entry at offset {pos} is cut off; "
                + _RESTORE_HINT
            )
        key, length = raw[pos], raw[pos + 1]
        pos += 2
        if pos + length > len(raw):
            raise FormatError(
                f"corrupt archive header: parameter {key} claims {length} bytes but only "
                f"{len(raw) - pos} remain in the parameter section; " + _RESTORE_HINT
            )
        value = raw[pos : pos + length]
        pos += length
        if key == 0:
            raise FormatError("corrupt archive header: parameter key 0 is invalid; " + _RESTORE_HINT)
        if key <= prev_key:
            what = "duplicate" if key == prev_key else "out-of-order"
            raise FormatError(
                f"corrupt archive header: {what} parameter key {key} (keys must be strictly "
                "increasing); " + _RESTORE_HINT
            )
        prev_key = key
        if key not in _KEY_LENGTHS:
            raise UnsupportedVersionError(
                f"archive header uses parameter key {key}, unknown to this version of "
                "nacrith; it was written by a newer release — upgrade nacrith to read it"
            )
        expected = _KEY_LENGTHS[key]
        if expected is not None and length != expected:
            raise FormatError(
                f"corrupt archive header: parameter {ParamKey(key).name.lower()} has "
                f"{length} bytes, expected {expected}; " + _RESTORE_HINT
            )
        values[key] = value

    if not values:
        if mode in MODEL_MODES:
            raise FormatError(
                "corrupt archive header: model-coded archive has no codec parameters; "
                + _RESTORE_HINT
            )
        return None
    missing = sorted(_REQUIRED_KEYS - values.keys())
    if missing:
        names = ", ".join(ParamKey(k).name.lower() for k in missing)
        raise FormatError(
            f"corrupt archive header: required parameter(s) missing: {names}; " + _RESTORE_HINT
        )
    flash = values[ParamKey.FLASH_ATTN][0]
    if flash > 1:
        raise FormatError(
            f"corrupt archive header: flash_attn must be 0 or 1, got {flash}; " + _RESTORE_HINT
        )
    backend = _text_param(values, ParamKey.BACKEND)
    fingerprint = _text_param(values, ParamKey.FINGERPRINT)
    kv = values[ParamKey.KV_TYPES]
    stream_tokens, window, slide, sinks = (
        _U32.unpack(values[k])[0]
        for k in (ParamKey.STREAM_TOKENS, ParamKey.WINDOW, ParamKey.SLIDE, ParamKey.SINKS)
    )
    problem = window_problem(stream_tokens, window, slide, sinks)
    if problem:
        raise FormatError(f"corrupt archive header: {problem}; " + _RESTORE_HINT)
    return CodecParams(
        model_sha256=values[ParamKey.MODEL_SHA256],
        tokenizer=values[ParamKey.TOKENIZER][0],
        cdf_total_bits=values[ParamKey.CDF_TOTAL_BITS][0],
        block_tokens=_U32.unpack(values[ParamKey.BLOCK_TOKENS])[0],
        flash_attn=bool(flash),
        type_k=kv[0],
        type_v=kv[1],
        start_token=_U32.unpack(values[ParamKey.START_TOKEN])[0],
        escape_token=_U32.unpack(values[ParamKey.ESCAPE_TOKEN])[0],
        stream_tokens=stream_tokens,
        window=window,
        slide=slide,
        sinks=sinks,
        backend=backend,
        fingerprint=fingerprint,
        ensemble=values.get(ParamKey.ENSEMBLE, b""),
    )


class ArchiveReader:
    """Incremental reader of one archive member from a binary file object.

    The header is parsed (and its CRC verified) on construction.  Iterate
    :meth:`blocks` (or :meth:`block_headers`) once to the end; afterwards
    :attr:`trailer` holds the verified trailer and the file object is
    positioned right after it.  Running totals (``n_blocks``,
    ``total_symbols``, ``total_bytes``, ``bytes_read``) are updated as blocks
    are read.

    ``prefix`` holds bytes the caller already consumed from ``fileobj`` that
    belong to the start of this archive (used by :func:`iter_members`).
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        limits: Limits = DEFAULT_LIMITS,
        *,
        prefix: bytes = b"",
    ) -> None:
        self._f = fileobj
        self.limits = limits
        self._prefix = bytes(prefix)
        self.bytes_read = 0
        self.n_blocks = 0
        self.total_symbols = 0
        self.total_bytes = 0
        self.trailer: Trailer | None = None
        self._iterating = False
        self.header: Header = self._read_header()

    # -- low-level reads ---------------------------------------------------

    def _read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes (prefix first); fewer only at end of input."""
        head = b""
        if self._prefix:
            head, self._prefix = self._prefix[:n], self._prefix[n:]
        rest = _read_upto(self._f, n - len(head)) if len(head) < n else b""
        data = head + rest
        self.bytes_read += len(data)
        return data

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self._read_some(n)
        if len(data) < n:
            raise TruncatedError(
                f"archive is truncated: it ends inside the {what} (offset {self.bytes_read}, "
                f"{n - len(data)} more byte(s) needed); " + _TRUNC_HINT
            )
        return data

    def _read_varint(self, what: str) -> int:
        """One unsigned LEB128 varint: at most 5 bytes, minimal, value <= u32 max."""
        value = 0
        for i in range(_VARINT_MAX_BYTES):
            byte = self._read_exact(1, what)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise FormatError(
                        f"corrupt archive: non-minimal (overlong) varint in the {what} "
                        f"(offset {self.bytes_read - 1}); " + _RESTORE_HINT
                    )
                if value > _U32_MAX:
                    break
                return value
        raise FormatError(
            f"corrupt archive: varint in the {what} exceeds 32 bits "
            f"(offset {self.bytes_read - 1}); " + _RESTORE_HINT
        )

    def _skip_exact(self, n: int, what: str) -> None:
        remaining = n
        while remaining:
            got = len(self._read_some(min(remaining, _READ_CHUNK)))
            if got == 0:
                raise TruncatedError(
                    f"archive is truncated: it ends inside the {what} (offset {self.bytes_read}, "
                    f"{remaining} more byte(s) needed); " + _TRUNC_HINT
                )
            remaining -= got

    # -- header ------------------------------------------------------------

    def _read_header(self) -> Header:
        magic = self._read_some(len(MAGIC))
        if magic != MAGIC[: len(magic)]:
            raise FormatError(
                f"not a nacrith archive: the input starts with {magic.hex()}, expected "
                f"{MAGIC.hex()} (\"\\x89NCR\"); check that the right file was given"
            )
        if len(magic) < len(MAGIC):
            if not magic:
                raise TruncatedError(
                    "input is empty: not a nacrith archive; check that the right file was given"
                )
            raise TruncatedError("archive is truncated inside the magic number; " + _TRUNC_HINT)
        rest = self._read_exact(_HEADER_FIXED.size - len(MAGIC), "header")
        _, version, mode, params_len = _HEADER_FIXED.unpack(magic + rest)
        if version != FORMAT_VERSION:
            if version > FORMAT_VERSION:
                raise UnsupportedVersionError(
                    f"archive uses container format version {version}, but this nacrith "
                    f"reads only version {FORMAT_VERSION}; upgrade nacrith to read it"
                )
            raise FormatError(
                f"corrupt archive header: invalid format version {version}; " + _RESTORE_HINT
            )
        params_raw = self._read_exact(params_len, "header parameters")
        (stored_crc,) = _U32.unpack(self._read_exact(4, "header checksum"))
        actual_crc = zlib.crc32(magic + rest + params_raw) & 0xFFFFFFFF
        if stored_crc != actual_crc:
            raise FormatError(
                f"corrupt archive header: CRC-32 mismatch (stored {stored_crc:#010x}, "
                f"computed {actual_crc:#010x}); " + _RESTORE_HINT
            )
        if mode not in KNOWN_MODES:
            raise UnsupportedVersionError(
                f"archive uses coding mode {mode}, unknown to this version of nacrith "
                f"(known: {', '.join(f'{m} ({mode_name(m)})' for m in KNOWN_MODES)}); "
                "upgrade nacrith to read it"
            )
        params = _parse_params(mode, params_raw)
        return Header(
            version=version,
            mode=mode,
            params=params,
            size=_HEADER_FIXED.size + params_len + 4,
        )

    # -- blocks ------------------------------------------------------------

    def blocks(self) -> Iterator[tuple[BlockHeader, bytes]]:
        """Yield ``(BlockHeader, payload)`` for each block, then read the trailer."""
        self._start()
        return self._iter(read_payload=True)  # type: ignore[return-value]

    def block_headers(self) -> Iterator[BlockHeader]:
        """Like :meth:`blocks` but skips payloads (for ``nacrith info``)."""
        self._start()
        return (bh for bh, _ in self._iter(read_payload=False))

    def _start(self) -> None:
        if self._iterating:
            raise RuntimeError("ArchiveReader blocks can be iterated only once")
        self._iterating = True

    def _iter(self, read_payload: bool) -> Iterator[tuple[BlockHeader, bytes | None]]:
        while True:
            index = self.n_blocks
            what = f"header of block {index}"
            n_symbols = self._read_varint(what)
            if n_symbols == 0:
                break
            n_bytes = self._read_varint(what)
            payload_len = self._read_varint(what)
            (crc,) = _U32.unpack(self._read_exact(4, what))
            bh = BlockHeader(n_symbols, n_bytes, payload_len, crc)
            self._check_block(index, bh)
            what = f"payload of block {index}"
            payload: bytes | None
            if read_payload:
                payload = self._read_exact(payload_len, what)
            else:
                self._skip_exact(payload_len, what)
                payload = None
            self.n_blocks += 1
            self.total_symbols += n_symbols
            self.total_bytes += n_bytes
            yield bh, payload
        self.trailer = self._read_trailer()

    def _check_block(self, index: int, bh: BlockHeader) -> None:
        limits = self.limits
        for value, limit, name in (
            (bh.n_symbols, limits.max_block_symbols, "symbols"),
            (bh.n_bytes, limits.max_block_bytes, "original bytes"),
            (bh.payload_len, limits.max_block_payload, "payload bytes"),
        ):
            if value > limit:
                raise LimitError(
                    f"block {index} declares {value} {name}, above the limit of {limit}; "
                    "the archive is corrupt or hostile — if it is trusted, raise the limit"
                )
        if self.total_bytes + bh.n_bytes > limits.max_total_bytes:
            raise LimitError(
                f"archive declares more than {limits.max_total_bytes} original bytes in total "
                "(the configured limit); if the archive is trusted, raise the limit"
            )
        if bh.n_bytes == 0:
            raise FormatError(
                f"corrupt archive: block {index} has symbols but produces no bytes; "
                + _RESTORE_HINT
            )
        if self.header.mode == MODE_STORED and not (
            bh.n_symbols == bh.n_bytes == bh.payload_len
        ):
            raise FormatError(
                f"corrupt archive: stored block {index} has inconsistent sizes "
                f"(n_symbols={bh.n_symbols}, n_bytes={bh.n_bytes}, "
                f"payload_len={bh.payload_len}); " + _RESTORE_HINT
            )
        if self.header.mode in (MODE_ZSTD, MODE_BYTECM) and bh.n_symbols != bh.n_bytes:
            raise FormatError(
                f"corrupt archive: {mode_name(self.header.mode)} block {index} has n_symbols={bh.n_symbols} but "
                f"n_bytes={bh.n_bytes} (they must be equal); " + _RESTORE_HINT
            )

    def _read_trailer(self) -> Trailer:
        raw = self._read_exact(_TRAILER.size, "trailer")
        original_size, digest, stored_crc = _TRAILER.unpack(raw)
        actual_crc = zlib.crc32(raw[: _TRAILER_BODY.size]) & 0xFFFFFFFF
        if stored_crc != actual_crc:
            raise FormatError(
                f"corrupt archive trailer: CRC-32 mismatch (stored {stored_crc:#010x}, "
                f"computed {actual_crc:#010x}); " + _RESTORE_HINT
            )
        # In hybrid mode the blocks hold the region table and the two sections; the decoder
        # checks original_size against the region table.
        if original_size != self.total_bytes and self.header.mode != MODE_HYBRID:
            raise FormatError(
                f"corrupt archive: trailer says {original_size} original bytes but the blocks "
                f"add up to {self.total_bytes}; " + _RESTORE_HINT
            )
        return Trailer(original_size=original_size, digest=digest)


def iter_members(
    fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS
) -> Iterator[ArchiveReader]:
    """Yield a reader for each archive in a concatenation of archives.

    Each yielded reader must be iterated to its end before the next one is
    requested.  Trailing bytes that do not start a new archive raise
    :class:`FormatError`; a partial magic number raises ``TruncatedError``.
    """
    reader = ArchiveReader(fileobj, limits)
    offset = 0
    while True:
        yield reader
        if reader.trailer is None:
            raise RuntimeError("read all blocks of an archive member before advancing")
        offset += reader.bytes_read
        head = _read_upto(fileobj, len(MAGIC))
        if not head:
            return
        if head != MAGIC[: len(head)]:
            raise FormatError(
                f"unexpected trailing data at offset {offset} after a complete archive "
                f"(starts with {head.hex()}, not another nacrith archive); the archive "
                "before it is intact — remove the extra bytes"
            )
        reader = ArchiveReader(fileobj, limits, prefix=head)


def _info_from(reader: ArchiveReader) -> ArchiveInfo:
    for _ in reader.block_headers():
        pass
    return summary(reader)


def summary(reader: ArchiveReader) -> ArchiveInfo:
    """The :class:`ArchiveInfo` of a member whose blocks ``reader`` has read to the end."""
    assert reader.trailer is not None
    return ArchiveInfo(
        header=reader.header,
        n_blocks=reader.n_blocks,
        total_symbols=reader.total_symbols,
        total_bytes=reader.total_bytes,
        compressed_size=reader.bytes_read,
        trailer=reader.trailer,
    )


def read_info(fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> ArchiveInfo:
    """Summarize the first archive member of ``fileobj`` (payloads are skipped).

    Structural checks run (header/trailer CRCs, limits, size totals); block
    CRCs and the digest are not verified because that needs decoding.
    """
    return _info_from(ArchiveReader(fileobj, limits))


def read_info_all(fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> list[ArchiveInfo]:
    """Summaries of every member of a (possibly concatenated) archive."""
    return [_info_from(reader) for reader in iter_members(fileobj, limits)]


def _fmt_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    for unit, scale in (("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)):
        if n < scale * 1024 or unit == "TiB":
            return f"{n} bytes ({n / scale:.2f} {unit})"
    raise AssertionError("unreachable")


def _fmt_ggml_type(t: int) -> str:
    name = _GGML_TYPE_NAMES.get(t)
    return f"{t} ({name})" if name else str(t)


def format_info(info: ArchiveInfo) -> str:
    """Human-readable multi-line description of an archive, for ``nacrith info``."""
    h = info.header
    rows: list[tuple[str, str]] = [
        ("format", f"nacrith container v{h.version}"),
        ("mode", f"{h.mode} ({mode_name(h.mode)})"),
    ]
    p = h.params
    if p is not None:
        rows += [
            ("model sha256", p.model_sha256.hex()),
            ("tokenizer", f"escape scheme {p.tokenizer}"),
            ("cdf total bits", str(p.cdf_total_bits)),
            ("block tokens", str(p.block_tokens)),
            ("flash attention", "on" if p.flash_attn else "off"),
            ("kv cache types", f"K={_fmt_ggml_type(p.type_k)} V={_fmt_ggml_type(p.type_v)}"),
            ("start token", str(p.start_token)),
            ("escape token", str(p.escape_token)),
            ("stream tokens", f"{p.stream_tokens} symbols"),
            ("window", f"{p.window} positions"),
            ("slide", f"{p.slide} positions"),
            ("sinks", f"{p.sinks} positions"),
            ("backend", p.backend or "(not recorded)"),
            ("fingerprint", p.fingerprint or "(not recorded)"),
        ]
    else:
        rows.append(("codec params", "(none)"))
    ratio = info.ratio
    bpb = info.bits_per_byte
    rows += [
        ("blocks", str(info.n_blocks)),
        ("symbols", str(info.total_symbols)),
        ("original size", _fmt_size(info.trailer.original_size)),
        ("compressed size", _fmt_size(info.compressed_size)),
        ("ratio", f"{ratio:.3f}x" if ratio is not None else "n/a"),
        ("bits per byte", f"{bpb:.4f}" if bpb is not None else "n/a"),
        ("blake2b-128", info.trailer.digest.hex()),
    ]
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in rows)
