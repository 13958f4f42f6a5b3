"""The threaded paths of the native kernels: a product or a time loop split over the team.

The parallel grain is set to 0 so that even these small problems are split (each thread owns whole
panels of hidden units); results must match the reference and be bitwise identical for any thread
count, since every element is computed by the same arithmetic in the same order."""

import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F

from helpers import (
    CELL_VARIANTS,
    DTYPES,
    assert_results_close,
    forward_problem,
    make_lengths,
    make_upstream,
    make_variant,
    run,
)

pytestmark = pytest.mark.native


def run_with_threads(n, problem, cell, lengths, reverse, up):
    fastrnn.set_num_threads(n)
    return run(problem, cell, "native", lengths, reverse, up)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_split_loops_match_reference_and_each_other(variant, dtype, with_lengths, reverse, split_everything):
    # H=37: 3 panels of 16 (float32) or 5 of 8 (float64), the last one partial.
    T, B, I, H = 6, 5, 11, 37
    cell, problem = make_variant(variant, T, B, I, H, dtype, seed=11)
    lengths = make_lengths(T, B) if with_lengths else None
    up = make_upstream(problem, T)
    results = {n: run_with_threads(n, problem, cell, lengths, reverse, up) for n in (1, 2, 3)}
    assert_results_close(results[2], run(problem, cell, "numpy", lengths, reverse, up))
    for n in (2, 3):
        for name, value in results[1].items():
            if value is not None:
                np.testing.assert_array_equal(results[n][name], value, err_msg=name)


def _train(problem, cell, backend, up, reset_after=True, every=None):
    y, h_n, c_n, cache = forward_problem(
        problem, cell, training=True, backend=backend, reset_after=reset_after, checkpoint_every=every
    )
    return [y, h_n, c_n, *F.backward(cache, *up)]


@pytest.mark.parametrize("every", [None, 3], ids=["kept", "checkpointed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", [*CELL_VARIANTS, "gru_reset_before"])
def test_threads_that_split_the_batch(variant, dtype, every, split_everything):
    # Every sequence takes every step, B = 40 holds at least one whole micro-tile per thread (8 rows
    # on AVX-512, 4 on AVX2) and the weights fit L2: the threads split the batch (whole tiles
    # each, the last one partial at 3 threads) instead of the units, with no per-step barrier.
    if variant == "gru_reset_before" and every:
        pytest.skip("checkpoint_every is refused with reset_after=False")
    T, B, I, H = 7, 40, 9, 37
    reset_after = variant != "gru_reset_before"
    cell, problem = make_variant("gru" if not reset_after else variant, T, B, I, H, dtype, seed=17)
    up = make_upstream(problem, T)
    results = {}
    for n in (1, 2, 3):
        fastrnn.set_num_threads(n)
        results[n] = _train(problem, cell, "native", up, reset_after, every)
    expected = _train(problem, cell, "numpy", up, reset_after)
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    for got, ref in zip(results[2], expected):
        if ref is not None:
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * float(np.max(np.abs(ref))))
    for n in (2, 3):
        for k, (got, ref) in enumerate(zip(results[n], results[1])):
            if ref is not None:
                np.testing.assert_array_equal(got, ref, err_msg=f"{n} threads: output {k}")


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_steps_that_some_sequences_skip(variant, reverse, split_everything):
    # The time loops multiply only the rows of sequences that take the step: here the active rows
    # are scattered (not a prefix), change at every step, and at the last steps are none at all.
    T, B, I, H = 8, 9, 5, 37
    cell, problem = make_variant(variant, T, B, I, H, np.float64, seed=13)
    lengths = np.array([0, 6, 1, 5, 3, 6, 2, 0, 4])  # max 6 < T: steps 6 and 7 have no rows
    up = make_upstream(problem, T)
    expected = run(problem, cell, "numpy", lengths, reverse, up)
    results = {n: run_with_threads(n, problem, cell, lengths, reverse, up) for n in (1, 3)}
    assert_results_close(results[1], expected)
    for name, value in results[1].items():
        if value is not None:
            np.testing.assert_array_equal(results[3][name], value, err_msg=name)


def test_more_threads_than_panels(split_everything):
    # 4 threads, 1 panel of hidden units: the extra threads own nothing and must not disturb.
    cell, problem = make_variant("lstm", 4, 3, 5, 6, np.float64, seed=12)
    up = make_upstream(problem, 4)
    expected = run(problem, cell, "numpy", make_lengths(4, 3), False, up)
    assert_results_close(run_with_threads(4, problem, cell, make_lengths(4, 3), False, up), expected)


# -- the two directions of a bidirectional layer side by side ----------------------------------------


def bidirectional_run(cell, threads, dtype="float32", lengths=None):
    fastrnn.set_num_threads(threads)
    cls = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU, "rnn": fastrnn.RNN}[cell]
    layer = cls(6, 7, num_layers=2, bidirectional=True, dtype=dtype, seed=0)
    x = np.random.default_rng(1).standard_normal((9, 4, 6)).astype(dtype)
    out, state = layer(x, lengths=lengths)
    dx, dstate = layer.backward(np.ones_like(out))
    flat = lambda s: list(s) if isinstance(s, tuple) else [s]  # noqa: E731
    return (
        [out]
        + flat(state)
        + [dx]
        + flat(dstate)
        + [g.copy() for g in layer.grads.values()]
        + [layer.dh_norms]
    )


@pytest.mark.native
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_bidirectional_side_by_side_is_bitwise_the_serial_result(cell, with_lengths, split_everything):
    lengths = np.array([9, 3, 0, 6]) if with_lengths else None
    serial = bidirectional_run(cell, 1, lengths=lengths)
    for threads in (2, 3, 4):  # 1, 1, 2 kernel threads per direction
        for a, b in zip(bidirectional_run(cell, threads, lengths=lengths), serial):
            np.testing.assert_array_equal(a, b)


@pytest.mark.native
def test_bidirectional_side_by_side_respects_use_backend(restore_threads, monkeypatch):
    from fastrnn import _backend

    fastrnn.set_num_threads(2)
    calls = []
    real = _backend.run_pair
    monkeypatch.setattr(_backend, "run_pair", lambda *a: calls.append(1) or real(*a))
    layer = fastrnn.GRU(3, 4, bidirectional=True, dtype="float64", seed=0)
    x = np.ones((5, 2, 3))
    y_native, _ = layer(x)
    assert calls  # native with 2 threads: side by side
    calls.clear()
    with fastrnn.use_backend("numpy"):  # resolved on the calling thread, not the helper's
        y_numpy, _ = layer(x)
        assert layer._cache["caches"][1].backend == "numpy"
    assert not calls
    np.testing.assert_allclose(y_native, y_numpy, rtol=1e-12)
    assert _backend._native.get_thread_cap() == 0  # the caller's cap is put back


@pytest.mark.native
def test_bidirectional_side_by_side_errors_reach_the_caller(restore_threads):
    from fastrnn import _backend

    def boom():
        raise ValueError("second failed")

    fastrnn.set_num_threads(2)
    with pytest.raises(ValueError, match="second failed"):
        _backend.run_pair(lambda: 1, boom, 1)
    with pytest.raises(KeyError):
        _backend.run_pair(lambda: {}["x"], lambda: 2, 1)
    assert _backend.run_pair(lambda: 1, lambda: 2, 1) == (1, 2)
    assert _backend._native.get_thread_cap() == 0
