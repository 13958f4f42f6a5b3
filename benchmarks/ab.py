"""Interleaved A/B timing of two builds of the extension: ``python -m benchmarks.ab A.so B.so``.

Each round runs every build once, in its own fresh interpreter (the module that loads first wins,
so two builds cannot share a process), in A, B, A, B... order, so that a busy machine slows both
alike; the ratio of their medians over the rounds is what to quote, not either time. Each process
times the native backend on the same problems (harness.make_problem) with the same repeat.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys

from fastrnn._argtypes import positive_int

_CHILD = r"""
import importlib.util, json, sys
so, path, cells, shapes, modes, repeat, threads = sys.argv[1:8]
spec = importlib.util.spec_from_file_location("fastrnn._native", so)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["fastrnn._native"] = module  # before fastrnn is imported: its backend takes this build
from benchmarks import harness
if path:
    module.set_cpu_path(path)
harness.configure_threads(int(threads))
out = {}
for cell in cells.split(","):
    for shape in shapes.split(","):
        problem = harness.make_problem(cell, shape)
        for mode in modes.split(","):
            t = harness.time_function(harness.make_runner("native", problem, mode), repeat=int(repeat))
            out[f"{cell} {shape} {mode}"] = [t["median_ms"], t["min_ms"]]
print(json.dumps(out))
"""


def _run(so, args):
    argv = [sys.executable, "-c", _CHILD, so, args.path or "", args.cells, args.shapes, args.modes]
    argv += [str(args.repeat), str(args.threads)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=root, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{so}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="build A: a path to an _native extension file")
    ap.add_argument("b", help="build B")
    ap.add_argument("--cells", default="lstm", help="comma-separated cells (default: lstm)")
    ap.add_argument("--shapes", default="S2,S3,S4,S5", help="comma-separated shapes (default: S2-S5)")
    ap.add_argument("--modes", default="forward,forward+backward", help="comma-separated modes")
    ap.add_argument("--path", help="force this cpu path in both (avx512, avx2, portable)")
    ap.add_argument("--rounds", type=positive_int, default=3, help="A/B rounds (default: 3)")
    ap.add_argument("--repeat", type=positive_int, default=10, help="timed calls per entry")
    ap.add_argument("--threads", type=positive_int, default=1, help="threads (default: 1)")
    args = ap.parse_args(argv)
    for so in (args.a, args.b):
        if importlib.util.spec_from_file_location("fastrnn._native", so) is None:
            ap.error(f"not an extension file: {so}")
    times = {"a": [], "b": []}
    for r in range(args.rounds):
        for key, so in (("a", args.a), ("b", args.b)):
            times[key].append(_run(so, args))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(
        f"{'entry':34s} {'A med':>9s} {'B med':>9s} {'A/B':>7s} {'A min':>9s} {'B min':>9s} {'A/B':>7s}"
        f"  (ms; median of {args.rounds} rounds' medians, fastest call)"
    )
    for entry in times["a"][0]:
        med = [statistics.median(t[entry][0] for t in times[k]) for k in ("a", "b")]
        low = [min(t[entry][1] for t in times[k]) for k in ("a", "b")]
        print(
            f"{entry:34s} {med[0]:9.3f} {med[1]:9.3f} {med[0] / med[1]:6.3f}x "
            f"{low[0]:9.3f} {low[1]:9.3f} {low[0] / low[1]:6.3f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
