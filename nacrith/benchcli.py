"""``nacrith bench`` after its options are parsed: measure, print the table, write the files.

Why apart from :mod:`nacrith.bench` (the measurements) and :mod:`nacrith.bench_report` (the
table, JSON, CSV and chart): those are library code a script may call; this module is the
command's order of steps, its messages on standard error and its exit status, and it writes
through :mod:`nacrith.fileio`'s atomic outputs (zstd keeps ``benchzstd.c`` apart the same way).
"""

from __future__ import annotations

import dataclasses
import io

import click

from . import api, bench, bench_report, models
from .errors import ChecksumError
from .fileio import STDIO, error, say, write_file, write_stdout


def measure(
    codec: api.Codec, files: tuple[str, ...], *, max_bytes: int | None, quiet: bool,
    json_path: str | None, csv_path: str | None, png_path: str | None, levels: tuple[str, ...] = (),
) -> int:
    """Bench every file against the other compressors; status 4 if nacrith's round trip failed.
    ``levels``: compare these levels side by side (a nacrith row each) instead of ``codec`` alone."""
    external = bench.external_programs()
    table_to_err = json_path == STDIO  # stdout carries the JSON document then
    width = max(len("file"), *(len(bench.file_label(f, max_bytes)) for f in files))

    def emit(text: str) -> None:
        click.echo(text, err=table_to_err)

    if not quiet:
        found = ", ".join(external) if external else "none found"
        say(f"loading the model and warming up (external compressors: {found})")
    env = bench.environment(codec)
    env["max_bytes"] = max_bytes
    emit(bench_report.format_row(None, width))
    nacriths = bench.level_codecs(codec, levels) if levels else None
    if nacriths:  # each level's model and layout (the top-level ones are the plain codec's)
        env["levels"] = {row: bench.level_environment(level_codec) for row, level_codec in nacriths}
    rows = bench.bench_files(
        codec, files, external=external, max_bytes=max_bytes,
        on_row=lambda row: emit(bench_report.format_row(row, width)), nacriths=nacriths,
    )
    for _, level_codec in nacriths or []:
        level_codec.close()
    env["peak_rss_mib"] = bench.peak_rss_mib()
    if not quiet:
        for row, level_codec in nacriths or [(bench.NACRITH, codec)]:
            layout = level_codec.layout
            say(
                f"{row}: model {models.resolve(level_codec.model).name}; "
                f"layout: {', '.join(f'{f.name}={getattr(layout, f.name)}' for f in dataclasses.fields(layout) if f.name != 'ensemble')}; "
                f"ensemble: {layout.ensemble.describe()}"
            )
        say(f"lanes={codec.lanes}, workers={codec.workers}, threads={env['threads']}; peak RSS {env['peak_rss_mib']:.0f} MiB")
    write_outputs(env, rows, json_path, csv_path, png_path)
    status = 0
    for row in rows:
        if row.ok:
            continue
        if bench.is_nacrith(row.compressor):
            error(f"{row.file}: round trip FAILED: {row.error}")
            status = ChecksumError.exit_code
        else:
            say(f"warning: {row.compressor} on {row.file}: {row.error}")
    return status


def from_json(documents: tuple[str, ...], json_path: str | None, csv_path: str | None, png_path: str | None) -> None:
    """``--from-json``: measure nothing; the table and files from saved documents (rows joined)."""
    env, rows = bench_report.load_json(documents[0])
    for more in documents[1:]:
        more_env, more_rows = bench_report.load_json(more)
        rows = rows + more_rows
        if more_env.get("max_bytes") != env.get("max_bytes"):
            env = dict(env, max_bytes=None)  # the row labels say which files were cut
    width = max([len("file"), *(len(r.file) for r in rows)])
    click.echo(bench_report.format_row(None, width), err=json_path == STDIO)
    for row in rows:
        click.echo(bench_report.format_row(row, width), err=json_path == STDIO)
    write_outputs(env, rows, json_path, csv_path, png_path)


def run_ablation(codec: api.Codec, files: tuple[str, ...], *, max_bytes: int | None, quiet: bool) -> None:
    """``--ablation``: one Markdown table per file, printed as each file finishes."""
    from . import ablation

    engine = codec.engine(models.resolve(codec.model))
    for path in files:
        with open(path, "rb") as f:
            data = f.read(max_bytes) if max_bytes else f.read()
        label = bench.file_label(path, max_bytes)
        if not quiet:
            say(f"{label}: {len(data):,} bytes, {len(ablation.STEPS)} variants on one LLM pass")
        rows = ablation.ablation(engine, data, codec.layout)
        click.echo(ablation.format_rows(label, rows))
    if not quiet:
        say(f"model {engine.model_file.name}; threads {engine.threads}; peak RSS {bench.peak_rss_mib():.0f} MiB")


def write_outputs(env: dict, rows: list, json_path: str | None, csv_path: str | None, png_path: str | None) -> None:
    """Write the optional JSON, CSV and PNG files of a benchmark (each atomically)."""
    if json_path:
        doc = bench_report.json_document(env, rows).encode()
        if json_path == STDIO:
            write_stdout(doc)
        else:
            write_file(json_path, doc)
    if csv_path:
        write_file(csv_path, bench_report.csv_text(rows).encode())
    if png_path:
        chart = io.BytesIO()
        bench_report.plot_bpb(rows, chart, environment=env)
        write_file(png_path, chart.getvalue())
