"""The checkpoint file format (see checkpoint.py) and the checks a loaded file passes before anything
is built from it: the archive's members, the header, the model's description and sizes, and the
optimizer's description. Names from a file are looked up in the allow-lists here and nowhere else."""

import json
import math
import struct
import zipfile
import zlib
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from . import optim as _optim
from ._cells import LAYER_GATES
from .layers import GRU, LSTM, RNN
from .linear import Embedding, Linear

FORMAT = "fastrnn.checkpoint"
VERSION = 1
HEADER_KEY = "__fastrnn_checkpoint__"

MAX_HEADER_BYTES = 64 << 20  # a header is a few KiB, plus whatever ``extra`` holds
MAX_DEPTH = 32  # nesting of Sequentials
_MAX_NDIM = 32

# The only layer and optimizer types a checkpoint may name. Names from the file are looked up here and
# nowhere else: nothing is ever imported or evaluated.
LAYERS: dict[str, type[RNN | LSTM | GRU | Linear | Embedding]] = {
    "RNN": RNN,
    "LSTM": LSTM,
    "GRU": GRU,
    "Linear": Linear,
    "Embedding": Embedding,
}
OPTIMIZERS: dict[str, type[_optim.Optimizer]] = {
    cls.__name__: cls for cls in (_optim.SGD, _optim.Adagrad, _optim.RMSprop, _optim.Adam, _optim.AdamW)
}

# Constructor arguments per layer type, in the constructor's order, with the JSON type each must have.
_INT, _BOOL, _NUM, _STR, _DTYPE, _OPT_STR, _OPT_INT, _EVERY = (
    "int",
    "bool",
    "number",
    "str",
    "dtype",
    "str or null",
    "int or null",
    "checkpoint_every",
)
_RECURRENT_TAIL = [("bias", _BOOL), ("batch_first", _BOOL), ("dropout", _NUM), ("bidirectional", _BOOL)]
ARGS: dict[str, list[tuple[str, str]]] = {
    "RNN": [("input_size", _INT), ("hidden_size", _INT), ("num_layers", _INT), ("nonlinearity", _STR)]
    + _RECURRENT_TAIL
    + [("dtype", _DTYPE), ("backend", _OPT_STR), ("seed", _OPT_INT), ("checkpoint_every", _EVERY)],
    "GRU": [("input_size", _INT), ("hidden_size", _INT), ("num_layers", _INT)]
    + _RECURRENT_TAIL
    + [
        ("dtype", _DTYPE),
        ("backend", _OPT_STR),
        ("seed", _OPT_INT),
        ("reset_after", _BOOL),
        ("checkpoint_every", _EVERY),
    ],
    "LSTM": [("input_size", _INT), ("hidden_size", _INT), ("num_layers", _INT)]
    + _RECURRENT_TAIL
    + [
        ("proj_size", _INT),
        ("dtype", _DTYPE),
        ("backend", _OPT_STR),
        ("seed", _OPT_INT),
        ("peepholes", _BOOL),
        ("checkpoint_every", _EVERY),
    ],
    "Linear": [
        ("in_features", _INT),
        ("out_features", _INT),
        ("bias", _BOOL),
        ("dtype", _DTYPE),
        ("seed", _OPT_INT),
    ],
    "Embedding": [("num_embeddings", _INT), ("embedding_dim", _INT), ("dtype", _DTYPE), ("seed", _OPT_INT)],
}
# Arguments added after files were first written: a file without them means these values.
# checkpoint_every is written only when set, so that files of models without it stay readable by
# the versions before it.
ADDED_ARGS: dict[str, dict[str, Any]] = {
    "RNN": {"checkpoint_every": None},
    "GRU": {"reset_after": True, "checkpoint_every": None},
    "LSTM": {"peepholes": False, "checkpoint_every": None},
}
DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
_RNG_MAX = {"state": 1 << 128, "inc": 1 << 128}

# What malformed bytes can make numpy / zipfile / json raise while parsing.
BAD_DATA = (
    ValueError,
    TypeError,
    KeyError,
    EOFError,
    OSError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    RecursionError,
    SyntaxError,
    OverflowError,
    UnicodeError,
)


class CheckpointError(ValueError):
    """A checkpoint file that is malformed, inconsistent or not a fastrnn checkpoint."""


def fail(message: str) -> NoReturn:
    raise CheckpointError(f"checkpoint: {message}")


# -------------------------------------------------------------------------------------------------
# Loading: the archive and the header


def archive_members(npz: np.lib.npyio.NpzFile, file_size: int) -> dict[str, zipfile.ZipInfo]:
    """{key: ZipInfo} of the archive, checked: .npy members, stored uncompressed, no duplicates, all
    inside the file."""
    assert npz.zip is not None  # an open archive
    infos = npz.zip.infolist()
    members, total = {}, 0
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            fail(f"unexpected member {name!r} in the archive (only .npy arrays belong there)")
        key = name[:-4]
        if key in members:
            fail(f"the archive holds {key!r} twice")
        if info.flag_bits & 0x1:
            fail(f"member {name!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            fail(f"member {name!r} is compressed; checkpoints are stored uncompressed")
        total += info.compress_size
        members[key] = info
    if total > file_size:
        fail(
            f"the archive's members claim {total} bytes, more than the file's {file_size} "
            f"(truncated or corrupt)"
        )
    return members


def _npy_header(
    npz: np.lib.npyio.NpzFile, key: str, info: zipfile.ZipInfo
) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, data offset) from a member's .npy header, reading no array data."""
    assert npz.zip is not None  # an open archive
    try:
        with npz.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                fail(f"array {key!r} has an unsupported .npy version {version}")
            offset = f.tell()
    except CheckpointError:
        raise
    except BAD_DATA as e:
        fail(f"array {key!r} has a malformed .npy header: {e}")
    return tuple(int(n) for n in shape), dtype, offset


def read(npz: np.lib.npyio.NpzFile, key: str) -> NDArray[Any]:
    try:
        return npz[key]
    except BAD_DATA as e:
        fail(f"array {key!r} cannot be read (corrupt or truncated): {e}")


def read_header(npz: np.lib.npyio.NpzFile, members: dict[str, zipfile.ZipInfo]) -> dict[str, Any]:
    if HEADER_KEY not in members:
        fail(f"no header ({HEADER_KEY!r}): not a fastrnn checkpoint")
    info = members[HEADER_KEY]
    shape, dtype, offset = _npy_header(npz, HEADER_KEY, info)
    if dtype != np.dtype(np.uint8) or len(shape) != 1:
        fail(f"the header must be a 1-D uint8 array, got dtype {dtype} and shape {shape}")
    if shape[0] > MAX_HEADER_BYTES:
        fail(f"the header claims {shape[0]} bytes, more than the {MAX_HEADER_BYTES} allowed")
    if info.file_size != offset + shape[0]:
        fail("the header's stored size does not match its .npy header (truncated or corrupt)")
    raw = read(npz, HEADER_KEY)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeError, ValueError, RecursionError) as e:
        fail(f"the header is not valid UTF-8 JSON: {e}")
    if not isinstance(header, dict):
        fail(f"the header must be a JSON object, got {type(header).__name__}")
    want = {"format", "version", "model", "arrays", "optimizer", "extra"}
    if set(header) != want:
        fail(f"the header must have keys {sorted(want)}, got {sorted(header)}")
    if header["format"] != FORMAT:
        fail(f"unknown format {header['format']!r} (expected {FORMAT!r})")
    version = header["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != VERSION:
        fail(f"unknown format version {version!r} (this fastrnn reads version {VERSION})")
    return header


def check_arrays(
    npz: np.lib.npyio.NpzFile, members: dict[str, zipfile.ZipInfo], listed: object
) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """{key: (shape, dtype)} of the arrays the header lists, each checked against its member."""
    if not isinstance(listed, dict):
        fail("header 'arrays' must be an object")
    keys = set(members) - {HEADER_KEY}
    missing = sorted(k for k in listed if k not in keys)
    if missing:
        fail(f"arrays listed in the header are missing from the archive: {missing}")
    unexpected = sorted(k for k in keys if k not in listed)
    if unexpected:
        fail(f"unexpected arrays not listed in the header: {unexpected}")
    out: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
    for key, entry in listed.items():
        if not (key.startswith("model/") or key.startswith("optim/")):
            fail(f"unexpected array name {key!r} (names start with 'model/' or 'optim/')")
        if not isinstance(entry, dict) or set(entry) != {"shape", "dtype"}:
            fail(f"header entry for array {key!r} must be an object with 'shape' and 'dtype'")
        shape, dtype = entry["shape"], entry["dtype"]
        if (
            not isinstance(shape, list)
            or len(shape) > _MAX_NDIM
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape)
        ):
            fail(f"array {key!r}: shape must be a list of at most {_MAX_NDIM} ints >= 0, got {shape!r}")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            fail(f"array {key!r}: dtype must be 'float32' or 'float64', got {dtype!r}")
        want_shape, want_dtype = tuple(shape), DTYPES[dtype]
        nbytes = math.prod(want_shape) * want_dtype.itemsize
        info = members[key]
        if nbytes > info.file_size:
            fail(
                f"array {key!r}: the header's shape {want_shape} needs {nbytes} bytes but the archive "
                f"holds {info.file_size} (absurd size, or truncated)"
            )
        got_shape, got_dtype, offset = _npy_header(npz, key, info)
        if got_dtype != want_dtype:
            fail(f"array {key!r} has dtype {got_dtype}, the header says {want_dtype.name}")
        if got_shape != want_shape:
            fail(f"array {key!r} has shape {got_shape}, the header says {want_shape}")
        if info.file_size != offset + nbytes:
            fail(f"array {key!r}: stored size does not match its shape (truncated or corrupt)")
        out[key] = (want_shape, want_dtype)
    return out


# -------------------------------------------------------------------------------------------------
# Loading: the model


def _check_value(where: str, name: str, kind: str, value: object) -> None:
    ok = {
        _INT: isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        _BOOL: isinstance(value, bool),
        _NUM: isinstance(value, (int, float)) and not isinstance(value, bool),
        _STR: isinstance(value, str),
        _DTYPE: isinstance(value, str) and value in DTYPES,
        _OPT_STR: value is None or isinstance(value, str),
        _OPT_INT: value is None or (isinstance(value, int) and not isinstance(value, bool)),
        _EVERY: value is None
        or value == "sqrt"
        or (isinstance(value, int) and not isinstance(value, bool) and value >= 1),
    }[kind]
    if not ok:
        detail = {
            _INT: "an int >= 0",
            _DTYPE: "'float32' or 'float64'",
            _EVERY: 'null, an int >= 1 or "sqrt"',
        }.get(kind, f"a {kind}")
        fail(f"{where}: argument {name} must be {detail}, got {value!r}")


def _check_rng(where: str, rng: Any) -> None:  # a JSON value
    if rng is None:
        return
    ok = (
        isinstance(rng, dict)
        and set(rng) == {"bit_generator", "state", "has_uint32", "uinteger"}
        and rng["bit_generator"] == "PCG64"
        and isinstance(rng["state"], dict)
        and set(rng["state"]) == {"state", "inc"}
    )
    ints: list[tuple[Any, int]] = (
        []
        if not ok
        else [
            (rng["state"]["state"], 1 << 128),
            (rng["state"]["inc"], 1 << 128),
            (rng["has_uint32"], 2),
            (rng["uinteger"], 1 << 32),
        ]
    )
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < hi for v, hi in ints):
        fail(f"{where}: 'rng' must be a PCG64 generator state")


def check_spec(
    spec: object, where: str, prefix: str, depth: int
) -> list[tuple[str, str, dict[str, Any], str, int]]:
    """Checks a model description without building anything; returns its layers as a list of
    (where, kind, args, state_dict key prefix, bytes their weights take)."""
    if depth > MAX_DEPTH:
        fail(f"{where}: Sequentials nested deeper than {MAX_DEPTH}")
    if not isinstance(spec, dict):
        fail(f"{where} must be an object")
    kind = spec.get("type")
    if kind == "Sequential":
        if set(spec) != {"type", "training", "layers"}:
            fail(f"{where} (Sequential) must have keys ['layers', 'training', 'type'], got {sorted(spec)}")
        if not isinstance(spec["training"], bool):
            fail(f"{where}: 'training' must be a bool")
        if not isinstance(spec["layers"], list):
            fail(f"{where}: 'layers' must be a list")
        return [
            leaf
            for i, s in enumerate(spec["layers"])
            for leaf in check_spec(s, f"{where}.layers[{i}]", f"{prefix}{i}.", depth + 1)
        ]
    if not isinstance(kind, str) or kind not in LAYERS:
        fail(f"{where}: unknown layer type {kind!r} (allowed: {', '.join(LAYERS)}, Sequential)")
    if not set(spec) <= {"type", "training", "args", "rng"} or not {"type", "training", "args"} <= set(spec):
        fail(
            f"{where} ({kind}) must have keys 'type', 'training', 'args' and optionally 'rng', "
            f"got {sorted(spec)}"
        )
    if not isinstance(spec["training"], bool):
        fail(f"{where}: 'training' must be a bool")
    _check_rng(where, spec.get("rng"))
    args = spec["args"]
    if isinstance(args, dict):
        for name, value in ADDED_ARGS.get(kind, {}).items():
            args.setdefault(name, value)
    names = [n for n, _ in ARGS[kind]]
    if not isinstance(args, dict) or set(args) != set(names):
        fail(
            f"{where} ({kind}): args must have exactly the keys {names}, got "
            f"{sorted(args) if isinstance(args, dict) else type(args).__name__}"
        )
    for name, typ in ARGS[kind]:
        _check_value(f"{where} ({kind})", name, typ, args[name])
    return [(where, kind, args, prefix, _weight_count(kind, args) * DTYPES[args["dtype"]].itemsize)]


def _weight_count(kind: str, a: dict[str, Any]) -> int:
    """The number of weights a layer of this configuration holds (exact Python ints, no allocation)."""
    if kind == "Linear":
        return int(a["out_features"] * a["in_features"] + (a["out_features"] if a["bias"] else 0))
    if kind == "Embedding":
        return int(a["num_embeddings"] * a["embedding_dim"])
    G, H, L, I = LAYER_GATES[kind], a["hidden_size"], a["num_layers"], a["input_size"]
    proj = a.get("proj_size", 0)
    P, D = proj or H, 2 if a["bidirectional"] else 1
    rest = (2 * G * H if a["bias"] else 0) + (P * H if proj else 0) + (3 * H if a.get("peepholes") else 0)
    first = D * (G * H * (I + P) + rest)
    return int(first + max(L - 1, 0) * D * (G * H * (P * D + P) + rest))


# -------------------------------------------------------------------------------------------------
# Loading: the optimizer


def check_optimizer_spec(
    spec: object, arrays: dict[str, Any], n_params: int
) -> tuple[type[_optim.Optimizer], dict[str, Any], list[dict[str, Any]]]:
    """Checks the optimizer description against the arrays; returns (class, hyperparams, state
    entries as {"ints": {...}, "arrays": [...]})."""
    if not isinstance(spec, dict) or set(spec) != {"type", "hyperparams", "state"}:
        fail("header 'optimizer' must be null or an object with keys 'type', 'hyperparams', 'state'")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in OPTIMIZERS:
        fail(f"unknown optimizer type {kind!r} (allowed: {', '.join(OPTIMIZERS)})")
    cls = OPTIMIZERS[kind]
    hyper = spec["hyperparams"]
    if not isinstance(hyper, dict) or set(hyper) != set(cls._HYPER):
        fail(f"optimizer {kind}: hyperparams must have exactly the keys {sorted(cls._HYPER)}")
    state = spec["state"]
    if not isinstance(state, list) or len(state) != n_params:
        fail(f"optimizer {kind}: state must be a list with one entry per parameter ({n_params})")
    used = set()
    for i, entry in enumerate(state):
        if not isinstance(entry, dict) or set(entry) != {"ints", "arrays"}:
            fail(f"optimizer state[{i}] must be an object with keys 'ints' and 'arrays'")
        ints, names = entry["ints"], entry["arrays"]
        if not isinstance(ints, dict) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in ints.values()
        ):
            fail(f"optimizer state[{i}]: 'ints' must map names to ints >= 0")
        if (
            not isinstance(names, list)
            or any(not isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
            or set(names) & set(ints)
        ):
            fail(f"optimizer state[{i}]: 'arrays' must be a list of distinct names")
        for name in names:
            key = f"optim/{i}/{name}"
            if key not in arrays:
                fail(f"optimizer state[{i}] names array {key!r}, which the header does not list")
            used.add(key)
    stray = sorted(k for k in arrays if k.startswith("optim/") and k not in used)
    if stray:
        fail(f"unexpected optimizer arrays not used by any state entry: {stray}")
    return cls, hyper, state
