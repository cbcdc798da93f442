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
:func:`nacrith.codec.default_threads`).  Each of its ``n`` workers runs ``total // n``
threads, and ``n`` is at most ``total``, so the workers together never run more threads
than the budget (see :func:`plan`).

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
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Callable, Iterable, Iterator

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


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: int | None = None  # index of the task it is working on


def lane_groups(streams: Iterable[list], lanes: int, workers: int) -> tuple[int, list[list]]:
    """Deal one archive member's streams into groups decoded in lockstep, one per task:
    at most ``lanes`` streams each, fewer when that keeps all ``workers`` busy.
    Returns (group size, groups)."""
    streams = list(streams)  # one archive member's blocks: bounded by the member
    size = max(1, min(lanes, -(-len(streams) // workers)))
    return size, [streams[k : k + size] for k in range(0, len(streams), size)]


class WorkerPool:
    """``processes`` worker processes with ``threads`` llama.cpp threads each, one model.

    Started on first use; reusable for many archives; :meth:`close` (or ``with``) ends it.
    """

    def __init__(self, model_file, processes: int, threads: int):
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

    # -- what the codec calls ---------------------------------------------------------------

    def encode_streams(self, streams: Iterable[np.ndarray], layout, numeric, progress: Progress | None) -> Iterator[list[bytes]]:
        """Like ``Engine.encode_stream`` for each stream, in order: each stream's payloads."""
        tasks = (("encode", layout, numeric, symbols, 1) for symbols in streams)
        return self._ordered(tasks, progress)

    def decode_streams(self, streams: Iterable[list], layout, numeric, lanes: int, progress: Progress | None) -> Iterator[bytes]:
        """Like ``Engine.decode_streams``: each stream's bytes, in order.

        The streams are dealt out in groups (at most ``lanes`` each, fewer when that keeps
        every worker busy); each worker decodes its group in lockstep.
        """
        size, groups = lane_groups(streams, lanes, self.processes)
        tasks = (("decode", layout, numeric, group, size) for group in groups)
        for decoded in self._ordered(tasks, progress):
            yield from decoded

    # -- machinery --------------------------------------------------------------------------

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

    def _ordered(self, tasks: Iterator[tuple], progress: Progress | None) -> Iterator:
        """Run ``tasks`` on the workers; yield their results in task order.

        At most two results per worker wait for their turn, so memory stays bounded.
        """
        self._start()
        results: dict[int, object] = {}
        submitted = emitted = 0
        exhausted = False
        try:
            while True:
                for w in self._workers:
                    if w.task is None and not exhausted and submitted - emitted < 2 * self.processes:
                        task = next(tasks, None)
                        if task is None:
                            exhausted = True
                            break
                        try:
                            w.conn.send(task)
                        except OSError:  # it died while idle
                            raise self._died(w) from None
                        w.task = submitted
                        submitted += 1
                while emitted in results:
                    yield results.pop(emitted)
                    emitted += 1
                if exhausted and emitted == submitted:
                    return
                self._receive(results, progress)
        except GeneratorExit:  # the caller stopped early (zip() does, after the last result)
            if any(w.task is not None for w in self._workers):
                self.close()  # their late results must not reach the next caller
            raise
        except BaseException:
            self.close()  # a worker may be mid-task or gone: the pool cannot be trusted any more
            raise

    def _receive(self, results: dict, progress: Progress | None) -> None:
        """Wait for any message from a busy worker, or for any worker to die."""
        busy = [w for w in self._workers if w.task is not None]
        by_conn = {w.conn: w for w in busy}
        by_sentinel = {w.process.sentinel: w for w in self._workers}
        for ready in wait([*by_conn, *by_sentinel]):
            w = by_conn.get(ready)
            if w is None:
                dead = by_sentinel[ready]
                if dead.task is not None and dead.conn.poll():  # its last words come first
                    continue
                raise self._died(dead)
            try:
                kind, value = w.conn.recv()
            except (EOFError, OSError):
                raise self._died(w) from None
            if kind == "progress":
                if progress:
                    progress(value)
            elif kind == "done":
                results[w.task] = value
                w.task = None
            elif isinstance(value, NacrithError):
                raise value
            else:
                raise WorkerError(f"a worker process failed: {type(value).__name__}: {value}") from value

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
        workers, self._workers = self._workers, []
        for w in workers:
            try:
                if w.task is None and w.process.is_alive():
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
