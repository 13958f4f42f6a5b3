"""Shared helpers for the fastrnn tests: problem generators, backend parameters and tolerances.

Test modules import them with ``from helpers import ...`` (pytest's default "prepend" import mode
puts this directory on sys.path); the fixtures live in conftest.py.
"""

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fastrnn import _backend
from fastrnn import functional as F

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
DTYPES = (np.float32, np.float64)
BACKENDS = ("numpy", "native")

# The cells as tests parametrise them: (cell, with projection). "lstm_proj" is an LSTM with w_hr.
CELL_VARIANTS = {
    "rnn_tanh": ("rnn_tanh", False),
    "rnn_relu": ("rnn_relu", False),
    "lstm": ("lstm", False),
    "lstm_proj": ("lstm", True),
    "gru": ("gru", False),
}

OUTPUTS = ("y", "h_n", "c_n")
GRADS = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr", "dw_ph")
INPUTS = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "w_ph")  # GRADS[k] is d INPUTS[k]

NATIVE = _backend.native_available()
NATIVE_REASON = "native extension not built/importable (numpy fallback)"

# Tolerances per dtype: |actual - expected| <= atol_rel * scale + rtol * |expected|, where scale is
# the largest magnitude in the expected array (so atol follows the array's own size).
TOLERANCES = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-5, 1e-5)}


def backend_params():
    """pytest params for a 'backend' argument: numpy always, native marked (skips without the build)."""
    return [pytest.param("numpy", id="numpy"), pytest.param("native", id="native", marks=pytest.mark.native)]


# -------------------------------------------------------------------------------------------------
# Problem generators


def make_problem(cell, T, B, I, H, P=None, dtype=np.float64, bias=True, seed=0, peepholes=False):
    """Random arguments for functional.forward (a dict keyed like INPUTS).

    Weights ~ U(-1/sqrt(H), 1/sqrt(H)) like PyTorch's initialisation; x, h0, c0 ~ N(0, 1).
    ``P`` not None gives an LSTM projection w_hr (P, H) (lstm only); ``peepholes`` an LSTM's w_ph
    (3*H,), drawn after everything else (so the other arrays do not depend on it).
    """
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    proj = P is not None
    if proj and cell != "lstm":
        raise AssertionError("projection is for lstm only")
    Pr = P if proj else H
    k = 1.0 / np.sqrt(H)

    def uniform(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    def normal(*shape):
        return rng.standard_normal(size=shape).astype(dtype)

    problem = {
        "x": normal(T, B, I),
        "h0": normal(B, Pr),
        "c0": normal(B, H) if cell == "lstm" else None,
        "w_ih": uniform(G * H, I),
        "w_hh": uniform(G * H, Pr),
        "b_ih": uniform(G * H) if bias else None,
        "b_hh": uniform(G * H) if bias else None,
        "w_hr": uniform(Pr, H) if proj else None,
    }
    problem["w_ph"] = uniform(3 * H) if peepholes else None
    return problem


def make_variant(variant, T, B, I, H, dtype=np.float64, bias=True, seed=0):
    """make_problem for a CELL_VARIANTS key; lstm_proj uses P = max(1, H // 2)."""
    cell, proj = CELL_VARIANTS[variant]
    return cell, make_problem(cell, T, B, I, H, max(1, H // 2) if proj else None, dtype, bias, seed)


def make_upstream(problem, T, seed=1):
    """Random (dy, dh_n, dc_n) matching a problem's output shapes."""
    rng = np.random.default_rng(seed)
    dtype = problem["x"].dtype
    B, P = problem["h0"].shape
    dy = rng.standard_normal((T, B, P)).astype(dtype)
    dh_n = rng.standard_normal((B, P)).astype(dtype)
    dc_n = None if problem["c0"] is None else rng.standard_normal(problem["c0"].shape).astype(dtype)
    return dy, dh_n, dc_n


def make_lengths(T, B, seed=2, low=0):
    """Unsorted int64 lengths in [low, T] containing low and T (and values between when B > 2)."""
    rng = np.random.default_rng(seed)
    if B == 1:
        return np.array([max(low, T // 2)], np.int64)
    values = [T, low] + list(rng.integers(low, T + 1, size=B - 2))
    lengths = np.array(values, np.int64)
    # A fixed, unsorted order: the longest is never first.
    return np.roll(lengths, 1)


def forward_problem(problem, cell, **kwargs):
    """functional.forward on a problem dict (make_problem's keys; w_ph when it has one); ``kwargs``
    are forward's keywords (lengths, reverse, training, backend, ...)."""
    p = problem
    return F.forward(cell, *(p[k] for k in INPUTS[:-1]), w_ph=p.get("w_ph"), **kwargs)


def run(problem, cell, backend, lengths=None, reverse=False, upstream=(None, None, None), reset_after=True):
    """forward + backward; returns a dict with OUTPUTS and GRADS (None where the API gives None)."""
    p = problem
    y, h_n, c_n, cache = forward_problem(
        p, cell, lengths=lengths, reverse=reverse, training=True, backend=backend, reset_after=reset_after
    )
    grads = F.backward(cache, *upstream)
    if p.get("w_ph") is None:  # dw_ph comes only with peepholes
        assert len(grads) == len(GRADS) - 1
        grads = (*grads, None)
    assert len(grads) == len(GRADS)
    return dict(zip(OUTPUTS, (y, h_n, c_n)), **dict(zip(GRADS, grads)))


# -------------------------------------------------------------------------------------------------
# Comparisons


def tolerance(dtype):
    """(rtol, atol relative to the array's scale) for ``dtype``."""
    return TOLERANCES[np.dtype(dtype)]


def assert_close(actual, expected, name="", rtol=None, atol_rel=None):
    """Same None-ness, shape and dtype; values within the dtype's tolerance (see TOLERANCES)."""
    if expected is None or actual is None:
        assert actual is None and expected is None, f"{name}: {actual!r} vs {expected!r}"
        return
    assert isinstance(actual, np.ndarray), f"{name}: not an ndarray ({type(actual).__name__})"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    r, a = tolerance(expected.dtype)
    rtol = r if rtol is None else rtol
    atol_rel = a if atol_rel is None else atol_rel
    if expected.size == 0:
        return
    exp64 = expected.astype(np.float64)
    act64 = actual.astype(np.float64)
    assert np.all(np.isfinite(act64)), f"{name}: non-finite values"
    scale = float(np.max(np.abs(exp64)))
    # For an all-zero expected array (e.g. gradients that cannot flow) atol falls to ~0: exact zeros.
    atol = atol_rel * max(scale, np.finfo(expected.dtype).tiny)
    err = np.abs(act64 - exp64)
    bad = err > atol + rtol * np.abs(exp64)
    if np.any(bad):
        i = np.unravel_index(np.argmax(err - rtol * np.abs(exp64)), err.shape)
        raise AssertionError(
            f"{name}: {int(bad.sum())}/{bad.size} elements differ (rtol={rtol}, atol={atol:.3g}); "
            f"worst at {tuple(int(j) for j in i)}: {act64[i]!r} vs {exp64[i]!r}, max abs err "
            f"{err.max():.3g}, scale {scale:.3g}"
        )


def assert_results_close(actual, expected, names=OUTPUTS + GRADS, **kw):
    for name in names:
        assert_close(actual[name], expected[name], name, **kw)


def fd_grad(f, a, eps=1e-6):
    """Central differences of the scalar f() w.r.t. every entry of the float64 array a (in place)."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def under_asan():
    """True when this process runs the AddressSanitizer build (.ci/sanitize preloads libasan)."""
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


def interrupted_child(code, args, delay):
    """Runs ``python -c code *args``, sends it SIGINT ``delay`` s after it prints "ready"; returns
    (its output lines, the monotonic time the signal was sent). The child must exit with status 0."""
    with subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            time.sleep(delay)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=300)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    return out.split("\n"), sent


def in_threads(n, fn):
    """Runs fn(i) for i in range(n) on n threads released together; returns results or raises."""
    results, errors = [None] * n, []
    start = threading.Barrier(n)

    def body(i):
        try:
            start.wait()
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
