"""Coverage-guided fuzzing (atheris / libFuzzer) of fastrnn's entry points: functional.forward and
backward on both backends, and fastrnn._native.forward / backward / matmul / hopfield_recall called
directly.

Each input is decoded into a problem (cell, dtype, sizes 0..6, flags, lengths, values that include
NaN/Inf/denormals) and, often, one corrupted argument (wrong shape, dtype, ndim, None, a stride-0
view of absurd size, a non-contiguous view). A run may return results or raise ValueError, TypeError
or MemoryError; anything else (another exception, a crash, a sanitizer report, a hang past
-timeout) is a finding. Results must have the documented shapes, and the inputs must be unchanged.

    python fuzz/fuzz_fastrnn.py -max_total_time=60 -timeout=20      # plain build
    .ci/sanitize python fuzz/fuzz_fastrnn.py -max_total_time=60      # under ASan + UBSan

Coverage guidance comes from fastrnn's Python code (instrumented at import); the C++ is exercised
but not instrumented (GCC cannot emit libFuzzer's trace-pc-guard).
"""

import sys
import warnings

import atheris
import numpy as np

import fastrnn  # noqa: E402
from fastrnn import _native  # noqa: E402
from fastrnn import functional as F  # noqa: E402


def _instrument_fastrnn():
    """Coverage instrumentation for fastrnn's Python code. (atheris.instrument_imports() misses it
    when an editable install's import hook loads the package.)"""
    import inspect
    count = 0
    for name, module in list(sys.modules.items()):
        if name != "fastrnn" and not name.startswith("fastrnn."):
            continue
        for obj in vars(module).values():
            members = [obj] + ([m for m in vars(obj).values()] if inspect.isclass(obj) else [])
            for f in members:
                if inspect.isfunction(f) and f.__module__ == name:
                    atheris.instrument_func(f)
                    count += 1
    return count

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
CELLS = list(GATES) + ["bad"]
ALLOWED = (ValueError, TypeError, MemoryError)
NAMES = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr")
SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 1e-310, 1e30, -1e30]


def values(fdp, shape, dtype):
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty(n, np.float64)
    for k in range(n):
        choice = fdp.ConsumeIntInRange(0, 15)
        out[k] = SPECIALS[choice] if choice < len(SPECIALS) else fdp.ConsumeFloatInRange(-4.0, 4.0)
    with np.errstate(all="ignore"):
        return out.astype(dtype).reshape(shape)


def corrupt(fdp, a, dtype):
    """A wrong or unusual replacement for array ``a`` (which may be None)."""
    if (not isinstance(a, np.ndarray) or a.dtype == object or a.size > 1 << 16
            or max(a.shape, default=0) > 1 << 16):  # an empty view can have a huge axis
        a = None  # corrupted already: start again from nothing
    shape = (2, 2) if a is None else a.shape
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind == 0:
        return None
    if kind == 1:
        return np.zeros(shape, fdp.PickValueInList([np.int64, np.complex64, np.float16, object,
                                                    np.bool_, "U2", np.float32, np.float64]))
    if kind == 2:
        return np.zeros(shape + (1,), dtype)
    if kind == 3 and len(shape):
        new = list(shape)
        new[fdp.ConsumeIntInRange(0, len(shape) - 1)] += fdp.ConsumeIntInRange(1, 3)
        if np.prod(new, dtype=np.float64) > 1 << 20:  # the harness itself must not run out of memory
            return np.broadcast_to(np.zeros((1,) * len(new), dtype), new)
        return np.zeros(new, dtype)
    if kind == 4 and len(shape):  # stride-0 view of an absurd size
        new = list(shape)
        new[fdp.ConsumeIntInRange(0, len(shape) - 1)] = 2 ** fdp.ConsumeIntInRange(40, 45)
        try:
            return np.broadcast_to(np.zeros((1,) * len(shape), dtype), new)
        except ValueError:  # more elements than numpy can index
            return None
    if kind == 5 and a is not None and a.ndim:  # non-contiguous, same values
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if kind == 6:
        return fdp.PickValueInList(["abc", 3, 1.5, [], [[1.0, 2.0], [3.0]], b"\x00" * 8])
    if kind == 7 and a is not None:
        return a.astype(a.dtype.newbyteorder(">"))
    if kind == 8 and a is not None:
        return a.T
    return a


def problem(fdp):
    cell = fdp.PickValueInList(CELLS)
    G = GATES.get(cell, 4)
    dtype = fdp.PickValueInList([np.float32, np.float64])
    T, B, I = (fdp.ConsumeIntInRange(0, 6) for _ in range(3))
    H = fdp.ConsumeIntInRange(1, 6)
    P = fdp.ConsumeIntInRange(1, 5) if cell == "lstm" and fdp.ConsumeBool() else None
    Pr = P or H
    args = {
        "x": values(fdp, (T, B, I), dtype),
        "h0": values(fdp, (B, Pr), dtype) if fdp.ConsumeBool() else None,
        "c0": values(fdp, (B, H), dtype) if cell == "lstm" and fdp.ConsumeBool() else None,
        "w_ih": values(fdp, (G * H, I), dtype),
        "w_hh": values(fdp, (G * H, Pr), dtype),
        "b_ih": values(fdp, (G * H,), dtype) if fdp.ConsumeBool() else None,
        "b_hh": values(fdp, (G * H,), dtype) if fdp.ConsumeBool() else None,
        "w_hr": values(fdp, (Pr, H), dtype) if P else None,
    }
    lengths = None
    if fdp.ConsumeBool():
        lengths = np.array([fdp.ConsumeIntInRange(-1, T + 1) for _ in range(B)], np.int64)
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        name = fdp.PickValueInList(list(NAMES) + ["lengths"])
        if name == "lengths":
            lengths = corrupt(fdp, lengths, np.int64)
        else:
            args[name] = corrupt(fdp, args[name], dtype)
    return cell, args, lengths, fdp.ConsumeBool()


def snapshot(args):
    # (Stride-0 views of absurd sizes are read-only anyway: not copied.)
    return {k: np.array(v, copy=True) for k, v in args.items()
            if isinstance(v, np.ndarray) and v.dtype != object and v.size < 1 << 16}


def unchanged(before, after):
    for k, v in before.items():
        assert np.array_equal(v, after[k], equal_nan=v.dtype.kind == "f"), f"{k} was modified"


def run_functional(fdp, cell, args, lengths, reverse, backend):
    y, h_n, c_n, cache = F.forward(cell, *(args[n] for n in NAMES), lengths=lengths,
                                   reverse=reverse, training=True, backend=backend)
    T, B = y.shape[:2]
    assert h_n.shape == (B, y.shape[2]) and (c_n is None) == (cell != "lstm")
    up = [values(fdp, y.shape, y.dtype) if fdp.ConsumeBool() else None,
          values(fdp, h_n.shape, y.dtype) if fdp.ConsumeBool() else None,
          None if c_n is None or not fdp.ConsumeBool() else values(fdp, c_n.shape, y.dtype)]
    if fdp.ConsumeIntInRange(0, 3) == 0:
        k = fdp.ConsumeIntInRange(0, 2)
        up[k] = corrupt(fdp, up[k], y.dtype)
    grads = F.backward(cache, *up)
    assert len(grads) == 8 and grads[0].shape == (T, B, args["x"].shape[2])


def run_native(fdp, cell, args, lengths, reverse):
    dtype = args["x"].dtype if isinstance(args["x"], np.ndarray) else np.float64
    h0 = args["h0"]
    if h0 is None and isinstance(args["x"], np.ndarray) and args["x"].ndim == 3 \
            and isinstance(args["w_hh"], np.ndarray) and args["w_hh"].ndim == 2:
        h0 = np.zeros((args["x"].shape[1], args["w_hh"].shape[1]), dtype)
    out = _native.forward(cell, args["x"], h0, args["c0"], args["w_ih"], args["w_hh"], args["b_ih"],
                          args["b_hh"], args["w_hr"], lengths, reverse, True)
    y, h_n, c_n, cache = out
    dy = values(fdp, y.shape, y.dtype)
    dh = values(fdp, h_n.shape, y.dtype)
    dc = None if c_n is None else values(fdp, c_n.shape, y.dtype)
    if fdp.ConsumeBool():
        which = fdp.ConsumeIntInRange(0, 2)
        dy, dh, dc = [corrupt(fdp, a, y.dtype) if i == which else a
                      for i, a in enumerate((dy, dh, dc))]
    _native.backward(cache, dy, dh, dc)


def strided(fdp, rows, cols, dtype):
    """A (rows, cols) array that may be a transposed, reversed or strided view of a larger one."""
    step_r, step_c = fdp.ConsumeIntInRange(1, 2), fdp.ConsumeIntInRange(1, 2)
    base = values(fdp, (rows * step_r, cols * step_c), dtype)[::step_r, ::step_c]
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 1:
        base = np.ascontiguousarray(base.T).T  # Fortran order
    elif kind == 2:
        base = base[::-1, ::-1]
    return base


def run_matmul(fdp):
    """_native.matmul on strided views (and some wrong arguments): no crash, and when it accepts
    finite operands its result matches NumPy's."""
    dtype = (np.float32, np.float64)[fdp.ConsumeIntInRange(0, 1)]
    M, K, N = (fdp.ConsumeIntInRange(0, 9) for _ in range(3))
    a, b = strided(fdp, M, K, dtype), strided(fdp, K, N, dtype)
    out = np.zeros((M, N), dtype)
    accumulate = fdp.ConsumeBool()
    if fdp.ConsumeIntInRange(0, 7) == 0:  # a wrong argument: only the error is checked
        which = fdp.ConsumeIntInRange(0, 2)
        a, b, out = [corrupt(fdp, v, dtype) if i == which else v for i, v in enumerate((a, b, out))]
        _native.matmul(a, b, out, accumulate)
        return
    _native.matmul(a, b, out, accumulate)
    if np.isfinite(a).all() and np.isfinite(b).all() and np.all(np.abs(a) < 1e20) \
            and np.all(np.abs(b) < 1e20):
        np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64),
                                   rtol=1e-3, atol=1e-3 * (1 + np.abs(a).max(initial=0)
                                                           * np.abs(b).max(initial=0) * K))


def run_hopfield(fdp):
    """_native.hopfield_recall with small, sometimes invalid, weights, states and orders."""
    N = fdp.ConsumeIntInRange(1, 12)
    B = fdp.ConsumeIntInRange(0, 4)
    sweeps = fdp.ConsumeIntInRange(0, 4)
    p = np.array([[fdp.ConsumeIntInRange(0, 1) * 2 - 1 for _ in range(N)]
                  for _ in range(fdp.ConsumeIntInRange(0, 3))], np.int32).reshape(-1, N)
    weights = (p.T @ p).astype(np.int32)
    np.fill_diagonal(weights, 0)
    if fdp.ConsumeIntInRange(0, 5) == 0:  # break symmetry, the diagonal or the values
        weights[fdp.ConsumeIntInRange(0, N - 1), fdp.ConsumeIntInRange(0, N - 1)] += \
            fdp.ConsumeIntInRange(-2**31, 2**31 - 1) // 2
    states = np.array([[fdp.ConsumeIntInRange(-1, 1) or 1 for _ in range(N)]
                       for _ in range(B)], np.int8).reshape(B, N)
    mode = ("async", "sync", "bad")[fdp.ConsumeIntInRange(0, 2)]
    order = None
    if mode != "sync":
        order = np.array([np.random.default_rng(fdp.ConsumeIntInRange(0, 99)).permutation(N)
                          for _ in range(max(sweeps, 0))], np.int32).reshape(-1, N)
        if order.size and fdp.ConsumeIntInRange(0, 5) == 0:
            order.flat[fdp.ConsumeIntInRange(0, order.size - 1)] = fdp.ConsumeIntInRange(-3, N + 3)
    _native.hopfield_recall(weights, states, mode, sweeps, order)


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 4)
    threads = fdp.ConsumeIntInRange(1, 3)
    cell, args, lengths, reverse = problem(fdp)
    before = snapshot(dict(args, lengths=lengths))
    fastrnn.set_num_threads(threads)
    _native.set_parallel_grain(0.0 if threads > 1 else 1.0)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if target == 3:
                run_matmul(fdp)
            elif target == 4:
                run_hopfield(fdp)
            elif target == 2:
                run_native(fdp, cell, args, lengths, reverse)
            else:
                run_functional(fdp, cell, args, lengths, reverse, ("native", "numpy")[target])
    except ALLOWED:
        pass
    unchanged(before, dict(args, lengths=lengths))


def main():
    print(f"fuzz: instrumented {_instrument_fastrnn()} fastrnn functions", flush=True)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
