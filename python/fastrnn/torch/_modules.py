"""torch.nn.RNN / LSTM / GRU subclasses whose forward runs on fastrnn's kernels, and replace().

Everything but forward is torch's own (constructor, parameters, state_dict, to(), pickling), so a
model keeps its checkpoints. forward takes the native path only for what it computes exactly as
torch does (CPU float32/float64, no autocast or torch.func transform, a non-empty batch and
sequence); anything else, bad input included, goes to torch's forward, which then also raises
torch's own errors.
"""

from typing import TYPE_CHECKING, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from . import _layer

_M = TypeVar("_M", bound=torch.nn.Module)
_Hidden = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for an LSTM
# (x (T, B, I) time-major, hx or None, the packed layout (lengths, rows) or None)
_Plan = tuple[Tensor, "_Hidden | None", "tuple[Tensor, Tensor] | None"]

if TYPE_CHECKING:  # the mixin is always combined with a torch.nn RNN class (see RNN, LSTM, GRU)
    _Base = torch.nn.RNNBase
else:
    _Base = object

_CELLS = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}
_DTYPES = (torch.float32, torch.float64)


def _cpu_float(t: object, dtype: torch.dtype) -> bool:
    return (
        isinstance(t, torch.Tensor)
        and t.device.type == "cpu"
        and t.dtype == dtype
        and t.layout == torch.strided
    )


def _packed_layout(batch_sizes: Tensor) -> tuple[Tensor, Tensor]:
    """For a PackedSequence: each sorted sequence's length (B,) and, for each packed row, its
    row t*B + b in the padded (T*B) layout (packed rows run time-major, sorted batch order)."""
    B = int(batch_sizes[0])
    live = torch.arange(B).unsqueeze(0) < batch_sizes.unsqueeze(1)  # (T, B)
    return live.sum(0), live.reshape(-1).nonzero().squeeze(1)


class _FastRNN(_Base):
    """The forward shared by the three classes (placed before the torch class in the bases)."""

    def _native_plan(self, input: Tensor | PackedSequence, hx: _Hidden | None) -> _Plan | None:
        """(x (T, B, I) time-major, hx as torch would use it or None, packed layout or None)
        when the native path computes this call exactly as torch; None otherwise."""
        weights = self._flat_weights
        if not _layer.native_available() or not weights or weights[0] is None:
            return None
        dtype = weights[0].dtype
        if dtype not in _DTYPES or not all(_cpu_float(w, dtype) for w in weights):
            return None
        if torch.is_autocast_enabled("cpu") or self.hidden_size < 1:
            return None
        if torch._C._are_functorch_transforms_active():  # torch.func.grad/vmap: torch's code
            return None
        if isinstance(input, PackedSequence):
            x = input.data
            bs = input.batch_sizes
            if (
                not _cpu_float(x, dtype)
                or x.dim() != 2
                or x.shape[-1] != self.input_size
                or bs.dim() != 1
                or bs.numel() == 0
                or bs.dtype != torch.int64
                or x.shape[0] == 0
            ):
                return None
            layout = _packed_layout(bs)
            T, B = bs.numel(), int(bs[0])
            x = x.new_zeros(T * B, x.shape[1]).index_copy(0, layout[1], x).view(T, B, -1)
        else:
            if not _cpu_float(input, dtype) or input.dim() not in (2, 3):
                return None
            if input.shape[-1] != self.input_size:
                return None
            x, layout = input, None
            if x.dim() == 2:
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
        if x.shape[0] == 0 or x.shape[1] == 0:
            return None
        if hx is not None:
            hx = self._native_hx(input, hx, x.shape[1], dtype)
            if hx is None:
                return None
        return x, hx, layout

    def _native_hx(
        self, input: Tensor | PackedSequence, hx: _Hidden, B: int, dtype: torch.dtype
    ) -> _Hidden | None:
        """hx in the (L*D, B, P) layout the layers read (unsqueezed if the input is unbatched,
        permuted to the sorted order of a PackedSequence), or None if torch would refuse it."""
        D = 2 if self.bidirectional else 1
        P = self.proj_size if self.proj_size > 0 else self.hidden_size
        unbatched = isinstance(input, torch.Tensor) and input.dim() == 2
        parts = hx if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and not (isinstance(hx, tuple) and len(hx) == 2):
            return None
        shapes = [(self.num_layers * D, B, P), (self.num_layers * D, B, self.hidden_size)]
        out = []
        for t, shape in zip(parts, shapes):
            if not _cpu_float(t, dtype) or t.dim() != (2 if unbatched else 3):
                return None
            if unbatched:
                t = t.unsqueeze(1)
            if tuple(t.shape) != shape:
                return None
            if isinstance(input, PackedSequence) and input.sorted_indices is not None:
                t = t.index_select(1, input.sorted_indices)
            out.append(t)
        return tuple(out) if self.mode == "LSTM" else out[0]

    def forward(
        self, input: Tensor | PackedSequence, hx: _Hidden | None = None
    ) -> tuple[Tensor | PackedSequence, _Hidden]:
        self._update_flat_weights()
        plan = self._native_plan(input, hx)
        if plan is None:
            torch_result: tuple[Tensor | PackedSequence, _Hidden] = super().forward(input, hx)
            return torch_result
        x, hx, layout = plan
        lstm = self.mode == "LSTM"
        T, B = x.shape[:2]
        D = 2 if self.bidirectional else 1
        P = self.proj_size if self.proj_size > 0 else self.hidden_size
        c: Tensor | None
        if hx is None:
            h = x.new_zeros(self.num_layers * D, B, P)
            c = x.new_zeros(self.num_layers * D, B, self.hidden_size) if lstm else None
        elif isinstance(hx, tuple):  # an LSTM's (h, c)
            h, c = hx
        else:
            h, c = hx, None
        lengths = None if layout is None else layout[0]
        spec = _layer.Spec(_CELLS[self.mode], D, bool(self.bias), self.proj_size > 0)
        k = D * spec.per_direction
        weights = cast(list[Tensor], self._flat_weights)  # _native_plan checked each is a CPU tensor
        hs: list[Tensor] = []
        cs: list[Tensor] = []
        for layer in range(self.num_layers):
            rows = slice(layer * D, (layer + 1) * D)
            y, hl, cl = _layer.run(
                spec,
                x,
                h[rows],
                None if c is None else c[rows],
                weights[layer * k : (layer + 1) * k],
                lengths,
            )
            hs.append(hl)
            if cl is not None:
                cs.append(cl)
            x = y
            if layer < self.num_layers - 1 and self.dropout != 0 and self.training:
                x = self._dropout(y, layout)
        h_n = torch.cat(hs)
        c_n = torch.cat(cs) if lstm else None
        out: Tensor | PackedSequence
        if isinstance(input, PackedSequence):  # back to packed rows and the caller's batch order
            assert layout is not None  # _native_plan made one for it
            data = x.reshape(T * B, -1).index_select(0, layout[1])
            out = PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
            if input.unsorted_indices is not None:
                h_n = h_n.index_select(1, input.unsorted_indices)
                c_n = None if c_n is None else c_n.index_select(1, input.unsorted_indices)
        elif input.dim() == 2:
            out, h_n = x.squeeze(1), h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        else:
            out = x.transpose(0, 1) if self.batch_first else x
        return out, (h_n if c_n is None else (h_n, c_n))  # c_n: LSTM only

    def _dropout(self, y: Tensor, layout: tuple[Tensor, Tensor] | None) -> Tensor:
        """torch's inter-layer dropout: drawn from torch's generator over the same elements in the
        same order as torch.nn draws it (the packed rows of a PackedSequence), so a seed gives
        torch's masks; autograd applies the same mask in backward."""
        if layout is None:
            return F.dropout(y, self.dropout, True)
        T, B = y.shape[:2]
        rows = F.dropout(y.reshape(T * B, -1).index_select(0, layout[1]), self.dropout, True)
        return rows.new_zeros(T * B, rows.shape[1]).index_copy(0, layout[1], rows).view(T, B, -1)


# The mixin's forward takes every input torch's per-class overloads take (hence the ignores).
class RNN(_FastRNN, torch.nn.RNN):  # type: ignore[misc]
    """torch.nn.RNN (tanh or relu) on fastrnn's kernels; see fastrnn.torch."""


class LSTM(_FastRNN, torch.nn.LSTM):  # type: ignore[misc]
    """torch.nn.LSTM (with proj_size too) on fastrnn's kernels; see fastrnn.torch."""


class GRU(_FastRNN, torch.nn.GRU):  # type: ignore[misc]
    """torch.nn.GRU on fastrnn's kernels; see fastrnn.torch."""


_SWAPS = {torch.nn.RNN: RNN, torch.nn.LSTM: LSTM, torch.nn.GRU: GRU}


def replace(module: _M) -> _M:
    """Makes every torch.nn.RNN / LSTM / GRU inside ``module`` (``module`` itself included, nested
    anywhere) run on fastrnn, in place: each keeps its identity and its very Parameter objects (an
    optimizer built before keeps working; hooks stay). Only exact torch classes are swapped: a
    user's subclass may override forward, so it is left alone. Returns ``module``."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    for m in module.modules():
        cls = _SWAPS.get(type(m))
        if cls is not None:
            m.__class__ = cls
    return module


for _cls in (RNN, LSTM, GRU):
    _cls.__module__ = "fastrnn.torch"  # pickles and prints as fastrnn.torch.LSTM
