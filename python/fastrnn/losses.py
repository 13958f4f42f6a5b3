"""Losses returning (loss, gradient of the loss w.r.t. the model's output).

``loss`` is a Python float; the gradient has the input's shape and dtype and is what ``model.backward``
takes. Both are plain NumPy, numerically stable, and never modify their inputs.

- ``cross_entropy(logits, targets, mask=None, *, ignore_index=None)``: softmax cross-entropy over the
  last axis, averaged over the counted positions (e.g. every time step of every sequence that is not
  padding), like ``torch.nn.functional.cross_entropy`` with reduction="mean".
- ``mse(pred, target)``: mean squared error over all elements, like ``torch.nn.functional.mse_loss``.

With nothing to average (every position masked or ignored, or empty inputs) both return loss 0.0 and
an all-zero gradient, where PyTorch would return NaN: a fully padded batch then contributes nothing
instead of poisoning the weights.
"""

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import float_array, from_tensor, int_array, integer
from ._typing import FloatArray

__all__ = ["cross_entropy", "mse"]


def _mask_array(mask: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    m = np.asarray(from_tensor(mask))
    if m.dtype.kind not in "biuf":
        raise TypeError(f"mask must be a bool or 0/1 array, got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"mask must have the shape of targets {shape}, got {m.shape}")
    if m.dtype.kind != "b":
        if not np.all((m == 0) | (m == 1)):
            raise ValueError("mask must hold only 0 and 1 (or be a bool array)")
        m = m == 1
    return m


def cross_entropy(
    logits: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None, *, ignore_index: int | None = None
) -> tuple[float, FloatArray]:
    """Softmax cross-entropy averaged over the counted positions.

    logits: float32/float64 (..., V). targets: integer (...) with values in [0, V) at every counted
    position (uncounted positions may hold anything, e.g. a padding value). mask: optional (...) bool
    or 0/1 array; only positions where it is true are counted. ignore_index: optional int; positions
    whose target equals it are not counted (as in PyTorch). Returns (loss, dlogits), dlogits being the
    gradient of the mean loss w.r.t. logits (zero at uncounted positions). With no counted position the
    loss is 0.0 and dlogits is all zeros.
    """
    logits = float_array("logits", logits)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., V) with V >= 1, got {logits.shape}")
    V = logits.shape[-1]
    targets = int_array("targets", targets, " (class indices)")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets must have shape {logits.shape[:-1]} (logits' shape without its "
            f"last axis V={V}), got {targets.shape}"
        )
    integer("ignore_index", ignore_index, allow_none=True)

    z = logits.reshape(-1, V)
    t = targets.reshape(-1)
    counted = np.ones(t.shape, bool)
    if mask is not None:
        counted &= _mask_array(mask, targets.shape).reshape(-1)
    if ignore_index is not None:
        counted &= t != ignore_index
    rows = np.flatnonzero(counted)
    n = rows.size
    if n == 0:
        return 0.0, np.zeros(logits.shape, logits.dtype)
    tc = t[rows]
    if tc.min() < 0 or tc.max() >= V:
        bad = tc.min() if tc.min() < 0 else tc.max()
        raise ValueError(f"targets must be in [0, V={V}) at every counted position, got {int(bad)}")

    every = n == z.shape[0]
    zc = z if every else z[rows]  # uncounted rows are never read
    g = zc - zc.max(axis=1, keepdims=True)  # log-sum-exp shift: exp never overflows
    at = np.arange(n)
    shifted_target = g[at, tc]
    np.exp(g, out=g)
    sum_e = g.sum(axis=1, keepdims=True)
    loss = -float(np.sum(shifted_target - np.log(sum_e[:, 0]), dtype=np.float64)) / n
    g /= sum_e  # softmax
    g[at, tc] -= 1
    g *= logits.dtype.type(1.0 / n)
    if every:
        return loss, g.reshape(logits.shape)
    grad = np.zeros(z.shape, logits.dtype)
    grad[rows] = g
    return loss, grad.reshape(logits.shape)


def mse(pred: ArrayLike, target: ArrayLike) -> tuple[float, FloatArray]:
    """Mean squared error over all elements: returns (mean((pred - target)**2), dpred).

    pred: float32/float64 array; target: an array of the same shape and dtype. An empty pred gives loss
    0.0 and an empty gradient.
    """
    pred = float_array("pred", pred)
    target = float_array("target", target)
    if target.dtype != pred.dtype:
        raise TypeError(f"target has dtype {target.dtype} but pred has dtype {pred.dtype}: they must match")
    if target.shape != pred.shape:
        raise ValueError(f"target must have the shape of pred {pred.shape}, got {target.shape}")
    if pred.size == 0:
        return 0.0, np.zeros(pred.shape, pred.dtype)
    diff = pred - target
    loss = float(np.sum(np.square(diff), dtype=np.float64)) / diff.size
    return loss, diff * pred.dtype.type(2.0 / diff.size)
