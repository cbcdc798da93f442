#!/usr/bin/env python3
"""Generate the container v1 and v2 golden and must-fail example files.

Why this script exists: the example archives under ``formats/golden/container``
and ``formats/must-fail`` pin the byte layouts of ``formats/container-v1.md``
and ``formats/container-v2.md`` (the ``v2-*`` files).
They are built here *by hand* with ``struct`` — deliberately not with
``nacrith.container`` — so that the tests compare two independent
implementations of the spec: the reference encoder must reproduce the golden
bytes, and the reference reader must reject every must-fail file with the
exception named in ``formats/must-fail/README.md``.

Usage (from the repository root or anywhere)::

    python formats/make_container_examples.py          # (re)write the files
    python formats/make_container_examples.py --check  # exit 1 if any differs

Standard library only; the output is fully deterministic.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
import zlib
from pathlib import Path

FORMATS_DIR = Path(__file__).resolve().parent

MAGIC = b"\x89NCR"

# ---- the known inputs -------------------------------------------------------

#: Original text of the stored-mode golden archive (45 bytes).
FOX_TEXT = b"The quick brown fox jumps over the lazy dog.\n"
#: Stored block size used for FOX_TEXT: gives two blocks (32 + 13 bytes).
FOX_BLOCK_BYTES = 32

#: Codec parameters of the model-mode header example.
MODEL_SHA256 = hashlib.sha256(b"nacrith example model").digest()
MODEL_PARAMS = {
    "tokenizer": 1,
    "cdf_total_bits": 24,
    "block_tokens": 2048,
    "flash_attn": 0,
    "type_k": 1,  # ggml f16
    "type_v": 1,
    "start_token": 1,
    "escape_token": 2,
    "backend": "llama-cpp-python 0.3.36",
    "stream_tokens": 4096,
    "window": 2048,
    "slide": 512,
    "sinks": 4,
}


# ---- hand-rolled layout (independent of nacrith.container) ----------------


def crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def tlv(key: int, value: bytes) -> bytes:
    return bytes([key, len(value)]) + value


def model_params_entries() -> list[bytes]:
    p = MODEL_PARAMS
    return [
        tlv(1, MODEL_SHA256),
        tlv(2, bytes([p["tokenizer"]])),
        tlv(3, bytes([p["cdf_total_bits"]])),
        tlv(4, struct.pack("<I", p["block_tokens"])),
        tlv(5, bytes([p["flash_attn"]])),
        tlv(6, bytes([p["type_k"], p["type_v"]])),
        tlv(7, struct.pack("<I", p["start_token"])),
        tlv(8, struct.pack("<I", p["escape_token"])),
        tlv(9, p["backend"].encode("utf-8")),
        tlv(10, struct.pack("<I", p["stream_tokens"])),
        tlv(11, struct.pack("<I", p["window"])),
        tlv(12, struct.pack("<I", p["slide"])),
        tlv(13, struct.pack("<I", p["sinks"])),
    ]


def header(mode: int, params: bytes, *, version: int = 1, magic: bytes = MAGIC) -> bytes:
    body = magic + struct.pack("<BBH", version, mode, len(params)) + params
    return body + struct.pack("<I", crc(body))


def leb128(value: int) -> bytes:
    """Minimal unsigned LEB128: 7 bits per byte, low group first, high bit = more."""
    groups = [value & 0x7F]
    while value >> 7:
        value >>= 7
        groups.append(value & 0x7F)
    return bytes(g | 0x80 for g in groups[:-1]) + bytes(groups[-1:])


def block_fields(n_symbols: int, n_bytes: int, payload_len: int, crc32: int) -> bytes:
    return leb128(n_symbols) + leb128(n_bytes) + leb128(payload_len) + struct.pack("<I", crc32)


def block(n_symbols: int, n_bytes: int, payload_len: int, crc32: int, payload: bytes) -> bytes:
    return block_fields(n_symbols, n_bytes, payload_len, crc32) + payload


#: The end marker: n_symbols = 0 as a one-byte varint.
END_MARKER = b"\x00"
TRAILER_LEN = 28  # original_size u64 + digest 16 + trailer_crc u32


def end(original_size: int, digest: bytes) -> bytes:
    body = struct.pack("<Q", original_size) + digest
    return END_MARKER + body + struct.pack("<I", crc(body))


def blake(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def stored_archive(data: bytes, block_bytes: int) -> bytes:
    out = header(1, b"")
    for i in range(0, len(data), block_bytes):
        chunk = data[i : i + block_bytes]
        out += block(len(chunk), len(chunk), len(chunk), crc(chunk), chunk)
    return out + end(len(data), blake(data))


def zstd_raw_frame(data: bytes, declared: int | None = None, block_type: int = 0) -> bytes:
    """A zstd frame (RFC 8878) holding ``data`` in one Raw block, built by hand: magic,
    frame header descriptor 0x20 (single segment, 1-byte content size), content size, then
    the 3-byte block header (last block, type, size)."""
    assert len(data) <= 255
    size = len(data) if declared is None else declared
    block_header = (1 | block_type << 1 | len(data) << 3).to_bytes(3, "little")
    return b"\x28\xb5\x2f\xfd" + bytes([0x20, size]) + block_header + data


def zstd_archive(chunks: list[bytes]) -> bytes:
    """A mode 3 archive: one raw zstd frame per block."""
    out = header(3, b"")
    for chunk in chunks:
        frame = zstd_raw_frame(chunk)
        out += block(len(chunk), len(chunk), len(frame), crc(chunk), frame)
    data = b"".join(chunks)
    return out + end(len(data), blake(data))


# Hybrid (mode 2) examples: the region table (section 4.2) of HYBRID_BINARY then HYBRID_TEXT,
# a zstd block with the binary bytes and one model block (a dummy payload: every failure below
# is found before a model would be needed).
HYBRID_BINARY = bytes(range(250, 256)) + bytes(4)
HYBRID_TEXT = b"hello!"


def hybrid_table(binary_blocks: int = 1, entries: bytes | None = None) -> bytes:
    if entries is None:  # kind 0 (binary) length 10, kind 1 (UTF-8) length 6
        entries = b"\x00" + leb128(len(HYBRID_BINARY)) + b"\x01" + leb128(len(HYBRID_TEXT))
    return leb128(binary_blocks) + entries


def hybrid_archive(
    table: bytes | None = None, n_regions: int = 2, text_bytes: int | None = None, original: int | None = None
) -> bytes:
    table = hybrid_table() if table is None else table
    frame = zstd_raw_frame(table)
    binary = zstd_raw_frame(HYBRID_BINARY)
    text_bytes = len(HYBRID_TEXT) if text_bytes is None else text_bytes
    data = HYBRID_BINARY + HYBRID_TEXT
    return (
        header(2, b"".join(model_params_entries()))
        + block(n_regions, len(table), len(frame), crc(table), frame)
        + block(len(HYBRID_BINARY), len(HYBRID_BINARY), len(binary), crc(HYBRID_BINARY), binary)
        + block(2, text_bytes, 2, crc(HYBRID_TEXT), b"\x00\x01")
        + end(len(data) if original is None else original, blake(data))
    )


def flip_bit(data: bytes, offset: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


# ---- version 2 (formats/container-v2.md), built by hand as well ----------------------

#: The preset registry of container-v2.md section 3.1: id -> (sha256, start_token, escape_token).
V2_PRESETS = {
    1: (bytes.fromhex("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"), 1, 2),
    2: (bytes.fromhex("a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"), 2, 1),
}
#: The numeric probe of the v2 examples: arbitrary bytes (the container does not interpret it).
V2_PROBE = b"\x5a\xa5\x0f\xf0"
#: The fingerprint of the machine-bound v2 example.
V2_FINGERPRINT = "x86_64 AVX512_BF16 1455ac25959d"


def leb128_64(value: int) -> bytes:
    """leb128 for values up to 2^64 - 1 (a v2 original_size)."""
    assert 0 <= value < 1 << 64
    return leb128(value)


def v2_start(mode: int, original_size: int, *, version: int = 2) -> bytes:
    return MAGIC + bytes([version, mode]) + leb128_64(original_size)


def v2_params(
    model: int = 1,
    overrides: list[bytes] = (),
    kernels: int = 1,
    *,
    sha: bytes | None = None,
    prefix: bytes | None = None,
    fingerprint: bytes = V2_FINGERPRINT.encode(),
    count: int | None = None,
) -> bytes:
    """params_v2: model id and hash (prefix), override count and entries, kernels, probe,
    fingerprint (kernels 0 only)."""
    if model == 0:
        out = b"\x00" + (sha if sha is not None else MODEL_SHA256)
    else:
        out = bytes([model]) + (prefix if prefix is not None else V2_PRESETS[model][0][:4])
    out += bytes([len(overrides) if count is None else count]) + b"".join(overrides)
    out += bytes([kernels]) + V2_PROBE
    if kernels == 0:
        out += bytes([len(fingerprint)]) + fingerprint
    return out


def v2_model_header(mode: int, original_size: int, params: bytes, *, check_xor: int = 0) -> bytes:
    head = v2_start(mode, original_size) + params
    return head + struct.pack("<H", (crc(head) & 0xFFFF) ^ check_xor)


def v2_block(n_symbols: int | None, n_bytes: int, payload: bytes, crc32: int | None) -> bytes:
    """[n_symbols] n_bytes payload_len [crc32] payload: n_symbols only in modes 0 and 2, crc32
    only when the archive has several blocks."""
    out = b"" if n_symbols is None else leb128(n_symbols)
    out += leb128(n_bytes) + leb128(len(payload))
    if crc32 is not None:
        out += struct.pack("<I", crc32)
    return out + payload


def v2_stored(data: bytes) -> bytes:
    return v2_start(1, len(data)) + data + struct.pack("<I", crc(data))


def v2_zstd(chunks: list[bytes]) -> bytes:
    data = b"".join(chunks)
    several = len(chunks) > 1
    body = leb128(len(chunks)) + b"".join(
        v2_block(None, len(c), zstd_raw_frame(c), crc(c) if several else None) for c in chunks
    )
    return v2_start(3, len(data)) + body + struct.pack("<I", crc(data))


def v1_single_block(archive: bytes) -> tuple[bytes, int]:
    """``(payload, n_bytes)`` of the one block of a v1 archive with empty params (a 12-byte
    header), parsed by hand."""
    pos = 12
    fields = []
    for _ in range(3):
        value = shift = 0
        while True:
            byte = archive[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        fields.append(value)
    pos += 4  # crc32
    return archive[pos : pos + fields[2]], fields[1]


# ---- the examples --------------------------------------------------------------


def build() -> dict[str, bytes]:
    """All example files, keyed by path relative to ``formats/``."""
    files: dict[str, bytes] = {}
    g = "golden/container/"
    m = "must-fail/"

    fox = stored_archive(FOX_TEXT, FOX_BLOCK_BYTES)
    model_header = header(0, b"".join(model_params_entries()))
    files[g + "stored-fox.nc"] = fox
    files[g + "stored-empty.nc"] = stored_archive(b"", FOX_BLOCK_BYTES)
    files[g + "model-header.bin"] = model_header
    files[g + "zstd-fox.nc"] = zstd_archive([FOX_TEXT[:FOX_BLOCK_BYTES], FOX_TEXT[FOX_BLOCK_BYTES:]])

    stored_hdr_len = 12  # magic 4 + version/mode/params_len 4 + crc 4
    block0_fields_len = 7  # varints 32, 32, 32 (one byte each) + crc32 u32
    block0_payload_at = stored_hdr_len + block0_fields_len
    end_marker_at = len(fox) - TRAILER_LEN - len(END_MARKER)
    chunk0 = FOX_TEXT[:FOX_BLOCK_BYTES]
    after_block0 = fox[block0_payload_at + FOX_BLOCK_BYTES :]
    assert fox[stored_hdr_len:block0_payload_at] == block_fields(32, 32, 32, crc(chunk0))
    assert fox[end_marker_at : end_marker_at + 1] == END_MARKER

    # Header-level failures.
    files[m + "container-bad-magic.nc"] = fox.replace(
        MAGIC, b"\x89NCX", 1
    )
    # Written before version 2 existed (a v1 layout with version byte 2); kept byte for byte.
    files[m + "container-version-2.nc"] = header(1, b"", version=2) + fox[stored_hdr_len:]
    files[m + "container-version-3.nc"] = header(1, b"", version=3) + fox[stored_hdr_len:]
    files[m + "container-unknown-mode.nc"] = header(255, b"") + fox[stored_hdr_len:]
    files[m + "container-unknown-param-key.nc"] = header(
        0, b"".join(model_params_entries()) + tlv(16, b"\x00")
    )
    entries = model_params_entries()
    entries[0], entries[1] = entries[1], entries[0]
    files[m + "container-unsorted-param-keys.nc"] = header(0, b"".join(entries))
    files[m + "container-missing-param.nc"] = header(
        0, b"".join(e for e in model_params_entries() if e[0] != 4)
    )
    # sinks + slide = window (4 + 2044 = 2048): every key present and well-formed, but the
    # window could never slide.
    files[m + "container-window-params-invalid.nc"] = header(
        0, b"".join(e if e[0] != 12 else tlv(12, struct.pack("<I", 2044)) for e in model_params_entries())
    )
    files[m + "container-header-crc-flipped.nc"] = flip_bit(fox, stored_hdr_len - 4, 3)
    files[m + "container-truncated-header.nc"] = model_header[:10]

    # Block-level failures.
    files[m + "container-truncated-block-payload.nc"] = fox[: block0_payload_at + 10]
    files[m + "container-stored-size-inconsistent.nc"] = (  # n_symbols 31 != n_bytes 32
        header(1, b"") + block(31, 32, 32, crc(chunk0), chunk0) + after_block0
    )
    files[m + "container-block-too-large.nc"] = header(1, b"") + block(
        0xFFFFFFF0, 0xFFFFFFF0, 0xFFFFFFF0, 0, b"only a few bytes follow"
    )
    # n_symbols 32 written as A0 00 (two bytes) instead of 20: valid value, overlong.
    files[m + "container-varint-overlong.nc"] = (
        header(1, b"")
        + b"\xa0\x00"
        + leb128(32)
        + leb128(32)
        + struct.pack("<I", crc(chunk0))
        + chunk0
        + after_block0
    )
    # n_bytes = 2**32 (80 80 80 80 10): a well-formed 5-byte varint beyond u32.
    files[m + "container-varint-exceeds-u32.nc"] = (
        header(1, b"")
        + leb128(32)
        + b"\x80\x80\x80\x80\x10"
        + leb128(32)
        + struct.pack("<I", crc(chunk0))
        + chunk0
        + after_block0
    )

    # Trailer-level failures.
    files[m + "container-truncated-trailer.nc"] = fox[:-5]
    files[m + "container-trailer-crc-flipped.nc"] = flip_bit(fox, len(fox) - 1, 0)
    files[m + "container-size-mismatch.nc"] = fox[:end_marker_at] + end(
        len(FOX_TEXT) + 1, blake(FOX_TEXT)
    )

    # Decoder-level failures (structurally valid containers).
    files[m + "container-block-crc-mismatch.nc"] = flip_bit(fox, block0_payload_at + 4, 5)
    files[m + "container-digest-mismatch.nc"] = fox[:end_marker_at] + end(
        len(FOX_TEXT), blake(FOX_TEXT + b"!")
    )

    # Hybrid and zstd modes: decoder-level failures (tests/test_hybrid.py), all found before
    # any model work.
    files[m + "hybrid-no-region-table.nc"] = header(2, b"".join(model_params_entries())) + end(0, blake(b""))
    files[m + "hybrid-unknown-region-kind.nc"] = hybrid_archive(
        hybrid_table(entries=b"\x00\x0a\x07\x06")
    )
    files[m + "hybrid-binary-size-mismatch.nc"] = hybrid_archive(
        hybrid_table(entries=b"\x00\x0b\x01\x06"), original=17
    )
    files[m + "hybrid-text-size-mismatch.nc"] = hybrid_archive(text_bytes=7)
    files[m + "hybrid-original-size-mismatch.nc"] = hybrid_archive(original=99)
    files[m + "hybrid-table-trailing-bytes.nc"] = hybrid_archive(hybrid_table() + b"\x00")
    files[m + "hybrid-missing-zstd-block.nc"] = hybrid_archive(hybrid_table(binary_blocks=3))
    zfox = zstd_archive([FOX_TEXT])
    frame = zstd_raw_frame(FOX_TEXT)
    fields = block_fields(45, 45, len(frame), crc(FOX_TEXT))
    assert zfox[12 : 12 + len(fields)] == fields
    rest = zfox[12 + len(fields) + len(frame) :]
    files[m + "zstd-frame-size-mismatch.nc"] = header(3, b"") + fields + zstd_raw_frame(FOX_TEXT, 44) + rest
    files[m + "zstd-corrupt-frame.nc"] = header(3, b"") + fields + zstd_raw_frame(FOX_TEXT, block_type=3) + rest
    files[m + "zstd-block-crc-mismatch.nc"] = (
        header(3, b"") + block_fields(45, 45, len(frame), crc(FOX_TEXT) ^ 1) + frame + rest
    )
    files[m + "zstd-symbols-bytes-differ.nc"] = (
        header(3, b"") + block_fields(44, 45, len(frame), crc(FOX_TEXT)) + frame + rest
    )
    files[m + "hybrid-mixed-binary-coders.nc"] = hybrid_archive(  # kinds 0 and 5 in one table
        hybrid_table(entries=b"\x00\x05\x05\x05\x01\x06")
    )

    # bytecm (mode 4, section 4.4): the payload is "version, mem_log, coded bits"; the coded
    # bits here are arbitrary (any bits decode to some bytes, which the block CRC rejects).
    def bytecm_archive(payload: bytes, n_symbols: int = 45, n_bytes: int = 45) -> bytes:
        return (
            header(4, b"")
            + block(n_symbols, n_bytes, len(payload), crc(FOX_TEXT), payload)
            + end(n_bytes, blake(FOX_TEXT))
        )

    bits = bytes((i * 37 + 11) % 256 for i in range(80))
    files[m + "bytecm-symbols-bytes-differ.nc"] = bytecm_archive(b"\x01\x10" + bits, n_symbols=44)
    files[m + "bytecm-bad-version.nc"] = bytecm_archive(b"\x03\x10" + bits)
    files[m + "bytecm-bad-mem-log.nc"] = bytecm_archive(b"\x01\x17" + bits)
    files[m + "bytecm-short-payload.nc"] = bytecm_archive(b"\x01")
    files[m + "bytecm-block-crc-mismatch.nc"] = bytecm_archive(b"\x01\x10" + bits)
    files[m + "bytecm-v2-block-crc-mismatch.nc"] = bytecm_archive(b"\x02\x10" + bits)
    big = (16 << 20) + 1
    files[m + "bytecm-block-too-large.nc"] = bytecm_archive(b"\x01\x10" + bits, n_symbols=big, n_bytes=big)

    build_v2(files)
    return files


def build_v2(files: dict[str, bytes]) -> None:
    """The version 2 examples (formats/container-v2.md)."""
    g = "golden/container/"
    m = "must-fail/v2-"
    u32 = lambda v: struct.pack("<I", v)  # noqa: E731
    fox = FOX_TEXT
    halves = [fox[:FOX_BLOCK_BYTES], fox[FOX_BLOCK_BYTES:]]

    # -- valid examples
    files[g + "v2-stored-empty.nc"] = v2_stored(b"")
    files[g + "v2-stored-fox.nc"] = v2_stored(fox)
    files[g + "v2-zstd-fox.nc"] = v2_zstd([fox])
    files[g + "v2-zstd-fox-2blocks.nc"] = v2_zstd(halves)
    records = (FORMATS_DIR / "golden/bytecm/records.bin").read_bytes()
    payload, n_bytes = v1_single_block((FORMATS_DIR / "golden/bytecm/records.bin.nc").read_bytes())
    assert n_bytes == len(records)
    files[g + "v2-bytecm-records.nc"] = (
        v2_start(4, len(records)) + leb128(1) + v2_block(None, len(records), payload, None) + u32(crc(records))
    )
    # Mode 0 headers (no blocks follow): the defaults but for window 2048 and the LLM alone;
    # and a custom model, machine-bound.
    window = tlv(11, u32(2048))
    llm_alone = tlv(14, b"")
    preset_params = v2_params(1, [window, llm_alone])
    files[g + "v2-model-header.bin"] = v2_model_header(0, 1000, preset_params)
    custom_params = v2_params(0, [tlv(7, u32(1)), tlv(8, u32(2))], kernels=0)
    files[g + "v2-custom-model-header.bin"] = v2_model_header(0, 1000, custom_params)
    # What --best writes: preset 2 (gemma3-270m) in a 2048-token window sliding by 512, level
    # best (key 17), coded in lockstep (key 18).
    best_params = v2_params(2, [window, tlv(12, u32(512)), tlv(17, b"\x03"), tlv(18, b"\x01")])
    files[g + "v2-best-header.bin"] = v2_model_header(0, 1000, best_params)

    # -- header failures
    def model(params: bytes = preset_params, size: int = 10, **kw) -> bytes:
        """A mode 0 archive of 10 bytes in two blocks (dummy payloads: every failure here is found
        by the reader, before a model would be needed)."""
        text = b"hello, you"
        body = leb128(2) + v2_block(3, 6, b"\x01\x02", crc(text[:6])) + v2_block(2, 4, b"\x03", crc(text[6:]))
        return v2_model_header(0, size, params, **kw) + body + u32(crc(text))

    base = model(v2_params(1, [window], kernels=0))
    files[m + "bad-header-check.nc"] = model(check_xor=0x0100)
    files[m + "unknown-mode.nc"] = v2_start(9, 45) + fox + u32(crc(fox))
    files[m + "unknown-preset.nc"] = model(v2_params(9, prefix=b"\x00\x00\x00\x00"))
    files[m + "preset-hash-mismatch.nc"] = model(v2_params(1, prefix=V2_PRESETS[2][0][:4]))
    files[m + "custom-model-is-preset.nc"] = model(
        v2_params(0, [tlv(7, u32(1)), tlv(8, u32(2))], sha=V2_PRESETS[1][0])
    )
    files[m + "custom-model-missing-tokens.nc"] = model(v2_params(0, [tlv(7, u32(1))]))
    files[m + "unknown-override-key.nc"] = model(v2_params(1, [window, tlv(19, b"\x00")]))
    files[m + "segments-zero.nc"] = model(v2_params(1, [tlv(16, b"\x00")]))
    files[m + "segments-too-many.nc"] = model(v2_params(1, [tlv(16, bytes([65]))]))
    files[m + "level-zero.nc"] = model(v2_params(1, [tlv(17, b"\x00")]))
    files[m + "level-default-written.nc"] = model(v2_params(1, [tlv(17, b"\x02")]))
    files[m + "calls-unknown.nc"] = model(v2_params(1, [tlv(18, b"\x02")]))
    files[m + "calls-batched-written.nc"] = model(v2_params(1, [tlv(18, b"\x00")]))
    files[m + "override-not-allowed.nc"] = model(v2_params(1, [tlv(9, b"llama")]))
    files[m + "override-equals-default.nc"] = model(v2_params(1, [tlv(11, u32(1024))]))
    files[m + "override-start-token-default.nc"] = model(v2_params(1, [tlv(7, u32(1))]))
    files[m + "unsorted-override-keys.nc"] = model(v2_params(1, [llm_alone, window]))
    files[m + "override-wrong-length.nc"] = model(v2_params(1, [tlv(11, b"\x00\x08")]))
    files[m + "flash-attn-invalid.nc"] = model(v2_params(1, [tlv(5, b"\x02")]))
    files[m + "window-params-invalid.nc"] = model(v2_params(1, [tlv(12, u32(1020))]))  # 4 + 1020 = 1024
    files[m + "unknown-kernels.nc"] = model(v2_params(1, kernels=2))
    files[m + "fingerprint-not-utf8.nc"] = model(v2_params(1, kernels=0, fingerprint=b"\xff\xfe"))
    files[m + "original-size-too-large.nc"] = v2_start(3, 1 << 50) + leb128(0) + u32(0)
    # original_size 45 written as AD 00 (overlong), and a 10-byte varint above 2^64 - 1.
    files[m + "size-varint-overlong.nc"] = MAGIC + b"\x02\x01\xad\x00" + fox + u32(crc(fox))
    files[m + "size-varint-exceeds-u64.nc"] = MAGIC + b"\x02\x03" + b"\xff" * 9 + b"\x02" + leb128(0) + u32(0)

    # -- truncated at every field of `base` (preset 1, one override, machine-bound, two blocks)
    fp = V2_FINGERPRINT.encode()
    fields = [
        ("magic", 2), ("version", 4), ("mode", 5), ("original-size", 6), ("model-id", 7),
        ("preset-hash", 10), ("override-count", 12), ("override", 15), ("kernels", 19),
        ("probe", 22), ("fingerprint", 25 + len(fp) // 2), ("header-check", 25 + len(fp) + 1),
    ]
    header_len = 25 + len(fp) + 2
    assert base[header_len - 2 : header_len] == struct.pack("<H", crc(base[: header_len - 2]) & 0xFFFF)
    fields += [
        ("block-count", header_len), ("block-fields", header_len + 2), ("block-crc", header_len + 5),
        ("payload", header_len + 9), ("check", len(base) - 2),
    ]
    for name, cut in fields:
        files[m + f"truncated-{name}.nc"] = base[:cut]

    # -- block and end failures
    files[m + "block-varint-overlong.nc"] = (  # n_bytes 45 as AD 00
        v2_start(3, 45) + leb128(1) + b"\xad\x00" + leb128(len(zstd_raw_frame(fox))) + zstd_raw_frame(fox) + u32(crc(fox))
    )
    files[m + "block-too-large.nc"] = v2_start(3, 0xFFFFFFF0) + leb128(1) + leb128(0xFFFFFFF0) + leb128(0xFFFFFFF0) + b"short"
    files[m + "block-past-original-size.nc"] = (
        v2_start(3, 40) + v2_zstd(halves)[len(v2_start(3, 45)) :]
    )
    files[m + "size-mismatch.nc"] = v2_start(3, 46) + v2_zstd([fox])[len(v2_start(3, 45)) :]
    files[m + "zero-symbols.nc"] = (
        v2_model_header(0, 6, preset_params) + leb128(1) + v2_block(0, 6, b"\x01", None) + u32(crc(b"hello!"))
    )
    files[m + "hybrid-one-block.nc"] = (
        v2_model_header(2, 6, preset_params) + leb128(1) + v2_block(1, 6, b"\x01", None) + u32(crc(b"hello!"))
    )
    files[m + "stored-truncated.nc"] = v2_stored(fox)[:-10]
    files[m + "stored-crc-mismatch.nc"] = flip_bit(v2_stored(fox), 7 + 4, 5)  # a bit of the data
    files[m + "trailing-garbage.nc"] = v2_stored(fox) + b"garbage"
    # Decoder-level: a zstd block whose bytes are not those of the check (the only block's
    # CRC-32 is the check), and two blocks whose CRC-32s hold but whose check does not.
    files[m + "zstd-check-mismatch.nc"] = v2_zstd([fox])[:-4] + u32(crc(fox) ^ 1)
    files[m + "zstd-2blocks-check-mismatch.nc"] = v2_zstd(halves)[:-4] + u32(crc(fox) ^ 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    bad = 0
    for rel, data in sorted(build().items()):
        path = FORMATS_DIR / rel
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                print(f"differs: {rel}", file=sys.stderr)
                bad += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {rel} ({len(data)} bytes)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
