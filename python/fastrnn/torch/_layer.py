"""One recurrent layer (one or both directions) of a torch model on fastrnn's native kernels.

Tensors cross to NumPy and back as zero-copy views (``.detach().numpy()``, ``torch.from_numpy``);
each direction is one fastrnn.functional.forward/backward call, so no Python runs per time step.
Eager autograd goes through ``NativeLayer`` (a torch.autograd.Function holding the native caches);
torch.compile goes through the custom ops of _ops.py, which call the same two functions here.
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar, overload

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from .. import _backend, functional

_R = TypeVar("_R")
# A direction's (w_ih, w_hh, b_ih, b_hh, w_hr), None where the layer has none
_Weights = tuple[
    NDArray[Any], NDArray[Any], "NDArray[Any] | None", "NDArray[Any] | None", "NDArray[Any] | None"
]
# (y, h_n, c_n or None, one native cache per direction or None)
_Outputs = tuple[Tensor, Tensor, "Tensor | None", "list[Any] | None"]

_native = _backend.native_module()  # None without a native build: every call runs torch's own code


class Spec(NamedTuple):
    """What the kernels need to know about a layer beyond its tensors."""

    cell: str  # 'rnn_tanh', 'rnn_relu', 'lstm' or 'gru'
    directions: int  # 1 or 2
    bias: bool
    proj: bool  # LSTM with proj_size > 0 (a weight_hr per direction)

    @property
    def per_direction(self) -> int:
        return 2 + 2 * self.bias + self.proj


def native_available() -> bool:
    return _native is not None


@contextlib.contextmanager
def kernel_threads() -> Iterator[int]:
    """Runs the kernels on torch.get_num_threads() threads unless fastrnn's own count was chosen
    (fastrnn.set_num_threads or FASTRNN_NUM_THREADS); yields that count. fastrnn's team size is
    restored afterwards, so fastrnn's own layers keep theirs."""
    if _backend.threads_were_set():
        yield _backend.get_num_threads()
        return
    assert _native is not None  # only the native path gets here
    n = torch.get_num_threads()
    before = _native.get_num_threads()
    if n != before:
        _native.set_num_threads(n)  # cheap: the team keeps its workers
    try:
        yield n
    finally:
        if n != before:
            _native.set_num_threads(before)


@overload
def _array(t: Tensor) -> NDArray[Any]: ...
@overload
def _array(t: Tensor | None) -> NDArray[Any] | None: ...
def _array(t: Tensor | None) -> NDArray[Any] | None:
    return None if t is None else t.detach().numpy()


def _direction_weights(spec: Spec, weights: Sequence[Tensor], d: int) -> _Weights:
    """(w_ih, w_hh, b_ih, b_hh, w_hr) arrays of direction d; None where the layer has none."""
    w = [_array(t) for t in weights[d * spec.per_direction : (d + 1) * spec.per_direction]]
    b_ih, b_hh = (w[2], w[3]) if spec.bias else (None, None)
    return w[0], w[1], b_ih, b_hh, w[-1] if spec.proj else None


def _each_direction(run: Callable[[int], _R], directions: int, threads: int) -> list[_R]:
    """[run(0)] or [run(0), run(1)]; both directions side by side on half the threads each when
    there are two threads or more (as fastrnn's own bidirectional layers run)."""
    if directions == 2 and threads >= 2:
        return list(_backend.run_pair(lambda: run(0), lambda: run(1), threads // 2))
    return [run(d) for d in range(directions)]


def forward(
    spec: Spec,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: Sequence[Tensor],
    lengths: NDArray[np.int64] | None,
    keep: bool,
    threads: int,
) -> _Outputs:
    """Runs the layer. x (T, B, I); h0 (D, B, P); c0 (D, B, H) for lstm, else None; weights in
    torch's _flat_weights order; lengths a (B,) int64 array or None. Returns
    (y (T, B, D*P), h_n (D, B, P), c_n (D, B, H) or None, caches: one per direction, or None
    when ``keep`` is False)."""
    xa, h0a, c0a = _array(x), _array(h0), _array(c0)

    def run(d: int) -> tuple[Any, ...]:
        return functional.forward(
            spec.cell,
            xa,
            h0a[d],
            None if c0a is None else c0a[d],
            *_direction_weights(spec, weights, d),
            lengths=lengths,
            reverse=d == 1,
            training=keep,
            backend="native",
        )

    outs = _each_direction(run, spec.directions, threads)
    ys = [torch.from_numpy(o[0]) for o in outs]
    y = ys[0] if len(ys) == 1 else torch.cat(ys, 2)
    h_n = torch.stack([torch.from_numpy(o[1]) for o in outs])
    c_n = None if c0 is None else torch.stack([torch.from_numpy(o[2]) for o in outs])
    return y, h_n, c_n, [o[3] for o in outs] if keep else None


def backward(
    spec: Spec,
    caches: Sequence[Any],
    dy: Tensor | None,
    dh_n: Tensor | None,
    dc_n: Tensor | None,
    threads: int,
    need_dx: bool = True,
) -> tuple[Tensor | None, Tensor, Tensor | None, list[Tensor]]:
    """BPTT through the forward() that made ``caches``; dy (T, B, D*P), dh_n (D, B, P),
    dc_n (D, B, H) may each be None (zeros). Returns (dx, dh0, dc0 or None, weight gradients in
    the order of forward's ``weights``); dx is None (not computed) unless ``need_dx``."""
    P = caches[0].P
    dya, dha, dca = _array(dy), _array(dh_n), _array(dc_n)

    def run(d: int) -> tuple[Any, ...]:
        return functional.backward(
            caches[d],
            None if dya is None else dya[:, :, d * P : (d + 1) * P],
            None if dha is None else dha[d],
            None if dca is None else dca[d],
            need_dx=need_dx,
        )

    outs = _each_direction(run, spec.directions, threads)
    dx = outs[0][0]
    for o in outs[1:]:
        if dx is not None:
            dx += o[0]  # both directions read the same x; the arrays are fresh, so add in place
    dh0 = torch.stack([torch.from_numpy(o[1]) for o in outs])
    dc0 = torch.stack([torch.from_numpy(o[2]) for o in outs]) if spec.cell == "lstm" else None
    dweights = [torch.from_numpy(g) for o in outs for g in o[3:] if g is not None]
    return None if dx is None else torch.from_numpy(dx), dh0, dc0, dweights


class NativeLayer(torch.autograd.Function):
    """Autograd for one layer: forward keeps the native caches, backward runs native BPTT.

    Double backward (``create_graph=True``) differentiates a recomputation of the layer in torch
    operations instead (see _reference.py), so higher-order gradients are torch's.
    """

    @staticmethod
    def forward(
        ctx: Any,
        spec: Spec,
        lengths: NDArray[np.int64] | None,
        x: Tensor,
        h0: Tensor,
        c0: Tensor | None,
        *weights: Tensor,
    ) -> tuple[Tensor, ...]:
        with kernel_threads() as n:
            y, h_n, c_n, caches = forward(spec, x, h0, c0, weights, lengths, True, n)
        ctx.spec, ctx.lengths, ctx.caches = spec, lengths, caches
        ctx.save_for_backward(x, h0, c0, *weights)  # for torch's in-place-modification check
        ctx.set_materialize_grads(False)  # an unused output costs no zeros
        return (y, h_n) if c_n is None else (y, h_n, c_n)

    @staticmethod
    def backward(
        ctx: Any, dy: Tensor | None, dh_n: Tensor | None, dc_n: Tensor | None = None
    ) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors  # raises torch's error if an input was modified in place
        if torch.is_grad_enabled():  # create_graph=True: gradients that can be differentiated
            from ._reference import differentiable_grads

            grads = differentiable_grads(
                ctx.spec, ctx.lengths, saved, (dy, dh_n, dc_n), ctx.needs_input_grad[2:]
            )
            return (None, None, *grads)
        if dy is None and dh_n is None and dc_n is None:
            return (None,) * (2 + len(saved))
        with kernel_threads() as n:
            # An input that needs no gradient (a first layer's data) costs no dx product.
            dx, dh0, dc0, dweights = backward(
                ctx.spec, ctx.caches, dy, dh_n, dc_n, n, ctx.needs_input_grad[2]
            )
        return (None, None, dx, dh0, dc0, *dweights)


def run(
    spec: Spec,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: Sequence[Tensor],
    lengths: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The layer's outputs (y, h_n, c_n or None), with autograd wherever torch would record it."""
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, h0, c0, *weights)
    )
    if torch.compiler.is_compiling():
        from . import _ops

        return _ops.run(spec, x, h0, c0, weights, lengths, needs_grad)
    if not needs_grad:  # no_grad, inference_mode or nothing to differentiate: no cache kept
        with kernel_threads() as n:
            return forward(spec, x, h0, c0, weights, _lengths_array(lengths), False, n)[:3]
    # torch.autograd.Function.apply is untyped; it returns what NativeLayer.forward returns
    out: tuple[Tensor, ...] = NativeLayer.apply(  # type: ignore[no-untyped-call]
        spec, _lengths_array(lengths), x, h0, c0, *weights
    )
    return (out[0], out[1], out[2]) if len(out) == 3 else (out[0], out[1], None)


def _lengths_array(lengths: Tensor | None) -> NDArray[np.int64] | None:
    return None if lengths is None else lengths.numpy()
