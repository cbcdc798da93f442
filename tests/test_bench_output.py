"""Benchmark output people read: the table, CSV, JSON read back, the PNG chart, --max-bytes.

Most tests work from a saved JSON document (no model); one runs the real bench on the first
200 bytes of a small file to check --max-bytes and that every output comes from one run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import struct
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nacrith import bench, bench_report, cli, fileio
from nacrith.errors import NacrithError

ROOT = Path(__file__).resolve().parent.parent
THREADS = os.environ.get("NACRITH_TEST_THREADS", "2")


def _row(file: str, compressor: str, size: int, ok: bool = True, **kw) -> bench.BenchRow:
    original = 3000
    return bench.BenchRow(
        file=file, compressor=compressor, original_size=original, compressed_size=size,
        bits_per_byte=8 * size / original, compress_seconds=0.25, decompress_seconds=0.5, ok=ok, **kw,
    )


ROWS = [
    _row("corpora/a.txt (first 3,000 bytes)", "nacrith", 480, symbols=700, compress_tokens_per_second=100.5),
    _row("corpora/a.txt (first 3,000 bytes)", "gzip -9", 1210),
    _row("corpora/a.txt (first 3,000 bytes)", "xz -9e", 1190),
    _row("corpora/b.html", "nacrith", 390, ok=False, error='round trip mismatch, "quoted"'),
    _row("corpora/b.html", "gzip -9", 1001),
]
ENV = {"model": "smollm2-135m", "window": 1024, "slide": 256, "sinks": 4, "max_bytes": 3000}


def run(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def results(tmp_path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(bench_report.json_document(ENV, ROWS))
    return path


# -- library --------------------------------------------------------------------------------


def test_json_document_reads_back_equal():
    env, rows = bench_report.parse_json(bench_report.json_document(ENV, ROWS))
    assert env == ENV
    assert rows == ROWS


def test_json_reader_ignores_unknown_row_keys():
    doc = json.loads(bench_report.json_document(ENV, ROWS[:1]))
    doc["rows"][0]["a_column_from_the_future"] = 1
    _, rows = bench_report.parse_json(json.dumps(doc))
    assert rows == ROWS[:1]


@pytest.mark.parametrize(
    "text, why",
    [
        ("{not json", "invalid JSON"),
        ('{"rows": 3}', 'no "rows" list'),
        ('[1, 2]', 'no "rows" list'),
        ('{"rows": [{"file": "a"}]}', "row 0 lacks compressor"),
        ('{"rows": [7]}', "row 0 is not an object"),
        ('{"environment": [], "rows": []}', '"environment" is not an object'),
    ],
)
def test_malformed_json_is_a_nacrith_error(text, why):
    with pytest.raises(NacrithError, match=re.escape(why)):
        bench_report.parse_json(text, "r.json")


def test_csv_has_one_column_per_field_and_round_trips():
    text = bench_report.csv_text(ROWS)
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == [f for f in bench.BenchRow.__dataclass_fields__]
    assert len(table) == len(ROWS)
    for got, row in zip(table, ROWS):
        assert got["file"] == row.file and got["compressor"] == row.compressor
        assert int(got["compressed_size"]) == row.compressed_size
        assert float(got["bits_per_byte"]) == row.bits_per_byte
        assert got["ok"] == str(row.ok)
        assert got["error"] == (row.error or "")
        assert got["decompress_tokens_per_second"] == ""  # None = not measured: empty cell


def test_png_chart_is_a_png_that_grows_with_the_files():
    pytest.importorskip("matplotlib")
    one, two = io.BytesIO(), io.BytesIO()
    bench_report.plot_bpb([r for r in ROWS if r.file.endswith(".txt (first 3,000 bytes)")], one, environment=ENV)
    bench_report.plot_bpb(ROWS, two, environment=ENV)
    w1, h1 = png_size(one.getvalue())
    w2, h2 = png_size(two.getvalue())
    assert 500 <= w1 <= 2000 and 300 <= h1 <= 1000
    assert w2 >= w1 and h2 == h1
    assert len(two.getvalue()) > 5000  # bars, labels and text, not an empty canvas


def test_png_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes 'import matplotlib' fail
    with pytest.raises(NacrithError, match=re.escape(bench_report.PLOT_INSTALL)):
        bench_report.plot_bpb(ROWS, io.BytesIO())


def test_file_label_says_when_a_file_is_cut(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 5000)
    assert bench.file_label(path, 3000) == f"{path} (first 3,000 bytes)"
    assert bench.file_label(path, 5000) == str(path)
    assert bench.file_label(path) == str(path)


# -- command line ---------------------------------------------------------------------------


def test_from_json_prints_the_table_and_writes_csv_and_png(results, tmp_path):
    pytest.importorskip("matplotlib")
    out_csv, out_png = tmp_path / "r.csv", tmp_path / "r.png"
    result = run("bench", "--from-json", str(results), "--csv", str(out_csv), "--png", str(out_png))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["file", "compressor"]
    assert len(lines) == 1 + len(ROWS)
    for line, row in zip(lines[1:], ROWS):
        assert line.startswith(row.file)
        assert f"{row.bits_per_byte:.3f}" in line
        assert line.endswith("yes" if row.ok else "NO")
    # Aligned: each bpb value ends where the header's "bpb" ends.
    column_end = lines[0].index(" bpb ") + 4
    for line, row in zip(lines[1:], ROWS):
        value = f" {row.bits_per_byte:.3f} "
        assert line.index(value) + len(value) - 1 == column_end, line
    assert len(list(csv.DictReader(out_csv.open()))) == len(ROWS)
    png_size(out_png.read_bytes())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(fileio.TMP_SUFFIX)]


def test_from_json_joins_several_documents(results):
    result = run("bench", "--from-json", str(results), "--from-json", str(results))
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 + 2 * len(ROWS)


def test_from_json_refuses_files_and_bad_documents(results, tmp_path):
    result = run("bench", "--from-json", str(results), "some.txt")
    assert result.exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": "no"}')
    result = run("bench", "--from-json", str(bad), "--csv", str(tmp_path / "x.csv"))
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("nacrith: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()
    assert run("bench").exit_code == 2  # neither FILE nor --from-json


def test_max_bytes_run_writes_every_output(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(bench, "external_programs", lambda: {})  # no cmix/paq8px runs here
    src = tmp_path / "long.txt"
    text = b"The quick brown fox jumps over the lazy dog; the dog does not mind at all.\n" * 6
    src.write_bytes(text)
    out = {ext: tmp_path / f"r.{ext}" for ext in ("json", "csv", "png")}
    result = run("bench", "-q", "-T", THREADS, "--max-bytes", "200", "--json", str(out["json"]),
                 "--csv", str(out["csv"]), "--png", str(out["png"]), str(src))
    assert result.exit_code == 0, result.stderr
    label = f"{src} (first 200 bytes)"
    rows = result.stdout.splitlines()[1:]
    assert rows and all(line.startswith(label) for line in rows)
    env, saved = bench_report.load_json(out["json"])
    assert env["max_bytes"] == 200
    assert {r.original_size for r in saved} == {200} and {r.file for r in saved} == {label}
    assert [r["compressor"] for r in csv.DictReader(out["csv"].open())] == [r.compressor for r in saved]
    png_size(out["png"].read_bytes())


def _model_installed(name: str) -> bool:
    from nacrith import models
    from nacrith.errors import ModelNotFoundError

    try:
        models.resolve(name)
    except ModelNotFoundError:
        return False
    return True


def test_readme_bench_examples_run(tmp_path, monkeypatch, corpora_dir):
    """The bench examples of the README and docs/results.md in order, as written (``$CORPORA``
    is the corpora folder), except that the measuring ones get --max-bytes 100 (the whole files
    take an hour); the --from-json ones then read their JSON."""
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(bench, "external_programs", lambda: {})
    commands = []
    for doc in ("README.md", "docs/results.md"):
        for line in (ROOT / doc).read_text(encoding="utf-8").splitlines():
            line = line.replace("$CORPORA/", "../shared/corpora/")
            if line.startswith(".venv/bin/nacrith bench --") and line not in commands:
                commands.append(line)
    assert any("--from-json" in c for c in commands), "docs lost their 'nacrith bench --from-json' example"
    monkeypatch.chdir(tmp_path)
    for command in commands:
        args = [str(corpora_dir / a[len("../shared/corpora/") :]) if a.startswith("../shared/corpora/") else a for a in shlex.split(command)[1:]]
        if "--model" in args and not _model_installed(args[args.index("--model") + 1]):
            continue  # an optional preset (e.g. the gemma extra) that this machine lacks
        if "--from-json" not in args:
            args += ["--max-bytes", "100", "-q", "-T", THREADS]
        result = run(*args)
        assert result.exit_code == 0, (command, result.stderr)
        for arg in args:
            if arg.endswith((".json", ".csv", ".png")):
                assert (tmp_path / arg).stat().st_size > 0, arg
