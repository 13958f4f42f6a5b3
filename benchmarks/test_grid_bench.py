"""The performance grid (S1-S6, every cell) with pytest-benchmark, one group per problem.

Groups are named "grid <cell> <mode> <shape>" (e.g. "grid gru forward+backward S3")::

    python -m pytest benchmarks/test_grid_bench.py --benchmark-group-by=group
    python -m pytest benchmarks/test_grid_bench.py -k "S1 or S2 or S3"        # the latency shapes
    python -m pytest benchmarks/test_grid_bench.py -k "not (numpy and (S4 or S5 or S6))"

S6 (DeepBench's vanilla RNN shape) is for the rnn cells only. Every test first checks the
implementation against the numpy reference (outputs and, for forward+backward, every gradient).
The targets (ratios, % of sgemm) are printed by ``python -m benchmarks --grid`` and by
``benchmarks/report.py`` from the JSON; timings are never asserted.
"""

import pytest

from . import grid, harness
from ._common import impl_params, time_call


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")  # when the check fails
@pytest.mark.parametrize("impl", impl_params(harness.IMPLEMENTATIONS))
@pytest.mark.parametrize("mode", harness.MODES)
@pytest.mark.parametrize("cell,shape", [pytest.param(c, s, id=f"{c}-{s}") for c, s in grid.grid_pairs()])
def test_grid(benchmark, problem, reference, threads, cell, shape, mode, impl):
    p = problem(cell, shape)
    ref = reference(cell, shape)

    harness.check_agreement(impl, p, mode, ref)  # raises AgreementError (an AssertionError)

    run = harness.make_runner(impl, p, mode)
    s = p["shape"]
    benchmark.group = f"grid {cell} {mode} {shape}"
    benchmark.extra_info.update(
        {
            "section": "grid",
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
            "flops": grid.flops(cell, shape, mode),
        }
    )
    time_call(benchmark, run)
