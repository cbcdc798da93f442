"""Tokenization is a bijection on bytes, and nothing that can abort reaches llama.cpp."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

# Byte values SmolLM2's vocabulary cannot spell (measured with llama-cpp-python 0.3.36).
UNSPELLABLE = bytes([0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2] + list(range(0xF5, 0x100)))


@pytest.fixture(scope="module")
def tok(engine):
    return engine.tokenizer


def roundtrip(tok, data: bytes) -> np.ndarray:
    syms = tok.encode(data)
    assert tok.decode(syms) == data
    assert int(tok.symbol_len[syms].sum()) == len(data)
    return syms


def test_unspellable_bytes_are_what_we_measured(tok):
    missing = bytes(b for b in range(256) if not tok.spellable[b])
    assert missing == UNSPELLABLE


@pytest.mark.parametrize("b", list(UNSPELLABLE))
def test_each_unspellable_byte_is_escaped(tok, b):
    data = b"ab" + bytes([b]) + b"cd"
    syms = roundtrip(tok, data)
    assert tok.n_vocab + b in syms.tolist()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x00\x00hello\x00",
        b"line one\r\nline two\r\n",
        b"\xf4\x90\x80\x80",  # above U+10FFFF: llama_tokenize would abort the process
        b"\xf5\x80\x80\x80",
        "\U00040000\U000bffff".encode(),  # lead byte 0xF1/0xF2 has no token
        "\U0010ffff\U00010000 caf\u00e9 \u4e2d\u6587 \U0001f600".encode(),
        b"\xed\xa0\x80",  # an encoded surrogate is invalid UTF-8
        b"\xff\xfe" + "utf16".encode("utf-16-le"),
        b" " * 200 + b"x",  # pieces longer than 32 bytes (runs of spaces)
        bytes(range(256)),
    ],
)
def test_edge_cases_roundtrip(tok, data):
    roundtrip(tok, data)


def test_escape_token_never_comes_from_text(tok):
    rng = random.Random(1)
    text = "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(3000)).encode("utf-8", "replace")
    syms = roundtrip(tok, text)
    assert tok.escape_token not in syms.tolist()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_roundtrip(tok, data):
    roundtrip(tok, data)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_text_roundtrip(tok, text):
    roundtrip(tok, text.encode("utf-8", "surrogatepass"))


def test_text_is_mostly_tokens(tok):
    data = ("The quick brown fox jumps over the lazy dog. " * 20).encode()
    syms = roundtrip(tok, data)
    assert (syms >= tok.n_vocab).sum() == 0
    assert len(syms) < len(data) / 3


def test_corpora_roundtrip(tok, corpora_dir):
    for path in sorted(corpora_dir.iterdir()):
        if path.name in ("SHA256SUMS", "README.md"):
            continue
        roundtrip(tok, path.read_bytes())
