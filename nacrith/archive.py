"""Whole archives: which mode codes the input, and which decoder reads each member.

This is the top of the coding stack; data flows one way, and nothing below imports it back::

    archive  ->  codec (mode 0: the model)        ->  container (the framing)
             ->  hybrid (mode 2: regions)
             ->  bytemodes (modes 1, 3, 4: stored, zstd, bytecm)

:func:`compress` segments the input (:mod:`nacrith.segment`) and writes the smallest of

* a **model** archive (mode 0) when the whole input is one UTF-8 text region;
* a **hybrid** archive (mode 2) when it has text and binary regions, or text in another
  encoding (:mod:`nacrith.hybrid`);
* a **zstd** archive (mode 3) and a **bytecm** archive (mode 4, for inputs up to
  ``bytemodes.BYTECM_MAX_BYTES``), see :mod:`nacrith.bytemodes`;
* a **stored** archive (mode 1).

So every archive is at most the zstd archive, which is ``zstd -19`` of the input plus 14 to
23 bytes of framing (container v2, for inputs up to ``bytemodes.ZSTD_BLOCK_BYTES``), and at
most the stored archive, which is the input plus 11 bytes (12 from 128 bytes, 14 up to
256 MiB; an empty input is 11 bytes, one byte 12).  Input with less than
``MIN_MODEL_TEXT`` bytes of text (random data, JPEG, zeros) never reaches the model.

:func:`decompress_archive` decodes one member whose header has been read, dispatching on its
mode; :func:`decompress` decodes every member of a concatenation (``container.iter_members``).
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import BinaryIO, Callable, Iterator

from . import bytemodes, codec, container, hybrid, models, segment
from .codec import DEFAULT_LANES, Engine, Layout, NumericConfig, Progress
from .ensemble import DEFAULT_ENSEMBLE, LLM_ONLY
from .errors import ModelError
from .segment import Kind

#: Less text than this is not worth loading the model for (container v2 frames a model archive
#: in about 30 bytes, but the model saves well under half a byte per byte of text over zstd).
#: Random data (and JPEG) has a few chance text regions of 30-40 bytes per 100 KB.
MIN_MODEL_TEXT = 256
#: Machine-bound model archives carry an environment fingerprint of at most this many bytes
#: (container v2: its length byte and a text under 40 bytes; see nacrith.fingerprint).  The
#: comparison charges such an archive this allowance in place of its own fingerprint, so the
#: choice is the same on every machine and never exceeds the zstd or stored archive.  Portable
#: archives carry no fingerprint.
FINGERPRINT_ALLOWANCE = 1 + 40

GetEngine = Callable[[models.ModelFile], Engine]


# -- compressing ----------------------------------------------------------------------------


def compress(
    engine: Engine | None,
    data: bytes,
    *,
    layout: Layout = Layout(),
    numeric: NumericConfig = NumericConfig(),
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    fallback: bool = True,
    rules: segment.Rules = segment.DEFAULT_RULES,
) -> bytes:
    """The smallest archive of ``data`` (see the module docstring).

    With ``fallback=False`` a model or hybrid archive is returned whenever the input has text
    the model can code, however little, even if zstd or stored would be smaller (golden files
    that pin the model's bitstream use this).  ``engine`` may be None for input without text.

    Inputs under ``codec.ENSEMBLE_MIN_BYTES`` with the default ensemble are coded by the LLM
    alone: the ensemble has too little to learn from, and saves less than its header entry costs.
    """
    layout = effective_layout(layout, len(data))
    data = bytes(data)
    model_archive = model_member(
        engine, data, layout=layout, numeric=numeric, progress=progress, on_total=on_total, fallback=fallback,
        rules=rules,
    )
    if model_archive is not None and not fallback:
        return model_archive
    others = [bytemodes.zstd_archive(data)]
    cm = bytemodes.bytecm_archive(data)
    if cm is not None:
        others.append(cm)
    others.append(container.encode_stored(data))
    best = min(others, key=len)  # zstd on a tie, then bytecm
    if model_archive is None:
        return best
    machine = container.machine_bound_bytes(engine.params(engine.fit_calls(layout, numeric), numeric))
    charged = len(model_archive) - machine + (FINGERPRINT_ALLOWANCE if machine else 0)
    return model_archive if charged <= len(best) else best


def effective_layout(layout: Layout, size: int) -> Layout:
    """The layout a ``size``-byte input is coded with: ``layout``, checked, without the
    default ensemble below ``codec.ENSEMBLE_MIN_BYTES`` (see :func:`compress`), and with no
    more segments than the input's size warrants (``codec.for_input``)."""
    layout.check()
    if size < codec.ENSEMBLE_MIN_BYTES and layout.ensemble == DEFAULT_ENSEMBLE:
        layout = dataclasses.replace(layout, ensemble=LLM_ONLY)
    return codec.for_input(layout, size)


def model_member(
    engine: Engine | None,
    data: bytes,
    *,
    layout: Layout,
    numeric: NumericConfig,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    fallback: bool = True,
    rules: segment.Rules = segment.DEFAULT_RULES,
) -> bytes | None:
    """The model (mode 0) or hybrid (mode 2) archive of ``data`` with ``layout`` as
    :func:`effective_layout` gives it, or None when it has too little text for the model, or
    text the model cannot code.  The first stage of :func:`compress`, on its own so that a
    look-ahead (``nacrith.pipeline``) runs only this stage, never the zstd and bytecm ones."""
    regions = segment.segment(data, rules)
    if segment.text_bytes(regions) < (MIN_MODEL_TEXT if fallback else 1):
        return None
    if engine is None:
        raise ValueError("this input has text: an engine is needed to compress it")
    engine.check_window(layout.window, ModelError)  # the caller's layout: a usage error
    layout = engine.fit_calls(layout, numeric)
    engine.numerics(numeric, layout.lockstep)  # refuse a non-portable llama.cpp before coding, not after
    options = dict(layout=layout, numeric=numeric, progress=progress, on_total=on_total)
    if len(regions) == 1 and regions[0].kind == Kind.UTF8:
        return codec.model_archive(engine, data, **options)
    return hybrid.hybrid_archive(engine, data, regions, **options)


# -- decompressing --------------------------------------------------------------------------


def decompress_archive(
    reader: container.ArchiveReader,
    get_engine: GetEngine | None,
    *,
    model: str | os.PathLike | None = None,
    lanes: int = DEFAULT_LANES,
    progress: Progress | None = None,
) -> bytes:
    """Decode one archive whose header ``reader`` has already read, verifying every checksum.

    ``get_engine`` loads a model (``nacrith.Codec.engine``); it is only called for model-coded
    members, after every check that needs no model.
    """
    if reader.header.mode in container.MODEL_MODES:
        return _decode_with_model(reader, get_engine, model, lanes, progress)
    out = b"".join(bytemodes.decode(reader, progress))
    container.verify_original(reader.trailer, out)
    return out


def _decode_with_model(
    reader: container.ArchiveReader,
    get_engine: GetEngine | None,
    model: str | os.PathLike | None,
    lanes: int,
    progress: Progress | None,
) -> bytes:
    """Mode 0, or mode 2 whose table and binary section are read (and every size checked)
    before the model decodes the text of all its text regions."""
    sections = None
    if reader.header.mode == container.MODE_HYBRID:
        sections = hybrid.read_sections(reader)
        blocks, first = sections.model_blocks, sections.first_model_block
    else:
        blocks, first = reader.blocks(), 0
    params = reader.header.params
    layout = codec.check_params(params)
    engine = codec.engine_for(params, get_engine, model)
    engine.check_numerics(params)  # a foreign machine is refused here, in about a second
    with codec.environment_check(params):
        text = codec.decode_text(
            engine, blocks, layout, codec.numeric_of(params), first=first, lanes=lanes, progress=progress
        )
        out = sections.assemble(text) if sections is not None else text
        container.verify_original(reader.trailer, out)
    return out


def decompress_members(
    source: BinaryIO,
    get_engine: GetEngine | None,
    *,
    model: str | os.PathLike | None = None,
    lanes: int = DEFAULT_LANES,
    limits: container.Limits = container.DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> Iterator[tuple[container.ArchiveReader, bytes]]:
    """Each member of ``source`` (a concatenation of archives) with its decoded bytes, in turn;
    memory is bounded by the largest member."""
    for reader in container.iter_members(source, limits):
        yield reader, decompress_archive(reader, get_engine, model=model, lanes=lanes, progress=progress)


def decompress(
    data: bytes,
    get_engine: GetEngine | None,
    *,
    model: str | os.PathLike | None = None,
    lanes: int = DEFAULT_LANES,
    limits: container.Limits = container.DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> bytes:
    """The concatenated contents of every member of ``data``; anything else trailing is an error."""
    members = decompress_members(
        io.BytesIO(data), get_engine, model=model, lanes=lanes, limits=limits, progress=progress
    )
    return b"".join(out for _, out in members)
