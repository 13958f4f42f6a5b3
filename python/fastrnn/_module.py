"""The conventions every fastrnn layer follows: Parameter and the Module base."""

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from . import _checks
from ._typing import FloatArray, FloatDTypeLike

_M = TypeVar("_M", bound="Module")


class Parameter:
    """One weight of a layer: ``name`` (its state_dict key), ``data`` and ``grad`` (NumPy arrays of the
    same shape). Both arrays are updated in place, so optimizers may hold on to a Parameter."""

    __slots__ = ("name", "data", "grad")

    name: str
    data: FloatArray
    grad: FloatArray

    def __init__(self, name: str, data: FloatArray, grad: FloatArray | None = None) -> None:
        self.name = name
        self.data = data
        self.grad = np.zeros_like(data) if grad is None else grad

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """What every layer shares (RNN/LSTM/GRU, Linear, Embedding): Parameters in state_dict order,
    grads, zero_grad, state_dict/load_state_dict with PyTorch's names, train/eval, and the errors
    of a backward() that has no cache."""

    def __init__(self, dtype: FloatDTypeLike, seed: int | None) -> None:
        self.dtype = _checks.float_dtype(dtype)
        self.seed = _checks.seed(seed)
        self.training = True
        self._rng = np.random.default_rng(self.seed)
        self._params: dict[str, Parameter] = {}
        self._cache: Any = None  # what the layer's backward needs (each layer has its own kind)
        # None, "train" or "eval": for clear backward() errors
        self._last_forward: Literal["train", "eval"] | None = None

    # -- parameters and weights ---------------------------------------------------------------

    def parameters(self) -> list[Parameter]:
        """The Parameters, in state_dict order."""
        return list(self._params.values())

    @property
    def grads(self) -> dict[str, FloatArray]:
        """{name: gradient} with the state_dict's keys; backward() adds into these arrays."""
        return {name: p.grad for name, p in self._params.items()}

    def zero_grad(self) -> None:
        for p in self._params.values():
            p.grad[...] = 0

    def state_dict(self) -> dict[str, FloatArray]:
        """{PyTorch name: copy of the weight}."""
        return {name: p.data.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, object]) -> None:
        """Copies weights in from NumPy arrays or torch tensors; keys and shapes must match exactly.
        A rejected dict leaves the layer unchanged."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._params]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        arrays: dict[str, NDArray[Any]] = {}
        for name, p in self._params.items():
            arr = _checks.state_array(name, state_dict[name])
            if arr.shape != p.data.shape:
                raise ValueError(f"load_state_dict: {name} must have shape {p.data.shape}, got {arr.shape}")
            arrays[name] = arr
        for name, arr in arrays.items():
            self._params[name].data[...] = arr

    # -- modes ----------------------------------------------------------------------------------

    def train(self: _M, mode: bool = True) -> _M:
        self.training = _checks.flag("mode", mode)
        return self

    def eval(self: _M) -> _M:
        return self.train(False)

    def _saved(self) -> Any:
        """The cache of the last training-mode forward, or a RuntimeError saying why there is none."""
        if self._cache is None:
            if self._last_forward == "eval":
                raise RuntimeError(
                    "backward() after a forward in eval mode: eval keeps no cache; "
                    "call train() and run forward again"
                )
            raise RuntimeError("backward() called before any training-mode forward")
        return self._cache
