"""Members in flight side by side (nacrith.pipeline): more workers busy than one member has
streams, and the same archive as one member after another.

Members are 270-byte chunks (the model is only tried on 256 bytes of text or more) and
streams hold 64 symbols, so each member is one stream of about 60 symbols: coded one member
after another, only one worker could ever be busy.  Every worker runs one llama.cpp thread.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from click.testing import CliRunner

import nacrith
from nacrith import chunked, cli, container, models, pipeline, workers
from nacrith.errors import ChecksumError

SMALL = dict(block_tokens=16, stream_tokens=64, window=64, slide=16, sinks=4)
SMALL_ARGS = ["--block-tokens", "16", "--stream-tokens", "64", "--window", "64", "--slide", "16"]
CHUNK = 270
WORKERS = 3
TEXT = (
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    b"nothing to do: once or twice she had peeped into the book her sister was reading, but it had "
    b"no pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without "
    b"pictures or conversations?'\n"
)
DATA = (TEXT * 4)[: 4 * CHUNK + 20]  # four model members of one stream, and a short tail


class _FakePool(workers.Scheduler):
    """The scheduling alone, without a model: a worker finishes its task (the oldest first)
    each time the pool waits; a stream whose first symbol is negative fails."""

    def __init__(self, slots: int):
        super().__init__(slots)
        self.busy: dict[int, workers._Record] = {}
        self.launched: list[int] = []  # first symbol of every task sent to a worker

    def _start(self) -> None:
        pass

    def _idle(self) -> list[int]:
        return [k for k in range(self.slots) if k not in self.busy]

    def _launch(self, k: int, record) -> None:
        self.busy[k] = record
        self.launched.append(int(record.task[3][0]))

    def _running(self) -> list:
        return list(self.busy.values())

    def _pump(self) -> None:
        k = next(iter(self.busy))
        record = self.busy.pop(k)
        first = int(record.task[3][0])
        if first < 0:
            self._failed(record, ChecksumError(block_index=-first, expected=0, actual=1))
        else:
            record.state, record.result = workers.DONE, [f"coded {first}".encode()]

    def close(self) -> None:
        self._forget_records()
        self.busy.clear()


def _s(*firsts: int) -> list[np.ndarray]:
    return [np.array([f, 7, 7]) for f in firsts]


def test_looked_ahead_streams_are_coded_once_and_asked_for_work_goes_first():
    pool = _FakePool(2)
    asked = pool.encode_streams(_s(1, 2, 3, 4, 5), "L", "N", None)
    assert next(asked) == [b"coded 1"]
    assert pool.look_ahead_encode(iter(_s(10, 11, 12)), "L", "N", ticket=1) == 2  # room: 2 slots
    assert pool.room() == 0
    assert [r[0] for r in asked] == [b"coded 2", b"coded 3", b"coded 4", b"coded 5"]
    assert pool.launched[:5] == [1, 2, 3, 4, 5]  # the look-ahead waited for idle workers
    assert list(pool.encode_streams(_s(10, 11), "L", "N", None)) == [[b"coded 10"], [b"coded 11"]]
    assert pool.launched == [1, 2, 3, 4, 5, 10, 11]  # looked-ahead tasks were not coded again
    assert pool.room() == 2


def test_a_wrong_look_ahead_is_not_used_and_is_released():
    pool = _FakePool(2)
    pool.look_ahead_encode(iter(_s(10)), "L", "N", ticket=5)
    assert list(pool.encode_streams(_s(10), "other layout", "N", None)) == [[b"coded 10"]]
    assert pool.launched == [10, 10]  # another layout is other work, even with equal symbols
    assert pool.room() == 1
    pool.release([5])
    assert pool.room() == 2


def test_a_look_ahead_failure_is_raised_only_when_asked_for():
    pool = _FakePool(2)
    pool.look_ahead_encode(iter(_s(-3)), "L", "N", ticket=1)
    assert list(pool.encode_streams(_s(1, 2, 4), "L", "N", None)) == [[b"coded 1"], [b"coded 2"], [b"coded 4"]]
    with pytest.raises(ChecksumError) as caught:
        list(pool.encode_streams(_s(-3), "L", "N", None))
    assert caught.value.block_index == 3


def test_progress_of_looked_ahead_work_is_credited_once_to_whoever_asks():
    pool = _FakePool(1)
    pool.look_ahead_encode(iter(_s(10)), "L", "N", ticket=1)
    record = pool._ahead[0]
    record.heard = 3  # the worker reported its progress before anyone asked
    counted: list[int] = []
    assert list(pool.encode_streams(_s(10), "L", "N", counted.append)) == [[b"coded 10"]]
    assert counted == [3]


def _streams(member: bytes) -> int:
    info = container.read_info(io.BytesIO(member))
    if info.header.mode != container.MODE_MODEL:
        return 0
    return -(-info.total_symbols // SMALL["stream_tokens"])


@pytest.fixture(scope="module")
def alone():
    """The archive coded in this process, one member after another: the reference bytes."""
    codec = nacrith.Codec(threads=1, **SMALL)
    members: list[bytes] = []
    chunked.compress(codec, io.BytesIO(DATA), members.append, chunk_bytes=CHUNK)
    return members


@pytest.fixture(scope="module")
def pooled():
    with nacrith.Codec(threads=WORKERS, workers=WORKERS, **SMALL) as codec:
        yield codec


def _pool(codec):
    pool = codec.engine(models.resolve()).workers
    pool.peak_busy = 0
    pool.tasks_by_worker.clear()
    return pool


def test_the_reference_has_single_stream_members(alone):
    counts = [_streams(m) for m in alone]
    assert counts[:4] == [1, 1, 1, 1]  # else the test below proves nothing
    assert len(alone) == 5


def test_members_in_flight_keep_more_workers_busy_than_a_member_has_streams(alone, pooled):
    pool = _pool(pooled)
    members: list[bytes] = []
    counted: list[int] = []
    report = pipeline.compress(pooled, io.BytesIO(DATA), members.append, chunk_bytes=CHUNK, progress=counted.append)
    assert members == alone  # byte for byte the archive of one member after another
    symbols = sum(container.read_info(io.BytesIO(m)).total_symbols for m in members if _streams(m))
    assert sum(counted) == symbols  # each stream's progress once, looked ahead or not
    assert report.original == len(DATA) and len(report.members) == len(alone)
    most = max(_streams(m) for m in members)
    assert pool.peak_busy == WORKERS > most  # several members' streams were coded at once
    assert len(pool.tasks_by_worker) == WORKERS
    # Each stream was coded once: the look-ahead was exactly the work the codec asked for.
    assert sum(pool.tasks_by_worker.values()) == sum(_streams(m) for m in members)

    pool = _pool(pooled)
    out: list[bytes] = []
    report = pipeline.decompress(pooled, io.BytesIO(b"".join(members)), out.append)
    assert out == [DATA[k : k + CHUNK] for k in range(0, len(DATA), CHUNK)]  # member by member
    assert report.compressed == sum(map(len, members))
    assert pool.peak_busy == WORKERS
    assert sum(pool.tasks_by_worker.values()) == sum(_streams(m) for m in members)


def test_one_member_after_another_keeps_one_worker_busy(alone, pooled):
    # The measure above can fail: the member loop of nacrith.chunked on the same pool.
    pool = _pool(pooled)
    members: list[bytes] = []
    chunked.compress(pooled, io.BytesIO(DATA), members.append, chunk_bytes=CHUNK)
    assert members == alone
    assert pool.peak_busy == 1


def test_errors_come_in_member_order(alone, pooled):
    # Damage the payload of the third member: it fails while looked ahead, but only when its
    # turn comes, after the first two members were written.
    blob = bytearray(b"".join(alone))
    start = len(alone[0]) + len(alone[1])
    reader = container.ArchiveReader(io.BytesIO(bytes(blob[start:])))
    ends = [(reader.bytes_read, bh.payload_len) for bh, _ in reader.blocks()]
    end, length = ends[1]
    blob[start + end - length] ^= 0x40  # the framing stays intact: only decoding can notice
    out: list[bytes] = []
    with pytest.raises(ChecksumError) as caught:
        pipeline.decompress(pooled, io.BytesIO(bytes(blob)), out.append)
    assert caught.value.block_index == 1
    assert out == [DATA[:CHUNK], DATA[CHUNK : 2 * CHUNK]]
    assert b"".join(alone) and pooled.decompress(b"".join(alone)) == DATA  # the pool works again


def test_trailing_garbage_is_reported_after_the_members_before_it(alone, pooled):
    out: list[bytes] = []
    with pytest.raises(nacrith.FormatError, match="trailing"):
        pipeline.decompress(pooled, io.BytesIO(b"".join(alone[:2]) + b"junk"), out.append)
    assert out == [DATA[:CHUNK], DATA[CHUNK : 2 * CHUNK]]


def test_cli_with_workers_writes_the_same_archive(alone, monkeypatch, tmp_path):
    monkeypatch.setattr(chunked, "CHUNK_BYTES", CHUNK)
    src = tmp_path / "in.txt"
    src.write_bytes(DATA)
    args = ["-q", "-T", str(WORKERS), "--workers", str(WORKERS)]
    runner = CliRunner()
    made = runner.invoke(cli.main, ["compress", *args, *SMALL_ARGS, "--verify", str(src)])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "in.txt.nc").read_bytes() == b"".join(alone)
    src.unlink()
    back = runner.invoke(cli.main, ["decompress", *args, str(tmp_path / "in.txt.nc")])
    assert back.exit_code == 0, back.output
    assert src.read_bytes() == DATA


@pytest.fixture(scope="module")
def ray_cluster():
    """A private one-node Ray instance with two CPUs, for this module only."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nacrith[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    try:
        # address="local": a new instance, never another one running on this machine.
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100_000_000,
                 logging_level="WARNING", log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


RAY_ENV = {
    "RAY_memory_monitor_refresh_ms": "0",  # no OOM killer sampling: the machine is shared
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray 2.60's ray.init() turns token auth on for a new local instance and writes a token
    # to ~/.ray/auth_token, after which the `ray start` nodes of tests/test_ray.py fail to
    # join their head (seen here).  The same as those clusters: auth off, this machine only.
    "RAY_AUTH_MODE": "disabled",
}


def test_ray_actors_code_several_members_at_once(alone, ray_cluster):
    with nacrith.Codec(threads=1, workers=2, engine="ray", **SMALL) as remote:
        counted: list[int] = []
        members: list[bytes] = []
        pipeline.compress(remote, io.BytesIO(DATA), members.append, chunk_bytes=CHUNK, progress=counted.append)
        assert members == alone
        pool = remote.engine(models.resolve()).workers
        assert pool.peak_busy == 2 > max(_streams(m) for m in members)
        assert sum(pool.tasks_by_worker.values()) == sum(_streams(m) for m in members)
        symbols = sum(container.read_info(io.BytesIO(m)).total_symbols for m in members if _streams(m))
        assert sum(counted) == symbols  # credited once per stream, looked ahead or not
        pool.peak_busy = 0
        assert remote.decompress(b"".join(members)) == DATA
        assert pool.peak_busy == 2
