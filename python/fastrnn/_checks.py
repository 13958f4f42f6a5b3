"""Argument checks shared by the public entry points: float arrays of one dtype, exact shapes, and
memory requests that cannot be met (refused before anything is allocated)."""

import functools
import os

import numpy as np

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(name, a, dtype=None):
    """``a`` as a float32/float64 NumPy array (copied only to fix byte order or leave torch).

    ``dtype`` (if given) must match exactly: mixing float32 and float64 is a TypeError.
    """
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype.kind == "f" and arr.dtype.newbyteorder("=") in DTYPES:
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)  # e.g. big-endian '>f8'
    if arr.dtype not in DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype} but the other arrays have dtype {dtype}: "
                        "all arrays must share one dtype")
    return arr


def int_array(name, a, what=""):
    """``a`` (an array, a list or a torch tensor) as an integer NumPy array; bools are refused.
    ``what`` adds what the integers mean to the error message."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array{what}, got dtype {arr.dtype}")
    return arr


def shaped(name, a, shape, names, dtype):
    """float_array() with exactly ``shape``; ``names`` label its axes in the error message."""
    arr = float_array(name, a, dtype)
    if arr.shape != tuple(shape):
        want = ", ".join(f"{n}={v}" for n, v in zip(names, shape))
        raise ValueError(f"{name} must have shape ({want}{',' if len(shape) == 1 else ''}), "
                         f"got {arr.shape}")
    return arr


@functools.lru_cache(maxsize=1)  # read once: every forward/backward asks
def machine_memory():
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


def check_memory(nbytes, what):
    """Raises MemoryError, before anything is allocated, when ``what`` needs ``nbytes`` bytes (an exact
    Python int) beyond 64-bit sizes or beyond the machine's memory."""
    if nbytes >= 2**63:
        raise MemoryError(f"fastrnn: {what} would need more than 2**63 bytes (sizes overflow 64 bits)")
    if nbytes < 2**30:  # any machine running this has a GiB: skip the lookup on the common path
        return
    have = machine_memory()
    if have and nbytes > have:
        raise MemoryError(f"fastrnn: {what} would need {nbytes} bytes, more than this machine's "
                          f"memory ({have} bytes)")
