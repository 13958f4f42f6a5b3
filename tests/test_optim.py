"""fastrnn.optim: hand-computed updates, PyTorch parity, state_dict round trips, bad input, and a tiny
end-to-end training run."""

import json
import math

import numpy as np
import pytest

import fastrnn
from fastrnn import Parameter, optim
from fastrnn.clip import clip_grad_norm

SHAPES = [(4, 3), (4,), (2, 2, 2)]


def make_params(dtype=np.float64, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [Parameter(f"p{i}", rng.standard_normal(s).astype(dtype)) for i, s in enumerate(shapes)]


def grad_sequence(steps, dtype=np.float64, seed=1, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]


def run_steps(opt, params, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            if g is None:
                p.grad = None
            else:
                if p.grad is None:
                    p.grad = np.zeros_like(p.data)
                p.grad[...] = g
        opt.step()


# -------------------------------------------------------------------------------------------------
# Hand-computed updates (scalar arithmetic written out in the test, 2-3 steps)


def one(value, grads):
    """A single 2-element parameter and the per-step gradients."""
    return Parameter("w", np.array(value, np.float64)), [np.array(g, np.float64) for g in grads]


def hand_run(opt_cls, kwargs, w0, grads):
    p, gs = one(w0, grads)
    opt = opt_cls([p], **kwargs)
    out = []
    for g in gs:
        p.grad[...] = g
        opt.step()
        out.append(p.data.copy())
    return out


def test_sgd_plain_by_hand():
    out = hand_run(optim.SGD, dict(lr=0.1), [1.0, -2.0], [[1.0, 2.0], [0.5, -1.0]])
    np.testing.assert_allclose(out[0], [0.9, -2.2], rtol=1e-15)
    np.testing.assert_allclose(out[1], [0.85, -2.1], rtol=1e-15)


def test_sgd_momentum_by_hand():
    # buf1 = g1 = [1, 2]; buf2 = 0.9 * buf1 + g2 = [1.4, 0.8]; buf3 = 0.9 * buf2 + g3 = [1.26, 0.72]
    out = hand_run(optim.SGD, dict(lr=0.1, momentum=0.9), [1.0, -2.0], [[1.0, 2.0], [0.5, -1.0], [0.0, 0.0]])
    np.testing.assert_allclose(out[0], [0.9, -2.2], rtol=1e-14)
    np.testing.assert_allclose(out[1], [0.76, -2.28], rtol=1e-14)
    np.testing.assert_allclose(out[2], [0.634, -2.352], rtol=1e-14)


def test_sgd_nesterov_weight_decay_dampening_by_hand():
    # Nesterov: g' = g + m * buf. Step 1: g = [1, 2] + 0.1 * [1, -2] = [1.1, 1.8]; buf = g;
    # update = g + 0.9 * buf = [2.09, 3.42]; w = [1, -2] - 0.1 * update = [0.791, -2.342].
    out = hand_run(
        optim.SGD,
        dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
        [1.0, -2.0],
        [[1.0, 2.0], [0.0, 0.0]],
    )
    np.testing.assert_allclose(out[0], [0.791, -2.342], rtol=1e-14)
    # Step 2: g = 0.1 * w1 = [0.0791, -0.2342]; buf = 0.9 * [1.1, 1.8] + g = [1.0691, 1.3858];
    # update = g + 0.9 * buf = [1.04129, 1.01302]; w = w1 - 0.1 * update.
    np.testing.assert_allclose(out[1], [0.791 - 0.104129, -2.342 - 0.101302], rtol=1e-14)
    # Dampening scales the gradient added to the buffer after the first step (not the first one).
    out = hand_run(optim.SGD, dict(lr=1.0, momentum=0.5, dampening=0.5), [0.0, 0.0], [[1.0, 2.0], [1.0, 2.0]])
    np.testing.assert_allclose(out[0], [-1.0, -2.0], rtol=1e-15)
    np.testing.assert_allclose(out[1], [-2.0, -4.0], rtol=1e-15)  # buf = 0.5 * g + 0.5 * g = g


def test_adagrad_by_hand():
    lr, eps, decay = 0.5, 1e-10, 0.1
    out = hand_run(
        optim.Adagrad,
        dict(lr=lr, lr_decay=decay, eps=eps, initial_accumulator_value=1.0),
        [1.0, -1.0],
        [[3.0, 0.0], [4.0, -1.0]],
    )
    # step 1: sum = 1 + g^2 = [10, 1]; w -= 0.5 * g / (sqrt(sum) + eps)
    w1 = [1.0 - lr * 3.0 / (math.sqrt(10.0) + eps), -1.0]
    np.testing.assert_allclose(out[0], w1, rtol=1e-14)
    # step 2: clr = lr / (1 + decay); sum = [26, 2]
    clr = lr / (1 + decay)
    w2 = [w1[0] - clr * 4.0 / (math.sqrt(26.0) + eps), -1.0 + clr / (math.sqrt(2.0) + eps)]
    np.testing.assert_allclose(out[1], w2, rtol=1e-14)


def test_rmsprop_by_hand():
    lr, a, eps = 0.01, 0.9, 1e-8
    out = hand_run(optim.RMSprop, dict(lr=lr, alpha=a, eps=eps), [1.0, 2.0], [[1.0, -2.0], [2.0, 2.0]])
    sq1 = [(1 - a) * 1.0, (1 - a) * 4.0]
    w1 = [1.0 - lr * 1.0 / (math.sqrt(sq1[0]) + eps), 2.0 + lr * 2.0 / (math.sqrt(sq1[1]) + eps)]
    np.testing.assert_allclose(out[0], w1, rtol=1e-14)
    np.testing.assert_allclose(out[0], [1.0 - lr / math.sqrt(0.1), 2.0 + lr / math.sqrt(0.1)], rtol=1e-7)
    sq2 = [a * sq1[0] + (1 - a) * 4.0, a * sq1[1] + (1 - a) * 4.0]
    w2 = [w1[0] - lr * 2.0 / (math.sqrt(sq2[0]) + eps), w1[1] - lr * 2.0 / (math.sqrt(sq2[1]) + eps)]
    np.testing.assert_allclose(out[1], w2, rtol=1e-14)


def test_rmsprop_centered_momentum_by_hand():
    lr, a, eps, mom = 0.01, 0.5, 1e-8, 0.9
    out = hand_run(
        optim.RMSprop,
        dict(lr=lr, alpha=a, eps=eps, momentum=mom, centered=True),
        [0.0, 0.0],
        [[2.0, -2.0], [1.0, 1.0]],
    )
    # step 1: sq = 0.5 * g^2 = [2, 2]; ga = 0.5 * g = [1, -1]; avg = sqrt(2 - 1) + eps
    buf1 = [2.0 / (1.0 + eps), -2.0 / (1.0 + eps)]
    w1 = [-lr * buf1[0], -lr * buf1[1]]
    np.testing.assert_allclose(out[0], w1, rtol=1e-14)
    # step 2: sq = [1 + 0.5, 1 + 0.5]; ga = [0.5 + 0.5, -0.5 + 0.5] = [1, 0]
    avg = [math.sqrt(1.5 - 1.0) + eps, math.sqrt(1.5) + eps]
    buf2 = [mom * buf1[0] + 1.0 / avg[0], mom * buf1[1] + 1.0 / avg[1]]
    np.testing.assert_allclose(out[1], [w1[0] - lr * buf2[0], w1[1] - lr * buf2[1]], rtol=1e-14)


def _adam_scalar(w, grads, lr, b1, b2, eps, wd=0.0, decoupled=False, amsgrad=False):
    """Adam on one scalar, written out plainly."""
    m = v = vmax = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = max(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2**t)
        mhat = m / (1 - b1**t)
        # Bias-corrected form; PyTorch folds the corrections into the step size and eps placement:
        # w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), which is the same expression.
        w = w - lr * mhat / (math.sqrt(vhat) + eps)
        out.append(w)
    return out


def test_adam_first_step_is_lr_times_sign():
    # Bias correction makes the first Adam step lr * g / (|g| + eps) ~ lr * sign(g).
    out = hand_run(optim.Adam, dict(lr=0.1), [1.0, 1.0], [[3.0, -0.5]])
    np.testing.assert_allclose(out[0], [0.9, 1.1], rtol=1e-7)


@pytest.mark.parametrize(
    "cls, kw",
    [
        (optim.Adam, dict(lr=0.1, betas=(0.8, 0.9), eps=1e-6)),
        (optim.Adam, dict(lr=0.1, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.2)),
        (optim.Adam, dict(lr=0.1, betas=(0.8, 0.9), eps=1e-6, amsgrad=True)),
        (optim.AdamW, dict(lr=0.1, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.2)),
        (optim.AdamW, dict(lr=0.1, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.2, amsgrad=True)),
    ],
    ids=["adam", "adam_wd", "adam_amsgrad", "adamw", "adamw_amsgrad"],
)
def test_adam_by_hand(cls, kw):
    # Gradients that shrink, so AMSGrad's max differs from v.
    g = [[2.0, -1.0], [0.1, 0.5], [0.05, -3.0]]
    out = hand_run(cls, kw, [1.0, -1.0], g)
    b1, b2 = kw["betas"]
    for j in range(2):
        ref = _adam_scalar(
            [1.0, -1.0][j],
            [s[j] for s in g],
            kw["lr"],
            b1,
            b2,
            kw["eps"],
            wd=kw.get("weight_decay", 0.0),
            decoupled=cls is optim.AdamW,
            amsgrad=kw.get("amsgrad", False),
        )
        np.testing.assert_allclose([o[j] for o in out], ref, rtol=1e-13)


def test_amsgrad_changes_the_trajectory():
    g = [[2.0, -1.0], [0.1, 0.5], [0.05, -3.0]]
    a = hand_run(optim.Adam, dict(lr=0.1), [1.0, -1.0], g)
    b = hand_run(optim.Adam, dict(lr=0.1, amsgrad=True), [1.0, -1.0], g)
    assert not np.allclose(a[-1], b[-1])


# -------------------------------------------------------------------------------------------------
# PyTorch parity: same initial weights, same gradients, 5 steps, float64

TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.05, initial_accumulator_value=0.3, eps=1e-6)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.7, 0.8), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3)),
    ("AdamW", dict(lr=0.01, betas=(0.7, 0.8), weight_decay=0.3, amsgrad=True)),
]


def _case_id(case):
    name, kw = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items() if k != "lr")


@pytest.mark.parametrize("name, kw", TORCH_CASES, ids=[_case_id(c) for c in TORCH_CASES])
def test_matches_torch_optim(name, kw):
    torch = pytest.importorskip("torch")
    params = make_params()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = getattr(optim, name)(params, **kw)
    topt = getattr(torch.optim, name)(tparams, **kw)
    grads = grad_sequence(5)
    grads[2][1] = None  # a parameter without gradient is skipped by both for one step
    for step, gs in enumerate(grads):
        for p, t, g in zip(params, tparams, gs):
            if g is None:
                p.grad, t.grad = None, None
            else:
                p.grad = g.copy()
                t.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for p, t in zip(params, tparams):
            np.testing.assert_allclose(
                p.data,
                t.detach().numpy(),
                rtol=1e-10,
                atol=1e-14,
                err_msg=f"{name} {kw} step {step} {p.name}",
            )


# -------------------------------------------------------------------------------------------------
# State: round trips, in-place updates, dtypes

ALL = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.SGD, dict(lr=0.1)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    (optim.Adam, dict(lr=0.01, amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
]
ALL_IDS = ["sgd_nesterov", "sgd", "adagrad", "rmsprop_centered_momentum", "adam_amsgrad", "adamw"]


@pytest.mark.parametrize("cls, kw", ALL, ids=ALL_IDS)
def test_state_dict_round_trip_continues_identically(cls, kw):
    grads = grad_sequence(6)
    params = make_params()
    opt = cls(params, **kw)
    run_steps(opt, params, grads[:3])
    sd = opt.state_dict()
    snapshot = [p.data.copy() for p in params]
    run_steps(opt, params, grads[3:])

    # The returned state is a copy: training on did not change it.
    assert sd["optimizer"] == cls.__name__
    json.dumps(sd["hyperparams"])  # plain numbers and lists
    for entry in sd["state"]:
        for k, v in entry.items():
            assert isinstance(v, np.ndarray) or type(v) is int, (k, type(v))

    params2 = [Parameter(p.name, s.copy()) for p, s in zip(params, snapshot)]
    opt2 = cls(params2, lr=123.0)  # hyper-parameters come from the state dict
    opt2.load_state_dict(sd)
    assert opt2.lr == kw["lr"]
    run_steps(opt2, params2, grads[3:])
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_contents_adam():
    params = make_params()
    opt = optim.Adam(params, lr=0.01, amsgrad=True)
    assert opt.state_dict()["state"] == [{}, {}, {}]
    run_steps(opt, params, grad_sequence(2))
    sd = opt.state_dict()
    assert sd["hyperparams"] == {
        "lr": 0.01,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": True,
    }
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert sd["state"][0]["step"] == 2
    assert sd["state"][0]["exp_avg"].shape == SHAPES[0]
    sd["state"][0]["exp_avg"][...] = 99  # a copy
    assert not np.any(opt.state[0]["exp_avg"] == 99)


@pytest.mark.parametrize("cls, kw", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_updates_in_place_and_keeps_dtype(cls, kw, dtype):
    params = make_params(dtype)
    datas = [p.data for p in params]
    grads = grad_sequence(3, dtype)
    opt = cls(params, **kw)
    run_steps(opt, params, grads)
    for p, d, g in zip(params, datas, grads[-1]):
        assert p.data is d and p.data.dtype == dtype
        np.testing.assert_array_equal(p.grad, g)  # grads are not modified
    for st in opt.state:
        for v in st.values():
            if isinstance(v, np.ndarray):
                assert v.dtype == dtype
    # float32 follows the float64 trajectory closely.
    if dtype == np.float32:
        params64 = make_params(np.float64)
        opt64 = cls(params64, **kw)
        run_steps(opt64, params64, grad_sequence(3, np.float64))
        for p, q in zip(params, params64):
            np.testing.assert_allclose(p.data, q.data, rtol=1e-4, atol=1e-5)


def test_grad_none_is_skipped_and_state_does_not_advance():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    before = params[1].data.copy()
    params[1].grad = None
    run_steps(opt, params, [[g if i != 1 else None for i, g in enumerate(gs)] for gs in grad_sequence(2)])
    np.testing.assert_array_equal(params[1].data, before)
    assert opt.state[1] == {} and opt.state[0]["step"] == 2


def test_zero_grad_in_place_and_layer_params():
    m = fastrnn.LSTM(2, 3, seed=0, dtype="float64")
    opt = optim.SGD(m, lr=0.1)  # a model works as params
    assert len(opt.params) == len(m.parameters())
    grads = [p.grad for p in m.parameters()]
    for g in grads:
        g[...] = 1.0
    opt.zero_grad()
    for p, g in zip(m.parameters(), grads):
        assert p.grad is g and not np.any(g)
    single = optim.Adam(m.parameters()[0])
    assert len(single.params) == 1


def test_lr_zero_leaves_weights():
    params = make_params()
    before = [p.data.copy() for p in params]
    opt = optim.Adam(params, lr=0.0)
    run_steps(opt, params, grad_sequence(2))
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.data, b)


# -------------------------------------------------------------------------------------------------
# Bad input

BAD_HYPER = [
    (optim.SGD, dict(lr=-0.1), "lr"),
    (optim.SGD, dict(lr=float("nan")), "lr"),
    (optim.SGD, dict(momentum=-0.5), "momentum"),
    (optim.SGD, dict(dampening=1.5), "dampening"),
    (optim.SGD, dict(weight_decay=-1e-3), "weight_decay"),
    (optim.SGD, dict(nesterov=True), "nesterov"),
    (optim.SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (optim.Adagrad, dict(lr_decay=-1.0), "lr_decay"),
    (optim.Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (optim.Adagrad, dict(eps=0.0), "eps"),
    (optim.RMSprop, dict(alpha=1.5), "alpha"),
    (optim.RMSprop, dict(eps=-1e-8), "eps"),
    (optim.RMSprop, dict(momentum=-0.1), "momentum"),
    (optim.Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (optim.Adam, dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (optim.Adam, dict(eps=0.0), "eps"),
    (optim.AdamW, dict(weight_decay=-0.01), "weight_decay"),
    (optim.AdamW, dict(lr=float("inf")), "lr"),
]


@pytest.mark.parametrize(
    "cls, kw, match", BAD_HYPER, ids=[f"{c.__name__}-{m}-{i}" for i, (c, _, m) in enumerate(BAD_HYPER)]
)
def test_bad_hyperparameters_raise_value_error(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(make_params(), **kw)


@pytest.mark.parametrize(
    "cls, kw, match",
    [
        (optim.SGD, dict(lr="0.1"), "lr"),
        (optim.Adam, dict(betas=0.9), "betas"),
        (optim.Adam, dict(amsgrad=1), "amsgrad"),
        (optim.RMSprop, dict(centered="yes"), "centered"),
        (optim.SGD, dict(nesterov=None), "nesterov"),
    ],
)
def test_bad_hyperparameter_types_raise_type_error(cls, kw, match):
    with pytest.raises(TypeError, match=match):
        cls(make_params(), **kw)


def test_hyperparameter_changed_later_is_checked_at_step():
    params = make_params()
    opt = optim.Adam(params)
    opt.lr = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.step()


def test_bad_params():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([])
    with pytest.raises(TypeError, match="params"):
        optim.SGD([np.zeros(3)])
    with pytest.raises(TypeError, match="params"):
        optim.SGD(np.zeros(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        optim.SGD([Parameter("i", np.zeros(3, np.int64))])
    p = make_params()[0]
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p])
    p.grad = np.zeros(7)
    opt = optim.SGD([p])
    with pytest.raises(ValueError, match="grad shape"):
        opt.step()


def test_load_state_dict_checks():
    params = make_params()
    opt = optim.Adam(params, lr=0.01)
    run_steps(opt, params, grad_sequence(1))
    good = opt.state_dict()

    def broken(**change):
        sd = {
            "optimizer": good["optimizer"],
            "hyperparams": dict(good["hyperparams"]),
            "state": [dict(e) for e in good["state"]],
        }
        for k, v in change.items():
            sd[k] = v
        return sd

    with pytest.raises(ValueError, match="'SGD'"):
        opt.load_state_dict(broken(optimizer="SGD"))
    with pytest.raises(ValueError, match="entries"):
        opt.load_state_dict(broken(state=good["state"][:2]))
    bad_shape = [dict(e) for e in good["state"]]
    bad_shape[0]["exp_avg"] = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        opt.load_state_dict(broken(state=bad_shape))
    missing = [dict(e) for e in good["state"]]
    del missing[1]["exp_avg_sq"]
    with pytest.raises(ValueError, match="keys"):
        opt.load_state_dict(broken(state=missing))
    bad_step = [dict(e) for e in good["state"]]
    bad_step[2]["step"] = -1
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict(broken(state=bad_step))
    hyper = dict(good["hyperparams"], lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(broken(hyperparams=hyper))
    with pytest.raises(ValueError, match="missing"):
        opt.load_state_dict({"optimizer": "Adam"})
    with pytest.raises(TypeError, match="mapping"):
        opt.load_state_dict([1, 2])
    # Failed loads changed nothing.
    after = opt.state_dict()
    assert after["hyperparams"] == good["hyperparams"]
    for a, b in zip(after["state"], good["state"]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_load_state_dict_casts_to_param_dtype_and_accepts_0d_step():
    p32 = make_params(np.float32)
    p64 = make_params(np.float64)
    opt64 = optim.RMSprop(p64, lr=0.01, momentum=0.5)
    run_steps(opt64, p64, grad_sequence(2))
    sd = opt64.state_dict()
    for e in sd["state"]:
        e["step"] = np.array(e["step"])  # as read back from an .npz
    opt32 = optim.RMSprop(p32)
    opt32.load_state_dict(sd)
    assert opt32.state[0]["square_avg"].dtype == np.float32 and opt32.state[0]["step"] == 2


# -------------------------------------------------------------------------------------------------
# End to end: Adam + clip_grad_norm trains a small LSTM


def test_adam_with_clipping_trains_an_lstm():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((12, 4, 3)).astype(np.float32)
    teacher = fastrnn.LSTM(3, 8, seed=1001).eval()
    target = teacher(x)[0]  # a fixed target the student can reach
    model = fastrnn.LSTM(3, 8, seed=1)
    opt = optim.Adam(model, lr=0.02)
    losses, norms = [], []
    for _ in range(100):
        opt.zero_grad()
        y, _ = model(x)
        losses.append(float(np.mean((y - target) ** 2)))
        model.backward((2 * (y - target) / y.size).astype(np.float32))
        norms.append(clip_grad_norm(model, 0.02))
        opt.step()
    assert all(np.isfinite(losses)) and all(np.isfinite(norms))
    assert max(norms) > 0.02  # clipping was active at some point
    assert losses[-1] * 5 <= losses[0], (losses[0], losses[-1])


def test_sequential_model_params_are_updated_in_the_layers():
    if not all(hasattr(fastrnn, n) for n in ("Sequential", "Linear")):
        pytest.skip("fastrnn.Sequential/Linear not exported yet")
    lstm = fastrnn.LSTM(3, 4, dtype="float64", seed=0)
    lin = fastrnn.Linear(4, 2, dtype="float64", seed=0)
    model = fastrnn.Sequential(lstm, lin)
    before = lstm.state_dict()["weight_hh_l0"]
    opt = optim.SGD(model, lr=0.5)
    y = model(np.ones((2, 1, 3)))
    model.backward(np.ones_like(y))
    opt.step()
    after = lstm.state_dict()["weight_hh_l0"]
    np.testing.assert_allclose(after, before - 0.5 * lstm.grads["weight_hh_l0"], rtol=1e-14)
    assert not np.array_equal(after, before)
