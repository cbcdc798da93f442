"""End-to-end round trips through the real model (small inputs: decoding runs ~100 tokens/s)."""

from __future__ import annotations

import io
import os

import pytest

import nacrith
from nacrith import container
from nacrith.codec import compress_stored

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
}


@pytest.mark.parametrize("name", list(CASES))
def test_roundtrip(codec, name):
    data = CASES[name]
    blob = codec.compress(data)
    assert codec.decompress(blob) == data


def test_block_tokens_is_recorded_and_honoured(codec):
    data = CASES["prose"] + CASES["unspellable"]
    blob = codec.compress(data, block_tokens=7)
    info = container.read_info(io.BytesIO(blob))
    assert info.header.params.block_tokens == 7
    assert info.n_blocks > 3
    assert blob != codec.compress(data, block_tokens=9)
    # the decoder takes block_tokens from the header, not from the codec's own setting
    assert codec.block_tokens != 7
    assert codec.decompress(blob) == data


def test_text_compresses_well(codec):
    data = CASES["prose"]
    blob = codec.compress(data)
    assert container.read_info(io.BytesIO(blob)).header.mode == container.MODE_MODEL
    assert len(blob) < len(data) / 3


def test_incompressible_falls_back_to_stored(codec):
    data = CASES["random"]
    blob = codec.compress(data)
    assert blob == compress_stored(data)


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
    blob = codec.compress(b"hello world\n")
    reader = container.ArchiveReader(io.BytesIO(blob))
    params = reader.header.params
    fake = params.__class__(**{**params.__dict__, "model_sha256": bytes(32)})
    forged = container.encode_header(container.MODE_MODEL, fake) + blob[reader.header.size :]
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
