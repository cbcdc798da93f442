"""The environment fingerprint (header key 15): recorded, shown, compared, and named on failure.

Another machine cannot be borrowed in a test, so a "foreign" archive is a real archive whose
header fingerprint has been rewritten (``fingerprint.restamp``): decoding then proceeds on
this machine with a warning, and a damaged block becomes an EnvironmentMismatchError that
names both fingerprints.  No test depends on this machine's fingerprint value.
"""

from __future__ import annotations

import dataclasses
import io
import re
import struct
import warnings
import zlib

import pytest
from click.testing import CliRunner

from nacrith import cli, codec as codec_module, container, fingerprint
from nacrith.codec import NumericConfig
from nacrith.errors import ChecksumError, EnvironmentMismatchError, FormatError, NacrithWarning

TEXT = (
    b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    b"age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    b"season of Light, it was the season of Darkness, it was the spring of hope.\n"
)
FOREIGN = "riscv64 none 000000000000"


@pytest.fixture(scope="module")
def archive(codec) -> bytes:
    """A machine-bound archive of TEXT, which records this machine's fingerprint (a portable
    container v2 archive records none): the writer's blocks and probe, re-framed."""
    blob = codec.compress(TEXT, fallback=False)  # model-coded, even if zstd would be smaller
    reader = container.ArchiveReader(io.BytesIO(blob))
    assert reader.header.mode == container.MODE_MODEL
    params = dataclasses.replace(
        reader.header.params, kernels=container.KERNELS_MACHINE_BOUND, fingerprint=fingerprint.current(NumericConfig())
    )
    blocks = [container.Block(bh.n_symbols, bh.n_bytes, bh.crc32, p) for bh, p in reader.blocks()]
    return container.encode_member(container.MODE_MODEL, params, TEXT, blocks)


def header_of(blob: bytes) -> container.Header:
    return container.ArchiveReader(io.BytesIO(blob)).header


def damage_first_block(blob: bytes) -> bytes:
    """Flip one bit in the middle of the first block's payload (framing stays valid)."""
    reader = container.ArchiveReader(io.BytesIO(blob))
    _, payload = next(iter(reader.blocks()))
    pos = blob.index(payload, reader.header.size) + len(payload) // 2
    out = bytearray(blob)
    out[pos] ^= 0x20
    return bytes(out)


# -- the fingerprint itself ----------------------------------------------------------------


def test_ggml_features_and_simd_level():
    info = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 0 | LLAMAFILE = 1 | \nMetal : EMBED = 0 |"
    assert fingerprint.ggml_features(info) == ["SSE3", "AVX", "AVX2", "LLAMAFILE"]
    assert fingerprint.simd_level(["SSE3", "AVX", "AVX2", "LLAMAFILE"]) == "AVX2"
    assert fingerprint.simd_level(["NEON", "DOTPROD", "OPENMP"]) == "DOTPROD"
    assert fingerprint.simd_level(["OPENMP"]) == "none"


def test_cpu_features_keep_only_kernel_flags(monkeypatch):
    monkeypatch.setattr(fingerprint.platform, "machine", lambda: "x86_64")
    x86 = "processor : 0\nflags\t\t: fpu sse aes avx2 avx fma avx512f\nprocessor : 1\nflags : fpu\n"
    assert fingerprint.cpu_features(x86) == "x86_64 avx avx2 fma avx512f"
    monkeypatch.setattr(fingerprint.platform, "machine", lambda: "aarch64")
    arm = "processor\t: 0\nFeatures\t: fp asimd asimddp sve crc32\n"
    assert fingerprint.cpu_features(arm) == "aarch64 asimddp sve"
    assert fingerprint.cpu_features("") == "aarch64"


def test_compact_form_is_short_and_hashes_the_description():
    a = fingerprint.compact("fa=1 kv=q8_0/q8_0; everything else", "AVX2")
    b = fingerprint.compact("fa=1 kv=q8_0/q8_0; everything els3", "AVX2")
    machine, level, digest = a.split(" ")
    assert level == "AVX2" and len(digest) == 12 and int(digest, 16) >= 0
    assert a != b and len(a.encode()) < 40


def test_current_depends_on_numeric_settings_and_is_stable():
    here = fingerprint.current(NumericConfig())
    assert here == fingerprint.current(NumericConfig())
    assert here != fingerprint.current(NumericConfig(type_k=1, type_v=1))
    assert len(here.encode()) <= 255
    assert fingerprint.describe(NumericConfig()).startswith("fa=1 kv=q8_0/f16; ")


# -- the container field --------------------------------------------------------------------


def params(**changes) -> container.CodecParams:
    base = container.CodecParams(
        model_sha256=bytes(range(32)), tokenizer=1, cdf_total_bits=24, block_tokens=16,
        flash_attn=True, type_k=8, type_v=8, start_token=1, escape_token=2,
        stream_tokens=32, window=24, slide=6, sinks=2, backend="b",
    )
    return dataclasses.replace(base, **changes)


def empty_model_archive(p: container.CodecParams) -> bytes:
    return container.encode_header(container.MODE_MODEL, p) + container.encode_end(0, container.new_digest().digest())


def test_key_15_round_trips_and_is_optional():
    for value in ("", "x86_64 AVX2 0123456789ab", "é" * 127):
        blob = empty_model_archive(params(fingerprint=value))
        assert header_of(blob).params.fingerprint == value
    assert container.ParamKey.FINGERPRINT == 15
    with_key = container.encode_header(container.MODE_MODEL, params(fingerprint="fp"))
    without = container.encode_header(container.MODE_MODEL, params())
    assert len(with_key) - len(without) == 2 + 2  # key, length, "fp"
    assert with_key[-8:-4] == bytes([15, 2]) + b"fp"  # the last entry, before the header CRC


def test_key_15_length_and_encoding_checks():
    with pytest.raises(ValueError):
        params(fingerprint="x" * 256)
    with pytest.raises(ValueError):
        params(fingerprint="é" * 128)  # 256 UTF-8 bytes
    with pytest.raises(TypeError):
        params(fingerprint=b"bytes")
    # A reader meets only what fits the one-byte length; bad UTF-8 is corrupt.
    good = container.encode_header(container.MODE_MODEL, params(fingerprint="ab"))
    raw = bytearray(good[:-4])
    raw[-2:] = b"\xff\xfe"
    forged = bytes(raw) + struct.pack("<I", zlib.crc32(bytes(raw)))
    with pytest.raises(FormatError, match="fingerprint"):
        header_of(forged + container.encode_end(0, container.new_digest().digest()))


def test_info_shows_the_fingerprint():
    blob = empty_model_archive(params(fingerprint="x86_64 AVX2 0123456789ab"))
    text = container.format_info(container.read_info(io.BytesIO(blob)))
    assert "fingerprint:" in text and "x86_64 AVX2 0123456789ab" in text
    text = container.format_info(container.read_info(io.BytesIO(empty_model_archive(params()))))
    assert "(not recorded)" in text.split("fingerprint:")[1].splitlines()[0]


def test_restamp_changes_only_the_fingerprint():
    blob = empty_model_archive(params(fingerprint="one"))
    other = fingerprint.restamp(blob, "another")
    assert header_of(other).params == params(fingerprint="another")
    assert fingerprint.restamp(other, "one") == blob
    stored = container.encode_stored(b"abc")
    assert fingerprint.restamp(stored, "x") == stored  # no params, nothing to stamp


# -- compressing and decoding ---------------------------------------------------------------


def test_archives_record_this_environment(archive):
    assert header_of(archive).params.fingerprint == fingerprint.current(NumericConfig())


def test_same_environment_decodes_silently(codec, archive):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NacrithWarning)
        assert codec.decompress(archive) == TEXT


def test_foreign_environment_warns_and_still_decodes(codec, archive):
    foreign = fingerprint.restamp(archive, FOREIGN)
    with pytest.warns(NacrithWarning) as record:
        assert codec.decompress(foreign) == TEXT
    message = str(record[0].message)
    assert FOREIGN in message and fingerprint.current(NumericConfig()) in message


def test_checksum_failure_in_foreign_environment_names_both(codec, archive):
    damaged = damage_first_block(fingerprint.restamp(archive, FOREIGN))
    with pytest.warns(NacrithWarning), pytest.raises(EnvironmentMismatchError) as exc:
        codec.decompress(damaged)
    err = exc.value
    here = fingerprint.current(NumericConfig())
    assert (err.archive_fingerprint, err.local_fingerprint) == (FOREIGN, here)
    assert FOREIGN in str(err) and here in str(err) and "different numeric environment" in str(err)
    assert isinstance(err.__cause__, ChecksumError) and err.exit_code == 6


def test_checksum_failure_at_home_stays_a_checksum_error(codec, archive):
    for blob in (archive, fingerprint.restamp(archive, "")):  # same fingerprint, or none
        with warnings.catch_warnings():
            warnings.simplefilter("error", NacrithWarning)
            with pytest.raises(ChecksumError):
                codec.decompress(damage_first_block(blob))


PROSE = (
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    b"nothing to do: once or twice she had peeped into the book her sister was reading, but it had "
    b"no pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without "
    b"pictures or conversations?' So she was considering in her own mind (as well as she could, for "
    b"the hot day made her feel very sleepy and stupid), whether the pleasure of making a daisy-chain "
    b"would be worth the trouble of getting up and picking the daisies, when suddenly a White Rabbit "
    b"with pink eyes ran close by her.\n"
)


def test_fallback_choice_ignores_the_fingerprint_length(codec, monkeypatch):
    """Mode choice and bitstream must not depend on how long this machine's fingerprint is."""
    data = PROSE  # the model beats zstd and stored here, by less than 220 bytes
    reference = codec.compress(data)
    monkeypatch.setattr(codec_module.fingerprint, "current", lambda numeric: "L" * 255)
    longer = codec.compress(data)
    assert header_of(longer).mode == header_of(reference).mode == container.MODE_MODEL
    assert fingerprint.restamp(longer, "") == fingerprint.restamp(reference, "")


# -- the command line -----------------------------------------------------------------------


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli.main, list(args), input=input)


def test_cli_warns_in_one_line_and_decodes(archive):
    result = run("decompress", "-q", "-T", "1", "-", input=fingerprint.restamp(archive, FOREIGN))
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == TEXT
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nacrith: warning: "), result.stderr
    assert FOREIGN in lines[0]


def test_cli_environment_mismatch_exit_status(archive):
    damaged = damage_first_block(fingerprint.restamp(archive, FOREIGN))
    result = run("test", "-q", "-T", "1", "-", input=damaged)
    assert result.exit_code == EnvironmentMismatchError.exit_code == 6
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("nacrith: warning: ") and lines[1].startswith("nacrith: error: ")
    assert len(lines) == 2 and FOREIGN in lines[1]


def test_cli_info_shows_the_fingerprint(tmp_path, archive):
    path = tmp_path / "a.nc"
    path.write_bytes(fingerprint.restamp(archive, FOREIGN))
    result = run("info", str(path))
    assert result.exit_code == 0
    assert re.search(rf"^fingerprint: +{FOREIGN}$", result.stdout, re.MULTILINE), result.stdout
