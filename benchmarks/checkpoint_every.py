"""Memory and time of checkpoint_every (issue 17) on the native backend. Standalone:

    python benchmarks/checkpoint_every.py [--only targets,long,table] [--threads N] [--repeats R]
                                          [--json FILE]

targets: one LSTM and one GRU layer, T=20000, B=16, I=64, H=256, float32, one training forward +
    backward with checkpoint_every=None and "sqrt": the peak growth of the process (beyond x, the
    weights and dy) and the time; targets "sqrt" <= 1/4 of the peak growth and <= 1.4x the time.
long: an LSTM training step at T=10**6, B=4, I=8, H=128 with "sqrt" (keeping everything would
    need ~15 GB for the cache alone): its peak growth, and how much of it y and dx are.
table: peak growth and time over k for an LSTM at T=4000, B=16, I=64, H=256 (benchmarks/README.md).

Each peak is measured in a fresh interpreter (VmHWM after /proc/self/clear_refs, plus a sampler
thread), one at a time; times are medians of calls taken alternately (A/B/A/B) in one process.
Exits 1 if the checkpointed gradients differ from the full-saving ones in any bit.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

import fastrnn
from fastrnn import functional as F

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1}


def problem(cell, T, B, I, H, seed=0):
    rng = np.random.default_rng(seed)
    G, k = GATES[cell], 1 / np.sqrt(H)

    def u(*s):
        return rng.uniform(-k, k, s).astype(np.float32)

    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    return x, (u(G * H, I), u(G * H, H), u(G * H), u(G * H)), dy


def step(cell, x, w, dy, every):
    y, h, c, cache = F.forward(cell, x, None, None, *w, checkpoint_every=every, backend="native")
    grads = F.backward(cache, dy, None, None)
    return y, grads


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def child_peak(cell, T, B, I, H, every):
    """In a fresh interpreter: (peak growth in bytes, seconds) of one training step."""
    x, w, dy = problem(cell, T, B, I, H)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _rss()
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(_rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    try:
        y, grads = step(cell, x, w, dy, every)
    finally:
        seconds = time.perf_counter() - t0
        stop.set()
        sampler.join()
    return max([_hwm()] + samples) - base, seconds


def peak(cell, T, B, I, H, every, threads):
    arg = "none" if every is None else str(every)
    code = (
        f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
        "import fastrnn, checkpoint_every as c; "
        f"fastrnn.set_num_threads({threads}); "
        f"e = {arg!r}; e = None if e == 'none' else (e if e == 'sqrt' else int(e)); "
        f"print(*c.child_peak({cell!r}, {T}, {B}, {I}, {H}, e))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown, seconds = out.stdout.split()
    return int(grown), float(seconds)


def alternate_times(cell, T, B, I, H, settings, repeats):
    """Median seconds of one training step per setting, taken A/B/A/B; checks every setting's
    outputs and gradients are bitwise those of the first."""
    x, w, dy = problem(cell, T, B, I, H)
    times = {s: [] for s in settings}
    reference = None
    for r in range(repeats):
        for s in settings:
            t0 = time.perf_counter()
            y, grads = step(cell, x, w, dy, s)
            times[s].append(time.perf_counter() - t0)
            if r == 0:
                got = [y] + [g for g in grads if g is not None]
                if reference is None:
                    reference = got
                elif not all(np.array_equal(a, b) for a, b in zip(got, reference)):
                    sys.exit(f"FAIL: {cell} checkpoint_every={s!r} differs from {settings[0]!r}")
            del y, grads
    return {s: statistics.median(v) for s, v in times.items()}


def mib(n):
    return n / 2**20


def targets(args, out):
    T, B, I, H = 20000, 16, 64, 256
    for cell in ("lstm", "gru"):
        full, _ = peak(cell, T, B, I, H, None, args.threads)
        sqrt, _ = peak(cell, T, B, I, H, "sqrt", args.threads)
        t = alternate_times(cell, T, B, I, H, [None, "sqrt"], args.repeats)
        mem_ratio, time_ratio = sqrt / full, t["sqrt"] / t[None]
        print(
            f"{cell} T={T} B={B} I={I} H={H}: peak growth {mib(full):.0f} -> {mib(sqrt):.0f} MiB "
            f"({mem_ratio:.3f}, target <= 0.25: {'PASS' if mem_ratio <= 0.25 else 'MISS'}); "
            f"time {t[None]:.2f} -> {t['sqrt']:.2f} s ({time_ratio:.2f}x, target <= 1.4: "
            f"{'PASS' if time_ratio <= 1.4 else 'MISS'})",
            flush=True,
        )
        out[f"targets/{cell}"] = dict(
            peak_full=full, peak_sqrt=sqrt, time_full=t[None], time_sqrt=t["sqrt"], threads=args.threads
        )


def long(args, out):
    T, B, I, H = 10**6, 4, 8, 128
    grown, seconds = peak("lstm", T, B, I, H, "sqrt", args.threads)
    outputs = 4 * T * B * (H + I)  # y and dx, float32
    print(
        f"lstm T={T} B={B} I={I} H={H} sqrt: peak growth {mib(grown):.0f} MiB, of which y + dx "
        f"{mib(outputs):.0f} MiB: {mib(grown - outputs):.0f} MiB besides; {seconds:.1f} s",
        flush=True,
    )
    out["long"] = dict(peak=grown, outputs=outputs, seconds=seconds, threads=args.threads)


def table(args, out):
    T, B, I, H = 4000, 16, 64, 256
    ks = [None, 10, 32, 64, "sqrt", 250, 1000]
    t = alternate_times("lstm", T, B, I, H, ks, args.repeats)
    print(f"lstm T={T} B={B} I={I} H={H} float32, {args.threads} thread(s)")
    print("| checkpoint_every | k | peak growth MiB | vs None | time s | vs None |")
    print("|---|---|---|---|---|---|")
    rows = []
    for k in ks:
        grown, _ = peak("lstm", T, B, I, H, k, args.threads)
        rows.append((k, grown))
    base = rows[0][1]
    for k, grown in rows:
        kk = "-" if k is None else F.steps_per_checkpoint(k, T)
        print(
            f"| {k!r} | {kk} | {mib(grown):.0f} | {grown / base:.2f} | {t[k]:.2f} | {t[k] / t[None]:.2f} |",
            flush=True,
        )
        out[f"table/{k}"] = dict(peak=grown, time=t[k], threads=args.threads)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="targets,long,table")
    ap.add_argument("--threads", type=int, default=fastrnn.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    fastrnn.set_num_threads(args.threads)
    out = {}
    sections = {"targets": targets, "long": long, "table": table}
    for name in args.only.split(","):
        if name not in sections:
            ap.error(f"--only: unknown section {name!r}; choose from {', '.join(sections)}")
        sections[name](args, out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
