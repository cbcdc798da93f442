"""Round trips through ``Codec``: small edge cases, layouts and framing, damage.

``CASES`` are under ``hybrid.MIN_MODEL_TEXT`` bytes of text, so ``compress`` codes them with
zstd, bytecm or stored, never with the model: they test the choice of archive and the framing.
The same edge cases in texts that reach the model (escapes, NULs, CRLF, invalid UTF-8, long
enough for the ensemble) and a property test of random bytes through the model coder are in
``tests/test_model_edge_cases.py``.  The layout tests below pass ``fallback=False`` so that
their small inputs are model-coded (decoding runs ~80 tokens/s on 2 cores).
"""

from __future__ import annotations

import dataclasses
import io
import os

import pytest

import nacrith
from nacrith import container
from nacrith.codec import DEFAULT_STREAM_TOKENS, MAX_BLOCK_TOKENS, Layout, default_block_tokens
from nacrith.container import encode_stored

from test_tokenization import UNSPELLABLE

CASES = {
    "empty": b"",
    "one byte": b"a",
    "random": os.urandom(300),
    "invalid utf-8": b"ok \xff\xfe\xc3\x28 \xe2\x82 end",
    "nul bytes": b"\x00\x00abc\x00def\x00",
    "crlf": b"first line\r\nsecond line\r\n\r\n",
    "unspellable": b"x".join(bytes([b]) for b in UNSPELLABLE),
    "above U+10FFFF": b"text \xf4\x90\x80\x80 more",
    "spaces": b"a" + b" " * 100 + b"b\n",
    "prose": b"Alice was beginning to get very tired of sitting by her sister on the bank.\n" * 3,
    "zeros": bytes(300),
    "latin-1": "Ça coûte cher: déjà vu, naïve café, señor Müller, smørrebrød, Ærø.\n".encode("latin-1") * 2,
    "utf-16 le with bom": b"\xff\xfe" + "Hello, wörld! UTF-16 text with a BOM.\r\n".encode("utf-16-le"),
    "utf-16 be without bom": "Hello, wörld! UTF-16 text, big-endian.\n".encode("utf-16-be"),
    "mixed text and binary": b"Some English text first.\n" + bytes(range(256)) + b"\nand text again at the end.\n",
}


@pytest.mark.parametrize("name", list(CASES))
def test_roundtrip(codec, name):
    data = CASES[name]
    blob = codec.compress(data)
    # too little text for the model: the archive is one of the model-free modes
    assert container.read_info(io.BytesIO(blob)).header.mode in MODEL_FREE
    assert codec.decompress(blob) == data


MODEL_FREE = (container.MODE_STORED, container.MODE_ZSTD, container.MODE_BYTECM)


LAYOUTS = [
    dict(block_tokens=7, stream_tokens=21, window=16, slide=5, sinks=2),  # slides, several streams
    dict(block_tokens=8, stream_tokens=64, window=12, slide=3, sinks=0),  # slides without sinks
    dict(block_tokens=16, stream_tokens=16, window=64, slide=8, sinks=4),  # a stream per block
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_is_recorded_and_honoured(codec, layout):
    data = CASES["prose"] + b"a \x04 escape crossing blocks \xff\n"
    blob = codec.compress(data, fallback=False, **layout)  # so little text: zstd would win
    info = container.read_info(io.BytesIO(blob))
    assert info.header.mode == container.MODE_MODEL
    params = info.header.params
    assert {k: getattr(params, k) for k in layout} == layout
    assert info.n_blocks > 3
    # the decoder takes the layout from the header, not from the codec's own settings
    assert dataclasses.asdict(codec.layout) != layout
    assert codec.decompress(blob) == data


@pytest.mark.parametrize("lanes", [1, 2, 5])
def test_lanes_change_speed_only(codec, engine, lanes):
    data = CASES["prose"] * 2
    layout = LAYOUTS[0]
    blob = nacrith.Codec(threads=engine.threads, lanes=lanes).compress(data, fallback=False, **layout)
    reference = nacrith.Codec(threads=engine.threads, lanes=3).compress(data, fallback=False, **layout)
    assert blob == reference
    decoder = nacrith.Codec(threads=engine.threads, lanes=lanes, loaded=codec.loaded)  # shares the loaded model
    assert decoder.decompress(blob) == data


@pytest.mark.parametrize("key", ["block_tokens", "stream_tokens", "window", "slide", "sinks"])
def test_each_layout_setting_changes_the_bitstream(codec, key):
    data = CASES["prose"]
    base = dict(LAYOUTS[0])
    other = dict(base, **{key: base[key] + (7 if key == "stream_tokens" else 1)})
    if key == "block_tokens":
        other["stream_tokens"] = other["block_tokens"] * 3
    assert codec.compress(data, fallback=False, **base)[20:] != codec.compress(data, fallback=False, **other)[20:]


def test_default_layout_is_one_block_per_stream():
    assert Layout().block_tokens == Layout().stream_tokens == DEFAULT_STREAM_TOKENS
    assert Layout(stream_tokens=100).block_tokens == 100
    assert Layout(block_tokens=5, stream_tokens=100).block_tokens == 5
    # a stream longer than MAX_BLOCK_TOKENS: its largest divisor within the limit
    assert default_block_tokens(3 * MAX_BLOCK_TOKENS) == MAX_BLOCK_TOKENS
    assert default_block_tokens(MAX_BLOCK_TOKENS + 2) == (MAX_BLOCK_TOKENS + 2) // 2
    assert Layout(stream_tokens=(MAX_BLOCK_TOKENS + 2) * 3).check().block_tokens == (MAX_BLOCK_TOKENS + 2) // 2  # / 6
    # changing only the stream length keeps "one block per stream", and explicit blocks as they are
    assert Layout(stream_tokens=32).replace(stream_tokens=64).block_tokens == 64
    assert Layout(block_tokens=8, stream_tokens=32).replace(stream_tokens=64).block_tokens == 8
    with pytest.raises(ValueError, match="stream_tokens must be >= 1"):
        Layout(stream_tokens=0).check()


def test_default_framing_is_a_block_per_stream_and_decodes(codec):
    data = CASES["prose"] + b"a \x04 escape crossing streams \xff\n"
    blob = codec.compress(data, fallback=False, stream_tokens=21, window=16, slide=5, sinks=2)
    info = container.read_info(io.BytesIO(blob))
    assert info.header.params.block_tokens == 21
    assert info.n_blocks == -(-info.total_symbols // 21) > 2
    assert codec.decompress(blob) == data


def test_text_compresses_well(codec):
    data = CASES["prose"]
    blob = codec.compress(data, fallback=False)  # zstd wins on this repetition, by archive size
    assert container.read_info(io.BytesIO(blob)).header.mode == container.MODE_MODEL
    payload = sum(len(p) for _, p in container.ArchiveReader(io.BytesIO(blob)).blocks())
    assert payload < len(data) / 6  # the sentence repeats: the model must notice


def test_incompressible_falls_back_to_stored(codec):
    data = CASES["random"]
    blob = codec.compress(data)
    assert blob == encode_stored(data)


def test_concatenated_archives(codec):
    a, b = b"first part\n", b"second part\n"
    assert codec.decompress(codec.compress(a) + codec.compress(b)) == a + b


def test_trailing_garbage_is_an_error(codec):
    blob = codec.compress(b"hello\n")
    with pytest.raises(nacrith.FormatError):
        codec.decompress(blob + b"garbage")


def test_corrupted_payload_is_detected(codec):
    data = CASES["prose"]
    blob = bytearray(codec.compress(data))
    blob[-40] ^= 0x10  # inside the last block's payload
    with pytest.raises(nacrith.NacrithError):
        codec.decompress(bytes(blob))


def test_model_mismatch_names_both_hashes(codec):
    blob = codec.compress(CASES["prose"], fallback=False)
    reader = container.ArchiveReader(io.BytesIO(blob))
    params = reader.header.params
    fake = dataclasses.replace(params, model_sha256=bytes(32))
    header = container.encode_header(
        container.MODE_MODEL, fake, version=reader.header.version, original_size=reader.header.original_size
    )
    forged = header + blob[reader.header.size :]
    with pytest.raises(nacrith.ModelNotFoundError) as exc:
        codec.decompress(forged)
    assert "0" * 64 in str(exc.value)
    with pytest.raises(nacrith.ModelMismatchError) as exc:
        nacrith.Codec(model=codec_model_path(codec)).decompress(forged)
    assert "0" * 64 in str(exc.value) and params.model_sha256.hex() in str(exc.value)


def codec_model_path(codec):
    from nacrith import models

    return models.resolve().path


def test_corpora_prefixes_roundtrip(codec, corpora_dir):
    for name in ("alice29.txt", "html", "urls.10K", "geo.protodata", "fireworks.jpeg"):
        data = (corpora_dir / name).read_bytes()[:600]
        assert codec.decompress(codec.compress(data)) == data, name
