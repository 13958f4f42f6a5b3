"""Backend registry and selection, thread count, and info().

A backend is a module with ``forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse,
training)`` and ``backward(saved, dy, dh_n, dc_n)`` taking validated arrays (see functional.py).
"""

import contextlib
import importlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from . import _reference
from ._version import __version__

BACKENDS = ("native", "numpy")

_A = TypeVar("_A")
_B = TypeVar("_B")
_NATIVE_ERROR: ImportError | None

try:
    if TYPE_CHECKING:  # mypy reads the extension's signatures from _native.pyi
        import fastrnn._native as _native
    else:
        _native = importlib.import_module("fastrnn._native")  # names the real cause when it fails
    _NATIVE_ERROR = None
except ImportError as exc:  # a broken or missing build: fall back to the reference, loudly
    _native = None  # type: ignore[assignment]  # None: every use checks for it
    _NATIVE_ERROR = exc

_lock = threading.Lock()
_global: dict[str, Any] = {"name": None, "warned": False}
_local = threading.local()  # per-thread stack of use_backend() overrides


def native_available() -> bool:
    return _native is not None


def native_module() -> Any:
    """The compiled extension ``fastrnn._native``, or None when it did not load (see
    native_available). For the few callers that use one of its kernels directly (Hopfield recall).
    Typed Any: a module cannot be named as a type (the kernels' signatures are in _native.pyi)."""
    return _native


def _check_name(name: object, argument: str = "backend") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, one of {BACKENDS}, got {type(name).__name__}")
    if name not in BACKENDS:
        raise ValueError(f"{argument} must be one of {BACKENDS}, got {name!r}")
    if name == "native" and _native is None:
        raise RuntimeError(f"the native backend is not available: {_NATIVE_ERROR}")
    return name


def _env_warning(message: str) -> None:
    # A bad environment variable must not stop `import fastrnn` (or every command line): say so and
    # go on with the default.
    warnings.warn(f"fastrnn: {message}", RuntimeWarning, stacklevel=4)


def _default_name() -> str:
    env = os.environ.get("FASTRNN_BACKEND")
    if env:
        try:
            return _check_name(env.strip().lower(), "FASTRNN_BACKEND")
        except (ValueError, RuntimeError) as e:
            fallback = "native" if _native is not None else "numpy"
            _env_warning(f"{e}; using the {fallback} backend")
            return fallback
    if _native is not None:
        return "native"
    with _lock:
        if not _global["warned"]:
            _global["warned"] = True
            warnings.warn(
                f"fastrnn: native extension not importable ({_NATIVE_ERROR}); using the slow numpy backend",
                RuntimeWarning,
                stacklevel=4,
            )
    return "numpy"


def get_backend() -> str:
    """The name of the backend used where none is given: 'native' or 'numpy'."""
    stack: list[str] | None = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    if _global["name"] is None:
        _global["name"] = _default_name()
    name: str = _global["name"]
    return name


def set_backend(name: Literal["native", "numpy"]) -> None:
    """Selects the default backend for the whole process: 'native' or 'numpy'."""
    _global["name"] = _check_name(name)


@contextlib.contextmanager
def use_backend(name: Literal["native", "numpy"]) -> Iterator[str]:
    """Uses backend ``name`` inside a ``with`` block (this thread only)."""
    _check_name(name)
    if not hasattr(_local, "stack"):
        _local.stack = []
    _local.stack.append(name)
    try:
        yield name
    finally:
        _local.stack.pop()


def module(name: str | None = None) -> ModuleType:
    """The backend module for ``name`` (None: the current backend)."""
    name = get_backend() if name is None else _check_name(name)
    return _native if name == "native" else _reference


# ---------------------------------------------------------------------------------------------
# Threads (the native backend's thread team; the numpy backend uses whatever NumPy uses).


def _threads_from_env() -> int:
    env = os.environ.get("FASTRNN_NUM_THREADS")
    if not env:
        # One thread unless asked: the per-step barrier of a team stalls whenever the cores are
        # busy with other work (a thread parked by the scheduler holds up every step), and small
        # problems do not split; on idle cores FASTRNN_NUM_THREADS=2 runs large shapes ~2x faster.
        return 1
    try:
        n = int(env)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_THREADS:
        _env_warning(
            f"FASTRNN_NUM_THREADS must be an integer in [1, {MAX_THREADS}], got {env!r}; using 1 thread"
        )
        return 1
    return n


_threads: dict[str, Any] = {"n": None}


MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Sets how many threads the native kernels use (1 .. MAX_THREADS)."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be in [1, {MAX_THREADS}], got {n}")
    if _native is not None:
        _native.set_num_threads(n)
    _threads["n"] = n  # only once the native team has taken it
    _threads["explicit"] = True


def _reapply_threads_in_child() -> None:
    # The C++ team forgets its workers in a forked child; start the child's own team.
    if _native is not None and _threads["n"] is not None:
        _native.set_num_threads(_threads["n"])


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reapply_threads_in_child)


def get_num_threads() -> int:
    """How many threads the native kernels use."""
    if _threads["n"] is None:
        set_num_threads(_threads_from_env())
        _threads["explicit"] = False  # a default, not a choice (the environment is seen apart)
    n: int = _threads["n"]
    return n


# ---------------------------------------------------------------------------------------------
# Two native calls side by side (the directions of a bidirectional layer).

_helper: dict[str, Any] = {"pool": None, "pid": None}


def _helper_pool() -> ThreadPoolExecutor:
    if _helper["pool"] is None or _helper["pid"] != os.getpid():  # a forked child starts its own
        _helper["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastrnn-pair")
        _helper["pid"] = os.getpid()
    pool: ThreadPoolExecutor = _helper["pool"]
    return pool


def pair_threads(name: str) -> int:
    """How many kernel threads each of two side-by-side calls on backend ``name`` gets, or 0 when
    running them one after the other is better (numpy backend, or fewer than 2 threads)."""
    if name != "native" or _native is None:
        return 0
    return get_num_threads() // 2


def _capped(fn: Callable[[], _A], threads: int, joined: bool = False) -> _A:
    """fn() with this thread's kernels capped to ``threads``; ``joined``: on the helper thread,
    they also stop on the main thread's Ctrl-C watch (and raise _native.Interrupted)."""
    before = _native.get_thread_cap()
    _native.set_thread_cap(threads)
    was_joined = _native.join_interrupt_watch(True) if joined else False
    try:
        return fn()
    finally:
        if joined:
            _native.join_interrupt_watch(was_joined)
        _native.set_thread_cap(before)


def _wait_for(future: "Future[Any]") -> None:
    """Waits until the helper's call has finished, however it ends. A second Ctrl-C meanwhile does
    not cut the wait short (the helper may be using arrays the caller frees next); the helper's
    kernels stop within a step, and the first interrupt is the one raised."""
    while True:
        try:
            future.exception()
            return
        except BaseException:  # the caller raises the first exception right after
            continue


def run_pair(first: Callable[[], _A], second: Callable[[], _B], threads: int) -> tuple[_A, _B]:
    """Runs ``first()`` here and ``second()`` on a helper thread at the same time, the kernels of
    each capped to ``threads`` threads (see pair_threads); returns their results. The kernels
    release the GIL, so two independent calls (the two directions of a bidirectional layer) run on
    their own cores with no barrier between them. An exception from either is raised here (first's
    if both fail) after both have finished.

    Ctrl-C stops both: one watch, held here on the main thread for the two calls, is the one the
    helper's kernels poll too. When only the helper's call saw the signal, its handler runs here:
    KeyboardInterrupt, or (a handler that only takes note) second() again, on this thread."""
    with _native.watch_interrupts() as watched:
        future = _helper_pool().submit(_capped, second, threads, watched)
        try:
            a = _capped(first, threads)
            try:
                b = future.result()
            except _native.Interrupted:
                _native.check_signals()
                b = second()
        except BaseException:
            _wait_for(future)
            raise
    return a, b


class Info(TypedDict):
    """What ``info()`` returns."""

    version: str
    backend: str  # the default backend: "native" or "numpy"
    native_available: bool
    native_error: str | None  # why the extension did not load
    cpu_paths: list[str]  # the compiled CPU paths, e.g. ["avx512", "avx2", "portable"]
    cpu_path: str | None  # the one in use
    num_threads: int


def info() -> Info:
    """A dict describing this installation: version, backend, CPU paths, threads."""
    return {
        "version": __version__,
        "backend": get_backend(),
        "native_available": _native is not None,
        "native_error": None if _NATIVE_ERROR is None else str(_NATIVE_ERROR),
        "cpu_paths": list(_native.compiled_paths()) if _native is not None else [],
        "cpu_path": _native.active_path() if _native is not None else None,
        "num_threads": get_num_threads(),
    }


def threads_were_set() -> bool:
    """True when fastrnn's thread count was chosen: set_num_threads() was called or
    FASTRNN_NUM_THREADS is set (fastrnn.torch otherwise follows torch.get_num_threads())."""
    return bool(_threads.get("explicit", False)) or bool(os.environ.get("FASTRNN_NUM_THREADS"))
