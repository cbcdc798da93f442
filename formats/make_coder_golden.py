"""Generate the golden arithmetic-coder bitstreams in ``formats/golden/coder/``.

Why: the coder bitstream and the float -> integer frequency mapping are part of the archive
format.  These files pin both byte for byte, so any change to ``nacrith/coder.py`` or
``nacrith/cdf.py`` that would make old archives undecodable fails ``tests/test_coder.py``.
See ``formats/coder-golden.md`` for what each file contains.

Usage (from the repository root)::

    python formats/make_coder_golden.py          # (re)write the files
    python formats/make_coder_golden.py --check  # compare only; exit 1 on difference

Every input is derived from integers by a fixed 64-bit LCG, so the generator needs no data
files.  The test suite imports :func:`generate` and compares with the committed files.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(_ROOT))

from nacrith.cdf import cumulative, find_symbol, freqs_from_logits
from nacrith.coder import TOTAL, ArithmeticEncoder

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "coder"

# An op is ("i", cum_low, freq) for an interval or ("u", value, bits) for a uniform value.
Op = tuple[str, int, int]


def lcg(seed: int) -> Iterator[int]:
    """Yield 32-bit values: the top half of x <- x * 6364136223846793005 + 1442695040888963407 mod 2**64."""
    x = seed & 0xFFFFFFFFFFFFFFFF
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        yield x >> 32


def golden_logits() -> np.ndarray:
    """The 1000 float32 logits of ``cdf_v1000``: LCG values in [-20, 0), a peak, a tie, -inf."""
    g = lcg(1000)
    vals = [-((next(g) % 20000) / 1000.0) for _ in range(1000)]
    vals[7] = 5.0  # the peak
    vals[10] = vals[11] = 1.5  # a tie below the peak
    vals[3] = float("-inf")  # a masked token: still frequency 1
    return np.array(vals, dtype=np.float32)


def golden_logits_large() -> np.ndarray:
    """49,152 float32 logits in [-40, 10) from the LCG (SmolLM2's vocabulary size)."""
    g = lcg(49152)
    vals = [(next(g) % 50000) / 1000.0 - 40.0 for _ in range(49152)]
    return np.array(vals, dtype=np.float32)


def cases() -> dict[str, list[Op]]:
    """The op sequences of every golden bitstream, by file stem."""
    out: dict[str, list[Op]] = {}

    out["empty"] = []

    g = lcg(1)
    out["uniform8"] = [("u", next(g) & 0xFF, 8) for _ in range(1024)]

    g = lcg(2)
    mixed: list[Op] = []
    for _ in range(1000):
        bits = next(g) % 25  # 0..24
        mixed.append(("u", next(g) & ((1 << bits) - 1), bits))
    out["uniform_mixed"] = mixed

    # Narrow intervals straddling the midpoint: long runs of pending (underflow) bits.
    pend: list[Op] = [("i", TOTAL // 2 - 1, 2)] * 300
    pend += [("i", 0, 1), ("i", TOTAL - 1, 1)] + [("i", TOTAL // 2 - 1, 2)] * 50
    out["pending"] = pend

    # Extreme CDF over 4096 symbols: symbol 0 has TOTAL - 4095, every other symbol 1.
    g = lcg(3)
    ext: list[Op] = []
    for _ in range(5000):
        r = next(g)
        sym = 0 if r % 16 else 1 + (r >> 4) % 4095
        ext.append(("i", 0, TOTAL - 4095) if sym == 0 else ("i", TOTAL - 4095 + sym - 1, 1))
    out["extreme"] = ext

    # Arbitrary valid intervals with log-uniform widths 1 .. 2**24.
    g = lcg(4)
    rnd: list[Op] = []
    for _ in range(4000):
        width_bits = next(g) % 25
        freq = 1 + next(g) % (1 << width_bits) if width_bits < 24 else TOTAL
        cum_low = next(g) % (TOTAL - freq + 1)
        rnd.append(("i", cum_low, freq))
    out["random_intervals"] = rnd

    # 2000 symbols under the frequencies of golden_logits(), chosen by integer targets.
    freqs = freqs_from_logits(golden_logits())
    cum = cumulative(freqs)
    g = lcg(5)
    seq: list[Op] = []
    for _ in range(2000):
        s = int(find_symbol(cum, next(g) % TOTAL))
        seq.append(("i", int(cum[s]), int(freqs[s])))
    out["logits_v1000"] = seq
    return out


def encode_ops(ops: list[Op]) -> bytes:
    enc = ArithmeticEncoder()
    for kind, a, b in ops:
        if kind == "i":
            enc.encode(a, b)
        else:
            enc.encode_uniform(a, b)
    return enc.finish()


def generate() -> dict[str, bytes]:
    """File name -> exact content of every file in ``formats/golden/coder/``."""
    files = {f"{name}.bin": encode_ops(ops) for name, ops in cases().items()}
    freqs = freqs_from_logits(golden_logits())
    files["cdf_v1000.u32le"] = freqs.astype("<u4").tobytes()
    big = freqs_from_logits(golden_logits_large()).astype("<u4").tobytes()
    files["cdf_v49152.sha256"] = (hashlib.sha256(big).hexdigest() + "\n").encode()
    return files


def main(argv: list[str]) -> int:
    files = generate()
    if "--check" in argv:
        bad = [n for n, data in files.items() if not (GOLDEN_DIR / n).is_file() or (GOLDEN_DIR / n).read_bytes() != data]
        for n in bad:
            print(f"golden file differs or is missing: {GOLDEN_DIR / n}")
        return 1 if bad else 0
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for n, data in sorted(files.items()):
        (GOLDEN_DIR / n).write_bytes(data)
        print(f"{n}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
