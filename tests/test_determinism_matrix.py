"""Determinism matrix: settings that only change speed give byte-identical archives.

One ~300-byte input (prose with a few escaped bytes) is model-coded (``fallback=False``: on
so short an input zstd would win, and a zstd archive would prove nothing) under each setting
(llama.cpp threads 1 and 2, encoder batch 1, 7 and 128, a fresh process) with a layout that
makes every mechanism run: three streams, 16-symbol blocks, and a 24-position window that
slides in every full stream.  Every archive must equal the reference byte for byte.
Since they are all the same bytes, decoding the reference under each decoder setting
(threads 1 and 2, lanes 1 and 4, batch 1 and 7, a fresh process) shows that each archive
decodes under every other setting, including worker processes (1 and 2).  The ensemble is
on (an explicit, non-default configuration, which even an input this short gets).

tests/test_determinism.py checks the logit equalities underneath; this file checks the whole
codec end to end.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nacrith
from nacrith import codec as codec_module
from nacrith import container, models
from nacrith.ensemble import EnsembleConfig

ROOT = Path(__file__).resolve().parent.parent

TEXT = (
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of "
    b"having nothing to do: once or twice she had peeped into the book her sister was \xff\xfe "
    b"reading, but it had no pictures or conversations in it, 'and what is the use of a "
    b"book,' thought Alice \x00'without pictures or conversations?'\r\n"
)
LAYOUT = dict(
    block_tokens=16, stream_tokens=32, window=24, slide=6, sinks=3,
    ensemble=EnsembleConfig(ngram_order=3, match_min=3, bias_rate=4000),
)


@pytest.fixture(scope="module")
def codecs():
    """Two codecs with their own engines: llama.cpp threads are fixed per context."""
    return {threads: nacrith.Codec(threads=threads) for threads in (1, 2)}


def engine_of(codec: nacrith.Codec) -> codec_module.Engine:
    return codec.engine(models.resolve())


@contextlib.contextmanager
def encoder_batch(codec: nacrith.Codec, size: int):
    """Run with ``codec.ENCODER_BATCH = size``; contexts are cached, so drop them around it."""
    engine = engine_of(codec)
    saved = codec_module.ENCODER_BATCH
    engine._contexts.clear()
    codec_module.ENCODER_BATCH = size
    try:
        yield engine
    finally:
        codec_module.ENCODER_BATCH = saved
        engine._contexts.clear()


def only_context(engine: codec_module.Engine):
    (ctx,) = engine._contexts.values()
    return ctx


def in_subprocess(code: str, data: bytes) -> bytes:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@pytest.fixture(scope="module")
def reference(codecs) -> bytes:
    blob = codecs[1].compress(TEXT, fallback=False, **LAYOUT)
    info = container.read_info(io.BytesIO(blob))
    assert info.header.mode == container.MODE_MODEL  # one text region: no hybrid, no zstd
    assert info.total_symbols > 2 * LAYOUT["stream_tokens"]  # three streams
    assert LAYOUT["stream_tokens"] > LAYOUT["window"]  # full streams slide their window
    return blob


# -- encoder settings -----------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_give_identical_archives(codecs, reference, threads):
    assert codecs[threads].compress(TEXT, fallback=False, **LAYOUT) == reference


@pytest.mark.parametrize("batch", [1, 7, 128])
@pytest.mark.parametrize("threads", [1, 2])
def test_encoder_batch_gives_identical_archives(codecs, reference, batch, threads):
    with encoder_batch(codecs[threads], batch) as engine:
        blob = codecs[threads].compress(TEXT, fallback=False, **LAYOUT)
        assert only_context(engine).n_batch == min(batch, LAYOUT["window"])  # the patch took effect
    assert blob == reference


def test_another_process_gives_identical_archive(reference):
    code = (
        "import sys, nacrith; from nacrith.ensemble import EnsembleConfig; "
        "codec = nacrith.Codec(threads=1); "
        f"sys.stdout.buffer.write(codec.compress(sys.stdin.buffer.read(), fallback=False, **{LAYOUT!r}))"
    )
    assert in_subprocess(code, TEXT) == reference


def test_workers_give_identical_archives_and_decode_them(reference):
    with nacrith.Codec(threads=2, workers=2) as codec:
        assert codec.compress(TEXT, fallback=False, **LAYOUT) == reference
        assert codec.decompress(reference) == TEXT


# -- decoder settings -----------------------------------------------------------------------


@pytest.mark.parametrize("lanes", [1, 4])
@pytest.mark.parametrize("threads", [1, 2])
def test_decodes_with_any_threads_and_lanes(codecs, reference, threads, lanes):
    codec = codecs[threads].replace(lanes=lanes)  # shares the loaded model
    assert codec.decompress(reference) == TEXT
    assert only_context(engine_of(codec)).n_seq == lanes


@pytest.mark.parametrize("batch", [1, 7])
def test_decodes_with_any_batch(codecs, reference, batch):
    codec = codecs[1].replace(lanes=4)
    with encoder_batch(codec, batch):
        assert codec.decompress(reference) == TEXT


def test_decodes_in_another_process(reference):
    code = "import sys, nacrith; sys.stdout.buffer.write(nacrith.decompress(sys.stdin.buffer.read(), threads=1))"
    assert in_subprocess(code, reference) == TEXT
