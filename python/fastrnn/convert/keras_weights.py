"""fastrnn (PyTorch-layout) weights <-> the weights of Keras SimpleRNN / LSTM / GRU layers.

Keras keeps one direction as ``kernel`` (I, G*H), ``recurrent_kernel`` (H, G*H) and ``bias``, gates
in the order i, f, c, o (LSTM, PyTorch's) and z, r, h (GRU). Its SimpleRNN, LSTM and reset-before
GRU have one bias (G*H,), where PyTorch has two that add; its ``reset_after=True`` GRU has two,
(2, 3*H) = [input bias, recurrent bias].
"""

import numpy as np

from .._checks import flag, shaped
from .._checks import float_array as array
from . import _layout as L

# ORDER[k] is the PyTorch gate index stored at Keras's gate position k.
ORDER = {"rnn_tanh": (0,), "rnn_relu": (0,), "lstm": (0, 1, 2, 3), "gru": (1, 0, 2)}


def _no_peepholes(w_ph, dtype):
    if w_ph is not None and np.any(array("w_ph", w_ph, dtype)):
        raise ValueError(
            "an LSTM with peepholes (nonzero w_ph, peepholes=True) cannot be converted to Keras: "
            "Keras's LSTM has no peephole connections"
        )


def to_keras(cell, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, w_ph=None, *, reset_after=None):
    """Keras SimpleRNN/LSTM/GRU weights for one direction from fastrnn's (PyTorch-layout) weights.

    Returns a dict with ``kernel`` (I, G*H), ``recurrent_kernel`` (H, G*H) and ``bias`` in Keras's
    gate order: (G*H,) = ``b_ih + b_hh`` for SimpleRNN, LSTM and a GRU with ``reset_after=False``,
    (2, 3*H) = [b_ih, b_hh] for a GRU with ``reset_after=True``; None when both biases are None
    (``use_bias=False``). A missing single bias counts as zeros. A GRU needs ``reset_after`` (True or
    False, the formulation the weights were trained in, and the Keras layer's ``reset_after``: the
    weights cannot say); ``state_dict_to_keras`` takes it from a layer. ``w_hr`` (projection) and
    nonzero ``w_ph`` (peepholes) are rejected: Keras's LSTM has neither. The list
    ``[kernel, recurrent_kernel, bias]`` (without bias when None) is what ``layer.set_weights`` takes.
    """
    G = L.gates(cell)
    reset_after = L.reset_after(cell, reset_after, "to_keras")
    L.no_projection(w_hr, "Keras")
    w_ih, w_hh, b_ih, b_hh, _, H, _ = L.direction(
        cell, G, "", {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    )
    dtype = w_ih.dtype
    _no_peepholes(w_ph, dtype)
    order = ORDER[cell]
    bias = None
    if b_ih is not None or b_hh is not None:
        zeros = np.zeros(G * H, dtype)
        b_ih = zeros if b_ih is None else b_ih
        b_hh = zeros if b_hh is None else b_hh
        if reset_after:
            bias = np.stack([L.permute(b_ih, order, G), L.permute(b_hh, order, G)])
        else:
            bias = L.permute(b_ih + b_hh, order, G)
    return {
        "kernel": L.new(L.permute(w_ih, order, G).T, dtype),
        "recurrent_kernel": L.new(L.permute(w_hh, order, G).T, dtype),
        "bias": None if bias is None else L.new(bias, dtype),
    }


def _gru_reset_after(bias, reset_after, H):
    """A Keras GRU's reset_after: told by the bias's shape where there is a bias (a given value must
    agree), else it must be given."""
    if bias is None:
        return L.reset_after("gru", reset_after, "from_keras without a bias (use_bias=False)")
    shapes = {(2, 3 * H): True, (3 * H,): False}
    if bias.shape not in shapes:
        raise ValueError(
            f"bias must have shape (rows=2, 3*H={3 * H}) (reset_after=True) or (3*H={3 * H},) "
            f"(reset_after=False) for a GRU, got {bias.shape}"
        )
    told = shapes[bias.shape]
    if reset_after is not None and flag("reset_after", reset_after) != told:
        raise ValueError(
            f"reset_after={reset_after!r} contradicts the bias shape {bias.shape}, which is Keras's "
            f"reset_after={told} layout. {L.RESET_AFTER}"
        )
    return told


def from_keras(cell, kernel, recurrent_kernel, bias=None, *, reset_after=None):
    """fastrnn (PyTorch-layout) weights for one direction from a Keras SimpleRNN/LSTM/GRU layer.

    ``kernel`` (I, G*H), ``recurrent_kernel`` (H, G*H), ``bias`` (G*H,) for SimpleRNN/LSTM, (2, 3*H)
    for a GRU with ``reset_after=True`` or (3*H,) for one with ``reset_after=False``, or None
    (``use_bias=False``). For a GRU the bias's shape says which formulation it is (a ``reset_after``
    given must agree); without a bias ``reset_after`` must be given, the Keras layer's own. The weights
    are those of ``fastrnn.GRU(reset_after=...)`` with the same value. Keras's single bias goes to
    ``b_ih`` with ``b_hh`` zeros.

    Returns a dict with ``w_ih`` (G*H, I), ``w_hh`` (G*H, H), ``b_ih``, ``b_hh`` (G*H,) (None when
    ``bias`` is None).
    """
    G = L.gates(cell)
    if cell != "gru":
        L.reset_after(cell, reset_after, "from_keras")
    kernel, H, _ = L.matrix("kernel", kernel, G, cell, transposed=True)
    dtype = kernel.dtype
    recurrent_kernel = shaped("recurrent_kernel", recurrent_kernel, (H, G * H), ("H", "G*H"), dtype)
    if bias is not None:
        bias = array("bias", bias, dtype)
    two_biases = cell == "gru" and _gru_reset_after(bias, reset_after, H)
    back = L.inverse(ORDER[cell])
    out = {
        "w_ih": L.new(L.permute(kernel.T, back, G), dtype),
        "w_hh": L.new(L.permute(recurrent_kernel.T, back, G), dtype),
        "b_ih": None,
        "b_hh": None,
    }
    if bias is None:
        return out
    if two_biases:
        out["b_ih"] = L.new(L.permute(bias[0], back, G), dtype)
        out["b_hh"] = L.new(L.permute(bias[1], back, G), dtype)
    else:
        bias = shaped("bias", bias, (G * H,), ("G*H",), dtype)
        out["b_ih"] = L.new(L.permute(bias, back, G), dtype)
        out["b_hh"] = np.zeros(G * H, dtype)
    return out


def state_dict_to_keras(cell, state_dict, layer=0, reverse=False, *, reset_after=None):
    """to_keras() for one layer and direction of a fastrnn or PyTorch ``state_dict``, or of a fastrnn
    RNN/LSTM/GRU layer given in its place (then a GRU's ``reset_after`` comes from the layer; for a
    plain state_dict of a GRU it must be given). For a bidirectional layer, ``reverse=True`` gives the
    weights of Keras ``Bidirectional``'s ``backward_layer``."""
    layer = L.layer_index(layer)
    reverse = flag("reverse", reverse)
    L.gates(cell)
    state_dict, reset_after = L.source(cell, state_dict, reset_after)
    return to_keras(cell, **L.from_state_dict(state_dict, layer, reverse), reset_after=reset_after)


def keras_to_state_dict(
    cell, kernel, recurrent_kernel, bias=None, *, layer=0, reverse=False, reset_after=None
):
    """from_keras() as ``state_dict`` entries for layer ``layer`` (``weight_ih_l{layer}``, ...,
    with ``_reverse`` when ``reverse``); bias entries are left out when ``bias`` is None."""
    layer = L.layer_index(layer)
    reverse = flag("reverse", reverse)
    weights = from_keras(cell, kernel, recurrent_kernel, bias, reset_after=reset_after)
    return L.to_state_dict(weights, layer, reverse)
