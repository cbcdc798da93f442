"""Regenerate (or, with --check, verify) the golden hybrid archive in formats/golden/hybrid/.

``mixed.bin`` holds binary bytes, English prose and UTF-16LE text; ``mixed.bin.nc`` is its
mode 2 archive (region table, binary section coded by bytecm, which is smaller than zstd here,
model-coded text; ``formats/container-v1.md`` section 4.2), written with ``fallback=False``
so that it stays a hybrid archive even though zstd would be smaller for so little text.  The
bytes after the header pin the hybrid bitstream; the header records the writer's environment
fingerprint, which differs between machines (``tests/test_hybrid.py`` compares what follows
it).  ``mixed.bytecm-v1.nc`` was written before bytecm version 2 and is only decoded.

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

    from nacrith.fingerprint import restamp

    # Without the fingerprint (header key 15): the file pins the bitstream, not the machine.
    blob = restamp(nacrith.Codec(threads=1).compress(DATA, fallback=False), "")
    src, arc = HERE / "mixed.bin", HERE / "mixed.bin.nc"
    if "--check" in sys.argv:
        from nacrith import container
        import io

        size = lambda b: container.ArchiveReader(io.BytesIO(b)).header.size  # noqa: E731
        old = arc.read_bytes()
        if src.read_bytes() != DATA or old[size(old) :] != blob[size(blob) :]:
            print("differs: mixed")
            return 1
        return 0
    HERE.mkdir(parents=True, exist_ok=True)
    src.write_bytes(DATA)
    arc.write_bytes(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main())
