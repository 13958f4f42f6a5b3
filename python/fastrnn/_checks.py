"""Every argument check of the public entry points, each written once: flags, integers, real
numbers, dtypes and seeds; float arrays of one dtype with exact shapes (torch tensors accepted);
and memory requests that cannot be met (refused before anything is allocated). Each raises
TypeError (wrong kind) or ValueError (out of range) naming the argument."""

import errno
import functools
import numbers
import os
from collections.abc import Sequence
from typing import Any, Literal, cast, overload

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._typing import FloatArray, FloatDType, IntArray

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_DTYPE_NAMES = {dt.name: dt for dt in DTYPES}


# -------------------------------------------------------------------------------------------------
# Scalars


def flag(name: str, v: object) -> bool:
    """``v`` (a bool or numpy bool) as a bool."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


@overload
def integer(
    name: str, v: object, low: int | None = None, *, allow_none: Literal[False] = False, kind: str = ...
) -> int: ...
@overload
def integer(
    name: str, v: object, low: int | None = None, *, allow_none: bool, kind: str = ...
) -> int | None: ...
def integer(
    name: str, v: object, low: int | None = None, *, allow_none: bool = False, kind: str = "an int"
) -> int | None:
    """``v`` (any integral type but bool) as an int >= ``low`` (no bound when None); None passes
    through when ``allow_none``. ``kind`` is how the TypeError names what was expected."""
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be {kind}{' or None' if allow_none else ''}, got {type(v).__name__}")
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return int(v)


@overload
def real(
    name: str, v: object, *, kind: str = ..., finite: bool = ..., allow_none: Literal[False] = False
) -> float: ...
@overload
def real(name: str, v: object, *, kind: str = ..., finite: bool = ..., allow_none: bool) -> float | None: ...
def real(
    name: str, v: object, *, kind: str = "a real number", finite: bool = False, allow_none: bool = False
) -> float | None:
    """``v`` (any real type but bool) as a float, finite if ``finite``; None passes through when
    ``allow_none``. Range checks are the caller's: their messages say what the number means."""
    if v is None and allow_none:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be {kind}{' or None' if allow_none else ''}, got {type(v).__name__}")
    value = float(v)
    if finite and not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def dropout(p: object) -> float:
    """A layer's dropout probability in [0, 1], as a float."""
    value = real("dropout", p, kind="a number")
    if not 0 <= value <= 1:
        raise ValueError(f"dropout must be a probability in [0, 1], got {p}")
    return value


def checkpoint_every(value: object) -> int | str | None:
    """A checkpoint_every setting: None (save every step), an int k >= 1, or "sqrt"."""
    if isinstance(value, str):
        if value != "sqrt":
            raise ValueError(f'checkpoint_every must be None, an int >= 1 or "sqrt", got {value!r}')
        return value
    return integer("checkpoint_every", value, 1, allow_none=True, kind='an int >= 1, "sqrt"')


def float_dtype(dtype: DTypeLike) -> FloatDType:
    """``dtype`` (a name, a numpy dtype or type) as np.dtype float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt.name not in _DTYPE_NAMES:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dt.name!r}")
    return cast(FloatDType, dt)


def seed(value: object) -> int | None:
    """A layer's seed: None or an int >= 0."""
    return integer("seed", value, 0, allow_none=True)


def generator(value: object) -> np.random.Generator:
    """``value`` (None, an int >= 0, or a numpy Generator, used as it is) as a numpy Generator."""
    if isinstance(value, np.random.Generator):
        return value
    if value is None:
        return np.random.default_rng()
    return np.random.default_rng(integer("seed", value, 0, kind="None, an int or a numpy.random.Generator"))


# -------------------------------------------------------------------------------------------------
# Arrays


def is_tensor(a: object) -> bool:
    """Whether ``a`` looks like a torch tensor (checked without importing torch)."""
    return hasattr(a, "detach") and hasattr(a, "cpu")


def from_tensor(a: Any) -> Any:
    """A torch tensor as a NumPy array (detached, on the CPU); anything else as it is."""
    return a.detach().cpu().numpy() if is_tensor(a) else a


def float_array(name: str, a: object, dtype: np.dtype[Any] | None = None) -> FloatArray:
    """``a`` as a float32/float64 NumPy array (copied only to fix byte order or leave torch).

    ``dtype`` (if given) must match exactly: mixing float32 and float64 is a TypeError.
    """
    if type(a) is np.ndarray and a.dtype in DTYPES and (dtype is None or a.dtype == dtype):
        return a  # the common case, answered without the conversions below (every call asks)
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    arr = np.asarray(from_tensor(a))
    if arr.dtype.kind == "f" and arr.dtype.newbyteorder("=") in DTYPES:
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)  # e.g. big-endian '>f8'
    if arr.dtype not in DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but the other arrays have dtype {dtype}: "
            "all arrays must share one dtype"
        )
    return arr


def state_array(name: str, value: object) -> NDArray[Any]:
    """A state_dict value (an array, a torch tensor, a number) as a NumPy array of real numbers."""
    arr = np.asarray(from_tensor(value))
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"load_state_dict: {name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def int_array(name: str, a: object, what: str = "") -> IntArray:
    """``a`` (an array, a list or a torch tensor) as an integer NumPy array; bools are refused.
    ``what`` adds what the integers mean to the error message."""
    arr = np.asarray(from_tensor(a))
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array{what}, got dtype {arr.dtype}")
    return arr


def shaped(
    name: str, a: object, shape: Sequence[int], names: Sequence[str], dtype: np.dtype[Any] | None
) -> FloatArray:
    """float_array() with exactly ``shape``; ``names`` label its axes in the error message."""
    arr = float_array(name, a, dtype)
    if arr.shape != tuple(shape):
        want = ", ".join(f"{n}={v}" for n, v in zip(names, shape))
        raise ValueError(f"{name} must have shape ({want}{',' if len(shape) == 1 else ''}), got {arr.shape}")
    return arr


# -------------------------------------------------------------------------------------------------
# Memory


@functools.lru_cache(maxsize=1)  # read once: every forward/backward asks
def machine_memory() -> int | None:
    """Bytes this machine could ever give one process (RAM + swap), or None when unknown."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    swap = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("SwapTotal:"):
                    swap = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return ram + swap


def check_memory(nbytes: int, what: str) -> None:
    """Raises MemoryError, before anything is allocated, when ``what`` needs ``nbytes`` bytes (an exact
    Python int) beyond 64-bit sizes or beyond the machine's memory."""
    if nbytes >= 2**63:
        raise MemoryError(f"fastrnn: {what} would need more than 2**63 bytes (sizes overflow 64 bits)")
    if nbytes < 2**30:  # any machine running this has a GiB: skip the lookup on the common path
        return
    have = machine_memory()
    if have and nbytes > have:
        raise MemoryError(
            f"fastrnn: {what} would need {nbytes} bytes, more than this machine's memory ({have} bytes)"
        )


# -------------------------------------------------------------------------------------------------
# Files


def writable_path(name: str, path: object) -> str:
    """``path`` (a str or os.PathLike) checked to be a file that can be written: not a directory, in
    an existing, writable directory. Raises the OSError that writing would raise (FileNotFoundError,
    NotADirectoryError, IsADirectoryError, PermissionError), naming ``path``, before any work that
    would end in that write; returns the path as a str."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"{name} must be a non-empty str path, got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    shown = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"{name} {path!r} is a directory")
    if not os.path.exists(directory):
        raise FileNotFoundError(errno.ENOENT, f"{name} {path!r}: directory {shown!r} does not exist")
    if not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, f"{name} {path!r}: {shown!r} is not a directory")
    if not os.access(directory, os.W_OK):
        raise PermissionError(errno.EACCES, f"{name} {path!r}: directory {shown!r} is not writable")
    return path
