"""The neural codec: bytes -> symbols -> model probabilities -> arithmetic-coded blocks.

Encoder and decoder run the same computation in the same order (the rule that makes a file
decodable at all).  Everything below is fixed by parameters recorded in the archive header:

* The input's symbols (see ``tokenization``) are cut into **streams** of ``stream_tokens``
  symbols.  Streams are independent: each starts from an empty KV sequence with
  ``start_token`` at position 0, so they can be decoded together (one token of each of
  several streams per ``llama_decode``) with results that do not depend on how many.
* Inside a stream the model keeps a **sliding window** of ``window`` KV positions.  When the
  next token would land on position ``window``, positions ``[sinks, sinks + slide)`` are
  removed and the later ones moved down by ``slide`` (llama.cpp re-rotates their keys), so
  the first ``sinks`` positions stay as attention sinks: a slide without them cost about 30 %
  more bits on the following tokens.  Nothing is re-evaluated.
* A stream's symbols are framed in **blocks** of ``block_tokens``: each block has its own
  arithmetic-coder payload and CRC-32, so damage is located to a block; the model state runs
  on across the blocks of a stream.
* The logits that predict symbol ``i`` of a stream come from the model after the start token
  and symbols ``0..i-1`` (an escaped byte enters the model as the escape token).  The encoder
  evaluates runs of known tokens in batches (never across a slide); the decoder evaluates one
  token per stream per call.  That is only allowed because flash attention with a Q8_0 K
  cache (V in F16 by default, or Q8_0) makes batched, one-token and multi-sequence logits
  bit-identical; ``tests/test_determinism.py`` proves it on every run for both.
* A model whose logits do depend on the batch (gemma3-270m's Q4_K and Q5_0 tensors) is coded
  in **lockstep** (``Layout.lockstep``, header key ``calls``): the encoder makes exactly the
  decoder's calls, one token of every segment per ``llama_decode`` in a context of exactly
  that many sequences, with the same slides, so that equality across batch shapes is not
  needed (:meth:`Engine.fit_calls` chooses it from the numeric probe).
* A stream may be coded in **segments** (``Layout.segments`` = K > 1, one block per stream):
  its symbols are cut into K contiguous parts of balanced lengths (:func:`segment_bounds`),
  each with its own KV sequence (own window and sinks, starting from ``start_token`` like a
  stream), and coded in turn into the block's one payload: symbol 0 of every segment, then
  symbol 1 of every segment, and so on.  The online models are one state for the whole stream
  (shared tables, a history per segment: ``ensemble.EnsembleState``), so they learn from every
  symbol as in one long stream, while the decoder advances K sequences per ``llama_decode``
  instead of one.  Each extra segment costs the LLM a cold start.
* ``cdf.interval_from_logits`` / ``symbol_from_logits`` turn one row of logits into integer
  frequencies with total 2**24 in one jitted function; the coder only sees integers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from . import cdf, container, fingerprint, models
from .threads import default_threads
from .ensemble import DEFAULT_ENSEMBLE, LLM_ONLY, EnsembleConfig, EnsembleState
from .coder import ArithmeticDecoder, ArithmeticEncoder
from .container import CodecParams
from .errors import (
    ChecksumError,
    EnvironmentMismatchError,
    FormatError,
    ModelError,
    ModelMismatchError,
    ModelNotFoundError,
    NacrithWarning,
    UnsupportedVersionError,
    corrupt,
)
from .tokenization import TOKENIZER_VERSION, Tokenizer

MAX_BLOCK_TOKENS = 1 << 20
MAX_WINDOW = container.MAX_WINDOW  # also checked against the model's trained context at load
# Symbols per independent stream: about 1 MB of text, so most files are one stream.  Every
# stream starts with an empty context and empty online models, and the n-grams keep learning
# over the whole stream: urls.10K's first 100 KB are 1.618 bpb as one stream against 1.847 in
# 16,384-symbol streams (the previous default), the whole file 1.324 as one stream (bytecm:
# 1.451); alice29.txt 1.062 against 1.074.  The price is decoding side by side: one stream
# decodes one token per llama.cpp call (73-95 tokens/s of model work here, 105-152 for 8
# streams side by side), and --workers / Ray split work by streams.
DEFAULT_STREAM_TOKENS = 1 << 19
DEFAULT_WINDOW = 1024
DEFAULT_SLIDE = 256
DEFAULT_SINKS = 4
# Streams decoded together in one llama_decode (speed only).  Model work of one-token calls
# near the end of a full window, 2 threads (tests/bench/profile_speed.py, four runs): 73-95 tokens/s
# for one stream, 92-126 for 4, 105-152 for 8; 16 streams were no faster than 8.
DEFAULT_LANES = 8
# Encoder batch (speed only: batched logits equal one-token logits in our configuration).
ENCODER_BATCH = 128
# Segments per stream (see the module doc; 1 codes a stream as one sequence), at most one per
# SEGMENT_MIN_BYTES of input (for_input).  Eight: 8 lanes decode at 105-152 tokens/s of model
# work here against 73-95 for one (DEFAULT_LANES), and each extra segment costs about 25-35
# bytes (tests/bench/segments.py, docs/results.md).
DEFAULT_SEGMENTS = 8
MAX_SEGMENTS = container.MAX_SEGMENTS
# Tokens of one segment per encoder call (Engine._encode_segments).
SEGMENT_BATCH = 64
# Input bytes per segment, at least (see for_input).
SEGMENT_MIN_BYTES = 16384
ESCAPE_BITS = 8
# Below this many input bytes the default ensemble is not used (an encoder-only choice: the
# header says what was used).  Measured on alice29.txt's start: -1.2 % payload after 800
# tokens (~3 KB), about break-even with its 3-byte header entry near 2 KB.
ENSEMBLE_MIN_BYTES = 2048

Progress = Callable[[int], None]  # called with the number of symbols just coded


@dataclass(frozen=True)
class Layout:
    """How symbols are split into streams and blocks, and how the context window slides.

    Every field changes the bitstream and is recorded in the archive header.
    """

    #: Symbols per block; None (the default): one block per stream, see :func:`default_block_tokens`.
    block_tokens: int | None = None
    stream_tokens: int = DEFAULT_STREAM_TOKENS
    window: int = DEFAULT_WINDOW
    slide: int = DEFAULT_SLIDE
    sinks: int = DEFAULT_SINKS
    #: The online models mixed with the LLM (``ensemble.LLM_ONLY``: none).
    ensemble: EnsembleConfig = DEFAULT_ENSEMBLE
    #: Segments each stream is coded in, side by side (module doc); they need one block per
    #: stream.  None (the default): ``DEFAULT_SEGMENTS`` with one block per stream, else 1.
    segments: int | None = None
    #: The compression level these settings started from (``container.LEVEL_NAMES``, see
    #: :mod:`nacrith.levels`): recorded in the header, informative only.
    level: int = container.LEVEL_DEFAULT
    #: Encode with exactly the decoder's llama.cpp calls (module doc, "lockstep") instead of
    #: batches: chosen by :meth:`Engine.fit_calls` for a model whose logits depend on the batch.
    lockstep: bool = False

    def __post_init__(self) -> None:
        if self.block_tokens is None:
            object.__setattr__(self, "block_tokens", default_block_tokens(self.stream_tokens))
        if self.segments is None:
            object.__setattr__(self, "segments", self._default_segments())

    def _default_segments(self) -> int:
        return DEFAULT_SEGMENTS if self.block_tokens == self.stream_tokens else 1

    def replace(self, **changes) -> "Layout":
        """A copy with ``changes``; one block per stream stays so when only the stream length
        changes, and default segments stay the default for the new blocks."""
        if "stream_tokens" in changes and "block_tokens" not in changes and self.block_tokens == self.stream_tokens:
            changes["block_tokens"] = None
        if "segments" not in changes and self.segments == self._default_segments():
            changes["segments"] = None
        return dataclasses.replace(self, **changes)

    def check(self, error: type[Exception] = ValueError) -> "Layout":
        # Stream and window first: with a bad stream length the default block length means nothing.
        problem = container.window_problem(self.stream_tokens, self.window, self.slide, self.sinks)
        if problem:
            raise error(problem)
        if not 1 <= self.block_tokens <= MAX_BLOCK_TOKENS:
            raise error(f"block_tokens must be in 1..{MAX_BLOCK_TOKENS}, got {self.block_tokens}")
        if self.stream_tokens < self.block_tokens or self.stream_tokens % self.block_tokens:
            raise error(
                f"stream_tokens ({self.stream_tokens}) must be a multiple of block_tokens ({self.block_tokens})"
            )
        if self.sinks < 0:
            raise error(f"sinks must be >= 0, got {self.sinks}")
        if not (isinstance(self.segments, int) and 1 <= self.segments <= MAX_SEGMENTS):
            raise error(f"segments must be in 1..{MAX_SEGMENTS}, got {self.segments!r}")
        if self.segments > 1 and self.block_tokens != self.stream_tokens:
            raise error(
                f"segments ({self.segments}) need one block per stream: block_tokens ({self.block_tokens}) "
                f"must equal stream_tokens ({self.stream_tokens})"
            )
        if not (isinstance(self.level, int) and 1 <= self.level <= 255):
            raise error(f"level must be in 1..255, got {self.level!r}")
        if not isinstance(self.lockstep, bool):
            raise error(f"lockstep must be a bool, got {self.lockstep!r}")
        if not isinstance(self.ensemble, EnsembleConfig):
            raise error(f"ensemble must be an EnsembleConfig, got {type(self.ensemble).__name__}")
        self.ensemble.check(error)
        return self

    @staticmethod
    def of(params: CodecParams) -> "Layout":
        """The layout an archive records (its ensemble bytes checked: FormatError if invalid)."""
        ensemble = (
            EnsembleConfig.from_bytes(params.ensemble, FormatError, UnsupportedVersionError) if params.ensemble else LLM_ONLY
        )
        return Layout(
            params.block_tokens, params.stream_tokens, params.window, params.slide, params.sinks, ensemble,
            params.segments, params.level, params.calls == container.CALLS_LOCKSTEP,
        )


def default_block_tokens(stream_tokens: int) -> int:
    """Block length when none is given: the whole stream, or its largest divisor that is at
    most ``MAX_BLOCK_TOKENS``.

    Blocks only frame the payload (the model and the ensemble run on across them), and each
    costs about 11 bytes (its header fields, CRC-32 and coder flush): 1024-symbol blocks, the
    first default, spent 2 % of alice29.txt's archive and 7 % of html's on framing.  A
    checksum error is then located to a stream rather than to a smaller block.
    """
    if stream_tokens < 1:
        return 1  # Layout.check reports the bad stream length
    parts = -(-stream_tokens // MAX_BLOCK_TOKENS)
    while stream_tokens % parts:
        parts += 1
    return stream_tokens // parts


def segment_bounds(n_symbols: int, segments: int) -> list[int]:
    """Where a stream of ``n_symbols`` is cut into segments: ``min(segments, n_symbols)``
    parts (at least one), segment ``s`` being symbols ``[b[s], b[s + 1])``, of lengths that
    differ by at most one."""
    k = max(1, min(segments, n_symbols))
    return [n_symbols * s // k for s in range(k + 1)]


def segment_lengths(bounds: list[int]) -> list[int]:
    """The length of each segment cut at ``bounds`` (:func:`segment_bounds`)."""
    return [bounds[s + 1] - bounds[s] for s in range(len(bounds) - 1)]


def for_input(layout: Layout, size: int) -> Layout:
    """``layout`` as an input of ``size`` bytes is coded with it: the default segments become
    at most one per ``SEGMENT_MIN_BYTES`` (an encoder-only choice: the header records the
    segments used; another count asked for is kept).

    Each segment after the first costs the LLM a cold start (module doc), about 25-35 bytes of
    archive: worth it only where the segments are long enough to matter for decoding time.
    """
    if layout.segments == DEFAULT_SEGMENTS > 1:
        segments = max(1, min(layout.segments, size // SEGMENT_MIN_BYTES))
        if segments != layout.segments:
            layout = dataclasses.replace(layout, segments=segments)
    return layout


@dataclass(frozen=True)
class NumericConfig:
    """The llama.cpp settings that change logits, recorded in every archive.

    Only configurations in :data:`EXACT_NUMERICS` are used: in them llama.cpp's CPU flash
    attention gives the same logits for a token evaluated alone, in a batch or beside other
    sequences.  With F16 (or F32) for both K and V it does not (batches take a tiled path that
    rounds differently: up to 2.2 logits apart, measured with llama-cpp-python 0.3.36).  A Q8_0 K
    with an F16 V cache is the default because it is faster than Q8_0 for both at the same
    exactness (window 1024, batches of 128, 2 threads: about 140 against 115 tokens/s),
    since V rows are not dequantised for every query.
    """

    flash_attn: bool = True
    type_k: int = 8  # GGML_TYPE_Q8_0
    type_v: int = 1  # GGML_TYPE_F16
    #: Not a llama.cpp setting but a permission: write an archive even when this llama.cpp
    #: is not the pinned portable build, recorded as machine-bound (``--native``).  Without
    #: it such a build refuses to write archives (nacrith.fingerprint.writer_numerics).
    native: bool = False


#: The numeric configurations archives may use (the default first; Q8_0/Q8_0 was the
#: default of earlier archives and is still decoded).
EXACT_NUMERICS = (NumericConfig(), NumericConfig(type_v=8))


def _make_room(ctx, seqs: list[int], pos: int, layout: Layout) -> int:
    """Slide the windows of ``seqs`` (all at ``pos``) when the next token would land past
    them, as the encoder did; the position after."""
    if pos != layout.window:
        return pos
    for seq in seqs:
        ctx.slide(seq, layout.sinks, layout.slide, layout.window)
    return pos - layout.slide


class _Lane:
    """One stream being decoded: the decoder's mirror of :meth:`Engine.encode_stream`.

    The encoder codes each symbol with :meth:`Engine.code_symbol`: the skip event (when the
    match model predicts the symbol), else the symbol under the model's logits, then the raw
    byte of an escape.  A lane decodes the same events in the same order:
    :meth:`decode_skips` the skip events that need no logits, :meth:`decode_symbol` a symbol
    under one row of logits.  Tokens the skips decoded wait in ``pending`` and enter the KV
    cache (:meth:`feed_pending`) at the positions, and across the slides, the encoder's had.
    """

    def __init__(self, engine: "Engine", layout: Layout, stream: int, blocks: list, seq: int) -> None:
        self.engine = engine
        self.layout = layout
        self.stream = stream  # index of the stream in the archive
        self.blocks = blocks  # [(BlockHeader, payload, archive block index)]
        self.seq = seq  # llama.cpp sequence (KV cache) id
        self.token = engine.start_token  # the next token the model sees
        self.pos = 0  # its position in the sequence
        capacity = sum(bh.n_symbols for bh, _, _ in blocks)
        self.mixer = engine.new_mixer(layout, capacity)
        self.pending: list[int] = []  # tokens decoded by skips, not yet in the KV cache
        self.missed = False  # a skip event said "no": the symbol is next, coded with logits
        self.finished = False
        self.parts: list[bytes] = []  # the stream's checked blocks
        self.block = -1
        self._next_block()

    def _next_block(self) -> None:
        self.block += 1
        if self.block == len(self.blocks):
            self.finished = True
            return
        bh, payload, _ = self.blocks[self.block]
        self.dec, self.left, self.out = ArithmeticDecoder(payload), bh.n_symbols, bytearray()

    def _finish_symbol(self, sym: int) -> None:
        """Append a decoded symbol's bytes (an escape's raw byte follows it in the payload)
        and check a completed block."""
        self.out += self.engine.symbol_bytes(self.dec, sym)
        self.left -= 1
        if self.left:
            return
        bh, _, index = self.blocks[self.block]
        raw = bytes(self.out)
        actual = container.block_crc32(raw)
        if len(raw) != bh.n_bytes or actual != bh.crc32:
            raise ChecksumError(block_index=index, expected=bh.crc32, actual=actual)
        self.parts.append(raw)
        self._next_block()

    def decode_skips(self) -> int:
        """Decode the symbols the match model gets right, which need no logits; their count."""
        count = 0
        while self.mixer is not None and not self.missed and not self.finished:
            predicted = self.mixer.skip_prediction()
            if predicted < 0:
                break
            (lo, f), hit = self.mixer.decode_skip(self.dec.target(), predicted)
            self.dec.consume(lo, f)
            if not hit:
                self.missed = True  # the symbol itself follows, coded with the logits
                break
            self.pending.append(self.token)
            self.token = predicted
            count += 1
            self._finish_symbol(predicted)
        return count

    def decode_symbol(self, row: np.ndarray) -> None:
        """Decode one symbol under the logits ``row`` that followed ``self.token``."""
        sym = self.engine.decode_token(self.dec, self.mixer, row)
        self.missed = False
        self.token = sym
        self.pos += 1
        self._finish_symbol(sym)

    def make_room(self, ctx) -> None:
        """Slide the window when the next token would land past it (as the encoder did)."""
        self.pos = _make_room(ctx, [self.seq], self.pos, self.layout)

    def feed_pending(self, ctx) -> None:
        """Put skipped tokens into the KV cache (no logits), sliding exactly where the encoder did."""
        while self.pending:
            self.make_room(ctx)
            n = min(len(self.pending), self.layout.window - self.pos, ctx.n_batch)
            ctx.decode(self.pending[:n], self.pos, self.seq, logits_from=n)
            self.pos += n
            del self.pending[:n]


class _BlockReader:
    """The blocks of a stream decoded by :meth:`Engine._decode_rounds`, in turn: each block's
    decoder, and its CRC-32 checked once its symbols are decoded (several blocks only for a
    stream of one segment, whose bytes are then ``outs[0]``)."""

    def __init__(self, blocks: list) -> None:
        self.blocks = blocks
        self.index = 0  # the block being decoded
        self.start = 0  # where its bytes start in the stream
        self._dec = None
        self.left = blocks[0][0].n_symbols if blocks else 0

    def decoder(self) -> ArithmeticDecoder:
        if self._dec is None:
            self._dec = ArithmeticDecoder(self.blocks[self.index][1])
        return self._dec

    def count(self, outs: list[bytearray]) -> None:
        """After a symbol (or at the end): check the blocks it completed."""
        if self._dec is not None:
            self.left -= 1
        while self.left <= 0 and self.index < len(self.blocks):
            bh, _, index = self.blocks[self.index]
            raw = bytes(outs[0][self.start :]) if len(outs) == 1 else b"".join(outs)
            actual = container.block_crc32(raw)
            if len(raw) != bh.n_bytes or actual != bh.crc32:
                raise ChecksumError(block_index=index, expected=bh.crc32, actual=actual)
            self.start += len(raw)
            self.index += 1
            self._dec = None
            if self.index < len(self.blocks):
                self.left = self.blocks[self.index][0].n_symbols
            else:
                return


class Engine:
    """A loaded model with its tokenizer and inference contexts: expensive, so reuse it.

    One engine may be used by one thread at a time (a lock enforces it); give each thread or
    process its own.  Created lazily by :class:`nacrith.Codec`.
    """

    def __init__(self, model_file: models.ModelFile, threads: int | None = None):
        from .native import BACKEND, LlamaModel

        self.model_file = model_file
        self.threads = threads or default_threads()  # every available core (nacrith.threads)
        self.backend = BACKEND
        self.model = LlamaModel(model_file.path)
        self.tokenizer = Tokenizer(self.model)
        self.n_vocab = self.model.n_vocab
        self.start_token = self.model.bos if self.model.bos >= 0 else self.tokenizer.escape_token
        self._contexts: dict[tuple, object] = {}
        self._work = np.empty(self.n_vocab, dtype=np.float64)
        self.lock = threading.Lock()
        #: A ``nacrith.workers.WorkerPool`` that codes whole streams in other processes
        #: (set by ``nacrith.Codec`` for ``workers`` > 1), or None to code them here.
        self.workers = None

    def context(self, window: int, numeric: NumericConfig, lanes: int = 1):
        """A llama.cpp context with ``lanes`` sequences of ``window`` positions (one kept cached)."""
        from .native import LlamaContext

        self.check_window(window, ModelError)
        key = (window, numeric, lanes)
        ctx = self._contexts.get(key)
        if ctx is None:
            self._contexts.clear()  # each context holds a KV cache: keep one
            ctx = self._contexts[key] = LlamaContext(
                self.model,
                n_ctx=window * lanes,
                n_batch=max(lanes, min(ENCODER_BATCH, window)),
                n_seq=lanes,
                n_threads=self.threads,
                flash_attn=numeric.flash_attn,
                type_k=numeric.type_k,
                type_v=numeric.type_v,
            )
            ctx.window, ctx.numeric = window, numeric  # for _with_seqs
        return ctx

    def _with_seqs(self, ctx, n_seq: int):
        """``ctx``, or a context of the same window and numerics with ``n_seq`` sequences."""
        return ctx if ctx.n_seq >= n_seq else self.context(ctx.window, ctx.numeric, n_seq)

    def check_window(self, window: int, error: type[Exception]) -> None:
        """Refuse a window longer than the context the model was trained on.

        ``error`` says whose fault it is: ModelError when compressing (the layout asked for does
        not fit this model), FormatError when decoding (no archive of this model can hold it).
        """
        if window > self.model.n_ctx_train:
            raise error(
                f"window {window} exceeds the {self.model.n_ctx_train} positions the model was trained on"
                + ("; choose a smaller window" if error is ModelError else "")
            )

    def params(self, layout: Layout, numeric: NumericConfig) -> CodecParams:
        """The header parameters of an archive coded here, with this machine's numerics check
        (refused for a build that is not the pinned one, unless ``numeric.native``)."""
        kernels, probe = self.numerics(numeric, layout.lockstep)
        return CodecParams(
            model_sha256=bytes.fromhex(self.model_file.sha256),
            tokenizer=TOKENIZER_VERSION,
            cdf_total_bits=cdf.TOTAL_BITS,
            block_tokens=layout.block_tokens,
            flash_attn=numeric.flash_attn,
            type_k=numeric.type_k,
            type_v=numeric.type_v,
            start_token=self.start_token,
            escape_token=self.tokenizer.escape_token,
            stream_tokens=layout.stream_tokens,
            window=layout.window,
            slide=layout.slide,
            sinks=layout.sinks,
            ensemble=layout.ensemble.header_bytes() if layout.ensemble.enabled else b"",
            backend=self.backend,
            fingerprint=fingerprint.current(numeric),
            kernels=kernels,
            probe=probe[: container.PROBE_SIZE],
            segments=layout.segments,
            level=layout.level,
            calls=container.CALLS_LOCKSTEP if layout.lockstep else container.CALLS_BATCHED,
        )

    def numerics(self, numeric: NumericConfig, lockstep: bool = False) -> tuple[str, bytes]:
        """(kernel set, probe) of this engine's llama.cpp under ``numeric`` (see nacrith.fingerprint),
        for an archive coded in ``lockstep`` or batched."""
        return fingerprint.writer_numerics(
            self.model, self.model_file.sha256, numeric, self.start_token, self.threads, native=numeric.native,
            lockstep=lockstep,
        )

    def fit_calls(self, layout: Layout, numeric: NumericConfig) -> Layout:
        """``layout``, in lockstep when this model's logits here depend on the batch (an
        encoder-only choice: the header records it).  SmolLM2's Q4_1 tensors give the same
        logits in any batch; gemma3-270m's Q4_K and Q5_0 do not (docs/determinism.md)."""
        if layout.lockstep or fingerprint.exact_in_batches(self.model, numeric, self.start_token, self.threads):
            return layout
        return dataclasses.replace(layout, lockstep=True)

    def check_numerics(self, params: CodecParams) -> None:
        """Refuse, before decoding anything, an archive whose probe this engine does not reproduce."""
        fingerprint.check_reader_numerics(
            self.model, numeric_of(params), self.start_token, self.threads,
            kernel_set=params.kernels, recorded_probe=params.probe, recorded_fingerprint=params.fingerprint,
            lockstep=params.calls == container.CALLS_LOCKSTEP,
        )

    def llm_tokens(self, symbols: np.ndarray) -> np.ndarray:
        """What the model sees for each symbol: the token, or the escape token for a raw byte."""
        return np.where(symbols < self.n_vocab, symbols, self.tokenizer.escape_token).astype(np.int64)

    # -- encoding: one stream, batched -------------------------------------------------------

    def stream_rows(self, ctx, symbols: np.ndarray, layout: Layout, progress: Progress | None = None):
        """The logits that predict each symbol of one stream, in order: ``(index, float32 row)``.

        Evaluated in batches of known tokens (never across a slide); the rows equal the
        decoder's one-token rows (module doc).  In lockstep, one token per call as
        :meth:`_encode_lockstep` evaluates a stream of one segment.  A row is only valid until
        the next one is asked for.
        """
        if layout.lockstep:
            seen = self.llm_tokens(symbols)
            tokens: list[int] = []
            for i, (_, row) in enumerate(self._round_rows(ctx, layout, [len(symbols)], tokens, progress)):
                yield i, row
                tokens[0] = int(seen[i])
            return
        inputs = np.concatenate(([self.start_token], self.llm_tokens(symbols[:-1])))
        ctx.clear()
        pos = i = 0
        while i < len(inputs):
            pos = _make_room(ctx, [0], pos, layout)
            n = min(ctx.n_batch, layout.window - pos, len(inputs) - i)
            rows = ctx.decode(inputs[i : i + n], pos)
            for j in range(n):
                yield i + j, rows[j]
            pos += n
            i += n
            if progress:
                progress(n)

    def new_mixer(
        self, layout: Layout, capacity: int, segment_lengths: list[int] | None = None
    ) -> EnsembleState | None:
        """Fresh ensemble state for one stream (None for the LLM alone)."""
        if not layout.ensemble.enabled:
            return None
        return EnsembleState(layout.ensemble, self.n_vocab, capacity, segment_lengths)

    def code_symbol(
        self, enc: ArithmeticEncoder, mixer: EnsembleState | None, row: np.ndarray, sym: int, seg: int = 0
    ) -> None:
        """Encode one symbol (of segment ``seg``) under one row of logits (through the ensemble
        if there is one)."""
        token = sym if sym < self.n_vocab else self.tokenizer.escape_token
        if mixer is None:
            enc.encode(*cdf.interval_from_logits(row, token, self._work))
        else:
            predicted = mixer.skip_prediction(seg)
            hit = False
            if predicted >= 0:  # confidence skip: first "does the match continue?"
                interval, hit = mixer.encode_skip(token, predicted, seg)
                enc.encode(*interval)
            if not hit:
                enc.encode(*mixer.encode(row, token, self._work, seg))
        if sym >= self.n_vocab:
            enc.encode_uniform(sym - self.n_vocab, ESCAPE_BITS)

    def decode_symbol(self, dec: ArithmeticDecoder, mixer: EnsembleState | None, row: np.ndarray, seg: int = 0) -> int:
        """The mirror of :meth:`code_symbol` up to the escape's byte: the token (of segment
        ``seg``) decoded under ``row``, whose bytes :meth:`symbol_bytes` then reads.  (The
        lanes of :meth:`decode_streams` decode the skip event before asking for the row.)"""
        if mixer is not None:
            predicted = mixer.skip_prediction(seg)
            if predicted >= 0:  # the row is not needed when the match continues
                (lo, f), hit = mixer.decode_skip(dec.target(), predicted, seg)
                dec.consume(lo, f)
                if hit:
                    return predicted
        return self.decode_token(dec, mixer, row, seg)

    def decode_token(self, dec: ArithmeticDecoder, mixer: EnsembleState | None, row: np.ndarray, seg: int = 0) -> int:
        """The token (of segment ``seg``) decoded under ``row`` once no skip event applies."""
        if mixer is None:
            token, lo, f = cdf.symbol_from_logits(row, dec.target(), self._work)
        else:
            token, lo, f = mixer.decode(row, dec.target(), self._work, seg)
        dec.consume(lo, f)
        return token

    def symbol_bytes(self, dec: ArithmeticDecoder, token: int) -> bytes:
        """The bytes of a decoded token: its piece, or for the escape token the raw byte that
        follows it in the payload."""
        if token == self.tokenizer.escape_token:
            return bytes([dec.decode_uniform(ESCAPE_BITS)])
        return self.tokenizer.pieces[token]

    def encode_stream(self, ctx, symbols: np.ndarray, layout: Layout, progress: Progress | None) -> list[bytes]:
        """Code one stream; returns one arithmetic-coded payload per block."""
        if layout.lockstep:
            return self._encode_lockstep(ctx, symbols, layout, progress)
        if layout.segments > 1:
            return [self._encode_segments(ctx, symbols, layout, progress)]
        payloads: list[bytes] = []
        enc = ArithmeticEncoder()
        mixer = self.new_mixer(layout, len(symbols))
        for k, row in self.stream_rows(ctx, symbols, layout, progress):
            if k and k % layout.block_tokens == 0:
                payloads.append(enc.finish())
                enc = ArithmeticEncoder()
            self.code_symbol(enc, mixer, row, int(symbols[k]))
        payloads.append(enc.finish())
        return payloads

    def _encode_segments(self, ctx, symbols: np.ndarray, layout: Layout, progress: Progress | None) -> bytes:
        """Code one stream in segments (module doc) into one payload.

        Each segment's next ``SEGMENT_BATCH`` tokens are evaluated in one ``llama_decode`` of
        its own (never across a slide; the segments slide together, being at the same
        position), then the rows of all segments are coded round by round.  A batch of one
        sequence runs about 8 % faster here than one of 8 sequences x 16 tokens (64 tokens of
        one sequence as fast as 128); the price is K x 64 rows of logits held at once (about
        100 MB for 8 segments of SmolLM2's 49,152-entry vocabulary).
        """
        bounds = segment_bounds(len(symbols), layout.segments)
        lengths = segment_lengths(bounds)
        k = len(lengths)
        ctx = self._with_seqs(ctx, k)
        ctx.clear()
        inputs = [
            np.concatenate(([self.start_token], self.llm_tokens(symbols[bounds[s] : bounds[s + 1] - 1])))
            for s in range(k)
        ]
        mixer = self.new_mixer(layout, len(symbols), lengths)
        enc = ArithmeticEncoder()
        per_segment = max(1, min(ctx.n_batch, SEGMENT_BATCH))
        rounds = max(lengths)
        pos = r = 0
        while r < rounds:
            active = [s for s in range(k) if lengths[s] > r]
            pos = _make_room(ctx, active, pos, layout)
            c = min(per_segment, layout.window - pos, rounds - r)
            rows = {s: ctx.decode(inputs[s][r : min(r + c, lengths[s])], pos, s) for s in active}
            for j in range(c):
                for s in active:
                    if r + j < lengths[s]:
                        self.code_symbol(enc, mixer, rows[s][j], int(symbols[bounds[s] + r + j]), s)
            pos += c
            r += c
            if progress:
                progress(sum(len(block) for block in rows.values()))
        return enc.finish()

    def _rounds_context(self, ctx, layout: Layout, k: int):
        """The context a stream of ``k`` segments is coded in one token per sequence per call:
        in lockstep exactly ``k`` sequences on both sides (the same calls on the same cache),
        else ``ctx`` if it has enough."""
        if layout.lockstep:
            return self.context(ctx.window, ctx.numeric, k)
        return self._with_seqs(ctx, k)

    def _round_rows(self, ctx, layout: Layout, lengths: list[int], tokens: list[int], progress: Progress | None):
        """The rounds of a stream of ``len(lengths)`` segments: each round one ``llama_decode``
        of one token of every unfinished segment, yielding ``(segment, row)`` in segment
        order.  ``tokens`` (filled here with the start token) holds what each segment's model
        sees next: the caller sets ``tokens[s]`` from each row's symbol before asking for the
        next row.  The encoder in lockstep and the decoder both run exactly these calls."""
        k = len(lengths)
        ctx = self._rounds_context(ctx, layout, k)
        for s in range(k):
            ctx.clear_seq(s)
        tokens[:] = [self.start_token] * k
        pos = 0
        for r in range(max(lengths)):
            active = [s for s in range(k) if lengths[s] > r]
            pos = _make_room(ctx, active, pos, layout)
            rows = ctx.decode_multi([tokens[s] for s in active], [pos] * len(active), active)
            yield from zip(active, rows)
            pos += 1
            if progress:
                progress(len(active))

    def _encode_lockstep(self, ctx, symbols: np.ndarray, layout: Layout, progress: Progress | None) -> list[bytes]:
        """Code one stream with exactly the calls :meth:`_decode_rounds` makes to decode it
        (one token of every unfinished segment per ``llama_decode``), for a model whose logits
        depend on the batch; one payload per block."""
        bounds = segment_bounds(len(symbols), layout.segments)
        lengths = segment_lengths(bounds)
        mixer = self.new_mixer(layout, len(symbols), lengths if layout.segments > 1 else None)
        payloads: list[bytes] = []
        enc = ArithmeticEncoder()
        tokens: list[int] = []
        done = [0] * len(lengths)  # symbols coded per segment
        coded = 0
        for s, row in self._round_rows(ctx, layout, lengths, tokens, progress):
            if coded and coded % layout.block_tokens == 0:  # one segment only (Layout.check)
                payloads.append(enc.finish())
                enc = ArithmeticEncoder()
            sym = int(symbols[bounds[s] + done[s]])
            self.code_symbol(enc, mixer, row, sym, s)
            tokens[s] = sym if sym < self.n_vocab else self.tokenizer.escape_token
            done[s] += 1
            coded += 1
        payloads.append(enc.finish())
        return payloads

    def _decode_rounds(self, ctx, blocks: list, layout: Layout, progress: Progress | None) -> bytes:
        """Decode one stream one token of every unfinished segment per ``llama_decode``: the
        mirror of :meth:`_encode_lockstep`, and of :meth:`_encode_segments` (whose batched
        logits equal these).  Only a stream of one segment may have several blocks."""
        if layout.segments > 1 and len(blocks) != 1:  # Layout.check: segments need one block per stream
            raise corrupt("a stream coded in segments must be one block")
        n_symbols = sum(bh.n_symbols for bh, _, _ in blocks)
        lengths = segment_lengths(segment_bounds(n_symbols, layout.segments))
        mixer = self.new_mixer(layout, n_symbols, lengths if layout.segments > 1 else None)
        outs = [bytearray() for _ in lengths]
        tokens: list[int] = []
        block = _BlockReader(blocks)
        for s, row in self._round_rows(ctx, layout, lengths, tokens, progress):
            dec = block.decoder()
            token = self.decode_symbol(dec, mixer, row, s)
            outs[s] += self.symbol_bytes(dec, token)
            tokens[s] = token
            block.count(outs)
        block.count(outs)  # blocks of no symbols
        return b"".join(outs)

    # -- decoding: several streams in lockstep ---------------------------------------------

    def decode_streams(
        self, ctx, streams: Iterable[list], layout: Layout, progress: Progress | None
    ) -> Iterator[bytes]:
        """Decode streams (each a list of (BlockHeader, payload, block index)), yielding each
        stream's bytes in order.  Up to ``ctx.n_seq`` streams (lanes) advance together, one
        token each per ``llama_decode``; a finished stream's sequence is reused by the next.

        Each round first decodes, in every lane, the symbols the match model predicts (no
        logits needed), puts their tokens into the KV cache, and then, once no lane has
        finished, decodes one symbol of every lane from one batch of logits.
        """
        if layout.segments > 1 or layout.lockstep:  # one stream at a time, its segments side by side
            for blocks in streams:
                yield self._decode_rounds(ctx, blocks, layout, progress)
            return
        source = iter(streams)
        free = list(range(ctx.n_seq - 1, -1, -1))
        active: list[_Lane] = []
        done: dict[int, bytes] = {}  # finished streams not yet yielded (they finish out of order)
        admitted = emitted = 0
        while True:
            while free:
                blocks = next(source, None)
                if blocks is None:
                    break
                lane = _Lane(self, layout, admitted, blocks, free.pop())
                ctx.clear_seq(lane.seq)
                active.append(lane)
                admitted += 1
            if not active:
                return
            skipped = sum(lane.decode_skips() for lane in active)
            for lane in active:
                if not lane.finished:
                    lane.feed_pending(ctx)
            if progress and skipped:
                progress(skipped)
            if not any(lane.finished for lane in active):
                for lane in active:
                    lane.make_room(ctx)
                rows = ctx.decode_multi(
                    [lane.token for lane in active], [lane.pos for lane in active], [lane.seq for lane in active]
                )
                for lane, row in zip(active, rows):
                    lane.decode_symbol(row)
                if progress:
                    progress(len(active))
            # Retire finished lanes (their sequences go to the next streams) and yield in order.
            for lane in active:
                if lane.finished:
                    done[lane.stream] = b"".join(lane.parts)
                    free.append(lane.seq)
            active = [lane for lane in active if not lane.finished]
            while emitted in done:
                yield done.pop(emitted)
                emitted += 1


# -- whole archives ------------------------------------------------------------------------


def model_blocks(
    engine: Engine,
    text: bytes,
    *,
    layout: Layout,
    numeric: NumericConfig,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> list[container.Block] | None:
    """``text`` model-coded into blocks (the streams and blocks of mode 0), or None
    when it is mostly bytes the vocabulary cannot spell.  Used by mode 0 and by the text
    section of hybrid archives (``nacrith.hybrid``).  A window the model was not trained for
    is a ModelError."""
    engine.check_window(layout.window, ModelError)
    with engine.lock:
        symbols = engine.tokenizer.encode(text)
        if int((symbols >= engine.n_vocab).sum()) * 2 > len(text):
            # Mostly bytes the vocabulary cannot spell: each costs 8 bits plus an escape, so the
            # model cannot beat storing them; don't spend minutes proving it.
            return None
        if on_total:
            on_total(len(symbols))
        streams = (symbols[s : s + layout.stream_tokens] for s in range(0, len(symbols), layout.stream_tokens))
        if engine.workers is not None:  # other processes, same payloads in the same order
            payloads = engine.workers.encode_streams(streams, layout, numeric, progress)
        else:
            ctx = engine.context(layout.window, numeric)
            payloads = (engine.encode_stream(ctx, stream, layout, progress) for stream in streams)
        return frame_blocks(engine, text, symbols, layout, payloads)


def frame_blocks(
    engine: Engine, text: bytes, symbols: np.ndarray, layout: Layout, payloads: Iterable[list[bytes]]
) -> list[container.Block]:
    """The blocks (counts, CRC-32 of the block's bytes, payload) of ``text``'s symbols, given
    each stream's per-block payloads in order."""
    blocks = []
    lengths = engine.tokenizer.symbol_len
    offset = 0
    bt = layout.block_tokens
    for s, stream_payloads in zip(range(0, len(symbols), layout.stream_tokens), payloads):
        stream = symbols[s : s + layout.stream_tokens]
        for b, payload in enumerate(stream_payloads):
            block = stream[b * bt : (b + 1) * bt]
            n_bytes = int(lengths[block].sum())
            raw = text[offset : offset + n_bytes]
            offset += n_bytes
            blocks.append(container.Block(len(block), n_bytes, container.block_crc32(raw), payload))
    assert offset == len(text), "tokenizer lost bytes"  # guarded by tokenization's own checks
    return blocks


def model_archive(
    engine: Engine,
    data: bytes,
    *,
    layout: Layout,
    numeric: NumericConfig,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> bytes | None:
    """A mode 0 archive of ``data``, or None when the model cannot beat storing it."""
    blocks = model_blocks(engine, data, layout=layout, numeric=numeric, progress=progress, on_total=on_total)
    if blocks is None:
        return None
    return container.encode_member(container.MODE_MODEL, engine.params(layout, numeric), data, blocks)


def check_params(params: CodecParams) -> Layout:
    """Refuse archives whose settings this version cannot reproduce; return their layout."""
    if params.tokenizer != TOKENIZER_VERSION:
        raise UnsupportedVersionError(
            f"archive uses tokenizer scheme {params.tokenizer}; this nacrith knows {TOKENIZER_VERSION}: upgrade nacrith"
        )
    if params.cdf_total_bits != cdf.TOTAL_BITS:
        raise UnsupportedVersionError(
            f"archive uses CDF total 2^{params.cdf_total_bits}; only 2^{cdf.TOTAL_BITS} is supported"
        )
    numeric = NumericConfig(params.flash_attn, params.type_k, params.type_v)
    if numeric not in EXACT_NUMERICS:
        # Only these configurations make batched and one-token logits identical (module doc).
        raise UnsupportedVersionError(
            f"archive uses llama.cpp settings {numeric} that this nacrith cannot reproduce exactly"
        )
    return Layout.of(params).check(FormatError)


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


def _streams_of(blocks: Iterable, layout: Layout, first: int = 0) -> Iterator[list]:
    """Group an archive's blocks (``first`` is the archive index of the first one) into
    streams, checking that only the last block is short."""
    per_stream = layout.stream_tokens // layout.block_tokens
    group: list = []
    short = None
    for index, (bh, payload) in enumerate(blocks, first):
        if short is not None:
            raise corrupt(f"block {short} has fewer than block_tokens symbols but is not the last")
        if bh.n_symbols > layout.block_tokens:
            raise corrupt(f"block {index} declares {bh.n_symbols} symbols, more than block_tokens")
        if bh.n_symbols < layout.block_tokens:
            short = index
        group.append((bh, payload, index))
        if len(group) == per_stream:
            yield group
            group = []
    if group:
        yield group


def numeric_of(params: CodecParams) -> NumericConfig:
    """The llama.cpp settings an archive records."""
    return NumericConfig(params.flash_attn, params.type_k, params.type_v)


def engine_for(
    params: CodecParams, get_engine: Callable[[models.ModelFile], Engine], model: str | os.PathLike | None
) -> Engine:
    """The engine of the model an archive needs (loaded by ``get_engine``), checked against the
    archive's vocabulary and window."""
    engine = get_engine(model_for(params, model))
    if params.start_token != engine.start_token or params.escape_token != engine.tokenizer.escape_token:
        raise FormatError("the archive's start/escape tokens do not match this model's vocabulary")
    engine.check_window(params.window, FormatError)
    return engine


@contextlib.contextmanager
def environment_check(params: CodecParams) -> Iterator[None]:
    """Decode a model-coded archive under this check of where it was made.

    When the archive's fingerprint differs from this machine's, a warning says so, and a
    checksum error inside the block is reported as an :class:`EnvironmentMismatchError`: most
    likely this machine computes other logits than the writer's, not damage.
    """
    numeric = numeric_of(params)
    here = fingerprint.current(numeric)
    foreign = fingerprint.differs(params.fingerprint, here)
    if foreign:
        warnings.warn(fingerprint.mismatch_warning(params.fingerprint, here), NacrithWarning, stacklevel=4)
    try:
        yield
    except ChecksumError as exc:
        if not foreign:
            raise
        raise EnvironmentMismatchError(
            fingerprint.mismatch_error(params.fingerprint, here, fingerprint.describe(numeric), exc),
            archive_fingerprint=params.fingerprint,
            local_fingerprint=here,
        ) from exc


def decode_text(
    engine: Engine,
    blocks: Iterable,
    layout: Layout,
    numeric: NumericConfig,
    *,
    first: int = 0,
    lanes: int = DEFAULT_LANES,
    progress: Progress | None = None,
) -> bytes:
    """The bytes of model-coded blocks (``(BlockHeader, payload)`` in archive order, the first
    being archive block ``first``), every block's CRC-32 checked."""
    out = bytearray()
    with engine.lock:
        streams = _streams_of(blocks, layout, first)
        if engine.workers is not None:  # other processes; bytes in stream order all the same
            decoded = engine.workers.decode_streams(streams, layout, numeric, max(1, lanes), progress)
        else:
            ctx = engine.context(layout.window, numeric, max(1, lanes))
            decoded = engine.decode_streams(ctx, streams, layout, progress)
        for raw in decoded:
            out += raw
    return bytes(out)
