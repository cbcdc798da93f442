"""Hybrid archives (mode 2): text through the model, the binary regions through zstd or bytecm.

:func:`nacrith.archive.compress` segments the input (:mod:`nacrith.segment`); when it has text
and binary regions, or text in another encoding, it may write a hybrid archive, built here:
block 0 holds the **region table**, the next blocks the binary regions as zstd frames or as one
bytecm stream (whichever is smaller, :mod:`nacrith.bytemodes`), the rest the UTF-8 form of all
text regions, model-coded exactly as in mode 0 (:func:`nacrith.codec.model_blocks`).  The byte
layout is specified in ``formats/container-v1.md`` (section 4.2); the decoder never segments
anything, it reads the region table (:func:`read_sections`, before any model work).

Binary regions are coded as **one** stream, the concatenation of all of them, so they share
history: on geo.protodata (438 binary regions between text) one stream took 9,912 bytes, a
frame per region would pay a frame header (6+ bytes) per region and lose every match across
regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import zstandard

from . import codec, container, segment
from .bytemodes import ZSTD_LEVEL, bytecm_blocks, unbytecm_block, unzstd_block, zstd_blocks
from .errors import LimitError, UnsupportedVersionError, corrupt
from .segment import Kind


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


def _read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    """A varint of the region table at ``pos``: (value, next position)."""
    parsed = container.read_varint(raw, pos, "region table")
    if parsed is None:
        raise corrupt("the region table ends inside a varint")
    return parsed
    return parsed


def encode_table(table: Table) -> bytes:
    out = bytearray(container.encode_varint(table.binary_blocks))
    for e in table.entries:
        out.append(BYTECM_BINARY_CODE if table.bytecm and e.kind == Kind.BINARY else e.kind)
        out += container.encode_varint(e.length)
        if e.kind in segment.TRANSCODED:
            out += container.encode_varint(e.utf8_length)
    return bytes(out)


def parse_table(raw: bytes, n_regions: int, limits: container.Limits) -> Table:
    """Parse and check a region table of ``n_regions`` entries (section 4.2)."""
    binary_blocks, pos = _read_varint(raw, 0)
    entries = []
    total = 0
    codes = set()
    for index in range(n_regions):
        if pos >= len(raw):
            raise corrupt(f"the region table holds fewer than the {n_regions} regions block 0 declares")
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
            raise corrupt(f"region {index} is empty")
        if kind in (Kind.UTF16LE, Kind.UTF16BE) and length % 2:
            raise corrupt(f"UTF-16 region {index} has an odd length")
        total += length
        if total > limits.max_total_bytes:
            raise LimitError(
                f"the region table declares more than {limits.max_total_bytes} original bytes "
                "(the configured limit); if the archive is trusted, raise the limit"
            )
        entries.append(Entry(kind, length, utf8_length))
    if pos != len(raw):
        raise corrupt(f"{len(raw) - pos} unexpected byte(s) after the region table")
    if not any(e.kind != Kind.BINARY for e in entries):
        raise corrupt("a hybrid archive without text regions")
    if Kind.BINARY in codes and BYTECM_BINARY_CODE in codes:
        raise corrupt("the region table mixes zstd (kind 0) and bytecm (kind 5) binary regions")
    return Table(binary_blocks, tuple(entries), BYTECM_BINARY_CODE in codes)


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
    use_cm = cm_blocks is not None and _payload_bytes(cm_blocks) < _payload_bytes(binary_blocks)
    if use_cm:
        binary_blocks = cm_blocks
    table = encode_table(Table(len(binary_blocks), tuple(entries), use_cm))
    table_frame = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(table)
    table_block = container.Block(len(entries), len(table), container.block_crc32(table), table_frame)
    blocks = [table_block, *binary_blocks, *model_blocks]
    return container.encode_member(container.MODE_HYBRID, engine.params(layout, numeric), data, blocks)


def _payload_bytes(blocks: list[container.Block]) -> int:
    return sum(len(b.payload) for b in blocks)


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
                raise corrupt(f"text region {index} does not convert back to its {e.length} original bytes")
            out += raw
        return bytes(out)


def read_sections(reader: container.ArchiveReader) -> Sections:
    """Read a mode 2 archive's blocks and trailer and check every size before any model work."""
    blocks = reader.blocks()
    first = next(blocks, None)
    if first is None:
        raise corrupt("a hybrid archive without its region table (block 0)")
    bh, payload = first
    table = parse_table(unzstd_block(0, bh, payload), bh.n_symbols, reader.limits)
    binary = bytearray()
    for index in range(1, table.binary_blocks + 1):
        block = next(blocks, None)
        if block is None:
            raise corrupt(
                f"the region table announces {table.binary_blocks} binary block(s), but only {index - 1} follow"
            )
        bh, payload = block
        if bh.n_symbols != bh.n_bytes:
            raise corrupt(f"binary block {index} has n_symbols != n_bytes")
        binary += (unbytecm_block if table.bytecm else unzstd_block)(index, bh, payload)
    model_blocks = list(blocks)  # also reads and checks the trailer
    for what, declared, actual in (
        ("binary", sum(e.length for e in table.entries if e.kind == Kind.BINARY), len(binary)),
        ("text", sum(e.utf8_length for e in table.entries), sum(bh.n_bytes for bh, _ in model_blocks)),
        ("original", sum(e.length for e in table.entries), reader.trailer.original_size),
    ):
        if declared != actual:
            raise corrupt(f"the region table declares {declared} {what} bytes, but the archive holds {actual}")
    return Sections(table, bytes(binary), model_blocks, 1 + table.binary_blocks)
