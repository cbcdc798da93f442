"""The ``nacrith`` command line, modelled on gzip/xz/zstd.

Why it looks the way it does: people already know ``zstd FILE``, ``-c``, ``-o``, ``-f``,
``-k``/``--rm``, ``-l`` and ``-t`` (here ``nacrith test``), and scripts already rely on their conventions (input kept
unless asked, no silent overwrite, a partial output never left behind, a non-zero status on
any failure).  nacrith keeps those conventions and adds what a neural codec needs: a model
choice, a thread count, and per-file speed reporting (the model is slow, so tokens/s matters).

Guarantees:

* Output is written to a temporary file in the destination directory, fsynced and renamed
  into place; on any error or interrupt (Ctrl-C, SIGTERM) the temporary file is removed.
  The input is only read, and ``--rm`` deletes it only after the output is safely in place.
* Every :class:`~nacrith.errors.NacrithError` becomes one line ``nacrith: error: ...`` and
  the exit status of its class; see ``EXIT_CODES`` and ``docs/cli.md``.
* With several inputs, a failing file is reported and skipped; the exit status is that of
  the first failure.

Heavy work stays in the library (:mod:`nacrith.api`, :mod:`nacrith.bench`); this module
parses options, names files, moves bytes and formats reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import signal
import stat
import secrets
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import click

from . import __version__, api, bench, bench_report, chunked, container, explain, models
from .codec import (
    DEFAULT_LANES,
    Layout,
    check_params,
    model_for,
)
from .ensemble import LLM_ONLY
from .errors import ChecksumError, NacrithError, NacrithWarning

SUFFIX = ".nc"
STDIO = "-"
TMP_SUFFIX = ".nacrith-tmp"

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

EXIT_CODES = """\b
Exit status:
  0    success
  1    failure: I/O error, refused overwrite, unknown suffix, tokenization error
  2    usage error (bad option or argument)
  3    input is not a nacrith archive, is corrupt, or needs a newer nacrith
  4    checksum mismatch (also: bench round trip failed)
  5    model not installed, not found, or not the archive's model
  6    runtime environment differs from the one that wrote the archive
  7    a size declared by the archive exceeds a safety limit
  8    a worker process died (--workers), or a Ray worker failed for good (--engine ray)
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM)
"""


# -- errors and signals ---------------------------------------------------------------------


class UserError(Exception):
    """A refusal by the CLI itself (existing output, unknown suffix, ...): exit status 1."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM delivered as an interrupt, so that ``finally`` blocks clean up temp files."""


_signals: list[int] = []  # signals received during the current command


def _interrupt_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame) -> None:
    _signals.append(signum)
    if _in_native_callback(frame):
        return  # an exception would be swallowed there; _check_signal raises it later
    raise _interrupt_for(signum)


def _in_native_callback(frame) -> bool:
    """Whether llama.cpp's log callback (Python run from C inside a llama.cpp call) is running.

    An exception raised inside a ctypes callback is printed and ignored, so the handler only
    records the signal there; the CLI's checkpoints (:func:`_check_signal`) raise it soon after.
    Everywhere else, including the rest of the llama.cpp layer, the interrupt is raised at once.
    """
    return frame is not None and frame.f_code.co_name == "_quiet_log"


def _check_signal() -> None:
    """Raise the interrupt for a signal whose exception was deferred or swallowed."""
    if _signals:
        raise _interrupt_for(_signals[0])


def _install_handlers() -> Callable[[], None]:
    """Route SIGTERM (and SIGINT unless ignored) to :func:`_on_signal`; returns an undo function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, _on_signal)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        old[signal.SIGINT] = signal.signal(signal.SIGINT, _on_signal)

    def restore() -> None:
        for signum, handler in old.items():
            signal.signal(signum, handler)

    return restore


def _say(message: str) -> None:
    click.echo(f"nacrith: {message}", err=True)


def _error(message: str) -> None:
    _say(f"error: {message}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``nacrith: warning:`` line (ours), or Python's usual format (others)."""
    if issubclass(category, NacrithWarning):
        _say(f"warning: {message}")
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), err=True)


def _os_message(exc: OSError, name: str | None = None) -> str:
    text = exc.strerror or str(exc)
    where = exc.filename if exc.filename is not None else name
    return f"{where}: {text}" if where else text


def _describe(exc: BaseException, name: str | None) -> str:
    if isinstance(exc, OSError):
        return _os_message(exc, name)
    if isinstance(exc, UserError):  # names its file itself
        return str(exc)
    return f"{name}: {exc}" if name else str(exc)


def _silence_stdout() -> None:
    """After EPIPE, stop the interpreter from failing again when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


# Filter mode (``nacrith [-d] [OPTIONS] [FILE...]`` without a command, as tar's -I uses it):
# flags that pick the command, and the options whose value is the next argument.
_MODE_FLAGS = set("dzlt")  # decompress, compress, list, test
_LONG_MODE_FLAGS = {
    "--decompress": "d", "--uncompress": "d", "--compress": "z", "--list": "l", "--test": "t",
}
_CLUSTER_FLAGS = set("dzltcfkqv")  # short flags without a value that may be combined (-dc)
_VALUE_OPTIONS = {
    "-o", "--output", "--model", "-T", "--threads", "--lanes",
    "--block-tokens", "--stream-tokens", "--window", "--slide", "--sinks", "--workers", "--chunk-bytes",
    "--engine", "--address",
}


def filter_args(args: list[str]) -> list[str]:
    """Turn a command-less, zstd-style argument list into a subcommand's arguments.

    ``-d``/``--decompress`` picks ``decompress``, ``-l`` ``decompress -l``, ``-t`` ``test``,
    otherwise ``compress``; the other arguments go to that command unchanged.  Writing to
    standard output (no FILE, or ``-c``) is quiet unless ``-v`` is given, like zstd.
    """
    modes: list[str] = []
    rest: list[str] = []
    positional = 0
    to_stdout = verbose = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest.append(arg)
            positional += len(args) - i
            rest.extend(args[i:])
            break
        if arg in _LONG_MODE_FLAGS:
            modes.append(_LONG_MODE_FLAGS[arg])
            continue
        if arg in _VALUE_OPTIONS:
            rest.append(arg)
            if i < len(args):
                rest.append(args[i])
                i += 1
            continue
        if len(arg) > 1 and arg[0] == "-" and arg[1] != "-" and set(arg[1:]) <= _CLUSTER_FLAGS:
            letters = [c for c in arg[1:] if c not in _MODE_FLAGS]
            modes.extend(c for c in arg[1:] if c in _MODE_FLAGS)
            to_stdout = to_stdout or "c" in letters
            verbose = verbose or "v" in letters
            if letters:
                rest.append("-" + "".join(letters))
            continue
        if arg == "--stdout":
            to_stdout = True
        elif arg == "--verbose":
            verbose = True
        elif not arg.startswith("-"):  # a FILE ('-', standard input, is not one)
            positional += 1
        rest.append(arg)
    mode = modes[-1] if modes else "z"
    if mode == "t":
        return ["test", *rest]
    if mode == "l":
        return ["decompress", "-l", *rest]
    command = "decompress" if mode == "d" else "compress"
    if (to_stdout or not positional) and not verbose:
        rest.insert(0, "-q")
    return [command, *rest]


class _Main(click.Group):
    """The top-level group: maps exceptions to one message line and an exit status.

    Called without a command (``nacrith -d``, ``nacrith FILE``, ``nacrith < in > out``) it
    works like zstd/gzip through :func:`filter_args`; ``nacrith`` alone on a terminal still
    prints the help.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        if not ctx.resilient_parsing and not (args and args[0] in self.commands):
            own = {"-V", "--version", *ctx.help_option_names}
            if args and args[0] not in own:
                args = filter_args(args)
            elif not args and not _isatty(sys.stdin):
                args = filter_args(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        _signals.clear()
        restore = _install_handlers()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", NacrithWarning)  # once per archive, not per process
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except Terminated:
            _say("terminated")
            ctx.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            _say("interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            _silence_stdout()
            _error("(stdout): Broken pipe")
            ctx.exit(1)
        except (NacrithError, UserError) as exc:
            _error(str(exc))
            ctx.exit(exc.exit_code)
        except OSError as exc:
            _error(_os_message(exc))
            ctx.exit(1)
        finally:
            _remove_live_tmp()
            restore()


def _for_each(names: tuple[str, ...], work: Callable[[str], None]) -> int:
    """Run ``work`` on every name; report failures and return the first failure's status."""
    status = 0
    for name in names:
        _check_signal()
        try:
            work(name)
            _check_signal()
        except BrokenPipeError:
            raise
        except (NacrithError, UserError, OSError) as exc:
            _error(_describe(exc, _display(name)))
            status = status or getattr(exc, "exit_code", 1)
    return status


# -- files ----------------------------------------------------------------------------------


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _display(name: str | None) -> str:
    if name is None:
        return "(stdout)"
    return "(stdin)" if name == STDIO else name


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files not yet renamed into place.  A name is registered *before* the file is
# created, so an interrupt arriving at any moment leaves nothing behind: ``_Main.invoke``
# removes whatever is still registered when a command ends.
_live_tmp: set[str] = set()


def _discard_tmp(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        return  # keep it registered; the final sweep tries again
    _live_tmp.discard(path)


def _remove_live_tmp() -> None:
    for path in list(_live_tmp):
        _discard_tmp(path)


class AtomicOutput:
    """A file that appears at ``dest`` only when :meth:`commit` succeeds.

    The bytes go to a hidden temporary file next to ``dest`` (same file system, so the final
    ``os.replace`` is atomic); it is fsynced, given the source's permission bits and times,
    and renamed.  Leaving the ``with`` block without committing removes the temporary file.
    """

    def __init__(self, dest: str):
        self.dest = dest
        self.committed = False
        folder = os.path.dirname(os.path.abspath(dest))
        while True:
            self.tmp = os.path.join(folder, f".{os.path.basename(dest)}.{secrets.token_hex(4)}{TMP_SUFFIX}")
            _live_tmp.add(self.tmp)
            try:
                fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
                break
            except FileExistsError:
                _live_tmp.discard(self.tmp)
            except OSError as exc:  # name the destination, not the random temporary name
                _live_tmp.discard(self.tmp)
                raise OSError(exc.errno, exc.strerror, dest) from None
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def __enter__(self) -> AtomicOutput:
        return self

    def commit(self, source: os.stat_result | None = None) -> None:
        f = self.file
        f.flush()
        mode = stat.S_IMODE(source.st_mode) & 0o777 if source else 0o666 & ~_current_umask()
        os.fchmod(f.fileno(), mode)
        os.fsync(f.fileno())
        f.close()
        if source is not None:
            os.utime(self.tmp, ns=(source.st_atime_ns, source.st_mtime_ns))
        os.replace(self.tmp, self.dest)
        self.committed = True
        _live_tmp.discard(self.tmp)
        _fsync_dir(os.path.dirname(os.path.abspath(self.dest)))

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self.committed:
            try:
                self.file.close()
            except OSError:  # the buffered rest failed too (full disk): the file goes anyway
                pass
            _discard_tmp(self.tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno in _WRITE_ERRNOS:
            # Writing the output failed; name it rather than the input being processed.
            raise OSError(exc.errno, exc.strerror, self.dest) from None
        return False


# Errors of writes and flushes, which carry no file name of their own.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}


def _fsync_dir(folder: str) -> None:
    """Make the rename durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class Job:
    """One input and where its output goes (``dest`` None = standard output)."""

    src: str
    dest: str | None


def plan(src: str, *, compressing: bool, output: str | None, to_stdout: bool, force: bool) -> Job:
    """Decide the output name for ``src`` and refuse what must not happen."""
    if to_stdout or output == STDIO or (output is None and src == STDIO):
        return Job(src, None)
    if output is not None:
        dest = output
    elif compressing:
        if src.endswith(SUFFIX) and not force:
            raise UserError(f"{src}: already has the {SUFFIX} suffix; use -o to name the output or -f to add another")
        dest = src + SUFFIX
    else:
        base = os.path.basename(src)
        if not base.endswith(SUFFIX) or base == SUFFIX:
            raise UserError(
                f"{src}: unknown suffix (expected {SUFFIX}); name the output with -o FILE or write to stdout with -c"
            )
        dest = src[: -len(SUFFIX)]
    if os.path.isdir(dest):
        raise UserError(f"{dest}: is a directory; name an output file with -o")
    if os.path.lexists(dest):
        if src != STDIO and os.path.exists(dest) and os.path.samefile(src, dest):
            raise UserError(f"{src}: input and output are the same file")
        if not force:
            raise UserError(f"{dest}: already exists; use -f to overwrite")
    return Job(src, dest)


def _read_input(src: str) -> tuple[bytes, os.stat_result | None]:
    if src == STDIO:
        return sys.stdin.buffer.read(), None
    with open(src, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", src)
        return f.read(), st if stat.S_ISREG(st.st_mode) else None


@contextlib.contextmanager
def _open_input(src: str) -> Iterator[tuple[BinaryIO, os.stat_result | None]]:
    """The input as a binary file object (read in pieces: memory stays bounded), with its
    status when it is a regular file."""
    if src == STDIO:
        yield sys.stdin.buffer, None
        return
    with open(src, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", src)
        yield f, st if stat.S_ISREG(st.st_mode) else None


def _write_stdout(data: bytes) -> None:
    out = sys.stdout.buffer
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:  # e.g. a full disk: name stdout, and let the exit flush succeed
        _silence_stdout()
        raise OSError(exc.errno, exc.strerror, "(stdout)") from None


# -- codec and progress ---------------------------------------------------------------------

# A process may run several commands (tests, callers of ``main`` in-process); loading a model
# costs a second and ~200 MB, so codecs (and their loaded engines) are kept per model/threads.
_codecs: dict[tuple[str | None, int | None], api.Codec] = {}


def get_codec(
    model: str | None, threads: int | None, layout: Layout = Layout(), lanes: int = DEFAULT_LANES, workers: int = 1
) -> api.Codec:
    codec = _codecs.get((model, threads))
    if codec is None:
        codec = _codecs[(model, threads)] = api.Codec(model, threads=threads)
    codec.layout = layout
    codec.lanes = lanes
    codec.workers = workers
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    codec.engine_kind = meta.get("nacrith.engine") or "local"  # set by _engine_options
    codec.address = meta.get("nacrith.address")
    return codec


def _remember_ensemble(ctx: click.Context, param, value: str | None) -> None:
    # Kept out of every command's signature: _layout reads it back from the context.
    ctx.meta["nacrith.ensemble"] = value


def _layout(block_tokens, stream_tokens, window, slide, sinks) -> Layout:
    """The layout options as a checked Layout (bad combinations are usage errors)."""
    default = Layout()
    ctx = click.get_current_context(silent=True)
    off = ctx is not None and ctx.meta.get("nacrith.ensemble") == "off"
    try:
        return Layout(
            block_tokens or None,  # None: one block per stream
            stream_tokens or default.stream_tokens,
            window or default.window,
            default.slide if slide is None else slide,
            default.sinks if sinks is None else sinks,
            LLM_ONLY if off else default.ensemble,
        ).check(click.BadParameter)
    except click.BadParameter as exc:
        raise click.UsageError(str(exc)) from None


class Meter:
    """Counts coded symbols, drives a tqdm bar when wanted, and notices a pending SIGTERM."""

    def __init__(self, show: bool, desc: str):
        self.show = show
        self.desc = desc
        self.count = 0
        self.bar = None

    def total(self, n: int) -> None:
        _check_signal()
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
        _check_signal()
        self.count += n
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _bar_wanted(quiet: bool) -> bool:
    return not quiet and _isatty(sys.stderr)


def summary_line(
    src: str, dest: str | None, original: int, compressed: int, symbols: int, seconds: float,
    *, compressing: bool, note: str = "",
) -> str:
    """One line per file: names, sizes, bits per byte, symbols, time and tokens/s."""
    size_in, size_out = (original, compressed) if compressing else (compressed, original)
    bpb = f"{8.0 * compressed / original:.3f} bpb" if original else "- bpb"
    rate = f"{symbols / seconds:,.1f} tokens/s" if symbols and seconds > 0 else "- tokens/s"
    text = (
        f"{_display(src)} -> {_display(dest)}: {size_in:,} -> {size_out:,} bytes, {bpb}, "
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


# -- options --------------------------------------------------------------------------------


_model_option = click.option(
    "--model",
    metavar="NAME|PATH",
    help=f"Model preset ({', '.join(models.PRESETS)}) or a GGUF file.  Default: $NACRITH_MODEL, else "
    f"{models.DEFAULT_MODEL}; when decompressing, the model recorded in the archive.",
)
_threads_option = click.option(
    "-T", "--threads", type=click.IntRange(min=1), metavar="N", help="llama.cpp threads (default: free cores)."
)
_D = Layout()
_LAYOUT_OPTIONS = [
    click.option("--block-tokens", type=click.IntRange(min=1), metavar="N",
                 help="Symbols per block, the unit of checksums [one block per stream]."),
    click.option("--stream-tokens", type=click.IntRange(min=1), metavar="N",
                 help=f"Symbols per independent stream, a multiple of --block-tokens [{_D.stream_tokens}]."),
    click.option("--window", type=click.IntRange(min=2), metavar="N",
                 help=f"Context window in tokens (KV positions per stream) [{_D.window}]."),
    click.option("--slide", type=click.IntRange(min=1), metavar="N",
                 help=f"Tokens dropped from the window when it is full [{_D.slide}]."),
    click.option("--sinks", type=click.IntRange(min=0), metavar="N",
                 help=f"First tokens of a stream never dropped (attention sinks) [{_D.sinks}]."),
    click.option("--ensemble", type=click.Choice(["on", "off"]), expose_value=False, callback=_remember_ensemble,
                 help="Mix the LLM with the online n-gram, bias-head and match models (on), or use the LLM alone "
                      "(off: a few % larger, a few % faster) [on]."),
]
_workers_option = click.option(
    "--workers", type=click.IntRange(1, 256), default=1, show_default=True, metavar="N",
    help="Worker processes, each with its own model, coding whole streams (speed only; "
    "at most one per llama.cpp thread: -T is the total).",
)


def _remember(key: str):
    def store(ctx: click.Context, param, value) -> None:
        ctx.meta[key] = value  # kept out of the commands' signatures: get_codec reads it

    return store


def _engine_options(f):
    f = click.option(
        "--address", metavar="ADDR", expose_value=False, callback=_remember("nacrith.address"),
        help="With --engine ray: the cluster's address (HOST:PORT of its head) [$RAY_ADDRESS, "
        "else a Ray started on this machine, else a new local one].",
    )(f)
    return click.option(
        "--engine", type=click.Choice(["local", "ray"]), expose_value=False, callback=_remember("nacrith.engine"),
        help="Where streams are coded: here (local) or on a Ray cluster, --workers actors of -T threads each "
        "(ray; needs pip install 'nacrith[ray]'); the same archive either way [local].",
    )(f)


_lanes_option = click.option(
    "--lanes", type=click.IntRange(1, 64), default=DEFAULT_LANES, show_default=True, metavar="N",
    help="Streams decoded together in one model call (speed only).",
)


def _layout_options(f):
    for opt in reversed(_LAYOUT_OPTIONS):
        f = opt(f)
    return f


def _io_options(f):
    for opt in reversed(
        [
            click.argument("files", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True)),
            click.option("-o", "--output", metavar="PATH", type=click.Path(allow_dash=True),
                         help="Write to PATH (only with a single input; '-' = stdout)."),
            click.option("-c", "--stdout", "to_stdout", is_flag=True,
                         help="Write to standard output (several inputs are concatenated)."),
            click.option("-f", "--force", is_flag=True,
                         help="Overwrite existing output files; allow compressed data on a terminal."),
            click.option("-k", "--keep/--rm", "keep", default=True,
                         help="Keep (default) or remove the input once the output is safely written."),
            click.option("-q", "--quiet", is_flag=True, help="No summary lines or progress bar."),
            click.option("-v", "--verbose", count=True, help="Also describe each archive."),
            _model_option,
            _threads_option,
        ]
    ):
        f = opt(f)
    return f


def _inputs(files: tuple[str, ...], output: str | None, to_stdout: bool) -> tuple[str, ...]:
    if not files:
        if _isatty(sys.stdin):
            raise click.UsageError("no input files, and standard input is a terminal")
        files = (STDIO,)
    if output is not None and len(files) > 1:
        raise click.UsageError("-o/--output takes a single input file")
    if output is not None and to_stdout:
        raise click.UsageError("-o/--output and -c/--stdout exclude each other")
    if files.count(STDIO) > 1:
        raise click.UsageError("standard input ('-') can be read only once")
    return files


# -- commands -------------------------------------------------------------------------------


@click.group(
    cls=_Main,
    epilog=EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="nacrith")
def main() -> None:
    """nacrith: lossless compression with a small language model.

    Files are compressed to FILE.nc and decompressed back; with no FILE or with '-' the
    command reads standard input and writes standard output.  The model that compressed
    an archive must be available to decompress it (its sha256 is recorded in the archive).

    Without a COMMAND, nacrith works like gzip/zstd: 'nacrith [OPTIONS] [FILE...]'
    compresses, 'nacrith -d' decompresses, '-l' lists, '-t' tests; with no FILE it filters
    standard input to standard output, so 'tar -I nacrith' works.
    """


@main.command(short_help="Compress files to FILE.nc.")
@_io_options
@_layout_options
@click.option("--verify", is_flag=True,
              help="Decode each new archive and compare it with the input before keeping it "
                   "(decoding takes longer than compressing).")
@_workers_option
@_engine_options
@click.option("--chunk-bytes", type=click.IntRange(min=1), metavar="N",
              help=f"Input bytes per archive member; bounds memory (changes the output) [{chunked.CHUNK_BYTES}].")
@click.pass_context
def compress(
    ctx, files, output, to_stdout, force, keep, quiet, verbose, model, threads,
    block_tokens, stream_tokens, window, slide, sinks, verify, workers, chunk_bytes,
):
    """Compress FILEs to FILE.nc (standard input to standard output)."""
    files = _inputs(files, output, to_stdout)
    codec = get_codec(model, threads, _layout(block_tokens, stream_tokens, window, slide, sinks), workers=workers)
    warned = []

    def one(src: str) -> None:
        job = plan(src, compressing=True, output=output, to_stdout=to_stdout, force=force)
        if job.dest is None and not force and _isatty(sys.stdout):
            raise UserError(
                "refusing to write compressed data to a terminal; redirect stdout, use -o FILE, or -f to force"
            )
        with _open_input(src) as (source, st):
            if st is None or st.st_size:  # load the model outside the timed region
                codec.engine(models.resolve(codec.model))
                _check_signal()
            meter = Meter(_bar_wanted(quiet), _display(src))
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
                    report = chunked.compress(codec, source, _write_stdout, **options)
                else:
                    with AtomicOutput(job.dest) as out:
                        report = chunked.compress(codec, source, out.file.write, **options)
                        if verify:  # decode what is on disk before it takes the output's name
                            t = time.perf_counter()
                            _verify(quiet, src, _file_decodes_to(codec, out, digest.digest(), report.original))
                            verifying[0] += time.perf_counter() - t
                        out.commit(st)
            finally:
                meter.close()
            seconds = time.perf_counter() - t0 - verifying[0]
        _finish(job, keep, quiet, warned)
        if not quiet:
            infos = report.members
            stored = all(i.header.mode == container.MODE_STORED for i in infos)
            notes = ["stored: the model could not shrink it" if stored and report.original else "",
                     "verified" if verify else ""]
            note = "; ".join(n for n in notes if n)
            _say(summary_line(src, job.dest, report.original, report.compressed, meter.count, seconds,
                              compressing=True, note=note))
            if verbose:
                for line in _verbose_lines(infos):
                    _say(line)

    ctx.exit(_for_each(files, one))


def _verify(quiet: bool, src: str, decodes_back: Callable[["Meter"], bool]) -> None:
    """--verify: refuse a new archive unless ``decodes_back(meter)`` says it gives back the input."""
    meter = Meter(_bar_wanted(quiet), f"{_display(src)} (verify)")
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


def _file_decodes_to(codec: api.Codec, out: "AtomicOutput", want: bytes, size: int) -> Callable[["Meter"], bool]:
    """For a file output: stream-decode the written temporary file (memory: one member) and
    compare its digest and size with the input's."""

    def check(meter: "Meter") -> bool:
        out.file.flush()
        got = container.new_digest()
        with open(out.tmp, "rb") as written:
            report = chunked.decompress(codec, written, got.update, progress=meter)
        return got.digest() == want and report.original == size

    return check


def _finish(job: Job, keep: bool, quiet: bool, warned: list) -> None:
    """Apply --rm once the output is in place."""
    if keep or job.src == STDIO:
        return
    if job.dest is None:
        if not quiet and not warned:
            _say("warning: --rm ignored when writing to standard output")
            warned.append(True)
        return
    os.unlink(job.src)


@main.command(short_help="Decompress FILE.nc to FILE.")
@_io_options
@click.option("-l", "--list", "list_only", is_flag=True, help="Describe the archives (like 'nacrith info').")
@_lanes_option
@_workers_option
@_engine_options
@click.pass_context
def decompress(ctx, files, output, to_stdout, force, keep, quiet, verbose, model, threads, list_only, lanes, workers):
    """Decompress FILE.nc to FILE (standard input to standard output)."""
    files = _inputs(files, output, to_stdout)
    if list_only:
        ctx.exit(_for_each(files, _print_info))
    codec = get_codec(model, threads, lanes=lanes, workers=workers)
    warned = []

    def one(src: str) -> None:
        job = plan(src, compressing=False, output=output, to_stdout=to_stdout, force=force)
        with _open_input(src) as (source, st):
            meter = _prepare_decoding(codec, source, model, quiet, src)
            t0 = time.perf_counter()
            try:
                if job.dest is None:
                    report = chunked.decompress(codec, source, _write_stdout, progress=meter)
                else:
                    with AtomicOutput(job.dest) as out:
                        report = chunked.decompress(codec, source, out.file.write, progress=meter)
                        out.commit(st)
            finally:
                meter.close()
            seconds = time.perf_counter() - t0
        _finish(job, keep, quiet, warned)
        if not quiet:
            infos = report.members
            _say(summary_line(src, job.dest, report.original, report.compressed, _model_symbols(infos), seconds,
                              compressing=False))
            if verbose:
                for line in _verbose_lines(infos):
                    _say(line)

    ctx.exit(_for_each(files, one))


def _prepare_decoding(codec: api.Codec, source: BinaryIO, model: str | None, quiet: bool, src: str) -> "Meter":
    """Check a seekable input's structure and load its model before any output exists (a
    pipe is checked member by member as it is decoded); the progress meter, with its total
    when known."""
    meter = Meter(_bar_wanted(quiet), _display(src))
    if _seekable(source):
        start = source.tell()
        infos = container.read_info_all(source, codec.limits)  # payloads skipped: memory bounded
        source.seek(start)
        _preload(codec, infos, model)
        meter.total(sum(i.total_symbols for i in infos))
    _check_signal()
    return meter


def _seekable(f: BinaryIO) -> bool:
    try:
        return f.seekable()
    except (AttributeError, ValueError, OSError):
        return False


def _preload(codec: api.Codec, infos: list[container.ArchiveInfo], model: str | None) -> None:
    """Load the archive's model before timing starts (errors surface here, before output)."""
    for info in infos:
        params = info.header.params
        if info.header.mode == container.MODE_MODEL and params is not None:
            check_params(params)
            codec.engine(model_for(params, model))


def _print_info(src: str) -> None:
    if src == STDIO:
        infos = container.read_info_all(io.BytesIO(sys.stdin.buffer.read()))
    else:
        with open(src, "rb") as f:
            infos = container.read_info_all(f)
    click.echo(f"{_display(src)}:")
    for k, info in enumerate(infos):
        if len(infos) > 1:
            if k:
                click.echo()
            click.echo(f"member {k + 1} of {len(infos)}:")
        click.echo(container.format_info(info))
    click.echo()


@main.command(short_help="Describe archives without decoding them.")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.pass_context
def info(ctx, files):
    """Describe archives (header, blocks, sizes) without decoding them."""
    ctx.exit(_for_each(files, _print_info))


@main.command("test", short_help="Check that archives decode correctly.")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing for good archives.")
@_model_option
@_threads_option
@_lanes_option
@_workers_option
@_engine_options
@click.pass_context
def test_cmd(ctx, files, quiet, model, threads, lanes, workers):
    """Decode archives completely and check them, writing nothing (like 'zstd -t')."""
    codec = get_codec(model, threads, lanes=lanes, workers=workers)

    def one(src: str) -> None:
        with _open_input(src) as (source, _):
            meter = _prepare_decoding(codec, source, model, quiet, src)
            t0 = time.perf_counter()
            try:
                report = chunked.decompress(codec, source, None, progress=meter)
            finally:
                meter.close()
        if not quiet:
            click.echo(f"{_display(src)}: OK ({report.original:,} bytes, {time.perf_counter() - t0:.2f} s)")

    ctx.exit(_for_each(files, one))


# -- bench ----------------------------------------------------------------------------------

def _kb_per_s(size: int, seconds: float | None) -> str:
    """Original kilobytes (1000 bytes) per second, the speed users feel; '-' if not measured."""
    if not seconds or seconds <= 0:
        return "-"
    return f"{size / seconds / 1000:,.1f}"


_COLUMNS = [
    # header, width, BenchRow -> text
    ("compressor", 10, lambda r: r.compressor),
    ("original", 12, lambda r: f"{r.original_size:,}"),
    ("compressed", 12, lambda r: "-" if r.compressed_size is None else f"{r.compressed_size:,}"),
    ("bpb", 7, lambda r: "-" if r.bits_per_byte is None else f"{r.bits_per_byte:.3f}"),
    ("comp s", 9, lambda r: "-" if r.compress_seconds is None else f"{r.compress_seconds:.3f}"),
    ("comp tok/s", 10, lambda r: "-" if r.compress_tokens_per_second is None else f"{r.compress_tokens_per_second:,.1f}"),
    ("comp KB/s", 9, lambda r: _kb_per_s(r.original_size, r.compress_seconds)),
    ("decomp s", 9, lambda r: "-" if r.decompress_seconds is None else f"{r.decompress_seconds:.3f}"),
    ("dec tok/s", 10, lambda r: "-" if r.decompress_tokens_per_second is None else f"{r.decompress_tokens_per_second:,.1f}"),
    ("dec KB/s", 9, lambda r: _kb_per_s(r.original_size, r.decompress_seconds)),
    ("ok", 3, lambda r: "yes" if r.ok else "NO"),
]


def format_row(row: bench.BenchRow | None, file_width: int) -> str:
    """One table line (``row`` None = the header); text left-aligned, numbers right-aligned."""
    cells = ["file".ljust(file_width) if row is None else row.file.ljust(file_width)]
    for k, (title, width, get) in enumerate(_COLUMNS):
        text = title if row is None else get(row)
        cells.append(text.ljust(width) if k == 0 else text.rjust(width))
    return "  ".join(cells).rstrip()


@main.command("bench", short_help="Compare nacrith with gzip, bzip2, xz, zstd, cmix, paq8px.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@_model_option
@_layout_options
@_lanes_option
@_workers_option
@_threads_option
@click.option("--max-bytes", type=click.IntRange(min=1), metavar="N",
              help="Measure only the first N bytes of each file (quick runs; the table says so).")
@click.option("--json", "json_path", metavar="PATH", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the measurements as JSON to PATH ('-' = stdout, table then goes to stderr).")
@click.option("--csv", "csv_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Also write the table as CSV to PATH.")
@click.option("--png", "png_path", metavar="PATH", type=click.Path(dir_okay=False),
              help=f"Also draw bits per byte per file and compressor as a PNG chart (needs {bench_report.PLOT_INSTALL}).")
@click.option("--from-json", "from_json", metavar="PATH", type=click.Path(dir_okay=False, exists=True), multiple=True,
              help="Measure nothing: print the table (and --csv/--png) from saved --json documents (repeatable: rows are joined).")
@click.option("--ablation", is_flag=True,
              help="Instead: what each part of the ensemble buys (one LLM pass, every variant coded; Markdown table).")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
@click.pass_context
def bench_cmd(
    ctx, files, model, block_tokens, stream_tokens, window, slide, sinks, lanes, workers, threads, max_bytes,
    json_path, csv_path, png_path, from_json, ablation, quiet,
):
    """Compare nacrith with gzip, bzip2, xz, zstd (and cmix, paq8px if installed).

    Each file is compressed and decompressed by every compressor; nacrith's round trip must
    reproduce the file exactly or the command fails with status 4.
    """
    if from_json:
        if files:
            raise click.UsageError("--from-json takes no FILE: the measurements come from the document")
        env, rows = bench_report.load_json(from_json[0])
        for more in from_json[1:]:
            more_env, more_rows = bench_report.load_json(more)
            rows = rows + more_rows
            if more_env.get("max_bytes") != env.get("max_bytes"):
                env = dict(env, max_bytes=None)  # the row labels say which files were cut
        width = max([len("file"), *(len(r.file) for r in rows)])
        click.echo(format_row(None, width), err=json_path == STDIO)
        for row in rows:
            click.echo(format_row(row, width), err=json_path == STDIO)
        _bench_outputs(env, rows, json_path, csv_path, png_path)
        ctx.exit(0)
    if not files:
        raise click.UsageError("no FILE to measure (or --from-json PATH to reuse measurements)")
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "No such file", path)
    codec = get_codec(model, threads, _layout(block_tokens, stream_tokens, window, slide, sinks), lanes, workers)
    if ablation:
        _ablation(codec, files, max_bytes, quiet)
        ctx.exit(0)
    external = bench.external_programs()
    table_to_err = json_path == STDIO
    width = max(len("file"), *(len(bench.file_label(f, max_bytes)) for f in files))

    def emit(text: str) -> None:
        click.echo(text, err=table_to_err)

    if not quiet:
        found = ", ".join(external) if external else "none found"
        _say(f"loading the model and warming up (external compressors: {found})")
    env = bench.environment(codec)
    env["max_bytes"] = max_bytes
    emit(format_row(None, width))

    def on_row(row: bench.BenchRow) -> None:
        emit(format_row(row, width))

    rows = bench.bench_files(codec, files, external=external, on_row=on_row, max_bytes=max_bytes)
    env["peak_rss_mib"] = bench.peak_rss_mib()
    if not quiet:
        _say(
            f"layout: {', '.join(f'{f.name}={getattr(codec.layout, f.name)}' for f in dataclasses.fields(codec.layout) if f.name != 'ensemble')}; "
            f"ensemble: {codec.layout.ensemble.describe()}; "
            f"lanes={codec.lanes}, workers={codec.workers}, threads={env['threads']}; "
            f"peak RSS {env['peak_rss_mib']:.0f} MiB"
        )
    _bench_outputs(env, rows, json_path, csv_path, png_path)
    status = 0
    for row in rows:
        if row.ok:
            continue
        if row.compressor == bench.NACRITH:
            _error(f"{row.file}: round trip FAILED: {row.error}")
            status = ChecksumError.exit_code
        else:
            _say(f"warning: {row.compressor} on {row.file}: {row.error}")
    ctx.exit(status)


def _ablation(codec: api.Codec, files, max_bytes: int | None, quiet: bool) -> None:
    """``bench --ablation``: one Markdown table per file, printed as each file finishes."""
    from . import ablation

    engine = codec.engine(models.resolve(codec.model))
    for path in files:
        with open(path, "rb") as f:
            data = f.read(max_bytes) if max_bytes else f.read()
        label = bench.file_label(path, max_bytes)
        if not quiet:
            _say(f"{label}: {len(data):,} bytes, {len(ablation.STEPS)} variants on one LLM pass")
        rows = ablation.ablation(engine, data, codec.layout)
        click.echo(ablation.format_rows(label, rows))
    if not quiet:
        _say(f"model {engine.model_file.name}; threads {engine.threads}; peak RSS {bench.peak_rss_mib():.0f} MiB")


def _bench_outputs(env: dict, rows: list, json_path: str | None, csv_path: str | None, png_path: str | None) -> None:
    """Write the optional JSON, CSV and PNG files of a benchmark (each atomically)."""
    if json_path:
        doc = bench_report.json_document(env, rows).encode()
        if json_path == STDIO:
            _write_stdout(doc)
        else:
            _write_file(json_path, doc)
    if csv_path:
        _write_file(csv_path, bench_report.csv_text(rows).encode())
    if png_path:
        chart = io.BytesIO()
        bench_report.plot_bpb(rows, chart, environment=env)
        _write_file(png_path, chart.getvalue())


def _write_file(path: str, data: bytes) -> None:
    with AtomicOutput(path) as out:
        out.file.write(data)
        out.commit()


# -- explain --------------------------------------------------------------------------------


@main.command("explain", short_help="Show which parts of a file cost bits, as an HTML page.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", metavar="PATH", type=click.Path(dir_okay=False),
              help="Write the page to PATH [FILE.html].")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing page.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=explain.DEFAULT_MAX_BYTES, show_default=True,
              metavar="N", help="Explain only the first N bytes (the model is slow).")
@click.option("--region-bytes", type=click.IntRange(min=1), default=explain.DEFAULT_REGION_BYTES,
              show_default=True, metavar="N", help="Size of the regions summarised in bits per byte.")
@_model_option
@_threads_option
@_layout_options
@click.option("-q", "--quiet", is_flag=True, help="No summary line or progress bar.")
def explain_cmd(file, output, force, max_bytes, region_bytes, model, threads,
                block_tokens, stream_tokens, window, slide, sinks, quiet):
    """Write a self-contained HTML page showing FILE with each token shaded by the bits it
    costs; hovering a token shows the model's top alternatives."""
    if output is None:
        if file == STDIO:
            raise click.UsageError("name the page with -o PATH when reading standard input")
        output = file + ".html"
    if os.path.lexists(output) and not force:
        raise UserError(f"{output}: already exists; use -f to overwrite")
    data, _ = _read_input(file)
    part = data[:max_bytes]
    codec = get_codec(model, threads, _layout(block_tokens, stream_tokens, window, slide, sinks))
    mf = models.resolve(codec.model)
    engine = codec.engine(mf)
    meter = Meter(_bar_wanted(quiet), _display(file))
    try:
        records = explain.token_records(engine, part, codec.layout, progress=meter, on_total=meter.total)
    finally:
        meter.close()
    layout = ", ".join(f"{k} {getattr(codec.layout, k)}" for k in ("block_tokens", "stream_tokens", "window", "slide", "sinks"))
    page = explain.render_html(records, part, name=_display(file), total_size=len(data),
                               about=f"Model {mf.name}; {layout}.", region_bytes=region_bytes,
                               ensemble=codec.layout.ensemble)
    _write_file(output, page.encode("utf-8"))
    if not quiet:
        bits = sum(r.bits for r in records)
        bpb = f"{bits / len(part):.3f} bpb" if part else "- bpb"
        _say(f"{_display(file)} -> {output}: {len(records):,} tokens over {len(part):,} bytes, {bpb}")


if __name__ == "__main__":
    main(prog_name="nacrith")
