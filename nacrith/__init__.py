"""nacrith: lossless compression with a small language model and an arithmetic coder.

    >>> import nacrith
    >>> blob = nacrith.compress(b"hello, world\\n")       # doctest: +SKIP
    >>> nacrith.decompress(blob)                           # doctest: +SKIP
    b'hello, world\\n'
"""

from . import _fsspec
from .api import Codec, Execution, LoadedModels, compress, decompress
from .codec import Layout
from .container import FORMAT_VERSION, MAGIC, Limits
from .errors import (
    ChecksumError,
    EnvironmentMismatchError,
    FormatError,
    LimitError,
    MissingDependencyError,
    ModelError,
    ModelLoadError,
    ModelMismatchError,
    ModelNotFoundError,
    NacrithError,
    NacrithWarning,
    TokenizationError,
    TruncatedError,
    UnsupportedVersionError,
    WorkerError,
)
from .ensemble import EnsembleConfig
from .stream import (
    FrameInfo,
    NacrithCompressor,
    NacrithDecompressor,
    NacrithFile,
    get_frame_info,
    open,
)

__version__ = "0.1.0"

__all__ = [
    "Codec",
    "compress",
    "decompress",
    "open",
    "NacrithFile",
    "NacrithCompressor",
    "NacrithDecompressor",
    "FrameInfo",
    "get_frame_info",
    "MAGIC",
    "FORMAT_VERSION",
    "NacrithError",
    "FormatError",
    "TruncatedError",
    "UnsupportedVersionError",
    "ChecksumError",
    "ModelError",
    "ModelNotFoundError",
    "ModelMismatchError",
    "ModelLoadError",
    "EnvironmentMismatchError",
    "LimitError",
    "TokenizationError",
    "WorkerError",
    "MissingDependencyError",
    "NacrithWarning",
    # settings, fixed when a Codec is made: what the archive records (Layout, with the
    # EnsembleConfig as its ensemble), how fast it is made (Execution), what a reader accepts
    # (Limits); and the loaded models several Codecs may share
    "Layout",
    "EnsembleConfig",
    "Execution",
    "Limits",
    "LoadedModels",
]

# fsspec (optional): `fsspec.open(..., compression="nacrith")` works once nacrith is imported.
_fsspec.install_hook()
