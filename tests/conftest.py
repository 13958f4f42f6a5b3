"""pytest setup for the fastrnn tests: the default backend, the ``native`` marker and the fixtures.

The shared helpers (problem generators, tolerances) are in helpers.py. The repository root goes on
sys.path so that tests can import the benchmark harness as the ``benchmarks`` package.
"""

import pathlib
import sys
import warnings

import pytest

import fastrnn

from helpers import NATIVE, NATIVE_REASON, backend_params

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -------------------------------------------------------------------------------------------------
# Session setup


def _settle_default_backend():
    # Without the native build, the first get_backend() warns once (RuntimeWarning) and pyproject
    # turns warnings into errors. Consume exactly that warning here, once, so that tests relying on the
    # default backend run; test_backend.py checks in a subprocess that the warning is really emitted.
    if NATIVE:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="fastrnn: native extension not importable", category=RuntimeWarning
        )
        fastrnn.get_backend()


_settle_default_backend()


def pytest_configure(config):
    config.addinivalue_line("markers", "native: needs the compiled native extension (skipped without)")


def pytest_collection_modifyitems(config, items):
    if NATIVE:
        return
    skip = pytest.mark.skip(reason=NATIVE_REASON)
    for item in items:
        if item.get_closest_marker("native") is not None:
            item.add_marker(skip)


@pytest.fixture(params=backend_params())
def backend(request):
    return request.param


@pytest.fixture
def restore_threads():
    """Restores the native thread count after a test that changes it."""
    before = fastrnn.get_num_threads()
    yield before
    fastrnn.set_num_threads(before)


@pytest.fixture
def restore_backend():
    """Restores the process-wide default backend after a test that changes it."""
    before = fastrnn.get_backend()
    yield before
    fastrnn.set_backend(before)


@pytest.fixture
def split_everything(restore_threads):
    """Parallel grain 0: the kernels split even tiny problems over the thread team."""
    from fastrnn import _native

    _native.set_parallel_grain(0.0)
    yield
    _native.set_parallel_grain(1.0)
