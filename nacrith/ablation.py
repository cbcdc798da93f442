"""What each part of the ensemble buys: ``nacrith bench --ablation FILE``.

The LLM is by far the most expensive part, and every ensemble variant sees the same logits,
so the file is run through the LLM once and every row of logits is coded by each variant in
turn, each with its own ensemble state and arithmetic coder.  The archive of each variant is
then framed exactly as :func:`nacrith.archive.compress` frames a model-coded (mode 0) archive, so
its size is the real size (``tests/test_ablation.py`` checks that against ``compress``).

Speed: a variant's tokens/s counts the shared LLM time plus the time spent in its own coding
steps, which is what a real run with that variant would spend (the LLM work is identical).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

from . import container
from .codec import Engine, Layout, NumericConfig, frame_blocks
from .coder import ArithmeticEncoder
from .ensemble import DEFAULT_ENSEMBLE, LLM_ONLY, PRESET_1, EnsembleConfig

# Cumulative steps, as the issue asks: each row adds one part to the row above.
STEPS: list[tuple[str, EnsembleConfig]] = [
    ("LLM alone", LLM_ONLY),
    ("+ n-gram (orders 1-4)", dataclasses.replace(PRESET_1, match_min=0, bias_rate=0, mixer_contexts=0, llm_rate=0)),
    ("+ bias head", dataclasses.replace(PRESET_1, match_min=0, mixer_contexts=0, llm_rate=0)),
    ("+ match model", dataclasses.replace(PRESET_1, mixer_contexts=0, llm_rate=0)),
    ("+ mixer contexts and LLM temperature (preset 1)", PRESET_1),
    ("+ previous-token weight sets and APM (default)", DEFAULT_ENSEMBLE),
]


@dataclass(frozen=True)
class AblationRow:
    name: str
    ensemble: str
    original_size: int
    archive_size: int
    tokens: int
    seconds: float

    @property
    def bits_per_byte(self) -> float:
        return 8.0 * self.archive_size / self.original_size if self.original_size else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def ablation(
    engine: Engine,
    data: bytes,
    layout: Layout = Layout(),
    steps: list[tuple[str, EnsembleConfig]] = STEPS,
    numeric: NumericConfig = NumericConfig(),
    progress: Callable[[int], None] | None = None,
) -> list[AblationRow]:
    """Size and speed of each ensemble variant on ``data`` (model-coded, mode 0), streams
    coded as one segment each (``layout.segments`` is ignored)."""
    layout = engine.fit_calls(layout.replace(segments=1), numeric)  # the rows the encoder codes with
    layouts = [dataclasses.replace(layout, ensemble=config).check() for _, config in steps]
    with engine.lock:
        symbols = engine.tokenizer.encode(data)
        ctx = engine.context(layout.window, numeric)
        own = [0.0] * len(steps)  # seconds spent in each variant's coding steps
        llm = 0.0
        payloads: list[list[list[bytes]]] = [[] for _ in steps]  # [variant][stream][block]
        for s in range(0, len(symbols), layout.stream_tokens):
            stream = symbols[s : s + layout.stream_tokens]
            mixers = [engine.new_mixer(lay, len(stream)) for lay in layouts]
            encoders = [ArithmeticEncoder() for _ in steps]
            done = [[] for _ in steps]
            t = time.perf_counter()
            for k, row in engine.stream_rows(ctx, stream, layout, progress):
                now = time.perf_counter()
                llm += now - t
                sym = int(stream[k])
                for v in range(len(steps)):
                    if k and k % layout.block_tokens == 0:
                        done[v].append(encoders[v].finish())
                        encoders[v] = ArithmeticEncoder()
                    engine.code_symbol(encoders[v], mixers[v], row, sym)
                    after = time.perf_counter()
                    own[v] += after - now
                    now = after
                t = now
            for v in range(len(steps)):
                done[v].append(encoders[v].finish())
                payloads[v].append(done[v])
    rows = []
    for v, (name, config) in enumerate(steps):
        blocks = frame_blocks(engine, data, symbols, layouts[v], payloads[v])
        size = len(container.encode_member(container.MODE_MODEL, engine.params(layouts[v], numeric), data, blocks))
        rows.append(AblationRow(name, config.describe(), len(data), size, len(symbols), llm + own[v]))
    return rows


def format_rows(file_label: str, rows: list[AblationRow]) -> str:
    """A Markdown table (the README carries it)."""
    base = rows[0].archive_size if rows else 0
    lines = [
        "| file | ensemble | archive bytes | bpb | vs LLM alone | tokens/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        change = f"{(r.archive_size / base - 1) * 100:+.2f} %" if base else ""
        lines.append(
            f"| {file_label} | {r.name} | {r.archive_size:,} | {r.bits_per_byte:.3f} | {change} | {r.tokens_per_second:.1f} |"
        )
    return "\n".join(lines)
