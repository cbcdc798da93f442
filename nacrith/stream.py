"""Incremental and file objects in the style of CPython's ``lzma``/``gzip`` modules.

``nacrith.compress``/``nacrith.decompress`` handle whole byte strings; this module adds what
code written for the standard library expects from a compressor:

* :class:`NacrithCompressor` -- ``compress(data)`` / ``flush()``, like ``lzma.LZMACompressor``
  and Python 3.14's ``compression.zstd.ZstdCompressor``.
* :class:`NacrithDecompressor` -- ``decompress(data, max_length=-1)`` with ``eof``,
  ``needs_input`` and ``unused_data``, exactly like ``lzma.LZMADecompressor``: one object
  decodes one archive member.
* :class:`NacrithFile` and :func:`open` -- a binary file object (text modes through
  :class:`io.TextIOWrapper`); reading a file of concatenated members returns the
  concatenation of their contents.
* :func:`get_frame_info` -- header facts of the first member of a buffer, without decoding.

What buffering means here.  The neural coder needs a whole member's input before it writes
the member (the archive header records the block layout, the trailer a digest of everything),
so a compressor **keeps all input given since the last flush in memory** and codes it when
flushed; a :class:`NacrithFile` opened for writing codes everything at :meth:`~NacrithFile.close`.
Memory therefore grows with the input until the flush.  Symmetrically a decompressor buffers
one member's compressed bytes until its trailer has arrived, then decodes the member and hands
the output out in pieces of at most ``max_length`` bytes.  Split large data into several
members (``flush()`` between them, or several ``open(..., "ab")`` calls) to bound memory; each
member starts the model afresh, which costs some compression.

Sharing objects between threads and processes.  Loading a model takes about a second and
~200 MB, so every object here accepts ``codec=`` (a :class:`nacrith.Codec`) and several objects
can share one loaded model.  Without ``codec=`` the objects share the process-wide codec that
:func:`nacrith.compress` uses for the same ``model``/``threads``.

* A :class:`~nacrith.Codec` may be used by **one thread at a time**: give each thread its own
  Codec (and pass it to that thread's compressors, decompressors and files).
* :class:`NacrithCompressor`, :class:`NacrithDecompressor` and :class:`NacrithFile` take an
  internal lock, so concurrent calls on one object are serialized and do not corrupt it, but
  the order of interleaved data is then up to the caller: use each from one thread.
* Nothing crosses processes: the compressor, decompressor and file objects cannot be
  pickled, and a Codec's loaded model (a native llama.cpp context) is neither shared with nor
  copied to another process.  Each process creates its own Codec, which loads its own model;
  a forked child must not use a Codec its parent had already loaded.
"""

from __future__ import annotations

import builtins
import io
import os
import threading
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Callable, Iterator, Literal, Union, overload

from . import api, archive, container
from .codec import Layout

__all__ = [
    "NacrithCompressor",
    "NacrithDecompressor",
    "NacrithFile",
    "FrameInfo",
    "open",
    "get_frame_info",
]

StrOrBytesPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_BinaryMode = Literal["r", "rb", "w", "wb", "a", "ab", "x", "xb"]
_TextMode = Literal["rt", "wt", "at", "xt"]

#: Compressed bytes read from the underlying file per step when reading a NacrithFile.
BUFFER_SIZE = 64 * 1024


def _resolve_codec(codec: api.Codec | None, model: Any, threads: int | None) -> api.Codec:
    if codec is not None:
        if model is not None or threads is not None:
            raise ValueError("pass either codec= or model=/threads=, not both")
        return codec
    return api._codec(model, threads)


# --------------------------------------------------------------------------------------------
# Compressor
# --------------------------------------------------------------------------------------------


class NacrithCompressor:
    """Incremental compressor: ``compress()`` buffers, ``flush()`` returns a complete member.

    Every ``flush(FLUSH_FRAME)`` (the default) returns one complete archive member holding
    everything given to :meth:`compress` since the previous flush, and the compressor can then
    be used for the next member (like ``compression.zstd.ZstdCompressor``).  The output of all
    calls, concatenated, is a valid (multi-member) archive that :func:`nacrith.decompress`
    turns back into the concatenated input.

    Input is kept in memory until it is flushed (see the module docstring).

    ``layout`` (a :class:`nacrith.codec.Layout`) overrides the codec's coding layout (the
    default is that of ``nacrith compress``).
    """

    #: ``compress()`` mode: keep buffering (the default).
    CONTINUE = 0
    #: ``compress()``/``flush()`` mode: end the member and return it.
    FLUSH_FRAME = 2

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        codec: api.Codec | None = None,
        layout: Layout | None = None,
    ) -> None:
        self._codec = _resolve_codec(codec, model, threads)
        self._layout = layout
        self._buffer = bytearray()
        self._members = 0
        self._lock = threading.Lock()
        #: The mode of the last ``compress``/``flush`` call (``FLUSH_FRAME`` initially).
        self.last_mode = self.FLUSH_FRAME

    @property
    def codec(self) -> api.Codec:
        """The :class:`nacrith.Codec` (loaded model) this compressor codes with."""
        return self._codec

    def compress(self, data: bytes | bytearray | memoryview, mode: int = CONTINUE) -> bytes:
        """Buffer ``data``; returns ``b""`` unless ``mode`` is ``FLUSH_FRAME`` (then the member)."""
        if mode not in (self.CONTINUE, self.FLUSH_FRAME):
            raise ValueError(f"mode must be NacrithCompressor.CONTINUE or .FLUSH_FRAME, got {mode!r}")
        with self._lock:
            self._buffer += data
            self.last_mode = mode
            if mode == self.FLUSH_FRAME:
                return self._flush()
            return b""

    def flush(self, mode: int = FLUSH_FRAME) -> bytes:
        """End the current member and return it (one complete archive member).

        Returns ``b""`` when nothing was given since the previous flush; a compressor that was
        never given data still returns an (empty) member, so its output is always a valid
        archive.
        """
        if mode != self.FLUSH_FRAME:
            raise ValueError(f"mode must be NacrithCompressor.FLUSH_FRAME, got {mode!r}")
        with self._lock:
            self.last_mode = mode
            return self._flush()

    def _flush(self) -> bytes:
        if not self._buffer and self._members:
            return b""
        data = bytes(self._buffer)
        member = self._codec.compress(data, layout=self._layout)
        self._buffer = bytearray()
        self._members += 1
        return member


# --------------------------------------------------------------------------------------------
# Decompressor
# --------------------------------------------------------------------------------------------


class NacrithDecompressor:
    """Incremental decompressor of one archive member, like ``lzma.LZMADecompressor``.

    Feed compressed bytes in pieces of any size (including empty ones) to :meth:`decompress`.
    The container framing is parsed as bytes arrive, by the parser every reader uses
    (:class:`nacrith.container.MemberParser`: the header and each block are checked as soon
    as they are complete), the member's bytes are kept until its trailer has arrived, and the
    member is then decoded and verified in one go; its output is handed out in pieces of at
    most ``max_length`` bytes.

    Attributes, with the meaning they have in :mod:`lzma`:

    ``eof``
        True once the end of the member has been reached and all its output returned.
    ``needs_input``
        False if more output can be had by calling ``decompress(b"", max_length)``.
    ``unused_data``
        Bytes given after the end of the member (for example the next member of a
        concatenated archive); empty until the member is complete.

    Calling :meth:`decompress` after ``eof`` raises :class:`EOFError`.  Input that ends in the
    middle of a member is not an error here (``eof`` just stays False); the one-shot
    :func:`nacrith.decompress` and :class:`NacrithFile` raise
    :class:`nacrith.TruncatedError` (an :class:`EOFError`) for it.
    """

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        codec: api.Codec | None = None,
        limits: container.Limits | None = None,
    ) -> None:
        self._codec = _resolve_codec(codec, model, threads)
        self._limits = limits if limits is not None else self._codec.limits
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._parser = container.MemberParser(self._limits)  # parser.offset: bytes of _buf parsed
        self._out = b""
        self._out_pos = 0
        self._failed: BaseException | None = None
        self.eof = False
        self.needs_input = True
        self.unused_data = b""

    @property
    def codec(self) -> api.Codec:
        """The :class:`nacrith.Codec` (loaded model) this decompressor decodes with."""
        return self._codec

    @property
    def started(self) -> bool:
        """Whether any compressed byte has been given (True means a member is under way)."""
        return bool(self._buf) or self._parser.offset > 0

    def decompress(self, data: bytes | bytearray | memoryview, max_length: int = -1) -> bytes:
        """Decompress ``data``; return at most ``max_length`` bytes if it is non-negative."""
        with self._lock:
            if self._failed is not None:
                raise self._failed  # a member that failed to decode stays failed
            if self.eof:
                raise EOFError("Already at end of stream")
            if self._parser.done:
                self.unused_data += bytes(data)
            else:
                self._buf += data
                self._advance()
                if self._parser.done:
                    end = self._parser.offset
                    member = bytes(self._buf[:end])
                    self.unused_data = bytes(self._buf[end:])
                    self._buf = bytearray()
                    try:
                        self._out = self._codec.decompress(member)
                    except Exception as exc:
                        self._failed = exc
                        raise
                    except BaseException:  # KeyboardInterrupt and the like
                        self._failed = RuntimeError(
                            "decoding of this member was interrupted; use a new NacrithDecompressor"
                        )
                        raise
            return self._take(max_length)

    def _take(self, max_length: int) -> bytes:
        start = self._out_pos
        end = len(self._out) if max_length < 0 else min(len(self._out), start + max_length)
        chunk = self._out[start:end]
        self._out_pos = end
        if not self._parser.done:
            self.needs_input = True
        elif self._out_pos < len(self._out):
            self.needs_input = False
        else:
            self._out = b""
            self._out_pos = 0
            self.eof = True
            self.needs_input = False
        return chunk

    def _advance(self) -> None:
        """Parse as much of the member's framing as the buffered bytes allow."""
        parser, buf = self._parser, self._buf
        while not parser.done:
            start, end = parser.offset, parser.offset + parser.need
            if len(buf) < end:
                if start == 0:
                    container.check_start(bytes(buf[: len(container.MAGIC)]))  # refuse non-archives early
                return
            parser.take(bytes(buf[start:end]))


# --------------------------------------------------------------------------------------------
# Frame info
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameInfo:
    """Header facts of one archive member (see ``nacrith info`` for the full list).

    ``model_sha256``, ``block_tokens``, ``stream_tokens``, ``window``, ``slide`` and ``sinks``
    are None for a stored member (``mode == "stored"``: bytes kept as they are, no model
    needed to read them).
    """

    format_version: int
    mode: str
    model_sha256: str | None
    block_tokens: int | None
    stream_tokens: int | None
    window: int | None
    slide: int | None
    sinks: int | None
    original_size: int
    compressed_size: int
    n_blocks: int


def get_frame_info(
    buf: bytes | bytearray | memoryview, limits: container.Limits = container.DEFAULT_LIMITS
) -> FrameInfo:
    """Describe the first archive member in ``buf`` without decoding it (no model is loaded).

    ``buf`` must hold at least that whole member (later members, if any, are ignored).
    Raises :class:`nacrith.TruncatedError` if it is cut short and
    :class:`nacrith.FormatError` if it is not an archive.
    """
    info = container.read_info(io.BytesIO(bytes(buf)), limits)
    header = info.header
    params = header.params if header.mode in container.MODEL_MODES else None
    return FrameInfo(
        format_version=header.version,
        mode=container.mode_name(header.mode),
        model_sha256=params.model_sha256.hex() if params else None,
        block_tokens=params.block_tokens if params else None,
        stream_tokens=params.stream_tokens if params else None,
        window=params.window if params else None,
        slide=params.slide if params else None,
        sinks=params.sinks if params else None,
        original_size=info.trailer.original_size,
        compressed_size=info.compressed_size,
        n_blocks=info.n_blocks,
    )


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


class _MemberReader(io.RawIOBase):
    """Raw reader of decompressed bytes over a file of concatenated members (seek by reading).

    ``decode_members(fp)`` yields each member's bytes in turn (``archive.decompress_members``,
    the loop over members every decoder shares); one member's bytes are held at a time.
    """

    def __init__(self, fp: BinaryIO, decode_members: Callable[[BinaryIO], Iterator[bytes]]) -> None:
        self._fp = fp
        self._decode_members = decode_members
        self._members: Iterator[bytes] | None = None  # started by the first read
        self._out = b""  # the current member's bytes, handed out from _out_pos
        self._out_pos = 0
        self._failed: BaseException | None = None
        self._eof = False
        self._pos = 0
        self._size = -1
        try:
            self._start = fp.tell()
        except (AttributeError, OSError, ValueError):
            self._start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(getattr(self._fp, "seekable", lambda: False)())

    def close(self) -> None:
        self._members = None
        self._out = b""
        super().close()

    def readinto(self, b: Any) -> int:
        with memoryview(b) as view, view.cast("B") as byte_view:
            data = self.read(len(byte_view))
            byte_view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        chunks = []
        while data := self.read(1 << 30):
            chunks.append(data)
        return b"".join(chunks)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return self.readall()
        if not size or self._eof:
            return b""
        if self._failed is not None:
            raise self._failed  # a file that failed to decode stays failed
        while self._out_pos == len(self._out):
            try:
                if self._members is None:
                    self._members = self._decode_members(self._fp)
                member = next(self._members, None)
            except BaseException as exc:
                self._failed = exc
                raise
            if member is None:
                self._eof = True
                self._size = self._pos
                return b""
            self._out, self._out_pos = member, 0
        data = self._out[self._out_pos : self._out_pos + size]
        self._out_pos += len(data)
        self._pos += len(data)
        return data

    def _rewind(self) -> None:
        self._fp.seek(self._start)
        self._eof = False
        self._failed = None
        self._pos = 0
        self._members = None
        self._out, self._out_pos = b"", 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pass
        elif whence == io.SEEK_CUR:
            offset = self._pos + offset
        elif whence == io.SEEK_END:
            if self._size < 0:
                while self.read(io.DEFAULT_BUFFER_SIZE):
                    pass
            offset = self._size + offset
        else:
            raise ValueError(f"Invalid value for whence: {whence}")
        if offset < self._pos:
            self._rewind()
        else:
            offset -= self._pos
        while offset > 0:
            data = self.read(min(io.DEFAULT_BUFFER_SIZE, offset))
            if not data:
                break
            offset -= len(data)
        return self._pos

    def tell(self) -> int:
        return self._pos


_MODE_CLOSED, _MODE_READ, _MODE_WRITE = 0, 1, 2


class NacrithFile(io.BufferedIOBase):
    """A file object that reads or writes nacrith archives (like ``lzma.LZMAFile``).

    ``filename`` is a path (str, bytes or os.PathLike) or a binary file object to read from
    or write to.  ``mode`` is ``"r"``/``"rb"`` (read), ``"w"``/``"wb"`` (truncate and write),
    ``"x"``/``"xb"`` (create, fail if the file exists) or ``"a"``/``"ab"`` (append a new member).

    Reading returns the concatenated contents of every member; a file that ends inside a
    member (or is empty) raises :class:`nacrith.TruncatedError`, and bytes after the last
    member that do not start another member raise :class:`nacrith.FormatError`.  Seeking is
    emulated: forward seeks read ahead, backward seeks start decoding again from the beginning
    of the file, which costs model time.  Each member is decoded completely when its trailer
    has been read, so memory holds one member's data at a time.

    Writing keeps everything written in memory and writes one member when the file is closed
    (``flush()`` does not end a member: an archive member cannot be completed early without
    starting a new one).  A file object passed in is not closed by :meth:`close`.

    ``model``, ``threads`` and ``codec`` choose the model as for :class:`NacrithCompressor`;
    ``layout`` applies when writing.
    """

    def __init__(
        self,
        filename: StrOrBytesPath | IO[bytes],
        mode: str = "r",
        *,
        model: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        codec: api.Codec | None = None,
        layout: Layout | None = None,
        limits: container.Limits | None = None,
    ) -> None:
        self._fp: Any = None
        self._closefp = False
        self._mode = _MODE_CLOSED
        self._lock = threading.RLock()
        if mode in ("r", "rb"):
            mode_code = _MODE_READ
        elif mode in ("w", "wb", "a", "ab", "x", "xb"):
            mode_code = _MODE_WRITE
        else:
            raise ValueError(f"Invalid mode: {mode!r}")
        resolved = _resolve_codec(codec, model, threads)

        if isinstance(filename, (str, bytes, os.PathLike)):
            raw_mode = mode if "b" in mode else mode + "b"
            self._fp = builtins.open(filename, raw_mode)
            self._closefp = True
            self.name: str | bytes = os.fspath(filename)
        elif hasattr(filename, "read") or hasattr(filename, "write"):
            self._fp = filename
            self.name = getattr(filename, "name", "")
        else:
            raise TypeError("filename must be a str, bytes, os.PathLike or file object")
        #: ``"rb"`` when reading, ``"wb"`` when writing (as for gzip and lzma files).
        self.mode = "rb" if mode_code == _MODE_READ else "wb"

        if mode_code == _MODE_READ:

            def decode_members(fp: BinaryIO) -> Iterator[bytes]:
                members = archive.decompress_members(
                    fp,
                    resolved.engine,
                    model=resolved.model,
                    lanes=resolved.lanes,
                    limits=limits if limits is not None else resolved.limits,
                )
                return (out for _, out in members)

            raw = _MemberReader(self._fp, decode_members)
            self._buffer: Any = io.BufferedReader(raw, buffer_size=BUFFER_SIZE)
        else:
            self._compressor = NacrithCompressor(codec=resolved, layout=layout)
            self._pos = 0
        self._mode = mode_code

    # -- state ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._mode == _MODE_CLOSED

    def _check_not_closed(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _check_can_read(self) -> None:
        self._check_not_closed()
        if self._mode != _MODE_READ:
            raise io.UnsupportedOperation("File not open for reading")

    def _check_can_write(self) -> None:
        self._check_not_closed()
        if self._mode != _MODE_WRITE:
            raise io.UnsupportedOperation("File not open for writing")

    def close(self) -> None:
        """Write the pending member (when writing) and close the file (if opened by name)."""
        with self._lock:
            if self._mode == _MODE_CLOSED:
                return
            try:
                if self._mode == _MODE_READ:
                    self._buffer.close()
                    self._buffer = None
                elif self._mode == _MODE_WRITE:
                    self._fp.write(self._compressor.flush())
                    self._compressor = None  # type: ignore[assignment]
                    if hasattr(self._fp, "flush"):
                        self._fp.flush()
            finally:
                try:
                    if self._closefp:
                        self._fp.close()
                finally:
                    self._fp = None
                    self._closefp = False
                    self._mode = _MODE_CLOSED

    def fileno(self) -> int:
        self._check_not_closed()
        return self._fp.fileno()

    def seekable(self) -> bool:
        return self.readable() and bool(getattr(self._fp, "seekable", lambda: False)())

    def readable(self) -> bool:
        self._check_not_closed()
        return self._mode == _MODE_READ

    def writable(self) -> bool:
        self._check_not_closed()
        return self._mode == _MODE_WRITE

    def flush(self) -> None:
        """Does not end the member (see the class docstring); only checks the file is open."""
        self._check_not_closed()

    # -- reading ----------------------------------------------------------------------------

    def peek(self, size: int = -1) -> bytes:
        with self._lock:
            self._check_can_read()
            return self._buffer.peek(size)

    def read(self, size: int | None = -1) -> bytes:
        with self._lock:
            self._check_can_read()
            return self._buffer.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        with self._lock:
            self._check_can_read()
            if size < 0:
                size = BUFFER_SIZE
            return self._buffer.read1(size)

    def readinto(self, b: Any) -> int:
        with self._lock:
            self._check_can_read()
            return self._buffer.readinto(b)

    def readline(self, size: int | None = -1) -> bytes:
        with self._lock:
            self._check_can_read()
            return self._buffer.readline(-1 if size is None else size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with self._lock:
            self._check_can_read()
            if not self.seekable():
                raise io.UnsupportedOperation("The underlying file object does not support seeking")
            return self._buffer.seek(offset, whence)

    def tell(self) -> int:
        with self._lock:
            self._check_not_closed()
            if self._mode == _MODE_READ:
                return self._buffer.tell()
            return self._pos

    # -- writing ----------------------------------------------------------------------------

    def write(self, data: Any) -> int:
        """Buffer ``data`` for the member written at :meth:`close`; returns its length in bytes."""
        with self._lock:
            self._check_can_write()
            if isinstance(data, (bytes, bytearray)):
                length = len(data)
            else:
                data = memoryview(data)
                length = data.nbytes
            self._compressor.compress(data)
            self._pos += length
            return length


@overload
def open(
    filename: StrOrBytesPath | IO[bytes],
    mode: _BinaryMode = "rb",
    *,
    model: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    codec: api.Codec | None = None,
    layout: Layout | None = None,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
) -> NacrithFile: ...


@overload
def open(
    filename: StrOrBytesPath | IO[bytes],
    mode: _TextMode,
    *,
    model: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    codec: api.Codec | None = None,
    layout: Layout | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> io.TextIOWrapper: ...


@overload
def open(
    filename: StrOrBytesPath | IO[bytes],
    mode: str,
    *,
    model: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    codec: api.Codec | None = None,
    layout: Layout | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> NacrithFile | io.TextIOWrapper: ...


def open(  # noqa: A001 - mirrors gzip.open / lzma.open
    filename: StrOrBytesPath | IO[bytes],
    mode: str = "rb",
    *,
    model: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    codec: api.Codec | None = None,
    layout: Layout | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> NacrithFile | io.TextIOWrapper:
    """Open a nacrith archive in binary or text mode, like :func:`lzma.open`.

    ``mode`` is one of ``"r"``, ``"rb"``, ``"w"``, ``"wb"``, ``"x"``, ``"xb"``, ``"a"``,
    ``"ab"`` (binary: a :class:`NacrithFile`) or ``"rt"``, ``"wt"``, ``"xt"``, ``"at"`` (text:
    an :class:`io.TextIOWrapper` over a NacrithFile, with ``encoding``, ``errors`` and
    ``newline``).  ``filename`` is a path or a binary file object.
    """
    if "t" in mode:
        if "b" in mode:
            raise ValueError(f"Invalid mode: {mode!r}")
    else:
        if encoding is not None:
            raise ValueError("Argument 'encoding' not supported in binary mode")
        if errors is not None:
            raise ValueError("Argument 'errors' not supported in binary mode")
        if newline is not None:
            raise ValueError("Argument 'newline' not supported in binary mode")
    binary = NacrithFile(
        filename,
        mode.replace("t", ""),
        model=model,
        threads=threads,
        codec=codec,
        layout=layout,
    )
    if "t" in mode:
        encoding = io.text_encoding(encoding)
        return io.TextIOWrapper(binary, encoding, errors, newline)
    return binary
