"""Weight conversions between fastrnn (PyTorch layout) and ONNX / Keras recurrent layers.

fastrnn stores one layer and direction as PyTorch does: ``w_ih`` (G*H, I), ``w_hh`` (G*H, H),
``b_ih`` and ``b_hh`` (G*H,), gates stacked in the order lstm i, f, g, o and gru r, z, n. ONNX and Keras
keep the same numbers in other shapes and gate orders; the functions here move between them, exactly
(no arithmetic but the sum of two biases where Keras has only one).

=======================================  ========  ==================================================
variant                                  maps      notes
=======================================  ========  ==================================================
ONNX RNN, activations Tanh / Relu        exactly   cell ``rnn_tanh`` / ``rnn_relu``
ONNX LSTM, default activations           exactly   gate order i, o, f, c; all-zero peepholes ``P`` ok
ONNX GRU, ``linear_before_reset=1``      exactly   gate order z, r, h
ONNX GRU, ``linear_before_reset=0``      rejected  reset applied before the recurrent product
ONNX LSTM, nonzero peepholes ``P``       rejected  PyTorch's LSTM has no peepholes
ONNX LSTM ``input_forget=1``; ``clip``   rejected  no PyTorch equivalent
other ONNX activations                   rejected  PyTorch's cells have fixed activations
fastrnn LSTM with projection ``w_hr``    rejected  neither ONNX's nor Keras's LSTM has a projection
Keras SimpleRNN (tanh / relu)            exactly   one bias: ``b_ih + b_hh``
Keras LSTM                               exactly   gate order i, f, c, o (PyTorch's); one bias
Keras GRU, ``reset_after=True``          exactly   gate order z, r, h; bias (2, 3H) = [b_ih, b_hh]
Keras GRU, ``reset_after=False``         rejected  bias (3H,): reset applied before the product
=======================================  ========  ==================================================

Keras layers must use their default activations (``activation="tanh"``, ``recurrent_activation=
"sigmoid"``; SimpleRNN ``"tanh"`` or ``"relu"`` as the cell says): the weights do not record them, so
this module cannot check. Keras keeps one bias where PyTorch has two, so ``from_keras`` puts it in
``b_ih`` with ``b_hh`` zero, and ``to_keras`` stores ``b_ih + b_hh`` (the only step that rounds).

One direction at a time (NumPy arrays in, new NumPy arrays out; float32/float64 kept)::

    onnx = to_onnx("lstm", {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh})
    onnx["W"], onnx["R"], onnx["B"]          # (1, 4H, I), (1, 4H, H), (1, 8H); B is None w/o bias
    onnx["op_type"], onnx["attributes"]      # "LSTM", {"hidden_size": H, "direction": "forward"}
    [fwd] = from_onnx("lstm", W, R, B)       # dicts with w_ih, w_hh, b_ih, b_hh; two if bidirectional
    keras = to_keras("gru", w_ih, w_hh, b_ih, b_hh)   # kernel, recurrent_kernel, bias
    w = from_keras("gru", kernel, recurrent_kernel, bias)

Whole layers of a fastrnn (or PyTorch) ``state_dict`` (keys ``weight_ih_l{k}``, ``..._reverse``)::

    onnx = state_dict_to_onnx("gru", model.state_dict(), layer=0)   # both directions if present
    model.load_state_dict({**onnx_to_state_dict("gru", W0, R0, B0, layer=0, linear_before_reset=1),
                           **onnx_to_state_dict("gru", W1, R1, B1, layer=1, linear_before_reset=1)})
    keras = state_dict_to_keras("lstm", sd, layer=0, reverse=False)
    sd = keras_to_state_dict("lstm", kernel, recurrent_kernel, bias, layer=0, reverse=False)

The reverse direction of a bidirectional layer matches ONNX's direction index 1 and the backward layer
of Keras's ``Bidirectional`` wrapper (``go_backwards=True``, outputs re-reversed by the wrapper).
"""

import numpy as np

from ._cells import CELLS, GATES
from ._checks import flag
from ._checks import float_array as _array
from ._checks import shaped as _shaped

__all__ = [
    "to_onnx",
    "from_onnx",
    "state_dict_to_onnx",
    "onnx_to_state_dict",
    "to_keras",
    "from_keras",
    "state_dict_to_keras",
    "keras_to_state_dict",
]


# Gate permutations: ORDER[k] is the PyTorch gate index stored at the format's gate position k.
# PyTorch: lstm (i, f, g, o), gru (r, z, n). ONNX: lstm (i, o, f, c), gru (z, r, h).
# Keras: lstm (i, f, c, o), gru (z, r, h).
_ONNX_ORDER = {"rnn_tanh": (0,), "rnn_relu": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
_KERAS_ORDER = {"rnn_tanh": (0,), "rnn_relu": (0,), "lstm": (0, 1, 2, 3), "gru": (1, 0, 2)}
_ONNX_OP = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
_ONNX_ACTIVATIONS = {
    "rnn_tanh": ("Tanh",),
    "rnn_relu": ("Relu",),
    "lstm": ("Sigmoid", "Tanh", "Tanh"),
    "gru": ("Sigmoid", "Tanh"),
}
_DIRECTION_KEYS = ("w_ih", "w_hh", "b_ih", "b_hh", "w_hr")


# -------------------------------------------------------------------------------------------------
# Validation helpers


def _cell(cell):
    if not isinstance(cell, str) or cell not in GATES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    return GATES[cell]


def _matrix(name, a, G, cell, transposed=False, dtype=None):
    """A (G*H, I) matrix (or (I, G*H) when ``transposed``) with H >= 1; returns (arr, H, I)."""
    arr = _array(name, a, dtype)
    want = f"(I, {G}*H)" if transposed else f"({G}*H, I)"
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape {want} for cell {cell!r}, got {arr.shape}")
    rows, cols = (arr.shape[1], arr.shape[0]) if transposed else arr.shape
    if rows == 0 or rows % G:
        raise ValueError(f"{name} must have shape {want} with H >= 1 for cell {cell!r}, got {arr.shape}")
    return arr, rows // G, cols


def _new(a, dtype):
    """A fresh C-contiguous copy (outputs never alias the caller's arrays)."""
    return np.array(a, dtype=dtype, order="C", copy=True)


def _permute(a, order, G):
    """Reorders the G gate blocks along axis 0 of ``a`` (G*H, ...): block k of the result is a's
    block order[k]."""
    H = a.shape[0] // G
    return a.reshape((G, H) + a.shape[1:])[list(order)].reshape(a.shape)


def _inverse(order):
    inv = [0] * len(order)
    for k, j in enumerate(order):
        inv[j] = k
    return tuple(inv)


def _layer(layer):
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, got {layer!r}")
    return int(layer)


def _direction(cell, G, name, d, dtype=None):
    """Validates one direction's PyTorch-layout weights; returns (w_ih, w_hh, b_ih, b_hh, H, I)."""
    w_ih, H, I = _matrix(f"{name}w_ih", d["w_ih"], G, cell, dtype=dtype)
    dtype = w_ih.dtype
    w_hh = _shaped(f"{name}w_hh", d["w_hh"], (G * H, H), ("G*H", "H"), dtype)
    b_ih, b_hh = (
        None if d.get(k) is None else _shaped(f"{name}{k}", d[k], (G * H,), ("G*H",), dtype)
        for k in ("b_ih", "b_hh")
    )
    return w_ih, w_hh, b_ih, b_hh, H, I


def _no_projection(w_hr, fmt):
    if w_hr is not None:
        raise ValueError(
            f"an LSTM with a projection (w_hr, proj_size > 0) cannot be converted to "
            f"{fmt}: {fmt}'s LSTM has no projection"
        )


# -------------------------------------------------------------------------------------------------
# ONNX


def to_onnx(cell, forward, reverse=None):
    """ONNX RNN/LSTM/GRU weights for one layer from fastrnn's (PyTorch-layout) weights.

    ``forward`` (and ``reverse`` for a bidirectional layer) are dicts with keys ``w_ih`` (G*H, I),
    ``w_hh`` (G*H, H) and optionally ``b_ih``, ``b_hh`` (G*H,) (missing or None: no bias); a
    ``w_hr`` that is not None is rejected (ONNX's LSTM has no projection).

    Returns a dict: ``W`` (D, G*H, I), ``R`` (D, G*H, H), ``B`` (D, 2*G*H) or None when no direction
    has a bias (a single missing bias becomes zeros), in ONNX's gate order; ``op_type`` ("RNN",
    "LSTM" or "GRU") and ``attributes`` for the node: ``hidden_size``, ``direction`` ("forward" or
    "bidirectional"), ``activations`` for RNN and ``linear_before_reset=1`` for GRU.
    """
    G = _cell(cell)
    dirs = [("forward", forward)] + ([] if reverse is None else [("reverse", reverse)])
    parts = []
    for label, d in dirs:
        if not isinstance(d, dict):
            raise TypeError(
                f"{label} must be a dict with keys w_ih, w_hh[, b_ih, b_hh], got {type(d).__name__}"
            )
        unknown = sorted(set(d) - set(_DIRECTION_KEYS))
        missing = [k for k in ("w_ih", "w_hh") if k not in d]
        if unknown or missing:
            raise ValueError(
                f"{label} must have keys w_ih, w_hh and optionally b_ih, b_hh; "
                f"missing {missing}, unexpected {unknown}"
            )
        _no_projection(d.get("w_hr"), "ONNX")
        parts.append(_direction(cell, G, f"{label}.", d, parts[0][0].dtype if parts else None))
    H, I = parts[0][4:]
    if len(parts) == 2 and parts[1][4:] != (H, I):
        raise ValueError(
            f"reverse weights are for H={parts[1][4]}, I={parts[1][5]} but forward "
            f"weights are for H={H}, I={I}"
        )
    dtype = parts[0][0].dtype
    order = _ONNX_ORDER[cell]
    W = np.stack([_permute(p[0], order, G) for p in parts])  # np.stack: new arrays
    R = np.stack([_permute(p[1], order, G) for p in parts])
    B = None
    if any(p[2] is not None or p[3] is not None for p in parts):
        zeros = np.zeros(G * H, dtype)
        B = np.stack(
            [
                np.concatenate([_permute(zeros if b is None else b, order, G) for b in (p[2], p[3])])
                for p in parts
            ]
        )
    attributes = {"hidden_size": H, "direction": "forward" if len(parts) == 1 else "bidirectional"}
    if G == 1:
        attributes["activations"] = list(_ONNX_ACTIVATIONS[cell]) * len(parts)
    if cell == "gru":
        attributes["linear_before_reset"] = 1
    return {"W": W, "R": R, "B": B, "op_type": _ONNX_OP[cell], "attributes": attributes}


def _onnx_attributes(cell, D, linear_before_reset, activations, clip, input_forget):
    if cell == "gru":
        if linear_before_reset is None:
            raise ValueError(
                "from_onnx for a GRU needs linear_before_reset= (the node's attribute; "
                "ONNX's default is 0): only linear_before_reset=1 maps to PyTorch's GRU"
            )
        if linear_before_reset != 1:
            raise ValueError(
                f"ONNX GRU with linear_before_reset={linear_before_reset!r} cannot be converted: "
                "it applies the reset gate before the recurrent product, tanh(W x + R (r * h) + ...), "
                "while PyTorch's (and fastrnn's) GRU computes tanh(W x + b_in + r * (R h + b_hn)), "
                "which is ONNX's linear_before_reset=1; no weights make the two equal"
            )
    elif linear_before_reset not in (None, 0):
        raise ValueError(
            f"linear_before_reset is a GRU attribute; got {linear_before_reset!r} for cell {cell!r}"
        )
    if activations is not None:
        got = [a.decode() if isinstance(a, bytes) else a for a in activations]
        want = list(_ONNX_ACTIVATIONS[cell]) * D
        if got != want:
            raise ValueError(
                f"ONNX activations {got} do not match cell {cell!r}: fastrnn's "
                f"{cell!r} is ONNX {_ONNX_OP[cell]} with activations {want}"
            )
    if clip is not None:
        raise ValueError(
            f"ONNX clip={clip!r} cannot be converted: PyTorch's cells do not clip their pre-activations"
        )
    if input_forget not in (0, None):
        if cell != "lstm":
            raise ValueError(f"input_forget is an LSTM attribute; got {input_forget!r} for cell {cell!r}")
        raise ValueError(
            "ONNX LSTM with input_forget=1 (coupled input and forget gates) cannot be "
            "converted: PyTorch's LSTM has independent gates"
        )


def from_onnx(
    cell, W, R, B=None, P=None, *, linear_before_reset=None, activations=None, clip=None, input_forget=0
):
    """fastrnn (PyTorch-layout) weights from an ONNX RNN/LSTM/GRU node's weight tensors.

    ``W`` (D, G*H, I), ``R`` (D, G*H, H), ``B`` (D, 2*G*H) or None, and for ``lstm`` the peepholes
    ``P`` (D, 3*H) or None, which must be all zero (PyTorch's LSTM has none). The keyword arguments
    are the node's attributes, checked against what maps exactly: a GRU needs
    ``linear_before_reset=1`` (pass it explicitly: ONNX's default 0 does not map); ``activations``
    (optional, e.g. ``["Relu"]`` for ``rnn_relu``) must be the cell's; ``clip`` must be None and
    ``input_forget`` 0.

    Returns a list of D dicts (forward, then reverse for a bidirectional node) with keys ``w_ih``
    (G*H, I), ``w_hh`` (G*H, H), ``b_ih``, ``b_hh`` (G*H,) (both None when ``B`` is None). A node
    with ``direction="reverse"`` (D == 1) gives the weights of a fastrnn ``reverse=True`` run.
    """
    G = _cell(cell)
    W = _array("W", W)
    dtype = W.dtype
    if W.ndim != 3 or W.shape[0] not in (1, 2) or W.shape[1] == 0 or W.shape[1] % G:
        raise ValueError(
            f"W must have shape (num_directions in (1, 2), {G}*H, I) with H >= 1 for "
            f"cell {cell!r}, got {W.shape}"
        )
    D, GH, I = W.shape
    H = GH // G
    R = _shaped("R", R, (D, GH, H), ("num_directions", "G*H", "H"), dtype)
    if B is not None:
        B = _shaped("B", B, (D, 2 * GH), ("num_directions", "2*G*H"), dtype)
    if P is not None:
        if cell != "lstm":
            raise ValueError(f"P (peepholes) is an LSTM input; got P for cell {cell!r}")
        P = _shaped("P", P, (D, 3 * H), ("num_directions", "3*H"), dtype)
        if np.any(P != 0):
            raise ValueError(
                "ONNX LSTM with nonzero peepholes P cannot be converted: PyTorch's "
                "(and fastrnn's) LSTM has no peephole connections"
            )
    _onnx_attributes(cell, D, linear_before_reset, activations, clip, input_forget)
    back = _inverse(_ONNX_ORDER[cell])
    out = []
    for d in range(D):
        entry = {
            "w_ih": _new(_permute(W[d], back, G), dtype),
            "w_hh": _new(_permute(R[d], back, G), dtype),
            "b_ih": None,
            "b_hh": None,
        }
        if B is not None:
            entry["b_ih"] = _new(_permute(B[d, :GH], back, G), dtype)
            entry["b_hh"] = _new(_permute(B[d, GH:], back, G), dtype)
        out.append(entry)
    return out


def _names(layer, reverse):
    s = f"_l{layer}" + ("_reverse" if reverse else "")
    return {
        "w_ih": "weight_ih" + s,
        "w_hh": "weight_hh" + s,
        "b_ih": "bias_ih" + s,
        "b_hh": "bias_hh" + s,
        "w_hr": "weight_hr" + s,
    }


def _from_state_dict(state_dict, layer, reverse):
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
    names = _names(layer, reverse)
    for k in ("w_ih", "w_hh"):
        if names[k] not in state_dict:
            raise ValueError(
                f"state_dict has no {names[k]!r} (layer {layer}"
                f"{', reverse' if reverse else ''}); its keys are {sorted(state_dict)}"
            )
    return {k: state_dict[n] if n in state_dict else None for k, n in names.items()}


def state_dict_to_onnx(cell, state_dict, layer=0):
    """to_onnx() for layer ``layer`` of a fastrnn or PyTorch ``state_dict`` (keys ``weight_ih_l0``,
    ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``); the layer is bidirectional
    when ``weight_ih_l{layer}_reverse`` is present. Layers above the first take the previous layer's
    output (D*H features) as their input, as in ONNX graphs that chain nodes."""
    layer = _layer(layer)
    _cell(cell)
    forward = _from_state_dict(state_dict, layer, False)
    reverse = _from_state_dict(state_dict, layer, True) if _names(layer, True)["w_ih"] in state_dict else None
    return to_onnx(cell, forward, reverse)


def onnx_to_state_dict(
    cell,
    W,
    R,
    B=None,
    P=None,
    *,
    layer=0,
    linear_before_reset=None,
    activations=None,
    clip=None,
    input_forget=0,
):
    """from_onnx() as ``state_dict`` entries for layer ``layer`` (``weight_ih_l{layer}``, ...,
    ``..._reverse`` when D == 2); bias entries are left out when ``B`` is None. Merge the dicts of
    every layer and pass them to ``load_state_dict``."""
    layer = _layer(layer)
    dirs = from_onnx(
        cell,
        W,
        R,
        B,
        P,
        linear_before_reset=linear_before_reset,
        activations=activations,
        clip=clip,
        input_forget=input_forget,
    )
    out = {}
    for d, weights in enumerate(dirs):
        names = _names(layer, d == 1)
        out.update({names[k]: v for k, v in weights.items() if v is not None})
    return out


# -------------------------------------------------------------------------------------------------
# Keras


def to_keras(cell, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    """Keras SimpleRNN/LSTM/GRU weights for one direction from fastrnn's (PyTorch-layout) weights.

    Returns a dict with ``kernel`` (I, G*H), ``recurrent_kernel`` (H, G*H) and ``bias`` in Keras's
    gate order: (G*H,) = ``b_ih + b_hh`` for SimpleRNN and LSTM, (2, 3*H) = [b_ih, b_hh] for GRU
    (``reset_after=True``); None when both biases are None (``use_bias=False``). A missing single
    bias counts as zeros. ``w_hr`` (LSTM projection) is rejected: Keras's LSTM has none. The list
    ``[kernel, recurrent_kernel, bias]`` (without bias when None) is what ``layer.set_weights`` takes.
    """
    G = _cell(cell)
    _no_projection(w_hr, "Keras")
    w_ih, w_hh, b_ih, b_hh, H, _ = _direction(
        cell, G, "", {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    )
    dtype = w_ih.dtype
    order = _KERAS_ORDER[cell]
    bias = None
    if b_ih is not None or b_hh is not None:
        zeros = np.zeros(G * H, dtype)
        b_ih = zeros if b_ih is None else b_ih
        b_hh = zeros if b_hh is None else b_hh
        if cell == "gru":
            bias = np.stack([_permute(b_ih, order, G), _permute(b_hh, order, G)])
        else:
            bias = _permute(b_ih + b_hh, order, G)
    return {
        "kernel": _new(_permute(w_ih, order, G).T, dtype),
        "recurrent_kernel": _new(_permute(w_hh, order, G).T, dtype),
        "bias": None if bias is None else _new(bias, dtype),
    }


def from_keras(cell, kernel, recurrent_kernel, bias=None, *, reset_after=True):
    """fastrnn (PyTorch-layout) weights for one direction from a Keras SimpleRNN/LSTM/GRU layer.

    ``kernel`` (I, G*H), ``recurrent_kernel`` (H, G*H), ``bias`` (G*H,) for SimpleRNN/LSTM or
    (2, 3*H) for GRU with ``reset_after=True``, or None (``use_bias=False``). A GRU with
    ``reset_after=False`` (bias (3*H,)) is rejected: it does not map to PyTorch's GRU. Keras's
    single bias goes to ``b_ih`` with ``b_hh`` zeros.

    Returns a dict with ``w_ih`` (G*H, I), ``w_hh`` (G*H, H), ``b_ih``, ``b_hh`` (G*H,) (None when
    ``bias`` is None).
    """
    G = _cell(cell)
    reset_after = flag("reset_after", reset_after)
    if cell == "gru" and not reset_after:
        raise ValueError(_RESET_BEFORE)
    kernel, H, _ = _matrix("kernel", kernel, G, cell, transposed=True)
    dtype = kernel.dtype
    recurrent_kernel = _shaped("recurrent_kernel", recurrent_kernel, (H, G * H), ("H", "G*H"), dtype)
    back = _inverse(_KERAS_ORDER[cell])
    out = {
        "w_ih": _new(_permute(kernel.T, back, G), dtype),
        "w_hh": _new(_permute(recurrent_kernel.T, back, G), dtype),
        "b_ih": None,
        "b_hh": None,
    }
    if bias is not None:
        bias = _array("bias", bias, dtype)
        if cell == "gru":
            if bias.shape == (G * H,):
                raise ValueError(
                    _RESET_BEFORE + f" (bias has shape {bias.shape}, (3*H,) is the reset_after=False layout)"
                )
            bias = _shaped("bias", bias, (2, G * H), ("rows", "3*H"), dtype)
            out["b_ih"] = _new(_permute(bias[0], back, G), dtype)
            out["b_hh"] = _new(_permute(bias[1], back, G), dtype)
        else:
            bias = _shaped("bias", bias, (G * H,), ("G*H",), dtype)
            out["b_ih"] = _new(_permute(bias, back, G), dtype)
            out["b_hh"] = np.zeros(G * H, dtype)
    return out


_RESET_BEFORE = (
    "Keras GRU with reset_after=False cannot be converted: it applies the reset gate before the "
    "recurrent product, tanh(x W_h + (r * h) U_h + b_h), while PyTorch's (and fastrnn's) GRU computes "
    "tanh(W_in x + b_in + r * (W_hn h + b_hn)), which is Keras's reset_after=True (the default in "
    "TensorFlow 2's Keras and Keras 3; bias shape (2, 3*H))"
)


def state_dict_to_keras(cell, state_dict, layer=0, reverse=False):
    """to_keras() for one layer and direction of a fastrnn or PyTorch ``state_dict``. For a
    bidirectional layer, ``reverse=True`` gives the weights of Keras ``Bidirectional``'s
    ``backward_layer``."""
    layer = _layer(layer)
    reverse = flag("reverse", reverse)
    _cell(cell)
    return to_keras(cell, **_from_state_dict(state_dict, layer, reverse))


def keras_to_state_dict(
    cell, kernel, recurrent_kernel, bias=None, *, layer=0, reverse=False, reset_after=True
):
    """from_keras() as ``state_dict`` entries for layer ``layer`` (``weight_ih_l{layer}``, ...,
    with ``_reverse`` when ``reverse``); bias entries are left out when ``bias`` is None."""
    layer = _layer(layer)
    reverse = flag("reverse", reverse)
    weights = from_keras(cell, kernel, recurrent_kernel, bias, reset_after=reset_after)
    names = _names(layer, reverse)
    return {names[k]: v for k, v in weights.items() if v is not None}
