"""native vs numpy vs torch on the grid of fastrnn.bench, one pytest-benchmark group per problem.

Groups are named "<cell> <mode> <shape>" (e.g. "lstm forward+backward medium"), so the
implementations of one problem are compared side by side::

    python -m pytest benchmarks --benchmark-group-by=group
    python -m pytest benchmarks -k "lstm and small"      # a part of the grid
    python -m pytest benchmarks --benchmark-disable      # only the agreement checks, one call each

Every test first checks the implementation against the numpy reference (outputs and, for
forward+backward, every gradient), so a fast but wrong kernel fails instead of being timed.
"""

import time

import pytest

from fastrnn import bench

# A call slower than this is timed with a fixed, small number of rounds (the numpy backend on the
# larger shapes); faster ones let pytest-benchmark calibrate as usual.
SLOW_CALL_S = 0.05
SLOW_ROUNDS = 3

_UNAVAILABLE = {"native": None if bench.native_available() else "the native extension is not built",
                "numpy": None,
                "torch": None if bench.torch_available() else "torch is not installed"}
IMPLS = [pytest.param(impl, marks=pytest.mark.skipif(why is not None, reason=why or ""))
         for impl, why in _UNAVAILABLE.items()]


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")  # when the check fails
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", bench.MODES)
@pytest.mark.parametrize("shape", list(bench.SHAPES))
@pytest.mark.parametrize("cell", bench.DEFAULT_CELLS)
def test_rnn(benchmark, problem, reference, cell, shape, mode, impl):
    p = problem(cell, shape)
    ref = reference(cell, shape)

    bench.check_agreement(impl, p, mode, ref)  # raises AgreementError (an AssertionError)

    run = bench.make_runner(impl, p, mode)
    start = time.perf_counter()
    run()                                       # warm-up, and how long one call takes
    estimate = time.perf_counter() - start
    s = p["shape"]
    benchmark.group = f"{cell} {mode} {shape}"
    benchmark.extra_info.update({"cell": cell, "shape": shape, "mode": mode, "impl": impl,
                                 "T": s.T, "B": s.B, "I": s.I, "H": s.H, "dtype": "float32",
                                 "threads": bench.configure_threads()})
    if estimate > SLOW_CALL_S:
        benchmark.pedantic(run, rounds=SLOW_ROUNDS, iterations=1, warmup_rounds=0)
    else:
        benchmark(run)
