"""fastrnn.convert: ONNX and Keras weight conversions.

Round trips are exact; the gate reordering is checked against plain NumPy evaluations of the ONNX and
Keras equations written here from their specifications (so a consistent-but-wrong permutation fails);
where onnx and onnxruntime are installed, models built from converted weights run in onnxruntime and
give fastrnn's outputs. Rejected variants and bad input raise clear errors.
"""

import numpy as np
import pytest

import fastrnn
from fastrnn import convert as C
from fastrnn import functional as F

from helpers import CELLS, GATES, assert_close

T, B, I, H = 4, 3, 5, 6
DTYPES = (np.float32, np.float64)
LBR = {"gru": 1}  # linear_before_reset to pass to from_onnx


def weights(cell, dtype=np.float64, bias=True, seed=0, I=I, H=H):
    """One direction's fastrnn weights (w_ih, w_hh, b_ih, b_hh), values ~ U(-1/sqrt(H), 1/sqrt(H))."""
    rng = np.random.default_rng(seed)
    G, k = GATES[cell], 1.0 / np.sqrt(H)
    u = lambda *s: rng.uniform(-k, k, size=s).astype(dtype)  # noqa: E731
    return {
        "w_ih": u(G * H, I),
        "w_hh": u(G * H, H),
        "b_ih": u(G * H) if bias else None,
        "b_hh": u(G * H) if bias else None,
    }


def inputs(cell, dtype=np.float64, seed=5, D=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((D, B, H)).astype(dtype)
    c0 = rng.standard_normal((D, B, H)).astype(dtype) if cell == "lstm" else None
    return x, h0, c0


def fastrnn_forward(cell, x, h0, c0, w, reverse=False):
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
    )
    return y, h_n, c_n


def assert_same(actual, expected):
    """Bit-for-bit equal arrays with the same dtype (or both None)."""
    if expected is None:
        assert actual is None
        return
    assert isinstance(actual, np.ndarray) and actual.dtype == expected.dtype
    assert actual.flags.c_contiguous
    np.testing.assert_array_equal(actual, expected)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# -------------------------------------------------------------------------------------------------
# The ONNX and Keras equations, written from their specifications with their own gate names.


def onnx_eval(op, X, W, R, Bias, h0, c0=None, activation="Tanh"):
    """ONNX RNN/LSTM/GRU (linear_before_reset=1), every direction: returns Y (T, D, B, H), Y_h, Y_c.
    Direction 0 runs forward in time, direction 1 (bidirectional) in reverse."""
    D, GH, _ = W.shape
    Hs = R.shape[-1]
    Y = np.zeros((X.shape[0], D, X.shape[1], Hs), X.dtype)
    Y_h, Y_c = np.zeros_like(h0), (None if c0 is None else np.zeros_like(c0))
    for d in range(D):
        Wb, Rb = (np.zeros(GH, X.dtype),) * 2 if Bias is None else np.split(Bias[d], 2)
        Ht, Ct = h0[d], (None if c0 is None else c0[d])
        steps = range(X.shape[0]) if d == 0 else range(X.shape[0] - 1, -1, -1)
        for t in steps:
            xt = X[t]
            if op == "RNN":
                a = xt @ W[d].T + Ht @ R[d].T + Wb + Rb
                Ht = np.tanh(a) if activation == "Tanh" else np.maximum(a, 0)
            elif op == "LSTM":
                # it = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi), ot, ft likewise; ct = g(...)
                Wi, Wo, Wf, Wc = np.split(W[d], 4)
                Ri, Ro, Rf, Rc = np.split(R[d], 4)
                wbi, wbo, wbf, wbc = np.split(Wb, 4)
                rbi, rbo, rbf, rbc = np.split(Rb, 4)
                it = sigmoid(xt @ Wi.T + Ht @ Ri.T + wbi + rbi)
                ft = sigmoid(xt @ Wf.T + Ht @ Rf.T + wbf + rbf)
                ct = np.tanh(xt @ Wc.T + Ht @ Rc.T + wbc + rbc)
                Ct = ft * Ct + it * ct
                ot = sigmoid(xt @ Wo.T + Ht @ Ro.T + wbo + rbo)
                Ht = ot * np.tanh(Ct)
            else:  # GRU, linear_before_reset != 0
                Wz, Wr, Wh = np.split(W[d], 3)
                Rz, Rr, Rh = np.split(R[d], 3)
                wbz, wbr, wbh = np.split(Wb, 3)
                rbz, rbr, rbh = np.split(Rb, 3)
                zt = sigmoid(xt @ Wz.T + Ht @ Rz.T + wbz + rbz)
                rt = sigmoid(xt @ Wr.T + Ht @ Rr.T + wbr + rbr)
                ht = np.tanh(xt @ Wh.T + rt * (Ht @ Rh.T + rbh) + wbh)
                Ht = (1 - zt) * ht + zt * Ht
            Y[t, d] = Ht
        Y_h[d] = Ht
        if c0 is not None:
            Y_c[d] = Ct
    return Y, Y_h, Y_c


def keras_eval(layer, x, kernel, recurrent_kernel, bias, h0, c0=None, activation="tanh"):
    """Keras SimpleRNN/LSTM/GRU (reset_after=True), time-major x (T, B, I): returns (y, h, c)."""
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
        else:
            input_bias, recurrent_bias = (0, 0) if bias is None else (bias[0], bias[1])
            matrix_x = xt @ kernel + input_bias
            x_z, x_r, x_h = matrix_x[:, :U], matrix_x[:, U : 2 * U], matrix_x[:, 2 * U :]
            matrix_inner = h @ recurrent_kernel + recurrent_bias
            rec_z, rec_r, rec_h = matrix_inner[:, :U], matrix_inner[:, U : 2 * U], matrix_inner[:, 2 * U :]
            z = sigmoid(x_z + rec_z)
            r = sigmoid(x_r + rec_r)
            hh = np.tanh(x_h + r * rec_h)
            h = z * h + (1 - z) * hh
        ys.append(h)
    return np.stack(ys), h, c


ONNX_ACT = {"rnn_tanh": "Tanh", "rnn_relu": "Relu", "lstm": None, "gru": None}
KERAS_LAYER = {"rnn_tanh": "SimpleRNN", "rnn_relu": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
KERAS_ACT = {"rnn_tanh": "tanh", "rnn_relu": "relu", "lstm": "tanh", "gru": "tanh"}


# -------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_round_trip(cell, bias, bidirectional, dtype):
    G = GATES[cell]
    dirs = [weights(cell, dtype, bias, seed=1)] + (
        [weights(cell, dtype, bias, seed=2)] if bidirectional else []
    )
    D = len(dirs)
    onnx = C.to_onnx(cell, *dirs)
    assert onnx["op_type"] == {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    assert onnx["W"].shape == (D, G * H, I) and onnx["W"].dtype == dtype
    assert onnx["R"].shape == (D, G * H, H) and onnx["R"].dtype == dtype
    if bias:
        assert onnx["B"].shape == (D, 2 * G * H) and onnx["B"].dtype == dtype
    else:
        assert onnx["B"] is None
    attrs = onnx["attributes"]
    assert attrs["hidden_size"] == H
    assert attrs["direction"] == ("bidirectional" if bidirectional else "forward")
    assert attrs.get("linear_before_reset") == (1 if cell == "gru" else None)
    if G == 1:
        assert attrs["activations"] == [ONNX_ACT[cell]] * D
    back = C.from_onnx(
        cell,
        onnx["W"],
        onnx["R"],
        onnx["B"],
        linear_before_reset=LBR.get(cell),
        activations=attrs.get("activations"),
    )
    assert len(back) == D
    for got, want in zip(back, dirs):
        assert sorted(got) == ["b_hh", "b_ih", "w_hh", "w_ih"]
        for k in want:
            assert_same(got[k], want[k])
    again = C.to_onnx(cell, *back)
    for k in ("W", "R", "B"):
        assert_same(again[k], onnx[k])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELLS)
def test_keras_round_trip(cell, bias, dtype):
    G = GATES[cell]
    w = weights(cell, dtype, bias, seed=3)
    keras = C.to_keras(cell, **w)
    assert keras["kernel"].shape == (I, G * H) and keras["kernel"].dtype == dtype
    assert keras["recurrent_kernel"].shape == (H, G * H) and keras["recurrent_kernel"].dtype == dtype
    if not bias:
        assert keras["bias"] is None
    else:
        assert keras["bias"].shape == ((2, G * H) if cell == "gru" else (G * H,))
        assert keras["bias"].dtype == dtype
    back = C.from_keras(cell, keras["kernel"], keras["recurrent_kernel"], keras["bias"])
    assert_same(back["w_ih"], w["w_ih"])
    assert_same(back["w_hh"], w["w_hh"])
    if not bias:
        assert back["b_ih"] is None and back["b_hh"] is None
    elif cell == "gru":  # two biases in Keras too: exact
        assert_same(back["b_ih"], w["b_ih"])
        assert_same(back["b_hh"], w["b_hh"])
    else:  # Keras keeps one bias, the sum
        assert_same(back["b_ih"], w["b_ih"] + w["b_hh"])
        assert_same(back["b_hh"], np.zeros_like(w["b_hh"]))
    # Keras -> fastrnn -> Keras is exact for every cell.
    again = C.to_keras(cell, **back)
    for k in ("kernel", "recurrent_kernel", "bias"):
        assert_same(again[k], keras[k])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_round_trips(cell, bias):
    """Two bidirectional layers in PyTorch's state_dict naming, layer by layer through both formats."""
    sd = {}
    for layer in range(2):
        for d, suffix in enumerate(("", "_reverse")):
            w = weights(cell, np.float32, bias, seed=10 + 2 * layer + d, I=I if layer == 0 else 2 * H)
            names = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
            sd.update({f"{names[k]}_l{layer}{suffix}": v for k, v in w.items() if v is not None})
    back = {}
    for layer in range(2):
        onnx = C.state_dict_to_onnx(cell, sd, layer=layer)
        assert onnx["attributes"]["direction"] == "bidirectional"
        assert onnx["W"].shape[2] == (I if layer == 0 else 2 * H)
        back.update(
            C.onnx_to_state_dict(
                cell, onnx["W"], onnx["R"], onnx["B"], layer=layer, linear_before_reset=LBR.get(cell)
            )
        )
    assert sorted(back) == sorted(sd)
    for k in sd:
        assert_same(back[k], sd[k])

    back = {}
    for layer in range(2):
        for reverse in (False, True):
            keras = C.state_dict_to_keras(cell, sd, layer=layer, reverse=reverse)
            back.update(
                C.keras_to_state_dict(
                    cell,
                    keras["kernel"],
                    keras["recurrent_kernel"],
                    keras["bias"],
                    layer=layer,
                    reverse=reverse,
                )
            )
    assert sorted(back) == sorted(sd)
    for k in sd:
        if bias and cell != "gru" and k.startswith("bias_ih"):
            assert_same(back[k], sd[k] + sd[k.replace("bias_ih", "bias_hh")])
        elif bias and cell != "gru" and k.startswith("bias_hh"):
            assert_same(back[k], np.zeros_like(sd[k]))
        else:
            assert_same(back[k], sd[k])


def test_unidirectional_state_dict_and_single_bias():
    sd = {
        "weight_ih_l0": weights("gru")["w_ih"],
        "weight_hh_l0": weights("gru")["w_hh"],
        "bias_hh_l0": weights("gru")["b_hh"],
    }
    onnx = C.state_dict_to_onnx("gru", sd)
    assert onnx["attributes"]["direction"] == "forward" and onnx["W"].shape[0] == 1
    back = C.onnx_to_state_dict("gru", onnx["W"], onnx["R"], onnx["B"], linear_before_reset=1)
    assert_same(back["bias_ih_l0"], np.zeros(3 * H))  # the missing bias became zeros
    assert_same(back["bias_hh_l0"], sd["bias_hh_l0"])


# -------------------------------------------------------------------------------------------------
# Semantics: the converted weights compute the same function under ONNX's and Keras's equations.


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_equations_match_fastrnn(cell, bias):
    fwd, rev = weights(cell, bias=bias, seed=20), weights(cell, bias=bias, seed=21)
    x, h0, c0 = inputs(cell, D=2)
    onnx = C.to_onnx(cell, fwd, rev)
    Y, Y_h, Y_c = onnx_eval(
        onnx["op_type"], x, onnx["W"], onnx["R"], onnx["B"], h0, c0, activation=ONNX_ACT[cell]
    )
    for d, (w, reverse) in enumerate(((fwd, False), (rev, True))):
        y, h_n, c_n = fastrnn_forward(cell, x, h0[d], None if c0 is None else c0[d], w, reverse)
        assert_close(Y[:, d], y, f"Y[:, {d}]")
        assert_close(Y_h[d], h_n, f"Y_h[{d}]")
        if cell == "lstm":
            assert_close(Y_c[d], c_n, f"Y_c[{d}]")


@pytest.mark.parametrize("cell", CELLS)
def test_onnx_weights_run_in_fastrnn(cell):
    """The other way: random ONNX tensors, converted with from_onnx, run in fastrnn."""
    rng = np.random.default_rng(30)
    G, D = GATES[cell], 2
    W = rng.uniform(-0.4, 0.4, (D, G * H, I))
    R = rng.uniform(-0.4, 0.4, (D, G * H, H))
    Bias = rng.uniform(-0.4, 0.4, (D, 2 * G * H))
    P = np.zeros((D, 3 * H)) if cell == "lstm" else None
    x, h0, c0 = inputs(cell, D=D)
    Y, Y_h, Y_c = onnx_eval(
        {1: "RNN", 4: "LSTM", 3: "GRU"}[G], x, W, R, Bias, h0, c0, activation=ONNX_ACT[cell]
    )
    dirs = C.from_onnx(cell, W, R, Bias, P, linear_before_reset=LBR.get(cell))
    for d, w in enumerate(dirs):
        y, h_n, c_n = fastrnn_forward(cell, x, h0[d], None if c0 is None else c0[d], w, d == 1)
        assert_close(y, Y[:, d], f"y[{d}]")
        assert_close(h_n, Y_h[d], f"h_n[{d}]")
        if cell == "lstm":
            assert_close(c_n, Y_c[d], f"c_n[{d}]")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELLS)
def test_keras_equations_match_fastrnn(cell, bias):
    w = weights(cell, bias=bias, seed=40)
    x, h0, c0 = inputs(cell)
    keras = C.to_keras(cell, **w)
    yk, hk, ck = keras_eval(
        KERAS_LAYER[cell],
        x,
        keras["kernel"],
        keras["recurrent_kernel"],
        keras["bias"],
        h0[0],
        None if c0 is None else c0[0],
        KERAS_ACT[cell],
    )
    y, h_n, c_n = fastrnn_forward(cell, x, h0[0], None if c0 is None else c0[0], w)
    assert_close(yk, y, "y")
    assert_close(hk, h_n, "h")
    if cell == "lstm":
        assert_close(ck, c_n, "c")
    # And Keras weights (random, in Keras's own layout) through from_keras.
    rng = np.random.default_rng(41)
    G = GATES[cell]
    kernel, rk = rng.uniform(-0.4, 0.4, (I, G * H)), rng.uniform(-0.4, 0.4, (H, G * H))
    kb = None if not bias else rng.uniform(-0.4, 0.4, (2, G * H) if cell == "gru" else (G * H,))
    yk, hk, ck = keras_eval(
        KERAS_LAYER[cell], x, kernel, rk, kb, h0[0], None if c0 is None else c0[0], KERAS_ACT[cell]
    )
    y, h_n, c_n = fastrnn_forward(
        cell, x, h0[0], None if c0 is None else c0[0], C.from_keras(cell, kernel, rk, kb)
    )
    assert_close(y, yk, "y from keras")
    assert_close(h_n, hk, "h from keras")
    if cell == "lstm":
        assert_close(c_n, ck, "c from keras")


# -------------------------------------------------------------------------------------------------
# onnxruntime (skips cleanly without onnx/onnxruntime)


def _ort_session(nodes, inputs_, outputs, initializers):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    flt = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "fastrnn_convert_test",
        [helper.make_tensor_value_info(n, flt, s) for n, s in inputs_],
        [helper.make_tensor_value_info(n, flt, [None] * rank) for n, rank in outputs],
        [numpy_helper.from_array(np.ascontiguousarray(v, np.float32), n) for n, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_onnxruntime_matches_fastrnn(cell, bidirectional, bias):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import helper

    dirs = [weights(cell, np.float32, bias, seed=50)]
    if bidirectional:
        dirs.append(weights(cell, np.float32, bias, seed=51))
    D = len(dirs)
    x, h0, c0 = inputs(cell, np.float32, D=D)
    conv = C.to_onnx(cell, *dirs)
    init = {"W": conv["W"], "R": conv["R"]}
    if conv["B"] is not None:
        init["B"] = conv["B"]
    node_inputs = ["X", "W", "R", "B" if bias else "", "", "initial_h"]
    feeds = {"X": x, "initial_h": h0}
    in_specs = [("X", x.shape), ("initial_h", h0.shape)]
    outputs = ["Y", "Y_h"]
    if cell == "lstm":
        node_inputs.append("initial_c")
        feeds["initial_c"] = c0
        in_specs.append(("initial_c", c0.shape))
        outputs.append("Y_c")
    node = helper.make_node(conv["op_type"], node_inputs, outputs, **conv["attributes"])
    sess = _ort_session([node], in_specs, [(n, 4 if n == "Y" else 3) for n in outputs], init)
    got = dict(zip(outputs, sess.run(outputs, feeds)))
    for d, w in enumerate(dirs):
        y, h_n, c_n = fastrnn_forward(cell, x, h0[d], None if c0 is None else c0[d], w, d == 1)
        assert_close(got["Y"][:, d], y, f"Y[:, {d}]", rtol=1e-5)
        assert_close(got["Y_h"][d], h_n, f"Y_h[{d}]", rtol=1e-5)
        if cell == "lstm":
            assert_close(got["Y_c"][d], c_n, f"Y_c[{d}]", rtol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_onnxruntime_runs_a_fastrnn_layer_stack(kind):
    """A 2-layer bidirectional fastrnn layer exported layer by layer with state_dict_to_onnx and
    chained in one ONNX graph gives the layer's y and h_n in onnxruntime."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import helper, numpy_helper

    cls = getattr(fastrnn, kind)
    kw = {"nonlinearity": "relu"} if kind == "RNN" else {}
    cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn_relu"}[kind]
    m = cls(I, H, num_layers=2, bidirectional=True, seed=60, **kw)
    m.eval()
    x, _, _ = inputs(cell, np.float32)
    out = m(x)
    y, h_n = out[0], (out[1][0] if kind == "LSTM" else out[1])
    sd = m.state_dict()
    # The int64 shape for Reshape as a Constant node (initializers here are all float32).
    shape = numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape")
    nodes, init = [helper.make_node("Constant", [], ["shape"], value=shape)], {}
    layer_in = "X"
    h_outputs = []
    for layer in range(2):
        conv = C.state_dict_to_onnx(cell, sd, layer=layer)
        for k in ("W", "R", "B"):
            init[f"{k}{layer}"] = conv[k]
        outs = [f"Y{layer}", f"Y_h{layer}"]
        nodes.append(
            helper.make_node(
                conv["op_type"], [layer_in, f"W{layer}", f"R{layer}", f"B{layer}"], outs, **conv["attributes"]
            )
        )
        # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H): the next layer's input, as PyTorch stacks.
        nodes.append(helper.make_node("Transpose", [f"Y{layer}"], [f"Yt{layer}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"Yt{layer}", "shape"], [f"X{layer + 1}"]))
        layer_in = f"X{layer + 1}"
        h_outputs.append(f"Y_h{layer}")
    nodes.append(helper.make_node("Concat", h_outputs, ["h_n"], axis=0))
    sess = _ort_session(nodes, [("X", x.shape)], [("X2", 3), ("h_n", 3)], init)
    got_y, got_h = sess.run(["X2", "h_n"], {"X": x})
    assert_close(got_y, y, "y", rtol=1e-5)
    assert_close(got_h, h_n, "h_n", rtol=1e-5)


# -------------------------------------------------------------------------------------------------
# Rejected variants


def test_onnx_gru_linear_before_reset_0_is_rejected():
    conv = C.to_onnx("gru", weights("gru"))
    with pytest.raises(ValueError, match="linear_before_reset=0.*reset gate before"):
        C.from_onnx("gru", conv["W"], conv["R"], conv["B"], linear_before_reset=0)
    with pytest.raises(ValueError, match="needs linear_before_reset="):
        C.from_onnx("gru", conv["W"], conv["R"], conv["B"])
    with pytest.raises(ValueError, match="linear_before_reset"):
        C.onnx_to_state_dict("gru", conv["W"], conv["R"], conv["B"], linear_before_reset=0)
    with pytest.raises(ValueError, match="GRU attribute"):
        C.from_onnx("lstm", *(C.to_onnx("lstm", weights("lstm"))[k] for k in "WRB"), linear_before_reset=1)


def test_keras_gru_reset_after_false_is_rejected():
    keras = C.to_keras("gru", **weights("gru"))
    with pytest.raises(ValueError, match="reset_after=False.*\\(3\\*H,\\)"):
        C.from_keras("gru", keras["kernel"], keras["recurrent_kernel"], keras["bias"][0])
    with pytest.raises(ValueError, match="reset_after=False"):
        C.from_keras("gru", keras["kernel"], keras["recurrent_kernel"], None, reset_after=False)
    with pytest.raises(ValueError, match="reset_after=False"):
        C.keras_to_state_dict("gru", keras["kernel"], keras["recurrent_kernel"], keras["bias"][1])
    with pytest.raises(TypeError, match="reset_after"):
        C.from_keras("gru", keras["kernel"], keras["recurrent_kernel"], keras["bias"], reset_after=1)


def test_lstm_projection_is_rejected():
    w = weights("lstm")
    w_hr = np.zeros((2, H))
    with pytest.raises(ValueError, match="projection.*ONNX"):
        C.to_onnx("lstm", {**w, "w_hr": w_hr})
    with pytest.raises(ValueError, match="projection.*ONNX"):
        C.to_onnx("lstm", w, {**w, "w_hr": w_hr})
    with pytest.raises(ValueError, match="projection.*Keras"):
        C.to_keras("lstm", **w, w_hr=w_hr)
    sd = {"weight_ih_l0": w["w_ih"], "weight_hh_l0": np.zeros((4 * H, 2)), "weight_hr_l0": w_hr}
    with pytest.raises(ValueError, match="projection"):
        C.state_dict_to_onnx("lstm", sd)
    with pytest.raises(ValueError, match="projection"):
        C.state_dict_to_keras("lstm", sd)
    # A fastrnn LSTM with proj_size, through its real state_dict.
    m = fastrnn.LSTM(I, H, proj_size=2, seed=0)
    with pytest.raises(ValueError, match="projection"):
        C.state_dict_to_onnx("lstm", m.state_dict())


def test_onnx_peepholes():
    conv = C.to_onnx("lstm", weights("lstm"), weights("lstm", seed=1))
    W, R, Bias = conv["W"], conv["R"], conv["B"]
    zero = np.zeros((2, 3 * H))
    ok = C.from_onnx("lstm", W, R, Bias, zero)  # all-zero peepholes are no peepholes
    assert_same(ok[1]["w_ih"], weights("lstm", seed=1)["w_ih"])
    P = zero.copy()
    P[1, 4] = 1e-3
    with pytest.raises(ValueError, match="nonzero peepholes"):
        C.from_onnx("lstm", W, R, Bias, P)
    with pytest.raises(ValueError, match="P must have shape"):
        C.from_onnx("lstm", W, R, Bias, np.zeros((2, 4 * H)))
    gru = C.to_onnx("gru", weights("gru"))
    with pytest.raises(ValueError, match="peepholes"):
        C.from_onnx("gru", gru["W"], gru["R"], gru["B"], np.zeros((1, 3 * H)), linear_before_reset=1)


def test_onnx_attributes_checked():
    rnn = C.to_onnx("rnn_relu", weights("rnn_relu"), weights("rnn_relu", seed=1))
    W, R, Bias = rnn["W"], rnn["R"], rnn["B"]
    C.from_onnx("rnn_relu", W, R, Bias, activations=[b"Relu", b"Relu"])  # bytes, as onnx stores them
    with pytest.raises(ValueError, match="activations.*rnn_tanh"):
        C.from_onnx("rnn_tanh", W, R, Bias, activations=["Relu", "Relu"])
    with pytest.raises(ValueError, match="activations"):
        C.from_onnx("rnn_relu", W, R, Bias, activations=["Relu"])  # one per direction
    lstm = C.to_onnx("lstm", weights("lstm"))
    W, R, Bias = lstm["W"], lstm["R"], lstm["B"]
    C.from_onnx("lstm", W, R, Bias, activations=["Sigmoid", "Tanh", "Tanh"])
    with pytest.raises(ValueError, match="activations"):
        C.from_onnx("lstm", W, R, Bias, activations=["HardSigmoid", "Tanh", "Tanh"])
    with pytest.raises(ValueError, match="clip"):
        C.from_onnx("lstm", W, R, Bias, clip=3.0)
    with pytest.raises(ValueError, match="input_forget=1"):
        C.from_onnx("lstm", W, R, Bias, input_forget=1)


# -------------------------------------------------------------------------------------------------
# Bad input, dtypes and aliasing

f32 = np.float32


def _lstm():
    return weights("lstm")


def _onnx():
    return C.to_onnx("lstm", weights("lstm"))


def _keras():
    return C.to_keras("lstm", **weights("lstm"))


BAD = [
    ("cell_unknown", lambda: C.to_onnx("LSTM", _lstm()), ValueError, "cell"),
    ("cell_unknown_keras", lambda: C.from_keras("gru_v1", *_keras().values()), ValueError, "cell"),
    ("to_onnx_not_dict", lambda: C.to_onnx("lstm", list(_lstm().values())), TypeError, "forward"),
    ("to_onnx_missing_key", lambda: C.to_onnx("lstm", {"w_ih": _lstm()["w_ih"]}), ValueError, "w_hh"),
    ("to_onnx_unknown_key", lambda: C.to_onnx("lstm", {**_lstm(), "weight": 1}), ValueError, "unexpected"),
    (
        "w_ih_rows",
        lambda: C.to_onnx("lstm", {**_lstm(), "w_ih": np.zeros((4 * H + 1, I))}),
        ValueError,
        r"forward\.w_ih must have shape \(4\*H, I\)",
    ),
    ("w_ih_1d", lambda: C.to_onnx("lstm", {**_lstm(), "w_ih": np.zeros(4 * H)}), ValueError, "w_ih"),
    (
        "w_hh_shape",
        lambda: C.to_onnx("lstm", {**_lstm(), "w_hh": np.zeros((4 * H, H + 1))}),
        ValueError,
        r"forward\.w_hh must have shape \(G\*H=24, H=6\)",
    ),
    (
        "b_ih_shape",
        lambda: C.to_onnx("lstm", {**_lstm(), "b_ih": np.zeros(4 * H + 1)}),
        ValueError,
        r"forward\.b_ih must have shape \(G\*H=24,\)",
    ),
    ("reverse_shape", lambda: C.to_onnx("lstm", _lstm(), weights("lstm", H=H + 1)), ValueError, "reverse"),
    ("reverse_dtype", lambda: C.to_onnx("lstm", _lstm(), weights("lstm", f32)), TypeError, "reverse.w_ih"),
    (
        "w_ih_int",
        lambda: C.to_keras("lstm", **{**_lstm(), "w_ih": np.zeros((4 * H, I), int)}),
        TypeError,
        "w_ih must have dtype float32 or float64",
    ),
    (
        "w_hh_float16",
        lambda: C.to_keras("lstm", **{**_lstm(), "w_hh": np.zeros((4 * H, H), np.float16)}),
        TypeError,
        "w_hh",
    ),
    (
        "mixed_dtypes",
        lambda: C.to_keras("lstm", **{**_lstm(), "b_hh": _lstm()["b_hh"].astype(f32)}),
        TypeError,
        "b_hh has dtype float32",
    ),
    ("w_ih_none", lambda: C.to_keras("lstm", None, _lstm()["w_hh"]), TypeError, "w_ih"),
    (
        "W_2d",
        lambda: C.from_onnx("lstm", _onnx()["W"][0], _onnx()["R"]),
        ValueError,
        r"W must have shape \(num_directions",
    ),
    (
        "W_3_directions",
        lambda: C.from_onnx("lstm", np.zeros((3, 4 * H, I)), np.zeros((3, 4 * H, H))),
        ValueError,
        "W must have shape",
    ),
    (
        "W_rows",
        lambda: C.from_onnx(
            "gru", np.zeros((1, 3 * H + 1, I)), np.zeros((1, 3 * H + 1, H)), linear_before_reset=1
        ),
        ValueError,
        r"3\*H",
    ),
    (
        "R_shape",
        lambda: C.from_onnx("lstm", _onnx()["W"], _onnx()["R"][:, :, :-1]),
        ValueError,
        r"R must have shape \(num_directions=1, G\*H=24, H=6\)",
    ),
    (
        "B_shape",
        lambda: C.from_onnx("lstm", _onnx()["W"], _onnx()["R"], _onnx()["B"][:, :-1]),
        ValueError,
        r"B must have shape \(num_directions=1, 2\*G\*H=48\)",
    ),
    (
        "B_dtype",
        lambda: C.from_onnx("lstm", _onnx()["W"], _onnx()["R"], _onnx()["B"].astype(f32)),
        TypeError,
        "B has dtype float32",
    ),
    ("W_int", lambda: C.from_onnx("lstm", _onnx()["W"].astype(int), _onnx()["R"]), TypeError, "W"),
    (
        "kernel_shape",
        lambda: C.from_keras("lstm", _keras()["kernel"].T, _keras()["recurrent_kernel"]),
        ValueError,
        r"kernel must have shape \(I, 4\*H\)",
    ),
    (
        "recurrent_kernel_shape",
        lambda: C.from_keras("lstm", _keras()["kernel"], _keras()["recurrent_kernel"].T),
        ValueError,
        r"recurrent_kernel must have shape \(H=6, G\*H=24\)",
    ),
    (
        "keras_bias_shape",
        lambda: C.from_keras("lstm", *list(_keras().values())[:2], np.zeros((2, 4 * H))),
        ValueError,
        r"bias must have shape \(G\*H=24,\)",
    ),
    (
        "keras_gru_bias_shape",
        lambda: C.from_keras("gru", np.zeros((I, 3 * H)), np.zeros((H, 3 * H)), np.zeros((3, 3 * H))),
        ValueError,
        r"bias must have shape \(rows=2, 3\*H=18\)",
    ),
    (
        "keras_bias_dtype",
        lambda: C.from_keras("lstm", *list(_keras().values())[:2], _keras()["bias"].astype(f32)),
        TypeError,
        "bias",
    ),
    (
        "kernel_complex",
        lambda: C.from_keras("lstm", _keras()["kernel"].astype(complex), _keras()["recurrent_kernel"]),
        TypeError,
        "kernel",
    ),
    (
        "state_dict_missing",
        lambda: C.state_dict_to_onnx("lstm", {"weight_ih_l0": np.zeros((4, 1))}),
        ValueError,
        "weight_hh_l0",
    ),
    ("state_dict_layer", lambda: C.state_dict_to_keras("lstm", {}, layer=1), ValueError, "weight_ih_l1"),
    ("state_dict_not_mapping", lambda: C.state_dict_to_onnx("lstm", [1, 2]), TypeError, "state_dict"),
    ("layer_negative", lambda: C.state_dict_to_onnx("lstm", {}, layer=-1), ValueError, "layer"),
    (
        "layer_float",
        lambda: C.onnx_to_state_dict("lstm", _onnx()["W"], _onnx()["R"], layer=1.0),
        ValueError,
        "layer",
    ),
    (
        "reverse_not_bool",
        lambda: C.keras_to_state_dict("lstm", *_keras().values(), reverse="yes"),
        TypeError,
        "reverse",
    ),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _readonly(d):
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            v = v.copy()
            v.flags.writeable = False
        out[k] = v
    return out


@pytest.mark.parametrize("cell", CELLS)
def test_inputs_untouched_and_outputs_fresh(cell):
    """Read-only, non-contiguous and big-endian inputs are accepted; nothing the caller passed is
    modified or aliased by an output."""
    w = _readonly(weights(cell, seed=70))
    wide = np.zeros((w["w_ih"].shape[0], 2 * I))
    wide[:, ::2] = w["w_ih"]
    odd = {**w, "w_ih": wide[:, ::2], "b_hh": w["b_hh"].astype(">f8")}  # strided; big-endian
    keep = {k: v.copy() for k, v in odd.items()}
    onnx = C.to_onnx(cell, odd, odd)
    keras = C.to_keras(cell, **odd)
    for k, v in odd.items():
        np.testing.assert_array_equal(v, keep[k])
        for out in list(onnx.values())[:3] + list(keras.values()):
            assert not np.shares_memory(out, v)
    assert onnx["B"].dtype == np.float64 and keras["bias"].dtype == np.float64
    assert_same(
        C.from_onnx(cell, **{k: onnx[k] for k in "WRB"}, linear_before_reset=LBR.get(cell))[0]["b_hh"],
        keep["b_hh"].astype("<f8"),
    )

    ro_onnx = _readonly({k: onnx[k] for k in "WRB"})
    ro_keras = _readonly(keras)
    for got in C.from_onnx(cell, **ro_onnx, linear_before_reset=LBR.get(cell)):
        for v in got.values():
            assert v.flags.writeable and not any(np.shares_memory(v, a) for a in ro_onnx.values())
    got = C.from_keras(cell, **ro_keras)
    for v in got.values():
        assert v.flags.writeable and not any(np.shares_memory(v, a) for a in ro_keras.values())
    # A 1-row kernel (I = 1) transposes to a contiguous view: the output must still be a copy.
    k1 = np.ones((1, GATES[cell] * H))
    out = C.from_keras(cell, k1, ro_keras["recurrent_kernel"])
    out["w_ih"][:] = 0
    assert np.all(k1 == 1)


def test_torch_state_dict_is_accepted():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = torch.nn.GRU(I, H, num_layers=1, bidirectional=True)
    sd = m.state_dict()
    conv = C.state_dict_to_onnx("gru", sd)
    assert conv["W"].dtype == np.float32 and conv["W"].shape == (2, 3 * H, I)
    back = C.onnx_to_state_dict("gru", conv["W"], conv["R"], conv["B"], linear_before_reset=1)
    for k, v in sd.items():
        np.testing.assert_array_equal(back[k], v.numpy())
