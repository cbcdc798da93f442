"""Worker processes: whole streams coded in other processes, each with its own model.

Streams are independent (``nacrith.codec``): a stream's payloads depend only on its symbols
and the archive's layout, never on which process or how many threads coded it.  A
:class:`WorkerPool` therefore hands whole streams to worker processes and gives the results
back **in stream order**, so an archive made with any number of workers is byte-identical to
the in-process one, and any archive decodes with any number of workers.

Why processes and why "spawn": one llama.cpp context per process lets a machine with more
cores run several models side by side; llama.cpp's OpenMP threads do not survive ``fork``,
so every worker is a fresh interpreter that loads the model once and then codes stream
after stream.

Thread budget: the pool is given the total number of llama.cpp threads (``-T``, else
:func:`nacrith.threads.default_threads`).  Each of its ``n`` workers runs ``total // n``
threads, and ``n`` is at most ``total``, so the workers together never run more threads
than the budget (see :func:`plan`).

Look-ahead: the codec asks for one archive member's streams at a time, so the pool also
takes the streams of the next members before they are asked for (``nacrith.pipeline``) and
hands their results over when the codec asks for the same work (:class:`Scheduler`): a
large input keeps every worker busy, whatever the number of streams in one member.

Failure: a worker that dies (killed, segfault, out of memory) is noticed through its
process sentinel while the pool waits for results, and raises :class:`WorkerError` at once;
an error raised inside a worker (a checksum mismatch, say) is re-raised in the caller.
On any error, and on Ctrl-C, the pool terminates its workers (:meth:`WorkerPool.close`).
Workers ignore SIGINT, which a terminal sends to the whole process group: the parent decides.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from collections import Counter, deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Callable, Container, Iterable, Iterator

import numpy as np

from .errors import NacrithError, WorkerError

#: Test hook: a worker given a task while this variable is set exits at once (status 3),
#: the way a killed or crashed worker would disappear.
CRASH_ENV = "NACRITH_TEST_WORKER_CRASH"
#: Seconds between progress messages from a busy worker (one tqdm bar in the parent).
PROGRESS_INTERVAL = 0.25
#: Seconds a worker gets to exit after being told to stop, before it is killed.
STOP_GRACE = 2.0

Progress = Callable[[int], None]


def plan(workers: int, total_threads: int) -> tuple[int, int]:
    """(processes, llama.cpp threads each) for ``workers`` asked within ``total_threads``.

    Never more threads in all than the budget: at most one process per thread.
    """
    processes = max(1, min(workers, total_threads))
    return processes, max(1, total_threads // processes)


# -- the worker side ------------------------------------------------------------------------


def _serve(conn: Connection, model_file, threads: int) -> None:
    """A worker's main loop: load the model once, then answer tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = None
    last = time.monotonic()
    pending = 0

    def progress(n: int) -> None:
        nonlocal last, pending
        pending += n
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            conn.send(("progress", pending))
            pending, last = 0, now

    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent is gone
            return
        if task is None:
            return
        if os.environ.get(CRASH_ENV):
            os._exit(3)
        try:
            if engine is None:
                from .codec import Engine

                engine = Engine(model_file, threads=threads)
            result = _run(engine, task, progress)
            if pending:
                conn.send(("progress", pending))
                pending = 0
            conn.send(("done", result))
        except Exception as exc:  # noqa: BLE001 - handed to the parent, which re-raises it
            conn.send(("error", _portable(exc)))


def _run(engine, task: tuple, progress: Progress) -> list:
    kind, layout, numeric, work, lanes = task
    if kind == "encode":
        ctx = engine.context(layout.window, numeric)
        return engine.encode_stream(ctx, work, layout, progress)
    ctx = engine.context(layout.window, numeric, lanes)
    return list(engine.decode_streams(ctx, work, layout, progress))


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (most do), else a WorkerError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling problem
        return WorkerError(f"a worker process failed: {type(exc).__name__}: {exc}")


# -- the parent side ------------------------------------------------------------------------

QUEUED, RUNNING, DONE = "queued", "running", "done"


@dataclass(eq=False)
class _Record:
    """One task (a stream to encode, or a group of streams to decode) and what became of it."""

    task: tuple
    symbols: int  # the task's size, in symbols
    ticket: int | None = None  # the member whose look-ahead submitted it (None: asked for at once)
    asked: bool = False  # a caller is waiting for it (its errors are raised at once)
    sink: Progress | None = None  # that caller's progress
    state: str = QUEUED
    result: object = None
    error: BaseException | None = None
    heard: int = 0  # symbols the worker reported coded so far
    credited: int = 0  # of which passed on to a caller's progress

    def credit(self) -> None:
        """Pass what was heard since the last time on to the caller's progress (if any yet)."""
        if self.sink is not None and self.heard > self.credited:
            self.sink(self.heard - self.credited)
            self.credited = self.heard


def _same_task(a: tuple, b: tuple) -> bool:
    """Whether two tasks are the same work (then their results are the same bytes)."""
    if a[0] != b[0] or a[4] != b[4] or a[1] != b[1] or a[2] != b[2]:
        return False
    if a[0] == "encode":
        return len(a[3]) == len(b[3]) and bool(np.array_equal(a[3], b[3]))
    return a[3] == b[3]


def lane_groups(streams: Iterable[list], lanes: int, workers: int) -> tuple[int, list[list]]:
    """Deal one archive member's streams into groups decoded in lockstep, one per task:
    at most ``lanes`` streams each, fewer when that keeps all ``workers`` busy.
    Returns (group size, groups)."""
    streams = list(streams)  # one archive member's blocks: bounded by the member
    size = max(1, min(lanes, -(-len(streams) // workers)))
    return size, [streams[k : k + size] for k in range(0, len(streams), size)]


class Scheduler:
    """The parent side shared by :class:`WorkerPool` and ``nacrith.ray_engine.RayPool``: tasks
    handed to ``slots`` workers, results given back in task order, and **look-ahead**.

    Why look-ahead: a caller codes one archive member at a time (``nacrith.codec`` asks for a
    member's streams and waits for all of them), and an 8 MiB member has about 4 streams at
    the default layout, so more workers than that would idle.  ``nacrith.pipeline`` therefore
    submits the streams of the next members (:meth:`look_ahead_encode`,
    :meth:`look_ahead_decode`) before it codes the current one; idle workers take them, and
    when the codec later asks for the same work it gets those tasks (:meth:`_claim`: equal
    symbols or blocks, layout and settings give equal bytes, so a task's result serves
    whoever asks for the same task).  Work asked for is sent before work looked ahead.

    Memory stays bounded: at most ``2 * slots`` tasks of the current call wait for their
    turn, and at most ``slots`` looked-ahead tasks are held (:meth:`room`).  A look-ahead's
    own failure (a coding error in a later member) is kept with its task and raised only
    when that task is asked for, so errors come in member order; a dead worker fails the
    next call at once.
    """

    def __init__(self, slots: int):
        self.slots = max(1, slots)
        self._now: deque[_Record] = deque()  # asked for, not yet sent: sent first, in order
        self._later: deque[_Record] = deque()  # looked ahead, not yet sent, in submission order
        self._ahead: list[_Record] = []  # looked ahead and not asked for yet, whatever their state
        self._deferred: BaseException | None = None  # a failure met while looking ahead
        #: The most tasks running at once, and how many tasks each worker was given (measured
        #: for tests and benchmarks: look-ahead must keep more workers busy than one member has streams).
        self.peak_busy = 0
        self.tasks_by_worker: Counter = Counter()

    # -- what a backend provides ------------------------------------------------------------

    def _start(self) -> None:
        raise NotImplementedError

    def _idle(self) -> list:
        """Workers free to take a task."""
        raise NotImplementedError

    def _launch(self, worker, record: _Record) -> None:
        """Send ``record``'s task to ``worker`` (a WorkerError if it is gone)."""
        raise NotImplementedError

    def _running(self) -> list[_Record]:
        raise NotImplementedError

    def _pump(self) -> None:
        """Wait for news from the workers and apply it to their records."""
        raise NotImplementedError

    def _admit(self, numeric) -> None:
        """Refuse, before any task, settings the workers cannot code (a hook for Ray)."""

    def close(self) -> None:
        raise NotImplementedError

    # -- what the codec calls ---------------------------------------------------------------

    def _encode_tasks(self, streams: Iterable[np.ndarray], layout, numeric) -> Iterator[tuple]:
        return ((("encode", layout, numeric, symbols, 1), len(symbols)) for symbols in streams)

    def _decode_tasks(self, streams: Iterable[list], layout, numeric, lanes: int) -> Iterator[tuple]:
        size, groups = lane_groups(streams, lanes, self.slots)
        return (
            (("decode", layout, numeric, group, size), sum(bh.n_symbols for s in group for bh, _, _ in s))
            for group in groups
        )

    def encode_streams(self, streams: Iterable[np.ndarray], layout, numeric, progress: Progress | None) -> Iterator[list[bytes]]:
        """Like ``Engine.encode_stream`` for each stream, in order: each stream's payloads."""
        self._admit(numeric)
        return self._ordered(self._encode_tasks(streams, layout, numeric), progress)

    def decode_streams(self, streams: Iterable[list], layout, numeric, lanes: int, progress: Progress | None) -> Iterator[bytes]:
        """Like ``Engine.decode_streams``: each stream's bytes, in order.

        The streams are dealt out in groups (at most ``lanes`` each, fewer when that keeps
        every worker busy); each worker decodes its group in lockstep.
        """
        self._admit(numeric)
        for decoded in self._ordered(self._decode_tasks(streams, layout, numeric, lanes), progress):
            yield from decoded

    # -- look-ahead (nacrith.pipeline) ------------------------------------------------------

    def room(self) -> int:
        """How many more looked-ahead tasks may be held."""
        return max(0, self.slots - len(self._ahead))

    def look_ahead_encode(self, streams: Iterable[np.ndarray], layout, numeric, ticket: int) -> int:
        """Submit (as much as :meth:`room` allows of) member ``ticket``'s streams to encode; how many."""
        return self._look_ahead(lambda: self._encode_tasks(streams, layout, numeric), numeric, ticket)

    def look_ahead_decode(self, streams: Iterable[list], layout, numeric, lanes: int, ticket: int) -> int:
        """Submit member ``ticket``'s streams to decode, grouped as :meth:`decode_streams` will."""
        return self._look_ahead(lambda: self._decode_tasks(streams, layout, numeric, lanes), numeric, ticket)

    def _look_ahead(self, make_tasks: Callable[[], Iterator[tuple]], numeric, ticket: int) -> int:
        if not self.room() or self._deferred is not None:
            return 0
        self._admit(numeric)
        self._start()
        count = 0
        for task, symbols in make_tasks():
            if not self.room():
                break
            record = _Record(task, symbols, ticket)
            self._ahead.append(record)
            self._later.append(record)
            count += 1
        try:
            self._dispatch()
        except NacrithError as exc:  # a dead worker: the next call reports it, in its turn
            self._deferred = exc
        return count

    def release(self, tickets: Container[int], *, stop: bool = False) -> None:
        """Forget the looked-ahead tasks of members ``tickets`` that nobody asked for.

        One still running keeps its worker until it ends; with ``stop`` (a job that ends
        early) such a worker is stopped (the whole pool: a later call starts it afresh), so
        the next job does not wait for work nobody wants.
        """
        keep, running = [], False
        for record in self._ahead:
            if record.ticket in tickets:
                if record.state == QUEUED:
                    self._later.remove(record)
                running = running or record.state == RUNNING
            else:
                keep.append(record)
        self._ahead = keep
        if stop and running:
            self.close()

    # -- machinery --------------------------------------------------------------------------

    def _note_busy(self) -> None:
        self.peak_busy = max(self.peak_busy, len(self._running()))

    def _dispatch(self) -> None:
        """Give idle workers tasks: asked-for ones first, then looked-ahead ones."""
        for worker in self._idle():
            queue = self._now or self._later
            if not queue:
                break
            record = queue.popleft()
            self._launch(worker, record)
            record.state = RUNNING
        self._note_busy()

    def _claim(self, task: tuple, symbols: int) -> _Record:
        """The looked-ahead record of ``task`` (the first, in submission order), else a new one."""
        for k, record in enumerate(self._ahead):
            if _same_task(record.task, task):
                del self._ahead[k]
                if record.state == QUEUED:
                    self._later.remove(record)
                    self._now.append(record)
                return record
        record = _Record(task, symbols)
        self._now.append(record)
        return record

    def _drop(self, record: _Record) -> None:
        """A caller no longer wants ``record`` (it stopped early)."""
        record.asked, record.sink = False, None
        if record.state == QUEUED and record in self._now:
            self._now.remove(record)

    def _failed(self, record: _Record, error: BaseException) -> None:
        """A task's own failure: raised now if a caller waits for it, else kept until asked for."""
        record.state, record.error = DONE, error
        if record.asked:
            raise error

    def _ordered(self, tasks: Iterator[tuple], progress: Progress | None) -> Iterator:
        """Run ``(task, symbols)`` pairs on the workers; yield their results in task order.

        At most two results per worker wait for their turn, so memory stays bounded.
        """
        self._start()
        mine: deque[_Record] = deque()  # this call's records not yet given back
        exhausted = False
        try:
            if self._deferred is not None:
                deferred, self._deferred = self._deferred, None
                raise deferred
            while True:
                while not exhausted and len(mine) < 2 * self.slots:
                    item = next(tasks, None)
                    if item is None:
                        exhausted = True
                        break
                    record = self._claim(*item)
                    record.asked, record.sink = True, progress
                    record.credit()  # what a looked-ahead task has done already
                    mine.append(record)
                    if record.error is not None:  # it failed while looked ahead: its turn has come
                        break
                self._dispatch()
                while mine and mine[0].state == DONE:
                    record = mine.popleft()
                    if record.error is not None:
                        raise record.error
                    yield record.result
                if exhausted and not mine:
                    return
                self._pump()
        except GeneratorExit:  # the caller stopped early (zip() does, after the last result)
            if any(record.state == RUNNING for record in mine):
                self.close()  # work nobody will take would hold its workers from the next call
            for record in mine:
                self._drop(record)
            raise
        except BaseException:
            self.close()  # a worker may be mid-task or gone: the pool cannot be trusted any more
            raise

    def _forget_records(self) -> None:
        self._now.clear()
        self._later.clear()
        self._ahead.clear()
        self._deferred = None


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    record: _Record | None = None  # the task it is working on


class WorkerPool(Scheduler):
    """``processes`` worker processes with ``threads`` llama.cpp threads each, one model.

    Started on first use; reusable for many archives; :meth:`close` (or ``with``) ends it.
    """

    def __init__(self, model_file, processes: int, threads: int):
        super().__init__(processes)
        self.model_file = model_file
        self.processes = processes
        self.threads = threads
        self._workers: list[_Worker] = []

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers (none before the first task)."""
        return [w.process.pid for w in self._workers]

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the backend ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._workers:
            return
        context = multiprocessing.get_context("spawn")
        try:
            for _ in range(self.processes):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=_serve,
                    args=(theirs, self.model_file, self.threads),
                    name="nacrith-worker",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._workers.append(_Worker(process, mine))
        except BaseException:
            self.close()
            raise

    def _idle(self) -> list[_Worker]:
        return [w for w in self._workers if w.record is None]

    def _running(self) -> list[_Record]:
        return [w.record for w in self._workers if w.record is not None]

    def _launch(self, w: _Worker, record: _Record) -> None:
        try:
            w.conn.send(record.task)
        except OSError:  # it died while idle
            raise self._died(w) from None
        w.record = record
        self.tasks_by_worker[w.process.pid] += 1

    def _pump(self) -> None:
        """Wait for any message from a busy worker, or for any worker to die."""
        busy = [w for w in self._workers if w.record is not None]
        by_conn = {w.conn: w for w in busy}
        by_sentinel = {w.process.sentinel: w for w in self._workers}
        for ready in wait([*by_conn, *by_sentinel]):
            w = by_conn.get(ready)
            if w is None:
                dead = by_sentinel[ready]
                if dead.record is not None and dead.conn.poll():  # its last words come first
                    continue
                raise self._died(dead)
            try:
                kind, value = w.conn.recv()
            except (EOFError, OSError):
                raise self._died(w) from None
            record = w.record
            if kind == "progress":
                record.heard += value
                record.credit()
                continue
            w.record = None
            if kind == "done":
                record.state, record.result = DONE, value
            elif isinstance(value, NacrithError):
                self._failed(record, value)
            else:
                error = WorkerError(f"a worker process failed: {type(value).__name__}: {value}")
                error.__cause__ = value
                self._failed(record, error)

    def _died(self, w: _Worker) -> WorkerError:
        w.process.join(0.5)
        code = w.process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
        return WorkerError(
            f"worker process {w.process.pid} {how} while coding; nothing was written. Its memory "
            "may have run out: retry with fewer --workers (or without), and report it if it persists"
        )

    def close(self) -> None:
        """Stop every worker: ask idle ones to exit, terminate busy ones, kill stragglers."""
        self._forget_records()
        workers, self._workers = self._workers, []
        for w in workers:
            try:
                if w.record is None and w.process.is_alive():
                    w.conn.send(None)
                else:
                    w.process.terminate()
            except (OSError, ValueError):
                w.process.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for w in workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()


# -- look-ahead runs (nacrith.pipeline) -------------------------------------------------------


class LookedAhead(BaseException):
    """Ends a look-ahead run of the codec once it has handed its streams over (not an error:
    a BaseException so that no ``except Exception`` on the way swallows it)."""


class LookAhead:
    """Stands in for a pool (``Engine.workers``) while the codec runs on a later member:
    the streams it asks for are submitted to ``pool`` as member ``ticket``'s look-ahead, and
    the run stops there (:class:`LookedAhead`).  The codec's own code decides what the
    streams are, so the look-ahead is exactly what the member's real run will ask for."""

    def __init__(self, pool: Scheduler | None, ticket: int):
        self.pool = pool
        self.ticket = ticket

    def encode_streams(self, streams, layout, numeric, progress) -> Iterator[list[bytes]]:
        if self.pool is not None:
            self.pool.look_ahead_encode(streams, layout, numeric, self.ticket)
        raise LookedAhead

    def decode_streams(self, streams, layout, numeric, lanes, progress) -> Iterator[bytes]:
        if self.pool is not None:
            self.pool.look_ahead_decode(streams, layout, numeric, lanes, self.ticket)
        raise LookedAhead

    def __getattr__(self, name: str):  # anything else the codec may ask of a pool
        if self.pool is None:
            raise AttributeError(name)
        return getattr(self.pool, name)
