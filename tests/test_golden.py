"""Golden model-coded archives pin the bitstream (see formats/make_model_golden.py)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from nacrith import container
from nacrith.fingerprint import restamp

FORMATS = Path(__file__).resolve().parent.parent / "formats"
sys.path.insert(0, str(FORMATS))
import make_model_golden  # noqa: E402

NAMES = [name for name, *_ in make_model_golden.CASES]


@pytest.mark.parametrize("name", NAMES)
def test_golden_archive_decodes(codec, name):
    original = (make_model_golden.HERE / f"{name}.txt").read_bytes()
    archive = (make_model_golden.HERE / f"{name}.txt.nc").read_bytes()
    assert container.read_info(io.BytesIO(archive)).header.mode == container.MODE_MODEL
    assert codec.decompress(archive) == original


@pytest.mark.parametrize("name", NAMES)
def test_compressing_reproduces_golden_archive(codec, name):
    data, layout = {n: (d, lay) for n, d, lay in make_model_golden.CASES}[name]
    assert (make_model_golden.HERE / f"{name}.txt").read_bytes() == data
    blob = codec.compress(data, fallback=False, **layout)  # mode 0 even where zstd is smaller
    golden = (make_model_golden.HERE / f"{name}.txt.nc").read_bytes()
    # The fingerprint (header key 15) names the machine, not the bitstream: compare without it.
    assert restamp(blob, "") == restamp(golden, "")


KVQ8 = FORMATS / "golden" / "model-kvq8"


@pytest.mark.parametrize("name", ["prose", "essay-ensemble"])
def test_archives_with_the_earlier_q8_v_cache_still_decode(codec, name):
    """Archives made before the F16 V cache became the default (K and V in Q8_0) keep decoding."""
    archive = (KVQ8 / f"{name}.txt.nc").read_bytes()
    params = container.read_info(io.BytesIO(archive)).header.params
    assert (params.type_k, params.type_v) == (8, 8)
    assert codec.decompress(archive) == (KVQ8 / f"{name}.txt").read_bytes()
