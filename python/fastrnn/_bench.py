"""``python -m fastrnn bench``: a short timing of this installation, native vs numpy vs PyTorch.

One layer, one direction (fastrnn.functional) per cell on one shape, forward (inference) and
forward+backward (every gradient). Each implementation is first checked against the numpy backend
(the reference) on the same problem; a disagreement stops the run before anything is timed.
torch (torch.nn.RNN/LSTM/GRU with the same weights) runs only when it is importable. The project's
performance grid with its targets is not here: it lives in the repository's benchmarks/.
"""

import math
import statistics
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _backend, functional
from ._cells import GATES

_Problem = dict[str, "NDArray[Any] | None"]
# One timed call: its outputs (and gradients), None where an implementation has none
_Runner = Callable[[], "list[NDArray[Any] | None]"]

MODES = ("forward", "forward+backward")
DEFAULT_CELLS = ("rnn_tanh", "lstm", "gru")
SHAPE = {"T": 50, "B": 16, "I": 64, "H": 128}
# Agreement with numpy, relative to the largest magnitude of the reference array.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def _torch() -> ModuleType | None:
    try:
        import torch
    except (ImportError, OSError):  # missing, or a broken install
        return None
    return torch


def _problem(cell: str, dtype: str, seed: int) -> _Problem:
    T, B, I, H, G = SHAPE["T"], SHAPE["B"], SHAPE["I"], SHAPE["H"], GATES[cell]
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(H)  # PyTorch's initialisation range
    p = {
        "x": rng.standard_normal((T, B, I)),
        "h0": 0.5 * rng.standard_normal((B, H)),
        "c0": 0.5 * rng.standard_normal((B, H)) if cell == "lstm" else None,
        "w_ih": rng.uniform(-k, k, (G * H, I)),
        "w_hh": rng.uniform(-k, k, (G * H, H)),
        "b_ih": rng.uniform(-k, k, G * H),
        "b_hh": rng.uniform(-k, k, G * H),
        "dy": rng.standard_normal((T, B, H)),
        "dh_n": rng.standard_normal((B, H)),
    }
    return {key: None if a is None else a.astype(dtype) for key, a in p.items()}


def _fastrnn_runner(cell: str, p: _Problem, mode: str, backend: str) -> _Runner:
    args: tuple[str, Any, Any, Any, Any, Any, Any, Any] = (
        cell,
        p["x"],
        p["h0"],
        p["c0"],
        p["w_ih"],
        p["w_hh"],
        p["b_ih"],
        p["b_hh"],
    )
    if mode == "forward":

        def run() -> list[NDArray[Any] | None]:
            y, h_n, c_n, _ = functional.forward(*args, training=False, backend=backend)
            return [y, h_n, c_n]
    else:

        def run() -> list[NDArray[Any] | None]:
            y, h_n, c_n, cache = functional.forward(*args, training=True, backend=backend)
            grads = functional.backward(cache, p["dy"], p["dh_n"], None)
            return [y, h_n, c_n] + list(grads[:7])  # dx dh0 dc0 dw_ih dw_hh db_ih db_hh

    return run


def _torch_runner(torch: Any, cell: str, p: _Problem, mode: str) -> _Runner:
    I, H = SHAPE["I"], SHAPE["H"]
    lstm = cell == "lstm"
    if cell.startswith("rnn_"):
        module = torch.nn.RNN(I, H, nonlinearity=cell[len("rnn_") :])
    else:
        module = (torch.nn.LSTM if lstm else torch.nn.GRU)(I, H)
    x_ref = p["x"]
    assert x_ref is not None  # every problem has an input
    module = module.to(dtype=getattr(torch, x_ref.dtype.name))

    def tensor(a: NDArray[Any] | None) -> Any:
        return torch.from_numpy(np.array(a))  # a writable copy: from_numpy never warns

    with torch.no_grad():
        for name, key in (
            ("weight_ih_l0", "w_ih"),
            ("weight_hh_l0", "w_hh"),
            ("bias_ih_l0", "b_ih"),
            ("bias_hh_l0", "b_hh"),
        ):
            getattr(module, name).copy_(tensor(p[key]))
    grad = mode == "forward+backward"
    x = tensor(p["x"]).requires_grad_(grad)
    h0 = tensor(p["h0"])[None].requires_grad_(grad)
    c0 = tensor(p["c0"])[None].requires_grad_(grad) if lstm else None
    dy, dh_n = tensor(p["dy"]), tensor(p["dh_n"])[None]

    def numpy(t: Any) -> NDArray[Any] | None:
        return None if t is None else t.detach().numpy()

    def run() -> list[NDArray[Any] | None]:
        for leaf in (x, h0, c0):
            if leaf is not None:
                leaf.grad = None
        module.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(grad):
            y, hn = module(x, (h0, c0) if lstm else h0)
        h_n, c_n = hn if lstm else (hn, None)
        out = [numpy(y), numpy(h_n[0]), None if c_n is None else numpy(c_n[0])]
        if not grad:
            return out
        ((y * dy).sum() + (h_n * dh_n).sum()).backward()
        return (
            out
            + [numpy(x.grad), numpy(h0.grad[0]), None if c0 is None else numpy(c0.grad[0])]
            + [
                numpy(getattr(module, name).grad)
                for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
            ]
        )

    return run


def _largest_difference(got: Sequence[NDArray[Any] | None], ref: Sequence[NDArray[Any] | None]) -> float:
    """max |got - ref| / max |ref| over the arrays (None where the reference has none)."""
    worst = 0.0
    for a, b in zip(got, ref):
        if b is None or b.size == 0:
            continue
        scale = max(float(np.max(np.abs(b))), 1e-30)
        worst = max(worst, float(np.max(np.abs(np.asarray(a, np.float64) - b))) / scale)
    return worst


def _median_ms(run: _Runner, repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def run(
    cells: Sequence[str] = DEFAULT_CELLS,
    dtype: str = "float32",
    repeat: int = 10,
    use_torch: bool = True,
    seed: int = 0,
    out: Callable[[str], object] = print,
) -> int:
    """Checks, then times, every cell in both modes; prints the table through ``out``.

    Returns 0, or 1 when an implementation disagrees with the numpy reference (nothing is timed).
    """
    torch = _torch() if use_torch else None
    impls = (["native"] if _backend.native_available() else []) + ["numpy"] + (["torch"] if torch else [])
    if torch is not None:
        torch.set_num_threads(_backend.get_num_threads())
    runners = {}
    for cell in cells:
        p = _problem(cell, dtype, seed)
        for mode in MODES:
            runners[cell, mode] = {
                impl: (
                    _torch_runner(torch, cell, p, mode)
                    if impl == "torch"
                    else _fastrnn_runner(cell, p, mode, impl)
                )
                for impl in impls
            }
    others = [i for i in impls if i != "numpy"]
    worst = 0.0
    for (cell, mode), by_impl in runners.items():
        ref = by_impl["numpy"]()
        for impl in others:
            diff = _largest_difference(by_impl[impl](), ref)
            if not diff <= TOLERANCE[dtype]:
                out(
                    f"error: {impl} disagrees with numpy on {cell} {mode}: largest difference "
                    f"{diff:.1e} of the array's max (tolerance {TOLERANCE[dtype]:g}); not timing"
                )
                return 1
            worst = max(worst, diff)
    if others:
        out(
            f"ok: {', '.join(others)} agree{'s' if len(others) == 1 else ''} with numpy on every "
            f"output and gradient (largest difference {worst:.1e} of the array's max)"
        )
    shape = " ".join(f"{k}={v}" for k, v in SHAPE.items())
    out(f"shape {shape}  dtype {dtype}  threads {_backend.get_num_threads()}  median of {repeat} calls")
    ratios = [i for i in ("numpy", "torch") if i in impls and "native" in impls]
    head = f"{'cell':9s} {'mode':17s}" + "".join(f"{i + ' ms':>11s}" for i in impls)
    head += "".join(f"{i + '/native':>14s}" for i in ratios)
    out(head)
    out("-" * len(head))
    for (cell, mode), by_impl in runners.items():
        ms = {impl: _median_ms(fn, repeat) for impl, fn in by_impl.items()}
        line = f"{cell:9s} {mode:17s}" + "".join(f"{ms[i]:11.3f}" for i in impls)
        line += "".join(f"{ms[i] / ms['native']:13.2f}x" for i in ratios)
        out(line)
    if "native" not in impls:
        out("native: unavailable (the extension is not built); only numpy and torch were timed")
    out(
        "x/native > 1: native is faster. The project's grid with its targets: benchmarks/ in the "
        "repository (python -m benchmarks)."
    )
    return 0
