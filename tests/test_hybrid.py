"""Segmentation, hybrid (mode 2) and zstd (mode 3) archives.

Model-free tests first (segmentation, region table, zstd mode, the never-worse-than-zstd
property); then round trips through the model with small inputs (a few hundred bytes of text:
the model codes about a hundred tokens per second here).
"""

from __future__ import annotations

import io
import os
import random
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nacrith import archive, bytemodes, container, hybrid, segment
from nacrith.errors import ChecksumError, FormatError, LimitError, UnsupportedVersionError
from nacrith.segment import Kind, Region

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ROOT / "formats"
MUST_FAIL = FORMATS / "must-fail"
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PROSE = b"Some ordinary English prose, sitting between two blobs of binary data for the model.\n"
UTF16_TEXT = "Hello, world! This is a UTF-16 text file with a few words in it.\r\n" * 3
LATIN1_TEXT = "Le café était très bon, à côté de l'hôtel où nous étions hier soir. " * 2


def rng_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def kinds(data: bytes) -> list[tuple[int, int, Kind]]:
    return [(r.start, r.end, r.kind) for r in segment.segment(data)]


def no_model(model_file):
    raise AssertionError("this archive must decode without the model")


def decode(blob: bytes, get_engine=no_model) -> bytes:
    return archive.decompress_archive(container.ArchiveReader(io.BytesIO(blob)), get_engine)


def zstd19(data: bytes) -> int:
    return len(zstandard.ZstdCompressor(level=19).compress(data))


# -- segmentation ---------------------------------------------------------------------------


def check_regions(data: bytes, regions: list[Region]) -> None:
    """The invariants segment() promises, plus reversibility of every text region."""
    pos = 0
    for i, r in enumerate(regions):
        assert r.start == pos and r.end > r.start
        if i:
            assert not (r.kind == Kind.BINARY and regions[i - 1].kind == Kind.BINARY)
        if r.kind != Kind.BINARY:
            raw = data[r.start : r.end]
            assert segment.from_utf8(segment.to_utf8(raw, r.kind), r.kind) == raw
        pos = r.end
    assert pos == len(data)


@pytest.mark.parametrize(
    "text,kind",
    [
        (("\ufeff" + UTF16_TEXT).encode("utf-16-le"), Kind.UTF16LE),
        (UTF16_TEXT.encode("utf-16-le"), Kind.UTF16LE),
        (("\ufeff" + UTF16_TEXT).encode("utf-16-be"), Kind.UTF16BE),
        (UTF16_TEXT.encode("utf-16-be"), Kind.UTF16BE),
        (("Привет, мир! Это текст на русском языке. " * 3).encode("utf-16-le"), Kind.UTF16LE),
        (LATIN1_TEXT.encode("latin-1"), Kind.LATIN1),
        (LATIN1_TEXT.encode("utf-8"), Kind.UTF8),
        (PROSE * 2, Kind.UTF8),
        (("Привет, мир! Это текст на русском языке. " * 3).encode("utf-8"), Kind.UTF8),
    ],
)
def test_whole_text_is_one_region(text, kind):
    assert kinds(text) == [(0, len(text), kind)]
    assert segment.to_utf8(text, kind).decode("utf-8").lstrip("\ufeff").startswith(
        ("Hello", "Привет", "Le café", "Some")
    )


def test_text_between_binary_is_found_exactly():
    head, tail = b"\x00\x01\x02\x03\x80\x81" * 50, bytes(range(0x80, 0xA0)) * 6  # never text
    utf16 = UTF16_TEXT.encode("utf-16-le")
    data = head + PROSE + tail + utf16 + b"\x9f" * 50
    got = kinds(data)
    assert (len(head), len(head) + len(PROSE), Kind.UTF8) in got
    start = len(head) + len(PROSE) + len(tail)
    assert (start, start + len(utf16), Kind.UTF16LE) in got
    assert [k for *_, k in got] == [Kind.BINARY, Kind.UTF8, Kind.BINARY, Kind.UTF16LE, Kind.BINARY]


def test_small_gaps_stay_in_the_text_and_short_text_stays_binary():
    gappy = b"first part of a sentence\x00\x01and the second part of it \xff\x02, then the end.\n"
    assert kinds(gappy) == [(0, len(gappy), Kind.UTF8)]  # escapes, not five regions
    wide = b"first part of a sentence" + bytes(40) + b"and the second part of it, then the end.\n"
    assert kinds(wide) == [(0, 64, Kind.BINARY), (64, len(wide), Kind.UTF8)]  # 24 bytes: too short
    short = rng_bytes(100, 4) + b"tiny words" + rng_bytes(100, 5)
    assert kinds(short) == [(0, len(short), Kind.BINARY)]
    # A stray byte at either end of a text stays in the text (alice29.txt ends with 0x1A).
    assert kinds(b"\x1a" + PROSE + b"\x1a") == [(0, len(PROSE) + 2, Kind.UTF8)]


def test_binary_inputs_have_no_text():
    cjk = ("\ufeff" + "这是一个中文文本文件，包含一些常用的汉字。" * 3).encode("utf-16-le")  # not recognised
    for data in (bytes(10000), b"\xff" * 5000, bytes(range(128, 256)) * 40, cjk):
        assert kinds(data) == [(0, len(data), Kind.BINARY)]
    for seed in range(3):  # random data: at most a few chance "words", never worth the model
        assert segment.text_bytes(segment.segment(rng_bytes(100_000, seed))) < archive.MIN_MODEL_TEXT
    assert segment.segment(b"") == []


def test_all_byte_values():
    data = bytes(range(256))
    regions = segment.segment(data)
    check_regions(data, regions)
    assert (0x20, 0x7F, Kind.UTF8) in kinds(data)  # printable ASCII, nothing else
    for value in range(256):
        single = bytes([value]) * 700
        check_regions(single, segment.segment(single))


def test_long_regions_are_cut_at_character_boundaries():
    rules = segment.Rules(max_region=101)
    text = ("é" * 150).encode("utf-8")  # two bytes per character (letters: multi-byte UTF-8)
    regions = segment.segment(text, rules)
    assert len(regions) == 3 and all(r.kind == Kind.UTF8 and r.length <= 101 for r in regions)
    assert all(r.length % 2 == 0 for r in regions)
    utf16 = ("smile \U0001f600 face " * 30).encode("utf-16-le")  # surrogate pairs
    regions = segment.segment(utf16, rules)
    check_regions(utf16, regions)
    assert len(regions) > 1 and all(r.kind == Kind.UTF16LE for r in regions)


def test_segmentation_is_deterministic_and_rules_are_checked():
    data = rng_bytes(2000, 7) + PROSE * 3 + UTF16_TEXT.encode("utf-16-be")
    assert segment.segment(data) == segment.segment(bytearray(data))
    with pytest.raises(ValueError):
        segment.Rules(min_text=1)
    with pytest.raises(ValueError):
        segment.Rules(max_noise=1.5)


def test_reversible_conversion_is_checked():
    assert segment.to_utf8(b"\x00\xd8a\x00", Kind.UTF16LE) is None  # unpaired surrogate
    assert segment.to_utf8(b"abc", Kind.UTF16LE) is None  # odd length
    assert segment.to_utf8(bytes(range(256)), Kind.LATIN1) is not None  # always reversible


text_or_binary = st.lists(
    st.one_of(
        st.binary(max_size=80),
        st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.text(max_size=40).map(lambda t: t.encode("utf-16-le", "surrogatepass")),
        st.sampled_from([PROSE, UTF16_TEXT.encode("utf-16-be"), LATIN1_TEXT.encode("latin-1")]),
    ),
    max_size=6,
).map(b"".join)


@HYP
@given(text_or_binary)
def test_regions_always_cover_the_input(data):
    check_regions(data, segment.segment(data))


# -- region table ---------------------------------------------------------------------------


def test_region_table_round_trip_and_errors():
    table = hybrid.Table(
        2,
        (
            hybrid.Entry(Kind.BINARY, 300, 0),
            hybrid.Entry(Kind.UTF8, 70_000, 70_000),
            hybrid.Entry(Kind.UTF16LE, 40, 20),
            hybrid.Entry(Kind.LATIN1, 5, 7),
        ),
    )
    raw = hybrid.encode_table(table)
    assert raw[:1] == b"\x02" and raw[1:2] == b"\x00"  # binary_blocks, then the first kind
    limits = container.DEFAULT_LIMITS
    assert hybrid.parse_table(raw, 4, limits) == table
    with pytest.raises(FormatError, match="fewer"):
        hybrid.parse_table(raw, 5, limits)
    with pytest.raises(FormatError, match="unexpected"):
        hybrid.parse_table(raw + b"\x00", 4, limits)
    with pytest.raises(UnsupportedVersionError):
        hybrid.parse_table(b"\x00\x09\x05", 1, limits)
    with pytest.raises(FormatError, match="odd"):
        hybrid.parse_table(b"\x00\x02\x05\x03", 1, limits)
    with pytest.raises(FormatError, match="varint"):
        hybrid.parse_table(b"\x00\x01\x85\x00", 1, limits)  # overlong
    with pytest.raises(FormatError, match="without text"):
        hybrid.parse_table(b"\x01\x00\x05", 1, limits)
    with pytest.raises(LimitError):
        hybrid.parse_table(raw, 4, container.Limits(max_total_bytes=1000))


# -- zstd mode and the choice -----------------------------------------------------------------


def test_zstd_archive_round_trip_in_several_blocks(monkeypatch):
    data = rng_bytes(500, 8) * 20
    monkeypatch.setattr(bytemodes, "ZSTD_BLOCK_BYTES", 3000)
    blob = bytemodes.zstd_archive(data)
    info = container.read_info(io.BytesIO(blob))
    assert info.header.mode == container.MODE_ZSTD and info.n_blocks == 4
    assert decode(blob) == data


def test_zstd_mode_is_level_19_plus_fixed_framing():
    data = b"abc" * 1000 + rng_bytes(3000, 9)
    frame = zstandard.ZstdCompressor(level=19).compress(data)
    blob = bytemodes.zstd_archive(data)
    assert frame in blob and len(blob) - len(frame) <= 57  # 12 header, 7-16 block, 29 end


@HYP
@given(st.binary(max_size=3000) | st.binary(max_size=40).map(lambda b: b * 50))
def test_never_worse_than_zstd_or_stored(data):
    """Input without text never needs the model, and is at most zstd -19 + 64 bytes, and
    at most the raw size + 64 bytes."""
    assume(segment.text_bytes(segment.segment(data)) < archive.MIN_MODEL_TEXT)
    blob = archive.compress(None, data)
    assert len(blob) <= zstd19(data) + 64
    assert len(blob) <= len(data) + 64
    assert decode(blob) == data


def test_binary_files_skip_the_model(corpora_dir):
    for data in (rng_bytes(100_000, 10), bytes(100_000), (corpora_dir / "fireworks.jpeg").read_bytes()):
        blob = archive.compress(None, data)  # no engine: it would raise if the model were needed
        assert len(blob) <= zstd19(data) + 64
        assert decode(blob) == data


def test_zstd_block_checks():
    data = PROSE * 3
    blob = bytearray(bytemodes.zstd_archive(data))
    reader = container.ArchiveReader(io.BytesIO(bytes(blob)))
    bh, payload = next(reader.blocks())
    with pytest.raises(FormatError, match="does not declare"):
        bytemodes.unzstd_block(0, container.BlockHeader(bh.n_symbols + 1, bh.n_bytes + 1, 0, bh.crc32), payload)
    with pytest.raises(FormatError, match="not a zstd frame"):
        bytemodes.unzstd_block(0, bh, b"\x00" * 12)
    with pytest.raises(ChecksumError):
        bytemodes.unzstd_block(0, container.BlockHeader(bh.n_symbols, bh.n_bytes, 0, bh.crc32 ^ 1), payload)


# -- must-fail files ------------------------------------------------------------------------


def must_fail_rows() -> dict[str, str]:
    import re

    text = (MUST_FAIL / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `((?:hybrid|zstd)-[^`]+)` \| `(\w+)` \|", text, re.M))


MUST_FAIL_ROWS = must_fail_rows()


def test_must_fail_readme_covers_every_hybrid_file():
    assert set(MUST_FAIL_ROWS) == {p.name for p in MUST_FAIL.glob("hybrid-*")} | {
        p.name for p in MUST_FAIL.glob("zstd-*")
    }
    assert len(MUST_FAIL_ROWS) >= 5


@pytest.mark.parametrize("name", sorted(MUST_FAIL_ROWS))
def test_must_fail(name):
    import nacrith.errors as E

    expected = getattr(E, MUST_FAIL_ROWS[name])
    with pytest.raises(E.NacrithError) as info:
        decode((MUST_FAIL / name).read_bytes())  # fails before any model is needed
    assert type(info.value) is expected, f"{name}: {type(info.value).__name__}: {info.value}"


def test_golden_zstd_archive_decodes():
    sys.path.insert(0, str(FORMATS))
    import make_container_examples as gen

    blob = (FORMATS / "golden" / "container" / "zstd-fox.nc").read_bytes()
    assert container.read_info(io.BytesIO(blob)).header.mode == container.MODE_ZSTD
    assert decode(blob) == gen.FOX_TEXT


# -- through the model (small inputs) -------------------------------------------------------


def mode_of(blob: bytes) -> int:
    return container.read_info(io.BytesIO(blob)).header.mode


MIXED = rng_bytes(300, 11) + PROSE * 2 + rng_bytes(120, 12) + UTF16_TEXT.encode("utf-16-le") + rng_bytes(40, 13)


@pytest.mark.parametrize(
    "name,data",
    [
        ("mixed", MIXED),
        ("utf-16", ("\ufeff" + UTF16_TEXT).encode("utf-16-le")),
        ("latin-1", rng_bytes(64, 14) + LATIN1_TEXT.encode("latin-1")),
    ],
)
def test_hybrid_round_trip(codec, name, data):
    blob = codec.compress(data, fallback=False)
    assert mode_of(blob) == container.MODE_HYBRID
    assert codec.decompress(blob) == data
    smallest = codec.compress(data)
    assert len(smallest) <= min(len(blob), zstd19(data) + 64)
    assert codec.decompress(smallest) == data


def test_damaged_hybrid_text_is_detected(codec):
    blob = bytearray(codec.compress(MIXED, fallback=False))
    blob[-40] ^= 0x10  # inside the last model block
    with pytest.raises(ChecksumError):
        codec.decompress(bytes(blob))


def test_golden_hybrid_archive(codec):
    sys.path.insert(0, str(FORMATS))
    import make_hybrid_golden as gen

    original = (gen.HERE / "mixed.bin").read_bytes()
    golden = (gen.HERE / "mixed.bin.nc").read_bytes()
    assert original == gen.DATA and mode_of(golden) == container.MODE_HYBRID
    assert codec.decompress(golden) == original
    # The same file in container version 1 (written by the last version that wrote it).
    v1 = (gen.HERE / "mixed.v1.nc").read_bytes()
    assert container.read_info(io.BytesIO(v1)).header.version == 1
    assert codec.decompress(v1) == original
    # The bitstream is pinned, header included (a portable archive records no machine).
    assert codec.compress(original, fallback=False) == golden


def test_tar_of_project_sources(codec):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("nacrith/__init__.py", "tests/conftest.py"):
            data = (ROOT / name).read_bytes()[:400]
            member = tarfile.TarInfo(name)
            member.size, member.mtime = len(data), 1_700_000_000
            tar.addfile(member, io.BytesIO(data))
    data = buf.getvalue()
    assert any(r.kind == Kind.UTF8 for r in segment.segment(data))
    blob = codec.compress(data)
    assert len(blob) <= zstd19(data) + 64
    assert codec.decompress(blob) == data


def test_corpora_prefixes(codec, corpora_dir):
    for name in ("alice29.txt", "html", "urls.10K", "geo.protodata", "fireworks.jpeg"):
        data = (corpora_dir / name).read_bytes()[:2048]
        blob = codec.compress(data)
        assert len(blob) <= zstd19(data) + 64, name
        assert codec.decompress(blob) == data, name
