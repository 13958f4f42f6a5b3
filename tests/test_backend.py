"""Backend selection (get/set/use_backend, FASTRNN_BACKEND), threads, info(), and the CI guard that the
native extension really loaded."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastrnn
from fastrnn import _backend
from fastrnn import functional as F

from helpers import NATIVE, NATIVE_REASON, make_problem

OTHER = {"numpy": "native", "native": "numpy"}


def available_backends():
    return ["numpy", "native"] if NATIVE else ["numpy"]


def cache_backend(backend=None):
    """Which backend a forward() with ``backend`` ran on (as recorded in its cache)."""
    p = make_problem("gru", 2, 1, 2, 3, seed=41)
    *_, cache = F.forward(
        "gru", p["x"], p["h0"], None, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], backend=backend
    )
    return cache.backend


def test_native_extension_loads_when_required():
    # CI sets FASTRNN_REQUIRE_NATIVE=1 so that a broken build fails instead of passing on the fallback.
    if os.environ.get("FASTRNN_REQUIRE_NATIVE") != "1":
        pytest.skip("FASTRNN_REQUIRE_NATIVE=1 not set")
    assert _backend.native_available(), fastrnn.info()["native_error"]
    assert fastrnn.get_backend() == "native"
    assert fastrnn.info()["cpu_paths"], "the native build reports no compiled CPU paths"


def test_default_backend():
    expected = os.environ.get("FASTRNN_BACKEND", "").strip().lower() or ("native" if NATIVE else "numpy")
    assert fastrnn.get_backend() == expected
    assert cache_backend() == expected


@pytest.mark.parametrize("name", available_backends())
def test_set_backend(name, restore_backend):
    fastrnn.set_backend(name)
    assert fastrnn.get_backend() == name
    assert cache_backend() == name  # forward() without backend= follows the default
    assert fastrnn.info()["backend"] == name


@pytest.mark.parametrize("name", available_backends())
def test_per_call_backend_overrides_default(name):
    with fastrnn.use_backend("numpy"):
        assert cache_backend(name) == name


@pytest.mark.parametrize("name", available_backends())
def test_use_backend_restores_on_exit(name):
    before = fastrnn.get_backend()
    with fastrnn.use_backend(name) as got:
        assert got == name
        assert fastrnn.get_backend() == name
        assert cache_backend() == name
    assert fastrnn.get_backend() == before


def test_use_backend_restores_after_exception():
    before = fastrnn.get_backend()
    with pytest.raises(KeyError):
        with fastrnn.use_backend("numpy"):
            raise KeyError("boom")
    assert fastrnn.get_backend() == before


@pytest.mark.skipif(not NATIVE, reason=NATIVE_REASON)
def test_use_backend_nested():
    before = fastrnn.get_backend()
    with fastrnn.use_backend("numpy"):
        with fastrnn.use_backend("native"):
            assert fastrnn.get_backend() == "native"
            with fastrnn.use_backend("numpy"):
                assert fastrnn.get_backend() == "numpy"
            assert fastrnn.get_backend() == "native"
        assert fastrnn.get_backend() == "numpy"
    assert fastrnn.get_backend() == before


def test_use_backend_nested_numpy_only():
    # The same nesting bookkeeping without needing the native build.
    before = fastrnn.get_backend()
    with fastrnn.use_backend("numpy"):
        with pytest.raises(RuntimeError):
            with fastrnn.use_backend("numpy"):
                raise RuntimeError
        assert fastrnn.get_backend() == "numpy"
    assert fastrnn.get_backend() == before


@pytest.mark.parametrize("name", available_backends())
def test_set_backend_inside_use_backend(name, restore_backend):
    # use_backend wins inside its block; a set_backend made inside it is the default afterwards.
    with fastrnn.use_backend(OTHER[name] if NATIVE else "numpy"):
        fastrnn.set_backend(name)
        assert fastrnn.get_backend() == (OTHER[name] if NATIVE else "numpy")
    assert fastrnn.get_backend() == name


def test_use_backend_is_per_thread():
    # The override belongs to the thread that entered the block; others keep the global default.
    default = fastrnn.get_backend()
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other_thread():
        inside.wait(5)
        seen["other"] = fastrnn.get_backend()
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    override = "numpy" if default == "native" or not NATIVE else "native"
    with fastrnn.use_backend(override):
        inside.set()
        assert done.wait(5)
        seen["self"] = fastrnn.get_backend()
    t.join(5)
    assert seen == {"self": override, "other": default}


@pytest.mark.skipif(NATIVE, reason="checks the fallback, and the native build is present")
def test_native_unavailable_is_a_clear_error(restore_backend):
    with pytest.raises(RuntimeError, match="native"):
        fastrnn.set_backend("native")
    with pytest.raises(RuntimeError, match="native"):
        with fastrnn.use_backend("native"):
            pass
    p = make_problem("rnn_tanh", 2, 1, 2, 3)
    with pytest.raises(RuntimeError, match="native"):
        F.forward("rnn_tanh", p["x"], None, None, p["w_ih"], p["w_hh"], None, None, backend="native")
    assert fastrnn.get_backend() == restore_backend


# ------------------------------------------------------------------------------------------------
# info() and threads


def test_info():
    info = fastrnn.info()
    for key in ("version", "backend", "cpu_paths", "num_threads"):
        assert key in info, key
    assert info["version"] == fastrnn.__version__
    assert info["backend"] == fastrnn.get_backend()
    assert info["num_threads"] == fastrnn.get_num_threads()
    assert isinstance(info["cpu_paths"], list)
    assert all(isinstance(s, str) for s in info["cpu_paths"])
    if NATIVE:
        # Every kernel has a portable path; a SIMD path may be added at runtime.
        assert "portable" in info["cpu_paths"]
    else:
        assert info["cpu_paths"] == []


@pytest.mark.parametrize("n", [1, 2, 3, np.int64(2)], ids=["1", "2", "3", "np.int64"])
def test_num_threads_round_trip(n, restore_threads):
    fastrnn.set_num_threads(n)
    got = fastrnn.get_num_threads()
    assert got == int(n) and type(got) is int
    assert fastrnn.info()["num_threads"] == int(n)


def test_rejected_thread_count_changes_nothing(restore_threads):
    # A count the kernels cannot take is refused, and get_num_threads() keeps the applied value.
    with pytest.raises(ValueError, match="n must be in"):
        fastrnn.set_num_threads(2**40)
    assert fastrnn.get_num_threads() == restore_threads


def test_num_threads_default_is_positive():
    n = fastrnn.get_num_threads()
    assert isinstance(n, int) and n >= 1


@pytest.mark.native
def test_many_threads_still_correct(restore_threads):
    # More threads than cores or than work (H=3): idle workers must not corrupt results.
    from helpers import assert_results_close, make_lengths, make_upstream, run

    p = make_problem("lstm", 3, 2, 4, 3, seed=42)
    up = make_upstream(p, 3)
    lengths = make_lengths(3, 2)
    expected = run(p, "lstm", "numpy", lengths, True, up)
    fastrnn.set_num_threads(7)
    assert_results_close(run(p, "lstm", "native", lengths, True, up), expected)


# ------------------------------------------------------------------------------------------------
# Environment variables, checked in a fresh interpreter (they are read once per process).


def run_python(code, **env):
    full = dict(os.environ)
    for k in ("FASTRNN_BACKEND", "FASTRNN_NUM_THREADS"):
        full.pop(k, None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


PROBE = """
import warnings
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import fastrnn
    first = fastrnn.get_backend()
    second = fastrnn.get_backend()
n = sum(issubclass(x.category, RuntimeWarning) and "native extension" in str(x.message) for x in w)
print(first, second, n, fastrnn.get_num_threads())
"""


def test_env_default_warns_once_only_on_fallback():
    r = run_python(PROBE)
    assert r.returncode == 0, r.stderr
    backend, again, warnings_seen, _ = r.stdout.split()
    assert backend == again == ("native" if NATIVE else "numpy")
    assert int(warnings_seen) == (0 if NATIVE else 1)


@pytest.mark.parametrize("value", ["numpy", " NumPy "])
def test_env_backend(value):
    r = run_python(PROBE, FASTRNN_BACKEND=value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["numpy", "numpy", "0"]  # chosen explicitly: no fallback warning


def test_env_backend_invalid_warns_and_uses_the_default():
    r = run_python(
        "import fastrnn; print(fastrnn.get_backend(), fastrnn.get_backend())", FASTRNN_BACKEND="gpu"
    )
    assert r.returncode == 0, r.stderr
    default = "native" if NATIVE else "numpy"
    assert r.stdout.split() == [default, default]
    assert r.stderr.count("RuntimeWarning") == 1 and "FASTRNN_BACKEND" in r.stderr and "'gpu'" in r.stderr


def test_env_num_threads():
    r = run_python(PROBE, FASTRNN_NUM_THREADS="3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[3] == "3"


@pytest.mark.parametrize("value", ["0", "two", "abc", "5000"])
def test_env_num_threads_invalid_warns_and_uses_one(value):
    r = run_python("import fastrnn; print(fastrnn.get_num_threads())", FASTRNN_NUM_THREADS=value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1"]
    assert r.stderr.count("RuntimeWarning") == 1 and "FASTRNN_NUM_THREADS" in r.stderr
