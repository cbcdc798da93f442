"""Runs every ``>>>`` example of docs/library.md (the library and archiver documentation).

The examples run in a temporary directory; the process-wide default codec is the session's
(so ``nacrith.compress`` and fsspec do not load a second model).
"""

from __future__ import annotations

import doctest
import io
from pathlib import Path

import pytest

from nacrith import api

DOC = Path(__file__).resolve().parent.parent / "docs" / "library.md"


def test_library_examples(tmp_path, monkeypatch, codec):
    pytest.importorskip("fsspec")
    monkeypatch.setitem(api._shared, (None, None, "default"), codec)
    monkeypatch.chdir(tmp_path)
    text = DOC.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(text, {}, DOC.name, str(DOC), 0)
    assert len(test.examples) >= 20
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()
