"""`nacrith bench --ablation`: one LLM pass, every ensemble variant, real archive sizes."""

from __future__ import annotations

import dataclasses
import os

import pytest
from click.testing import CliRunner

from nacrith import ablation, cli, models
from nacrith.codec import ENSEMBLE_MIN_BYTES, Layout
from nacrith.ensemble import LLM_ONLY

TEXT = b"".join(
    b"<li class=\"entry\"><a href=\"/wiki/Item_%d\">Item %d</a> - added by user%d</li>\n" % (i, i, i % 3)
    for i in range(30)
)  # over codec.ENSEMBLE_MIN_BYTES, so compress uses the default ensemble as asked


@pytest.fixture(scope="module")
def rows(codec):
    return ablation.ablation(codec.engine(models.resolve(None)), TEXT, Layout())


def test_rows_are_the_sizes_compress_writes(codec, rows):
    # Each variant's archive is framed as compress frames a model-coded archive.
    assert len(TEXT) >= ENSEMBLE_MIN_BYTES
    assert [r.name for r in rows] == [name for name, _ in ablation.STEPS]
    for r, (_, config) in [(rows[0], ablation.STEPS[0]), (rows[-1], ablation.STEPS[-1])]:
        archive = codec.compress(TEXT, ensemble=config, fallback=False)
        assert r.archive_size == len(archive), r.name
        assert r.original_size == len(TEXT) and r.tokens > 0 and r.seconds > 0


def test_streams_and_blocks_are_honoured(codec, rows):
    layout = Layout(block_tokens=16, stream_tokens=32)
    small = ablation.ablation(codec.engine(models.resolve(None)), TEXT, layout, steps=ablation.STEPS[:1])
    for r, (_, config) in zip(small, ablation.STEPS[:1]):
        archive = codec.compress(TEXT, layout=dataclasses.replace(layout, ensemble=config), fallback=False)
        assert r.archive_size == len(archive)
    assert small[0].archive_size != rows[0].archive_size


def test_format_rows_is_a_markdown_table(rows):
    table = ablation.format_rows("x", rows).splitlines()
    assert table[0].startswith("| file |") and len(table) == 2 + len(rows)
    assert "+0.00 %" in table[2] and all(line.count("|") == 7 for line in table)


def test_cli_ablation_prints_one_table(tmp_path):
    src = tmp_path / "page.html"
    src.write_bytes(TEXT)
    result = CliRunner().invoke(
        cli.main, ["bench", "--ablation", "-q", "-T", os.environ.get("NACRITH_TEST_THREADS", "2"), "--max-bytes", "200", str(src)]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(ablation.STEPS)
    assert "(first 200 bytes)" in lines[2]
    assert LLM_ONLY.describe() == "LLM alone"
