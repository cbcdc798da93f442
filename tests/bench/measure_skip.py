"""Measure the confidence skip: fraction of symbols skipped, bpb cost, and speed either way.

Usage: .venv/bin/python tests/bench/measure_skip.py FILE MAX_BYTES [SKIP ...]
Compresses and decompresses the first MAX_BYTES of FILE with the default ensemble and with
the skip at each given match length (default 16), checks the round trips, and prints a
Markdown table.  Speeds are wall-clock on whatever this machine is doing at the time.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import nacrith
from nacrith import models
from nacrith.ensemble import DEFAULT_ENSEMBLE, EnsembleState


def main() -> None:
    path, limit = sys.argv[1], int(sys.argv[2])
    skips = [int(x) for x in sys.argv[3:]] or [16]
    data = open(path, "rb").read()[:limit]
    codec = nacrith.Codec(threads=int(os.environ.get("NACRITH_THREADS", "1")))
    skipped = [0]
    real = EnsembleState.observe

    def counting(self, token):
        skipped[0] += 1
        real(self, token)

    EnsembleState.observe = counting
    n_symbols = len(codec.engine(models.resolve(None)).tokenizer.encode(data))
    print("| file | ensemble | archive bytes | bpb | symbols skipped | compress tok/s | decompress tok/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for skip in [0, *skips]:
        config = dataclasses.replace(DEFAULT_ENSEMBLE, skip=skip)
        skipped[0] = 0
        t = time.perf_counter()
        archive = codec.compress(data, ensemble=config, fallback=False)
        t_c = time.perf_counter() - t
        fraction = skipped[0] / n_symbols
        t = time.perf_counter()
        assert codec.decompress(archive) == data, "round trip failed"
        t_d = time.perf_counter() - t
        label = f"default + skip from match length {skip}" if skip else "default (no skip)"
        print(
            f"| {path} (first {len(data):,} bytes) | {label} | {len(archive):,} | {8 * len(archive) / len(data):.3f} "
            f"| {100 * fraction:.1f} % | {n_symbols / t_c:.1f} | {n_symbols / t_d:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
