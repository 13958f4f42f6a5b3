"""fastrnn.losses: finite-difference gradients, PyTorch parity (cross_entropy incl. ignore_index and
masks, mse_loss), numerical stability, the all-masked case and bad input."""

import numpy as np
import pytest

from fastrnn import losses

from helpers import assert_close, fd_grad

DTYPES = (np.float32, np.float64)


def problem(dtype=np.float64, T=4, B=3, V=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = (2 * rng.standard_normal((T, B, V))).astype(dtype)
    targets = rng.integers(0, V, size=(T, B))
    return logits, targets


# -------------------------------------------------------------------------------------------------
# cross_entropy


@pytest.mark.parametrize("mode", ["plain", "mask", "ignore_index", "both"])
def test_cross_entropy_gradcheck(mode):
    logits, targets = problem()
    mask = None
    ignore = None
    if mode in ("mask", "both"):
        mask = np.random.default_rng(1).random(targets.shape) > 0.3
    if mode in ("ignore_index", "both"):
        targets[0, :] = -100
        ignore = -100
    loss, grad = losses.cross_entropy(logits, targets, mask, ignore_index=ignore)
    assert isinstance(loss, float) and grad.shape == logits.shape and grad.dtype == np.float64
    fd = fd_grad(lambda: losses.cross_entropy(logits, targets, mask, ignore_index=ignore)[0], logits)
    assert_close(grad, fd, "dlogits", rtol=1e-6, atol_rel=1e-7)
    counted = np.ones(targets.shape, bool) if mask is None else mask.copy()
    if ignore is not None:
        counted &= targets != ignore
    assert not grad[~counted].any()  # uncounted positions get exactly zero gradient


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_formula(dtype):
    logits, targets = problem(dtype)
    x = logits.astype(np.float64)
    p = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    want = -np.mean(np.log(np.take_along_axis(p, targets[..., None], -1)))
    loss, grad = losses.cross_entropy(logits, targets)
    assert grad.dtype == dtype
    np.testing.assert_allclose(loss, want, rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(grad.sum(-1), 0, atol=1e-6)  # softmax - onehot sums to 0 per row


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["plain", "ignore_index", "mask"])
def test_cross_entropy_matches_torch(dtype, mode):
    torch = pytest.importorskip("torch")
    logits, targets = problem(dtype, T=6, B=4, V=7, seed=2)
    rng = np.random.default_rng(3)
    drop = rng.random(targets.shape) < 0.3
    kw, mask = {}, None
    t_targets = targets.copy()
    if mode == "ignore_index":
        targets[drop] = 3  # a valid class used as the ignored one
        t_targets = targets.copy()
        kw = {"ignore_index": 3}
    elif mode == "mask":
        mask = (~drop).astype(np.int64)  # 0/1
        targets[drop] = 99  # masked positions may hold anything
        t_targets[drop] = -100  # torch's default ignore_index
    lt = torch.from_numpy(logits.copy()).requires_grad_()
    ref = torch.nn.functional.cross_entropy(lt.reshape(-1, 7), torch.from_numpy(t_targets).reshape(-1), **kw)
    ref.backward()
    loss, grad = losses.cross_entropy(logits, targets, mask, **kw)
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert_close(grad, lt.grad.numpy(), "dlogits")


def test_cross_entropy_stable_for_huge_logits():
    logits, targets = problem(np.float32)
    base_loss, base_grad = losses.cross_entropy(logits, targets)
    loss, grad = losses.cross_entropy(logits + np.float32(1e4), targets)  # exp(1e4) overflows
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, base_loss, rtol=1e-2)
    big = np.array([[1e30, -1e30, 0.0]], np.float64)
    loss, grad = losses.cross_entropy(big, np.array([1]))
    assert np.isclose(loss, 2e30) and np.all(np.isfinite(grad))
    loss, _ = losses.cross_entropy(big, np.array([0]))
    assert loss == 0.0


def test_cross_entropy_all_masked_and_empty():
    logits, targets = problem()
    for loss, grad in (
        losses.cross_entropy(logits, targets, np.zeros(targets.shape, bool)),
        losses.cross_entropy(logits, np.full(targets.shape, -1), ignore_index=-1),
        losses.cross_entropy(np.zeros((0, 2, 5)), np.zeros((0, 2), np.int64)),
    ):
        assert loss == 0.0 and grad.shape in (logits.shape, (0, 2, 5)) and not grad.any()


def test_cross_entropy_shapes_and_inputs_untouched():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal(5)  # unbatched (V,) with a scalar target
    loss, grad = losses.cross_entropy(logits, np.array(2))
    assert grad.shape == (5,)
    np.testing.assert_allclose(loss, np.log(np.exp(logits).sum()) - logits[2])
    logits, targets = problem()
    before = logits.copy(), targets.copy()
    mask = np.ones(targets.shape, bool)
    losses.cross_entropy(logits.transpose(1, 0, 2), targets.T, mask.T)  # non-contiguous
    np.testing.assert_array_equal(logits, before[0])
    np.testing.assert_array_equal(targets, before[1])


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        (lambda l, t: (l, t.astype(np.float64)), {}, TypeError, "targets must be an integer array"),
        (lambda l, t: (l, t > 0), {}, TypeError, "targets must be an integer array"),
        (lambda l, t: (l.astype(np.int64), t), {}, TypeError, "logits"),
        (lambda l, t: (l.astype(np.float16), t), {}, TypeError, "logits"),
        (lambda l, t: (l, t[:-1]), {}, ValueError, r"targets must have shape \(4, 3\)"),
        (lambda l, t: (l, t[..., None]), {}, ValueError, "targets must have shape"),
        (lambda l, t: (l[..., :0], t), {}, ValueError, "V >= 1"),
        (lambda l, t: (np.float64(1.0), np.array(0)), {}, ValueError, "logits must have shape"),
        (lambda l, t: (l, np.where(t == 0, 5, t)), {}, ValueError, r"targets must be in \[0, V=5\)"),
        (lambda l, t: (l, np.where(t == 0, -1, t)), {}, ValueError, "got -1"),
        (lambda l, t: (l, np.where(t == 0, -1, t)), {"ignore_index": -2}, ValueError, "got -1"),
        (lambda l, t: (l, t, np.ones((3, 4), bool)), {}, ValueError, "mask must have the shape"),
        (lambda l, t: (l, t, np.full(t.shape, 2)), {}, ValueError, "mask must hold only 0 and 1"),
        (lambda l, t: (l, t, np.full(t.shape, "a")), {}, TypeError, "mask"),
        (lambda l, t: (l, t), {"ignore_index": 1.0}, TypeError, "ignore_index"),
        (lambda l, t: (l, t), {"ignore_index": True}, TypeError, "ignore_index"),
    ],
)
def test_cross_entropy_bad_input(args, kwargs, exc, match):
    logits, targets = problem()
    with pytest.raises(exc, match=match):
        losses.cross_entropy(*args(logits, targets), **kwargs)


def test_cross_entropy_out_of_range_allowed_where_not_counted():
    logits, targets = problem()
    targets[0, 0] = 99
    mask = np.ones(targets.shape, bool)
    mask[0, 0] = False
    losses.cross_entropy(logits, targets, mask)
    targets[0, 0] = -100
    losses.cross_entropy(logits, targets, ignore_index=-100)


# -------------------------------------------------------------------------------------------------
# mse


def test_mse_gradcheck_and_formula():
    rng = np.random.default_rng(5)
    pred, target = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    loss, grad = losses.mse(pred, target)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, np.mean((pred - target) ** 2), rtol=1e-14)
    assert_close(grad, fd_grad(lambda: losses.mse(pred, target)[0], pred), "dpred", rtol=1e-6, atol_rel=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    pred = rng.standard_normal((5, 2, 3)).astype(dtype)
    target = rng.standard_normal((5, 2, 3)).astype(dtype)
    pt = torch.from_numpy(pred.copy()).requires_grad_()
    ref = torch.nn.functional.mse_loss(pt, torch.from_numpy(target))
    ref.backward()
    loss, grad = losses.mse(pred, target)
    assert grad.dtype == dtype
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert_close(grad, pt.grad.numpy(), "dpred")


def test_mse_empty_and_untouched():
    loss, grad = losses.mse(np.zeros((0, 3)), np.zeros((0, 3)))
    assert loss == 0.0 and grad.shape == (0, 3)
    pred, target = np.ones(3), np.zeros(3)
    losses.mse(pred, target)
    assert pred.tolist() == [1, 1, 1] and target.tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "pred, target, exc, match",
    [
        (np.zeros((2, 3)), np.zeros((3, 2)), ValueError, r"target must have the shape of pred \(2, 3\)"),
        (np.zeros((2, 3)), np.zeros(3), ValueError, "target must have the shape"),
        (np.zeros(3, np.float32), np.zeros(3), TypeError, "target has dtype float64 but pred"),
        (np.zeros(3, np.int64), np.zeros(3, np.int64), TypeError, "pred"),
        (np.zeros(3), np.zeros(3, np.int64), TypeError, "target"),
        (np.zeros(3), None, TypeError, "target"),
    ],
)
def test_mse_bad_input(pred, target, exc, match):
    with pytest.raises(exc, match=match):
        losses.mse(pred, target)
