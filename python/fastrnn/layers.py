"""RNN, LSTM and GRU layers with PyTorch's interface: stacking, directions, batch_first, lengths,
projection, dropout and PyTorch-named weights; and two variants PyTorch lacks: the original
(reset-before) GRU and LSTM peepholes.

Each layer runs the functional core once per (layer, direction) over the whole sequence; nothing here
loops over time steps. Internally everything is time-major (T, B, features) and batched; the public
entry points convert batch_first and unbatched (T, I) inputs on the way in and out.
"""

from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _backend, _checks, _layer_docs
from . import functional as F
from ._cells import GATES, RNN_CELLS
from ._checks import flag, integer
from ._module import Module, Parameter
from ._typing import FloatArray, FloatDTypeLike

# A layer's state as it returns it (h, or (h, c) for an LSTM) and as it takes it (hx, dh_n).
_State = TypeVar("_State")
_StateIn = TypeVar("_StateIn")
# One direction's (w_ih, w_hh, b_ih, b_hh, w_hr); None where the layer has none
_Weights = tuple[FloatArray, FloatArray, "FloatArray | None", "FloatArray | None", "FloatArray | None"]
# One direction's forward: (y, h_n, c_n, cache)
_Run = tuple[FloatArray, FloatArray, "FloatArray | None", "F.Cache | None"]

# The weights of one layer and direction, in the functional core's argument order (then its
# gradients' order: weight_ph's gradient comes last).
_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
_GRAD_KINDS = _KINDS + ("weight_ph",)


# -------------------------------------------------------------------------------------------------
# The shared layer


class _RNNBase(Module, Generic[_State, _StateIn]):
    """Everything RNN, LSTM and GRU share; subclasses fix the cell and the hx/dh_n format."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int,
        dtype: FloatDTypeLike,
        backend: str | None,
        seed: int | None,
        checkpoint_every: int | str | None = None,
    ) -> None:
        self.cell = cell
        self.input_size = integer("input_size", input_size, 1)
        self.hidden_size = integer("hidden_size", hidden_size, 1)
        self.num_layers = integer("num_layers", num_layers, 1)
        self.bias = flag("bias", bias)
        self.batch_first = flag("batch_first", batch_first)
        self.dropout = _checks.dropout(dropout)
        self.bidirectional = flag("bidirectional", bidirectional)
        self.proj_size = integer("proj_size", proj_size, 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size ({self.hidden_size}), got {self.proj_size}"
            )
        super().__init__(dtype, seed)  # one generator: the initial weights, then the dropout masks
        self.backend = None if backend is None else _backend._check_name(backend)
        # Training forwards keep the state every k steps and backward recomputes (see F.forward).
        self.checkpoint_every = _checks.checkpoint_every(checkpoint_every)
        self._init_parameters()
        # After backward(): (num_layers * num_directions, T) norms of dLoss/dh_t (see Cache).
        self.dh_norms: NDArray[np.float64] | None = None

    # -- sizes and names ----------------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _out_size(self) -> int:
        """P: the size of h (and of each direction's output); the projection size if any."""
        return self.proj_size or self.hidden_size

    def _shapes(self, layer: int) -> dict[str, tuple[int, ...]]:
        """state_dict suffix -> shape for one direction of ``layer``, in PyTorch's order."""
        G, H, P = GATES[self.cell], self.hidden_size, self._out_size
        layer_in = self.input_size if layer == 0 else P * self.num_directions
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (G * H, layer_in), "weight_hh": (G * H, P)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        if self.proj_size:
            shapes["weight_hr"] = (P, H)
        if getattr(self, "peepholes", False):
            shapes["weight_ph"] = (3 * H,)  # i, f, o
        return shapes

    def _names(self, layer: int, direction: int) -> dict[str, str]:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return {kind: kind + suffix for kind in self._shapes(layer)}

    def _init_parameters(self) -> None:
        k = 1.0 / np.sqrt(self.hidden_size)
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                for kind, shape in self._shapes(layer).items():
                    name = self._names(layer, direction)[kind]
                    data = self._rng.uniform(-k, k, size=shape).astype(self.dtype)
                    self._params[name] = Parameter(name, data)

    def _weights(self, layer: int, direction: int) -> _Weights:
        """The functional core's (w_ih, w_hh, b_ih, b_hh, w_hr) for one layer and direction."""
        names = self._names(layer, direction)
        w = [self._params[names[kind]].data if kind in names else None for kind in _KINDS]
        assert w[0] is not None and w[1] is not None  # every layer has weight_ih and weight_hh
        return w[0], w[1], w[2], w[3], w[4]

    def _cell_options(self, layer: int, direction: int) -> dict[str, Any]:
        """The functional core's keyword arguments for this layer's cell variant, if any."""
        return {}

    # -- forward --------------------------------------------------------------------------------

    def __call__(
        self, x: ArrayLike, hx: _StateIn | None = None, lengths: ArrayLike | None = None
    ) -> tuple[FloatArray, _State]:
        """Runs the layer over the whole sequence ``x``; returns ``(y, h_n)`` (an LSTM: ``(y, (h_n,
        c_n))``).

        ``x`` is ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``) or ``(T, I)`` unbatched, of the
        layer's dtype. ``hx`` is the initial state, ``h0`` ``(D*num_layers, B, P)`` (an LSTM: the pair
        ``(h0, c0)``, ``c0`` ``(D*num_layers, B, H)``), or None for zeros. ``lengths`` (B,) gives each
        sequence's own length in [0, T]: outputs past it are 0, ``h_n`` (and ``c_n``) hold each
        sequence's state at its own last step, and the reverse direction starts there (PyTorch's
        ``pack_padded_sequence(..., enforce_sorted=False)`` semantics). In training mode the layer
        keeps what ``backward`` needs.
        """
        # A backward() always refers to the latest forward, even one that fails its checks.
        self._cache, self._last_forward = None, None
        xs, unbatched = self._input(x)
        T, B, _ = xs.shape
        if unbatched and lengths is not None:
            raise ValueError("lengths is for batched input (T, B, I); got unbatched input (T, I)")
        h0, c0 = self._initial_state(hx, B, unbatched)
        steps = F._lengths(lengths, T, B)

        caches: list[F.Cache | None] = []
        masks: list[FloatArray | None] = []
        h_n: list[FloatArray] = []
        c_n: list[FloatArray] = []
        layer_in = xs
        backend = self._resolved_backend()
        for layer in range(self.num_layers):

            def run(direction: int, layer: int = layer, layer_in: FloatArray = layer_in) -> _Run:
                i = layer * self.num_directions + direction
                return F.forward(
                    self.cell,
                    layer_in,
                    h0[i],
                    None if c0 is None else c0[i],
                    *self._weights(layer, direction),
                    lengths=steps,
                    reverse=bool(direction),
                    training=self.training,
                    checkpoint_every=self.checkpoint_every,
                    backend=backend,
                    **self._cell_options(layer, direction),
                )

            outs = []
            for y, h, c, cache in self._each_direction(run, backend):
                outs.append(y)
                h_n.append(h)
                if c is not None:  # an LSTM's
                    c_n.append(c)
                caches.append(cache)
            layer_in = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
            if layer < self.num_layers - 1 and self.training and self.dropout > 0:
                mask = self._dropout_mask(layer_in.shape)
                layer_in = layer_in * mask
                masks.append(mask)
            else:
                masks.append(None)

        self._last_forward = "train" if self.training else "eval"
        self._cache = (
            {"caches": caches, "masks": masks, "T": T, "B": B, "unbatched": unbatched}
            if self.training
            else None
        )
        y = self._output(layer_in, unbatched)
        h_last = self._state(np.stack(h_n), unbatched)
        c_last = self._state(np.stack(c_n), unbatched) if self.cell == "lstm" else None
        return y, self._pack_state(h_last, c_last)

    def _resolved_backend(self) -> str:
        """This layer's backend name, resolved on the calling thread (use_backend is per thread)."""
        return _backend.get_backend() if self.backend is None else self.backend

    def _each_direction(self, run: Callable[[int], Any], backend: str) -> list[Any]:
        """[run(0)] or [run(0), run(1)]; a bidirectional layer on the native backend with 2+ threads
        runs the two directions side by side, each on half the threads (no barrier between them),
        instead of one after the other on all of them."""
        threads = _backend.pair_threads(backend) if self.num_directions == 2 else 0
        if threads:
            return list(_backend.run_pair(lambda: run(0), lambda: run(1), threads))
        return [run(d) for d in range(self.num_directions)]

    def _dropout_mask(self, shape: tuple[int, ...]) -> FloatArray:
        """Inverted dropout: kept elements are scaled by 1/(1-p) so eval needs no rescaling."""
        p = self.dropout
        if p >= 1:
            return np.zeros(shape, self.dtype)
        keep = self._rng.random(shape) >= p
        return (keep / (1.0 - p)).astype(self.dtype)

    def _check_array(self, name: str, a: ArrayLike) -> FloatArray:
        arr = np.asarray(a)
        if arr.dtype.kind == "f" and arr.dtype.newbyteorder("=") == self.dtype:
            arr = arr.astype(self.dtype, copy=False)  # the other byte order: converted, as F.forward does
        if arr.dtype != self.dtype:
            raise TypeError(f"{name} must have the layer's dtype {self.dtype}, got {arr.dtype}")
        return arr

    def _input(self, x: ArrayLike) -> tuple[FloatArray, bool]:
        """x as time-major, batched (T, B, I); and whether it came unbatched."""
        arr = self._check_array("x", x)
        if arr.ndim == 2:
            arr, unbatched = arr[:, None, :], True
        elif arr.ndim == 3:
            arr, unbatched = (arr.transpose(1, 0, 2) if self.batch_first else arr), False
        else:
            raise ValueError(
                f"x must have 3 dimensions ({'B, T' if self.batch_first else 'T, B'}, "
                f"I) or 2 (T, I) for unbatched input, got shape {arr.shape}"
            )
        if arr.shape[2] != self.input_size:
            raise ValueError(
                f"x's last dimension must be input_size={self.input_size}, got shape {arr.shape}"
            )
        return arr, unbatched

    def _output(self, y: FloatArray, unbatched: bool) -> FloatArray:
        if unbatched:
            return y[:, 0]
        return np.ascontiguousarray(y.transpose(1, 0, 2)) if self.batch_first else y

    @staticmethod
    def _state(s: FloatArray, unbatched: bool) -> FloatArray:
        return s[:, 0] if unbatched else s

    def _state_in(self, name: str, s: ArrayLike, B: int, size: int, unbatched: bool) -> FloatArray:
        """One initial state (h0 or c0) as (D*L, B, size), checked."""
        LD = self.num_layers * self.num_directions
        arr = self._check_array(name, s)
        want = (LD, size) if unbatched else (LD, B, size)
        if arr.shape != want:
            raise ValueError(
                f"{name} must have shape {want} "
                f"(num_layers*num_directions{', B' * (not unbatched)}, {size}), "
                f"got {arr.shape}"
            )
        return arr[:, None, :] if unbatched else arr

    def _zeros_state(self, B: int, size: int) -> FloatArray:
        return np.zeros((self.num_layers * self.num_directions, B, size), self.dtype)

    # -- backward -------------------------------------------------------------------------------

    @overload
    def backward(
        self, dy: ArrayLike, dh_n: _StateIn | None = None, *, need_dx: Literal[True] = True
    ) -> tuple[FloatArray, _State]: ...
    @overload
    def backward(
        self, dy: ArrayLike, dh_n: _StateIn | None = None, *, need_dx: bool
    ) -> tuple[FloatArray | None, _State]: ...
    def backward(
        self, dy: ArrayLike, dh_n: _StateIn | None = None, *, need_dx: bool = True
    ) -> tuple[FloatArray | None, _State]:
        """BPTT through the last training-mode forward; returns ``(dx, dh0)`` (an LSTM: ``(dx, (dh0,
        dc0))``) and adds the weight gradients into ``grads``. ``need_dx=False``: dx is None and the
        first layer skips its product (for an input that needs no gradient; fastrnn.train does so).

        ``dy`` is the gradient of the loss w.r.t. the forward's ``y`` (same shape; values in the
        padding past ``lengths`` are ignored). ``dh_n`` is the gradient w.r.t. ``h_n`` (an LSTM: a pair
        ``(dh_n, dc_n)``, either of which may be None), or None for zeros. ``dx`` has the shape of the
        forward's ``x``, ``dh0`` (and ``dc0``) that of ``h_n`` (and ``c_n``).

        Also sets ``dh_norms``: (num_layers * num_directions, T), the norm of dLoss/dh_t of each layer
        and direction at each time step, the way to see gradients vanish or explode through time.
        Raises RuntimeError when there is no training-mode forward to differentiate.
        """
        cache = self._saved()
        need_dx = flag("need_dx", need_dx)
        T, B, unbatched = cache["T"], cache["B"], cache["unbatched"]
        D, P = self.num_directions, self._out_size
        d_out = self._grad_output(dy, T, B, unbatched)
        dh, dc = self._unpack_grad_state(dh_n, B, unbatched)

        # Filled below for every (layer, direction); dc0 holds Nones unless LSTM.
        dh0: list[Any] = [None] * len(cache["caches"])
        dc0: list[Any] = [None] * len(cache["caches"])
        for layer in reversed(range(self.num_layers)):
            if cache["masks"][layer] is not None:
                d_out = d_out * cache["masks"][layer]

            def run(direction: int, layer: int = layer, d_out: FloatArray = d_out) -> tuple[Any, ...]:
                i = layer * D + direction
                return F.backward(
                    cache["caches"][i],
                    d_out[:, :, direction * P : (direction + 1) * P],
                    None if dh is None else dh[i],
                    None if dc is None else dc[i],
                    need_dx=need_dx or layer > 0,
                )

            d_in: FloatArray | None = None
            results = self._each_direction(run, cache["caches"][layer * D].backend)
            for direction, (dx, dh0_i, dc0_i, *dweights) in enumerate(results):
                i = layer * D + direction
                dh0[i], dc0[i] = dh0_i, dc0_i
                self._add_grads(layer, direction, dweights)
                if dx is not None:
                    d_in = dx if d_in is None else d_in + dx
            if d_in is None:  # layer 0 without need_dx
                break
            d_out = d_in

        # Gradient diagnostics: ||dLoss/dh_t|| per (layer, direction) in h_n's order, per time step.
        self.dh_norms = np.stack([c.dh_norms for c in cache["caches"]]) if cache["caches"] else None
        dx = self._output(d_out, unbatched) if need_dx else None
        dh_first = self._state(np.stack(dh0), unbatched)
        dc_first = self._state(np.stack(dc0), unbatched) if self.cell == "lstm" else None
        return dx, self._pack_state(dh_first, dc_first)

    def _grad_output(self, dy: ArrayLike, T: int, B: int, unbatched: bool) -> FloatArray:
        """dy checked against the forward's y and made time-major, batched."""
        width = self.num_directions * self._out_size
        arr = self._check_array("dy", dy)
        want: tuple[int, ...]
        if unbatched:
            want = (T, width)
        else:
            want = (B, T, width) if self.batch_first else (T, B, width)
        if arr.shape != want:
            raise ValueError(f"dy must have the shape of the forward's output {want}, got {arr.shape}")
        if unbatched:
            return arr[:, None, :]
        return arr.transpose(1, 0, 2) if self.batch_first else arr

    # -- the state format, per subclass -----------------------------------------------------------

    def _initial_state(
        self, hx: _StateIn | None, B: int, unbatched: bool
    ) -> tuple[FloatArray, FloatArray | None]:
        raise NotImplementedError

    def _unpack_grad_state(
        self, dh_n: _StateIn | None, B: int, unbatched: bool
    ) -> tuple[FloatArray | None, FloatArray | None]:
        raise NotImplementedError

    def _pack_state(self, h: FloatArray, c: FloatArray | None) -> _State:
        raise NotImplementedError

    def _add_grads(self, layer: int, direction: int, dweights: list[FloatArray | None]) -> None:
        names = self._names(layer, direction)
        for kind, g in zip(_GRAD_KINDS, dweights):
            if kind in names and g is not None:
                self._params[names[kind]].grad += g

    # -- repr -------------------------------------------------------------------------------------

    def _extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        nonlinearity = getattr(self, "nonlinearity", "tanh")  # RNN only
        if nonlinearity != "tanh":
            s += f", nonlinearity={nonlinearity!r}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if not getattr(self, "reset_after", True):
            s += ", reset_after=False"
        if getattr(self, "peepholes", False):
            s += ", peepholes=True"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype.name!r}"
        if self.backend is not None:
            s += f", backend={self.backend!r}"
        if self.checkpoint_every is not None:
            s += f", checkpoint_every={self.checkpoint_every!r}"
        return s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._extra_repr()})"


def is_recurrent(layer: object) -> bool:
    """Whether ``layer`` is a recurrent layer (fastrnn.RNN, LSTM or GRU, subclasses included): one
    that runs over the time axis and carries a state, rather than acting on each step alone."""
    return isinstance(layer, _RNNBase)


# -------------------------------------------------------------------------------------------------
# The public layers: they differ in the cell and in how hx / dh_n are packed.


class _SingleState(_RNNBase[FloatArray, ArrayLike]):
    """RNN and GRU: hx, h_n, dh_n and dhx are single arrays."""

    def _initial_state(self, hx: ArrayLike | None, B: int, unbatched: bool) -> tuple[FloatArray, None]:
        P = self._out_size
        if hx is None:
            return self._zeros_state(B, P), None
        return self._state_in("hx", hx, B, P, unbatched), None

    def _unpack_grad_state(
        self, dh_n: ArrayLike | None, B: int, unbatched: bool
    ) -> tuple[FloatArray | None, None]:
        if dh_n is None:
            return None, None
        return self._state_in("dh_n", dh_n, B, self._out_size, unbatched), None

    def _pack_state(self, h: FloatArray, c: FloatArray | None) -> FloatArray:
        return h


class RNN(_SingleState):
    __doc__ = _layer_docs.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: FloatDTypeLike = "float32",
        backend: str | None = None,
        seed: int | None = None,
        checkpoint_every: int | str | None = None,
    ) -> None:
        if nonlinearity not in RNN_CELLS:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(
            RNN_CELLS[nonlinearity],
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            dtype,
            backend,
            seed,
            checkpoint_every,
        )


class GRU(_SingleState):
    __doc__ = _layer_docs.GRU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: FloatDTypeLike = "float32",
        backend: str | None = None,
        seed: int | None = None,
        reset_after: bool = True,
        checkpoint_every: int | str | None = None,
    ) -> None:
        self.reset_after = flag("reset_after", reset_after)
        super().__init__(
            "gru",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            dtype,
            backend,
            seed,
            checkpoint_every,
        )
        if checkpoint_every is not None and not self.reset_after:
            raise ValueError("checkpoint_every is not supported with reset_after=False")

    def _cell_options(self, layer: int, direction: int) -> dict[str, Any]:
        return {} if self.reset_after else {"reset_after": False}


_Pair = tuple[FloatArray, FloatArray]
_PairIn = tuple[ArrayLike | None, ArrayLike | None]


class LSTM(_RNNBase[_Pair, _PairIn]):
    __doc__ = _layer_docs.LSTM

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        dtype: FloatDTypeLike = "float32",
        backend: str | None = None,
        seed: int | None = None,
        peepholes: bool = False,
        checkpoint_every: int | str | None = None,
    ) -> None:
        self.peepholes = flag("peepholes", peepholes)
        super().__init__(
            "lstm",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            dtype,
            backend,
            seed,
            checkpoint_every,
        )
        if checkpoint_every is not None and self.peepholes:
            raise ValueError("checkpoint_every is not supported with peepholes=True")

    def _cell_options(self, layer: int, direction: int) -> dict[str, Any]:
        if not self.peepholes:
            return {}
        return {"w_ph": self._params[self._names(layer, direction)["weight_ph"]].data}

    def _pair(
        self, name: str, pair: object, B: int, unbatched: bool
    ) -> tuple[FloatArray | None, FloatArray | None]:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{name} must be a pair (h, c) for LSTM, got {type(pair).__name__}")
        h_in, c_in = pair
        h = None if h_in is None else self._state_in(f"{name}[0] (h)", h_in, B, self._out_size, unbatched)
        c = None if c_in is None else self._state_in(f"{name}[1] (c)", c_in, B, self.hidden_size, unbatched)
        return h, c

    def _initial_state(self, hx: _PairIn | None, B: int, unbatched: bool) -> tuple[FloatArray, FloatArray]:
        if hx is None:
            return self._zeros_state(B, self._out_size), self._zeros_state(B, self.hidden_size)
        h0, c0 = self._pair("hx", hx, B, unbatched)
        if h0 is None or c0 is None:
            raise TypeError("hx must be a pair of arrays (h0, c0) for LSTM, or None")
        return h0, c0

    def _unpack_grad_state(
        self, dh_n: _PairIn | None, B: int, unbatched: bool
    ) -> tuple[FloatArray | None, FloatArray | None]:
        if dh_n is None:
            return None, None
        return self._pair("dh_n", dh_n, B, unbatched)

    def _pack_state(self, h: FloatArray, c: FloatArray | None) -> _Pair:
        assert c is not None  # an LSTM always has a cell state
        return h, c
