"""Linear and Embedding: the non-recurrent model pieces, with the recurrent layers' conventions.

Like RNN/LSTM/GRU, each has ``__call__``, ``backward`` (which ADDS into ``grads``), ``parameters()``,
``grads``, ``zero_grad()``, ``state_dict()`` / ``load_state_dict()`` with PyTorch's names, and
``train()`` / ``eval()`` (eval keeps no cache; backward after an eval forward raises RuntimeError).

``Linear`` acts on the last axis of an input of any shape (..., in_features): the product for every
time step and batch element is ONE backend call (``matmul``, C++ on the native backend, running on
fastrnn's own thread team, or NumPy's) on the input reshaped to (-1, in_features), never a Python
loop over time. It uses the current backend (``fastrnn.set_backend`` / ``use_backend``). On the
native backend a training step never calls NumPy's multithreaded BLAS, whose spinning threads would
otherwise take the cores fastrnn's thread team waits for. ``Embedding`` is a NumPy row lookup.
"""

import numpy as np

from . import _backend
from ._checks import check_memory, flag, from_tensor, int_array, integer
from ._module import Module, Parameter


class _Layer(Module):
    """Linear and Embedding: the non-recurrent layers, whose inputs must have the layer's dtype."""

    def _float_input(self, name, a):
        """``a`` as an array of exactly the layer's dtype (a non-native byte order is converted)."""
        arr = np.asarray(from_tensor(a))
        if arr.dtype.kind == "f" and arr.dtype.newbyteorder("=") == self.dtype:
            arr = arr.astype(self.dtype, copy=False)
        if arr.dtype != self.dtype:
            raise TypeError(f"{name} must have the layer's dtype {self.dtype}, got {arr.dtype}")
        return np.require(arr, requirements="A")  # aligned, as the kernels read it (rarely a copy)

    def __repr__(self):
        s = self._extra_repr()
        if self.dtype != np.float32:
            s += f", dtype={self.dtype.name!r}"
        return f"{type(self).__name__}({s})"


class Linear(_Layer):
    """y = x W^T + b on the last axis of x (..., in_features) -> (..., out_features); see
    torch.nn.Linear. weight (out_features, in_features) and bias (out_features,) start from
    U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's default, drawn from
    ``numpy.random.default_rng(seed)`` (weight first, then bias)."""

    def __init__(self, in_features, out_features, bias=True, dtype="float32", seed=None):
        self.in_features = integer("in_features", in_features, 1)
        self.out_features = integer("out_features", out_features, 1)
        self.bias = flag("bias", bias)
        super().__init__(dtype, seed)
        k = 1.0 / np.sqrt(self.in_features)
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        for name, shape in shapes.items():
            data = self._rng.uniform(-k, k, size=shape).astype(self.dtype)
            self._params[name] = Parameter(name, data)

    def __call__(self, x):
        self._cache, self._last_forward = None, None
        x = self._float_input("x", x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., in_features={self.in_features}), got {x.shape}")
        x2 = x.reshape(-1, self.in_features)  # a view when x is contiguous: x itself is never written
        # One matrix product for every time step and batch element, added to the bias.
        y = np.empty((x2.shape[0], self.out_features), self.dtype)
        if self.bias:
            y[...] = self._params["bias"].data
        _backend.module().matmul(x2, self._params["weight"].data.T, y, self.bias)
        self._last_forward = "train" if self.training else "eval"
        self._cache = (x2, x.shape) if self.training else None
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def backward(self, dy):
        """Returns dx (the forward input's shape); adds dW and db into ``grads``."""
        x2, x_shape = self._saved()
        want = x_shape[:-1] + (self.out_features,)
        dy = self._float_input("dy", dy)
        if dy.shape != want:
            raise ValueError(f"dy must have the shape of the forward's output {want}, got {dy.shape}")
        dy2 = dy.reshape(-1, self.out_features)
        mod = _backend.module()
        mod.matmul(dy2.T, x2, self._params["weight"].grad, True)
        if self.bias:
            self._params["bias"].grad += dy2.sum(axis=0)
        dx = np.empty((dy2.shape[0], self.in_features), self.dtype)
        mod.matmul(dy2, self._params["weight"].data, dx, False)
        return dx.reshape(x_shape)

    def tie_weight(self, layer):
        """Makes this layer's weight ``layer``'s own (weight tying, like ``lin.weight = emb.weight`` in
        torch): ``layer`` is an Embedding(out_features, in_features) or a Linear(in_features,
        out_features) of this dtype. Both layers then read and update one data array and add into one
        grad array, so the gradient sums both uses; a Sequential or an optimizer lists the weight
        once. Returns self."""
        if not isinstance(layer, (Linear, Embedding)):
            raise TypeError(f"layer must be a fastrnn Linear or Embedding, got {type(layer).__name__}")
        weight = layer._params["weight"]
        if weight.data.shape != self._params["weight"].data.shape or layer.dtype != self.dtype:
            raise ValueError(
                f"layer's weight must have shape {self._params['weight'].data.shape} and dtype "
                f"{self.dtype} to be tied to this Linear, got {weight.data.shape} {layer.dtype}"
            )
        self._params["weight"] = weight
        return self

    def _extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias}"


class Embedding(_Layer):
    """Integer indices of any shape (...) -> rows of ``weight`` (..., embedding_dim); see
    torch.nn.Embedding. weight (num_embeddings, embedding_dim) starts from N(0, 1) like PyTorch, drawn
    from ``numpy.random.default_rng(seed)``. backward(dy) adds dy into the rows used (repeated indices
    accumulate) and returns None: indices have no gradient."""

    def __init__(self, num_embeddings, embedding_dim, dtype="float32", seed=None):
        self.num_embeddings = integer("num_embeddings", num_embeddings, 1)
        self.embedding_dim = integer("embedding_dim", embedding_dim, 1)
        super().__init__(dtype, seed)
        data = self._rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        self._params["weight"] = Parameter("weight", data)

    def _indices(self, indices):
        idx = int_array("indices", indices)
        # The output and the private copy of the indices, checked before the indices are scanned.
        rows = idx.size
        check_memory(
            rows * (self.embedding_dim * self.dtype.itemsize + np.dtype(np.intp).itemsize), "Embedding"
        )
        if idx.size:
            low, high = idx.min(), idx.max()
            if low < 0 or high >= self.num_embeddings:
                bad = low if low < 0 else high
                raise ValueError(
                    f"indices must be in [0, num_embeddings={self.num_embeddings}), got {int(bad)}"
                )
        return idx.astype(np.intp)  # a private copy: the caller may change its array afterwards

    def __call__(self, indices):
        self._cache, self._last_forward = None, None
        idx = self._indices(indices)
        y = self._params["weight"].data[idx]
        self._last_forward = "train" if self.training else "eval"
        self._cache = idx if self.training else None
        return y

    def backward(self, dy):
        """Adds dy's rows into the weight rows the forward used; returns None."""
        idx = self._saved()
        want = idx.shape + (self.embedding_dim,)
        dy = self._float_input("dy", dy)
        if dy.shape != want:
            raise ValueError(f"dy must have the shape of the forward's output {want}, got {dy.shape}")
        np.add.at(self._params["weight"].grad, idx.reshape(-1), dy.reshape(-1, self.embedding_dim))
        return None

    def _extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
