"""What the fastrnn.convert tests share: the cell variants, random weights and inputs, fastrnn's
forward for one direction, and the ONNX and Keras equations written here from their specifications,
with their own gate names and layouts (so a consistent-but-wrong permutation fails against them)."""

import numpy as np

from fastrnn import functional as F

from helpers import GATES

T, B, I, H = 4, 3, 5, 6

# variant -> (cell, reset_after for a GRU else None, peepholes)
VARIANTS = {
    "rnn_tanh": ("rnn_tanh", None, False),
    "rnn_relu": ("rnn_relu", None, False),
    "lstm": ("lstm", None, False),
    "lstm_peepholes": ("lstm", None, True),
    "gru": ("gru", True, False),
    "gru_reset_before": ("gru", False, False),
}
ONNX_OP = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
ONNX_ACT = {"rnn_tanh": "Tanh", "rnn_relu": "Relu", "lstm": None, "gru": None}
KERAS_LAYER = {"rnn_tanh": "SimpleRNN", "rnn_relu": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
KERAS_ACT = {"rnn_tanh": "tanh", "rnn_relu": "relu", "lstm": "tanh", "gru": "tanh"}


def lbr(reset_after):
    """The ONNX linear_before_reset of a GRU form (None for the other cells)."""
    return None if reset_after is None else int(reset_after)


def weights(cell, dtype=np.float64, bias=True, seed=0, I=I, H=H, peepholes=False):
    """One direction's fastrnn weights (w_ih, w_hh, b_ih, b_hh[, w_ph]), values ~ U(-1/sqrt(H), 1/sqrt(H))
    (peepholes ~ U(-0.5, 0.5))."""
    rng = np.random.default_rng(seed)
    G, k = GATES[cell], 1.0 / np.sqrt(H)
    u = lambda *s: rng.uniform(-k, k, size=s).astype(dtype)  # noqa: E731
    out = {
        "w_ih": u(G * H, I),
        "w_hh": u(G * H, H),
        "b_ih": u(G * H) if bias else None,
        "b_hh": u(G * H) if bias else None,
    }
    if peepholes:
        out["w_ph"] = rng.uniform(-0.5, 0.5, 3 * H).astype(dtype)
    return out


def inputs(cell, dtype=np.float64, seed=5, D=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((D, B, H)).astype(dtype)
    c0 = rng.standard_normal((D, B, H)).astype(dtype) if cell == "lstm" else None
    return x, h0, c0


def fastrnn_forward(cell, x, h0, c0, w, reverse=False, reset_after=None):
    y, h_n, c_n, _ = F.forward(
        cell,
        x,
        h0,
        c0,
        w["w_ih"],
        w["w_hh"],
        w["b_ih"],
        w["b_hh"],
        reverse=reverse,
        training=False,
        backend="numpy",
        w_ph=w.get("w_ph"),
        reset_after=True if reset_after is None else reset_after,
    )
    return y, h_n, c_n


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def onnx_eval(op, X, W, R, Bias, h0, c0=None, P=None, activation="Tanh", linear_before_reset=0):
    """ONNX RNN/LSTM/GRU, every direction: returns Y (T, D, B, H), Y_h, Y_c. Direction 0 runs
    forward in time, direction 1 (bidirectional) in reverse."""
    D, GH, _ = W.shape
    Hs = R.shape[-1]
    Y = np.zeros((X.shape[0], D, X.shape[1], Hs), X.dtype)
    Y_h, Y_c = np.zeros_like(h0), (None if c0 is None else np.zeros_like(c0))
    for d in range(D):
        Wb, Rb = (np.zeros(GH, X.dtype),) * 2 if Bias is None else np.split(Bias[d], 2)
        Pi, Po, Pf = (np.zeros(Hs, X.dtype),) * 3 if P is None else np.split(P[d], 3)
        Ht, Ct = h0[d], (None if c0 is None else c0[d])
        steps = range(X.shape[0]) if d == 0 else range(X.shape[0] - 1, -1, -1)
        for t in steps:
            xt = X[t]
            if op == "RNN":
                a = xt @ W[d].T + Ht @ R[d].T + Wb + Rb
                Ht = np.tanh(a) if activation == "Tanh" else np.maximum(a, 0)
            elif op == "LSTM":
                # it = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Pi (.) Ct-1 + Wbi + Rbi); ot sees Po (.) Ct
                Wi, Wo, Wf, Wc = np.split(W[d], 4)
                Ri, Ro, Rf, Rc = np.split(R[d], 4)
                wbi, wbo, wbf, wbc = np.split(Wb, 4)
                rbi, rbo, rbf, rbc = np.split(Rb, 4)
                it = sigmoid(xt @ Wi.T + Ht @ Ri.T + Pi * Ct + wbi + rbi)
                ft = sigmoid(xt @ Wf.T + Ht @ Rf.T + Pf * Ct + wbf + rbf)
                ct = np.tanh(xt @ Wc.T + Ht @ Rc.T + wbc + rbc)
                Ct = ft * Ct + it * ct
                ot = sigmoid(xt @ Wo.T + Ht @ Ro.T + Po * Ct + wbo + rbo)
                Ht = ot * np.tanh(Ct)
            else:
                Wz, Wr, Wh = np.split(W[d], 3)
                Rz, Rr, Rh = np.split(R[d], 3)
                wbz, wbr, wbh = np.split(Wb, 3)
                rbz, rbr, rbh = np.split(Rb, 3)
                zt = sigmoid(xt @ Wz.T + Ht @ Rz.T + wbz + rbz)
                rt = sigmoid(xt @ Wr.T + Ht @ Rr.T + wbr + rbr)
                if linear_before_reset:  # ht = g(Xt*(Wh^T) + (rt (.) (Ht-1*(Rh^T) + Rbh)) + Wbh)
                    ht = np.tanh(xt @ Wh.T + rt * (Ht @ Rh.T + rbh) + wbh)
                else:  # ht = g(Xt*(Wh^T) + (rt (.) Ht-1)*(Rh^T) + Rbh + Wbh)
                    ht = np.tanh(xt @ Wh.T + (rt * Ht) @ Rh.T + rbh + wbh)
                Ht = (1 - zt) * ht + zt * Ht
            Y[t, d] = Ht
        Y_h[d] = Ht
        if c0 is not None:
            Y_c[d] = Ct
    return Y, Y_h, Y_c


def keras_eval(layer, x, kernel, recurrent_kernel, bias, h0, c0=None, activation="tanh", reset_after=True):
    """Keras SimpleRNN/LSTM/GRU, time-major x (T, B, I): returns (y, h, c)."""
    U = kernel.shape[1] // {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[layer]
    h, c = h0, c0
    ys = []
    for xt in x:
        if layer == "SimpleRNN":
            a = xt @ kernel + (0 if bias is None else bias) + h @ recurrent_kernel
            h = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
        elif layer == "LSTM":
            z = xt @ kernel + h @ recurrent_kernel + (0 if bias is None else bias)
            z0, z1, z2, z3 = (z[:, k * U : (k + 1) * U] for k in range(4))
            i, f = sigmoid(z0), sigmoid(z1)
            c = f * c + i * np.tanh(z2)
            o = sigmoid(z3)
            h = o * np.tanh(c)
        elif reset_after:
            input_bias, recurrent_bias = (0, 0) if bias is None else (bias[0], bias[1])
            matrix_x = xt @ kernel + input_bias
            x_z, x_r, x_h = matrix_x[:, :U], matrix_x[:, U : 2 * U], matrix_x[:, 2 * U :]
            matrix_inner = h @ recurrent_kernel + recurrent_bias
            rec_z, rec_r, rec_h = matrix_inner[:, :U], matrix_inner[:, U : 2 * U], matrix_inner[:, 2 * U :]
            z = sigmoid(x_z + rec_z)
            r = sigmoid(x_r + rec_r)
            hh = np.tanh(x_h + r * rec_h)
            h = z * h + (1 - z) * hh
        else:  # one bias, added to the inputs' part; the reset gate scales h before U_h
            matrix_x = xt @ kernel + (0 if bias is None else bias)
            x_z, x_r, x_h = matrix_x[:, :U], matrix_x[:, U : 2 * U], matrix_x[:, 2 * U :]
            z = sigmoid(x_z + h @ recurrent_kernel[:, :U])
            r = sigmoid(x_r + h @ recurrent_kernel[:, U : 2 * U])
            hh = np.tanh(x_h + (r * h) @ recurrent_kernel[:, 2 * U :])
            h = z * h + (1 - z) * hh
        ys.append(h)
    return np.stack(ys), h, c
