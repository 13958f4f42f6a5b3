"""Every compiled instruction-set path of the native kernels (avx512, avx2, portable) agrees with
the reference, so that a machine without AVX-512 or AVX2 gets the same results as this one."""

import pytest

from helpers import (
    CELL_VARIANTS,
    DTYPES,
    assert_results_close,
    make_lengths,
    make_upstream,
    make_variant,
    run,
)

pytestmark = pytest.mark.native

PATHS = ["avx512", "avx2", "portable"]


@pytest.fixture(params=PATHS)
def cpu_path(request):
    from fastrnn import _native

    if request.param not in _native.compiled_paths():
        pytest.skip(f"{request.param} is not compiled into this build")
    before = _native.active_path()
    try:
        _native.set_cpu_path(request.param)
    except ValueError:
        pytest.skip(f"this CPU cannot run the {request.param} path")
    assert _native.active_path() == request.param
    yield request.param
    _native.set_cpu_path(before)


def test_unknown_path_is_refused():
    from fastrnn import _native

    before = _native.active_path()
    with pytest.raises(ValueError, match="sse9"):
        _native.set_cpu_path("sse9")
    assert _native.active_path() == before


@pytest.mark.parametrize("shape", [(5, 3, 7, 6), (4, 13, 17, 37)], ids=["small", "edges"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_path_matches_numpy(cpu_path, variant, dtype, shape):
    T, B, I, H = shape
    cell, problem = make_variant(variant, T, B, I, H, dtype, seed=21)
    lengths = make_lengths(T, B)
    up = make_upstream(problem, T)
    for reverse in (False, True):
        expected = run(problem, cell, "numpy", lengths, reverse, up)
        assert_results_close(run(problem, cell, "native", lengths, reverse, up), expected)
