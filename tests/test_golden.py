"""Golden model-coded archives pin the bitstream (see formats/make_model_golden.py)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from nacrith import container
from nacrith.fingerprint import restamp
from nacrith.native import kernels

FORMATS = Path(__file__).resolve().parent.parent / "formats"
sys.path.insert(0, str(FORMATS))
import make_model_golden  # noqa: E402

NAMES = [name for name, *_ in make_model_golden.CASES]
AVX512 = FORMATS / "golden" / "avx512-v1"
#: llama.cpp's feature report where the avx512-v1 archives were made (their README).
AVX512_FEATURES = frozenset(
    "SSE3 SSSE3 AVX AVX2 F16C FMA BMI2 AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16".split()
)


def _blocks(archive: bytes) -> list[bytes]:
    reader = container.ArchiveReader(io.BytesIO(archive))
    return [payload for _, payload in reader.blocks()]


@pytest.mark.parametrize("name", NAMES)
def test_golden_archive_decodes(codec, name):
    original = (make_model_golden.HERE / f"{name}.txt").read_bytes()
    archive = (make_model_golden.HERE / f"{name}.txt.nc").read_bytes()
    header = container.read_info(io.BytesIO(archive)).header
    assert (header.version, header.mode) == (container.FORMAT_VERSION, container.MODE_MODEL)
    assert header.params.kernels == container.KERNELS_PORTABLE
    assert codec.decompress(archive) == original


@pytest.mark.parametrize("name", NAMES)
def test_compressing_reproduces_golden_archive(codec, name):
    data, layout = {n: (d, lay) for n, d, lay in make_model_golden.CASES}[name]
    assert (make_model_golden.HERE / f"{name}.txt").read_bytes() == data
    blob = codec.compress(data, fallback=False, **layout)  # mode 0 even where zstd is smaller
    golden = (make_model_golden.HERE / f"{name}.txt.nc").read_bytes()
    assert restamp(blob, "") == restamp(golden, "")


@pytest.mark.parametrize("name", [n for n in NAMES if n not in make_model_golden.V2_ONLY])
def test_version_1_archive_decodes_and_holds_the_same_payloads(codec, name):
    """The pinned kernels' version 1 archives: the framing differs, the coded payloads do not."""
    v1 = (make_model_golden.V1 / f"{name}.txt.nc").read_bytes()
    assert container.read_info(io.BytesIO(v1)).header.version == 1
    assert codec.decompress(v1) == (make_model_golden.V1 / f"{name}.txt").read_bytes()
    assert _blocks(v1) == _blocks((make_model_golden.HERE / f"{name}.txt.nc").read_bytes())


@pytest.mark.parametrize("name", make_model_golden.KVQ8_NAMES)
def test_archives_with_the_earlier_q8_v_cache_still_decode(codec, name):
    """Archives made with K and V in Q8_0 (the earliest default) keep decoding."""
    archive = (make_model_golden.KVQ8 / f"{name}.txt.nc").read_bytes()
    params = container.read_info(io.BytesIO(archive)).header.params
    assert (params.type_k, params.type_v) == (8, 8)
    assert codec.decompress(archive) == (make_model_golden.KVQ8 / f"{name}.txt").read_bytes()


def _avx512_build() -> bool:
    return kernels.features(kernels.loaded_system_info()) - {"LLAMAFILE", "OPENMP", "REPACK"} == AVX512_FEATURES


AVX512_ARCHIVES = sorted(p.relative_to(AVX512).as_posix() for p in AVX512.glob("*/*.nc"))


@pytest.mark.skipif(not _avx512_build(), reason="made with AVX-512 kernels; this llama.cpp runs others (see formats/golden/avx512-v1/README.md)")
@pytest.mark.parametrize("name", AVX512_ARCHIVES)
def test_avx512_archive_decodes_where_it_was_made(codec, name):
    archive = (AVX512 / name).read_bytes()
    original = AVX512 / name.replace(".txt.nc", ".txt").replace(".bytecm-v1.nc", ".bin").replace(".bin.nc", ".bin")
    assert codec.decompress(archive) == original.read_bytes()


def test_avx512_archives_are_all_named():
    assert len(AVX512_ARCHIVES) == 5 + 2 + 2
