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
