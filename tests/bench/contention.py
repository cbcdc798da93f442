"""nacrith's speed when other processes compete for the cores.

Usage: python tests/bench/contention.py FILE [--bytes N] [--seconds S] [--threads T]
                                              [--op decompress|compress] [--repeat R]
                                              [--scenarios quiet,hog,pair]

Compresses the first N bytes of FILE (default 4,000: one stream) once, then times, in fresh
processes that each load the model first and start together, how many symbols per second
``Codec.decompress`` (or ``compress``) gets through in S seconds (default 20) of:

* ``quiet``: one nacrith process alone;
* ``hog``: one nacrith process beside one plain CPU-bound process (a Python busy loop);
* ``pair``: two nacrith processes at once (each figure is one process's own speed).

Each line gives symbols/s and the ratio to the quiet speed of the same round: a fair share is
about 1.0 of what one core gives beside the hog and 0.5 in the pair (both on 2 cores).  The
thread count is nacrith's default unless ``--threads`` is given; environment variables
(``GOMP_SPINCOUNT``, ``NACRITH_ADAPTIVE_THREADS``) pass through to the processes.  The load
average before each round is printed, because on a shared machine other work skews every
figure: repeat (``--repeat``) and compare rounds.  "others" is the cores that processes
outside the run kept busy on average from its start (model loads included) to its end: the
machine's busy time less the run's own.  ``--wait-quiet S`` waits up
to S seconds before each run for an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class _TimeUp(Exception):
    pass


def worker(archive: str, warm: str, seconds: float, threads: int, op: str, source: str) -> None:
    """Load the model, say "ready", wait for a line on stdin, then code for ``seconds``."""
    sys.path.insert(0, str(ROOT))
    import nacrith

    codec = nacrith.Codec(threads=threads or None)
    blob, warm_blob = Path(archive).read_bytes(), Path(warm).read_bytes()
    text = Path(source).read_bytes() if op == "compress" else b""
    codec.decompress(warm_blob)  # model, context and compiled code ready before the clock runs
    try:
        from nacrith import threads as _threads  # calls per thread count, where nacrith adapts it
    except ImportError:
        _threads = None
    before = _threads.stats() if _threads else {}
    print("ready", flush=True)
    sys.stdin.readline()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if time.perf_counter() >= deadline:
            raise _TimeUp

    try:
        while True:
            if op == "compress":
                codec.compress(text, progress=progress, fallback=False)
            else:
                codec.decompress(blob, progress=progress)
    except _TimeUp:
        pass
    elapsed = time.perf_counter() - start
    eng = next(iter(codec.loaded._engines.values()), None) if hasattr(codec.loaded, "_engines") else None
    report = {"symbols": done, "seconds": elapsed, "threads": getattr(eng, "threads", threads)}
    if _threads:
        after = _threads.stats()
        report["thread_stats"] = {t: n - before.get(t, 0) for t, n in after.items() if n > before.get(t, 0)}
    print(json.dumps(report), flush=True)


def _spawn_workers(n: int, args, archive: str, warm: str, source: str) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", archive, warm, str(args.seconds), str(args.threads or 0),
             args.op, source],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for _ in range(n)
    ]
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"worker failed to start: {line!r}")
    return procs


def run(n: int, hog: bool, args, archive: str, warm: str, source: str) -> list[dict]:
    procs = _spawn_workers(n, args, archive, warm, source)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
    try:
        if busy:
            time.sleep(0.5)  # the hog is running before the clock starts
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=args.seconds * 10 + 120)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        if busy:
            busy.kill()
            busy.wait()
        for p in procs:
            if p.poll() is None:
                p.kill()


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


def _children_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_quiet(limit: float) -> float:
    """Wait up to ``limit`` seconds for two seconds in a row with under 0.2 cores busy; the
    cores busy in the last second."""
    deadline, calm, busy = time.monotonic() + limit, 0, 0.0
    while True:
        before = _busy_seconds()
        time.sleep(1.0)
        busy = _busy_seconds() - before
        calm = calm + 1 if busy < 0.2 else 0
        if calm >= 2 or time.monotonic() >= deadline:
            return busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--bytes", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=0, help="llama.cpp threads (default: nacrith's default)")
    ap.add_argument("--op", choices=("decompress", "compress"), default="decompress")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--scenarios", default="quiet,hog,pair")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each run, wait up to S seconds for the machine to be idle")
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args() if "--worker" not in sys.argv else None
    if args is None:
        i = sys.argv.index("--worker")
        a = sys.argv[i + 1 : i + 7]
        worker(a[0], a[1], float(a[2]), int(a[3]), a[4], a[5])
        return

    sys.path.insert(0, str(ROOT))
    import nacrith

    data = Path(args.file).read_bytes()[: args.bytes]
    codec = nacrith.Codec(threads=args.threads or None)
    with tempfile.TemporaryDirectory() as tmp:
        archive, warm, source = (os.path.join(tmp, name) for name in ("a.nc", "w.nc", "src"))
        Path(archive).write_bytes(codec.compress(data, fallback=False))
        Path(warm).write_bytes(codec.compress(data[:100], fallback=False))
        Path(source).write_bytes(data)
        del codec
        env = {k: os.environ[k] for k in os.environ if k.startswith(("GOMP_", "OMP_", "NACRITH_"))}
        print(f"{args.file}: first {len(data)} bytes, {args.op}, {args.seconds:g} s per run, "
              f"threads {args.threads or 'default'}, cores {len(os.sched_getaffinity(0))}, env {env or '{}'}")
        scenarios = args.scenarios.split(",")
        for r in range(args.repeat):
            quiet = None
            for name in scenarios:
                if args.wait_quiet:
                    wait_quiet(args.wait_quiet)
                load = os.getloadavg()[0]
                n, hog = {"quiet": (1, False), "hog": (1, True), "pair": (2, False)}[name]
                busy, mine, wall = _busy_seconds(), _children_seconds(), time.monotonic()
                results = run(n, hog, args, archive, warm, source)
                # Cores kept busy by processes other than this run's (other users' work).
                others = ((_busy_seconds() - busy) - (_children_seconds() - mine)) / (time.monotonic() - wall)
                rates = [x["symbols"] / x["seconds"] for x in results]
                if name == "quiet":
                    quiet = rates[0]
                ratio = " ".join(f"{v / quiet:.2f}" for v in rates) if quiet else "-"
                stats = [x.get("thread_stats") for x in results if x.get("thread_stats")]
                print(f"  round {r + 1} {name:5s} load {load:4.2f}, others {max(0.0, others):4.2f} cores: "
                      + " ".join(f"{v:6.1f}" for v in rates)
                      + f" symbols/s, ratio to quiet {ratio}, threads {[x['threads'] for x in results]}"
                      + (f" {stats}" if stats else ""), flush=True)


if __name__ == "__main__":
    main()
