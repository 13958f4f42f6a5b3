"""Property-based tests (hypothesis): random shapes (0 and 1 included), dtypes, memory layouts,
lengths, directions, biases and projections. Every call either matches the NumPy reference or raises
ValueError/TypeError; nothing crashes. Direct calls into fastrnn._native with arbitrary arguments must
raise (ValueError, TypeError or MemoryError) or succeed, never crash the interpreter."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from fastrnn import functional as F

from helpers import CELL_VARIANTS, GATES, GRADS, OUTPUTS, assert_close, make_problem, run, tolerance

pytestmark = pytest.mark.native

# CI runs a fixed, modest set of examples; FASTRNN_HYPOTHESIS_EXAMPLES=N runs N random ones per test
# (a longer local search: no derandomisation, so every run explores new inputs).
_EXAMPLES = os.environ.get("FASTRNN_HYPOTHESIS_EXAMPLES")


def _settings(examples):
    # (No "explain" phase: it imports a module that warns, which the strict config turns into an
    # error that hides the real failure.)
    return settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else examples,
        deadline=None,
        derandomize=not _EXAMPLES,
        database=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


SETTINGS = _settings(80)


# -------------------------------------------------------------------------------------------------
# Layouts: the same values in a differently laid-out array (the API copies what is not C-contiguous).


def relayout(a, how):
    if a is None or how == "c":
        return a
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "strided":  # every other element of a larger buffer along the last axis
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],) if a.ndim else (), a.dtype)
        if a.ndim == 0:
            return a
        big[..., ::2] = a
        return big[..., ::2]
    if how == "reversed":  # negative strides on the first axis
        return a[::-1].copy()[::-1]
    if how == "bigendian":
        return a.astype(a.dtype.newbyteorder(">"))
    raise AssertionError(how)


LAYOUTS = st.sampled_from(["c", "c", "fortran", "strided", "reversed", "bigendian"])


@st.composite
def problems(draw):
    variant = draw(st.sampled_from(list(CELL_VARIANTS)))
    cell, proj = CELL_VARIANTS[variant]
    T = draw(st.integers(0, 6))
    B = draw(st.integers(0, 4))
    I = draw(st.integers(0, 5))
    H = draw(st.integers(1, 6))
    P = draw(st.integers(1, 5)) if proj else None
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    problem = make_problem(cell, T, B, I, H, P, dtype, bias, seed)
    if draw(st.booleans()):
        problem["h0"] = None
        if cell == "lstm":
            problem["c0"] = None
    problem = {k: relayout(v, draw(LAYOUTS)) for k, v in problem.items()}
    lengths = None
    if draw(st.booleans()):
        lengths = np.array(draw(st.lists(st.integers(0, T), min_size=B, max_size=B)), np.int64)
        lengths = lengths.astype(draw(st.sampled_from([np.int64, np.int32, np.uint16])))
    reverse = draw(st.booleans())
    return cell, problem, lengths, reverse


def _upstream(cell, problem, T, B, seed):
    rng = np.random.default_rng(seed)
    dtype = problem["x"].dtype.newbyteorder("=")
    P = problem["w_hh"].shape[1]
    H = problem["w_ih"].shape[0] // GATES[cell]
    dy = rng.standard_normal((T, B, P)).astype(dtype)
    dh = rng.standard_normal((B, P)).astype(dtype)
    dc = rng.standard_normal((B, H)).astype(dtype) if cell == "lstm" else None
    return dy, dh, dc


@SETTINGS
@given(problems(), st.integers(0, 100))
def test_valid_calls_match_reference(case, seed):
    cell, problem, lengths, reverse = case
    T, B = problem["x"].shape[:2]
    up = _upstream(cell, problem, T, B, seed)
    expected = run(problem, cell, "numpy", lengths, reverse, up)
    actual = run(problem, cell, "native", lengths, reverse, up)
    assert_sums_close(actual, expected, T * B)


def assert_sums_close(actual, expected, rows):
    """helpers' tolerances, with the absolute part relative to max(1, scale) * sqrt(rows + 1):
    bias and weight gradients are sums over T*B rows of O(1) terms, and when those terms cancel the
    result is far smaller than the rounding error of its terms (seen: db_ih = 0.0135 from 20 terms
    of size ~1 in float32, off by 1.2e-6 in both backends' own rounding)."""
    for name in OUTPUTS + GRADS:
        exp = expected[name]
        if exp is None or exp.size == 0:
            assert_close(actual[name], exp, name)
            continue
        _, atol_rel = tolerance(exp.dtype)
        scale = float(np.max(np.abs(exp.astype(np.float64))))
        floor = max(1.0, scale) * np.sqrt(rows + 1)
        assert_close(actual[name], exp, name, atol_rel=atol_rel * floor / max(scale, 1e-300))


# -------------------------------------------------------------------------------------------------
# One argument broken: both backends raise ValueError/TypeError (the same type).


def _bad_values(draw, name, a, dtype):
    """A replacement for argument ``name`` (current value ``a``) that must be rejected."""
    kinds = ["dtype", "ndim", "shape"]
    if name in ("x", "w_ih", "w_hh"):
        kinds.append("none")
    kind = draw(st.sampled_from(kinds))
    shape = (2, 3) if a is None else a.shape
    if kind == "none":
        return None
    if kind == "dtype":
        other = np.float32 if dtype == np.float64 else np.float64
        bad = draw(st.sampled_from([np.int64, np.complex128, np.bool_, np.float16, object, "U3", other]))
        if name == "x" and bad is other:
            bad = np.int32  # for x, the other float dtype is valid: it sets the dtype
        return np.zeros(shape, dtype=bad)
    if kind == "ndim":
        return np.zeros(shape + (1,), dtype)
    # shape: one axis one larger (or a new size when the array was absent)
    if len(shape) == 0:
        return np.zeros((1,), dtype)
    axis = draw(st.integers(0, len(shape) - 1))
    new = list(shape)
    new[axis] += draw(st.integers(1, 3))
    return np.zeros(tuple(new), dtype)


@SETTINGS
@given(problems(), st.data())
def test_one_bad_argument_raises(case, data):
    cell, problem, lengths, reverse = case
    dtype = problem["x"].dtype.newbyteorder("=")
    names = ["x", "w_ih", "w_hh", "h0"] + [
        n for n in ("c0", "b_ih", "b_hh", "w_hr") if problem[n] is not None
    ]
    name = data.draw(st.sampled_from(names + ["lengths", "cell", "reverse"]))
    args = dict(problem, lengths=lengths, reverse=reverse, cell=cell)
    if name == "lengths":
        T, B = problem["x"].shape[:2]
        bad = [np.full(B + 1, 0, np.int64), np.zeros(B, np.float64), np.zeros((B, 1), np.int64), "abc"]
        if B:  # values out of range (an empty array has none)
            bad += [np.full(B, T + 1, np.int64), np.full(B, -1, np.int64)]
        args["lengths"] = data.draw(st.sampled_from(bad))
    elif name == "cell":
        args["cell"] = data.draw(st.sampled_from(["lstm2", "", None, 3, "LSTM"]))
    elif name == "reverse":
        args["reverse"] = data.draw(st.sampled_from([None, "yes", 1.5, np.array([True, False])]))
    else:
        args[name] = _bad_values(data.draw, name, problem[name], dtype)
        # x's dtype sets everything else's: a bad x dtype the others share is not "one bad argument"
        assume(not (name == "x" and args["x"] is not None and args["x"].dtype == dtype))
    errors = {}
    for backend in ("numpy", "native"):
        with pytest.raises((ValueError, TypeError)) as info:
            F.forward(
                args["cell"],
                args["x"],
                args["h0"],
                args["c0"],
                args["w_ih"],
                args["w_hh"],
                args["b_ih"],
                args["b_hh"],
                args["w_hr"],
                lengths=args["lengths"],
                reverse=args["reverse"],
                backend=backend,
            )
        errors[backend] = info.type
    assert errors["numpy"] is errors["native"]


@SETTINGS
@given(problems(), st.data())
def test_bad_backward_upstream_raises(case, data):
    cell, problem, lengths, reverse = case
    dtype = problem["x"].dtype.newbyteorder("=")
    T, B = problem["x"].shape[:2]
    p = problem
    _, _, _, cache = F.forward(
        cell,
        p["x"],
        p["h0"],
        p["c0"],
        p["w_ih"],
        p["w_hh"],
        p["b_ih"],
        p["b_hh"],
        p["w_hr"],
        lengths=lengths,
        reverse=reverse,
        backend="native",
    )
    up = list(_upstream(cell, problem, T, B, 0))
    k = data.draw(st.integers(0, 2 if cell == "lstm" else 1))
    up[k] = _bad_values(data.draw, ("dy", "dh_n", "dc_n")[k], up[k], dtype)
    assume(up[k] is not None)
    with pytest.raises((ValueError, TypeError)):
        F.backward(cache, *up)


# -------------------------------------------------------------------------------------------------
# fastrnn._native called directly with arbitrary arguments: an exception or a result, never a crash.


def _native():
    from fastrnn import _native

    return _native


ANY_DTYPE = st.sampled_from(
    [np.float32, np.float64, np.int64, np.int32, np.uint64, np.bool_, np.complex64, np.float16, object]
)


@st.composite
def anything(draw, dtype):
    """None, a scalar, a string, a list, or an array of a random shape and (mostly) the dtype."""
    kind = draw(st.sampled_from(["array", "array", "array", "none", "scalar", "str", "list"]))
    if kind == "none":
        return None
    if kind == "scalar":
        return draw(st.sampled_from([0, 1.5, -1, 2**70, float("nan")]))
    if kind == "str":
        return "abc"
    if kind == "list":
        return draw(st.sampled_from([[], [1, 2], [[1.0, 2.0], [3.0]], [[[0.0]]]]))
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    dt = dtype if draw(st.integers(0, 3)) else draw(ANY_DTYPE)
    a = np.zeros(shape, dt)
    if dt is object:
        a[...] = 0.5
    return a


@_settings(150)
@given(st.data())
def test_native_forward_arbitrary_arguments_never_crash(data):
    N = _native()
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    cell = data.draw(st.sampled_from(["rnn_tanh", "rnn_relu", "lstm", "gru", "bad"]))
    names = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "lengths")
    # Start from a valid problem and replace a random subset of its arguments.
    T, B, I = (data.draw(st.integers(0, 3)) for _ in range(3))
    H = data.draw(st.integers(1, 3))
    c = cell if cell != "bad" else "lstm"
    args = make_problem(c, T, B, I, H, 1 if c == "lstm" and data.draw(st.booleans()) else None, dtype)
    args["lengths"] = None
    for name in names:
        if data.draw(st.integers(0, 3)) == 0:
            args[name] = data.draw(anything(np.int64 if name == "lengths" else dtype))
    try:
        out = N.forward(cell, *(args[n] for n in names), data.draw(st.booleans()), True)
    except (ValueError, TypeError, MemoryError):
        return
    y, h_n, c_n, cache = out
    # A forward that was accepted has a usable cache.
    try:
        N.backward(cache, data.draw(anything(dtype)), data.draw(anything(dtype)), data.draw(anything(dtype)))
    except (ValueError, TypeError, MemoryError):
        pass
    N.backward(cache, np.ones_like(y), np.ones_like(h_n), None if c_n is None else np.ones_like(c_n))


@pytest.mark.parametrize("cache", [None, 0, "cache", object(), np.zeros(3)])
def test_native_backward_rejects_foreign_caches(cache):
    N = _native()
    with pytest.raises((ValueError, TypeError)):
        N.backward(cache, np.zeros((1, 1, 1)), np.zeros((1, 1)), None)


def test_native_cache_cannot_be_constructed():
    N = _native()
    with pytest.raises(TypeError):
        N.Cache()


def test_native_rejects_mixed_and_odd_dtypes():
    N = _native()
    p = make_problem("rnn_tanh", 2, 2, 3, 4, dtype=np.float32)
    base = [p["x"], p["h0"], None, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], None, None]
    N.forward("rnn_tanh", *base, False, True)
    for k in (1, 3, 4, 5, 6):
        for bad in (np.float64, np.int32, np.complex64, object):
            args = list(base)
            args[k] = base[k].astype(bad)
            with pytest.raises(TypeError, match="dtype"):
                N.forward("rnn_tanh", *args, False, True)
    for lengths in (np.array([1.0, 2.0]), np.array([True, False]), np.array(["1", "2"])):
        args = list(base)
        args[8] = lengths
        with pytest.raises(TypeError, match="lengths"):
            N.forward("rnn_tanh", *args, False, True)
    for lengths in (
        np.array([2**64 - 1, 1], np.uint64),
        np.array([2**63, 1], np.uint64),
        np.array([3, 1]),
        np.array([-1, 1]),
    ):
        args = list(base)
        args[8] = lengths
        with pytest.raises(ValueError, match="lengths"):
            N.forward("rnn_tanh", *args, False, True)


@pytest.mark.parametrize("n", [0, -1, 1025, 10**6])
def test_native_thread_count_is_bounded(n, restore_threads):
    N = _native()
    with pytest.raises(ValueError):
        N.set_num_threads(n)


@pytest.mark.parametrize("value", [-1.0, float("nan")])
def test_native_parallel_grain_is_checked(value):
    N = _native()
    with pytest.raises(ValueError):
        N.set_parallel_grain(value)
