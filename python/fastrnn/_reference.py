"""The NumPy backend: one layer, one direction, written plainly. This file is the specification.

Arguments arrive validated by ``functional.py``: C-contiguous arrays of one float dtype, ``h0``/``c0``
filled in, ``lengths`` an int64 array or None. Shapes (row-major, last axis fastest):

    x (T, B, I)   w_ih (G*H, I)   w_hh (G*H, P)   b_ih, b_hh (G*H,)   w_hr (P, H)
    h0 (B, P)     c0 (B, H)       y (T, B, P)

G is the number of gates (1 rnn, 4 lstm, 3 gru), H the hidden size and P the size of the state that
recurs: P == H, or the projection size when an LSTM has ``w_hr``.
"""

import numpy as np


def _sigmoid(a):
    # Written so that large |a| never overflows exp().
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


def _step_order(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


# ---------------------------------------------------------------------------------------------
# One cell step. gi = W_ih x_t + b_ih and gh = W_hh h_{t-1} + b_hh, both (B, G*H).
# Each returns the new (h, c) and what its backward needs.


def _rnn_step(act):
    def step(gi, gh, h, c, w_hr):
        a = gi + gh
        h_new = np.tanh(a) if act == "tanh" else np.maximum(a, 0)
        return h_new, None, {"h_new": h_new}

    return step


def _lstm_step(gi, gh, h, c, w_hr):
    i, f, g, o = np.split(gi + gh, 4, axis=1)
    i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
    c_new = f * c + i * g
    m = o * np.tanh(c_new)
    h_new = m if w_hr is None else m @ w_hr.T
    return h_new, c_new, {"i": i, "f": f, "g": g, "o": o, "c_prev": c, "c_new": c_new, "m": m}


def _gru_step(gi, gh, h, c, w_hr):
    gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)
    gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)
    r = _sigmoid(gi_r + gh_r)
    z = _sigmoid(gi_z + gh_z)
    n = np.tanh(gi_n + r * gh_n)
    h_new = (1 - z) * n + z * h
    return h_new, None, {"r": r, "z": z, "n": n, "gh_n": gh_n}


# ---------------------------------------------------------------------------------------------
# One cell step backwards. dh, dc: gradients w.r.t. the step's new h (B, P) and c (B, H).
# Returns (dgi, dgh, dh_prev_direct, dc_prev, dw_hr): the gradients w.r.t. gi and gh, the part of
# dh_{t-1} that does not go through W_hh, dc_{t-1}, and this step's share of dW_hr.


def _rnn_step_backward(act):
    def step_backward(s, dh, dc, h_prev, w_hr):
        h_new = s["h_new"]
        da = dh * (1 - h_new * h_new) if act == "tanh" else dh * (h_new > 0)
        return da, da, 0, None, None

    return step_backward


def _lstm_step_backward(s, dh, dc, h_prev, w_hr):
    i, f, g, o, c_new = s["i"], s["f"], s["g"], s["o"], s["c_new"]
    if w_hr is None:
        dm, dw_hr = dh, None
    else:
        dm, dw_hr = dh @ w_hr, dh.T @ s["m"]
    tc = np.tanh(c_new)
    dc = dc + dm * o * (1 - tc * tc)
    di = dc * g * i * (1 - i)
    df = dc * s["c_prev"] * f * (1 - f)
    dg = dc * i * (1 - g * g)
    do = dm * tc * o * (1 - o)
    dgates = np.concatenate([di, df, dg, do], axis=1)
    return dgates, dgates, 0, dc * f, dw_hr


def _gru_step_backward(s, dh, dc, h_prev, w_hr):
    r, z, n = s["r"], s["z"], s["n"]
    dn = dh * (1 - z) * (1 - n * n)
    dz = dh * (h_prev - n) * z * (1 - z)
    dr = dn * s["gh_n"] * r * (1 - r)
    dgi = np.concatenate([dr, dz, dn], axis=1)
    dgh = np.concatenate([dr, dz, dn * r], axis=1)
    return dgi, dgh, dh * z, None, None


_STEP = {"rnn_tanh": _rnn_step("tanh"), "rnn_relu": _rnn_step("relu"), "lstm": _lstm_step, "gru": _gru_step}
_STEP_BACKWARD = {
    "rnn_tanh": _rnn_step_backward("tanh"),
    "rnn_relu": _rnn_step_backward("relu"),
    "lstm": _lstm_step_backward,
    "gru": _gru_step_backward,
}


# ---------------------------------------------------------------------------------------------
# The time loops. With checkpoint_every = k > 0, a training forward keeps only the state at the
# start of every k-th step (in processing order) and backward recomputes each segment's steps from
# it, then runs the same per-step backward in the same order: the same gradients, bit for bit.


def _run_steps(cell, x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, ts, y, keep):
    """Runs the steps at times ``ts`` from state (h, c); writes y[t] when y is given, appends what
    backward needs to ``keep`` when it is a list. Returns the final (h, c)."""
    step = _STEP[cell]
    for t in ts:
        # Only sequences still running at time t (t < length) take a step; the others keep their
        # state and output zeros (PyTorch's packed-sequence semantics). Padding is never read.
        rows = slice(None) if lengths is None else np.flatnonzero(t < lengths)
        h_prev, c_prev = h[rows], (None if c is None else c[rows])
        gi = x[t, rows] @ w_ih.T
        gh = h_prev @ w_hh.T
        if b_ih is not None:
            gi = gi + b_ih
        if b_hh is not None:
            gh = gh + b_hh
        h_new, c_new, saved = step(gi, gh, h_prev, c_prev, w_hr)
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


def forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse, training, checkpoint_every=0):
    """Returns (y, h_n, c_n, saved); saved is None unless training. ``checkpoint_every`` k > 0
    keeps the state every k steps instead of every step's values (0: keep everything)."""
    T, B, _ = x.shape
    y = np.zeros((T, B, w_hh.shape[1]), x.dtype)
    h, c = h0.copy(), (c0.copy() if cell == "lstm" else None)
    order = _step_order(T, reverse)  # a range: slices of it are ranges too
    k = checkpoint_every if training and checkpoint_every > 0 else T
    steps, boundaries = [], []
    for s0 in range(0, T, max(k, 1)):
        if training and checkpoint_every > 0:
            boundaries.append((h, c))  # never modified in place: _run_steps makes new arrays
        keep = steps if training and checkpoint_every == 0 else None
        args = (w_ih, w_hh, b_ih, b_hh, w_hr, lengths)
        h, c = _run_steps(cell, x, h, c, *args, order[s0 : s0 + k], y, keep)
    saved = None
    if training:
        saved = {
            "cell": cell,
            "x": x,
            "w_ih": w_ih,
            "w_hh": w_hh,
            "w_hr": w_hr,
            "steps": steps,
            "has_b_ih": b_ih is not None,
            "has_b_hh": b_hh is not None,
        }
        if checkpoint_every > 0:
            saved.update(
                every=checkpoint_every,
                order=order,
                boundaries=boundaries,
                b_ih=b_ih,
                b_hh=b_hh,
                lengths=lengths,
            )
    return y, h, c, saved


def _backward_steps(saved, steps, dy, dh, dc, grads, dh_norms):
    """Backpropagates through ``steps`` (as forward kept them) from the last to the first: updates
    dh, dc (returned) and the weight gradients in ``grads`` in place, and writes dh_norms."""
    cell, x, w_ih, w_hh, w_hr = saved["cell"], saved["x"], saved["w_ih"], saved["w_hh"], saved["w_hr"]
    step_backward = _STEP_BACKWARD[cell]
    dx, dw_ih, dw_hh, db_ih, db_hh, dw_hr = grads
    for t, rows, h_prev, s in reversed(steps):
        # Gradients reach only the sequences that took this step; the others pass dh, dc through.
        dh_in = dh[rows] + dy[t, rows]
        dh_norms[t] = np.sqrt(np.sum(np.square(dh_in, dtype=np.float64)))
        dc_in = None if dc is None else dc[rows]
        dgi, dgh, dh_prev, dc_prev, dw_hr_t = step_backward(s, dh_in, dc_in, h_prev, w_hr)
        dx[t, rows] = dgi @ w_ih
        dw_ih += dgi.T @ x[t, rows]
        dw_hh += dgh.T @ h_prev
        db_ih += dgi.sum(axis=0)
        db_hh += dgh.sum(axis=0)
        if dw_hr_t is not None:
            dw_hr += dw_hr_t
        dh[rows] = dh_prev + dgh @ w_hh
        if dc is not None:
            dc[rows] = dc_prev
    return dh, dc


def backward(saved, dy, dh_n, dc_n):
    """Returns (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dh_norms); dh_norms[t] is the norm
    of dLoss/dh_t over the sequences that took step t."""
    cell, x, w_ih, w_hh, w_hr = saved["cell"], saved["x"], saved["w_ih"], saved["w_hh"], saved["w_hr"]
    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_ih = np.zeros(w_ih.shape[0], x.dtype)
    db_hh = np.zeros(w_hh.shape[0], x.dtype)
    dw_hr = None if w_hr is None else np.zeros_like(w_hr)
    grads = (dx, dw_ih, dw_hh, db_ih, db_hh, dw_hr)
    dh = dh_n.copy()
    dc = dc_n.copy() if cell == "lstm" else None
    dh_norms = np.zeros(x.shape[0])
    k = saved.get("every", 0)
    if k == 0:
        dh, dc = _backward_steps(saved, saved["steps"], dy, dh, dc, grads, dh_norms)
    else:  # each segment, last first: its steps recomputed from the state it started from
        args = (w_ih, w_hh, saved["b_ih"], saved["b_hh"], w_hr, saved["lengths"])
        for i in reversed(range(len(saved["boundaries"]))):
            h, c = saved["boundaries"][i]
            steps = []
            _run_steps(cell, x, h, c, *args, saved["order"][i * k : (i + 1) * k], None, steps)
            dh, dc = _backward_steps(saved, steps, dy, dh, dc, grads, dh_norms)
    return (
        dx,
        dh,
        dc,
        dw_ih,
        dw_hh,
        db_ih if saved["has_b_ih"] else None,
        db_hh if saved["has_b_hh"] else None,
        dw_hr,
        dh_norms,
    )


# ---------------------------------------------------------------------------------------------
# The matrix product of the non-recurrent layers (Linear), the same call as _native.matmul.


def matmul(a, b, out, accumulate):
    """out = a @ b, or out += a @ b when accumulate (out (M, N) is written in place)."""
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)
