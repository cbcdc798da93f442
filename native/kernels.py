"""Which kernel set the loaded llama.cpp runs, and whether it is nacrith's pinned one.

llama.cpp chooses its CPU kernels when it is compiled (AVX2, AVX-512, VNNI, NEON ...), and
different kernels give different logits.  ``native/install.sh`` builds llama-cpp-python with
the pinned set of ``native/kernels.cmake``; this module recognises that build from the
features llama.cpp reports (``llama_print_system_info``), so that nacrith can refuse to write
archives that only this machine could decode (unless asked to: ``--native``).

Run as a script (``python native/kernels.py``) it prints the loaded build's features and
exits 0 when they are the pinned set; install.sh uses that before importing nacrith.
"""

from __future__ import annotations

import platform

#: The portable kernel set of each machine architecture, and the llama.cpp features a build
#: of it reports: exactly these, no more (an extra AVX-512 or VNNI kernel changes the numbers).
#: Features that select no float kernel (LLAMAFILE, OPENMP, REPACK) are not compared.
PINNED = {
    "x86_64": ("x86-64-v3", frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"})),
}
#: What an archive records when it was made with any other kernels.
MACHINE_BOUND = "machine-bound"
_NOT_KERNELS = frozenset({"LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE"})


def features(system_info: str) -> frozenset[str]:
    """The enabled features in ``llama_print_system_info``'s report.

    ``"CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | ..."`` gives ``{"SSE3", "AVX"}``.
    """
    enabled = set()
    for item in system_info.replace("\n", "|").split("|"):
        name, eq, value = item.rpartition("=")
        name = name.split(":")[-1].strip()
        if eq and name and value.strip() == "1":
            enabled.add(name)
    return frozenset(enabled)


def kernel_set(enabled: frozenset[str], machine: str | None = None) -> str:
    """The pinned kernel set's name if ``enabled`` is exactly it on ``machine``, else MACHINE_BOUND."""
    pinned = PINNED.get(machine or platform.machine())
    if pinned and enabled - _NOT_KERNELS == pinned[1]:
        return pinned[0]
    return MACHINE_BOUND


def loaded_system_info() -> str:
    """llama.cpp's feature report of the library llama-cpp-python loaded."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def main() -> int:
    info = loaded_system_info()
    name = kernel_set(features(info))
    print(f"{name}: {info}")
    return 0 if name != MACHINE_BOUND else 1


if __name__ == "__main__":
    raise SystemExit(main())
