"""What each command of the command line does to one file: compress, decompress, test, list,
explain.

The commands in :mod:`nacrith.cli` parse options into a :class:`nacrith.Codec` and a
:class:`FileOptions`, and hand them here; :mod:`nacrith.fileio` supplies the safe outputs and
signal checks.  The coding itself is the library's (:mod:`nacrith.pipeline` moves a file
through the codec one archive member at a time, so memory stays bounded, with the next
members' streams in flight on the workers, if any, beside the current one's).  What is left here
is the order of steps that makes the guarantees hold (the model loaded and the archive
checked before any output exists, ``--verify`` before the output takes its name, ``--rm``
after it) and the report lines.
"""

from __future__ import annotations

import io
import os
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable

import click

from . import api, container, explain, fileio, models, pipeline
from .codec import check_params, model_for
from .errors import ChecksumError, NacrithError
from .fileio import (
    STDIO,
    AtomicOutput,
    Job,
    UserError,
    check_signal,
    display,
    for_each,
    open_input,
    plan,
    read_input,
    say,
    seekable,
    write_file,
    write_stdout,
)


@dataclass(frozen=True)
class FileOptions:
    """Where outputs go and what is reported: the options shared by compress and decompress."""

    output: str | None = None
    to_stdout: bool = False
    force: bool = False
    keep: bool = True
    quiet: bool = False
    verbose: int = 0


class Meter:
    """Counts coded symbols, drives a tqdm bar when wanted, and notices a pending SIGTERM."""

    def __init__(self, show: bool, desc: str):
        self.show = show
        self.desc = desc
        self.count = 0
        self.bar = None

    def total(self, n: int) -> None:
        check_signal()
        if not self.show:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=n, desc=self.desc, unit="tok", file=sys.stderr, leave=False, dynamic_ncols=True
            )
        else:  # a running total (one bar across the members of a chunked file)
            self.bar.total = n
            self.bar.refresh()

    def __call__(self, n: int) -> None:
        check_signal()
        self.count += n
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def bar_wanted(quiet: bool) -> bool:
    return not quiet and fileio.isatty(sys.stderr)


def summary_line(
    src: str, dest: str | None, original: int, compressed: int, symbols: int, seconds: float,
    *, compressing: bool, note: str = "",
) -> str:
    """One line per file: names, sizes, bits per byte, symbols, time and tokens/s."""
    size_in, size_out = (original, compressed) if compressing else (compressed, original)
    bpb = f"{8.0 * compressed / original:.3f} bpb" if original else "- bpb"
    rate = f"{symbols / seconds:,.1f} tokens/s" if symbols and seconds > 0 else "- tokens/s"
    text = (
        f"{display(src)} -> {display(dest)}: {size_in:,} -> {size_out:,} bytes, {bpb}, "
        f"{symbols:,} symbols, {seconds:.2f} s, {rate}"
    )
    return text + (f" ({note})" if note else "")


def _model_symbols(infos: list[container.ArchiveInfo]) -> int:
    return sum(i.total_symbols for i in infos if i.header.mode == container.MODE_MODEL)


def _verbose_lines(infos: list[container.ArchiveInfo]) -> list[str]:
    lines = []
    for k, info in enumerate(infos):
        h = info.header
        what = f"  member {k + 1}/{len(infos)}: " if len(infos) > 1 else "  "
        if h.mode == container.MODE_MODEL and h.params is not None:
            p = h.params
            lines.append(
                f"{what}model sha256 {p.model_sha256.hex()}, {info.n_blocks} block(s) of <= {p.block_tokens} "
                f"tokens, backend {p.backend or '?'}"
            )
        else:
            lines.append(f"{what}stored (not model coded), {info.n_blocks} block(s)")
    return lines


# -- compress -------------------------------------------------------------------------------


def compress_files(
    codec: api.Codec, files: tuple[str, ...], opts: FileOptions, *, verify: bool, chunk_bytes: int | None
) -> int:
    """Compress every file; the exit status of the first failure (0: all done)."""
    warned: list[bool] = []

    def one(src: str) -> None:
        job = plan(src, compressing=True, output=opts.output, to_stdout=opts.to_stdout, force=opts.force)
        if job.dest is None and not opts.force and fileio.isatty(sys.stdout):
            raise UserError(
                "refusing to write compressed data to a terminal; redirect stdout, use -o FILE, or -f to force"
            )
        with open_input(src) as (source, st):
            if st is None or st.st_size:  # load the model outside the timed region
                codec.engine(models.resolve(codec.model))
                check_signal()
            meter = Meter(bar_wanted(opts.quiet), display(src))
            verifying = [0.0]  # seconds spent in --verify, left out of the speed
            digest = container.new_digest()  # of the input, for reading a file output back

            def check(member: bytes, chunk: bytes) -> None:
                if not verify:
                    return
                if job.dest is None:  # stdout cannot be read back: each member before it is written
                    t = time.perf_counter()
                    _verify(True, src, lambda m: codec.decompress(member, progress=m, on_total=m.total) == chunk)
                    verifying[0] += time.perf_counter() - t
                else:
                    digest.update(chunk)

            options = dict(chunk_bytes=chunk_bytes, progress=meter, on_total=meter.total, check=check)
            t0 = time.perf_counter()
            try:
                if job.dest is None:
                    report = pipeline.compress(codec, source, write_stdout, **options)
                else:
                    with AtomicOutput(job.dest) as out:
                        report = pipeline.compress(codec, source, out.file.write, **options)
                        if verify:  # decode what is on disk before it takes the output's name
                            t = time.perf_counter()
                            _verify(opts.quiet, src, _file_decodes_to(codec, out, digest.digest(), report.original))
                            verifying[0] += time.perf_counter() - t
                        out.commit(st)
            finally:
                meter.close()
            seconds = time.perf_counter() - t0 - verifying[0]
        _finish(job, opts, warned)
        if not opts.quiet:
            infos = report.members
            stored = all(i.header.mode == container.MODE_STORED for i in infos)
            notes = ["stored: the model could not shrink it" if stored and report.original else "",
                     "verified" if verify else ""]
            note = "; ".join(n for n in notes if n)
            say(summary_line(src, job.dest, report.original, report.compressed, meter.count, seconds,
                             compressing=True, note=note))
            if opts.verbose:
                for line in _verbose_lines(infos):
                    say(line)

    return for_each(files, one)


def _verify(quiet: bool, src: str, decodes_back: Callable[[Meter], bool]) -> None:
    """--verify: refuse a new archive unless ``decodes_back(meter)`` says it gives back the input."""
    meter = Meter(bar_wanted(quiet), f"{display(src)} (verify)")
    problem = None
    try:
        if not decodes_back(meter):
            problem = "it decodes to other bytes than the input"
    except NacrithError as exc:
        problem = f"it does not decode ({exc})"
    finally:
        meter.close()
    if problem:
        raise ChecksumError(
            f"verification failed, the archive was not written: {problem}. This is a bug in "
            "nacrith, its numeric environment or the disk; please report it with the input if you can."
        )


def _file_decodes_to(codec: api.Codec, out: AtomicOutput, want: bytes, size: int) -> Callable[[Meter], bool]:
    """For a file output: stream-decode the written temporary file (memory: one member) and
    compare its digest and size with the input's."""

    def check(meter: Meter) -> bool:
        out.file.flush()
        got = container.new_digest()
        with open(out.tmp, "rb") as written:
            report = pipeline.decompress(codec, written, got.update, progress=meter)
        return got.digest() == want and report.original == size

    return check


def _finish(job: Job, opts: FileOptions, warned: list[bool]) -> None:
    """Apply --rm once the output is in place."""
    if opts.keep or job.src == STDIO:
        return
    if job.dest is None:
        if not opts.quiet and not warned:
            say("warning: --rm ignored when writing to standard output")
            warned.append(True)
        return
    os.unlink(job.src)


# -- decompress, test, list -----------------------------------------------------------------


def decompress_files(codec: api.Codec, files: tuple[str, ...], opts: FileOptions) -> int:
    """Decompress every file; the exit status of the first failure (0: all done)."""
    warned: list[bool] = []

    def one(src: str) -> None:
        job = plan(src, compressing=False, output=opts.output, to_stdout=opts.to_stdout, force=opts.force)
        with open_input(src) as (source, st):
            meter = _prepare_decoding(codec, source, opts.quiet, src)
            t0 = time.perf_counter()
            try:
                if job.dest is None:
                    report = pipeline.decompress(codec, source, write_stdout, progress=meter)
                else:
                    with AtomicOutput(job.dest) as out:
                        report = pipeline.decompress(codec, source, out.file.write, progress=meter)
                        out.commit(st)
            finally:
                meter.close()
            seconds = time.perf_counter() - t0
        _finish(job, opts, warned)
        if not opts.quiet:
            infos = report.members
            say(summary_line(src, job.dest, report.original, report.compressed, _model_symbols(infos), seconds,
                             compressing=False))
            if opts.verbose:
                for line in _verbose_lines(infos):
                    say(line)

    return for_each(files, one)


def test_files(codec: api.Codec, files: tuple[str, ...], quiet: bool) -> int:
    """Decode every archive completely, writing nothing; the first failure's exit status."""

    def one(src: str) -> None:
        with open_input(src) as (source, _):
            meter = _prepare_decoding(codec, source, quiet, src)
            t0 = time.perf_counter()
            try:
                report = pipeline.decompress(codec, source, None, progress=meter)
            finally:
                meter.close()
        if not quiet:
            click.echo(f"{display(src)}: OK ({report.original:,} bytes, {time.perf_counter() - t0:.2f} s)")

    return for_each(files, one)


test_files.__test__ = False  # a function of the CLI, not a test for pytest to collect


def _prepare_decoding(codec: api.Codec, source: BinaryIO, quiet: bool, src: str) -> Meter:
    """Check a seekable input's structure and load its model before any output exists (a
    pipe is checked member by member as it is decoded); the progress meter, with its total
    when known."""
    meter = Meter(bar_wanted(quiet), display(src))
    if seekable(source):
        start = source.tell()
        infos = container.read_info_all(source, codec.limits)  # payloads skipped: memory bounded
        source.seek(start)
        _preload(codec, infos)
        meter.total(sum(i.total_symbols for i in infos))
    check_signal()
    return meter


def _preload(codec: api.Codec, infos: list[container.ArchiveInfo]) -> None:
    """Load the archive's model before timing starts (errors surface here, before output)."""
    for info in infos:
        params = info.header.params
        if info.header.mode == container.MODE_MODEL and params is not None:
            check_params(params)
            codec.engine(model_for(params, codec.model))


def list_files(files: tuple[str, ...]) -> int:
    """Describe every archive (``info``, ``decompress -l``); the first failure's exit status."""
    return for_each(files, _print_info)


def _print_info(src: str) -> None:
    if src == STDIO:
        infos = container.read_info_all(io.BytesIO(sys.stdin.buffer.read()))
    else:
        with open(src, "rb") as f:
            infos = container.read_info_all(f)
    click.echo(f"{display(src)}:")
    for k, info in enumerate(infos):
        if len(infos) > 1:
            if k:
                click.echo()
            click.echo(f"member {k + 1} of {len(infos)}:")
        click.echo(container.format_info(info))
    click.echo()


# -- explain --------------------------------------------------------------------------------


def explain_file(
    codec: api.Codec, file: str, output: str, *, max_bytes: int, region_bytes: int, quiet: bool
) -> None:
    """Write the HTML page of :mod:`nacrith.explain` for the first ``max_bytes`` of ``file``."""
    data, _ = read_input(file)
    part = data[:max_bytes]
    mf = models.resolve(codec.model)
    engine = codec.engine(mf)
    meter = Meter(bar_wanted(quiet), display(file))
    try:
        records = explain.token_records(engine, part, codec.layout, progress=meter, on_total=meter.total)
    finally:
        meter.close()
    layout = ", ".join(f"{k} {getattr(codec.layout, k)}" for k in ("block_tokens", "stream_tokens", "window", "slide", "sinks"))
    page = explain.render_html(records, part, name=display(file), total_size=len(data),
                               about=f"Model {mf.name}; {layout}.", region_bytes=region_bytes,
                               ensemble=codec.layout.ensemble)
    write_file(output, page.encode("utf-8"))
    if not quiet:
        bits = sum(r.bits for r in records)
        bpb = f"{bits / len(part):.3f} bpb" if part else "- bpb"
        say(f"{display(file)} -> {output}: {len(records):,} tokens over {len(part):,} bytes, {bpb}")
