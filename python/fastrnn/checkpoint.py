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
import struct
import zipfile
import zlib
from typing import Any, NamedTuple

import numpy as np

from . import optim as _optim
from ._cells import LAYER_GATES
from .layers import GRU, LSTM, RNN
from .linear import Embedding, Linear
from .sequential import Sequential

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError", "FORMAT", "VERSION",
           "HEADER_KEY"]

FORMAT = "fastrnn.checkpoint"
VERSION = 1
HEADER_KEY = "__fastrnn_checkpoint__"

_MAX_HEADER_BYTES = 64 << 20   # a header is a few KiB, plus whatever ``extra`` holds
_MAX_DEPTH = 32                # nesting of Sequentials
_MAX_NDIM = 32

# The only layer and optimizer types a checkpoint may name. Names from the file are looked up here and
# nowhere else: nothing is ever imported or evaluated.
_LAYERS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU, "Linear": Linear, "Embedding": Embedding}
_OPTIMIZERS = {cls.__name__: cls for cls in (_optim.SGD, _optim.Adagrad, _optim.RMSprop,
                                             _optim.Adam, _optim.AdamW)}

# Constructor arguments per layer type, in the constructor's order, with the JSON type each must have.
_INT, _BOOL, _NUM, _STR, _DTYPE, _OPT_STR, _OPT_INT = ("int", "bool", "number", "str", "dtype",
                                                        "str or null", "int or null")
_RECURRENT_TAIL = [("bias", _BOOL), ("batch_first", _BOOL), ("dropout", _NUM),
                   ("bidirectional", _BOOL)]
_ARGS = {
    "RNN": [("input_size", _INT), ("hidden_size", _INT), ("num_layers", _INT),
            ("nonlinearity", _STR)] + _RECURRENT_TAIL
           + [("dtype", _DTYPE), ("backend", _OPT_STR), ("seed", _OPT_INT)],
    "GRU": [("input_size", _INT), ("hidden_size", _INT), ("num_layers", _INT)] + _RECURRENT_TAIL
           + [("dtype", _DTYPE), ("backend", _OPT_STR), ("seed", _OPT_INT)],
    "LSTM": [("input_size", _INT), ("hidden_size", _INT), ("num_layers", _INT)] + _RECURRENT_TAIL
            + [("proj_size", _INT), ("dtype", _DTYPE), ("backend", _OPT_STR), ("seed", _OPT_INT)],
    "Linear": [("in_features", _INT), ("out_features", _INT), ("bias", _BOOL), ("dtype", _DTYPE),
               ("seed", _OPT_INT)],
    "Embedding": [("num_embeddings", _INT), ("embedding_dim", _INT), ("dtype", _DTYPE),
                  ("seed", _OPT_INT)],
}
_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
_RNG_MAX = {"state": 1 << 128, "inc": 1 << 128}

# What malformed bytes can make numpy / zipfile / json raise while parsing.
_BAD_DATA = (ValueError, TypeError, KeyError, EOFError, OSError, zipfile.BadZipFile, zlib.error,
             struct.error, RecursionError, SyntaxError, OverflowError, UnicodeError)


class CheckpointError(ValueError):
    """A checkpoint file that is malformed, inconsistent or not a fastrnn checkpoint."""


class Checkpoint(NamedTuple):
    """What ``load_checkpoint`` returns; unpacks as ``model, optimizer, extra = ...``.

    model: the rebuilt layer or Sequential. optimizer: the rebuilt optimizer over
    ``model.parameters()`` (or None when none was saved). extra: the saved JSON value (or None)."""
    model: Any
    optimizer: Any
    extra: Any


def _fail(message):
    raise CheckpointError(f"checkpoint: {message}")


# -------------------------------------------------------------------------------------------------
# Saving

def _model_spec(model, where, depth):
    """The header's description of ``model`` (type, constructor arguments, mode, generator state)."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"save_checkpoint: Sequentials nested deeper than {_MAX_DEPTH}")
    if type(model) is Sequential:
        return {"type": "Sequential", "training": bool(model.training),
                "layers": [_model_spec(layer, f"{where}.layers[{i}]", depth + 1)
                           for i, layer in enumerate(model)]}
    kind = type(model).__name__
    if _LAYERS.get(kind) is not type(model):
        raise TypeError(f"save_checkpoint: {where} is a {type(model).__name__}; checkpoints hold only "
                        f"{', '.join(_LAYERS)} and Sequential (exact types, not subclasses)")
    args = {}
    for name, _ in _ARGS[kind]:
        value = getattr(model, name)
        if name == "dtype":
            value = np.dtype(value).name
        elif isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, numbers.Integral):
            value = int(value)
        elif isinstance(value, numbers.Real):
            value = float(value)
        args[name] = value
    spec = {"type": kind, "training": bool(model.training), "args": args}
    rng = getattr(model, "_rng", None)
    state = getattr(getattr(rng, "bit_generator", None), "state", None)
    if isinstance(state, dict) and state.get("bit_generator") == "PCG64":
        spec["rng"] = {"bit_generator": "PCG64",
                       "state": {k: int(state["state"][k]) for k in ("state", "inc")},
                       "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}
    return spec


def _optimizer_spec(optimizer, model, arrays):
    kind = type(optimizer).__name__
    if _OPTIMIZERS.get(kind) is not type(optimizer):
        raise TypeError(f"save_checkpoint: optimizer is a {type(optimizer).__name__}; checkpoints hold "
                        f"only {', '.join(_OPTIMIZERS)} (exact types)")
    params = model.parameters()
    if len(optimizer.params) != len(params) or any(
            p.data is not q.data for p, q in zip(optimizer.params, params)):
        raise ValueError("save_checkpoint: the optimizer must be over exactly model.parameters(), in "
                         "that order")
    sd = optimizer.state_dict()
    state = []
    for i, (entry, p) in enumerate(zip(sd["state"], params)):
        ints, names = {}, []
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                if value.dtype != p.data.dtype or value.shape != p.data.shape:
                    raise ValueError(f"save_checkpoint: optimizer state {i}/{name} does not match its "
                                     f"parameter's shape and dtype")
                arrays[f"optim/{i}/{name}"] = np.ascontiguousarray(value)
                names.append(name)
            else:
                ints[name] = int(value)
        state.append({"ints": ints, "arrays": names})
    return {"type": kind, "hyperparams": sd["hyperparams"], "state": state}


def save_checkpoint(path, model, optimizer=None, extra=None):
    """Saves ``model`` (configuration and weights), ``optimizer`` (kind, hyper-parameters and state;
    it must be over exactly ``model.parameters()``) and ``extra`` (any JSON-serialisable value) to the
    single file ``path``, atomically. Returns ``path``. See the module docstring for the format."""
    path = os.fspath(path)
    spec = _model_spec(model, "model", 0)
    arrays = {}
    for name, value in model.state_dict().items():
        value = np.asarray(value)
        if value.dtype not in _DTYPES.values():
            raise TypeError(f"save_checkpoint: weight {name} has dtype {value.dtype}")
        arrays[f"model/{name}"] = np.ascontiguousarray(value)
    opt_spec = None if optimizer is None else _optimizer_spec(optimizer, model, arrays)
    header = {"format": FORMAT, "version": VERSION, "model": spec,
              "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()},
              "optimizer": opt_spec, "extra": extra}
    try:
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint: extra must be JSON-serialisable: {e}") from None
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if raw.size > _MAX_HEADER_BYTES:
        raise ValueError(f"save_checkpoint: the header is {raw.size} bytes, more than the "
                         f"{_MAX_HEADER_BYTES} a checkpoint may hold (is extra too large?)")
    members = {HEADER_KEY: raw, **arrays}
    _write_atomically(path, members)
    return path


def _write_atomically(path, members):
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    while True:  # a fresh name; created with the usual permissions (0666 minus the umask)
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)  # float and uint8 arrays only: nothing is pickled
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
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
# Loading: the archive and the header

def _members(npz, file_size):
    """{key: ZipInfo} of the archive, checked: .npy members, stored uncompressed, no duplicates, all
    inside the file."""
    infos = npz.zip.infolist()
    members, total = {}, 0
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            _fail(f"unexpected member {name!r} in the archive (only .npy arrays belong there)")
        key = name[:-4]
        if key in members:
            _fail(f"the archive holds {key!r} twice")
        if info.flag_bits & 0x1:
            _fail(f"member {name!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            _fail(f"member {name!r} is compressed; checkpoints are stored uncompressed")
        total += info.compress_size
        members[key] = info
    if total > file_size:
        _fail(f"the archive's members claim {total} bytes, more than the file's {file_size} "
              f"(truncated or corrupt)")
    return members


def _npy_header(npz, key, info):
    """(shape, dtype, data offset) from a member's .npy header, reading no array data."""
    try:
        with npz.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                _fail(f"array {key!r} has an unsupported .npy version {version}")
            offset = f.tell()
    except CheckpointError:
        raise
    except _BAD_DATA as e:
        _fail(f"array {key!r} has a malformed .npy header: {e}")
    return tuple(int(n) for n in shape), dtype, offset


def _read(npz, key):
    try:
        return npz[key]
    except _BAD_DATA as e:
        _fail(f"array {key!r} cannot be read (corrupt or truncated): {e}")


def _read_header(npz, members):
    if HEADER_KEY not in members:
        _fail(f"no header ({HEADER_KEY!r}): not a fastrnn checkpoint")
    info = members[HEADER_KEY]
    shape, dtype, offset = _npy_header(npz, HEADER_KEY, info)
    if dtype != np.dtype(np.uint8) or len(shape) != 1:
        _fail(f"the header must be a 1-D uint8 array, got dtype {dtype} and shape {shape}")
    if shape[0] > _MAX_HEADER_BYTES:
        _fail(f"the header claims {shape[0]} bytes, more than the {_MAX_HEADER_BYTES} allowed")
    if info.file_size != offset + shape[0]:
        _fail("the header's stored size does not match its .npy header (truncated or corrupt)")
    raw = _read(npz, HEADER_KEY)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeError, ValueError, RecursionError) as e:
        _fail(f"the header is not valid UTF-8 JSON: {e}")
    if not isinstance(header, dict):
        _fail(f"the header must be a JSON object, got {type(header).__name__}")
    want = {"format", "version", "model", "arrays", "optimizer", "extra"}
    if set(header) != want:
        _fail(f"the header must have keys {sorted(want)}, got {sorted(header)}")
    if header["format"] != FORMAT:
        _fail(f"unknown format {header['format']!r} (expected {FORMAT!r})")
    version = header["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != VERSION:
        _fail(f"unknown format version {version!r} (this fastrnn reads version {VERSION})")
    return header


def _check_arrays(npz, members, listed):
    """{key: (shape, dtype)} of the arrays the header lists, each checked against its member."""
    if not isinstance(listed, dict):
        _fail("header 'arrays' must be an object")
    keys = set(members) - {HEADER_KEY}
    missing = sorted(k for k in listed if k not in keys)
    if missing:
        _fail(f"arrays listed in the header are missing from the archive: {missing}")
    unexpected = sorted(k for k in keys if k not in listed)
    if unexpected:
        _fail(f"unexpected arrays not listed in the header: {unexpected}")
    out = {}
    for key, entry in listed.items():
        if not (key.startswith("model/") or key.startswith("optim/")):
            _fail(f"unexpected array name {key!r} (names start with 'model/' or 'optim/')")
        if not isinstance(entry, dict) or set(entry) != {"shape", "dtype"}:
            _fail(f"header entry for array {key!r} must be an object with 'shape' and 'dtype'")
        shape, dtype = entry["shape"], entry["dtype"]
        if not isinstance(shape, list) or len(shape) > _MAX_NDIM or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
            _fail(f"array {key!r}: shape must be a list of at most {_MAX_NDIM} ints >= 0, "
                  f"got {shape!r}")
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            _fail(f"array {key!r}: dtype must be 'float32' or 'float64', got {dtype!r}")
        shape, dtype = tuple(shape), _DTYPES[dtype]
        nbytes = math.prod(shape) * dtype.itemsize
        info = members[key]
        if nbytes > info.file_size:
            _fail(f"array {key!r}: the header's shape {shape} needs {nbytes} bytes but the archive "
                  f"holds {info.file_size} (absurd size, or truncated)")
        got_shape, got_dtype, offset = _npy_header(npz, key, info)
        if got_dtype != dtype:
            _fail(f"array {key!r} has dtype {got_dtype}, the header says {dtype.name}")
        if got_shape != shape:
            _fail(f"array {key!r} has shape {got_shape}, the header says {shape}")
        if info.file_size != offset + nbytes:
            _fail(f"array {key!r}: stored size does not match its shape (truncated or corrupt)")
        out[key] = (shape, dtype)
    return out


# -------------------------------------------------------------------------------------------------
# Loading: the model

def _check_value(where, name, kind, value):
    ok = {_INT: isinstance(value, int) and not isinstance(value, bool) and value >= 0,
          _BOOL: isinstance(value, bool),
          _NUM: isinstance(value, (int, float)) and not isinstance(value, bool),
          _STR: isinstance(value, str),
          _DTYPE: isinstance(value, str) and value in _DTYPES,
          _OPT_STR: value is None or isinstance(value, str),
          _OPT_INT: value is None or (isinstance(value, int) and not isinstance(value, bool))}[kind]
    if not ok:
        detail = "an int >= 0" if kind == _INT else "'float32' or 'float64'" if kind == _DTYPE else \
            f"a {kind}"
        _fail(f"{where}: argument {name} must be {detail}, got {value!r}")


def _check_rng(where, rng):
    if rng is None:
        return
    ok = (isinstance(rng, dict) and set(rng) == {"bit_generator", "state", "has_uint32", "uinteger"}
          and rng["bit_generator"] == "PCG64" and isinstance(rng["state"], dict)
          and set(rng["state"]) == {"state", "inc"})
    ints = [] if not ok else [(rng["state"]["state"], 1 << 128), (rng["state"]["inc"], 1 << 128),
                              (rng["has_uint32"], 2), (rng["uinteger"], 1 << 32)]
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < hi
                     for v, hi in ints):
        _fail(f"{where}: 'rng' must be a PCG64 generator state")


def _check_spec(spec, where, prefix, depth):
    """Checks a model description without building anything; returns its layers as a list of
    (where, kind, args, state_dict key prefix, bytes their weights take)."""
    if depth > _MAX_DEPTH:
        _fail(f"{where}: Sequentials nested deeper than {_MAX_DEPTH}")
    if not isinstance(spec, dict):
        _fail(f"{where} must be an object")
    kind = spec.get("type")
    if kind == "Sequential":
        if set(spec) != {"type", "training", "layers"}:
            _fail(f"{where} (Sequential) must have keys ['layers', 'training', 'type'], "
                  f"got {sorted(spec)}")
        if not isinstance(spec["training"], bool):
            _fail(f"{where}: 'training' must be a bool")
        if not isinstance(spec["layers"], list):
            _fail(f"{where}: 'layers' must be a list")
        return [leaf for i, s in enumerate(spec["layers"])
                for leaf in _check_spec(s, f"{where}.layers[{i}]", f"{prefix}{i}.", depth + 1)]
    if not isinstance(kind, str) or kind not in _LAYERS:
        _fail(f"{where}: unknown layer type {kind!r} (allowed: {', '.join(_LAYERS)}, Sequential)")
    if not set(spec) <= {"type", "training", "args", "rng"} or not {"type", "training", "args"} <= \
            set(spec):
        _fail(f"{where} ({kind}) must have keys 'type', 'training', 'args' and optionally 'rng', "
              f"got {sorted(spec)}")
    if not isinstance(spec["training"], bool):
        _fail(f"{where}: 'training' must be a bool")
    _check_rng(where, spec.get("rng"))
    args = spec["args"]
    names = [n for n, _ in _ARGS[kind]]
    if not isinstance(args, dict) or set(args) != set(names):
        _fail(f"{where} ({kind}): args must have exactly the keys {names}, got "
              f"{sorted(args) if isinstance(args, dict) else type(args).__name__}")
    for name, typ in _ARGS[kind]:
        _check_value(f"{where} ({kind})", name, typ, args[name])
    return [(where, kind, args, prefix, _weight_count(kind, args) * _DTYPES[args["dtype"]].itemsize)]


def _weight_count(kind, a):
    """The number of weights a layer of this configuration holds (exact Python ints, no allocation)."""
    if kind == "Linear":
        return a["out_features"] * a["in_features"] + (a["out_features"] if a["bias"] else 0)
    if kind == "Embedding":
        return a["num_embeddings"] * a["embedding_dim"]
    G, H, L, I = LAYER_GATES[kind], a["hidden_size"], a["num_layers"], a["input_size"]
    proj = a.get("proj_size", 0)
    P, D = proj or H, 2 if a["bidirectional"] else 1
    rest = (2 * G * H if a["bias"] else 0) + (P * H if proj else 0)
    first = D * (G * H * (I + P) + rest)
    return first + max(L - 1, 0) * D * (G * H * (P * D + P) + rest)


def _build(spec, where):
    """Builds the model a checked description asks for, turning the layers' own argument errors into
    CheckpointErrors."""
    if spec["type"] == "Sequential":
        model = Sequential(*[_build(s, f"{where}.layers[{i}]") for i, s in enumerate(spec["layers"])])
        model.training = spec["training"]  # the layers carry their own modes
        return model
    kind, args = spec["type"], spec["args"]
    try:
        layer = _LAYERS[kind](**{name: args[name] for name, _ in _ARGS[kind]})
        layer.train(spec["training"])
        if spec.get("rng") is not None:
            layer._rng.bit_generator.state = spec["rng"]
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        _fail(f"{where} ({kind}): {e}")
    return layer


# -------------------------------------------------------------------------------------------------
# Loading: the optimizer

def _check_optimizer_spec(spec, arrays, n_params):
    """Checks the optimizer description against the arrays; returns (class, hyperparams, state
    entries as {"ints": {...}, "arrays": [...]})."""
    if not isinstance(spec, dict) or set(spec) != {"type", "hyperparams", "state"}:
        _fail("header 'optimizer' must be null or an object with keys 'type', 'hyperparams', 'state'")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in _OPTIMIZERS:
        _fail(f"unknown optimizer type {kind!r} (allowed: {', '.join(_OPTIMIZERS)})")
    cls = _OPTIMIZERS[kind]
    hyper = spec["hyperparams"]
    if not isinstance(hyper, dict) or set(hyper) != set(cls._HYPER):
        _fail(f"optimizer {kind}: hyperparams must have exactly the keys {sorted(cls._HYPER)}")
    state = spec["state"]
    if not isinstance(state, list) or len(state) != n_params:
        _fail(f"optimizer {kind}: state must be a list with one entry per parameter ({n_params})")
    used = set()
    for i, entry in enumerate(state):
        if not isinstance(entry, dict) or set(entry) != {"ints", "arrays"}:
            _fail(f"optimizer state[{i}] must be an object with keys 'ints' and 'arrays'")
        ints, names = entry["ints"], entry["arrays"]
        if not isinstance(ints, dict) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                                             for v in ints.values()):
            _fail(f"optimizer state[{i}]: 'ints' must map names to ints >= 0")
        if not isinstance(names, list) or any(not isinstance(n, str) for n in names) \
                or len(set(names)) != len(names) or set(names) & set(ints):
            _fail(f"optimizer state[{i}]: 'arrays' must be a list of distinct names")
        for name in names:
            key = f"optim/{i}/{name}"
            if key not in arrays:
                _fail(f"optimizer state[{i}] names array {key!r}, which the header does not list")
            used.add(key)
    stray = sorted(k for k in arrays if k.startswith("optim/") and k not in used)
    if stray:
        _fail(f"unexpected optimizer arrays not used by any state entry: {stray}")
    return cls, hyper, state


def _build_optimizer(npz, cls, hyper, state, model, arrays):
    params = model.parameters()
    entries = []
    for i, (entry, p) in enumerate(zip(state, params)):
        new = dict(entry["ints"])
        for name in entry["arrays"]:
            key = f"optim/{i}/{name}"
            shape, dtype = arrays[key]
            if shape != p.data.shape or dtype != p.data.dtype:
                _fail(f"array {key!r} has shape {shape} and dtype {dtype.name}, but its parameter "
                      f"{p.name} has shape {p.data.shape} and dtype {p.data.dtype}")
            new[name] = _read(npz, key)
        entries.append(new)
    try:
        optimizer = cls(params, **hyper)
        optimizer.load_state_dict({"optimizer": cls.__name__, "hyperparams": hyper, "state": entries})
    except (TypeError, ValueError) as e:
        _fail(f"optimizer {cls.__name__}: {e}")
    return optimizer


# -------------------------------------------------------------------------------------------------
# Loading

def load_checkpoint(path):
    """Loads a checkpoint written by ``save_checkpoint``; returns ``Checkpoint(model, optimizer,
    extra)`` (unpackable as a tuple). The file is never unpickled; any problem with it raises
    ``CheckpointError`` (a ValueError) naming it, before anything is built from it."""
    path = os.fspath(path)
    with open(path, "rb") as f:  # one open file for every check and read (and closed on any error)
        magic = f.read(4)
        file_size = os.fstat(f.fileno()).st_size
        if magic != b"PK\x03\x04":
            _fail(f"{path!r} is not a checkpoint (not an .npz / zip archive)")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except _BAD_DATA as e:
            _fail(f"{path!r} is not a readable .npz archive (truncated or corrupt): {e}")
        if not isinstance(npz, np.lib.npyio.NpzFile):  # defensive: the magic says zip
            _fail(f"{path!r} is not an .npz archive")
        with npz:
            return _load(npz, file_size)


def _load(npz, file_size):
    try:
        members = _members(npz, file_size)
    except CheckpointError:
        raise
    except _BAD_DATA as e:
        _fail(f"the archive is corrupt: {e}")
    header = _read_header(npz, members)
    arrays = _check_arrays(npz, members, header["arrays"])

    # The model: its description, then its size against what the file really holds, then build.
    leaves = _check_spec(header["model"], "model", "model/", 0)
    model_keys = [k for k in arrays if k.startswith("model/")]
    for where, kind, args, prefix, expected in leaves:
        stored = sum(math.prod(arrays[k][0]) * arrays[k][1].itemsize for k in model_keys
                     if k.startswith(prefix) and "." not in k[len(prefix):])
        if expected != stored:
            _fail(f"{where} ({kind}): its configuration {args} needs {expected} bytes of weights but "
                  f"the file holds {stored} for it (absurd sizes, or arrays that do not belong to "
                  f"this model)")
    opt = None
    if header["optimizer"] is not None:
        opt = _check_optimizer_spec(header["optimizer"], arrays, len(model_keys))
    elif any(k.startswith("optim/") for k in arrays):
        _fail("optimizer arrays present but the header has no optimizer")

    model = _build(header["model"], "model")
    own = model.state_dict()
    want = {f"model/{k}": (v.shape, v.dtype) for k, v in own.items()}
    missing = sorted(set(want) - set(model_keys))
    unexpected = sorted(set(model_keys) - set(want))
    if missing or unexpected:
        _fail(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
    for key, (shape, dtype) in want.items():
        if arrays[key] != (shape, dtype):
            _fail(f"array {key!r} has shape {arrays[key][0]} and dtype {arrays[key][1].name}, the "
                  f"model needs {shape} and {dtype.name}")
    weights = {key[len("model/"):]: _read(npz, key) for key in want}
    try:
        model.load_state_dict(weights)
    except (TypeError, ValueError) as e:
        _fail(f"the weights do not load into the model: {e}")

    optimizer = None if opt is None else _build_optimizer(npz, *opt, model, arrays)
    return Checkpoint(model, optimizer, header["extra"])
