"""forward()/backward() for one layer and one direction: validate, then dispatch to a backend.

Shapes (time-major, row-major): x (T, B, I); w_ih (G*H, I); w_hh (G*H, P); b_ih, b_hh (G*H,);
w_hr (P, H) for an LSTM with projection (else P == H); h0 (B, P); c0 (B, H) for ``lstm`` only;
y (T, B, P). G is 1 for rnn_tanh/rnn_relu, 4 for lstm (gates i, f, g, o), 3 for gru (r, z, n).
Variants: ``w_ph`` (3*H,) gives an LSTM peepholes (i, f, o); ``reset_after=False`` is the original
GRU of Cho et al. (ONNX linear_before_reset=0, Keras reset_after=False); see _reference.py.
"""

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _backend
from ._cells import CELLS, GATES
from ._checks import check_memory, flag, float_array, shaped
from ._checks import checkpoint_every as _checkpoint_every
from ._typing import FloatArray


class Cache:
    """What backward() needs from one training-mode forward(). Opaque; safe to reuse.

    After backward(), ``dh_norms`` (T,) float64 holds the norm of dLoss/dh_t at every time step t
    (over the sequences running at t): how gradients vanish or explode through time.
    """

    __slots__ = (
        "backend",
        "cell",
        "dtype",
        "T",
        "B",
        "I",
        "H",
        "P",
        "every",
        "_saved",
        "dh_norms",
        "__weakref__",
    )

    def __init__(
        self,
        backend: str,
        cell: str,
        dtype: np.dtype[Any],
        T: int,
        B: int,
        I: int,
        H: int,
        P: int,
        saved: Any,
        every: int = 0,
    ) -> None:
        self.backend, self.cell, self.dtype = backend, cell, dtype
        self.T, self.B, self.I, self.H, self.P = T, B, I, H, P
        self.every = every  # steps per checkpoint segment; 0: every step's values were kept
        self._saved = saved  # the backend's own cache (or an _EmptyBatch)
        self.dh_norms: NDArray[np.float64] | None = None

    def __repr__(self) -> str:
        return (
            f"<fastrnn Cache {self.cell} {self.dtype} T={self.T} B={self.B} I={self.I} "
            f"H={self.H} P={self.P} backend={self.backend}>"
        )


class _EmptyBatch(NamedTuple):
    """The cache of a forward over B = 0 sequences: which optional parameters it had."""

    b_ih: bool
    b_hh: bool
    w_hr: bool
    w_ph: bool


# Arguments are checked (dtype, shape) as they are, and made C-contiguous only once all checks have
# passed: a wrong-shaped broadcast view is a ValueError, not a huge copy.


def _contiguous(*arrays: FloatArray | None) -> tuple[Any, ...]:
    return tuple(None if a is None else np.ascontiguousarray(a) for a in arrays)


def _optional(
    name: str, a: ArrayLike | None, shape: tuple[int, ...], names: tuple[str, ...], dtype: np.dtype[Any]
) -> FloatArray | None:
    return None if a is None else shaped(name, a, shape, names, dtype)


def _lengths(lengths: ArrayLike | None, T: int, B: int) -> NDArray[np.int64] | None:
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.size == 0 and arr.dtype.kind == "f" and not hasattr(lengths, "dtype"):
        # [] (NumPy makes it float64) is an empty integer list; an empty float array is still refused
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape (B={B},), got {arr.shape}")
    if B and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"lengths must lie in [0, T={T}], got values in [{arr.min()}, {arr.max()}]")
    return np.ascontiguousarray(arr, dtype=np.int64)


def steps_per_checkpoint(checkpoint_every: object, T: int) -> int:
    """The segment length k a checkpoint_every setting gives at T steps (at most T); 0 for None."""
    every = _checkpoint_every(checkpoint_every)
    if every is None:
        return 0
    if every == "sqrt":
        return math.isqrt(T - 1) + 1 if T > 0 else 1  # ceil(sqrt(T))
    assert isinstance(every, int)  # None, "sqrt" or an int (checked)
    return min(every, max(T, 1))  # k >= T: one segment


# Elements a call may hold at once (see README, "Guarantees"), for check_memory. With checkpoints
# every k steps the per-row values live only for one segment's rows, k*B, plus one state per segment.


def _forward_elements(T: int, B: int, I: int, H: int, P: int, G: int, training: bool, every: int) -> int:
    if not training:
        return T * B * (I + P + G * H) + B * (P + H)
    if every == 0:
        return T * B * (I + 2 * P + 2 * G * H + 3 * H) + B * (P + H)
    rows = min(every, T) * B
    return T * B * P + rows * (I + P + 2 * G * H + 3 * H) + (T // every + 2) * B * (P + H)


def _backward_elements(T: int, B: int, I: int, H: int, P: int, G: int, every: int) -> int:
    if every == 0:
        return T * B * (I + P + 2 * G * H) + B * (P + H)
    rows = min(every, T) * B
    return T * B * I + rows * (I + 2 * P + 4 * G * H + 3 * H) + (T // every + 2) * B * (P + H)


def forward(
    cell: str,
    x: ArrayLike,
    h0: ArrayLike | None,
    c0: ArrayLike | None,
    w_ih: ArrayLike,
    w_hh: ArrayLike,
    b_ih: ArrayLike | None,
    b_hh: ArrayLike | None,
    w_hr: ArrayLike | None = None,
    lengths: ArrayLike | None = None,
    reverse: bool = False,
    training: bool = True,
    checkpoint_every: int | str | None = None,
    *,
    backend: str | None = None,
    w_ph: ArrayLike | None = None,
    reset_after: bool = True,
) -> tuple[FloatArray, FloatArray, FloatArray | None, Cache | None]:
    """Runs one recurrent layer in one direction over a whole sequence.

    Returns ``(y, h_n, c_n, cache)``: y (T, B, P), h_n (B, P), c_n (B, H) for lstm (else None), and
    the cache for backward() (None when ``training`` is False). ``h0``/``c0`` may be None (zeros).
    ``lengths`` (B,) gives each sequence's length (0 <= length <= T): steps past it output zeros and
    keep the state, and ``reverse`` starts each sequence at its own last step.
    ``checkpoint_every`` (training only): None keeps every step's values for backward; an int k
    keeps only the state every k steps (and y) and backward recomputes each k-step segment from it,
    giving bitwise the same gradients for about sqrt-of-T memory at k ~ sqrt(T); ``"sqrt"`` picks
    k = ceil(sqrt(T)). ``backend`` ('native' or 'numpy') overrides the current backend for this call.
    ``w_ph`` (3*H,), lstm only: peephole weights (i, f, o); i and f see ``p * c_{t-1}``, o sees
    ``p_o * c_t``. ``reset_after``, gru only: True (PyTorch's GRU) applies r to W_hn h + b_hn, False
    (the original GRU) computes W_hn (r * h) + b_hn; both have the same parameters.
    """
    if not isinstance(cell, str) or cell not in GATES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    G = GATES[cell]
    x = float_array("x", x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (T, B, I) (3 dimensions), got shape {x.shape}")
    dtype = x.dtype
    T, B, I = x.shape
    w_ih = float_array("w_ih", w_ih, dtype)
    if w_ih.ndim != 2 or w_ih.shape[0] % G or w_ih.shape[0] == 0 or w_ih.shape[1] != I:
        raise ValueError(
            f"w_ih must have shape ({G}*H, I={I}) with H >= 1 for cell {cell!r}, got {w_ih.shape}"
        )
    H = w_ih.shape[0] // G
    if w_hr is not None:
        if cell != "lstm":
            raise ValueError(f"w_hr (projection) is only for cell 'lstm', got cell {cell!r}")
        w_hr = float_array("w_hr", w_hr, dtype)
        if w_hr.ndim != 2 or w_hr.shape[1] != H or w_hr.shape[0] == 0:
            raise ValueError(f"w_hr must have shape (P, H={H}) with P >= 1, got {w_hr.shape}")
    P = H if w_hr is None else w_hr.shape[0]
    if w_ph is not None:
        if cell != "lstm":
            raise ValueError(f"w_ph (peepholes) is only for cell 'lstm', got cell {cell!r}")
        w_ph = shaped("w_ph", w_ph, (3 * H,), ("3*H",), dtype)
    reset_after = flag("reset_after", reset_after)
    if not reset_after and cell != "gru":
        raise ValueError(f"reset_after=False (the original GRU) is only for cell 'gru', got cell {cell!r}")
    w_hh = shaped("w_hh", w_hh, (G * H, P), ("G*H", "P"), dtype)
    b_ih = _optional("b_ih", b_ih, (G * H,), ("G*H",), dtype)
    b_hh = _optional("b_hh", b_hh, (G * H,), ("G*H",), dtype)
    h0 = np.zeros((B, P), dtype) if h0 is None else shaped("h0", h0, (B, P), ("B", "P"), dtype)
    if cell == "lstm":
        c0 = np.zeros((B, H), dtype) if c0 is None else shaped("c0", c0, (B, H), ("B", "H"), dtype)
    elif c0 is not None:
        raise ValueError(f"c0 is only for cell 'lstm'; pass None for cell {cell!r}")
    lengths = _lengths(lengths, T, B)
    reverse = flag("reverse", reverse)
    training = flag("training", training)
    every = steps_per_checkpoint(checkpoint_every, T)  # checked in eval mode too: bad is bad
    if every and (w_ph is not None or not reset_after):
        # Their extra weight gradients are not yet reduced segment by segment (bitwise) natively.
        raise ValueError("checkpoint_every is not supported with peepholes (w_ph) or reset_after=False")
    if not training:
        every = 0

    name = _backend.get_backend() if backend is None else _backend._check_name(backend)
    # Outputs, the forward's workspace and, in training, what it keeps (see README, "Guarantees");
    # exact Python integers, so sizes whose products overflow 64 bits are caught too.
    check_memory(dtype.itemsize * _forward_elements(T, B, I, H, P, G, training, every), "forward")
    if B == 0:
        # No sequences: nothing to run (and no T-step loop over an empty batch, however large T).
        y, h_n = np.zeros((T, 0, P), dtype), np.zeros((0, P), dtype)
        c_n = np.zeros((0, H), dtype) if cell == "lstm" else None
        saved = _EmptyBatch(b_ih is not None, b_hh is not None, w_hr is not None, w_ph is not None)
    else:
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_ph = _contiguous(
            x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_ph
        )
        y, h_n, c_n, saved = _backend.module(name).forward(
            cell,
            x,
            h0,
            c0,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            w_hr,
            lengths,
            reverse,
            training,
            w_ph,
            reset_after,
            every,
        )
    cache = Cache(name, cell, dtype, T, B, I, H, P, saved, every) if training else None
    return y, h_n, c_n, cache


def backward(
    cache: Cache | None,
    dy: ArrayLike | None,
    dh_n: ArrayLike | None,
    dc_n: ArrayLike | None = None,
    *,
    need_dx: bool = True,
) -> tuple[FloatArray | None, ...]:
    """Backpropagation through time for the forward() that returned ``cache``.

    ``dy`` (T, B, P), ``dh_n`` (B, P) and ``dc_n`` (B, H, lstm only) are the gradients of the loss
    w.r.t. y, h_n and c_n; each may be None (zeros). Returns
    ``(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr)``; dc0 is None unless lstm, db_* are None
    where the bias was None, dw_hr is None without projection. When forward had peepholes (``w_ph``)
    their gradient ``dw_ph`` follows as a ninth entry (only then: code written for eight keeps
    working). Runs on the backend that made the cache, for the cell variant forward ran.
    Also sets ``cache.dh_norms`` (see Cache). ``need_dx=False`` skips dx (returned as None): one of
    backward's four matrix products, for a first layer whose input needs no gradient.
    """
    if cache is None:
        raise ValueError("cache is None: forward() was run with training=False, which keeps no cache")
    if not isinstance(cache, Cache):
        raise TypeError(f"cache must be the Cache returned by forward(), got {type(cache).__name__}")
    c = cache
    dtype = c.dtype
    dy = (
        np.zeros((c.T, c.B, c.P), dtype)
        if dy is None
        else shaped("dy", dy, (c.T, c.B, c.P), ("T", "B", "P"), dtype)
    )
    dh_n = (
        np.zeros((c.B, c.P), dtype) if dh_n is None else shaped("dh_n", dh_n, (c.B, c.P), ("B", "P"), dtype)
    )
    if c.cell == "lstm":
        dc_n = (
            np.zeros((c.B, c.H), dtype)
            if dc_n is None
            else shaped("dc_n", dc_n, (c.B, c.H), ("B", "H"), dtype)
        )
    elif dc_n is not None:
        raise ValueError(f"dc_n is only for cell 'lstm'; pass None for cell {c.cell!r}")
    need_dx = flag("need_dx", need_dx)
    G = GATES[c.cell]
    elements = _backward_elements(c.T, c.B, c.I, c.H, c.P, G, c.every) - (0 if need_dx else c.T * c.B * c.I)
    check_memory(dtype.itemsize * elements, "backward")
    if isinstance(c._saved, _EmptyBatch):  # forward ran no backend: every gradient is zero
        e = c._saved
        c.dh_norms = np.broadcast_to(0.0, (c.T,))  # no memory, whatever T is
        return (
            np.zeros((c.T, 0, c.I), dtype) if need_dx else None,
            np.zeros((0, c.P), dtype),
            np.zeros((0, c.H), dtype) if c.cell == "lstm" else None,
            np.zeros((G * c.H, c.I), dtype),
            np.zeros((G * c.H, c.P), dtype),
            np.zeros(G * c.H, dtype) if e.b_ih else None,
            np.zeros(G * c.H, dtype) if e.b_hh else None,
            np.zeros((c.P, c.H), dtype) if e.w_hr else None,
        ) + ((np.zeros(3 * c.H, dtype),) if e.w_ph else ())
    dy, dh_n, dc_n = _contiguous(dy, dh_n, dc_n)
    *grads, dw_ph, c.dh_norms = _backend.module(c.backend).backward(c._saved, dy, dh_n, dc_n, need_dx)
    return tuple(grads) if dw_ph is None else (*grads, dw_ph)
