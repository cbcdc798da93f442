"""Registration of nacrith as an fsspec compression (``compression="nacrith"``, suffix ``.nc``).

fsspec (checked up to 2026.9) discovers *filesystems* through the ``fsspec.specs`` entry-point
group but has no entry-point hook for *compressions*: a compression exists once somebody calls
``fsspec.compression.register_compression``.  nacrith therefore registers itself when both
packages are imported, in whichever order, without importing fsspec itself:

* if ``fsspec.compression`` is already imported when ``nacrith`` is, :func:`register` runs at
  once;
* otherwise :func:`install_hook` puts a tiny finder on ``sys.meta_path`` that waits for
  ``fsspec.compression`` to be imported, runs :func:`register` right after that module has
  executed, and removes itself.  Nothing is looked up on disk, so ``import nacrith`` costs the
  same whether fsspec is installed or not.

:func:`register` may also be called directly (it is idempotent).  The suffix ``nc`` is only
claimed if no other compression owns it (netCDF files also end in ``.nc``; fsspec compressions
are only inferred from the suffix with ``compression="infer"``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import IO, Any

NAME = "nacrith"
EXTENSION = "nc"
_TARGET = "fsspec.compression"


def _open(infile: IO[bytes], mode: str = "rb", **kwargs: Any) -> Any:
    """fsspec compression callback: wrap ``infile`` (fsspec passes ``mode`` "r" or "w")."""
    from .stream import NacrithFile

    return NacrithFile(infile, mode=mode.replace("t", "").rstrip("b") + "b", **kwargs)


def _register_into(compression: ModuleType) -> None:
    if compression.compr.get(NAME) is _open:
        return
    compression.register_compression(NAME, _open, [], force=True)
    try:
        import fsspec.utils

        fsspec.utils.compressions.setdefault(EXTENSION, NAME)
    except Exception:  # pragma: no cover - an fsspec without the suffix table
        pass


def register() -> None:
    """Register nacrith with fsspec now (imports fsspec; ImportError if it is missing)."""
    import fsspec.compression

    _register_into(fsspec.compression)


class _Loader(importlib.abc.Loader):
    """Delegates to fsspec.compression's real loader, then registers nacrith."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            _register_into(module)
        except Exception as exc:  # never break fsspec's import because of nacrith
            warnings.warn(f"nacrith: could not register with fsspec: {exc}", RuntimeWarning, stacklevel=2)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> Any:
        if fullname != _TARGET:
            return None
        _remove_hook()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader)
        return spec


_finder = _Finder()


def _remove_hook() -> None:
    try:
        sys.meta_path.remove(_finder)
    except ValueError:
        pass


def install_hook() -> None:
    """Register now if fsspec.compression is loaded, else when it gets imported."""
    module = sys.modules.get(_TARGET)
    if module is not None:
        try:
            _register_into(module)
        except Exception as exc:
            warnings.warn(f"nacrith: could not register with fsspec: {exc}", RuntimeWarning, stacklevel=2)
        return
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
