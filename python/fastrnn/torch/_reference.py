"""One layer written in torch operations: what double backward differentiates.

The native backward is not itself differentiable, so a backward with ``create_graph=True``
recomputes the layer here from the saved inputs and lets torch differentiate that: the
gradients (and their gradients) are then torch's own. Same equations and ``lengths`` semantics as
fastrnn.functional: steps past a sequence's length keep the state and output zeros; the reverse
direction starts at each sequence's own last step.
"""

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ._layer import Spec


def _step(
    cell: str, gx: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None, w_hr: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """One time step from the input projection gx (B, G*H); returns the new (h, c)."""
    gh = h @ w_hh.T
    if b_hh is not None:
        gh = gh + b_hh
    if cell == "lstm":
        i, f, g, o = (gx + gh).chunk(4, 1)
        assert c is not None  # an LSTM always has a cell state
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h if w_hr is None else h @ w_hr.T), c
    if cell == "gru":
        xr, xz, xn = gx.chunk(3, 1)
        hr, hz, hn = gh.chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None
    pre = gx + gh
    return (torch.tanh(pre) if cell == "rnn_tanh" else torch.relu(pre)), None


def direction(
    cell: str,
    x: Tensor,
    h: Tensor,
    c: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    w_hr: Tensor | None,
    lengths: Tensor | None,
    reverse: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One direction over x (T, B, I) from h (B, P), c (B, H) or None. Returns (y, h_n, c_n)."""
    gx = x @ w_ih.T
    if b_ih is not None:
        gx = gx + b_ih
    T = x.shape[0]
    ys: list[Tensor] = []
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        h_new, c_new = _step(cell, gx[t], h, c, w_hh, b_hh, w_hr)
        if lengths is None:
            h, c, y_t = h_new, c_new, h_new
        else:
            live = (t < lengths).unsqueeze(1)
            h = torch.where(live, h_new, h)
            c = None if c is None or c_new is None else torch.where(live, c_new, c)
            y_t = torch.where(live, h_new, torch.zeros_like(h_new))
        ys.append(y_t)
    if reverse:
        ys.reverse()  # back to time order
    return torch.stack(ys), h, c


def layer(
    spec: Spec, x: Tensor, h0: Tensor, c0: Tensor | None, weights: Sequence[Tensor], lengths: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The layer as _layer.forward computes it: (y (T, B, D*P), h_n (D, B, P), c_n or None)."""
    k = spec.per_direction
    outs = []
    for d in range(spec.directions):
        w = list(weights[d * k : (d + 1) * k])
        b_ih, b_hh = (w[2], w[3]) if spec.bias else (None, None)
        outs.append(
            direction(
                spec.cell,
                x,
                h0[d],
                None if c0 is None else c0[d],
                w[0],
                w[1],
                b_ih,
                b_hh,
                w[-1] if spec.proj else None,
                lengths,
                d == 1,
            )
        )
    y = torch.cat([o[0] for o in outs], 2)
    h_n = torch.stack([o[1] for o in outs])
    c_n = None if c0 is None else torch.stack([o[2] for o in outs if o[2] is not None])
    return y, h_n, c_n


def differentiable_grads(
    spec: Spec,
    lengths: NDArray[np.int64] | None,
    saved: Sequence[Tensor | None],
    grads: Sequence[Tensor | None],
    needs: Sequence[bool],
) -> list[Tensor | None]:
    """Gradients of the layer w.r.t. ``saved`` = (x, h0, c0, *weights) for output gradients
    ``grads`` = (dy, dh_n, dc_n), built with create_graph so they can be differentiated again.
    ``needs`` says which of ``saved`` want one; the others get None."""
    steps = None if lengths is None else torch.from_numpy(lengths)
    x, h0, c0 = saved[:3]
    weights = [w for w in saved[3:] if w is not None]  # all of them: only c0 may be None
    assert x is not None and h0 is not None
    with torch.enable_grad():
        outs = layer(spec, x, h0, c0, weights, steps)
    pairs = [(o, g) for o, g in zip(outs, grads) if o is not None and g is not None]
    wanted = [i for i, (t, n) in enumerate(zip(saved, needs)) if n and t is not None]
    result: list[Tensor | None] = [None] * len(saved)
    if pairs and wanted:
        got = torch.autograd.grad(
            [o for o, _ in pairs],
            [t for t in (saved[i] for i in wanted) if t is not None],  # wanted holds no None
            [g for _, g in pairs],
            create_graph=True,
            allow_unused=True,
        )
        for i, g in zip(wanted, got):
            result[i] = g
    return result
