"""Interrupts and I/O faults in a real ``nacrith`` process: no partial output, input untouched.

Each signal test starts the command line as its own process (``python -m nacrith.cli``), waits
until the temporary output file exists (the model is loaded and coding has started), sends
SIGINT or SIGTERM, and checks the exit status (130 / 143), the last stderr line, that the
directory holds exactly what it held before, and that the input's bytes and mtime are
unchanged.  The fault tests provoke ENOSPC (standard output on /dev/full), EFBIG (a file size
limit) and ENOTDIR/EACCES (an output directory that cannot be written).
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nacrith import errors, fileio

ROOT = Path(__file__).resolve().parent.parent
# Long enough that coding takes several seconds on one thread (about 800 tokens).
TEXT = (
    b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    b"age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    b"season of Light, it was the season of Darkness, it was the spring of hope, it was the "
    b"winter of despair.\n"
) * 12


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _default_sigint() -> None:
    # A child of a background shell job inherits SIGINT ignored, and Python keeps it ignored;
    # a user's Ctrl-C reaches a foreground process whose SIGINT is the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def nacrith(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nacrith.cli", *args], cwd=cwd, env=_env(),
        stdout=kw.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE,
        preexec_fn=kw.pop("preexec_fn", _default_sigint), **kw,
    )


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Name -> (sha256, mtime_ns) of every entry in ``folder``."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
    }


def interrupt_when_working(proc: subprocess.Popen, folder: Path, signum: int) -> str:
    """Send ``signum`` once a temporary output exists in ``folder``; return stderr."""
    try:
        deadline = time.monotonic() + 180
        while not any(p.name.endswith(fileio.TMP_SUFFIX) for p in folder.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.02)
        time.sleep(0.3)  # well inside the model's work, not at its first step
        assert proc.poll() is None, "finished before the signal: make TEXT longer"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return err.decode(errors="replace")


EXPECTED = {
    signal.SIGINT: (errors.EXIT_INTERRUPTED, "nacrith: interrupted"),
    signal.SIGTERM: (errors.EXIT_TERMINATED, "nacrith: terminated"),
}


@pytest.fixture(scope="module")
def archive(codec) -> bytes:
    return codec.compress(TEXT, fallback=False)  # model-coded: decoding takes seconds


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_compress(tmp_path, signum):
    (tmp_path / "big.txt").write_bytes(TEXT)
    before = snapshot(tmp_path)
    proc = nacrith("compress", "-T", "1", "big.txt", cwd=tmp_path)
    err = interrupt_when_working(proc, tmp_path, signum)
    code, line = EXPECTED[signum]
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == line
    assert snapshot(tmp_path) == before  # no output, no temporary file, input untouched


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_decompress(tmp_path, archive, signum):
    (tmp_path / "big.txt.nc").write_bytes(archive)
    before = snapshot(tmp_path)
    proc = nacrith("decompress", "-T", "1", "--lanes", "1", "big.txt.nc", cwd=tmp_path)
    err = interrupt_when_working(proc, tmp_path, signum)
    code, line = EXPECTED[signum]
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == line
    assert snapshot(tmp_path) == before


# -- I/O faults -----------------------------------------------------------------------------


def one_error_line(err: bytes) -> str:
    lines = err.decode(errors="replace").strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("nacrith: error: "), lines[0]
    return lines[0]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_full_disk_on_stdout(tmp_path, archive, command):
    src = tmp_path / ("in.txt" if command == "compress" else "in.txt.nc")
    src.write_bytes(TEXT[:300] if command == "compress" else archive)
    with open("/dev/full", "wb") as full:
        proc = nacrith(command, "-q", "-T", "1", "-c", src.name, cwd=tmp_path, stdout=full)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert one_error_line(err) == "nacrith: error: (stdout): No space left on device"
    assert [p.name for p in tmp_path.iterdir()] == [src.name]


def _small_file_limit() -> None:
    _default_sigint()
    # Smaller than any model archive (a version 2 header alone is 21 bytes); Python ignores
    # SIGXFSZ, so the write fails with EFBIG.
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))


def test_file_too_large_leaves_no_output(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT[:600])
    proc = nacrith("compress", "-q", "-T", "1", "in.txt", cwd=tmp_path, preexec_fn=_small_file_limit)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert one_error_line(err) == "nacrith: error: in.txt.nc: File too large"  # names the output
    assert [p.name for p in tmp_path.iterdir()] == ["in.txt"]


def test_output_directory_that_is_a_file(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT[:300])
    (tmp_path / "plain").write_bytes(b"")
    proc = nacrith("compress", "-q", "-T", "1", "-o", "plain/out.nc", "in.txt", cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert one_error_line(err) == "nacrith: error: plain/out.nc: Not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "plain"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_output_directory(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT[:300])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        proc = nacrith("compress", "-q", "-T", "1", "-o", "locked/out.nc", "in.txt", cwd=tmp_path)
        _, err = proc.communicate(timeout=300)
    finally:
        locked.chmod(0o700)
    assert proc.returncode == 1
    assert one_error_line(err) == "nacrith: error: locked/out.nc: Permission denied"
    assert list(locked.iterdir()) == []


