"""Helpers shared by the benchmark files (plain functions; the fixtures are in conftest.py)."""

import time

import pytest

from . import harness

# A call slower than this is timed with a fixed, small number of rounds (the numpy backend on the
# larger shapes); faster ones let pytest-benchmark calibrate as usual.
SLOW_CALL_S = 0.05
SLOW_ROUNDS = 3

UNAVAILABLE = {
    "native": None if harness.native_available() else "the native extension is not built",
    "numpy": None,
    "torch": None if harness.torch_available() else "torch is not installed",
}
UNAVAILABLE["native_padded"] = UNAVAILABLE["native"]


def impl_params(impls):
    """pytest.param per implementation, skipped (with the reason) where it cannot run."""
    return [
        pytest.param(
            impl, marks=pytest.mark.skipif(UNAVAILABLE[impl] is not None, reason=UNAVAILABLE[impl] or "")
        )
        for impl in impls
    ]


def time_call(benchmark, run):
    """Times ``run`` with pytest-benchmark after one warm-up call: calibrated rounds when a call
    is fast, SLOW_ROUNDS rounds of one call when it takes longer than SLOW_CALL_S."""
    start = time.perf_counter()
    run()  # warm-up, and how long one call takes
    estimate = time.perf_counter() - start
    if estimate > SLOW_CALL_S:
        benchmark.pedantic(run, rounds=SLOW_ROUNDS, iterations=1, warmup_rounds=0)
    else:
        benchmark(run)
