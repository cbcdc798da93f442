"""``nacrith explain``: token records, the HTML page, the command, and a real browser.

One ~200-byte input (with markup to escape, a tab, CRLF and an undecodable byte) is run
through the model twice per module, with the default layout (the LLM mixed with the
ensemble) and with the LLM alone; the page tests work on those records.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import re
import shlex
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from nacrith import cdf, cli, codec, explain
from nacrith.codec import Layout, NumericConfig
from nacrith.ensemble import LLM_ONLY

ROOT = Path(__file__).resolve().parent.parent
THREADS = os.environ.get("NACRITH_TEST_THREADS", "2")
CHROMIUM = "/usr/bin/chromium"

DATA = (
    b"The page must show <script>alert(\"x\")</script> as text & not run it.\r\n"
    b"Alice was beginning to get very tired of sitting by her sister on the bank,\r\n"
    b"\tand of having nothing to do: once or twice \xff she had peeped into the book.\n"
)


LLM_ONLY_LAYOUT = dataclasses.replace(Layout(), ensemble=LLM_ONLY)


@pytest.fixture(scope="module")
def records(engine):
    """With the default layout: the LLM mixed with the ensemble."""
    assert Layout().ensemble.enabled
    return explain.token_records(engine, DATA)


@pytest.fixture(scope="module")
def llm_records(engine):
    return explain.token_records(engine, DATA, LLM_ONLY_LAYOUT)


@pytest.fixture(scope="module")
def page(records):
    return explain.render_html(records, DATA, name="in<put>.txt", total_size=len(DATA) + 50, about="test run",
                               ensemble=Layout().ensemble)


class PageParser(HTMLParser):
    """Collects the token spans (attributes and text) and the elements that have an id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tokens: list[dict] = []
        self.by_id: dict[str, str] = {}
        self.scripts = 0
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of open elements
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "span" and "t" in attrs.get("class", "").split():
            self._current = {"attrs": attrs, "text": ""}
            self.tokens.append(self._current)
        if tag not in ("meta", "br"):
            self._open.append((tag, attrs.get("id")))
            if attrs.get("id"):
                self.by_id.setdefault(attrs["id"], "")

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            self._open.pop()
        if tag == "span":
            self._current = None

    def handle_data(self, data):
        if self._current is not None:
            self._current["text"] += data
        for _, ident in self._open:
            if ident:
                self.by_id[ident] += data


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


# -- records --------------------------------------------------------------------------------


def test_records_cover_the_input_in_order(records, engine):
    assert records[0].start == 0 and records[-1].end == len(DATA)
    for a, b in zip(records, records[1:]):
        assert a.end == b.start
    assert b"".join(engine.tokenizer.symbol_bytes(r.symbol) for r in records) == DATA
    escaped = [r for r in records if r.escaped]
    assert [(r.start, r.text) for r in escaped] == [(DATA.index(b"\xff"), "\\xff")]
    assert escaped[0].bits >= 8  # escape symbol + 8 raw bits


@pytest.mark.parametrize("which", ["records", "llm_records"])
def test_records_carry_the_coders_costs_and_probabilities(which, request, engine):
    """Bits are the coder's exact cost of an integer frequency (at least 1 of 2**24) that is
    the record's probability quantised as cdf does it; alternatives come from the same
    distribution."""
    total, n_vocab = cdf.TOTAL, engine.n_vocab
    for r in request.getfixturevalue(which):
        assert 0 < r.probability <= 1
        coded = r.bits - (8 if r.escaped else 0)
        assert 0 <= coded <= explain.MAX_TOKEN_BITS
        freq = 2 ** (cdf.TOTAL_BITS - coded)
        assert freq == pytest.approx(round(freq), abs=1e-6)
        freq = round(freq)
        # freq = 1 + floor(p * (TOTAL - V)), and the most probable symbol also gets the remainder.
        assert r.probability * (total - n_vocab) * (1 - 1e-9) < freq
        probs = [p for _, p in r.alternatives]
        most_probable = r.probability >= probs[0] * (1 - 1e-12)
        assert freq <= r.probability * (total - n_vocab) * (1 + 1e-9) + 1 + (n_vocab if most_probable else 0)
        assert len(probs) == explain.TOP_ALTERNATIVES
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-9
        # The coded token is among the alternatives exactly when it is at least as likely as
        # the fifth; escapes are listed under their own label.
        if not r.escaped and r.probability > probs[-1] * (1 + 1e-9):
            assert r.text in [t for t, _ in r.alternatives]


def test_records_give_each_predictors_probability(records, llm_records):
    """Both runs see the same logits: the LLM's probability and cost in the ensemble run are
    those of the LLM-alone run, and the ensemble's are the ones coded."""
    assert [r.symbol for r in records] == [r.symbol for r in llm_records]
    for mixed, alone in zip(records, llm_records):
        assert list(alone.shares) == [explain.LLM_ALONE]
        assert alone.shares[explain.LLM_ALONE] == alone.probability
        assert alone.llm_bits == alone.bits
        assert list(mixed.shares) == [explain.LLM_ALONE, explain.ENSEMBLE]
        assert mixed.shares[explain.ENSEMBLE] == mixed.probability
        assert mixed.shares[explain.LLM_ALONE] == pytest.approx(alone.probability, rel=1e-12)
        assert mixed.llm_bits == pytest.approx(alone.bits, abs=1e-12)
    # The ensemble is really used: it moves some probabilities.
    assert any(r.bits != r.llm_bits for r in records)


class RecordingEncoder(codec.ArithmeticEncoder):
    """The codec's encoder, noting the cost of every interval it codes."""

    costs: list[float] = []

    def encode(self, cum_low: int, freq: int) -> None:
        self.costs.append(cdf.TOTAL_BITS - math.log2(freq))
        super().encode(cum_low, freq)


@pytest.mark.parametrize("which", ["records", "llm_records"])
def test_record_costs_match_what_the_encoder_writes(which, request, engine, monkeypatch):
    """The records follow the encoder (contexts, ensemble state, integer frequencies): each
    symbol costs what the encoder's intervals cost (an escape: its symbol, then 8 raw bits),
    and the bits sum to the size of the payload it writes, up to the coder's flush (2 bits +
    padding to a byte) and its range truncation (below 0.025 bit a symbol: the range stays
    above 2**30).  The encoder is called directly: whole archives of a few hundred bytes may
    pick another mode (stored, zstd) instead."""
    records = request.getfixturevalue(which)
    # Records are made as one segment per stream (explain.token_records), so is this stream.
    layout = (Layout() if which == "records" else LLM_ONLY_LAYOUT).replace(segments=1)
    symbols = engine.tokenizer.encode(DATA)
    assert len(symbols) == len(records) <= layout.block_tokens  # one stream, one block
    monkeypatch.setattr(codec, "ArithmeticEncoder", RecordingEncoder)
    monkeypatch.setattr(RecordingEncoder, "costs", [])
    with engine.lock:
        payloads = engine.encode_stream(engine.context(layout.window, NumericConfig()), symbols, layout, None)
    expected = []
    for r in records:
        expected += [r.bits - 8, 8.0] if r.escaped else [r.bits]
    assert RecordingEncoder.costs == pytest.approx(expected, abs=1e-9)
    payload_bits = 8 * sum(len(p) for p in payloads)
    coded = math.fsum(r.bits for r in records)
    assert coded - 8 <= payload_bits <= coded + 2 + 7 + 0.025 * len(records)


def test_streams_restart_the_context(engine, records):
    """With streams of 8 symbols the ninth symbol is predicted from a fresh context."""
    short = explain.token_records(engine, DATA, Layout(block_tokens=8, stream_tokens=8))
    assert [r.symbol for r in short] == [r.symbol for r in records]
    assert [r.bits for r in short[:8]] == pytest.approx([r.bits for r in records[:8]], rel=1e-4)
    assert short[8].bits != pytest.approx(records[8].bits, rel=1e-3)
    assert short[8].bits == pytest.approx(explain.token_records(engine, DATA[short[8].start :])[0].bits, rel=1e-4)


def test_empty_input_gives_an_empty_page(engine):
    assert explain.token_records(engine, b"") == []
    parsed = parse(explain.render_html([], b"", name="empty"))
    assert parsed.tokens == [] and parsed.by_id["total-bpb"] == "-"


def test_display_text_shows_unprintable_bytes_as_hex():
    assert explain.display_text(b"a\tb\r\n") == "a\tb\r\n"
    assert explain.display_text(b"\x00\x1b[0m\x7f") == "\\x00\\x1b[0m\\x7f"
    assert explain.display_text(b"caf\xc3\xa9 \xe2\x82") == "café \\xe2\\x82"
    assert explain.display_text(b"\xff", escaped=True) == "\\xff"


def test_regions_partition_the_tokens_at_line_ends(records):
    parts = explain.regions(records, DATA, region_bytes=60)
    assert len(parts) >= 2
    assert parts[0].first == 0 and parts[-1].last == len(records)
    for a, b in zip(parts, parts[1:]):
        assert a.last == b.first and a.end == b.start
        assert DATA[a.end - 1 : a.end] == b"\n"
    assert math.fsum(p.bits for p in parts) == pytest.approx(math.fsum(r.bits for r in records))
    assert parts[0].first_line == 1 and parts[-1].last_line == DATA.count(b"\n")


# -- the page -------------------------------------------------------------------------------


def test_page_has_one_span_per_token_with_the_text(page, records):
    parsed = parse(page)
    assert len(parsed.tokens) == len(records)
    assert [t["attrs"]["id"] for t in parsed.tokens] == [f"t{k}" for k in range(len(records))]
    shown = "".join(t["text"] for t in parsed.tokens)
    assert shown == "".join(r.text for r in records).replace("\r", "")
    for token, rec in zip(parsed.tokens, records):
        assert f"c{explain.shade(rec.bits)}" in token["attrs"]["class"].split()


def test_page_total_is_the_sum_of_the_token_bits(page, records):
    parsed = parse(page)
    shown = [float(re.match(r"(\d+\.\d\d) bits for ", t["attrs"]["title"]).group(1)) for t in parsed.tokens]
    total = float(parsed.by_id["total-bits"].replace(",", ""))
    assert total == pytest.approx(math.fsum(r.bits for r in records), abs=0.05)
    assert math.fsum(shown) == pytest.approx(total, abs=0.05 + 0.005 * len(shown))
    assert int(parsed.by_id["total-bytes"].replace(",", "")) == len(DATA)
    assert int(parsed.by_id["total-tokens"].replace(",", "")) == len(records)
    assert float(parsed.by_id["total-bpb"]) == pytest.approx(total / len(DATA), abs=0.001)


def _parse_percent(text: str) -> float:
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def test_page_tooltips_list_alternatives_and_each_predictors_probability(page, records):
    parsed = parse(page)
    for token, rec in zip(parsed.tokens, records):
        tip = token["attrs"]["title"]
        line = re.search(r"^p\(token\): LLM alone (\S+), ensemble (\S+)$", tip, re.M)
        assert line, tip
        llm, mixed = (_parse_percent(x) for x in line.groups())
        assert llm == pytest.approx(rec.shares[explain.LLM_ALONE], rel=0.05, abs=0.0006)
        assert mixed == pytest.approx(rec.probability, rel=0.05, abs=0.0006)
        assert tip.count("\n  ") == len(rec.alternatives)
    worst = max(range(len(records)), key=lambda k: records[k].bits)
    assert f'data-worst="t{worst}"' in page


def test_page_compares_the_llm_alone_with_the_ensemble(page, records, llm_records):
    parsed = parse(page)
    llm_bits = float(parsed.by_id["llm-bits"].replace(",", ""))
    assert llm_bits == pytest.approx(math.fsum(r.llm_bits for r in records), abs=0.05)
    assert f"{math.fsum(r.bits for r in records):,.1f} bits" in parsed.by_id["llm-vs-ensemble"]
    assert html.escape(explain.source_note(Layout().ensemble)) in page
    assert Layout().ensemble.describe() in explain.source_note(Layout().ensemble)
    # The LLM alone: no comparison, and the page says so.
    alone = parse(explain.render_html(llm_records, DATA, name="x", ensemble=LLM_ONLY))
    assert "llm-vs-ensemble" not in alone.by_id
    assert "p(token): LLM alone " in alone.tokens[0]["attrs"]["title"]
    assert "ensemble" not in alone.tokens[0]["attrs"]["title"]
    assert html.escape(explain.source_note(LLM_ONLY)) in explain.render_html(llm_records, DATA, name="x")


def test_page_escapes_the_input(page):
    parsed = parse(page)
    assert parsed.scripts == 1  # only the page's own script
    assert "alert" not in page.split("<script>")[-1]
    assert '<script>alert("x")</script>' in "".join(t["text"] for t in parsed.tokens)
    assert "in&lt;put&gt;.txt" in page and "<put>" not in page


def test_page_is_self_contained(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(" not in page


# -- command line ---------------------------------------------------------------------------


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli.main, list(args), input=input)


def test_cli_writes_the_page_and_refuses_to_overwrite(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(DATA)
    result = run("explain", "-T", THREADS, "--max-bytes", "100", str(src))
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "in.txt.html"
    parsed = parse(out.read_text(encoding="utf-8"))
    assert int(parsed.by_id["total-bytes"].replace(",", "")) == 100
    assert "over 100 bytes" in result.stderr
    result = run("explain", "-T", THREADS, str(src))
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert run("explain", "-T", THREADS, "-", input=DATA).exit_code == 2  # stdin needs -o
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "in.txt.html"]


def test_readme_explain_example_runs(tmp_path, monkeypatch, corpora_dir):
    """The README's command as written (``$CORPORA`` is the corpora folder), with a smaller
    --max-bytes (the last one wins)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith(".venv/bin/nacrith explain ")]
    assert commands, "README lost its 'nacrith explain' example"
    monkeypatch.chdir(tmp_path)
    for command in commands:
        args = [str(corpora_dir / a[len("$CORPORA/") :]) if a.startswith("$CORPORA/") else a for a in shlex.split(command)[1:]]
        result = run(*args, "--max-bytes", "150", "-q", "-T", THREADS)
        assert result.exit_code == 0, (command, result.stderr)
        output = args[args.index("-o") + 1]
        assert len(parse((tmp_path / output).read_text(encoding="utf-8")).tokens) > 10


# -- a real browser -------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)")
def test_page_renders_in_headless_chromium(page, tmp_path):
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "bench" / "check_explain.py"), str(report), str(shot)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert shot.stat().st_size > 10_000
