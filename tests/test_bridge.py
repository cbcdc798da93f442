"""nacrith.bridge: a token's trie walk costs exactly what the token costs, and mirrors itself."""

from fractions import Fraction

import numpy as np
import pytest

from nacrith import cdf
from nacrith.bridge import BIT, CHOICE, END, Bridge
from nacrith.ensemble import DEFAULT_ENSEMBLE, EnsembleState

# Prefixes of each other, shared spellings (a byte token and its byte-fallback twin), the
# extreme byte values, a three-way tie, and control tokens that spell nothing.
PIECES = [
    b"", b"a", b"ab", b"abc", b"abd", b"b", b"\x00", b"\xff", b"\xff\xff", b"a", b"", b"zz",
    b"zza", b"\x80", b"\x7f", b"abc", b"q", b"q", b"q", b"hello", b" hello", b" ",
]


def _freqs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 1000, size=n).astype(np.int64)


def test_walk_costs_exactly_the_tokens_probability():
    bridge = Bridge(PIECES)
    for seed in range(5):
        f = _freqs(len(PIECES), seed)
        m = bridge.masses(f)
        reachable = int(sum(f[t] for t, p in enumerate(PIECES) if p))
        for t, piece in enumerate(PIECES):
            if not piece:
                continue
            p = Fraction(1)
            for d in bridge.path(t):
                n1, n0 = Bridge.counts(m, d)
                assert n1 > 0 and n0 > 0
                yes = d.says_yes(bridge.rank[t])
                p *= Fraction(n1 if yes else n0, n1 + n0)
            assert p == Fraction(int(f[t]), reachable), (t, piece)


def test_decoder_side_walk_reaches_the_token_from_the_answers_alone():
    bridge = Bridge(PIECES)
    for t, piece in enumerate(PIECES):
        if not piece:
            continue
        answers = iter([d.says_yes(bridge.rank[t]) for d in bridge.path(t)])
        asked = []

        def answer(d):
            asked.append(d)
            return next(answers)

        assert bridge.walk(answer) == t
        assert tuple(asked) == bridge.path(t)


def test_bit_decisions_are_the_bits_of_the_tokens_bytes():
    bridge = Bridge(PIECES)
    for t, piece in enumerate(PIECES):
        if not piece:
            continue
        r = bridge.rank[t]
        for d in bridge.path(t):
            if d.kind == BIT:
                yes = d.says_yes(r)
                assert yes == bool(piece[d.depth] >> (7 - d.bit) & 1)
            else:
                assert d.kind in (END, CHOICE) and 1 <= d.depth <= len(piece)


def test_implied_decisions_are_not_asked():
    # One token per spelling and no token a prefix of another: only the bits that tell them
    # apart are asked, no END.
    bridge = Bridge([b"a", b"b"])  # 0x61, 0x62: equal up to the last two bits
    path = bridge.path(0)
    assert [(d.kind, d.depth, d.bit) for d in path] == [(BIT, 0, 6)]
    assert Bridge([b"only"]).path(0) == ()


def test_shared_spelling_is_told_apart_by_choice_decisions():
    bridge = Bridge(PIECES)
    q_tokens = [t for t, p in enumerate(PIECES) if p == b"q"]
    kinds = {t: [d.kind for d in bridge.path(t)] for t in q_tokens}
    assert all(k.count(CHOICE) >= 1 for k in kinds.values())
    walks = {tuple((d, d.says_yes(bridge.rank[t])) for d in bridge.path(t)) for t in q_tokens}
    assert len(walks) == len(q_tokens)  # same questions, different answers


def test_span_is_the_tokens_starting_with_a_prefix():
    bridge = Bridge(PIECES)
    for prefix in [b"", b"a", b"ab", b"abc", b"\xff", b"\xff\xff", b"\x00", b"q", b"zz", b"x", b" "]:
        lo, hi = bridge.span(prefix)
        inside = sorted(int(t) for t in bridge.order[lo:hi])
        assert inside == [t for t, p in enumerate(PIECES) if p.startswith(prefix)], prefix


def test_control_tokens_cannot_be_walked_to():
    bridge = Bridge(PIECES)
    assert not bridge.spells(0)
    with pytest.raises(ValueError, match="no spelling"):
        bridge.path(0)
    with pytest.raises(ValueError, match="no token"):
        Bridge([b"", b""]).walk(lambda d: True)


def test_ensemble_frequencies_are_what_encode_codes_with():
    # The walk needs the ensemble's exact integer frequencies; they must be encode's.
    v = len(PIECES)
    state = EnsembleState(DEFAULT_ENSEMBLE, v)
    rng = np.random.default_rng(7)
    work = np.empty(v, dtype=np.float64)
    for token in [1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 5]:
        logits = rng.normal(size=v).astype(np.float32)
        f = state.frequencies(logits, work)
        assert f.sum() == cdf.TOTAL and f.min() >= 1
        lo, freq = state.encode(logits, token, work)
        assert freq == f[token] and lo == int(f[:token].sum())


def test_real_vocabulary_walks_cost_the_tokens_bits(engine):
    # SmolLM2's 49,152 pieces, a text's tokens under the LLM's own frequencies: walking each
    # token costs exactly its probability renormalised over the tokens that spell something.
    bridge = Bridge(engine.tokenizer.pieces)
    symbols = engine.tokenizer.encode("Alice was beginning to get very tired of sitting by her sister.\n".encode())
    rng = np.random.default_rng(3)
    for sym in symbols:
        f = cdf.freqs_from_logits(rng.normal(scale=4, size=engine.n_vocab).astype(np.float32))
        m = bridge.masses(f)
        reachable = int(m[-1]) - int(sum(f[t] for t, p in enumerate(bridge.pieces) if not p))
        p = Fraction(1)
        for d in bridge.path(int(sym)):
            n1, n0 = Bridge.counts(m, d)
            p *= Fraction(n1 if d.says_yes(bridge.rank[sym]) else n0, n1 + n0)
        assert p == Fraction(int(f[sym]), reachable)
