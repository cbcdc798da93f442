"""Pins nacrith's public surface: the names in ``__all__``, the magic bytes, the format version.

Changing any of these is an API (or file format) change: update this test on purpose, together
with the docs (docs/library.md) and, for the format, formats/container-v1.md.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import nacrith

PUBLIC = [
    # one-shot functions and the reusable context (holds the loaded model)
    "Codec",
    "compress",
    "decompress",
    # lzma-style file and incremental objects
    "open",
    "NacrithFile",
    "NacrithCompressor",
    "NacrithDecompressor",
    "FrameInfo",
    "get_frame_info",
    # format constants
    "MAGIC",
    "FORMAT_VERSION",
    # exceptions
    "NacrithError",
    "FormatError",
    "TruncatedError",
    "UnsupportedVersionError",
    "ChecksumError",
    "ModelError",
    "ModelNotFoundError",
    "ModelMismatchError",
    "ModelLoadError",
    "EnvironmentMismatchError",
    "LimitError",
    "TokenizationError",
    "WorkerError",
    "MissingDependencyError",
    "NacrithWarning",
    # settings and the loaded models
    "Layout",
    "EnsembleConfig",
    "Execution",
    "Limits",
    "LoadedModels",
]


def test_all_is_pinned():
    assert sorted(nacrith.__all__) == sorted(PUBLIC)
    assert len(set(nacrith.__all__)) == len(nacrith.__all__)
    for name in nacrith.__all__:
        assert hasattr(nacrith, name), name


def test_format_constants():
    assert nacrith.MAGIC == b"\x89NCR"
    assert nacrith.FORMAT_VERSION == 2  # written; version 1 archives still decode


def test_exceptions_derive_from_nacrith_error():
    exported = [getattr(nacrith, n) for n in nacrith.__all__]
    classes = [
        obj for obj in exported
        if inspect.isclass(obj) and issubclass(obj, BaseException) and not issubclass(obj, Warning)
    ]
    assert len(classes) == 14
    assert issubclass(nacrith.NacrithWarning, UserWarning)
    for cls in classes:
        assert issubclass(cls, nacrith.NacrithError), cls
    # Generic callers that catch the built-in counterparts keep working.
    assert issubclass(nacrith.TruncatedError, EOFError)
    assert issubclass(nacrith.FormatError, ValueError)


def test_signatures_of_the_stdlib_like_protocol():
    params = inspect.signature(nacrith.open).parameters
    assert list(params)[:2] == ["filename", "mode"] and params["mode"].default == "rb"
    for name in ("model", "threads", "codec", "encoding", "errors", "newline"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(nacrith.NacrithDecompressor.decompress).parameters) == [
        "self", "data", "max_length"
    ]
    assert inspect.signature(nacrith.NacrithDecompressor.decompress).parameters["max_length"].default == -1
    for cls in (nacrith.NacrithCompressor, nacrith.NacrithDecompressor, nacrith.NacrithFile):
        assert "codec" in inspect.signature(cls).parameters, cls
    fields = [f for f in nacrith.FrameInfo.__dataclass_fields__]
    assert fields == [
        "format_version", "mode", "model_sha256", "block_tokens", "stream_tokens", "window",
        "slide", "sinks", "original_size", "compressed_size", "n_blocks",
    ]


def test_typed_package():
    assert (Path(nacrith.__file__).parent / "py.typed").is_file()


def test_settings_are_fixed_at_construction_and_replace_shares_the_loaded_models():
    codec = nacrith.Codec(threads=1, lanes=2, window=512, slide=128)  # loads nothing until it codes
    assert codec.execution == nacrith.Execution(threads=1, lanes=2)
    assert codec.layout.window == 512
    for name in ("layout", "execution", "lanes", "threads", "workers", "model", "limits"):
        with pytest.raises(AttributeError):
            setattr(codec, name, getattr(codec, name))
    other = codec.replace(lanes=4, window=1024)
    assert (other.lanes, other.layout.window, other.layout.slide, other.threads) == (4, 1024, 128, 1)
    assert (codec.lanes, codec.layout.window) == (2, 512)
    assert other.loaded is codec.loaded
    with pytest.raises(ValueError, match="engine"):
        nacrith.Codec(engine="gpu")


def test_the_library_never_imports_the_command_line():
    library = ["nacrith", "nacrith.api", "nacrith.stream", "nacrith.chunked", "nacrith.bench",
               "nacrith.bench_report", "nacrith.explain", "nacrith.ablation"]
    command_line = ["nacrith.cli", "nacrith.fileio", "nacrith.filejobs", "nacrith.benchcli"]
    code = f"import sys, {', '.join(library)}; print([m for m in {command_line!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
