"""The native kernels' released blocks (runtime/memory.cpp: scratch, and the saved activations of a
dropped cache) are kept for the next call, up to 64 MiB each: a call that takes one back must not
see what the last call left in it, and two calls running at once on different Python threads must
never share one. The problems here are big enough that the input projection, the gate gradients
and the saved gates (T*B x G*H float32, over 8 MiB) go through that cache; the saved gates, over
4 MiB, are also lazily given back to the kernel (MADV_FREE) while they wait."""

import numpy as np
import pytest

from helpers import in_threads, make_problem, make_upstream, run

pytestmark = pytest.mark.native

I, H, B = 64, 256, 32


def _case(cell, T, seed=0, poison=False):
    p = make_problem(cell, T, B, I, H, dtype=np.float32, seed=seed)
    if poison:  # every value it computes is NaN: so is every scratch block it leaves behind
        p["x"] = np.full_like(p["x"], np.nan)
    return p, make_upstream(p, T, seed=seed + 1)


def _call(cell, case, lengths=None):
    p, upstream = case
    return run(p, cell, "native", lengths=lengths, upstream=upstream)


def _assert_identical(a, b, what):
    for name, value in a.items():
        if value is None:
            assert b[name] is None, f"{what}: {name}"
        else:
            np.testing.assert_array_equal(b[name], value, err_msg=f"{what}: {name}")


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_reused_block_holds_nothing_of_the_last_call(cell, ragged):
    # With lengths, the rows past a sequence's end are never computed: nothing may read them.
    lengths = np.arange(B) % 7 * 10 + 30 if ragged else None
    case = _case(cell, 90)
    first = _call(cell, case, lengths)
    assert all(np.isfinite(v).all() for v in first.values() if v is not None)
    for T in (100, 80, 110):  # blocks up to a quarter bigger are handed out again, NaN-filled
        _call(cell, _case(cell, T, seed=T, poison=True))
        _assert_identical(first, _call(cell, case, lengths), f"after a poisoned call at T={T}")


def test_concurrent_calls_never_share_a_block():
    cases = {"lstm": _case("lstm", 90, seed=3), "gru": _case("gru", 100, seed=4)}
    serial = {cell: _call(cell, case) for cell, case in cases.items()}
    cells = list(cases)
    runs = in_threads(len(cells), lambda i: [_call(cells[i], cases[cells[i]]) for _ in range(3)])
    results = dict(zip(cells, runs))
    for cell, runs in results.items():
        for i, got in enumerate(runs):
            _assert_identical(serial[cell], got, f"{cell} concurrent call {i}")
