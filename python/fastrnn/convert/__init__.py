"""Conversions between fastrnn (PyTorch layout) and ONNX / Keras recurrent layers, and whole-model
ONNX export.

fastrnn stores one layer and direction as PyTorch does: ``w_ih`` (G*H, I), ``w_hh`` (G*H, H),
``b_ih`` and ``b_hh`` (G*H,), gates stacked in the order lstm i, f, g, o and gru r, z, n, and an
LSTM's peepholes ``w_ph`` (3*H,) in the order i, f, o. ONNX and Keras keep the same numbers in other
shapes and gate orders; the functions here move between them, exactly (no arithmetic but the sum of
two biases where Keras has only one).

=========================================  ========  ================================================
variant                                    maps      notes
=========================================  ========  ================================================
ONNX RNN, activations Tanh / Relu          exactly   cell ``rnn_tanh`` / ``rnn_relu``
ONNX LSTM, default activations             exactly   gate order i, o, f, c
ONNX LSTM with peepholes ``P``             exactly   ``LSTM(peepholes=True)``; P order i, o, f
ONNX GRU, ``linear_before_reset=1``        exactly   ``GRU(reset_after=True)``; gate order z, r, h
ONNX GRU, ``linear_before_reset=0``        exactly   ``GRU(reset_after=False)``
ONNX LSTM ``input_forget=1``; ``clip``     rejected  no fastrnn equivalent
other ONNX activations                     rejected  fastrnn's cells have fixed activations
fastrnn LSTM with projection ``w_hr``      rejected  neither ONNX's nor Keras's LSTM has a projection
Keras SimpleRNN (tanh / relu)              exactly   one bias: ``b_ih + b_hh``
Keras LSTM                                 exactly   gate order i, f, c, o (PyTorch's); one bias
Keras GRU, ``reset_after=True``            exactly   gate order z, r, h; bias (2, 3H) = [b_ih, b_hh]
Keras GRU, ``reset_after=False``           exactly   one bias (3H,): ``b_ih + b_hh``
fastrnn LSTM with nonzero peepholes        rejected  Keras's LSTM has no peepholes (to_keras)
=========================================  ========  ================================================

A GRU's two formulations have weights of the same shapes, so every GRU conversion is told which it
is: ``reset_after=`` (``to_onnx``, ``to_keras``; from a layer, ``state_dict_to_*`` take the layer's
own), ``linear_before_reset=`` (``from_onnx``, the node's attribute), or the Keras bias's shape
(``from_keras``; a bias-free Keras GRU needs ``reset_after=``). None of them has a default that
could silently compute the other formulation.

Keras layers must use their default activations (``activation="tanh"``, ``recurrent_activation=
"sigmoid"``; SimpleRNN ``"tanh"`` or ``"relu"`` as the cell says): the weights do not record them, so
this module cannot check. Keras keeps one bias where PyTorch has two, so ``from_keras`` puts it in
``b_ih`` with ``b_hh`` zero, and ``to_keras`` stores ``b_ih + b_hh`` (the only step that rounds).

One direction at a time (NumPy arrays in, new NumPy arrays out; float32/float64 kept)::

    onnx = to_onnx("lstm", {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh})
    onnx["W"], onnx["R"], onnx["B"], onnx["P"]  # (1, 4H, I), (1, 4H, H), (1, 8H), None w/o peepholes
    onnx["op_type"], onnx["attributes"]         # "LSTM", {"hidden_size": H, "direction": "forward"}
    [fwd] = from_onnx("lstm", W, R, B, P)        # dicts with w_ih, w_hh, b_ih, b_hh (, w_ph)
    keras = to_keras("gru", w_ih, w_hh, b_ih, b_hh, reset_after=True)  # kernel, recurrent_kernel, bias
    w = from_keras("gru", kernel, recurrent_kernel, bias)

Whole layers of a fastrnn (or PyTorch) ``state_dict`` (keys ``weight_ih_l{k}``, ``..._reverse``), or
of a fastrnn layer passed in its place::

    onnx = state_dict_to_onnx("gru", gru_layer, layer=0)   # both directions if present
    model.load_state_dict({**onnx_to_state_dict("gru", W0, R0, B0, layer=0, linear_before_reset=1),
                           **onnx_to_state_dict("gru", W1, R1, B1, layer=1, linear_before_reset=1)})
    keras = state_dict_to_keras("lstm", sd, layer=0, reverse=False)
    sd = keras_to_state_dict("lstm", kernel, recurrent_kernel, bias, layer=0, reverse=False)

The reverse direction of a bidirectional layer matches ONNX's direction index 1 and the backward layer
of Keras's ``Bidirectional`` wrapper (``go_backwards=True``, outputs re-reversed by the wrapper).

A whole model: ``export_onnx(model, path)`` writes a layer or a Sequential of Embedding / Linear /
RNN / LSTM / GRU as one ONNX model (see its docstring).
"""

from .export import export_onnx
from .keras_weights import from_keras, keras_to_state_dict, state_dict_to_keras, to_keras
from .onnx_weights import from_onnx, onnx_to_state_dict, state_dict_to_onnx, to_onnx

__all__ = [
    "to_onnx",
    "from_onnx",
    "state_dict_to_onnx",
    "onnx_to_state_dict",
    "to_keras",
    "from_keras",
    "state_dict_to_keras",
    "keras_to_state_dict",
    "export_onnx",
]
