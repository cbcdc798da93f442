"""``nacrith explain``: where a file costs bits, as one self-contained HTML page.

Why: a single bits-per-byte number hides everything interesting.  Users want to see which
parts of their data the model finds predictable; developers want to see where the model
fails (names, numbers, markup, a change of language).  The page shows the text with every
token shaded from green (cheap) to red (expensive); hovering a token shows what it cost,
what the model expected instead (its five most probable tokens) and, once the codec mixes
several predictors, each one's share of the prediction.  A summary gives bits per byte for
the whole and per region.

Two parts, kept apart on purpose:

* :func:`token_records` is the **only** place that asks for probabilities.  Today it runs
  the LLM alone over the same streams and sliding window as the encoder (so a token's
  context is the context it is coded in) and takes a float64 softmax of each row of logits.
  When the codec's prediction changes (the ensemble), only this function changes.
* :func:`render_html` turns records into the page: inline CSS and a little JavaScript, no
  external resources, every piece of the input HTML-escaped, bytes that are not printable
  text shown as ``\\xNN``.

Costs are the model's ideal code lengths, ``-log2 p``; an escaped byte costs its escape
symbol plus 8 raw bits.  The archive adds its integer rounding and framing on top.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from . import cdf
from .codec import ESCAPE_BITS, Engine, Layout, NumericConfig, Progress

DEFAULT_MAX_BYTES = 20000  # the model runs at about a hundred tokens per second on a CPU
DEFAULT_REGION_BYTES = 1024
TOP_ALTERNATIVES = 5
# No token costs more than the coder's smallest frequency allows (every symbol gets one).
MAX_TOKEN_BITS = float(cdf.TOTAL_BITS)
ESCAPE_LABEL = "(escape: a raw byte follows)"
# Shown on the page: where token_records' probabilities come from.
SOURCE_NOTE = "Probabilities from the language model alone."
SPECIAL_LABEL = "(special token {})"
_SPECIAL = re.compile(r"\(special token \d+\)")


@dataclass
class TokenRecord:
    """One coded symbol: what it covers, what it cost, and what the model expected."""

    start: int  # byte span [start, end) of the input
    end: int
    symbol: int  # token id, or n_vocab + byte for an escaped byte
    text: str  # the bytes for display (undecodable or control bytes as \xNN)
    bits: float
    probability: float  # of the token, or of the escape symbol for an escaped byte
    alternatives: list[tuple[str, float]]  # the model's most probable tokens, best first
    shares: dict[str, float] = field(default_factory=lambda: {"llm": 1.0})  # predictor -> weight
    escaped: bool = False  # a raw byte coded as the escape symbol plus 8 bits


# -- probabilities: the one function that knows where they come from ------------------------


def _stream_logits(engine: Engine, ctx, stream: np.ndarray, layout: Layout) -> Iterator[np.ndarray]:
    """Batches of logit rows for a stream, row k predicting symbol k, exactly as the encoder
    computes them (start token, the same window slides, escapes seen as the escape token)."""
    inputs = np.concatenate(([engine.start_token], engine.llm_tokens(stream[:-1])))
    ctx.clear()
    pos = i = 0
    while i < len(inputs):
        if pos == layout.window:
            ctx.slide(0, layout.sinks, layout.slide, layout.window)
            pos -= layout.slide
        n = min(ctx.n_batch, layout.window - pos, len(inputs) - i)
        yield ctx.decode(inputs[i : i + n], pos)
        pos += n
        i += n


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
    """Per symbol of ``data``: byte span, bits, the model's ``top`` alternatives and shares.

    Uses the LLM alone (shares ``{"llm": 1.0}``), a float64 softmax of each row of logits.
    """
    layout.check()
    tokenizer = engine.tokenizer
    n_vocab, escape = engine.n_vocab, tokenizer.escape_token
    records: list[TokenRecord] = []
    with engine.lock:
        symbols = tokenizer.encode(data)
        if on_total:
            on_total(len(symbols))
        if not len(symbols):
            return records
        ctx = engine.context(layout.window, numeric)
        offset = 0
        for s in range(0, len(symbols), layout.stream_tokens):
            stream = symbols[s : s + layout.stream_tokens]
            k = 0
            for rows in _stream_logits(engine, ctx, stream, layout):
                for row in rows:
                    sym = int(stream[k])
                    k += 1
                    raw = tokenizer.symbol_bytes(sym)
                    records.append(_record(engine, row, sym, raw, offset, top, escape, n_vocab))
                    offset += len(raw)
                if progress:
                    progress(len(rows))
    return records


def _record(engine: Engine, row: np.ndarray, sym: int, raw: bytes, offset: int, top: int,
            escape: int, n_vocab: int) -> TokenRecord:
    z = row.astype(np.float64)
    z[~np.isfinite(z)] = -np.inf  # as in cdf: a non-finite logit means probability 0
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    escaped = sym >= n_vocab
    prob = float(p[escape if escaped else sym])
    bits = min(MAX_TOKEN_BITS, -math.log2(prob) if prob > 0 else MAX_TOKEN_BITS)
    if escaped:
        bits += ESCAPE_BITS
    best = np.argpartition(p, -top)[-top:]
    best = best[np.argsort(-p[best], kind="stable")]
    alternatives = [(_alternative_text(engine, int(t), escape), float(p[t])) for t in best]
    return TokenRecord(
        start=offset, end=offset + len(raw), symbol=sym, text=display_text(raw, escaped), bits=bits,
        probability=prob, alternatives=alternatives, escaped=escaped,
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
    """What hovering a token shows: cost, byte span, the model's alternatives, the shares."""
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
    lines.append("shares: " + ", ".join(f"{name} {100 * share:.0f}%" for name, share in rec.shares.items()))
    return "\n".join(lines)


def _legend() -> str:
    cells = []
    for bits in (0, 0.5, 1, 2, 4, 8, _SCALE_BITS):
        label = f"{bits:g}+" if bits == _SCALE_BITS else f"{bits:g}"
        cells.append(f'<span class="c{shade(bits)}">{label}</span>')
    return f'<div class="legend">bits per token: {"".join(cells)}</div>'


def _format_bpb(bits: float, n_bytes: int) -> str:
    return f"{bits / n_bytes:.3f}" if n_bytes else "-"


def render_html(
    records: list[TokenRecord],
    data: bytes,
    *,
    name: str,
    total_size: int | None = None,
    about: str = "",
    region_bytes: int = DEFAULT_REGION_BYTES,
) -> str:
    """The self-contained report page for ``records`` of ``data`` (the explained bytes).

    ``name`` titles the page; ``total_size`` is the whole file's size when only its start was
    explained; ``about`` is one line on how the costs were computed (model, layout).
    """
    esc = html.escape
    n_bytes = records[-1].end if records else 0
    total_bits = math.fsum(r.bits for r in records)
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
        f'<p class="note">{esc(scope[0].upper() + scope[1:])}. Each token is shaded by the bits it costs, '
        f"&minus;log<sub>2</sub> of the probability the model gave it (an escaped byte: its escape "
        f"symbol plus {ESCAPE_BITS} raw bits); the archive adds rounding and framing. "
        f"{esc(SOURCE_NOTE)} {esc(about)}</p>",
        '<div class="row"><table class="summary"><tr><th>bytes</th><th>tokens</th><th>total bits</th>'
        "<th>bits per byte</th></tr>",
        f'<tr><td id="total-bytes">{n_bytes:,}</td><td id="total-tokens">{len(records):,}</td>'
        f'<td id="total-bits">{total_bits:,.1f}</td><td id="total-bpb">{_format_bpb(total_bits, n_bytes)}</td>'
        "</tr></table>",
        _legend(),
        "</div></header>",
    ]
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
