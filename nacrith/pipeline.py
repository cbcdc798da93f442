"""Big inputs on many workers: the members of a file in flight side by side.

:mod:`nacrith.chunked` codes a large input as one archive member per 8 MiB chunk, one member
after another, and the codec hands a member's streams to the workers and waits for all of
them.  An 8 MiB member has about 4 streams at the default layout (``nacrith.codec``), so
with more workers than that most would idle, however large the input or the cluster.

Here the member loop reads ahead: before it codes member k, it reads members k+1, k+2, ...
and submits their streams to the pool as a look-ahead (``nacrith.workers.Scheduler``), which
idle workers take up.  What to submit is found by running the codec's own code on the later
member until it hands its streams over (``Codec._look_ahead_compress`` /
``_look_ahead_decompress``), so the look-ahead is exactly the work that member's real run
asks for; the real run then takes those tasks (done, running or queued) instead of new ones.
The archive is made by the same calls as in :mod:`nacrith.chunked`, so its bytes are the
same, member for member; only when the work is done changes.

Memory stays bounded: at most ``workers`` members are read ahead of the one being coded,
and none once the pool holds as many looked-ahead tasks as it has workers
(``Scheduler.room``).  Outputs are written in member order, each as soon as its member is
done (and, when decompressing, verified).  Errors come in member order too: a later member
that cannot be read or coded fails when its turn comes, after the earlier members were
written, as in :mod:`nacrith.chunked`.  The one exception is a worker that dies: that fails
the job at once.

Without worker processes or Ray there is nothing to overlap, and :mod:`nacrith.chunked`
codes the file.
"""

from __future__ import annotations

import io
import itertools
from collections import deque
from typing import TYPE_CHECKING, BinaryIO, Callable

from . import chunked, container
from .archive import decompress_archive
from .chunked import Report, Write, read_chunk
from .codec import Progress

if TYPE_CHECKING:
    from .api import Codec


#: Member tickets, unique in the process: a pipeline nested in another (``--verify`` of a
#: member written to stdout decodes it) never releases the other's look-ahead.
_tickets = itertools.count(1)


def _ahead_limit(codec: Codec) -> int:
    """Members read ahead of the one being coded, at most: one per worker, enough to keep
    every worker busy when each member has a single stream."""
    return max(1, codec.execution.workers)


def _release(codec: Codec, tickets: list[int], *, stop: bool = False) -> None:
    for pool in codec._started_pools():
        pool.release(tickets, stop=stop)


def _room(codec: Codec) -> bool:
    return all(pool.room() > 0 for pool in codec._started_pools())


def compress(
    codec: Codec,
    src: BinaryIO,
    write: Write,
    *,
    chunk_bytes: int | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    check: Callable[[bytes, bytes], None] | None = None,
) -> Report:
    """:func:`nacrith.chunked.compress`, with later members' streams in flight beside the
    current member's: the same archive, member for member."""
    if not codec._parallel():
        return chunked.compress(codec, src, write, chunk_bytes=chunk_bytes, progress=progress,
                                on_total=on_total, check=check)
    size = chunk_bytes or chunked.CHUNK_BYTES
    report = Report()
    counted = 0  # symbols of the members already written
    announced = 0  # symbols of the member being coded
    # (ticket, chunk) read and not yet coded; or the error reading it met, raised in its turn.
    ahead: deque[tuple[int, bytes | Exception]] = deque()
    ended = False  # the input's last chunk has been read
    current: list[int] = []  # the ticket of the member being coded

    def read_one() -> bytes | None:
        """The next member's chunk (read into ``ahead``), or None at the end of the input."""
        nonlocal ended
        first = not ahead and not report.members and not current
        try:
            chunk = read_chunk(src, size)
        except Exception as exc:  # noqa: BLE001 - an OSError, raised when its turn comes
            ended = True
            ahead.append((next(_tickets), exc))
            return None
        ended = len(chunk) < size  # a short chunk is the last; an empty one after a member is none
        if chunk or first:
            ahead.append((next(_tickets), chunk))
            return chunk
        return None

    def total(n: int) -> None:
        nonlocal announced
        announced = n
        if on_total:
            on_total(counted + n)

    read_one()
    try:
        while ahead:
            while not ended and len(ahead) <= _ahead_limit(codec) and _room(codec):
                chunk = read_one()
                if chunk:
                    codec._look_ahead_compress(chunk, ahead[-1][0])
            ticket, chunk = ahead.popleft()
            if isinstance(chunk, Exception):
                raise chunk
            current[:] = [ticket]
            announced = 0
            member = codec.compress(chunk, progress=progress, on_total=total)
            _release(codec, current)  # what was looked ahead for it and not asked for
            current.clear()
            counted += announced
            if check:
                check(member, chunk)
            write(member)
            report.original += len(chunk)
            report.compressed += len(member)
            report.members.append(container.read_info(io.BytesIO(member)))
            if not ahead and not ended:  # nothing read ahead (no room): the next member all the same
                read_one()
        return report
    finally:  # after an error: the members read ahead will not be coded
        _release(codec, current + [ticket for ticket, _ in ahead], stop=True)


class _Recorder:
    """A source that keeps what is read from it, so that one member's bytes can be taken."""

    def __init__(self, src: BinaryIO):
        self._src = src
        self._kept = bytearray()

    def read(self, n: int = -1) -> bytes:
        piece = self._src.read(n)
        self._kept += piece
        return piece

    def take(self) -> bytes:
        kept = bytes(self._kept)
        self._kept.clear()
        return kept


def decompress(
    codec: Codec,
    src: BinaryIO,
    write: Write | None,
    *,
    progress: Progress | None = None,
) -> Report:
    """:func:`nacrith.chunked.decompress`, with later members' streams in flight beside the
    current member's: each member's bytes written, once verified, in order."""
    if not codec._parallel():
        return chunked.decompress(codec, src, write, progress=progress)
    recorder = _Recorder(src)
    members = container.iter_members(recorder, codec.limits)
    # (ticket, the member's bytes) read and not yet decoded; or the error its reading met,
    # raised when its turn comes.
    ahead: deque[tuple[int, bytes | Exception]] = deque()
    ended = False

    def read_one() -> bytes | None:
        """Read the next member whole (its structure checked) into ``ahead``; its bytes."""
        nonlocal ended
        ticket = next(_tickets)
        try:
            reader = next(members)
            for _ in reader.block_headers():
                pass
        except StopIteration:
            ended = True
            return None
        except Exception as exc:  # noqa: BLE001 - a NacrithError or OSError: raised in its turn
            ended = True
            ahead.append((ticket, exc))
            return None
        raw = recorder.take()
        ahead.append((ticket, raw))
        return raw

    report = Report()
    current: list[int] = []  # the ticket of the member being decoded
    read_one()
    try:
        while ahead:
            while not ended and len(ahead) <= _ahead_limit(codec) and _room(codec):
                raw = read_one()
                if raw is not None:
                    codec._look_ahead_decompress(raw, ahead[-1][0])
            ticket, raw = ahead.popleft()
            if isinstance(raw, Exception):
                raise raw
            current[:] = [ticket]
            reader = container.ArchiveReader(io.BytesIO(raw), codec.limits)
            data = decompress_archive(reader, codec.engine, model=codec.model, lanes=codec.lanes, progress=progress)
            _release(codec, current)
            current.clear()
            if write:
                write(data)
            report.original += len(data)
            report.compressed += reader.bytes_read
            report.members.append(container.summary(reader))
            if not ahead and not ended:  # nothing read ahead (no room): the next member all the same
                read_one()
        return report
    finally:  # after an error: the members read ahead will not be decoded
        _release(codec, current + [ticket for ticket, _ in ahead], stop=True)
