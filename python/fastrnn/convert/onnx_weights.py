"""fastrnn (PyTorch-layout) weights <-> the weight tensors of ONNX RNN / LSTM / GRU nodes.

ONNX keeps one node's directions stacked: ``W`` (D, G*H, I), ``R`` (D, G*H, H), ``B`` (D, 2*G*H) =
[input biases, recurrent biases], and for LSTM the peepholes ``P`` (D, 3*H); gates in the order
i, o, f, c (LSTM), z, r, h (GRU), peepholes i, o, f.
"""

import numpy as np

from .._checks import float_array, shaped
from . import _layout as L

# ORDER[k] is the PyTorch gate index stored at ONNX's gate position k.
ORDER = {"rnn_tanh": (0,), "rnn_relu": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
PEEPHOLE_ORDER = (0, 2, 1)  # ONNX's P is (i, o, f), fastrnn's w_ph (i, f, o)
OP_TYPE = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
ACTIVATIONS = {
    "rnn_tanh": ("Tanh",),
    "rnn_relu": ("Relu",),
    "lstm": ("Sigmoid", "Tanh", "Tanh"),
    "gru": ("Sigmoid", "Tanh"),
}


def _stack_optional(parts, keys, order, blocks, H, dtype):
    """(D, len(keys)*blocks*H): each part's optional vectors ``keys`` (blocks*H long, gate blocks
    reordered by ``order``; a missing one counts as zeros), concatenated; None when all are missing."""
    if all(p[k] is None for p in parts for k in keys):
        return None
    zeros = np.zeros(blocks * H, dtype)
    return np.stack(
        [
            np.concatenate([L.permute(zeros if p[k] is None else p[k], order, blocks) for k in keys])
            for p in parts
        ]
    )


def to_onnx(cell, forward, reverse=None, *, reset_after=None):
    """ONNX RNN/LSTM/GRU weights for one layer from fastrnn's (PyTorch-layout) weights.

    ``forward`` (and ``reverse`` for a bidirectional layer) are dicts with keys ``w_ih`` (G*H, I),
    ``w_hh`` (G*H, H) and optionally ``b_ih``, ``b_hh`` (G*H,) (missing or None: no bias) and, for an
    LSTM, ``w_ph`` (3*H,), peepholes (i, f, o); a ``w_hr`` that is not None is rejected (ONNX's LSTM
    has no projection). A GRU needs ``reset_after`` (True or False, the formulation the weights were
    trained in: the weights cannot say); ``state_dict_to_onnx`` takes it from a layer.

    Returns a dict: ``W`` (D, G*H, I), ``R`` (D, G*H, H), ``B`` (D, 2*G*H) or None when no direction
    has a bias (a single missing bias becomes zeros), ``P`` (D, 3*H) or None when no direction has
    peepholes, in ONNX's gate order; ``op_type`` ("RNN", "LSTM" or "GRU") and ``attributes`` for the
    node: ``hidden_size``, ``direction`` ("forward" or "bidirectional"), ``activations`` for RNN and
    ``linear_before_reset`` (1 for reset_after=True, 0 for False) for GRU.
    """
    G = L.gates(cell)
    reset_after = L.reset_after(cell, reset_after, "to_onnx")
    dirs = [("forward", forward)] + ([] if reverse is None else [("reverse", reverse)])
    parts = []
    for label, d in dirs:
        if not isinstance(d, dict):
            raise TypeError(
                f"{label} must be a dict with keys w_ih, w_hh[, b_ih, b_hh, w_ph], got {type(d).__name__}"
            )
        unknown = sorted(set(d) - set(L.DIRECTION_KEYS))
        missing = [k for k in ("w_ih", "w_hh") if k not in d]
        if unknown or missing:
            raise ValueError(
                f"{label} must have keys w_ih, w_hh and optionally b_ih, b_hh, w_ph; "
                f"missing {missing}, unexpected {unknown}"
            )
        L.no_projection(d.get("w_hr"), "ONNX")
        checked = L.direction(cell, G, f"{label}.", d, parts[0]["w_ih"].dtype if parts else None)
        parts.append(dict(zip(("w_ih", "w_hh", "b_ih", "b_hh", "w_ph", "H", "I"), checked)))
    H, I = parts[0]["H"], parts[0]["I"]
    if len(parts) == 2 and (parts[1]["H"], parts[1]["I"]) != (H, I):
        raise ValueError(
            f"reverse weights are for H={parts[1]['H']}, I={parts[1]['I']} but forward "
            f"weights are for H={H}, I={I}"
        )
    dtype = parts[0]["w_ih"].dtype
    order = ORDER[cell]
    W = np.stack([L.permute(p["w_ih"], order, G) for p in parts])  # np.stack: new arrays
    R = np.stack([L.permute(p["w_hh"], order, G) for p in parts])
    B = _stack_optional(parts, ("b_ih", "b_hh"), order, G, H, dtype)
    P = _stack_optional(parts, ("w_ph",), PEEPHOLE_ORDER, 3, H, dtype)
    attributes = {"hidden_size": H, "direction": "forward" if len(parts) == 1 else "bidirectional"}
    if G == 1:
        attributes["activations"] = list(ACTIVATIONS[cell]) * len(parts)
    if cell == "gru":
        attributes["linear_before_reset"] = int(reset_after)
    return {"W": W, "R": R, "B": B, "P": P, "op_type": OP_TYPE[cell], "attributes": attributes}


def _check_attributes(cell, D, linear_before_reset, activations, clip, input_forget):
    """The node's attributes against what maps exactly; returns the GRU's reset_after (else None)."""
    reset_after = None
    if cell == "gru":
        if linear_before_reset is None:
            raise ValueError(
                "from_onnx for a GRU needs linear_before_reset= (the node's attribute; ONNX's "
                "default is 0): 0 is fastrnn's GRU(reset_after=False), 1 is GRU(reset_after=True)"
            )
        if isinstance(linear_before_reset, bool) or linear_before_reset not in (0, 1):
            raise ValueError(f"linear_before_reset must be 0 or 1, got {linear_before_reset!r}")
        reset_after = linear_before_reset == 1
    elif linear_before_reset not in (None, 0):
        raise ValueError(
            f"linear_before_reset is a GRU attribute; got {linear_before_reset!r} for cell {cell!r}"
        )
    if activations is not None:
        got = [a.decode() if isinstance(a, bytes) else a for a in activations]
        want = list(ACTIVATIONS[cell]) * D
        if got != want:
            raise ValueError(
                f"ONNX activations {got} do not match cell {cell!r}: fastrnn's "
                f"{cell!r} is ONNX {OP_TYPE[cell]} with activations {want}"
            )
    if clip is not None:
        raise ValueError(
            f"ONNX clip={clip!r} cannot be converted: fastrnn's cells do not clip their pre-activations"
        )
    if input_forget not in (0, None):
        if cell != "lstm":
            raise ValueError(f"input_forget is an LSTM attribute; got {input_forget!r} for cell {cell!r}")
        raise ValueError(
            "ONNX LSTM with input_forget=1 (coupled input and forget gates) cannot be "
            "converted: fastrnn's LSTM has independent gates"
        )
    return reset_after


def from_onnx(
    cell, W, R, B=None, P=None, *, linear_before_reset=None, activations=None, clip=None, input_forget=0
):
    """fastrnn (PyTorch-layout) weights from an ONNX RNN/LSTM/GRU node's weight tensors.

    ``W`` (D, G*H, I), ``R`` (D, G*H, H), ``B`` (D, 2*G*H) or None, and for ``lstm`` the peepholes
    ``P`` (D, 3*H) or None. The keyword arguments are the node's attributes, checked against what
    maps exactly: a GRU needs ``linear_before_reset`` (pass it explicitly, ONNX's default is 0):
    0 gives the weights of ``fastrnn.GRU(reset_after=False)``, 1 of ``GRU(reset_after=True)``;
    ``activations`` (optional, e.g. ``["Relu"]`` for ``rnn_relu``) must be the cell's; ``clip`` must
    be None and ``input_forget`` 0.

    Returns a list of D dicts (forward, then reverse for a bidirectional node) with keys ``w_ih``
    (G*H, I), ``w_hh`` (G*H, H), ``b_ih``, ``b_hh`` (G*H,) (both None when ``B`` is None), and for an
    LSTM ``w_ph`` (3*H,) in fastrnn's order (i, f, o), the weights of ``LSTM(peepholes=True)``; it is
    None when ``P`` is None or all zero (which computes the same as no peepholes). A node with
    ``direction="reverse"`` (D == 1) gives the weights of a fastrnn ``reverse=True`` run.
    """
    G = L.gates(cell)
    W = float_array("W", W)
    dtype = W.dtype
    if W.ndim != 3 or W.shape[0] not in (1, 2) or W.shape[1] == 0 or W.shape[1] % G:
        raise ValueError(
            f"W must have shape (num_directions in (1, 2), {G}*H, I) with H >= 1 for "
            f"cell {cell!r}, got {W.shape}"
        )
    D, GH, _ = W.shape
    H = GH // G
    R = shaped("R", R, (D, GH, H), ("num_directions", "G*H", "H"), dtype)
    if B is not None:
        B = shaped("B", B, (D, 2 * GH), ("num_directions", "2*G*H"), dtype)
    if P is not None:
        if cell != "lstm":
            raise ValueError(f"P (peepholes) is an LSTM input; got P for cell {cell!r}")
        P = shaped("P", P, (D, 3 * H), ("num_directions", "3*H"), dtype)
        if not np.any(P):
            P = None
    _check_attributes(cell, D, linear_before_reset, activations, clip, input_forget)
    back = L.inverse(ORDER[cell])
    out = []
    for d in range(D):
        entry = {
            "w_ih": L.new(L.permute(W[d], back, G), dtype),
            "w_hh": L.new(L.permute(R[d], back, G), dtype),
            "b_ih": None,
            "b_hh": None,
        }
        if B is not None:
            entry["b_ih"] = L.new(L.permute(B[d, :GH], back, G), dtype)
            entry["b_hh"] = L.new(L.permute(B[d, GH:], back, G), dtype)
        if cell == "lstm":
            entry["w_ph"] = None if P is None else L.new(L.permute(P[d], L.inverse(PEEPHOLE_ORDER), 3), dtype)
        out.append(entry)
    return out


def state_dict_to_onnx(cell, state_dict, layer=0, *, reset_after=None):
    """to_onnx() for layer ``layer`` of a fastrnn or PyTorch ``state_dict`` (keys ``weight_ih_l0``,
    ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``weight_ph_l0``, ``..._reverse``); the layer is
    bidirectional when ``weight_ih_l{layer}_reverse`` is present. ``state_dict`` may also be a fastrnn
    RNN/LSTM/GRU layer: then a GRU's ``reset_after`` comes from the layer (for a plain state_dict of a
    GRU it must be given). Layers above the first take the previous layer's output (D*H features) as
    their input, as in ONNX graphs that chain nodes."""
    layer = L.layer_index(layer)
    L.gates(cell)
    state_dict, reset_after = L.source(cell, state_dict, reset_after)
    forward = L.from_state_dict(state_dict, layer, False)
    has_reverse = L.names(layer, True)["w_ih"] in state_dict
    reverse = L.from_state_dict(state_dict, layer, True) if has_reverse else None
    return to_onnx(cell, forward, reverse, reset_after=reset_after)


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
    ``weight_ph_l{layer}`` for peepholes, ``..._reverse`` when D == 2); bias and peephole entries are
    left out when absent. Merge the dicts of every layer and pass them to ``load_state_dict`` of a
    layer built to match (``GRU(reset_after=linear_before_reset == 1)``, ``LSTM(peepholes=...)``)."""
    layer = L.layer_index(layer)
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
        out.update(L.to_state_dict(weights, layer, d == 1))
    return out
