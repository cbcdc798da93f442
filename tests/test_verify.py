"""``nacrith compress --verify``: the new archive is decoded and compared before it is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nacrith import api, chunked, cli, fileio

TEXT = (
    b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    b"age of foolishness, it was the epoch of belief, it was the epoch of incredulity.\n"
) * 2


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli.main, list(args), input=input)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_verify_keeps_a_good_archive(tmp_path, codec):
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    result = run("compress", "--verify", "-T", "1", str(src))
    assert result.exit_code == 0, result.stderr
    assert "(verified)" in result.stderr
    plain = run("compress", "-q", "-T", "1", "-c", str(src))
    assert (tmp_path / "a.txt.nc").read_bytes() == plain.stdout_bytes  # same archive as without
    assert codec.decompress(plain.stdout_bytes) == TEXT


def test_verify_refuses_an_archive_that_decodes_wrong(tmp_path, monkeypatch):
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    # A file output is read back and decoded member by member (chunked.decompress); standard
    # output, which cannot be read back, is checked member by member before it is written.
    monkeypatch.setattr(api.Codec, "decompress", lambda self, data, **kw: TEXT + b"?")
    real = chunked.decompress_archive
    monkeypatch.setattr(chunked, "decompress_archive", lambda *a, **kw: real(*a, **kw) + b"?")
    result = run("compress", "--verify", "-T", "1", str(src))
    assert result.exit_code == 4, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("nacrith: error: ") and "verification failed" in line
    assert names(tmp_path) == ["a.txt"]  # no output, no temporary file
    assert src.read_bytes() == TEXT

    result = run("compress", "--verify", "-T", "1", "-c", str(src))
    assert result.exit_code == 4 and result.stdout_bytes == b""


class _Flipping:
    """A file object that damages one byte on its way to the disk."""

    def __init__(self, file):
        self._file = file

    def write(self, data: bytes) -> int:
        data = bytearray(data)
        data[len(data) // 2] ^= 0x01
        return self._file.write(bytes(data))

    def __getattr__(self, name):
        return getattr(self._file, name)


def test_verify_reads_back_what_was_written(tmp_path, monkeypatch):
    real_init = fileio.AtomicOutput.__init__

    def damaging_init(self, dest):
        real_init(self, dest)
        self.file = _Flipping(self.file)

    monkeypatch.setattr(fileio.AtomicOutput, "__init__", damaging_init)
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    result = run("compress", "--verify", "-q", "-T", "1", str(src))
    assert result.exit_code == 4, result.stderr
    assert "does not decode" in result.stderr
    assert names(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("data", [b"", b"\x00\xff" * 40])  # empty and stored archives too
def test_verify_on_trivial_archives(tmp_path, codec, data):
    src = tmp_path / "a.bin"
    src.write_bytes(data)
    result = run("compress", "--verify", "-q", "-T", "1", str(src))
    assert result.exit_code == 0, result.stderr
    assert codec.decompress((tmp_path / "a.bin.nc").read_bytes()) == data
