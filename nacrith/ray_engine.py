"""Streams coded on a Ray cluster: a drop-in alternative to :class:`nacrith.workers.WorkerPool`.

Streams are independent (``nacrith.codec``): a stream's payloads depend only on its symbols
and the archive's layout, never on where or with how many threads it was coded.  A
:class:`RayPool` therefore hands whole streams to Ray actors and gives the results back **in
stream order**, so its archives are byte-identical to a local run's, and archives decode on
either engine whoever made them.  It has the two methods ``nacrith.codec`` calls on
``Engine.workers`` (``encode_streams``, ``decode_streams``), like the local pool.

Why actors: loading the model takes a second and a few hundred MB, so each actor loads it
once (on its first task) and then codes stream after stream.  Each actor reserves
``threads`` CPUs of the cluster and runs that many llama.cpp threads.  The model must be
installed on every node: an actor finds it by SHA-256 among the installed presets
(``nacrith.models``), or at the driver's path for a custom GGUF file.

Memory: a stream's symbols travel as a task argument (Ray puts large ones in its object
store), and at most two tasks per actor are submitted or waiting for their turn, plus one
looked-ahead task per actor (``nacrith.workers.Scheduler``), so the driver holds a bounded
window of streams and results, never the whole input.  The command line keeps the next
members' streams in flight beside the current one's (``nacrith.pipeline``), so a large input
keeps every actor busy.

Faults: an actor that dies (killed, crashed, out of memory, its node lost) is restarted by
Ray and its task retried, up to ``retries`` times (``max_restarts``/``max_task_retries``);
since coding is deterministic, the retried stream gives the same bytes.  A stream that
still fails raises :class:`WorkerError`; an error raised by the coding itself (a checksum
mismatch, a missing model) is re-raised as the NacrithError it is, and is not retried.

Progress: actors report how many symbols each task has coded to a small tally actor; the
driver polls it while it waits and feeds one progress callback (one bar for all workers).
A retried task's counts restart from zero, so the tally keeps each task's largest count and
the driver credits a task's exact size when its result arrives: the bar never overcounts.

Ray is optional (``pip install 'nacrith[ray]'``); it is imported only when a pool is used.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

from . import fingerprint, models
from .errors import EnvironmentMismatchError, MissingDependencyError, ModelNotFoundError, NacrithError, WorkerError
from .workers import DONE, Scheduler
from .workers import _run as run_task

INSTALL = "pip install 'nacrith[ray]'"
#: Restarts of a dead actor, and retries of the task it was running, before the job fails.
DEFAULT_RETRIES = 3
#: Seconds between progress reports from a busy actor, and between polls by the driver.
PROGRESS_INTERVAL = 0.5
#: Test hook, read by the driver when it starts its actors: ``once:PATH`` makes the first
#: task on the whole cluster kill its actor's process (PATH, created then, marks that it
#: happened), ``always`` makes every task do so, the way a crashed or killed worker would;
#: ``probe`` makes every actor report other numerics, as a node with another llama.cpp would.
FAULT_ENV = "NACRITH_TEST_RAY_FAULT"


def import_ray():
    """The ``ray`` module, or MissingDependencyError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            f"--engine ray needs Ray, which is not installed; install it with: {INSTALL} "
            "(on this machine and on every node of the cluster)"
        ) from None
    return ray


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (None: $RAY_ADDRESS or a cluster started on this
    machine, else a new local one), unless this process is connected already."""
    ray = import_ray()
    if ray.is_initialized():
        return
    # ray.init replaces the SIGTERM handler; the CLI's (no partial output) must stay.
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "$RAY_ADDRESS or a local cluster"
        raise WorkerError(f"cannot connect to the Ray cluster at {where}: {_first_line(exc)}") from None
    finally:
        if main and handler is not None:
            signal.signal(signal.SIGTERM, handler)


# -- the worker side ------------------------------------------------------------------------


def model_on_this_node(sha256: str, driver_path: str) -> models.ModelFile:
    """The model file with this SHA-256 on the node an actor runs on."""
    node = socket.gethostname()
    try:
        found = models.find_by_sha256(sha256)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"on Ray node {node}: {exc} (the model must be installed on every node)") from None
    if found is not None:
        return found
    path = Path(driver_path)
    if path.is_file() and models.file_sha256(path) == sha256:
        return models.ModelFile(path=path, sha256=sha256, name=path.name)
    raise ModelNotFoundError(
        f"Ray node {node} has no model with sha256 {sha256}: copy the GGUF file to {driver_path} "
        "on every node (or install the model's package there)"
    )


def _maybe_crash(fault: str) -> None:
    if fault == "always":
        os._exit(3)
    if fault.startswith("once:"):
        try:
            os.close(os.open(fault[5:], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(3)


class StreamCoder:
    """A Ray actor (once wrapped by :func:`_remote_classes`): one model, stream after stream."""

    def __init__(self, sha256: str, driver_path: str, threads: int, tally_name: str, fault: str):
        # Plain values only: Ray warns that a restart could fail if a constructor argument
        # lived in the object store (as an actor handle does), so the tally is found by name.
        self.sha256 = sha256
        self.driver_path = driver_path
        self.threads = threads
        self.tally_name = tally_name
        self.tally = None
        self.fault = fault
        self.engine = None

    def _load(self) -> None:
        if self.engine is None:
            from .codec import Engine

            self.engine = Engine(model_on_this_node(self.sha256, self.driver_path), threads=self.threads)

    def numerics(self, numeric) -> tuple[bytes, str, str]:
        """(probe, kernel set, where) of this actor's llama.cpp under ``numeric``: the driver
        compares them with its own before it hands out any stream."""
        self._load()
        probe = fingerprint.probe(self.engine.model, numeric, self.engine.start_token, self.threads, lockstep=True)
        if self.fault == "probe":
            probe = bytes(b ^ 0xFF for b in probe)
        return probe, fingerprint.loaded_kernel_set(), f"{socket.gethostname()} pid {os.getpid()}"

    def code(self, key: int, task: tuple) -> list:
        """Code one task of :mod:`nacrith.workers`'s shape, reporting progress under ``key``."""
        _maybe_crash(self.fault)
        self._load()
        if self.tally is None:
            import ray

            self.tally = ray.get_actor(self.tally_name)
        coded = 0
        last = time.monotonic()

        def progress(n: int) -> None:
            nonlocal coded, last
            coded += n
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                self.tally.report.remote(key, coded)  # fire and forget
                last = now

        return run_task(self.engine, task, progress)

    def where(self) -> tuple[str, int]:
        """(Ray node id, process id) of this actor: which machine and process codes here."""
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()


class Tally:
    """A Ray actor: symbols coded so far by each running task (the largest count reported)."""

    def __init__(self):
        self.counts: dict[int, int] = {}

    def report(self, key: int, count: int) -> None:
        if count > self.counts.get(key, 0):
            self.counts[key] = count

    def take(self, finished: list[int]) -> dict[int, int]:
        """The counts of running tasks, after forgetting those of ``finished`` ones."""
        for key in finished:
            self.counts.pop(key, None)
        return dict(self.counts)


def _remote_classes(ray, threads: int, retries: int):
    """The actor classes with their Ray options (ray is imported only here, not at import)."""
    coder = ray.remote(
        num_cpus=threads,
        max_restarts=retries,
        max_task_retries=retries,
        scheduling_strategy="SPREAD",
    )(StreamCoder)
    tally = ray.remote(num_cpus=0)(Tally)
    return coder, tally


# -- the driver side ------------------------------------------------------------------------


class RayPool(Scheduler):
    """``workers`` Ray actors with ``threads`` llama.cpp threads (and CPUs) each, one model.

    Connects and starts its actors on first use; reusable for many archives; :meth:`close`
    (or ``with``) ends the actors (not the cluster).  Tasks are handed out, given back in
    order and looked ahead as by the local pool (:class:`nacrith.workers.Scheduler`).
    """

    def __init__(
        self,
        model_file: models.ModelFile,
        workers: int,
        threads: int = 1,
        address: str | None = None,
        retries: int | None = None,
        local_probe=None,
    ):
        import_ray()  # fail now, before any work, if Ray is missing
        super().__init__(workers)
        self.model_file = model_file
        #: ``numeric -> probe`` of the driver's own llama.cpp (None: actors are not compared).
        self.local_probe = local_probe
        self._checked: set = set()  # numeric settings whose actors agreed with the driver
        self.workers = max(1, workers)
        self.threads = max(1, threads)
        self.address = address
        self.retries = DEFAULT_RETRIES if retries is None else retries
        self._actors: list = []
        self._free: list = []  # actors without a task
        self._tally = None
        self._issued = 0  # tasks ever submitted: their progress keys never repeat
        self._tasks: dict = {}  # object ref -> (record, actor, progress key) of each running task
        self._finished: list[int] = []  # progress keys whose tally entries can go

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def actors(self) -> list:
        """The actor handles (none before the first task)."""
        return list(self._actors)

    def _admit(self, numeric) -> None:
        """Refuse, before any stream is coded, a cluster whose actors compute other numbers than
        the driver (another llama.cpp build or CPU kernels on some node): their streams would
        make an archive that decodes nowhere, or fail to decode one."""
        if self.local_probe is None or numeric in self._checked:
            return
        self._start()
        ray = import_ray()
        want = self.local_probe(numeric)
        for probe, kernels, where in ray.get([actor.numerics.remote(numeric) for actor in self._actors]):
            if probe != want:
                raise EnvironmentMismatchError(
                    f"a Ray worker ({where}) computes other model numbers than this process "
                    f"(worker: {kernels} kernels, probe {probe.hex()}; here: {fingerprint.loaded_kernel_set()} "
                    f"kernels, probe {want.hex()}); nothing was coded. Install nacrith with "
                    "native/install.sh on every node"
                )
        self._checked.add(numeric)

    # -- the backend ------------------------------------------------------------------------

    def _start(self) -> None:
        ray = import_ray()
        if self._actors:
            return
        connect(self.address)
        cpus = ray.cluster_resources().get("CPU", 0)
        if self.workers * self.threads > cpus:
            # An actor that cannot be placed would hold its task forever: refuse instead.
            raise WorkerError(
                f"{self.workers} Ray workers of {self.threads} thread(s) need {self.workers * self.threads} "
                f"CPUs, but the cluster has {cpus:g}: ask for fewer --workers (or add nodes first)"
            )
        coder, tally = _remote_classes(ray, self.threads, self.retries)
        fault = os.environ.get(FAULT_ENV, "")
        name = f"nacrith-tally-{uuid.uuid4().hex}"
        self._tally = tally.options(name=name).remote()
        self._actors = [
            coder.remote(self.model_file.sha256, str(self.model_file.path), self.threads, name, fault)
            for _ in range(self.workers)
        ]
        self._free = list(self._actors)

    def _idle(self) -> list:
        return list(self._free)

    def _running(self) -> list:
        return [record for record, _, _ in self._tasks.values()]

    def _launch(self, actor, record) -> None:
        key = self._issued
        self._issued += 1
        self._free.remove(actor)
        self._tasks[actor.code.remote(key, record.task)] = (record, actor, key)
        self.tasks_by_worker[self._actors.index(actor)] += 1

    def _pump(self) -> None:
        """Wait a little for a task to end; then poll the tally for the running tasks' progress.

        A retried task's counts restart from zero, so the tally keeps each task's largest
        count, and a task's exact size is credited when its result arrives: the progress
        never overcounts.
        """
        ray = import_ray()
        ready, _ = ray.wait(list(self._tasks), num_returns=1, timeout=PROGRESS_INTERVAL)
        for ref in ready:
            record, actor, key = self._tasks.pop(ref)
            self._free.append(actor)
            self._finished.append(key)
            value, error = self._result(ray, ref, key)
            if error is not None:
                self._failed(record, error)
                continue
            record.state, record.result = DONE, value
            record.heard = max(record.heard, record.symbols)  # exact, whatever the tally last heard
            record.credit()
        if self._tasks or self._finished:
            counts = ray.get(self._tally.take.remote(self._finished))
            self._finished = []
            for record, _, key in self._tasks.values():
                if counts.get(key, 0) > record.heard:
                    record.heard = counts[key]
                    record.credit()

    def _result(self, ray, ref, index: int) -> tuple[object, NacrithError | None]:
        """A task's result, or the NacrithError that explains why there is none (an error of
        the coding itself, kept with its task); a dead actor is raised at once."""
        try:
            return ray.get(ref), None
        except ray.exceptions.RayTaskError as exc:  # raised by the coding itself: not retried
            cause = getattr(exc, "cause", None)
            if isinstance(cause, NacrithError):
                return None, cause
            return None, WorkerError(f"a Ray worker failed on task {index}: {type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as exc:  # the actor died, more often than it may restart
            raise WorkerError(
                f"a Ray worker died on task {index} and still failed after {self.retries} retries "
                f"({type(exc).__name__}: {_first_line(exc)}); nothing was written. Check the nodes' memory "
                "and logs (/tmp/ray/session_latest/logs), and report it if it persists"
            ) from None

    def close(self) -> None:
        """End the actors (a later job starts new ones); the cluster itself stays up."""
        self._forget_records()
        self._tasks.clear()
        self._finished = []
        self._free = []
        actors, self._actors = self._actors + ([self._tally] if self._tally else []), []
        self._tally = None
        if not actors:
            return
        ray = import_ray()
        if not ray.is_initialized():
            return
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone, or the cluster is
                pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
