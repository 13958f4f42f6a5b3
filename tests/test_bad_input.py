"""Bad input raises ValueError/TypeError naming the argument; inputs are never modified; read-only and
non-contiguous inputs are accepted and give the same results as contiguous ones."""

import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F

from helpers import (
    CELL_VARIANTS,
    GATES,
    assert_results_close,
    forward_problem,
    make_lengths,
    make_problem,
    make_upstream,
    make_variant,
    run,
)

T, B, I, H, P = 3, 2, 4, 5, 3


def good_kwargs(cell="lstm", proj=False, dtype=np.float64):
    p = make_problem(cell, T, B, I, H, P if proj else None, dtype, True, seed=31)
    return dict(cell=cell, lengths=np.array([2, 3]), reverse=False, training=True, **p)


def call_forward(kw, backend):
    kw = dict(kw)
    return F.forward(
        kw.pop("cell"),
        kw.pop("x"),
        kw.pop("h0"),
        kw.pop("c0"),
        kw.pop("w_ih"),
        kw.pop("w_hh"),
        kw.pop("b_ih"),
        kw.pop("b_hh"),
        backend=backend,
        **kw,
    )


f32 = np.float32
G4 = GATES["lstm"]

# (id, cell, projection, {argument: replacement}, exception, match). Replacements are functions of the
# valid kwargs so they can derive shapes/dtypes from them.
FORWARD_CASES = [
    ("cell_unknown", "lstm", False, {"cell": lambda k: "lstmx"}, ValueError, "cell"),
    ("cell_upper", "lstm", False, {"cell": lambda k: "LSTM"}, ValueError, "cell"),
    ("cell_none", "lstm", False, {"cell": lambda k: None}, (ValueError, TypeError), "cell"),
    ("x_2d", "lstm", False, {"x": lambda k: k["x"][0]}, ValueError, "x"),
    ("x_4d", "lstm", False, {"x": lambda k: k["x"][None]}, ValueError, "x"),
    ("x_none", "lstm", False, {"x": lambda k: None}, TypeError, "x"),
    ("x_int", "lstm", False, {"x": lambda k: k["x"].astype(np.int64)}, TypeError, "x"),
    ("x_float16", "lstm", False, {"x": lambda k: k["x"].astype(np.float16)}, TypeError, "x"),
    ("x_complex", "lstm", False, {"x": lambda k: k["x"].astype(np.complex128)}, TypeError, "x"),
    ("x_bool", "lstm", False, {"x": lambda k: k["x"] > 0}, TypeError, "x"),
    ("w_ih_wrong_I", "lstm", False, {"w_ih": lambda k: np.zeros((G4 * H, I + 1))}, ValueError, "w_ih"),
    (
        "w_ih_rows_not_G_multiple",
        "lstm",
        False,
        {"w_ih": lambda k: np.zeros((G4 * H + 1, I))},
        ValueError,
        "w_ih",
    ),
    ("w_ih_gru_rows_not_3_multiple", "gru", False, {"w_ih": lambda k: np.zeros((16, I))}, ValueError, "w_ih"),
    ("w_ih_no_rows", "lstm", False, {"w_ih": lambda k: np.zeros((0, I))}, ValueError, "w_ih"),
    ("w_ih_1d", "lstm", False, {"w_ih": lambda k: k["w_ih"].ravel()}, ValueError, "w_ih"),
    ("w_ih_int", "lstm", False, {"w_ih": lambda k: k["w_ih"].astype(np.int32)}, TypeError, "w_ih"),
    ("w_hh_wrong_cols", "lstm", False, {"w_hh": lambda k: np.zeros((G4 * H, H + 1))}, ValueError, "w_hh"),
    ("w_hh_wrong_rows", "lstm", False, {"w_hh": lambda k: np.zeros((G4 * (H + 1), H))}, ValueError, "w_hh"),
    ("w_hh_transposed", "lstm", False, {"w_hh": lambda k: k["w_hh"].T}, ValueError, "w_hh"),
    ("w_hh_complex", "lstm", False, {"w_hh": lambda k: k["w_hh"].astype(np.complex64)}, TypeError, "w_hh"),
    ("w_hh_not_P_with_proj", "lstm", True, {"w_hh": lambda k: np.zeros((G4 * H, H))}, ValueError, "w_hh"),
    ("b_ih_wrong_length", "lstm", False, {"b_ih": lambda k: np.zeros(G4 * H + 1)}, ValueError, "b_ih"),
    ("b_ih_2d", "lstm", False, {"b_ih": lambda k: k["b_ih"][None]}, ValueError, "b_ih"),
    ("b_hh_wrong_length", "gru", False, {"b_hh": lambda k: np.zeros(H)}, ValueError, "b_hh"),
    ("b_hh_float32", "lstm", False, {"b_hh": lambda k: k["b_hh"].astype(f32)}, TypeError, "b_hh"),
    ("h0_wrong_B", "lstm", False, {"h0": lambda k: np.zeros((B + 1, H))}, ValueError, "h0"),
    ("h0_layer_shape", "gru", False, {"h0": lambda k: k["h0"][None]}, ValueError, "h0"),
    ("h0_H_not_P_with_proj", "lstm", True, {"h0": lambda k: np.zeros((B, H))}, ValueError, "h0"),
    ("h0_float32", "rnn_tanh", False, {"h0": lambda k: k["h0"].astype(f32)}, TypeError, "h0"),
    ("c0_wrong_H", "lstm", False, {"c0": lambda k: np.zeros((B, H + 1))}, ValueError, "c0"),
    ("c0_P_not_H_with_proj", "lstm", True, {"c0": lambda k: np.zeros((B, P))}, ValueError, "c0"),
    ("c0_int", "lstm", False, {"c0": lambda k: np.zeros((B, H), np.int64)}, TypeError, "c0"),
    ("c0_for_gru", "gru", False, {"c0": lambda k: np.zeros((B, H))}, ValueError, "c0"),
    ("c0_for_rnn", "rnn_relu", False, {"c0": lambda k: np.zeros((B, H))}, ValueError, "c0"),
    ("w_hr_for_gru", "gru", False, {"w_hr": lambda k: np.zeros((P, H))}, ValueError, "w_hr"),
    ("w_hr_for_rnn", "rnn_tanh", False, {"w_hr": lambda k: np.zeros((P, H))}, ValueError, "w_hr"),
    ("w_hr_wrong_H", "lstm", True, {"w_hr": lambda k: np.zeros((P, H + 1))}, ValueError, "w_hr"),
    ("w_hr_no_rows", "lstm", True, {"w_hr": lambda k: np.zeros((0, H))}, ValueError, "w_hr"),
    ("w_hr_float16", "lstm", True, {"w_hr": lambda k: k["w_hr"].astype(np.float16)}, TypeError, "w_hr"),
    ("lengths_too_long", "lstm", False, {"lengths": lambda k: np.array([1, 2, 3])}, ValueError, "lengths"),
    ("lengths_2d", "lstm", False, {"lengths": lambda k: np.array([[1, 2]])}, ValueError, "lengths"),
    ("lengths_scalar", "lstm", False, {"lengths": lambda k: np.int64(2)}, ValueError, "lengths"),
    ("lengths_negative", "gru", False, {"lengths": lambda k: np.array([-1, 2])}, ValueError, "lengths"),
    ("lengths_above_T", "gru", False, {"lengths": lambda k: np.array([T + 1, 2])}, ValueError, "lengths"),
    ("lengths_float", "lstm", False, {"lengths": lambda k: np.array([2.0, 3.0])}, TypeError, "lengths"),
    ("lengths_bool", "lstm", False, {"lengths": lambda k: np.array([True, False])}, TypeError, "lengths"),
    ("reverse_int", "lstm", False, {"reverse": lambda k: 1}, TypeError, "reverse"),
    ("reverse_str", "lstm", False, {"reverse": lambda k: "yes"}, TypeError, "reverse"),
    ("reverse_none", "gru", False, {"reverse": lambda k: None}, TypeError, "reverse"),
    ("training_str", "lstm", False, {"training": lambda k: "no"}, TypeError, "training"),
]


@pytest.mark.parametrize(
    "cell, proj, edits, exc, match", [pytest.param(*c[1:], id=c[0]) for c in FORWARD_CASES]
)
def test_forward_rejects(backend, cell, proj, edits, exc, match):
    kw = good_kwargs(cell, proj)
    call_forward(kw, backend)  # the unedited arguments are valid
    for name, edit in edits.items():
        kw[name] = edit(kw)
    with pytest.raises(exc, match=match):
        call_forward(kw, backend)


MIXED = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr"]


@pytest.mark.parametrize("base", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", MIXED[1:])
def test_forward_rejects_mixed_dtypes(backend, name, base):
    # One argument in the other float dtype than x: TypeError naming it (never a silent cast).
    kw = good_kwargs("lstm", proj=True, dtype=base)
    other = np.float64 if base is np.float32 else np.float32
    kw[name] = kw[name].astype(other)
    with pytest.raises(TypeError, match=name):
        call_forward(kw, backend)


def test_forward_rejects_float32_x_with_float64_weights(backend):
    kw = good_kwargs("gru", dtype=np.float64)
    kw["x"] = kw["x"].astype(np.float32)
    with pytest.raises(TypeError, match="w_ih"):
        call_forward(kw, backend)


@pytest.mark.parametrize(
    "name, exc", [("gpu", ValueError), ("Native ", ValueError), (1, TypeError), (True, TypeError)]
)
def test_forward_rejects_unknown_backend(name, exc):
    with pytest.raises(exc, match="backend"):
        call_forward(good_kwargs("rnn_tanh"), name)


# ------------------------------------------------------------------------------------------------
# backward()


def make_cache(backend, cell="lstm", proj=False, dtype=np.float64):
    kw = good_kwargs(cell, proj, dtype)
    *_, cache = call_forward(kw, backend)
    return kw, cache


def test_backward_rejects_missing_cache(backend):
    # The cache of a training=False forward is None: backward must say why it cannot run.
    kw = good_kwargs("gru")
    kw["training"] = False
    *_, cache = call_forward(kw, backend)
    assert cache is None
    with pytest.raises(ValueError, match="cache"):
        F.backward(cache, None, None)


@pytest.mark.parametrize(
    "obj", [object(), "cache", {"cell": "lstm"}, (1, 2)], ids=["object", "str", "dict", "tuple"]
)
def test_backward_rejects_non_cache(obj):
    with pytest.raises(TypeError, match="cache"):
        F.backward(obj, None, None)


BACKWARD_CASES = [
    # (id, cell, proj, dy, dh_n, dc_n given as functions of (T, B, P, H, dtype), exc, match)
    ("dy_wrong_T", "lstm", False, dict(dy=lambda d: np.zeros((T + 1, B, H), d)), ValueError, "dy"),
    ("dy_2d", "gru", False, dict(dy=lambda d: np.zeros((B, H), d)), ValueError, "dy"),
    ("dy_H_not_P_with_proj", "lstm", True, dict(dy=lambda d: np.zeros((T, B, H), d)), ValueError, "dy"),
    ("dy_float32", "lstm", False, dict(dy=lambda d: np.zeros((T, B, H), np.float32)), TypeError, "dy"),
    ("dy_int", "rnn_tanh", False, dict(dy=lambda d: np.zeros((T, B, H), np.int64)), TypeError, "dy"),
    ("dh_n_wrong_shape", "lstm", False, dict(dh_n=lambda d: np.zeros((B, H + 1), d)), ValueError, "dh_n"),
    ("dh_n_float16", "gru", False, dict(dh_n=lambda d: np.zeros((B, H), np.float16)), TypeError, "dh_n"),
    ("dc_n_wrong_shape", "lstm", False, dict(dc_n=lambda d: np.zeros((B + 1, H), d)), ValueError, "dc_n"),
    ("dc_n_P_not_H_with_proj", "lstm", True, dict(dc_n=lambda d: np.zeros((B, P), d)), ValueError, "dc_n"),
    ("dc_n_complex", "lstm", False, dict(dc_n=lambda d: np.zeros((B, H), np.complex128)), TypeError, "dc_n"),
    ("dc_n_for_gru", "gru", False, dict(dc_n=lambda d: np.zeros((B, H), d)), ValueError, "dc_n"),
    ("dc_n_for_rnn", "rnn_relu", False, dict(dc_n=lambda d: np.zeros((B, H), d)), ValueError, "dc_n"),
]


@pytest.mark.parametrize(
    "cell, proj, given, exc, match", [pytest.param(*c[1:], id=c[0]) for c in BACKWARD_CASES]
)
def test_backward_rejects(backend, cell, proj, given, exc, match):
    _, cache = make_cache(backend, cell, proj)
    args = {name: make(np.float64) for name, make in given.items()}
    with pytest.raises(exc, match=match):
        F.backward(cache, args.get("dy"), args.get("dh_n"), args.get("dc_n"))
    F.backward(cache, None, None)  # the cache is still usable after the rejected call


# ------------------------------------------------------------------------------------------------
# Threads and backend names


@pytest.mark.parametrize(
    "n, exc",
    [
        (0, ValueError),
        (-2, ValueError),
        ("2", TypeError),
        (2.0, TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
    ids=["zero", "negative", "str", "float", "bool", "none"],
)
def test_set_num_threads_rejects(n, exc, restore_threads):
    with pytest.raises(exc, match="n must"):
        fastrnn.set_num_threads(n)
    assert fastrnn.get_num_threads() == restore_threads  # unchanged by the rejected call


@pytest.mark.parametrize(
    "name, exc",
    [("gpu", ValueError), ("", ValueError), (None, TypeError), (b"numpy", TypeError)],
    ids=["gpu", "empty", "none", "bytes"],
)
def test_backend_names_rejected(name, exc, restore_backend):
    with pytest.raises(exc, match="backend"):
        fastrnn.set_backend(name)
    with pytest.raises(exc, match="backend"):
        with fastrnn.use_backend(name):
            pass
    assert fastrnn.get_backend() == restore_backend


# ------------------------------------------------------------------------------------------------
# Inputs are never modified; read-only and non-contiguous inputs work.

ALL_VARIANTS = list(CELL_VARIANTS)


def full_problem(variant, dtype=np.float64, seed=32):
    T_, B_ = 4, 5
    cell, p = make_variant(variant, T_, B_, 6, 7, dtype, seed=seed)
    return cell, p, make_lengths(T_, B_), make_upstream(p, T_)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_inputs_not_modified(backend, variant, reverse):
    cell, p, lengths, up = full_problem(variant)
    before = {k: None if v is None else v.copy() for k, v in p.items()}
    lengths_before = lengths.copy()
    up_before = [None if u is None else u.copy() for u in up]
    res = run(p, cell, backend, lengths, reverse, up)
    # Backward twice from one cache: the cache is reusable and nothing the caller holds changes.
    *_, cache = forward_problem(p, cell, lengths=lengths, reverse=reverse, backend=backend)
    F.backward(cache, *up)
    for k, v in p.items():
        if v is None:
            assert before[k] is None
        else:
            np.testing.assert_array_equal(v, before[k], err_msg=k)
    np.testing.assert_array_equal(lengths, lengths_before)
    for u, u0 in zip(up, up_before):
        if u is not None:
            np.testing.assert_array_equal(u, u0)
    # Results do not alias the inputs: writing to them leaves the inputs intact.
    for name, arr in res.items():
        if arr is not None:
            arr[...] = 12345.0
    for k, v in p.items():
        if v is not None:
            np.testing.assert_array_equal(v, before[k], err_msg=k)
    for u, u0 in zip(up, up_before):
        if u is not None:
            np.testing.assert_array_equal(u, u0)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_read_only_inputs(backend, variant):
    # Read-only arrays (memory maps, broadcasts, frozen weights) are valid input.
    cell, p, lengths, up = full_problem(variant)
    expected = run(p, cell, backend, lengths, True, up)
    frozen = {k: None if v is None else v.copy() for k, v in p.items()}
    for v in list(frozen.values()) + [lengths] + list(up):
        if v is not None:
            v.flags.writeable = False
    actual = run(frozen, cell, backend, lengths, True, up)
    assert_results_close(actual, expected, rtol=0, atol_rel=0)


def strided(a, how):
    """A non-C-contiguous array equal to ``a``."""
    if a is None:
        return None
    if how == "fortran":
        return np.asfortranarray(a) if a.ndim > 1 else np.repeat(a, 2)[::2]
    if how == "step":  # every other element along the last axis of a bigger array
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype) if a.ndim else a
        big[..., ::2] = a
        return big[..., ::2]
    if how == "negative":  # reversed views of reversed copies
        return np.ascontiguousarray(a[::-1])[::-1] if a.ndim else a
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["fortran", "step", "negative"])
@pytest.mark.parametrize("variant", ALL_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_non_contiguous_inputs(backend, variant, dtype, how):
    cell, p, lengths, up = full_problem(variant, dtype)
    expected = run(p, cell, backend, lengths, True, up)
    q = {k: strided(v, how) for k, v in p.items()}
    for k, v in q.items():
        if v is not None and v.ndim > 1:
            assert not v.flags.c_contiguous, k
    up_q = tuple(strided(u, how) for u in up)
    actual = run(q, cell, backend, strided(lengths, how), True, up_q)
    assert_results_close(actual, expected)


def test_batch_slice_of_x(backend):
    # The brief's example: x[:, ::2] (every other sequence) equals running on the copied slice.
    cell, p = make_variant("lstm", 4, 6, 5, 3, np.float64, seed=33)
    x = p["x"]
    q = dict(p, x=x[:, ::2], h0=p["h0"][::2], c0=p["c0"][::2])
    expected = run({k: None if v is None else np.ascontiguousarray(v) for k, v in q.items()}, cell, backend)
    assert_results_close(run(q, cell, backend), expected)


@pytest.mark.parametrize("ldtype", [np.int32, np.uint8, np.int16, np.uint64])
def test_lengths_integer_dtypes(backend, ldtype):
    # Any integer dtype of lengths means the same lengths.
    cell, p, lengths, up = full_problem("gru")
    expected = run(p, cell, backend, lengths, False, up)
    assert_results_close(
        run(p, cell, backend, lengths.astype(ldtype), False, up), expected, rtol=0, atol_rel=0
    )


def test_big_endian_float_arrays_are_accepted():
    # Byte order is storage, not a dtype choice: '>f8' is float64 and gives the same result.
    from helpers import make_problem

    p = make_problem("gru", 3, 2, 4, 5, seed=3)
    y_native_order = fastrnn.functional.forward(
        "gru", p["x"], None, None, p["w_ih"], p["w_hh"], None, None, training=False
    )[0]
    y_swapped = fastrnn.functional.forward(
        "gru",
        p["x"].astype(">f8"),
        None,
        None,
        p["w_ih"].astype(">f8"),
        p["w_hh"].astype(">f8"),
        None,
        None,
        training=False,
    )[0]
    np.testing.assert_array_equal(y_native_order, y_swapped)
