"""The lzma-style library protocol: incremental objects, file objects, ``open``, frame info.

Following CPython's ``test_lzma``, input is fed in empty and one-byte slices.  Framing tests use
stored archives (built by the container module, decoded without the model); only a handful of
tests code with the model, on one input of a few hundred bytes, because the model decodes about
a hundred tokens per second on the 2-core test machine.
"""

from __future__ import annotations

import io

import pytest

import nacrith
from nacrith import api, container

TEXT = (
    b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    b"age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    b"season of Light, it was the season of Darkness, it was the spring of hope, it was the "
    b"winter of despair, we had everything before us, we had nothing before us, we were all going "
    b"direct to Heaven, we were all going direct the other way - in short, the period was so far "
    b"like the present period, that some of its noisiest authorities insisted on its being "
    b"received, for good or for evil, in the superlative degree of comparison only.\n"
)
SMALL = b"stored, not model coded: short input\n" * 3


def stored(data: bytes, block_bytes: int = 7) -> bytes:
    """A stored (mode 1) member with several blocks (container version 1: a version 2 stored
    body has no blocks); decoding it needs no model."""
    return container.encode_stored(data, block_bytes=block_bytes, version=1)


@pytest.fixture(scope="module")
def model_archive(codec) -> bytes:
    """TEXT compressed by the model, fed to the compressor in empty and one-byte slices."""
    comp = nacrith.NacrithCompressor(codec=codec)
    out = [comp.compress(b"")]
    for i in range(len(TEXT)):
        out.append(comp.compress(TEXT[i : i + 1]))
        out.append(comp.compress(b""))
    assert b"".join(out) == b""  # everything is buffered until the flush
    out.append(comp.flush())
    assert comp.flush() == b""  # nothing new since the last member
    blob = b"".join(out)
    assert nacrith.get_frame_info(blob).mode == "model"
    return blob


@pytest.fixture
def shared_codec(codec, monkeypatch):
    """Make the process-wide default codec the session's, so no second model gets loaded."""
    monkeypatch.setitem(api._shared, (None, None, "default"), codec)
    return codec


# -- NacrithDecompressor ----------------------------------------------------------------------


def test_decompressor_one_byte_slices_of_model_archive(codec, model_archive):
    dec = nacrith.NacrithDecompressor(codec=codec)
    assert (dec.eof, dec.needs_input, dec.unused_data) == (False, True, b"")
    out = []
    for i in range(len(model_archive)):
        assert not dec.eof
        out.append(dec.decompress(b""))
        out.append(dec.decompress(model_archive[i : i + 1]))
    assert b"".join(out) == TEXT
    assert dec.eof and not dec.needs_input
    assert dec.unused_data == b""
    with pytest.raises(EOFError):
        dec.decompress(b"")
    with pytest.raises(EOFError):
        dec.decompress(b"more")


def test_decompressor_empty_input():
    dec = nacrith.NacrithDecompressor()
    assert dec.decompress(b"") == b""
    assert (dec.eof, dec.needs_input, dec.unused_data) == (False, True, b"")


def test_decompressor_max_length():
    data = bytes(range(256)) * 2
    blob = stored(data, 100)
    dec = nacrith.NacrithDecompressor()
    out = [dec.decompress(blob, 0)]
    assert out == [b""] and not dec.needs_input and not dec.eof
    out.append(dec.decompress(b"", 7))
    assert len(out[-1]) == 7
    while not dec.eof:
        assert not dec.needs_input
        chunk = dec.decompress(b"", 100)
        assert 0 < len(chunk) <= 100
        out.append(chunk)
    assert b"".join(out) == data
    assert not dec.needs_input


def test_decompressor_max_length_one_byte_input_slices():
    blob = stored(SMALL)
    dec = nacrith.NacrithDecompressor()
    out = []
    pos = 0
    while not dec.eof:
        if dec.needs_input:
            chunk, pos = blob[pos : pos + 1], pos + 1
        else:
            chunk = b""
        out.append(dec.decompress(chunk, 10))
        assert len(out[-1]) <= 10
    assert b"".join(out) == SMALL
    assert pos == len(blob)


def test_decompressor_unused_data():
    first, second = stored(b"first member"), stored(b"second member")
    dec = nacrith.NacrithDecompressor()
    assert dec.decompress(first + second + b"junk") == b"first member"
    assert dec.eof
    assert dec.unused_data == second + b"junk"
    # Data given while the member's output is still pending also lands in unused_data.
    dec = nacrith.NacrithDecompressor()
    assert dec.decompress(first, 3) == b"fir"
    assert dec.decompress(second, 3) == b"st "
    assert dec.decompress(b"", -1) == b"member"
    assert dec.eof and dec.unused_data == second
    # One-byte slices: nothing after the trailer is consumed.
    dec = nacrith.NacrithDecompressor()
    out = b""
    for i, byte in enumerate(first + second):
        if dec.eof:
            break
        out += dec.decompress(bytes([byte]))
    assert out == b"first member" and i == len(first)
    assert dec.unused_data == b""


def test_decompressor_empty_member():
    blob = stored(b"")
    dec = nacrith.NacrithDecompressor()
    for i in range(len(blob)):
        assert dec.decompress(blob[i : i + 1]) == b""
    assert dec.eof


def test_decompressor_rejects_non_archive_early():
    dec = nacrith.NacrithDecompressor()
    with pytest.raises(nacrith.FormatError, match="not a nacrith archive"):
        dec.decompress(b"\x89NX")
    dec = nacrith.NacrithDecompressor()
    bad = bytearray(stored(SMALL))
    bad[5] ^= 0x01  # the mode byte: the header CRC no longer matches
    with pytest.raises(nacrith.FormatError, match="CRC"):
        dec.decompress(bytes(bad[:20]))


def test_decompressor_truncated_input_is_not_an_error_until_the_end():
    blob = stored(SMALL)
    dec = nacrith.NacrithDecompressor()
    assert dec.decompress(blob[:-1]) == b""
    assert dec.needs_input and not dec.eof
    assert dec.decompress(blob[-1:]) == SMALL


# -- one-shot and truncation ------------------------------------------------------------------


def test_truncated_input_raises_eoferror_everywhere():
    blob = stored(SMALL, 40)
    for cut in range(len(blob)):
        with pytest.raises(EOFError):
            nacrith.decompress(blob[:cut])
        with pytest.raises(nacrith.TruncatedError):
            nacrith.open(io.BytesIO(blob[:cut])).read()
        if cut > 0:
            with pytest.raises(nacrith.TruncatedError):
                nacrith.get_frame_info(blob[:cut])


def test_concatenated_members():
    a, empty, b = stored(b"alpha "), stored(b""), stored(b"beta", 3)
    both = a + empty + b
    assert nacrith.decompress(both) == b"alpha beta"
    with nacrith.open(io.BytesIO(both)) as f:
        assert f.read() == b"alpha beta"
    with nacrith.open(io.BytesIO(both)) as f:  # small reads across member boundaries
        assert b"".join(iter(lambda: f.read(1), b"")) == b"alpha beta"
    with pytest.raises(nacrith.TruncatedError):
        nacrith.open(io.BytesIO(both + a[:5])).read()
    with pytest.raises(nacrith.FormatError, match="trailing data"):
        nacrith.open(io.BytesIO(both + b"junk")).read()


# -- NacrithCompressor --------------------------------------------------------------------------


def test_compressor_without_input_writes_an_empty_member():
    comp = nacrith.NacrithCompressor()
    blob = comp.flush()
    assert blob.startswith(nacrith.MAGIC)
    assert nacrith.decompress(blob) == b""
    assert comp.flush() == b""


def test_compressor_arguments(codec):
    with pytest.raises(ValueError):
        nacrith.NacrithCompressor(codec=codec, threads=1)
    comp = nacrith.NacrithCompressor(codec=codec)
    assert comp.codec is codec
    with pytest.raises(ValueError):
        comp.compress(b"x", mode=1)
    with pytest.raises(ValueError):
        comp.flush(mode=nacrith.NacrithCompressor.CONTINUE)


def test_compressor_members_with_flush_frame(codec):
    comp = nacrith.NacrithCompressor(codec=codec)
    first = comp.compress(b"ab", mode=comp.FLUSH_FRAME)
    comp.compress(bytearray(b"c"))
    second = comp.compress(memoryview(b"d"), comp.FLUSH_FRAME)
    assert comp.last_mode == comp.FLUSH_FRAME
    assert nacrith.decompress(first + second) == b"abcd"
    assert nacrith.get_frame_info(first + second).original_size == 2


# -- frame info ---------------------------------------------------------------------------------


def test_get_frame_info(codec, model_archive):
    info = nacrith.get_frame_info(model_archive + stored(b"x"))
    assert info == nacrith.FrameInfo(
        format_version=nacrith.FORMAT_VERSION,
        mode="model",
        model_sha256=info.model_sha256,
        block_tokens=codec.layout.block_tokens,
        stream_tokens=codec.layout.stream_tokens,
        window=codec.layout.window,
        slide=codec.layout.slide,
        sinks=codec.layout.sinks,
        original_size=len(TEXT),
        compressed_size=len(model_archive),
        n_blocks=1,
    )
    assert len(info.model_sha256) == 64 and int(info.model_sha256, 16) >= 0
    plain = nacrith.get_frame_info(stored(SMALL, 40))
    assert (plain.mode, plain.model_sha256, plain.block_tokens, plain.n_blocks) == ("stored", None, None, 3)
    with pytest.raises(nacrith.FormatError):
        nacrith.get_frame_info(b"not an archive")


# -- NacrithFile and open -----------------------------------------------------------------------


def test_open_path_with_model(tmp_path, codec, model_archive):
    path = tmp_path / "tale.txt.nc"
    with nacrith.open(path, "wb", codec=codec) as f:
        assert (f.mode, f.name, f.writable(), f.readable()) == ("wb", str(path), True, False)
        for i in range(0, len(TEXT), 50):
            assert f.write(TEXT[i : i + 50]) == len(TEXT[i : i + 50])
        f.write(b"")
        assert f.tell() == len(TEXT)
        f.flush()  # does not end the member
    assert f.closed
    assert path.read_bytes() == model_archive  # same bytes as the incremental compressor
    with nacrith.open(path, codec=codec) as f:
        assert (f.mode, f.name, f.readable(), f.seekable()) == ("rb", str(path), True, True)
        assert f.read() == TEXT
        f.seek(7)  # a backward seek starts decoding again; the codec keeps the model loaded
        assert f.read(4) == b"the "


def test_open_file_object_and_reading_methods():
    data = b"line one\nline two\nlast line"
    raw = io.BytesIO(stored(data[:12]) + stored(data[12:], 5))
    f = nacrith.open(raw)
    assert f.name == ""
    assert f.peek(1)[:1] == b"l"
    assert f.readline() == b"line one\n"
    buf = bytearray(4)
    assert f.readinto(buf) == 4 and buf == b"line"
    assert f.read1(3) == b" tw"
    assert list(f) == [b"o\n", b"last line"]
    assert f.read() == b""
    assert f.tell() == len(data)
    assert f.seek(5) == 5 and f.read(3) == b"one"
    assert f.seek(-4, io.SEEK_END) == len(data) - 4 and f.read() == b"line"
    assert f.seek(-4, io.SEEK_CUR) == len(data) - 4
    f.close()
    assert f.closed and not raw.closed  # a file object passed in stays open
    f.close()
    with pytest.raises(ValueError):
        f.read()

    out = io.BytesIO()
    with nacrith.NacrithFile(out, "w") as w:
        with pytest.raises(io.UnsupportedOperation):
            w.read()
    assert nacrith.decompress(out.getvalue()) == b""


def test_open_modes(tmp_path, shared_codec):
    path = tmp_path / "a.nc"
    path.write_bytes(stored(b"old "))
    with pytest.raises(FileExistsError):
        nacrith.open(path, "xb")
    assert nacrith.decompress(path.read_bytes()) == b"old "
    with nacrith.open(path, "ab") as f:  # appends a member
        f.write(b"new")
    assert nacrith.open(path).read() == b"old new"
    with nacrith.open(tmp_path / "b.nc", "x") as f:
        f.write(b"")
    assert nacrith.decompress((tmp_path / "b.nc").read_bytes()) == b""
    for mode in ("rw", "r+b", "U", "wbt"):
        with pytest.raises(ValueError):
            nacrith.open(path, mode)
    with pytest.raises(ValueError):
        nacrith.open(path, "rb", encoding="utf-8")
    with pytest.raises(TypeError):
        nacrith.NacrithFile(123)


def test_text_mode_round_trip(tmp_path, shared_codec):
    path = tmp_path / "notes.txt.nc"
    text = "héllo\nwörld\r\nlast"
    with nacrith.open(path, "wt", encoding="utf-8", newline="") as f:
        assert isinstance(f, io.TextIOWrapper)
        f.write(text)
    with nacrith.open(path, "rt", encoding="utf-8", newline="") as f:
        assert f.read() == text
    with nacrith.open(path, "rt", encoding="utf-8") as f:  # universal newlines
        assert f.readlines() == ["héllo\n", "wörld\n", "last"]
    with open(path, "rb") as raw, nacrith.open(raw, "rt", encoding="utf-8", newline="") as f:
        assert f.read() == text
        assert not raw.closed


def test_decompressor_failure_is_sticky():
    bad = bytearray(stored(SMALL, 40))
    bad[20] ^= 0x01  # payload byte of the first block: its CRC-32 fails when decoded
    dec = nacrith.NacrithDecompressor()
    with pytest.raises(nacrith.ChecksumError):
        dec.decompress(bytes(bad))
    with pytest.raises(nacrith.ChecksumError):
        dec.decompress(b"")
    assert not dec.eof
