"""The modes that code the bytes themselves, without the language model: zstd, bytecm, stored.

* **zstd** (mode 3): the whole input as zstd frames, level 19, one frame per block of at
  most ``ZSTD_BLOCK_BYTES``;
* **bytecm** (mode 4): the whole input as one stream of :mod:`nacrith.bytecm`, the bitwise
  context-mixing coder, for inputs up to ``BYTECM_MAX_BYTES``;
* **stored** (mode 1): the bytes verbatim (written by :func:`nacrith.container.encode_stored`).

The block coders here also code the binary section of hybrid archives (:mod:`nacrith.hybrid`).
Byte layouts: ``formats/container-v1.md`` sections 4.3 and 4.4.

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
the reference of the size guarantee (:mod:`nacrith.archive`).

bytecm against zstd -19 and xz -9e, measured here with ``tests/bench/bench_bytecm.py`` (bytes;
bytecm version 2, which is written, and version 1; speed on one core of a quiet 2-core
machine, encode and decode alike; the tar is of this version's ``nacrith/``):

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

from typing import Callable, Iterator

import zstandard

from . import bytecm, container
from .errors import ChecksumError, LimitError, corrupt

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

Progress = Callable[[int], None]  # called with the number of symbols (here: bytes) just decoded
#: Decodes one block: (archive block index, its header, its payload) -> its original bytes, checked.
Unblock = Callable[[int, container.BlockHeader, bytes], bytes]


# -- zstd -----------------------------------------------------------------------------------


def _compressor(size: int, long: bool) -> zstandard.ZstdCompressor:
    if long and size > LONG_ABOVE:
        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, source_size=size, enable_ldm=True, window_log=LONG_WINDOW_LOG
        )
        return zstandard.ZstdCompressor(compression_params=params)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL)


def zstd_blocks(data: bytes, *, long: bool = False) -> list[container.Block]:
    """The blocks of ``data``: one zstd frame (with its content size) per block."""
    cctx = _compressor(len(data), long)
    blocks = []
    for start in range(0, len(data), ZSTD_BLOCK_BYTES):
        chunk = data[start : start + ZSTD_BLOCK_BYTES]
        blocks.append(container.Block(len(chunk), len(chunk), container.block_crc32(chunk), cctx.compress(chunk)))
    return blocks


def unzstd_block(index: int, bh: container.BlockHeader, payload: bytes) -> bytes:
    """The ``n_bytes`` original bytes of one zstd block, checked (memory bounded by n_bytes)."""
    try:
        frame = zstandard.get_frame_parameters(payload)
    except zstandard.ZstdError as exc:
        raise corrupt(f"block {index} is not a zstd frame ({exc})") from None
    if frame.content_size != bh.n_bytes:
        raise corrupt(f"the zstd frame of block {index} does not declare the block's {bh.n_bytes} bytes")
    if frame.window_size > 1 << MAX_WINDOW_LOG:
        raise LimitError(
            f"the zstd frame of block {index} needs a {frame.window_size}-byte window, above the "
            f"limit of {1 << MAX_WINDOW_LOG}; the archive is corrupt or hostile"
        )
    try:
        dctx = zstandard.ZstdDecompressor(max_window_size=1 << MAX_WINDOW_LOG)
        raw = dctx.decompress(payload, max_output_size=bh.n_bytes, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise corrupt(f"the zstd frame of block {index} is damaged ({exc})") from None
    _check_crc(index, bh, raw)
    return raw


# -- bytecm ---------------------------------------------------------------------------------


def bytecm_blocks(data: bytes, version: int = bytecm.VERSION) -> list[container.Block] | None:
    """``data`` as one bytecm block (none if empty); None if it is too large for bytecm or
    bytecm would expand it.  ``version`` other than the default is for golden files."""
    if not data:
        return []
    if len(data) > BYTECM_MAX_BYTES:
        return None
    payload = bytecm.compress(data, version=version)
    if payload is None:
        return None
    return [container.Block(len(data), len(data), container.block_crc32(data), payload)]


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


# -- stored ---------------------------------------------------------------------------------


def unstore_block(index: int, bh: container.BlockHeader, payload: bytes) -> bytes:
    """A stored block's bytes (the payload itself), checked against its CRC-32."""
    _check_crc(index, bh, payload)
    return payload


def _check_crc(index: int, bh: container.BlockHeader, raw: bytes) -> None:
    actual = container.block_crc32(raw)
    if len(raw) != bh.n_bytes or actual != bh.crc32:
        raise ChecksumError(block_index=index, expected=bh.crc32, actual=actual)


# -- whole-file archives --------------------------------------------------------------------


def zstd_archive(data: bytes, *, container_version: int = container.FORMAT_VERSION) -> bytes:
    """A complete mode 3 archive: ``data`` as plain level-19 zstd frames.  ``container_version``
    other than the default is for golden files."""
    return container.encode_member(container.MODE_ZSTD, None, data, zstd_blocks(data), version=container_version)


def bytecm_archive(
    data: bytes, version: int = bytecm.VERSION, *, container_version: int = container.FORMAT_VERSION
) -> bytes | None:
    """A complete mode 4 archive of ``data``, or None when bytecm is not tried or expands it.
    ``version`` (of bytecm) and ``container_version`` other than the defaults are for golden files."""
    blocks = bytecm_blocks(data, version)
    if blocks is None:
        return None
    return container.encode_member(container.MODE_BYTECM, None, data, blocks, version=container_version)


#: The block decoder of each whole-file mode.
UNBLOCK: dict[int, Unblock] = {
    container.MODE_STORED: unstore_block,
    container.MODE_ZSTD: unzstd_block,
    container.MODE_BYTECM: unbytecm_block,
}


def decode(reader: container.ArchiveReader, progress: Progress | None = None) -> Iterator[bytes]:
    """The original bytes of a stored, zstd or bytecm archive whose header ``reader`` has read,
    block by block (each checked against its CRC-32; the caller checks the trailer)."""
    unblock = UNBLOCK[reader.header.mode]
    for index, (bh, payload) in enumerate(reader.blocks()):
        yield unblock(index, bh, payload)
        if progress:
            progress(bh.n_symbols)

