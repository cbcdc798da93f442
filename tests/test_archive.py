"""The top of the coding stack without a model: member loops, the shared framing parser, and
whose fault a window too large for the model is."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

import nacrith
from nacrith import archive, bytemodes, codec, container
from nacrith.errors import FormatError, ModelError, TruncatedError

PROSE = b"A few words of text, long enough to be worth the model's time. " * 8


def members() -> bytes:
    return container.encode_stored(b"alpha ", block_bytes=4) + bytemodes.zstd_archive(b"beta") + container.encode_stored(b"")


def test_decompress_concatenated_members_without_a_model():
    assert archive.decompress(members(), None) == b"alpha beta"
    decoded = [out for _, out in archive.decompress_members(io.BytesIO(members()), None)]
    assert decoded == [b"alpha ", b"beta", b""]


@pytest.mark.parametrize("read", [
    lambda blob: archive.decompress(blob, None),
    lambda blob: container.read_info_all(io.BytesIO(blob)),
    lambda blob: nacrith.open(io.BytesIO(blob), codec=nacrith.Codec()).read(),
])
def test_one_wording_of_trailing_data(read):
    with pytest.raises(FormatError, match="unexpected trailing data at offset") as info:
        read(members() + b"junk")
    assert type(info.value) is FormatError
    with pytest.raises(TruncatedError):
        read(members() + container.MAGIC[:2])


def test_incremental_parser_agrees_with_the_reader():
    """Bytes pushed one at a time into the parser give what the reader pulls from a file."""
    blob = bytemodes.zstd_archive(PROSE * 3)
    parser = container.MemberParser()
    parsed = []
    buf = b""
    for byte in blob:
        buf += bytes([byte])
        if len(buf) == parser.need:
            piece, buf = buf, b""
            found = parser.take(piece)
            if found is not None:
                parsed.append(found)
        if parser.done:
            break
    if parsed[-1] is not parser.trailer:
        # Container v2 with one block: the take that reads the check (that block's CRC-32)
        # completes the block and the trailer at once, and returns the block.
        parsed.append(parser.trailer)
    reader = container.ArchiveReader(io.BytesIO(blob))
    assert parsed == [reader.header, *reader.blocks(), reader.trailer]
    assert parser.offset == reader.bytes_read == len(blob)


def _engine_trained_on(positions: int) -> codec.Engine:
    engine = object.__new__(codec.Engine)  # no model file: only what the window check reads
    engine.model = SimpleNamespace(n_ctx_train=positions)
    return engine


def test_a_window_too_large_for_the_model_is_a_usage_error_when_compressing():
    engine = _engine_trained_on(512)
    with pytest.raises(ModelError, match="window 1024 exceeds") as info:
        archive.compress(engine, PROSE, layout=codec.Layout(window=1024), fallback=False)
    assert not isinstance(info.value, FormatError)
    with pytest.raises(FormatError):  # the same window read from an archive: not a valid archive
        engine.check_window(1024, FormatError)
    engine.check_window(512, ModelError)  # fits
