"""native vs numpy vs torch on the shapes of harness.py, one pytest-benchmark group per problem.

Groups are named "<cell> <mode> <shape>" (e.g. "lstm forward+backward medium"), so the
implementations of one problem are compared side by side::

    python -m pytest benchmarks --benchmark-group-by=group
    python -m pytest benchmarks/test_rnn_bench.py -k "lstm and small"   # a part of the table
    python -m pytest benchmarks --benchmark-disable      # only the agreement checks, one call each

Every test first checks the implementation against the numpy reference (outputs and, for
forward+backward, every gradient), so a fast but wrong kernel fails instead of being timed.
The performance grid S1-S6 is in test_grid_bench.py, the layers in test_layers_bench.py.
"""

import pytest

from . import harness
from ._common import impl_params, time_call


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")  # when the check fails
@pytest.mark.parametrize("impl", impl_params(harness.IMPLEMENTATIONS))
@pytest.mark.parametrize("mode", harness.MODES)
@pytest.mark.parametrize("shape", list(harness.SHAPES))
@pytest.mark.parametrize("cell", harness.DEFAULT_CELLS)
def test_rnn(benchmark, problem, reference, threads, cell, shape, mode, impl):
    p = problem(cell, shape)
    ref = reference(cell, shape)

    harness.check_agreement(impl, p, mode, ref)  # raises AgreementError (an AssertionError)

    run = harness.make_runner(impl, p, mode)
    s = p["shape"]
    benchmark.group = f"{cell} {mode} {shape}"
    benchmark.extra_info.update(
        {
            "section": "functional",
            "cell": cell,
            "shape": shape,
            "mode": mode,
            "impl": impl,
            "T": s.T,
            "B": s.B,
            "I": s.I,
            "H": s.H,
            "dtype": "float32",
            "threads": threads,
        }
    )
    time_call(benchmark, run)
