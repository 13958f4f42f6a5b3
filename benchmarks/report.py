"""Prints the native/numpy/torch table from a pytest-benchmark JSON file.

    python -m pytest benchmarks --benchmark-json=bench.json
    python benchmarks/report.py bench.json [--stat min]

The table is the one ``python -m fastrnn bench`` prints (fastrnn.bench.format_table).
"""

import argparse
import json
import pathlib
import sys

try:
    from fastrnn import bench
except ImportError:  # a plain checkout: use the package next to this directory
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))
    from fastrnn import bench


def results_from_pytest_benchmark(data, stat="median"):
    """fastrnn.bench-style result dicts from pytest-benchmark's JSON (test_rnn_bench.py's tests)."""
    results = []
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if not {"cell", "shape", "mode", "impl"} <= info.keys():
            continue  # not one of test_rnn_bench.py's tests
        results.append({**info, f"{stat}_ms": b["stats"][stat] * 1e3,
                        "repeat": b["stats"]["rounds"]})
    order = {(c, s, m, i): n for n, (c, s, m, i) in enumerate(
        (c, s, m, i) for c in bench.CELLS for s in bench.SHAPES for m in bench.MODES
        for i in bench.IMPLEMENTATIONS)}
    results.sort(key=lambda r: order.get((r["cell"], r["shape"], r["mode"], r["impl"]), len(order)))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="a file written by pytest --benchmark-json")
    parser.add_argument("--stat", choices=("median", "min", "mean"), default="median",
                        help="which statistic to show (default: median)")
    args = parser.parse_args(argv)
    with open(args.json, encoding="utf-8") as f:
        data = json.load(f)
    results = results_from_pytest_benchmark(data, args.stat)
    if not results:
        print(f"no fastrnn benchmarks in {args.json}", file=sys.stderr)
        return 1
    impls = [i for i in bench.IMPLEMENTATIONS if any(r["impl"] == i for r in results)]
    print(bench.format_table(bench.summarize(results, stat=f"{args.stat}_ms"), impls))
    print(f"\ntimes in ms ({args.stat}); x/native > 1: native is faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
