"""Files and signals for the command line: names, atomic outputs, inputs, standard output.

Why a module of its own (zstd's ``fileio.c``): these are the guarantees scripts rely on, and
they hold whatever the command does:

* Output is written to a temporary file in the destination directory, fsynced and renamed
  into place; on any error or interrupt (Ctrl-C, SIGTERM) the temporary file is removed.
  The input is only read; ``--rm`` deletes it only after the output is safely in place.
* Writing compressed data over an existing file, onto the input itself, or to a name with an
  unknown suffix is refused (:func:`plan`).
* SIGTERM becomes an interrupt, so that ``finally`` blocks clean up; inside llama.cpp's log
  callback, where an exception would be lost, it is recorded and raised at the next
  :func:`check_signal`.
* With several inputs, a failing file is reported and skipped (:func:`for_each`).

Nothing here knows about models or archives.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import signal
import stat
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import click

from .errors import NacrithError, NacrithWarning

SUFFIX = ".nc"
STDIO = "-"
TMP_SUFFIX = ".nacrith-tmp"


# -- messages, errors and signals -----------------------------------------------------------

class UserError(Exception):
    """A refusal by the CLI itself (existing output, unknown suffix, ...): exit status 1."""

    exit_code = NacrithError.exit_code  # 1, a failure (errors.EXIT_STATUSES)


class Terminated(KeyboardInterrupt):
    """SIGTERM delivered as an interrupt, so that ``finally`` blocks clean up temp files."""


_signals: list[int] = []  # signals received during the current command


def _interrupt_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame) -> None:
    _signals.append(signum)
    if _in_native_callback(frame):
        return  # an exception would be swallowed there; check_signal raises it later
    raise _interrupt_for(signum)


def _in_native_callback(frame) -> bool:
    """Whether llama.cpp's log callback (Python run from C inside a llama.cpp call) is running.

    An exception raised inside a ctypes callback is printed and ignored, so the handler only
    records the signal there; the CLI's checkpoints (:func:`check_signal`) raise it soon after.
    Everywhere else, including the rest of the llama.cpp layer, the interrupt is raised at once.
    """
    return frame is not None and frame.f_code.co_name == "_quiet_log"


def check_signal() -> None:
    """Raise the interrupt for a signal whose exception was deferred or swallowed."""
    if _signals:
        raise _interrupt_for(_signals[0])


def install_handlers() -> Callable[[], None]:
    """Forget earlier signals and route SIGTERM (and SIGINT unless ignored) to
    :func:`_on_signal`; returns an undo function."""
    _signals.clear()
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, _on_signal)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        old[signal.SIGINT] = signal.signal(signal.SIGINT, _on_signal)

    def restore() -> None:
        for signum, handler in old.items():
            signal.signal(signum, handler)

    return restore


def say(message: str) -> None:
    click.echo(f"nacrith: {message}", err=True)


def error(message: str) -> None:
    say(f"error: {message}")


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``nacrith: warning:`` line (ours), or Python's usual format (others)."""
    if issubclass(category, NacrithWarning):
        say(f"warning: {message}")
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), err=True)


def os_message(exc: OSError, name: str | None = None) -> str:
    text = exc.strerror or str(exc)
    where = exc.filename if exc.filename is not None else name
    return f"{where}: {text}" if where else text


def describe(exc: BaseException, name: str | None) -> str:
    if isinstance(exc, OSError):
        return os_message(exc, name)
    if isinstance(exc, UserError):  # names its file itself
        return str(exc)
    return f"{name}: {exc}" if name else str(exc)


def silence_stdout() -> None:
    """After EPIPE, stop the interpreter from failing again when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def for_each(names: tuple[str, ...], work: Callable[[str], None]) -> int:
    """Run ``work`` on every name; report failures and return the first failure's status."""
    status = 0
    for name in names:
        check_signal()
        try:
            work(name)
            check_signal()
        except BrokenPipeError:
            raise
        except (NacrithError, UserError, OSError) as exc:
            error(describe(exc, display(name)))
            status = status or getattr(exc, "exit_code", 1)
    return status


# -- files ----------------------------------------------------------------------------------


# -- files --------------------------------------------------------------------------------


def isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def display(name: str | None) -> str:
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


def remove_live_tmp() -> None:
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


def read_input(src: str) -> tuple[bytes, os.stat_result | None]:
    if src == STDIO:
        return sys.stdin.buffer.read(), None
    with open(src, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", src)
        return f.read(), st if stat.S_ISREG(st.st_mode) else None


@contextlib.contextmanager
def open_input(src: str) -> Iterator[tuple[BinaryIO, os.stat_result | None]]:
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


def write_stdout(data: bytes) -> None:
    out = sys.stdout.buffer
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:  # e.g. a full disk: name stdout, and let the exit flush succeed
        silence_stdout()
        raise OSError(exc.errno, exc.strerror, "(stdout)") from None


# -- codec and progress ---------------------------------------------------------------------


def write_file(path: str, data: bytes) -> None:
    with AtomicOutput(path) as out:
        out.file.write(data)
        out.commit()


def seekable(f: BinaryIO) -> bool:
    try:
        return f.seekable()
    except (AttributeError, ValueError, OSError):
        return False
