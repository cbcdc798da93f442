"""Byte-exact tokenization: any byte string to a symbol stream and back.

llama.cpp's tokenizer is not a function on bytes: it aborts the process on code points above
U+10FFFF, silently drops bytes its vocabulary cannot spell (SmolLM2 has no token for 21 byte
values), and turns invalid UTF-8 into U+FFFD.  So nothing reaches it unchecked:

1. The input is split into *clean* runs (valid UTF-8 whose every byte the vocabulary can
   spell) and *dirty* runs (invalid UTF-8, lone surrogates, characters with an unspellable
   byte).  Only clean runs, which Python itself encoded, are handed to llama.cpp.
2. Each clean run's tokens are verified: the concatenation of their exact pieces must equal
   the run.  A run that fails is retried character by character; a character that still
   fails is treated as dirty.
3. Every dirty byte becomes an *escape* symbol: the model sees a control token (never
   produced by tokenizing text) and the coder then spends 8 bits on the raw byte.

Symbols are ints: ``0 <= s < n_vocab`` is a token, ``n_vocab + b`` is the escaped byte ``b``.
Only the encoder makes choices here; the decoder just concatenates pieces and bytes, so the
tokenizer's internals never have to be reproduced to decode (they are still versioned).
"""

from __future__ import annotations

import re

import numpy as np

from .errors import TokenizationError

TOKENIZER_VERSION = 1

# llama_tokenize is given clean text in slices of at most this many characters, cut after a
# newline where possible, so that memory stays bounded on huge inputs.
_CHUNK_CHARS = 1 << 16


def _ranges_to_class(bad: list[int]) -> str:
    """Render sorted code points as a regex character class body of ranges."""
    parts = []
    i = 0
    while i < len(bad):
        j = i
        while j + 1 < len(bad) and bad[j + 1] == bad[j] + 1:
            j += 1
        lo, hi = bad[i], bad[j]
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
        i = j + 1
    return "".join(parts)


class Tokenizer:
    """Maps bytes to symbols for one model vocabulary (see the module docstring)."""

    def __init__(self, model, escape_token: int | None = None):
        self.model = model
        self.n_vocab = model.n_vocab
        self.pieces: list[bytes] = model.pieces
        self.escape_token = self._pick_escape() if escape_token is None else escape_token
        spellable = np.zeros(256, dtype=bool)
        for t, p in enumerate(self.pieces):
            if len(p) == 1 and not model.is_control(t):
                spellable[p[0]] = True
        self.spellable = spellable
        self._dirty = re.compile(f"[{self._dirty_class()}]+")
        # Byte length of every symbol, for slicing symbol streams by bytes.
        self.symbol_len = np.array([len(p) for p in self.pieces] + [1] * 256, dtype=np.int64)

    def _pick_escape(self) -> int:
        m = self.model
        candidates = [m.eos, m.bos] + list(range(self.n_vocab))
        for t in candidates:
            if 0 <= t < self.n_vocab and m.is_control(t) and self.pieces[t] == b"":
                return t
        raise TokenizationError("the model's vocabulary has no control token to use as the escape symbol")

    def _dirty_class(self) -> str:
        ok = self.spellable
        bad = [c for c in range(0x80) if not ok[c]]
        # Characters of 2 and 3 bytes: few enough to test one by one.
        for c in range(0x80, 0x10000):
            if 0xD800 <= c <= 0xDFFF:
                bad.append(c)  # lone surrogates carry undecodable bytes (surrogateescape)
                continue
            if not all(ok[b] for b in chr(c).encode("utf-8")):
                bad.append(c)
        # 4-byte characters: by lead byte when every continuation byte is spellable.
        # U+10000..U+10FFFF: lead byte 0xF0 + (c >> 18), one lead byte per 0x40000 code points.
        if all(ok[0x80:0xC0]):
            body = _ranges_to_class(bad)
            for k in range(5):
                if not ok[0xF0 + k]:
                    lo, hi = max(k << 18, 0x10000), min(((k + 1) << 18) - 1, 0x10FFFF)
                    body += f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
            return body
        for c in range(0x10000, 0x110000):
            if not all(ok[b] for b in chr(c).encode("utf-8")):
                bad.append(c)
        return _ranges_to_class(sorted(bad))

    # -- encoding (the only side that makes choices) ------------------------------------

    def encode(self, data: bytes) -> np.ndarray:
        """Symbols for ``data``; ``decode(encode(data)) == data`` always."""
        out: list[int] = []
        text = data.decode("utf-8", "surrogateescape")
        pos = 0
        for m in self._dirty.finditer(text):
            self._encode_clean(text[pos : m.start()], out)
            self._escape(m.group().encode("utf-8", "surrogateescape"), out)
            pos = m.end()
        self._encode_clean(text[pos:], out)
        return np.array(out, dtype=np.int64)

    def _escape(self, raw: bytes, out: list[int]) -> None:
        out.extend(self.n_vocab + b for b in raw)

    def _encode_clean(self, text: str, out: list[int]) -> None:
        while text:
            cut = len(text)
            if cut > _CHUNK_CHARS:
                nl = text.rfind("\n", _CHUNK_CHARS // 2, _CHUNK_CHARS)
                cut = nl + 1 if nl >= 0 else _CHUNK_CHARS
            self._encode_verified(text[:cut], out)
            text = text[cut:]

    def _encode_verified(self, text: str, out: list[int]) -> None:
        raw = text.encode("utf-8")
        tokens = self.model.tokenize_utf8(raw)
        if self._spells(tokens, raw):
            out.extend(tokens)
            return
        # Rare: the vocabulary cannot reproduce this run as a whole.  Character by character,
        # escaping what still does not round-trip.
        for ch in text:
            b = ch.encode("utf-8")
            toks = self.model.tokenize_utf8(b)
            if self._spells(toks, b):
                out.extend(toks)
            else:
                self._escape(b, out)

    def _spells(self, tokens: list[int], raw: bytes) -> bool:
        p = self.pieces
        n = self.n_vocab
        return all(0 <= t < n for t in tokens) and b"".join(p[t] for t in tokens) == raw

    # -- decoding ------------------------------------------------------------------------

    def symbol_bytes(self, sym: int) -> bytes:
        return self.pieces[sym] if sym < self.n_vocab else bytes((sym - self.n_vocab,))

    def decode(self, symbols) -> bytes:
        p = self.pieces
        n = self.n_vocab
        return b"".join(p[s] if s < n else bytes((s - n,)) for s in symbols)
