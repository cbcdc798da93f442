"""fsspec integration: ``fsspec.open(..., compression="nacrith")`` (optional dependency).

fsspec has no entry-point hook for compressions, so ``import nacrith`` registers one (lazily:
nacrith does not import fsspec, it waits for fsspec to be imported).  Both import orders are
checked in fresh interpreters; the round trip runs in-process with the session's codec.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nacrith
from nacrith import api

fsspec = pytest.importorskip("fsspec")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shared_codec(codec, monkeypatch):
    """fsspec passes no codec: make the process-wide default codec the session's one."""
    monkeypatch.setitem(api._shared, (None, None, "default"), codec)
    return codec


def test_registered():
    assert "nacrith" in fsspec.available_compressions()
    assert fsspec.utils.infer_compression("notes.txt.nc") == "nacrith"


def test_round_trip(tmp_path, shared_codec):
    path = str(tmp_path / "notes.txt.nc")
    text = "fsspec writes through nacrith,\nand reads it back.\n"
    with fsspec.open(path, "wt", compression="nacrith", encoding="utf-8") as f:
        f.write(text)
    blob = Path(path).read_bytes()
    assert blob.startswith(nacrith.MAGIC)
    assert nacrith.decompress(blob).decode() == text
    with fsspec.open(path, "rb", compression="nacrith") as f:
        assert f.read() == text.encode()
    with fsspec.open(path, "rt", compression="infer", encoding="utf-8") as f:
        assert f.readlines() == text.splitlines(keepends=True)
    with fsspec.open(f"file://{path}", "wb", compression="nacrith") as f:
        f.write(b"")
    with fsspec.open(path, "rb", compression="nacrith") as f:
        assert f.read() == b""


@pytest.mark.parametrize(
    "code",
    [
        # nacrith first: it must not import fsspec, and registers when fsspec is imported.
        "import sys, nacrith; assert 'fsspec' not in sys.modules; import fsspec; "
        "assert 'nacrith' in fsspec.available_compressions()",
        # fsspec first: registered at once.
        "import fsspec, nacrith; assert 'nacrith' in fsspec.available_compressions()",
    ],
)
def test_registration_in_either_import_order(code):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
