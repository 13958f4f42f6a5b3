"""fastrnn.convert against real Keras 3 layers (run here on Keras's torch backend; skipped where
keras is not installed): SimpleRNN (tanh, relu), LSTM and GRU with either reset_after, with and
without biases, one direction and Bidirectional, converted both ways, compute what fastrnn computes,
initial states included. float32 (1e-5): Keras 3's torch backend runs its matmuls in float32 even
for float64 layers, so float64 would only measure that."""

import os

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import convert as C

from helpers import assert_close

os.environ.setdefault("KERAS_BACKEND", "torch")  # read by keras at import; TensorFlow is not needed
keras = pytest.importorskip("keras")

I, H, B, T = 5, 6, 3, 7

# variant -> (cell, Keras layer class name, its keyword arguments, fastrnn keyword arguments)
VARIANTS = {
    "simple_rnn_tanh": ("rnn_tanh", "SimpleRNN", {}, {}),
    "simple_rnn_relu": ("rnn_relu", "SimpleRNN", {"activation": "relu"}, {"nonlinearity": "relu"}),
    "lstm": ("lstm", "LSTM", {}, {}),
    "gru_reset_after": ("gru", "GRU", {"reset_after": True}, {"reset_after": True}),
    "gru_reset_before": ("gru", "GRU", {"reset_after": False}, {"reset_after": False}),
}
FASTRNN = {"rnn_tanh": fr.RNN, "rnn_relu": fr.RNN, "lstm": fr.LSTM, "gru": fr.GRU}


def _numpy(t):
    """A Keras variable or output as a NumPy array (torch backend: a torch tensor underneath)."""
    t = getattr(t, "value", t)
    return t.detach().cpu().numpy() if hasattr(t, "detach") else keras.ops.convert_to_numpy(t)


def _keras_layer(variant, bias):
    _, name, kwargs, _ = VARIANTS[variant]
    return getattr(keras.layers, name)(
        H, use_bias=bias, return_sequences=True, return_state=True, dtype="float32", **kwargs
    )


def _randomize(layer, seed):
    """Random values in every Keras weight (Keras starts biases at zero, which would hide a bias
    mix-up)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.5, 0.5, tuple(w.shape)).astype(np.float32) for w in layer.weights])


def _data(cell, D, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    h0 = rng.standard_normal((D, B, H)).astype(np.float32)
    c0 = rng.standard_normal((D, B, H)).astype(np.float32) if cell == "lstm" else None
    return x, h0, c0


def _keras_run(layer, x, h0, c0):
    """(y, [h per direction], [c per direction]) from a Keras layer (or Bidirectional) with initial
    states; Keras takes and returns them per direction as [h, c] lists."""
    D = h0.shape[0]
    state = [s for d in range(D) for s in ([h0[d]] if c0 is None else [h0[d], c0[d]])]
    out = [_numpy(o) for o in layer(x, initial_state=state)]
    y, states = out[0], out[1:]
    per = len(states) // D
    return (
        y,
        [states[d * per] for d in range(D)],
        [states[d * per + 1] for d in range(D)] if per == 2 else None,
    )


def _fastrnn_run(layer, x, h0, c0):
    y, states = layer(x, h0 if c0 is None else (h0, c0))
    h, c = states if c0 is not None else (states, None)
    return y, h, c


def _compare(keras_out, fastrnn_out):
    (yk, hk, ck), (y, h, c) = keras_out, fastrnn_out
    assert_close(y, yk, "y")
    for d in range(len(hk)):
        assert_close(h[d], hk[d], f"h[{d}]")
        if ck is not None:
            assert_close(c[d], ck[d], f"c[{d}]")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_keras_to_fastrnn(variant, bias):
    cell, _, _, fr_kwargs = VARIANTS[variant]
    layer = _keras_layer(variant, bias)
    x, h0, c0 = _data(cell, 1, seed=1)
    layer(x)  # builds it
    _randomize(layer, 2)
    kernel, rk, *b = [_numpy(w) for w in layer.weights]
    # A GRU's bias says its formulation; without one the caller says it (the layer's own).
    reset_after = None if bias or cell != "gru" else fr_kwargs["reset_after"]
    sd = C.keras_to_state_dict(cell, kernel, rk, b[0] if b else None, reset_after=reset_after)
    model = FASTRNN[cell](I, H, bias=bias, batch_first=True, dtype="float32", **fr_kwargs)
    model.load_state_dict(sd)
    _compare(_keras_run(layer, x, h0, c0), _fastrnn_run(model, x, h0, c0))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fastrnn_to_keras(variant, bias):
    """A fastrnn layer's reset_after reaches Keras's weight layout with no argument repeated."""
    cell, _, _, fr_kwargs = VARIANTS[variant]
    model = FASTRNN[cell](I, H, bias=bias, batch_first=True, dtype="float32", seed=3, **fr_kwargs)
    x, h0, c0 = _data(cell, 1, seed=4)
    keras_weights = C.state_dict_to_keras(cell, model)
    layer = _keras_layer(variant, bias)
    layer(x)
    layer.set_weights(
        [keras_weights[k] for k in ("kernel", "recurrent_kernel", "bias") if keras_weights[k] is not None]
    )
    _compare(_keras_run(layer, x, h0, c0), _fastrnn_run(model, x, h0, c0))


@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after", "gru_reset_before", "simple_rnn_relu"])
def test_bidirectional_both_ways(variant):
    """Keras's Bidirectional (backward layer: go_backwards, outputs re-reversed) is fastrnn's
    bidirectional layer: reverse=True weights are the backward layer's."""
    cell, _, _, fr_kwargs = VARIANTS[variant]
    layer = keras.layers.Bidirectional(_keras_layer(variant, True), merge_mode="concat")
    x, h0, c0 = _data(cell, 2, seed=5)
    layer(x)
    _randomize(layer, 6)
    sd = {}
    for reverse, sub in ((False, layer.forward_layer), (True, layer.backward_layer)):
        kernel, rk, bias = [_numpy(w) for w in sub.weights]
        sd.update(C.keras_to_state_dict(cell, kernel, rk, bias, reverse=reverse))
    model = FASTRNN[cell](I, H, batch_first=True, bidirectional=True, dtype="float32", **fr_kwargs)
    model.load_state_dict(sd)
    _compare(_keras_run(layer, x, h0, c0), _fastrnn_run(model, x, h0, c0))

    # And back: a fresh fastrnn bidirectional layer's weights into the same Keras wrapper.
    model = FASTRNN[cell](I, H, batch_first=True, bidirectional=True, dtype="float32", seed=7, **fr_kwargs)
    for reverse, sub in ((False, layer.forward_layer), (True, layer.backward_layer)):
        w = C.state_dict_to_keras(cell, model, reverse=reverse)
        sub.set_weights([w["kernel"], w["recurrent_kernel"], w["bias"]])
    _compare(_keras_run(layer, x, h0, c0), _fastrnn_run(model, x, h0, c0))


def test_the_bias_free_gru_case_is_exact_when_told():
    """The case that used to go silently wrong: a bias-free Keras GRU(reset_after=False) has the
    weight shapes of a reset_after=True one. Told which, the conversion is exact; the other
    formulation on the same weights is measurably different."""
    layer = _keras_layer("gru_reset_before", False)
    x, h0, _ = _data("gru", 1, seed=8)
    layer(x)
    _randomize(layer, 9)
    kernel, rk = [_numpy(w) for w in layer.weights]
    want = _keras_run(layer, x, h0, None)
    right = fr.GRU(I, H, bias=False, batch_first=True, reset_after=False, dtype="float32")
    right.load_state_dict(C.keras_to_state_dict("gru", kernel, rk, reset_after=False))
    _compare(want, _fastrnn_run(right, x, h0, None))
    wrong = fr.GRU(I, H, bias=False, batch_first=True, reset_after=True, dtype="float32")
    wrong.load_state_dict(C.keras_to_state_dict("gru", kernel, rk, reset_after=True))
    assert np.abs(_fastrnn_run(wrong, x, h0, None)[0] - want[0]).max() > 1e-2
