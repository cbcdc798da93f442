"""The library protocol: one-shot ``compress``/``decompress`` and the reusable :class:`Codec`.

A Codec's settings are fixed when it is made, as python-zstandard builds a compressor from
its parameters: a :class:`~nacrith.codec.Layout` changes the bitstream and is recorded in
each archive; an :class:`Execution` (threads, lanes, worker processes, Ray) changes only the
speed.  Other settings make another Codec (:meth:`Codec.replace`); nothing is set on a Codec
from outside.

Loading a model costs about a second and ~200 MB, so loaded models are kept apart from any
settings, in :class:`LoadedModels`, which several Codecs may share (the command line shares
one across its commands).  A Codec may be used from one
thread at a time (each engine has a lock); give each thread or process its own.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from dataclasses import dataclass
from typing import Callable

from . import archive, container, fingerprint, levels, models, pipeline
from .codec import DEFAULT_LANES, Engine, Layout, NumericConfig, Progress
from .ensemble import EnsembleConfig
from .errors import ModelLoadError
from .workers import LookAhead, LookedAhead, WorkerPool, plan as plan_workers

#: Where whole streams are coded: in this process or local worker processes, or on Ray.
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Execution:
    """How the work is run: settings that change the speed, never the archive.

    ``threads``: llama.cpp threads in all, shared by the workers (None: every core this
    process may use, :func:`nacrith.threads.default_threads`; with ``engine="ray"``, per Ray
    actor, None meaning 1).  ``lanes``: streams decoded together in
    one model call.  ``workers``: processes that code whole streams, each with its own model
    (:mod:`nacrith.workers`), or Ray actors with ``engine="ray"``.  ``address``: the Ray
    cluster's (None: $RAY_ADDRESS, else a new local one; see :mod:`nacrith.ray_engine`).
    """

    threads: int | None = None
    lanes: int = DEFAULT_LANES
    workers: int = 1
    engine: str = "local"
    address: str | None = None

    def replace(self, **changes) -> Execution:
        return dataclasses.replace(self, **changes)

    def check(self, error: type[Exception] = ValueError) -> Execution:
        if self.engine not in ENGINES:
            raise error(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.threads is not None and self.threads < 1:
            raise error(f"threads must be >= 1 or None, got {self.threads}")
        if self.lanes < 1:
            raise error(f"lanes must be >= 1, got {self.lanes}")
        if self.workers < 1:
            raise error(f"workers must be >= 1, got {self.workers}")
        return self


_EXECUTION_FIELDS = {f.name for f in dataclasses.fields(Execution)}


class LoadedModels:
    """Engines (a model, its tokenizer and llama.cpp contexts) loaded once and kept, by model
    file (its SHA-256) and thread count.

    It holds no setting of any call, so Codecs with different layouts and executions share
    it safely (one thread at a time).
    """

    def __init__(self) -> None:
        self._engines: dict[tuple[str, int | None], Engine] = {}

    def engine(self, model_file: models.ModelFile, threads: int | None) -> Engine:
        key = (model_file.sha256, threads)
        if key not in self._engines:
            self._engines[key] = _load(model_file, threads)
        return self._engines[key]


def _load(model_file: models.ModelFile, threads: int | None) -> Engine:
    """Load a model, turning the llama.cpp layer's refusal into a :class:`ModelLoadError`."""
    from .native import NativeError  # the bindings load with the first model, not at import

    try:
        return Engine(model_file, threads=threads)
    except NativeError:
        raise ModelLoadError(
            f"llama.cpp could not load the model file {model_file.path}: it is not a GGUF file, or it is "
            f"damaged or of a newer GGUF version; pass a preset ({', '.join(models.PRESETS)}) or a GGUF "
            "file with --model"
        ) from None


class Codec:
    """Compresses and decompresses with one default model and fixed settings.

    ``layout`` (a :class:`~nacrith.codec.Layout`; or its fields as keywords: ``block_tokens``,
    ``stream_tokens``, ``window``, ``slide``, ``sinks``, ``ensemble``, ``segments``) changes the
    bitstream and is recorded in each archive.  ``level`` (``"fast"``, ``"default"``, ``"best"``:
    :mod:`nacrith.levels`) starts from that level's layout and model instead of the defaults;
    ``model`` and the layout keywords override it (give ``level`` or ``layout``, not both).
    ``execution`` (an :class:`Execution`; or its fields as
    keywords: ``threads``, ``lanes``, ``workers``, ``engine``, ``address``) changes only the
    speed: ``engine="ray"`` codes the streams on a Ray cluster, ``workers`` Ray actors of
    ``threads`` (default 1) llama.cpp threads each, same archives.  Keywords override the
    fields of the object given.  ``loaded``: the :class:`LoadedModels` to take engines from
    (default: a new one, this Codec's own).

    Worker processes and Ray actors belong to the Codec: call :meth:`close` (or use
    ``with``) to stop them early; they are stopped at exit in any case.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        level: str | levels.Level | None = None,
        layout: Layout | None = None,
        execution: Execution | None = None,
        limits: container.Limits = container.DEFAULT_LIMITS,
        loaded: LoadedModels | None = None,
        native: bool = False,
        **fields: int | str | EnsembleConfig | None,
    ):
        speed = {k: fields.pop(k) for k in list(fields) if k in _EXECUTION_FIELDS}
        preset = levels.get(level)
        if level is not None and layout is not None:
            raise ValueError("give a level or a layout, not both (a layout already says its level)")
        self._model = model if model is not None else preset.model
        self._native = bool(native)
        self._layout = (layout or preset.layout).replace(**fields).check()
        self._execution = (execution or Execution()).replace(**speed).check()
        self._limits = limits
        self._loaded = loaded if loaded is not None else LoadedModels()
        self._pools: dict[str, object] = {}  # model sha256 -> WorkerPool, RayPool or None
        self._ticket: int | None = None  # the member a look-ahead run is for (None: a real run)
        self._routed: list[tuple[Engine, object]] = []  # engines a look-ahead run gave a stand-in

    # The settings, read-only: a Codec with other settings is another Codec (replace).
    model = property(lambda self: self._model, doc="The default model (preset, path or None).")
    layout = property(lambda self: self._layout, doc="The Layout archives are written with.")
    execution = property(lambda self: self._execution, doc="Threads, lanes, workers, engine, address.")
    limits = property(lambda self: self._limits, doc="Safety limits applied to archives read.")
    native = property(
        lambda self: self._native,
        doc="Whether archives may be written by a llama.cpp that is not the pinned portable build "
        "(they are then machine-bound: only machines computing the same numbers decode them).",
    )
    loaded = property(lambda self: self._loaded, doc="The LoadedModels engines come from.")
    threads = property(lambda self: self._execution.threads)
    lanes = property(lambda self: self._execution.lanes)
    workers = property(lambda self: self._execution.workers)

    def replace(self, **changes) -> Codec:
        """A Codec with ``changes`` (``model``, ``limits``, layout or execution fields),
        sharing this one's loaded models but not its workers."""
        return Codec(
            changes.pop("model", self._model),
            layout=self._layout,
            execution=self._execution,
            limits=changes.pop("limits", self._limits),
            loaded=self._loaded,
            native=changes.pop("native", self._native),
            **changes,
        )

    def engine(self, model_file: models.ModelFile) -> Engine:
        """The loaded engine for ``model_file``, set to code on this Codec's workers (if any)."""
        eng = self._loaded.engine(model_file, self.threads)
        # The codec module finds the worker pool on the engine.  An engine serves one call at
        # a time, and every call gets its engine here, so each call codes on its own Codec's pool.
        pool = self._pool(model_file, eng)
        if self._ticket is None:
            eng.workers = pool
        else:  # a look-ahead run: the stand-in submits the streams and stops the run
            self._routed.append((eng, pool))
            eng.workers = LookAhead(pool, self._ticket)
        return eng

    # -- for nacrith.pipeline, which keeps several members in flight -----------------------

    def _parallel(self) -> bool:
        """Whether streams may be coded on worker processes or Ray actors."""
        return self._execution.engine == "ray" or self._execution.workers > 1

    def _started_pools(self) -> list:
        """The worker pools made so far (one per model)."""
        return [pool for pool in self._pools.values() if pool is not None]

    def _look_ahead(self, ticket: int, run: Callable[[], object]) -> None:
        """Run ``run`` (the coding of one member) only until it hands its streams to a pool,
        which takes them as member ``ticket``'s look-ahead (``nacrith.workers.LookAhead``).

        Any error is dropped: the member's real run meets it again and reports it in its
        turn (so are warnings, which the real run gives)."""
        self._ticket = ticket
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run()
        except LookedAhead:
            pass
        except Exception:  # noqa: BLE001 - reported by the real run, in member order
            pass
        finally:
            self._ticket = None
            for eng, pool in self._routed:
                eng.workers = pool
            self._routed.clear()

    def _look_ahead_compress(self, data: bytes, ticket: int) -> None:
        """Submit the streams :meth:`compress` of ``data`` will ask for (``nacrith.pipeline``);
        only the model stage runs, so nothing is coded here."""
        if not data:
            return

        def run() -> None:
            eng = self.engine(models.resolve(self.model))
            layout = archive.effective_layout(self.layout, len(data))
            archive.model_member(eng, data, layout=layout, numeric=NumericConfig(native=self._native))

        self._look_ahead(ticket, run)

    def _look_ahead_decompress(self, member: bytes, ticket: int) -> None:
        """Submit the streams decoding the archive member ``member`` will ask for, if it is
        model coded (``nacrith.pipeline``)."""

        def run() -> None:
            reader = container.ArchiveReader(io.BytesIO(member), self.limits)
            if reader.header.mode in container.MODEL_MODES:
                archive.decompress_archive(reader, self.engine, model=self.model, lanes=self.lanes)

        self._look_ahead(ticket, run)

    def _pool(self, model_file: models.ModelFile, eng: Engine):
        """The worker pool for ``model_file`` (None: code in this process), made on first use."""
        if model_file.sha256 not in self._pools:
            run = self._execution
            if run.engine == "ray":
                from .ray_engine import RayPool  # Ray is optional: imported only when asked for

                # Every actor's numerics are compared with this process's before any stream.
                local_probe = lambda numeric: fingerprint.probe(eng.model, numeric, eng.start_token, eng.threads, lockstep=True)  # noqa: E731
                pool = RayPool(model_file, run.workers, run.threads or 1, run.address, local_probe=local_probe)
            else:
                processes, threads = plan_workers(run.workers, eng.threads)
                pool = WorkerPool(model_file, processes, threads) if processes >= 2 else None
            self._pools[model_file.sha256] = pool
        return self._pools[model_file.sha256]

    def close(self) -> None:
        """Stop this codec's worker processes (a later call starts new ones)."""
        for pool in self._pools.values():
            if pool is not None:
                pool.close()
        self._pools.clear()

    def __enter__(self) -> Codec:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def compress(
        self,
        data: bytes,
        *,
        layout: Layout | None = None,
        progress: Progress | None = None,
        on_total: Callable[[int], None] | None = None,
        fallback: bool = True,
        native: bool | None = None,
        **overrides: int | EnsembleConfig,
    ) -> bytes:
        """Compress ``data`` with ``layout`` (default: the codec's), with keyword overrides.

        The result is the smallest of a model/hybrid, a zstd and a stored archive; with
        ``fallback=False`` the model or hybrid archive whenever the input has text.
        ``native`` overrides the Codec's permission to write a machine-bound archive.
        """
        data = bytes(data)
        if not data:
            return container.encode_stored(data)
        eng = self.engine(models.resolve(self.model))
        return archive.compress(
            eng,
            data,
            layout=(layout or self.layout).replace(**overrides).check(),
            numeric=NumericConfig(native=self._native if native is None else native),
            progress=progress,
            on_total=on_total,
            fallback=fallback,
        )

    def decompress(
        self,
        data: bytes,
        *,
        progress: Progress | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> bytes:
        """Decode one archive or several concatenated ones; anything else trailing is an error."""
        data = bytes(data)
        if on_total:
            on_total(sum(i.total_symbols for i in scan(data, self.limits)))
        if self._parallel():  # several members' streams in flight at once; the same bytes
            out: list[bytes] = []
            pipeline.decompress(self, io.BytesIO(data), out.append, progress=progress)
            return b"".join(out)
        return archive.decompress(
            data, self.engine, model=self.model, lanes=self.lanes, limits=self.limits, progress=progress
        )

    def info(self, data: bytes) -> list[container.ArchiveInfo]:
        return scan(data, self.limits)


def scan(data: bytes, limits: container.Limits = container.DEFAULT_LIMITS) -> list[container.ArchiveInfo]:
    """Header and block summary of every archive in ``data`` (no decoding)."""
    stream = io.BytesIO(data)
    infos = []
    while stream.tell() < len(data) or not infos:
        infos.append(container.read_info(stream, limits))
        if not data[stream.tell() :].startswith(container.MAGIC):
            break
    return infos


#: The one-shot functions' Codecs, one per model and thread count, so that their models stay
#: loaded for later calls (a Codec's settings never change, so sharing one is safe).
_shared: dict[tuple, Codec] = {}


def _codec(model, threads, level=None) -> Codec:
    key = (None if model is None else os.fspath(model), threads, levels.get(level).name)
    if key not in _shared:
        _shared[key] = Codec(model, threads=threads, level=level)
    return _shared[key]


def compress(
    data: bytes,
    *,
    level: str | None = None,
    model: str | os.PathLike | None = None,
    threads: int | None = None,
    **layout: int | EnsembleConfig,
) -> bytes:
    """Compress ``data`` to a nacrith archive (models stay loaded for later calls).

    ``level``: ``"fast"``, ``"default"`` (None) or ``"best"`` (:mod:`nacrith.levels`).  Layout
    keywords override the level's: ``block_tokens``, ``stream_tokens``, ``window``, ``slide``,
    ``sinks``, ``segments``, ``ensemble`` (an :class:`nacrith.ensemble.EnsembleConfig`).
    """
    return _codec(model, threads, level).compress(data, **layout)


def decompress(data: bytes, *, model: str | os.PathLike | None = None, threads: int | None = None) -> bytes:
    """Decompress one or more concatenated nacrith archives."""
    return _codec(model, threads).decompress(data)
