"""fastrnn.RNN / LSTM / GRU: parity with torch.nn (outputs, final states and every gradient, torch's
weights loaded through load_state_dict), native against numpy (dropout included), the layer plumbing
(grads, parameters, modes, state_dict) and bad input."""

import itertools

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import _backend

NATIVE = _backend.native_available()
native = pytest.mark.skipif(not NATIVE, reason="native extension not built/importable")

# Cell variants as the tests name them: lstm_proj is an LSTM with proj_size > 0.
VARIANTS = ("rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru")
DTYPES = ("float32", "float64")
# Normwise relative tolerance: float64 must agree to rounding; float32 sums in other orders (and the
# native backend uses fast sigmoid/tanh), so it gets float32-sized room.
TOL = {"float32": 1e-4, "float64": 1e-10}
T, B, I, H = 5, 3, 4, 6


def make_layer(
    variant,
    num_layers=1,
    bidirectional=False,
    batch_first=False,
    bias=True,
    dtype="float64",
    dropout=0.0,
    backend=None,
    seed=0,
    input_size=I,
    hidden_size=H,
):
    kw = dict(
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        dropout=dropout,
        bidirectional=bidirectional,
        dtype=dtype,
        backend=backend,
        seed=seed,
    )
    if variant.startswith("rnn_"):
        return fr.RNN(input_size, hidden_size, nonlinearity=variant[4:], **kw)
    if variant == "gru":
        return fr.GRU(input_size, hidden_size, **kw)
    proj_size = hidden_size // 2 if variant == "lstm_proj" else 0
    return fr.LSTM(input_size, hidden_size, proj_size=proj_size, **kw)


def state_shapes(m, batch=B):
    D = 2 if m.bidirectional else 1
    P = m.proj_size if isinstance(m, fr.LSTM) and m.proj_size else m.hidden_size
    h = (D * m.num_layers, batch, P)
    return (h, (D * m.num_layers, batch, m.hidden_size)) if isinstance(m, fr.LSTM) else (h,)


def make_data(m, lengths=False, seed=1):
    """Random x, hx, lengths (unsorted, in [1, T]: torch packs no empty sequence) and upstream
    gradients dy, dh_n for layer ``m``."""
    rng = np.random.default_rng(seed)
    normal = lambda *s: rng.standard_normal(s).astype(m.dtype)  # noqa: E731
    x = normal(B, T, I) if m.batch_first else normal(T, B, I)
    states = [normal(*s) for s in state_shapes(m)]
    D = 2 if m.bidirectional else 1
    P = states[0].shape[2]
    dy = normal(B, T, D * P) if m.batch_first else normal(T, B, D * P)
    dstates = [normal(*s) for s in state_shapes(m)]
    lens = np.array([2, T, 1], np.int64) if lengths else None
    if isinstance(m, fr.LSTM):
        return x, tuple(states), lens, dy, tuple(dstates)
    return x, states[0], lens, dy, dstates[0]


def run_fastrnn(m, x, hx, lengths, dy, dh_n):
    """Forward + backward; returns a flat dict of everything to compare (outputs and gradients)."""
    m.zero_grad()
    y, h_n = m(x, hx, lengths=lengths)
    dx, dhx = m.backward(dy, dh_n)
    out = {"y": y, "dx": dx}
    out.update(_states("h_n", h_n))
    out.update(_states("dhx", dhx))
    out.update({"grad_" + k: v for k, v in m.grads.items()})
    return out


def _states(prefix, s):
    return {prefix + "_h": s[0], prefix + "_c": s[1]} if isinstance(s, tuple) else {prefix + "_h": s}


def assert_close(actual, expected, tol):
    assert actual.keys() == expected.keys()
    for k in expected:
        a, e = np.asarray(actual[k], np.float64), np.asarray(expected[k], np.float64)
        assert a.shape == e.shape, f"{k}: shape {a.shape} != {e.shape}"
        err = np.linalg.norm(a - e)
        assert err <= tol * max(np.linalg.norm(e), 1e-30), (
            f"{k}: normwise error {err:.3g} vs norm {np.linalg.norm(e):.3g} (tol {tol})"
        )


# -------------------------------------------------------------------------------------------------
# torch parity


def torch_twin(m):
    """The torch module with m's configuration and torch's own (seeded) initial weights, which are
    loaded into ``m`` through load_state_dict (torch tensors)."""
    torch = pytest.importorskip("torch")
    dtype = {"float32": torch.float32, "float64": torch.float64}[m.dtype.name]
    torch.manual_seed(0)
    kw = dict(
        num_layers=m.num_layers,
        bias=m.bias,
        batch_first=m.batch_first,
        bidirectional=m.bidirectional,
        dtype=dtype,
    )
    if isinstance(m, fr.RNN):
        t = torch.nn.RNN(m.input_size, m.hidden_size, nonlinearity=m.nonlinearity, **kw)
    elif isinstance(m, fr.GRU):
        t = torch.nn.GRU(m.input_size, m.hidden_size, **kw)
    else:
        t = torch.nn.LSTM(m.input_size, m.hidden_size, proj_size=m.proj_size, **kw)
    m.load_state_dict(t.state_dict())
    return t


def run_torch(t, x, hx, lengths, dy, dh_n):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    leaf = lambda a: torch.tensor(a, requires_grad=True)  # noqa: E731
    xt = leaf(x)
    hxt = tuple(leaf(s) for s in hx) if isinstance(hx, tuple) else leaf(hx)
    inp = xt
    if lengths is not None:
        inp = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=t.batch_first, enforce_sorted=False)
    y, h_n = t(inp, hxt)
    if lengths is not None:
        steps = x.shape[1 if t.batch_first else 0]
        y, _ = pad_packed_sequence(y, batch_first=t.batch_first, total_length=steps)
    loss = (y * torch.from_numpy(dy)).sum()
    pairs = zip(h_n, dh_n) if isinstance(h_n, tuple) else [(h_n, dh_n)]
    loss = loss + sum((s * torch.from_numpy(d)).sum() for s, d in pairs)
    loss.backward()
    np_ = lambda v: v.detach().numpy()  # noqa: E731
    out = {"y": np_(y), "dx": np_(xt.grad)}
    out.update(_states("h_n", tuple(np_(s) for s in h_n) if isinstance(h_n, tuple) else np_(h_n)))
    out.update(_states("dhx", tuple(np_(s.grad) for s in hxt) if isinstance(hxt, tuple) else np_(hxt.grad)))
    out.update({"grad_" + k: np_(p.grad) for k, p in t.named_parameters()})
    return out


@pytest.fixture(scope="module")
def torch_one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problems: torch's thread team only contends with ours
    yield
    torch.set_num_threads(before)


# The full grid over every axis; only torch-side cost, a few ms per case.
PARITY_GRID = list(
    itertools.product(VARIANTS, (1, 2, 3), (False, True), (False, True), (False, True), (True, False), DTYPES)
)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
@pytest.mark.parametrize("variant,num_layers,bidirectional,batch_first,lengths,bias,dtype", PARITY_GRID)
def test_torch_parity(
    torch_one_thread, variant, num_layers, bidirectional, batch_first, lengths, bias, dtype
):
    m = make_layer(variant, num_layers, bidirectional, batch_first, bias, dtype)
    data = make_data(m, lengths)
    t = torch_twin(m)  # loads torch's weights into m
    assert_close(run_fastrnn(m, *data), run_torch(t, *data), TOL[dtype])


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
@pytest.mark.parametrize("variant", ["lstm_proj", "gru"])
@pytest.mark.parametrize("backend", ["numpy", pytest.param("native", marks=native)])
def test_torch_parity_three_layers(torch_one_thread, variant, backend):
    m = make_layer(variant, 3, bidirectional=True, batch_first=True, backend=backend)
    data = make_data(m, lengths=True)
    t = torch_twin(m)  # loads torch's weights into m
    assert_close(run_fastrnn(m, *data), run_torch(t, *data), TOL["float64"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_parity_unbatched_and_default_hx(torch_one_thread, variant):
    torch = pytest.importorskip("torch")
    m = make_layer(variant, 2, bidirectional=True)
    t = torch_twin(m)
    x = np.random.default_rng(3).standard_normal((T, I))
    y, h_n = m(x)
    ty, th_n = t(torch.from_numpy(x))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(_states("", h_n).values(), _states("", th_n).values()):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------------------------------------------
# native against numpy (dropout included: the same seed draws the same masks)

BACKEND_GRID = list(itertools.product(VARIANTS, (1, 2), (False, True), (False, True), DTYPES))


@native
@pytest.mark.parametrize("variant,num_layers,bidirectional,lengths,dtype", BACKEND_GRID)
def test_native_matches_numpy(variant, num_layers, bidirectional, lengths, dtype):
    results = []
    for backend in ("numpy", "native"):
        m = make_layer(
            variant,
            num_layers,
            bidirectional,
            batch_first=lengths,
            dtype=dtype,
            dropout=0.4 if num_layers > 1 else 0.0,
            backend=backend,
            seed=7,
        )
        results.append(run_fastrnn(m, *make_data(m, lengths)))
    assert_close(results[1], results[0], TOL[dtype])


@pytest.mark.parametrize("backend", ["numpy", pytest.param("native", marks=native)])
@pytest.mark.parametrize("variant", ["lstm_proj", "gru"])
def test_dropout_backward_uses_the_forward_mask(backend, variant):
    # A fresh layer with the same seed draws the same mask, so the loss is a fixed function of x:
    # compare backward's dx with a central difference along a random direction.
    def loss(x):
        m = make_layer(variant, 3, bidirectional=True, dropout=0.5, backend=backend, seed=11)
        y = m(x)[0]
        return float((y * dy).sum()), m

    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I))
    direction = rng.standard_normal(x.shape)
    dy = rng.standard_normal((T, B, 2 * (H // 2 if variant == "lstm_proj" else H)))
    _, m = loss(x)
    dx, _ = m.backward(dy)
    eps = 1e-6
    numeric = (loss(x + eps * direction)[0] - loss(x - eps * direction)[0]) / (2 * eps)
    assert np.isclose(float((dx * direction).sum()), numeric, rtol=1e-6, atol=1e-8)


def test_dropout_only_in_training_and_seeded():
    x = np.random.default_rng(0).standard_normal((T, B, I))
    a = make_layer("gru", 2, dropout=0.5, seed=3)
    b = make_layer("gru", 2, dropout=0.5, seed=3)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])  # same seed, same masks
    assert not np.array_equal(a(x)[0], a.eval()(x)[0])  # eval: no dropout
    c = make_layer("gru", 2, dropout=0.0, seed=3).eval()
    np.testing.assert_array_equal(a(x)[0], c(x)[0])  # eval output does not depend on dropout


# -------------------------------------------------------------------------------------------------
# Layer plumbing


def test_state_dict_round_trip_through_torch():
    torch = pytest.importorskip("torch")
    m = make_layer("lstm_proj", 2, bidirectional=True, dtype="float32", seed=1)
    t = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=H // 2)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})  # fastrnn -> torch
    assert list(t.state_dict()) == list(m.state_dict())
    back = make_layer("lstm_proj", 2, bidirectional=True, dtype="float32", seed=2)
    back.load_state_dict(t.state_dict())  # torch -> fastrnn, tensors accepted
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)
        assert back.state_dict()[k].dtype == np.float32


def test_load_state_dict_casts_dtype_and_keeps_parameter_objects():
    m = make_layer("rnn_tanh", dtype="float32")
    params = m.parameters()
    m.load_state_dict({k: v.astype(np.float64) + 1 for k, v in m.state_dict().items()})
    assert [p.data.dtype for p in m.parameters()] == [np.float32] * len(params)
    assert all(p is q for p, q in zip(params, m.parameters()))


def test_init_is_uniform_seeded_and_in_state_dict_order():
    m = make_layer("gru", 2, bidirectional=True, seed=4)
    rng = np.random.default_rng(4)
    k = 1 / np.sqrt(H)
    for name, v in m.state_dict().items():
        np.testing.assert_array_equal(v, rng.uniform(-k, k, size=v.shape))
    assert [p.name for p in m.parameters()] == list(m.state_dict())
    assert list(m.grads) == list(m.state_dict())


def test_backward_adds_into_grads_and_zero_grad_clears():
    m = make_layer("lstm", 2, bidirectional=True)
    x, hx, _, dy, dh_n = make_data(m)
    m(x, hx)
    m.backward(dy, dh_n)
    once = {k: v.copy() for k, v in m.grads.items()}
    m(x, hx)
    m.backward(dy, dh_n)
    for k in once:
        np.testing.assert_allclose(m.grads[k], 2 * once[k], rtol=1e-12)
        assert m.grads[k] is m.parameters()[list(once).index(k)].grad
    m.zero_grad()
    assert all(not g.any() for g in m.grads.values())


def test_unbatched_matches_batch_of_one():
    m = make_layer("lstm_proj", 2, bidirectional=True)
    x, (h0, c0), _, dy, (dh, dc) = make_data(m)
    y1, (h1, c1) = m(x[:, 0], (h0[:, 0], c0[:, 0]))
    dx1, (dh1, dc1) = m.backward(dy[:, 0], (dh[:, 0], dc[:, 0]))
    y, (h, c) = m(x[:, :1], (h0[:, :1], c0[:, :1]))
    dx, (dhx, dcx) = m.backward(dy[:, :1], (dh[:, :1], dc[:, :1]))
    for a, b in [
        (y1, y[:, 0]),
        (h1, h[:, 0]),
        (c1, c[:, 0]),
        (dx1, dx[:, 0]),
        (dh1, dhx[:, 0]),
        (dc1, dcx[:, 0]),
    ]:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_inputs_are_not_modified():
    m = make_layer("gru", 2, bidirectional=True, dropout=0.3)
    data = make_data(m, lengths=True)
    copies = [None if a is None else a.copy() for a in data]
    run_fastrnn(m, *data)
    for a, b in zip(data, copies):
        np.testing.assert_array_equal(a, b)


def test_length_zero_keeps_h0():
    m = make_layer("lstm", 1, bidirectional=True)
    x, hx, _, dy, dh_n = make_data(m)
    y, (h_n, c_n) = m(x, hx, lengths=np.array([0, T, 2]))
    assert not y[:, 0].any() and not y[2:, 2].any()
    np.testing.assert_array_equal(h_n[:, 0], hx[0][:, 0])
    np.testing.assert_array_equal(c_n[:, 0], hx[1][:, 0])


def test_repr():
    assert repr(fr.LSTM(10, 20)) == "LSTM(10, 20)"
    assert repr(
        fr.LSTM(
            10, 20, num_layers=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True, proj_size=5
        )
    ) == (
        "LSTM(10, 20, proj_size=5, num_layers=2, bias=False, batch_first=True, dropout=0.5, "
        "bidirectional=True)"
    )
    assert (
        repr(fr.RNN(3, 4, nonlinearity="relu", dtype="float64"))
        == "RNN(3, 4, nonlinearity='relu', dtype='float64')"
    )
    assert repr(fr.GRU(3, 4, backend="numpy")) == "GRU(3, 4, backend='numpy')"
    assert "weight_ih_l0" in repr(fr.GRU(3, 4).parameters()[0])


# -------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(input_size=0), ValueError, "input_size"),
        (dict(hidden_size=2.0), TypeError, "hidden_size"),
        (dict(num_layers=0), ValueError, "num_layers"),
        (dict(bias=1), TypeError, "bias"),
        (dict(batch_first="yes"), TypeError, "batch_first"),
        (dict(dropout=1.5), ValueError, "dropout"),
        (dict(dropout="0.1"), TypeError, "dropout"),
        (dict(bidirectional=None), TypeError, "bidirectional"),
        (dict(proj_size=6), ValueError, "proj_size"),
        (dict(proj_size=-1), ValueError, "proj_size"),
        (dict(dtype="float16"), TypeError, "dtype"),
        (dict(dtype="int64"), TypeError, "dtype"),
        (dict(backend="cuda"), ValueError, "backend"),
        (dict(seed=1.5), TypeError, "seed"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    args = dict(input_size=I, hidden_size=H) | kwargs
    with pytest.raises(error, match=match):
        fr.LSTM(**args)


def test_bad_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity"):
        fr.RNN(I, H, nonlinearity="sigmoid")


def test_bad_x():
    m = make_layer("gru")
    with pytest.raises(ValueError, match="input_size"):
        m(np.zeros((T, B, I + 1)))
    with pytest.raises(ValueError, match="3 dimensions"):
        m(np.zeros((T,)))
    with pytest.raises(TypeError, match="dtype"):
        m(np.zeros((T, B, I), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        m(np.zeros((T, B, I), np.int64))


def test_bad_hx():
    m = make_layer("gru", 2)
    x = np.zeros((T, B, I))
    with pytest.raises(ValueError, match=r"hx must have shape \(2, 3, 6\)"):
        m(x, np.zeros((1, B, H)))
    with pytest.raises(ValueError, match="hx must have shape"):
        m(x[:, 0], np.zeros((2, B, H)))  # unbatched input takes (D*L, H)
    lstm = make_layer("lstm")
    with pytest.raises(TypeError, match="pair"):
        lstm(x, np.zeros((1, B, H)))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c\) must have shape"):
        lstm(x, (np.zeros((1, B, H)), np.zeros((1, B, H + 1))))
    proj = make_layer("lstm_proj")
    with pytest.raises(ValueError, match=r"hx\[0\] \(h\) must have shape \(1, 3, 3\)"):
        proj(x, (np.zeros((1, B, H)), np.zeros((1, B, H))))


def test_bad_lengths():
    m = make_layer("rnn_tanh")
    x = np.zeros((T, B, I))
    with pytest.raises(ValueError, match="lengths must have shape"):
        m(x, lengths=np.array([1, 2]))
    with pytest.raises(ValueError, match="lengths must lie in"):
        m(x, lengths=np.array([1, 2, T + 1]))
    with pytest.raises(ValueError, match="lengths must lie in"):
        m(x, lengths=np.array([1, -1, 2]))
    with pytest.raises(TypeError, match="integer"):
        m(x, lengths=np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="unbatched"):
        m(x[:, 0], lengths=np.array([2]))


def test_bad_backward():
    m = make_layer("lstm", 2)
    x, hx, _, dy, dh_n = make_data(m)
    with pytest.raises(RuntimeError, match="before any training-mode forward"):
        m.backward(dy)
    m.eval()
    m(x, hx)
    with pytest.raises(RuntimeError, match="eval mode"):
        m.backward(dy)
    m.train()
    m(x, hx)
    with pytest.raises(ValueError, match="dy must have the shape"):
        m.backward(dy[:-1])
    with pytest.raises(ValueError, match=r"dh_n\[0\] \(h\) must have shape"):
        m.backward(dy, (dh_n[0][:1], dh_n[1]))
    with pytest.raises(TypeError, match="pair"):
        m.backward(dy, dh_n[0])
    dx, (dh0, dc0) = m.backward(dy, (None, dh_n[1]))  # either half of dh_n may be None
    assert dx.shape == x.shape and dh0.shape == hx[0].shape and dc0.shape == hx[1].shape


def test_bad_load_state_dict():
    m = make_layer("lstm", 2, bidirectional=True)
    good = m.state_dict()
    missing = {k: v for k, v in good.items() if k != "bias_hh_l1_reverse"}
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l1_reverse'\]"):
        m.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys \['weight_hr_l0'\]"):
        m.load_state_dict(good | {"weight_hr_l0": np.zeros((3, H))})
    wrong = good | {"weight_ih_l1": np.zeros((4 * H, I))}
    with pytest.raises(ValueError, match=r"weight_ih_l1 must have shape \(24, 12\)"):
        m.load_state_dict(wrong)
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])
    # A failed load leaves the weights untouched.
    for k, v in good.items():
        np.testing.assert_array_equal(m.state_dict()[k], v)
