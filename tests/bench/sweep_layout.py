"""Measure bpb and speed against the coding layout (the layout and level tables in docs/results.md).

Usage: python tests/bench/sweep_layout.py [--decode] [--model NAME] FILE NBYTES LAYOUT [LAYOUT...]
where each LAYOUT is comma-separated key=value pairs of nacrith.codec.Layout (integers,
``ensemble=off`` for the LLM alone, ``ensemble.FIELD=N`` for one field of the default
ensemble), e.g.
    python tests/bench/sweep_layout.py ../shared/corpora/alice29.txt 60000 window=1024,slide=256 window=2048
An empty LAYOUT ("") means the defaults.  ``--decode`` also decodes each archive (checked
against the input) and reports decompression symbols/s.
"""

import dataclasses
import io
import sys
import time
from pathlib import Path

import nacrith
from nacrith import container
from nacrith.ensemble import DEFAULT_ENSEMBLE, LLM_ONLY


def parse(spec: str) -> dict:
    layout, ensemble = {}, {}
    for key, value in (kv.split("=") for kv in spec.split(",") if kv):
        if key.startswith("ensemble."):
            ensemble[key.split(".", 1)[1]] = int(value)
        else:
            layout[key] = LLM_ONLY if (key, value) == ("ensemble", "off") else int(value)
    if ensemble:
        layout["ensemble"] = dataclasses.replace(DEFAULT_ENSEMBLE, **ensemble)
    return layout


def main() -> None:
    args = sys.argv[1:]
    decode = "--decode" in args
    args = [a for a in args if a != "--decode"]
    model = None
    if "--model" in args:
        at = args.index("--model")
        model = args[at + 1]
        del args[at : at + 2]
    path, n, specs = Path(args[0]), int(args[1]), args[2:]
    data = path.read_bytes()[:n]
    codec = nacrith.Codec(model)
    codec.decompress(codec.compress(b"Warm up the model and the jitted coder. " * 4))
    threads = codec.engine(nacrith.models.resolve(model)).threads
    print(f"{path.name}, first {len(data)} bytes, model {model or 'default'}, {threads} threads")
    print("| layout | bpb (archive) | bpb (payload) | compress symbols/s |" + (" decompress symbols/s |" if decode else ""))
    print("|---|---:|---:|---:|" + ("---:|" if decode else ""))
    for spec in specs:
        t = time.perf_counter()
        blob = codec.compress(data, **parse(spec))
        seconds = time.perf_counter() - t
        payload = sum(len(p) for _, p in container.ArchiveReader(io.BytesIO(blob)).blocks())
        symbols = container.read_info(io.BytesIO(blob)).total_symbols
        row = (
            f"| {spec or 'defaults'} | {8 * len(blob) / len(data):.4f} | {8 * payload / len(data):.4f} "
            f"| {symbols / seconds:.0f} |"
        )
        if decode:
            t = time.perf_counter()
            if codec.decompress(blob) != data:
                raise SystemExit(f"{spec}: round trip FAILED")
            row += f" {symbols / (time.perf_counter() - t):.0f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
