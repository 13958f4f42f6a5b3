"""The threaded paths of the native kernels: a product or a time loop split over the team.

The parallel grain is set to 0 so that even these small problems are split (each thread owns whole
panels of hidden units); results must match the reference and be bitwise identical for any thread
count, since every element is computed by the same arithmetic in the same order."""

import numpy as np
import pytest

import fastrnn

from conftest import (CELL_VARIANTS, DTYPES, assert_results_close, make_lengths, make_upstream,
                      make_variant, run)

pytestmark = pytest.mark.native


def run_with_threads(n, problem, cell, lengths, reverse, up):
    fastrnn.set_num_threads(n)
    return run(problem, cell, "native", lengths, reverse, up)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_split_loops_match_reference_and_each_other(variant, dtype, with_lengths, reverse,
                                                    split_everything):
    # H=37: 3 panels of 16 (float32) or 5 of 8 (float64), the last one partial.
    T, B, I, H = 6, 5, 11, 37
    cell, problem = make_variant(variant, T, B, I, H, dtype, seed=11)
    lengths = make_lengths(T, B) if with_lengths else None
    up = make_upstream(problem, T)
    results = {n: run_with_threads(n, problem, cell, lengths, reverse, up) for n in (1, 2, 3)}
    assert_results_close(results[2], run(problem, cell, "numpy", lengths, reverse, up))
    for n in (2, 3):
        for name, value in results[1].items():
            if value is not None:
                np.testing.assert_array_equal(results[n][name], value, err_msg=name)


def test_more_threads_than_panels(split_everything):
    # 4 threads, 1 panel of hidden units: the extra threads own nothing and must not disturb.
    cell, problem = make_variant("lstm", 4, 3, 5, 6, np.float64, seed=12)
    up = make_upstream(problem, 4)
    expected = run(problem, cell, "numpy", make_lengths(4, 3), False, up)
    assert_results_close(run_with_threads(4, problem, cell, make_lengths(4, 3), False, up), expected)
