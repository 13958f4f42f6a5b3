"""``python -m fastrnn bench``: a short timing of this installation, native vs numpy vs PyTorch vs
ONNX Runtime.

One layer, one direction (fastrnn.functional) per cell on one shape, forward (inference) and
forward+backward (every gradient). Each implementation is first checked against the numpy backend
(the reference) on the same problem; a disagreement stops the run before anything is timed.
torch (torch.nn.RNN/LSTM/GRU with the same weights) runs only when it is importable, ONNX Runtime
(one ONNX RNN/LSTM/GRU node with the same weights; forward only: it is an inference engine) only
when onnx and onnxruntime are. Everything runs on fastrnn's thread count: torch's intra-op
threads, ORT's session and NumPy's BLAS (through threadpoolctl, when installed) are set to it, so
that no library's idle threads spin against another's. The core's fp32 FMA peak (the native
module's FMA-chain loop) rates the native rows. The project's performance grid with its targets is
not here: it lives in the repository's benchmarks/.
"""

import contextlib
import math
import statistics
import time

import numpy as np

from . import _backend, convert, functional
from ._cells import GATES

MODES = ("forward", "forward+backward")
DEFAULT_CELLS = ("rnn_tanh", "lstm", "gru")
SHAPE = {"T": 50, "B": 16, "I": 64, "H": 128}
# Agreement with numpy, relative to the largest magnitude of the reference array.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def _torch():
    try:
        import torch
    except (ImportError, OSError):  # missing, or a broken install
        return None
    return torch


def _ort():
    try:
        import onnx  # noqa: F401 (builds the model)
        import onnxruntime
    except (ImportError, OSError):
        return None
    return onnxruntime


@contextlib.contextmanager
def _blas_threads(n):
    """NumPy's BLAS limited to ``n`` threads inside the block (threadpoolctl, when installed);
    yields whether the limit is in force."""
    try:
        import threadpoolctl
    except ImportError:
        yield False
        return
    with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
        yield True


def onnx_model(cell, weights, T, B, I, H, dtype):
    """The serialized ONNX model of one ``cell`` layer, one direction, with ``weights`` (w_ih,
    w_hh, b_ih, b_hh in PyTorch's layout) as initializers: inputs X (T, B, I), initial_h (1, B, H)
    and, for the LSTM, initial_c; outputs Y (T, 1, B, H), Y_h (and Y_c)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # The bench's GRU is PyTorch's (reset_after=True): the node says linear_before_reset=1.
    node = (
        convert.to_onnx(cell, weights, reset_after=True) if cell == "gru" else convert.to_onnx(cell, weights)
    )
    elem = TensorProto.FLOAT if np.dtype(dtype) == np.float32 else TensorProto.DOUBLE
    states = ["initial_h"] + (["initial_c"] if cell == "lstm" else [])
    outputs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    inits = [numpy_helper.from_array(np.ascontiguousarray(node[k]), k) for k in ("W", "R", "B")]
    graph = helper.make_graph(
        [helper.make_node(node["op_type"], ["X", "W", "R", "B", ""] + states, outputs, **node["attributes"])],
        f"fastrnn_{cell}",
        [helper.make_tensor_value_info("X", elem, [T, B, I])]
        + [helper.make_tensor_value_info(n, elem, [1, B, H]) for n in states],
        [helper.make_tensor_value_info("Y", elem, [T, 1, B, H])]
        + [helper.make_tensor_value_info(n, elem, [1, B, H]) for n in outputs[1:]],
        initializer=inits,
    )
    # Opset 14 (RNN/LSTM/GRU with `layout`) and IR 8: what any onnxruntime since 1.10 runs.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def ort_forward(cell, weights, x, h0, c0, threads):
    """A no-argument function running ONNX Runtime's node forward on (x, h0, c0): returns
    [y, h_n, c_n] (c_n None unless lstm). The session has ``threads`` intra-op threads (the
    caller among them), no inter-op parallelism and, on one thread, no spinning."""
    import onnxruntime

    T, B, I = x.shape
    H = h0.shape[-1]
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    if threads == 1:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = onnx_model(cell, weights, T, B, I, H, x.dtype)
    session = onnxruntime.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    lstm = cell == "lstm"
    feed = {"X": np.ascontiguousarray(x), "initial_h": np.ascontiguousarray(h0[None])}
    if lstm:
        feed["initial_c"] = np.ascontiguousarray(c0[None])
    names = ["Y", "Y_h"] + (["Y_c"] if lstm else [])

    def run():
        out = session.run(names, feed)
        return [out[0][:, 0], out[1][0], out[2][0] if lstm else None]

    return run


def _problem(cell, dtype, seed):
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


def _fastrnn_runner(cell, p, mode, backend):
    args = (cell, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    if mode == "forward":

        def run():
            y, h_n, c_n, _ = functional.forward(*args, training=False, backend=backend)
            return [y, h_n, c_n]
    else:

        def run():
            y, h_n, c_n, cache = functional.forward(*args, training=True, backend=backend)
            grads = functional.backward(cache, p["dy"], p["dh_n"], None)
            return [y, h_n, c_n] + list(grads[:7])  # dx dh0 dc0 dw_ih dw_hh db_ih db_hh

    return run


def _torch_runner(torch, cell, p, mode):
    I, H = SHAPE["I"], SHAPE["H"]
    lstm = cell == "lstm"
    if cell.startswith("rnn_"):
        module = torch.nn.RNN(I, H, nonlinearity=cell[len("rnn_") :])
    else:
        module = (torch.nn.LSTM if lstm else torch.nn.GRU)(I, H)
    module = module.to(dtype=getattr(torch, p["x"].dtype.name))

    def tensor(a):
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

    def numpy(t):
        return None if t is None else t.detach().numpy()

    def run():
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


def _largest_difference(got, ref):
    """max |got - ref| / max |ref| over the arrays (None where the reference has none)."""
    worst = 0.0
    for a, b in zip(got, ref):
        if b is None or b.size == 0:
            continue
        scale = max(float(np.max(np.abs(b))), 1e-30)
        worst = max(worst, float(np.max(np.abs(np.asarray(a, np.float64) - b))) / scale)
    return worst


def _flops(cell, mode):
    """2*M*N*K per product: the input and recurrent products forward, twice that backward."""
    T, B, I, H = SHAPE["T"], SHAPE["B"], SHAPE["I"], SHAPE["H"]
    forward = 2.0 * T * B * GATES[cell] * H * (I + H)
    return forward if mode == "forward" else 3.0 * forward


def _median_ms(run, repeat):
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _runner(impl, torch, cell, p, mode, threads):
    if impl == "torch":
        return _torch_runner(torch, cell, p, mode)
    if impl == "ort":
        weights = {k: p[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
        return ort_forward(cell, weights, p["x"], p["h0"], p["c0"], threads)
    return _fastrnn_runner(cell, p, mode, impl)


def _fma_peak():
    """The active path's fp32 FMA rate (best of 3 short runs), or None without the extension."""
    native = _backend.native_module()
    if native is None or not hasattr(native, "fma_peak"):
        return None
    return max(native.fma_peak(0.05)["gflops"] for _ in range(3)), native.active_path()


def run(cells=DEFAULT_CELLS, dtype="float32", repeat=10, use_torch=True, use_ort=True, seed=0, out=print):
    """Checks, then times, every cell in both modes; prints the table through ``out``.

    Returns 0, or 1 when an implementation disagrees with the numpy reference (nothing is timed).
    """
    threads = _backend.get_num_threads()
    with _blas_threads(threads) as pinned:
        return _run(cells, dtype, repeat, use_torch, use_ort, seed, out, threads, pinned)


def _run(cells, dtype, repeat, use_torch, use_ort, seed, out, threads, pinned):
    torch = _torch() if use_torch else None
    ort = _ort() if use_ort else None
    impls = (
        (["native"] if _backend.native_available() else [])
        + ["numpy"]
        + (["torch"] if torch else [])
        + (["ort"] if ort else [])
    )
    if torch is not None:
        torch.set_num_threads(threads)
    runners = {}
    for cell in cells:
        p = _problem(cell, dtype, seed)
        for mode in MODES:
            runners[cell, mode] = {
                impl: _runner(impl, torch, cell, p, mode, threads)
                for impl in impls
                if impl != "ort" or mode == "forward"
            }
    others = [i for i in impls if i != "numpy"]
    worst = 0.0
    for (cell, mode), by_impl in runners.items():
        ref = by_impl["numpy"]()
        for impl in [i for i in others if i in by_impl]:
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
    blas = "numpy BLAS pinned" if pinned else "numpy BLAS threads not pinned (pip install threadpoolctl)"
    out(f"shape {shape}  dtype {dtype}  threads {threads} (native, torch, ort; {blas})")
    out(f"median of {repeat} calls")
    peak = _fma_peak() if "native" in impls else None
    if peak is not None:
        out(f"FMA peak of this core ({peak[1]} path, fp32, one thread): {peak[0]:.1f} GFLOP/s")
    ratios = [i for i in ("numpy", "torch", "ort") if i in impls and "native" in impls]
    head = f"{'cell':9s} {'mode':17s}" + "".join(f"{i + ' ms':>11s}" for i in impls)
    head += "".join(f"{i + '/native':>14s}" for i in ratios)
    head += f"{'GFLOP/s':>9s}{'%peak':>7s}" if peak is not None else ""
    out(head)
    out("-" * len(head))
    for (cell, mode), by_impl in runners.items():
        ms = {impl: _median_ms(fn, repeat) for impl, fn in by_impl.items()}
        line = f"{cell:9s} {mode:17s}" + "".join(
            f"{ms[i]:11.3f}" if i in ms else f"{'n/a':>11s}" for i in impls
        )
        line += "".join(f"{ms[i] / ms['native']:13.2f}x" if i in ms else f"{'n/a':>14s}" for i in ratios)
        if peak is not None:
            gflops = _flops(cell, mode) / (ms["native"] * 1e6)
            line += f"{gflops:9.1f}{gflops / peak[0]:7.0%}"
        out(line)
    if "native" not in impls:
        out("native: unavailable (the extension is not built); only numpy and torch were timed")
    out(
        "x/native > 1: native is faster. The project's grid with its targets: benchmarks/ in the "
        "repository (python -m benchmarks)."
    )
    return 0
