"""Benchmark nacrith against general-purpose compressors on the same files.

Why this lives in the library rather than in a script: a compression ratio only means
something next to the ratios of well-known tools on the same bytes, measured the same way,
and the measurement must prove that nacrith's output actually decodes.  ``nacrith bench``
is a thin formatter over :func:`bench_file`; other callers (notebooks, CI jobs) get the same
:class:`BenchRow` records.

What is measured, per file and compressor:

* compressed size and bits per byte (``8 * compressed / original``; archive overhead
  included, so tiny files look worse than they are),
* wall-clock seconds to compress and to decompress (``time.perf_counter``), and for nacrith
  also symbols per second each way (the model's speed, the number that matters),
* a round-trip check: the decompressed bytes must equal the original.

Baselines: gzip -9, bzip2 -9, xz -9e and zstd -19 through their Python bindings, plus cmix
and paq8px when those programs are on ``PATH`` (run in a temporary directory; skipped
silently when absent).  The model is loaded and the jitted coder warmed up before the first
timed run so that one-off start-up costs do not pollute the per-file numbers.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import api, models

NACRITH = "nacrith"

# Settings of the baselines, shown in the table next to each name.
BASELINE_LABELS = {
    "gzip": "gzip -9",
    "bzip2": "bzip2 -9",
    "xz": "xz -9e",
    "zstd": "zstd -19",
    "cmix": "cmix",
    "paq8px": "paq8px -8",
}
PAQ8PX_LEVEL = "-8"  # ~2 GB of memory; higher levels need far more for little gain on text


@dataclass
class BenchRow:
    """One compressor on one file.  Sizes are bytes, times seconds; None = not measured."""

    file: str
    compressor: str
    original_size: int
    compressed_size: int | None
    bits_per_byte: float | None
    compress_seconds: float | None
    decompress_seconds: float | None
    symbols: int | None = None  # nacrith only: model symbols coded
    compress_tokens_per_second: float | None = None
    decompress_tokens_per_second: float | None = None
    ok: bool = True  # round trip reproduced the input exactly
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _bpb(original: int, compressed: int) -> float | None:
    return 8.0 * compressed / original if original else None


def _rate(n: int | None, seconds: float | None) -> float | None:
    if not n or not seconds:
        return None
    return n / seconds


# -- in-process baselines -------------------------------------------------------------------


def _zstd_pair() -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]] | None:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return None
    return (
        lambda d: zstandard.ZstdCompressor(level=19).compress(d),
        lambda b: zstandard.ZstdDecompressor().decompress(b),
    )


def _library_baselines() -> list[tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    out = [
        ("gzip", lambda d: gzip.compress(d, compresslevel=9, mtime=0), gzip.decompress),
        ("bzip2", lambda d: bz2.compress(d, compresslevel=9), bz2.decompress),
        ("xz", lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
    ]
    pair = _zstd_pair()
    if pair:
        out.append(("zstd", *pair))
    return out


def _measure_library(
    name: str, comp: Callable[[bytes], bytes], decomp: Callable[[bytes], bytes], label: str, data: bytes
) -> BenchRow:
    t0 = time.perf_counter()
    blob = comp(data)
    t1 = time.perf_counter()
    back = decomp(blob)
    t2 = time.perf_counter()
    ok = back == data
    return BenchRow(
        file=label,
        compressor=BASELINE_LABELS[name],
        original_size=len(data),
        compressed_size=len(blob),
        bits_per_byte=_bpb(len(data), len(blob)),
        compress_seconds=t1 - t0,
        decompress_seconds=t2 - t1,
        ok=ok,
        error=None if ok else "round trip mismatch",
    )


# -- external programs ----------------------------------------------------------------------


def _run(cmd: list[str], cwd: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{' '.join(cmd[:2])} exited with {proc.returncode}: {' '.join(tail)}")


def _cmix(exe: str, work: str) -> tuple[float, float, int, bytes]:
    t0 = time.perf_counter()
    _run([exe, "-c", "input", "input.cmix"], work)
    t1 = time.perf_counter()
    _run([exe, "-d", "input.cmix", "restored"], work)
    t2 = time.perf_counter()
    size = os.path.getsize(os.path.join(work, "input.cmix"))
    return t1 - t0, t2 - t1, size, Path(work, "restored").read_bytes()


def _paq8px(exe: str, work: str) -> tuple[float, float, int, bytes]:
    # paq8px names its archive itself (input.paq8pxNNN, NNN = version) and extracts next to
    # it under the original name, so compress in one folder and extract in another.
    before = set(os.listdir(work))
    t0 = time.perf_counter()
    _run([exe, PAQ8PX_LEVEL, "input"], work)
    t1 = time.perf_counter()
    made = sorted(set(os.listdir(work)) - before)
    if len(made) != 1:
        raise RuntimeError(f"paq8px produced {made or 'no file'}; expected one archive")
    archive = os.path.join(work, made[0])
    out_dir = os.path.join(work, "out")
    os.mkdir(out_dir)
    t2 = time.perf_counter()
    _run([exe, "-d", archive, out_dir], work)
    t3 = time.perf_counter()
    return t1 - t0, t3 - t2, os.path.getsize(archive), Path(out_dir, "input").read_bytes()


EXTERNAL: dict[str, Callable[[str, str], tuple[float, float, int, bytes]]] = {
    "cmix": _cmix,
    "paq8px": _paq8px,
}


def _measure_external(name: str, exe: str, label: str, data: bytes) -> BenchRow:
    row = BenchRow(label, BASELINE_LABELS[name], len(data), None, None, None, None)
    with tempfile.TemporaryDirectory(prefix=f"nacrith-bench-{name}-") as work:
        Path(work, "input").write_bytes(data)
        try:
            c_s, d_s, size, back = EXTERNAL[name](exe, work)
        except (OSError, RuntimeError) as exc:
            row.ok, row.error = False, str(exc)
            return row
    row.compressed_size, row.bits_per_byte = size, _bpb(len(data), size)
    row.compress_seconds, row.decompress_seconds = c_s, d_s
    row.ok = back == data
    row.error = None if row.ok else "round trip mismatch"
    return row


def external_programs() -> dict[str, str]:
    """The optional external compressors found on PATH: name -> executable path."""
    found = {}
    for name in EXTERNAL:
        exe = shutil.which(name)
        if exe:
            found[name] = exe
    return found


# -- nacrith --------------------------------------------------------------------------------


def warm_up(codec: api.Codec) -> None:
    """Load the model and compile/load the jitted coder outside any timed region."""
    blob = codec.compress(b"Warm-up text for the benchmark.\n")
    codec.decompress(blob)


def measure_nacrith(codec: api.Codec, label: str, data: bytes, compressor: str = NACRITH) -> BenchRow:
    """Compress, decompress and compare; a decoding failure is recorded, not raised.
    ``compressor``: the row's name (``nacrith --best`` when levels are compared)."""
    from .errors import NacrithError

    counted = [0]

    def count(n: int) -> None:
        counted[0] += n

    t0 = time.perf_counter()
    blob = codec.compress(data, progress=count)
    t1 = time.perf_counter()
    symbols = counted[0]
    row = BenchRow(
        file=label,
        compressor=compressor,
        original_size=len(data),
        compressed_size=len(blob),
        bits_per_byte=_bpb(len(data), len(blob)),
        compress_seconds=t1 - t0,
        decompress_seconds=None,
        symbols=symbols,
        compress_tokens_per_second=_rate(symbols, t1 - t0),
    )
    # A stored archive (input the model could not shrink) decodes without the model.
    model_coded = any(i.header.mode == 0 for i in api.scan(blob))
    t2 = time.perf_counter()
    try:
        back = codec.decompress(blob)
    except NacrithError as exc:
        row.ok, row.error = False, f"{type(exc).__name__}: {exc}"
        return row
    t3 = time.perf_counter()
    row.decompress_seconds = t3 - t2
    row.decompress_tokens_per_second = _rate(symbols, t3 - t2) if model_coded else None
    if back != data:
        row.ok, row.error = False, "round trip mismatch: decompressed bytes differ from the input"
    return row


# -- driver ---------------------------------------------------------------------------------


def level_codecs(codec: api.Codec, names: Iterable[str]) -> list[tuple[str, api.Codec]]:
    """(row name, Codec) for each level named, with ``codec``'s execution and loaded models
    (``nacrith bench --levels``): ``nacrith --fast``, ``nacrith`` (the default), ``nacrith --best``."""
    from . import levels

    out = []
    for name in names:
        level = levels.get(name)
        row = NACRITH if level is levels.DEFAULT else f"{NACRITH} --{level.name}"
        # --model, when given, replaces every level's model (codec.model is then not None).
        out.append((row, api.Codec(codec.model, level=level, execution=codec.execution, loaded=codec.loaded)))
    return out


def level_environment(codec: api.Codec) -> dict:
    """The model and layout one level's rows were coded with (``--levels``)."""
    mf = models.resolve(codec.model)
    return {"model": mf.name, "model_sha256": mf.sha256, **dataclasses.asdict(codec.layout)}


def is_nacrith(compressor: str) -> bool:
    """Whether a row's compressor is nacrith (at any level)."""
    return compressor == NACRITH or compressor.startswith(NACRITH + " ")


def bench_data(
    codec: api.Codec,
    label: str,
    data: bytes,
    *,
    external: dict[str, str] | None = None,
    nacriths: list[tuple[str, api.Codec]] | None = None,
) -> list[BenchRow]:
    """Rows for nacrith (``codec``, or each of ``nacriths``: row name and Codec), the library
    baselines and ``external`` programs on ``data``."""
    rows = [measure_nacrith(c, label, data, name) for name, c in (nacriths or [(NACRITH, codec)])]
    for name, comp, decomp in _library_baselines():
        rows.append(_measure_library(name, comp, decomp, label, data))
    for name, exe in (external_programs() if external is None else external).items():
        rows.append(_measure_external(name, exe, label, data))
    return rows


def file_label(path: str | os.PathLike, max_bytes: int | None = None) -> str:
    """The name a file's rows carry; says so when only its first ``max_bytes`` are measured."""
    name = os.fspath(path)
    if max_bytes is not None and os.path.getsize(path) > max_bytes:
        return f"{name} (first {max_bytes:,} bytes)"
    return name


def bench_file(
    codec: api.Codec, path: str | os.PathLike, *, max_bytes: int | None = None, **kw
) -> list[BenchRow]:
    """Rows for one file, or for its first ``max_bytes`` bytes (quick runs: the model is slow)."""
    with open(path, "rb") as f:
        data = f.read() if max_bytes is None else f.read(max_bytes)
    return bench_data(codec, file_label(path, max_bytes), data, **kw)


def bench_files(
    codec: api.Codec,
    paths: Iterable[str | os.PathLike],
    *,
    warm: bool = True,
    external: dict[str, str] | None = None,
    on_row: Callable[[BenchRow], None] | None = None,
    max_bytes: int | None = None,
    nacriths: list[tuple[str, api.Codec]] | None = None,
) -> list[BenchRow]:
    """Benchmark every file (or its first ``max_bytes``); ``on_row`` sees each row as soon as
    it is measured.  ``nacriths``: the Codecs compared (default: ``codec`` alone)."""
    if external is None:
        external = external_programs()
    if warm:
        for _, c in nacriths or [(NACRITH, codec)]:
            warm_up(c)
    rows: list[BenchRow] = []
    for path in paths:
        for row in bench_file(codec, path, external=external, max_bytes=max_bytes, nacriths=nacriths):
            rows.append(row)
            if on_row:
                on_row(row)
    return rows


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment(codec: api.Codec) -> dict:
    """What a reader of the numbers needs to reproduce them."""
    import platform

    from . import __version__
    return {
        "nacrith_version": __version__,
        **level_environment(codec),
        "lanes": codec.lanes,
        "threads": codec.engine(models.resolve(codec.model)).threads,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
