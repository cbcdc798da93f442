"""Tests for the container formats v1 and v2 (nacrith.container) and the error tree.

Why: the container is the only part of an archive that is parsed before any
model is trusted, so it must reject every malformed input with the documented
exception and never allocate from an untrusted length.  The golden and
must-fail files in ``formats/`` are built independently by
``formats/make_container_examples.py``; these tests tie that generator, the
spec's README tables and the reference implementation together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import re
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nacrith import container as C
from nacrith import errors as E

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ROOT / "formats"
GOLDEN = FORMATS / "golden" / "container"
MUST_FAIL = FORMATS / "must-fail"

# The number of examples comes from the fuzz profile (tests/conftest.py: "ci" or "long").
HYP = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "make_container_examples", FORMATS / "make_container_examples.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEN = _load_generator()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def stored_v1(data: bytes, **kwargs) -> bytes:
    """A version 1 stored archive (the layout most reader tests below take apart)."""
    return C.encode_stored(data, version=1, **kwargs)


def read_all(data: bytes, limits: C.Limits = C.DEFAULT_LIMITS) -> tuple[C.ArchiveReader, list]:
    """Parse a whole archive member; return the reader and its blocks."""
    reader = C.ArchiveReader(io.BytesIO(data), limits)
    blocks = list(reader.blocks())
    assert reader.trailer is not None
    return reader, blocks


def decode_stored(reader: C.ArchiveReader) -> bytes:
    """Minimal mode 1 decoder doing the decoder-level checks of spec section 6 (both versions)."""
    assert reader.header.mode == C.MODE_STORED
    out = bytearray()
    for index, (bh, payload) in enumerate(reader.blocks()):
        actual = zlib.crc32(payload) & 0xFFFFFFFF
        if len(payload) != bh.n_bytes or actual != bh.crc32:
            raise E.ChecksumError(block_index=index, expected=bh.crc32, actual=actual)
        out += payload
    assert reader.trailer is not None
    C.verify_original(reader.trailer, bytes(out))
    return bytes(out)


def example_params(**overrides) -> C.CodecParams:
    values = dict(
        model_sha256=GEN.MODEL_SHA256,
        tokenizer=1,
        cdf_total_bits=24,
        block_tokens=2048,
        flash_attn=False,
        type_k=1,
        type_v=1,
        start_token=1,
        escape_token=2,
        stream_tokens=4096,
        window=2048,
        slide=512,
        sinks=4,
        backend="llama-cpp-python 0.3.36",
    )
    values.update(overrides)
    return C.CodecParams(**values)


def model_archive(blocks: list[tuple[int, bytes, bytes]], params: C.CodecParams | None = None) -> bytes:
    """A mode 0 archive from (n_symbols, original, payload) triples."""
    parts = [C.encode_header(C.MODE_MODEL, params or example_params())]
    original = b""
    for n_symbols, raw, payload in blocks:
        parts.append(C.encode_block(n_symbols, len(raw), C.block_crc32(raw), payload))
        original += raw
    parts.append(C.encode_end(len(original), hashlib.blake2b(original, digest_size=16).digest()))
    return b"".join(parts)


def must_fail_table() -> dict[str, tuple[str, str]]:
    text = (MUST_FAIL / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(container-[^`]+)` \| `(\w+)` \| (reader|decoder) \|", text, re.M)
    return {name: (exc, layer) for name, exc, layer in rows}


class Trickle(io.RawIOBase):
    """A non-seekable stream returning at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int = 1) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = len(self._data)
        n = min(n, self._step)
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls,code,parents",
    [
        (E.NacrithError, 1, (Exception,)),
        (E.FormatError, 3, (E.NacrithError, ValueError)),
        (E.TruncatedError, 3, (E.FormatError, EOFError)),
        (E.UnsupportedVersionError, 3, (E.FormatError,)),
        (E.ChecksumError, 4, (E.NacrithError,)),
        (E.ModelError, 5, (E.NacrithError,)),
        (E.ModelNotFoundError, 5, (E.ModelError,)),
        (E.ModelMismatchError, 5, (E.ModelError,)),
        (E.EnvironmentMismatchError, 6, (E.NacrithError,)),
        (E.LimitError, 7, (E.NacrithError,)),
        (E.TokenizationError, 1, (E.NacrithError,)),
    ],
)
def test_error_tree(cls, code, parents):
    assert cls.exit_code == code
    for parent in parents:
        assert issubclass(cls, parent)


def test_checksum_error_attributes_and_message():
    err = E.ChecksumError(block_index=3, expected=0x1234, actual=0xABCD)
    assert (err.block_index, err.expected, err.actual) == (3, 0x1234, 0xABCD)
    msg = str(err)
    assert "block 3" in msg and "0x00001234" in msg and "0x0000abcd" in msg
    whole = E.ChecksumError(expected=b"\x01" * 16, actual="ff" * 16)
    assert whole.block_index is None
    assert "digest" in str(whole) and "01" * 16 in str(whole) and "ff" * 16 in str(whole)
    assert str(E.ChecksumError("custom")) == "custom"


def test_model_mismatch_error_names_both_hashes():
    a, m = "a" * 64, "b" * 64
    err = E.ModelMismatchError(archive_sha256=a, model_sha256=m)
    assert err.archive_sha256 == a and err.model_sha256 == m
    assert a in str(err) and m in str(err) and "--model" in str(err)


# ---------------------------------------------------------------------------
# golden files and the generator
# ---------------------------------------------------------------------------


def test_generator_reproduces_checked_in_files():
    built = GEN.build()
    for rel, data in built.items():
        path = FORMATS / rel
        assert path.is_file(), f"{rel} missing: run formats/make_container_examples.py"
        assert path.read_bytes() == data, f"{rel} differs from the generator"
    on_disk = {
        f"must-fail/{p.name}" for g in ("container-*", "hybrid-*", "zstd-*", "bytecm-*", "v2-*") for p in MUST_FAIL.glob(g)
    }
    on_disk |= {f"golden/container/{p.name}" for p in GOLDEN.iterdir() if p.suffix != ".md"}
    assert on_disk == set(built)


def test_encoder_matches_independent_golden_bytes():
    assert stored_v1(GEN.FOX_TEXT, block_bytes=GEN.FOX_BLOCK_BYTES) == (
        GOLDEN / "stored-fox.nc"
    ).read_bytes()
    assert stored_v1(b"") == (GOLDEN / "stored-empty.nc").read_bytes()
    assert C.encode_header(C.MODE_MODEL, example_params()) == (
        GOLDEN / "model-header.bin"
    ).read_bytes()


def test_constants():
    assert C.MAGIC == b"\x89NCR"
    assert C.FORMAT_VERSION == 2 and C.READ_VERSIONS == (1, 2)
    assert (C.MODE_MODEL, C.MODE_STORED) == (0, 1)
    assert C.DEFAULT_LIMITS == C.Limits(64 << 20, 80 << 20, 64 << 20, 1 << 40)


def test_golden_stored_fox_parses():
    data = (GOLDEN / "stored-fox.nc").read_bytes()
    reader, blocks = read_all(data)
    assert reader.header == C.Header(version=1, mode=C.MODE_STORED, params=None, size=12)
    assert [bh.n_bytes for bh, _ in blocks] == [32, 13]
    assert b"".join(p for _, p in blocks) == GEN.FOX_TEXT
    assert reader.trailer == C.Trailer(45, hashlib.blake2b(GEN.FOX_TEXT, digest_size=16).digest())
    assert reader.bytes_read == len(data) == 100
    assert decode_stored(C.ArchiveReader(io.BytesIO(data))) == GEN.FOX_TEXT


def test_golden_stored_empty_parses():
    data = (GOLDEN / "stored-empty.nc").read_bytes()
    reader, blocks = read_all(data)
    assert blocks == [] and reader.trailer.original_size == 0 and len(data) == 41
    info = C.read_info(io.BytesIO(data))
    assert (info.n_blocks, info.total_bytes, info.ratio, info.bits_per_byte) == (0, 0, None, None)
    assert "n/a" in C.format_info(info)


def test_golden_model_header_parses_then_truncates():
    data = (GOLDEN / "model-header.bin").read_bytes()
    reader = C.ArchiveReader(io.BytesIO(data))
    assert reader.header == C.Header(1, C.MODE_MODEL, example_params(), len(data))
    with pytest.raises(E.TruncatedError):
        list(reader.blocks())


def test_read_info_and_format_info():
    data = model_archive([(3, b"hello", b"\x01\x02"), (2, b"world!", b"\x03")])
    info = C.read_info(io.BytesIO(data))
    assert info.header.params == example_params()
    assert (info.n_blocks, info.total_symbols, info.total_bytes) == (2, 5, 11)
    assert info.compressed_size == len(data)
    text = C.format_info(info)
    assert GEN.MODEL_SHA256.hex() in text
    assert "model" in text and "llama-cpp-python 0.3.36" in text
    assert "2048" in text and f"{len(data)} bytes" in text and "11 bytes" in text
    assert re.search(r"^stream tokens: +4096 symbols$", text, re.M)
    assert re.search(r"^window: +2048 positions$", text, re.M)
    assert re.search(r"^slide: +512 positions$", text, re.M)
    assert re.search(r"^sinks: +4 positions$", text, re.M)
    assert "overlap" not in text
    assert f"{11 / len(data):.3f}x" in text and f"{8 * len(data) / 11:.4f}" in text
    assert len(text.splitlines()) >= 10


# ---------------------------------------------------------------------------
# must-fail files
# ---------------------------------------------------------------------------

TABLE = must_fail_table()


def test_must_fail_readme_covers_every_file():
    assert set(TABLE) == {p.name for p in MUST_FAIL.glob("container-*")}
    assert len(TABLE) >= 10


@pytest.mark.parametrize("name", sorted(TABLE))
def test_must_fail(name):
    exc_name, layer = TABLE[name]
    expected = getattr(E, exc_name)
    data = (MUST_FAIL / name).read_bytes()
    with pytest.raises(E.NacrithError) as info:
        if layer == "reader":
            read_all(data)
        else:
            read_all(data)  # structurally valid ...
            decode_stored(C.ArchiveReader(io.BytesIO(data)))  # ... but not the data
    assert type(info.value) is expected, f"{name}: {type(info.value).__name__}: {info.value}"
    assert str(info.value)


def test_must_fail_details():
    with pytest.raises(E.FormatError, match="not a nacrith archive"):
        read_all((MUST_FAIL / "container-bad-magic.nc").read_bytes())
    with pytest.raises(E.ChecksumError) as info:
        decode_stored(C.ArchiveReader(io.BytesIO((MUST_FAIL / "container-block-crc-mismatch.nc").read_bytes())))
    assert info.value.block_index == 0
    with pytest.raises(E.ChecksumError) as info:
        decode_stored(C.ArchiveReader(io.BytesIO((MUST_FAIL / "container-digest-mismatch.nc").read_bytes())))
    assert info.value.block_index is None


# ---------------------------------------------------------------------------
# reader behaviour
# ---------------------------------------------------------------------------


def test_reader_stops_at_trailer_and_iter_members():
    one = stored_v1(b"first member", block_bytes=5)
    two = model_archive([(1, b"x", b"\xff")])
    stream = io.BytesIO(one + two)
    readers = []
    for reader in C.iter_members(stream):
        list(reader.blocks())
        readers.append(reader)
        assert stream.tell() == (len(one) if len(readers) == 1 else len(one) + len(two))
    assert [r.header.mode for r in readers] == [C.MODE_STORED, C.MODE_MODEL]
    infos = C.read_info_all(io.BytesIO(one + two))
    assert [i.compressed_size for i in infos] == [len(one), len(two)]


def test_trailing_garbage_and_partial_magic():
    one = stored_v1(b"abc")
    with pytest.raises(E.FormatError, match="trailing data") as info:
        C.read_info_all(io.BytesIO(one + b"garbage"))
    assert type(info.value) is E.FormatError
    with pytest.raises(E.TruncatedError):
        C.read_info_all(io.BytesIO(one + C.MAGIC[:2]))


def test_iter_members_requires_consuming_blocks():
    gen = C.iter_members(io.BytesIO(stored_v1(b"abc")))
    next(gen)
    with pytest.raises(RuntimeError):
        next(gen)


def test_blocks_only_once():
    reader = C.ArchiveReader(io.BytesIO(stored_v1(b"abc")))
    list(reader.blocks())
    with pytest.raises(RuntimeError):
        reader.blocks()


def test_short_reads_from_non_seekable_stream():
    data = stored_v1(bytes(range(256)) * 3, block_bytes=100)
    reader = C.ArchiveReader(Trickle(data, step=3))
    assert decode_stored(reader) == bytes(range(256)) * 3


def test_empty_and_tiny_inputs():
    with pytest.raises(E.TruncatedError, match="empty"):
        C.ArchiveReader(io.BytesIO(b""))
    with pytest.raises(E.TruncatedError):
        C.ArchiveReader(io.BytesIO(b"\x89N"))
    with pytest.raises(E.FormatError, match="not a nacrith archive") as info:
        C.ArchiveReader(io.BytesIO(b"PK"))
    assert type(info.value) is E.FormatError


def test_version_zero_is_corrupt_not_unsupported():
    data = bytearray(stored_v1(b"abc"))
    data[4] = 0
    with pytest.raises(E.FormatError) as info:
        read_all(bytes(data))
    assert type(info.value) is E.FormatError


def _raw_header(mode: int, params: bytes) -> bytes:
    body = C.MAGIC + struct.pack("<BBH", 1, mode, len(params)) + params
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    "params,exc",
    [
        (b"\x02\x01\x01\x02\x01\x01", E.FormatError),  # duplicate key 2
        (b"\x00\x00", E.FormatError),  # key 0
        (b"\x01", E.FormatError),  # cut-off entry
        (b"\x01\x20\x00", E.FormatError),  # value overruns params
        (b"\x02\x02\x01\x01", E.FormatError),  # tokenizer with wrong length
        (b"\x02\x01\x01", E.FormatError),  # stored mode: partial param set
        (b"\xff\x00", E.UnsupportedVersionError),  # reserved key
    ],
)
def test_param_section_errors(params, exc):
    with pytest.raises(E.NacrithError) as info:
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_STORED, params)))
    assert type(info.value) is exc


def test_mode0_without_params_and_bad_values():
    with pytest.raises(E.FormatError):
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"")))
    entries = GEN.model_params_entries()
    bad_flash = [e if e[0] != 5 else b"\x05\x01\x02" for e in entries]
    with pytest.raises(E.FormatError, match="flash_attn"):
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"".join(bad_flash))))
    bad_utf8 = [e if e[0] != 9 else b"\x09\x02\xff\xfe" for e in entries]
    with pytest.raises(E.FormatError, match="UTF-8"):
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"".join(bad_utf8))))
    no_backend = [e for e in entries if e[0] != 9]
    header = C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"".join(no_backend)))).header
    assert header.params == example_params(backend="")


STREAM_KEYS = {10: "stream_tokens", 11: "window", 12: "slide", 13: "sinks"}


def _with_entry(key: int, value: bytes) -> bytes:
    """The example model params with the value of ``key`` replaced (length taken from ``value``)."""
    return b"".join(
        e if e[0] != key else bytes([key, len(value)]) + value for e in GEN.model_params_entries()
    )


def test_stream_keys_registry():
    entries = GEN.model_params_entries()
    assert [e[0] for e in entries] == list(range(1, 14))
    assert {int(C.ParamKey[n.upper()]): n for n in STREAM_KEYS.values()} == STREAM_KEYS
    fields = list(C.CodecParams.__dataclass_fields__)
    assert fields[fields.index("escape_token") + 1 : fields.index("backend")] == list(STREAM_KEYS.values())
    assert "context_overlap" not in fields and not hasattr(C.ParamKey, "CONTEXT_OVERLAP")


@pytest.mark.parametrize("key", sorted(STREAM_KEYS))
def test_stream_keys_required_in_model_mode(key):
    entries = [e for e in GEN.model_params_entries() if e[0] != key]
    with pytest.raises(E.FormatError, match=f"missing: {STREAM_KEYS[key]}") as info:
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"".join(entries))))
    assert type(info.value) is E.FormatError
    # ... and in a stored header that records params (all required keys or none).
    with pytest.raises(E.FormatError, match=STREAM_KEYS[key]):
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_STORED, b"".join(entries))))


@pytest.mark.parametrize("key", sorted(STREAM_KEYS))
@pytest.mark.parametrize("length", [0, 2, 3, 5, 8])
def test_stream_keys_fixed_length(key, length):
    value = (struct.pack("<I", 100) + bytes(4))[:length]
    with pytest.raises(E.FormatError, match=rf"{STREAM_KEYS[key]} has {length} bytes, expected 4") as info:
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, _with_entry(key, value))))
    assert type(info.value) is E.FormatError


def test_stream_keys_order():
    entries = GEN.model_params_entries()
    for i in range(8, 12):  # swap neighbours among keys 9..13
        swapped = list(entries)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        with pytest.raises(E.FormatError, match="out-of-order") as info:
            C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"".join(swapped))))
        assert type(info.value) is E.FormatError
    duplicated = entries[:11] + [entries[10]] + entries[11:]  # key 11 twice
    with pytest.raises(E.FormatError, match="duplicate"):
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"".join(duplicated))))
    # The encoder writes them last, in key order, whether or not backend is present.
    for params in (example_params(), example_params(stream_tokens=7, window=9, slide=1, sinks=0, backend="")):
        raw = C.encode_header(C.MODE_MODEL, params)
        assert raw[-28:-4] == b"".join(
            bytes([k, 4]) + struct.pack("<I", getattr(params, n)) for k, n in STREAM_KEYS.items()
        )
        assert C.ArchiveReader(io.BytesIO(raw)).header.params == params
    # The next registered key would be 16: still unknown, hence unsupported.
    with pytest.raises(E.UnsupportedVersionError, match="key 16"):
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"".join(entries) + b"\x10\x00")))
    # Key 14 (ensemble) is registered; its value is opaque to the container (checked by the codec).
    params = C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, b"".join(entries) + b"\x0e\x01\x01"))).header.params
    assert params.ensemble == b"\x01"


VALID_STREAM_PARAMS = [
    dict(stream_tokens=1, window=2, slide=1, sinks=0),
    dict(stream_tokens=0xFFFFFFFF, window=8192, slide=8191, sinks=0),
    dict(stream_tokens=1024, window=8192, slide=1, sinks=8190),
    dict(stream_tokens=4096, window=2048, slide=512, sinks=4),
]
INVALID_STREAM_PARAMS = [
    (dict(stream_tokens=0), "stream_tokens must be >= 1"),
    (dict(window=0), "window must be in"),
    (dict(window=1, slide=1, sinks=0), "window must be in"),
    (dict(window=8193), "window must be in"),
    (dict(window=0xFFFFFFFF), "window must be in"),
    (dict(slide=0), "slide must be >= 1"),
    (dict(slide=2044, sinks=4), "sinks \\+ slide must be < window"),  # equal to window
    (dict(slide=2048, sinks=0), "sinks \\+ slide must be < window"),
    (dict(slide=1, sinks=2047), "sinks \\+ slide must be < window"),
    (dict(slide=0xFFFFFFFF, sinks=0xFFFFFFFF), "sinks \\+ slide must be < window"),
]


@pytest.mark.parametrize("values", VALID_STREAM_PARAMS)
def test_stream_keys_valid_range(values):
    params = example_params(**values)
    raw = C.encode_header(C.MODE_MODEL, params)
    assert C.ArchiveReader(io.BytesIO(raw)).header.params == params


@pytest.mark.parametrize("values,match", INVALID_STREAM_PARAMS)
def test_stream_keys_out_of_range(values, match):
    with pytest.raises(ValueError, match=match):
        example_params(**values)
    # The reader rejects the same values as a corrupt header.
    raw = b"".join(
        e if e[0] not in STREAM_KEYS or STREAM_KEYS[e[0]] not in values
        else bytes([e[0], 4]) + struct.pack("<I", values[STREAM_KEYS[e[0]]])
        for e in GEN.model_params_entries()
    )
    with pytest.raises(E.FormatError, match=match) as info:
        C.ArchiveReader(io.BytesIO(_raw_header(C.MODE_MODEL, raw)))
    assert type(info.value) is E.FormatError


@pytest.mark.parametrize("name", list(STREAM_KEYS.values()))
def test_stream_params_are_required_u32(name):
    with pytest.raises(ValueError):
        example_params(**{name: 1 << 32})
    with pytest.raises(ValueError):
        example_params(**{name: -1})
    with pytest.raises(TypeError):
        example_params(**{name: 4.0})
    with pytest.raises(TypeError):
        example_params(**{name: True})
    fields = {f: getattr(example_params(), f) for f in C.CodecParams.__dataclass_fields__}
    del fields[name]
    with pytest.raises(TypeError):
        C.CodecParams(**fields)


def test_stored_mode_with_full_params_round_trips():
    data = stored_v1(b"payload", params=example_params())
    reader = C.ArchiveReader(io.BytesIO(data))
    assert reader.header.params == example_params()
    assert decode_stored(reader) == b"payload"


def test_block_with_zero_bytes_is_corrupt():
    data = C.encode_header(C.MODE_MODEL, example_params()) + b"\x01\x00\x00" + struct.pack("<I", 0)
    with pytest.raises(E.FormatError) as info:
        read_all(data + C.encode_end(0, bytes(16)))
    assert type(info.value) is E.FormatError


def test_limits_are_enforced():
    data = model_archive([(10, b"0123456789", b"p" * 20)])
    for limits in (
        C.Limits(max_block_symbols=9),
        C.Limits(max_block_bytes=9),
        C.Limits(max_block_payload=19),
        C.Limits(max_total_bytes=9),
    ):
        with pytest.raises(E.LimitError):
            read_all(data, limits)
    read_all(data, C.Limits(10, 20, 10, 10))
    with pytest.raises(ValueError):
        C.Limits(max_block_bytes=0)


def test_huge_declared_payload_does_not_allocate(tmp_path):
    path = tmp_path / "huge.nc"
    # A 3 GiB payload claim in a ~130 byte file.
    path.write_bytes(_raw_header(C.MODE_MODEL, b"".join(GEN.model_params_entries()))
                     + GEN.block_fields(1, 1, 3 << 30, 0) + b"tiny")
    with path.open("rb") as f, pytest.raises(E.LimitError):
        list(C.ArchiveReader(f).blocks())
    permissive = C.Limits(max_block_payload=0xFFFFFFFF)
    tracemalloc.start()
    try:
        with path.open("rb") as f, pytest.raises(E.TruncatedError):
            list(C.ArchiveReader(f, permissive).blocks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak allocation {peak} bytes"
    with path.open("rb") as f, pytest.raises(E.TruncatedError):
        C.read_info(f, permissive)


# ---------------------------------------------------------------------------
# block varints
# ---------------------------------------------------------------------------

VARINT_CASES = [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (300, b"\xac\x02"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    ((1 << 28) - 1, b"\xff\xff\xff\x7f"),
    (1 << 28, b"\x80\x80\x80\x80\x01"),
    (0xFFFFFFFF, b"\xff\xff\xff\xff\x0f"),
]


def _stored_with_fields(fields: bytes, payload: bytes = b"x") -> bytes:
    """A stored archive whose single block has the given raw fields (before crc32)."""
    return (
        C.encode_header(C.MODE_STORED, None)
        + fields
        + struct.pack("<I", C.block_crc32(payload))
        + payload
        + C.encode_end(len(payload), hashlib.blake2b(payload, digest_size=16).digest())
    )


@pytest.mark.parametrize("value,encoded", VARINT_CASES)
def test_varint_encoding_is_minimal_leb128(value, encoded):
    assert GEN.leb128(value) == encoded
    if value:
        block = C.encode_block(value, 1, 0, b"")
        assert block == encoded + b"\x01\x00" + bytes(4)
        reader = C.ArchiveReader(io.BytesIO(
            C.encode_header(C.MODE_MODEL, example_params()) + block + C.encode_end(1, bytes(16))
        ), C.Limits(max_block_symbols=0xFFFFFFFF))
        assert [bh.n_symbols for bh, _ in reader.blocks()] == [value]
    assert C.encode_end(0, bytes(16))[:1] == b"\x00"


def test_block_field_sizes():
    assert len(C.encode_block(1, 1, 0, b"")) == 7
    assert len(C.encode_block(0xFFFFFFFF, 0xFFFFFFFF, 0, b"\x00" * 200)) == 5 + 5 + 2 + 4 + 200


@pytest.mark.parametrize(
    "fields,exc,match",
    [
        (b"\x81\x00\x01\x01", E.FormatError, "overlong"),  # n_symbols 1 in two bytes
        (b"\x01\x81\x80\x00\x01", E.FormatError, "overlong"),  # n_bytes, three bytes
        (b"\x01\x01\x81\x80\x80\x80\x00", E.FormatError, "overlong"),  # payload_len, five bytes
        (b"\x01\x80\x80\x80\x80\x10\x01", E.FormatError, "exceeds 32 bits"),  # 2**32
        (b"\x01\xff\xff\xff\xff\x7f\x01", E.FormatError, "exceeds 32 bits"),
        (b"\x01\x01\x80\x80\x80\x80\x80\x01", E.FormatError, "exceeds 32 bits"),  # 6 bytes
        (b"\x80\x80\x80\x80\x80", E.FormatError, "exceeds 32 bits"),  # continuation in 5th byte
    ],
)
def test_bad_varints(fields, exc, match):
    with pytest.raises(E.NacrithError, match=match) as info:
        read_all(_stored_with_fields(fields))
    assert type(info.value) is exc


def test_overlong_end_marker_is_corrupt():
    good = stored_v1(b"")
    bad = good[:12] + b"\x80\x00" + good[13:]
    with pytest.raises(E.FormatError, match="overlong") as info:
        read_all(bad)
    assert type(info.value) is E.FormatError


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_varint_cut_by_eof_is_truncated(cut):
    head = C.encode_header(C.MODE_STORED, None) + b"\x01\x01"
    with pytest.raises(E.TruncatedError):
        read_all(head + b"\xff\xff\xff\xff\x0f"[:cut])


def test_varint_limits_checked_before_payload():
    # Largest u32 sizes decode fine, then the limits (not the varint rules) reject them.
    fields = b"\xff\xff\xff\xff\x0f" * 3
    with pytest.raises(E.LimitError):
        read_all(_stored_with_fields(fields))


# ---------------------------------------------------------------------------
# encoder argument checks
# ---------------------------------------------------------------------------


def test_encoder_rejects_bad_arguments():
    with pytest.raises(ValueError):
        C.encode_header(C.MODE_MODEL, None)
    with pytest.raises(ValueError):
        C.encode_header(2, None)
    with pytest.raises(ValueError):
        C.encode_block(0, 1, 0, b"x")
    with pytest.raises(ValueError):
        C.encode_block(1, 0, 0, b"x")
    with pytest.raises(ValueError):
        C.encode_block(1, 1, 1 << 32, b"x")
    with pytest.raises(ValueError):
        C.encode_end(0, b"short")
    with pytest.raises(ValueError):
        example_params(model_sha256=b"\x00" * 31)
    with pytest.raises(ValueError):
        example_params(backend="x" * 256)
    with pytest.raises(ValueError):
        example_params(type_k=256)
    with pytest.raises(TypeError):
        example_params(flash_attn=1)


# ---------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------

@st.composite
def params_st(draw) -> C.CodecParams:
    window = draw(st.integers(C.MIN_WINDOW, C.MAX_WINDOW))
    slide = draw(st.integers(1, window - 1))
    return C.CodecParams(
        model_sha256=draw(st.binary(min_size=32, max_size=32)),
        tokenizer=draw(st.integers(0, 255)),
        cdf_total_bits=draw(st.integers(0, 255)),
        block_tokens=draw(st.integers(0, 0xFFFFFFFF)),
        flash_attn=draw(st.booleans()),
        type_k=draw(st.integers(0, 255)),
        type_v=draw(st.integers(0, 255)),
        start_token=draw(st.integers(0, 0xFFFFFFFF)),
        escape_token=draw(st.integers(0, 0xFFFFFFFF)),
        stream_tokens=draw(st.integers(1, 0xFFFFFFFF)),
        window=window,
        slide=slide,
        sinks=draw(st.integers(0, window - 1 - slide)),
        backend=draw(st.text(max_size=40)),
        fingerprint=draw(st.text(max_size=40)),
    )


blocks_st = st.lists(
    st.tuples(st.integers(1, 1000), st.binary(min_size=1, max_size=40), st.binary(max_size=40)),
    max_size=4,
)


@HYP
@given(params=params_st(), blocks=blocks_st)
def test_model_archive_round_trip(params, blocks):
    data = model_archive(blocks, params)
    reader, got = read_all(data)
    assert reader.header.params == params
    assert [(bh.n_symbols, bh.n_bytes, bh.crc32, p) for bh, p in got] == [
        (n, len(raw), C.block_crc32(raw), payload) for n, raw, payload in blocks
    ]
    assert reader.bytes_read == len(data)


@HYP
@given(data=st.binary(max_size=300), block_bytes=st.integers(1, 64))
def test_stored_round_trip(data, block_bytes):
    archive = stored_v1(data, block_bytes=block_bytes)
    assert decode_stored(C.ArchiveReader(io.BytesIO(archive))) == data


def _every_truncation(archive: bytes) -> None:
    for cut in range(len(archive)):
        with pytest.raises(E.TruncatedError):
            read_all(archive[:cut])


def test_every_truncation_of_golden_files():
    _every_truncation((GOLDEN / "stored-fox.nc").read_bytes())
    _every_truncation((GOLDEN / "stored-empty.nc").read_bytes())
    _every_truncation(model_archive([(3, b"hello", b"\x01\x02\x03"), (1, b"!", b"")]))


@HYP
@given(data=st.binary(max_size=120), block_bytes=st.integers(1, 50), cut=st.floats(0, 1, exclude_max=True))
def test_truncation_raises_truncated_error(data, block_bytes, cut):
    archive = stored_v1(data, block_bytes=block_bytes)
    with pytest.raises(E.TruncatedError):
        read_all(archive[: int(cut * len(archive))])


def _flip(archive: bytes, positions: list[int]) -> bytes:
    buf = bytearray(archive)
    for pos in positions:
        buf[(pos // 8) % len(buf)] ^= 1 << (pos % 8)
    return bytes(buf)


@HYP
@given(
    data=st.binary(max_size=100),
    block_bytes=st.integers(1, 40),
    flips=st.lists(st.integers(0, 1 << 20), min_size=1, max_size=4),
)
def test_bit_flips_stored(data, block_bytes, flips):
    damaged = _flip(stored_v1(data, block_bytes=block_bytes), flips)
    try:
        out = decode_stored(C.ArchiveReader(io.BytesIO(damaged)))
    except E.NacrithError:
        return
    assert out == data  # e.g. flips that cancel out


@HYP
@given(
    params=params_st(),
    blocks=blocks_st,
    flips=st.lists(st.integers(0, 1 << 20), min_size=1, max_size=4),
)
def test_bit_flips_model(params, blocks, flips):
    damaged = _flip(model_archive(blocks, params), flips)
    try:
        read_all(damaged)
        C.read_info(io.BytesIO(damaged))
    except E.NacrithError:
        pass


@HYP
@given(junk=st.binary(max_size=200))
def test_random_input_raises_only_nacrith_errors(junk):
    for prefix in (b"", C.MAGIC, C.MAGIC + b"\x01\x01\x00\x00"):
        try:
            read_all(prefix + junk)
        except E.NacrithError:
            pass



# ---------------------------------------------------------------------------
# version 2 (formats/container-v2.md)
# ---------------------------------------------------------------------------

FOX = GEN.FOX_TEXT
PRESET1 = C.MODEL_PRESETS[1]


def v2_params(**overrides) -> C.CodecParams:
    """Preset 1 with every version 2 default, portable kernels and the examples' probe."""
    values = dict(
        model_sha256=PRESET1.sha256,
        tokenizer=1,
        cdf_total_bits=24,
        block_tokens=1 << 19,
        flash_attn=True,
        type_k=8,
        type_v=1,
        start_token=PRESET1.start_token,
        escape_token=PRESET1.escape_token,
        stream_tokens=1 << 19,
        window=1024,
        slide=256,
        sinks=4,
        ensemble=b"\x02",
        kernels=C.KERNELS_PORTABLE,
        probe=GEN.V2_PROBE,
    )
    values.update(overrides)
    return C.CodecParams(**values)


def _best_params() -> C.CodecParams:
    """What --best writes (nacrith.levels.BEST): gemma3-270m in lockstep, window 2048, slide 512."""
    gemma = C.MODEL_PRESETS[2]
    return v2_params(
        model_sha256=gemma.sha256, start_token=gemma.start_token, escape_token=gemma.escape_token,
        window=2048, slide=512, level=C.LEVEL_BEST, calls=C.CALLS_LOCKSTEP,
    )


def read_members(data: bytes) -> list[tuple[C.ArchiveReader, list]]:
    """Every member's reader and blocks (payloads kept), trailing data checked."""
    out = []
    for reader in C.iter_members(io.BytesIO(data)):
        out.append((reader, list(reader.blocks())))
    return out


def decode_bytes_modes(data: bytes) -> bytes:
    """Decode stored, zstd and bytecm members with the real decoders, no model allowed."""
    from nacrith import archive

    def no_model(_):
        raise AssertionError("no model may be loaded for these archives")

    return archive.decompress(data, no_model)


def v2_must_fail_table() -> dict[str, tuple[str, str]]:
    text = (MUST_FAIL / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(v2-[^`]+)` \| `(\w+)` \| (reader|decoder) \|", text, re.M)
    return {name: (exc, layer) for name, exc, layer in rows}


V2_TABLE = v2_must_fail_table()


def test_v2_must_fail_readme_covers_every_file():
    assert set(V2_TABLE) == {p.name for p in MUST_FAIL.glob("v2-*")}
    assert len(V2_TABLE) >= 40


@pytest.mark.parametrize("name", sorted(V2_TABLE))
def test_v2_must_fail(name):
    exc_name, layer = V2_TABLE[name]
    data = (MUST_FAIL / name).read_bytes()
    with pytest.raises(E.NacrithError) as info:
        read_members(data)
        assert layer == "decoder", f"{name}: the reader accepted it"
        decode_bytes_modes(data)
    assert type(info.value) is getattr(E, exc_name), f"{name}: {type(info.value).__name__}: {info.value}"
    if isinstance(info.value, E.ChecksumError):
        expected_index = 0 if name == "v2-zstd-check-mismatch.nc" else None
        assert info.value.block_index == expected_index


def test_v2_sizes_of_empty_and_one_byte():
    assert C.encode_stored(b"") == b"\x89NCR\x02\x01\x00" + bytes(4)
    assert len(C.encode_stored(b"x")) == 12
    assert C.encode_stored(b"") == (GOLDEN / "v2-stored-empty.nc").read_bytes()


def test_v2_encoder_matches_independent_golden_bytes():
    assert C.encode_stored(FOX) == (GOLDEN / "v2-stored-fox.nc").read_bytes()
    frame = GEN.zstd_raw_frame(FOX)
    one = [C.Block(45, 45, C.block_crc32(FOX), frame)]
    assert C.encode_member(C.MODE_ZSTD, None, FOX, one) == (GOLDEN / "v2-zstd-fox.nc").read_bytes()
    halves = [FOX[:32], FOX[32:]]
    two = [C.Block(len(h), len(h), C.block_crc32(h), GEN.zstd_raw_frame(h)) for h in halves]
    assert C.encode_member(C.MODE_ZSTD, None, FOX, two) == (GOLDEN / "v2-zstd-fox-2blocks.nc").read_bytes()
    records = (FORMATS / "golden" / "bytecm" / "records.bin").read_bytes()
    v1 = read_members((FORMATS / "golden" / "bytecm" / "records.bin.nc").read_bytes())
    (bh, payload), = v1[0][1]
    cm = [C.Block(bh.n_symbols, bh.n_bytes, bh.crc32, payload)]
    assert C.encode_member(C.MODE_BYTECM, None, records, cm) == (GOLDEN / "v2-bytecm-records.nc").read_bytes()
    header = C.encode_header(C.MODE_MODEL, v2_params(window=2048, ensemble=b""), version=2, original_size=1000)
    assert header == (GOLDEN / "v2-model-header.bin").read_bytes()
    best = _best_params()
    assert C.encode_header(C.MODE_MODEL, best, version=2, original_size=1000) == (
        GOLDEN / "v2-best-header.bin"
    ).read_bytes()
    custom = v2_params(
        model_sha256=GEN.MODEL_SHA256, kernels=C.KERNELS_MACHINE_BOUND, fingerprint=GEN.V2_FINGERPRINT,
    )
    assert C.encode_header(C.MODE_MODEL, custom, version=2, original_size=1000) == (
        GOLDEN / "v2-custom-model-header.bin"
    ).read_bytes()


def test_v2_goldens_parse_and_decode():
    data = (GOLDEN / "v2-stored-fox.nc").read_bytes()
    [(reader, blocks)] = read_members(data)
    assert reader.header == C.Header(2, C.MODE_STORED, None, 7, original_size=45)
    assert reader.trailer == C.Trailer(45, b"", C.block_crc32(FOX))
    assert b"".join(p for _, p in blocks) == FOX and reader.bytes_read == len(data) == 56
    for name in ("v2-stored-fox.nc", "v2-zstd-fox.nc", "v2-zstd-fox-2blocks.nc"):
        assert decode_bytes_modes((GOLDEN / name).read_bytes()) == FOX, name
    [(reader, blocks)] = read_members((GOLDEN / "v2-zstd-fox.nc").read_bytes())
    assert [bh.crc32 for bh, _ in blocks] == [C.block_crc32(FOX)]  # the check, filled in
    records = (FORMATS / "golden" / "bytecm" / "records.bin").read_bytes()
    assert decode_bytes_modes((GOLDEN / "v2-bytecm-records.nc").read_bytes()) == records
    assert decode_bytes_modes((GOLDEN / "v2-stored-empty.nc").read_bytes()) == b""


def test_v2_golden_model_headers_parse_then_truncate():
    for name, params in (
        ("v2-model-header.bin", v2_params(window=2048, ensemble=b"")),
        ("v2-best-header.bin", _best_params()),
        ("v2-custom-model-header.bin", v2_params(
            model_sha256=GEN.MODEL_SHA256, kernels=C.KERNELS_MACHINE_BOUND, fingerprint=GEN.V2_FINGERPRINT,
        )),
    ):
        data = (GOLDEN / name).read_bytes()
        reader = C.ArchiveReader(io.BytesIO(data))
        assert reader.header == C.Header(2, C.MODE_MODEL, params, len(data), original_size=1000), name
        with pytest.raises(E.TruncatedError):
            list(reader.blocks())


def test_v2_default_header_is_small_and_explicit_in_memory():
    # Every default left out: magic 4, version, mode, size 2, preset 5, count, kernels, probe 4, check 2.
    header = C.encode_header(C.MODE_MODEL, v2_params(), version=2, original_size=8000)
    assert len(header) == 21
    parsed = C.ArchiveReader(io.BytesIO(header + b"\x00" + bytes(4)))
    assert parsed.header.params == v2_params()  # every value explicit after reading
    assert parsed.header.params.block_tokens == 1 << 19


def test_v2_registry_matches_model_presets():
    from nacrith import models

    for preset in C.MODEL_PRESETS.values():
        assert models.PRESETS[preset.name].sha256 == preset.sha256.hex()
    assert {p.name for p in C.MODEL_PRESETS.values()} == set(models.PRESETS)


def test_v2_defaults_are_todays_defaults():
    # Not a format rule (the v2 defaults are fixed forever), but what keeps archives small:
    # a default compression writes no override.  If nacrith's defaults change, archives grow
    # by the overrides, and this says so.
    from nacrith import codec
    from nacrith.ensemble import DEFAULT_ENSEMBLE

    layout, numeric = codec.Layout(), codec.NumericConfig()
    d = C.V2_DEFAULTS
    assert (layout.stream_tokens, layout.window, layout.slide, layout.sinks) == (
        d["stream_tokens"], d["window"], d["slide"], d["sinks"]
    )
    assert (numeric.flash_attn, numeric.type_k, numeric.type_v) == (d["flash_attn"], d["type_k"], d["type_v"])
    assert DEFAULT_ENSEMBLE.header_bytes() == d["ensemble"]
    assert layout.level == d["level"] == C.LEVEL_DEFAULT
    assert (codec.TOKENIZER_VERSION, codec.cdf.TOTAL_BITS) == (d["tokenizer"], d["cdf_total_bits"])
    assert layout.block_tokens == C.v2_default_block_tokens(layout.stream_tokens)


@pytest.mark.parametrize("stream_tokens", [1, 2, 7, 1 << 19, 1 << 20, (1 << 20) + 1, 3 << 20, 0xFFFFFFFF, 1048583 * 5])
def test_v2_default_block_tokens_is_the_codec_rule(stream_tokens):
    from nacrith import codec

    assert C.v2_default_block_tokens(stream_tokens) == codec.default_block_tokens(stream_tokens)


def test_v2_overrides_written_only_when_not_default():
    base = len(C.encode_header(C.MODE_MODEL, v2_params(), version=2, original_size=5))
    cases = {
        "tokenizer": 2, "cdf_total_bits": 16, "flash_attn": False, "type_k": 1, "start_token": 9,
        "escape_token": 9, "window": 2048, "slide": 128, "sinks": 0, "ensemble": b"\x01",
    }
    for name, value in cases.items():
        params = v2_params(**{name: value})
        header = C.encode_header(C.MODE_MODEL, params, version=2, original_size=5)
        assert len(header) > base, name
        reader = C.ArchiveReader(io.BytesIO(header + b"\x00" + bytes(4)), C.DEFAULT_LIMITS)
        assert reader.header.params == params, name
    # The LLM alone: key 14 with no value (2 bytes).
    llm = C.encode_header(C.MODE_MODEL, v2_params(ensemble=b""), version=2, original_size=5)
    assert len(llm) == base + 2
    # stream_tokens moves the default block_tokens with it: no block_tokens entry either way.
    moved = C.encode_header(C.MODE_MODEL, v2_params(stream_tokens=3 << 20, block_tokens=1 << 20), version=2, original_size=5)
    assert len(moved) == base + 6
    own = C.encode_header(C.MODE_MODEL, v2_params(block_tokens=1 << 10), version=2, original_size=5)
    assert len(own) == base + 6


def _model_v2(params_bytes: bytes, size: int = 0) -> bytes:
    head = GEN.v2_start(0, size) + params_bytes
    return head + struct.pack("<H", zlib.crc32(head) & 0xFFFF) + b"\x00" + bytes(4)


@pytest.mark.parametrize("key", [2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14])
def test_v2_every_default_as_override_is_corrupt(key):
    value = C._v2_default_values(PRESET1, 1 << 19)[key]
    data = _model_v2(GEN.v2_params(1, [GEN.tlv(key, value)]))
    with pytest.raises(E.FormatError, match="equals the version 2 default") as info:
        read_members(data)
    assert type(info.value) is E.FormatError
    read_members(_model_v2(GEN.v2_params(1, [])))  # without the entry: valid


def test_v2_header_check_catches_every_single_bit_flip():
    # An empty model archive (n_blocks 0, check 0): every bit before n_blocks is header.
    archive = C.encode_header(C.MODE_MODEL, v2_params(window=2048, ensemble=b""), version=2, original_size=0)
    archive += b"\x00" + bytes(4)
    read_members(archive)
    for bit in range((len(archive) - 5) * 8):
        damaged = _flip(archive, [bit])
        with pytest.raises(E.NacrithError):
            read_members(damaged)


def test_v2_model_writer_needs_the_numeric_check():
    text = b"hello"
    block = [C.Block(2, 5, C.block_crc32(text), b"\x01")]
    for params in (v2_params(kernels="", probe=b""), v2_params(probe=b"")):
        with pytest.raises(ValueError, match="numeric check"):
            C.encode_member(C.MODE_MODEL, params, text, block)
    with pytest.raises(ValueError):
        v2_params(probe=b"12345678")  # the probe is 4 bytes
    with pytest.raises(ValueError):
        C.encode_member(C.MODE_HYBRID, v2_params(), text, block)  # a hybrid needs 2+ blocks
    with pytest.raises(ValueError):
        C.encode_member(C.MODE_ZSTD, None, text + b"!", [C.Block(5, 5, C.block_crc32(text), b"z")])
    with pytest.raises(ValueError):
        C.encode_stored(b"abc", params=example_params())
    # Version 1 still writes what it always did from the same call.
    v1 = C.encode_member(C.MODE_MODEL, example_params(), text, block, version=1)
    assert v1 == model_archive([(2, text, b"\x01")])


def test_v2_model_round_trip_keeps_block_crcs_and_backend_is_not_written():
    text = b"hello, world"
    params = v2_params(backend="llama-cpp-python 0.3.36", fingerprint="not written: portable")
    blocks = [C.Block(3, 5, C.block_crc32(text[:5]), b"\x01\x02"), C.Block(4, 7, C.block_crc32(text[5:]), b"")]
    data = C.encode_member(C.MODE_MODEL, params, text, blocks)
    [(reader, got)] = read_members(data)
    assert reader.header.params == v2_params()
    assert [(bh.n_symbols, bh.n_bytes, bh.crc32, p) for bh, p in got] == [
        (b.n_symbols, b.n_bytes, b.crc32, b.payload) for b in blocks
    ]
    assert reader.trailer == C.Trailer(len(text), b"", C.block_crc32(text))
    C.verify_original(reader.trailer, text)
    with pytest.raises(E.ChecksumError):
        C.verify_original(reader.trailer, text[:-1] + b"?")


def test_v2_info_and_format_info():
    text = b"hello, world"
    params = v2_params(kernels=C.KERNELS_MACHINE_BOUND, fingerprint="x86_64 AVX2 0123456789ab")
    data = C.encode_member(C.MODE_MODEL, params, text, [C.Block(3, len(text), C.block_crc32(text), b"\x01")])
    info = C.read_info(io.BytesIO(data))
    assert (info.n_blocks, info.total_bytes, info.compressed_size) == (1, 12, len(data))
    out = C.format_info(info)
    for row in (r"^format: +nacrith container v2$", r"^model: +preset 1 \(smollm2-135m\)$",
                r"^kernels: +machine-bound$", r"^numeric probe: +5aa50ff0$",
                r"^fingerprint: +x86_64 AVX2 0123456789ab$", rf"^crc-32: +{C.block_crc32(text):08x}$"):
        assert re.search(row, out, re.M), row
    assert "backend" not in out and "blake2b" not in out


def test_v2_and_v1_members_concatenate():
    members = [
        C.encode_stored(b"one ", version=1, block_bytes=2),
        C.encode_stored(b"two "),
        (GOLDEN / "zstd-fox.nc").read_bytes(),
        (GOLDEN / "v2-zstd-fox-2blocks.nc").read_bytes(),
        C.encode_stored(b""),
    ]
    data = b"".join(members)
    assert [r.header.version for r, _ in read_members(data)] == [1, 2, 1, 2, 2]
    assert [i.compressed_size for i in C.read_info_all(io.BytesIO(data))] == [len(m) for m in members]
    assert decode_bytes_modes(data) == b"one two " + FOX + FOX


def test_v2_stream_decompressor_and_file_object_on_mixed_members():
    import nacrith

    codec = nacrith.Codec(threads=1)  # no model is loaded for these members
    members = [C.encode_stored(b"abc"), C.encode_stored(b"def", version=1), (GOLDEN / "v2-zstd-fox.nc").read_bytes()]
    data = b"".join(members)
    out, rest = b"", data
    while rest:
        dec = nacrith.NacrithDecompressor(codec=codec)
        for i in range(0, len(rest), 3):  # three bytes at a time
            out += dec.decompress(rest[i : i + 3])
            if dec.eof:
                break
        assert dec.eof
        rest = dec.unused_data + rest[i + 3 :]
    assert out == b"abcdef" + FOX
    with nacrith.open(io.BytesIO(data), "rb", codec=codec) as f:
        assert f.read() == b"abcdef" + FOX


def test_v2_stored_body_is_checked_by_the_reader_in_pieces():
    data = bytes(range(256)) * 5000  # 1.28 MB: two pieces
    archive = C.encode_stored(data)
    [(reader, blocks)] = read_members(archive)
    assert [bh.n_bytes for bh, _ in blocks] == [1 << 20, len(data) - (1 << 20)]
    assert all(bh.crc32 == C.block_crc32(p) for bh, p in blocks)
    damaged = _flip(archive, [8 * 500_000])
    with pytest.raises(E.ChecksumError):
        read_members(damaged)
    info = C.read_info(io.BytesIO(damaged))  # info reads past payloads: no check
    assert info.total_bytes == len(data)


def test_v2_huge_declared_sizes_do_not_allocate():
    stored = b"\x89NCR\x02\x01" + C.encode_varint(1 << 30, bits=64) + b"only a few bytes"
    tracemalloc.start()
    try:
        with pytest.raises(E.TruncatedError):
            read_members(stored)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak allocation {peak} bytes"
    with pytest.raises(E.LimitError):
        read_members(stored[:6] + C.encode_varint(1 << 41, bits=64))
    zstd = b"\x89NCR\x02\x03" + C.encode_varint(60 << 20, bits=64) + b"\x01" + C.encode_varint(60 << 20) * 2
    with pytest.raises(E.LimitError):
        list(C.ArchiveReader(io.BytesIO(zstd), C.Limits(max_block_bytes=1 << 20)).blocks())


@pytest.mark.parametrize(
    "value,encoded",
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (1 << 32, b"\x80\x80\x80\x80\x10"),
     ((1 << 64) - 1, b"\xff" * 9 + b"\x01")],
)
def test_varint64(value, encoded):
    assert C.encode_varint(value, bits=64) == encoded
    assert C.read_varint(encoded, 0, "test", bits=64) == (value, len(encoded))
    with pytest.raises(ValueError):
        C.encode_varint(1 << 64, bits=64)


@st.composite
def v2_params_st(draw) -> C.CodecParams:
    base = draw(params_st())
    sha = draw(st.one_of(st.sampled_from([p.sha256 for p in C.MODEL_PRESETS.values()]), st.binary(min_size=32, max_size=32)))
    kernels = draw(st.sampled_from([C.KERNELS_PORTABLE, C.KERNELS_MACHINE_BOUND]))
    return dataclasses.replace(
        base,
        model_sha256=sha,
        kernels=kernels,
        probe=draw(st.binary(min_size=4, max_size=4)),
        ensemble=draw(st.sampled_from([b"", b"\x01", b"\x02", bytes(range(17))])),
        stream_tokens=draw(st.sampled_from([base.stream_tokens, 1 << 19])),
        window=base.window if draw(st.booleans()) else max(base.window, 1024),
        level=draw(st.sampled_from([C.LEVEL_FAST, C.LEVEL_DEFAULT, C.LEVEL_BEST, 200])),
        calls=draw(st.sampled_from([C.CALLS_BATCHED, C.CALLS_LOCKSTEP])),
    )


def _expected_after_v2(params: C.CodecParams) -> C.CodecParams:
    """What a v2 round trip keeps: no backend; a fingerprint only when machine-bound."""
    fp = params.fingerprint if params.kernels == C.KERNELS_MACHINE_BOUND else ""
    return dataclasses.replace(params, backend="", fingerprint=fp)


@HYP
@given(params=v2_params_st(), blocks=blocks_st, mode=st.sampled_from([C.MODE_MODEL, C.MODE_HYBRID]))
def test_v2_model_round_trip(params, blocks, mode):
    if mode == C.MODE_HYBRID and len(blocks) < 2:
        blocks = blocks + [(1, b"x", b""), (1, b"y", b"")][: 2 - len(blocks)]
    text = b"".join(raw for _, raw, _ in blocks)
    data = C.encode_member(mode, params, text, [C.Block(n, len(raw), C.block_crc32(raw), p) for n, raw, p in blocks])
    [(reader, got)] = read_members(data)
    assert reader.header.params == _expected_after_v2(params)
    assert [(bh.n_symbols, bh.n_bytes, p) for bh, p in got] == [(n, len(raw), p) for n, raw, p in blocks]
    assert reader.bytes_read == len(data)
    # One encoding per set of values: writing what was read gives the same bytes.
    again = C.encode_member(mode, reader.header.params, text, [C.Block(bh.n_symbols, bh.n_bytes, bh.crc32, p) for bh, p in got])
    assert again == data
    _every_v2_truncation(data)


def _every_v2_truncation(archive: bytes) -> None:
    for cut in range(len(archive)):
        with pytest.raises(E.TruncatedError):
            read_members(archive[:cut])


@HYP
@given(data=st.binary(max_size=300))
def test_v2_stored_round_trip_and_truncations(data):
    archive = C.encode_stored(data)
    assert len(archive) == len(data) + 11 + len(C.encode_varint(len(data), bits=64)) - 1
    [(reader, blocks)] = read_members(archive)
    assert b"".join(p for _, p in blocks) == data
    _every_v2_truncation(archive)


@HYP
@given(
    data=st.binary(min_size=1, max_size=100),
    cut=st.integers(1, 99),
    flips=st.lists(st.integers(0, 1 << 20), min_size=1, max_size=4),
)
def test_v2_bit_flips_give_nacrith_errors_or_the_data(data, cut, flips):
    chunks = [data[:cut], data[cut:]] if cut < len(data) else [data]
    blocks = [C.Block(len(c), len(c), C.block_crc32(c), GEN.zstd_raw_frame(c)) for c in chunks]
    for archive in (C.encode_stored(data), C.encode_member(C.MODE_ZSTD, None, data, blocks)):
        damaged = _flip(archive, flips)
        try:
            out = decode_bytes_modes(damaged)
        except E.NacrithError:
            continue
        assert out == data


@HYP
@given(params=v2_params_st(), flips=st.lists(st.integers(0, 1 << 12), min_size=1, max_size=3))
def test_v2_model_header_bit_flips_give_nacrith_errors(params, flips):
    text = b"some text"
    data = C.encode_member(C.MODE_MODEL, params, text, [C.Block(2, len(text), C.block_crc32(text), b"\x01\x02")])
    damaged = _flip(data, flips)
    try:
        [(reader, _)] = read_members(damaged)
    except E.NacrithError:
        return
    assert reader.trailer is not None  # a flip that cancels out, or one in the payload


@HYP
@given(junk=st.binary(max_size=200))
def test_v2_random_input_raises_only_nacrith_errors(junk):
    for prefix in (b"\x89NCR\x02", b"\x89NCR\x02\x00", b"\x89NCR\x02\x01", b"\x89NCR\x02\x03", b"\x89NCR\x02\x02"):
        try:
            read_members(prefix + junk)
        except E.NacrithError:
            pass
