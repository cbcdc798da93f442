"""Worker processes and chunked streaming: speed and memory settings never change the bytes.

Inputs are a few hundred bytes cut into 16-symbol streams, so that two workers get several
streams each; every worker runs one llama.cpp thread.
"""

from __future__ import annotations

import io
import os
import signal
import time

import pytest
from click.testing import CliRunner

import nacrith
from nacrith import chunked, cli, container, models, workers
from nacrith.errors import ChecksumError, WorkerError

SMALL = dict(block_tokens=16, stream_tokens=16, window=64, slide=16, sinks=4)
SMALL_ARGS = ["--block-tokens", "16", "--stream-tokens", "16", "--window", "64", "--slide", "16"]
TEXT = (
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    b"nothing to do: once or twice she had peeped into the book her sister was reading, but it had "
    b"no pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without "
    b"pictures or conversations?'\n"
)


@pytest.fixture(scope="module")
def pooled():
    """A codec with two worker processes of one thread each."""
    with nacrith.Codec(threads=2, workers=2) as codec:
        yield codec


@pytest.fixture(scope="module")
def archives(codec, pooled):
    """The same input compressed in-process and by two workers (model archives forced)."""
    alone = codec.compress(TEXT, fallback=False, **SMALL)
    by_workers = pooled.compress(TEXT, fallback=False, **SMALL)
    return alone, by_workers


def test_plan_keeps_within_the_thread_budget():
    assert workers.plan(1, 8) == (1, 8)
    assert workers.plan(2, 8) == (2, 4)
    assert workers.plan(3, 8) == (3, 2)
    assert workers.plan(4, 2) == (2, 1)  # never more processes than threads
    assert workers.plan(2, 1) == (1, 1)
    for asked in range(1, 10):
        for total in range(1, 10):
            processes, threads = workers.plan(asked, total)
            assert processes * threads <= total


def test_archive_is_identical_for_any_number_of_workers(pooled, archives):
    alone, by_workers = archives
    info = container.read_info(io.BytesIO(alone))
    assert info.header.mode == container.MODE_MODEL
    assert info.total_symbols > 3 * SMALL["stream_tokens"]  # several streams to deal out
    assert by_workers == alone
    pool = pooled.engine(models.resolve()).workers
    assert pool is not None and len(pool.pids) == 2  # the pool did code it
    before = pool.pids
    assert pooled.compress(TEXT[:100], fallback=False, **SMALL)  # the next archive ...
    assert pool.pids == before  # ... reuses the loaded workers


def test_decodes_with_one_or_two_workers_either_way(codec, pooled, archives):
    for blob in archives:
        assert codec.decompress(blob) == TEXT
        assert pooled.decompress(blob) == TEXT


def test_error_inside_a_worker_is_raised_in_the_caller(pooled, archives):
    reader = container.ArchiveReader(io.BytesIO(archives[0]))
    ends = [(reader.bytes_read, bh.payload_len) for bh, _ in reader.blocks()]
    end, length = ends[2]  # the first block of the third stream
    damaged = bytearray(archives[0])
    damaged[end - length] ^= 0x40  # the framing stays intact: only decoding can notice
    with pytest.raises(ChecksumError) as caught:
        pooled.decompress(bytes(damaged))
    assert caught.value.block_index == 2
    assert pooled.decompress(archives[0]) == TEXT  # the pool starts afresh after an error


def test_dead_worker_is_reported_promptly_and_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.setenv(workers.CRASH_ENV, "1")  # inherited by workers spawned from now on
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT)
    dest = tmp_path / "out.nc"
    t0 = time.monotonic()
    result = CliRunner().invoke(  # each command has a Codec, so workers, of its own
        cli.main, ["compress", "-q", "-T", "2", "--workers", "2", *SMALL_ARGS, str(src), "-o", str(dest)]
    )
    assert result.exit_code == WorkerError.exit_code, result.output
    assert "worker process" in result.output and "exited with status 3" in result.output
    assert time.monotonic() - t0 < 120
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]  # no output, no temporary file


def test_worker_killed_between_archives_is_reported(pooled, archives):
    pool = pooled.engine(models.resolve()).workers
    assert pooled.decompress(archives[0]) == TEXT  # workers running and idle
    victim = pool.pids[0]
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.5)
    with pytest.raises(WorkerError, match=f"worker process {victim} was killed by signal 9"):
        pooled.decompress(archives[0])
    assert pooled.decompress(archives[0]) == TEXT  # a new pool replaces it


class _Trickle(io.RawIOBase):
    """A pipe that delivers at most 7 bytes per read."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(7, n) if n >= 0 else 7)


def test_chunks_do_not_depend_on_how_the_input_arrives(codec):
    data = bytes(range(256)) * 4 + b"\x00\xff" * 100  # binary: never reaches the model
    whole, trickled = [], []
    chunked.compress(codec, io.BytesIO(data), whole.append, chunk_bytes=300)
    chunked.compress(codec, _Trickle(data), trickled.append, chunk_bytes=300)
    assert trickled == whole
    assert len(whole) == -(-len(data) // 300)
    out = []
    report = chunked.decompress(codec, io.BytesIO(b"".join(whole)), out.append)
    assert b"".join(out) == data
    assert [len(piece) for piece in out] == [300] * (len(data) // 300) + [len(data) % 300]
    assert report.original == len(data) and len(report.members) == len(whole)


def test_cli_streams_big_input_in_members_and_back(codec, monkeypatch):
    monkeypatch.setattr(chunked, "CHUNK_BYTES", 300)
    data = (TEXT * 4)[:1000]
    packed = CliRunner().invoke(cli.main, ["compress", "-q", "-T", "2", *SMALL_ARGS], input=data)
    assert packed.exit_code == 0, packed.output
    archive = packed.stdout_bytes
    members = container.read_info_all(io.BytesIO(archive))
    assert len(members) == 4
    assert [m.trailer.original_size for m in members] == [300, 300, 300, 100]
    # A chunk is coded exactly as a whole input of that size would be.
    assert archive.startswith(codec.compress(data[:300], **SMALL))
    unpacked = CliRunner().invoke(cli.main, ["decompress", "-q", "-T", "2"], input=archive)
    assert unpacked.exit_code == 0, unpacked.output
    assert unpacked.stdout_bytes == data
