"""Shared fixtures: the real default model, loaded once per test session.

End-to-end tests use small inputs: on the 2-core CI machine the model decodes about a
hundred tokens per second.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Fuzz budgets for every property test that does not fix its own number of examples (the
# container and decoder fuzzers): "ci", the default, keeps a test run short; "long" is run by
# hand, e.g.  NACRITH_FUZZ_PROFILE=long .venv/bin/python -m pytest --hypothesis-show-statistics
# tests/test_container.py tests/test_fuzz_decoder.py  (results: docs/determinism.md).
FUZZ_PROFILE_ENV = "NACRITH_FUZZ_PROFILE"
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get(FUZZ_PROFILE_ENV, "ci"))

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
