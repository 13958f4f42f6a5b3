"""Gradient clipping: ``clip_grad_norm`` and ``clip_grad_value`` (PyTorch's ``clip_grad_norm_`` and
``clip_grad_value_``), acting in place on the ``.grad`` arrays of Parameters.

``parameters`` is a model (anything with ``parameters()``), one Parameter, or an iterable of Parameters;
those whose ``grad`` is None are ignored, and a grad array listed twice (a shared or tied weight) counts
once.
"""

import math
import numbers

import numpy as np

from ._checks import real

__all__ = ["clip_grad_norm", "clip_grad_value"]


def _grads(parameters):
    if hasattr(parameters, "parameters") and callable(parameters.parameters):
        parameters = parameters.parameters()
    elif hasattr(parameters, "grad"):
        parameters = [parameters]
    elif isinstance(parameters, np.ndarray) or not hasattr(parameters, "__iter__"):
        raise TypeError(
            "parameters must be a model with parameters(), a Parameter or an iterable "
            f"of Parameters, got {type(parameters).__name__}"
        )
    grads = []
    for i, p in enumerate(parameters):
        if not hasattr(p, "grad"):
            raise TypeError(
                f"parameters[{i}] has no .grad (expected a fastrnn.Parameter), got {type(p).__name__}"
            )
        g = p.grad
        if g is None:
            continue
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError(
                f"parameters[{i}].grad must be a floating-point NumPy array, got "
                f"{getattr(g, 'dtype', type(g).__name__)}"
            )
        if not any(g is h for h in grads):  # one weight seen twice (shared, tied) counts once
            grads.append(g)
    return grads


def _nonnegative(name, value):
    value = real(name, value)
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _norm_type(norm_type):
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        return math.inf
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a positive number or inf, got {norm_type!r}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type}")
    return norm_type


def _vector_norm(a, p):
    """The p-norm of a flattened float64 array (inf: max |a|; 0 for an empty array)."""
    a = np.abs(a.ravel())
    if a.size == 0:
        return 0.0
    if p == math.inf:
        return float(a.max())
    if p == 1:
        return float(a.sum())
    if p == 2:
        return float(np.sqrt(np.dot(a, a)))
    return float(np.sum(a**p) ** (1.0 / p))


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scales all gradients together, in place, so that their total norm is at most ``max_norm``;
    returns the total norm BEFORE clipping, as a float.

    The total norm is the ``norm_type``-norm of all gradients concatenated into one vector
    (``norm_type`` > 0 or ``inf`` / ``"inf"`` for the largest absolute value), computed in float64.
    As in ``torch.nn.utils.clip_grad_norm_``, the gradients are multiplied by
    ``max_norm / (total_norm + 1e-6)`` when that factor is below 1. A non-finite total norm (a NaN or
    inf gradient) raises RuntimeError only with ``error_if_nonfinite=True``; by default (PyTorch's)
    the factor is applied anyway, so an inf norm zeroes the finite entries (inf ones become NaN) and a
    NaN norm makes every gradient NaN, and the non-finite norm is returned for the caller to check.
    With no gradients the norm is 0.0.
    """
    grads = _grads(parameters)
    max_norm = _nonnegative("max_norm", max_norm)
    p = _norm_type(norm_type)
    if not grads:
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.array([_vector_norm(g.astype(np.float64, copy=False), p) for g in grads])
        total = _vector_norm(norms, p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {p} of the gradients is non-finite ({total}), "
            "so it cannot be clipped; pass error_if_nonfinite=False to clip anyway"
        )
    coef = max_norm / (total + 1e-6)
    if math.isnan(coef) or coef < 1.0:
        with np.errstate(invalid="ignore", over="ignore"):
            for g in grads:
                g *= g.dtype.type(coef)
    return total


def clip_grad_value(parameters, clip_value):
    """Clamps every gradient element into ``[-clip_value, clip_value]`` in place
    (``torch.nn.utils.clip_grad_value_``); NaNs stay NaN. Returns None."""
    grads = _grads(parameters)
    clip_value = _nonnegative("clip_value", clip_value)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
