"""The performance grid: every cell on S1-S6, native vs torch vs ONNX Runtime vs numpy, each row
rated against issue 12's targets: forward against the faster of torch and ONNX Runtime,
forward+backward against torch, the compute-bound shapes against this core's FMA peak measured in
the same run (measure_peak), and native's results bitwise identical on 1 and 2 threads."""

import json
import os
import statistics
import subprocess
import sys

import numpy as np

from fastrnn._backend import get_num_threads, native_module, set_num_threads

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
    make_problem,
    modes_of,
    run_benchmarks,
    run_outputs,
    summarize,
)

GRID_CELLS = CELLS
GRID_LATENCY_SHAPES = ("S1", "S2", "S3")
GRID_COMPUTE_SHAPES = ("S4", "S5", "S6")
GRID_RNN_ONLY_SHAPES = ("S6",)
TARGET_SHAPES = ("S1", "S2", "S3", "S4", "S5")  # the speed targets' shapes (S6 is for information)
PEAK_SHAPES = ("S4", "S5")
PEERS_TARGET = 1.0  # forward: the faster of torch and ONNX Runtime / native
TORCH_TARGET = 1.1  # forward+backward: torch / native
PEAK_TARGET = {"forward": 0.90, "forward+backward": 0.85}  # S4-S5: native GFLOP/s / FMA peak
BITWISE_THREADS = (1, 2)  # native's results must be bitwise identical at these thread counts


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
    """Issue 12's targets for one grid row: a list of (kind, threshold).

    kind "peers": the faster of torch's and ONNX Runtime's time / native's >= threshold (forward,
    S1-S5); "torch": torch's time / native's (forward+backward, S1-S5); "peak": native's GFLOP/s /
    the measured FMA peak (S4-S5); "bitwise": 1 when native's outputs (and gradients) are bitwise
    identical on BITWISE_THREADS threads, else 0 (every row).
    """
    targets = []
    if shape in TARGET_SHAPES:
        targets.append(("peers", PEERS_TARGET) if mode == "forward" else ("torch", TORCH_TARGET))
    if shape in PEAK_SHAPES:
        targets.append(("peak", PEAK_TARGET[mode]))
    targets.append(("bitwise", 1.0))
    return targets


def _target_label(kind, threshold):
    if kind == "peak":
        return f">={threshold:.0%} peak"
    if kind == "bitwise":
        return "bitwise 1=2 threads"
    if kind == "peers":
        return f">={threshold:g}x torch|ort"
    return f">={threshold:g}x {kind}"


def _target_value(row, kind):
    if kind == "peak":
        return row.get("native_pct_peak")
    if kind == "bitwise":
        same = row.get("bitwise_threads")
        return None if same is None else float(same)
    return row.get(f"{kind}_over_native")


def evaluate_targets(row):
    """Adds each target of a grid row (from summarize_grid) with its value and status.

    ``row["targets"]``: a list of dicts: kind, threshold, label, value (None when it could not be
    measured: a peer or native missing, no peak) and status "PASS", "MISS" or "n/a".
    """
    out = []
    for kind, threshold in grid_targets(row["cell"], row["shape"], row["mode"]):
        value = _target_value(row, kind)
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


def summarize_grid(results, stat="median_ms", sgemm_gflops=None, peak_gflops=None):
    """summarize() for grid results, plus flops, ``<impl>_gflops``, peak_gflops and
    native_pct_peak (the peak probed during the row's rounds, else ``peak_gflops``),
    native_pct_sgemm, peers_over_native (the faster of torch and ort over native),
    bitwise_threads (from native's results) and the targets."""
    rows = summarize(results, stat=stat)
    # The FMA peak measured between the timed rounds of each row, where the grid probed it: on a
    # shared core it saw the same share of the core as the row's calls.
    row_peak = {
        (r["cell"], r["shape"], r["mode"]): (max if stat == "min_ms" else statistics.median)(r["probes"])
        for r in results
        if r["impl"] == "native" and r.get("probes")
    }
    bitwise = {
        (r["cell"], r["shape"], r["mode"]): r["bitwise_threads"]
        for r in results
        if r["impl"] == "native" and "bitwise_threads" in r
    }
    for row in rows:
        row["flops"] = flops(row["cell"], row["shape"], row["mode"])
        for impl in IMPLEMENTATIONS:
            ms = row.get(f"{impl}_ms")
            if ms:
                row[f"{impl}_gflops"] = row["flops"] / (ms * 1e6)
        peers = [row[f"{i}_ms"] for i in ("torch", "ort") if row.get(f"{i}_ms")]
        if peers and row.get("native_ms"):
            row["peers_over_native"] = min(peers) / row["native_ms"]
        peak = row_peak.get((row["cell"], row["shape"], row["mode"]), peak_gflops)
        if peak:
            row["peak_gflops"] = peak
        if row.get("native_gflops"):
            if peak:
                row["native_pct_peak"] = row["native_gflops"] / peak
            if sgemm_gflops:
                row["native_pct_sgemm"] = row["native_gflops"] / sgemm_gflops
        row["bitwise_threads"] = bitwise.get((row["cell"], row["shape"], row["mode"]))
        evaluate_targets(row)
    return rows


def _same_bits(a, b):
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def bitwise_across_threads(problem, mode, counts=BITWISE_THREADS):
    """Whether native's outputs (forward+backward: and gradients) on ``problem`` are bitwise
    identical with each thread count in ``counts``. The parallel grain is set to 0 meanwhile, so
    that every product and loop that can be split is split, then back to 1 (the default)."""
    native = native_module()
    before = get_num_threads()
    outputs = []
    try:
        native.set_parallel_grain(0.0)
        for n in counts:
            set_num_threads(n)
            outputs.append(run_outputs("native", problem, mode))
    finally:
        native.set_parallel_grain(1.0)
        set_num_threads(before)
    first = outputs[0]
    return all(_same_bits(first[k], other[k]) for other in outputs[1:] for k in first)


def grid_impls(shape, impls, numpy_large=True, mode=None):
    """The implementations timed on ``shape`` (in ``mode``, when given: ort is forward only):
    numpy is left out of S4-S6 unless ``numpy_large``."""
    out = [i for i in impls if not (i == "numpy" and not numpy_large and shape in GRID_COMPUTE_SHAPES)]
    return out if mode is None else [i for i in out if modes_of(i, [mode])]


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
    peak_probe_s=None,
):
    """Times the grid, problem by problem: each is checked against numpy, then timed.

    Arguments as run_benchmarks'; ``numpy_large=False`` leaves numpy's timings out on S4-S6 (it
    still computes the reference the checks use). Returns run_benchmarks-style results; native's
    carry ``bitwise_threads`` (bitwise_across_threads, checked before the timings).
    ``peak_probe_s``: when given (and native is built), the FMA peak is measured for that long
    after every round of timed calls (results get ``probes``: GFLOP/s), so that %peak compares
    rates taken on the same share of a shared core.
    """
    native = native_module()
    probe = None
    if peak_probe_s and native is not None and hasattr(native, "fma_peak"):

        def probe():
            return native.fma_peak(peak_probe_s)["gflops"]

    available = available_implementations()
    impls = (
        available if impls is None else [i for i in _names(impls, IMPLEMENTATIONS, "impl") if i in available]
    )
    results = []
    for cell, shape in grid_pairs(cells, shapes):
        use = grid_impls(shape, impls, numpy_large)
        if not use:
            continue
        bitwise = {}
        if "native" in use:
            problem = make_problem(cell, shape, dtype, seed)
            bitwise = {m: bitwise_across_threads(problem, m) for m in _names(modes, MODES, "mode")}
            del problem
        timed = run_benchmarks(
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
            on_result=None,
            probe=probe,
        )
        for r in timed:
            if r["impl"] == "native":
                r["bitwise_threads"] = bitwise[r["mode"]]
            if on_result is not None:
                on_result(r)
        results += timed
    return results


# ---------------------------------------------------------------------------------------------


def grid_table_columns(impls):
    """The columns of the grid table (see table_columns)."""
    cols = [("cell", "cell", 9, "text"), ("shape", "shape", 5, "text"), ("mode", "mode", 17, "text")]
    order = [i for i in ("native", "torch", "ort", "numpy") if i in impls]
    cols += [(f"{i}_ms", f"{i} ms", 9, "ms") for i in order]
    if "native" in impls:
        cols += [(f"{i}_over_native", f"{i}/nat", 9, "ratio") for i in order if i != "native"]
        cols += [
            ("native_gflops", "GFLOP/s", 7, "gflops"),
            ("peak_gflops", "peak", 5, "gflops"),
            ("native_pct_peak", "%peak", 5, "pct"),
            ("native_pct_sgemm", "%sgemm", 6, "pct"),
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


def measure_peak(repeat=5, seconds=0.1):
    """This core's fp32 FMA rate on the active cpu path, measured by the native module's FMA-chain
    loop (``_native.fma_peak``) ``repeat`` times on this thread. Returns a dict: path, repeat,
    gflops_median, gflops_best, gflops (every run); None when the extension is not built."""
    native = native_module()
    if native is None or not hasattr(native, "fma_peak"):
        return None
    runs = [native.fma_peak(seconds) for _ in range(repeat)]
    rates = [r["gflops"] for r in runs]
    return {
        "path": runs[0]["path"],
        "repeat": repeat,
        "gflops_median": statistics.median(rates),
        "gflops_best": max(rates),
        "gflops": rates,
    }


def cache_blocks(dtype="float32"):
    """The caches the native products were blocked for and the active path's block sizes for
    ``dtype``: a dict with cache and blocks; None without the extension."""
    native = native_module()
    if native is None or not hasattr(native, "gemm_blocks"):
        return None
    return {"cache": native.cache_sizes(), "blocks": native.gemm_blocks(dtype)}
