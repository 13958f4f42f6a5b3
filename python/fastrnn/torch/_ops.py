"""The layer as torch.library custom ops, so torch.compile can trace a model that uses it.

A custom op takes and returns tensors only, but native BPTT needs the forward's native caches.
The forward op therefore also returns a one-element int64 "handle" tensor whose storage is a
NumPy array that owns those caches: they live exactly as long as that tensor (which autograd
keeps for backward) and no longer. The backward op finds them again through the handle's value.
Fake implementations give torch.compile the output shapes without running anything.
"""

import itertools
import weakref
from collections.abc import Sequence
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from . import _layer


class _CacheOwner(np.ndarray[tuple[int], np.dtype[np.int64]]):
    """A handle's storage: a 1-element int64 array (its key) carrying the caches as an attribute."""

    caches: list[Any]


# key -> _CacheOwner, while its handle tensor lives
_owners: "weakref.WeakValueDictionary[int, _CacheOwner]" = weakref.WeakValueDictionary()
_keys = itertools.count(1)


def _handle(caches: list[Any]) -> Tensor:
    key = next(_keys)
    owner = np.array([key], np.int64).view(_CacheOwner)
    owner.caches = caches
    _owners[key] = owner
    return torch.from_numpy(owner)


def _caches(handle: Tensor) -> list[Any]:
    owner = _owners.get(int(handle[0]))
    if owner is None:
        raise RuntimeError("fastrnn.torch: the saved state of this forward is gone")
    return owner.caches


@torch.library.custom_op("fastrnn::layer_forward", mutates_args=())
def layer_forward(
    cell: str,
    directions: int,
    bias: bool,
    proj: bool,
    x: Tensor,
    h0: Tensor,
    c0: Optional[Tensor],
    weights: List[Tensor],
    lengths: Optional[Tensor],
    keep: bool,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(y, h_n, c_n (empty unless lstm), handle (meaningful when ``keep``))."""
    spec = _layer.Spec(cell, directions, bias, proj)
    with _layer.kernel_threads() as n:
        y, h_n, c_n, caches = _layer.forward(
            spec, x, h0, c0, weights, None if lengths is None else lengths.numpy(), keep, n
        )
    handle = torch.zeros(1, dtype=torch.int64) if caches is None else _handle(caches)  # caches iff keep
    return y, h_n, x.new_empty(0) if c_n is None else c_n, handle


@layer_forward.register_fake
def _(
    cell: str,
    directions: int,
    bias: bool,
    proj: bool,
    x: Tensor,
    h0: Tensor,
    c0: Optional[Tensor],
    weights: List[Tensor],
    lengths: Optional[Tensor],
    keep: bool,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    y = x.new_empty(x.shape[0], x.shape[1], directions * h0.shape[2])
    c_n = x.new_empty(0) if c0 is None else c0.new_empty(c0.shape)
    return y, h0.new_empty(h0.shape), c_n, x.new_empty(1, dtype=torch.int64)


@torch.library.custom_op("fastrnn::layer_backward", mutates_args=())
def layer_backward(
    cell: str,
    directions: int,
    bias: bool,
    proj: bool,
    handle: Tensor,
    x: Tensor,
    h0: Tensor,
    c0: Optional[Tensor],
    weights: List[Tensor],
    dy: Optional[Tensor],
    dh_n: Optional[Tensor],
    dc_n: Optional[Tensor],
    need_dx: bool = True,
) -> List[Tensor]:
    """[dx (empty unless need_dx), dh0, dc0 (empty unless lstm), *weight gradients]; x, h0, c0 and
    weights give the fake implementation its shapes."""
    spec = _layer.Spec(cell, directions, bias, proj)
    with _layer.kernel_threads() as n:
        dx, dh0, dc0, dweights = _layer.backward(spec, _caches(handle), dy, dh_n, dc_n, n, need_dx)
    return [x.new_empty(0) if dx is None else dx, dh0, x.new_empty(0) if dc0 is None else dc0, *dweights]


@layer_backward.register_fake
def _(
    cell: str,
    directions: int,
    bias: bool,
    proj: bool,
    handle: Tensor,
    x: Tensor,
    h0: Tensor,
    c0: Optional[Tensor],
    weights: List[Tensor],
    dy: Optional[Tensor],
    dh_n: Optional[Tensor],
    dc_n: Optional[Tensor],
    need_dx: bool = True,
) -> List[Tensor]:
    dx = torch.empty_like(x) if need_dx else x.new_empty(0)
    dc0 = x.new_empty(0) if c0 is None else torch.empty_like(c0)
    return [dx, torch.empty_like(h0), dc0, *(torch.empty_like(w) for w in weights)]


def _setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, ...]) -> None:
    cell, directions, bias, proj, x, h0, c0, weights, lengths, keep = inputs
    ctx.spec = (cell, directions, bias, proj)
    ctx.lstm = c0 is not None
    ctx.n_weights = len(weights)
    ctx.save_for_backward(output[3], x, h0, c0, *weights)


def _backward(
    ctx: Any, dy: Tensor, dh_n: Tensor, dc_n: Tensor, dhandle: Tensor
) -> Tuple[Optional[Tensor | List[Tensor]], ...]:
    handle, x, h0, c0, *weights = ctx.saved_tensors
    need_dx = ctx.needs_input_grad[4]  # an input that needs no gradient costs no dx product
    dx, dh0, dc0, *dweights = layer_backward(
        *ctx.spec, handle, x, h0, c0, weights, dy, dh_n, dc_n if ctx.lstm else None, need_dx
    )
    dx_out = dx if need_dx else None
    return (None, None, None, None, dx_out, dh0, dc0 if ctx.lstm else None, dweights, None, None)


layer_forward.register_autograd(_backward, setup_context=_setup_context)


def run(
    spec: _layer.Spec,
    x: Tensor,
    h0: Tensor,
    c0: Optional[Tensor],
    weights: Sequence[Tensor],
    lengths: Optional[Tensor],
    keep: bool,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """_layer.run's path under torch.compile: (y, h_n, c_n or None)."""
    y, h_n, c_n, _ = layer_forward(
        spec.cell, spec.directions, spec.bias, spec.proj, x, h0, c0, list(weights), lengths, keep
    )
    return y, h_n, c_n if c0 is not None else None
