"""Archive overhead per mode, and archive sizes against the model's code length, v1 and v2.

Usage: .venv/bin/python tests/bench/overhead.py TEXTFILE [--offset N] [--sizes 1,4,16,64]
       [--threads T] [--no-verify]

Loads the default model.  Prints two Markdown tables:

1. **Overhead per mode**: for an empty input, one byte, and a 1 KB slice of TEXTFILE coded
   as stored, zstd, bytecm, model (``fallback=False``) and hybrid (the slice with 64 binary
   bytes in front, ``fallback=False``), the archive size and its framing (archive size minus
   the payload bytes: header, block fields, checksums), in container versions 1 and 2.
2. **Size against the model**: for slices of 1, 4, 16 and 64 KB of TEXTFILE from ``--offset``
   (and the issue's example, 8,000 bytes of alice29.txt from offset 100,000, when TEXTFILE is
   alice29.txt), the archive with the default settings in both versions, its payload (the
   arithmetic coder's output: the model's code length, within about a byte per block), and the
   payload of the LLM alone (ensemble off), each in bytes and bits per byte.

Each archive is made once, by the real writer; the other version's archive is the same blocks
re-framed (payloads are identical in both versions).  Until the codec records the numeric
check (issue 16: ``CodecParams.kernels`` and ``probe``) model archives are written as
version 1, and their version 2 framing gets placeholder numerics of the same size (marked
``*``): sizes are exact, such an archive would not pass the decoder's probe.  Every written
archive is decoded again and compared (``--no-verify`` skips that, halving the model time).
Model time: about 100 tokens/s on 2 cores, so the default sizes take several minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os

import nacrith
from nacrith import bytemodes, container, fingerprint
from nacrith.codec import numeric_of
from nacrith.ensemble import LLM_ONLY
from nacrith.native import BACKEND as backend

ALICE_EXAMPLE = (100_000, 8_000)  # issue 19's example: 8,000 bytes from offset 100,000


def payload_bytes(blob: bytes) -> int:
    """Bytes of coded data in a member (stored: the original bytes)."""
    return sum(bh.payload_len for bh in container.ArchiveReader(io.BytesIO(blob)).block_headers())


def reframe(blob: bytes, data: bytes, version: int, backend: str) -> tuple[bytes, bool]:
    """``blob`` (one member of ``data``) framed as ``version``; True when placeholder numerics
    had to stand in for a probe the writer did not record."""
    reader = container.ArchiveReader(io.BytesIO(blob))
    blocks = list(reader.blocks())
    header = reader.header
    if header.mode == container.MODE_STORED:
        return container.encode_stored(data, version=version), False
    params, placeholder = header.params, False
    if params is not None and version == 2 and not params.probe:
        params = dataclasses.replace(params, kernels=container.KERNELS_PORTABLE, probe=bytes(container.PROBE_SIZE))
        placeholder = True
    if params is not None and version == 1 and not params.backend:
        # What a version 1 writer records beside the parameters.
        here = fingerprint.current(numeric_of(params))
        params = dataclasses.replace(params, backend=backend, fingerprint=here)
    framed = [container.Block(bh.n_symbols, bh.n_bytes, bh.crc32, p) for bh, p in blocks]
    return container.encode_member(header.mode, params, data, framed, version=version), placeholder


def both(blob: bytes, data: bytes, backend: str) -> dict[int, tuple[bytes, bool]]:
    return {v: reframe(blob, data, v, backend) for v in (1, 2)}


def cell(framed: tuple[bytes, bool], n: int | None = None) -> str:
    blob, placeholder = framed
    mark = "*" if placeholder else ""
    value = len(blob) if n is None else n
    return f"{value:,}{mark}"


def bpb(n: int, size: int) -> str:
    return f"{8 * n / size:.3f}" if size else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("textfile")
    parser.add_argument("--offset", type=int, default=0, help="where the slices start (default 0)")
    parser.add_argument("--sizes", default="1,4,16,64", help="slice sizes in KB (default 1,4,16,64)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-verify", action="store_true", help="do not decode the archives again")
    args = parser.parse_args()
    with open(args.textfile, "rb") as f:
        text = f.read()
    codec = nacrith.Codec(threads=args.threads)

    def checked(blob: bytes, data: bytes) -> bytes:
        if not args.no_verify:
            assert codec.decompress(blob) == data, "round trip failed"
        return blob

    # -- 1. overhead per mode
    kb = text[args.offset : args.offset + 1024]
    binary = bytes(range(200, 256)) + bytes(8)
    cases = [
        ("empty (stored)", b"", lambda d: codec.compress(d)),
        ("1 byte (stored)", b"x", lambda d: codec.compress(d)),
        ("stored, 1 KB", kb, lambda d: container.encode_stored(d)),
        ("zstd, 1 KB", kb, bytemodes.zstd_archive),
        ("bytecm, 1 KB", kb, bytemodes.bytecm_archive),
        ("model, 1 KB", kb, lambda d: codec.compress(d, fallback=False)),
        ("hybrid, 1 KB + 64 binary", binary + kb, lambda d: codec.compress(d, fallback=False)),
    ]
    print("| input | mode | v1 archive | v1 framing | v2 archive | v2 framing |")
    print("|---|---|---:|---:|---:|---:|")
    placeholders = False
    for name, data, make in cases:
        blob = checked(make(data), data)
        framed = both(blob, data, backend)
        placeholders |= any(p for _, p in framed.values())
        mode = container.mode_name(blob[5])
        cells = []
        for v in (1, 2):
            size = len(framed[v][0])
            cells += [cell(framed[v]), cell(framed[v], size - payload_bytes(framed[v][0]))]
        print(f"| {name} | {mode} | " + " | ".join(cells) + " |")

    # -- 2. size against the model's code length
    slices = [(f"{k} KB from {args.offset:,}", args.offset, int(k) * 1024) for k in args.sizes.split(",") if k]
    if os.path.basename(args.textfile) == "alice29.txt":
        offset, size = ALICE_EXAMPLE
        slices.append((f"{size:,} bytes from {offset:,} (issue 19)", offset, size))
    print()
    print("| input | bytes | mode | v1 archive | v1 bpb | v2 archive | v2 bpb | payload | payload bpb | LLM alone payload | bpb |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, offset, size in slices:
        data = text[offset : offset + size]
        if len(data) < size:
            print(f"| {name} | (the file has only {len(data):,} bytes there) |")
            continue
        blob = checked(codec.compress(data), data)
        framed = both(blob, data, backend)
        placeholders |= any(p for _, p in framed.values())
        payload = payload_bytes(blob)
        alone = codec.compress(data, fallback=False, ensemble=LLM_ONLY)
        alone_payload = payload_bytes(alone)
        v1, v2 = (len(framed[v][0]) for v in (1, 2))
        print(
            f"| {name} | {len(data):,} | {container.mode_name(blob[5])} | {cell(framed[1])} | {bpb(v1, len(data))} "
            f"| {cell(framed[2])} | {bpb(v2, len(data))} | {payload:,} | {bpb(payload, len(data))} "
            f"| {alone_payload:,} | {bpb(alone_payload, len(data))} |"
        )
    if placeholders:
        print()
        print("\\* version 2 framing with placeholder numerics (same size): the writer does not record the probe yet.")


if __name__ == "__main__":
    main()
