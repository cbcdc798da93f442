"""Throughput of the Ray engine against the local one, same archive bytes (the README's table).

Usage: python tests/bench/ray_throughput.py FILE NBYTES STREAM_TOKENS ADDRESS
codes the first NBYTES of FILE with streams of STREAM_TOKENS symbols: in this process (one
llama.cpp thread), with two local worker processes (one thread each), and on the Ray cluster
at ADDRESS with one and with two actors (one thread each).  Each engine first codes a short
warm-up text, so loading the model on the workers is not timed.  Every archive must equal
the first one (else it stops), and every engine decodes the first archive.
"""

import io
import sys
import time
from pathlib import Path

import nacrith
from nacrith import container

WARM_UP = b"A short text that makes every worker load its model before the clock starts.\n" * 2


def engines(address: str) -> list[tuple[str, nacrith.Codec]]:
    return [
        ("local, 1 thread", nacrith.Codec(threads=1)),
        ("local, --workers 2 (1 thread each)", nacrith.Codec(threads=2, workers=2)),
        ("ray, 1 worker (1 thread)", nacrith.Codec(threads=1, workers=1, engine="ray", address=address)),
        ("ray, 2 workers (1 thread each)", nacrith.Codec(threads=1, workers=2, engine="ray", address=address)),
    ]


def main() -> None:
    path, n, stream_tokens, address = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    data = path.read_bytes()[:n]
    layout = dict(stream_tokens=stream_tokens)
    first = None
    print(f"{path.name}, first {len(data)} bytes, stream_tokens={stream_tokens}")
    print("| engine | archive bytes | bpb | streams | comp s | comp tok/s | decomp s | dec tok/s | same bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, codec in engines(address):
        with codec:
            codec.decompress(codec.compress(WARM_UP, fallback=False, **layout))
            t = time.perf_counter()
            blob = codec.compress(data, fallback=False, **layout)
            comp = time.perf_counter() - t
            first = first or blob
            if blob != first:
                sys.exit(f"{name}: the archive differs from the first engine's")
            t = time.perf_counter()
            if codec.decompress(first) != data:
                sys.exit(f"{name}: decoding gave other bytes")
            dec = time.perf_counter() - t
        symbols = container.read_info(io.BytesIO(blob)).total_symbols
        print(
            f"| {name} | {len(blob):,} | {8 * len(blob) / len(data):.3f} | {-(-symbols // stream_tokens)} "
            f"| {comp:.1f} | {symbols / comp:.0f} | {dec:.1f} | {symbols / dec:.0f} | yes |",
            flush=True,
        )


if __name__ == "__main__":
    main()
