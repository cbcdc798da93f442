"""nacrith as an archiver's filter: ``tar -I nacrith`` with the real GNU tar binary.

GNU tar runs the program named by ``-I`` with no arguments to compress (stdin to stdout) and
with ``-d`` to decompress, so ``nacrith`` without a command must behave like ``zstd``/``gzip``.
The routing itself is checked in-process first (cheap); the tar round trip then runs real
processes.  Cost note: a tar stream is mostly NUL padding, which the tokenizer escapes byte by
byte, so the test keeps the stream to 3 KiB (two small files, blocking factor 1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nacrith import api, cli, container, fileio


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli.main, list(args), input=input)


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], ["compress", "-q"]),
        (["-d"], ["decompress", "-q"]),
        (["--decompress", "-T", "2"], ["decompress", "-q", "-T", "2"]),
        (["-dc", "x.nc"], ["decompress", "-q", "-c", "x.nc"]),  # to stdout: quiet
        (["-d", "-v"], ["decompress", "-v"]),
        (["a.txt"], ["compress", "a.txt"]),
        (["-k", "-f", "a.txt", "b.txt"], ["compress", "-k", "-f", "a.txt", "b.txt"]),
        (["-", "-o", "-d"], ["compress", "-q", "-", "-o", "-d"]),  # -o takes the next argument
        (["--model", "m.gguf", "-z"], ["compress", "-q", "--model", "m.gguf"]),
        (["--ensemble", "off"], ["compress", "-q", "--ensemble", "off"]),  # 'off' is no FILE
        (["-l", "x.nc"], ["decompress", "-l", "x.nc"]),
        (["-t", "x.nc"], ["test", "x.nc"]),
        (["-d", "--", "-odd-name.nc"], ["decompress", "--", "-odd-name.nc"]),
    ],
)
def test_filter_args(args, expected):
    assert cli.filter_args(args) == expected


def test_no_command_filters_stdin_to_stdout(monkeypatch):
    packed = run(input=b"")  # CliRunner's stdin is not a terminal
    assert packed.exit_code == 0, packed.stderr
    assert packed.stdout_bytes.startswith(container.MAGIC)
    assert packed.stderr == ""  # quiet when writing to stdout, like zstd
    unpacked = run("-d", input=packed.stdout_bytes)
    assert unpacked.exit_code == 0, unpacked.stderr
    assert unpacked.stdout_bytes == b""
    bad = run("-d", input=b"not an archive")
    assert bad.exit_code == 3 and "not a nacrith archive" in bad.stderr


def test_commands_and_help_still_work(monkeypatch):
    result = run("--help")
    assert result.exit_code == 0 and "tar -I nacrith" in result.stdout
    assert run("-V").stdout.startswith("nacrith, version")
    assert run("decompress", "--help").exit_code == 0
    assert run("info", "--help").exit_code == 0
    monkeypatch.setattr(fileio, "isatty", lambda stream: True)
    result = run()  # alone on a terminal: usage, as before
    assert "Usage:" in result.output and result.exit_code in (0, 2)
    assert run("-d").exit_code == 2  # nothing to read: usage error


def _gnu_tar() -> str:
    tar = shutil.which("tar")
    if tar is None:
        pytest.skip("tar is not installed")
    version = subprocess.run([tar, "--version"], capture_output=True, text=True).stdout
    if "GNU tar" not in version:
        pytest.skip(f"not GNU tar: {version.splitlines()[:1]}")
    return tar


def test_tar_round_trip(tmp_path):
    tar = _gnu_tar()
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "nacrith").exists():
        pytest.skip(f"the nacrith script is not installed in {bin_dir} (pip install -e .)")
    env = dict(os.environ, PATH=str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {
        "a.txt": b"It was the best of times, it was the worst of times, it was the age of wisdom, "
        b"it was the age of foolishness.\n",
        "sub/b.txt": b"The quick brown fox jumps over the lazy dog. Pack my box with five dozen "
        b"liquor jugs.\n",
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    archive = tmp_path / "x.tar.nc"
    subprocess.run(
        [tar, "-b", "1", "-I", "nacrith", "-cf", str(archive), "-C", str(src), *files],
        env=env, cwd=tmp_path, check=True, timeout=600,
    )
    blob = archive.read_bytes()
    assert blob.startswith(container.MAGIC)
    assert len(api.scan(blob)) == 1

    listed = subprocess.run(
        [tar, "-I", "nacrith", "-tf", str(archive)], env=env, capture_output=True, text=True,
        check=True, timeout=600,
    )
    assert sorted(listed.stdout.split()) == sorted(files)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([tar, "-I", "nacrith", "-xf", str(archive), "-C", str(out)], env=env, check=True, timeout=600)
    for name, data in files.items():
        assert (out / name).read_bytes() == data
