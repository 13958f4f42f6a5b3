"""The NumPy reference's backward() against central finite differences of its forward() (float64).

Loss L = sum(y * Ry) + sum(h_n * Rh) (+ sum(c_n * Rc) for lstm), so backward(cache, Ry, Rh, Rc) must
return dL/d(every input). Small shapes keep the O(#parameters) forward evaluations fast.
"""

import numpy as np
import pytest

from fastrnn import functional as F

from helpers import CELL_VARIANTS, GRADS, INPUTS, make_lengths, make_upstream, make_variant

STEP = 1e-6
RTOL = 1e-6
# Rounding in L (|L| ~ 10, eps 2e-16) divided by the 2e-6 step gives ~1e-9 of noise: allow 1e-7.
ATOL = 1e-7


def forward_args(cell, p):
    return (cell, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["w_hr"])


def loss(cell, p, lengths, reverse, up):
    y, h_n, c_n, cache = F.forward(
        *forward_args(cell, p), lengths=lengths, reverse=reverse, training=False, backend="numpy"
    )
    assert cache is None
    dy, dh_n, dc_n = up
    total = np.sum(y * dy) + np.sum(h_n * dh_n)
    if dc_n is not None:
        total += np.sum(c_n * dc_n)
    return total


def numeric_gradient(cell, p, name, lengths, reverse, up):
    arr = p[name]
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + STEP
        plus = loss(cell, p, lengths, reverse, up)
        arr[idx] = old - STEP
        minus = loss(cell, p, lengths, reverse, up)
        arr[idx] = old
        grad[idx] = (plus - minus) / (2 * STEP)
    return grad


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_backward_matches_finite_differences(variant, with_lengths, reverse, bias):
    T, B, I, H = 3, 3, 3, 2  # lstm_proj: P = 1
    cell, p = make_variant(variant, T, B, I, H, np.float64, bias, seed=11)
    lengths = make_lengths(T, B) if with_lengths else None  # unsorted, includes 0 and T
    up = make_upstream(p, T, seed=12)
    *_, cache = F.forward(*forward_args(cell, p), lengths=lengths, reverse=reverse, backend="numpy")
    analytic = dict(zip(GRADS, F.backward(cache, *up)))

    checked = 0
    for name, gname in zip(INPUTS, GRADS):
        if p[name] is None:
            assert analytic.get(gname) is None, f"{gname} should be None when {name} is None"
            continue
        assert analytic[gname].shape == p[name].shape and analytic[gname].dtype == np.float64
        numeric = numeric_gradient(cell, p, name, lengths, reverse, up)
        err = np.abs(analytic[gname] - numeric)
        limit = ATOL + RTOL * np.abs(numeric).max() + RTOL * np.abs(numeric)
        assert np.all(err <= limit), (
            f"{gname}: max error {err.max():.3g}\nanalytic\n{analytic[gname]}\nnumeric\n{numeric}"
        )
        checked += 1
    # x, h0, w_ih, w_hh always; plus c0 (lstm), biases, w_hr (projection).
    expected = 4 + (cell == "lstm") + 2 * bias + (variant == "lstm_proj")
    assert checked == expected


@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_padding_gets_no_gradient(variant):
    # With lengths, x past each sequence's end cannot affect the loss: its gradient is exactly 0.
    T, B = 4, 3
    cell, p = make_variant(variant, T, B, 3, 4, np.float64, seed=13)
    lengths = make_lengths(T, B)
    *_, cache = F.forward(*forward_args(cell, p), lengths=lengths, backend="numpy")
    dx = F.backward(cache, *make_upstream(p, T))[0]
    pad = np.arange(T)[:, None] >= lengths[None, :]
    assert pad.any() and (~pad).any()
    assert np.all(dx[pad] == 0)
    assert np.all(np.abs(dx[~pad]).sum(axis=-1) > 0)
