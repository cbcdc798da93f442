"""Shared fixtures: the real default model, loaded once per test session.

End-to-end tests use small inputs: on the 2-core CI machine the model decodes about a
hundred tokens per second.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    if not (CORPORA / "alice29.txt").is_file():
        pytest.skip(f"benchmark corpora not found at {CORPORA}")
    return CORPORA


@pytest.fixture(scope="session")
def codec():
    import nacrith

    return nacrith.Codec(threads=int(os.environ.get("NACRITH_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def engine(codec):
    from nacrith import models

    return codec.engine(models.resolve())
