"""Archive sizes of ensemble variants on one LLM pass (tuning the ensemble for a model).

Usage: python tests/bench/ensemble_variants.py [--model NAME] [--window N] FILE NBYTES VARIANT [VARIANT...]
where each VARIANT is comma-separated FIELD=N changes to the default ensemble
(nacrith.ensemble.EnsembleConfig), "" for the default itself and "off" for the LLM alone, e.g.
    python tests/bench/ensemble_variants.py --model gemma3-270m --window 2048 ../shared/corpora/alice29.txt 40000 "" llm_rate=40

The file's first NBYTES are coded as one segment (slide a quarter of the window), each
variant with its own state on the same rows of logits (nacrith.ablation), and framed as real
archives: the sizes are exact.  Tune on the corpora's first halves, check on second halves.
"""

import dataclasses
import sys
from pathlib import Path

import nacrith
from nacrith import ablation, models
from nacrith.codec import Layout
from nacrith.ensemble import DEFAULT_ENSEMBLE, LLM_ONLY


def variant(spec: str):
    if spec == "off":
        return LLM_ONLY
    changes = {key: int(value) for key, value in (kv.split("=") for kv in spec.split(",") if kv)}
    return dataclasses.replace(DEFAULT_ENSEMBLE, **changes).check()


def main() -> None:
    args = sys.argv[1:]
    options = {"--model": None, "--window": "1024"}
    for name in options:
        if name in args:
            at = args.index(name)
            options[name] = args[at + 1]
            del args[at : at + 2]
    path, n, specs = Path(args[0]), int(args[1]), args[2:]
    data = path.read_bytes()[:n]
    window = int(options["--window"])
    codec = nacrith.Codec(options["--model"])
    engine = codec.engine(models.resolve(options["--model"]))
    layout = Layout(window=window, slide=window // 4, segments=1)
    steps = [(spec or "default", variant(spec)) for spec in specs]
    rows = ablation.ablation(engine, data, layout, steps)
    print(f"{path.name}, first {len(data)} bytes, model {options['--model'] or 'default'}, window {window}")
    print("| variant | archive bytes | bpb |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row.name} | {row.archive_size:,} | {row.bits_per_byte:.4f} |")


if __name__ == "__main__":
    main()
