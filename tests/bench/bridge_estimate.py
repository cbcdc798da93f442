"""What mixing per bit could gain over one token model: an estimate for `--best` (issue 18).

Usage: python tests/bench/bridge_estimate.py [--primary NAME] [--secondary NAME] FILE START STOP

FILE[START:STOP] is coded by each model as one segment through its default ensemble (the
primary, gemma3-270m by default, in `--best`'s window 2048 and in lockstep; the secondary,
smollm2-135m by default, in window 1024), and every token is turned into its trie walk
(nacrith.bridge) under the ensemble's exact integer frequencies: END, CHOICE and BIT
decisions, the BIT ones being the bits of the text.  The primary's walk is then coded per bit
by a logistic mixer (float64, one weight set per decision kind and bit position, learning
rate 0.002, inputs clamped at +-12 in the log-odds domain) whose inputs are:

* the primary's probability of the decision (alone, it costs exactly the token-level size,
  less the mass of control tokens no walk reaches: the first two rows check that);
* bytecm version 2's probability of the same bit of the text (nacrith.bytecm.bit_predictions);
* the secondary's probability of the same bit of the text, from its own walk (where its
  vocabulary implies the bit, that bit at full confidence).

It is an estimate, and for the secondary an optimistic one: its walk follows its own
tokenization of the whole text, so where its token ends it knows that it ends, which a
decoder would have to infer from the bytes it has decoded.  So the secondary is mixed in a
second way too, one a decoder can repeat ("at word starts"): only after a space that begins
one of its tokens (a decoder that has just decoded the space knows the word before it is
complete, and feeds its tokens), it predicts the bytes that follow from that token's
distribution, over every token that still extends the bytes seen since the space (not
knowing where its token ends), and is silent once none does, on bits its vocabulary implies,
and everywhere else.  Sizes are payload bytes (bits / 8), without the container.  Tune on
the corpora's first halves, check on second halves.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

import nacrith
from nacrith import bytecm, cdf, models
from nacrith.bridge import BIT, Bridge
from nacrith.codec import Layout, NumericConfig

CLAMP = 12.0
RATE = 0.002
SECONDARY_WEIGHT = 0.4  # the secondary's initial weight (the primary's is 1 minus it)


class Walks:
    """One model's trie-walk decisions over a text: parallel arrays, one entry per decision."""

    def __init__(self) -> None:
        self.kind, self.bit, self.pos, self.n1, self.n0, self.y = [], [], [], [], [], []
        self.fixed_bits = 0.0  # skip events and escaped bytes, coded as today
        self.token_bits = 0.0  # what the token-level coder spends on the walked tokens
        self.walked: list[tuple[int, int]] = []  # (start, length) of the walked tokens
        self.at_word_starts: np.ndarray | None = None  # log-odds per bit of the text, "at word starts"


def word_start_view(bridge: Bridge, masses: np.ndarray, data: bytes, start: int, view: np.ndarray) -> None:
    """Fill ``view`` with the secondary's "at word starts" log-odds for the bytes after the
    space at ``start`` (module doc)."""
    lo, hi = bridge.span(b" ")
    d = 1
    while start + d < len(data):
        prefix = data[start : start + d]
        lo, hi = bridge.span(prefix, lo, hi)
        lo = bridge.span(prefix + b"\x00", lo, hi)[0]  # past the tokens spelled exactly ``prefix``
        if lo >= hi:
            return  # no token extends the bytes seen: silent until the next word
        byte = data[start + d]
        for bit in range(8):
            m = (byte >> (8 - bit) << (8 - bit)) | (1 << (7 - bit))  # the bit's split value
            mid = bridge.span(prefix + bytes((m,)), lo, hi)[0]
            if lo < mid < hi:
                view[(start + d) * 8 + bit] = np.clip(
                    math.log(masses[hi] - masses[mid]) - math.log(masses[mid] - masses[lo]), -CLAMP, CLAMP)
            if byte >> (7 - bit) & 1:
                lo = mid
            else:
                hi = mid
            if lo >= hi:
                return
        d += 1


def walk_text(model: str | None, window: int, data: bytes, word_starts: bool = False) -> tuple[Walks, float]:
    codec = nacrith.Codec(model)
    engine = codec.engine(models.resolve(model))
    layout = engine.fit_calls(Layout(window=window, slide=window // 4, segments=1), NumericConfig())
    bridge = Bridge(engine.tokenizer.pieces)
    out = Walks()
    if word_starts:
        out.at_word_starts = np.full(8 * len(data), np.nan)
    start = time.perf_counter()
    with engine.lock:
        symbols = engine.tokenizer.encode(data)
        ctx = engine.context(layout.window, NumericConfig())
        mixer = engine.new_mixer(layout, len(symbols))
        work = np.empty(engine.n_vocab, dtype=np.float64)
        pos = 0
        for k, row in engine.stream_rows(ctx, symbols, layout):
            sym = int(symbols[k])
            escaped = sym >= engine.n_vocab
            token = engine.tokenizer.escape_token if escaped else sym
            predicted = mixer.skip_prediction()
            if predicted >= 0:
                (_, f), hit = mixer.encode_skip(token, predicted)
                out.fixed_bits -= math.log2(f / cdf.TOTAL)
                if hit:
                    pos += len(engine.tokenizer.pieces[token])
                    continue
            freqs = mixer.frequencies(row, work)
            _, f = mixer.encode(row, token, work)
            if escaped or not bridge.spells(token):
                out.fixed_bits += -math.log2(f / cdf.TOTAL) + (8 if escaped else 0)
                pos += 1 if escaped else len(engine.tokenizer.pieces[token])
                continue
            out.token_bits -= math.log2(f / cdf.TOTAL)
            masses = bridge.masses(freqs)
            out.walked.append((pos, len(engine.tokenizer.pieces[token])))
            if word_starts and pos and data[pos] == 0x20:
                word_start_view(bridge, masses, data, pos, out.at_word_starts)
            r = bridge.rank[token]
            for d in bridge.path(token):
                n1, n0 = Bridge.counts(masses, d)
                out.kind.append(d.kind)
                out.bit.append(d.bit)
                out.pos.append(pos + d.depth)
                out.n1.append(n1)
                out.n0.append(n0)
                out.y.append(1 if d.says_yes(r) else 0)
            pos += len(engine.tokenizer.pieces[token])
    assert pos == len(data), (pos, len(data))
    return out, time.perf_counter() - start


def bit_view(w: Walks, data: bytes) -> np.ndarray:
    """A model's log-odds for every bit of the text along its own walks (the optimistic way:
    where its vocabulary implied a bit, that bit at full confidence; NaN, silent, outside its
    walked tokens)."""
    view = np.full(8 * len(data), np.nan)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(bool)
    for start, length in w.walked:
        at = slice(8 * start, 8 * (start + length))
        view[at] = np.where(bits[at], CLAMP, -CLAMP)
    kind = np.array(w.kind)
    at = kind == BIT
    index = np.array(w.pos)[at] * 8 + np.array(w.bit)[at]
    view[index] = np.clip(np.log(np.array(w.n1, dtype=float)[at]) - np.log(np.array(w.n0, dtype=float)[at]), -CLAMP, CLAMP)
    return view


@njit(cache=False)
def mix_cost(kind, bit, pos, n1, n0, y, second, cm, use_second, use_cm):
    """Bits spent coding the walk's decisions with the mixer (module doc)."""
    weights = np.zeros((2 * 24, 4))  # by kind and bit; the second half while the secondary is silent
    weights[:, 0] = 1.0
    if use_second:
        weights[:24, 0] = 1.0 - SECONDARY_WEIGHT
        weights[:24, 1] = SECONDARY_WEIGHT
    total = 0.0
    x = np.zeros(4)
    for i in range(len(y)):
        own = min(max(np.log(n1[i]) - np.log(n0[i]), -CLAMP), CLAMP)
        x[:] = 0.0
        silent = 0
        x[0] = own
        x[3] = 0.3
        if kind[i] == BIT:
            j = pos[i] * 8 + bit[i]
            if use_cm:
                x[2] = cm[j]
            if use_second:
                if np.isnan(second[j]):
                    silent = 24
                else:
                    x[1] = second[j]
        else:
            x[1] = own  # END / CHOICE: the primary alone
        ws = kind[i] * 8 + bit[i] + silent
        dot = 0.0
        for t in range(4):
            dot += weights[ws, t] * x[t]
        dot = min(max(dot, -30.0), 30.0)
        p = 1.0 / (1.0 + np.exp(-dot))
        q = min(max(p if y[i] else 1.0 - p, 1e-12), 1.0)
        total -= np.log2(q)
        err = y[i] - p
        for t in range(4):
            weights[ws, t] += RATE * err * x[t]
    return total


def main() -> None:
    args = sys.argv[1:]
    options = {"--primary": "gemma3-270m", "--secondary": "smollm2-135m"}
    for name in options:
        if name in args:
            at = args.index(name)
            options[name] = args[at + 1]
            del args[at : at + 2]
    path, start, stop = Path(args[0]), int(args[1]), int(args[2])
    data = path.read_bytes()[start:stop]
    primary, t_a = walk_text(options["--primary"], 2048, data)
    secondary, t_b = walk_text(options["--secondary"], 1024, data, word_starts=True)
    n = len(data)
    second = bit_view(secondary, data)
    p16 = bytecm.bit_predictions(data).astype(float)
    cm = np.clip(np.log(p16) - np.log(65536.0 - p16), -CLAMP, CLAMP)
    arrays = (
        np.array(primary.kind, dtype=np.int64), np.array(primary.bit, dtype=np.int64),
        np.array(primary.pos, dtype=np.int64), np.array(primary.n1, dtype=np.float64),
        np.array(primary.n0, dtype=np.float64), np.array(primary.y, dtype=np.int64), second, cm,
    )
    y = arrays[5]
    walk_bits = float(-np.log2(np.where(y == 1, arrays[3], arrays[4]) / (arrays[3] + arrays[4])).sum())
    assert walk_bits <= primary.token_bits + 1e-6 * primary.token_bits  # the walk never costs more
    rows = [
        (f"{options['--secondary']} alone, token level", secondary.token_bits + secondary.fixed_bits),
        (f"{options['--primary']} alone, token level", primary.token_bits + primary.fixed_bits),
        (f"{options['--primary']} alone, its walk", walk_bits + primary.fixed_bits),
    ]
    other = options["--secondary"]
    for label, view, use_second, use_cm in [
        ("+ bytecm per bit", second, 0, 1),
        (f"+ {other} per bit, along its own tokens (optimistic)", second, 1, 0),
        (f"+ {other} + bytecm per bit (optimistic)", second, 1, 1),
        (f"+ {other} per bit, at word starts (a decoder can repeat it)", secondary.at_word_starts, 1, 0),
        (f"+ {other} + bytecm per bit, at word starts", secondary.at_word_starts, 1, 1),
    ]:
        rows.append((label, mix_cost(*arrays[:6], view, arrays[7], use_second, use_cm) + primary.fixed_bits))
    base = rows[1][1]
    print(f"{path.name}[{start}:{stop}] ({n:,} bytes); LLM passes {t_a:.0f} s + {t_b:.0f} s")
    print("| coding | payload bytes | bpb | vs primary |")
    print("|---|---:|---:|---:|")
    for label, bits in rows:
        print(f"| {label} | {bits / 8:,.0f} | {bits / n:.4f} | {100 * (bits / base - 1):+.2f} % |")


if __name__ == "__main__":
    main()
