"""Shared fixtures for the pytest-benchmark files (run: ``python -m pytest benchmarks``).

The grid, the problems and the torch modules come from the harness (harness.py, layers.py,
grid.py), which is also what ``python -m benchmarks`` runs; this file only caches them.
"""

import pathlib
import sys

import pytest

try:
    import fastrnn  # noqa: F401  (installed, or on PYTHONPATH)
except ImportError:  # a plain checkout: use the package next to this directory
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))

from . import harness, layers  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def threads():
    """fastrnn.get_num_threads() (set it with FASTRNN_NUM_THREADS); torch is set to match."""
    return harness.configure_threads()


@pytest.fixture(scope="session")
def problem():
    """``problem(cell, shape)``: harness.make_problem's float32 problem, made once per session."""
    cache = {}

    def get(cell, shape):
        if (cell, shape) not in cache:
            cache[(cell, shape)] = harness.make_problem(cell, shape, "float32")
        return cache[(cell, shape)]

    return get


@pytest.fixture(scope="session")
def reference(problem):
    """``reference(cell, shape)``: the numpy backend's forward+backward outputs, computed once."""
    cache = {}

    def get(cell, shape):
        if (cell, shape) not in cache:
            cache[(cell, shape)] = harness.run_outputs("numpy", problem(cell, shape), "forward+backward")
        return cache[(cell, shape)]

    return get


@pytest.fixture(scope="session")
def layer_problem():
    """``layer_problem(cell, shape)``: layers.make_layer_problem's float32 problem (2 layers,
    bidirectional, variable lengths), made once per session."""
    cache = {}

    def get(cell, shape=layers.LAYER_SHAPE):
        if (cell, shape) not in cache:
            cache[(cell, shape)] = layers.make_layer_problem(cell, shape, "float32")
        return cache[(cell, shape)]

    return get


@pytest.fixture(scope="session")
def layer_torch(layer_problem):
    """``layer_torch(cell, shape)``: the torch module holding the layer problem's weights (made
    once), or None when torch is not installed."""
    cache = {}

    def get(cell, shape=layers.LAYER_SHAPE):
        if not harness.torch_available():
            return None
        if (cell, shape) not in cache:
            cache[(cell, shape)] = layers.torch_layer_module(layer_problem(cell, shape))
        return cache[(cell, shape)]

    return get


@pytest.fixture(scope="session")
def layer_reference(layer_problem):
    """``layer_reference(cell, shape, padded)``: the numpy layer's forward+backward outputs, with
    the problem's lengths or (``padded``) without, computed once."""
    cache = {}

    def get(cell, shape=layers.LAYER_SHAPE, padded=False):
        if (cell, shape, padded) not in cache:
            cache[(cell, shape, padded)] = layers.layer_reference(layer_problem(cell, shape), padded)
        return cache[(cell, shape, padded)]

    return get
