"""Truncated backpropagation through time (TBPTT) over one long sequence.

    result = fastrnn.train(model, inputs, targets, optimizer=opt, bptt=64, batch_size=32, clip=1.0,
                           eval_data=(val_inputs, val_targets), checkpoint="best.npz")

``inputs`` (N, ...) and ``targets`` (N, ...) are one long sequence, aligned step by step (for next-step
prediction: ``data[:-1]`` and ``data[1:]``). ``batchify`` cuts it into ``batch_size`` streams of
N // batch_size steps each (the tail that does not fill a stream is dropped); every step of training
takes the next ``bptt`` steps of all streams, runs the model forward from the state the previous chunk
ended in, and backpropagates through that chunk only: the carried state is a plain array, so no
gradient flows into earlier chunks. The state is zeroed at the start of every epoch.

Each step: forward, loss, ``model.zero_grad()``, backward, ``clip_grad_norm`` (unless ``clip`` is
None), ``optimizer.step()``. Progress goes to a tqdm bar when tqdm is installed (``pip install tqdm``),
else to a line on stderr every ``log_every`` steps.

Evaluation runs every ``eval_every`` steps (default: at the end of each epoch) and at the end: the mean
loss over all of ``eval_data`` in eval mode (no dropout), with the state carried across its chunks in
the same way; without ``eval_data`` the mean training loss since the previous evaluation stands in for
it. When the loss improves, the model and optimizer are saved to ``checkpoint`` (atomically, see
``fastrnn.save_checkpoint``), so the file always holds the best model seen.

Ctrl-C (SIGINT, when training runs in the main thread) stops cleanly: the current step finishes, a
final evaluation runs, the checkpoint keeps the best model, and ``train`` returns with
``result.interrupted`` set. A second Ctrl-C raises KeyboardInterrupt at once (the checkpoint file is
still whole: saves are atomic).
"""

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import losses as _losses
from . import optim as _optim
from ._checks import integer, real, writable_path
from ._typing import FloatArray
from .checkpoint import check_savable, save_checkpoint
from .clip import clip_grad_norm
from .layers import is_recurrent
from .linear import Embedding
from .sequential import Sequential, State, _flatten

#: A loss: (prediction, target) -> (loss, gradient of the loss w.r.t. the prediction)
LossFn = Callable[[FloatArray, Any], "tuple[float, FloatArray]"]

__all__ = ["train", "evaluate", "batchify", "TrainResult"]

_LOSSES: dict[str, LossFn] = {"cross_entropy": _losses.cross_entropy, "mse": _losses.mse}


@dataclass
class TrainResult:
    """What ``train`` did. Losses are (step, value) pairs; ``best_loss`` is the lowest evaluation loss
    (the training loss where there was no eval_data) and ``best_step`` the step it was reached at;
    ``checkpoint`` is the path holding that model (None without one)."""

    steps: int = 0
    epochs: int = 0  # complete passes over the data
    seconds: float = 0.0  # wall time, evaluations and checkpoints included
    train_seconds: float = 0.0  # time in the training steps alone
    positions: int = 0  # time steps x streams trained on
    train_losses: list[tuple[int, float]] = field(default_factory=list, repr=False)
    eval_losses: list[tuple[int, float]] = field(default_factory=list, repr=False)
    best_loss: float = math.inf
    best_step: int = 0
    checkpoint: str | None = None
    interrupted: bool = False
    stopped_by_callback: bool = False

    @property
    def positions_per_second(self) -> float:
        """Training throughput: positions (time steps x streams) per second of training steps."""
        return self.positions / self.train_seconds if self.train_seconds > 0 else 0.0


# -- argument checks --------------------------------------------------------------------------------


@overload
def _positive_int(name: str, value: object) -> int: ...
@overload
def _positive_int(name: str, value: object, allow_none: bool) -> int | None: ...
def _positive_int(name: str, value: object, allow_none: bool = False) -> int | None:
    return integer(name, value, 1, allow_none=allow_none, kind="a positive int")


def _positive_number(name: str, value: object) -> float | None:
    number = real(name, value, kind="a positive number", allow_none=True)
    if number is None:
        return None
    if not number > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return number


def _as_model(model: object) -> Sequential:
    if isinstance(model, Sequential):
        return model
    if is_recurrent(model):
        return Sequential(model)
    raise TypeError(f"model must be a fastrnn.Sequential or RNN/LSTM/GRU layer, got {type(model).__name__}")


def _batch_first(model: Sequential) -> bool:
    """Whether the model's recurrent layers take (B, T, ...) input (they must all agree)."""
    flags = {layer.batch_first for layer in _flatten(model) if is_recurrent(layer)}
    if len(flags) > 1:
        raise ValueError("the model's recurrent layers disagree on batch_first")
    return bool(flags.pop()) if flags else False


def _loss_fn(loss: str | LossFn | None, targets: NDArray[Any]) -> LossFn:
    if loss is None:
        loss = "cross_entropy" if targets.dtype.kind in "iu" else "mse"
    if callable(loss):
        return loss
    if loss not in _LOSSES:
        raise ValueError(
            f"loss must be 'cross_entropy', 'mse' or a callable (pred, target) -> (loss, dpred), got {loss!r}"
        )
    return _LOSSES[loss]


def _sequence_pair(name: str, inputs: ArrayLike, targets: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    x, y = np.asarray(inputs), np.asarray(targets)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"{name}: inputs and targets must be sequences of shape (N, ...), got "
            f"shapes {x.shape} and {y.shape}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}: inputs and targets must have the same length N along axis 0, got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    return x, y


def batchify(seq: ArrayLike, batch_size: int) -> NDArray[Any]:
    """(N, ...) -> (N // batch_size, batch_size, ...): column b is the b-th contiguous stretch of
    ``seq``; the N % batch_size trailing steps are dropped."""
    arr = np.asarray(seq)
    batch_size = _positive_int("batch_size", batch_size)
    if arr.ndim == 0:
        raise ValueError("seq must have shape (N, ...), got a scalar")
    steps = arr.shape[0] // batch_size
    if steps == 0:
        raise ValueError(
            f"a sequence of {arr.shape[0]} steps is too short for batch_size={batch_size} streams"
        )
    cut = arr[: steps * batch_size].reshape((batch_size, steps) + arr.shape[1:])
    return np.ascontiguousarray(np.swapaxes(cut, 0, 1))


def _chunks(
    x: NDArray[Any], y: NDArray[Any], bptt: int, batch_first: bool
) -> Iterator[tuple[NDArray[Any], NDArray[Any]]]:
    """Successive (x, y) chunks of ``bptt`` time steps of batchified x, y, in the model's layout."""
    for t in range(0, x.shape[0], bptt):
        cx, cy = x[t : t + bptt], y[t : t + bptt]
        if batch_first:
            cx, cy = np.swapaxes(cx, 0, 1), np.swapaxes(cy, 0, 1)
        yield np.ascontiguousarray(cx), np.ascontiguousarray(cy)


# -- evaluation -------------------------------------------------------------------------------------


def evaluate(
    model: object,
    inputs: ArrayLike,
    targets: ArrayLike,
    loss: str | LossFn | None = None,
    bptt: int = 64,
    batch_size: int = 32,
) -> float:
    """The mean loss of ``model`` over the whole sequence pair in eval mode (no dropout), cut into at
    most ``batch_size`` streams with the state carried across chunks of ``bptt`` steps, as ``train``
    does. Chunks are weighted by their size, so the result is the mean over all positions. The model's
    train/eval mode is restored afterwards."""
    net = _as_model(model)
    seq_in, seq_out = _sequence_pair("evaluate", inputs, targets)
    fn = _loss_fn(loss, seq_out)
    bptt = _positive_int("bptt", bptt)
    streams = min(_positive_int("batch_size", batch_size), seq_in.shape[0])
    if streams == 0:
        raise ValueError("evaluate: the sequence is empty")
    x, y = batchify(seq_in, streams), batchify(seq_out, streams)
    was_training = net.training
    net.eval()
    try:
        total, count = 0.0, 0
        state: list[State] | None = None
        for cx, cy in _chunks(x, y, bptt, _batch_first(net)):
            out, state = net.forward_with_state(cx, state)
            value, _ = fn(out, cy)
            total += float(value) * cy.shape[0] * cy.shape[1]
            count += cy.shape[0] * cy.shape[1]
    finally:
        net.train(was_training)
    return total / count


def _check_eval_data(
    model: Sequential,
    train_data: tuple[NDArray[Any], NDArray[Any]],
    eval_data: tuple[NDArray[Any], NDArray[Any]],
    fn: LossFn,
    batch_size: int,
) -> None:
    """Finds, before the first step, what would otherwise fail only at the first evaluation: eval
    data unlike the training data, too short, with token ids the model's Embedding does not have,
    or that the model or the loss refuses (one position is run through both)."""
    for what, a, b in zip(("inputs", "targets"), train_data, eval_data):
        if a.shape[1:] != b.shape[1:] or a.dtype.kind != b.dtype.kind:
            raise ValueError(
                f"eval_data: {what} must be like the training {what}: (N, ...) with ... = "
                f"{a.shape[1:]} and dtype kind {a.dtype.kind!r}, got {b.shape} {b.dtype}"
            )
    if eval_data[0].shape[0] == 0:
        raise ValueError("eval_data: the sequences are empty")
    first = _flatten(model)[0]
    if isinstance(first, Embedding) and eval_data[0].dtype.kind in "iu":
        low, high = int(eval_data[0].min()), int(eval_data[0].max())
        if low < 0 or high >= first.num_embeddings:
            raise ValueError(
                f"eval_data: inputs must be token ids in [0, {first.num_embeddings}) (the model's "
                f"Embedding), got {low if low < 0 else high}"
            )
    try:
        evaluate(model, eval_data[0][:1], eval_data[1][:1], loss=fn, bptt=1, batch_size=1)
    except (ValueError, TypeError) as e:
        raise type(e)(f"eval_data: {e}") from None


# -- Ctrl-C -----------------------------------------------------------------------------------------


class _StopOnSigint:
    """While active (main thread only), the first SIGINT sets ``requested``; a second one raises
    KeyboardInterrupt as usual."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.requested = False
        self._say = say
        self._previous: Any = None  # the handler to put back (a callable, an int or None)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._say("Ctrl-C: stopping after this step (press again to abort at once)")

    def __enter__(self) -> "_StopOnSigint":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# -- progress ---------------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar when tqdm is installed and wanted, else a line on stderr every log_every steps.
    ``total`` is the number of steps, or None when it is not known in advance."""

    def __init__(self, total: int | None, enabled: bool, log_every: int) -> None:
        self._bar: Any = None  # a tqdm bar
        self._enabled = enabled
        self._log_every = log_every
        self._total = total
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def update(self, step: int, loss: float, rate: float) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", pos_per_s=f"{rate:,.0f}", refresh=False)
        elif self._enabled and (step % self._log_every == 0 or step == self._total):
            of = "" if self._total is None else f"/{self._total}"
            print(f"step {step}{of}  loss {loss:.4f}  {rate:,.0f} positions/s", file=sys.stderr, flush=True)

    def say(self, text: str, always: bool = False) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        elif self._enabled or always:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- training ---------------------------------------------------------------------------------------


def train(
    model: object,
    inputs: ArrayLike,
    targets: ArrayLike,
    *,
    loss: str | LossFn | None = None,
    optimizer: _optim.Optimizer | None = None,
    epochs: int = 1,
    bptt: int = 64,
    batch_size: int = 32,
    clip: float | None = 1.0,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    eval_data: Sequence[ArrayLike] | None = None,
    eval_every: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
    log_every: int = 50,
    callback: Callable[[int, float], object] | None = None,
) -> TrainResult:
    """Trains ``model`` on one long sequence with truncated BPTT; returns a ``TrainResult``.

    Args:
        model: a ``fastrnn.Sequential`` (e.g. Embedding -> LSTM -> Linear) or a single RNN/LSTM/GRU
            layer, time-major or batch_first (the chunks are laid out to match).
        inputs: (N, ...), aligned with ``targets`` along axis 0.
        targets: (N, ...); integer targets default to ``loss="cross_entropy"``, float ones to
            ``"mse"``.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable (pred, target) -> (loss, dpred).
        optimizer: a ``fastrnn.optim`` optimizer over ``model.parameters()`` (default Adam, lr=1e-3).
        epochs: passes over the data.
        bptt: chunk length in time steps.
        batch_size: the number of streams the sequence is cut into.
        clip: max gradient norm (``clip_grad_norm``), or None for no clipping.
        max_steps: stop after this many steps (or at ``max_seconds``, whichever comes first).
        max_seconds: stop after this many seconds.
        eval_data: (inputs, targets) held out.
        eval_every: steps between evaluations (default: once per epoch).
        checkpoint: path to keep the best model in.
        extra: a dict stored in the checkpoint's ``extra`` (e.g. a vocabulary) beside the "train"
            entry this function adds (step, loss).
        progress: show progress (tqdm if installed).
        log_every: steps between progress lines without tqdm.
        callback: called as ``callback(step, loss)`` after every step; returning True stops training.
    """
    net = _as_model(model)
    seq_in, seq_out = _sequence_pair("train", inputs, targets)
    fn = _loss_fn(loss, seq_out)
    epochs = _positive_int("epochs", epochs)
    bptt = _positive_int("bptt", bptt)
    batch_size = _positive_int("batch_size", batch_size)
    max_steps = _positive_int("max_steps", max_steps, allow_none=True)
    eval_every = _positive_int("eval_every", eval_every, allow_none=True)
    log_every = _positive_int("log_every", log_every)
    clip = _positive_number("clip", clip)
    max_seconds = _positive_number("max_seconds", max_seconds)
    held_out = None
    if eval_data is not None:
        if not isinstance(eval_data, (tuple, list)) or len(eval_data) != 2:
            raise TypeError("eval_data must be None or a pair (inputs, targets)")
        held_out = _sequence_pair("eval_data", *eval_data)
        _check_eval_data(net, (seq_in, seq_out), held_out, fn, batch_size)
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable or None")
    path = None
    if checkpoint is not None:  # refused now rather than at the first save, after training
        path = writable_path("checkpoint", checkpoint)
        check_savable(net)
    opt = _optim.Adam(net.parameters(), lr=1e-3) if optimizer is None else optimizer

    x, y = batchify(seq_in, batch_size), batchify(seq_out, batch_size)
    batch_first = _batch_first(net)
    per_epoch = -(-x.shape[0] // bptt)
    total = per_epoch * epochs if max_steps is None else min(max_steps, per_epoch * epochs)
    shown_total = None if max_seconds is not None else total  # a time limit makes it unknown
    if eval_every is None:
        eval_every = per_epoch

    result = TrainResult(checkpoint=None)
    window: list[float] = []  # training losses since the last evaluation
    bar = _Progress(shown_total, bool(progress), log_every)

    def evaluate_and_keep() -> None:
        if held_out is not None:
            value = evaluate(net, *held_out, loss=fn, bptt=bptt, batch_size=batch_size)
        elif window:
            value = float(np.mean(window))
        else:
            return
        window.clear()
        result.eval_losses.append((result.steps, value))
        improved = value < result.best_loss  # NaN never improves
        bar.say(
            f"step {result.steps}: {'eval' if held_out is not None else 'train'} loss "
            f"{value:.4f}" + ("  (best)" if improved else "")
        )
        if improved:
            result.best_loss, result.best_step = value, result.steps
            if path is not None:
                info = {"step": result.steps, "loss": value if math.isfinite(value) else None}
                save_checkpoint(path, net, opt, extra={**(extra or {}), "train": info})
                result.checkpoint = path

    net.train()
    start = time.perf_counter()
    stop = False
    try:
        with _StopOnSigint(lambda text: bar.say(text, always=True)) as sigint:
            for _ in range(epochs):
                state: list[State] | None = None
                for cx, cy in _chunks(x, y, bptt, batch_first):
                    began = time.perf_counter()
                    out, state = net.forward_with_state(cx, state)
                    step_loss, dout = fn(out, cy)
                    net.zero_grad()
                    net.backward(dout, need_dx=False)  # the data needs no gradient
                    if clip is not None:
                        clip_grad_norm(net.parameters(), clip)
                    opt.step()

                    value = float(step_loss)
                    result.steps += 1
                    result.positions += cy.shape[0] * cy.shape[1]
                    result.train_seconds += time.perf_counter() - began
                    result.seconds = time.perf_counter() - start
                    result.epochs = result.steps // per_epoch
                    result.train_losses.append((result.steps, value))
                    window.append(value)
                    bar.update(result.steps, value, result.positions_per_second)

                    if callback is not None and callback(result.steps, value) is True:
                        result.stopped_by_callback = stop = True
                    if sigint.requested:
                        result.interrupted = stop = True
                    if (max_steps is not None and result.steps >= max_steps) or (
                        max_seconds is not None and result.seconds >= max_seconds
                    ):
                        stop = True
                    if stop:
                        break
                    if result.steps % eval_every == 0:
                        evaluate_and_keep()
                if stop:
                    break
            if window:  # steps since the last evaluation
                evaluate_and_keep()
    finally:
        result.seconds = time.perf_counter() - start
        bar.close()
    return result
