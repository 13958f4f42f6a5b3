"""The benchmark harness: problems, runners, the timing loop and the agreement check that guards it.

One *problem* is a cell on a shape: inputs, weights in PyTorch's layout, and the gradients that the
forward+backward mode feeds back (``dy``, ``dh_n``). Every implementation runs the same problem:

- ``native``: ``fastrnn.functional`` with ``backend="native"`` (the C++ kernels), when it is built;
- ``numpy``: ``fastrnn.functional`` with ``backend="numpy"`` (the reference, which is the spec);
- ``torch``: ``torch.nn.RNN``/``LSTM``/``GRU`` with the same weights, when torch is importable;
- ``ort``: ONNX Runtime running one ONNX RNN/LSTM/GRU node with the same weights (onnxrt.py),
  forward only (an inference engine), when onnx and onnxruntime are importable.

Two modes: ``forward`` (``training=False``; torch under no_grad) and ``forward+backward`` (a
training forward, then backward of ``sum(y*dy) + sum(h_n*dh_n)``; every gradient is computed).

Three sections, each checked against numpy before it is timed: the functional table here
(run_benchmarks: one layer, one direction, on SHAPES or any ALL_SHAPES name), layers.py (2-layer
bidirectional layers with variable lengths) and grid.py (the performance grid S1-S6 with its targets,
rated with NumPy's 1-thread sgemm rate from measure_sgemm). ``python -m benchmarks`` runs them.

Results are plain dicts so that the command line, the pytest-benchmark files and other code share
them::

    from benchmarks import grid, harness
    results = harness.run_benchmarks(cells=["lstm"], shapes=["small"])
    print(harness.format_table(harness.summarize(results)))
    sgemm = harness.measure_sgemm()
    rows = grid.summarize_grid(grid.run_grid(cells=["gru"], shapes=["S1", "S4"]),
                               sgemm_gflops=sgemm["gflops_median"])
    print(harness.format_table(rows, columns=grid.grid_table_columns(harness.IMPLEMENTATIONS)))

Torch and threadpoolctl are optional: they are imported inside the functions that need them.
"""

import contextlib
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass

import numpy as np

from fastrnn import functional
from fastrnn._backend import get_num_threads, native_available, set_num_threads
from fastrnn._cells import GATES

from .onnxrt import ort_available, ort_runner, ort_version


@dataclass(frozen=True)
class Shape:
    """Sequence length T, batch B, input size I and hidden size H."""

    T: int
    B: int
    I: int
    H: int

    def __str__(self):
        return f"T={self.T} B={self.B} I={self.I} H={self.H}"


SHAPES = {
    "small": Shape(T=100, B=1, I=64, H=128),
    "medium": Shape(T=100, B=16, I=128, H=256),
    "large": Shape(T=50, B=64, I=256, H=512),
}
# The performance grid (grid.py): S1-S3 are bound by latency (W_hh streaming from cache each step),
# S4-S6 by FLOPs. S5 is DeepBench's LSTM training shape, S6 its vanilla RNN shape (rnn cells only).
GRID_SHAPES = {
    "S1": Shape(T=100, B=1, I=64, H=128),
    "S2": Shape(T=100, B=4, I=128, H=256),
    "S3": Shape(T=100, B=16, I=128, H=256),
    "S4": Shape(T=50, B=64, I=256, H=512),
    "S5": Shape(T=25, B=32, I=1024, H=1024),
    "S6": Shape(T=50, B=16, I=1760, H=1760),
}
ALL_SHAPES = {**SHAPES, **GRID_SHAPES}  # every named shape; any of them may be run
CELLS = tuple(GATES)  # rnn_tanh, rnn_relu, lstm, gru
DEFAULT_CELLS = ("rnn_tanh", "lstm", "gru")  # rnn_relu costs what rnn_tanh costs
MODES = ("forward", "forward+backward")
IMPLEMENTATIONS = ("native", "numpy", "torch", "ort")
FORWARD_ONLY = ("ort",)  # implementations without a backward: timed in forward mode only
DTYPES = ("float32", "float64")


class AgreementError(AssertionError):
    """An implementation's results differ from the numpy reference's beyond tolerance."""


# ---------------------------------------------------------------------------------------------
# Problems


def _shape(shape):
    if isinstance(shape, Shape):
        return shape
    if shape not in ALL_SHAPES:
        raise ValueError(f"shape must be one of {tuple(ALL_SHAPES)} or a Shape, got {shape!r}")
    return ALL_SHAPES[shape]


def _dtype(dtype):
    dt = np.dtype(dtype)
    if dt.name not in DTYPES:
        raise TypeError(f"dtype must be one of {DTYPES}, got {dt}")
    return dt


def make_problem(cell, shape, dtype="float32", seed=0):
    """The arrays of one benchmark problem as a dict.

    Keys: cell, shape (a Shape), shape_name, dtype, x (T, B, I), h0 (B, H), c0 (B, H; lstm only,
    else None), w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,), dy (T, B, H), dh_n (B, H).
    Weights are U(-1/sqrt(H), 1/sqrt(H)) as PyTorch initialises them; inputs and gradients standard
    normal. Values are drawn in float64 and then cast, so both dtypes see the same numbers.
    """
    if cell not in GATES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    shape_name = shape if isinstance(shape, str) else None
    s = _shape(shape)
    dt = _dtype(dtype)
    G = GATES[cell]
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(s.H)

    def uniform(*dims):
        return rng.uniform(-k, k, dims).astype(dt)

    def normal(*dims, scale=1.0):
        return (scale * rng.standard_normal(dims)).astype(dt)

    return {
        "cell": cell,
        "shape": s,
        "shape_name": shape_name or str(s),
        "dtype": dt,
        "x": normal(s.T, s.B, s.I),
        "h0": normal(s.B, s.H, scale=0.5),
        "c0": normal(s.B, s.H, scale=0.5) if cell == "lstm" else None,
        "w_ih": uniform(G * s.H, s.I),
        "w_hh": uniform(G * s.H, s.H),
        "b_ih": uniform(G * s.H),
        "b_hh": uniform(G * s.H),
        "dy": normal(s.T, s.B, s.H),
        "dh_n": normal(s.B, s.H),
    }


# ---------------------------------------------------------------------------------------------
# Implementations


def torch_available():
    """Whether torch can be imported (a broken install counts as missing)."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def torch_version():
    if not torch_available():
        return None
    import torch

    return torch.__version__


def torch_cpu_capability():
    """The instruction set torch's own CPU kernels use ("AVX512", "AVX2", ...; ATEN_CPU_CAPABILITY
    lowers it, ONEDNN_MAX_CPU_ISA and MKL_ENABLE_INSTRUCTIONS do the same for oneDNN and MKL)."""
    if not torch_available():
        return None
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def available_implementations():
    """The implementations that can run here, in IMPLEMENTATIONS order."""
    have = {"native": native_available(), "numpy": True, "torch": torch_available(), "ort": ort_available()}
    return [name for name in IMPLEMENTATIONS if have[name]]


def configure_threads(threads=None):
    """Sets fastrnn's thread count (when given) and torch's to match; returns the count.

    NumPy's BLAS keeps its own thread count (set OMP_NUM_THREADS/OPENBLAS_NUM_THREADS before
    starting Python to change it).
    """
    if threads is not None:
        set_num_threads(threads)
    n = get_num_threads()
    if torch_available():
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    return n


def _torch_array(torch, a):
    # np.array(): a writable copy, so torch.from_numpy never warns about read-only memory.
    return torch.from_numpy(np.array(a))


def torch_module(cell, problem):
    """The torch.nn.RNN/LSTM/GRU (one layer, one direction) holding the problem's weights."""
    import torch

    s = problem["shape"]
    if cell in ("rnn_tanh", "rnn_relu"):
        module = torch.nn.RNN(s.I, s.H, nonlinearity=cell[len("rnn_") :])
    elif cell == "lstm":
        module = torch.nn.LSTM(s.I, s.H)
    elif cell == "gru":
        module = torch.nn.GRU(s.I, s.H)
    else:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    module = module.to(dtype=getattr(torch, problem["dtype"].name))
    with torch.no_grad():
        for name, key in (
            ("weight_ih_l0", "w_ih"),
            ("weight_hh_l0", "w_hh"),
            ("bias_ih_l0", "b_ih"),
            ("bias_hh_l0", "b_hh"),
        ):
            getattr(module, name).copy_(_torch_array(torch, problem[key]))
    return module


def _check_args(impl, mode):
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if impl == "native" and not native_available():
        raise RuntimeError("the native backend is not available (the extension is not built)")
    if impl == "torch" and not torch_available():
        raise RuntimeError("torch is not importable")
    if impl == "ort" and not ort_available():
        raise RuntimeError("onnx and onnxruntime are not both importable")
    if impl in FORWARD_ONLY and mode != "forward":
        raise ValueError(f"{impl} has no backward: mode must be 'forward', got {mode!r}")


def _fastrnn_runner(impl, problem, mode):
    p = problem
    args = (p["cell"], p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    fwd, bwd = functional.forward, functional.backward
    dy, dh_n = p["dy"], p["dh_n"]

    if mode == "forward":

        def run():
            y, h_n, c_n, _ = fwd(*args, training=False, backend=impl)
            return {"y": y, "h_n": h_n, "c_n": c_n}
    else:

        def run():
            y, h_n, c_n, cache = fwd(*args, training=True, backend=impl)
            dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, _ = bwd(cache, dy, dh_n, None)
            return {
                "y": y,
                "h_n": h_n,
                "c_n": c_n,
                "dx": dx,
                "dh0": dh0,
                "dc0": dc0,
                "dw_ih": dw_ih,
                "dw_hh": dw_hh,
                "db_ih": db_ih,
                "db_hh": db_hh,
            }

    return run


def _numpy_of(t):
    """A torch tensor (or None) as a NumPy array."""
    return None if t is None else t.detach().numpy()


def _clear_torch_grads(module, leaves):
    """Drops the gradients of the last timed backward, so each call computes them afresh."""
    for leaf in leaves:
        leaf.grad = None
    module.zero_grad(set_to_none=True)


def _torch_runner(problem, mode):
    import torch

    p = problem
    lstm = p["cell"] == "lstm"
    module = torch_module(p["cell"], p)
    grad = mode == "forward+backward"
    x = _torch_array(torch, p["x"]).requires_grad_(grad)
    h0 = _torch_array(torch, p["h0"])[None].requires_grad_(grad)
    c0 = _torch_array(torch, p["c0"])[None].requires_grad_(grad) if lstm else None
    hx = (h0, c0) if lstm else h0
    dy = _torch_array(torch, p["dy"])
    dh_n = _torch_array(torch, p["dh_n"])[None]

    if not grad:

        def run():
            with torch.no_grad():
                y, hn = module(x, hx)
            h_n, c_n = hn if lstm else (hn, None)
            return {
                "y": _numpy_of(y),
                "h_n": _numpy_of(h_n[0]),
                "c_n": None if c_n is None else _numpy_of(c_n[0]),
            }

        return run

    leaves = [x, h0] + ([c0] if lstm else [])

    def run():
        _clear_torch_grads(module, leaves)
        y, hn = module(x, hx)
        h_n, c_n = hn if lstm else (hn, None)
        ((y * dy).sum() + (h_n * dh_n).sum()).backward()
        return {
            "y": _numpy_of(y),
            "h_n": _numpy_of(h_n[0]),
            "c_n": None if c_n is None else _numpy_of(c_n[0]),
            "dx": _numpy_of(x.grad),
            "dh0": _numpy_of(h0.grad[0]),
            "dc0": _numpy_of(c0.grad[0]) if lstm else None,
            "dw_ih": _numpy_of(module.weight_ih_l0.grad),
            "dw_hh": _numpy_of(module.weight_hh_l0.grad),
            "db_ih": _numpy_of(module.bias_ih_l0.grad),
            "db_hh": _numpy_of(module.bias_hh_l0.grad),
        }

    return run


def make_runner(impl, problem, mode):
    """A no-argument function that runs ``impl`` once on ``problem`` in ``mode``: what is timed.

    It returns a dict of NumPy arrays: y, h_n, c_n (lstm, else None) and, for forward+backward,
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh. Setting up (e.g. the torch module) happens here,
    outside the timed function.
    """
    _check_args(impl, mode)
    if impl == "torch":
        return _torch_runner(problem, mode)
    if impl == "ort":
        return ort_runner(problem, get_num_threads())
    return _fastrnn_runner(impl, problem, mode)


def run_outputs(impl, problem, mode):
    """Runs ``impl`` once and returns its outputs (see make_runner)."""
    return make_runner(impl, problem, mode)()


# ---------------------------------------------------------------------------------------------
# Agreement with the numpy reference


def tolerances(dtype):
    """``(rtol, atol)`` for outputs (y, h_n, c_n), and ``(rtol, atol)`` for gradients.

    Outputs: ``|a - ref| <= atol + rtol * |ref|`` elementwise. Gradients (sums over T*B rows,
    so float32 rounding grows with the problem): the same with atol scaled by ``max |ref|``.
    """
    if _dtype(dtype) == np.float32:
        return (1e-4, 1e-5), (1e-3, 1e-4)
    return (1e-9, 1e-11), (1e-8, 1e-10)


_OUTPUTS = ("y", "h_n", "c_n")
_GRADIENTS = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh")


def _compare(what, name, got, ref, rtol, atol):
    if ref is None:
        if got is not None:
            raise AgreementError(f"{what}: {name} should be None, got an array")
        return 0.0
    if got is None:
        raise AgreementError(f"{what}: {name} is None, the numpy reference has an array")
    got = np.asarray(got)
    if got.shape != ref.shape:
        raise AgreementError(f"{what}: {name} has shape {got.shape}, numpy's is {ref.shape}")
    if not np.all(np.isfinite(got)):
        raise AgreementError(f"{what}: {name} has non-finite values")
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bound = atol + rtol * np.abs(ref.astype(np.float64))
    bad = diff > bound
    if np.any(bad):
        where = np.unravel_index(np.argmax(np.where(bad, diff - bound, -np.inf)), diff.shape)
        raise AgreementError(
            f"{what}: {name} differs from the numpy reference in {int(bad.sum())} of {diff.size} "
            f"elements (rtol={rtol:g}, atol={atol:.3g}); worst at {tuple(int(i) for i in where)}: "
            f"{float(got[where]):.9g} vs {float(ref[where]):.9g}; max abs diff {diff.max():.3g}"
        )
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    return float(diff.max()) / scale if diff.size and scale > 0 else 0.0


def check_agreement(impl, problem, mode, reference=None):
    """Raises AgreementError unless ``impl`` agrees with the numpy reference on ``problem``.

    Compares y, h_n and c_n (``forward``) and also every gradient (``forward+backward``); see
    tolerances(). ``reference``: the numpy backend's forward+backward outputs for this problem
    (``run_outputs("numpy", problem, "forward+backward")``), computed here when None. Returns
    the largest difference relative to each array's largest magnitude, as a float.
    """
    if reference is None:
        reference = run_outputs("numpy", problem, "forward+backward")
    got = run_outputs(impl, problem, mode)
    (rtol, atol), (grtol, gatol) = tolerances(problem["dtype"])
    what = f"{impl} {problem['cell']} {mode} {problem['shape_name']} {problem['dtype']}"
    worst = 0.0
    for name in _OUTPUTS:
        worst = max(worst, _compare(what, name, got[name], reference[name], rtol, atol))
    if mode == "forward+backward":
        for name in _GRADIENTS:
            ref = reference[name]
            scale = float(np.abs(ref).max()) if ref is not None and ref.size else 1.0
            worst = max(worst, _compare(what, name, got[name], ref, grtol, gatol * scale))
    return worst


# ---------------------------------------------------------------------------------------------
# Timing


def time_function(fn, repeat=10, warmup=1, budget_s=None, warmup_s=0.05):
    """Times ``fn()`` with time.perf_counter: untimed calls, at least ``warmup`` of them and for
    at least ``warmup_s`` seconds, then up to ``repeat`` timed calls.

    The warm-up by time is for calls of well under a millisecond: their first calls after other
    work ran slower (caches, allocator, clock), and with 20 timed calls of 0.07 ms that reached
    the median (the first grid entry, right after the sgemm run, read 0.092 ms instead of 0.070).
    With ``budget_s``, the number of timed calls shrinks so that they take about ``budget_s``
    seconds in all (estimated from the last warm-up call), but never below one. Returns a dict:
    median_ms, min_ms, mean_ms, repeat (calls timed), times_ms (each call).
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    estimate = None
    calls, began = 0, time.perf_counter()
    while calls < max(warmup, 0) or (calls and time.perf_counter() - began < warmup_s):
        start = time.perf_counter()
        fn()
        estimate = time.perf_counter() - start
        calls += 1
    n = repeat
    if budget_s is not None and estimate is not None and estimate > 0:
        n = max(1, min(repeat, int(budget_s / estimate)))
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if budget_s is not None and estimate is None and sum(times) > budget_s:
            break  # no warm-up to estimate from: stop once the budget is spent
    ms = [t * 1e3 for t in times]
    return {
        "median_ms": statistics.median(ms),
        "min_ms": min(ms),
        "mean_ms": statistics.fmean(ms),
        "repeat": len(ms),
        "times_ms": ms,
    }


def time_interleaved(fns, repeat=10, warmup=1, budget_s=None, warmup_s=0.05, probe=None):
    """Times several functions (a dict name -> fn) in rounds, one call of each per round, so that
    a machine that is busier now and then slows them all alike and their ratios hold.

    Each gets time_function's warm-up first (at least one call), then as many calls as
    time_function would give it (``repeat``, fewer when ``budget_s`` is short for it, never below
    one): the slow ones (numpy on large shapes) drop out of the later rounds. Returns a dict name ->
    time_function-style timing. ``probe``: a function called once per round, after the timed
    calls (the grid measures the FMA peak there, so that it sees the same share of a busy core);
    its values are in each timing's ``probes``.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    estimates = {}
    for name, fn in fns.items():  # the warm-up calls (at least one), the last one the estimate
        calls, began = 0, time.perf_counter()
        while calls < max(warmup, 1) or time.perf_counter() - began < warmup_s:
            start = time.perf_counter()
            fn()
            estimates[name] = time.perf_counter() - start
            calls += 1
    calls = {
        name: repeat if budget_s is None or est <= 0 else max(1, min(repeat, int(budget_s / est)))
        for name, est in estimates.items()
    }
    times = {name: [] for name in fns}
    probes = []
    for r in range(max(calls.values(), default=0)):
        for name, fn in fns.items():
            if r >= calls[name]:
                continue
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
        if probe is not None:
            probes.append(probe())
    extra = {"probes": probes} if probe is not None else {}
    return {
        name: {
            "median_ms": statistics.median(ms),
            "min_ms": min(ms),
            "mean_ms": statistics.fmean(ms),
            "repeat": len(ms),
            "times_ms": ms,
            **extra,
        }
        for name, ms in times.items()
    }


def modes_of(impl, modes):
    """The modes among ``modes`` that ``impl`` runs (forward only for FORWARD_ONLY)."""
    return [m for m in modes if m == "forward" or impl not in FORWARD_ONLY]


def _names(values, allowed, what):
    values = list(values)
    for v in values:
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; choose from {tuple(allowed)}")
    return values


def run_benchmarks(
    cells=DEFAULT_CELLS,
    shapes=tuple(SHAPES),
    modes=MODES,
    impls=None,
    dtype="float32",
    repeat=20,
    warmup=1,
    budget_s=1.0,
    threads=None,
    check=True,
    seed=0,
    on_check=None,
    on_result=None,
    probe=None,
):
    """Times every (cell, shape, mode, implementation) and returns a list of dicts, one each.

    ``impls``: None for every available implementation; a requested one that is not available
    is skipped (its dicts are absent). ``budget_s``: the time each entry's timed calls may take
    (slow entries get fewer than ``repeat`` calls). With ``check`` (default), each implementation
    is first checked against the numpy reference on every problem (AgreementError if it differs).
    ``on_check(dict)`` and ``on_result(dict)`` are called as checks and timings finish.
    ``probe``: see time_interleaved (each result then has ``probes``).

    Each result: cell, shape, T, B, I, H, mode, impl, dtype, threads, median_ms, min_ms,
    mean_ms, repeat, times_ms.
    """
    cells = _names(cells, CELLS, "cell")
    shapes = _names(shapes, ALL_SHAPES, "shape")
    modes = _names(modes, MODES, "mode")
    available = available_implementations()
    impls = (
        available if impls is None else [i for i in _names(impls, IMPLEMENTATIONS, "impl") if i in available]
    )
    dt = _dtype(dtype)
    n_threads = configure_threads(threads)

    problems = {(c, s): make_problem(c, s, dt, seed) for c in cells for s in shapes}
    if check:
        for (c, s), problem in problems.items():
            others = [i for i in impls if i != "numpy"]
            if not others:
                continue
            reference = run_outputs("numpy", problem, "forward+backward")
            for impl in others:
                for mode in modes_of(impl, modes):
                    worst = check_agreement(impl, problem, mode, reference)
                    if on_check is not None:
                        on_check(
                            {
                                "cell": c,
                                "shape": s,
                                "mode": mode,
                                "impl": impl,
                                "dtype": dt.name,
                                "max_rel_diff": worst,
                            }
                        )
            del reference

    results = []
    for c in cells:
        for s in shapes:
            problem, shape = problems[(c, s)], ALL_SHAPES[s]
            for mode in modes:
                # Interleaved, one call of each per round: the ratios are what the tables quote.
                runners = {i: make_runner(i, problem, mode) for i in impls if mode in modes_of(i, modes)}
                timings = time_interleaved(
                    runners, repeat=repeat, warmup=warmup, budget_s=budget_s, probe=probe
                )
                for impl, timing in timings.items():
                    result = {
                        "cell": c,
                        "shape": s,
                        "T": shape.T,
                        "B": shape.B,
                        "I": shape.I,
                        "H": shape.H,
                        "mode": mode,
                        "impl": impl,
                        "dtype": dt.name,
                        "threads": n_threads,
                        **timing,
                    }
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
    return results


# ---------------------------------------------------------------------------------------------
# Reporting


def summarize(results, stat="median_ms"):
    """One row per (cell, shape, mode) from run_benchmarks' results, in their order.

    Each row: cell, shape, mode, ``<impl>_ms`` for every implementation timed (``stat`` of its
    timings) and ``<impl>_over_native`` (its time / native's: > 1 means native is faster) where
    native was timed too.
    """
    rows = {}
    for r in results:
        key = (r["cell"], r["shape"], r["mode"])
        row = rows.setdefault(key, {"cell": r["cell"], "shape": r["shape"], "mode": r["mode"]})
        row[f"{r['impl']}_ms"] = r[stat]
    for row in rows.values():
        native = row.get("native_ms")
        for impl in IMPLEMENTATIONS[1:]:
            if native and f"{impl}_ms" in row:
                row[f"{impl}_over_native"] = row[f"{impl}_ms"] / native
    return list(rows.values())


def table_columns(impls):
    """The columns of format_table for these implementations: (key, title, width, kind)."""
    cols = [("cell", "cell", 9, "text"), ("shape", "shape", 7, "text"), ("mode", "mode", 17, "text")]
    cols += [(f"{i}_ms", f"{i} ms", 10, "ms") for i in impls]
    if "native" in impls:
        cols += [(f"{i}_over_native", f"{i}/native", 13, "ratio") for i in impls if i != "native"]
    return cols


def _cell_text(value, kind):
    if kind == "text":
        return str(value)
    if value is None:
        return "n/a"
    if kind == "ms":
        digits = 3 if value < 10 else 2 if value < 100 else 1 if value < 1000 else 0
        return f"{value:.{digits}f}"
    if kind == "gflops":
        return f"{value:.1f}"
    if kind == "pct":
        return f"{value:.0%}"
    return f"{value:.2f}x"


def format_row(row, columns):
    """One table line; values that are missing print as n/a."""
    parts = []
    for key, _, width, kind in columns:
        text = _cell_text(row.get(key), kind)
        parts.append(text.ljust(width) if kind == "text" else text.rjust(width))
    return "  ".join(parts).rstrip()


def format_header(columns):
    head = "  ".join(t.ljust(w) if k == "text" else t.rjust(w) for _, t, w, k in columns).rstrip()
    return head + "\n" + "-" * len(head)


def format_table(rows, impls=IMPLEMENTATIONS, columns=None):
    """summarize()'s rows as a text table with a column per implementation in ``impls``
    (``columns``: another layout, e.g. grid_table_columns(impls) for summarize_grid's rows)."""
    columns = table_columns(impls) if columns is None else columns
    return "\n".join([format_header(columns)] + [format_row(r, columns) for r in rows])


def environment():
    """What the numbers depend on: versions, native availability and CPU path, threads."""
    import platform

    from fastrnn import info

    with warnings.catch_warnings():
        # info() asks for the default backend, which warns when the extension is missing;
        # native_available / native_error say the same here.
        warnings.simplefilter("ignore", RuntimeWarning)
        env = dict(info())
    env.update(
        {
            "numpy": np.__version__,
            "torch": torch_version(),
            "torch_cpu_capability": torch_cpu_capability(),
            "onnxruntime": ort_version(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
    )
    return env


# ---------------------------------------------------------------------------------------------
# NumPy's BLAS threads and the sgemm rate that the compute-bound targets are measured against

_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def threadpoolctl_available():
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def blas_threads_info():
    """How many threads NumPy's BLAS uses, as far as it can be told; a dict.

    Keys: ``threads`` (an int when threadpoolctl reports it, else None), ``source``
    ("threadpoolctl" or "environment") and the BLAS environment variables that are set.
    """
    info = {
        "threads": None,
        "source": "environment",
        "environment": {k: os.environ[k] for k in _BLAS_ENV if k in os.environ},
    }
    if threadpoolctl_available():
        import threadpoolctl

        pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            info.update(
                threads=max(p["num_threads"] for p in pools),
                source="threadpoolctl",
                libraries=[f"{p.get('internal_api')} {p.get('version')}" for p in pools],
            )
    return info


def describe_blas_threads(info=None):
    """One line for the command line's header: numpy's BLAS threads and where they come from."""
    info = blas_threads_info() if info is None else info
    if info["threads"] is not None:
        return f"numpy BLAS threads {info['threads']} (threadpoolctl)"
    env = ", ".join(f"{k}={v}" for k, v in info["environment"].items())
    return (
        "numpy BLAS threads: not controlled by --threads (threadpoolctl is not installed); "
        "whatever " + (env if env else "OPENBLAS_NUM_THREADS/OMP_NUM_THREADS (unset: all cores)") + " says"
    )


@contextlib.contextmanager
def limit_blas_threads(threads):
    """Limits NumPy's BLAS to ``threads`` threads inside the block when threadpoolctl is importable.

    Yields True when the limit is in force, False when it could not be applied (no threadpoolctl),
    None when ``threads`` is None (nothing asked).
    """
    if threads is None:
        yield None
        return
    if not threadpoolctl_available():
        yield False
        return
    import threadpoolctl

    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        yield True
