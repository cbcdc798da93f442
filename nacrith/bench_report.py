"""Benchmark results as things people read: the text table, JSON, CSV and a PNG bar chart of
bits per byte.

Why a module of its own: measuring (:mod:`nacrith.bench`) takes minutes to hours with the
model, while presenting the numbers takes milliseconds and is redone often (another chart
size, a spreadsheet).  So every output here is made from :class:`~nacrith.bench.BenchRow`
records, and the JSON document ``nacrith bench --json`` writes can be read back
(:func:`load_json`) to make the table, CSV or chart again without re-running anything.

matplotlib is optional (``pip install 'nacrith[plot]'``) and imported only when a chart is
drawn, so the codec never pays for it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from typing import BinaryIO

from .bench import BenchRow
from .errors import NacrithError

# CSV columns: the BenchRow fields, in declaration order (the JSON rows use the same names).
CSV_COLUMNS = [f.name for f in dataclasses.fields(BenchRow)]
_REQUIRED = [f.name for f in dataclasses.fields(BenchRow) if f.default is dataclasses.MISSING]

PLOT_INSTALL = "pip install 'nacrith[plot]'"


# -- the text table ``nacrith bench`` prints ------------------------------------------------


def _kb_per_s(size: int, seconds: float | None) -> str:
    """Original kilobytes (1000 bytes) per second, the speed users feel; '-' if not measured."""
    if not seconds or seconds <= 0:
        return "-"
    return f"{size / seconds / 1000:,.1f}"


_COLUMNS = [
    # header, width, BenchRow -> text
    ("compressor", 10, lambda r: r.compressor),
    ("original", 12, lambda r: f"{r.original_size:,}"),
    ("compressed", 12, lambda r: "-" if r.compressed_size is None else f"{r.compressed_size:,}"),
    ("bpb", 7, lambda r: "-" if r.bits_per_byte is None else f"{r.bits_per_byte:.3f}"),
    ("comp s", 9, lambda r: "-" if r.compress_seconds is None else f"{r.compress_seconds:.3f}"),
    ("comp tok/s", 10, lambda r: "-" if r.compress_tokens_per_second is None else f"{r.compress_tokens_per_second:,.1f}"),
    ("comp KB/s", 9, lambda r: _kb_per_s(r.original_size, r.compress_seconds)),
    ("decomp s", 9, lambda r: "-" if r.decompress_seconds is None else f"{r.decompress_seconds:.3f}"),
    ("dec tok/s", 10, lambda r: "-" if r.decompress_tokens_per_second is None else f"{r.decompress_tokens_per_second:,.1f}"),
    ("dec KB/s", 9, lambda r: _kb_per_s(r.original_size, r.decompress_seconds)),
    ("ok", 3, lambda r: "yes" if r.ok else "NO"),
]


def format_row(row: BenchRow | None, file_width: int) -> str:
    """One table line (``row`` None = the header); text left-aligned, numbers right-aligned."""
    cells = ["file".ljust(file_width) if row is None else row.file.ljust(file_width)]
    for k, (title, width, get) in enumerate(_COLUMNS):
        text = title if row is None else get(row)
        cells.append(text.ljust(width) if k == 0 else text.rjust(width))
    return "  ".join(cells).rstrip()


# -- JSON -----------------------------------------------------------------------------------


def json_document(environment: dict, rows: list[BenchRow]) -> str:
    """The document ``nacrith bench --json`` writes: ``{"environment": ..., "rows": [...]}``."""
    return json.dumps({"environment": environment, "rows": [r.as_dict() for r in rows]}, indent=2) + "\n"


def parse_json(text: str, name: str = "results") -> tuple[dict, list[BenchRow]]:
    """Read back a :func:`json_document`; a malformed one raises :class:`NacrithError`.

    Unknown keys in a row are ignored, so documents written by a later nacrith with more
    columns still load.
    """

    def bad(why: str) -> NacrithError:
        return NacrithError(f"{name}: not a nacrith bench JSON document ({why}); write one with 'nacrith bench --json PATH'")

    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise bad(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise bad('no "rows" list')
    env = doc.get("environment", {})
    if not isinstance(env, dict):
        raise bad('"environment" is not an object')
    rows = []
    for k, item in enumerate(doc["rows"]):
        if not isinstance(item, dict):
            raise bad(f"row {k} is not an object")
        missing = [key for key in _REQUIRED if key not in item]
        if missing:
            raise bad(f"row {k} lacks {', '.join(missing)}")
        if not isinstance(item["file"], str) or not isinstance(item["compressor"], str):
            raise bad(f"row {k}: file and compressor must be strings")
        rows.append(BenchRow(**{key: item[key] for key in CSV_COLUMNS if key in item}))
    return env, rows


def load_json(path: str | os.PathLike) -> tuple[dict, list[BenchRow]]:
    with open(path, encoding="utf-8") as f:
        return parse_json(f.read(), os.fspath(path))


# -- CSV ------------------------------------------------------------------------------------


def csv_text(rows: list[BenchRow]) -> str:
    """One header line (:data:`CSV_COLUMNS`) and one line per row; empty cell = not measured."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.as_dict().items()})
    return out.getvalue()


# -- chart ----------------------------------------------------------------------------------


def _short_name(label: str) -> str:
    """A file label without its directories ("../corpora/a.txt (first 3,000 bytes)" -> "a.txt (...)")."""
    path, sep, note = label.partition(" (first ")
    return os.path.basename(path) + (f"\n(first {note}" if sep else "")


def _subtitle(environment: dict) -> str:
    parts = []
    if environment.get("model"):
        parts.append(f"model {environment['model']}")
    layout = [f"{k} {environment[k]}" for k in ("window", "slide", "sinks") if k in environment]
    parts.extend(layout)
    if environment.get("max_bytes"):
        parts.append(f"first {environment['max_bytes']:,} bytes of each file")
    return ", ".join(parts)


def plot_bpb(rows: list[BenchRow], out: BinaryIO, *, environment: dict | None = None) -> None:
    """Write a PNG bar chart of bits per byte: one group of bars per file, one bar per compressor.

    Compressors keep one colour across groups; each bar carries its value.  Rows without a
    size (a failed external program) leave a gap; a failed round trip is hatched and says so.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)  # files only: never open a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise NacrithError(f"the PNG chart needs matplotlib; install it with: {PLOT_INSTALL}") from None

    files = list(dict.fromkeys(r.file for r in rows))
    compressors = list(dict.fromkeys(r.compressor for r in rows))
    if not files:
        raise NacrithError("no benchmark rows to plot")
    by_key = {(r.file, r.compressor): r for r in rows}
    bar = 0.8 / len(compressors)
    width_in = min(20.0, max(6.5, 1.5 + len(files) * (0.55 * len(compressors) + 0.5)))
    colours = plt.get_cmap("tab10")

    fig, ax = plt.subplots(figsize=(width_in, 4.8), dpi=100)
    try:
        top = 0.0
        for c, name in enumerate(compressors):
            for f, file in enumerate(files):
                row = by_key.get((file, name))
                if row is None or row.bits_per_byte is None:
                    continue
                x = f - 0.4 + bar * (c + 0.5)
                value = row.bits_per_byte
                top = max(top, value)
                ax.bar(x, value, bar * 0.92, color=colours(c % 10), hatch=None if row.ok else "//",
                       edgecolor="none" if row.ok else "black")
                text = f"{value:.3f}" if row.ok else f"{value:.3f}\nround trip\nfailed"
                ax.text(x, value, text, ha="center", va="bottom", fontsize=7, rotation=90 if len(compressors) > 4 else 0)
        # One legend entry per compressor, whatever the first file was missing.
        handles = [plt.Rectangle((0, 0), 1, 1, color=colours(c % 10)) for c in range(len(compressors))]
        ax.legend(handles, compressors, fontsize=8, ncol=min(len(compressors), 8), loc="upper left",
                  bbox_to_anchor=(0, -0.18 if len(files) > 1 or "\n" in _short_name(files[0]) else -0.12),
                  frameon=False)
        ax.set_xticks(range(len(files)), [_short_name(f) for f in files], fontsize=9)
        ax.set_xlim(-0.5, len(files) - 0.5)
        ax.set_ylim(0, top * 1.25 if top > 0 else 1)
        ax.set_ylabel("bits per byte (lower is better)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        title = "nacrith bench: compressed size in bits per byte"
        subtitle = _subtitle(environment or {})
        ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
        fig.tight_layout()
        fig.savefig(out, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
