"""Streams coded in segments (``Layout.segments``): the cut, the shared online models, the
round trip through the model, the header and the checks.

The model tests use texts of a few hundred tokens and small windows, so that every segment
slides and the decoder's one-token-per-segment rounds meet the encoder's batches.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

from nacrith import cdf, container
from nacrith.codec import MAX_SEGMENTS, Layout, segment_bounds
from nacrith.coder import ArithmeticDecoder, ArithmeticEncoder
from nacrith.ensemble import DEFAULT_ENSEMBLE, LLM_ONLY, EnsembleState
from nacrith.errors import ChecksumError, FormatError

V = 256


# -- the cut ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 100, 1001])
@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_segments_cover_the_stream_in_balanced_contiguous_parts(n, k):
    b = segment_bounds(n, k)
    assert b[0] == 0 and b[-1] == n
    lengths = np.diff(b)
    assert len(lengths) == max(1, min(k, n))
    assert (lengths >= 0).all() and lengths.max() - lengths.min() <= 1
    if n:
        assert (lengths >= 1).all()


# -- the shared online models (synthetic logits) ---------------------------------------------


def _rounds(lengths):
    """(segment, index in segment) in coding order: one symbol of every segment per round."""
    return [(s, r) for r in range(max(lengths)) for s in range(len(lengths)) if r < lengths[s]]


def _code(tokens, lengths, logits):
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    state = EnsembleState(DEFAULT_ENSEMBLE, V, segment_lengths=lengths)
    enc, work = ArithmeticEncoder(), np.empty(V)
    for s, r in _rounds(lengths):
        i = bounds[s] + r
        enc.encode(*state.encode(logits[i], tokens[i], work, s))
    return enc.finish()


def _decode(payload, lengths, logits):
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    state = EnsembleState(DEFAULT_ENSEMBLE, V, segment_lengths=lengths)
    dec, work = ArithmeticDecoder(payload), np.empty(V)
    out = np.full(sum(lengths), -1)
    for s, r in _rounds(lengths):
        i = bounds[s] + r
        tok, lo, f = state.decode(logits[i], dec.target(), work, s)
        dec.consume(lo, f)
        out[i] = tok
    return out


def test_shared_models_learn_across_segments_and_decode_exactly():
    rng = np.random.default_rng(5)
    phrase = list(rng.integers(0, V, 40))
    tokens = np.array((phrase * 30)[:1200])  # the same phrase in every segment
    logits = (rng.standard_normal((len(tokens), V)) * 2).astype(np.float32)
    lengths = [300, 300, 300, 300]
    shared = _code(tokens, lengths, logits)
    assert (_decode(shared, lengths, logits) == tokens).all()
    # Four states that share nothing (four streams) pay for learning the phrase four times.
    apart = sum(len(_code(tokens[i * 300 : (i + 1) * 300], [300], logits[i * 300 : (i + 1) * 300])) for i in range(4))
    assert len(shared) < 0.8 * apart


def test_a_segment_longer_than_declared_is_refused():
    state = EnsembleState(DEFAULT_ENSEMBLE, V, segment_lengths=[2, 2])
    work, row = np.empty(V), np.zeros(V, dtype=np.float32)
    state.encode(row, 1, work, 1)
    state.encode(row, 2, work, 1)
    with pytest.raises(ValueError, match="segment 1"):
        state.encode(row, 3, work, 1)


# -- with the model --------------------------------------------------------------------------

TEXT = (
    b"Segments are coded side by side: one token of each per round.\r\n"
    b"Odd bytes too: \x00\x01\xff\xfe, and astral \xf0\x90\x80\x80 text.\n"
    + b"".join(b"<li><a href=\"/items/%d\">item %d</a> in the list</li>\n" % (i, i) for i in range(14))
    + b"And some ordinary English prose at the end, so that the model has something to predict.\n"
)
SMALL = dict(window=48, slide=12, sinks=2)


def _params(archive: bytes):
    return container.read_info(io.BytesIO(archive)).header.params


# Not the default ensemble itself: inputs this short would be coded without it (codec.ENSEMBLE_MIN_BYTES).
ENSEMBLE = dataclasses.replace(DEFAULT_ENSEMBLE, llm_rate=21)


@pytest.mark.parametrize("ensemble", [ENSEMBLE, LLM_ONLY, dataclasses.replace(DEFAULT_ENSEMBLE, skip=8)])
def test_segments_round_trip_through_the_model(codec, engine, monkeypatch, ensemble):
    layout = dict(SMALL, segments=3, ensemble=ensemble)
    archive = codec.compress(TEXT, fallback=False, **layout)
    params = _params(archive)
    assert params.segments == 3 and params.window == 48
    assert params.ensemble == (ensemble.header_bytes() if ensemble.enabled else b"")
    # The decoder advances the three segments together: 3 tokens per llama_decode.
    from nacrith.native import LlamaContext

    widths = []
    real = LlamaContext.decode_multi

    def recording(self, tokens, positions, seqs):
        widths.append(len(set(seqs)))
        return real(self, tokens, positions, seqs)

    monkeypatch.setattr(LlamaContext, "decode_multi", recording)
    assert codec.decompress(archive) == TEXT
    assert widths and max(widths) == 3
    assert sum(widths) >= engine.tokenizer.encode(TEXT).shape[0] - 3


def test_segments_change_the_bitstream_and_one_segment_is_the_stream(codec):
    one = codec.compress(TEXT, fallback=False, **SMALL)
    assert _params(one).segments == 1
    two = codec.compress(TEXT, fallback=False, segments=2, **SMALL)
    assert two != one and codec.decompress(two) == TEXT


def test_header_records_segments_and_a_changed_count_fails_the_check(codec):
    archive = codec.compress(TEXT, fallback=False, segments=4, **SMALL)
    forged = _reframed(archive, dataclasses.replace(_params(archive), segments=5))
    with pytest.raises(ChecksumError):  # other segments decode other symbols: the CRC-32 says so
        codec.decompress(forged)


def test_layout_checks_segments():
    for bad in (0, MAX_SEGMENTS + 1):
        with pytest.raises(ValueError, match="segments"):
            Layout(segments=bad).check()
    with pytest.raises(ValueError, match="one block per stream"):
        Layout(segments=2, block_tokens=64, stream_tokens=128).check()
    Layout(segments=MAX_SEGMENTS).check()


def test_version_1_cannot_record_segments():
    params = container.CodecParams(
        model_sha256=bytes(32), tokenizer=1, cdf_total_bits=24, block_tokens=64, flash_attn=True,
        type_k=8, type_v=1, start_token=1, escape_token=2, stream_tokens=64, window=32, slide=8,
        sinks=2, segments=2,
    )
    with pytest.raises(ValueError, match="version 1"):
        container._encode_params(params)
    with pytest.raises(ValueError, match="segments"):
        dataclasses.replace(params, segments=0)


def _reframed(archive: bytes, params) -> bytes:
    """``archive``'s blocks under other header parameters (a valid header check)."""
    blocks = [
        container.Block(bh.n_symbols, bh.n_bytes, bh.crc32, payload)
        for bh, payload in container.ArchiveReader(io.BytesIO(archive)).blocks()
    ]
    return container.encode_member(container.MODE_MODEL, params, TEXT, blocks)


def test_archive_with_too_many_segments_is_refused(codec):
    params = _params(codec.compress(TEXT, fallback=False, segments=2, **SMALL))
    object.__setattr__(params, "segments", MAX_SEGMENTS + 1)  # past CodecParams' own check
    with pytest.raises(FormatError, match="segments must be in 1..64"):
        codec.decompress(_reframed(codec.compress(TEXT, fallback=False, segments=2, **SMALL), params))


def test_default_segments_follow_the_blocks_and_the_input_size():
    from nacrith.codec import DEFAULT_SEGMENTS, SEGMENT_MIN_BYTES, for_input

    assert DEFAULT_SEGMENTS > 1 and Layout().segments == DEFAULT_SEGMENTS
    small_blocks = Layout(block_tokens=64, stream_tokens=128)
    assert small_blocks.segments == 1  # segments need one block per stream
    assert Layout().replace(block_tokens=64, stream_tokens=128).segments == 1
    assert small_blocks.replace(block_tokens=None).segments == DEFAULT_SEGMENTS
    assert Layout(segments=3).replace(window=512).segments == 3
    # The default count shrinks to one segment per SEGMENT_MIN_BYTES; another count is kept.
    assert for_input(Layout(), 0).segments == 1
    assert for_input(Layout(), 3 * SEGMENT_MIN_BYTES + 5).segments == 3
    assert for_input(Layout(), 100 * SEGMENT_MIN_BYTES).segments == DEFAULT_SEGMENTS
    assert for_input(Layout(segments=3), 10).segments == 3


def test_compress_uses_the_default_segments_a_large_input_warrants(codec, monkeypatch):
    from nacrith import archive, codec as codec_module

    monkeypatch.setattr(codec_module, "SEGMENT_MIN_BYTES", len(TEXT) // 2)  # so that TEXT gets 2
    assert archive.effective_layout(Layout(), len(TEXT)).segments == 2
    packed = codec.compress(TEXT, fallback=False, **SMALL)
    assert _params(packed).segments == 2 and codec.decompress(packed) == TEXT
