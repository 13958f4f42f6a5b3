"""Sequential: a chain of layers with the layers' own conventions (see torch.nn.Sequential).

Forward feeds each layer's output to the next; a recurrent layer returns (y, h_n) or
(y, (h_n, c_n)) and only y is passed on (a tuple output contributes its first element). Backward runs
the layers in reverse and passes on the first element of a recurrent layer's (dx, dhx).
``forward_with_state(x, hx, lengths)`` also takes and returns the recurrent layers' states (for
carrying state across chunks of a long sequence, see ``fastrnn.train``). Parameter,
grads and state_dict names are prefixed by the layer's index, as in PyTorch: "0.weight",
"1.weight_ih_l0", "2.bias".

A fastrnn layer (RNN, LSTM, GRU, Linear, Embedding) may appear more than once (``Sequential(l, l)``,
or in a nested Sequential too): the chain keeps the cache of each use and hands it back to the layer
before that use's backward, so the gradients of every use add up in the layer's grads. Its
Parameters are listed once by ``parameters()`` (under the first use's name, as torch does), so an
optimizer steps each weight once; ``state_dict()`` names every use, as torch's does. Other objects
(user layers, a Sequential) cannot be shared: their caches are out of reach, so that is refused.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike

from ._checks import flag
from ._module import Module, Parameter
from ._typing import FloatArray
from .layers import is_recurrent

#: A recurrent layer's final state: h_n, or (h_n, c_n) for an LSTM.
State = FloatArray | tuple[FloatArray, FloatArray]

_LAYER_METHODS = ("backward", "parameters", "zero_grad", "state_dict", "load_state_dict", "train", "eval")


def _flatten(model: Any) -> list[Any]:
    """The model's layers in order, nested Sequentials expanded (a single layer: [model])."""
    if isinstance(model, Sequential):
        out: list[Any] = []
        for layer in model:
            out.extend(_flatten(layer))
        return out
    return [model]


def _shared_layers(layers: list[Any]) -> set[int]:
    """The ids of the fastrnn layers that appear more than once in the chain (nested Sequentials
    included); raises ValueError for any other object that does."""
    objects: dict[int, Any] = {}
    count: dict[int, int] = {}

    def visit(obj: Any) -> None:
        objects[id(obj)] = obj
        count[id(obj)] = count.get(id(obj), 0) + 1
        if isinstance(obj, Sequential):
            for layer in obj:
                visit(layer)

    for layer in layers:
        visit(layer)
    shared = set()
    for key, n in count.items():
        obj = objects[key]
        if n < 2:
            continue
        if not isinstance(obj, Module):
            raise ValueError(
                f"Sequential: {type(obj).__name__} appears {n} times; only fastrnn layers (RNN, LSTM, "
                "GRU, Linear, Embedding) may be shared, since the chain keeps each use's cache for them"
            )
        shared.add(key)
    return shared


class Sequential:
    """``Sequential(*layers)``: ``model(x)`` runs the layers in order, ``model.backward(dy)`` in reverse.

    Each layer must follow the fastrnn layer conventions (RNN, LSTM, GRU, Linear, Embedding, another
    Sequential, or anything with the same methods). Recurrent layers run on their own backend.
    """

    def __init__(self, *layers: Any) -> None:
        for i, layer in enumerate(layers):
            lacking = [m for m in ("__call__",) + _LAYER_METHODS if not callable(getattr(layer, m, None))]
            if lacking:
                raise TypeError(
                    f"Sequential: layer {i} ({type(layer).__name__}) is not a fastrnn "
                    f"layer: it lacks {', '.join(lacking)}"
                )
        self._layers = list(layers)
        self.training = True
        self._shared = _shared_layers(self._layers)
        # per position: (layer, cache, last forward) of the shared layers after it ran
        self._uses: list[list[tuple[Any, Any, Any]] | None] = [None] * len(self._layers)
        # Wrappers with prefixed names sharing each layer's data and grad arrays (both are updated in
        # place everywhere), made once so that optimizers may hold on to them. A weight used twice (a
        # shared layer, tied weights) is listed once, under its first name.
        self._params = []
        seen = set()
        for i, layer in enumerate(self._layers):
            for p in layer.parameters():
                if id(p.data) not in seen:
                    seen.add(id(p.data))
                    self._params.append(Parameter(f"{i}.{p.name}", p.data, p.grad))

    # -- container ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._layers)

    @overload
    def __getitem__(self, index: slice) -> "Sequential": ...
    @overload
    def __getitem__(self, index: int | np.integer[Any]) -> Any: ...
    def __getitem__(self, index: int | np.integer[Any] | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential indices must be integers or slices, got {type(index).__name__}")
        return self._layers[index]

    # -- forward and backward -------------------------------------------------------------------

    def __call__(
        self, x: ArrayLike, hx: Sequence[State | None] | None = None, lengths: ArrayLike | None = None
    ) -> FloatArray:
        """The last layer's output. ``hx`` and ``lengths`` are as in ``forward_with_state``."""
        return self.forward_with_state(x, hx, lengths)[0]

    def forward_with_state(
        self, x: ArrayLike, hx: Sequence[State | None] | None = None, lengths: ArrayLike | None = None
    ) -> tuple[FloatArray, list[State]]:
        """Runs the chain; returns ``(y, states)``: the last layer's output and a list with each
        recurrent layer's final state (its h_n, or (h_n, c_n) for an LSTM), in order, nested
        Sequentials flattened.

        ``hx``: None (zero initial states) or a list of the same form, one entry per recurrent layer
        (an entry may be None). Passing one call's ``states`` as the next call's ``hx`` carries the
        state across chunks of a long sequence, as truncated BPTT does: the states are plain arrays,
        so no gradient flows back into the earlier chunk. ``lengths`` (B,) goes to every recurrent
        layer.
        """
        n = self.num_recurrent
        if hx is None:
            hx = [None] * n
        elif not isinstance(hx, (list, tuple)) or len(hx) != n:
            raise ValueError(
                f"hx must be None or a list with one state per recurrent layer "
                f"({n}), got {type(hx).__name__}"
                + (f" of length {len(hx)}" if isinstance(hx, (list, tuple)) else "")
            )
        states: list[State] = []
        out: Any = x
        for i, layer in enumerate(self._layers):
            self._uses[i] = None
            if isinstance(layer, Sequential):
                k = layer.num_recurrent
                out, inner = layer.forward_with_state(out, list(hx[len(states) : len(states) + k]), lengths)
                states.extend(inner)
            elif is_recurrent(layer):
                out, h_n = layer(out, hx[len(states)], lengths)
                states.append(h_n)
            else:
                out = layer(out)
                if isinstance(out, tuple):  # a user layer in the same (output, state) convention
                    out = out[0]
            if self._shared:
                self._uses[i] = [
                    (m, m._cache, m._last_forward) for m in _flatten(layer) if id(m) in self._shared
                ]
        return out, states

    @property
    def num_recurrent(self) -> int:
        """How many recurrent layers (RNN, LSTM, GRU) the chain holds, nested Sequentials included:
        the length of ``forward_with_state``'s state list."""
        return sum(is_recurrent(layer) for layer in _flatten(self))

    def backward(self, dy: ArrayLike, *, need_dx: bool = True) -> FloatArray | None:
        """Backpropagates dy (the gradient of the last output) through every layer in reverse, adding
        into each layer's grads; returns the gradient of the first layer's input. A layer whose
        backward returns None (an Embedding: indices have no gradient) ends the chain: backward returns
        None and the layers before it are not run. ``need_dx=False`` returns None, and a first layer
        that is recurrent (or a Sequential) skips the product of that gradient."""
        need_dx = flag("need_dx", need_dx)
        d: Any = dy
        for i in reversed(range(len(self._layers))):
            for m, cache, last in self._uses[i] or ():  # this use's caches of the shared layers
                m._cache, m._last_forward = cache, last
            layer = self._layers[i]
            skip = i == 0 and not need_dx and (isinstance(layer, Sequential) or is_recurrent(layer))
            d = layer.backward(d, need_dx=False) if skip else layer.backward(d)
            if isinstance(d, tuple):  # a recurrent layer: (dx, dhx)
                d = d[0]
            if d is None:  # no gradient flows past this layer (an Embedding's indices)
                return None
        dx: FloatArray = d
        return dx if need_dx else None

    # -- parameters and weights -----------------------------------------------------------------

    def parameters(self) -> list[Parameter]:
        """Every layer's Parameters in order, named "<index>.<name>" (data and grad are the layers'
        own arrays)."""
        return list(self._params)

    @property
    def grads(self) -> dict[str, FloatArray]:
        return {p.name: p.grad for p in self._params}

    def zero_grad(self) -> None:
        for layer in self._layers:
            layer.zero_grad()

    def state_dict(self) -> dict[str, FloatArray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self._layers) for k, v in layer.state_dict().items()}

    def load_state_dict(self, state_dict: Mapping[str, object]) -> None:
        """Loads "<index>.<name>" keys into each layer; keys and shapes must match exactly. A rejected
        dict leaves every layer unchanged."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        done = []
        try:
            for i, layer in enumerate(self._layers):
                prefix = f"{i}."
                layer.load_state_dict({k[len(prefix) :]: state_dict[k] for k in own if k.startswith(prefix)})
                done.append(i)
        except BaseException:
            for i in done:  # put back the layers already loaded
                prefix = f"{i}."
                self._layers[i].load_state_dict(
                    {k[len(prefix) :]: v for k, v in own.items() if k.startswith(prefix)}
                )
            raise

    # -- modes ----------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> "Sequential":
        self.training = flag("mode", mode)
        for layer in self._layers:
            layer.train(self.training)
        return self

    def eval(self) -> "Sequential":
        return self.train(False)

    # -- repr -------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        if not self._layers:
            return "Sequential()"
        lines = []
        for i, layer in enumerate(self._layers):
            text = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({i}): {text}")
        return "Sequential(\n" + "\n".join(lines) + "\n)"
