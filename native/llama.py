"""The layer below llama-cpp-python's high-level ``Llama`` class.

We talk to llama.cpp through the low-level ctypes bindings because the codec needs things
``Llama`` hides or gets wrong: exact control over batch shapes and positions (the decoder
must repeat the encoder's computation), logits for every position of a batch, the raw
token pieces (``Llama.detokenize`` truncates pieces longer than 32 bytes), the numeric
configuration (flash attention, K/V cache types) and, later, multi-sequence batches and
KV-cache slides.

Thread safety: a :class:`LlamaModel` may be shared by several contexts in one process; a
:class:`LlamaContext` must be used by one thread at a time.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from pathlib import Path

# OpenMP worker threads wait at a barrier after every operation of the graph.  Measured here
# (2 cores, one-token decodes): OMP_WAIT_POLICY=PASSIVE (sleep at once) fell from 85 to 18
# tokens/s with 2 threads; unbounded spinning against another busy process fell to 2 tokens/s.
# A short spin keeps barriers fast and yields the core soon when it is needed elsewhere.  No
# wait policy survives another process holding one of our threads' cores, though: the thread
# count adapts to that (nacrith.threads.ThreadGovernor).  This must be set before the OpenMP
# runtime starts, i.e. before llama.cpp's library is loaded.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")

import numpy as np  # noqa: E402
import llama_cpp as _lib  # noqa: E402  (the ctypes bindings; `Llama` itself is never used)

from ..threads import ThreadGovernor, adaptive_enabled  # noqa: E402

GGML_TYPE_F16 = _lib.GGML_TYPE_F16
GGML_TYPE_Q8_0 = _lib.GGML_TYPE_Q8_0

BACKEND = f"llama-cpp-python {_lib.__version__}"


class NativeError(RuntimeError):
    """llama.cpp refused an operation (model load, context creation, decode)."""


_init_lock = threading.Lock()
_initialized = False


@_lib.llama_log_callback
def _quiet_log(level, text, user_data):  # pragma: no cover - called from C
    # llama.cpp prints hundreds of lines per model load; errors surface as return codes.
    if os.environ.get("NACRITH_LLAMA_LOG"):
        os.write(2, text or b"")


def _init_backend() -> None:
    global _initialized
    with _init_lock:
        if not _initialized:
            _lib.llama_log_set(_quiet_log, ctypes.c_void_p(0))
            _lib.llama_backend_init()
            _initialized = True


def system_info() -> str:
    """llama.cpp's own report of the CPU features that select its kernels."""
    _init_backend()
    return _lib.llama_print_system_info().decode("utf-8", "replace").strip()


class LlamaModel:
    """Weights and vocabulary of one GGUF file."""

    def __init__(self, path: str | os.PathLike):
        _init_backend()
        params = _lib.llama_model_default_params()
        params.n_gpu_layers = 0
        self.path = Path(path)
        self._model = _lib.llama_model_load_from_file(os.fsencode(self.path), params)
        if not self._model:
            raise NativeError(f"llama.cpp could not load the model file {self.path}")
        self._vocab = _lib.llama_model_get_vocab(self._model)
        self.n_vocab = int(_lib.llama_vocab_n_tokens(self._vocab))
        self.n_ctx_train = int(_lib.llama_model_n_ctx_train(self._model))
        self.bos = int(_lib.llama_vocab_bos(self._vocab))
        self.eos = int(_lib.llama_vocab_eos(self._vocab))
        self._pieces: list[bytes] | None = None

    def close(self) -> None:
        # At interpreter exit the bindings may already be gone; the OS frees the memory then.
        if getattr(self, "_model", None) and _lib is not None:
            try:
                _lib.llama_model_free(self._model)
            except TypeError:  # pragma: no cover - bindings torn down at interpreter exit
                pass
            self._model = None

    __del__ = close

    def piece(self, token: int) -> bytes:
        """The exact bytes of a token (no truncation, special tokens not rendered)."""
        buf = ctypes.create_string_buffer(256)
        n = _lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = _lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    @property
    def pieces(self) -> list[bytes]:
        """Byte pieces of every token id, computed once."""
        if self._pieces is None:
            self._pieces = [self.piece(t) for t in range(self.n_vocab)]
        return self._pieces

    def is_control(self, token: int) -> bool:
        return bool(_lib.llama_vocab_is_control(self._vocab, token))

    def tokenize_utf8(self, text: bytes) -> list[int]:
        """Tokenize bytes that the caller guarantees are valid UTF-8 of code points <= U+10FFFF.

        llama.cpp aborts the whole process (an uncatchable C++ exception) on anything else,
        so this must never see raw input: see ``nacrith.tokenization``.
        """
        if not text:
            return []
        cap = len(text) + 16
        out = (_lib.llama_token * cap)()
        n = _lib.llama_tokenize(self._vocab, text, len(text), out, cap, False, False)
        if n < 0:
            cap = -n
            out = (_lib.llama_token * cap)()
            n = _lib.llama_tokenize(self._vocab, text, len(text), out, cap, False, False)
        if n < 0:
            raise NativeError("llama_tokenize failed")
        return list(out[:n])


class LlamaContext:
    """One llama.cpp inference context: a KV cache of ``n_ctx`` positions for ``n_seq`` sequences.

    The numeric configuration (flash attention, K/V types) is fixed at creation; it is part of
    what the archive header records, because it changes the logits.  The thread count is not:
    ``n_threads`` is the most it runs, and each ``llama_decode`` may run fewer when the machine
    is busy (:class:`nacrith.threads.ThreadGovernor`; ``adaptive=False`` or
    ``NACRITH_ADAPTIVE_THREADS=0``: always ``n_threads``).
    """

    def __init__(
        self,
        model: LlamaModel,
        *,
        n_ctx: int,
        n_batch: int = 512,
        n_seq: int = 1,
        n_threads: int = 1,
        flash_attn: bool = True,
        type_k: int = GGML_TYPE_Q8_0,
        type_v: int = GGML_TYPE_Q8_0,
        adaptive: bool | None = None,
    ):
        self.model = model
        self.n_vocab = model.n_vocab
        p = _lib.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = n_batch
        p.n_seq_max = n_seq
        p.n_threads = n_threads
        p.n_threads_batch = n_threads
        p.flash_attn_type = (
            _lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else _lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        p.type_k = type_k
        p.type_v = type_v
        p.embeddings = False
        p.no_perf = True
        # Everything on the CPU, even in a CUDA or Metal build of llama.cpp: with offload on,
        # the encoder's batches would run on the GPU and the decoder's single tokens on the
        # CPU, whose results differ, and every archive would fail to decode.
        p.op_offload = False
        p.offload_kqv = False
        # One KV stream per sequence (n_ctx / n_seq positions each): a sequence's attention
        # never sees another's cells, so its logits do not depend on its batch companions.
        p.kv_unified = False
        self._ctx = _lib.llama_init_from_model(model._model, p)
        if not self._ctx:
            raise NativeError("llama.cpp could not create a context (out of memory or bad parameters)")
        self.n_ctx = int(_lib.llama_n_ctx(self._ctx))
        self.n_ctx_seq = int(_lib.llama_n_ctx_seq(self._ctx))
        self.n_seq = n_seq
        self.n_batch = n_batch
        self._mem = _lib.llama_get_memory(self._ctx)
        self._batch = _lib.llama_batch_init(n_batch, 0, n_seq)
        self.threads = n_threads  # the count llama.cpp runs now
        if adaptive is None:
            adaptive = adaptive_enabled()
        self.governor = ThreadGovernor(n_threads) if adaptive and n_threads > 1 else None

    def close(self) -> None:
        if getattr(self, "_ctx", None) and _lib is not None:
            try:
                _lib.llama_batch_free(self._batch)
                _lib.llama_free(self._ctx)
            except TypeError:  # pragma: no cover - bindings torn down at interpreter exit
                pass
            self._ctx = None

    __del__ = close

    def set_threads(self, n_threads: int) -> None:
        """Run exactly ``n_threads`` from now on (no adaptation)."""
        self.governor = None
        self._set_threads(n_threads)

    def _set_threads(self, n_threads: int) -> None:
        if n_threads != self.threads:
            _lib.llama_set_n_threads(self._ctx, n_threads, n_threads)
            self.threads = n_threads

    def _decode(self, b, n_out: int) -> None:
        """``llama_decode`` of the batch ``b``, with the thread count the governor chooses."""
        g = self.governor
        if g is None:
            rc = _lib.llama_decode(self._ctx, b)
        else:
            shape = (b.n_tokens, n_out)
            self._set_threads(g.threads_for(shape))
            start = time.perf_counter()
            rc = _lib.llama_decode(self._ctx, b)
            g.record(shape, self.threads, time.perf_counter() - start)
        if rc != 0:
            raise NativeError(f"llama_decode failed with code {rc}")

    def clear(self) -> None:
        """Forget every sequence (start of a new block)."""
        _lib.llama_memory_clear(self._mem, True)

    def clear_seq(self, seq: int) -> None:
        """Forget one sequence (a stream that starts or ends)."""
        _lib.llama_memory_seq_rm(self._mem, seq, -1, -1)

    def slide(self, seq: int, keep: int, drop: int, end: int) -> None:
        """Drop positions [keep, keep+drop) of ``seq`` and move [keep+drop, end) down by ``drop``.

        Positions below ``keep`` stay (attention sinks).  llama.cpp re-rotates the moved keys
        (RoPE shift) at the next decode, instead of re-evaluating them.
        """
        if not _lib.llama_memory_seq_rm(self._mem, seq, keep, keep + drop):
            raise NativeError("llama.cpp could not remove KV positions")
        _lib.llama_memory_seq_add(self._mem, seq, keep + drop, end, -drop)

    def can_shift(self) -> bool:
        return bool(_lib.llama_memory_can_shift(self._mem))

    def decode_multi(self, tokens, positions, seqs) -> np.ndarray:
        """One ``llama_decode`` of one token per entry (any sequences), logits for every entry."""
        n = len(tokens)
        if not 0 < n <= self.n_batch:
            raise ValueError(f"batch of {n} tokens (limit {self.n_batch})")
        b = self._batch
        b.n_tokens = n
        for i in range(n):
            b.token[i] = int(tokens[i])
            b.pos[i] = int(positions[i])
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = int(seqs[i])
            b.logits[i] = 1
        self._decode(b, n)
        ptr = _lib.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(ptr, shape=(n, self.n_vocab)).copy()

    def decode(self, tokens, start_pos: int, seq: int = 0, logits_from: int = 0) -> np.ndarray:
        """Append ``tokens`` to sequence ``seq`` at positions start_pos.. and run the model.

        Returns a float32 array (n - logits_from, n_vocab) copied out of llama.cpp: the logits
        after tokens[logits_from:] (``logits_from=len(tokens)`` returns none; ``-1`` only the
        last).  One call is one ``llama_decode`` (at most ``n_batch`` tokens), so callers decide
        the batch shapes explicitly.
        """
        n = len(tokens)
        if not 0 < n <= self.n_batch:
            raise ValueError(f"batch of {n} tokens (limit {self.n_batch})")
        if logits_from < 0:
            logits_from += n
        b = self._batch
        b.n_tokens = n
        for i, t in enumerate(tokens):
            b.token[i] = int(t)
            b.pos[i] = start_pos + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if i >= logits_from else 0
        n_out = n - logits_from
        self._decode(b, n_out)
        if n_out == 0:
            return np.empty((0, self.n_vocab), dtype=np.float32)
        ptr = _lib.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab)).copy()
