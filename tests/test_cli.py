"""The ``nacrith`` command line: file naming, refusals, exit statuses, atomic output.

Most tests run the click command in-process (``CliRunner``), which shares one loaded model
through ``nacrith.cli``'s cache of loaded models; two run the real interpreter to check the module
entry point and SIGTERM handling.  Inputs are a few hundred bytes: the model decodes about
a hundred tokens per second on the 2-core test machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import nacrith
from nacrith import api, cli, container, errors, fileio

ROOT = Path(__file__).resolve().parent.parent
THREADS = os.environ.get("NACRITH_TEST_THREADS", "2")

# Long enough that model coding beats the zstd and stored fallbacks (so the model path is exercised).
TEXT = (
    b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    b"age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    b"season of Light, it was the season of Darkness, it was the spring of hope, it was the "
    b"winter of despair, we had everything before us, we had nothing before us, we were all going "
    b"direct to Heaven, we were all going direct the other way - in short, the period was so far "
    b"like the present period, that some of its noisiest authorities insisted on its being "
    b"received, for good or for evil, in the superlative degree of comparison only.\n"
)


def run(*args: str, input: bytes | None = None):
    """Invoke the CLI in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(cli.main, list(args), input=input)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(fileio.TMP_SUFFIX))


def error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nacrith: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> bytes:
    """TEXT compressed once through the CLI (stdin -> stdout)."""
    result = run("compress", "-q", "-T", THREADS, "-", input=TEXT)
    assert result.exit_code == 0, result.stderr
    blob = result.stdout_bytes
    assert blob.startswith(container.MAGIC)
    return blob


def test_compress_decompress_files(tmp_path):
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    os.chmod(src, 0o640)
    os.utime(src, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))

    result = run("compress", "-T", THREADS, str(src))
    assert result.exit_code == 0, result.stderr
    packed = tmp_path / "a.txt.nc"
    assert src.read_bytes() == TEXT  # input kept and untouched
    blob = packed.read_bytes()
    assert [i.header.mode for i in api.scan(blob)] == [container.MODE_MODEL]
    assert len(blob) < len(TEXT)
    # One summary line on stderr: sizes, bpb, symbols, seconds, tokens/s.
    line = result.stderr.strip()
    assert "\n" not in line
    assert f"{len(TEXT):,} -> {len(blob):,} bytes" in line
    for word in ("bpb", "symbols", " s, ", "tokens/s"):
        assert word in line
    # gzip-like: the output carries the input's permission bits and times.
    assert (packed.stat().st_mode & 0o777) == 0o640
    assert packed.stat().st_mtime_ns == src.stat().st_mtime_ns

    src.unlink()
    result = run("decompress", "-T", THREADS, str(packed))
    assert result.exit_code == 0, result.stderr
    assert src.read_bytes() == TEXT
    assert packed.exists()
    assert "tokens/s" in result.stderr
    assert leftovers(tmp_path) == []


def test_stdin_to_stdout(archive):
    # No FILE means standard input; the fixture used an explicit '-'.
    result = run("decompress", "-q", "-T", THREADS, input=archive)
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == TEXT
    assert result.stderr == ""


def test_output_option_and_concatenated_archives(tmp_path, archive):
    both = tmp_path / "both.nc"
    both.write_bytes(archive + archive)
    result = run("decompress", "-q", "-T", THREADS, "-o", str(tmp_path / "out.bin"), str(both))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out.bin").read_bytes() == TEXT + TEXT


def test_empty_file_round_trip(tmp_path):
    src = tmp_path / "empty"
    src.write_bytes(b"")
    assert run("compress", "-q", str(src)).exit_code == 0
    blob = (tmp_path / "empty.nc").read_bytes()
    assert [i.header.mode for i in api.scan(blob)] == [container.MODE_STORED]
    src.unlink()
    assert run("decompress", "-q", str(tmp_path / "empty.nc")).exit_code == 0
    assert src.read_bytes() == b""


def test_refuses_overwrite_without_force(tmp_path, archive):
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    dest = tmp_path / "a.txt.nc"
    dest.write_bytes(b"precious")

    result = run("compress", "-T", THREADS, str(src))
    assert result.exit_code == 1
    assert "already exists" in error_line(result) and "-f" in error_line(result)
    assert dest.read_bytes() == b"precious"

    result = run("compress", "-q", "-f", "-T", THREADS, str(src))
    assert result.exit_code == 0, result.stderr
    assert dest.read_bytes().startswith(container.MAGIC)
    assert src.read_bytes() == TEXT
    assert leftovers(tmp_path) == []


def test_rm_removes_input_only_after_success(tmp_path, archive):
    good = tmp_path / "good.nc"
    good.write_bytes(archive)
    bad = tmp_path / "bad.nc"
    bad.write_bytes(TEXT)  # not an archive

    result = run("decompress", "-q", "--rm", "-T", THREADS, str(bad), str(good))
    assert result.exit_code == 3  # the first failure's status; the good file is still done
    assert bad.exists() and not (tmp_path / "bad").exists()
    assert not good.exists()
    assert (tmp_path / "good").read_bytes() == TEXT
    assert leftovers(tmp_path) == []


def test_not_an_archive(tmp_path):
    bogus = tmp_path / "notes.nc"
    bogus.write_bytes(b"just some text, not an archive\n")
    result = run("decompress", str(bogus))
    assert result.exit_code == 3
    assert "not a nacrith archive" in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.nc"]


def test_unknown_suffix_refused(tmp_path):
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    result = run("decompress", str(src))
    assert result.exit_code == 1
    assert "unknown suffix" in error_line(result) and "-o" in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_missing_input(tmp_path):
    result = run("compress", str(tmp_path / "nope.txt"))
    assert result.exit_code == 1
    assert "No such file" in error_line(result)


def test_usage_errors(tmp_path):
    result = run("compress", "-o", str(tmp_path / "x.nc"), "a", "b")
    assert result.exit_code == 2
    result = run("compress", "-o", str(tmp_path / "x.nc"), "-c", "a")
    assert result.exit_code == 2


def test_refuses_compressed_data_on_terminal(tmp_path, monkeypatch):
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    monkeypatch.setattr(fileio, "isatty", lambda stream: stream is sys.stdout)
    result = run("compress", "-c", str(src))
    assert result.exit_code == 1
    assert "terminal" in error_line(result)
    assert result.stdout_bytes == b""


def test_info(tmp_path, archive):
    both = tmp_path / "both.nc"
    both.write_bytes(archive + archive)
    result = run("info", str(both))
    assert result.exit_code == 0, result.stderr
    assert "member 1 of 2" in result.stdout and "member 2 of 2" in result.stdout
    assert result.stdout.count("model sha256:") == 2
    assert f"original size:   {len(TEXT)} bytes" in result.stdout

    listed = run("decompress", "-l", str(both))
    assert listed.exit_code == 0 and listed.stdout == result.stdout

    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"nope")
    assert run("info", str(junk)).exit_code == 3


def test_test_command(tmp_path, archive):
    good = tmp_path / "good.nc"
    good.write_bytes(archive)
    result = run("test", "-T", THREADS, str(good))
    assert result.exit_code == 0, result.stderr
    assert "OK" in result.stdout

    # Damage a payload byte: the structure stays valid, the decoded block's CRC fails.
    info = api.scan(archive)[0]
    assert info.n_blocks == 1
    (block,) = container.ArchiveReader(io.BytesIO(archive)).block_headers()
    end = info.compressed_size - 29  # end marker (varint 0: 1 byte) + trailer (8 + 16 + 4)
    start = end - block.payload_len
    bad = bytearray(archive)
    bad[(start + end) // 2] ^= 0x55
    damaged = tmp_path / "bad.nc"
    damaged.write_bytes(bytes(bad))
    result = run("test", "-T", THREADS, str(damaged))
    assert result.exit_code == 4
    assert "checksum" in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nc", "good.nc"]


def test_stream_tokens_alone_gives_one_block_per_stream(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "formats"))
    import make_model_golden  # its essay: enough prose for the model to beat bytecm and zstd

    src = tmp_path / "prose.txt"
    src.write_bytes(dict((name, data) for name, data, _ in make_model_golden.CASES)["essay-ensemble"])
    result = run("compress", "-q", "--stream-tokens", "192", str(src))
    assert result.exit_code == 0, result.output
    info = container.read_info(io.BytesIO((tmp_path / "prose.txt.nc").read_bytes()))
    assert info.header.mode == container.MODE_MODEL
    assert info.header.params.block_tokens == 192
    assert info.n_blocks == -(-info.total_symbols // 192) > 1
    assert run("test", "-q", str(tmp_path / "prose.txt.nc")).exit_code == 0
    bad = run("compress", "-f", "--block-tokens", "5", "--stream-tokens", "192", str(src))
    assert bad.exit_code == 2 and "multiple of block_tokens" in bad.output


def test_model_mismatch_exit_code(tmp_path):
    from nacrith import models
    from nacrith.tokenization import TOKENIZER_VERSION

    foreign = "11" * 32
    params = container.CodecParams(
        model_sha256=bytes.fromhex(foreign),
        tokenizer=TOKENIZER_VERSION,
        cdf_total_bits=24,
        block_tokens=64,
        flash_attn=True,
        type_k=8,
        type_v=8,
        start_token=1,
        escape_token=2,
        stream_tokens=1024,
        window=2048,
        slide=512,
        sinks=4,
    )
    raw = b"hello"
    blob = (
        container.encode_header(container.MODE_MODEL, params)
        + container.encode_block(3, len(raw), container.block_crc32(raw), b"\x00\x01\x02")
        + container.encode_end(len(raw), hashlib.blake2b(raw, digest_size=container.DIGEST_SIZE).digest())
    )
    path = tmp_path / "foreign.nc"
    path.write_bytes(blob)
    result = run("decompress", "--model", models.DEFAULT_MODEL, str(path))
    assert result.exit_code == 5
    line = error_line(result)
    assert foreign in line
    assert models.resolve(models.DEFAULT_MODEL).sha256 in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.nc"]


def test_bench(tmp_path, monkeypatch):
    from nacrith import bench

    monkeypatch.setattr(bench, "external_programs", lambda: {})  # no cmix/paq8px runs here
    src = tmp_path / "tiny.txt"
    src.write_bytes(TEXT)
    out = tmp_path / "bench.json"
    result = run("bench", "-q", "-T", THREADS, "--json", str(out), str(src))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["file", "compressor", "original"]
    names = [line.split()[1] for line in lines[1:]]
    assert names[:2] == ["nacrith", "gzip"]
    assert {"bzip2", "xz", "zstd"} <= set(names)
    assert all(line.rstrip().endswith("yes") for line in lines[1:])
    doc = json.loads(out.read_text())
    rows = {r["compressor"]: r for r in doc["rows"]}
    assert rows["nacrith"]["ok"] and rows["nacrith"]["original_size"] == len(TEXT)
    assert rows["nacrith"]["symbols"] > 0 and rows["nacrith"]["decompress_tokens_per_second"] > 0
    assert rows["gzip -9"]["compressed_size"] > 0
    assert doc["environment"]["model"]


def test_bench_reports_failed_round_trip(tmp_path, monkeypatch):
    from nacrith import bench

    monkeypatch.setattr(bench, "external_programs", lambda: {})
    monkeypatch.setattr(api.Codec, "decompress", lambda self, data, **kw: b"not the input")
    src = tmp_path / "tiny.txt"
    src.write_bytes(TEXT)
    result = run("bench", "-q", "-T", THREADS, str(src))
    assert result.exit_code == 4
    assert "round trip FAILED" in result.stderr


def test_a_file_llama_cpp_cannot_load_as_a_model_is_one_error_line(tmp_path):
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_bytes(b"plain text, not the GGUF format\n")
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    result = run("compress", "--model", str(not_a_model), "-T", THREADS, str(src))
    assert result.exit_code == nacrith.ModelLoadError.exit_code == 5, result.output
    assert "could not load the model file" in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "notes.gguf"]


def test_one_exit_status_table_for_errors_help_and_docs():
    statuses = [status for status, _ in errors.EXIT_STATUSES]
    result = run("--help")
    assert result.exit_code == 0 and "Exit status" in result.stdout
    for status, meaning in errors.EXIT_STATUSES:
        assert f"{status:<4} {meaning}" in result.stdout
    for name in nacrith.__all__:
        obj = getattr(nacrith, name)
        if isinstance(obj, type) and issubclass(obj, nacrith.NacrithError):
            assert obj.exit_code in statuses, name
    doc = (ROOT / "docs" / "cli.md").read_text().split("## Exit status", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip() for line in doc.splitlines() if line.startswith("| ")]
    assert rows[1:] == [str(s) for s in statuses]  # rows[0] is the header


# -- real processes -------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_module_entry_point_round_trip(tmp_path):
    cmd = [sys.executable, "-m", "nacrith.cli"]
    packed = subprocess.run(
        cmd + ["compress", "-q", "-T", THREADS], input=TEXT, capture_output=True, env=_env(), cwd=tmp_path, timeout=300
    )
    assert packed.returncode == 0, packed.stderr
    unpacked = subprocess.run(
        cmd + ["decompress", "-q", "-T", THREADS], input=packed.stdout, capture_output=True, env=_env(),
        cwd=tmp_path, timeout=300,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    assert unpacked.stdout == TEXT


def test_sigterm_removes_partial_output(tmp_path):
    src = tmp_path / "big.txt"
    src.write_bytes(TEXT * 12)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nacrith.cli", "compress", "-T", THREADS, str(src)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while not leftovers(tmp_path):  # the temporary output exists: work has started
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert err.decode().strip().splitlines()[-1] == "nacrith: terminated"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]
    assert src.read_bytes() == TEXT * 12
