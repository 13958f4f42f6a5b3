"""The functional contract on both backends, checked from first principles rather than against the other
backend: result shapes/dtypes/None-ness, lengths (each sequence behaves as if run alone), reverse, T=0,
h0/c0 defaults, cache reuse, and that padding is never read."""

import numpy as np
import pytest

from fastrnn import functional as F

from helpers import (
    CELL_VARIANTS,
    DTYPES,
    GRADS,
    INPUTS,
    OUTPUTS,
    assert_close,
    assert_results_close,
    forward_problem,
    make_lengths,
    make_upstream,
    make_variant,
    run,
)

VARIANTS = list(CELL_VARIANTS)


def forward(p, cell, backend, **kw):
    return forward_problem(p, cell, backend=backend, **kw)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_result_shapes_and_dtypes(backend, variant, dtype, bias):
    T, B, I, H = 3, 2, 4, 6
    cell, p = make_variant(variant, T, B, I, H, dtype, bias, seed=51)
    P = p["h0"].shape[1]
    res = run(p, cell, backend, upstream=make_upstream(p, T))
    assert res["y"].shape == (T, B, P)
    assert res["h_n"].shape == (B, P)
    assert (res["c_n"] is None) == (cell != "lstm")
    if cell == "lstm":
        assert res["c_n"].shape == (B, H)
    for name, g in zip(INPUTS, GRADS):
        # A gradient exists exactly where its input does, with the input's shape.
        if p[name] is None:
            assert res[g] is None, g
        else:
            assert res[g].shape == p[name].shape, g
    for name, arr in res.items():
        if arr is not None:
            assert type(arr) is np.ndarray and arr.dtype == np.dtype(dtype), name


@pytest.mark.parametrize("variant", VARIANTS)
def test_inference_mode(backend, variant):
    # training=False: the same outputs, and no cache.
    cell, p = make_variant(variant, 4, 3, 2, 5, seed=52)
    lengths = make_lengths(4, 3)
    *train, cache = forward(p, cell, backend, lengths=lengths, reverse=True, training=True)
    *infer, none = forward(p, cell, backend, lengths=lengths, reverse=True, training=False)
    assert cache is not None and none is None
    for name, a, b in zip(OUTPUTS, infer, train):
        assert_close(a, b, name)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_full_lengths_equal_no_lengths(backend, variant, reverse):
    T, B = 4, 3
    cell, p = make_variant(variant, T, B, 3, 5, seed=53)
    up = make_upstream(p, T)
    expected = run(p, cell, backend, None, reverse, up)
    assert_results_close(run(p, cell, backend, np.full(B, T), reverse, up), expected)
    assert_results_close(run(p, cell, backend, [T] * B, reverse, up), expected)  # a list is fine


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_lengths_mean_each_sequence_runs_alone(backend, variant, dtype, reverse):
    # Packed-sequence semantics: sequence b of a padded batch gives exactly what x[:L_b, b] gives on
    # its own (reverse starting at its own last step), zeros past L_b, h_n/c_n at its own end (h0/c0
    # when L_b = 0), and the weight gradients are the sums of the per-sequence ones.
    T, B, I, H = 5, 4, 3, 6
    cell, p = make_variant(variant, T, B, I, H, dtype, seed=54)
    lengths = make_lengths(T, B)
    up = make_upstream(p, T)
    batch = run(p, cell, backend, lengths, reverse, up)
    dy, dh_n, dc_n = up
    sums = {g: None for g in ("dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr")}
    for b, L in enumerate(lengths):
        one = dict(
            p,
            x=p["x"][:L, b : b + 1],
            h0=p["h0"][b : b + 1],
            c0=None if p["c0"] is None else p["c0"][b : b + 1],
        )
        alone = run(
            one,
            cell,
            backend,
            None,
            reverse,
            (dy[:L, b : b + 1], dh_n[b : b + 1], None if dc_n is None else dc_n[b : b + 1]),
        )
        assert_close(batch["y"][:L, b : b + 1], alone["y"], f"y[:, {b}]")
        assert np.all(batch["y"][L:, b] == 0), f"y past length {L} of sequence {b}"
        for name in ("h_n", "c_n", "dh0", "dc0"):
            if batch[name] is not None:
                assert_close(batch[name][b : b + 1], alone[name], f"{name}[{b}]")
        assert_close(batch["dx"][:L, b : b + 1], alone["dx"], f"dx[:, {b}]")
        assert np.all(batch["dx"][L:, b] == 0), f"dx past length {L} of sequence {b}"
        for g in sums:
            if alone[g] is not None:
                sums[g] = alone[g] if sums[g] is None else sums[g] + alone[g]
    for g, total in sums.items():
        assert_close(batch[g], total, g)


@pytest.mark.parametrize("variant", VARIANTS)
def test_reverse_is_forward_on_flipped_time(backend, variant):
    T = 5
    cell, p = make_variant(variant, T, 3, 4, 5, seed=55)
    dy, dh_n, dc_n = make_upstream(p, T)
    rev = run(p, cell, backend, None, True, (dy, dh_n, dc_n))
    flipped = dict(p, x=p["x"][::-1].copy())
    fwd = run(flipped, cell, backend, None, False, (dy[::-1].copy(), dh_n, dc_n))
    fwd["y"] = fwd["y"][::-1]
    fwd["dx"] = fwd["dx"][::-1]
    assert_results_close(rev, fwd)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_empty_sequence(backend, variant, dtype):
    # T = 0: no step is taken; the states and their gradients pass straight through (as copies).
    cell, p = make_variant(variant, 0, 3, 4, 5, dtype, seed=56)
    dy, dh_n, dc_n = make_upstream(p, 0)
    for lengths in (None, np.zeros(3, np.int64)):
        res = run(p, cell, backend, lengths, False, (dy, dh_n, dc_n))
        assert res["y"].shape == (0, 3, p["h0"].shape[1])
        assert res["dx"].shape == (0, 3, 4)
        np.testing.assert_array_equal(res["h_n"], p["h0"])
        np.testing.assert_array_equal(res["dh0"], dh_n)
        assert not np.shares_memory(res["h_n"], p["h0"])
        assert not np.shares_memory(res["dh0"], dh_n)
        if cell == "lstm":
            np.testing.assert_array_equal(res["c_n"], p["c0"])
            np.testing.assert_array_equal(res["dc0"], dc_n)
            assert not np.shares_memory(res["c_n"], p["c0"])
            assert not np.shares_memory(res["dc0"], dc_n)
        for g in ("dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr"):
            if res[g] is not None:
                assert not np.any(res[g]), g


@pytest.mark.parametrize("variant", VARIANTS)
def test_all_lengths_zero(backend, variant):
    # Every sequence empty: outputs are zeros, states pass through, no weight gradient.
    T, B = 3, 2
    cell, p = make_variant(variant, T, B, 4, 5, seed=57)
    up = make_upstream(p, T)
    res = run(p, cell, backend, np.zeros(B, np.int64), False, up)
    assert not np.any(res["y"]) and not np.any(res["dx"])
    np.testing.assert_array_equal(res["h_n"], p["h0"])
    np.testing.assert_array_equal(res["dh0"], up[1])
    if cell == "lstm":
        np.testing.assert_array_equal(res["c_n"], p["c0"])
        np.testing.assert_array_equal(res["dc0"], up[2])
    for g in ("dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr"):
        if res[g] is not None:
            assert not np.any(res[g]), g


@pytest.mark.parametrize("variant", VARIANTS)
def test_none_states_are_zeros(backend, variant):
    cell, p = make_variant(variant, 3, 2, 4, 5, seed=58)
    zeros = dict(p, h0=np.zeros_like(p["h0"]), c0=None if p["c0"] is None else np.zeros_like(p["c0"]))
    nones = dict(p, h0=None, c0=None)
    up = make_upstream(p, 3)
    expected = run(zeros, cell, backend, upstream=up)
    assert_results_close(run(nones, cell, backend, upstream=up), expected, rtol=0, atol_rel=0)
    # dy/dh_n/dc_n None are zeros too.
    zero_up = tuple(None if u is None else np.zeros_like(u) for u in up)
    assert_results_close(run(p, cell, backend), run(p, cell, backend, upstream=zero_up), rtol=0, atol_rel=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cache_is_reusable_and_runs_are_repeatable(backend, variant):
    cell, p = make_variant(variant, 4, 5, 6, 7, seed=59)
    lengths = make_lengths(4, 5)
    up = make_upstream(p, 4)
    *outs, cache = forward(p, cell, backend, lengths=lengths)
    first = F.backward(cache, *up)
    F.backward(cache, None, None)  # a different upstream in between must not disturb the cache
    second = F.backward(cache, *up)
    *outs2, _ = forward(p, cell, backend, lengths=lengths)
    for name, a, b in zip(GRADS, second, first):
        assert_close(a, b, name, rtol=0, atol_rel=0)
    for name, a, b in zip(OUTPUTS, outs2, outs):
        assert_close(a, b, name, rtol=0, atol_rel=0)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_is_never_read(backend, variant, reverse):
    # NaN/inf in x and dy past each sequence's length must not reach any result.
    T, B = 5, 4
    cell, p = make_variant(variant, T, B, 3, 6, seed=60)
    lengths = make_lengths(T, B)
    dy, dh_n, dc_n = make_upstream(p, T)
    expected = run(p, cell, backend, lengths, reverse, (dy, dh_n, dc_n))
    pad = np.arange(T)[:, None] >= lengths[None, :]
    assert pad.any()
    x, dy = p["x"].copy(), dy.copy()
    x[pad] = np.nan
    dy[pad] = np.inf
    res = run(dict(p, x=x), cell, backend, lengths, reverse, (dy, dh_n, dc_n))
    assert_results_close(res, expected, rtol=0, atol_rel=0)
