"""The conventions every fastrnn layer follows: Parameter, argument checks, and the Module base."""

import numbers

import numpy as np

_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


class Parameter:
    """One weight of a layer: ``name`` (its state_dict key), ``data`` and ``grad`` (NumPy arrays of the
    same shape). Both arrays are updated in place, so optimizers may hold on to a Parameter."""

    __slots__ = ("name", "data", "grad")

    def __init__(self, name, data, grad=None):
        self.name = name
        self.data = data
        self.grad = np.zeros_like(data) if grad is None else grad

    def __repr__(self):
        return f"Parameter(name={self.name!r}, shape={self.data.shape}, dtype={self.data.dtype})"


def _int(name, v, low):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return int(v)


def _bool(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


def _dropout(p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout must be a number, got {type(p).__name__}")
    if not 0 <= p <= 1:
        raise ValueError(f"dropout must be a probability in [0, 1], got {p}")
    return float(p)


def _dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt.name not in _DTYPES:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dt.name!r}")
    return dt


def _seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return seed


def _generator(seed):
    """``seed`` (None, an int >= 0, or a numpy Generator, used as it is) as a numpy Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be None, an int or a numpy.random.Generator, got "
                        f"{type(seed).__name__}")
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(seed)


def _to_numpy(name, value):
    """A state_dict value as a NumPy array: torch tensors are detached and moved to the CPU."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"load_state_dict: {name} must hold real numbers, got dtype {arr.dtype}")
    return arr


class Module:
    """What every layer shares (RNN/LSTM/GRU, Linear, Embedding): Parameters in state_dict order,
    grads, zero_grad, state_dict/load_state_dict with PyTorch's names, train/eval, and the errors
    of a backward() that has no cache."""

    def __init__(self, dtype, seed):
        self.dtype = _dtype(dtype)
        self.seed = _seed(seed)
        self.training = True
        self._rng = np.random.default_rng(self.seed)
        self._params = {}
        self._cache = None
        self._last_forward = None  # None, "train" or "eval": for clear backward() errors

    # -- parameters and weights ---------------------------------------------------------------

    def parameters(self):
        """The Parameters, in state_dict order."""
        return list(self._params.values())

    @property
    def grads(self):
        """{name: gradient} with the state_dict's keys; backward() adds into these arrays."""
        return {name: p.grad for name, p in self._params.items()}

    def zero_grad(self):
        for p in self._params.values():
            p.grad[...] = 0

    def state_dict(self):
        """{PyTorch name: copy of the weight}."""
        return {name: p.data.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict):
        """Copies weights in from NumPy arrays or torch tensors; keys and shapes must match exactly.
        A rejected dict leaves the layer unchanged."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._params]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {}
        for name, p in self._params.items():
            arr = _to_numpy(name, state_dict[name])
            if arr.shape != p.data.shape:
                raise ValueError(f"load_state_dict: {name} must have shape {p.data.shape}, "
                                 f"got {arr.shape}")
            arrays[name] = arr
        for name, arr in arrays.items():
            self._params[name].data[...] = arr

    # -- modes ----------------------------------------------------------------------------------

    def train(self, mode=True):
        self.training = _bool("mode", mode)
        return self

    def eval(self):
        return self.train(False)

    def _saved(self):
        """The cache of the last training-mode forward, or a RuntimeError saying why there is none."""
        if self._cache is None:
            if self._last_forward == "eval":
                raise RuntimeError("backward() after a forward in eval mode: eval keeps no cache; "
                                   "call train() and run forward again")
            raise RuntimeError("backward() called before any training-mode forward")
        return self._cache
