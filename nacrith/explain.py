"""``nacrith explain``: where a file costs bits, as one self-contained HTML page.

Why: a single bits-per-byte number hides everything interesting.  Users want to see which
parts of their data the model finds predictable; developers want to see where the model
fails (names, numbers, markup, a change of language).  The page shows the text with every
token shaded from green (cheap) to red (expensive); hovering a token shows what it cost,
what the predictor expected instead (its five most probable tokens) and the probability the
LLM alone and the ensemble gave the token.  A summary gives bits per byte for the whole and
per region, and what the ensemble saved over the LLM alone.

Two parts, kept apart on purpose:

* :func:`token_records` is the **only** place that asks for probabilities.  It runs the
  encoder's own steps (``Engine.stream_rows``: the same streams and sliding window, so a
  token's context is the context it is coded in; a fresh ensemble state per stream that sees
  every symbol in order) and reads the coder's integer frequency of each symbol.
* :func:`render_html` turns records into the page: inline CSS and a little JavaScript, no
  external resources, every piece of the input HTML-escaped, bytes that are not printable
  text shown as ``\\xNN``.

Costs are what the arithmetic coder spends, ``log2(2**24 / freq)`` for the symbol's integer
frequency ``freq``; an escaped byte costs its escape symbol plus 8 raw bits.  So the page's
total is the size of the coded payload, up to the coder's flush and the archive's framing.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import cdf
from .codec import ESCAPE_BITS, Engine, Layout, NumericConfig, Progress
from .ensemble import EnsembleConfig

DEFAULT_MAX_BYTES = 20000  # the model runs at about a hundred tokens per second on a CPU
DEFAULT_REGION_BYTES = 1024
TOP_ALTERNATIVES = 5
# No token costs more than the coder's smallest frequency allows (every symbol gets one).
MAX_TOKEN_BITS = float(cdf.TOTAL_BITS)
ESCAPE_LABEL = "(escape: a raw byte follows)"
# Names of the predictors in TokenRecord.probabilities, on the page and in the tooltips.
LLM_ALONE = "LLM alone"
ENSEMBLE = "ensemble"
# Shown on the page: which predictor token_records followed (filled by source_note).
SOURCE_NOTE = "Predictor: {}, as the encoder codes it."
SPECIAL_LABEL = "(special token {})"
_SPECIAL = re.compile(r"\(special token \d+\)")


@dataclass
class TokenRecord:
    """One coded symbol: what it covers, what it cost, and what the predictor expected."""

    start: int  # byte span [start, end) of the input
    end: int
    symbol: int  # token id, or n_vocab + byte for an escaped byte
    text: str  # the bytes for display (undecodable or control bytes as \xNN)
    bits: float  # what the coder spends: log2(2**24 / freq), + 8 for an escaped byte
    probability: float  # of the token (of the escape symbol for an escaped byte), predictor used
    alternatives: list[tuple[str, float]]  # the predictor's most probable tokens, best first
    # Probability each predictor gave the coded token: {LLM_ALONE: p} or {LLM_ALONE: p, ENSEMBLE: p}.
    shares: dict[str, float] = field(default_factory=dict)
    escaped: bool = False  # a raw byte coded as the escape symbol plus 8 bits
    llm_bits: float = 0.0  # what the coder would spend with the LLM alone (= bits without ensemble)


def source_note(ensemble: EnsembleConfig) -> str:
    """The page's line on which predictor the costs come from."""
    if not ensemble.enabled:
        return SOURCE_NOTE.format("the language model alone")
    return SOURCE_NOTE.format(f"the language model mixed with the ensemble ({ensemble.describe()})")


# -- probabilities: the one function that knows where they come from ------------------------


def token_records(
    engine: Engine,
    data: bytes,
    layout: Layout = Layout(),
    *,
    numeric: NumericConfig = NumericConfig(),
    top: int = TOP_ALTERNATIVES,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> list[TokenRecord]:
    """Per symbol of ``data``: byte span, the coder's bits, the ``top`` alternatives and the
    probability each predictor gave the symbol, as the encoder with ``layout`` codes it.

    Streams are explained as one segment each (``layout.segments`` is ignored): with more,
    the costs differ only near each segment's start, where the LLM starts cold."""
    layout = layout.replace(segments=1).check()
    tokenizer = engine.tokenizer
    records: list[TokenRecord] = []
    work = np.empty(engine.n_vocab, dtype=np.float64)
    with engine.lock:
        symbols = tokenizer.encode(data)
        if on_total:
            on_total(len(symbols))
        if not len(symbols):
            return records
        layout = engine.fit_calls(layout, numeric)  # the rows the encoder codes with
        ctx = engine.context(layout.window, numeric)
        offset = 0
        for s in range(0, len(symbols), layout.stream_tokens):
            stream = symbols[s : s + layout.stream_tokens]
            # The ensemble learns as it goes: like the encoder's, it starts fresh for each
            # stream and must see every symbol of it, in order.
            mixer = engine.new_mixer(layout, len(stream))
            for k, row in engine.stream_rows(ctx, stream, layout, progress):
                sym = int(stream[k])
                raw = tokenizer.symbol_bytes(sym)
                records.append(_record(engine, mixer, row, sym, raw, offset, top, work))
                offset += len(raw)
    return records


def _record(engine: Engine, mixer, row: np.ndarray, sym: int, raw: bytes, offset: int, top: int,
            work: np.ndarray) -> TokenRecord:
    n_vocab, escape = engine.n_vocab, engine.tokenizer.escape_token
    escaped = sym >= n_vocab
    token = escape if escaped else sym
    extra = ESCAPE_BITS if escaped else 0
    # The LLM alone, exactly as the coder would quantise it; cdf leaves its weights in work.
    _, freq = cdf.interval_from_logits(row, token, work)
    llm_bits = cdf.TOTAL_BITS - math.log2(freq) + extra
    p_llm = float(work[token] / work[:n_vocab].sum())
    shares = {LLM_ALONE: p_llm}
    if mixer is not None:
        # The coded interval; the ensemble leaves its final weights in work (and learns).
        _, freq = mixer.encode(row, token, work)
    p = work[:n_vocab] / work[:n_vocab].sum()
    prob = float(p[token])
    if mixer is not None:
        shares[ENSEMBLE] = prob
    best = np.argpartition(p, -top)[-top:]
    best = best[np.argsort(-p[best], kind="stable")]
    alternatives = [(_alternative_text(engine, int(t), escape), float(p[t])) for t in best]
    return TokenRecord(
        start=offset, end=offset + len(raw), symbol=sym, text=display_text(raw, escaped),
        bits=cdf.TOTAL_BITS - math.log2(freq) + extra, probability=prob, alternatives=alternatives,
        shares=shares, escaped=escaped, llm_bits=llm_bits,
    )


def _alternative_text(engine: Engine, token: int, escape: int) -> str:
    if token == escape:
        return ESCAPE_LABEL
    piece = engine.tokenizer.pieces[token]
    # Control tokens spell no bytes; the model may still expect one (never coded in our streams).
    return display_text(piece) if piece else SPECIAL_LABEL.format(token)


# -- display text ---------------------------------------------------------------------------


def display_text(raw: bytes, escaped: bool = False) -> str:
    """Bytes as text a page can show: UTF-8 where valid, ``\\xNN`` for undecodable bytes,
    escaped bytes and control characters (tab, newline and carriage return stay)."""
    if escaped:
        return "".join(f"\\x{b:02x}" for b in raw)
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(
        f"\\x{ord(c):02x}" if (ord(c) < 0x20 and c not in "\t\n\r") or ord(c) == 0x7F else c for c in text
    )


def _quoted(text: str) -> str:
    """A token for the tooltip: quoted, with whitespace visible."""
    return '"' + text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _percent(p: float) -> str:
    if p >= 0.001:
        return f"{100 * p:.1f}%"
    return f"{p:.1e}"


# -- regions --------------------------------------------------------------------------------


@dataclass
class Region:
    """Consecutive tokens, ending at a line end once about ``region_bytes`` are covered."""

    index: int
    first: int  # index of the first token
    last: int  # index after the last token
    start: int  # byte span
    end: int
    first_line: int  # 1-based lines
    last_line: int
    bits: float

    @property
    def bits_per_byte(self) -> float:
        return self.bits / (self.end - self.start) if self.end > self.start else 0.0


def regions(records: list[TokenRecord], data: bytes, region_bytes: int = DEFAULT_REGION_BYTES) -> list[Region]:
    """Cut the tokens into regions of about ``region_bytes``, at line ends where the data has
    them (at most twice that size otherwise)."""
    out: list[Region] = []
    first = 0
    for k, rec in enumerate(records):
        size = rec.end - records[first].start
        last_token = k == len(records) - 1
        if last_token or (size >= region_bytes and rec.text.endswith("\n")) or size >= 2 * region_bytes:
            start, end = records[first].start, rec.end
            first_line = data.count(b"\n", 0, start) + 1
            last_line = first_line + data.count(b"\n", start, max(start, end - 1))
            bits = math.fsum(r.bits for r in records[first : k + 1])
            out.append(Region(len(out), first, k + 1, start, end, first_line, last_line, bits))
            first = k + 1
    return out


# -- the page -------------------------------------------------------------------------------

SHADES = 16  # colour classes, green to red
_SCALE_BITS = 16.0  # tokens of this many bits or more get the reddest shade


def shade(bits: float) -> int:
    """Colour class of a cost: logarithmic, so 0.1 and 1 bit differ as much as 4 and 16."""
    t = math.log2(1 + max(0.0, bits)) / math.log2(1 + _SCALE_BITS)
    return min(SHADES - 1, int(t * SHADES))


def _shade_css() -> str:
    rules = []
    for k in range(SHADES):
        hue = 120 * (1 - k / (SHADES - 1))
        rules.append(f".c{k}{{background:hsl({hue:.0f},70%,{84 - 6 * k / (SHADES - 1):.0f}%)}}")
    return "\n".join(rules)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{padding:12px 20px 6px}
h1{font-size:18px;margin:0 0 4px}
.note{color:#555;margin:2px 0 8px;max-width:75em}
.row{display:flex;flex-wrap:wrap;align-items:flex-end;gap:12px 40px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{padding:1px 10px 1px 0;text-align:right}
th:first-child,td:first-child{text-align:left}
.summary td{font-size:16px;font-weight:600}
.summary th,.regions th{font-weight:normal;color:#555;font-size:12px}
.legend{display:flex;gap:2px;align-items:center;font-size:12px;color:#444}
.legend span{padding:1px 6px;border-radius:3px}
.cols{display:flex;align-items:flex-start;gap:20px;padding:0 20px;border-top:1px solid #ddd}
#text{flex:1;min-width:0;margin:0;padding:12px 0 40px;white-space:pre-wrap;overflow-wrap:anywhere;
  font:14px/1.6 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
aside{flex:none;width:390px;position:sticky;top:0;max-height:100vh;overflow:auto;padding:10px 0}
@media (max-width:900px){.cols{flex-direction:column-reverse}aside{position:static;width:auto;max-height:none}}
#detail{background:#fff;border:1px solid #ccc;border-radius:4px;padding:6px 10px;min-height:9em}
#detail .head{font-size:12px;color:#666}
#detail.pinned .head::after{content:" (pinned: click the token again to release)"}
#detail-text{margin:4px 0 0;font:13px/1.35 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap}
details{margin:10px 0 0}
summary{font-size:13px;color:#333;cursor:pointer}
.regions td{font-size:12px}
.bar{display:inline-block;height:9px;background:#7a8fb8;border-radius:2px}
.t{border-radius:2px;cursor:default}
.t.on{outline:2px solid #1b1b1b}
.nl::before{content:"\\21b5";color:#777;font-size:11px}
.esc{font-style:italic;border-bottom:1px dotted #555}
"""

_JS = """
(function () {
  var text = document.getElementById("text");
  var panel = document.getElementById("detail");
  var body = document.getElementById("detail-text");
  var spans = text.querySelectorAll(".t");
  // The panel shows the tooltip text, so the browser's own tooltip would only repeat it.
  for (var i = 0; i < spans.length; i++) {
    spans[i].setAttribute("data-tip", spans[i].title);
    spans[i].removeAttribute("title");
  }
  var shown = null, pinned = null;
  function show(el) {
    if (shown) shown.classList.remove("on");
    shown = el;
    el.classList.add("on");
    body.textContent = el.getAttribute("data-tip");
  }
  text.addEventListener("mouseover", function (e) {
    var el = e.target.closest(".t");
    if (el && !pinned) show(el);
  });
  text.addEventListener("click", function (e) {
    var el = e.target.closest(".t");
    if (!el) return;
    pinned = pinned === el ? null : el;
    panel.classList.toggle("pinned", pinned !== null);
    show(el);
  });
  var worst = document.getElementById(text.getAttribute("data-worst") || "");
  if (worst) show(worst);
})();
"""


def tooltip(rec: TokenRecord) -> str:
    """What hovering a token shows: cost, byte span, the predictor's alternatives and the
    probability each predictor (the LLM alone, the ensemble) gave the token."""
    if rec.escaped:
        head = (f"{rec.bits:.2f} bits for escaped byte {rec.text}: escape symbol "
                f"(p = {_percent(rec.probability)}) + {ESCAPE_BITS} raw bits")
    else:
        head = f"{rec.bits:.2f} bits for {_quoted(rec.text)} (p = {_percent(rec.probability)})"
    lines = [head, f"bytes {rec.start:,}-{rec.end:,}", f"the model's top {len(rec.alternatives)}:"]
    width = max((len(_quoted(t)) for t, _ in rec.alternatives), default=0)
    for text, p in rec.alternatives:
        shown = text if text == ESCAPE_LABEL or _SPECIAL.fullmatch(text) else _quoted(text)
        lines.append(f"  {shown.ljust(width)}  {_percent(p):>7}")
    lines.append("p(token): " + ", ".join(f"{name} {_percent(p)}" for name, p in rec.shares.items()))
    return "\n".join(lines)


def _legend() -> str:
    cells = []
    for bits in (0, 0.5, 1, 2, 4, 8, _SCALE_BITS):
        label = f"{bits:g}+" if bits == _SCALE_BITS else f"{bits:g}"
        cells.append(f'<span class="c{shade(bits)}">{label}</span>')
    return f'<div class="legend">bits per token: {"".join(cells)}</div>'


def _format_bpb(bits: float, n_bytes: int) -> str:
    return f"{bits / n_bytes:.3f}" if n_bytes else "-"


def _comparison(records: list[TokenRecord], n_bytes: int, total_bits: float) -> str:
    """One line: the coder's total with the LLM alone against the ensemble (both computed anyway)."""
    llm_bits = math.fsum(r.llm_bits for r in records)
    saved = 100 * (llm_bits - total_bits) / llm_bits if llm_bits else 0.0
    return (f'<p class="note" id="llm-vs-ensemble">LLM alone: <span id="llm-bits">{llm_bits:,.1f}</span> bits '
            f"({_format_bpb(llm_bits, n_bytes)} bpb); with the ensemble: {total_bits:,.1f} bits "
            f"({_format_bpb(total_bits, n_bytes)} bpb), {abs(saved):.1f}% {'fewer' if saved >= 0 else 'more'}.</p>")


def render_html(
    records: list[TokenRecord],
    data: bytes,
    *,
    name: str,
    total_size: int | None = None,
    about: str = "",
    region_bytes: int = DEFAULT_REGION_BYTES,
    ensemble: EnsembleConfig | None = None,
) -> str:
    """The self-contained report page for ``records`` of ``data`` (the explained bytes).

    ``name`` titles the page; ``total_size`` is the whole file's size when only its start was
    explained; ``about`` is one line on how the costs were computed (model, layout);
    ``ensemble`` is the layout's ensemble the records were made with, described on the page
    (None: the page only says whether the records used one).
    """
    esc = html.escape
    n_bytes = records[-1].end if records else 0
    total_bits = math.fsum(r.bits for r in records)
    mixed = any(ENSEMBLE in r.shares for r in records)
    if ensemble is not None:
        note = source_note(ensemble)
    else:
        note = SOURCE_NOTE.format("the language model mixed with the ensemble" if mixed else "the language model alone")
    parts = regions(records, data, region_bytes)
    scope = f"{n_bytes:,} bytes"
    if total_size is not None and total_size > n_bytes:
        scope = f"the first {n_bytes:,} of {total_size:,} bytes"

    out = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>nacrith explain: {esc(name)}</title>",
        f"<style>{_CSS}{_shade_css()}\n</style></head><body>\n<header>",
        f"<h1>nacrith explain: <code>{esc(name)}</code></h1>",
        f'<p class="note">{esc(scope[0].upper() + scope[1:])}. Each token is shaded by the bits the '
        f"arithmetic coder spends on it, log<sub>2</sub>(2<sup>{cdf.TOTAL_BITS}</sup> / its integer "
        f"frequency) (an escaped byte: its escape symbol plus {ESCAPE_BITS} raw bits); the archive adds "
        f"the coder's flush and framing. {esc(note)} {esc(about)}</p>",
        '<div class="row"><table class="summary"><tr><th>bytes</th><th>tokens</th><th>total bits</th>'
        "<th>bits per byte</th></tr>",
        f'<tr><td id="total-bytes">{n_bytes:,}</td><td id="total-tokens">{len(records):,}</td>'
        f'<td id="total-bits">{total_bits:,.1f}</td><td id="total-bpb">{_format_bpb(total_bits, n_bytes)}</td>'
        "</tr></table>",
        _legend(),
        "</div>",
    ]
    if mixed:
        out.append(_comparison(records, n_bytes, total_bits))
    out.append("</header>")
    # The side column: the token panel, then the regions (it stays in view while scrolling).
    side = ['<aside><div id="detail"><div class="head">token under the mouse (click to pin); '
            'first shown: the most expensive</div><pre id="detail-text"></pre></div>']
    if parts:
        top = max(r.bits_per_byte for r in parts) or 1.0
        side.append(f"<details open><summary>bits per byte by region ({len(parts)} of about "
                    f"{region_bytes:,} bytes, cut at line ends)</summary>")
        side.append('<table class="regions"><tr><th>region</th><th>bytes</th><th>bits</th>'
                    "<th>bpb</th><th></th></tr>")
        for r in parts:
            lines = f"line {r.first_line}" if r.first_line == r.last_line else f"lines {r.first_line}-{r.last_line}"
            side.append(
                f'<tr><td><a href="#r{r.index}">{lines}</a></td><td>{r.end - r.start:,}</td>'
                f"<td>{r.bits:,.1f}</td><td>{r.bits_per_byte:.3f}</td>"
                f'<td><span class="bar" style="width:{100 * r.bits_per_byte / top:.0f}px"></span></td></tr>'
            )
        side.append("</table></details>")
    side.append("</aside>")
    out.append('<div class="cols">')
    worst = max(range(len(records)), key=lambda k: records[k].bits, default=None)
    out.append(f'<pre id="text" data-worst="{"" if worst is None else f"t{worst}"}">')
    starts = {r.first: r.index for r in parts}
    for k, rec in enumerate(records):
        if k in starts:
            out.append(f'<a id="r{starts[k]}"></a>')
        classes = f"t c{shade(rec.bits)}"
        if rec.escaped:
            classes += " esc"
        if rec.text[:1] in ("\n", "\r"):
            classes += " nl"  # a line break alone is invisible: mark it (not copied with the text)
        # HTML turns a carriage return into a line break unless an LF follows in the same
        # text, and tokens split CR from LF: so CRs are left out of the shown text (the
        # tooltip still shows them).
        shown = esc(rec.text.replace("\r", ""))
        out.append(f'<span id="t{k}" class="{classes}" title="{esc(tooltip(rec))}">{shown}</span>')
    out.append("</pre>")
    out.extend(side)
    out.append(f"</div>\n<script>{_JS}</script>\n</body></html>\n")
    return "".join(out)
