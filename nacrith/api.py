"""The library protocol: one-shot ``compress``/``decompress`` and the reusable :class:`Codec`.

Loading a model costs about a second and ~200 MB; a :class:`Codec` keeps its engines (model,
tokenizer, llama.cpp context) loaded across calls, the way python-zstandard's compressor
objects keep their context.  A Codec may be used from one thread at a time (each engine has
a lock); give each thread or process its own Codec.
"""

from __future__ import annotations

import io
import os
from typing import Callable

from . import codec, container, models
from .codec import DEFAULT_LANES, Engine, Layout, NumericConfig, Progress
from .ensemble import EnsembleConfig
from .errors import FormatError
from .workers import WorkerPool, plan as plan_workers

#: Where whole streams are coded: in this process or local worker processes, or on Ray.
ENGINES = ("local", "ray")


class Codec:
    """Compresses and decompresses with one default model, loading models at most once.

    Layout settings (``block_tokens``, ``stream_tokens``, ``window``, ``slide``, ``sinks``,
    ``ensemble``; see :class:`nacrith.codec.Layout`) change the bitstream and are recorded in each archive;
    ``threads``, ``lanes`` (streams decoded together) and ``workers`` (processes that code
    whole streams, each with its own model; see :mod:`nacrith.workers`) change only the
    speed.  ``threads`` is the total for all workers.  Call :meth:`close` (or use ``with``)
    to stop the workers early; they are stopped at exit in any case.

    ``engine="ray"`` codes the streams on a Ray cluster instead (``address``: the cluster's,
    None for $RAY_ADDRESS or a new local one; see :mod:`nacrith.ray_engine`): ``workers``
    Ray actors of ``threads`` (default 1) llama.cpp threads each, same archives.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        threads: int | None = None,
        lanes: int = DEFAULT_LANES,
        workers: int = 1,
        engine: str = "local",
        address: str | None = None,
        limits: container.Limits = container.DEFAULT_LIMITS,
        **layout: int | EnsembleConfig,
    ):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.model = model
        self.threads = threads
        self.lanes = lanes
        self.workers = workers
        self.engine_kind = engine
        self.address = address
        self._pools: dict[tuple, WorkerPool] = {}
        self.limits = limits
        self.layout = Layout(**layout).check()
        self._engines: dict[str, Engine] = {}

    def engine(self, model_file: models.ModelFile) -> Engine:
        eng = self._engines.get(model_file.sha256)
        if eng is None:
            eng = self._engines[model_file.sha256] = Engine(model_file, threads=self.threads)
        eng.workers = self._pool(model_file, eng.threads)
        return eng

    def _pool(self, model_file: models.ModelFile, total_threads: int):
        """The worker pool for ``model_file`` under the current settings (None: in-process).

        Started lazily by its first archive; a pool for other settings is stopped."""
        if self.engine_kind == "ray":
            from .ray_engine import RayPool  # Ray is optional: imported only when asked for

            key = (model_file.sha256, "ray", self.workers, self.threads or 1, self.address)
            make = lambda: RayPool(model_file, self.workers, self.threads or 1, self.address)  # noqa: E731
        else:
            processes, threads = plan_workers(self.workers, total_threads)
            if processes < 2:
                return None
            key = (model_file.sha256, processes, threads)
            make = lambda: WorkerPool(model_file, processes, threads)  # noqa: E731
        if key not in self._pools:
            for old in [k for k in self._pools if k[0] == model_file.sha256]:
                self._pools.pop(old).close()
            self._pools[key] = make()
        return self._pools[key]

    def close(self) -> None:
        """Stop this codec's worker processes (a later call starts new ones)."""
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def __enter__(self) -> "Codec":
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
        **overrides: int | EnsembleConfig,
    ) -> bytes:
        """Compress ``data`` with ``layout`` (default: the codec's), with keyword overrides.

        The result is the smallest of a model/hybrid, a zstd and a stored archive; with
        ``fallback=False`` the model or hybrid archive whenever the input has text.
        """
        data = bytes(data)
        if not data:
            return container.encode_stored(data)
        eng = self.engine(models.resolve(self.model))
        return codec.compress(
            eng,
            data,
            layout=(layout or self.layout).replace(**overrides).check(),
            numeric=NumericConfig(),
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
        stream = io.BytesIO(data)
        out = []
        while True:
            reader = container.ArchiveReader(stream, self.limits)
            out.append(
                codec.decompress_archive(
                    reader, self.engine, model=self.model, lanes=self.lanes, progress=progress
                )
            )
            rest = data[stream.tell() :]
            if not rest:
                return b"".join(out)
            if not rest.startswith(container.MAGIC):
                raise FormatError(f"{len(rest)} bytes of trailing data after the archive are not an archive")

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


_shared: dict[tuple, Codec] = {}


def _codec(model, threads) -> Codec:
    key = (None if model is None else os.fspath(model), threads)
    if key not in _shared:
        _shared[key] = Codec(model, threads=threads)
    return _shared[key]


def compress(
    data: bytes,
    *,
    model: str | os.PathLike | None = None,
    threads: int | None = None,
    **layout: int | EnsembleConfig,
) -> bytes:
    """Compress ``data`` to a nacrith archive (models stay loaded for later calls).

    Layout keywords: ``block_tokens``, ``stream_tokens``, ``window``, ``slide``, ``sinks``,
    ``ensemble`` (an :class:`nacrith.ensemble.EnsembleConfig`).
    """
    return _codec(model, threads).compress(data, **layout)


def decompress(data: bytes, *, model: str | os.PathLike | None = None, threads: int | None = None) -> bytes:
    """Decompress one or more concatenated nacrith archives."""
    return _codec(model, threads).decompress(data)
