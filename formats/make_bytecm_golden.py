"""Regenerate (or, with --check, verify) the golden bytecm archive in formats/golden/bytecm/.

``records.bin`` is a small structured binary file (fixed-layout records with integers, a
float-like field and short names, then a run of zeros and a repeat); ``records.bin.nc`` is its
mode 4 archive (``formats/container-v1.md`` section 4.4), which pins the bytecm bitstream
(version 2): ``tests/test_bytecm.py`` checks that ``nacrith.bytemodes.bytecm_archive`` reproduces
it byte for byte and that it decodes.  ``records.v1.nc`` is the archive the first bytecm
(version 1) wrote, kept so that the test proves old archives still decode; this script checks
it but never rewrites it.  The archives have no model parameters, so they do not depend on
the machine.

Usage: python formats/make_bytecm_golden.py [--check]
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "golden" / "bytecm"

NAMES = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]


def _data() -> bytes:
    out = bytearray(b"REC1")
    for i in range(120):
        name = NAMES[(i * 5) % len(NAMES)]
        out += struct.pack("<IHhq", i, (i * 37) % 1000, -i * 3, i * 1_000_003)
        out += bytes([len(name)]) + name
    out += bytes(200)
    out += out[40:400]
    return bytes(out)


DATA = _data()


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from nacrith import bytemodes

    blob = bytemodes.bytecm_archive(DATA, container_version=1)  # the golden pins the v1 framing
    src, arc = HERE / "records.bin", HERE / "records.bin.nc"
    if "--check" in sys.argv:
        if src.read_bytes() != DATA or arc.read_bytes() != blob:
            print("differs: records")
            return 1
        if bytemodes.bytecm_archive(DATA, version=1, container_version=1) != (HERE / "records.v1.nc").read_bytes():
            print("differs: records.v1")
            return 1
        return 0
    HERE.mkdir(parents=True, exist_ok=True)
    src.write_bytes(DATA)
    arc.write_bytes(blob)
    (HERE / "README.md").write_text(
        "# bytecm golden archive\n\n"
        "`records.bin` and its mode 4 (bytecm) archive `records.bin.nc`, written by\n"
        "`formats/make_bytecm_golden.py`; they pin the bytecm version 2 bitstream\n"
        "(`formats/container-v1.md` section 4.4, `nacrith/bytecm.py`). `records.v1.nc` is\n"
        "the version 1 archive of the same file, which must keep decoding.\n",
        encoding="utf-8",
    )
    print(f"records.bin {len(DATA)} bytes -> records.bin.nc {len(blob)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
