"""Native 2 threads against 1 thread (issue 12's thread target), both timed in one process.

    python -m benchmarks.threads [--cells lstm,gru] [--shapes S1,...,S5] [--cpu-path avx2]
                                 [--rounds 6] [--stat min|median] [--json FILE]

For every cell and shape, forward (inference) and forward+backward are timed on 1 and on 2 threads
in alternating rounds (1, 2, 1, 2, ...), so that a busy moment of the machine slows both alike; two
grid runs minutes apart (`--grid --threads 1` then `--threads 2`) differed by more than the effect
measured. Each round first makes one untimed call on its thread count (waking the team), then
times calls for at least --batch seconds (their median is the round's time); the ratio is of the
fastest rounds (1-thread time / 2-thread time), or of the rounds' medians with --stat median. On a
shared VM a busy spell slows a whole round, more often one with two threads (either core may be
taken): the fastest round of each is the nearest to the machine's own speed. Targets, PASS/MISS
next to each row:

- S4-S5 (compute-bound): >= 1.8x, forward and forward+backward;
- every shape: not slower on 2 threads, read as >= 0.98x (the rounds' spread on an idle machine
  is about 2%).

Run on an otherwise idle machine with at least 2 cores; OPENBLAS_NUM_THREADS does not matter here
(only the native backend runs).
"""

import argparse
import json
import statistics
import sys
import time

from fastrnn import _native, set_num_threads

from . import harness

FAST_SHAPES = ("S4", "S5")
FAST_TARGET = 1.8
NOT_SLOWER = 0.98


def time_batch(run, seconds):
    """Median seconds per call over calls taking at least `seconds` in all (at least 3)."""
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(cell, shape, mode, rounds, batch, stat="min"):
    run = harness.make_runner("native", harness.make_problem(cell, shape), mode)
    per_threads = {1: [], 2: []}
    for _ in range(rounds):
        for n in (1, 2):
            set_num_threads(n)
            run()
            per_threads[n].append(time_batch(run, batch))
    pick = min if stat == "min" else statistics.median
    one, two = (pick(per_threads[n]) for n in (1, 2))
    return {"ms_1": one * 1e3, "ms_2": two * 1e3, "ratio": one / two}


def verdicts(shape, ratio):
    out = {"not_slower": "PASS" if ratio >= NOT_SLOWER else "MISS"}
    if shape in FAST_SHAPES:
        out["scaling"] = "PASS" if ratio >= FAST_TARGET else "MISS"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default=",".join(harness.CELLS))
    ap.add_argument("--shapes", default="S1,S2,S3,S4,S5")
    ap.add_argument("--modes", default=",".join(harness.MODES))
    ap.add_argument("--cpu-path", choices=_native.compiled_paths())
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batch", type=float, default=0.05, help="seconds of calls per round")
    ap.add_argument("--stat", choices=("min", "median"), default="min", help="over the rounds")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    cells, shapes, modes = (v.split(",") for v in (args.cells, args.shapes, args.modes))
    for what, values, allowed in (
        ("cell", cells, harness.CELLS),
        ("shape", shapes, harness.GRID_SHAPES),
        ("mode", modes, harness.MODES),
    ):
        bad = [v for v in values if v not in allowed]
        if bad:
            ap.error(f"unknown {what} {bad[0]!r}; choose from {', '.join(allowed)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.cpu_path:
        _native.set_cpu_path(args.cpu_path)
    print(f"cpu path {_native.active_path()}; 2 threads over 1, {args.stat} of {args.rounds} rounds")
    rows, misses = [], 0
    for shape in shapes:
        for cell in cells:
            for mode in modes:
                r = measure(cell, shape, mode, args.rounds, args.batch, args.stat)
                r.update(cell=cell, shape=shape, mode=mode, targets=verdicts(shape, r["ratio"]))
                misses += list(r["targets"].values()).count("MISS")
                rows.append(r)
                marks = "  ".join(f"{k} {v}" for k, v in r["targets"].items())
                print(
                    f"{cell:9s} {shape} {mode:17s} 1 thread {r['ms_1']:9.3f} ms  "
                    f"2 threads {r['ms_2']:9.3f} ms  {r['ratio']:.2f}x  {marks}",
                    flush=True,
                )
    print(f"{misses} target(s) missed")
    if args.json:
        with open(args.json, "w") as f:
            out = {"cpu_path": _native.active_path(), "rounds": args.rounds, "stat": args.stat, "rows": rows}
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
