"""fastrnn.convert: ONNX and Keras weight conversions, every cell variant (both GRU formulations,
LSTM peepholes).

Round trips are exact; the gate reordering is checked against plain NumPy evaluations of the ONNX and
Keras equations (convert_reference.py, written from their specifications), both ways: fastrnn weights
converted and run by those equations, and random weights in the other format's own layout converted
and run by fastrnn. A GRU's formulation flows from a layer through state_dict_to_*. Refusals and bad
input are in test_convert_checks.py, onnxruntime runs in test_convert_onnxruntime.py, real Keras
layers in test_convert_keras.py.
"""

import numpy as np
import pytest
from convert_reference import (
    KERAS_ACT,
    KERAS_LAYER,
    ONNX_ACT,
    ONNX_OP,
    VARIANTS,
    H,
    I,
    fastrnn_forward,
    inputs,
    keras_eval,
    lbr,
    onnx_eval,
    weights,
)

import fastrnn
from fastrnn import convert as C

from helpers import GATES, assert_close

DTYPES = (np.float32, np.float64)


def assert_same(actual, expected):
    """Bit-for-bit equal arrays with the same dtype (or both None)."""
    if expected is None:
        assert actual is None
        return
    assert isinstance(actual, np.ndarray) and actual.dtype == expected.dtype
    assert actual.flags.c_contiguous
    np.testing.assert_array_equal(actual, expected)


# -------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_round_trip(variant, bias, bidirectional, dtype):
    cell, reset_after, peepholes = VARIANTS[variant]
    G = GATES[cell]
    dirs = [weights(cell, dtype, bias, seed=1, peepholes=peepholes)]
    if bidirectional:
        dirs.append(weights(cell, dtype, bias, seed=2, peepholes=peepholes))
    D = len(dirs)
    onnx = C.to_onnx(cell, *dirs, reset_after=reset_after)
    assert onnx["op_type"] == ONNX_OP[cell]
    assert onnx["W"].shape == (D, G * H, I) and onnx["W"].dtype == dtype
    assert onnx["R"].shape == (D, G * H, H) and onnx["R"].dtype == dtype
    if bias:
        assert onnx["B"].shape == (D, 2 * G * H) and onnx["B"].dtype == dtype
    else:
        assert onnx["B"] is None
    if peepholes:
        assert onnx["P"].shape == (D, 3 * H) and onnx["P"].dtype == dtype
    else:
        assert onnx["P"] is None
    attrs = onnx["attributes"]
    assert attrs["hidden_size"] == H
    assert attrs["direction"] == ("bidirectional" if bidirectional else "forward")
    assert attrs.get("linear_before_reset") == lbr(reset_after)
    if G == 1:
        assert attrs["activations"] == [ONNX_ACT[cell]] * D
    back = C.from_onnx(
        cell,
        onnx["W"],
        onnx["R"],
        onnx["B"],
        onnx["P"],
        linear_before_reset=attrs.get("linear_before_reset"),
        activations=attrs.get("activations"),
    )
    assert len(back) == D
    for got, want in zip(back, dirs):
        assert sorted(got) == sorted(["w_ih", "w_hh", "b_ih", "b_hh"] + (["w_ph"] if cell == "lstm" else []))
        for k in got:
            assert_same(got[k], want.get(k))
    again = C.to_onnx(cell, *back, reset_after=reset_after)
    for k in ("W", "R", "B", "P"):
        assert_same(again[k], onnx[k])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "lstm_peepholes"])
def test_keras_round_trip(variant, bias, dtype):
    cell, reset_after, _ = VARIANTS[variant]
    G = GATES[cell]
    w = weights(cell, dtype, bias, seed=3)
    keras = C.to_keras(cell, **w, reset_after=reset_after)
    assert keras["kernel"].shape == (I, G * H) and keras["kernel"].dtype == dtype
    assert keras["recurrent_kernel"].shape == (H, G * H) and keras["recurrent_kernel"].dtype == dtype
    two_biases = reset_after is True
    if not bias:
        assert keras["bias"] is None
    else:
        assert keras["bias"].shape == ((2, G * H) if two_biases else (G * H,))
        assert keras["bias"].dtype == dtype
    # A GRU with a bias needs no reset_after back: the bias's shape says it.
    back = C.from_keras(
        cell,
        keras["kernel"],
        keras["recurrent_kernel"],
        keras["bias"],
        reset_after=None if bias else reset_after,
    )
    assert_same(back["w_ih"], w["w_ih"])
    assert_same(back["w_hh"], w["w_hh"])
    if not bias:
        assert back["b_ih"] is None and back["b_hh"] is None
    elif two_biases:  # two biases in Keras too: exact
        assert_same(back["b_ih"], w["b_ih"])
        assert_same(back["b_hh"], w["b_hh"])
    else:  # Keras keeps one bias, the sum
        assert_same(back["b_ih"], w["b_ih"] + w["b_hh"])
        assert_same(back["b_hh"], np.zeros_like(w["b_hh"]))
    # Keras -> fastrnn -> Keras is exact for every cell.
    again = C.to_keras(cell, **back, reset_after=reset_after)
    for k in ("kernel", "recurrent_kernel", "bias"):
        assert_same(again[k], keras[k])


def _state_dict(cell, bias, peepholes, layers=2):
    """Two bidirectional layers in PyTorch's state_dict naming (weight_ph_* with peepholes)."""
    sd = {}
    names = {
        "w_ih": "weight_ih",
        "w_hh": "weight_hh",
        "b_ih": "bias_ih",
        "b_hh": "bias_hh",
        "w_ph": "weight_ph",
    }
    for layer in range(layers):
        for d, suffix in enumerate(("", "_reverse")):
            w = weights(
                cell,
                np.float32,
                bias,
                seed=10 + 2 * layer + d,
                I=I if layer == 0 else 2 * H,
                peepholes=peepholes,
            )
            sd.update({f"{names[k]}_l{layer}{suffix}": v for k, v in w.items() if v is not None})
    return sd


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_round_trips(variant, bias):
    """Layer by layer through both formats (Keras: not with peepholes, it has none)."""
    cell, reset_after, peepholes = VARIANTS[variant]
    sd = _state_dict(cell, bias, peepholes)
    back = {}
    for layer in range(2):
        onnx = C.state_dict_to_onnx(cell, sd, layer=layer, reset_after=reset_after)
        assert onnx["attributes"]["direction"] == "bidirectional"
        assert onnx["W"].shape[2] == (I if layer == 0 else 2 * H)
        back.update(
            C.onnx_to_state_dict(
                cell,
                onnx["W"],
                onnx["R"],
                onnx["B"],
                onnx["P"],
                layer=layer,
                linear_before_reset=lbr(reset_after),
            )
        )
    assert sorted(back) == sorted(sd)
    for k in sd:
        assert_same(back[k], sd[k])
    if peepholes:
        return
    back = {}
    for layer in range(2):
        for reverse in (False, True):
            keras = C.state_dict_to_keras(cell, sd, layer=layer, reverse=reverse, reset_after=reset_after)
            back.update(
                C.keras_to_state_dict(
                    cell,
                    keras["kernel"],
                    keras["recurrent_kernel"],
                    keras["bias"],
                    layer=layer,
                    reverse=reverse,
                    reset_after=reset_after,
                )
            )
    assert sorted(back) == sorted(sd)
    summed = bias and reset_after is not True  # one Keras bias: b_ih + b_hh
    for k in sd:
        if summed and k.startswith("bias_ih"):
            assert_same(back[k], sd[k] + sd[k.replace("bias_ih", "bias_hh")])
        elif summed and k.startswith("bias_hh"):
            assert_same(back[k], np.zeros_like(sd[k]))
        else:
            assert_same(back[k], sd[k])


def test_unidirectional_state_dict_and_single_bias():
    w = weights("gru")
    sd = {"weight_ih_l0": w["w_ih"], "weight_hh_l0": w["w_hh"], "bias_hh_l0": w["b_hh"]}
    onnx = C.state_dict_to_onnx("gru", sd, reset_after=True)
    assert onnx["attributes"]["direction"] == "forward" and onnx["W"].shape[0] == 1
    back = C.onnx_to_state_dict("gru", onnx["W"], onnx["R"], onnx["B"], linear_before_reset=1)
    assert_same(back["bias_ih_l0"], np.zeros(3 * H))  # the missing bias became zeros
    assert_same(back["bias_hh_l0"], sd["bias_hh_l0"])


@pytest.mark.parametrize("reset_after", [True, False])
def test_a_layer_brings_its_own_formulation(reset_after):
    """A fastrnn layer passed for the state_dict: its reset_after (and peepholes, in its state_dict)
    reach the ONNX attributes and the Keras bias layout without being repeated."""
    gru = fastrnn.GRU(I, H, num_layers=2, bidirectional=True, reset_after=reset_after, seed=0)
    onnx = C.state_dict_to_onnx("gru", gru, layer=1)
    assert onnx["attributes"]["linear_before_reset"] == int(reset_after)
    assert onnx["W"].shape == (2, 3 * H, 2 * H)
    want = C.state_dict_to_onnx("gru", gru.state_dict(), layer=1, reset_after=reset_after)
    for k in ("W", "R", "B"):
        assert_same(onnx[k], want[k])
    C.state_dict_to_onnx("gru", gru, reset_after=reset_after)  # agreeing is fine
    keras = C.state_dict_to_keras("gru", gru, layer=0, reverse=True)
    assert keras["bias"].shape == ((2, 3 * H) if reset_after else (3 * H,))
    lstm = fastrnn.LSTM(I, H, peepholes=True, seed=1)
    onnx = C.state_dict_to_onnx("lstm", lstm)
    assert onnx["P"].shape == (1, 3 * H)
    back = C.onnx_to_state_dict("lstm", onnx["W"], onnx["R"], onnx["B"], onnx["P"])
    for k, v in lstm.state_dict().items():
        assert_same(back[k], v)


# -------------------------------------------------------------------------------------------------
# Semantics: the converted weights compute the same function under ONNX's and Keras's equations.


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_equations_match_fastrnn(variant, bias):
    cell, reset_after, peepholes = VARIANTS[variant]
    fwd = weights(cell, bias=bias, seed=20, peepholes=peepholes)
    rev = weights(cell, bias=bias, seed=21, peepholes=peepholes)
    x, h0, c0 = inputs(cell, D=2)
    onnx = C.to_onnx(cell, fwd, rev, reset_after=reset_after)
    Y, Y_h, Y_c = onnx_eval(
        onnx["op_type"],
        x,
        onnx["W"],
        onnx["R"],
        onnx["B"],
        h0,
        c0,
        onnx["P"],
        activation=ONNX_ACT[cell],
        linear_before_reset=onnx["attributes"].get("linear_before_reset", 0),
    )
    for d, (w, reverse) in enumerate(((fwd, False), (rev, True))):
        y, h_n, c_n = fastrnn_forward(cell, x, h0[d], None if c0 is None else c0[d], w, reverse, reset_after)
        assert_close(Y[:, d], y, f"Y[:, {d}]")
        assert_close(Y_h[d], h_n, f"Y_h[{d}]")
        if cell == "lstm":
            assert_close(Y_c[d], c_n, f"Y_c[{d}]")


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_weights_run_in_fastrnn(variant):
    """The other way: random ONNX tensors, converted with from_onnx, run in fastrnn."""
    cell, reset_after, peepholes = VARIANTS[variant]
    rng = np.random.default_rng(30)
    G, D = GATES[cell], 2
    W = rng.uniform(-0.4, 0.4, (D, G * H, I))
    R = rng.uniform(-0.4, 0.4, (D, G * H, H))
    Bias = rng.uniform(-0.4, 0.4, (D, 2 * G * H))
    P = (
        rng.uniform(-0.4, 0.4, (D, 3 * H))
        if peepholes
        else (np.zeros((D, 3 * H)) if cell == "lstm" else None)
    )
    x, h0, c0 = inputs(cell, D=D)
    Y, Y_h, Y_c = onnx_eval(
        ONNX_OP[cell],
        x,
        W,
        R,
        Bias,
        h0,
        c0,
        P,
        activation=ONNX_ACT[cell],
        linear_before_reset=lbr(reset_after),
    )
    dirs = C.from_onnx(cell, W, R, Bias, P, linear_before_reset=lbr(reset_after))
    for d, w in enumerate(dirs):
        if cell == "lstm":
            assert (w["w_ph"] is not None) == peepholes  # all-zero P: no peepholes
        y, h_n, c_n = fastrnn_forward(cell, x, h0[d], None if c0 is None else c0[d], w, d == 1, reset_after)
        assert_close(y, Y[:, d], f"y[{d}]")
        assert_close(h_n, Y_h[d], f"h_n[{d}]")
        if cell == "lstm":
            assert_close(c_n, Y_c[d], f"c_n[{d}]")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "lstm_peepholes"])
def test_keras_equations_match_fastrnn(variant, bias):
    cell, reset_after, _ = VARIANTS[variant]
    two_biases = reset_after is not False
    w = weights(cell, bias=bias, seed=40)
    x, h0, c0 = inputs(cell)
    c0_ = None if c0 is None else c0[0]
    keras = C.to_keras(cell, **w, reset_after=reset_after)
    yk, hk, ck = keras_eval(
        KERAS_LAYER[cell],
        x,
        keras["kernel"],
        keras["recurrent_kernel"],
        keras["bias"],
        h0[0],
        c0_,
        KERAS_ACT[cell],
        reset_after=two_biases,
    )
    y, h_n, c_n = fastrnn_forward(cell, x, h0[0], c0_, w, reset_after=reset_after)
    assert_close(yk, y, "y")
    assert_close(hk, h_n, "h")
    if cell == "lstm":
        assert_close(ck, c_n, "c")
    # And Keras weights (random, in Keras's own layout) through from_keras.
    rng = np.random.default_rng(41)
    G = GATES[cell]
    kernel, rk = rng.uniform(-0.4, 0.4, (I, G * H)), rng.uniform(-0.4, 0.4, (H, G * H))
    kb = (
        None if not bias else rng.uniform(-0.4, 0.4, (2, G * H) if cell == "gru" and two_biases else (G * H,))
    )
    yk, hk, ck = keras_eval(
        KERAS_LAYER[cell], x, kernel, rk, kb, h0[0], c0_, KERAS_ACT[cell], reset_after=two_biases
    )
    converted = C.from_keras(cell, kernel, rk, kb, reset_after=None if bias else reset_after)
    y, h_n, c_n = fastrnn_forward(cell, x, h0[0], c0_, converted, reset_after=reset_after)
    assert_close(y, yk, "y from keras")
    assert_close(h_n, hk, "h from keras")
    if cell == "lstm":
        assert_close(c_n, ck, "c from keras")


def test_the_two_gru_formulations_differ():
    """What the required reset_after protects against: the same weights in the other formulation
    compute something else (so a silent default would give wrong numbers)."""
    w = weights("gru", seed=50)
    x, h0, _ = inputs("gru")
    y_after, _, _ = fastrnn_forward("gru", x, h0[0], None, w, reset_after=True)
    y_before, _, _ = fastrnn_forward("gru", x, h0[0], None, w, reset_after=False)
    assert np.abs(y_after - y_before).max() > 1e-2
