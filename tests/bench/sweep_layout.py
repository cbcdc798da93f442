"""Measure bpb and compression speed against the coding layout (the layout table in docs/results.md).

Usage: python tests/bench/sweep_layout.py FILE NBYTES LAYOUT [LAYOUT...]
where each LAYOUT is comma-separated key=value pairs of nacrith.codec.Layout, e.g.
    python tests/bench/sweep_layout.py ../shared/corpora/alice29.txt 60000 window=1024,slide=256 window=2048
An empty LAYOUT ("") means the defaults.
"""

import io
import sys
import time
from pathlib import Path

import nacrith
from nacrith import container


def parse(spec: str) -> dict:
    return {k: int(v) for k, v in (kv.split("=") for kv in spec.split(",") if kv)}


def main() -> None:
    path, n, specs = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    data = path.read_bytes()[:n]
    codec = nacrith.Codec()
    print(f"{path.name}, first {len(data)} bytes, {codec.engine(nacrith.models.resolve()).threads} threads")
    print("| layout | bpb (archive) | bpb (payload) | compress tokens/s |")
    print("|---|---:|---:|---:|")
    for spec in specs:
        t = time.perf_counter()
        blob = codec.compress(data, **parse(spec))
        seconds = time.perf_counter() - t
        payload = sum(len(p) for _, p in container.ArchiveReader(io.BytesIO(blob)).blocks())
        symbols = container.read_info(io.BytesIO(blob)).total_symbols
        print(
            f"| {spec or 'defaults'} | {8 * len(blob) / len(data):.4f} | {8 * payload / len(data):.4f} "
            f"| {symbols / seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
