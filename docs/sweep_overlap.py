"""Measure bpb and compression speed against the block context overlap (README table).

Usage: python docs/sweep_overlap.py NBYTES OVERLAPS [FILE]
e.g.   python docs/sweep_overlap.py 40000 0,128,256,512 ../shared/corpora/alice29.txt
"""

import io
import sys
import time
from pathlib import Path

import nacrith
from nacrith import container


def main() -> None:
    n = int(sys.argv[1])
    overlaps = [int(x) for x in sys.argv[2].split(",")]
    path = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).resolve().parents[2] / "shared/corpora/alice29.txt"
    data = path.read_bytes()[:n]
    codec = nacrith.Codec()
    print("| context overlap | bpb (archive) | bpb (payload) | compress tokens/s |")
    print("|---:|---:|---:|---:|")
    for overlap in overlaps:
        t = time.perf_counter()
        blob = codec.compress(data, block_tokens=1024, context_overlap=overlap)
        seconds = time.perf_counter() - t
        payload = sum(len(p) for _, p in container.ArchiveReader(io.BytesIO(blob)).blocks())
        symbols = container.read_info(io.BytesIO(blob)).total_symbols
        print(
            f"| {overlap} | {8 * len(blob) / len(data):.4f} | {8 * payload / len(data):.4f} | {symbols / seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
