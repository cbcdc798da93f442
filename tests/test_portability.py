"""Portable numerics: the pinned kernel build is recognised, and computes the same logits on a
CPU without AVX-512 (emulated by qemu-user; the full check with archives both ways and a
native build for contrast is tests/bench/portability.py, results in docs/determinism.md)."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nacrith.native import kernels

BENCH = Path(__file__).resolve().parent / "bench" / "portability.py"

PINNED_REPORT = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
)


def test_pinned_report_is_the_portable_kernel_set():
    assert kernels.kernel_set(kernels.features(PINNED_REPORT), "x86_64") == "x86-64-v3"


@pytest.mark.parametrize(
    "extra", ["AVX512 = 1", "AVX512_VNNI = 1", "AVX_VNNI = 1", "AMX_INT8 = 1", "AVX512_BF16 = 1"]
)
def test_any_extra_kernel_makes_a_build_machine_bound(extra):
    report = PINNED_REPORT + f" {extra} |"
    assert kernels.kernel_set(kernels.features(report), "x86_64") == kernels.MACHINE_BOUND


def test_missing_kernel_or_other_machine_is_machine_bound():
    assert kernels.kernel_set(kernels.features(PINNED_REPORT.replace("FMA = 1", "FMA = 0")), "x86_64") == kernels.MACHINE_BOUND
    assert kernels.kernel_set(kernels.features("CPU : NEON = 1 | ARM_FMA = 1 | DOTPROD = 1 |"), "aarch64") == kernels.MACHINE_BOUND


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the pinned kernel set is defined for x86-64 only")
def test_installed_llama_cpp_is_the_pinned_build():
    """native/install.sh (which .ci/run uses) must have produced the pinned build."""
    info = kernels.loaded_system_info()
    assert kernels.kernel_set(kernels.features(info)) == "x86-64-v3", info


@pytest.mark.skipif(platform.machine() != "x86_64", reason="emulates an x86-64 CPU")
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="qemu-user is not installed (.ci/run installs it)")
def test_probe_is_identical_on_a_cpu_without_avx512():
    def probe(*prefix: str) -> str:
        p = subprocess.run([*prefix, sys.executable, str(BENCH), "--child", "probe"], capture_output=True, timeout=1200)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        return p.stdout.decode().strip()

    here = probe()
    assert len(here) == 16
    assert probe("qemu-x86_64", "-cpu", "Haswell") == here


# -- the probe in archives: recorded by the writer, checked before decoding ------------------

import dataclasses  # noqa: E402
import io  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from nacrith import cli, container, fingerprint  # noqa: E402
from nacrith.codec import NumericConfig  # noqa: E402
from nacrith.errors import EnvironmentMismatchError  # noqa: E402

TEXT = b"Portable archives decode on other machines, or say at once that they cannot.\n" * 4


def reframed(blob: bytes, **changes) -> bytes:
    """``blob`` with its header parameters changed (the blocks, hence the payload, kept)."""
    reader = container.ArchiveReader(io.BytesIO(blob))
    params = dataclasses.replace(reader.header.params, **changes)
    blocks = [container.Block(bh.n_symbols, bh.n_bytes, bh.crc32, p) for bh, p in reader.blocks()]
    return container.encode_member(reader.header.mode, params, TEXT, blocks)


@pytest.fixture(scope="module")
def portable(codec) -> bytes:
    return codec.compress(TEXT, fallback=False)


def test_archive_records_the_portable_kernels_and_this_probe(codec, engine, portable):
    params = container.read_info(io.BytesIO(portable)).header.params
    assert params.kernels == container.KERNELS_PORTABLE
    probe = fingerprint.probe(engine.model, NumericConfig(), engine.start_token, engine.threads)
    assert params.probe == probe[: container.PROBE_SIZE]
    assert probe.hex() == fingerprint.REFERENCE_PROBES[(engine.model_file.sha256, True, 8, 1)]
    assert codec.decompress(portable) == TEXT


@pytest.mark.parametrize("kernels", [container.KERNELS_PORTABLE, container.KERNELS_MACHINE_BOUND])
def test_other_numerics_are_refused_before_anything_is_decoded(codec, portable, kernels):
    other = reframed(portable, probe=b"\x01\x02\x03\x04", kernels=kernels, fingerprint="riscv64 none 000000000000" if kernels == container.KERNELS_MACHINE_BOUND else "")
    decoded = []
    with pytest.raises(EnvironmentMismatchError, match="probe 01020304.*nothing was decoded") as caught:
        codec.decompress(other, progress=decoded.append)
    assert decoded == []  # no symbol was decoded
    if kernels == container.KERNELS_MACHINE_BOUND:
        assert "riscv64 none 000000000000" in str(caught.value)
    else:
        assert "native/install.sh" in str(caught.value)


def test_cli_refuses_other_numerics_in_one_line(portable, tmp_path):
    src = tmp_path / "other.nc"
    src.write_bytes(reframed(portable, probe=b"\x01\x02\x03\x04"))
    result = CliRunner().invoke(cli.main, ["decompress", "-T", "1", str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == EnvironmentMismatchError.exit_code
    assert result.output.count("\n") == 1 and "nothing was decoded" in result.output
    assert not (tmp_path / "out").exists()


def test_a_build_that_is_not_pinned_refuses_unless_native(codec, monkeypatch):
    monkeypatch.setattr(fingerprint, "loaded_kernel_set", lambda: kernels.MACHINE_BOUND)
    with pytest.raises(EnvironmentMismatchError, match="--native"):
        codec.compress(TEXT, fallback=False)
    bound = codec.compress(TEXT, fallback=False, native=True)
    params = container.read_info(io.BytesIO(bound)).header.params
    assert params.kernels == container.KERNELS_MACHINE_BOUND and params.fingerprint
    assert codec.decompress(bound) == TEXT  # the probe matches here: same machine


def test_pinned_features_with_other_numbers_count_as_machine_bound(codec, engine, monkeypatch):
    key = (engine.model_file.sha256, True, 8, 1)
    monkeypatch.setitem(fingerprint.REFERENCE_PROBES, key, "00" * 8)  # as if another compiler
    with pytest.raises(EnvironmentMismatchError, match="other numbers than the reference build"):
        codec.compress(TEXT, fallback=False)
