"""The performance grid: every cell on S1-S6, native vs torch vs numpy, each row rated against its
targets; the compute-bound shapes also against NumPy's 1-thread sgemm rate (measure_sgemm)."""

import json
import os
import statistics
import subprocess
import sys

from .harness import (
    _BLAS_ENV,
    ALL_SHAPES,
    CELLS,
    GATES,
    GRID_SHAPES,
    IMPLEMENTATIONS,
    MODES,
    _names,
    _shape,
    available_implementations,
    run_benchmarks,
    summarize,
)

GRID_CELLS = CELLS
GRID_LATENCY_SHAPES = ("S1", "S2", "S3")
GRID_COMPUTE_SHAPES = ("S4", "S5", "S6")
GRID_RNN_ONLY_SHAPES = ("S6",)
SGEMM_TARGET = 0.85  # S4-S6 native forward+backward: >= 85% of NumPy's 1-thread sgemm rate


def grid_pairs(cells=GRID_CELLS, shapes=tuple(GRID_SHAPES)):
    """The (cell, shape) problems of the grid among ``cells`` x ``shapes`` (S6: rnn cells only)."""
    cells = _names(cells, CELLS, "cell")
    shapes = _names(shapes, ALL_SHAPES, "shape")
    return [
        (c, s) for c in cells for s in shapes if not (s in GRID_RNN_ONLY_SHAPES and not c.startswith("rnn"))
    ]


def flops(cell, shape, mode):
    """Floating-point operations of one call: 2*M*N*K per matrix product.

    Forward: the input product (T*B x G*H x I) and the recurrent one (T*B x G*H x H); backward
    does twice that (dx and dW_ih, dh and dW_hh), so forward+backward counts three times forward.
    Pointwise gate math is not counted.
    """
    s = _shape(shape)
    forward = 2.0 * s.T * s.B * GATES[cell] * s.H * (s.I + s.H)
    return forward if mode == "forward" else 3.0 * forward


def grid_targets(cell, shape, mode):
    """The issue's targets for one grid row: a list of (kind, threshold).

    kind "torch": torch's time / native's >= threshold; "numpy": numpy's time / native's >=
    threshold; "sgemm": native's GFLOP/s / NumPy's 1-thread sgemm GFLOP/s >= threshold.
    """
    rnn_or_gru = cell != "lstm"
    targets = []
    if shape in GRID_LATENCY_SHAPES:
        targets.append(("torch", 5.0 if rnn_or_gru else 2.5))
        if shape == "S1" and cell in ("lstm", "gru") and mode == "forward+backward":
            targets.append(("numpy", 10.0))
    elif shape in GRID_COMPUTE_SHAPES and mode == "forward+backward":
        targets.append(("sgemm", SGEMM_TARGET))
        targets.append(("torch", 1.5 if rnn_or_gru else 1.1))
    return targets


def _target_label(kind, threshold):
    if kind == "sgemm":
        return f">={threshold:.0%} sgemm"
    return f">={threshold:g}x {kind}"


def evaluate_targets(row, sgemm_gflops=None):
    """Adds each target of a grid row (from summarize_grid) with its value and status.

    ``row["targets"]``: a list of dicts: kind, threshold, label, value (None when it could not be
    measured: torch missing, native missing, no sgemm rate) and status "PASS", "MISS" or "n/a".
    """
    out = []
    for kind, threshold in grid_targets(row["cell"], row["shape"], row["mode"]):
        if kind == "sgemm":
            value = row.get("native_gflops")
            value = value / sgemm_gflops if value and sgemm_gflops else None
        else:
            value = row.get(f"{kind}_over_native")
        status = "n/a" if value is None else "PASS" if value >= threshold else "MISS"
        out.append(
            {
                "kind": kind,
                "threshold": threshold,
                "label": _target_label(kind, threshold),
                "value": value,
                "status": status,
            }
        )
    row["targets"] = out
    row["targets_text"] = ", ".join(f"{t['label']} {t['status']}" for t in out) or "-"
    return row


def summarize_grid(results, stat="median_ms", sgemm_gflops=None):
    """summarize() for grid results, plus flops, ``<impl>_gflops``, native_pct_sgemm and targets."""
    rows = summarize(results, stat=stat)
    for row in rows:
        row["flops"] = flops(row["cell"], row["shape"], row["mode"])
        for impl in IMPLEMENTATIONS:
            ms = row.get(f"{impl}_ms")
            if ms:
                row[f"{impl}_gflops"] = row["flops"] / (ms * 1e6)
        if sgemm_gflops and row.get("native_gflops"):
            row["native_pct_sgemm"] = row["native_gflops"] / sgemm_gflops
        evaluate_targets(row, sgemm_gflops)
    return rows


def grid_impls(shape, impls, numpy_large=True):
    """The implementations timed on ``shape``: numpy is left out of S4-S6 unless ``numpy_large``."""
    return [i for i in impls if not (i == "numpy" and not numpy_large and shape in GRID_COMPUTE_SHAPES)]


def run_grid(
    cells=GRID_CELLS,
    shapes=tuple(GRID_SHAPES),
    modes=MODES,
    impls=None,
    dtype="float32",
    repeat=20,
    warmup=1,
    budget_s=1.0,
    threads=None,
    check=True,
    seed=0,
    numpy_large=True,
    on_check=None,
    on_result=None,
):
    """Times the grid, problem by problem: each is checked against numpy, then timed.

    Arguments as run_benchmarks'; ``numpy_large=False`` leaves numpy's timings out on S4-S6 (it
    still computes the reference the checks use). Returns run_benchmarks-style results.
    """
    available = available_implementations()
    impls = (
        available if impls is None else [i for i in _names(impls, IMPLEMENTATIONS, "impl") if i in available]
    )
    results = []
    for cell, shape in grid_pairs(cells, shapes):
        use = grid_impls(shape, impls, numpy_large)
        if not use:
            continue
        results += run_benchmarks(
            cells=[cell],
            shapes=[shape],
            modes=modes,
            impls=use,
            dtype=dtype,
            repeat=repeat,
            warmup=warmup,
            budget_s=budget_s,
            threads=threads,
            check=check,
            seed=seed,
            on_check=on_check,
            on_result=on_result,
        )
    return results


# ---------------------------------------------------------------------------------------------


def grid_table_columns(impls):
    """The columns of the grid table (see table_columns)."""
    cols = [("cell", "cell", 9, "text"), ("shape", "shape", 5, "text"), ("mode", "mode", 17, "text")]
    order = [i for i in ("native", "torch", "numpy") if i in impls]
    cols += [(f"{i}_ms", f"{i} ms", 10, "ms") for i in order]
    if "native" in impls:
        cols += [(f"{i}_over_native", f"{i}/native", 13, "ratio") for i in order if i != "native"]
        cols += [
            ("native_gflops", "GFLOP/s", 8, "gflops"),
            ("native_pct_sgemm", "%sgemm", 7, "pct"),
            ("targets_text", "targets", 0, "text"),
        ]
    return cols


_SGEMM_SCRIPT = r"""
import json, statistics, sys, time
import numpy as np
M, N, K, repeat = (int(v) for v in sys.argv[1:5])
rng = np.random.default_rng(0)
a = rng.standard_normal((M, K), dtype=np.float32)
b = rng.standard_normal((K, N), dtype=np.float32)
c = np.empty((M, N), np.float32)
np.matmul(a, b, out=c)
np.matmul(a, b, out=c)
times = []
for _ in range(repeat):
    start = time.perf_counter()
    np.matmul(a, b, out=c)
    times.append(time.perf_counter() - start)
out = {"times_ms": [t * 1e3 for t in times]}
try:
    import threadpoolctl
    out["blas_threads"] = max(p["num_threads"] for p in threadpoolctl.threadpool_info()
                              if p.get("user_api") == "blas")
except Exception:
    out["blas_threads"] = None
print(json.dumps(out))
"""


def measure_sgemm(M=4096, N=1024, K=1024, repeat=10, threads=1, timeout_s=300):
    """NumPy's float32 matmul rate on (M, K) @ (K, N), in a fresh Python with its BLAS pinned.

    The child process gets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS = ``threads``
    in its environment (BLAS libraries read them once, at load), so the rate is ``threads``-thread
    whatever this process's BLAS uses. Counts 2*M*N*K flops per product. Returns a dict: M, N, K,
    threads, repeat, median_ms, min_ms, gflops_median, gflops_best, times_ms, blas_threads (as
    threadpoolctl reports it in the child, None without threadpoolctl).
    """
    env = dict(os.environ)
    for key in _BLAS_ENV:
        env[key] = str(threads)
    argv = [sys.executable, "-c", _SGEMM_SCRIPT, str(M), str(N), str(K), str(repeat)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"the sgemm measurement failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    ms = data["times_ms"]
    flop = 2.0 * M * N * K
    median_ms, min_ms = statistics.median(ms), min(ms)
    return {
        "M": M,
        "N": N,
        "K": K,
        "threads": threads,
        "repeat": len(ms),
        "median_ms": median_ms,
        "min_ms": min_ms,
        "gflops_median": flop / (median_ms * 1e6),
        "gflops_best": flop / (min_ms * 1e6),
        "times_ms": ms,
        "blas_threads": data.get("blas_threads"),
    }
