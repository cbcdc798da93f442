"""The Ray engine on a real two-node cluster: the same archives as the local engine.

The module starts a Ray head and a second worker node on this machine (1 CPU each, small
object stores, no dashboard), so every test's two actors run on two different nodes.  Ray
registers its nodes under the machine's own address even when asked for 127.0.0.1
(``ray.services.resolve_ip_for_localhost``), so "loopback only" means: one machine, nothing
reached outside it.  Inputs are a few hundred bytes cut into 32-symbol streams, and each
actor runs one llama.cpp thread.  Skipped only where Ray is not installed.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import nacrith
from nacrith import cli, container, models, ray_engine
from nacrith.errors import ChecksumError, EnvironmentMismatchError, MissingDependencyError, WorkerError

SMALL = dict(block_tokens=16, stream_tokens=32)
SMALL_ARGS = ["--block-tokens", "16", "--stream-tokens", "32"]
TEXT = (
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    b"nothing to do: once or twice she had peeped into the book her sister was reading, but it had "
    b"no pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without "
    b"pictures or conversations?'\n"
    b"So she was considering in her own mind (as well as she could, for the hot day made her feel "
    b"very sleepy and stupid), whether the pleasure of making a daisy-chain would be worth the "
    b"trouble of getting up and picking the daisies, when suddenly a White Rabbit with pink eyes "
    b"ran close by her.\n"
)
CLUSTER_ENV = {
    "RAY_memory_monitor_refresh_ms": "0",  # no OOM killer sampling: the machine is shared
    "RAY_USAGE_STATS_ENABLED": "0",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """The address of a running two-node Ray cluster on this machine (stopped afterwards)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nacrith[ray]')")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # A short private temp dir: Ray's socket paths must stay under the 107-byte limit.
    temp_dir = tempfile.mkdtemp(prefix="nray")
    env = {**os.environ, **CLUSTER_ENV}
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", "100000000",
              "--disable-usage-stats"]
    head = [ray_cli, "start", "--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", temp_dir]
    node = [ray_cli, "start", "--address", address]
    try:
        for command in (head + common, node + common):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
            if done.returncode:
                pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        ray_engine.connect(address)
        assert ray.cluster_resources().get("CPU") == 2, ray.nodes()
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=180)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def local_archive(codec):
    """The local engine's archive of TEXT: several streams, model-coded."""
    blob = codec.compress(TEXT, fallback=False, **SMALL)
    info = container.read_info(io.BytesIO(blob))
    assert info.header.mode == container.MODE_MODEL
    assert info.total_symbols > 3 * SMALL["stream_tokens"]  # several streams for two workers
    return blob


def _ray_codec(address: str, workers: int = 2) -> nacrith.Codec:
    return nacrith.Codec(threads=1, workers=workers, engine="ray", address=address)


def test_ray_archive_is_the_local_archive_and_both_decode_each_other(cluster, codec, local_archive):
    import ray

    counted = []
    with _ray_codec(cluster) as remote:
        blob = remote.compress(TEXT, fallback=False, progress=counted.append, **SMALL)
        assert blob == local_archive
        total = container.read_info(io.BytesIO(blob)).total_symbols
        assert sum(counted) == total  # one progress bar for all workers, never overcounted
        pool = remote.engine(models.resolve()).workers
        nodes = {node for node, _ in ray.get([actor.where.remote() for actor in pool.actors])}
        assert len(nodes) == 2  # the two actors ran on the two nodes
        counted.clear()
        assert remote.decompress(local_archive, progress=counted.append) == TEXT
        assert sum(counted) == total
    assert codec.decompress(blob) == TEXT


def test_cli_round_trip_on_ray(cluster, codec, local_archive, tmp_path):
    # The command line keeps the smallest archive; on this tiny layout that may be bytecm's
    # (mode 4) rather than the model's, so compare with the local engine's choice.
    expected = codec.compress(TEXT, **SMALL)
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT)
    ray_args = ["-T", "1", "--workers", "2", "--engine", "ray", "--address", cluster]
    runner = CliRunner()  # each command stops its Ray actors when it ends
    made = runner.invoke(cli.main, ["compress", "-q", *ray_args, *SMALL_ARGS, str(src), "-o", str(tmp_path / "a.nc")])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "a.nc").read_bytes() == expected
    (tmp_path / "local.nc").write_bytes(local_archive)
    back = runner.invoke(cli.main, ["decompress", "-q", *ray_args, str(tmp_path / "local.nc"), "-o", str(tmp_path / "out")])
    assert back.exit_code == 0, back.output
    assert (tmp_path / "out").read_bytes() == TEXT
    tested = runner.invoke(cli.main, ["test", *ray_args, str(tmp_path / "a.nc")])
    assert tested.exit_code == 0 and "OK" in tested.output, tested.output


def test_error_inside_an_actor_is_raised_as_it_is(cluster, local_archive):
    reader = container.ArchiveReader(io.BytesIO(local_archive))
    ends = [(reader.bytes_read, bh.payload_len) for bh, _ in reader.blocks()]
    end, length = ends[4]  # the first block of the third stream
    damaged = bytearray(local_archive)
    damaged[end - length] ^= 0x40  # the framing stays intact: only decoding can notice
    with _ray_codec(cluster) as remote:
        with pytest.raises(ChecksumError) as caught:
            remote.decompress(bytes(damaged))
        assert caught.value.block_index == 4
        assert remote.decompress(local_archive) == TEXT  # new actors after the error


def test_killed_worker_is_retried_and_the_archive_is_unchanged(cluster, local_archive, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(ray_engine.FAULT_ENV, f"once:{marker}")  # the first task kills its actor
    with _ray_codec(cluster) as remote:
        assert remote.compress(TEXT, fallback=False, **SMALL) == local_archive
    assert marker.exists()  # an actor process did die mid-job


def test_permanent_failure_fails_the_job_without_output(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(ray_engine.FAULT_ENV, "always")  # every attempt dies
    monkeypatch.setattr(ray_engine, "DEFAULT_RETRIES", 1)
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT)
    dest = tmp_path / "out.nc"
    result = CliRunner().invoke(  # a Codec of its own, so actors of its own, stopped when it ends
        cli.main,
        ["compress", "-q", "-T", "1", "--workers", "2", "--engine", "ray", "--address", cluster,
         *SMALL_ARGS, str(src), "-o", str(dest)],
    )
    assert result.exit_code == WorkerError.exit_code, result.output
    assert "Ray worker died" in result.output and "after 1 retries" in result.output
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]  # no output, no temporary file


def test_a_worker_with_other_numerics_is_refused_before_any_stream(cluster, local_archive, monkeypatch):
    monkeypatch.setenv(ray_engine.FAULT_ENV, "probe")  # every actor reports another probe
    counted = []
    with _ray_codec(cluster) as remote:
        with pytest.raises(EnvironmentMismatchError, match="a Ray worker .* computes other model numbers"):
            remote.compress(TEXT, fallback=False, progress=counted.append, **SMALL)
        with pytest.raises(EnvironmentMismatchError, match="a Ray worker .* computes other model numbers"):
            remote.decompress(local_archive, progress=counted.append)
    assert counted == []  # refused before any stream was coded


def test_more_workers_than_cluster_cpus_is_refused(cluster):
    with _ray_codec(cluster, workers=3) as remote:
        with pytest.raises(WorkerError, match="need 3 CPUs, but the cluster has 2"):
            remote.compress(TEXT, fallback=False, **SMALL)


def test_without_ray_the_engine_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'nacrith\[ray\]'"):
        ray_engine.RayPool(models.resolve(), workers=1)
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT)
    result = CliRunner().invoke(cli.main, ["compress", "-q", "-T", "1", "--engine", "ray", str(src)])
    assert result.exit_code == MissingDependencyError.exit_code == 1, result.output
    assert "pip install 'nacrith[ray]'" in result.output
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]
