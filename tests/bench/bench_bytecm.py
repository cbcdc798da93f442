"""Compare bytecm's versions with xz -9e and zstd -19 on whole files (no model involved).

Usage: .venv/bin/python tests/bench/bench_bytecm.py FILE [FILE ...]
For each file: the size of the bytecm payload written by every version this nacrith decodes
(each decoded again and checked), of ``xz -9e`` and of ``zstd -19``, then bytecm's
compression and decompression speed for each version, as a Markdown table.  Speeds
are wall-clock on whatever this machine is doing at the time (one core: bytecm is serial).
"""

from __future__ import annotations

import lzma
import os
import sys
import time

import zstandard

from nacrith import bytecm


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    paths = sys.argv[1:]
    if not paths:
        sys.exit(__doc__)
    bytecm.compress(b"warm up the compiled coder", version=1)
    versions = bytecm.VERSIONS
    heads = [f"bytecm v{v}" for v in versions] + ["xz -9e", "zstd -19", f"v{bytecm.VERSION} vs v1"]
    both = " / ".join(f"v{v}" for v in versions)
    print("| file | bytes | " + " | ".join(heads) + f" | compress KB/s ({both}) | decompress KB/s ({both}) |")
    print("|---|---:|" + "---:|" * (len(heads) + 2))
    for path in paths:
        data = open(path, "rb").read()
        sizes = {}
        enc_speed, dec_speed = [], []
        for v in versions:
            payload, enc_s = _timed(bytecm.compress, data, None, v)
            if payload is None:
                sizes[v] = None
                enc_speed.append("-")
                dec_speed.append("-")
                continue
            out, dec_s = _timed(bytecm.decompress, payload, len(data))
            if out != data:
                sys.exit(f"{path}: bytecm version {v} did not round-trip")
            sizes[v] = len(payload)
            enc_speed.append(f"{len(data) / enc_s / 1e3:.0f}")
            dec_speed.append(f"{len(data) / dec_s / 1e3:.0f}")
        xz = len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
        zs = len(zstandard.ZstdCompressor(level=19).compress(data))
        cells = [f"{sizes[v]:,}" if sizes[v] else "expands" for v in versions] + [f"{xz:,}", f"{zs:,}"]
        new, old = sizes[bytecm.VERSION], sizes[versions[0]]
        cells.append(f"{100 * (new - old) / old:+.2f} %" if new and old else "")
        print(
            f"| {os.path.basename(path)} | {len(data):,} | " + " | ".join(cells)
            + f" | {' / '.join(enc_speed)} | {' / '.join(dec_speed)} |"
        )


if __name__ == "__main__":
    main()
