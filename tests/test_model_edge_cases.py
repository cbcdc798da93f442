"""Edge cases that reach the model: escapes, NULs, CRLF, invalid UTF-8, sequences above U+10FFFF.

``tests/test_roundtrip.py``'s small ``CASES`` are under ``hybrid.MIN_MODEL_TEXT`` bytes of text,
so ``compress`` gives them to zstd, bytecm or stored and the model never sees them.  Here the
same kinds of bytes sit in texts of a few KB, above ``codec.ENSEMBLE_MIN_BYTES`` so that the
ensemble runs, compressed with ``fallback=False``; each test reads from the archive itself (the
container format, ``formats/container-v1.md``) that the model coded the text, so it fails if the
input stops reaching the model.  A property test then sends random bytes through the model
coder of mode 0.  Decoding runs about 80 tokens/s on the 2-core test machine: these inputs take
some seconds each.
"""

from __future__ import annotations

import io

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from nacrith import codec as codec_module
from nacrith import container
from nacrith.ensemble import DEFAULT_ENSEMBLE, EnsembleConfig

from test_tokenization import UNSPELLABLE

SENTENCES = [
    "Alice was beginning to get very tired of sitting by her sister on the bank,",
    "and of having nothing to do: once or twice she had peeped into the book her sister was reading,",
    "but it had no pictures or conversations in it, \u201cand what is the use of a book,\u201d thought Alice,",
    "\u201cwithout pictures or conversations?\u201d So she was considering in her own mind",
    "(as well as she could, for the hot day made her feel very sleepy and stupid),",
    "whether the pleasure of making a daisy-chain would be worth the trouble of getting up",
    "and picking the daisies, when suddenly a White Rabbit with pink eyes ran close by her.",
    "There was nothing so very remarkable in that; nor did Alice think it so very much out of",
    "the way to hear the Rabbit say to itself, \u201cOh dear! Oh dear! I shall be late!\u201d",
    "Caf\u00e9 cr\u00e8me, na\u00efve se\u00f1or M\u00fcller \u2014 a na\u00efve caf\u00e9 \u00e0 la fran\u00e7aise, \u00bfqu\u00e9 tal?",
]

#: Bytes that are not valid UTF-8 text or that the vocabulary cannot spell, each a separate
#: oddity placed between words of the prose (so that the whole input stays one text region).
ODDITIES = [
    b"\x00",  # NUL
    b"\x00\x00\x00",  # a run of NULs
    b"\xff\xfe",  # never valid in UTF-8
    b"\xc3\x28",  # a lead byte followed by ASCII
    b"\xe2\x82",  # a truncated three-byte sequence
    b"\xf4\x90\x80\x80",  # would be above U+10FFFF
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xc0\xaf",  # an overlong encoding
    *(bytes([b]) for b in UNSPELLABLE),  # single bytes llama.cpp's vocabulary cannot spell
]


def edge_text() -> bytes:
    """Just over 2 KB of prose with CRLF line ends and every oddity, two to a line."""
    lines = []
    i = 0
    while sum(map(len, lines)) < codec_module.ENSEMBLE_MIN_BYTES + 64 or i < len(ODDITIES) // 2 + 1:
        words = SENTENCES[i % len(SENTENCES)].encode("utf-8").split(b" ")
        a, b = ODDITIES[(2 * i) % len(ODDITIES)], ODDITIES[(2 * i + 1) % len(ODDITIES)]
        cut = 1 + i % (len(words) - 2)
        line = b" ".join(words[:cut] + [a] + words[cut:-1] + [b, words[-1]])
        lines.append(line + (b"\r\n" if i % 3 else b"\n"))
        i += 1
    lines.append(b"\tand the end, without a line end: \xf0\x9f\x90\x87 \x00")
    return b"".join(lines)


EDGE_TEXT = edge_text()


def edge_mixed() -> bytes:
    """Text in three encodings around a binary region: a hybrid archive with a text section."""
    utf8 = b"".join(s.encode("utf-8") + b"\r\n" for s in SENTENCES[:3])
    latin1 = "\u00c7a co\u00fbte cher: d\u00e9j\u00e0 vu, na\u00efve caf\u00e9, se\u00f1or M\u00fcller, sm\u00f8rrebr\u00f8d, \u00c6r\u00f8.\n".encode("latin-1") * 3
    utf16 = b"\xff\xfe" + "\r\n".join(SENTENCES[6:9]).encode("utf-16-le")
    binary = bytes(range(256)) + bytes(1000)  # the ensemble runs from 2 KB of input, text or not
    return utf8 + binary + latin1 + b"\x00\x01\x02\x03" * 8 + utf16 + b"\xff\xfe\xc3\x28" + utf8[:150]


EDGE_MIXED = edge_mixed()


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def model_symbols(blob: bytes) -> int:
    """How many symbols the model coded in ``blob``, read from the container alone.

    Mode 0: every block.  Mode 2 (section 4.2): the blocks after the region table and the
    ``binary_blocks`` of the binary section.  Other modes: none.
    """
    reader = container.ArchiveReader(io.BytesIO(blob))
    blocks = list(reader.blocks())
    if reader.header.mode == container.MODE_MODEL:
        return sum(bh.n_symbols for bh, _ in blocks)
    if reader.header.mode == container.MODE_HYBRID:
        table_header, table_frame = blocks[0]
        table = zstandard.ZstdDecompressor().decompress(table_frame, max_output_size=table_header.n_bytes)
        binary_blocks, _ = _varint(table, 0)
        return sum(bh.n_symbols for bh, _ in blocks[1 + binary_blocks :])
    return 0


def test_edge_text_has_every_oddity():
    for oddity in ODDITIES:
        assert oddity in EDGE_TEXT, oddity
    assert b"\r\n" in EDGE_TEXT and b"\x00" in EDGE_TEXT
    assert min(len(EDGE_TEXT), len(EDGE_MIXED)) > codec_module.ENSEMBLE_MIN_BYTES
    for raw in (EDGE_TEXT, EDGE_MIXED):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raise AssertionError("the edge cases must not be valid UTF-8")


def test_model_codes_escapes_nuls_crlf_and_invalid_utf8(codec, engine):
    symbols = engine.tokenizer.encode(EDGE_TEXT)
    escapes = int((symbols >= engine.n_vocab).sum())
    assert escapes >= len(UNSPELLABLE) + 8  # the oddities become escapes, not lost bytes
    blob = codec.compress(EDGE_TEXT, fallback=False)
    header = container.read_info(io.BytesIO(blob)).header
    assert header.mode == container.MODE_MODEL  # one text region: every byte through the model
    assert EnsembleConfig.from_bytes(header.params.ensemble) == DEFAULT_ENSEMBLE  # long enough for the ensemble
    assert model_symbols(blob) == len(symbols)
    assert codec.decompress(blob) == EDGE_TEXT


def test_hybrid_text_section_reaches_the_model(codec):
    blob = codec.compress(EDGE_MIXED, fallback=False)
    header = container.read_info(io.BytesIO(blob)).header
    assert header.mode == container.MODE_HYBRID
    assert EnsembleConfig.from_bytes(header.params.ensemble) == DEFAULT_ENSEMBLE
    assert model_symbols(blob) > 300
    assert codec.decompress(blob) == EDGE_MIXED


WORDS = [b"the ", b"rabbit ", b"caf\xc3\xa9 ", b"line\r\n", b"Alice ", b"\xe2\x80\x94 dash ", b"was ", b"tired\n"]
#: A small layout, so that a few dozen symbols still fill several streams and slide the window.
SMALL = dict(block_tokens=8, stream_tokens=24, window=16, slide=5, sinks=2)


@settings(max_examples=5, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WORDS), st.binary(max_size=3)), min_size=1, max_size=10))
def test_random_bytes_round_trip_through_the_model_coder(codec, engine, pieces):
    """Any bytes, each up to three of them between words, through mode 0 with the ensemble on.

    ``compress`` would give pure random bytes to bytecm, zstd or stored (they are binary to the
    segmenter) and the model coder refuses input that is mostly escapes, so the random bytes
    come between words; the archive is made by the model coder itself and decoded through the
    public codec.
    """
    data = b"".join(word + junk for word, junk in pieces)
    layout = codec_module.Layout(**SMALL)
    blob = codec_module.model_archive(engine, data, layout=layout, numeric=codec_module.NumericConfig())
    assert blob is not None  # at most three escapes to a word of four or more bytes
    header = container.read_info(io.BytesIO(blob)).header
    assert header.mode == container.MODE_MODEL
    assert model_symbols(blob) == len(engine.tokenizer.encode(data))
    assert codec.decompress(blob) == data
