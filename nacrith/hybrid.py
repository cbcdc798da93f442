"""Archives for any file: text through the model, binary through bytecm or zstd, never much worse than zstd.

``compress`` segments the input (:mod:`nacrith.segment`) and writes the smallest of

* a **model** archive (mode 0) when the whole input is one UTF-8 text region;
* a **hybrid** archive (mode 2) when it has text and binary regions, or text in another
  encoding: block 0 holds the region table, the next blocks the binary regions as zstd
  frames or as one bytecm stream (whichever is smaller), the rest the UTF-8 form of all text
  regions, model-coded exactly as in mode 0;
* a **zstd** archive (mode 3): the whole input as zstd frames, level 19;
* a **bytecm** archive (mode 4): the whole input as one stream of :mod:`nacrith.bytecm`, the
  bitwise context-mixing coder, for inputs up to ``BYTECM_MAX_BYTES``;
* a **stored** archive (mode 1).

So every archive is at most the zstd archive, which is ``zstd -19`` of the input plus 48 to
57 bytes of framing (for inputs up to ``ZSTD_BLOCK_BYTES``), and at most the stored archive,
which is the input plus 41 bytes and 7 to 11 per MiB.  Input with less than
``MIN_MODEL_TEXT`` bytes of text (random data, JPEG, zeros) never reaches the model.  The
byte layouts are specified in ``formats/container-v1.md`` (sections 4.2 and 4.3); the decoder
never segments anything, it reads the region table.

zstd settings, measured here with the zstd 1.5 command line (bytes):

=======================  =========  ===============  =========
input                    ``-19``    ``-19 --long=27`` ``--ultra -22``
=======================  =========  ===============  =========
geo.protodata (118 KB)   12,180     12,175            12,151
html (100 KB)            12,409     12,410            12,403
40 MB tar of Python pkgs 10,184,330 9,932,333 (-2.5 %) —
=======================  =========  ===============  =========

Level 22 gains 0.2 % for a 128 MiB decoder window, so binary data gets level 19.  Long-
distance matching only matters beyond level 19's 8 MiB window, so the hybrid mode's binary
section turns it on (window 2^27) when it exceeds 8 MiB; the zstd mode stays plain level 19,
the reference of the guarantee.  Binary regions are coded as **one** stream, the concatenation
of all of them, so they share history: on geo.protodata (438 binary regions between text)
one stream took 9,912 bytes, a frame per region would pay a frame header (6+ bytes) per
region and lose every match across regions.

bytecm against zstd -19 and xz -9e, measured here with ``docs/bench_bytecm.py`` (bytes;
bytecm version 2, which ``compress`` writes, and version 1; speed on one core of a quiet
2-core machine, encode and decode alike; the tar is of this version's ``nacrith/``):

=======================  =========  =========  =========  =========  ==========
input                    bytecm v2  bytecm v1  xz -9e     zstd -19   v2 MB/s
=======================  =========  =========  =========  =========  ==========
geo.protodata (118 KB)   10,434     11,061     11,912     12,176     0.15
html (100 KB)            9,621      9,962      12,036     12,407     0.19
urls.10K (702 KB)        127,339    133,270    150,232    159,082    0.19
fireworks.jpeg (123 KB)  121,028    120,991    123,160    123,108    0.12
tar of nacrith/ (420 KB) 77,380     82,293     100,000    101,783    0.18
=======================  =========  =========  =========  =========  ==========

bytecm runs at one to two hundred KB/s (zstd -19 at about 2 MB/s here), so it is tried only
on inputs (or binary sections) of at most ``BYTECM_MAX_BYTES``: 16 MiB, about 100 s; the
command line streams files in 8 MiB members, so every member of a large file still gets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import zstandard

from . import bytecm, codec, container, segment
from .errors import ChecksumError, FormatError, LimitError, UnsupportedVersionError
from .segment import Kind

ZSTD_LEVEL = 19
#: Binary sections longer than this use long-distance matching with a 2^27 window.
LONG_ABOVE = 8 << 20
LONG_WINDOW_LOG = 27
#: Original bytes per zstd frame (one block each); within the default reader limits.
ZSTD_BLOCK_BYTES = 32 << 20
#: bytecm is tried on inputs (and mode 2 binary sections) of at most this many bytes; it codes
#: them as one block, and the decoder refuses larger bytecm blocks (time), as a limit error.
BYTECM_MAX_BYTES = 16 << 20
#: The decoder refuses zstd frames that need a larger window (memory), as a limit error.
MAX_WINDOW_LOG = 27
#: Less text than this is not worth loading the model for: its header alone is ~130 bytes,
#: and the model saves well under half a byte per byte of text over zstd.  Random data
#: (and JPEG) has a few chance text regions of 30-40 bytes per 100 KB.
MIN_MODEL_TEXT = 256
#: Model archives carry an environment fingerprint (container key 15) of at most this many
#: bytes (key, length, value under 40 bytes; see nacrith.fingerprint).  The comparison charges
#: every model archive this allowance in place of its own fingerprint, so the choice is the
#: same on every machine and never exceeds the zstd or stored archive.
FINGERPRINT_ALLOWANCE = 2 + 40

_RESTORE_HINT = "the archive is damaged; restore it from a good copy"
_U32_MAX = 0xFFFFFFFF


# -- region table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One region of the table: its kind, original length and (text) UTF-8 length."""

    kind: Kind
    length: int
    utf8_length: int  # 0 for binary regions


@dataclass(frozen=True)
class Table:
    binary_blocks: int
    entries: tuple[Entry, ...]
    #: The binary section is one bytecm stream (its regions are stored with code
    #: ``BYTECM_BINARY_CODE``) instead of zstd frames.
    bytecm: bool = False


#: Region table code of a binary region when the binary section is coded with bytecm (section
#: 4.2); older decoders reject it as an unknown region kind, i.e. as unsupported.
BYTECM_BINARY_CODE = 5


def _varint(value: int) -> bytes:
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"varint value {value} outside u32")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    """A minimal LEB128 u32 at ``pos`` (spec section 1); returns (value, next position)."""
    value = 0
    for i in range(5):
        if pos + i >= len(raw):
            raise FormatError("corrupt archive: the region table ends inside a varint; " + _RESTORE_HINT)
        byte = raw[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if (byte == 0 and i > 0) or value > _U32_MAX:
                break
            return value, pos + i + 1
    raise FormatError("corrupt archive: malformed varint in the region table; " + _RESTORE_HINT)


def encode_table(table: Table) -> bytes:
    out = bytearray(_varint(table.binary_blocks))
    for e in table.entries:
        out.append(BYTECM_BINARY_CODE if table.bytecm and e.kind == Kind.BINARY else e.kind)
        out += _varint(e.length)
        if e.kind in segment.TRANSCODED:
            out += _varint(e.utf8_length)
    return bytes(out)


def parse_table(raw: bytes, n_regions: int, limits: container.Limits) -> Table:
    """Parse and check a region table of ``n_regions`` entries (section 4.2)."""
    binary_blocks, pos = _read_varint(raw, 0)
    entries = []
    total = 0
    codes = set()
    for index in range(n_regions):
        if pos >= len(raw):
            raise FormatError(
                f"corrupt archive: the region table holds fewer than the {n_regions} regions "
                "block 0 declares; " + _RESTORE_HINT
            )
        code = raw[pos]
        codes.add(code)
        if code == BYTECM_BINARY_CODE:
            code = Kind.BINARY
        elif code not in Kind._value2member_map_:
            raise UnsupportedVersionError(
                f"archive uses region kind {code}, unknown to this version of nacrith; upgrade nacrith to read it"
            )
        kind = Kind(code)
        length, pos = _read_varint(raw, pos + 1)
        utf8_length = 0
        if kind in segment.TRANSCODED:
            utf8_length, pos = _read_varint(raw, pos)
        elif kind == Kind.UTF8:
            utf8_length = length
        if length == 0 or (kind != Kind.BINARY and utf8_length == 0):
            raise FormatError(f"corrupt archive: region {index} is empty; " + _RESTORE_HINT)
        if kind in (Kind.UTF16LE, Kind.UTF16BE) and length % 2:
            raise FormatError(f"corrupt archive: UTF-16 region {index} has an odd length; " + _RESTORE_HINT)
        total += length
        if total > limits.max_total_bytes:
            raise LimitError(
                f"the region table declares more than {limits.max_total_bytes} original bytes "
                "(the configured limit); if the archive is trusted, raise the limit"
            )
        entries.append(Entry(kind, length, utf8_length))
    if pos != len(raw):
        raise FormatError(
            f"corrupt archive: {len(raw) - pos} unexpected byte(s) after the region table; " + _RESTORE_HINT
        )
    if not any(e.kind != Kind.BINARY for e in entries):
        raise FormatError("corrupt archive: a hybrid archive without text regions; " + _RESTORE_HINT)
    if Kind.BINARY in codes and BYTECM_BINARY_CODE in codes:
        raise FormatError(
            "corrupt archive: the region table mixes zstd (kind 0) and bytecm (kind 5) binary regions; "
            + _RESTORE_HINT
        )
    return Table(binary_blocks, tuple(entries), BYTECM_BINARY_CODE in codes)


# -- zstd -----------------------------------------------------------------------------------


def _compressor(size: int, long: bool) -> zstandard.ZstdCompressor:
    if long and size > LONG_ABOVE:
        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, source_size=size, enable_ldm=True, window_log=LONG_WINDOW_LOG
        )
        return zstandard.ZstdCompressor(compression_params=params)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL)


def zstd_blocks(data: bytes, *, long: bool = False) -> list[bytes]:
    """Serialized blocks of ``data``: one zstd frame (with its content size) per block."""
    cctx = _compressor(len(data), long)
    blocks = []
    for start in range(0, len(data), ZSTD_BLOCK_BYTES):
        chunk = data[start : start + ZSTD_BLOCK_BYTES]
        blocks.append(container.encode_block(len(chunk), len(chunk), container.block_crc32(chunk), cctx.compress(chunk)))
    return blocks


def unzstd_block(index: int, bh: container.BlockHeader, payload: bytes) -> bytes:
    """The ``n_bytes`` original bytes of one zstd block, checked (memory bounded by n_bytes)."""
    try:
        frame = zstandard.get_frame_parameters(payload)
    except zstandard.ZstdError as exc:
        raise FormatError(f"corrupt archive: block {index} is not a zstd frame ({exc}); " + _RESTORE_HINT) from None
    if frame.content_size != bh.n_bytes:
        raise FormatError(
            f"corrupt archive: the zstd frame of block {index} does not declare the block's "
            f"{bh.n_bytes} bytes; " + _RESTORE_HINT
        )
    if frame.window_size > 1 << MAX_WINDOW_LOG:
        raise LimitError(
            f"the zstd frame of block {index} needs a {frame.window_size}-byte window, above the "
            f"limit of {1 << MAX_WINDOW_LOG}; the archive is corrupt or hostile"
        )
    try:
        dctx = zstandard.ZstdDecompressor(max_window_size=1 << MAX_WINDOW_LOG)
        raw = dctx.decompress(payload, max_output_size=bh.n_bytes, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise FormatError(f"corrupt archive: the zstd frame of block {index} is damaged ({exc}); " + _RESTORE_HINT) from None
    actual = container.block_crc32(raw)
    if len(raw) != bh.n_bytes or actual != bh.crc32:
        raise ChecksumError(block_index=index, expected=bh.crc32, actual=actual)
    return raw


# -- bytecm ---------------------------------------------------------------------------------


def bytecm_blocks(data: bytes, version: int = bytecm.VERSION) -> list[bytes] | None:
    """``data`` as one bytecm block (none if empty); None if it is too large for bytecm or
    bytecm would expand it.  ``version`` other than the default is for golden files."""
    if not data:
        return []
    if len(data) > BYTECM_MAX_BYTES:
        return None
    payload = bytecm.compress(data, version=version)
    if payload is None:
        return None
    return [container.encode_block(len(data), len(data), container.block_crc32(data), payload)]


def unbytecm_block(index: int, bh: container.BlockHeader, payload: bytes) -> bytes:
    """The ``n_bytes`` original bytes of one bytecm block, checked (time and memory bounded)."""
    if bh.n_bytes > BYTECM_MAX_BYTES:
        raise LimitError(
            f"bytecm block {index} declares {bh.n_bytes} bytes, above the limit of "
            f"{BYTECM_MAX_BYTES}; the archive is corrupt or hostile"
        )
    raw = bytecm.decompress(payload, bh.n_bytes)  # FormatError, UnsupportedVersionError
    actual = container.block_crc32(raw)
    if actual != bh.crc32:
        raise ChecksumError(block_index=index, expected=bh.crc32, actual=actual)
    return raw


def _whole_file_archive(mode: int, data: bytes, blocks: list[bytes]) -> bytes:
    """A complete archive of one mode whose blocks code ``data`` (no parameters)."""
    digest = container.new_digest()
    digest.update(data)
    parts = [container.encode_header(mode, None), *blocks]
    parts.append(container.encode_end(len(data), digest.digest()))
    return b"".join(parts)


def _decode_blocks(reader: container.ArchiveReader, unblock, progress: codec.Progress | None):
    """The original bytes of a whole-file zstd or bytecm archive, block by block."""
    for index, (bh, payload) in enumerate(reader.blocks()):
        yield unblock(index, bh, payload)
        if progress:
            progress(bh.n_symbols)


def bytecm_archive(data: bytes, version: int = bytecm.VERSION) -> bytes | None:
    """A complete mode 4 archive of ``data``, or None when bytecm is not tried or expands it."""
    blocks = bytecm_blocks(data, version)
    return None if blocks is None else _whole_file_archive(container.MODE_BYTECM, data, blocks)


def decode_bytecm(reader: container.ArchiveReader, progress: codec.Progress | None = None):
    """The original bytes of a mode 4 archive, block by block."""
    return _decode_blocks(reader, unbytecm_block, progress)


def zstd_archive(data: bytes) -> bytes:
    """A complete mode 3 archive: ``data`` as plain level-19 zstd frames."""
    return _whole_file_archive(container.MODE_ZSTD, data, zstd_blocks(data))


def decode_zstd(reader: container.ArchiveReader, progress: codec.Progress | None = None):
    """The original bytes of a mode 3 archive, block by block."""
    return _decode_blocks(reader, unzstd_block, progress)


# -- hybrid archives ------------------------------------------------------------------------


def hybrid_archive(
    engine: codec.Engine,
    data: bytes,
    regions: list[segment.Region],
    *,
    layout: codec.Layout,
    numeric: codec.NumericConfig,
    progress: codec.Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> bytes | None:
    """A mode 2 archive of ``data`` cut into ``regions``; None if the model cannot code its text."""
    entries, texts, binary = [], [], []
    for r in regions:
        raw = data[r.start : r.end]
        utf8 = None if r.kind == Kind.BINARY else segment.to_utf8(raw, r.kind)
        if utf8 is None:  # binary, or (never for segment's output) text that does not round-trip
            entries.append(Entry(Kind.BINARY, len(raw), 0))
            binary.append(raw)
        else:
            entries.append(Entry(r.kind, len(raw), len(utf8)))
            texts.append(utf8)
    model_blocks = codec.model_blocks(
        engine, b"".join(texts), layout=layout, numeric=numeric, progress=progress, on_total=on_total
    )
    if model_blocks is None:
        return None
    section = b"".join(binary)
    binary_blocks = zstd_blocks(section, long=True)
    cm_blocks = bytecm_blocks(section)
    use_cm = cm_blocks is not None and sum(map(len, cm_blocks)) < sum(map(len, binary_blocks))
    if use_cm:
        binary_blocks = cm_blocks
    table = encode_table(Table(len(binary_blocks), tuple(entries), use_cm))
    table_frame = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(table)
    digest = container.new_digest()
    digest.update(data)
    return b"".join(
        [
            container.encode_header(container.MODE_HYBRID, engine.params(layout, numeric)),
            container.encode_block(len(entries), len(table), container.block_crc32(table), table_frame),
            *binary_blocks,
            *model_blocks,
            container.encode_end(len(data), digest.digest()),
        ]
    )


@dataclass
class Sections:
    """A hybrid archive read and checked up to its model-coded text (which needs the model)."""

    table: Table
    binary: bytes
    model_blocks: list  # [(BlockHeader, payload)] in archive order
    first_model_block: int  # archive index of model_blocks[0]

    def assemble(self, text: bytes) -> bytes:
        """The original bytes from the decoded UTF-8 text of all text regions."""
        out = bytearray()
        b = t = 0
        for index, e in enumerate(self.table.entries):
            if e.kind == Kind.BINARY:
                out += self.binary[b : b + e.length]
                b += e.length
                continue
            piece = text[t : t + e.utf8_length]
            t += e.utf8_length
            try:
                raw = segment.from_utf8(piece, e.kind)
            except UnicodeError:
                raw = None
            if raw is None or len(raw) != e.length:
                raise FormatError(
                    f"corrupt archive: text region {index} does not convert back to its "
                    f"{e.length} original bytes; " + _RESTORE_HINT
                )
            out += raw
        return bytes(out)


def read_sections(reader: container.ArchiveReader) -> Sections:
    """Read a mode 2 archive's blocks and trailer and check every size before any model work."""
    blocks = reader.blocks()
    first = next(blocks, None)
    if first is None:
        raise FormatError("corrupt archive: a hybrid archive without its region table (block 0); " + _RESTORE_HINT)
    bh, payload = first
    table = parse_table(unzstd_block(0, bh, payload), bh.n_symbols, reader.limits)
    binary = bytearray()
    for index in range(1, table.binary_blocks + 1):
        block = next(blocks, None)
        if block is None:
            raise FormatError(
                f"corrupt archive: the region table announces {table.binary_blocks} binary block(s), "
                f"but only {index - 1} follow; " + _RESTORE_HINT
            )
        bh, payload = block
        if bh.n_symbols != bh.n_bytes:
            raise FormatError(f"corrupt archive: binary block {index} has n_symbols != n_bytes; " + _RESTORE_HINT)
        binary += (unbytecm_block if table.bytecm else unzstd_block)(index, bh, payload)
    model_blocks = list(blocks)  # also reads and checks the trailer
    for what, declared, actual in (
        ("binary", sum(e.length for e in table.entries if e.kind == Kind.BINARY), len(binary)),
        ("text", sum(e.utf8_length for e in table.entries), sum(bh.n_bytes for bh, _ in model_blocks)),
        ("original", sum(e.length for e in table.entries), reader.trailer.original_size),
    ):
        if declared != actual:
            raise FormatError(
                f"corrupt archive: the region table declares {declared} {what} bytes, but the "
                f"archive holds {actual}; " + _RESTORE_HINT
            )
    return Sections(table, bytes(binary), model_blocks, 1 + table.binary_blocks)


# -- choosing the archive -------------------------------------------------------------------


def compress(
    engine: codec.Engine | None,
    data: bytes,
    *,
    layout: codec.Layout = codec.Layout(),
    numeric: codec.NumericConfig = codec.NumericConfig(),
    progress: codec.Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    fallback: bool = True,
    rules: segment.Rules = segment.DEFAULT_RULES,
) -> bytes:
    """The smallest archive of ``data`` (see the module docstring).

    With ``fallback=False`` a model or hybrid archive is returned whenever the input has text
    the model can code, however little, even if zstd or stored would be smaller (golden files that pin the model's
    bitstream use this).  ``engine`` may be None for input without text.
    """
    data = bytes(data)
    regions = segment.segment(data, rules)
    model_archive = None
    if segment.text_bytes(regions) >= (MIN_MODEL_TEXT if fallback else 1):
        if engine is None:
            raise ValueError("this input has text: an engine is needed to compress it")
        options = dict(layout=layout, numeric=numeric, progress=progress, on_total=on_total)
        if len(regions) == 1 and regions[0].kind == Kind.UTF8:
            model_archive = codec.model_archive(engine, data, **options)
        else:
            model_archive = hybrid_archive(engine, data, regions, **options)
    if model_archive is not None and not fallback:
        return model_archive
    others = [zstd_archive(data)]
    cm = bytecm_archive(data)
    if cm is not None:
        others.append(cm)
    others.append(container.encode_stored(data))
    best = min(others, key=len)  # zstd on a tie, then bytecm
    if model_archive is None:
        return best
    stamp = getattr(engine.params(layout, numeric), "fingerprint", "")
    charged = len(model_archive) - (2 + len(stamp.encode("utf-8")) if stamp else 0) + FINGERPRINT_ALLOWANCE
    return model_archive if charged <= len(best) else best
