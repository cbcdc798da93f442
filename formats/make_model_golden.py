"""Regenerate (or, with --check, verify) the golden model-coded archives.

These pin the whole bitstream: tokenizer, escapes, llama.cpp numerics (the pinned x86-64-v3
kernels of native/install.sh, flash attention, Q8_0 K and F16 V cache), CDF quantization,
arithmetic coder and container.  A change that alters any of them makes tests/test_golden.py
fail, which is the point: old archives must keep decoding.

* ``golden/model/``: what this version writes (container version 2).
* ``golden/model-v1/`` and ``golden/model-kvq8/`` (``--v1``): the same texts in container
  version 1, and two archives with the earlier Q8_0 V cache, made with the pinned kernels by
  the last version that wrote version 1 (so they can only be checked, not rewritten, since).
* ``golden/avx512-v1/``: the archives of the earlier AVX-512 builds; they decode only where
  llama.cpp runs those kernels (tests/test_golden.py says when it skips them).

Usage: python formats/make_model_golden.py [--check] [--v1]
"""

from __future__ import annotations

import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
HERE = GOLDEN / "model"
V1 = GOLDEN / "model-v1"
KVQ8 = GOLDEN / "model-kvq8"
#: The two texts of golden/model-kvq8/ (Q8_0 K and V cache, the earliest default).
KVQ8_NAMES = ("prose", "essay-ensemble")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from nacrith.ensemble import LLM_ONLY, EnsembleConfig  # noqa: E402

# (name, original bytes, layout)
CASES = [
    (
        "prose",
        b"It was the best of times, it was the worst of times, it was the age of wisdom,\n"
        b"it was the age of foolishness, it was the epoch of belief, it was the epoch of\n"
        b"incredulity, it was the season of Light, it was the season of Darkness.\n",
        {},
    ),
    (
        "blocks-escapes",
        b"Escapes \x04\x06 and \xff\xfe invalid UTF-8, a NUL \x00, CRLF\r\n, "
        + "and astral \U00040000 text, cut into small blocks, streams and windows.\r\n".encode()
        + b"The model still has to win against storing the bytes, so here is some ordinary English "
        + b"prose that it predicts well: the cat sat on the mat, and the dog sat on the rug.\r\n",
        dict(block_tokens=16, stream_tokens=48, window=24, slide=6, sinks=3),
    ),
    (
        # Over codec.ENSEMBLE_MIN_BYTES: coded with the default ensemble (header key 14 = preset 1).
        "essay-ensemble",
        b"A compressor earns trust slowly. It has to give back every byte, on every machine, for as "
        b"long as anyone keeps the archive, and it has to say clearly when it cannot. A neural "
        b"compressor adds a new way to fail: the model's arithmetic. If the decoder computes a "
        b"probability that differs in the last bit from the encoder's, the arithmetic coder drifts "
        b"and everything after that point is noise. So the decoder must repeat the encoder's work "
        b"exactly, with the same batches, the same positions and the same order of operations.\n\n"
        b"The language model is good at prose but knows nothing about this particular document. "
        b"It does not know that the word archive keeps coming back, or that the phrase the same "
        b"batches, the same positions has been used before. Small online models fill that gap. "
        b"They count which token followed which context, they notice when the text repeats itself, "
        b"and they learn a per-document correction of the model's log-probabilities. A mixer "
        b"decides, token by token, how much to trust each of them.\n\n"
        b"None of this is free. Every learned weight must be updated in the same way on both sides, "
        b"so the mixer uses plain double-precision arithmetic in a fixed order, its own exponential "
        b"and its own logarithm, and no instruction that a compiler may fuse or reorder. Every "
        b"setting that changes the result is written into the archive header, so that a file made "
        b"with unusual settings still decodes years later. And because short inputs give the online "
        b"models too little to learn from, they are coded by the language model alone.\n\n"
        b"The result is measured, not promised: the benchmark command in the repository prints what "
        b"each part buys on each file, and anyone can run it again. The numbers are modest on "
        b"novels, where the language model already knows the language, and larger on markup, "
        b"logs and lists, where the same long strings come back again and again, again and again, "
        b"which is exactly where the match model and the n-grams earn their keep. Keep the input, "
        b"check the output, and trust the checksum more than the promise of any compressor ever.\n",
        {},
    ),
    (
        "llm-alone",
        b"Without the ensemble the LLM's logits are coded directly (header without key 14).\n",
        dict(ensemble=LLM_ONLY),
    ),
    (
        "repeats-ensemble",
        b"".join(b'<tr><td class="k">row %d</td><td><a href="/items/%d">item</a></td></tr>\n' % (i, i * 7) for i in range(8)),
        dict(ensemble=EnsembleConfig(ngram_order=2, match_min=4, mixer_contexts=0, bias_rate=2000)),
    ),
    (
        # Three segments side by side (header key 16), sliding their windows, with the ensemble
        # shared between them (the default one, written out: this text is under ENSEMBLE_MIN_BYTES).
        "segments",
        b"Three segments of one stream are coded side by side, one token of each per round, while "
        b"the online models learn from all of them.\r\nOdd bytes: \x00\xff\xfe.\n"
        + b"".join(b"<li><a href=\"/items/%d\">item %d</a></li>\n" % (i, i) for i in range(10)),
        dict(segments=3, window=40, slide=10, sinks=2, ensemble=EnsembleConfig(version=2, apm_rate=1311, prev_sets=10, llm_rate=21)),
    ),
]
#: Cases that container version 1 cannot record (no golden/model-v1/ file).
V2_ONLY = ("segments",)


def build(codec, v1: bool = False) -> dict[str, tuple[bytes, bytes]]:
    # Without the header's fingerprint (key 15), which names the machine that ran this:
    # the files pin the bitstream, not where it was made.
    from nacrith.fingerprint import restamp

    return {
        name: (data, restamp(codec.compress(data, fallback=False, **layout), ""))
        for name, data, layout in CASES
        if not (v1 and name in V2_ONLY)
    }


def build_kvq8(codec) -> dict[str, tuple[bytes, bytes]]:
    """The Q8_0/Q8_0 cache archives (written through the mode chooser with that numeric setting)."""
    from nacrith import archive, models
    from nacrith.codec import NumericConfig
    from nacrith.fingerprint import restamp

    engine = codec.engine(models.resolve())
    out = {}
    for name, data, layout in CASES:
        if name in KVQ8_NAMES:
            blob = archive.compress(engine, data, layout=codec.layout.replace(**layout), numeric=NumericConfig(type_v=8), fallback=False)
            out[name] = (data, restamp(blob, ""))
    return out


def main() -> int:
    import nacrith

    check = "--check" in sys.argv
    codec = nacrith.Codec(threads=1)
    sets = [(V1, build(codec, v1=True)), (KVQ8, build_kvq8(codec))] if "--v1" in sys.argv else [(HERE, build(codec))]
    bad = 0
    for folder, archives in sets:
        folder.mkdir(parents=True, exist_ok=True)
        for name, (data, blob) in archives.items():
            src, arc = folder / f"{name}.txt", folder / f"{name}.txt.nc"
            if check:
                if src.read_bytes() != data or arc.read_bytes() != blob:
                    print(f"differs: {folder.name}/{name}")
                    bad += 1
            else:
                src.write_bytes(data)
                arc.write_bytes(blob)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
