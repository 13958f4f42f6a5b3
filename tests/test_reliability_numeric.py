"""Size limits (64-bit sizes, absurd sizes refused before allocating, very long sequences), NaN/Inf
propagation, and the caller's floating-point environment left as it was."""

import ctypes
import ctypes.util
import os
import time

import numpy as np
import pytest

from fastrnn import functional as F

from helpers import CELL_VARIANTS, DTYPES, assert_close, make_problem, make_upstream, make_variant, run

pytestmark = pytest.mark.native


def _native():
    from fastrnn import _native

    return _native


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


# -------------------------------------------------------------------------------------------------
# Sizes


def _huge_time_broadcast(T, B, I, dtype=np.float32):
    """A (T, B, I) x that takes no memory: one value repeated through stride-0 axes."""
    return np.broadcast_to(np.zeros((1, 1, I), dtype), (T, B, I))


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_absurd_T_raises_memory_error_before_allocating(backend):
    f = np.float32
    x = _huge_time_broadcast(2**40, 2, 3)
    before = rss_bytes()
    start = time.perf_counter()
    with pytest.raises(MemoryError, match="fastrnn: forward would need"):
        F.forward(
            "lstm", x, None, None, np.zeros((8, 3), f), np.zeros((8, 2), f), None, None, backend=backend
        )
    assert time.perf_counter() - start < 5
    assert rss_bytes() - before < 64 << 20


def test_native_absurd_sizes_raise_memory_error_before_allocating():
    N = _native()
    f = np.float32
    before = rss_bytes()
    # T = 2**40 steps through a stride-0 view: 4 TiB for x alone.
    x = _huge_time_broadcast(2**40, 2, 3)
    with pytest.raises(MemoryError, match="fastrnn: forward would need"):
        N.forward(
            "rnn_tanh",
            x,
            np.zeros((2, 2), f),
            None,
            np.zeros((2, 3), f),
            np.zeros((2, 2), f),
            None,
            None,
            None,
            None,
            False,
            True,
        )
    # H = 2**28 hidden units (stride-0 weights): W_hh alone is 2**58 values.
    H = 2**28
    w_ih = np.broadcast_to(np.zeros((1, 3), f), (4 * H, 3))
    w_hh = np.broadcast_to(np.zeros((1, 1), f), (4 * H, H))
    state = np.broadcast_to(np.zeros((1, 1), f), (1, H))
    with pytest.raises(MemoryError, match="fastrnn: forward would need"):
        N.forward(
            "lstm", np.zeros((1, 1, 3), f), state, state, w_ih, w_hh, None, None, None, None, False, True
        )
    # T * B * P overflows 64 bits: x is empty (I = 0), h0 a stride-0 view.
    T = B = 2**30
    x = np.zeros((T, B, 0), f)
    h0 = np.broadcast_to(np.zeros((1, 16), f), (B, 16))
    with pytest.raises(MemoryError, match="2\\*\\*63"):
        N.forward(
            "rnn_tanh",
            x,
            h0,
            None,
            np.zeros((16, 0), f),
            np.zeros((16, 16), f),
            None,
            None,
            None,
            None,
            False,
            True,
        )
    with pytest.raises(MemoryError, match="2\\*\\*63"):
        F.forward("rnn_tanh", x, h0, None, np.zeros((16, 0), f), np.zeros((16, 16), f), None, None)
    assert rss_bytes() - before < 64 << 20


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_empty_batch_with_huge_T_returns_at_once(variant, backend):
    # B = 0: nothing to compute however large T is (no T-step loop over nothing).
    cell, p = make_variant(variant, 1, 1, 3, 4, np.float32)
    x = np.zeros((2**40, 0, 3), np.float32)
    P = p["w_hh"].shape[1]
    start = time.perf_counter()
    y, h_n, c_n, cache = F.forward(
        cell,
        x,
        np.zeros((0, P), np.float32),
        None if p["c0"] is None else np.zeros((0, 4), np.float32),
        p["w_ih"],
        p["w_hh"],
        p["b_ih"],
        p["b_hh"],
        p["w_hr"],
        lengths=np.zeros(0, np.int64),
        backend=backend,
    )
    grads = F.backward(cache, None, None, None)
    assert time.perf_counter() - start < 5
    assert y.shape == (2**40, 0, P) and h_n.shape == (0, P)
    assert grads[0].shape == x.shape
    for g, name in zip(grads[3:], ("w_ih", "w_hh", "b_ih", "b_hh", "w_hr")):
        if p[name] is None:
            assert g is None
        else:
            assert g.shape == p[name].shape and not g.any()


def test_native_empty_batch_direct():
    N = _native()
    f = np.float64
    y, h_n, c_n, cache = N.forward(
        "gru",
        np.zeros((2**40, 0, 2), f),
        np.zeros((0, 3), f),
        None,
        np.ones((9, 2), f),
        np.ones((9, 3), f),
        np.ones(9, f),
        None,
        None,
        None,
        True,
        True,
    )
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_ph, dh_norms = N.backward(
        cache, np.zeros((2**40, 0, 3), f), np.zeros((0, 3), f), None
    )
    assert dx.shape == (2**40, 0, 2) and not dw_ih.any() and not dw_hh.any() and not db_ih.any()
    assert dh_norms.shape == (2**40,) and dh_norms.strides == (0,) and dh_norms[-1] == 0
    assert db_hh is None and dw_hr is None and dc0 is None and dw_ph is None


@pytest.mark.skipif(
    os.environ.get("FASTRNN_BIG_TESTS") != "1", reason="needs ~9 GB and ~30 s; FASTRNN_BIG_TESTS=1 runs it"
)
def test_indices_past_2_to_the_31():
    # T*B*G*H = 2147532800 > 2**31 gate values (the input projection, 8.6 GB of float32): every
    # index into it must be 64-bit. x is empty (I = 0) and the state tiny (P = 1) to keep it at that.
    T, B, H, P = 1024, 2**17 + 3, 4, 1
    assert T * B * 4 * H > 2**31
    p = make_problem("lstm", 1, B, 0, H, P, dtype=np.float32, seed=1)
    x = np.zeros((T, B, 0), np.float32)
    args = (p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["w_hr"])
    y, h, c, _ = F.forward("lstm", x, *args, training=False, backend="native")
    sel = [0, B // 2, B - 1]
    ref = F.forward(
        "lstm", x[:, sel], *(a[sel] if a.shape[0] == B else a for a in args), training=False, backend="numpy"
    )
    for name, a, r in zip(("y", "h_n", "c_n"), (y[:, sel], h[sel], c[sel]), ref[:3]):
        assert_close(a, r, name)


@pytest.mark.parametrize("variant", ["gru", "lstm"])
def test_long_sequence_T_100000(variant):
    # The whole sequence on native; the last K steps again on the reference, from native's state
    # at step T-K (y is h for a GRU; for an LSTM, only finiteness and shapes are checked).
    T, B, I, H, K = 100_000, 2, 3, 4, 20
    cell, p = make_variant(variant, T, B, I, H, np.float64, seed=5)
    dy, dh_n, dc_n = make_upstream(p, T)
    dy[:-K] = 0
    native = run(p, cell, "native", None, False, (dy, dh_n, dc_n))
    for name, value in native.items():
        if value is not None:
            assert np.all(np.isfinite(value)), name
    assert native["y"].shape == (T, B, H) and native["dx"].shape == (T, B, I)
    if variant == "gru":
        tail = dict(p, x=p["x"][-K:], h0=native["y"][-K - 1])
        ref = run(tail, cell, "numpy", None, False, (dy[-K:], dh_n, None))
        assert_close(native["y"][-K:], ref["y"], "y")
        assert_close(native["h_n"], ref["h_n"], "h_n")
        assert_close(native["dx"][-K:], ref["dx"], "dx")


# -------------------------------------------------------------------------------------------------
# NaN and Inf: the same non-finite positions as the reference, NaN where it has NaN.


def _poison(p, where, value):
    p = {k: None if v is None else v.copy() for k, v in p.items()}
    if where == "x":
        p["x"][1, 1, 2] = value
    elif where == "h0":
        p["h0"][0, 0] = value
    elif where == "w_hh":
        p["w_hh"][0, 0] = value
    elif where == "b_ih":
        p["b_ih"][1] = value
    return p


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", ["x", "h0", "w_hh", "b_ih"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_non_finite_inputs_propagate_like_the_reference(variant, where, value, dtype):
    cell, p = make_variant(variant, 5, 3, 4, 6, dtype, seed=3)
    p = _poison(p, where, value)
    up = make_upstream(p, 5)
    with np.errstate(all="ignore"):
        native = run(p, cell, "native", None, False, up)
        ref = run(p, cell, "numpy", None, False, up)
    for name, r in ref.items():
        if r is None:
            continue
        a = native[name]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(r), err_msg=f"NaN positions of {name}")
        np.testing.assert_array_equal(
            np.isfinite(a), np.isfinite(r), err_msg=f"non-finite positions of {name}"
        )
        finite = np.isfinite(r)
        assert_close(np.where(finite, a, 0), np.where(finite, r, 0), name)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_infinite_state_saturates_like_the_reference(dtype):
    # GRU, h0 = inf: W_hh h0 is +-inf and r = sigmoid(-inf) is exactly 0 in the reference, so
    # r * (W_hn h + b_hn) = 0 * inf = NaN there. Native's sigmoid(-inf) is 1 / (1 + e^hi), a denormal
    # that the kernels' flush-to-zero makes exactly 0 too (without it: inf instead of NaN).
    p = make_problem("gru", 1, 1, 1, 2, dtype=dtype)
    p["h0"][0, 0] = np.inf
    with np.errstate(all="ignore"):
        native, ref = run(p, "gru", "native"), run(p, "gru", "numpy")
    np.testing.assert_array_equal(np.isnan(native["y"]), np.isnan(ref["y"]))
    np.testing.assert_array_equal(np.isnan(native["dx"]), np.isnan(ref["dx"]))


def test_nan_in_padding_does_not_leak():
    # Steps past a sequence's length are never read: NaN there changes nothing.
    cell, p = make_variant("lstm", 6, 3, 4, 5, np.float64, seed=4)
    lengths = np.array([6, 2, 4])
    clean = run(p, cell, "native", lengths)
    p["x"][2:, 1] = np.nan
    p["x"][4:, 2] = np.inf
    dirty = run(p, cell, "native", lengths)
    for name, value in clean.items():
        if value is not None:
            np.testing.assert_array_equal(dirty[name], value, err_msg=name)


# -------------------------------------------------------------------------------------------------
# The caller's floating-point environment: rounding mode and denormals, before == after.

FE_MODES = {"tonearest": 0x000, "downward": 0x400, "upward": 0x800, "towardzero": 0xC00}  # x86


def _libm():
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    lib.fegetround.restype = ctypes.c_int
    lib.fesetround.argtypes = [ctypes.c_int]
    return lib


def _denormals_work():
    # With flush-to-zero or denormals-are-zero set in MXCSR, these would be 0.
    tiny32 = np.float32(1e-39) * np.float32(1.0)
    tiny64 = np.float64(1e-310) * np.float64(1.0)
    return bool(tiny32 != 0 and tiny64 != 0 and np.float32(1e-38) / np.float32(16) != 0)


@pytest.mark.skipif(
    not np.__name__ or __import__("platform").machine() not in ("x86_64", "AMD64"),
    reason="rounding-mode constants are x86's",
)
@pytest.mark.parametrize("mode", list(FE_MODES))
@pytest.mark.parametrize("threads", [1, 2])
def test_floating_point_environment_is_unchanged(mode, threads, restore_threads):
    import fastrnn

    N = _native()
    lib = _libm()
    fastrnn.set_num_threads(threads)
    N.set_parallel_grain(0.0)
    original = lib.fegetround()
    try:
        assert lib.fesetround(FE_MODES[mode]) == 0
        assert lib.fegetround() == FE_MODES[mode]
        assert _denormals_work()
        for variant in CELL_VARIANTS:
            for dtype in DTYPES:
                cell, p = make_variant(variant, 4, 3, 5, 40, dtype, seed=6)
                # Denormal inputs too: kernels that flush them must not leak that to the caller.
                p["x"][0, 0, 0] = np.finfo(dtype).smallest_subnormal
                run(p, cell, "native", None, False, make_upstream(p, 4))
                assert lib.fegetround() == FE_MODES[mode], (variant, dtype)
                assert _denormals_work(), (variant, dtype)
    finally:
        lib.fesetround(original)
        N.set_parallel_grain(1.0)
    assert lib.fegetround() == original
