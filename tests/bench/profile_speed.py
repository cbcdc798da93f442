"""Where compression and decompression time goes: the model against everything else.

Usage: python tests/bench/profile_speed.py FILE [MAX_BYTES] [THREADS]

Prints, for the first MAX_BYTES bytes of FILE (default 20,000) and THREADS llama.cpp threads
(default: nacrith's default, every core this process may use), first a summary:

* compression and decompression end to end (``nacrith.Codec`` with the default layout and
  execution, the thread count adapting as it does by default; symbols/s, and the calls per
  thread count it ran), each beside the model's own ceiling at the working window (the
  window full, logits copied out, nothing coded, the best of each thread count the adaptive
  count may take, i.e. THREADS halved down to 1) and their ratio:
  compression against one batch of ``n_batch`` tokens, decompression against one token per
  sequence per ``llama_decode`` for the sequences the default decoder runs at once (streams
  in lanes times the segments the header records), also shown for 1 sequence;

("other processes": the cores the rest of the machine kept busy meanwhile; on a shared
machine a speed means little without it), then tokens/s of

* the encoder's model work alone: batched evaluation of one stream with the default window,
  slides and numeric settings (``Engine.stream_rows``), logits copied out, nothing coded;
* the coding alone, from logits already computed: the LLM alone, and with the ensemble;
* the decoder's model work alone: one token per stream per ``llama_decode`` for 1, 2, 4 and 8
  streams in lockstep (each stream the same text, positions past 768 as in a full window),
  nothing decoded;
* bounds: the fastest of three batched calls at the start of a window and at its end (where
  a stream spends most of its time once the window has filled: attention then covers ~900
  positions), logits included and nothing coded; and, for one stream,
  k = 2, 3, 4 tokens per call, what speculative decoding (guess the next tokens, keep the
  logits of the right guesses) would reach if every guess were right.

The compressor's speed is about 1 / (1 / model + 1 / coding); the numbers say which part a
speed-up has to come from.  Speeds depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import nacrith  # noqa: E402
from nacrith import models, threads as nthreads  # noqa: E402
from nacrith.codec import DEFAULT_LANES, Layout, NumericConfig  # noqa: E402
from nacrith.coder import ArithmeticEncoder  # noqa: E402


def _fill(ctx, tokens: np.ndarray, end: int, seq: int = 0) -> None:
    """Evaluate ``tokens[:end]`` (repeated if shorter) at positions 0..end-1 of ``seq``, no logits."""
    prefix = np.resize(tokens, end)
    for s in range(0, end, ctx.n_batch):
        n = min(ctx.n_batch, end - s)
        ctx.decode(prefix[s : s + n], s, seq, logits_from=n)


def _counts(threads: int) -> list[int]:
    return nthreads.ThreadGovernor(threads).levels  # the counts the adaptive decoder may run


def _one_token_ceiling(engine, layout, numeric, tokens, seqs: int) -> tuple[float, int]:
    """(tokens/s, threads) of one token per sequence per call, ``seqs`` sequences, at the
    window's end: the best of two runs with each thread count the defaults may choose."""
    ctx = engine.context(layout.window, numeric, lanes=seqs)
    steps = 64
    first = layout.window - steps
    best = (0.0, 0)
    for t in _counts(engine.threads) * 2:
        ctx.set_threads(t)
        ctx.clear()
        for seq in range(seqs):
            _fill(ctx, tokens, first, seq)
        start = time.perf_counter()
        for i in range(steps):
            tok = int(tokens[(first + i) % len(tokens)])
            ctx.decode_multi([tok] * seqs, [first + i] * seqs, list(range(seqs)))
        best = max(best, (seqs * steps / (time.perf_counter() - start), t))
    return best


def _batched_ceiling(engine, layout, numeric, tokens) -> tuple[int, float, int]:
    """(n_batch, tokens/s, threads) of one full batch ending at the window's end, the best of
    three with each thread count the defaults may choose."""
    ctx = engine.context(layout.window, numeric)
    n_batch = ctx.n_batch
    first = layout.window - n_batch
    filler = np.resize(tokens, layout.window)
    best = (0.0, 0)
    for t in _counts(engine.threads) * 3:
        ctx.set_threads(t)
        ctx.clear()
        _fill(ctx, tokens, first)
        start = time.perf_counter()
        ctx.decode(filler[first : first + n_batch], first)
        best = max(best, (n_batch / (time.perf_counter() - start), t))
    return (n_batch, *best)


def _others() -> tuple[float, float, float]:
    """(machine busy seconds, this process's CPU seconds, wall clock) for :func:`_others_load`."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK"), r.ru_utime + r.ru_stime, time.monotonic()


def _others_load(before: tuple[float, float, float]) -> float:
    """Cores other processes kept busy since ``before``: what a speed was measured against."""
    after = _others()
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / (after[2] - before[2]))


def summary(path: str, data: bytes, threads: int):
    """End-to-end speeds with the defaults beside the model's ceilings (see the module doc)."""
    codec = nacrith.Codec(threads=threads)
    engine = codec.engine(models.resolve(None))
    layout, numeric = codec.layout, NumericConfig()
    codec.decompress(codec.compress(data[:200], fallback=False))  # warm up: contexts, compiled code
    used = Counter(nthreads.stats())
    load = _others()
    start = time.perf_counter()
    blob = codec.compress(data, fallback=False)
    comp_s = time.perf_counter() - start
    comp_load = _others_load(load)
    comp_used = Counter(nthreads.stats()) - used
    info = codec.info(blob)
    n = sum(i.total_symbols for i in info)
    used = Counter(nthreads.stats())
    load = _others()
    start = time.perf_counter()
    assert codec.decompress(blob) == data
    dec_s = time.perf_counter() - start
    dec_load = _others_load(load)
    dec_used = Counter(nthreads.stats()) - used
    streams = sum(-(-i.total_symbols // layout.stream_tokens) for i in info)
    # The segments the encoder chose for this input (recorded in the header; 1 before segments).
    segments = max((getattr(i.header.params, "segments", 1) for i in info if i.header.params), default=1)
    seqs = min(streams, DEFAULT_LANES) * segments

    tokens = engine.llm_tokens(engine.tokenizer.encode(data))
    n_batch, batched, batched_t = _batched_ceiling(engine, layout, numeric, tokens)
    one, one_t = _one_token_ceiling(engine, layout, numeric, tokens, 1)
    many, many_t = _one_token_ceiling(engine, layout, numeric, tokens, seqs) if seqs > 1 else (one, one_t)
    comp, dec = n / comp_s, n / dec_s
    print(f"{path}: first {len(data)} bytes, {n} symbols, {len(blob)} bytes compressed, window {layout.window}, "
          f"{threads} thread(s) at most, {streams} stream(s) x {segments} segment(s): "
          f"{seqs} sequence(s) per decoder call")
    print(f"  compress:    {comp:7.1f} symbols/s = {comp / batched:4.2f} x the batched ceiling "
          f"({n_batch} tokens per call: {batched:6.1f} tokens/s with {batched_t} thread(s)); "
          f"calls per thread count {dict(sorted(comp_used.items()))}, other processes {comp_load:.2f} cores")
    print(f"  decompress:  {dec:7.1f} symbols/s = {dec / many:4.2f} x the one-token ceiling of {seqs} "
          f"sequence(s) ({many:6.1f} tokens/s with {many_t} thread(s); 1 sequence: {one:6.1f} with {one_t}); "
          f"calls per thread count {dict(sorted(dec_used.items()))}, other processes {dec_load:.2f} cores")
    return engine


def main() -> None:
    path = sys.argv[1]
    max_bytes = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else nthreads.default_threads()
    data = Path(path).read_bytes()[:max_bytes]
    engine = summary(path, data, threads)
    symbols = engine.tokenizer.encode(data)
    layout, numeric = Layout(), NumericConfig()
    ctx = engine.context(layout.window, numeric)
    ctx.set_threads(threads)  # the parts below are measured at a fixed count
    n = len(symbols)
    print(f"parts: {n} symbols, {threads} thread(s), window {layout.window}")

    list(engine.stream_rows(ctx, symbols[:64], layout))  # warm up
    rows = np.empty((n, engine.n_vocab), dtype=np.float32)
    start = time.perf_counter()
    for k, row in engine.stream_rows(ctx, symbols, layout):
        rows[k] = row
    model_s = time.perf_counter() - start
    print(f"  encoder model work (batched):   {n / model_s:7.1f} tokens/s")

    for label, make in (("LLM alone", lambda: None), ("ensemble", lambda: engine.new_mixer(layout, n))):
        engine.code_symbol(ArithmeticEncoder(), make(), rows[0], int(symbols[0]))  # compile
        mixer, enc = make(), ArithmeticEncoder()
        start = time.perf_counter()
        for k in range(n):
            engine.code_symbol(enc, mixer, rows[k], int(symbols[k]))
        enc.finish()
        coding_s = time.perf_counter() - start
        print(f"  coding, {label:9s}:            {n / coding_s:7.1f} tokens/s "
              f"(model + coding: {n / (model_s + coding_s):6.1f})")

    tokens = engine.llm_tokens(symbols)
    for lanes in (1, 2, 4, 8):
        ctx = engine.context(layout.window, numeric, lanes=lanes)
        ctx.set_threads(threads)
        ctx.clear()
        for seq in range(lanes):
            _fill(ctx, tokens, 768, seq)
        steps = min(128, layout.window - 768)
        start = time.perf_counter()
        for i in range(steps):
            tok = int(tokens[(768 + i) % len(tokens)])
            ctx.decode_multi([tok] * lanes, [768 + i] * lanes, list(range(lanes)))
        dec_s = time.perf_counter() - start
        print(f"  decoder model work, {lanes} stream(s): {lanes * steps / dec_s:7.1f} tokens/s")

    ctx = engine.context(layout.window, numeric)
    ctx.set_threads(threads)
    n_batch = ctx.n_batch
    filler = np.resize(tokens, layout.window)
    for first in (0, layout.window - n_batch):
        best = 0.0
        for _ in range(3):
            ctx.clear()
            _fill(ctx, tokens, first)
            start = time.perf_counter()
            ctx.decode(filler[first : first + n_batch], first)
            best = max(best, n_batch / (time.perf_counter() - start))
        print(f"  bound: one batch of {n_batch} at positions {first}-{first + n_batch - 1}, "
              f"with logits: {best:7.1f} tokens/s")
    for k in (1, 2, 3, 4):
        ctx.clear()
        _fill(ctx, tokens, 768)
        calls = min(32, (layout.window - 768) // k)
        start = time.perf_counter()
        for i in range(calls):
            pos = 768 + i * k
            ctx.decode([int(tokens[(pos + j) % len(tokens)]) for j in range(k)], pos)
        print(f"  bound: 1 stream, {k} token(s) per call, every guess right: "
              f"{calls * k / (time.perf_counter() - start):7.1f} tokens/s")


if __name__ == "__main__":
    main()
