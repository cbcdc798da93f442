"""Files of any size with bounded memory: one archive member per fixed-size chunk.

A nacrith archive is coded as a whole (its header records the layout, its trailer a digest of
everything), so memory grows with what one archive holds.  Large inputs are therefore cut
into chunks of ``chunk_bytes`` (:data:`CHUNK_BYTES` unless asked otherwise) and each chunk
becomes one complete archive member; the members, concatenated, are a valid nacrith stream
(``formats/container-v1.md``, concatenated members) that every decoder turns back into the
concatenated chunks.  Decoding reads, decodes, verifies and writes one member at a time.

The chunk size changes the output, so it is a fixed number, never derived from the machine;
an input of at most one chunk gives exactly the archive :meth:`nacrith.Codec.compress` gives.
Chunks are cut by byte count (reads are repeated until a chunk is full), so a pipe that
delivers its data in other pieces gives the same archive as a file.  Each chunk starts the
model (and the ensemble) afresh.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable

from . import container
from .archive import decompress_archive
from .codec import Progress

if TYPE_CHECKING:
    from .api import Codec

#: Input bytes per archive member (changes the output: fixed, recorded nowhere but in the
#: member boundaries themselves).  8 MiB of text is about 2 M symbols, days of model time
#: on a small CPU, and keeps a member's buffers (input, symbols, archive) in tens of MB.
CHUNK_BYTES = 8 << 20

Write = Callable[[bytes], None]


@dataclass
class Report:
    """What went through: original and archive bytes, and one summary per member."""

    original: int = 0
    compressed: int = 0
    members: list[container.ArchiveInfo] = field(default_factory=list)


def read_chunk(src: BinaryIO, size: int) -> bytes:
    """``size`` bytes from ``src``, fewer only at the end of the input."""
    parts = []
    want = size
    while want:
        piece = src.read(want)
        if not piece:
            break
        parts.append(piece)
        want -= len(piece)
    return b"".join(parts)


def compress(
    codec: Codec,
    src: BinaryIO,
    write: Write,
    *,
    chunk_bytes: int | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    check: Callable[[bytes, bytes], None] | None = None,
) -> Report:
    """Compress ``src`` to ``write``, one member per chunk; ``check(member, chunk)``, if given,
    may refuse a member before it is written.  ``on_total`` gets the running symbol total."""
    size = chunk_bytes or CHUNK_BYTES
    report = Report()
    counted = 0  # symbols of the members already written
    announced = 0  # symbols of the member being coded

    def total(n: int) -> None:
        nonlocal announced
        announced = n
        if on_total:
            on_total(counted + n)

    while True:
        chunk = read_chunk(src, size)
        if not chunk and report.members:
            return report
        announced = 0
        member = codec.compress(chunk, progress=progress, on_total=total)
        counted += announced
        if check:
            check(member, chunk)
        write(member)
        report.original += len(chunk)
        report.compressed += len(member)
        report.members.append(container.read_info(io.BytesIO(member)))
        if len(chunk) < size:
            return report


def decompress(
    codec: Codec,
    src: BinaryIO,
    write: Write | None,
    *,
    progress: Progress | None = None,
) -> Report:
    """Decode every member of ``src`` in turn, writing each one's bytes (if ``write``) as
    soon as its digest is verified; memory is bounded by the largest member."""
    report = Report()
    for reader in container.iter_members(src, codec.limits):
        data = decompress_archive(reader, codec.engine, model=codec.model, lanes=codec.lanes, progress=progress)
        if write:
            write(data)
        report.original += len(data)
        report.compressed += reader.bytes_read
        report.members.append(container.summary(reader))
    return report
