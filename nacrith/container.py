"""Container formats v1 and v2: the byte layout around nacrith's coded data.

Why a separate, model-free module: the container is the part of an archive
that must stay readable by any tool (``nacrith info``, fuzzers, future
versions) without loading a language model.  Everything here is standard
library only and operates on plain binary file objects, so it can be tested
exhaustively and reused by the codec for both the neural (mode 0) and the
stored (mode 1) paths.

The normative descriptions are ``formats/container-v1.md`` and ``formats/container-v2.md``
(the compact framing new archives get); this module is their reference implementation, and
one parser (:class:`MemberParser`) reads both.  Parsing principles:

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

Checks that need the original bytes (the per-block CRC-32, the final BLAKE2b
digest of v1 and the CRC-32 of v2) belong to the decoder, which produces those
bytes; the reader exposes the stored values for it (:func:`verify_original`).
The one exception is a v2 stored body, which the parser itself hands out and
therefore checks.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .errors import ChecksumError, FormatError, LimitError, TruncatedError, UnsupportedVersionError, corrupt

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "READ_VERSIONS",
    "KERNELS_PORTABLE",
    "KERNELS_MACHINE_BOUND",
    "PROBE_SIZE",
    "ModelPreset",
    "MODEL_PRESETS",
    "V2_DEFAULTS",
    "v2_default_block_tokens",
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
    "Block",
    "Trailer",
    "Limits",
    "DEFAULT_LIMITS",
    "ArchiveInfo",
    "MemberParser",
    "ArchiveReader",
    "encode_header",
    "encode_block",
    "encode_end",
    "encode_stored",
    "encode_member",
    "verify_original",
    "machine_bound_bytes",
    "encode_varint",
    "read_varint",
    "check_start",
    "trailing_data",
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
#: The container version writers emit (``formats/container-v2.md``).
FORMAT_VERSION = 2
#: The versions this module reads.
READ_VERSIONS = (1, 2)

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
# (minimal encoding, value <= u32 max, so at most 5 bytes each; read_varint).
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
    #: Version 2 only (overrides, never in a version 1 header).
    SEGMENTS = 16
    LEVEL = 17
    CALLS = 18


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
_REQUIRED_KEYS = frozenset(int(k) for k in _KEY_LENGTHS if k not in _OPTIONAL_KEYS)
#: Keys of version 2 headers and their lengths: version 1's, ``segments``, ``level`` and ``calls``.
_V2_KEY_LENGTHS: dict[int, int | None] = {
    **_KEY_LENGTHS, ParamKey.SEGMENTS: 1, ParamKey.LEVEL: 1, ParamKey.CALLS: 1,
}
#: Most segments a stream may be coded in (spec v2 section 3.2, key 16).
MAX_SEGMENTS = 64
#: The compression levels a header may name (spec v2 section 3.2, key 17): the preset of
#: settings the writer started from (``nacrith.levels``).  Informative: the settings
#: themselves are recorded by their own keys, and a reader decodes any level number.
LEVEL_FAST = 1
LEVEL_DEFAULT = 2
LEVEL_BEST = 3
LEVEL_NAMES = {LEVEL_FAST: "fast", LEVEL_DEFAULT: "default", LEVEL_BEST: "best"}
#: How the encoder called the model (spec v2 section 3.2, key 18).  ``CALLS_BATCHED``: runs of
#: known tokens in batches, which needs a model whose logits do not depend on the batch;
#: ``CALLS_LOCKSTEP``: exactly the decoder's calls, one token per sequence per evaluation.
CALLS_BATCHED = 0
CALLS_LOCKSTEP = 1
CALLS_NAMES = {CALLS_BATCHED: "batched", CALLS_LOCKSTEP: "lockstep (the decoder's calls)"}

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

_TRUNC_HINT = (
    "the file was probably cut short (interrupted copy, download or write); "
    "obtain a complete copy"
)

# -- version 2 (formats/container-v2.md) -----------------------------------------------------

#: ``CodecParams.kernels`` of an archive decodable wherever the pinned kernel set runs
#: (``kernels`` byte 1; issue 16's x86-64-v3 build of llama.cpp).
KERNELS_PORTABLE = "x86-64-v3"
#: ``CodecParams.kernels`` of an archive only its own kind of machine decodes (byte 0).
KERNELS_MACHINE_BOUND = "machine-bound"
_KERNEL_CODES = {KERNELS_MACHINE_BOUND: 0, KERNELS_PORTABLE: 1}
_KERNEL_NAMES = {code: name for name, code in _KERNEL_CODES.items()}
#: Bytes of the numeric probe (a digest of the writer's logits; opaque here) in a v2 header.
PROBE_SIZE = 4
#: Bytes of a preset's SHA-256 repeated after its id in a v2 header.
_PRESET_PREFIX = 4
_U16 = struct.Struct("<H")
#: A v2 stored body is handed out in pieces of at most this many bytes.
_STORED_PIECE = _READ_CHUNK


@dataclass(frozen=True)
class ModelPreset:
    """A model a v2 header names by one byte (spec section 3.1); ids are never reused."""

    id: int
    #: The name of the preset in :data:`nacrith.models.PRESETS`.
    name: str
    sha256: bytes
    #: The values of ``start_token`` and ``escape_token`` this model gives (the v2 defaults).
    start_token: int
    escape_token: int


#: The v2 model registry.  Each entry is one exact file forever: its SHA-256, and the tokens
#: ``nacrith.codec.Engine`` reads from it (``start_token``, ``tokenizer.escape_token``).
MODEL_PRESETS: dict[int, ModelPreset] = {
    1: ModelPreset(
        1,
        "smollm2-135m",
        bytes.fromhex("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        start_token=1,
        escape_token=2,
    ),
    2: ModelPreset(
        2,
        "gemma3-270m",
        bytes.fromhex("a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
        start_token=2,
        escape_token=1,
    ),
}
_PRESET_BY_SHA = {preset.sha256: preset for preset in MODEL_PRESETS.values()}

#: The values a v2 header leaves out (spec section 3.2): one fixed set for every archive of
#: version 2, whatever later releases choose as their defaults.  ``block_tokens`` follows
#: :func:`v2_default_block_tokens`; ``start_token`` and ``escape_token`` come from the preset.
V2_DEFAULTS: dict[str, object] = {
    "tokenizer": 1,
    "cdf_total_bits": 24,
    "flash_attn": True,
    "type_k": 8,
    "type_v": 1,
    "stream_tokens": 1 << 19,
    "window": 1024,
    "slide": 256,
    "sinks": 4,
    "ensemble": b"\x02",
    "segments": 1,
    "level": LEVEL_DEFAULT,
    "calls": CALLS_BATCHED,
}
_V2_MAX_BLOCK_TOKENS = 1 << 20
#: Keys a v2 header may override (v1's registry keys and value encodings).
_V2_OVERRIDE_KEYS = (2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18)


def level_name(level: int) -> str:
    """A level number as ``info`` shows it: its name, or the number a newer writer chose."""
    return LEVEL_NAMES.get(level, f"{level} (unknown to this nacrith)")


def v2_default_block_tokens(stream_tokens: int) -> int:
    """The v2 default of ``block_tokens``: ``stream_tokens`` itself, or its largest divisor that
    is at most 2^20 (the rule of ``nacrith.codec.default_block_tokens``, fixed here forever)."""
    if stream_tokens < 1:
        raise ValueError("stream_tokens must be >= 1")
    parts = -(-stream_tokens // _V2_MAX_BLOCK_TOKENS)
    while stream_tokens % parts:
        parts += 1
    return stream_tokens // parts



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
    #: Which llama.cpp kernels computed the logits: :data:`KERNELS_PORTABLE`,
    #: :data:`KERNELS_MACHINE_BOUND`, or "" where not recorded (version 1).  Version 2 writes it.
    kernels: str = ""
    #: The numeric probe: :data:`PROBE_SIZE` bytes computed and checked by the codec (a digest
    #: of the writer's logits on a fixed text), opaque here; b"" where not recorded (version 1).
    probe: bytes = b""
    #: Segments each stream is coded in (1..:data:`MAX_SEGMENTS`; version 2 only): contiguous
    #: parts coded in turn, each with its own model context (nacrith.codec).
    segments: int = 1
    #: The compression level the writer started from (:data:`LEVEL_NAMES`; version 2 only):
    #: informative, the settings are the fields above.
    level: int = LEVEL_DEFAULT
    #: How the encoder called the model (:data:`CALLS_NAMES`; version 2 only).
    calls: int = CALLS_BATCHED

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
        if not (isinstance(self.segments, int) and 1 <= self.segments <= MAX_SEGMENTS):
            raise ValueError(f"segments must be in 1..{MAX_SEGMENTS}, got {self.segments!r}")
        if not (isinstance(self.level, int) and 1 <= self.level <= 255):
            raise ValueError(f"level must be in 1..255, got {self.level!r}")
        if self.calls not in CALLS_NAMES:
            raise ValueError(f"calls must be one of {sorted(CALLS_NAMES)}, got {self.calls!r}")
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
        if self.kernels not in ("", KERNELS_PORTABLE, KERNELS_MACHINE_BOUND):
            raise ValueError(
                f"kernels must be {KERNELS_PORTABLE!r}, {KERNELS_MACHINE_BOUND!r} or '', got {self.kernels!r}"
            )
        if not isinstance(self.probe, (bytes, bytearray)) or len(self.probe) not in (0, PROBE_SIZE):
            raise ValueError(f"probe must be {PROBE_SIZE} bytes (or b'' where not recorded)")


@dataclass(frozen=True)
class Header:
    """Parsed archive header; ``size`` counts every header byte incl. the CRC (v1) or
    header_check (v2 modes 0 and 2)."""

    version: int
    mode: int
    params: CodecParams | None
    size: int
    #: Version 2 records the original size in the header; None in version 1 (see the trailer).
    original_size: int | None = None


@dataclass(frozen=True)
class BlockHeader:
    """Header fields of one block (the payload travels separately)."""

    n_symbols: int
    n_bytes: int
    payload_len: int
    #: CRC-32 of the block's original bytes.  A v2 archive writes it only when it has several
    #: blocks; for its single block the reader fills in the archive's check (the CRC-32 of the
    #: whole original, which is that block's), and a piece of a v2 stored body gets the CRC-32
    #: of the piece as read (the parser checks the whole body against the archive's check).
    #: None only for a stored piece read past without keeping it (``block_headers``).
    crc32: int | None


@dataclass(frozen=True)
class Block:
    """One block to write: its symbol and byte counts, the CRC-32 of its original bytes, and
    its payload (see :func:`encode_member`)."""

    n_symbols: int
    n_bytes: int
    crc32: int
    payload: bytes


@dataclass(frozen=True)
class Trailer:
    """The end of a member: total original size, and BLAKE2b-128 of the original (version 1)
    or CRC-32 of the original (version 2, ``check``; ``digest`` is then b"")."""

    original_size: int
    digest: bytes
    check: int | None = None


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
    if params.segments != 1:
        raise ValueError("a version 1 header cannot record segments (version 2 only)")
    if params.level != LEVEL_DEFAULT:
        raise ValueError("a version 1 header cannot record a level (version 2 only)")
    if params.calls != CALLS_BATCHED:
        raise ValueError("a version 1 header cannot record lockstep calls (version 2 only)")
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


def _override_values(params: CodecParams) -> dict[int, bytes]:
    """The values of the keys a v2 header may override, in v1's encodings (spec v2 section 3.2).
    Key 14 is b"" for the LLM alone."""
    return {
        ParamKey.TOKENIZER: bytes([params.tokenizer]),
        ParamKey.CDF_TOTAL_BITS: bytes([params.cdf_total_bits]),
        ParamKey.BLOCK_TOKENS: _U32.pack(params.block_tokens),
        ParamKey.FLASH_ATTN: bytes([1 if params.flash_attn else 0]),
        ParamKey.KV_TYPES: bytes([params.type_k, params.type_v]),
        ParamKey.START_TOKEN: _U32.pack(params.start_token),
        ParamKey.ESCAPE_TOKEN: _U32.pack(params.escape_token),
        ParamKey.STREAM_TOKENS: _U32.pack(params.stream_tokens),
        ParamKey.WINDOW: _U32.pack(params.window),
        ParamKey.SLIDE: _U32.pack(params.slide),
        ParamKey.SINKS: _U32.pack(params.sinks),
        ParamKey.ENSEMBLE: bytes(params.ensemble),
        ParamKey.SEGMENTS: bytes([params.segments]),
        ParamKey.LEVEL: bytes([params.level]),
        ParamKey.CALLS: bytes([params.calls]),
    }


def _v2_default_values(preset: ModelPreset | None, stream_tokens: int) -> dict[int, bytes]:
    """The encoded v2 defaults (spec v2 section 3.2), for the effective ``stream_tokens``; a
    custom model (``preset`` None) has no default start or escape token."""
    d = V2_DEFAULTS
    values = {
        ParamKey.TOKENIZER: bytes([d["tokenizer"]]),
        ParamKey.CDF_TOTAL_BITS: bytes([d["cdf_total_bits"]]),
        ParamKey.BLOCK_TOKENS: _U32.pack(v2_default_block_tokens(stream_tokens)),
        ParamKey.FLASH_ATTN: bytes([1 if d["flash_attn"] else 0]),
        ParamKey.KV_TYPES: bytes([d["type_k"], d["type_v"]]),
        ParamKey.STREAM_TOKENS: _U32.pack(d["stream_tokens"]),
        ParamKey.WINDOW: _U32.pack(d["window"]),
        ParamKey.SLIDE: _U32.pack(d["slide"]),
        ParamKey.SINKS: _U32.pack(d["sinks"]),
        ParamKey.ENSEMBLE: bytes(d["ensemble"]),
        ParamKey.SEGMENTS: bytes([d["segments"]]),
        ParamKey.LEVEL: bytes([d["level"]]),
        ParamKey.CALLS: bytes([d["calls"]]),
    }
    if preset is not None:
        values[ParamKey.START_TOKEN] = _U32.pack(preset.start_token)
        values[ParamKey.ESCAPE_TOKEN] = _U32.pack(preset.escape_token)
    return values


def _encode_params_v2(params: CodecParams) -> bytes:
    """params_v2 (spec v2 section 3): model, overrides of the v2 defaults, numerics."""
    if params.kernels not in _KERNEL_CODES or len(params.probe) != PROBE_SIZE:
        raise ValueError(
            "a version 2 model header needs the numeric check: CodecParams.kernels "
            f"({KERNELS_PORTABLE!r} or {KERNELS_MACHINE_BOUND!r}) and a {PROBE_SIZE}-byte probe"
        )
    preset = _PRESET_BY_SHA.get(bytes(params.model_sha256))
    out = bytearray()
    if preset is not None:
        out += bytes([preset.id]) + preset.sha256[:_PRESET_PREFIX]
    else:
        out += b"\x00" + bytes(params.model_sha256)
    defaults = _v2_default_values(preset, params.stream_tokens)
    overrides = [(k, v) for k, v in sorted(_override_values(params).items()) if defaults.get(k) != v]
    out.append(len(overrides))
    for key, value in overrides:
        out += bytes([int(key), len(value)]) + value
    out.append(_KERNEL_CODES[params.kernels])
    out += bytes(params.probe)
    if params.kernels == KERNELS_MACHINE_BOUND:
        text = params.fingerprint.encode("utf-8")
        out += bytes([len(text)]) + text
    return bytes(out)


def encode_header(
    mode: int, params: CodecParams | None, *, version: int = 1, original_size: int | None = None
) -> bytes:
    """Serialize a header: version 1 (magic through header_crc; the default of this primitive,
    which writes the v1 goldens) or version 2 (magic through header_check, which needs
    ``original_size``).  Whole archives come from :func:`encode_member` and :func:`encode_stored`.

    Modes 0 and 2 require ``params``.  In version 1 modes 1, 3 and 4 accept ``None`` (empty
    params); version 2 writes no params in those modes and refuses any.
    """
    if mode not in KNOWN_MODES:
        raise ValueError(f"unknown mode {mode!r}; the container defines {KNOWN_MODES}")
    if version == 2:
        if original_size is None:
            raise ValueError("a version 2 header records original_size")
        _check_uint("original_size", original_size, _U64_MAX)
        head = MAGIC + bytes([2, mode]) + encode_varint(original_size, bits=64)
        if mode not in MODEL_MODES:
            if params is not None:
                raise ValueError(f"version 2 writes no parameters in mode {mode} ({mode_name(mode)})")
            return head
        if params is None:
            raise ValueError(f"mode {mode} ({mode_name(mode)}) requires CodecParams")
        head += _encode_params_v2(params)
        return head + _U16.pack(zlib.crc32(head) & 0xFFFF)
    if version != 1:
        raise ValueError(f"this module writes container versions 1 and 2, not {version!r}")
    if original_size is not None:
        raise ValueError("a version 1 header does not record original_size (its trailer does)")
    if params is None:
        if mode in MODEL_MODES:
            raise ValueError(f"mode {mode} ({mode_name(mode)}) requires CodecParams")
        body = b""
    else:
        body = _encode_params(params)
    head = _HEADER_FIXED.pack(MAGIC, 1, mode, len(body)) + body
    return head + _U32.pack(zlib.crc32(head) & 0xFFFFFFFF)


def encode_varint(value: int, *, bits: int = 32) -> bytes:
    """Minimal unsigned LEB128 encoding of ``value`` (0 .. 2^bits - 1; spec section 1).

    The one writer of the format's varints: block fields, the end marker, hybrid region tables,
    and (``bits=64``) the original size of a v2 header.
    """
    _check_uint("varint value", value, (1 << bits) - 1)
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(
    buf: bytes | bytearray | memoryview, pos: int, what: str, offset: int = 0, *, bits: int = 32
) -> tuple[int, int] | None:
    """The minimal unsigned LEB128 integer of at most ``bits`` bits (32, or 64 for a v2 original
    size) at ``buf[pos:]`` (spec section 1): ``(value, next position)``, or None when ``buf``
    ends before the varint does.

    The one reader of the format's varints.  ``what`` names the field for the error message
    and ``offset`` is where ``buf[0]`` lies in the archive (for the offset it reports).
    """
    value = 0
    for i in range(-(-bits // 7)):
        if pos + i >= len(buf):
            return None
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise corrupt(f"non-minimal (overlong) varint in the {what} (offset {offset + pos + i})")
            if value >> bits:
                break
            return value, pos + i + 1
    raise corrupt(f"varint in the {what} exceeds {bits} bits (offset {offset + pos + i})")


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
        encode_varint(n_symbols)
        + encode_varint(n_bytes)
        + encode_varint(len(payload))
        + _U32.pack(crc32)
        + payload
    )


def encode_end(original_size: int, digest: bytes) -> bytes:
    """Serialize the end marker (varint 0, one byte) followed by the trailer."""
    _check_uint("original_size", original_size, _U64_MAX)
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != DIGEST_SIZE:
        raise ValueError(f"digest must be {DIGEST_SIZE} bytes (BLAKE2b-128)")
    body = _TRAILER_BODY.pack(original_size, bytes(digest))
    return encode_varint(0) + body + _U32.pack(zlib.crc32(body) & 0xFFFFFFFF)


def encode_stored(
    data: bytes,
    *,
    block_bytes: int = 1 * _MIB,
    params: CodecParams | None = None,
    version: int = FORMAT_VERSION,
) -> bytes:
    """A complete mode 1 (stored) archive of ``data``.

    Used as the fallback when neural coding would not shrink the input.  Version 2 (the
    default) is the header, the bytes and their CRC-32 (11 bytes of framing); version 1 cuts
    the bytes into blocks of ``block_bytes`` (at most the readers' default limit) and may
    record ``params``.
    """
    data = bytes(data)
    if version == 2:
        if params is not None:
            raise ValueError("version 2 writes no parameters in stored mode")
        return encode_header(MODE_STORED, None, version=2, original_size=len(data)) + data + _U32.pack(block_crc32(data))
    if not 1 <= block_bytes <= DEFAULT_LIMITS.max_block_bytes:
        raise ValueError(f"block_bytes must be in [1, {DEFAULT_LIMITS.max_block_bytes}]")
    parts = [encode_header(MODE_STORED, params, version=version)]
    for start in range(0, len(data), block_bytes):
        chunk = data[start : start + block_bytes]
        parts.append(encode_block(len(chunk), len(chunk), block_crc32(chunk), chunk))
    parts.append(encode_end(len(data), hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()))
    return b"".join(parts)


def _encode_block_v2(mode: int, block: Block, with_crc: bool) -> bytes:
    """One v2 block: [n_symbols] n_bytes payload_len [crc32] payload (spec v2 section 4)."""
    _check_uint("n_symbols", block.n_symbols, _U32_MAX)
    _check_uint("n_bytes", block.n_bytes, _U32_MAX)
    _check_uint("crc32", block.crc32, _U32_MAX)
    _check_uint("payload_len", len(block.payload), _U32_MAX)
    if block.n_symbols == 0 or block.n_bytes == 0:
        raise ValueError("blocks must have n_symbols >= 1 and n_bytes >= 1")
    out = bytearray()
    if mode in MODEL_MODES:
        out += encode_varint(block.n_symbols)
    elif block.n_symbols != block.n_bytes:
        raise ValueError(f"mode {mode} ({mode_name(mode)}) blocks have n_symbols == n_bytes")
    out += encode_varint(block.n_bytes) + encode_varint(len(block.payload))
    if with_crc:
        out += _U32.pack(block.crc32)
    return bytes(out) + bytes(block.payload)


def encode_member(
    mode: int,
    params: CodecParams | None,
    data: bytes,
    blocks: list[Block],
    *,
    version: int = FORMAT_VERSION,
) -> bytes:
    """A complete archive (one member) of ``data`` in ``mode`` from its coded ``blocks``.

    The one writer of whole archives for modes 0, 2, 3 and 4 (mode 1: :func:`encode_stored`).
    Version 2 (the default) needs, in modes 0 and 2, ``params`` with the numeric check
    (``kernels`` and ``probe``) and writes no params in modes 3 and 4; version 1 writes what it
    always did (``params`` may be None in modes 3 and 4).
    """
    if mode == MODE_STORED:
        raise ValueError("stored archives come from encode_stored")
    data = bytes(data)
    if version == 1:
        parts = [encode_header(mode, params)]
        parts += [encode_block(b.n_symbols, b.n_bytes, b.crc32, b.payload) for b in blocks]
        parts.append(encode_end(len(data), hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()))
        return b"".join(parts)
    if version != 2:
        raise ValueError(f"this module writes container versions 1 and 2, not {version!r}")
    if mode == MODE_HYBRID and len(blocks) < 2:
        raise ValueError("a hybrid archive has a region table and at least one text block")
    if mode != MODE_HYBRID and sum(b.n_bytes for b in blocks) != len(data):
        raise ValueError("the blocks' n_bytes must add up to len(data)")
    if len(blocks) == 1 and blocks[0].crc32 != block_crc32(data):
        raise ValueError("the block's crc32 is not the CRC-32 of data")
    parts = [encode_header(mode, params, version=2, original_size=len(data)), encode_varint(len(blocks))]
    parts += [_encode_block_v2(mode, b, len(blocks) > 1) for b in blocks]
    parts.append(_U32.pack(block_crc32(data)))
    return b"".join(parts)


def verify_original(trailer: Trailer, data: bytes) -> None:
    """Check a member's decoded bytes against its end: the size, and the BLAKE2b-128 digest
    (version 1) or CRC-32 (version 2) of the whole original.  ChecksumError if they differ."""
    if trailer.check is not None:
        actual = block_crc32(data)
        if trailer.original_size != len(data) or trailer.check != actual:
            raise ChecksumError(block_index=None, expected=trailer.check, actual=actual)
        return
    digest = hashlib.blake2b(data, digest_size=DIGEST_SIZE)
    if trailer.original_size != len(data) or trailer.digest != digest.digest():
        raise ChecksumError(block_index=None, expected=trailer.digest.hex(), actual=digest.hexdigest())


def machine_bound_bytes(params: CodecParams | None, version: int = FORMAT_VERSION) -> int:
    """Header bytes that depend on the writing machine (its fingerprint): in version 1 key 15
    (2 + its length), in version 2 the fingerprint of a machine-bound archive (1 + its length);
    0 when none is written.  A mode chooser leaves them out so that its choice is the same on
    every machine."""
    if params is None or (version == 2 and params.kernels != KERNELS_MACHINE_BOUND):
        return 0
    text = params.fingerprint.encode("utf-8")
    if version == 1:
        return 2 + len(text) if text else 0
    return 1 + len(text)


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
        raise corrupt(f"{key.name.lower()} parameter is not valid UTF-8", part="archive header") from None


def _parse_params(mode: int, raw: bytes) -> CodecParams | None:
    values: dict[int, bytes] = {}
    pos = 0
    prev_key = 0
    while pos < len(raw):
        if pos + 2 > len(raw):
            raise corrupt(f"parameter entry at offset {pos} is cut off", part="archive header")
        key, length = raw[pos], raw[pos + 1]
        pos += 2
        if pos + length > len(raw):
            raise corrupt(
                f"parameter {key} claims {length} bytes but only {len(raw) - pos} remain in the parameter section",
                part="archive header",
            )
        value = raw[pos : pos + length]
        pos += length
        if key == 0:
            raise corrupt("parameter key 0 is invalid", part="archive header")
        if key <= prev_key:
            what = "duplicate" if key == prev_key else "out-of-order"
            raise corrupt(f"{what} parameter key {key} (keys must be strictly increasing)", part="archive header")
        prev_key = key
        if key not in _KEY_LENGTHS:
            raise UnsupportedVersionError(
                f"archive header uses parameter key {key}, unknown to this version of "
                "nacrith; it was written by a newer release — upgrade nacrith to read it"
            )
        expected = _KEY_LENGTHS[key]
        if expected is not None and length != expected:
            name = ParamKey(key).name.lower()
            raise corrupt(f"parameter {name} has {length} bytes, expected {expected}", part="archive header")
        values[key] = value

    if not values:
        if mode in MODEL_MODES:
            raise corrupt("model-coded archive has no codec parameters", part="archive header")
        return None
    missing = sorted(_REQUIRED_KEYS - values.keys())
    if missing:
        names = ", ".join(ParamKey(k).name.lower() for k in missing)
        raise corrupt(f"required parameter(s) missing: {names}", part="archive header")
    flash = values[ParamKey.FLASH_ATTN][0]
    if flash > 1:
        raise corrupt(f"flash_attn must be 0 or 1, got {flash}", part="archive header")
    backend = _text_param(values, ParamKey.BACKEND)
    fingerprint = _text_param(values, ParamKey.FINGERPRINT)
    kv = values[ParamKey.KV_TYPES]
    stream_tokens, window, slide, sinks = (
        _U32.unpack(values[k])[0]
        for k in (ParamKey.STREAM_TOKENS, ParamKey.WINDOW, ParamKey.SLIDE, ParamKey.SINKS)
    )
    problem = window_problem(stream_tokens, window, slide, sinks)
    if problem:
        raise corrupt(problem, part="archive header")
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


def _params_v2_missing(raw: bytes) -> int:
    """How many more bytes params_v2 needs after ``raw`` (its first bytes) before its structure
    says more, or 0 when ``raw`` is the whole field.  Only lengths are read here: nothing is
    interpreted before header_check has been verified (spec v2 section 6)."""
    n = len(raw)
    pos = 1  # model id
    if n < pos:
        return pos - n
    pos += 32 if raw[0] == 0 else _PRESET_PREFIX
    pos += 1  # override count
    if n < pos:
        return pos - n
    for _ in range(raw[pos - 1]):
        pos += 2  # key, len
        if n < pos:
            return pos - n
        pos += raw[pos - 1]
    pos += 1 + PROBE_SIZE  # kernels, probe
    if n < pos:
        return pos - n
    if raw[pos - 1 - PROBE_SIZE] == 0:  # machine-bound: the fingerprint follows
        pos += 1
        if n < pos:
            return pos - n
        pos += raw[pos - 1]
    return pos - n


def _parse_params_v2(raw: bytes) -> CodecParams:
    """params_v2 (whole, its header_check verified) expanded into explicit CodecParams."""

    def bad(problem: str) -> FormatError:
        return corrupt(problem, part="archive header")

    model_id = raw[0]
    pos = 1 + (32 if model_id == 0 else _PRESET_PREFIX)
    preset = None
    if model_id == 0:
        sha = raw[1:33]
        if sha in _PRESET_BY_SHA:
            raise bad(f"a custom model whose SHA-256 is that of preset {_PRESET_BY_SHA[sha].id} (a preset is named by its id)")
    else:
        preset = MODEL_PRESETS.get(model_id)
        if preset is None:
            raise UnsupportedVersionError(
                f"archive names model preset {model_id}, unknown to this version of nacrith "
                f"(known: {', '.join(f'{p.id} ({p.name})' for p in MODEL_PRESETS.values())}); "
                "upgrade nacrith to read it"
            )
        if raw[1:pos] != preset.sha256[:_PRESET_PREFIX]:
            raise bad(
                f"model preset {model_id} ({preset.name}) with SHA-256 prefix {raw[1:pos].hex()}, "
                f"but that preset's SHA-256 starts {preset.sha256[:_PRESET_PREFIX].hex()}"
            )
        sha = preset.sha256
    count = raw[pos]
    pos += 1
    values: dict[int, bytes] = {}
    prev_key = 0
    for _ in range(count):
        key, length = raw[pos], raw[pos + 1]
        value = raw[pos + 2 : pos + 2 + length]
        pos += 2 + length
        if key <= prev_key:
            what = "duplicate" if key == prev_key else "out-of-order"
            raise bad(f"{what} override key {key} (keys must be strictly increasing)")
        prev_key = key
        if key not in _V2_OVERRIDE_KEYS:
            if key in _V2_KEY_LENGTHS or key == 0:
                raise bad(f"key {key} is not an override in version 2")
            raise UnsupportedVersionError(
                f"archive header overrides parameter key {key}, unknown to this version of "
                "nacrith; it was written by a newer release — upgrade nacrith to read it"
            )
        expected = _V2_KEY_LENGTHS[key]
        if expected is not None and length != expected:
            raise bad(f"override {ParamKey(key).name.lower()} has {length} bytes, expected {expected}")
        values[key] = value
    if preset is None:
        missing = [k.name.lower() for k in (ParamKey.START_TOKEN, ParamKey.ESCAPE_TOKEN) if k not in values]
        if missing:
            raise bad(f"a custom model's header lacks {' and '.join(missing)}")
    stream_raw = values.get(ParamKey.STREAM_TOKENS)
    stream_tokens = _U32.unpack(stream_raw)[0] if stream_raw is not None else V2_DEFAULTS["stream_tokens"]
    if stream_tokens < 1:
        raise bad(f"stream_tokens must be >= 1, got {stream_tokens}")
    defaults = _v2_default_values(preset, stream_tokens)
    for key, value in values.items():
        if defaults.get(key) == value:
            raise bad(f"override {ParamKey(key).name.lower()} equals the version 2 default (it must be left out)")
    full = {**defaults, **values}
    kernels_code = raw[pos]
    probe = raw[pos + 1 : pos + 1 + PROBE_SIZE]
    pos += 1 + PROBE_SIZE
    if kernels_code not in _KERNEL_NAMES:
        raise UnsupportedVersionError(
            f"archive was written with kernel set {kernels_code}, unknown to this version of "
            "nacrith; upgrade nacrith to read it"
        )
    fingerprint = ""
    if kernels_code == 0:
        length = raw[pos]
        try:
            fingerprint = raw[pos + 1 : pos + 1 + length].decode("utf-8")
        except UnicodeDecodeError:
            raise bad("fingerprint is not valid UTF-8") from None
    flash = full[ParamKey.FLASH_ATTN][0]
    if flash > 1:
        raise bad(f"flash_attn must be 0 or 1, got {flash}")
    u32 = {k: _U32.unpack(full[k])[0] for k in (
        ParamKey.BLOCK_TOKENS, ParamKey.START_TOKEN, ParamKey.ESCAPE_TOKEN,
        ParamKey.WINDOW, ParamKey.SLIDE, ParamKey.SINKS,
    )}
    problem = window_problem(stream_tokens, u32[ParamKey.WINDOW], u32[ParamKey.SLIDE], u32[ParamKey.SINKS])
    if problem:
        raise bad(problem)
    kv = full[ParamKey.KV_TYPES]
    segments = full[ParamKey.SEGMENTS][0]
    if not 1 <= segments <= MAX_SEGMENTS:
        raise bad(f"segments must be in 1..{MAX_SEGMENTS}, got {segments}")
    level = full[ParamKey.LEVEL][0]
    if level == 0:
        raise bad("level must be in 1..255, got 0")
    calls = full[ParamKey.CALLS][0]
    if calls not in CALLS_NAMES:
        raise UnsupportedVersionError(
            f"archive was coded with model call scheme {calls}, unknown to this version of nacrith; "
            "upgrade nacrith to read it"
        )
    return CodecParams(
        model_sha256=sha,
        tokenizer=full[ParamKey.TOKENIZER][0],
        cdf_total_bits=full[ParamKey.CDF_TOTAL_BITS][0],
        block_tokens=u32[ParamKey.BLOCK_TOKENS],
        flash_attn=bool(flash),
        type_k=kv[0],
        type_v=kv[1],
        start_token=u32[ParamKey.START_TOKEN],
        escape_token=u32[ParamKey.ESCAPE_TOKEN],
        stream_tokens=stream_tokens,
        window=u32[ParamKey.WINDOW],
        slide=u32[ParamKey.SLIDE],
        sinks=u32[ParamKey.SINKS],
        fingerprint=fingerprint,
        ensemble=full[ParamKey.ENSEMBLE],
        kernels=_KERNEL_NAMES[kernels_code],
        probe=probe,
        segments=segments,
        level=level,
        calls=calls,
    )


def _check_mode(mode: int) -> None:
    if mode not in KNOWN_MODES:
        raise UnsupportedVersionError(
            f"archive uses coding mode {mode}, unknown to this version of nacrith "
            f"(known: {', '.join(f'{m} ({mode_name(m)})' for m in KNOWN_MODES)}); "
            "upgrade nacrith to read it"
        )


class MemberParser:
    """The framing of one archive member, parsed as its bytes come, without doing any I/O.

    The one parser of the container: :class:`ArchiveReader` pulls bytes from a file object
    into it, and :class:`nacrith.stream.NacrithDecompressor` pushes the bytes it is given (as
    ``lzma.decompress``, ``LZMAFile`` and ``LZMADecompressor`` share one decoder).  The driver
    asks :attr:`need` for the size of the next piece, and hands exactly that many bytes to
    :meth:`take`, which checks the piece and returns what it completed (a :class:`Header`, a
    ``(BlockHeader, payload)`` pair, a :class:`Trailer`) or None.  (A version 2 member of one
    block is the exception: the check after its payload is that block's CRC-32, so the take
    that reads it returns the block and sets :attr:`trailer` at once.)  The parser never asks
    for a byte past the trailer, so members can follow each other in one file.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.header: Header | None = None
        self.trailer: Trailer | None = None
        #: Bytes taken so far: the offset of the next piece in the member.
        self.offset = 0
        self.n_blocks = 0
        self.total_symbols = 0
        self.total_bytes = 0
        self._step = self._magic
        self._size = len(MAGIC)
        self._what = "magic number"
        self._kept = b""  # earlier pieces of the structure being parsed (header, block fields)
        self._fields: list[int] = []  # a block's varints read so far
        self._block: BlockHeader | None = None  # the block whose payload comes next
        # Version 2 only:
        self._original_size = 0  # from the header
        self._params_at = 0  # where params_v2 starts in the kept header
        self._declared = 0  # n_blocks
        self._held: bytes | None = None  # a single block's payload, held until the check
        self._stored_crc: int | None = 0  # running CRC-32 of a stored body (None: a piece skipped)

    @property
    def need(self) -> int:
        """Bytes the next piece takes (0 once the trailer is read)."""
        return self._size

    @property
    def what(self) -> str:
        """Which structure the next piece belongs to, as error messages name it."""
        return self._what

    @property
    def done(self) -> bool:
        return self.trailer is not None

    @property
    def in_payload(self) -> bool:
        """Whether the next piece is a block's payload (which ``nacrith info`` may skip)."""
        return self._step in (self._payload, self._v2_payload, self._stored_piece)

    def take(self, piece: bytes) -> Header | tuple[BlockHeader, bytes] | Trailer | None:
        """Parse the next piece (exactly :attr:`need` bytes); what it completed, or None."""
        if self.done or len(piece) != self._size:
            raise ValueError(f"the parser needs {self._size} bytes here, got {len(piece)}")
        self.offset += len(piece)
        return self._step(piece)

    def skip_payload(self) -> tuple[BlockHeader, None]:
        """Like :meth:`take` for a payload the driver read past without keeping it."""
        if not self.in_payload:
            raise ValueError("the next piece is not a payload")
        self.offset += self._size
        return self._step(None)

    def truncated(self, got: int) -> TruncatedError:
        """The error for input that ends ``got`` bytes into the next piece."""
        if self._step == self._magic:  # the driver has checked the bytes it got (check_start)
            if got == 0 and self.offset == 0:
                return TruncatedError("input is empty: not a nacrith archive; check that the right file was given")
            return TruncatedError("archive is truncated inside the magic number; " + _TRUNC_HINT)
        return TruncatedError(
            f"archive is truncated: it ends inside the {self._what} (offset {self.offset + got}, "
            f"{self._size - got} more byte(s) needed); " + _TRUNC_HINT
        )

    def _expect(self, step, size: int, what: str) -> None:
        self._step, self._size, self._what = step, size, what

    # -- header ------------------------------------------------------------

    def _magic(self, piece: bytes) -> None:
        check_start(piece)
        self._kept = piece
        self._expect(self._version, 1, "header")

    def _version(self, piece: bytes) -> None:
        version = piece[0]
        if version not in READ_VERSIONS:
            if version > max(READ_VERSIONS):
                raise UnsupportedVersionError(
                    f"archive uses container format version {version}, but this nacrith "
                    f"reads only versions {' and '.join(map(str, READ_VERSIONS))}; upgrade nacrith to read it"
                )
            raise corrupt(f"invalid format version {version}", part="archive header")
        self._kept += piece
        if version == 1:
            self._expect(self._fixed, _HEADER_FIXED.size - len(MAGIC) - 1, "header")
        else:
            self._expect(self._v2_mode, 1, "header")

    def _fixed(self, piece: bytes) -> None:
        _, _, _, params_len = _HEADER_FIXED.unpack(self._kept + piece)
        self._kept += piece
        self._expect(self._params, params_len, "header parameters")
        if params_len == 0:
            self._params(b"")

    def _params(self, piece: bytes) -> None:
        self._kept += piece
        self._expect(self._header_crc, 4, "header checksum")

    def _header_crc(self, piece: bytes) -> Header:
        head = self._kept
        (stored_crc,) = _U32.unpack(piece)
        actual_crc = zlib.crc32(head) & 0xFFFFFFFF
        if stored_crc != actual_crc:
            raise corrupt(
                f"CRC-32 mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x})", part="archive header"
            )
        mode = head[5]
        _check_mode(mode)
        params = _parse_params(mode, head[_HEADER_FIXED.size :])
        self.header = Header(version=head[4], mode=mode, params=params, size=len(head) + 4)
        self._block_fields()
        return self.header

    # -- version 2 (formats/container-v2.md) --------------------------------

    def _v2_mode(self, piece: bytes) -> None:
        _check_mode(piece[0])
        self._kept += piece
        self._expect(self._v2_size, 1, "original size")

    def _v2_size(self, piece: bytes) -> Header | None:
        self._kept += piece
        parsed = read_varint(self._kept, 6, self._what, bits=64)
        if parsed is None:
            return None  # the varint goes on
        size = parsed[0]
        if size > self.limits.max_total_bytes:
            raise LimitError(
                f"archive declares {size} original bytes, above the limit of "
                f"{self.limits.max_total_bytes}; the archive is corrupt or hostile — if it is trusted, raise the limit"
            )
        self._original_size = size
        if self._kept[5] in MODEL_MODES:
            self._params_at = len(self._kept)
            self._expect(self._v2_params, _params_v2_missing(b""), "header parameters")
            return None
        return self._v2_header_done(None, len(self._kept))

    def _v2_params(self, piece: bytes) -> None:
        self._kept += piece
        missing = _params_v2_missing(self._kept[self._params_at :])
        if missing:
            self._expect(self._v2_params, missing, "header parameters")
        else:
            self._expect(self._v2_header_check, _U16.size, "header check")

    def _v2_header_check(self, piece: bytes) -> Header:
        (stored,) = _U16.unpack(piece)
        actual = zlib.crc32(self._kept) & 0xFFFF
        if stored != actual:
            raise corrupt(
                f"header_check mismatch (stored {stored:#06x}, computed {actual:#06x})", part="archive header"
            )
        params = _parse_params_v2(self._kept[self._params_at :])
        return self._v2_header_done(params, len(self._kept) + _U16.size)

    def _v2_header_done(self, params: CodecParams | None, size: int) -> Header:
        mode = self._kept[5]
        self.header = Header(version=2, mode=mode, params=params, size=size, original_size=self._original_size)
        self._kept = b""
        if mode == MODE_STORED:
            self._stored_next()
        else:
            self._expect(self._v2_count, 1, "block count")
        return self.header

    def _stored_next(self) -> None:
        remaining = self._original_size - self.total_bytes
        if remaining:
            self._expect(self._stored_piece, min(remaining, _STORED_PIECE), "stored bytes")
        else:
            self._expect(self._v2_check, 4, "check")

    def _stored_piece(self, piece: bytes | None) -> tuple[BlockHeader, bytes | None]:
        n = self._size
        crc = None
        if piece is None:
            self._stored_crc = None  # read past: the body cannot be checked here
        else:
            crc = block_crc32(piece)
            if self._stored_crc is not None:
                self._stored_crc = zlib.crc32(piece, self._stored_crc) & 0xFFFFFFFF
        bh = BlockHeader(n, n, n, crc)
        self._count_block(bh)
        self._stored_next()
        return bh, piece

    def _v2_count(self, piece: bytes) -> None:
        self._kept += piece
        parsed = read_varint(self._kept, 0, self._what, self.offset - len(self._kept))
        if parsed is None:
            return
        self._kept = b""
        self._declared = parsed[0]
        if self.header.mode == MODE_HYBRID and self._declared < 2:
            raise corrupt(
                f"hybrid archive declares {self._declared} block(s); it needs a region table and text blocks"
            )
        self._v2_next_block()

    def _v2_next_block(self) -> None:
        self._fields = []
        if self.n_blocks == self._declared:
            self._expect(self._v2_check, 4, "check")
        else:
            self._expect(self._v2_field, 1, f"header of block {self.n_blocks}")

    def _v2_field(self, piece: bytes) -> Trailer | None:
        if not self._field_byte(piece):
            return None  # the varint goes on
        if self.header.mode in MODEL_MODES:
            if len(self._fields) < 3:
                return None
            n_symbols, n_bytes, payload_len = self._fields
        else:  # modes 3 and 4: n_symbols is n_bytes
            if len(self._fields) < 2:
                return None
            n_bytes, payload_len = self._fields
            n_symbols = n_bytes
        if self._declared > 1:
            self._fields = [n_symbols, n_bytes, payload_len]
            self._expect(self._v2_block_crc, 4, f"CRC-32 of block {self.n_blocks}")
            return None
        return self._v2_block_ready(BlockHeader(n_symbols, n_bytes, payload_len, None))

    def _v2_block_crc(self, piece: bytes) -> tuple[BlockHeader, bytes] | None:
        n_symbols, n_bytes, payload_len = self._fields
        return self._v2_block_ready(BlockHeader(n_symbols, n_bytes, payload_len, _U32.unpack(piece)[0]))

    def _v2_block_ready(self, bh: BlockHeader):
        self._block = bh
        self._check_block(self.n_blocks, bh)
        self._expect(self._v2_payload, bh.payload_len, f"payload of block {self.n_blocks}")
        if bh.payload_len == 0:
            return self._v2_payload(b"")
        return None

    def _v2_payload(self, piece: bytes | None) -> tuple[BlockHeader, bytes | None] | None:
        bh = self._block
        if bh.crc32 is None:  # the only block: its CRC-32 is the archive's check, which follows
            self._held = piece
            self._expect(self._v2_check, 4, "check")
            return None
        self._count_block(bh)
        self._v2_next_block()
        return bh, piece

    def _v2_check(self, piece: bytes) -> Trailer | tuple[BlockHeader, bytes | None]:
        (check,) = _U32.unpack(piece)
        mode = self.header.mode
        single = None
        if self._block is not None and self._block.crc32 is None:
            bh = dataclasses.replace(self._block, crc32=check)
            self._count_block(bh)
            single = (bh, self._held)
            self._held = None
        if mode != MODE_HYBRID and self.total_bytes != self._original_size:
            raise corrupt(
                f"the header says {self._original_size} original bytes but the blocks hold {self.total_bytes}"
            )
        if mode == MODE_STORED and self._stored_crc is not None and self._stored_crc != check:
            raise ChecksumError(block_index=None, expected=check, actual=self._stored_crc)
        self.trailer = Trailer(original_size=self._original_size, digest=b"", check=check)
        self._expect(None, 0, "end")
        return single if single is not None else self.trailer

    def _count_block(self, bh: BlockHeader) -> None:
        self.n_blocks += 1
        self.total_symbols += bh.n_symbols
        self.total_bytes += bh.n_bytes

    # -- blocks ------------------------------------------------------------

    def _block_fields(self) -> None:
        self._kept, self._fields = b"", []
        self._expect(self._varint_byte, 1, f"header of block {self.n_blocks}")

    def _field_byte(self, piece: bytes) -> bool:
        """Take one more byte of a block field's varint; True once the field is complete
        (its value appended to ``_fields``)."""
        self._kept += piece
        parsed = read_varint(self._kept, 0, self._what, self.offset - len(self._kept))
        if parsed is None:
            return False
        self._kept = b""
        self._fields.append(parsed[0])
        return True

    def _varint_byte(self, piece: bytes) -> Trailer | None:
        if not self._field_byte(piece):
            return None  # the varint goes on
        if self._fields == [0]:  # the end marker
            self._expect(self._trailer, _TRAILER.size, "trailer")
        elif len(self._fields) == 3:
            self._size = 4  # the block's CRC-32
            self._step = self._block_crc
        return None

    def _block_crc(self, piece: bytes) -> None:
        n_symbols, n_bytes, payload_len = self._fields
        self._block = BlockHeader(n_symbols, n_bytes, payload_len, _U32.unpack(piece)[0])
        self._check_block(self.n_blocks, self._block)
        self._expect(self._payload, payload_len, f"payload of block {self.n_blocks}")
        if payload_len == 0:
            return self._payload(b"")
        return None

    def _payload(self, piece: bytes | None) -> tuple[BlockHeader, bytes | None]:
        bh = self._block
        self._count_block(bh)
        self._block_fields()
        return bh, piece

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
            raise corrupt(f"block {index} has symbols but produces no bytes")
        mode = self.header.mode
        if self.header.version == 2:
            if bh.n_symbols == 0:
                raise corrupt(f"block {index} has no symbols")
            if mode != MODE_HYBRID and self.total_bytes + bh.n_bytes > self._original_size:
                raise corrupt(
                    f"block {index} goes past the {self._original_size} original bytes the header declares"
                )
        if mode == MODE_STORED and not bh.n_symbols == bh.n_bytes == bh.payload_len:
            raise corrupt(
                f"stored block {index} has inconsistent sizes (n_symbols={bh.n_symbols}, "
                f"n_bytes={bh.n_bytes}, payload_len={bh.payload_len})"
            )
        if mode in (MODE_ZSTD, MODE_BYTECM) and bh.n_symbols != bh.n_bytes:
            raise corrupt(
                f"{mode_name(mode)} block {index} has n_symbols={bh.n_symbols} but "
                f"n_bytes={bh.n_bytes} (they must be equal)"
            )

    # -- trailer -----------------------------------------------------------

    def _trailer(self, raw: bytes) -> Trailer:
        original_size, digest, stored_crc = _TRAILER.unpack(raw)
        actual_crc = zlib.crc32(raw[: _TRAILER_BODY.size]) & 0xFFFFFFFF
        if stored_crc != actual_crc:
            raise corrupt(
                f"CRC-32 mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x})", part="archive trailer"
            )
        # In hybrid mode the blocks hold the region table and the two sections; the decoder
        # checks original_size against the region table.
        if original_size != self.total_bytes and self.header.mode != MODE_HYBRID:
            raise corrupt(
                f"trailer says {original_size} original bytes but the blocks add up to {self.total_bytes}"
            )
        self.trailer = Trailer(original_size=original_size, digest=digest)
        self._expect(None, 0, "end")
        return self.trailer


def check_start(head: bytes) -> None:
    """Refuse input whose first bytes (``head``, up to four) are not the magic number's."""
    if head != MAGIC[: len(head)]:
        raise FormatError(
            f"not a nacrith archive: the input starts with {bytes(head).hex()}, expected "
            f"{MAGIC.hex()} (\"\\x89NCR\"); check that the right file was given"
        )


def trailing_data(offset: int, head: bytes) -> FormatError:
    """The error for bytes after a complete member that do not start another member."""
    return FormatError(
        f"unexpected trailing data at offset {offset} after a complete archive "
        f"(starts with {bytes(head).hex()}, not another nacrith archive); the archive "
        "before it is intact — remove the extra bytes"
    )


class ArchiveReader:
    """Incremental reader of one archive member from a binary file object.

    The header is parsed (and its CRC verified) on construction.  Iterate
    :meth:`blocks` (or :meth:`block_headers`) once to the end; afterwards
    :attr:`trailer` holds the verified trailer and the file object is
    positioned right after it.  Running totals (``n_blocks``,
    ``total_symbols``, ``total_bytes``, ``bytes_read``) are updated as blocks
    are read.  The parsing is :class:`MemberParser`'s; this class reads.

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
        self._parser = MemberParser(limits)
        self._iterating = False
        head = self._read_some(len(MAGIC))
        check_start(head)  # a wrong first byte is not a truncation, however short the input
        self.header: Header = self._next(head)

    @property
    def bytes_read(self) -> int:
        return self._parser.offset

    @property
    def n_blocks(self) -> int:
        return self._parser.n_blocks

    @property
    def total_symbols(self) -> int:
        return self._parser.total_symbols

    @property
    def total_bytes(self) -> int:
        return self._parser.total_bytes

    @property
    def trailer(self) -> Trailer | None:
        return self._parser.trailer

    # -- reading -----------------------------------------------------------

    def _read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes (prefix first); fewer only at end of input."""
        head = b""
        if self._prefix:
            head, self._prefix = self._prefix[:n], self._prefix[n:]
        rest = _read_upto(self._f, n - len(head)) if len(head) < n else b""
        return head + rest

    def _next(self, piece: bytes | None = None, skip_payloads: bool = False):
        """Feed the parser until it completes a structure; return that structure."""
        parser = self._parser
        while True:
            if piece is None:
                if skip_payloads and parser.in_payload:
                    self._skip(parser.need)
                    return parser.skip_payload()
                piece = self._read_some(parser.need)
            if len(piece) < parser.need:
                raise parser.truncated(len(piece))
            parsed = parser.take(piece)
            if parsed is not None:
                return parsed
            piece = None

    def _skip(self, n: int) -> None:
        """Read past ``n`` payload bytes without keeping them (memory bounded by the read chunk)."""
        remaining = n
        while remaining:
            got = len(self._read_some(min(remaining, _READ_CHUNK)))
            if got == 0:
                raise self._parser.truncated(n - remaining)
            remaining -= got

    # -- blocks ------------------------------------------------------------

    def blocks(self) -> Iterator[tuple[BlockHeader, bytes]]:
        """Yield ``(BlockHeader, payload)`` for each block, then read the trailer."""
        self._start()
        return self._iter(skip_payloads=False)  # type: ignore[return-value]

    def block_headers(self) -> Iterator[BlockHeader]:
        """Like :meth:`blocks` but skips payloads (for ``nacrith info``)."""
        self._start()
        return (bh for bh, _ in self._iter(skip_payloads=True))

    def _start(self) -> None:
        if self._iterating:
            raise RuntimeError("ArchiveReader blocks can be iterated only once")
        self._iterating = True

    def _iter(self, skip_payloads: bool) -> Iterator[tuple[BlockHeader, bytes | None]]:
        while not self._parser.done:
            parsed = self._next(skip_payloads=skip_payloads)
            if isinstance(parsed, tuple):
                bh, payload = parsed
                yield bh, None if skip_payloads else payload


def iter_members(
    fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS
) -> Iterator[ArchiveReader]:
    """Yield a reader for each archive in a concatenation of archives.

    The one loop over members: the one-shot decoder, the file objects, the command line and
    ``nacrith info`` all go through it.  Each yielded reader must be iterated to its end
    before the next one is requested.  Trailing bytes that do not start a new archive raise
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
            raise trailing_data(offset, head)
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
        if h.version >= 2:
            preset = _PRESET_BY_SHA.get(bytes(p.model_sha256))
            rows.append(("model", f"preset {preset.id} ({preset.name})" if preset else "custom"))
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
            ("segments", f"{p.segments} per stream"),
            ("level", level_name(p.level)),
            ("model calls", CALLS_NAMES[p.calls]),
            ("ensemble", p.ensemble.hex() if p.ensemble else "off (the LLM alone)"),
        ]
        if h.version == 1:
            rows.append(("backend", p.backend or "(not recorded)"))
        else:
            rows += [("kernels", p.kernels), ("numeric probe", p.probe.hex())]
        if h.version == 1 or p.kernels == KERNELS_MACHINE_BOUND:
            rows.append(("fingerprint", p.fingerprint or "(not recorded)"))
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
    ]
    if info.trailer.check is not None:
        rows.append(("crc-32", f"{info.trailer.check:08x}"))
    else:
        rows.append(("blake2b-128", info.trailer.digest.hex()))
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in rows)
