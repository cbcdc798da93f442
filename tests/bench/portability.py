"""Do nacrith's archives decode on a CPU without AVX-512?  Shown with an emulated second machine.

``qemu-x86_64 -cpu Haswell`` (Debian's qemu-user) runs this machine's Python and llama.cpp as
if on a Haswell CPU: AVX2, FMA and F16C, no AVX-512.  For each llama.cpp build given, the
script compares, between this CPU and the emulated one:

1. the numeric probe (``nacrith.fingerprint.probe``: the logits of a fixed text, batched
   and one token at a time), and
2. whole archives, both ways: made here and decoded there, made there and decoded here;
3. with a second build, archives of each decoded by the other on this CPU.

The pinned build (``native/install.sh``) must agree in every row; a build for this machine's
own kernels (a plain ``pip install llama-cpp-python``, here with AVX-512) must not: under the
emulated CPU it either dies at its first AVX-512 instruction or computes other logits, and
the two builds must refuse each other's archives.

    python tests/bench/portability.py                          # the installed (pinned) build
    python tests/bench/portability.py --other-lib DIR          # ... and another build's lib/

DIR is a llama-cpp-python ``llama_cpp/lib`` folder (loaded through LLAMA_CPP_LIB_PATH).
Emulation is slow: the archive rows take a few minutes each.  Results: docs/determinism.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Enough prose for the model to be used (mode 0 is forced), short enough to emulate.
TEXT = (
    b"Portable archives: a file compressed on one machine must decode on another one, with "
    b"other CPU features, byte for byte. Here is some ordinary English text for the model.\n"
)
CPU = "Haswell"


def child(argv: list[str]) -> int:
    """Runs inside the measured process (natively or emulated)."""
    import nacrith
    from nacrith import fingerprint, models
    from nacrith.codec import NumericConfig
    from nacrith.native import LlamaModel

    what = argv[0]
    if what == "probe":
        model = LlamaModel(models.resolve(None).path)
        print(fingerprint.probe(model, NumericConfig(), model.bos).hex())
    elif what == "compress":
        data = Path(argv[1]).read_bytes()
        codec = nacrith.Codec(threads=1)
        Path(argv[2]).write_bytes(codec.compress(data, fallback=False, native=True))
    elif what == "decompress":
        Path(argv[2]).write_bytes(nacrith.Codec(threads=1).decompress(Path(argv[1]).read_bytes()))
    return 0


def run(lib: str | None, emulated: bool, *args: str, timeout: float = 3600) -> tuple[int, str]:
    env = dict(os.environ)
    if lib:
        env["LLAMA_CPP_LIB_PATH"] = lib
    cmd = [sys.executable, __file__, "--child", *args]
    if emulated:
        cmd = ["qemu-x86_64", "-cpu", CPU, *cmd]
    p = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
    last = (p.stdout or p.stderr).decode("utf-8", "replace").strip().splitlines()
    return p.returncode, (last[-1] if last else "")


def outcome(rc: int, text: str) -> str:
    if rc in (-4, 132):
        return "illegal instruction"
    return text if rc == 0 else f"failed (exit {rc}): {text[:120]}"


def round_trip(maker: tuple[str | None, bool], reader: tuple[str | None, bool]) -> tuple[str, int, str, int]:
    """Compress TEXT with one (lib, emulated) and decompress it with another: (the stage that
    failed, or "", its exit status, its last line, the archive's size)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, arc, back = Path(tmp, "text"), Path(tmp, "a.nc"), Path(tmp, "back")
        src.write_bytes(TEXT)
        rc, text = run(*maker, "compress", str(src), str(arc))
        if rc != 0:
            return "compress", rc, text, 0
        size = arc.stat().st_size
        rc, text = run(*reader, "decompress", str(arc), str(back))
        if rc != 0 or back.read_bytes() != TEXT:
            return "decompress", rc, text, size
        return "", 0, "", size


def check_build(name: str, lib: str | None, archives: bool) -> bool:
    """Print one build's rows; True when everything agrees between the two CPUs."""
    here = outcome(*run(lib, False, "probe"))
    there = outcome(*run(lib, True, "probe"))
    same = here == there
    print(f"{name}: probe here {here}, on {CPU} {there}: {'same' if same else 'DIFFERENT'}")
    if not archives:
        return same
    where = lambda emulated: CPU if emulated else "here"  # noqa: E731
    for made, decoded in ((False, True), (True, False)):
        failed, rc, text, size = round_trip((lib, made), (lib, decoded))
        if failed == "compress":
            print(f"{name}: compress on {where(made)}: {outcome(rc, text)}")
        else:
            result = "identical" if not failed else outcome(rc, text)
            print(f"{name}: {size}-byte archive made {where(made)}, decoded on {where(decoded)}: {result}")
        same = same and not failed
    return same


def check_across(other_lib: str) -> bool:
    """Archives of one build decoded by the other on this CPU: both must be refused."""
    refused = True
    for maker, made_lib, reader, read_lib in (("other", other_lib, "pinned", None), ("pinned", None, "other", other_lib)):
        failed, rc, text, _ = round_trip((made_lib, False), (read_lib, False))
        if failed == "compress":
            print(f"{maker} build's archive: compress failed: {text[:200]}")
        else:
            print(f"{maker} build's archive decoded by the {reader} build here: "
                  + ("DECODED" if not failed else f"refused: {text[:400]}"))
        refused = refused and failed == "decompress"
    return refused


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--other-lib", help="another llama-cpp-python build's llama_cpp/lib folder (expected to differ)")
    ap.add_argument("--probe-only", action="store_true", help="skip the (slow) archive rows")
    args = ap.parse_args()
    if not shutil.which("qemu-x86_64"):
        print("qemu-x86_64 not found (Debian: apt-get install qemu-user)")
        return 2
    pinned_ok = check_build("pinned build", None, not args.probe_only)
    other_differs = True
    if args.other_lib:
        other_differs = not check_build("other build", args.other_lib, not args.probe_only)
        if not args.probe_only:
            other_differs = check_across(args.other_lib) and other_differs
    print("PASS" if pinned_ok and other_differs else "FAIL")
    return 0 if pinned_ok and other_differs else 1


if __name__ == "__main__":
    raise SystemExit(main())
