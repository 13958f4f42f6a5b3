"""fastrnn.clip: clip_grad_norm / clip_grad_value by hand and against torch.nn.utils."""

import math

import numpy as np
import pytest

import fastrnn
from fastrnn import Parameter
from fastrnn.clip import clip_grad_norm, clip_grad_value

SHAPES = [(4, 3), (5,), (2, 3, 2)]


def make_params(scale=1.0, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    ps = []
    for i, s in enumerate(SHAPES):
        p = Parameter(f"p{i}", rng.standard_normal(s).astype(dtype))
        p.grad[...] = scale * rng.standard_normal(s)
        ps.append(p)
    return ps


def to_torch(torch, params):
    out = []
    for p in params:
        t = torch.tensor(p.data.copy(), requires_grad=True)
        t.grad = None if p.grad is None else torch.tensor(p.grad.copy())
        out.append(t)
    return out


# -------------------------------------------------------------------------------------------------
# By hand


def test_clip_grad_norm_by_hand():
    p = Parameter("a", np.zeros(2))
    q = Parameter("b", np.zeros(1))
    p.grad[...] = [3.0, 0.0]
    q.grad[...] = [4.0]
    total = clip_grad_norm([p, q], 1.0)
    assert total == 5.0 and isinstance(total, float)
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(p.grad, [3 * coef, 0.0], rtol=1e-15)
    np.testing.assert_allclose(q.grad, [4 * coef], rtol=1e-15)
    # Now below the limit: unchanged, and the returned norm is the (new) pre-clip norm.
    # (With max_norm=1.0 again the 1e-6 in max_norm / (norm + 1e-6) would still shrink it slightly,
    # as in PyTorch.)
    before = p.grad.copy()
    total = clip_grad_norm([p, q], 2.0)
    assert total == pytest.approx(5 * coef, rel=1e-15)
    np.testing.assert_array_equal(p.grad, before)


@pytest.mark.parametrize(
    "norm_type, expected", [(1, 7.0), (2, 5.0), (math.inf, 4.0), ("inf", 4.0), (3, (27 + 64) ** (1 / 3))]
)
def test_norm_types_by_hand(norm_type, expected):
    p = Parameter("a", np.zeros(2))
    q = Parameter("b", np.zeros(1))
    p.grad[...] = [3.0, 0.0]
    q.grad[...] = [-4.0]
    total = clip_grad_norm([p, q], 100.0, norm_type=norm_type)
    assert total == pytest.approx(expected, rel=1e-14)
    np.testing.assert_array_equal(q.grad, [-4.0])


def test_clip_grad_value_by_hand():
    p = Parameter("a", np.zeros(4))
    p.grad[...] = [-3.0, -0.5, 0.5, 3.0]
    grad = p.grad
    assert clip_grad_value([p], 1.0) is None
    assert p.grad is grad
    np.testing.assert_array_equal(p.grad, [-1.0, -0.5, 0.5, 1.0])


def test_grad_none_ignored_and_empty():
    ps = make_params()
    ps[1].grad = None
    total = clip_grad_norm(ps, 1e9)
    expected = math.sqrt(sum(float(np.sum(p.grad**2)) for p in ps if p.grad is not None))
    assert total == pytest.approx(expected, rel=1e-14)
    clip_grad_value(ps, 0.1)
    assert ps[1].grad is None
    assert clip_grad_norm([], 1.0) == 0.0
    p = Parameter("x", np.zeros(3))
    p.grad = None
    assert clip_grad_norm([p], 1.0) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_dtype_and_layer(dtype):
    m = fastrnn.LSTM(2, 3, seed=0, dtype=np.dtype(dtype).name)
    grads = [p.grad for p in m.parameters()]
    for g in grads:
        g[...] = 10.0
    total = clip_grad_norm(m, 1.0)
    n = sum(g.size for g in grads)
    assert total == pytest.approx(10.0 * math.sqrt(n), rel=1e-6)
    for p, g in zip(m.parameters(), grads):
        assert p.grad is g and g.dtype == dtype
    assert math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads)) == pytest.approx(
        1.0, rel=1e-5
    )
    clip_grad_value(m.parameters()[0], 0.01)  # one Parameter works too
    assert np.all(np.abs(grads[0]) <= dtype(0.01))


# -------------------------------------------------------------------------------------------------
# Against torch.nn.utils


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6], ids=["clips", "no_clip"])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ps = make_params(scale=2.0)
    ps[2].grad = None
    ts = to_torch(torch, ps)
    total = clip_grad_norm(ps, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type=norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(ps, ts):
        if p.grad is None:
            assert t.grad is None
        else:
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("bad", [math.inf, math.nan], ids=["inf", "nan"])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_nonfinite_follows_torch_default(bad, norm_type):
    torch = pytest.importorskip("torch")
    ps = make_params()
    ps[0].grad[1, 1] = bad
    ts = to_torch(torch, ps)
    total = clip_grad_norm(ps, 1.0, norm_type=norm_type)
    ttotal = float(torch.nn.utils.clip_grad_norm_(ts, 1.0, norm_type=norm_type))
    assert (math.isnan(total) and math.isnan(ttotal)) or total == ttotal
    for p, t in zip(ps, ts):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())  # NaNs compare equal here


def test_nonfinite_error_if_requested():
    ps = make_params()
    ps[0].grad[0, 0] = math.nan
    before = ps[1].grad.copy()
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm(ps, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(ps[1].grad, before)


def test_inf_norm_without_torch():
    ps = make_params()
    ps[0].grad[0, 0] = math.inf
    total = clip_grad_norm(ps, 1.0)
    assert total == math.inf
    assert math.isnan(ps[0].grad[0, 0])
    assert not np.any(ps[1].grad)  # finite entries scaled by 1/inf = 0


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 1.0, 100.0])
def test_clip_grad_value_matches_torch(clip_value):
    torch = pytest.importorskip("torch")
    ps = make_params()
    ps[0].grad[0, 0] = math.nan
    ts = to_torch(torch, ps)
    clip_grad_value(ps, clip_value)
    torch.nn.utils.clip_grad_value_(ts, clip_value)
    for p, t in zip(ps, ts):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


# -------------------------------------------------------------------------------------------------
# Bad input


def test_bad_arguments():
    ps = make_params()
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(ps, -1.0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(ps, math.nan)
    with pytest.raises(TypeError, match="max_norm"):
        clip_grad_norm(ps, "1")
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm(ps, 1.0, norm_type=0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm(ps, 1.0, norm_type=-2)
    with pytest.raises(TypeError, match="norm_type"):
        clip_grad_norm(ps, 1.0, norm_type="fro")
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value(ps, -0.5)
    with pytest.raises(TypeError, match="clip_value"):
        clip_grad_value(ps, None)
    with pytest.raises(TypeError, match="parameters"):
        clip_grad_norm(np.zeros(3), 1.0)
    with pytest.raises(TypeError, match="grad"):
        clip_grad_value([np.zeros(3)], 1.0)
    p = Parameter("i", np.zeros(2), grad=np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="floating-point"):
        clip_grad_norm([p], 1.0)
