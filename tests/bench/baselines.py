"""Sizes of the classic compressors on whole files, without the model (a few seconds).

Usage: .venv/bin/python tests/bench/baselines.py FILE [FILE ...]
Prints, as a Markdown table, each file's size and the archive size and bits per byte of
gzip -9, xz -9e and zstd -19, made with the same library calls and settings as ``nacrith
bench`` (Python's gzip with mtime 0, lzma preset 9 | extreme, python-zstandard level 19),
each decoded again and checked.  The README's summary table takes its gzip, xz and zstd
columns from this script.
"""

from __future__ import annotations

import gzip
import lzma
import os
import sys

import zstandard

COMPRESSORS = {
    "gzip -9": (lambda d: gzip.compress(d, compresslevel=9, mtime=0), gzip.decompress),
    "xz -9e": (lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
    "zstd -19": (
        lambda d: zstandard.ZstdCompressor(level=19).compress(d),
        lambda b: zstandard.ZstdDecompressor().decompress(b),
    ),
}


def main() -> None:
    paths = sys.argv[1:]
    if not paths or paths[0] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if paths else 2)
    names = list(COMPRESSORS)
    print("| file | bytes | " + " | ".join(f"{n} bytes | {n} bpb" for n in names) + " |")
    print("|---|---:|" + "---:|---:|" * len(names))
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        cells = []
        for comp, decomp in COMPRESSORS.values():
            blob = comp(data)
            assert decomp(blob) == data, path
            cells += [f"{len(blob):,}", f"{8 * len(blob) / max(len(data), 1):.3f}"]
        print(f"| {os.path.basename(path)} | {len(data):,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
