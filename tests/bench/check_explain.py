"""Check an ``nacrith explain`` page in a real headless browser and take its screenshot.

Why: the page's tooltip panel is JavaScript, and HTML that a parser accepts can still render
badly.  So Debian's chromium loads the page twice: once to dump the DOM after the script ran
(the token panel must be filled, every token's tooltip moved to ``data-tip``), once to save a
screenshot that a person looks at (``docs/explain.png`` in the README).

    .venv/bin/nacrith explain ../shared/corpora/alice29.txt --max-bytes 1500 -T 1 -o /tmp/alice.html
    .venv/bin/python tests/bench/check_explain.py /tmp/alice.html docs/explain.png

Needs ``/usr/bin/chromium`` (``apt-get install chromium``); CI does not.  Exit status 0 when
the page passed, 1 with a message otherwise.  tests/test_explain.py runs it when chromium is
installed.
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1200, 900)
TIMEOUT_S = 120
# Headless, isolated and offline: the page must need nothing from the network.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _chromium(chromium: str, profile: str, *args: str) -> str:
    proc = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise SystemExit(f"chromium exited with {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (raises ValueError if it is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


def check(report: Path, screenshot: Path, chromium: str = CHROMIUM) -> list[str]:
    """Render ``report``; return the problems found (empty = the page is good)."""
    problems = []
    url = report.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="nacrith-chromium-") as profile:
        dom = _chromium(chromium, profile, "--dump-dom", url)
        tokens = len(re.findall(r'<span id="t\d+" class="t ', report.read_text(encoding="utf-8")))
        moved = len(re.findall(r'<span id="t\d+" class="t [^"]*"[^>]*data-tip=', dom))
        if tokens == 0:
            problems.append("the page has no token spans")
        if moved != tokens:
            problems.append(f"the script moved {moved} of {tokens} tooltips: it did not run to the end")
        panel = re.search(r'<pre id="detail-text">(.*?)</pre>', dom, re.S)
        if not panel or " bits for " not in panel.group(1):
            problems.append("the token panel is empty after loading: the script failed")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        _chromium(chromium, profile, f"--screenshot={screenshot.resolve()}",
                  f"--window-size={WINDOW[0]},{WINDOW[1]}", url)
    try:
        size = png_size(screenshot.read_bytes())
    except (OSError, ValueError) as exc:
        problems.append(f"no screenshot: {exc}")
    else:
        if size != WINDOW:
            problems.append(f"screenshot is {size[0]}x{size[1]}, expected {WINDOW[0]}x{WINDOW[1]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the HTML page written by 'nacrith explain'")
    parser.add_argument("screenshot", type=Path, help="where to save the PNG screenshot")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"browser executable [{CHROMIUM}]")
    args = parser.parse_args()
    problems = check(args.report, args.screenshot, args.chromium)
    for problem in problems:
        print(f"check_explain: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_explain: {args.report} renders; screenshot in {args.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
