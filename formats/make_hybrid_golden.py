"""Regenerate (or, with --check, verify) the golden hybrid archive in formats/golden/hybrid/.

``mixed.bin`` holds binary bytes, English prose and UTF-16LE text; ``mixed.bin.nc`` is its
mode 2 archive (region table, binary section coded by bytecm, which is smaller than zstd here,
model-coded text; ``formats/container-v2.md``, and section 4.2 of version 1), written with
``fallback=False`` so that it stays a hybrid archive even though zstd would be smaller for so
little text.  A portable archive records nothing about the machine, so the whole file is
pinned.  ``mixed.v1.nc`` is the same in container version 1 (pinned kernels), written by the
last version that wrote version 1, and is only decoded; the archives of the earlier AVX-512
builds are in ``golden/avx512-v1/``.

Usage: python formats/make_hybrid_golden.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "golden" / "hybrid"

# 48 bytes of a fixed byte pattern (no text in it), prose, then UTF-16LE text with a BOM.
DATA = (
    bytes((i * 73 + 41) % 256 for i in range(48))
    + b"The model codes the text regions; zstd codes the binary ones in a single stream.\n"
    + "\ufeffUTF-16 text is converted to UTF-8 for the model, then back.\r\n".encode("utf-16-le")
    + b"\x00\x01\x02\x03\xfe\xff"
)


def main() -> int:
    import nacrith

    blob = nacrith.Codec(threads=1).compress(DATA, fallback=False)
    src, arc = HERE / "mixed.bin", HERE / "mixed.bin.nc"
    if "--check" in sys.argv:
        if src.read_bytes() != DATA or arc.read_bytes() != blob:
            print("differs: mixed")
            return 1
        return 0
    HERE.mkdir(parents=True, exist_ok=True)
    src.write_bytes(DATA)
    arc.write_bytes(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main())
