"""Generation: a stateful step-by-step inference path, sampling, and a character vocabulary.

- ``Stepper(model)`` runs a model (a ``Sequential`` of Embedding / RNN / LSTM / GRU / Linear layers,
  or a single recurrent layer) one time step at a time, carrying every recurrent layer's state
  across calls. ``step`` makes ONE backend call per recurrent layer (per stacked layer of a
  multi-layer RNN) per time step, straight into the kernels with arguments prepared once; ``prime``
  feeds a whole prompt with ONE call per stacked layer (the whole sequence, the carried state as
  h0). ``prime`` gives exactly (bitwise) the outputs of one full-sequence forward of the model;
  stepping token by token gives them to float rounding, not bitwise: a one-step call multiplies
  by the weights as stored instead of packing them, which sums the products in another order
  (measured: ~5e-7 relative in float32, ~1e-15 in float64 over 50 steps of a 2-layer model; as
  with any rounding, a chaotic model can amplify that over many steps).
- ``sample(model, prime, length, temperature=1.0, top_k=None, seed=None, vocab=None)`` continues a
  prompt: temperature scaling (0 means greedy argmax), top-k filtering, a numerically stable softmax
  and a seeded ``numpy.random.Generator``.
- ``CharVocab``: sorted unique characters of a text, ``encode``/``decode``, and
  ``to_dict``/``from_dict`` (JSON-serialisable, for a checkpoint's ``extra``).

Bidirectional layers cannot be stepped (their output at t depends on inputs after t): rejected.
"""

import math

import numpy as np

from . import functional as F
from ._checks import check_memory, from_tensor, generator, integer, real
from .layers import is_recurrent
from .linear import Embedding
from .sequential import _flatten

__all__ = ["Stepper", "sample", "next_token", "CharVocab"]


class _Recurrent:
    """One recurrent layer's stepping plan: cell, weights per stacked layer, carried state."""

    __slots__ = ("layer", "cell", "weights", "options", "h", "c")

    def __init__(self, layer):
        self.layer = layer
        self.cell = layer.cell
        self.weights = self.options = None
        self.h = self.c = None

    def refresh(self, batch_size):
        lay = self.layer
        self.weights = [
            tuple(None if w is None else np.ascontiguousarray(w) for w in lay._weights(i, 0))
            for i in range(lay.num_layers)
        ]
        self.options = [lay._cell_options(i, 0) for i in range(lay.num_layers)]  # the cell variant
        self.h = [np.zeros((batch_size, lay._out_size), lay.dtype) for _ in range(lay.num_layers)]
        self.c = (
            [np.zeros((batch_size, lay.hidden_size), lay.dtype) for _ in range(lay.num_layers)]
            if self.cell == "lstm"
            else None
        )

    def run(self, x, training=False):
        """x: time-major (T, B, I), contiguous, of the layer's dtype -> y (T, B, P); updates the
        state. One functional.forward per stacked layer."""
        lay = self.layer
        lstm = self.cell == "lstm"
        for i in range(lay.num_layers):
            w_ih, w_hh, b_ih, b_hh, w_hr = self.weights[i]
            x, h, c, _ = F.forward(
                self.cell,
                x,
                self.h[i],
                self.c[i] if lstm else None,
                w_ih,
                w_hh,
                b_ih,
                b_hh,
                w_hr,
                training=training,
                backend=lay.backend,
                **self.options[i],
            )
            self.h[i] = h
            if lstm:
                self.c[i] = c
        return x

    def state(self):
        """The carried state in the layer's hx format: h (L, B, P), or (h, c) for an LSTM."""
        h = np.stack(self.h)
        return (h, np.stack(self.c)) if self.cell == "lstm" else h


class Stepper:
    """Stateful step-by-step inference for a model, in eval mode.

    ``model``: a ``fastrnn.Sequential`` (e.g. Embedding -> LSTM -> Linear; nested Sequentials and
    other per-time-step layers are allowed) or a single RNN/LSTM/GRU layer. The model is put in eval
    mode. Bidirectional recurrent layers are rejected (ValueError): they cannot be run step by step.

    Inputs are per time step: for a model starting with an Embedding, integer tokens of shape (B,)
    (or a scalar when batch_size is 1); otherwise feature vectors (B, I) (or (I,) when batch_size is
    1). ``step(x)`` returns the model's output for that one step, (B, V) (or (V,) for a scalar /
    (I,) input). ``prime(seq)`` feeds a whole sequence at once, as the model's forward takes it:
    (T, B[, I]) time-major ((B, T[, I]) when the recurrent layers are batch_first) or unbatched
    (T[, I]) when batch_size is 1; it returns the output of the sequence's last step. Recurrent
    state carries across every call until ``reset()``.

    Weights are read when the Stepper is made and at every ``reset()``; in-place updates
    (optimizers, load_state_dict) are seen at once. ``prime`` matches the model's full forward
    bitwise, ``step`` to float rounding (see the module docstring).
    """

    def __init__(self, model, batch_size=1):
        layers = _flatten(model)
        if not layers:
            raise ValueError("model has no layers")
        self._plan = []  # per layer: a _Recurrent or the layer itself (applied per time step)
        self._recurrent = []
        batch_first = set()
        for i, layer in enumerate(layers):
            if is_recurrent(layer):
                if layer.bidirectional:
                    raise ValueError(
                        f"layer {i} ({type(layer).__name__}) is bidirectional: its "
                        "output at step t depends on later inputs, so it cannot be "
                        "run step by step for generation"
                    )
                r = _Recurrent(layer)
                self._plan.append(r)
                self._recurrent.append(r)
                batch_first.add(layer.batch_first)
            elif callable(layer):
                self._plan.append(layer)
            else:
                raise TypeError(f"layer {i} ({type(layer).__name__}) is not callable")
        if not self._recurrent:
            raise ValueError("model has no recurrent layer (RNN, LSTM or GRU) to step")
        if len(batch_first) > 1:
            raise ValueError("the model's recurrent layers disagree on batch_first")
        self.batch_first = batch_first.pop()
        self.tokens = isinstance(layers[0], Embedding)
        self.model = model
        model.eval()
        self.reset(batch_size)

    # -- state ------------------------------------------------------------------------------------

    def reset(self, batch_size=1):
        """Zeroes every recurrent state for ``batch_size`` sequences (and re-reads the weights)."""
        self.batch_size = integer("batch_size", batch_size, 1)
        for r in self._recurrent:
            r.refresh(self.batch_size)
        return self

    @property
    def state(self):
        """Copies of every recurrent layer's state, each in that layer's h_n / (h_n, c_n) format
        ((num_layers, B, size)); a list in layer order."""
        return [r.state() for r in self._recurrent]

    # -- running ----------------------------------------------------------------------------------

    def _input(self, name, x, item_ndim, time_axis):
        """``x`` checked, and whether it is unbatched (item_ndim: dims of one step of one
        sequence)."""
        x = np.asarray(from_tensor(x))
        if self.tokens:
            if x.dtype.kind not in "iu":
                raise TypeError(f"{name} must hold integer tokens, got dtype {x.dtype}")
        elif x.dtype.kind != "f":
            raise TypeError(f"{name} must be a float array of features, got dtype {x.dtype}")
        batched_ndim = item_ndim + time_axis + 1
        if x.ndim == batched_ndim - 1:
            if self.batch_size != 1:
                raise ValueError(
                    f"unbatched {name} of shape {x.shape} needs batch_size 1; this "
                    f"Stepper has batch_size {self.batch_size}"
                )
            return x, True
        if x.ndim != batched_ndim:
            raise ValueError(
                f"{name} has shape {x.shape}: expected {batched_ndim} dimensions "
                f"(or {batched_ndim - 1} unbatched)"
            )
        return x, False

    def _apply(self, x):
        """Runs the plan on time-major x (T, B, ...) with the carried state; returns (T, B, V)."""
        for p in self._plan:
            if isinstance(p, _Recurrent):
                lay = p.layer
                if x.dtype != lay.dtype:
                    raise TypeError(f"x must have the layer's dtype {lay.dtype}, got {x.dtype}")
                if x.ndim != 3 or x.shape[2] != lay.input_size:
                    raise ValueError(
                        f"the input of {type(lay).__name__} must have last dimension "
                        f"input_size={lay.input_size}, got shape {x.shape}"
                    )
                x = p.run(np.ascontiguousarray(x))
            else:
                x = p(x)
                if isinstance(x, tuple):
                    x = x[0]
        return x

    def step(self, x):
        """Feeds one time step: tokens (B,) / features (B, I), or a scalar token / (I,) when
        batch_size is 1. Returns the model's output for this step, (B, V), or (V,) for unbatched
        input."""
        x, unbatched = self._input("x", x, 0 if self.tokens else 1, 0)
        if unbatched:
            x = x[None]
        if x.shape[0] != self.batch_size:
            raise ValueError(f"x must hold batch_size={self.batch_size} rows, got shape {x.shape}")
        y = self._apply(x[None])[0]
        return y[0] if unbatched else y

    def prime(self, seq):
        """Feeds a whole sequence with one call per stacked recurrent layer, continuing from the
        carried state. Returns the output of its last step ((B, V), or (V,) unbatched)."""
        seq, unbatched = self._input("seq", seq, 0 if self.tokens else 1, 1)
        if unbatched:
            seq = seq[:, None]
        elif self.batch_first:
            seq = np.swapaxes(seq, 0, 1)
        if seq.shape[0] == 0:
            raise ValueError("seq is empty: prime needs at least one time step")
        if seq.shape[1] != self.batch_size:
            raise ValueError(f"seq must hold batch_size={self.batch_size} sequences, got {seq.shape[1]}")
        y = self._apply(seq)[-1]
        return y[0] if unbatched else y

    def __repr__(self):
        return f"Stepper(batch_size={self.batch_size}, model={type(self.model).__name__})"


# -------------------------------------------------------------------------------------------------
# Sampling


def _check_temperature(temperature):
    t = real("temperature", temperature, kind="a number")
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), got {temperature}")
    return t


def next_token(logits, temperature=1.0, top_k=None, rng=None):
    """One token id from a logits vector (V,): greedy argmax when temperature is 0, else a draw from
    softmax(logits / temperature) restricted to the top_k largest logits (ties at the k-th value are
    kept). The softmax is computed in float64 after subtracting the maximum."""
    z = np.asarray(logits)
    if z.ndim != 1 or z.size == 0:
        raise ValueError(f"logits must have shape (V,) with V >= 1, got {z.shape}")
    V = z.size
    m = z.max()
    if not np.isfinite(m) or np.isnan(z).any():
        raise ValueError("the model produced non-finite logits")
    if temperature == 0 or top_k == 1:
        return int(np.argmax(z))
    z = z.astype(np.float64)
    z -= m
    z /= temperature
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k)[V - top_k]
        z[z < kth] = -np.inf
    np.exp(z, out=z)
    cum = np.cumsum(z)
    u = rng.random() * cum[-1]
    i = int(np.searchsorted(cum, u, side="right"))
    if i >= V or z[i] == 0:  # u rounded up to the total: the last token with non-zero probability
        i = int(np.flatnonzero(z)[-1])
    return i


def _prime_ids(prime, vocab):
    if isinstance(prime, str):
        if vocab is None or not hasattr(vocab, "encode"):
            raise TypeError(
                "prime is a string: pass vocab (a CharVocab or anything with encode) "
                "to turn it into token ids"
            )
        ids = np.asarray(vocab.encode(prime))
    else:
        ids = np.asarray(from_tensor(prime))
        if ids.dtype.kind not in "iu" and not (ids.size == 0 and ids.dtype.kind == "f"):
            raise TypeError(
                f"prime must be a string or a sequence of integer token ids, got dtype {ids.dtype}"
            )
        ids = ids.astype(np.int64)
    if ids.ndim != 1:
        raise ValueError(f"prime must be one sequence (T,) of token ids, got shape {ids.shape}")
    if ids.size == 0:
        raise ValueError("prime must hold at least one token")
    return ids


def _decode(vocab, ids):
    if hasattr(vocab, "decode"):
        return vocab.decode(ids)
    if callable(vocab):
        return vocab(ids)
    raise TypeError(
        f"vocab must be a CharVocab (or have decode) or a decode function, got {type(vocab).__name__}"
    )


def sample(model, prime, length, temperature=1.0, top_k=None, seed=None, vocab=None):
    """Continues ``prime`` by ``length`` tokens sampled from a token model.

    model: a Sequential starting with an Embedding (or a ``Stepper`` of one; it is reset to batch
    size 1). prime: token ids (T,) or, with ``vocab``, a string. temperature: >= 0; logits are
    divided by it (lower concentrates on likely tokens), 0 means greedy argmax. top_k: None or an
    int >= 1; only the top_k most likely tokens can be drawn (1 is greedy). seed: an int, a numpy
    Generator or None.
    vocab: a CharVocab (or anything with encode/decode) or a decode function ids -> text.

    Returns the generated ids (int64 array (length,), the prime not included), or (ids, text) when
    ``vocab`` is given. The prompt is fed in one call per layer, then one step per generated token.
    A model passed directly runs in eval mode and is put back in training mode afterwards if it was
    in it; a Stepper is used as it is (reset to batch size 1, its state replaced).
    """
    length = integer("length", length, 0)
    check_memory(8 * length * (2 if vocab is not None else 1), "sample")  # the ids (and the text)
    temperature = _check_temperature(temperature)
    top_k = integer("top_k", top_k, 1, allow_none=True)
    rng = generator(seed)
    if vocab is not None and not (hasattr(vocab, "decode") or callable(vocab)):
        raise TypeError(
            f"vocab must be a CharVocab (or have decode) or a decode function, got {type(vocab).__name__}"
        )
    ids = _prime_ids(prime, vocab)
    if isinstance(model, Stepper):
        stepper, restore = model, None
    else:
        restore = getattr(model, "training", None)
        stepper = Stepper(model)
    try:
        if not stepper.tokens:
            raise ValueError("sample needs a token model: a Sequential whose first layer is an Embedding")
        stepper.reset(1)
        out = np.empty(int(length), np.int64)
        if length:
            logits = stepper.prime(ids)
            for t in range(int(length)):
                tok = next_token(logits, temperature, top_k, rng)
                out[t] = tok
                if t + 1 < length:
                    logits = stepper.step(np.array(tok))
    finally:
        if restore:  # a model given directly goes back to training mode if it was in it
            model.train()
    if vocab is None:
        return out
    return out, _decode(vocab, out)


# -------------------------------------------------------------------------------------------------
# Vocabulary


class CharVocab:
    """Characters <-> token ids. ``CharVocab.from_text(text)`` takes the sorted unique characters;
    ``CharVocab(chars)`` takes them in the given order (they must be unique single characters)."""

    def __init__(self, chars):
        if isinstance(chars, str):
            chars = list(chars)
        elif not isinstance(chars, (list, tuple)):
            raise TypeError(f"chars must be a string or a list of characters, got {type(chars).__name__}")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars must hold single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"chars must be unique, got repeated {dup!r}")
        if not chars:
            raise ValueError("chars must not be empty")
        self.chars = "".join(chars)
        self._index = {c: i for i, c in enumerate(self.chars)}
        # Python strings, not NumPy's "U1", which reads a NUL character back as "".
        self._array = np.array(list(self.chars), dtype=object)

    @classmethod
    def from_text(cls, text):
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text must not be empty")
        return cls(sorted(set(text)))

    def __len__(self):
        return len(self.chars)

    @property
    def size(self):
        return len(self.chars)

    def encode(self, text):
        """str -> int64 array of ids; a character not in the vocabulary is a ValueError."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        index = self._index
        try:
            return np.fromiter((index[c] for c in text), np.int64, len(text))
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids):
        """A sequence of ids (ints in [0, len)) -> str."""
        a = np.asarray(from_tensor(ids))
        if a.size == 0:
            return ""
        if a.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"ids must be one sequence (T,), got shape {a.shape}")
        if a.min() < 0 or a.max() >= len(self.chars):
            bad = a.min() if a.min() < 0 else a.max()
            raise ValueError(f"ids must be in [0, {len(self.chars)}), got {int(bad)}")
        return "".join(self._array[a])

    def to_dict(self):
        """A JSON-serialisable dict; ``CharVocab.from_dict`` turns it back."""
        return {"type": "CharVocab", "chars": self.chars}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise TypeError(f"d must be a dict, got {type(d).__name__}")
        if d.get("type") != "CharVocab" or not isinstance(d.get("chars"), str):
            raise ValueError("d must be a CharVocab dict: {'type': 'CharVocab', 'chars': str}")
        return cls(d["chars"])

    def __eq__(self, other):
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __hash__(self):
        return hash(self.chars)

    def __repr__(self):
        return f"CharVocab({self.chars!r})"
