"""The ensemble (n-gram, bias head, match model, mixer): exact symmetry, learning, settings.

Most tests use synthetic logits (no model), so they are fast and can try many cases; the
model-level tests at the end prove that archives record the settings and decode with them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest

from nacrith import cdf, container
from nacrith.coder import ArithmeticDecoder, ArithmeticEncoder
from nacrith.ensemble import (
    DEFAULT_ENSEMBLE,
    LLM_ONLY,
    PRESET_1,
    PRESETS,
    C_SEEN,
    EnsembleConfig,
    EnsembleState,
    ln_pos,
)
from nacrith.codec import ENSEMBLE_MIN_BYTES
from nacrith.errors import FormatError, UnsupportedVersionError

V = 512


def _logits(n: int, seed: int, flat: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if flat:
        return np.zeros((n, V), dtype=np.float32)
    return (rng.standard_normal((n, V)) * 3).astype(np.float32)


def _tokens(n: int, seed: int) -> list[int]:
    """A sequence with structure: a repeated phrase interleaved with noise."""
    rng = np.random.default_rng(seed)
    phrase = list(rng.integers(0, V, 12))
    out: list[int] = []
    while len(out) < n:
        out += phrase if rng.random() < 0.6 else list(rng.integers(0, V, 5))
    return [int(t) for t in out[:n]]


def _encode(config: EnsembleConfig, logits: np.ndarray, tokens: list[int]) -> bytes:
    work = np.empty(V)
    enc = ArithmeticEncoder()
    state = EnsembleState(config, V, 16) if config.enabled else None
    for row, tok in zip(logits, tokens):
        enc.encode(*(state.encode(row, tok, work) if state else cdf.interval_from_logits(row, tok, work)))
    return enc.finish()


def _decode(config: EnsembleConfig, logits: np.ndarray, payload: bytes) -> list[int]:
    work = np.empty(V)
    dec = ArithmeticDecoder(payload)
    state = EnsembleState(config, V, 16) if config.enabled else None
    out = []
    for row in logits:
        if state:
            tok, lo, f = state.decode(row, dec.target(), work)
        else:
            tok, lo, f = cdf.symbol_from_logits(row, dec.target(), work)
        dec.consume(lo, f)
        out.append(int(tok))
    return out


def test_config_bytes_round_trip():
    configs = [
        DEFAULT_ENSEMBLE, PRESET_1, LLM_ONLY, EnsembleConfig(ngram_order=6, match_min=0, mixer_contexts=0),
        EnsembleConfig(version=2, apm_rate=700, prev_sets=4), EnsembleConfig(version=2),
    ]
    for c in configs:
        assert EnsembleConfig.from_bytes(c.to_bytes()) == c
        assert EnsembleConfig.from_bytes(c.header_bytes()) == c
    assert DEFAULT_ENSEMBLE.header_bytes() == b"\x02" and PRESET_1.header_bytes() == b"\x01"
    assert len(configs[3].header_bytes()) == 14 and len(configs[4].header_bytes()) == 17
    assert len(configs[5].to_bytes()) == 17  # version 2 is spelled in 17 bytes even with the new fields 0


def test_preset_1_is_the_first_ensemble():
    # Preset 1 names the settings archives were written with before version 2 (header byte 1);
    # they must keep decoding exactly, so preset 1 never changes.
    assert PRESETS[1] == PRESET_1 == EnsembleConfig(1, 4, 16, 6, 18, 1, 300, 8000, 20, 0, 0, 0)
    assert PRESET_1.to_bytes() == bytes.fromhex("0104100612012c01401f14000000")
    assert PRESETS[2] == DEFAULT_ENSEMBLE and DEFAULT_ENSEMBLE.version == 2


def test_preset_1_bitstream_is_unchanged():
    # Digest of this payload as coded by the version-1 implementation (before version 2 existed).
    payload = _encode(PRESET_1, _logits(1500, 7), _tokens(1500, 7))
    assert len(payload) == 614
    assert hashlib.blake2b(payload, digest_size=16).hexdigest() == "25c6053b85e0976ba76ecae6ac7a5534"


@pytest.mark.parametrize(
    "change",
    [
        {"version": 3},
        {"ngram_order": 7},
        {"ngram_bits": 7},
        {"ngram_bits": 23},
        {"match_min": 1},
        {"match_bits": 25},
        {"mixer_contexts": 2},
        {"skip": 1},
        {"prev_sets": 3},
        {"prev_sets": 13},
    ],
)
def test_config_rejects_bad_values(change):
    bad = dataclasses.replace(DEFAULT_ENSEMBLE, **change)
    with pytest.raises(FormatError):
        EnsembleConfig.from_bytes(bad.to_bytes(), FormatError)


def test_config_rejects_wrong_length_and_half_disabled():
    raw = DEFAULT_ENSEMBLE.to_bytes()
    with pytest.raises(FormatError):
        EnsembleConfig.from_bytes(raw[:-1], FormatError)
    with pytest.raises(UnsupportedVersionError, match="preset"):
        EnsembleConfig.from_bytes(b"\x03", FormatError, UnsupportedVersionError)
    with pytest.raises(UnsupportedVersionError, match="version 3"):
        EnsembleConfig.from_bytes(b"\x03" + raw[1:], FormatError, UnsupportedVersionError)
    with pytest.raises(FormatError):  # version 2 needs 17 bytes, version 1 14
        EnsembleConfig.from_bytes(b"\x02" + PRESET_1.to_bytes()[1:], FormatError)
    with pytest.raises(FormatError):
        EnsembleConfig.from_bytes(b"\x01" + raw[1:], FormatError)
    with pytest.raises(FormatError):
        EnsembleConfig.from_bytes(b"", FormatError)
    for field in ("apm_rate", "prev_sets"):  # version-2 fields are refused in version 1
        with pytest.raises(ValueError, match="version 2"):
            dataclasses.replace(PRESET_1, **{field: 5}).check()
    with pytest.raises(FormatError):
        EnsembleConfig.from_bytes(dataclasses.replace(LLM_ONLY, ngram_order=3).to_bytes(), FormatError)


def test_ln_pos_matches_libm_closely():
    rng = np.random.default_rng(1)
    xs = np.concatenate([np.exp(rng.uniform(-600, 600, 2000)), [1.0, 2.0, 0.5, 1e-300, 1e300, 1.4142135623730951]])
    for x in xs:
        assert abs(ln_pos(float(x)) - math.log(x)) <= 4e-16 * max(1.0, abs(math.log(x)))
    assert ln_pos(0.0) == ln_pos(1e-300)  # clamped, not -inf


@pytest.mark.parametrize(
    "config",
    [
        DEFAULT_ENSEMBLE,
        PRESET_1,
        EnsembleConfig(ngram_order=2, match_min=3, mixer_contexts=0),
        EnsembleConfig(version=2, ngram_order=6, match_min=0, mixer_contexts=0, apm_rate=5000, prev_sets=12),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decoder_repeats_encoder_exactly(config, seed):
    logits = _logits(700, seed)
    tokens = _tokens(700, seed)
    payload = _encode(config, logits, tokens)
    assert _decode(config, logits, payload) == tokens


def test_ensemble_learns_what_the_llm_does_not_know():
    # Flat logits: the LLM alone costs log2(V) = 9 bits per token; the n-gram and match models
    # must learn the repeated phrase.
    logits = _logits(3000, 0, flat=True)
    tokens = _tokens(3000, 5)
    llm_bits = 8 * len(_encode(LLM_ONLY, logits, tokens))
    ens_bits = 8 * len(_encode(DEFAULT_ENSEMBLE, logits, tokens))
    assert llm_bits > 9 * 2990
    assert ens_bits < 0.5 * llm_bits


@pytest.mark.parametrize(
    "field, value",
    [
        ("ngram_order", 2),
        ("ngram_bits", 9),
        ("match_min", 4),
        ("match_bits", 9),
        ("mixer_contexts", 0),
        ("mix_rate", 2000),
        ("bias_rate", 100),
        ("llm_rate", 200),
        ("apm_rate", 5000),
        ("apm_rate", 0),
        ("prev_sets", 4),
        ("prev_sets", 0),
    ],
)
def test_every_setting_changes_the_code_and_is_needed_to_decode(field, value):
    logits = _logits(1500, 3)
    tokens = _tokens(1500, 3)
    changed = dataclasses.replace(DEFAULT_ENSEMBLE, **{field: value})
    assert getattr(DEFAULT_ENSEMBLE, field) != value
    a = _encode(DEFAULT_ENSEMBLE, logits, tokens)
    b = _encode(changed, logits, tokens)
    assert a != b
    assert _decode(changed, logits, b) == tokens
    assert _decode(DEFAULT_ENSEMBLE, logits, b) != tokens  # the recorded setting is required


def test_history_grows_past_its_initial_capacity():
    state = EnsembleState(DEFAULT_ENSEMBLE, V, 16)
    work = np.empty(V)
    row = _logits(1, 0)[0]
    for t in _tokens(100, 1):
        state.encode(row, t, work)
    assert state.hist.shape[0] >= 100 and state.counters[C_SEEN] == 100


def test_rejects_mismatched_vocabulary():
    state = EnsembleState(DEFAULT_ENSEMBLE, V, 16)
    with pytest.raises(ValueError):
        state.encode(np.zeros(V + 1, dtype=np.float32), 0, np.empty(V + 1))
    with pytest.raises(ValueError):
        state.encode(np.zeros(V, dtype=np.float32), V, np.empty(V))


# -- with the model -------------------------------------------------------------------------

TEXT = (
    b"<li><a href=\"https://example.org/a\">first</a></li>\n"
    b"<li><a href=\"https://example.org/b\">second</a></li>\n"
    b"<li><a href=\"https://example.org/c\">third</a></li>\n"
    b"<li><a href=\"https://example.org/d\">fourth</a></li>\n"
)


@pytest.mark.parametrize(
    "ensemble", [DEFAULT_ENSEMBLE, LLM_ONLY, EnsembleConfig(ngram_order=2, match_min=4, mixer_contexts=0, bias_rate=0)]
)
def test_archives_record_the_ensemble_and_decode_with_it(codec, ensemble):
    archive = codec.compress(TEXT, ensemble=ensemble, fallback=False)
    header = container.ArchiveReader(__import__("io").BytesIO(archive)).header
    recorded = header.params.ensemble
    if ensemble == DEFAULT_ENSEMBLE:
        # Short inputs are coded by the LLM alone (codec.ENSEMBLE_MIN_BYTES); the golden
        # essay-ensemble archive covers the default preset on a longer input.
        assert len(TEXT) < ENSEMBLE_MIN_BYTES and recorded == b""
    else:
        assert recorded == (ensemble.header_bytes() if ensemble.enabled else b"")
    assert codec.decompress(archive) == TEXT


# -- confidence skip (with the model: the decoder's KV bookkeeping is what is tested) ---------

SKIP = dataclasses.replace(DEFAULT_ENSEMBLE, skip=8)
ROWS = b"".join(b"<tr><td>%d</td><td>same cell text here</td><td>and here</td></tr>\n" % (i % 7) for i in range(40))


def test_skip_config_is_checked():
    assert EnsembleConfig.from_bytes(SKIP.to_bytes()) == SKIP
    for bad in (3, 1025):
        with pytest.raises(ValueError):
            dataclasses.replace(DEFAULT_ENSEMBLE, skip=bad).check()
    with pytest.raises(ValueError):
        dataclasses.replace(DEFAULT_ENSEMBLE, skip=8, match_min=0).check()


@pytest.mark.parametrize(
    "layout",
    [
        dict(),  # one stream, no slide
        dict(block_tokens=64, stream_tokens=256, window=96, slide=24, sinks=2),  # slides while tokens wait
    ],
)
def test_skip_round_trips_and_skips(codec, monkeypatch, layout):
    observed = []
    real = EnsembleState.observe

    def counting(self, token, seg=0):
        observed.append(token)
        real(self, token, seg)

    monkeypatch.setattr(EnsembleState, "observe", counting)
    archive = codec.compress(ROWS, ensemble=SKIP, fallback=False, **layout)
    skipped_encoding = len(observed)
    assert skipped_encoding > 50  # the repeated rows are mostly coded without the LLM
    observed.clear()
    for lanes in (1, 4):
        assert codec.replace(lanes=lanes).decompress(archive) == ROWS
        assert len(observed) == skipped_encoding
        observed.clear()
    plain = codec.compress(ROWS, fallback=False, **layout)
    assert plain != archive
