"""The native backend against the NumPy reference (the specification): outputs, final states and all
eight gradients, over cells, dtypes, bias, lengths, direction and shapes chosen to hit edge tiles."""

import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F

from helpers import (
    CELL_VARIANTS,
    DTYPES,
    GRADS,
    OUTPUTS,
    assert_close,
    assert_results_close,
    make_lengths,
    make_upstream,
    make_variant,
    run,
)

pytestmark = pytest.mark.native

# (T, B, I, H): 1s everywhere, an empty sequence, and odd sizes that leave partial SIMD/edge tiles.
SHAPES = [(1, 1, 1, 1), (0, 2, 3, 4), (5, 3, 4, 6), (7, 1, 5, 3), (4, 6, 17, 33)]
SHAPE_IDS = ["T{}B{}I{}H{}".format(*s) for s in SHAPES]


def compare(variant, shape, dtype, bias, with_lengths, reverse, seed=0, upstream=True):
    T, B, I, H = shape
    cell, problem = make_variant(variant, T, B, I, H, dtype, bias, seed)
    lengths = make_lengths(T, B) if with_lengths else None
    up = make_upstream(problem, T) if upstream else (None, None, None)
    expected = run(problem, cell, "numpy", lengths, reverse, up)
    actual = run(problem, cell, "native", lengths, reverse, up)
    assert_results_close(actual, expected)
    return expected


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_native_matches_numpy(variant, shape, dtype, bias, with_lengths, reverse):
    compare(variant, shape, dtype, bias, with_lengths, reverse)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_native_matches_numpy_without_dy(variant, dtype):
    # dy=None (only the final states carry a gradient), with lengths so padding is involved too.
    T, B, I, H = 5, 4, 3, 6
    cell, problem = make_variant(variant, T, B, I, H, dtype, seed=3)
    lengths = make_lengths(T, B)
    _, dh_n, dc_n = make_upstream(problem, T)
    expected = run(problem, cell, "numpy", lengths, True, (None, dh_n, dc_n))
    actual = run(problem, cell, "native", lengths, True, (None, dh_n, dc_n))
    assert_results_close(actual, expected)


@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_native_zero_upstream_gives_zero_gradients(variant):
    # All upstream gradients None: every gradient must be exactly zero, on both backends.
    cell, problem = make_variant(variant, 4, 3, 5, 7, np.float64, seed=4)
    res = run(problem, cell, "native", make_lengths(4, 3), False)
    for name in GRADS:
        if res[name] is not None:
            assert not np.any(res[name]), name
    assert_results_close(res, run(problem, cell, "numpy", make_lengths(4, 3), False))


@pytest.mark.parametrize("mode", ["plain", "lengths_rev"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_native_matches_numpy_medium(variant, dtype, mode):
    # Large enough that the native code takes its blocked/threaded paths.
    with_lengths = reverse = mode == "lengths_rev"
    compare(variant, (6, 16, 64, 96), dtype, True, with_lengths, reverse, seed=5)


@pytest.mark.parametrize(
    "shape", [(6, 16, 64, 96), (5, 3, 17, 33), (3, 9, 8, 130)], ids=["medium", "odd", "wide"]
)
@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "lstm_proj", "gru"])
def test_thread_counts_agree(variant, shape, restore_threads):
    # The static work split must not change results beyond rounding: 1 thread vs 2 threads.
    T, B, I, H = shape
    cell, problem = make_variant(variant, T, B, I, H, np.float64, seed=6)
    lengths = make_lengths(T, B)
    up = make_upstream(problem, T)
    fastrnn.set_num_threads(1)
    one = run(problem, cell, "native", lengths, False, up)
    fastrnn.set_num_threads(2)
    assert fastrnn.get_num_threads() == 2
    two = run(problem, cell, "native", lengths, False, up)
    assert_results_close(two, one)
    assert_results_close(two, run(problem, cell, "numpy", lengths, False, up))


@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_native_cache_runs_backward_on_native(variant):
    # backward() runs on the backend that made the cache, whatever the current backend is.
    cell, problem = make_variant(variant, 3, 2, 4, 5, np.float64, seed=7)
    p = problem
    up = make_upstream(problem, 3)
    *_, cache = F.forward(
        cell, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], backend="native"
    )
    with fastrnn.use_backend("numpy"):
        grads = F.backward(cache, *up)
    expected = run(problem, cell, "native", upstream=up)
    for name, g in zip(GRADS, grads):
        assert_close(g, expected[name], name)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_native_inference_matches_training(variant, dtype):
    # training=False returns no cache and the same outputs as training=True.
    cell, p = make_variant(variant, 4, 5, 6, 7, dtype, seed=8)
    lengths = make_lengths(4, 5)
    args = (cell, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["w_hr"])
    *outs_train, cache = F.forward(*args, lengths=lengths, training=True, backend="native")
    *outs_eval, none = F.forward(*args, lengths=lengths, training=False, backend="native")
    assert cache is not None and none is None
    for name, a, b in zip(OUTPUTS, outs_eval, outs_train):
        assert_close(a, b, name, rtol=0, atol_rel=0)


@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_native_extreme_preactivations(variant):
    # Huge inputs saturate sigmoid/tanh; fast approximations must not overflow to nan/inf.
    cell, p = make_variant(variant, 3, 4, 5, 6, np.float32, seed=9)
    p["x"] = (p["x"] * 200).astype(np.float32)
    up = make_upstream(p, 3)
    expected = run(p, cell, "numpy", upstream=up)
    actual = run(p, cell, "native", upstream=up)
    for name in OUTPUTS:
        assert_close(actual[name], expected[name], name)
    for name in GRADS:
        if actual[name] is not None:
            assert np.all(np.isfinite(actual[name])), name
