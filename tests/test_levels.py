"""Compression levels (``--fast``, default, ``--best``): what each writes, that the header
records it, that options override it, and that every level's archive decodes."""

from __future__ import annotations

import io
import os

import pytest
from click.testing import CliRunner

import nacrith
from nacrith import api, bench, bench_report, cli, container, levels, models
from nacrith.codec import Layout
from nacrith.ensemble import LLM_ONLY
from nacrith.errors import ModelNotFoundError

THREADS = int(os.environ.get("NACRITH_TEST_THREADS", "2"))
# Past ENSEMBLE_MIN_BYTES, so that the default level codes with its ensemble.
TEXT = (
    b"Levels are presets, as in gzip, xz and zstd: the fast one trades a few percent of size "
    b"for speed, the best one spends time for the smallest archive. "
) * 20


def installed(level: levels.Level) -> bool:
    try:
        models.resolve(level.model)
    except ModelNotFoundError:
        return False
    return True


def header(blob: bytes) -> container.CodecParams:
    return container.read_info(io.BytesIO(blob)).header.params


def test_names_and_numbers():
    assert levels.NAMES == ("fast", "default", "best")
    assert [levels.get(n).number for n in levels.NAMES] == [
        container.LEVEL_FAST, container.LEVEL_DEFAULT, container.LEVEL_BEST
    ]
    assert levels.get(None) is levels.DEFAULT and levels.DEFAULT.layout == Layout()
    assert levels.get(levels.BEST) is levels.BEST
    with pytest.raises(ValueError, match="fast, default, best"):
        levels.get("ultra")
    for level in levels.LEVELS.values():
        level.layout.check()
        assert container.LEVEL_NAMES[level.number] == level.name


def test_levels_differ_where_they_say():
    assert levels.FAST.layout.window < levels.DEFAULT.layout.window < levels.BEST.layout.window
    assert levels.FAST.layout.ensemble == LLM_ONLY
    assert levels.BEST.layout.segments == 1


@pytest.mark.parametrize("name", levels.NAMES)
def test_each_level_round_trips_and_records_itself(name, codec):
    level = levels.get(name)
    if not installed(level):
        pytest.skip(f"level {name} needs the model {level.model}")
    c = api.Codec(level=name, execution=codec.execution, loaded=codec.loaded)
    blob = c.compress(TEXT, fallback=False)
    params = header(blob)
    assert params.level == level.number
    assert (params.window, params.slide, params.segments) == (
        level.layout.window, level.layout.slide, 1  # 3 KB: one segment whatever the level asks
    )
    assert bool(params.ensemble) == level.layout.ensemble.enabled
    assert c.decompress(blob) == TEXT
    assert codec.decompress(blob) == TEXT  # a decoder needs no level: the header says everything
    assert f"level:" in container.format_info(container.read_info(io.BytesIO(blob)))


def test_default_level_writes_no_level_key(codec):
    blob = codec.compress(TEXT, fallback=False)
    assert header(blob).level == container.LEVEL_DEFAULT
    fast = api.Codec(level="fast", execution=codec.execution, loaded=codec.loaded).compress(
        TEXT, fallback=False, window=1024, slide=256, ensemble=codec.layout.ensemble
    )
    # The same settings as the default but for the level: the key costs exactly 3 bytes.
    assert len(fast) == len(blob) + 3 and header(fast).level == container.LEVEL_FAST


def test_library_level_keyword(codec):
    blob = nacrith.compress(TEXT, level="fast", threads=THREADS)
    assert header(blob).level == container.LEVEL_FAST and header(blob).window == levels.FAST.layout.window
    assert nacrith.decompress(blob, threads=THREADS) == TEXT
    with pytest.raises(ValueError, match="level or a layout"):
        api.Codec(level="fast", layout=Layout())
    with pytest.raises(ValueError, match="level must be one of"):
        api.Codec(level="fastest")
    assert api.Codec(level="fast", window=512).layout == levels.FAST.layout.replace(window=512)


def _layout_of(*args: str) -> tuple[str | None, Layout]:
    seen = {}

    def fake(model, layout, execution, native=False):
        seen["model"], seen["layout"] = model, layout
        raise SystemExit(0)

    original = cli._codec
    cli._codec = fake
    try:
        result = CliRunner().invoke(cli.main, ["compress", *args, "-c", os.devnull])
    finally:
        cli._codec = original
    assert result.exit_code == 0, result.output
    return seen["model"], seen["layout"]


def test_cli_level_options_and_overrides():
    assert _layout_of()[1] == Layout()
    assert _layout_of("--fast")[1] == levels.FAST.layout
    assert _layout_of("--level", "fast")[1] == levels.FAST.layout
    model, best = _layout_of("--best")
    assert best == levels.BEST.layout and model == levels.BEST.model
    assert _layout_of("--best", "--window", "4096")[1] == levels.BEST.layout.replace(window=4096)
    assert _layout_of("--fast", "--ensemble", "on")[1].ensemble == Layout().ensemble
    assert _layout_of("--best", "--model", "x.gguf")[0] == "x.gguf"
    # Smaller blocks: one segment, as without a level.
    assert _layout_of("--block-tokens", "1024")[1].segments == 1
    result = CliRunner().invoke(cli.main, ["compress", "--level", "ultra", "-c", os.devnull])
    assert result.exit_code == 2 and "ultra" in result.output


def test_bench_compares_levels(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "external_programs", lambda: {})
    src = tmp_path / "t.txt"
    src.write_bytes(TEXT)
    doc = tmp_path / "r.json"
    result = CliRunner().invoke(
        cli.main, ["bench", "-q", "-T", str(THREADS), "--levels", "fast,default", "--max-bytes", "600",
                   "--json", str(doc), str(src)]
    )
    assert result.exit_code == 0, result.output
    env, rows = bench_report.load_json(doc)
    nacriths = [r for r in rows if bench.is_nacrith(r.compressor)]
    assert [r.compressor for r in nacriths] == ["nacrith --fast", "nacrith"]
    # Each level's own layout is recorded, not only the plain codec's.
    assert env["levels"]["nacrith --fast"]["window"] == levels.FAST.layout.window
    assert env["levels"]["nacrith"]["window"] == levels.DEFAULT.layout.window != levels.FAST.layout.window
    assert all(r.ok and r.original_size == 600 for r in nacriths)
    assert "nacrith --fast" in result.stdout
    bad = CliRunner().invoke(cli.main, ["bench", "--levels", "fast,ultra", str(src)])
    assert bad.exit_code == 2 and "--levels" in bad.output


def test_filter_mode_passes_levels_to_compress():
    assert cli.filter_args(["--best", "f.txt"]) == ["compress", "--best", "f.txt"]
    assert cli.filter_args(["--level", "fast"]) == ["compress", "-q", "--level", "fast"]
