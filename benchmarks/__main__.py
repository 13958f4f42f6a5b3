"""The benchmark grid's command line: ``python -m benchmarks`` (from the repository root).

Sections: the functional table and the layers with variable lengths (the default), and the
performance grid with its targets (``--grid``); ``--json`` keeps everything for report.py.
"""

import argparse
import json
import subprocess
import sys

from fastrnn import __version__
from fastrnn._argtypes import comma_list, merged_lists, nonnegative_number, positive_int
from fastrnn._backend import native_module
from fastrnn._cli import output_path

from . import grid, harness, layers
from .harness import ALL_SHAPES, CELLS, DEFAULT_CELLS, MODES, SHAPES
from .layers import LAYER_CELLS, LAYER_SHAPE, LENGTHS_TARGET


def _parser():
    def shape_list(shapes):
        return "\n".join(f"  {name:7s} {s}" for name, s in shapes.items())

    bench = argparse.ArgumentParser(
        prog="python -m benchmarks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Times native (the C++ kernels, if built), numpy (the reference backend), torch\n"
            "(torch.nn.RNN/LSTM/GRU with the same weights, if installed) and ort (ONNX Runtime,\n"
            "one ONNX RNN/LSTM/GRU node, forward only, if onnx and onnxruntime are installed)\n"
            "on the same problems.\n"
            "Modes: 'forward' (inference: training=False; torch under no_grad) and\n"
            "'forward+backward' (training forward, then backward with random dy and dh_n; all\n"
            "gradients computed). Every implementation is first checked against numpy's outputs\n"
            "and gradients; a disagreement stops the run before anything is timed.\n\n"
            "Sections (the default runs the first two; --grid and --layers pick sections):\n"
            "  functional  one layer, one direction (fastrnn.functional); default cells\n"
            f"              {','.join(DEFAULT_CELLS)}, shapes {','.join(SHAPES)}\n"
            f"  layers      fastrnn.LSTM/GRU layers, 2 layers, bidirectional, with variable\n"
            f"              lengths (seeded, in [T/2, T], unsorted, one == T); default cells\n"
            f"              {','.join(LAYER_CELLS)}, shape {LAYER_SHAPE}. torch runs\n"
            "              pack_padded_sequence(enforce_sorted=False) -> module ->\n"
            "              pad_packed_sequence; 'native_padded' is the native layer without\n"
            "              lengths on the same batch, and lengths/padded is checked against\n"
            f"              its target (<= {LENGTHS_TARGET:g}x)\n"
            "  grid        the performance grid: every cell on S1-S6 (S6: rnn cells\n"
            "              only), each row with its targets and PASS/MISS: forward vs the\n"
            "              faster of torch and ort, forward+backward vs torch, S4-S5 vs this\n"
            "              core's FMA peak (measured in the same run), and native bitwise\n"
            "              identical on 1 and 2 threads\n\n"
            f"Shapes (T, B, I, H; any of them for any section with --shapes):\n"
            f"{shape_list(ALL_SHAPES)}\n\n"
            "Tables give the median time of each entry in milliseconds and the ratios\n"
            "numpy/native and torch/native: a ratio > 1 means native is faster. Entries get\n"
            "up to --repeat timed calls after one warm-up, fewer when they are slow (--budget)."
        ),
        epilog="examples (from the repository root):\n"
        "  python -m benchmarks --cells lstm,gru --shapes small --threads 1\n"
        "  python -m benchmarks --layers\n"
        "  python -m benchmarks --grid --threads 1 --json grid.json\n"
        "  python -m benchmarks --grid --cells lstm --shapes S1",
    )
    bench.add_argument("--version", action="version", version=f"fastrnn {__version__}")
    what = bench.add_argument_group("sections")
    what.add_argument(
        "--grid",
        action="store_true",
        help=f"run the performance grid ({','.join(grid.GRID_SHAPES)}, all cells)",
    )
    what.add_argument(
        "--layers", action="store_true", help="run the 2-layer bidirectional layers with variable lengths"
    )
    what.add_argument(
        "--no-layers", action="store_true", help="without --grid/--layers: run only the functional table"
    )
    bench.add_argument(
        "--cells",
        type=comma_list(CELLS, "cells"),
        action="append",
        metavar="LIST",
        help=f"comma-separated cells from {', '.join(CELLS)} (default: per section)",
    )
    bench.add_argument(
        "--shapes",
        type=comma_list(tuple(ALL_SHAPES), "shapes"),
        action="append",
        metavar="LIST",
        help=f"comma-separated shapes from {','.join(ALL_SHAPES)} (default: per section)",
    )
    bench.add_argument(
        "--modes",
        type=comma_list(MODES, "modes"),
        action="append",
        metavar="LIST",
        help=f"comma-separated modes from {','.join(MODES)} (default: both)",
    )
    bench.add_argument(
        "--repeat",
        type=positive_int,
        default=20,
        metavar="N",
        help="at most N timed calls per entry after the warm-up (default: 20)",
    )
    bench.add_argument(
        "--budget",
        type=nonnegative_number,
        default=1.0,
        metavar="SECONDS",
        help="time the timed calls of one entry may take; slow entries get fewer "
        "calls, never below 1 (default: 1.0)",
    )
    bench.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="floating-point type (default: float32; the grid's targets are for float32)",
    )
    bench.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="threads for the native kernels and for torch (default: "
        "fastrnn.get_num_threads(): FASTRNN_NUM_THREADS or fastrnn's default), "
        "and for numpy's BLAS when threadpoolctl is installed (otherwise "
        "numpy's BLAS uses what OPENBLAS_NUM_THREADS/OMP_NUM_THREADS say)",
    )
    bench.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="which statistic of the timed calls the tables show and the targets use (default: median)",
    )
    bench.add_argument(
        "--no-numpy",
        action="store_true",
        help="do not time the numpy backend (it is still the correctness reference)",
    )
    bench.add_argument(
        "--no-numpy-large",
        action="store_true",
        help="in the grid, do not time numpy on S4-S6 (its slowest entries; it "
        "still computes the reference the checks use)",
    )
    bench.add_argument(
        "--cpu-path",
        choices=("avx512", "avx2", "portable"),
        help="force the native kernels' instruction-set path (default: the best this CPU runs); "
        "the FMA peak is measured on the same path",
    )
    bench.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    bench.add_argument("--no-ort", action="store_true", help="do not time ONNX Runtime")
    bench.add_argument("--no-native", action="store_true", help="do not time the native backend")
    bench.add_argument(
        "--sgemm-repeat",
        type=positive_int,
        default=10,
        metavar="N",
        help="timed calls of the grid's sgemm measurement (default: 10)",
    )
    bench.add_argument(
        "--peak-probe",
        type=nonnegative_number,
        default=0.02,
        metavar="SECONDS",
        help="grid: measure the FMA peak this long after every round of timed calls, and rate each "
        "row against the peak seen during its own rounds (0: only the peak measured at the start; "
        "default: 0.02)",
    )
    bench.add_argument("--seed", type=int, default=0, help="seed of the random problems (default: 0)")
    bench.add_argument(
        "--json",
        metavar="PATH",
        help="also write the environment, the checks, every timing, the rows and "
        "the targets of every section that ran to PATH as JSON",
    )
    return bench


class _RowPrinter:
    """Prints a table's rows as the timings of each (cell, shape, mode) complete."""

    def __init__(self, columns, expected, summarize):
        self.columns = columns
        self.expected = expected  # result -> how many results its row waits for
        self.summarize = summarize  # list of results -> list with one row
        self.pending = {}
        self.header_printed = False

    def header(self):
        if not self.header_printed:
            print(harness.format_header(self.columns), flush=True)
            self.header_printed = True

    def add(self, r):
        key = (r["cell"], r["shape"], r["mode"])
        self.pending.setdefault(key, []).append(r)
        if len(self.pending[key]) >= self.expected(r):
            row = self.summarize(self.pending.pop(key))[0]
            self.header()
            print(harness.format_row(row, self.columns), flush=True)


def _ok_line(checked, others, dtype):
    worst = max((c["max_rel_diff"] for c in checked), default=0.0)
    (rtol, _), (grtol, _) = harness.tolerances(dtype)
    problems = len({(c["cell"], c["shape"]) for c in checked})
    verb = "agree" if len(others) > 1 else "agrees"
    return (
        f"ok: {', '.join(others)} {verb} with numpy on {problems} "
        f"problem{'s' if problems != 1 else ''}, "
        f"{len(checked)} check{'s' if len(checked) != 1 else ''} (y/h_n/c_n rtol {rtol:g}, "
        f"gradients rtol {grtol:g}; "
        f"largest difference {worst:.1e} of the array's max)"
    )


def _checking_line(others, extra=""):
    if others:
        return f"checking {', '.join(others)} against numpy (outputs and gradients{extra}) ..."
    return "nothing to check against numpy (only numpy runs)"


def _title(text):
    print()
    print(f"== {text} ==")


def _functional_section(args, opts):
    cells = merged_lists(args.cells, harness.DEFAULT_CELLS)
    shapes = merged_lists(args.shapes, harness.SHAPES)
    impls, stat = opts["impls"], opts["stat"]
    _title("functional: one layer, one direction (fastrnn.functional)")
    others = [i for i in impls if i != "numpy"]
    print(_checking_line(others), flush=True)
    checked = []
    printer = _RowPrinter(
        harness.table_columns(opts["requested"]),
        lambda r: len([i for i in impls if harness.modes_of(i, [r["mode"]])]),
        lambda rs: harness.summarize(rs, stat=stat),
    )

    def on_result(r):
        # run_benchmarks checks every problem before it times any: the first result means all
        # checks passed.
        if not printer.header_printed:
            if others:
                print(_ok_line(checked, others, args.dtype))
            print()
            printer.header()
        printer.add(r)

    results = harness.run_benchmarks(
        cells=cells,
        shapes=shapes,
        modes=opts["modes"],
        impls=impls,
        dtype=args.dtype,
        repeat=args.repeat,
        budget_s=args.budget,
        threads=args.threads,
        seed=args.seed,
        on_check=checked.append,
        on_result=on_result,
    )
    return {
        "cells": cells,
        "shapes": {n: vars(harness.ALL_SHAPES[n]) for n in shapes},
        "impls": impls,
        "checks": checked,
        "results": results,
        "rows": harness.summarize(results, stat=stat),
    }


def _layers_section(args, opts):
    cells = merged_lists(args.cells, layers.LAYER_CELLS)
    shapes = merged_lists(args.shapes, (layers.LAYER_SHAPE,))
    stat = opts["stat"]

    # native_padded comes with native.
    def layer_impls(names):
        return [i for i in layers.LAYER_IMPLEMENTATIONS if (i if i != "native_padded" else "native") in names]

    impls, requested = layer_impls(opts["impls"]), layer_impls(opts["requested"])
    L, bidir = layers.LAYER_NUM_LAYERS, layers.LAYER_BIDIRECTIONAL
    _title(
        f"layers: fastrnn.{'/'.join(c.upper().split('_')[0] for c in cells)}, {L} layers, "
        f"{'bidirectional, ' if bidir else ''}variable lengths"
    )
    print(
        "torch: pack_padded_sequence(enforce_sorted=False) -> module -> "
        "pad_packed_sequence(total_length=T), weights loaded into fastrnn with "
        "load_state_dict(torch_module.state_dict())"
        if "torch" in impls
        else "torch: not timed"
    )
    others = [i for i in impls if i != "numpy"]
    print(
        _checking_line(
            others,
            ", each problem just before it is timed"
            + ("; native_padded against numpy without lengths" if "native_padded" in impls else ""),
        ),
        flush=True,
    )
    for name in shapes:
        s = harness.ALL_SHAPES[name]
        print(
            f"lengths ({name}, T={s.T}, B={s.B}): {[int(v) for v in layers.layer_lengths(name, args.seed)]}"
        )
    print()
    checked = []
    printer = _RowPrinter(
        layers.layer_table_columns(requested),
        lambda r: len(impls),
        lambda rs: layers.summarize_layers(rs, stat=stat),
    )
    printer.header()
    results = layers.run_layer_benchmarks(
        cells=cells,
        shapes=shapes,
        modes=opts["modes"],
        impls=impls,
        dtype=args.dtype,
        repeat=args.repeat,
        budget_s=args.budget,
        threads=args.threads,
        seed=args.seed,
        on_check=checked.append,
        on_result=printer.add,
    )
    rows = layers.summarize_layers(results, stat=stat)
    print()
    if others:
        print(_ok_line(checked, others, args.dtype))
    ratios = [r for r in rows if r.get("lengths_over_padded") is not None]
    if ratios:
        worst = max(ratios, key=lambda r: r["lengths_over_padded"])
        verdict = "PASS" if worst["lengths_over_padded"] <= layers.LENGTHS_TARGET else "MISS"
        print(
            f"native with lengths / native padded: at most {worst['lengths_over_padded']:.2f}x "
            f"({worst['cell']} {worst['mode']}); target <= {layers.LENGTHS_TARGET:g}x: {verdict}"
        )
    else:
        print("native with lengths / native padded: n/a (native not timed)")
    return {
        "cells": cells,
        "shapes": {n: vars(harness.ALL_SHAPES[n]) for n in shapes},
        "num_layers": L,
        "bidirectional": bidir,
        "impls": impls,
        "lengths_target": layers.LENGTHS_TARGET,
        "checks": checked,
        "results": results,
        "rows": rows,
    }


def _grid_section(args, opts):
    cells = merged_lists(args.cells, grid.GRID_CELLS)
    shapes = merged_lists(args.shapes, harness.GRID_SHAPES)
    impls, stat = opts["impls"], opts["stat"]
    numpy_large = not args.no_numpy_large
    _title("grid: every cell on S1-S6, native vs torch vs ort vs numpy, with their targets")
    pairs = grid.grid_pairs(cells, shapes)
    if not pairs:
        print("nothing to run: S6 is for the rnn cells only")
        return {"cells": cells, "shapes": {}, "pairs": [], "results": [], "rows": []}

    # About a second: it rates S4-S6 and gives every row's %sgemm column.
    print(
        "measuring NumPy's 1-thread sgemm (4096x1024 @ 1024x1024, float32, in a subprocess "
        "with OPENBLAS_NUM_THREADS=1) ...",
        flush=True,
    )
    try:
        sgemm = grid.measure_sgemm(repeat=args.sgemm_repeat, threads=1)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        sgemm = None
        print(f"warning: {exc}; the %sgemm targets read n/a", file=sys.stderr)
    else:
        sgemm["gflops"] = sgemm["gflops_median" if args.stat == "median" else "gflops_best"]
        print(
            f"sgemm: {sgemm['gflops']:.1f} GFLOP/s ({args.stat} of {sgemm['repeat']} calls, "
            f"{sgemm[args.stat + '_ms']:.1f} ms each)"
        )
    gflops = sgemm["gflops"] if sgemm else None
    peak = grid.measure_peak()
    if peak is None:
        print("FMA peak: not measured (the native extension is not built); the peak targets read n/a")
    else:
        peak["gflops_used"] = peak["gflops_median" if args.stat == "median" else "gflops_best"]
        print(
            f"FMA peak ({peak['path']} path, fp32, FMA chains on one thread): "
            f"{peak['gflops_used']:.1f} GFLOP/s ({'best' if args.stat == 'min' else 'median'} of "
            f"{peak['repeat']} runs; best "
            f"{peak['gflops_best']:.1f})"
        )
    peak_gflops = peak["gflops_used"] if peak else None
    caches = grid.cache_blocks(args.dtype)
    if caches is not None:
        c, b = caches["cache"], caches["blocks"]
        print(
            f"caches ({c['source']}): L1d {c['l1d'] >> 10} KiB, L2 {c['l2'] >> 10} KiB, L3 "
            f"{c['l3_per_core'] >> 10} KiB per core -> blocks kc {b['kc']}, mc {b['mc']}, "
            f"nc {b['nc_panels']} panels"
        )
    if opts["threads"] != 1:
        print(
            f"note: the targets are for 1 thread; this run uses {opts['threads']}, and %peak and "
            "%sgemm still compare with 1-thread rates"
        )
    if args.dtype != "float32":
        print(f"note: the targets are for float32; this run uses {args.dtype}")
    others = [i for i in impls if i != "numpy"]
    print(_checking_line(others, ", each problem just before it is timed"))
    print(
        "GFLOP/s: native's, counting 2*M*N*K per product (forward: input + recurrent "
        "products; backward: twice forward); peak: the FMA peak measured between the row's "
        "rounds (else the one above), %peak of it; %sgemm: of the sgemm rate; torch|ort: the "
        "faster of the two"
    )
    print()
    checked = []
    printer = _RowPrinter(
        grid.grid_table_columns(opts["requested"]),
        lambda r: len(grid.grid_impls(r["shape"], impls, numpy_large, r["mode"])),
        lambda rs: grid.summarize_grid(rs, stat=stat, sgemm_gflops=gflops, peak_gflops=peak_gflops),
    )
    printer.header()
    results = grid.run_grid(
        cells=cells,
        shapes=shapes,
        modes=opts["modes"],
        impls=impls,
        dtype=args.dtype,
        repeat=args.repeat,
        budget_s=args.budget,
        threads=args.threads,
        seed=args.seed,
        numpy_large=numpy_large,
        on_check=checked.append,
        on_result=printer.add,
        peak_probe_s=args.peak_probe,
    )
    rows = grid.summarize_grid(results, stat=stat, sgemm_gflops=gflops, peak_gflops=peak_gflops)
    print()
    if others:
        print(_ok_line(checked, others, args.dtype))
    targets = [dict(t, cell=r["cell"], shape=r["shape"], mode=r["mode"]) for r in rows for t in r["targets"]]
    counts = {k: sum(t["status"] == k for t in targets) for k in ("PASS", "MISS", "n/a")}
    print(
        f"targets: {counts['PASS']} PASS, {counts['MISS']} MISS"
        + (f", {counts['n/a']} n/a (not measured)" if counts["n/a"] else "")
        + f" of {len(targets)}"
    )
    for t in targets:
        if t["status"] == "MISS":
            value = {"peak": f"{t['value']:.0%}", "bitwise": "differs"}.get(t["kind"], f"{t['value']:.2f}x")
            what = {"peak": "of peak", "bitwise": "1 vs 2 threads", "peers": "torch|ort/native"}.get(
                t["kind"], f"{t['kind']}/native"
            )
            print(f"  MISS {t['cell']:9s} {t['shape']} {t['mode']:17s} {what} {value}, target {t['label']}")
    return {
        "cells": cells,
        "shapes": {n: vars(harness.ALL_SHAPES[n]) for n in shapes},
        "pairs": [list(p) for p in pairs],
        "impls": impls,
        "numpy_large": numpy_large,
        "sgemm": sgemm,
        "peak": peak,
        "caches": caches,
        "checks": checked,
        "results": results,
        "rows": rows,
        "targets": targets,
        "target_counts": counts,
    }


def _bench(args):

    requested = [
        i
        for i, off in (
            ("native", args.no_native),
            ("numpy", args.no_numpy),
            ("torch", args.no_torch),
            ("ort", args.no_ort),
        )
        if not off
    ]
    if not requested:
        print("nothing to time: every implementation was excluded", file=sys.stderr)
        return 2
    available = harness.available_implementations()
    impls = [i for i in requested if i in available]
    if not impls:
        print(f"nothing to time: of {', '.join(requested)}, none is available here", file=sys.stderr)
        return 2
    if args.grid or args.layers:
        sections = [name for name, on in (("grid", args.grid), ("layers", args.layers)) if on]
    else:
        sections = ["functional"] + ([] if args.no_layers else ["layers"])

    if args.cpu_path is not None:
        native = native_module()
        if native is None:
            print("--cpu-path: the native extension is not built", file=sys.stderr)
            return 2
        try:
            native.set_cpu_path(args.cpu_path)
        except ValueError as exc:
            print(f"--cpu-path: {exc}", file=sys.stderr)
            return 2
    threads = harness.configure_threads(args.threads)
    env = harness.environment()
    print(
        f"fastrnn {env['version']}  numpy {env['numpy']}  torch {env['torch'] or 'not installed'}"
        f"  onnxruntime {env['onnxruntime'] or 'not installed'}  python {env['python']}"
    )
    if env["native_available"]:
        paths = ", ".join(env["cpu_paths"]) or "?"
        print(f"native: available (cpu path {env['cpu_path']}; compiled: {paths})")
    else:
        print(f"native: unavailable ({env['native_error']}); its column reads n/a")
    if args.cpu_path is not None and env["torch"]:
        # A forced path is compared with peers on the same instruction set only where they are told
        # to use it; ONNX Runtime has no such switch (MLAS takes the best the CPU has).
        print(
            f"peers: torch's CPU kernels use {env['torch_cpu_capability']} (to match --cpu-path avx2, "
            "start with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2); "
            "ONNX Runtime uses the best instruction set of this CPU"
        )
    print(
        f"threads {threads} (native, torch and ort)  dtype {args.dtype}  repeat <= {args.repeat}  "
        f"budget {args.budget:g} s/entry  stat {args.stat}"
    )
    opts = {
        "impls": impls,
        "requested": requested,
        "modes": merged_lists(args.modes, harness.MODES),
        "stat": f"{args.stat}_ms",
        "threads": threads,
    }

    payload = {
        "environment": env,
        "config": {
            "sections": sections,
            "impls": impls,
            "modes": opts["modes"],
            "dtype": args.dtype,
            "repeat": args.repeat,
            "budget_s": args.budget,
            "stat": args.stat,
            "threads": threads,
            "seed": args.seed,
        },
    }
    runners = {"functional": _functional_section, "layers": _layers_section, "grid": _grid_section}
    with harness.limit_blas_threads(args.threads) as limited:
        blas = harness.blas_threads_info()
        blas["limited_by_threads_option"] = bool(limited)
        if limited:
            print(f"numpy BLAS threads {blas['threads']} (--threads, through threadpoolctl)")
        else:
            print(harness.describe_blas_threads(blas))
        payload["blas"] = blas
        try:
            for name in sections:
                payload[name] = runners[name](args, opts)
        except harness.AgreementError as exc:
            print(
                f"error: results disagree with the numpy reference, not timing them:\n  {exc}",
                file=sys.stderr,
            )
            return 1
    print()
    print("times in ms (" + args.stat + " of the timed calls); x/native > 1: native is faster")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    output_path(args.json, "--json")  # a path that cannot be written fails now, not after the runs
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
