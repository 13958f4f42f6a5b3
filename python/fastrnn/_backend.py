"""Backend registry and selection, thread count, and info().

A backend is a module with ``forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse,
training)`` and ``backward(saved, dy, dh_n, dc_n)`` taking validated arrays (see functional.py).
"""

import contextlib
import importlib
import os
import threading
import warnings

from . import _reference
from ._version import __version__

BACKENDS = ("native", "numpy")

try:
    _native = importlib.import_module("fastrnn._native")  # names the real cause when it fails
    _NATIVE_ERROR = None
except ImportError as exc:  # a broken or missing build: fall back to the reference, loudly
    _native = None
    _NATIVE_ERROR = exc

_lock = threading.Lock()
_global = {"name": None, "warned": False}
_local = threading.local()  # per-thread stack of use_backend() overrides


def native_available():
    return _native is not None


def native_module():
    """The compiled extension ``fastrnn._native``, or None when it did not load (see
    native_available). For the few callers that use one of its kernels directly (Hopfield recall)."""
    return _native


def _check_name(name, argument="backend"):
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, one of {BACKENDS}, got {type(name).__name__}")
    if name not in BACKENDS:
        raise ValueError(f"{argument} must be one of {BACKENDS}, got {name!r}")
    if name == "native" and _native is None:
        raise RuntimeError(f"the native backend is not available: {_NATIVE_ERROR}")
    return name


def _env_warning(message):
    # A bad environment variable must not stop `import fastrnn` (or every command line): say so and
    # go on with the default.
    warnings.warn(f"fastrnn: {message}", RuntimeWarning, stacklevel=4)


def _default_name():
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


def get_backend():
    """The name of the backend used where none is given: 'native' or 'numpy'."""
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    if _global["name"] is None:
        _global["name"] = _default_name()
    return _global["name"]


def set_backend(name):
    """Selects the default backend for the whole process: 'native' or 'numpy'."""
    _global["name"] = _check_name(name)


@contextlib.contextmanager
def use_backend(name):
    """Uses backend ``name`` inside a ``with`` block (this thread only)."""
    _check_name(name)
    if not hasattr(_local, "stack"):
        _local.stack = []
    _local.stack.append(name)
    try:
        yield name
    finally:
        _local.stack.pop()


def module(name=None):
    """The backend module for ``name`` (None: the current backend)."""
    name = get_backend() if name is None else _check_name(name)
    return _native if name == "native" else _reference


# ---------------------------------------------------------------------------------------------
# Threads (the native backend's thread team; the numpy backend uses whatever NumPy uses).


def _threads_from_env():
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


_threads = {"n": None}


MAX_THREADS = 1024


def set_num_threads(n):
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


def _reapply_threads_in_child():
    # The C++ team forgets its workers in a forked child; start the child's own team.
    if _native is not None and _threads["n"] is not None:
        _native.set_num_threads(_threads["n"])


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reapply_threads_in_child)


def get_num_threads():
    """How many threads the native kernels use."""
    if _threads["n"] is None:
        set_num_threads(_threads_from_env())
        _threads["explicit"] = False  # a default, not a choice (the environment is seen apart)
    return _threads["n"]


# ---------------------------------------------------------------------------------------------
# Two native calls side by side (the directions of a bidirectional layer).

_helper = {"pool": None, "pid": None}


def _helper_pool():
    if _helper["pool"] is None or _helper["pid"] != os.getpid():  # a forked child starts its own
        from concurrent.futures import ThreadPoolExecutor

        _helper["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastrnn-pair")
        _helper["pid"] = os.getpid()
    return _helper["pool"]


def pair_threads(name):
    """How many kernel threads each of two side-by-side calls on backend ``name`` gets, or 0 when
    running them one after the other is better (numpy backend, or fewer than 2 threads)."""
    if name != "native" or _native is None:
        return 0
    return get_num_threads() // 2


def _capped(fn, threads):
    before = _native.get_thread_cap()
    _native.set_thread_cap(threads)
    try:
        return fn()
    finally:
        _native.set_thread_cap(before)


def run_pair(first, second, threads):
    """Runs ``first()`` here and ``second()`` on a helper thread at the same time, the kernels of
    each capped to ``threads`` threads (see pair_threads); returns their results. The kernels
    release the GIL, so two independent calls (the two directions of a bidirectional layer) run on
    their own cores with no barrier between them. An exception from either is raised here (first's
    if both fail) after both have finished."""
    future = _helper_pool().submit(_capped, second, threads)
    try:
        a = _capped(first, threads)
    except BaseException:
        future.exception()  # wait for second: it may be using arrays the caller frees next
        raise
    return a, future.result()


def info():
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


def threads_were_set():
    """True when fastrnn's thread count was chosen: set_num_threads() was called or
    FASTRNN_NUM_THREADS is set (fastrnn.torch otherwise follows torch.get_num_threads())."""
    return _threads.get("explicit", False) or bool(os.environ.get("FASTRNN_NUM_THREADS"))
