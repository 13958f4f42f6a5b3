"""Checkpoints: a model's configuration, weights and optimizer state in one ``.npz`` file.

    fastrnn.save_checkpoint(path, model, optimizer=None, extra=None) -> path
    model, optimizer, extra = fastrnn.load_checkpoint(path)     # a Checkpoint (a named tuple)

``model`` is an RNN, LSTM, GRU, Linear, Embedding or a Sequential of those (nested Sequentials
included). ``optimizer`` is a ``fastrnn.optim`` optimizer (SGD, Adagrad, RMSprop, Adam, AdamW) over
exactly ``model.parameters()``, in that order. ``extra`` is any JSON-serialisable value (a vocabulary,
the step, the best loss, ...); it comes back as ``json.loads`` gives it (tuples become lists, dict keys
become strings; NaN and infinities are kept).

``load_checkpoint`` rebuilds everything: a new model of the saved configuration holding the saved
weights (in the saved train/eval mode, with each layer's random generator, which draws the dropout
masks, in its saved state), a new optimizer of the saved kind over ``model.parameters()`` with the
saved hyper-parameters (as they were at the save, e.g. a scheduled ``lr``) and state (``None`` if none
was saved), and ``extra``. Gradients are not saved (they start at zero). Continuing training from a
loaded checkpoint gives bitwise the same weights as continuing without the save/load. A layer saved
with ``backend="native"`` needs the native backend where it is loaded (else CheckpointError); one saved
with ``backend=None`` uses the loading machine's default.

The file is an ordinary uncompressed ``.npz`` (``numpy.savez``) holding

- ``__fastrnn_checkpoint__``: the header, a uint8 array of UTF-8 JSON::

      {"format": "fastrnn.checkpoint", "version": 1,
       "model": {"type": "Sequential", "training": true, "layers": [
                 {"type": "LSTM", "training": true, "rng": {...PCG64 state...},
                  "args": {"input_size": 8, "hidden_size": 16, ..., "dtype": "float32", ...}}, ...]},
       "arrays": {"model/0.weight": {"shape": [10, 8], "dtype": "float32"}, ...},
       "optimizer": null | {"type": "Adam", "hyperparams": {"lr": 0.001, ...},
                            "state": [{"ints": {"step": 3}, "arrays": ["exp_avg", "exp_avg_sq"]},
                                      ...]},          # one entry per parameter, in order
       "extra": ...}

- ``model/<state_dict name>``: the weights (``model/0.weight``, ``model/1.weight_ih_l0``, ...);
- ``optim/<parameter index>/<name>``: the optimizer's state arrays (``optim/0/exp_avg``, ...).

Saving is atomic: the file is written to a temporary file in the same directory, flushed to disk and
moved over ``path`` with ``os.replace``, so an interrupted save leaves the previous file (or none),
never a partial one. ``path`` is used exactly as given (no ``.npz`` is appended).

Loading treats the file as untrusted. It uses ``numpy.load(path, allow_pickle=False)`` only (nothing is
ever unpickled, imported or evaluated) and checks everything before building anything: the archive
(uncompressed members only, no duplicates), the header (size, UTF-8, JSON, format and version), the
model configuration (layer types from a fixed allow-list, every constructor argument's type; the layers'
own constructors then check the ranges), every array (each listed array exists with exactly the header's
shape and dtype, float32/float64 only, read from its .npy header before any data is read; no array is
missing or unexpected) and the sizes: the parameter count implied by the configuration must match the
arrays actually stored, so absurd sizes are refused before anything is allocated. Every problem raises
``CheckpointError`` (a ``ValueError``) whose message starts with ``checkpoint:`` and names it; a file
that cannot be opened raises the usual ``OSError``.
"""

import json
import math
import numbers
import os
import secrets
import stat
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import _checks
from . import optim as _optim
from ._checkpoint_format import (
    ARGS,
    BAD_DATA,
    DTYPES,
    FORMAT,
    HEADER_KEY,
    LAYERS,
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    OPTIMIZERS,
    VERSION,
    CheckpointError,
    archive_members,
    check_arrays,
    check_optimizer_spec,
    check_spec,
    fail,
    read,
    read_header,
)
from ._checks import writable_path
from .layers import GRU, LSTM, RNN
from .linear import Embedding, Linear
from .sequential import Sequential, _flatten

#: What a checkpoint holds: a layer, or a Sequential of layers.
Model = Sequential | RNN | LSTM | GRU | Linear | Embedding

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "Checkpoint",
    "CheckpointError",
    "FORMAT",
    "VERSION",
    "HEADER_KEY",
]


class Checkpoint(NamedTuple):
    """What ``load_checkpoint`` returns; unpacks as ``model, optimizer, extra = ...``.

    model: the rebuilt layer or Sequential. optimizer: the rebuilt optimizer over
    ``model.parameters()`` (or None when none was saved). extra: the saved JSON value (or None)."""

    model: Model
    optimizer: _optim.Optimizer | None
    extra: Any  # the JSON value saved


# -------------------------------------------------------------------------------------------------
# Saving


def _model_spec(model: object, where: str, depth: int) -> dict[str, Any]:
    """The header's description of ``model`` (type, constructor arguments, mode, generator state)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"save_checkpoint: Sequentials nested deeper than {MAX_DEPTH}")
    if type(model) is Sequential:
        return {
            "type": "Sequential",
            "training": bool(model.training),
            "layers": [
                _model_spec(layer, f"{where}.layers[{i}]", depth + 1) for i, layer in enumerate(model)
            ],
        }
    kind = type(model).__name__
    if LAYERS.get(kind) is not type(model):
        raise TypeError(
            f"save_checkpoint: {where} is a {type(model).__name__}; checkpoints hold only "
            f"{', '.join(LAYERS)} and Sequential (exact types, not subclasses)"
        )
    args: dict[str, Any] = {}
    for name, _ in ARGS[kind]:
        value = getattr(model, name)
        if name == "dtype":
            value = np.dtype(value).name
        elif name == "checkpoint_every":
            value = _checks.checkpoint_every(value)  # an attribute set after construction too
        elif isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, numbers.Integral):
            value = int(value)
        elif isinstance(value, numbers.Real):
            value = float(value)
        args[name] = value
    if args.get("checkpoint_every", 0) is None:
        del args["checkpoint_every"]  # see ADDED_ARGS
    spec: dict[str, Any] = {"type": kind, "training": bool(getattr(model, "training")), "args": args}
    rng = getattr(model, "_rng", None)
    state = getattr(getattr(rng, "bit_generator", None), "state", None)
    if isinstance(state, dict) and state.get("bit_generator") == "PCG64":
        spec["rng"] = {
            "bit_generator": "PCG64",
            "state": {k: int(state["state"][k]) for k in ("state", "inc")},
            "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"]),
        }
    return spec


def _optimizer_spec(optimizer: object, model: Model, arrays: dict[str, NDArray[Any]]) -> dict[str, Any]:
    kind = type(optimizer).__name__
    if OPTIMIZERS.get(kind) is not type(optimizer):
        raise TypeError(
            f"save_checkpoint: optimizer is a {type(optimizer).__name__}; checkpoints hold "
            f"only {', '.join(OPTIMIZERS)} (exact types)"
        )
    assert isinstance(optimizer, _optim.Optimizer)  # one of OPTIMIZERS (checked above)
    params = model.parameters()
    if len(optimizer.params) != len(params) or any(
        p.data is not q.data for p, q in zip(optimizer.params, params)
    ):
        raise ValueError(
            "save_checkpoint: the optimizer must be over exactly model.parameters(), in that order"
        )
    sd = optimizer.state_dict()
    state = []
    for i, (entry, p) in enumerate(zip(sd["state"], params)):
        ints: dict[str, int] = {}
        names: list[str] = []
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                if value.dtype != p.data.dtype or value.shape != p.data.shape:
                    raise ValueError(
                        f"save_checkpoint: optimizer state {i}/{name} does not match its "
                        f"parameter's shape and dtype"
                    )
                arrays[f"optim/{i}/{name}"] = np.ascontiguousarray(value)
                names.append(name)
            else:
                ints[name] = int(value)
        state.append({"ints": ints, "arrays": names})
    return {"type": kind, "hyperparams": sd["hyperparams"], "state": state}


def check_savable(model: object) -> None:
    """Raises ValueError when ``model`` uses one weight twice (a shared layer, tied weights): a
    checkpoint records each layer apart, so such a model would load with the sharing undone."""
    seen = set()
    for layer in _flatten(model):
        for p in layer.parameters() if hasattr(layer, "parameters") else ():
            if id(p.data) in seen:
                raise ValueError(
                    f"save_checkpoint: the model uses the weight {p.name!r} of its "
                    f"{type(layer).__name__} more than once (a shared layer or tied weights); a "
                    "checkpoint cannot record that sharing and would load it undone"
                )
            seen.add(id(p.data))


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Model,
    optimizer: _optim.Optimizer | None = None,
    extra: Any = None,
) -> str:
    """Saves ``model`` (configuration and weights), ``optimizer`` (kind, hyper-parameters and state;
    it must be over exactly ``model.parameters()``) and ``extra`` (any JSON-serialisable value) to the
    single file ``path``, atomically. Returns ``path``. See the module docstring for the format."""
    file = os.fspath(path)
    spec = _model_spec(model, "model", 0)
    check_savable(model)
    arrays: dict[str, NDArray[Any]] = {}
    for name, weight in model.state_dict().items():
        value = np.asarray(weight)
        if value.dtype not in DTYPES.values():
            raise TypeError(f"save_checkpoint: weight {name} has dtype {value.dtype}")
        arrays[f"model/{name}"] = np.ascontiguousarray(value)
    opt_spec = None if optimizer is None else _optimizer_spec(optimizer, model, arrays)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "model": spec,
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()},
        "optimizer": opt_spec,
        "extra": extra,
    }
    try:
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint: extra must be JSON-serialisable: {e}") from None
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if raw.size > MAX_HEADER_BYTES:
        raise ValueError(
            f"save_checkpoint: the header is {raw.size} bytes, more than the "
            f"{MAX_HEADER_BYTES} a checkpoint may hold (is extra too large?)"
        )
    members = {HEADER_KEY: raw, **arrays}
    _write_atomically(file, members)
    return file


def _write_atomically(path: str, members: dict[str, NDArray[Any]]) -> None:
    writable_path("path", path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    while True:  # a fresh name; created with the usual permissions (0666 minus the umask)
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:  # the error names the user's path, not the temporary file
            raise OSError(e.errno, f"save_checkpoint: cannot write {path!r}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            # float and uint8 arrays only: nothing is pickled (no member is named allow_pickle)
            np.savez(f, **members)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno is not None:
            raise OSError(e.errno, f"save_checkpoint: cannot write {path!r}: {e.strerror}") from None
        raise
    try:  # make the rename itself durable (POSIX); best effort
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# -------------------------------------------------------------------------------------------------
# Loading: building what the checked file describes


def _build(spec: dict[str, Any], where: str) -> Model:
    """Builds the model a checked description asks for, turning the layers' own argument errors into
    CheckpointErrors."""
    if spec["type"] == "Sequential":
        model = Sequential(*[_build(s, f"{where}.layers[{i}]") for i, s in enumerate(spec["layers"])])
        model.training = spec["training"]  # the layers carry their own modes
        return model
    kind, args = spec["type"], spec["args"]
    try:
        layer = LAYERS[kind](**{name: args[name] for name, _ in ARGS[kind]})
        layer.train(spec["training"])
        if spec.get("rng") is not None:
            layer._rng.bit_generator.state = spec["rng"]
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        fail(f"{where} ({kind}): {e}")
    return layer


def _build_optimizer(
    npz: np.lib.npyio.NpzFile,
    cls: type[_optim.Optimizer],
    hyper: dict[str, Any],
    state: list[dict[str, Any]],
    model: Model,
    arrays: dict[str, tuple[tuple[int, ...], np.dtype[Any]]],
) -> _optim.Optimizer:
    params = model.parameters()
    entries = []
    for i, (entry, p) in enumerate(zip(state, params)):
        new = dict(entry["ints"])
        for name in entry["arrays"]:
            key = f"optim/{i}/{name}"
            shape, dtype = arrays[key]
            if shape != p.data.shape or dtype != p.data.dtype:
                fail(
                    f"array {key!r} has shape {shape} and dtype {dtype.name}, but its parameter "
                    f"{p.name} has shape {p.data.shape} and dtype {p.data.dtype}"
                )
            new[name] = read(npz, key)
        entries.append(new)
    try:
        optimizer = cls(params, **hyper)
        optimizer.load_state_dict({"optimizer": cls.__name__, "hyperparams": hyper, "state": entries})
    except (TypeError, ValueError) as e:
        fail(f"optimizer {cls.__name__}: {e}")
    return optimizer


# -------------------------------------------------------------------------------------------------
# Loading


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Loads a checkpoint written by ``save_checkpoint``; returns ``Checkpoint(model, optimizer,
    extra)`` (unpackable as a tuple). The file is never unpickled; any problem with it raises
    ``CheckpointError`` (a ValueError) naming it, before anything is built from it."""
    file = os.fspath(path)
    # Opened without blocking, so that a FIFO or a device is refused instead of waited on forever.
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        fail(f"{file!r} is not a regular file")
    with os.fdopen(fd, "rb") as f:  # one open file for every check and read (closed on any error)
        magic = f.read(4)
        file_size = os.fstat(f.fileno()).st_size
        if magic != b"PK\x03\x04":
            fail(f"{file!r} is not a checkpoint (not an .npz / zip archive)")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except BAD_DATA as e:
            fail(f"{file!r} is not a readable .npz archive (truncated or corrupt): {e}")
        if not isinstance(npz, np.lib.npyio.NpzFile):  # defensive: the magic says zip
            fail(f"{file!r} is not an .npz archive")
        with npz:
            return _load(npz, file_size)


def _load(npz: np.lib.npyio.NpzFile, file_size: int) -> Checkpoint:
    try:
        members = archive_members(npz, file_size)
    except CheckpointError:
        raise
    except BAD_DATA as e:
        fail(f"the archive is corrupt: {e}")
    header = read_header(npz, members)
    arrays = check_arrays(npz, members, header["arrays"])

    # The model: its description, then its size against what the file really holds, then build.
    leaves = check_spec(header["model"], "model", "model/", 0)
    model_keys = [k for k in arrays if k.startswith("model/")]
    for where, kind, args, prefix, expected in leaves:
        stored = sum(
            math.prod(arrays[k][0]) * arrays[k][1].itemsize
            for k in model_keys
            if k.startswith(prefix) and "." not in k[len(prefix) :]
        )
        if expected != stored:
            fail(
                f"{where} ({kind}): its configuration {args} needs {expected} bytes of weights but "
                f"the file holds {stored} for it (absurd sizes, or arrays that do not belong to "
                f"this model)"
            )
    opt = None
    if header["optimizer"] is not None:
        opt = check_optimizer_spec(header["optimizer"], arrays, len(model_keys))
    elif any(k.startswith("optim/") for k in arrays):
        fail("optimizer arrays present but the header has no optimizer")

    model = _build(header["model"], "model")
    own = model.state_dict()
    want = {f"model/{k}": (v.shape, v.dtype) for k, v in own.items()}
    missing = sorted(set(want) - set(model_keys))
    unexpected = sorted(set(model_keys) - set(want))
    if missing or unexpected:
        fail(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
    for key, (shape, dtype) in want.items():
        if arrays[key] != (shape, dtype):
            fail(
                f"array {key!r} has shape {arrays[key][0]} and dtype {arrays[key][1].name}, the "
                f"model needs {shape} and {dtype.name}"
            )
    weights = {key[len("model/") :]: read(npz, key) for key in want}
    try:
        model.load_state_dict(weights)
    except (TypeError, ValueError) as e:
        fail(f"the weights do not load into the model: {e}")

    optimizer = None if opt is None else _build_optimizer(npz, *opt, model, arrays)
    return Checkpoint(model, optimizer, header["extra"])
