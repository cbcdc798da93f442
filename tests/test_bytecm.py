"""bytecm, the bitwise context-mixing coder of binary data, and its archive modes.

Round trips, damage (truncation, flipped bits: an error or other bytes, which the block CRC
rejects; never a hang), the pinned golden bitstream, the mode 4 must-fail files, the mode 2
region-table flag, and a check that the compiled coder contains no floating point.
"""

from __future__ import annotations

import io
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nacrith import archive, bytecm, bytemodes, container, hybrid
from nacrith.errors import FormatError, NacrithError
from nacrith.segment import Kind

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ROOT / "formats"
MUST_FAIL = FORMATS / "must-fail"
GEO = ROOT.parent / "shared" / "corpora" / "geo.protodata"

sys.path.insert(0, str(FORMATS))
import make_bytecm_golden as golden  # noqa: E402


def rng_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def round_trip(data: bytes) -> bytes:
    payload = bytecm.compress(data)
    assert payload is not None
    assert bytecm.decompress(payload, len(data)) == data
    return payload


def records(n: int) -> bytes:
    """Fixed-layout records (integers and short names), like a database page."""
    import struct

    out = bytearray()
    for i in range(n):
        name = golden.NAMES[(i * 5) % len(golden.NAMES)]
        out += struct.pack("<IHhq", i, (i * 37) % 1000, -i * 3, i * 1_000_003) + bytes([len(name)]) + name
    return bytes(out)


STRUCTURED = records(1500)  # 32 KB: zstd -19 15,047 bytes, bytecm about 12,050


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\xff",
        bytes(range(256)),
        bytes(range(256)) * 4,
        bytes(20000),
        b"\xff" * 5000,
        rng_bytes(3000, 1),
        STRUCTURED,
        b"abc" * 3000 + rng_bytes(500, 2) + b"abc" * 100,
    ],
    ids=["empty", "zero", "ff", "all-256", "all-256x4", "zeros", "ffs", "random", "structured", "repeats"],
)
def test_round_trip(data):
    round_trip(data)


def test_compresses_structured_data_below_zstd():
    payload = round_trip(STRUCTURED)
    assert len(payload) < 0.85 * len(zstandard.ZstdCompressor(level=19).compress(STRUCTURED))
    assert len(round_trip(bytes(20000))) < 40


@pytest.mark.skipif(not GEO.is_file(), reason="shared corpora not present")
def test_geo_protodata_beats_xz():
    data = GEO.read_bytes()
    payload = round_trip(data)
    assert len(payload) < 11912  # xz -9e


@pytest.mark.parametrize("mem_log", [bytecm.MIN_MEM_LOG, 18])
def test_mem_log_is_recorded(mem_log):
    payload = bytecm.compress(STRUCTURED, mem_log=mem_log)
    assert payload[:2] == bytes([bytecm.VERSION, mem_log])
    assert bytecm.decompress(payload, len(STRUCTURED)) == STRUCTURED


def test_mem_log_for_input_size():
    assert bytecm.mem_log_for(0) == bytecm.MIN_MEM_LOG
    assert bytecm.mem_log_for(1 << 30) == bytecm.MAX_MEM_LOG
    with pytest.raises(ValueError):
        bytecm.compress(b"x", mem_log=bytecm.MAX_MEM_LOG + 1)


def test_random_data_that_expands_is_refused():
    assert bytecm.compress(rng_bytes(100_000, 3)) is None


def test_bad_headers():
    with pytest.raises(FormatError):
        bytecm.decompress(b"", 5)
    with pytest.raises(FormatError):
        bytecm.decompress(bytes([bytecm.VERSION, bytecm.MAX_MEM_LOG + 1]) + b"\x00" * 8, 5)
    with pytest.raises(NacrithError):
        bytecm.decompress(bytes([bytecm.VERSION + 1, 16]) + b"\x00" * 8, 5)


def test_truncated_payload_gives_error_or_other_bytes():
    data = STRUCTURED
    payload = round_trip(data)
    for cut in list(range(0, 12)) + list(range(12, len(payload), 97)) + [len(payload) - 1]:
        try:
            out = bytecm.decompress(payload[:cut], len(data))
        except FormatError:
            continue
        assert len(out) == len(data) and out != data, cut


def test_flipped_bits_give_error_or_other_bytes():
    data = STRUCTURED
    payload = bytearray(round_trip(data))
    rng = random.Random(5)
    for _ in range(20):
        damaged = bytearray(payload)
        pos = rng.randrange(2, len(damaged) - 4)  # the last bytes may be don't-care padding
        damaged[pos] ^= 1 << rng.randrange(8)
        try:
            assert bytecm.decompress(bytes(damaged), len(data)) != data
        except FormatError:  # decoding ran past the end of the payload
            pass


def test_garbage_payloads_decode_to_some_bytes_without_hanging():
    for seed in range(5):
        garbage = bytes([bytecm.VERSION, 16]) + rng_bytes(50 + 2000 * seed, seed)
        try:
            assert len(bytecm.decompress(garbage, 4000)) == 4000
        except FormatError:  # decoding ran past the end of the payload
            pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_hypothesis_round_trip(data):
    payload = bytecm.compress(data)
    if payload is None:  # expands by more than 64 bytes: only for incompressible data
        assert len(data) > 64
    else:
        assert bytecm.decompress(payload, len(data)) == data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"\x00\x00", b"ab", b"\x08\x96\x01", b"\xff", b"name=", b"\x12\x07"]), max_size=150))
def test_hypothesis_round_trip_structured(pieces):
    round_trip(b"".join(pieces))


def test_no_floating_point_in_the_compiled_coder():
    import numba

    bytecm.compress(b"warm up")
    fresh = numba.njit(bytecm._run.py_func)  # the cached dispatcher cannot show its IR
    (sig,) = bytecm._run.signatures
    fresh.compile(sig)
    ir = fresh.inspect_llvm(sig)
    assert "define" in ir
    body = "\n".join(line for line in ir.splitlines() if not line.startswith(("declare", "!", "attributes")))
    found = set(re.findall(r"\b(double|float|fadd|fmul|fdiv|fsub|sitofp|uitofp|fptosi|fptoui|fcmp)\b", body))
    assert not found


# -- archives ---------------------------------------------------------------------------------


def read_bytecm(blob: bytes) -> bytes:
    reader = container.ArchiveReader(io.BytesIO(blob))
    assert reader.header.mode == container.MODE_BYTECM
    out = b"".join(bytemodes.decode(reader))
    assert reader.trailer is not None and reader.trailer.original_size == len(out)
    return out


def test_golden_bytecm_archive_is_reproduced_and_decodes():
    original = (golden.HERE / "records.bin").read_bytes()
    blob = (golden.HERE / "records.bin.nc").read_bytes()
    assert original == golden.DATA
    assert bytemodes.bytecm_archive(original, container_version=1) == blob  # pins the bitstream
    v2 = (golden.HERE.parent / "container" / "v2-bytecm-records.nc").read_bytes()
    assert bytemodes.bytecm_archive(original) == v2  # the same payload in container version 2
    assert read_bytecm(v2) == original
    assert read_bytecm(blob) == original
    old = (golden.HERE / "records.v1.nc").read_bytes()  # the first version still decodes
    assert bytemodes.bytecm_archive(original, version=1, container_version=1) == old
    assert read_bytecm(old) == original
    assert len(blob) < len(old)
    info = container.read_info(io.BytesIO(blob))
    assert "4 (bytecm)" in container.format_info(info)


def test_compress_picks_bytecm_when_smaller_and_never_worse_than_zstd():
    blob = archive.compress(None, STRUCTURED)
    assert container.read_info(io.BytesIO(blob)).header.mode == container.MODE_BYTECM
    assert len(blob) < len(bytemodes.zstd_archive(STRUCTURED))
    assert read_bytecm(blob) == STRUCTURED
    for data in (rng_bytes(5000, 7), b"", b"\x00"):
        blob = archive.compress(None, data)
        assert len(blob) <= len(zstandard.ZstdCompressor(level=19).compress(data)) + 64
        assert len(blob) <= len(data) + 64


def test_bytecm_is_not_tried_above_the_limit(monkeypatch):
    monkeypatch.setattr(bytemodes, "BYTECM_MAX_BYTES", 1000)
    assert bytemodes.bytecm_archive(STRUCTURED) is None
    blob = archive.compress(None, STRUCTURED)
    assert container.read_info(io.BytesIO(blob)).header.mode == container.MODE_ZSTD


def test_damaged_bytecm_archive_is_a_checksum_error():
    from nacrith.errors import ChecksumError

    blob = bytearray(bytemodes.bytecm_archive(STRUCTURED))
    blob[len(blob) // 2] ^= 4
    with pytest.raises((ChecksumError, FormatError)):
        read_bytecm(bytes(blob))


def test_mode_4_archives_decode_through_the_public_api(codec):
    """``Codec.compress`` chooses bytecm for these records and ``Codec.decompress`` decodes
    mode 4 (both versions' golden archives too), whichever module dispatches the modes."""
    blob = codec.compress(STRUCTURED)
    assert container.read_info(io.BytesIO(blob)).header.mode == container.MODE_BYTECM
    assert codec.decompress(blob) == STRUCTURED
    for name in ("records.bin.nc", "records.v1.nc"):
        blob = (golden.HERE / name).read_bytes()
        assert container.read_info(io.BytesIO(blob)).header.mode == container.MODE_BYTECM
        assert codec.decompress(blob) == golden.DATA


def must_fail_rows() -> dict[str, str]:
    text = (MUST_FAIL / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `(bytecm-[^`]+)` \| `(\w+)` \|", text, re.M))


MUST_FAIL_ROWS = must_fail_rows()


def test_must_fail_readme_covers_every_bytecm_file():
    assert set(MUST_FAIL_ROWS) == {p.name for p in MUST_FAIL.glob("bytecm-*")}
    assert len(MUST_FAIL_ROWS) >= 5


@pytest.mark.parametrize("name", sorted(MUST_FAIL_ROWS))
def test_must_fail(name):
    import nacrith.errors as E

    expected = getattr(E, MUST_FAIL_ROWS[name])
    with pytest.raises(E.NacrithError) as info:
        reader = container.ArchiveReader(io.BytesIO((MUST_FAIL / name).read_bytes()))
        b"".join(bytemodes.decode(reader))
    assert type(info.value) is expected, f"{name}: {type(info.value).__name__}: {info.value}"


# -- mode 2: the region table records the binary section's coder ------------------------------


def test_region_table_records_bytecm_section():
    entries = (hybrid.Entry(Kind.BINARY, 10, 0), hybrid.Entry(Kind.UTF8, 6, 6), hybrid.Entry(Kind.BINARY, 3, 0))
    for flag, code in ((False, 0), (True, hybrid.BYTECM_BINARY_CODE)):
        raw = hybrid.encode_table(hybrid.Table(1, entries, flag))
        assert raw[1] == code and raw[5] == code
        assert hybrid.parse_table(raw, 3, container.DEFAULT_LIMITS) == hybrid.Table(1, entries, flag)
    mixed = bytes([1, 0, 10, 1, 6, hybrid.BYTECM_BINARY_CODE, 3])
    with pytest.raises(FormatError, match="mixes"):
        hybrid.parse_table(mixed, 3, container.DEFAULT_LIMITS)


def test_read_sections_decodes_a_bytecm_binary_section():
    """A mode 2 archive with a bytecm binary section, read up to its (model-coded) text."""
    binary = STRUCTURED
    text = b"hello!"
    entries = (hybrid.Entry(Kind.BINARY, len(binary), 0), hybrid.Entry(Kind.UTF8, len(text), len(text)))
    blocks = bytemodes.bytecm_blocks(binary)
    table = hybrid.encode_table(hybrid.Table(len(blocks), entries, True))
    frame = zstandard.ZstdCompressor(level=19).compress(table)
    params = container.CodecParams(model_sha256=bytes(32), **_example_params())
    data = binary + text
    digest = container.new_digest()
    digest.update(data)
    blob = b"".join(
        [
            container.encode_header(container.MODE_HYBRID, params),
            container.encode_block(len(entries), len(table), container.block_crc32(table), frame),
            *(container.encode_block(b.n_symbols, b.n_bytes, b.crc32, b.payload) for b in blocks),
            container.encode_block(2, len(text), container.block_crc32(text), b"\x00\x01"),
            container.encode_end(len(data), digest.digest()),
        ]
    )
    sections = hybrid.read_sections(container.ArchiveReader(io.BytesIO(blob)))
    assert sections.table.bytecm and sections.binary == binary
    assert sections.assemble(text) == data


def _example_params() -> dict:
    import make_container_examples as gen

    p = dict(gen.MODEL_PARAMS)
    flash = p.pop("flash_attn")
    return dict(p, flash_attn=bool(flash))


def test_bit_predictions_are_what_compress_codes_with():
    # The trace (for mixing bytecm per bit with the token models) must be the coded
    # probabilities: their ideal cost is the payload's size, to within the coder's flush.
    data = b"".join(b"record %d: value=%d;\n" % (i, i * i % 97) for i in range(400))
    p = bytecm.bit_predictions(data)
    assert p.shape == (8 * len(data),) and p.min() >= 32 and p.max() <= 65535 - 32
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    ideal = -np.log2(np.where(bits == 1, p, 65536 - p) / 65536).sum() / 8
    coded = len(bytecm.compress(data)) - bytecm.HEADER_BYTES
    assert abs(coded - ideal) <= 6, (coded, ideal)
