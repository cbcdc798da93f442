"""Segmentation: which parts of a byte string are text worth modelling, and in which encoding.

Pure and model-free: a byte string in, a list of :class:`Region` out, covering every byte once
and in order.  Only the encoder runs this; the regions it chooses are recorded in the hybrid
archive's region table (``formats/container-v1.md``, section 4.2), so the rules below can
change without breaking old archives.

A text region is one the tokenizer will represent well once it is UTF-8, and which can be
converted to UTF-8 and back to exactly the same bytes:

* **UTF-16** (little or big endian, at either byte alignment): maximal runs of code units that
  are text characters (no C0/C1 controls except tab, LF and CR, no unpaired surrogates, no
  U+FFFE/U+FFFF, no unit made of two printable ASCII bytes: that is one-byte text read at the
  wrong width far more often than a CJK character).  Nearly every pair of bytes is some
  character, so a run counts only when its characters come from few 256-code-point blocks, as
  a script's do (at least ``utf16_share`` of them in its two most common blocks), at least
  ``min_letters`` of them are letters or spaces (Unicode categories L* and Zs), and at least
  ``utf16_spaces`` are U+0020 (tables of small numbers read as letters of some script, but
  have no spaces).  It is trimmed to start and end on ASCII or a character of its most common
  block, and a byte-order mark just before it is included.  So UTF-16 in alphabetic scripts
  is found with or without a BOM; CJK text in UTF-16 is not (it stays binary).  When two readings overlap
  (LE text seen one byte later is BE text too) the longer wins, LE on a tie.
* **One-byte text** outside the UTF-16 regions: *pieces* are runs of printable ASCII,
  tab/LF/CR, valid UTF-8 sequences and lone bytes 0xA0-0xFF (Latin-1 letters).  Random data is
  three quarters such bytes, so a piece counts only if it is at least ``min_piece`` bytes long
  with at most ``max_noise`` of it lone high bytes and at least ``min_letters`` of it letters
  (ASCII letters, digits, spaces, multi-byte UTF-8 characters), and so must every merged
  span.  A span that is valid UTF-8 is UTF-8; one whose lone high bytes are at least 4 and
  over three times its valid multi-byte characters is Latin-1 (always reversible; a single valid UTF-8 character is strong evidence of UTF-8);
  otherwise it is UTF-8 and the tokenizer escapes the stray bytes.

Anti-fragmentation: each region costs a few table bytes, and every cut takes the model's
context away from the surrounding text, so

1. pieces separated by at most ``merge_gap`` other bytes become one span (the gap bytes are
   coded in the text: escapes for UTF-8, control characters for Latin-1), kept if at most
   ``max_noise`` of it is gaps and lone high bytes; so do up to ``merge_gap`` bytes between a
   span and the start or end of the input (or a UTF-16 region);
2. text shorter than ``min_text`` bytes is left in the binary data;
3. adjacent binary pieces are one region.

Regions longer than ``max_region`` bytes are cut (the table stores lengths as u32 varints),
at a character boundary for text.
"""

from __future__ import annotations

import bisect
import enum
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

__all__ = ["Kind", "Region", "Rules", "DEFAULT_RULES", "segment", "to_utf8", "from_utf8", "text_bytes"]


class Kind(enum.IntEnum):
    """Region kinds, with the codes the region table stores."""

    BINARY = 0
    UTF8 = 1
    UTF16LE = 2
    UTF16BE = 3
    LATIN1 = 4


#: Python codec of each text kind (the reversible conversion to and from UTF-8).
CODECS = {Kind.UTF8: "utf-8", Kind.UTF16LE: "utf-16-le", Kind.UTF16BE: "utf-16-be", Kind.LATIN1: "latin-1"}
#: Text kinds that are converted: the table records their UTF-8 length too.
TRANSCODED = frozenset((Kind.UTF16LE, Kind.UTF16BE, Kind.LATIN1))


@dataclass(frozen=True)
class Region:
    """Bytes ``[start, end)`` of the input, of one kind."""

    start: int
    end: int
    kind: Kind

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Rules:
    """Tuning of the segmentation (encoder side only; nothing here is in the archive)."""

    #: Text shorter than this many bytes stays in the binary data.
    min_text: int = 32
    #: One-byte text pieces shorter than this are not text.
    min_piece: int = 8
    #: One-byte text pieces separated by at most this many other bytes are merged.
    merge_gap: int = 8
    #: Largest share of gap bytes and lone high bytes in one-byte text.
    max_noise: float = 0.25
    #: UTF-16 needs this share of its characters in its two most common 256-character blocks.
    utf16_share: float = 0.5
    #: BOM-less UTF-16 needs at least this share of U+0020 characters.
    utf16_spaces: float = 0.05
    #: Least share of letters and spaces (ASCII letters, digits and spaces in one-byte text).
    min_letters: float = 0.5
    #: Longer regions are cut into pieces of at most this many bytes.
    max_region: int = 1 << 30

    def __post_init__(self) -> None:
        shares = (self.max_noise, self.utf16_share, self.utf16_spaces, self.min_letters)
        if self.min_text < 2 or self.min_piece < 1 or self.merge_gap < 0 or not all(0 <= x <= 1 for x in shares):
            raise ValueError(f"invalid segmentation rules {self}")
        if not 4 <= self.max_region <= 0xFFFFFFFF:
            raise ValueError("max_region must be in 4..2**32-1")


DEFAULT_RULES = Rules()

# One-byte text: ASCII text characters, valid UTF-8 sequences (no overlongs, no surrogates,
# nothing above U+10FFFF), and the Latin-1 letters and signs 0xA0-0xFF.  UTF-8 alternatives
# come first so that a multi-byte sequence is taken whole.
_ONE_BYTE_TEXT = re.compile(
    rb"(?:[\t\n\r\x20-\x7e]"
    rb"|[\xc2-\xdf][\x80-\xbf]"
    rb"|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
    rb"|[\xa0-\xff])+"
)
_ALNUM_SPACE = re.compile(rb"[0-9A-Za-z ]")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of an invalid byte
_ESCAPES = "".join(map(chr, range(0xDC80, 0xDD00)))
_NON_ASCII = re.compile("[\u0080-\udc7f\udd00-\U0010ffff]")  # real characters >= U+0080


# -- reversible conversion ----------------------------------------------------------------


def to_utf8(raw: bytes, kind: Kind) -> bytes | None:
    """The UTF-8 form of a text region, or None if the conversion would not be reversible."""
    if kind == Kind.UTF8:
        return raw
    try:
        utf8 = raw.decode(CODECS[kind]).encode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return None
    return utf8 if from_utf8(utf8, kind) == raw else None


def from_utf8(utf8: bytes, kind: Kind) -> bytes:
    """The original bytes of a text region from its UTF-8 form (raises UnicodeError if invalid)."""
    if kind == Kind.UTF8:
        return utf8
    return utf8.decode("utf-8").encode(CODECS[kind])


def text_bytes(regions: list[Region]) -> int:
    """How many input bytes the text regions cover."""
    return sum(r.length for r in regions if r.kind != Kind.BINARY)


# -- UTF-16 ---------------------------------------------------------------------------------


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in ``mask`` as [start, end) index pairs."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


_letter_units: np.ndarray | None = None


def _letters_table() -> np.ndarray:
    """For each BMP code point: is it a letter or a space separator (built once, ~30 ms)."""
    global _letter_units
    if _letter_units is None:
        cats = [unicodedata.category(chr(c)) for c in range(0x10000)]
        _letter_units = np.array([c[0] == "L" or c == "Zs" for c in cats], dtype=bool)
    return _letter_units


def _text_units(u: np.ndarray) -> np.ndarray:
    """Which UTF-16 code units are text characters (surrogates only as valid pairs)."""
    ok = (u >= 0x20) & (u != 0x7F) & ~((u >= 0x80) & (u < 0xA0)) & ~((u >= 0xD800) & (u < 0xE000))
    ok &= u < 0xFFFE
    ok |= (u == 0x09) | (u == 0x0A) | (u == 0x0D)
    pair = (u[:-1] >= 0xD800) & (u[:-1] < 0xDC00) & (u[1:] >= 0xDC00) & (u[1:] < 0xE000)
    ok[:-1] |= pair
    ok[1:] |= pair
    return ok


def _utf16_candidates(data: bytes, rules: Rules) -> list[tuple[int, int, Kind]]:
    min_units = (rules.min_text + 1) // 2
    found = []
    for kind, dtype in ((Kind.UTF16LE, "<u2"), (Kind.UTF16BE, ">u2")):
        for parity in (0, 1):
            n = (len(data) - parity) // 2
            if n < min_units:
                continue
            u = np.frombuffer(data, dtype=dtype, count=n, offset=parity).astype(np.int32)
            valid = _text_units(u)
            # Two printable ASCII bytes are far more often one-byte text than a CJK character:
            # such units end a run.  A byte-order mark may only start one.
            ascii_pair = ((u >> 8) - 0x20 < 0x5F) & ((u >> 8) >= 0x20) & ((u & 0xFF) - 0x20 < 0x5F) & ((u & 0xFF) >= 0x20)
            for a, b in _runs(valid & ~ascii_pair & (u != 0xFEFF)):
                if b - a < min_units:
                    continue
                hi = u[a:b] >> 8
                common = np.isin(hi, np.argsort(-np.bincount(hi, minlength=256), kind="stable")[:2])
                if common.sum() < rules.utf16_share * (b - a):
                    continue
                if _letters_table()[u[a:b]].sum() < rules.min_letters * (b - a):
                    continue
                keep = np.flatnonzero((hi == np.argmax(np.bincount(hi))) | (u[a:b] < 0x80))  # script, ASCII
                a, b = a + int(keep[0]), a + int(keep[-1]) + 1
                if b - a < min_units or (u[a:b] == 0x20).sum() < rules.utf16_spaces * (b - a):
                    continue
                if a > 0 and u[a - 1] == 0xFEFF:
                    a -= 1
                found.append((parity + 2 * a, parity + 2 * b, kind))
    # Overlapping readings: longest first, LE before BE, then earliest; keep what fits.
    found.sort(key=lambda c: (c[0] - c[1], c[2], c[0]))
    starts: list[int] = []
    chosen: list[tuple[int, int, Kind]] = []
    for start, end, kind in found:
        i = bisect.bisect_left(starts, start)
        if i > 0 and chosen[i - 1][1] > start:
            continue
        if i < len(chosen) and chosen[i][0] < end:
            continue
        if to_utf8(data[start:end], kind) is None:  # defensive: the unit rules imply reversibility
            continue
        starts.insert(i, start)
        chosen.insert(i, (start, end, kind))
    return chosen


# -- one-byte encodings ---------------------------------------------------------------------


def _piece(data: bytes, start: int, end: int) -> tuple[int, int, int, int, int]:
    """A text piece without lone high bytes at its edges (often random bytes next to text):
    (start, end, lone high bytes, valid multi-byte UTF-8 characters, letter bytes).  Letter
    bytes are ASCII letters, digits and spaces, and the bytes of multi-byte characters (so
    Cyrillic or CJK in UTF-8 is text too)."""
    text = data[start:end].decode("utf-8", "surrogateescape")
    core = text.strip(_ESCAPES)
    start += len(text) - len(text.lstrip(_ESCAPES))  # one escape per byte
    end = start + len(core.encode("utf-8", "surrogateescape"))
    lone = len(_ESCAPED_BYTE.findall(core))
    ascii_bytes = len(core) - lone - len(_NON_ASCII.findall(core))
    letters = len(_ALNUM_SPACE.findall(data, start, end)) + (end - start - ascii_bytes - lone)
    return start, end, lone, len(_NON_ASCII.findall(core)), letters


def _one_byte_kind(lone: int, multibyte: int) -> Kind:
    return Kind.LATIN1 if lone >= 4 and lone > 3 * multibyte else Kind.UTF8


def _one_byte_regions(data: bytes, lo: int, hi: int, rules: Rules) -> list[tuple[int, int, Kind]]:
    """Text regions of ``data[lo:hi]`` in one-byte encodings (pieces merged across small gaps)."""
    spans: list[list[int]] = []  # [start, end, clean bytes, lone high bytes, UTF-8 characters, letter bytes]
    for m in _ONE_BYTE_TEXT.finditer(data, lo, hi):
        if m.end() - m.start() < rules.min_piece:
            continue
        start, end, lone, multibyte, letters = _piece(data, m.start(), m.end())
        n = end - start
        if n < rules.min_piece or lone > rules.max_noise * n or letters < rules.min_letters * n:
            continue
        if spans and start - spans[-1][1] <= rules.merge_gap:
            last = spans[-1]
            last[1:] = [end, last[2] + n - lone, last[3] + lone, last[4] + multibyte, last[5] + letters]
        else:
            spans.append([start, end, n - lone, lone, multibyte, letters])
    if spans and spans[0][0] - lo <= rules.merge_gap:
        spans[0][0] = lo
    if spans and hi - spans[-1][1] <= rules.merge_gap:
        spans[-1][1] = hi
    out = []
    for a, b, clean, lone, multibyte, letters in spans:
        n = b - a
        if n < rules.min_text or clean < (1 - rules.max_noise) * n or letters < rules.min_letters * n:
            continue
        out.append((a, b, _one_byte_kind(lone, multibyte)))
    return out


# -- the whole segmentation -----------------------------------------------------------------


def _cut(data: bytes, region: Region, limit: int) -> list[Region]:
    """Split a region into pieces of at most ``limit`` bytes, at character boundaries."""
    pieces = []
    start = region.start
    while region.end - start > limit:
        cut = start + limit
        if region.kind in (Kind.UTF16LE, Kind.UTF16BE):
            cut -= (cut - start) % 2
            low = data[cut : cut + 2]
            unit = int.from_bytes(low, "little" if region.kind == Kind.UTF16LE else "big")
            if 0xDC00 <= unit < 0xE000:  # do not separate a surrogate pair
                cut -= 2
        elif region.kind == Kind.UTF8:
            for _ in range(3):
                if 0x80 <= data[cut] < 0xC0:
                    cut -= 1
        pieces.append(Region(start, cut, region.kind))
        start = cut
    pieces.append(Region(start, region.end, region.kind))
    return pieces


def segment(data: bytes, rules: Rules = DEFAULT_RULES) -> list[Region]:
    """Cut ``data`` into text and binary regions (see the module docstring for the rules).

    The regions are in order, non-empty, cover every byte exactly once, and no two
    neighbours are both binary.  Deterministic: the same input always gives the same list.
    """
    data = bytes(data)
    text = []
    pos = 0
    for start, end, kind in _utf16_candidates(data, rules):
        text += _one_byte_regions(data, pos, start, rules)
        text.append((start, end, kind))
        pos = end
    text += _one_byte_regions(data, pos, len(data), rules)

    regions: list[Region] = []
    pos = 0
    for start, end, kind in text:
        if start > pos:
            regions.append(Region(pos, start, Kind.BINARY))
        regions.append(Region(start, end, kind))
        pos = end
    if pos < len(data):
        regions.append(Region(pos, len(data), Kind.BINARY))
    return [piece for r in regions for piece in _cut(data, r, rules.max_region)]
