"""What the ONNX and Keras converters share: argument checks, gate permutations, PyTorch's
state_dict names, and where a GRU's formulation (reset_after) comes from.

fastrnn stores one layer and direction as PyTorch does: ``w_ih`` (G*H, I), ``w_hh`` (G*H, H),
``b_ih`` and ``b_hh`` (G*H,), gates stacked i, f, g, o (lstm) and r, z, n (gru); an LSTM's
peepholes ``w_ph`` (3*H,) are stacked i, f, o.
"""

import numpy as np

from .._cells import CELLS, GATES
from .._checks import flag, shaped
from .._checks import float_array as array
from ..layers import is_recurrent

# The keys of one direction's weights, as the functional core names them.
DIRECTION_KEYS = ("w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "w_ph")


def gates(cell):
    """G, the number of gates of ``cell``."""
    if not isinstance(cell, str) or cell not in GATES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    return GATES[cell]


def matrix(name, a, G, cell, transposed=False, dtype=None):
    """A (G*H, I) matrix (or (I, G*H) when ``transposed``) with H >= 1; returns (arr, H, I)."""
    arr = array(name, a, dtype)
    want = f"(I, {G}*H)" if transposed else f"({G}*H, I)"
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape {want} for cell {cell!r}, got {arr.shape}")
    rows, cols = (arr.shape[1], arr.shape[0]) if transposed else arr.shape
    if rows == 0 or rows % G:
        raise ValueError(f"{name} must have shape {want} with H >= 1 for cell {cell!r}, got {arr.shape}")
    return arr, rows // G, cols


def new(a, dtype):
    """A fresh C-contiguous copy (outputs never alias the caller's arrays)."""
    return np.array(a, dtype=dtype, order="C", copy=True)


def permute(a, order, G):
    """Reorders the G gate blocks along axis 0 of ``a`` (G*H, ...): block k of the result is a's
    block order[k]."""
    H = a.shape[0] // G
    return a.reshape((G, H) + a.shape[1:])[list(order)].reshape(a.shape)


def inverse(order):
    inv = [0] * len(order)
    for k, j in enumerate(order):
        inv[j] = k
    return tuple(inv)


def layer_index(layer):
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, got {layer!r}")
    return int(layer)


def direction(cell, G, name, d, dtype=None):
    """Validates one direction's PyTorch-layout weights; returns (w_ih, w_hh, b_ih, b_hh, w_ph, H, I),
    with w_ph None when absent."""
    w_ih, H, I = matrix(f"{name}w_ih", d["w_ih"], G, cell, dtype=dtype)
    dtype = w_ih.dtype
    w_hh = shaped(f"{name}w_hh", d["w_hh"], (G * H, H), ("G*H", "H"), dtype)
    b_ih, b_hh = (
        None if d.get(k) is None else shaped(f"{name}{k}", d[k], (G * H,), ("G*H",), dtype)
        for k in ("b_ih", "b_hh")
    )
    w_ph = d.get("w_ph")
    if w_ph is not None:
        if cell != "lstm":
            raise ValueError(f"{name}w_ph (peepholes) is an LSTM weight; got it for cell {cell!r}")
        w_ph = shaped(f"{name}w_ph", w_ph, (3 * H,), ("3*H",), dtype)
    return w_ih, w_hh, b_ih, b_hh, w_ph, H, I


def no_projection(w_hr, fmt):
    if w_hr is not None:
        raise ValueError(
            f"an LSTM with a projection (w_hr, proj_size > 0) cannot be converted to "
            f"{fmt}: {fmt}'s LSTM has no projection"
        )


# -------------------------------------------------------------------------------------------------
# The GRU's two formulations

RESET_AFTER = (
    "reset_after=True is PyTorch's GRU (fastrnn's default), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): "
    "ONNX linear_before_reset=1, Keras reset_after=True; reset_after=False is the original GRU, "
    "n = tanh(W_in x + b_in + W_hn (r * h) + b_hn): ONNX linear_before_reset=0, Keras reset_after=False"
)


def reset_after(cell, value, what):
    """A GRU's reset_after, which the caller must give (True or False): the two formulations have
    the same weight shapes, so the weights cannot say which they are. None for the other cells,
    which must not be given one."""
    if cell != "gru":
        if value is not None:
            raise ValueError(f"reset_after is a GRU argument; got {value!r} for cell {cell!r}")
        return None
    if value is None:
        raise ValueError(
            f"{what} for a GRU needs reset_after=True or False: both formulations have weights of "
            f"the same shapes, so the weights cannot say which they are. {RESET_AFTER}"
        )
    return flag("reset_after", value)


# -------------------------------------------------------------------------------------------------
# state_dict names


def names(layer, reverse):
    """Functional-core key -> PyTorch state_dict name for one layer and direction."""
    s = f"_l{layer}" + ("_reverse" if reverse else "")
    return {
        "w_ih": "weight_ih" + s,
        "w_hh": "weight_hh" + s,
        "b_ih": "bias_ih" + s,
        "b_hh": "bias_hh" + s,
        "w_hr": "weight_hr" + s,
        "w_ph": "weight_ph" + s,
    }


def source(cell, state_dict, given_reset_after):
    """(state_dict, reset_after) from a state_dict mapping or a fastrnn RNN/LSTM/GRU layer; a layer
    brings its own reset_after (a GRU's), which a given one must agree with."""
    if is_recurrent(state_dict):
        layer = state_dict
        if layer.cell != cell:
            raise ValueError(f"cell is {cell!r} but the layer given runs cell {layer.cell!r}")
        own = layer.reset_after if cell == "gru" else None
        if (
            given_reset_after is not None
            and own is not None
            and flag("reset_after", given_reset_after) != own
        ):
            raise ValueError(
                f"reset_after={given_reset_after!r} contradicts the layer's own reset_after={own!r}"
            )
        return layer.state_dict(), own
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(
            "state_dict must be a mapping of names to arrays or a fastrnn RNN/LSTM/GRU layer, "
            f"got {type(state_dict).__name__}"
        )
    return state_dict, given_reset_after


def from_state_dict(state_dict, layer, reverse):
    """One direction's weights (functional-core keys, None where absent) from a state_dict."""
    keys = names(layer, reverse)
    for k in ("w_ih", "w_hh"):
        if keys[k] not in state_dict:
            raise ValueError(
                f"state_dict has no {keys[k]!r} (layer {layer}"
                f"{', reverse' if reverse else ''}); its keys are {sorted(state_dict)}"
            )
    return {k: state_dict[n] if n in state_dict else None for k, n in keys.items()}


def to_state_dict(weights, layer, reverse):
    """One direction's weights as state_dict entries (None values left out)."""
    keys = names(layer, reverse)
    return {keys[k]: v for k, v in weights.items() if v is not None}
