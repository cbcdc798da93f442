"""Exception tree for nacrith.

Why a dedicated module: every layer (container parsing, model loading, the
codec, the CLI) must report failures in a way the command line can map to a
stable exit status and a message that tells the user what to do next.  Each
class therefore carries a class-level ``exit_code`` that the CLI uses
verbatim, and every message produced here ends with a concrete next step.

The exit statuses are listed once, in :data:`EXIT_STATUSES` at the end of this
module: ``nacrith --help`` prints that table and ``docs/cli.md`` explains each row.

Several classes also inherit from a matching built-in exception
(``ValueError``, ``EOFError``) so that generic callers that already catch
those keep working.
"""

from __future__ import annotations

__all__ = [
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
    "EXIT_STATUSES",
    "exit_status_table",
]


class NacrithError(Exception):
    """Base class of every error nacrith raises on purpose.

    ``exit_code`` is the process exit status the CLI uses for this class.
    """

    exit_code: int = 1


# --------------------------------------------------------------------------
# Archive structure
# --------------------------------------------------------------------------


class FormatError(NacrithError, ValueError):
    """The input is not a nacrith archive, or its structure is corrupt."""

    exit_code = 3


class TruncatedError(FormatError, EOFError):
    """The archive ends before a structure it announced is complete.

    Usually the file was cut short by an interrupted copy or download.
    """

    exit_code = 3


class UnsupportedVersionError(FormatError):
    """The archive uses a format feature this build does not know.

    Raised for a future container version, an unknown coding mode, or an
    unknown header parameter key.  Upgrading nacrith is the usual remedy.
    """

    exit_code = 3


# --------------------------------------------------------------------------
# Integrity
# --------------------------------------------------------------------------


class ChecksumError(NacrithError):
    """Decoded data does not match the checksum stored in the archive.

    ``block_index`` is the zero-based block whose CRC-32 failed, or ``None``
    when the whole-archive digest (or another archive-level check) failed.
    ``expected`` is the value stored in the archive and ``actual`` the value
    computed from the decoded data (ints for CRC-32; bytes or hex str for
    the digest).
    """

    exit_code = 4

    def __init__(
        self,
        message: str | None = None,
        *,
        block_index: int | None = None,
        expected: int | bytes | str | None = None,
        actual: int | bytes | str | None = None,
    ) -> None:
        self.block_index = block_index
        self.expected = expected
        self.actual = actual
        if message is None:
            message = self._default_message()
        super().__init__(message)

    def _default_message(self) -> str:
        where = (
            f"block {self.block_index}"
            if self.block_index is not None
            else "the archive digest"
        )
        detail = ""
        if self.expected is not None or self.actual is not None:
            detail = (
                f" (stored {_fmt_check(self.expected)}, "
                f"computed {_fmt_check(self.actual)})"
            )
        return (
            f"checksum mismatch in {where}{detail}: the archive is corrupt, or it "
            "was decoded with a different model or llama.cpp build than the one "
            "that wrote it. Compare `nacrith info` with the local setup, or "
            "restore the archive from a good copy."
        )


def _fmt_check(value: object) -> str:
    if value is None:
        return "?"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#010x}"
    return str(value)


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


class ModelError(NacrithError):
    """The language model could not be used."""

    exit_code = 5


class ModelNotFoundError(ModelError):
    """A model preset is not installed or a model path does not exist.

    The message produced by the raiser must say how to install the model
    (e.g. which pip extra provides it) or how to pass a path.
    """

    exit_code = 5


class ModelMismatchError(ModelError):
    """The archive was written with a different model file than the one given.

    Both hashes are lowercase hex SHA-256 digests of the model file.
    """

    exit_code = 5

    def __init__(
        self,
        archive_sha256: str,
        model_sha256: str,
        message: str | None = None,
    ) -> None:
        self.archive_sha256 = archive_sha256
        self.model_sha256 = model_sha256
        if message is None:
            message = (
                "model mismatch: the archive was compressed with the model whose "
                f"sha256 is {archive_sha256}, but the selected model has sha256 "
                f"{model_sha256}. Pass the original model file with --model "
                "(run `nacrith info ARCHIVE` to see which one)."
            )
        super().__init__(message)


class ModelLoadError(ModelError):
    """llama.cpp could not load the model file: not a GGUF file, damaged, or too new.

    Raised where nacrith loads a model (:class:`nacrith.api.LoadedModels`), in place of the
    ``NativeError`` of the llama.cpp layer, which knows nothing of nacrith's errors.
    """

    exit_code = 5


# --------------------------------------------------------------------------
# Environment, limits, tokenization
# --------------------------------------------------------------------------


class EnvironmentMismatchError(NacrithError):
    """The runtime (llama.cpp build, backend, numerics) differs from the writer's.

    Neural decoding is only bit-exact under the same numerics, so the raiser
    should name the differing component and the version to install.  When a
    checksum failed in a different environment, ``archive_fingerprint`` and
    ``local_fingerprint`` hold both fingerprints (see ``nacrith.fingerprint``)
    and ``__cause__`` is the :class:`ChecksumError`.
    """

    exit_code = 6

    def __init__(
        self, message: str, *, archive_fingerprint: str = "", local_fingerprint: str = ""
    ) -> None:
        self.archive_fingerprint = archive_fingerprint
        self.local_fingerprint = local_fingerprint
        super().__init__(message)


class LimitError(NacrithError):
    """A size declared by the input exceeds a configured safety limit.

    Raised *before* anything is allocated for the declared size.  If the
    input is trusted, the limit can be raised explicitly.
    """

    exit_code = 7


class TokenizationError(NacrithError):
    """Text could not be mapped to model tokens (or back) losslessly."""

    exit_code = 1


class WorkerError(NacrithError):
    """A worker process (``--workers``) died or failed in a way that is not one of the above.

    Raised instead of waiting for a result that will never come; the other workers are
    stopped and no output is written.
    """

    exit_code = 8


class MissingDependencyError(NacrithError, ImportError):
    """An optional dependency a feature needs is not installed (e.g. Ray for ``--engine ray``).

    The message names the pip command (an extra of nacrith) that installs it.
    """

    exit_code = 1


# --------------------------------------------------------------------------
# Warnings
# --------------------------------------------------------------------------


class NacrithWarning(UserWarning):
    """Something the user should know that does not stop the work.

    Example: an archive made in a different numeric environment (its
    fingerprint differs), which is decoded anyway and verified by its
    checksums.  The CLI prints each as one ``nacrith: warning:`` line.
    """


# --------------------------------------------------------------------------
# Exit statuses
# --------------------------------------------------------------------------

#: Interrupted by Ctrl-C: 128 + SIGINT, as shells report it.
EXIT_INTERRUPTED = 130
#: Terminated by SIGTERM: 128 + SIGTERM.
EXIT_TERMINATED = 143

#: Every exit status of the command line and what it means: the one table.  The error
#: classes above carry their own status (``exit_code``); the CLI adds 0, 2 (click's usage
#: errors) and the two signals.  Scripts rely on these numbers: never renumber them.
EXIT_STATUSES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (NacrithError.exit_code, "failure: I/O error, refused overwrite, unknown suffix, tokenization error, "
                             "extra not installed"),
    (2, "usage error (bad option or argument)"),
    (FormatError.exit_code, "input is not a nacrith archive, is corrupt, or needs a newer nacrith"),
    (ChecksumError.exit_code, "checksum mismatch (also: bench round trip failed)"),
    (ModelError.exit_code, "model not installed, not found, not loadable, or not the archive's model"),
    (EnvironmentMismatchError.exit_code, "runtime environment differs from the one that wrote the archive"),
    (LimitError.exit_code, "a size declared by the archive exceeds a safety limit"),
    (WorkerError.exit_code, "a worker process died (--workers), or a Ray worker failed for good (--engine ray)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_TERMINATED, "terminated (SIGTERM)"),
)


def exit_status_table() -> str:
    """:data:`EXIT_STATUSES` as the plain-text table ``nacrith --help`` ends with."""
    return "\n".join(f"  {status:<4} {meaning}" for status, meaning in EXIT_STATUSES)


#: What a reader of a damaged archive can do about it (the end of every ``corrupt`` message).
RESTORE_HINT = "the archive is damaged; restore it from a good copy"


def corrupt(problem: str, *, part: str = "archive") -> FormatError:
    """The error for damaged archive structure, worded one way everywhere:
    ``corrupt <part>: <problem>; the archive is damaged; restore it from a good copy``.

    ``part`` names where the damage is ("archive", "archive header", "archive trailer").
    Returned, not raised, so the caller's ``raise`` shows where the check failed.
    """
    return FormatError(f"corrupt {part}: {problem}; {RESTORE_HINT}")
