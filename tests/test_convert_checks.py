"""fastrnn.convert: what is refused and why (clear errors naming the argument), bad input, and
inputs never modified or aliased."""

import numpy as np
import pytest
from convert_reference import H, I, weights

import fastrnn
from fastrnn import convert as C

from helpers import CELLS, GATES

RA = {"gru": True}  # the reset_after to pass for a GRU
LBR = {"gru": 1}  # the linear_before_reset to pass for a GRU


def assert_same(actual, expected):
    assert isinstance(actual, np.ndarray) and actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)


# -------------------------------------------------------------------------------------------------
# The GRU's formulation must always be said


def test_gru_conversions_need_the_formulation():
    w = weights("gru")
    with pytest.raises(ValueError, match="to_onnx for a GRU needs reset_after=True or False"):
        C.to_onnx("gru", w)
    with pytest.raises(ValueError, match="to_keras for a GRU needs reset_after"):
        C.to_keras("gru", **w)
    with pytest.raises(ValueError, match="needs reset_after"):
        C.state_dict_to_onnx("gru", {"weight_ih_l0": w["w_ih"], "weight_hh_l0": w["w_hh"]})
    with pytest.raises(ValueError, match="needs reset_after"):
        C.state_dict_to_keras("gru", {"weight_ih_l0": w["w_ih"], "weight_hh_l0": w["w_hh"]})
    with pytest.raises(TypeError, match="reset_after must be a bool"):
        C.to_onnx("gru", w, reset_after=1)
    conv = C.to_onnx("gru", w, reset_after=True)
    with pytest.raises(
        ValueError, match="needs linear_before_reset=.*0 is fastrnn's GRU\\(reset_after=False\\)"
    ):
        C.from_onnx("gru", conv["W"], conv["R"], conv["B"])
    for bad in (2, -1, True, 0.5):
        with pytest.raises(ValueError, match="linear_before_reset must be 0 or 1"):
            C.from_onnx("gru", conv["W"], conv["R"], conv["B"], linear_before_reset=bad)
    with pytest.raises(ValueError, match="GRU attribute"):
        C.from_onnx("lstm", *(C.to_onnx("lstm", weights("lstm"))[k] for k in "WRB"), linear_before_reset=1)
    with pytest.raises(ValueError, match="reset_after is a GRU argument"):
        C.to_onnx("lstm", weights("lstm"), reset_after=True)
    with pytest.raises(ValueError, match="reset_after is a GRU argument"):
        C.from_keras("rnn_tanh", np.zeros((I, H)), np.zeros((H, H)), reset_after=False)


def test_bias_free_keras_gru_needs_reset_after():
    """The silent-wrong case of a bias-free Keras GRU: both formulations have the same shapes."""
    keras = C.to_keras("gru", **weights("gru", bias=False), reset_after=False)
    assert keras["bias"] is None
    with pytest.raises(ValueError, match="from_keras without a bias .* needs reset_after"):
        C.from_keras("gru", keras["kernel"], keras["recurrent_kernel"])
    with pytest.raises(ValueError, match="needs reset_after"):
        C.keras_to_state_dict("gru", keras["kernel"], keras["recurrent_kernel"])
    got = C.from_keras("gru", keras["kernel"], keras["recurrent_kernel"], reset_after=False)
    assert got["b_ih"] is None


def test_keras_gru_bias_shape_and_reset_after_must_agree():
    two = C.to_keras("gru", **weights("gru"), reset_after=True)
    one = C.to_keras("gru", **weights("gru"), reset_after=False)
    assert two["bias"].shape == (2, 3 * H) and one["bias"].shape == (3 * H,)
    with pytest.raises(ValueError, match="reset_after=False contradicts the bias shape \\(2, 18\\)"):
        C.from_keras("gru", two["kernel"], two["recurrent_kernel"], two["bias"], reset_after=False)
    with pytest.raises(ValueError, match="reset_after=True contradicts the bias shape \\(18,\\)"):
        C.keras_to_state_dict("gru", one["kernel"], one["recurrent_kernel"], one["bias"], reset_after=True)
    with pytest.raises(TypeError, match="reset_after"):
        C.from_keras("gru", two["kernel"], two["recurrent_kernel"], two["bias"], reset_after=1)


def test_a_layer_and_a_contradicting_reset_after():
    gru = fastrnn.GRU(I, H, reset_after=False, seed=0)
    with pytest.raises(ValueError, match="reset_after=True contradicts the layer's own reset_after=False"):
        C.state_dict_to_onnx("gru", gru, reset_after=True)
    with pytest.raises(ValueError, match="contradicts"):
        C.state_dict_to_keras("gru", gru, reset_after=True)
    with pytest.raises(ValueError, match="cell is 'lstm' but the layer given runs cell 'gru'"):
        C.state_dict_to_onnx("lstm", gru)
    with pytest.raises(ValueError, match="runs cell 'rnn_tanh'"):
        C.state_dict_to_keras("rnn_relu", fastrnn.RNN(I, H))


# -------------------------------------------------------------------------------------------------
# Variants that do not map


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


def test_peepholes():
    """ONNX's P maps to w_ph (all zero: no peepholes); Keras has none, so nonzero w_ph is refused
    there; peepholes are an LSTM's only."""
    fwd, rev = weights("lstm", peepholes=True), weights("lstm", seed=1, peepholes=True)
    conv = C.to_onnx("lstm", fwd, rev)
    W, R, Bias = conv["W"], conv["R"], conv["B"]
    got = C.from_onnx("lstm", W, R, Bias, conv["P"])
    assert_same(got[1]["w_ph"], rev["w_ph"])
    zero = C.from_onnx("lstm", W, R, Bias, np.zeros((2, 3 * H)))
    assert zero[0]["w_ph"] is None and zero[1]["w_ph"] is None
    # One direction with peepholes, the other without: the missing one is zeros.
    mixed = C.to_onnx("lstm", fwd, weights("lstm", seed=1))
    np.testing.assert_array_equal(mixed["P"][1], np.zeros(3 * H))
    with pytest.raises(ValueError, match="P must have shape"):
        C.from_onnx("lstm", W, R, Bias, np.zeros((2, 4 * H)))
    with pytest.raises(ValueError, match="forward.w_ph must have shape \\(3\\*H=18,\\)"):
        C.to_onnx("lstm", {**fwd, "w_ph": np.zeros(4 * H)})
    gru = C.to_onnx("gru", weights("gru"), reset_after=True)
    with pytest.raises(ValueError, match="P \\(peepholes\\) is an LSTM input"):
        C.from_onnx("gru", gru["W"], gru["R"], gru["B"], np.zeros((1, 3 * H)), linear_before_reset=1)
    with pytest.raises(ValueError, match="w_ph \\(peepholes\\) is an LSTM weight"):
        C.to_onnx("gru", {**weights("gru"), "w_ph": np.zeros(3 * H)}, reset_after=True)
    with pytest.raises(ValueError, match="peepholes.*Keras's LSTM has no peephole"):
        C.to_keras("lstm", **fwd)
    with pytest.raises(ValueError, match="peepholes"):
        C.state_dict_to_keras("lstm", fastrnn.LSTM(I, H, peepholes=True, seed=0))
    plain = C.to_keras("lstm", **{**fwd, "w_ph": np.zeros(3 * H)})  # all-zero peepholes: none
    assert_same(plain["kernel"], C.to_keras("lstm", **weights("lstm"))["kernel"])


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
    with pytest.raises(ValueError, match="input_forget is an LSTM attribute"):
        C.from_onnx("rnn_relu", rnn["W"], rnn["R"], input_forget=1)


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
    onnx = C.to_onnx(cell, odd, odd, reset_after=RA.get(cell))
    keras = C.to_keras(cell, **odd, reset_after=RA.get(cell))
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
        for v in (v for v in got.values() if v is not None):  # an LSTM's w_ph is None here
            assert v.flags.writeable and not any(np.shares_memory(v, a) for a in ro_onnx.values())
    got = C.from_keras(cell, **ro_keras)
    for v in got.values():
        assert v.flags.writeable and not any(np.shares_memory(v, a) for a in ro_keras.values())
    # A 1-row kernel (I = 1) transposes to a contiguous view: the output must still be a copy.
    k1 = np.ones((1, GATES[cell] * H))
    out = C.from_keras(cell, k1, ro_keras["recurrent_kernel"], reset_after=RA.get(cell))
    out["w_ih"][:] = 0
    assert np.all(k1 == 1)


def test_torch_state_dict_is_accepted():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = torch.nn.GRU(I, H, num_layers=1, bidirectional=True)
    sd = m.state_dict()
    conv = C.state_dict_to_onnx("gru", sd, reset_after=True)
    assert conv["W"].dtype == np.float32 and conv["W"].shape == (2, 3 * H, I)
    back = C.onnx_to_state_dict("gru", conv["W"], conv["R"], conv["B"], linear_before_reset=1)
    for k, v in sd.items():
        np.testing.assert_array_equal(back[k], v.numpy())
