"""Command line: ``python -m fastrnn info`` and ``python -m fastrnn bench``."""

import argparse
import json
import sys


def _csv(choices, what):
    """An argparse type: a comma-separated list (repeatable flags add up), each one of ``choices``."""
    def parse(text):
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"empty list of {what}")
        for v in values:
            if v not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {what[:-1]} {v!r}; choose from {', '.join(choices)}")
        return values
    return parse


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _nonnegative_float(text):
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return x


def _flatten(lists, default):
    if not lists:
        return list(default)
    out = []
    for values in lists:
        out += [v for v in values if v not in out]
    return out


def _parser():
    from . import __version__
    from .bench import CELLS, DEFAULT_CELLS, MODES, SHAPES

    parser = argparse.ArgumentParser(
        prog="python -m fastrnn",
        description="fastrnn: fast CPU RNN, LSTM and GRU (C++ forward and BPTT kernels behind a "
                    "NumPy API).")
    parser.add_argument("--version", action="version", version=f"fastrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser(
        "info", help="show version, backend, compiled CPU paths and thread count",
        description="Prints fastrnn.info(), one key per line.")

    shapes = "; ".join(f"{name}: {s}" for name, s in SHAPES.items())
    bench = sub.add_parser(
        "bench", help="time native vs numpy vs PyTorch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Times one layer, one direction (fastrnn.functional) for each cell, shape and mode,\n"
            "on each implementation: native (the C++ kernels, if built), numpy (the reference\n"
            "backend) and torch (torch.nn.RNN/LSTM/GRU with the same weights, if installed).\n"
            "Modes: 'forward' (inference; torch under no_grad) and 'forward+backward' (training\n"
            "forward, then backward with random dy and dh_n; all gradients computed).\n"
            "Every implementation is first checked against numpy's outputs and gradients.\n\n"
            f"Shapes: {shapes}.\n\n"
            "The table gives the median time of each entry in milliseconds and the ratios\n"
            "numpy/native and torch/native: a ratio > 1 means native is faster. Entries get\n"
            "up to --repeat timed calls after one warm-up, fewer when they are slow (--budget)."),
        epilog="example: python -m fastrnn bench --cells lstm,gru --shapes small --threads 1")
    bench.add_argument("--cells", type=_csv(CELLS, "cells"), action="append", metavar="LIST",
                       help=f"comma-separated cells from {', '.join(CELLS)} "
                            f"(default: {','.join(DEFAULT_CELLS)})")
    bench.add_argument("--shapes", type=_csv(tuple(SHAPES), "shapes"), action="append",
                       metavar="LIST", help=f"comma-separated shapes from {','.join(SHAPES)} "
                                            "(default: all)")
    bench.add_argument("--modes", type=_csv(MODES, "modes"), action="append", metavar="LIST",
                       help=f"comma-separated modes from {','.join(MODES)} (default: both)")
    bench.add_argument("--repeat", type=_positive, default=20, metavar="N",
                       help="at most N timed calls per entry after the warm-up (default: 20)")
    bench.add_argument("--budget", type=_nonnegative_float, default=1.0, metavar="SECONDS",
                       help="time the timed calls of one entry may take; slow entries get fewer "
                            "calls, never below 1 (default: 1.0)")
    bench.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="floating-point type (default: float32)")
    bench.add_argument("--threads", type=_positive, metavar="N",
                       help="threads for the native kernels and for torch (default: "
                            "fastrnn.get_num_threads(): FASTRNN_NUM_THREADS or fastrnn's default); "
                            "numpy's BLAS keeps its own setting (OMP_NUM_THREADS)")
    bench.add_argument("--stat", choices=("median", "min"), default="median",
                       help="which statistic of the timed calls the table shows (default: median)")
    bench.add_argument("--no-numpy", action="store_true",
                       help="do not time the numpy backend (it is still the correctness reference)")
    bench.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    bench.add_argument("--no-native", action="store_true", help="do not time the native backend")
    bench.add_argument("--seed", type=int, default=0, help="seed of the random problems (default: 0)")
    bench.add_argument("--json", metavar="PATH",
                       help="also write the environment, the checks and every timing to PATH as JSON")
    return parser


def _info():
    from .bench import environment
    env = environment()
    width = max(len(k) for k in env)
    for key, value in env.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) if value else "(none)"
        elif value is None:
            value = "-"
        print(f"{key.ljust(width)}  {value}")
    return 0


def _bench(args):
    from . import bench

    cells = _flatten(args.cells, bench.DEFAULT_CELLS)
    shapes = _flatten(args.shapes, bench.SHAPES)
    modes = _flatten(args.modes, bench.MODES)
    requested = [i for i, off in (("native", args.no_native), ("numpy", args.no_numpy),
                                  ("torch", args.no_torch)) if not off]
    if not requested:
        print("nothing to time: every implementation was excluded", file=sys.stderr)
        return 2
    available = bench.available_implementations()
    impls = [i for i in requested if i in available]
    if not impls:
        print(f"nothing to time: of {', '.join(requested)}, none is available here", file=sys.stderr)
        return 2

    threads = bench.configure_threads(args.threads)
    env = bench.environment()
    print(f"fastrnn {env['version']}  numpy {env['numpy']}  torch {env['torch'] or 'not installed'}"
          f"  python {env['python']}")
    if env["native_available"]:
        paths = ", ".join(env["cpu_paths"]) or "?"
        print(f"native: available (cpu path {env['cpu_path']}; compiled: {paths})")
    else:
        print(f"native: unavailable ({env['native_error']}); its column reads n/a")
    print(f"threads {threads}  dtype {args.dtype}  repeat <= {args.repeat}  "
          f"budget {args.budget:g} s/entry  stat {args.stat}")

    checked = []

    def on_check(c):
        checked.append(c)

    others = [i for i in impls if i != "numpy"]
    if others:
        print(f"checking {' and '.join(others)} against numpy (outputs and gradients) ...",
              flush=True)
    else:
        print("nothing to check against numpy (only numpy runs)")

    columns = bench.table_columns(requested)
    stat = f"{args.stat}_ms"
    pending = {}
    header_printed = []

    def on_result(r):
        if not header_printed:
            if others:
                worst = max((c["max_rel_diff"] for c in checked), default=0.0)
                (rtol, _), (grtol, _) = bench.tolerances(args.dtype)
                verb = "agree" if len(others) > 1 else "agrees"
                print(f"ok: {' and '.join(others)} {verb} with numpy on {len(checked)} problems "
                      f"(y/h_n/c_n rtol {rtol:g}, gradients rtol {grtol:g}; "
                      f"largest difference {worst:.1e} of the array's max)")
            print()
            print(bench.format_header(columns), flush=True)
            header_printed.append(True)
        key = (r["cell"], r["shape"], r["mode"])
        pending.setdefault(key, []).append(r)
        if len(pending[key]) == len(impls):
            row = bench.summarize(pending.pop(key), stat=stat)[0]
            print(bench.format_row(row, columns), flush=True)

    try:
        results = bench.run_benchmarks(
            cells=cells, shapes=shapes, modes=modes, impls=impls, dtype=args.dtype,
            repeat=args.repeat, budget_s=args.budget, threads=args.threads, seed=args.seed,
            on_check=on_check, on_result=on_result)
    except bench.AgreementError as exc:
        print(f"error: results disagree with the numpy reference, not timing them:\n  {exc}",
              file=sys.stderr)
        return 1
    print()
    print("times in ms (" + args.stat + " of the timed calls); x/native > 1: native is faster")
    if args.json:
        payload = {"environment": env,
                   "config": {"cells": cells, "shapes": shapes, "modes": modes, "impls": impls,
                              "dtype": args.dtype, "repeat": args.repeat, "budget_s": args.budget,
                              "threads": threads, "seed": args.seed},
                   "shapes": {name: vars(s) for name, s in bench.SHAPES.items() if name in shapes},
                   "checks": checked, "results": results,
                   "rows": bench.summarize(results, stat=stat)}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "info":
        return _info()
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
