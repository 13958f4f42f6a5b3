"""The classic Hopfield network (J. J. Hopfield, 1982): the first recurrent network, an associative
memory of bipolar (+1/-1) patterns.

Weights. ``store(patterns)`` applies the Hebbian rule W += sum_p p p^T with a zero diagonal. W is
kept as exact integer counts (int32): W_ij = sum_p p_i p_j, not scaled by 1/N, so both backends
compute with exact integers and agree bit for bit. The classic normalised network is W / N
(``weights / num_units``); it has the same fixed points and dynamics, and its energy is
``energy(s) / num_units``.

Dynamics. The local field of unit i is h_i = sum_j W_ij s_j; an update sets s_i to +1 if h_i > 0, to
-1 if h_i < 0 and **keeps s_i when h_i == 0** (the tie rule). ``recall`` repeats sweeps over all
units:

- ``mode="async"``: one unit at a time, in a fresh random order for every sweep (each unit sees the
  others' latest values). Sweep k uses the k-th permutation ``rng.permutation(N)`` drawn from
  ``numpy.random.default_rng(seed)`` (or from ``seed`` itself when it is a Generator); the same
  permutation serves every state of the batch, so a state's result does not depend on the rest of the
  batch. Each flip lowers the energy E = -1/2 s^T W s by 2|h_i|, so async recall always converges.
- ``mode="sync"``: every unit at once from the previous state (Little dynamics). It may end in a
  2-cycle, which never converges: recall then stops after ``max_iters`` sweeps and reports it.

A state stops after the first sweep that changes nothing (converged: a fixed point, where no field
disagrees with its unit) or after ``max_iters`` sweeps. ``recall`` returns a ``RecallResult``
(states, converged, iterations); ``iterations`` counts the sweeps run, the final unchanged sweep
included (a stored pattern recalls with iterations == 1).

Backends: ``native`` runs ``fastrnn._native.hopfield_recall`` (C++, incremental integer fields, GIL
released); ``numpy`` runs ``reference_recall`` below, the plain specification, which recomputes every
field from W. Both draw the same async orders (in Python, here) and return identical results.
``energy`` and ``store`` are NumPy for both backends (exact integer results).

Orders are drawn only for sweeps that run (in chunks of sweeps, which never changes a result), so a
Generator passed as ``seed`` advances by an amount that depends on the states. Recall never modifies
the network and may run from several threads at once; store() and load_state_dict() must not run
while another thread recalls from the same network.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _backend
from ._checks import check_memory, from_tensor, generator, integer, state_array
from ._typing import SeedLike

# (weights, states, mode, max_sweeps, order) -> (states, converged, iterations): either backend
_Kernel = Callable[
    [NDArray[np.int32], NDArray[np.int8], str, int, "NDArray[np.int32] | None"],
    tuple[NDArray[np.int8], NDArray[np.bool_], NDArray[np.int64]],
]

MODES = ("async", "sync")
_INT32_MAX = 2**31 - 1
_EXACT_FLOAT64 = 2**53  # float64 sums of integers stay exact below this magnitude
_EXACT_FLOAT32 = 2**24
_ORDER_CHUNK = 2**22  # async orders are drawn at most this many units at a time (16 MiB of int32)


class RecallResult(NamedTuple):
    """What ``Hopfield.recall`` returns; unpacks as ``states, converged, iterations = ...``.

    states:     the recalled states, with the input's shape and dtype.
    converged:  whether each state reached a fixed point within max_iters sweeps: a (B,) bool array
                for a (B, N) input, a Python bool for an (N,) input.
    iterations: the sweeps run for each state, the final unchanged one included (<= max_iters): a (B,)
                int64 array, or a Python int for an (N,) input.
    """

    states: NDArray[Any]
    converged: bool | NDArray[np.bool_]
    iterations: int | NDArray[np.int64]


# -------------------------------------------------------------------------------------------------
# Argument checks


def _bipolar(name: str, a: ArrayLike, num_units: int) -> tuple[NDArray[np.int8], np.dtype[Any]]:
    """``a`` ((N,) or (B, N), signed integers or floats holding only +1/-1) as a new C-contiguous int8
    array, and the input's dtype (native byte order) to give results back in."""
    arr = np.asarray(from_tensor(a))
    if arr.dtype.kind not in "if":
        raise TypeError(
            f"{name} must be an array of signed integers or floats holding +1/-1, got dtype {arr.dtype}"
        )
    if arr.ndim not in (1, 2) or arr.shape[-1] != num_units:
        raise ValueError(f"{name} must have shape (N={num_units},) or (B, N={num_units}), got {arr.shape}")
    # The int8 copy and two boolean masks (a stride-0 view may be far larger than its memory).
    check_memory(3 * arr.size, name)
    bad = (arr != 1) & (arr != -1)
    if bad.any():
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))
        raise ValueError(
            f"{name} must hold only +1 and -1 (bipolar values), got "
            f"{arr[where].item()!r} at index {where if arr.ndim > 1 else where[0]}"
        )
    return arr.astype(np.int8, order="C"), arr.dtype.newbyteorder("=")


def _mode(mode: object) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a string, one of {MODES}, got {type(mode).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _max_iters(max_iters: object) -> int:
    n = integer("max_iters", max_iters, 1)
    if n >= 2**63:
        raise ValueError(f"max_iters must be < 2**63, got {n}")
    return n


# -------------------------------------------------------------------------------------------------
# Exact integer products


def _fields(s: NDArray[np.int8], weights: NDArray[np.int32], max_abs: int) -> NDArray[np.int64]:
    """h = s W^T for states s (B, N) as exact int64: through float64 BLAS when every partial sum
    stays below 2**53 (it does for any realistic network), else with NumPy's integer product."""
    n = weights.shape[0]
    h: NDArray[np.int64]
    if max_abs * n < _EXACT_FLOAT64:
        h = np.matmul(s.astype(np.float64), weights.T.astype(np.float64)).astype(np.int64)
    else:
        h = np.matmul(s.astype(np.int64), weights.T.astype(np.int64))
    return h


# -------------------------------------------------------------------------------------------------
# The numpy backend: the specification of fastrnn._native.hopfield_recall


def reference_recall(
    weights: NDArray[np.int32],
    states: NDArray[np.int8],
    mode: str,
    max_sweeps: int,
    order: NDArray[np.int32] | None,
) -> tuple[NDArray[np.int8], NDArray[np.bool_], NDArray[np.int64]]:
    """The NumPy reference of ``fastrnn._native.hopfield_recall``: same arguments and results.

    weights (N, N) int32, symmetric with a zero diagonal; states (B, N) int8 of +1/-1 (not modified);
    mode "async" with order (max_sweeps, N) int32 (row k: the update order of sweep k) or "sync" with
    order None. Returns (states (B, N) int8, converged (B,) bool, iterations (B,) int64).

    Written plainly: every field is recomputed from W and the current state (float64 products are
    exact here: |h| <= max|W| * N < 2**53; larger networks use int64 products).
    """
    n = weights.shape[0]
    max_abs = int(np.abs(weights.astype(np.int64)).max()) if weights.size else 0
    exact_float = max_abs * n < _EXACT_FLOAT64
    w = weights.astype(np.float64 if exact_float else np.int64)
    s = states.astype(w.dtype)  # +1.0/-1.0 (or int64): exact, and no conversion per product
    B = s.shape[0]
    converged = np.zeros(B, dtype=bool)
    iterations = np.zeros(B, dtype=np.int64)
    active = np.arange(B)  # the states still running
    for k in range(max_sweeps):
        if active.size == 0:
            break
        x = s[active]  # a copy
        start = x.copy()
        if mode == "sync":
            h = x @ w.T  # every field from the sweep's starting state
            x = np.where(h > 0, 1, np.where(h < 0, -1, x)).astype(w.dtype)
        else:
            assert order is not None  # async always has an order
            for i in order[k]:
                h_i = x @ w[i]  # unit i's field from the latest state
                x[:, i] = np.where(h_i > 0, 1, np.where(h_i < 0, -1, x[:, i]))
        s[active] = x
        iterations[active] = k + 1
        unchanged = np.all(x == start, axis=1)
        converged[active[unchanged]] = True
        active = active[~unchanged]
    return s.astype(np.int8), converged, iterations


def _recall_kernel(backend: str | None) -> _Kernel:
    name = _backend.get_backend() if backend is None else _backend._check_name(backend)
    return _backend.native_module().hopfield_recall if name == "native" else reference_recall


# -------------------------------------------------------------------------------------------------
# The network


class Hopfield:
    """A Hopfield network of ``num_units`` bipolar units; see the module docstring for the rules.

    ``patterns`` (optional, (P, N) or (N,)) are stored at once, as by ``store``. ``backend``
    ("native", "numpy" or None for the current default) selects the recall kernel, as for the other
    layers.

    Attributes and methods:
      num_units, num_patterns, weights (read-only int32 view of W, exact Hebbian counts), backend
      store(patterns) -> self            Hebbian rule, adding to W
      energy(states) -> int or (B,) int64   E = -1/2 s^T W s in W's units (an exact integer)
      recall(states, mode="async", max_iters=100, seed=None) -> RecallResult
      state_dict() / load_state_dict(d)  {"weight": (N, N) int32, "num_patterns": int64 scalar}
    """

    def __init__(
        self, num_units: int, patterns: ArrayLike | None = None, *, backend: str | None = None
    ) -> None:
        n = integer("num_units", num_units, 1)
        self.backend = None if backend is None else _backend._check_name(backend)
        check_memory(4 * n * n, "Hopfield weights")
        self._n = n
        self._w = np.zeros((n, n), dtype=np.int32)
        self._num_patterns = 0
        self._max_abs = 0  # an upper bound of max |W_ij|: for overflow and exactness decisions
        if patterns is not None:
            self.store(patterns)

    # -- weights ----------------------------------------------------------------------------------

    @property
    def num_units(self) -> int:
        return self._n

    @property
    def num_patterns(self) -> int:
        """How many patterns were stored (the sum over store() calls, or as loaded)."""
        return self._num_patterns

    @property
    def weights(self) -> NDArray[np.int32]:
        """W (N, N) int32 as a read-only view: W_ij = sum_p p_i p_j for i != j, W_ii = 0. Divide by
        num_units for the classic normalised weights. The view follows later store() calls."""
        view: NDArray[np.int32] = self._w.view()
        view.flags.writeable = False
        return view

    def store(self, patterns: ArrayLike) -> "Hopfield":
        """Adds (P, N) or (N,) bipolar patterns to W with the Hebbian rule; returns self.

        Raises ValueError if W would leave int32 (over 2**31 - 1 patterns in all)."""
        p, _ = _bipolar("patterns", patterns, self._n)
        p = p.reshape(-1, self._n)
        count = p.shape[0]
        if count == 0:
            return self
        if self._max_abs + count > _INT32_MAX or self._num_patterns + count > _INT32_MAX:
            raise ValueError(
                f"patterns: storing {count} more patterns would overflow the int32 "
                f"weights (at most {_INT32_MAX} in all)"
            )
        n = self._n
        check_memory(4 * n * n + 4 * p.size, "store")
        pf = p.astype(np.float32)
        w = self._w
        # float32 products are exact here: every partial sum is an integer of magnitude <= 2**24.
        for start in range(0, count, _EXACT_FLOAT32):
            chunk = pf[start : start + _EXACT_FLOAT32]
            np.add(w, chunk.T @ chunk, out=w, casting="unsafe")
        np.fill_diagonal(w, 0)
        self._num_patterns += count
        self._max_abs += count
        return self

    # -- energy and recall ------------------------------------------------------------------------

    def energy(self, states: ArrayLike) -> int | NDArray[np.int64]:
        """E = -1/2 s^T W s (W's integer units: divide by num_units for the normalised network).

        states (N,) gives a Python int; (B, N) gives a (B,) int64 array. Exact for both backends."""
        s, _ = _bipolar("states", states, self._n)
        single = s.ndim == 1
        s = s.reshape(-1, self._n)
        h = _fields(s, self._w, self._max_abs)
        # s^T W s = 2 sum_{i<j} W_ij s_i s_j (W symmetric, zero diagonal): always even.
        e = -((h * s).sum(axis=1, dtype=np.int64) // 2)
        return int(e[0]) if single else e

    def recall(
        self, states: ArrayLike, mode: str = "async", max_iters: int = 100, seed: SeedLike = None
    ) -> RecallResult:
        """Runs the network from ``states`` ((N,) or (B, N), +1/-1 as signed ints or floats) until
        each state reaches a fixed point or ``max_iters`` sweeps have run. Returns a RecallResult
        (states, converged, iterations); states keeps the input's shape and dtype. The input is not
        modified.

        mode: "async" (one unit at a time, a random order per sweep from ``seed``: None, an int >= 0
        or a numpy Generator) or "sync" (all units at once; ``seed`` is unused)."""
        s, dtype = _bipolar("states", states, self._n)
        mode = _mode(mode)
        max_iters = _max_iters(max_iters)
        rng = generator(seed)
        kernel = _recall_kernel(self.backend)
        single = s.ndim == 1
        s = s.reshape(-1, self._n)
        if mode == "sync":
            out, converged, iterations = kernel(self._w, s, "sync", max_iters, None)
        else:
            out, converged, iterations = self._recall_async(kernel, s, max_iters, rng)
        out = out.astype(dtype).reshape((self._n,) if single else (-1, self._n))
        if single:
            return RecallResult(out, bool(converged[0]), int(iterations[0]))
        return RecallResult(out, converged, iterations)

    def _recall_async(
        self, kernel: _Kernel, s: NDArray[np.int8], max_iters: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.int8], NDArray[np.bool_], NDArray[np.int64]]:
        """Async recall in chunks of sweeps (4, 8, 16, ... at most _ORDER_CHUNK units of orders), so
        that orders are drawn only for sweeps that run. Sweep k's order is the k-th permutation drawn
        whatever the chunks, so the chunking never changes a result."""
        n = self._n
        B = s.shape[0]
        s = s.copy()
        converged = np.zeros(B, dtype=bool)
        iterations = np.zeros(B, dtype=np.int64)
        active = np.arange(B)
        done, chunk = 0, 4
        cap = max(1, _ORDER_CHUNK // n)
        while active.size and done < max_iters:
            k = min(chunk, cap, max_iters - done)
            order = np.stack([rng.permutation(n) for _ in range(k)]).astype(np.int32)
            out, conv, iters = kernel(self._w, s[active], "async", k, order)
            s[active] = out
            iterations[active] += iters
            converged[active] = conv
            active = active[~conv]
            done += k
            chunk *= 2
        return s, converged, iterations

    # -- state_dict -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, NDArray[Any]]:
        """{"weight": copy of W (N, N) int32, "num_patterns": int64 0-d array}."""
        return {"weight": self._w.copy(), "num_patterns": np.array(self._num_patterns, np.int64)}

    def load_state_dict(self, state_dict: Mapping[str, object]) -> None:
        """Loads W and num_patterns (NumPy arrays or torch tensors). weight must be (N, N), integral
        values in int32's range, symmetric with a zero diagonal; num_patterns an integer in
        [0, 2**31 - 1]. A rejected dict leaves the network unchanged."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        keys = ("weight", "num_patterns")
        missing = [k for k in keys if k not in state_dict]
        unexpected = [k for k in state_dict if k not in keys]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        w = state_array("weight", state_dict["weight"])
        n = self._n
        if w.shape != (n, n):
            raise ValueError(f"load_state_dict: weight must have shape ({n}, {n}), got {w.shape}")
        if w.dtype.kind == "f":
            if not np.all(np.isfinite(w)) or np.any(w != np.round(w)):
                raise ValueError("load_state_dict: weight must hold integers (exact Hebbian counts)")
        if w.size and (w.min() < -_INT32_MAX or w.max() > _INT32_MAX):
            raise ValueError(f"load_state_dict: weight values must lie in [-{_INT32_MAX}, {_INT32_MAX}]")
        w = w.astype(np.int32)
        if np.any(np.diagonal(w) != 0):
            raise ValueError("load_state_dict: weight must have a zero diagonal")
        if not np.array_equal(w, w.T):
            raise ValueError("load_state_dict: weight must be symmetric")
        p = state_array("num_patterns", state_dict["num_patterns"])
        if p.shape != () or p.dtype.kind not in "iu":
            raise ValueError(
                f"load_state_dict: num_patterns must be an integer scalar, got dtype "
                f"{p.dtype} shape {p.shape}"
            )
        count = int(p)
        if not 0 <= count <= _INT32_MAX:
            raise ValueError(f"load_state_dict: num_patterns must be in [0, {_INT32_MAX}], got {count}")
        self._w[...] = w  # in place: views from .weights follow
        self._num_patterns = count
        self._max_abs = int(np.abs(w.astype(np.int64)).max()) if w.size else 0

    def __repr__(self) -> str:
        s = f"Hopfield(num_units={self._n}, num_patterns={self._num_patterns}"
        if self.backend is not None:
            s += f", backend={self.backend!r}"
        return s + ")"
