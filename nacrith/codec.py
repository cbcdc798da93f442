"""The neural codec: bytes -> symbols -> model probabilities -> arithmetic-coded blocks.

Encoder and decoder run the same computation in the same order (the rule that makes a file
decodable at all):

* The input's symbols (see ``tokenization``) are cut into blocks of ``block_tokens``.  Every
  block starts from an empty KV cache with ``start_token`` at position 0, followed by the last
  ``context_overlap`` symbols of the previous block (evaluated, not coded), then the block's
  own symbols.  An escaped byte enters the model as the escape token.
* The logits that predict symbol ``i`` of a block come from the model after the start token,
  the overlap and the block's first ``i`` symbols.  The decoder evaluates one token per ``llama_decode``; the encoder, who
  knows every token, evaluates them in batches.  That is only allowed because the numeric
  configuration we use (flash attention on, Q8_0 K/V cache) makes batched and one-token
  logits bit-identical; ``tests/test_determinism.py`` proves it on every run.
* ``cdf.interval_from_logits`` / ``symbol_from_logits`` turn one row of logits into integer
  frequencies with total 2**24 in one jitted function; the coder only sees integers.
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import cdf, container, models
from .coder import ArithmeticDecoder, ArithmeticEncoder
from .container import CodecParams
from .errors import ChecksumError, FormatError, ModelMismatchError, ModelNotFoundError, UnsupportedVersionError
from .tokenization import TOKENIZER_VERSION, Tokenizer

DEFAULT_BLOCK_TOKENS = 1024
# Symbols of the previous block fed to the model (not coded) before each block, so that a
# block does not start cold.  Chosen by measurement (README, "Block context").
DEFAULT_CONTEXT_OVERLAP = 256
# Encoder batch: speed only (batched logits equal one-token logits in our configuration).
ENCODER_BATCH = 256
MAX_BLOCK_TOKENS = 8191
# Start token + overlap + block must fit the model's trained context (8192 for SmolLM2).
MAX_CONTEXT = 8192
ESCAPE_BITS = 8

Progress = Callable[[int], None]  # called with the number of symbols just coded


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def default_threads(sample_seconds: float = 0.2) -> int:
    """llama.cpp threads that will not oversubscribe the machine.

    More threads than free cores makes OpenMP workers fight and ran 10-50x slower here, so we
    take the cores this process may use, times the fraction of CPU time that was idle over a
    short sample (the load average lags by a minute), and at least one.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    before = _cpu_times()
    if before is None:  # pragma: no cover - no /proc
        return max(1, cores - int(os.getloadavg()[0] + 0.5))
    time.sleep(sample_seconds)
    after = _cpu_times()
    idle, total = after[0] - before[0], after[1] - before[1]
    machine = os.cpu_count() or cores
    free = machine * idle / total if total > 0 else cores
    return max(1, min(cores, int(free + 0.25)))


@dataclass(frozen=True)
class NumericConfig:
    """The llama.cpp settings that change logits, recorded in every archive."""

    flash_attn: bool = True
    type_k: int = 8  # GGML_TYPE_Q8_0
    type_v: int = 8


class Engine:
    """A loaded model with its tokenizer and inference contexts: expensive, so reuse it.

    One engine may be used by one thread at a time (a lock enforces it); give each thread or
    process its own.  Created lazily by :class:`nacrith.Codec`.
    """

    def __init__(self, model_file: models.ModelFile, threads: int | None = None):
        from .native import BACKEND, LlamaModel

        self.model_file = model_file
        self.threads = threads or default_threads()
        self.backend = BACKEND
        self.model = LlamaModel(model_file.path)
        self.tokenizer = Tokenizer(self.model)
        self.n_vocab = self.model.n_vocab
        self.start_token = self.model.bos if self.model.bos >= 0 else self.tokenizer.escape_token
        self._contexts: dict[tuple, object] = {}
        self._work = np.empty(self.n_vocab, dtype=np.float64)
        self.lock = threading.Lock()

    def context(self, block_tokens: int, numeric: NumericConfig, overlap: int = 0):
        from .native import LlamaContext

        key = (block_tokens + overlap, numeric)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = LlamaContext(
                self.model,
                n_ctx=1 + overlap + block_tokens,
                n_batch=min(ENCODER_BATCH, 1 + overlap + block_tokens),
                n_threads=self.threads,
                flash_attn=numeric.flash_attn,
                type_k=numeric.type_k,
                type_v=numeric.type_v,
            )
            self._contexts = {key: ctx}  # keep one: each holds a KV cache
        return ctx

    def params(self, block_tokens: int, overlap: int, numeric: NumericConfig) -> CodecParams:
        return CodecParams(
            model_sha256=bytes.fromhex(self.model_file.sha256),
            tokenizer=TOKENIZER_VERSION,
            cdf_total_bits=cdf.TOTAL_BITS,
            block_tokens=block_tokens,
            flash_attn=numeric.flash_attn,
            type_k=numeric.type_k,
            type_v=numeric.type_v,
            start_token=self.start_token,
            escape_token=self.tokenizer.escape_token,
            context_overlap=overlap,
            backend=self.backend,
        )

    # -- one block each way ----------------------------------------------------------------

    def llm_tokens(self, symbols: np.ndarray) -> np.ndarray:
        """What the model sees for each symbol: the token, or the escape token for a raw byte."""
        return np.where(symbols < self.n_vocab, symbols, self.tokenizer.escape_token).astype(np.int64)

    def encode_block(self, ctx, prefix: np.ndarray, symbols: np.ndarray, progress: Progress | None) -> bytes:
        """Code ``symbols`` after the model has seen the start token and ``prefix`` (LLM tokens)."""
        n_vocab, escape = self.n_vocab, self.tokenizer.escape_token
        inputs = np.concatenate(([self.start_token], prefix, self.llm_tokens(symbols[:-1])))
        first = 1 + len(prefix)  # index of the input whose logits predict symbols[0]
        enc = ArithmeticEncoder()
        ctx.clear()
        for start in range(0, len(inputs), ctx.n_batch):
            chunk = inputs[start : start + ctx.n_batch]
            skip = min(max(first - 1 - start, 0), len(chunk))
            rows = ctx.decode(chunk, start, logits_from=skip)
            for j, row in enumerate(rows):
                sym = int(symbols[start + skip + j - (first - 1)])
                if sym >= n_vocab:
                    lo, f = cdf.interval_from_logits(row, escape, self._work)
                    enc.encode(lo, f)
                    enc.encode_uniform(sym - n_vocab, ESCAPE_BITS)
                else:
                    lo, f = cdf.interval_from_logits(row, sym, self._work)
                    enc.encode(lo, f)
            if progress:
                progress(len(rows))
        return enc.finish()

    def decode_block(
        self, ctx, prefix: np.ndarray, payload: bytes, n_symbols: int, progress: Progress | None
    ) -> tuple[bytes, np.ndarray]:
        """Inverse of :meth:`encode_block`: the block's bytes and its symbols."""
        escape = self.tokenizer.escape_token
        dec = ArithmeticDecoder(payload)
        ctx.clear()
        # The start token and the overlap, batched like the encoder's first chunk(s), minus the
        # last one which the loop below evaluates with the first symbol's logits.
        known = np.concatenate(([self.start_token], prefix)).astype(np.int64)
        for start in range(0, len(known) - 1, ctx.n_batch):
            chunk = known[start : min(start + ctx.n_batch, len(known) - 1)]
            ctx.decode(chunk, start, logits_from=len(chunk))
        out = bytearray()
        syms = np.empty(n_symbols, dtype=np.int64)
        token = int(known[-1])
        base = len(known) - 1
        pieces = self.tokenizer.pieces
        for pos in range(n_symbols):
            row = ctx.decode((token,), base + pos)[0]
            sym, lo, f = cdf.symbol_from_logits(row, dec.target(), self._work)
            dec.consume(lo, f)
            token = sym
            if sym == escape:
                byte = dec.decode_uniform(ESCAPE_BITS)
                out.append(byte)
                sym = self.n_vocab + byte
            else:
                out += pieces[sym]
            syms[pos] = sym
            if progress and (pos & 63) == 63:
                progress(64)
        if progress and n_symbols & 63:
            progress(n_symbols & 63)
        return bytes(out), syms


# -- whole archives ------------------------------------------------------------------------


def compress(
    engine: Engine,
    data: bytes,
    *,
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    context_overlap: int = DEFAULT_CONTEXT_OVERLAP,
    numeric: NumericConfig = NumericConfig(),
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> bytes:
    """Compress ``data`` into one archive (falls back to stored mode if that is smaller)."""
    check_context(block_tokens, context_overlap, ValueError)
    with engine.lock:
        symbols = engine.tokenizer.encode(data)
        if int((symbols >= engine.n_vocab).sum()) * 2 > len(data):
            # Mostly bytes the vocabulary cannot spell: each costs 8 bits plus an escape, so the
            # model cannot beat storing them; don't spend minutes proving it.
            return container.encode_stored(data)
        if on_total:
            on_total(len(symbols))
        ctx = engine.context(block_tokens, numeric, context_overlap)
        out = io.BytesIO()
        out.write(
            container.encode_header(container.MODE_MODEL, engine.params(block_tokens, context_overlap, numeric))
        )
        lengths = engine.tokenizer.symbol_len
        offset = 0
        prefix = np.empty(0, dtype=np.int64)
        for start in range(0, len(symbols), block_tokens):
            block = symbols[start : start + block_tokens]
            n_bytes = int(lengths[block].sum())
            raw = data[offset : offset + n_bytes]
            offset += n_bytes
            payload = engine.encode_block(ctx, prefix, block, progress)
            out.write(container.encode_block(len(block), n_bytes, container.block_crc32(raw), payload))
            prefix = overlap_of(engine, block, context_overlap)
        assert offset == len(data), "tokenizer lost bytes"  # guarded by tokenization's own checks
        digest = container.new_digest()
        digest.update(data)
        out.write(container.encode_end(len(data), digest.digest()))
    archive = out.getvalue()
    stored = container.encode_stored(data)
    return stored if len(stored) < len(archive) else archive


def overlap_of(engine: Engine, block: np.ndarray, overlap: int) -> np.ndarray:
    """The LLM tokens the next block sees before its own: the last ``overlap`` symbols."""
    return engine.llm_tokens(block[len(block) - min(overlap, len(block)) :]) if overlap else block[:0]


def check_context(block_tokens: int, overlap: int, error: type[Exception]) -> None:
    if not 1 <= block_tokens <= MAX_BLOCK_TOKENS:
        raise error(f"block_tokens must be in 1..{MAX_BLOCK_TOKENS}, got {block_tokens}")
    if not 0 <= overlap or 1 + overlap + block_tokens > MAX_CONTEXT:
        raise error(f"context_overlap {overlap} with block_tokens {block_tokens} exceeds the {MAX_CONTEXT}-token context")


def check_params(params: CodecParams) -> None:
    """Refuse archives whose settings this version cannot reproduce."""
    if params.tokenizer != TOKENIZER_VERSION:
        raise UnsupportedVersionError(
            f"archive uses tokenizer scheme {params.tokenizer}; this nacrith knows {TOKENIZER_VERSION}: upgrade nacrith"
        )
    if params.cdf_total_bits != cdf.TOTAL_BITS:
        raise UnsupportedVersionError(f"archive uses CDF total 2^{params.cdf_total_bits}; only 2^{cdf.TOTAL_BITS} is supported")
    check_context(params.block_tokens, params.context_overlap, FormatError)
    numeric = NumericConfig(params.flash_attn, params.type_k, params.type_v)
    if numeric != NumericConfig():
        # Only this configuration makes batched and one-token logits identical (see module doc).
        raise UnsupportedVersionError(
            f"archive uses llama.cpp settings {numeric} that this nacrith cannot reproduce exactly"
        )


def model_for(params: CodecParams, model: str | os.PathLike | None) -> models.ModelFile:
    """The model file an archive needs: the one asked for (checked), else the matching preset."""
    want = params.model_sha256.hex()
    if model is not None:
        mf = models.resolve(model)
        if mf.sha256 != want:
            raise ModelMismatchError(archive_sha256=want, model_sha256=mf.sha256)
        return mf
    env = os.environ.get(models.MODEL_ENV)
    if env:
        mf = models.resolve(env)
        if mf.sha256 == want:
            return mf
    mf = models.find_by_sha256(want)
    if mf is None:
        raise ModelNotFoundError(
            f"this archive was made with a custom model (sha256 {want}); pass that GGUF file with --model PATH"
        )
    return mf


def decompress_archive(
    reader: container.ArchiveReader,
    get_engine: Callable[[models.ModelFile], Engine],
    *,
    model: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> bytes:
    """Decode one archive whose header ``reader`` has already read, verifying every checksum."""
    header = reader.header
    if header.mode == container.MODE_STORED:

        def stored(index: int, bh: container.BlockHeader, payload: bytes) -> bytes:
            if progress:
                progress(bh.n_symbols)
            return payload

        return _verified(reader, stored)
    params = header.params
    check_params(params)
    engine = get_engine(model_for(params, model))
    if params.start_token != engine.start_token or params.escape_token != engine.tokenizer.escape_token:
        raise FormatError("the archive's start/escape tokens do not match this model's vocabulary")
    numeric = NumericConfig(params.flash_attn, params.type_k, params.type_v)
    with engine.lock:
        ctx = engine.context(params.block_tokens, numeric, params.context_overlap)
        prefix = np.empty(0, dtype=np.int64)

        def neural(index: int, bh: container.BlockHeader, payload: bytes) -> bytes:
            nonlocal prefix
            if bh.n_symbols > params.block_tokens:
                raise FormatError(f"block {index} declares {bh.n_symbols} symbols, more than block_tokens")
            raw, syms = engine.decode_block(ctx, prefix, payload, bh.n_symbols, progress)
            prefix = overlap_of(engine, syms, params.context_overlap)
            return raw

        return _verified(reader, neural)


def _verified(reader: container.ArchiveReader, decode_block) -> bytes:
    """Run ``decode_block`` over the archive's blocks, checking each block and the whole."""
    out = bytearray()
    digest = container.new_digest()
    for index, (bh, payload) in enumerate(reader.blocks()):
        raw = decode_block(index, bh, payload)
        actual = container.block_crc32(raw)
        if len(raw) != bh.n_bytes or actual != bh.crc32:
            raise ChecksumError(block_index=index, expected=bh.crc32, actual=actual)
        out += raw
        digest.update(raw)
    trailer = reader.trailer
    if trailer.original_size != len(out) or trailer.digest != digest.digest():
        raise ChecksumError(block_index=None, expected=trailer.digest.hex(), actual=digest.hexdigest())
    return bytes(out)
