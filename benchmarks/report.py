"""Tables and a PNG chart of native vs torch vs numpy from a benchmark JSON file.

Reads either file the benchmarks write::

    python -m benchmarks --grid --json grid.json                  # the grid command line's --json
    python -m pytest benchmarks --benchmark-json=bench.json        # pytest-benchmark's JSON

    python benchmarks/report.py grid.json [--stat min]              # the tables, with targets
    python benchmarks/report.py grid.json --png grid.png            # and a chart (matplotlib)

Each section (functional, layers, grid) prints the table ``python -m benchmarks`` prints; the
grid's targets use the FMA peak (and sgemm rate) saved in the command line's JSON
(pytest-benchmark's JSON has neither, so the peak targets read n/a there). The chart (``--png``)
needs matplotlib, an optional extra: ``pip install matplotlib``.
"""

import argparse
import json
import math
import pathlib
import sys

if __package__ in (None, ""):  # run as a script: import the harness as the package it is
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from benchmarks import grid, harness, layers  # noqa: E402

SECTIONS = ("functional", "layers", "grid")
TITLES = {
    "functional": "functional: one layer, one direction",
    "layers": "layers: 2 layers, bidirectional, variable lengths",
    "grid": "grid: S1-S6",
}
COLORS = {"native": "#1f77b4", "native_padded": "#9ecae1", "torch": "#d62728", "numpy": "#7f7f7f"}


# -------------------------------------------------------------------------------------------------
# Reading


def _order_key(r):
    cells = {c: n for n, c in enumerate(harness.CELLS)}
    shapes = {s: n for n, s in enumerate(harness.ALL_SHAPES)}
    modes = {m: n for n, m in enumerate(harness.MODES)}
    impls = {i: n for n, i in enumerate(layers.LAYER_IMPLEMENTATIONS)}
    return (
        cells.get(r["cell"], 99),
        shapes.get(r["shape"], 99),
        modes.get(r["mode"], 99),
        impls.get(r["impl"], 99),
    )


def results_from_pytest_benchmark(data, stat="median"):
    """{section: harness-style result dicts} from pytest-benchmark's JSON (the files in
    benchmarks/; results from before sections existed count as "functional")."""
    sections = {}
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if not {"cell", "shape", "mode", "impl"} <= info.keys():
            continue  # not one of fastrnn's benchmarks
        r = {**info, f"{stat}_ms": b["stats"][stat] * 1e3, "repeat": b["stats"]["rounds"]}
        sections.setdefault(info.get("section", "functional"), []).append(r)
    for results in sections.values():
        results.sort(key=_order_key)
    return sections


def load(path, stat="median"):
    """(sections, sgemm, peak, source) from either JSON: sections maps a section name to its
    results; sgemm and peak are the grid's saved sgemm and FMA-peak measurements (None when there
    are none)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if "benchmarks" in data:
        return results_from_pytest_benchmark(data, stat), None, None, "pytest-benchmark"
    sections = {
        name: data[name]["results"]
        for name in SECTIONS
        if isinstance(data.get(name), dict) and data[name].get("results")
    }
    if not sections and data.get("results"):  # a --json file from before the sections
        sections = {"functional": data["results"]}
    sgemm = (data.get("grid") or {}).get("sgemm")
    peak = (data.get("grid") or {}).get("peak")
    if stat == "mean":
        sgemm = peak = None  # only the median and best rates were saved
    return sections, sgemm, peak, "python -m benchmarks"


def sgemm_rate(sgemm, stat):
    if not sgemm:
        return None
    return sgemm["gflops_best"] if stat == "min" else sgemm["gflops_median"]


def rows_and_columns(section, results, stat, sgemm_gflops=None, peak_gflops=None):
    """The summarised rows and the table columns of one section."""
    key = f"{stat}_ms"
    if section == "layers":
        impls = [i for i in layers.LAYER_IMPLEMENTATIONS if any(r["impl"] == i for r in results)]
        return layers.summarize_layers(results, stat=key), layers.layer_table_columns(impls), impls
    impls = [i for i in harness.IMPLEMENTATIONS if any(r["impl"] == i for r in results)]
    if section == "grid":
        rows = grid.summarize_grid(results, stat=key, sgemm_gflops=sgemm_gflops, peak_gflops=peak_gflops)
        return rows, grid.grid_table_columns(impls), impls
    return harness.summarize(results, stat=key), harness.table_columns(impls), impls


# -------------------------------------------------------------------------------------------------
# The chart


def draw_chart(sections, path, stat="median", title=None):
    """A PNG of every section's times, one panel per (section, mode): bars per problem for each
    implementation, log-scale milliseconds. Returns False (with a message) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        print(
            "error: --png needs matplotlib, which is not installed: pip install matplotlib", file=sys.stderr
        )
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = f"{stat}_ms"
    panels = []
    for section in SECTIONS:
        results = sections.get(section)
        if not results:
            continue
        for mode in harness.MODES:
            rs = [r for r in results if r["mode"] == mode]
            if rs:
                panels.append((section, mode, rs))
    widest = max(len({(r["cell"], r["shape"]) for r in rs}) for _, _, rs in panels)
    fig, axes = plt.subplots(
        len(panels), 1, squeeze=False, figsize=(max(8.0, 0.75 * widest + 2), 3.2 * len(panels))
    )
    for ax, (section, mode, rs) in zip(axes[:, 0], panels):
        problems = list(dict.fromkeys((r["cell"], r["shape"]) for r in rs))
        order = ("native", "native_padded", "torch", "numpy")
        impls = [i for i in order if any(r["impl"] == i for r in rs)]
        width = 0.8 / len(impls)
        times = {(r["cell"], r["shape"], r["impl"]): r[key] for r in rs}
        for n, impl in enumerate(impls):
            xs, ys = [], []
            for x, (cell, shape) in enumerate(problems):
                t = times.get((cell, shape, impl))
                if t:
                    xs.append(x - 0.4 + width * (n + 0.5))
                    ys.append(t)
            ax.bar(xs, ys, width, label=impl.replace("_", " "), color=COLORS.get(impl))
        # torch / native above each problem: > 1 means native is faster.
        for x, (cell, shape) in enumerate(problems):
            native, torch = times.get((cell, shape, "native")), times.get((cell, shape, "torch"))
            if native and torch:
                top = max(times.get((cell, shape, i)) or 0 for i in impls)
                ax.annotate(
                    f"{torch / native:.1f}x",
                    (x, top),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
        ax.set_yscale("log")
        ax.set_xticks(range(len(problems)))
        ax.set_xticklabels([f"{c}\n{s}" for c, s in problems], fontsize=8)
        ax.set_ylabel(f"ms ({stat}, log)")
        ax.set_title(f"{TITLES[section]} - {mode}   (numbers: torch/native, > 1: native faster)", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", ncol=len(impls))
        ax.grid(axis="y", which="major", alpha=0.3)
        lo = min(r[key] for r in rs)
        hi = max(r[key] for r in rs)
        ax.set_ylim(10 ** math.floor(math.log10(lo)), 10 ** (math.ceil(math.log10(hi)) + 0.3))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "json", help="a file written by python -m benchmarks --json or by pytest --benchmark-json"
    )
    parser.add_argument(
        "--stat",
        choices=("median", "min", "mean"),
        default=None,
        help="which statistic to show (default: the one the file was made with, "
        "else median; mean only for pytest-benchmark files)",
    )
    parser.add_argument(
        "--png", metavar="PATH", help="also draw a chart of native vs torch vs numpy to PATH (matplotlib)"
    )
    args = parser.parse_args(argv)
    stat = args.stat
    if stat is None:
        with open(args.json, encoding="utf-8") as f:
            stat = json.load(f).get("config", {}).get("stat", "median")
    try:
        sections, sgemm, peak, source = load(args.json, stat)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read {args.json}: {exc}", file=sys.stderr)
        return 1
    if not sections:
        print(f"no fastrnn benchmarks in {args.json}", file=sys.stderr)
        return 1
    if stat == "mean" and source != "pytest-benchmark":
        print("error: --stat mean is only in pytest-benchmark files", file=sys.stderr)
        return 1
    gflops = sgemm_rate(sgemm, stat)
    peak_gflops = sgemm_rate(peak, stat)  # the same keys: gflops_median, gflops_best
    for section in SECTIONS:
        results = sections.get(section)
        if not results:
            continue
        print(f"== {TITLES[section]} ==")
        if section == "grid":
            print(
                f"sgemm (1 thread, 4096x1024x1024): {gflops:.1f} GFLOP/s"
                if gflops
                else "sgemm: not in this file"
            )
            print(
                f"FMA peak ({peak['path']} path, fp32, 1 thread): {peak_gflops:.1f} GFLOP/s"
                if peak_gflops
                else "FMA peak: not in this file, the peak targets read n/a"
            )
        rows, columns, _ = rows_and_columns(section, results, stat, gflops, peak_gflops)
        print(harness.format_table(rows, columns=columns))
        if section == "grid":
            targets = [t for r in rows for t in r["targets"]]
            counts = {k: sum(t["status"] == k for t in targets) for k in ("PASS", "MISS", "n/a")}
            print(
                f"targets: {counts['PASS']} PASS, {counts['MISS']} MISS, {counts['n/a']} n/a "
                f"of {len(targets)}"
            )
        print()
    print(f"times in ms ({stat}); x/native > 1: native is faster")
    if args.png:
        if not draw_chart(sections, args.png, stat, title=f"fastrnn: {args.json}"):
            return 2
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
