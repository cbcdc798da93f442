"""Ratio and speed against the number of segments per stream (``Layout.segments``).

For each file and each K: the archive's size and bits per byte, and the seconds and symbols
per second of compressing and (unless --no-decode) decompressing it, round trip checked.
Everything else is the default layout; threads are the default unless -T is given.

    python tests/bench/segments.py FILE [FILE ...] [--segments 1,2,4,8] [--bytes N] [--no-decode] [-T N]

``--bytes N`` codes the first N bytes of each file only.  Inputs get at most one segment per
``codec.SEGMENT_MIN_BYTES`` (16 KiB): the table shows the K asked for and the K recorded.  Speed depends on the machine and
its load: run it on a quiet machine (uptime is printed) and repeat.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from nacrith import Codec, container, models  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--segments", default="1,2,4,8", help="comma-separated K values")
    parser.add_argument("--bytes", type=int, default=0, help="code only the first N bytes of each file")
    parser.add_argument("--no-decode", action="store_true")
    parser.add_argument("-T", "--threads", type=int, default=None)
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.segments.split(",")]
    print(f"# load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    print("| file | bytes | K asked (used) | archive | bpb | compress s | tokens/s | decompress s | tokens/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.files:
        data = path.read_bytes()
        if args.bytes:
            data = data[: args.bytes]
        for k in ks:
            codec = Codec(threads=args.threads, segments=k)
            engine = codec.engine(models.resolve())
            tokens = len(engine.tokenizer.encode(data))
            t0 = time.perf_counter()
            archive = codec.compress(data, fallback=False)
            t_c = time.perf_counter() - t0
            used = container.read_info(io.BytesIO(archive)).header.params.segments
            row = f"| {path.name} | {len(data):,} | {k} ({used}) | {len(archive):,} | {len(archive) * 8 / len(data):.4f} "
            row += f"| {t_c:.1f} | {tokens / t_c:.0f} "
            if args.no_decode:
                row += "| | |"
            else:
                t0 = time.perf_counter()
                back = codec.decompress(archive)
                t_d = time.perf_counter() - t0
                if back != data:
                    print(f"round trip FAILED: {path.name} K={k}", file=sys.stderr)
                    return 1
                row += f"| {t_d:.1f} | {tokens / t_d:.0f} |"
            print(row, flush=True)
    print(f"# load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
