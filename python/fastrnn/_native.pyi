# Type stub for fastrnn._native, the C++ extension (csrc/, bound with pybind11). Written by hand
# from the bindings' signatures; tests/test_native_stub.py keeps the names and argument names in
# sync with the built module. Arrays may be anything NumPy converts (the binding checks dtype,
# shape and layout and raises ValueError/TypeError); shapes are those of fastrnn.functional.

from typing import Any, SupportsFloat, SupportsIndex, SupportsInt

import numpy as np
from numpy.typing import ArrayLike, NDArray

_Float = NDArray[np.float32] | NDArray[np.float64]

class Cache:
    """What backward needs from one training-mode forward (opaque)."""

def forward(
    cell: str,
    x: ArrayLike,
    h0: ArrayLike,
    c0: ArrayLike | None,
    w_ih: ArrayLike,
    w_hh: ArrayLike,
    b_ih: ArrayLike | None,
    b_hh: ArrayLike | None,
    w_hr: ArrayLike | None,
    lengths: ArrayLike | None,
    reverse: bool,
    training: bool,
    w_ph: ArrayLike | None = None,
    reset_after: bool = True,
    checkpoint_every: SupportsInt = 0,
) -> tuple[_Float, _Float, _Float | None, Cache | None]:
    """(y, h_n, c_n, cache); cache is None unless training. checkpoint_every k > 0 keeps the state
    every k steps and recomputes the segments in backward (the same gradients)."""

def backward(
    cache: Cache, dy: ArrayLike, dh_n: ArrayLike, dc_n: ArrayLike | None, need_dx: bool = True
) -> tuple[
    _Float | None,
    _Float,
    _Float | None,
    _Float,
    _Float,
    _Float | None,
    _Float | None,
    _Float | None,
    _Float | None,
    NDArray[np.float64],
]:
    """(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_ph, dh_norms)."""

def hopfield_recall(
    weights: ArrayLike,
    states: ArrayLike,
    mode: str,
    max_sweeps: SupportsInt | SupportsIndex,
    order: ArrayLike | None,
) -> tuple[NDArray[np.int8], NDArray[np.bool_], NDArray[np.int64]]:
    """(states, converged, iterations)."""

def matmul(a: ArrayLike, b: ArrayLike, out: _Float, accumulate: bool) -> None:
    """out = a @ b, or out += a @ b when accumulate."""

class Interrupted(KeyboardInterrupt):
    """A kernel on a thread that joined the main thread's Ctrl-C watch stopped early."""

class InterruptWatch:
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc: object) -> None: ...

def watch_interrupts() -> InterruptWatch:
    """One Ctrl-C watch held open on the main thread for a with block; `as` gives whether it watches."""

def join_interrupt_watch(on: bool) -> bool:
    """Makes this helper thread's kernels stop on the main thread's open watch; returns the previous."""

def check_signals() -> None:
    """Runs pending signal handlers (their exception propagates), then forgets the watch's SIGINT."""

def compiled_paths() -> list[str]: ...
def active_path() -> str: ...
def set_cpu_path(name: str) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: SupportsInt | SupportsIndex) -> None: ...
def get_thread_cap() -> int: ...
def set_thread_cap(n: SupportsInt | SupportsIndex) -> None: ...
def set_parallel_grain(scale: SupportsFloat | SupportsIndex) -> None: ...
def fma_peak(seconds: float = 0.1) -> dict[str, Any]: ...
def cache_sizes() -> dict[str, Any]: ...
def gemm_blocks(dtype: str = "float32") -> dict[str, int]: ...
