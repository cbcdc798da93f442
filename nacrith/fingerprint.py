"""The numeric environment of an archive: which machine computed its logits, and whether
another one computes the same.

Why: decoding repeats the encoder's floating-point computation, and llama.cpp's results
depend on more than the settings the header pins (model, flash attention, K/V types): its
version and the CPU kernels it was built with (AVX2, AVX-512, VNNI, ARM dot-product ...)
change the logits, and one changed bit in one logit can change the integer CDF.  Three
things answer that:

* the **kernel set** (``native/kernels.py``): nacrith's pinned x86-64-v3 build, or
  machine-bound; a build that is not pinned writes archives only when asked to
  (:func:`writer_numerics`);
* the **probe** (:func:`probe`): a digest of the logits of a fixed text, recorded in every
  container version 2 model archive and checked before decoding (:func:`check_reader_numerics`),
  so a foreign machine is refused in about a second instead of failing a checksum hours later;
* the **fingerprint** (:func:`current`), a short text naming the environment: recorded by
  machine-bound archives (and by every container version 1 archive, key 15), shown in errors.
  The full description (:func:`describe`, about 250 bytes) is hashed into a compact form under
  40 bytes: the machine, llama.cpp's best enabled SIMD level and 48 bits of a hash, e.g.
  ``x86_64 AVX512_BF16 9c0e41d2a7b3``; fingerprints are compared only for equality.

The mode chooser (``archive.compress``) charges a machine-bound archive's fingerprint as a
fixed allowance, so that the choice between model coding and stored mode does not depend on
the machine either.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import platform
from pathlib import Path
from typing import Protocol

import numpy as np

from . import container
from .errors import EnvironmentMismatchError

# CPU features, as /proc/cpuinfo spells them, that choose between ggml's kernels (x86:
# "flags" line; ARM: "Features" line).  Other flags (aes, sha, ...) do not matter here.
KERNEL_FLAGS = (
    # x86
    "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512vbmi", "avx512_vnni",
    "avx512_bf16", "amx_int8", "amx_bf16",
    # ARM
    "asimdhp", "asimddp", "i8mm", "sve", "sve2", "bf16",
)

# llama.cpp's feature names, best first: the first one enabled names the SIMD level.
_SIMD_LEVELS = (
    "AMX_INT8", "AVX512_BF16", "AVX512_VNNI", "AVX512", "AVX_VNNI", "AVX2", "AVX", "SSE3",
    "SME", "SVE", "MATMUL_INT8", "DOTPROD", "NEON",
)

_GGML_TYPES = {0: "f32", 1: "f16", 8: "q8_0", 30: "bf16"}
_HASH_BYTES = 6


class Numeric(Protocol):
    """What the fingerprint needs of :class:`nacrith.codec.NumericConfig`."""

    flash_attn: bool
    type_k: int
    type_v: int


def cpu_features(cpuinfo: str | None = None) -> str:
    """The machine and its kernel-selecting CPU features, e.g. ``x86_64 avx avx2 fma``."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:  # not Linux: the machine name is all we know
            cpuinfo = ""
    present: set[str] = set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            present.update(value.split())
            break  # every core reports the same list
    return " ".join([platform.machine() or "unknown"] + [f for f in KERNEL_FLAGS if f in present])


def ggml_features(system_info: str) -> list[str]:
    """The features llama.cpp reports as enabled, from ``llama_print_system_info``.

    ``"CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | ..."`` gives ``["SSE3", "AVX"]``.
    """
    enabled = []
    for item in system_info.replace("\n", "|").split("|"):
        name, eq, value = item.rpartition("=")
        name = name.split(":")[-1].strip()
        if eq and name and value.strip() == "1":
            enabled.append(name)
    return enabled


def simd_level(features: list[str]) -> str:
    """The best SIMD level among llama.cpp's enabled features (``none`` if it names none)."""
    return next((level for level in _SIMD_LEVELS if level in features), "none")


@functools.lru_cache(maxsize=1)
def _environment() -> tuple[str, str]:
    """(full description, SIMD level) of the parts that do not depend on the archive."""
    import llama_cpp

    from .native import BACKEND, system_info

    try:
        llama_version = llama_cpp.llama_version().decode("ascii", "replace")
    except (AttributeError, OSError):  # older bindings lack llama_version()
        llama_version = "?"
    features = ggml_features(system_info())
    import numba  # compiles the CDF step and the ensemble's float64 arithmetic

    text = (
        f"{BACKEND} (llama.cpp {llama_version}); numba {numba.__version__}; ggml {' '.join(features)}; "
        f"cpu {cpu_features()}"
    )
    return text, simd_level(features)


def _type_name(t: int) -> str:
    return _GGML_TYPES.get(t, str(t))


def describe(numeric: Numeric) -> str:
    """Everything the fingerprint stands for, readable (shown in error messages)."""
    settings = f"fa={int(numeric.flash_attn)} kv={_type_name(numeric.type_k)}/{_type_name(numeric.type_v)}"
    return f"{settings}; {_environment()[0]}"


def compact(description: str, level: str) -> str:
    """The header form: machine, SIMD level and a hash of the full description."""
    digest = hashlib.blake2b(description.encode("utf-8"), digest_size=_HASH_BYTES).hexdigest()
    return f"{platform.machine() or 'unknown'} {level} {digest}"


def current(numeric: Numeric) -> str:
    """This process's fingerprint for archives coded with ``numeric``."""
    return compact(describe(numeric), _environment()[1])


def differs(recorded: str, local: str) -> bool:
    """Whether an archive's fingerprint names another environment (unrecorded: no)."""
    return bool(recorded) and recorded != local


def mismatch_warning(recorded: str, local: str) -> str:
    return (
        f"this archive was made in a different numeric environment (archive: {recorded}; "
        f"here: {local}); decoding proceeds, and the checksums will show whether this machine "
        "computes the same results"
    )


def mismatch_error(recorded: str, local: str, details: str, cause: Exception) -> str:
    return (
        f"{cause} -- the archive was made in a different numeric environment, which computes "
        f"other model results (archive: {recorded}; here: {local} = {details}). Decode it on a "
        "machine whose fingerprint matches: same llama-cpp-python build and CPU features."
    )


def restamp(archive: bytes, value: str) -> bytes:
    """``archive`` (its first member) with the header's fingerprint replaced; ``""`` removes it.

    For tests and golden files, whose bytes must not depend on the machine that made them.
    The header CRC (v1) or header_check (v2) is recomputed; nothing else changes.  A portable
    version 2 archive records no fingerprint, so it comes back unchanged.
    """
    header = container.ArchiveReader(io.BytesIO(archive)).header
    if header.params is None:
        return archive
    params = dataclasses.replace(header.params, fingerprint=value)
    head = container.encode_header(header.mode, params, version=header.version, original_size=header.original_size)
    return head + archive[header.size :]


# -- the numeric probe ---------------------------------------------------------------------
#
# A fingerprint names an environment; the probe *measures* it.  The encoder runs the model on
# a fixed text and records a digest of the logits in the header; the decoder runs the same
# text before it decodes anything and refuses at once when its digest differs, instead of
# failing a block checksum hours later.  Any difference in kernels, compiler or library shows
# here: a build for another kernel set differs after a few tokens.

#: The probe's text (tokenized by the archive's model, after its start token).
PROBE_TEXT = (
    b"The quick brown fox jumps over the lazy dog; 0123456789, \"quoted\" text, "
    b"<tag attr='x'>markup</tag> and http://example.com/path?q=1 end.\n"
)
PROBE_TOKENS = 32
PROBE_SINGLE = 8
#: Bytes of the logits' BLAKE2b digest kept in a header.
PROBE_DIGEST_SIZE = 8

_probes: dict[tuple, tuple[bytes, bool]] = {}


def probe(model, numeric: Numeric, start_token: int, threads: int = 1, *, lockstep: bool = False) -> bytes:
    """Digest of the logits ``model`` gives here under ``numeric`` for :data:`PROBE_TEXT`,
    each token evaluated alone after the ones before it (the decoder's path).

    Unless ``lockstep`` (archives whose encoder made exactly the decoder's calls), the
    encoder evaluates known tokens in batches, so the text is also evaluated as one batch and,
    beside it, its last tokens in two sequences at once: those rows must equal the one-token
    rows bit for bit (:func:`exact_in_batches`), else this model and llama.cpp cannot code
    batched archives at all (EnvironmentMismatchError).  Cached per model and setting.
    """
    digest, exact = _probe_rows(model, numeric, start_token, threads)
    if not (lockstep or exact):
        raise EnvironmentMismatchError(
            f"with this model ({Path(str(model.path)).name}) this llama.cpp gives different logits for a "
            "token in a batch and alone, so it can neither write nor read archives coded in batches "
            "(nacrith codes such a model in lockstep, the encoder making the decoder's calls, by itself)"
        )
    return digest


def exact_in_batches(model, numeric: Numeric, start_token: int, threads: int = 1) -> bool:
    """Whether ``model`` gives the same logits here for a token alone, in a batch and beside
    other sequences (then its encoder may batch; else it codes in lockstep).  Cached."""
    return _probe_rows(model, numeric, start_token, threads)[1]


def _probe_rows(model, numeric: Numeric, start_token: int, threads: int) -> tuple[bytes, bool]:
    """(digest of the one-token rows, whether the batched and side-by-side rows equal them),
    cached per model and setting."""
    key = (str(model.path), numeric.flash_attn, numeric.type_k, numeric.type_v)
    if key not in _probes:
        _probes[key] = _evaluate_probe(model, numeric, start_token, threads)
    return _probes[key]


def _evaluate_probe(model, numeric: Numeric, start_token: int, threads: int) -> tuple[bytes, bool]:
    from .native import LlamaContext

    tokens = ([start_token] + model.tokenize_utf8(PROBE_TEXT))[:PROBE_TOKENS]
    n = len(tokens)
    ctx = LlamaContext(
        model,
        n_ctx=4 * 64,
        n_batch=n,
        n_seq=4,
        n_threads=threads,
        flash_attn=numeric.flash_attn,
        type_k=numeric.type_k,
        type_v=numeric.type_v,
    )
    try:
        # The decoder's path: one token per evaluation, in sequence 3.
        single = np.stack([ctx.decode_multi([token], [i], [3])[0] for i, token in enumerate(tokens)])
        batched = ctx.decode(tokens, 0, seq=0)
        exact = np.array_equal(batched.view(np.uint32), single.view(np.uint32))
        # Two sequences side by side on the last PROBE_SINGLE positions (after a batched prefix).
        first = n - PROBE_SINGLE
        for seq in (1, 2):
            ctx.decode(tokens[:first], 0, seq=seq, logits_from=first)
        for i in range(first, n):
            if not exact:
                break
            rows = ctx.decode_multi([tokens[i]] * 2, [i, i], [1, 2])
            exact = all(np.array_equal(row.view(np.uint32), single[i].view(np.uint32)) for row in rows)
    finally:
        ctx.close()
    return hashlib.blake2b(single.tobytes(), digest_size=PROBE_DIGEST_SIZE).digest(), exact


# -- the kernel set and the probe, as archives record and check them --------------------------

#: The pinned build's probe of each preset model and numeric setting (model sha256, flash
#: attention, K type, V type) -> probe.  Measured with native/install.sh's build (GCC 12,
#: x86-64-v3); identical under qemu-x86_64 -cpu Haswell (tests/bench/portability.py).  A
#: build that reports the pinned features but probes otherwise (another compiler that
#: changed a rounding) would write archives the reference build cannot decode, so it counts
#: as machine-bound.
REFERENCE_PROBES = {
    ("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", True, 8, 1): "24f825aaf8cd32eb",
    # gemma3-270m (coded in lockstep: its batches differ); the same under qemu-x86_64 -cpu Haswell.
    ("a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", True, 8, 1): "2df02ed4f790d462",
}

PORTABLE_HINT = (
    "nacrith installed by native/install.sh on any x86-64 CPU with AVX2, FMA and F16C "
    "(the pinned x86-64-v3 kernels)"
)


def loaded_kernel_set() -> str:
    """The kernel set of the llama.cpp build this process loaded (``kernels.MACHINE_BOUND`` if not pinned)."""
    from .native import kernels, system_info

    return kernels.kernel_set(kernels.features(system_info()))


def writer_numerics(model, model_sha256: str, numeric: Numeric, start_token: int, threads: int,
                    *, native: bool, lockstep: bool = False) -> tuple[str, bytes]:
    """``(kernel set, probe)`` to record in a new archive (coded in ``lockstep`` or batched).

    Refuses (EnvironmentMismatchError) to write an archive only machines computing exactly
    this build's numbers could decode, unless ``native`` asks for such a machine-bound
    archive, and a batched archive of a model this llama.cpp computes otherwise in batches.
    """
    from .native import kernels

    digest = probe(model, numeric, start_token, threads, lockstep=lockstep)
    kernel_set = loaded_kernel_set()
    reference = REFERENCE_PROBES.get((model_sha256, numeric.flash_attn, numeric.type_k, numeric.type_v))
    why = None
    if kernel_set == kernels.MACHINE_BOUND:
        from .native import system_info

        why = f"this llama.cpp was not built with nacrith's pinned kernels ({system_info()})"
    elif reference is not None and digest.hex() != reference:
        kernel_set = kernels.MACHINE_BOUND
        why = (
            f"this llama.cpp has the pinned kernels but computes other numbers than the reference "
            f"build (probe {digest.hex()}, reference {reference}): another compiler or library"
        )
    if why and not native:
        raise EnvironmentMismatchError(
            f"{why}, so its archives would decode only on machines that compute exactly the same "
            "numbers; reinstall with `sh native/install.sh` for portable archives, or pass --native "
            "(library: native=True) to write a machine-bound archive anyway",
            local_fingerprint=current(numeric),
        )
    return kernel_set, digest


def check_reader_numerics(model, numeric: Numeric, start_token: int, threads: int, *,
                          kernel_set: str, recorded_probe: bytes, recorded_fingerprint: str,
                          lockstep: bool = False) -> None:
    """Refuse, before decoding anything, an archive whose probe this environment does not
    reproduce (or, for a batched archive, whose batches it computes otherwise)."""
    if not recorded_probe:
        return  # version 1 archives carry no probe: the checksums decide
    here = probe(model, numeric, start_token, threads, lockstep=lockstep)[: len(recorded_probe)]
    if here == recorded_probe:
        return
    local = current(numeric)
    if kernel_set and kernel_set != "machine-bound":
        where = f"with {PORTABLE_HINT}"
    else:
        where = (
            "only on the machine that made it, or on one with the same llama.cpp build and CPU "
            f"({recorded_fingerprint or 'unrecorded'})"
        )
    raise EnvironmentMismatchError(
        f"this machine computes other model numbers than the one that wrote this archive "
        f"(archive: {kernel_set or 'machine-bound'} kernels, probe {recorded_probe.hex()}; "
        f"here: {loaded_kernel_set()} kernels, probe {here.hex()}, {local}); nothing was decoded. "
        f"It decodes {where}",
        archive_fingerprint=recorded_fingerprint,
        local_fingerprint=local,
    )
