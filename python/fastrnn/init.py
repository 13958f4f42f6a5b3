"""Weight initialisation for recurrent layers and plain arrays, in place.

Every function takes a *target* and modifies it in place (the arrays are never replaced, so
Parameters and optimizers that hold them stay valid):

- a layer: ``fastrnn.RNN/LSTM/GRU`` or any object whose ``parameters()`` returns named Parameters
  (``.name``, ``.data``) with PyTorch's state_dict names (``weight_ih_l0``, ``weight_hh_l0``,
  ``bias_ih_l0``, ``bias_hh_l0``, ``weight_hr_l0``, ``..._reverse``; or ``weight`` / ``bias``);
- a Parameter, a NumPy array (float32 or float64), or a list/tuple of those;
- a dict {name: array} (a state_dict-style mapping; its arrays are modified in place);
- a container of layers such as ``fastrnn.Sequential`` (iterable, with ``parameters()``): each layer is
  initialised in turn as above, from one random stream. Names may carry a container prefix
  (``"1.weight_hh_l0"``); the last dotted part decides the kind.

Random functions take ``seed``: None, an int or a ``numpy.random.Generator`` (used as is, so several
calls can share one stream). Values are drawn in float64, in state_dict order, then cast to each array's
dtype, so a given seed gives the same weights in float32 and float64 (up to rounding).

Gate blocks. The recurrent layers stack their gates along the rows of ``weight_ih``, ``weight_hh``,
``bias_ih`` and ``bias_hh`` (PyTorch's order), each block ``H = hidden_size`` rows long:

====== =========== =========== =========== ===========
cell   rows 0:H    rows H:2H   rows 2H:3H  rows 3H:4H
====== =========== =========== =========== ===========
LSTM   i (input)   f (forget)  g (cell)    o (output)
GRU    r (reset)   z (update)  n (new)
RNN    h (the one)
====== =========== =========== =========== ===========

``orthogonal_``, ``identity_`` and the Xavier functions treat each gate block of a layer's weight as its
own matrix (``gate_blocks`` overrides: an int number of row blocks for every selected matrix; arrays
default to one block). ``weight_hr`` (LSTM projection) is a single block.
"""

import numbers
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ._checks import generator, real
from ._typing import FloatArray, SeedLike

_T = TypeVar("_T")
# draw(rng, fan_in, fan_out, shape, gain): the values of one gate block
_Draw = Callable[[np.random.Generator, int, int, tuple[int, ...], float], NDArray[np.float64]]

__all__ = [
    "uniform_",
    "orthogonal_",
    "identity_",
    "xavier_uniform_",
    "xavier_normal_",
    "forget_gate_bias_",
    "GATE_ORDER",
]

#: The gate blocks of each cell, in row order.
GATE_ORDER = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn_tanh": ("h",), "rnn_relu": ("h",)}

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_WHICH = ("hh", "ih", "hr", "all")


# -------------------------------------------------------------------------------------------------
# Targets


class _Entry:
    """One array to initialise: its name (or None), the array, and its gate-block count."""

    __slots__ = ("name", "array", "blocks")

    def __init__(self, name: str | None, array: FloatArray, blocks: int) -> None:
        self.name, self.array, self.blocks = name, array, blocks

    @property
    def kind(self) -> str | None:
        """'weight_ih', 'weight_hh', 'weight_hr', 'bias_ih', 'bias_hh', 'weight', 'bias' or None."""
        if self.name is None:
            return None
        base = self.name.rsplit(".", 1)[-1]
        for k in ("weight_ih", "weight_hh", "weight_hr", "bias_ih", "bias_hh"):
            if base.startswith(k):
                return k
        return "weight" if self.array.ndim >= 2 else "bias"


def _check_array(name: str, a: object) -> FloatArray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only; init modifies arrays in place")
    return a


def _layer_hidden(target: object) -> int | None:
    h = getattr(target, "hidden_size", None)
    if isinstance(h, bool) or not isinstance(h, numbers.Integral):
        return None
    return int(h) if int(h) > 0 else None


def _entries(target: object, gate_blocks: int | None = None) -> list[_Entry]:
    """The arrays of a target, in order, with their gate-block counts."""
    if gate_blocks is not None and (
        isinstance(gate_blocks, bool) or not isinstance(gate_blocks, numbers.Integral) or gate_blocks < 1
    ):
        raise ValueError(f"gate_blocks must be an int >= 1 or None, got {gate_blocks!r}")
    hidden = _layer_hidden(target)

    def blocks_for(name: str | None, a: FloatArray) -> int:
        if gate_blocks is not None:
            return int(gate_blocks)
        if (
            hidden is not None
            and name is not None
            and a.ndim >= 1
            and name.rsplit(".", 1)[-1].startswith(("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            and a.shape[0] % hidden == 0
        ):
            return int(a.shape[0]) // hidden
        return 1

    items: list[tuple[str | None, Any]]
    if isinstance(target, np.ndarray):
        items = [(None, target)]
    elif hasattr(target, "parameters") and callable(target.parameters):
        items = [(getattr(p, "name", None), p.data) for p in target.parameters()]
    elif hasattr(target, "data") and isinstance(getattr(target, "data"), np.ndarray):
        items = [(getattr(target, "name", None), target.data)]
    elif hasattr(target, "keys") and hasattr(target, "__getitem__"):
        items = [(str(k), target[k]) for k in target.keys()]
    elif isinstance(target, (list, tuple)):
        items = []
        for t in target:
            if isinstance(t, np.ndarray):
                items.append((None, t))
            elif hasattr(t, "data"):
                items.append((getattr(t, "name", None), t.data))
            else:
                raise TypeError(f"init: list items must be arrays or Parameters, got {type(t).__name__}")
    else:
        raise TypeError(
            "init target must be a layer (with parameters()), a Parameter, an array, a "
            f"dict of arrays or a list of those, got {type(target).__name__}"
        )
    out = []
    for name, a in items:
        _check_array(name or "array", a)
        b = blocks_for(name, a)
        if a.ndim >= 1 and a.shape[0] % b:
            raise ValueError(f"{name or 'array'}: {a.shape[0]} rows do not split into {b} gate blocks")
        out.append(_Entry(name, a, b))
    return out


def _select(entries: list[_Entry], which: str) -> list[_Entry]:
    """The weight matrices a function applies to: unnamed 2-D arrays always; named ones by kind."""
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    chosen = []
    for e in entries:
        if e.kind is None:
            if e.array.ndim != 2:
                raise ValueError(f"expected a 2-D weight matrix, got shape {e.array.shape}")
            chosen.append(e)
        elif e.array.ndim == 2 and (which == "all" or e.kind == "weight_" + which):
            chosen.append(e)
    return chosen


def _blocks(e: _Entry) -> list[FloatArray]:
    """Views of the gate blocks of a 2-D entry (row slices)."""
    n = e.array.shape[0] // e.blocks
    return [e.array[k * n : (k + 1) * n] for k in range(e.blocks)]


def _sublayers(target: object) -> list[Any] | None:
    """The layers of a container (``fastrnn.Sequential`` or alike), or None for anything else."""
    if isinstance(target, (np.ndarray, list, tuple)) or hasattr(target, "keys"):
        return None
    if not (callable(getattr(target, "parameters", None)) and hasattr(type(target), "__iter__")):
        return None
    layers: list[Any] = list(target)  # type: ignore[call-overload]  # iterable: checked above
    if not all(callable(getattr(layer, "parameters", None)) for layer in layers):
        return None
    return layers


def _lstm_layers(target: object) -> list[Any]:
    """Every LSTM layer inside a (possibly nested) container."""
    out = []
    for layer in _sublayers(target) or ():
        if getattr(layer, "cell", None) == "lstm":
            out.append(layer)
        elif _sublayers(layer) is not None:
            out.extend(_lstm_layers(layer))
    return out


def _per_layer(
    fn: Callable[..., object], target: object, seed: SeedLike, forget_bias: float | None, **kw: Any
) -> bool:
    """Applies ``fn`` to every layer of a container from one generator; then the forget-gate bias to
    its LSTMs. Returns False when ``target`` is not a container."""
    layers = _sublayers(target)
    if layers is None:
        return False
    rng = generator(seed)
    for layer in layers:
        fn(layer, seed=rng, **kw)
    _maybe_forget(target, forget_bias)
    return True


def _maybe_forget(target: object, forget_bias: float | None) -> None:
    if forget_bias is not None:
        forget_gate_bias_(target, forget_bias)


# -------------------------------------------------------------------------------------------------
# The initialisers


def uniform_(
    target: _T, bound: float | None = None, seed: SeedLike = None, forget_bias: float | None = None
) -> _T:
    """PyTorch's default: every array ~ U(-bound, bound), in place.

    ``bound`` defaults to ``1/sqrt(hidden_size)`` for a recurrent layer (what torch.nn.RNN/LSTM/GRU and
    fastrnn's constructors do), ``1/sqrt(in_features)`` for an object with ``in_features`` (torch.nn.Linear's
    bound), and ``1/sqrt(fan_in)`` (``shape[1]``) for a 2-D array; otherwise it must be given.
    An Embedding (an object with ``num_embeddings``) gets PyTorch's default for it, N(0, 1), unless a
    bound is given. A container is done layer by layer (``bound`` applies to all when given).
    ``forget_bias`` (LSTM only): then apply ``forget_gate_bias_(target, forget_bias)``.
    """
    if _per_layer(uniform_, target, seed, forget_bias, bound=bound):
        return target
    entries = _entries(target)
    if bound is None and isinstance(getattr(target, "num_embeddings", None), numbers.Integral):
        rng = generator(seed)
        for e in entries:
            e.array[...] = rng.standard_normal(e.array.shape)
        _maybe_forget(target, forget_bias)
        return target
    if bound is None:
        hidden = _layer_hidden(target)
        in_features = getattr(target, "in_features", None)
        if hidden is not None:
            bound = 1.0 / np.sqrt(hidden)
        elif isinstance(in_features, numbers.Integral) and int(in_features) > 0:
            bound = 1.0 / np.sqrt(int(in_features))
        elif len(entries) == 1 and entries[0].array.ndim == 2 and entries[0].array.shape[1] > 0:
            bound = 1.0 / np.sqrt(entries[0].array.shape[1])
        else:
            raise ValueError(
                "uniform_: give bound= for this target (no hidden_size, in_features "
                "or single 2-D array to take it from)"
            )
    bound = real("bound", bound, finite=True)
    if bound < 0:
        raise ValueError(f"bound must be >= 0, got {bound}")
    rng = generator(seed)
    for e in entries:
        e.array[...] = rng.uniform(-bound, bound, size=e.array.shape)
    _maybe_forget(target, forget_bias)
    return target


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...], gain: float) -> NDArray[np.float64]:
    """torch.nn.init.orthogonal_'s construction: QR of a Gaussian matrix, signs fixed by diag(R), so
    rows (rows <= cols) or columns (rows > cols) are orthonormal."""
    rows, cols = shape
    a = rng.standard_normal((rows, cols))
    if rows < cols:
        a = a.T
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    d[d == 0] = 1
    q = q * d
    if rows < cols:
        q = q.T
    return gain * q


def orthogonal_(
    target: _T,
    gain: float = 1.0,
    seed: SeedLike = None,
    which: str = "hh",
    gate_blocks: int | None = None,
    forget_bias: float | None = None,
) -> _T:
    """(Semi-)orthogonal weights via the QR decomposition of a seeded Gaussian matrix, in place.

    For a layer, each gate block of the selected weights (``which``: ``"hh"`` recurrent weights
    (default), ``"ih"``, ``"hr"``, or ``"all"`` weight matrices) gets its own orthogonal matrix, so
    ``W_g^T W_g = I`` for every gate g (or ``W_g W_g^T = I`` when a block is wider than tall). Biases and
    unselected weights are left as they are. An array is treated as one matrix (``gate_blocks`` splits
    its rows). ``gain`` scales the result.
    """
    gain = real("gain", gain, finite=True)
    if _per_layer(orthogonal_, target, seed, forget_bias, gain=gain, which=which, gate_blocks=gate_blocks):
        return target
    rng = generator(seed)
    for e in _select(_entries(target, gate_blocks), which):
        for block in _blocks(e):
            if block.size:
                block[...] = _orthogonal(rng, block.shape, gain)
    _maybe_forget(target, forget_bias)
    return target


def identity_(
    target: _T,
    scale: float = 1.0,
    input_std: float | None = None,
    seed: SeedLike = None,
    gate_blocks: int | None = None,
) -> _T:
    """IRNN initialisation (Le, Jaitly & Hinton 2015, for ReLU RNNs), in place: every recurrent
    weight gate block ``W_hh = scale * I`` (a rectangular block gets ones on its main diagonal) and
    recurrent bias (``bias_ih``, ``bias_hh``) zero. ``weight_ih`` keeps its values unless ``input_std``
    is given, then it is drawn from N(0, input_std**2) (the paper uses 0.001). An array is set to
    ``scale * I``. In a container only the recurrent layers change (a Linear keeps its weights).
    """
    scale = real("scale", scale, finite=True)
    if _per_layer(identity_, target, seed, None, scale=scale, input_std=input_std, gate_blocks=gate_blocks):
        return target
    entries = _entries(target, gate_blocks)
    for e in _select(entries, "hh"):
        for block in _blocks(e):
            block[...] = 0
            np.fill_diagonal(block, scale)
    if any(e.kind == "weight_hh" for e in entries):
        for e in entries:
            if e.kind in ("bias_ih", "bias_hh"):
                e.array[...] = 0
    if input_std is not None:
        input_std = real("input_std", input_std, finite=True)
        if input_std < 0:
            raise ValueError(f"input_std must be >= 0, got {input_std}")
        rng = generator(seed)
        for e in entries:
            if e.kind == "weight_ih":
                e.array[...] = rng.normal(0.0, input_std, size=e.array.shape)
    return target


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a 2-D block of shape (out, in), as torch computes them."""
    return shape[1], shape[0]


def xavier_uniform_(
    target: _T,
    gain: float = 1.0,
    seed: SeedLike = None,
    which: str = "all",
    gate_blocks: int | None = None,
    forget_bias: float | None = None,
) -> _T:
    """Glorot & Bengio (2010) uniform: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``,
    in place. For a layer, every selected weight matrix (``which``: ``"all"`` (default), ``"hh"``,
    ``"ih"``, ``"hr"``) is initialised gate block by gate block (fan_out = hidden_size rather than
    G * hidden_size); biases are left as they are. An array (one block unless ``gate_blocks``) matches
    ``torch.nn.init.xavier_uniform_``'s bound.
    """

    def draw(
        rng: np.random.Generator, fan_in: int, fan_out: int, shape: tuple[int, ...], gain: float
    ) -> NDArray[np.float64]:
        a = gain * np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape)

    _xavier(xavier_uniform_, target, gain, seed, which, gate_blocks, forget_bias, draw)
    return target


def xavier_normal_(
    target: _T,
    gain: float = 1.0,
    seed: SeedLike = None,
    which: str = "all",
    gate_blocks: int | None = None,
    forget_bias: float | None = None,
) -> _T:
    """Glorot & Bengio (2010) normal: N(0, std**2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``,
    in place; selection and gate blocks as in ``xavier_uniform_``."""

    def draw(
        rng: np.random.Generator, fan_in: int, fan_out: int, shape: tuple[int, ...], gain: float
    ) -> NDArray[np.float64]:
        return rng.normal(0.0, gain * np.sqrt(2.0 / (fan_in + fan_out)), size=shape)

    _xavier(xavier_normal_, target, gain, seed, which, gate_blocks, forget_bias, draw)
    return target


def _xavier(
    public: Callable[..., object],
    target: object,
    gain: float,
    seed: SeedLike,
    which: str,
    gate_blocks: int | None,
    forget_bias: float | None,
    draw: _Draw,
) -> None:
    """Both Xavier initialisers: ``draw(rng, fan_in, fan_out, shape, gain)`` fills each gate block."""
    gain = real("gain", gain, finite=True)
    if _per_layer(public, target, seed, forget_bias, gain=gain, which=which, gate_blocks=gate_blocks):
        return
    rng = generator(seed)
    for e in _select(_entries(target, gate_blocks), which):
        for block in _blocks(e):
            fan_in, fan_out = _fans(block.shape)
            if fan_in + fan_out == 0:
                continue
            block[...] = draw(rng, fan_in, fan_out, block.shape, gain)
    _maybe_forget(target, forget_bias)


def forget_gate_bias_(target: _T, value: float = 1.0, hidden_size: int | None = None) -> _T:
    """LSTM forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015), in place: for every layer and
    direction, ``bias_ih[H:2H] = value`` and ``bias_hh[H:2H] = 0`` (the f gate's rows; PyTorch adds the
    two biases, so the effective forget bias is exactly ``value``). The other gates' biases are kept.

    ``target`` is an LSTM layer (``cell == "lstm"`` with biases), a container holding at least one
    (every LSTM in it is set), or a single bias_ih array of length 4H (give ``hidden_size`` or it is
    taken as len/4) whose f slice is set to ``value``.
    """
    value = real("value", value, finite=True)
    if _sublayers(target) is not None:
        lstms = _lstm_layers(target)
        if not lstms:
            raise ValueError("forget_gate_bias_ needs an LSTM layer; this container holds none")
        for layer in lstms:
            forget_gate_bias_(layer, value)
        return target
    if isinstance(target, np.ndarray):
        _check_array("bias", target)
        if target.ndim != 1:
            raise ValueError(f"forget_gate_bias_: expected a 1-D bias of length 4H, got shape {target.shape}")
        H = hidden_size if hidden_size is not None else target.shape[0] // 4
        if target.shape[0] != 4 * H or H < 1:
            raise ValueError(
                f"forget_gate_bias_: a bias of length {target.shape[0]} is not 4 * hidden_size ({H})"
            )
        target[H : 2 * H] = value
        return target
    if getattr(target, "cell", None) != "lstm":
        raise ValueError(
            f"forget_gate_bias_ needs an LSTM layer (gates i, f, g, o), got {type(target).__name__}"
        )
    H = int(getattr(target, "hidden_size"))  # every LSTM layer has it
    entries = _entries(target)
    biases = [e for e in entries if e.kind in ("bias_ih", "bias_hh")]
    if not biases:
        raise ValueError("forget_gate_bias_: this LSTM has no biases (bias=False)")
    for e in biases:
        e.array[H : 2 * H] = value if e.kind == "bias_ih" else 0
    return target
