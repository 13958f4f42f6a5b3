"""The NumPy backend: one layer, one direction, written plainly. This file is the specification.

Arguments arrive validated by ``functional.py``: C-contiguous arrays of one float dtype, ``h0``/``c0``
filled in, ``lengths`` an int64 array or None. Shapes (row-major, last axis fastest):

    x (T, B, I)   w_ih (G*H, I)   w_hh (G*H, P)   b_ih, b_hh (G*H,)   w_hr (P, H)   w_ph (3*H,)
    h0 (B, P)     c0 (B, H)       y (T, B, P)

G is the number of gates (1 rnn, 4 lstm, 3 gru), H the hidden size and P the size of the state that
recurs: P == H, or the projection size when an LSTM has ``w_hr``. ``w_ph`` holds an LSTM's peephole
weights (i, f, o); ``reset_after`` picks the GRU's form: True (PyTorch's) n = tanh(W_in x + b_in +
r * (W_hn h + b_hn)), False (Cho et al. 2014's original) n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._typing import FloatArray

_Saved = dict[str, Any]  # what a step (or a forward) keeps for backward
# One step: (gi, h, c, params) -> (h_new, c_new, saved)
_Step = Callable[
    [FloatArray, FloatArray, "FloatArray | None", "_Params"], "tuple[FloatArray, FloatArray | None, _Saved]"
]
# One step backwards: (saved, dh, dc, h_prev, params, grads) -> (dgi, dh_prev, dc_prev)
_StepBackward = Callable[
    [_Saved, FloatArray, "FloatArray | None", FloatArray, "_Params", "dict[str, Any]"],
    "tuple[FloatArray, FloatArray, FloatArray | None]",
]
# A kept step: (t, the rows that took it, h_prev, what its backward needs)
_Kept = tuple[int, Any, FloatArray, _Saved]


def _sigmoid(a: FloatArray) -> FloatArray:
    # Written so that large |a| never overflows exp().
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


def _step_order(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


class _Params(NamedTuple):
    """The recurrent side of a layer, as every cell step sees it."""

    w_hh: FloatArray
    b_hh: FloatArray | None  # (G*H,)
    w_hr: FloatArray | None  # (P, H)
    w_ph: FloatArray | None  # (3*H,)
    reset_after: bool


def _hidden(h: FloatArray, p: _Params, gates: slice) -> FloatArray:
    """h @ W_hh^T + b_hh over the rows of W_hh that ``gates`` (a slice of gate rows) selects."""
    out: FloatArray = h @ p.w_hh[gates].T
    return out if p.b_hh is None else out + p.b_hh[gates]


def _hidden_backward(
    dgh: FloatArray, h: FloatArray, p: _Params, gates: slice, grads: dict[str, Any]
) -> FloatArray:
    """The backward of _hidden: adds this step's dW_hh, db_hh shares; returns the gradient w.r.t. h."""
    grads["w_hh"][gates] += dgh.T @ h
    grads["b_hh"][gates] += dgh.sum(axis=0)
    return dgh @ p.w_hh[gates]


_ALL = slice(None)


# ---------------------------------------------------------------------------------------------
# One cell step. gi = W_ih x_t + b_ih (B, G*H); h, c: the state the step starts from.
# Each returns the new (h, c) and what its backward needs.


def _rnn_step(act: str) -> _Step:
    def step(
        gi: FloatArray, h: FloatArray, c: FloatArray | None, p: _Params
    ) -> tuple[FloatArray, None, _Saved]:
        a = gi + _hidden(h, p, _ALL)
        h_new = np.tanh(a) if act == "tanh" else np.maximum(a, 0)
        return h_new, None, {"h_new": h_new}

    return step


def _lstm_step(
    gi: FloatArray, h: FloatArray, c: FloatArray | None, p: _Params
) -> tuple[FloatArray, FloatArray, _Saved]:
    assert c is not None  # an LSTM always has a cell state
    gates: list[FloatArray] = np.split(gi + _hidden(h, p, _ALL), 4, axis=1)
    i, f, g, o = gates
    if p.w_ph is not None:  # peepholes: i and f see the old cell state, o the new one
        p_i, p_f, p_o = np.split(p.w_ph, 3)
        i, f = i + p_i * c, f + p_f * c
    i, f, g = _sigmoid(i), _sigmoid(f), np.tanh(g)
    c_new = f * c + i * g
    o = _sigmoid(o if p.w_ph is None else o + p_o * c_new)
    m = o * np.tanh(c_new)
    h_new = m if p.w_hr is None else m @ p.w_hr.T
    return h_new, c_new, {"i": i, "f": f, "g": g, "o": o, "c_prev": c, "c_new": c_new, "m": m}


def _gru_step(
    gi: FloatArray, h: FloatArray, c: FloatArray | None, p: _Params
) -> tuple[FloatArray, None, _Saved]:
    H = h.shape[1]
    gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)
    gh_r, gh_z = np.split(_hidden(h, p, slice(0, 2 * H)), 2, axis=1)
    r = _sigmoid(gi_r + gh_r)
    z = _sigmoid(gi_z + gh_z)
    if p.reset_after:
        gh_n = _hidden(h, p, slice(2 * H, None))
        n = np.tanh(gi_n + r * gh_n)
    else:
        gh_n = None
        n = np.tanh(gi_n + _hidden(r * h, p, slice(2 * H, None)))
    h_new = (1 - z) * n + z * h
    return h_new, None, {"r": r, "z": z, "n": n, "gh_n": gh_n}


# ---------------------------------------------------------------------------------------------
# One cell step backwards. dh, dc: gradients w.r.t. the step's new h (B, P) and c (B, H); grads:
# the recurrent parameters' gradients, to which each step adds its share. Returns (dgi, dh_prev,
# dc_prev): the gradients w.r.t. gi, the step's h and its c.


def _rnn_step_backward(act: str) -> _StepBackward:
    def step_backward(
        s: _Saved,
        dh: FloatArray,
        dc: FloatArray | None,
        h_prev: FloatArray,
        p: _Params,
        grads: dict[str, Any],
    ) -> tuple[FloatArray, FloatArray, None]:
        h_new = s["h_new"]
        da = dh * (1 - h_new * h_new) if act == "tanh" else dh * (h_new > 0)
        return da, _hidden_backward(da, h_prev, p, _ALL, grads), None

    return step_backward


def _lstm_step_backward(
    s: _Saved, dh: FloatArray, dc: FloatArray | None, h_prev: FloatArray, p: _Params, grads: dict[str, Any]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    assert dc is not None  # an LSTM always has a cell state
    i, f, g, o, c_prev, c_new = s["i"], s["f"], s["g"], s["o"], s["c_prev"], s["c_new"]
    if p.w_hr is None:
        dm = dh
    else:
        dm = dh @ p.w_hr
        grads["w_hr"] += dh.T @ s["m"]
    tc = np.tanh(c_new)
    do = dm * tc * o * (1 - o)
    dc = dc + dm * o * (1 - tc * tc)
    if p.w_ph is not None:
        p_i, p_f, p_o = np.split(p.w_ph, 3)
        dc = dc + do * p_o
    di = dc * g * i * (1 - i)
    df = dc * c_prev * f * (1 - f)
    dg = dc * i * (1 - g * g)
    dc_prev = dc * f
    if p.w_ph is not None:
        dc_prev = dc_prev + di * p_i + df * p_f
        grads["w_ph"] += np.concatenate([(di * c_prev).sum(0), (df * c_prev).sum(0), (do * c_new).sum(0)])
    dgates = np.concatenate([di, df, dg, do], axis=1)
    return dgates, _hidden_backward(dgates, h_prev, p, _ALL, grads), dc_prev


def _gru_step_backward(
    s: _Saved, dh: FloatArray, dc: FloatArray | None, h_prev: FloatArray, p: _Params, grads: dict[str, Any]
) -> tuple[FloatArray, FloatArray, None]:
    H = h_prev.shape[1]
    r, z, n = s["r"], s["z"], s["n"]
    dn = dh * (1 - z) * (1 - n * n)
    dz = dh * (h_prev - n) * z * (1 - z)
    dh_prev = dh * z
    if p.reset_after:
        dr = dn * s["gh_n"] * r * (1 - r)
        dh_prev = dh_prev + _hidden_backward(dn * r, h_prev, p, slice(2 * H, None), grads)
    else:
        d_rh = _hidden_backward(dn, r * h_prev, p, slice(2 * H, None), grads)
        dr = d_rh * h_prev * r * (1 - r)
        dh_prev = dh_prev + d_rh * r
    dh_prev = dh_prev + _hidden_backward(np.concatenate([dr, dz], axis=1), h_prev, p, slice(0, 2 * H), grads)
    return np.concatenate([dr, dz, dn], axis=1), dh_prev, None


_STEP: dict[str, _Step] = {
    "rnn_tanh": _rnn_step("tanh"),
    "rnn_relu": _rnn_step("relu"),
    "lstm": _lstm_step,
    "gru": _gru_step,
}
_STEP_BACKWARD: dict[str, _StepBackward] = {
    "rnn_tanh": _rnn_step_backward("tanh"),
    "rnn_relu": _rnn_step_backward("relu"),
    "lstm": _lstm_step_backward,
    "gru": _gru_step_backward,
}


# ---------------------------------------------------------------------------------------------
# The time loops. With checkpoint_every = k > 0, a training forward keeps only the state at the
# start of every k-th step (in processing order) and backward recomputes each segment's steps from
# it, then runs the same per-step backward in the same order: the same gradients, bit for bit.


def _run_steps(
    cell: str,
    x: FloatArray,
    h: FloatArray,
    c: FloatArray | None,
    w_ih: FloatArray,
    b_ih: FloatArray | None,
    p: _Params,
    lengths: NDArray[np.int64] | None,
    ts: Sequence[int],
    y: FloatArray | None,
    keep: list[_Kept] | None,
) -> tuple[FloatArray, FloatArray | None]:
    """Runs the steps at times ``ts`` from state (h, c); writes y[t] when y is given, appends what
    backward needs to ``keep`` when it is a list. Returns the final (h, c)."""
    step = _STEP[cell]
    for t in ts:
        # Only sequences still running at time t (t < length) take a step; the others keep their
        # state and output zeros (PyTorch's packed-sequence semantics). Padding is never read.
        rows: Any = slice(None) if lengths is None else np.flatnonzero(t < lengths)  # or an index array
        h_prev, c_prev = h[rows], (None if c is None else c[rows])
        gi = x[t, rows] @ w_ih.T
        if b_ih is not None:
            gi = gi + b_ih
        h_new, c_new, saved = step(gi, h_prev, c_prev, p)
        if keep is not None:
            keep.append((t, rows, h_prev, saved))
        if y is not None:
            y[t, rows] = h_new
        h = h.copy()  # new arrays: the saved h_prev/c_prev may be views of the old ones
        h[rows] = h_new
        if c is not None:
            c = c.copy()
            c[rows] = c_new
    return h, c


def forward(
    cell: str,
    x: FloatArray,
    h0: FloatArray,
    c0: FloatArray | None,
    w_ih: FloatArray,
    w_hh: FloatArray,
    b_ih: FloatArray | None,
    b_hh: FloatArray | None,
    w_hr: FloatArray | None,
    lengths: NDArray[np.int64] | None,
    reverse: bool,
    training: bool,
    w_ph: FloatArray | None = None,
    reset_after: bool = True,
    checkpoint_every: int = 0,
) -> tuple[FloatArray, FloatArray, FloatArray | None, _Saved | None]:
    """Returns (y, h_n, c_n, saved); saved is None unless training. ``checkpoint_every`` k > 0
    keeps the state every k steps instead of every step's values (0: keep everything)."""
    T, B, _ = x.shape
    p = _Params(w_hh, b_hh, w_hr, w_ph, reset_after)
    y = np.zeros((T, B, w_hh.shape[1]), x.dtype)
    h: FloatArray = h0.copy()
    c = None if c0 is None else c0.copy()  # c0: lstm only
    order = _step_order(T, reverse)  # a range: slices of it are ranges too
    k = checkpoint_every if training and checkpoint_every > 0 else T
    steps: list[_Kept] = []
    boundaries: list[tuple[FloatArray, FloatArray | None]] = []
    for s0 in range(0, T, max(k, 1)):
        if training and checkpoint_every > 0:
            boundaries.append((h, c))  # never modified in place: _run_steps makes new arrays
        keep = steps if training and checkpoint_every == 0 else None
        h, c = _run_steps(cell, x, h, c, w_ih, b_ih, p, lengths, order[s0 : s0 + k], y, keep)
    saved: _Saved | None = None
    if training:
        saved = {
            "cell": cell,
            "x": x,
            "w_ih": w_ih,
            "params": p,
            "steps": steps,
            "has_b_ih": b_ih is not None,
        }
        if checkpoint_every > 0:
            saved.update(
                every=checkpoint_every, order=order, boundaries=boundaries, b_ih=b_ih, lengths=lengths
            )
    return y, h, c, saved


def _backward_steps(
    saved: _Saved,
    steps: list[_Kept],
    dy: FloatArray,
    dh: FloatArray,
    dc: FloatArray | None,
    grads: dict[str, Any],
    dh_norms: NDArray[np.float64],
) -> tuple[FloatArray, FloatArray | None]:
    """Backpropagates through ``steps`` (as forward kept them) from the last to the first: updates
    dh, dc (returned) and the gradients in ``grads`` in place, and writes dh_norms."""
    cell, x, w_ih, p = saved["cell"], saved["x"], saved["w_ih"], saved["params"]
    step_backward = _STEP_BACKWARD[cell]
    for t, rows, h_prev, s in reversed(steps):
        # Gradients reach only the sequences that took this step; the others pass dh, dc through.
        dh_in = dh[rows] + dy[t, rows]
        dh_norms[t] = np.sqrt(np.sum(np.square(dh_in, dtype=np.float64)))
        dc_in = None if dc is None else dc[rows]
        dgi, dh_prev, dc_prev = step_backward(s, dh_in, dc_in, h_prev, p, grads)
        if grads["x"] is not None:
            grads["x"][t, rows] = dgi @ w_ih
        grads["w_ih"] += dgi.T @ x[t, rows]
        grads["b_ih"] += dgi.sum(axis=0)
        dh[rows] = dh_prev
        if dc is not None:
            dc[rows] = dc_prev
    return dh, dc


def backward(
    saved: _Saved, dy: FloatArray, dh_n: FloatArray, dc_n: FloatArray | None, need_dx: bool = True
) -> tuple[FloatArray | None, ...]:
    """Returns (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_ph, dh_norms); dh_norms[t] is the
    norm of dLoss/dh_t over the sequences that took step t. dx is None (not computed) unless
    need_dx."""
    cell, x, w_ih, p = saved["cell"], saved["x"], saved["w_ih"], saved["params"]
    grads: dict[str, Any] = {
        "x": np.zeros_like(x) if need_dx else None,
        "w_ih": np.zeros_like(w_ih),
        "b_ih": np.zeros(w_ih.shape[0], x.dtype),
        "w_hh": np.zeros_like(p.w_hh),
        "b_hh": np.zeros(p.w_hh.shape[0], x.dtype),
    }
    for name in ("w_hr", "w_ph"):
        grads[name] = None if getattr(p, name) is None else np.zeros_like(getattr(p, name))
    dh = dh_n.copy()
    dc = None if dc_n is None else dc_n.copy()  # dc_n: lstm only
    dh_norms = np.zeros(x.shape[0])
    k = saved.get("every", 0)
    if k == 0:
        dh, dc = _backward_steps(saved, saved["steps"], dy, dh, dc, grads, dh_norms)
    else:  # each segment, last first: its steps recomputed from the state it started from
        for i in reversed(range(len(saved["boundaries"]))):
            h, c = saved["boundaries"][i]
            steps: list[_Kept] = []
            ts = saved["order"][i * k : (i + 1) * k]
            _run_steps(cell, x, h, c, w_ih, saved["b_ih"], p, saved["lengths"], ts, None, steps)
            dh, dc = _backward_steps(saved, steps, dy, dh, dc, grads, dh_norms)
    return (
        grads["x"],
        dh,
        dc,
        grads["w_ih"],
        grads["w_hh"],
        grads["b_ih"] if saved["has_b_ih"] else None,
        grads["b_hh"] if p.b_hh is not None else None,
        grads["w_hr"],
        grads["w_ph"],
        dh_norms,
    )


# ---------------------------------------------------------------------------------------------
# The matrix product of the non-recurrent layers (Linear), the same call as _native.matmul.


def matmul(a: FloatArray, b: FloatArray, out: FloatArray, accumulate: bool) -> None:
    """out = a @ b, or out += a @ b when accumulate (out (M, N) is written in place)."""
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)
