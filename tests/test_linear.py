"""Linear and Embedding: finite-difference gradients, PyTorch parity, shapes and modes, state_dict
round trips and bad input."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import Parameter
from fastrnn.linear import Embedding, Linear

from helpers import assert_close, backend_params, fd_grad

DTYPES = (np.float32, np.float64)


# -------------------------------------------------------------------------------------------------
# Linear


@pytest.fixture(params=backend_params())
def on_backend(request):
    """Runs the test with Linear's products on each backend."""
    with fr.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3, 2, 4), (4,), (2, 1, 3, 4)], ids=["TBI", "vector", "4d"])
def test_linear_gradcheck(shape, bias, on_backend):
    rng = np.random.default_rng(0)
    lin = Linear(4, 5, bias=bias, dtype="float64", seed=1)
    x = rng.standard_normal(shape)
    r = rng.standard_normal(shape[:-1] + (5,))

    def loss():
        return float(np.sum(lin(x) * r))

    y = lin(x)
    assert y.shape == shape[:-1] + (5,) and y.dtype == np.float64
    dx = lin.backward(r)
    assert_close(dx, fd_grad(loss, x), "dx", rtol=1e-6, atol_rel=1e-7)
    for p in lin.parameters():  # weight, then bias
        assert_close(lin.grads[p.name], fd_grad(loss, p.data), p.name, rtol=1e-6, atol_rel=1e-7)
    if not bias:
        assert list(lin.state_dict()) == ["weight"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_matches_formula_and_accumulates(dtype, on_backend):
    rng = np.random.default_rng(2)
    lin = Linear(3, 2, dtype=dtype, seed=0)
    x = rng.standard_normal((5, 4, 3)).astype(dtype)
    x_before = x.copy()
    W, b = lin.state_dict()["weight"], lin.state_dict()["bias"]
    y = lin(x)
    assert y.dtype == dtype
    assert_close(y, np.einsum("tbi,oi->tbo", x, W) + b, "y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx1 = lin.backward(dy)
    g1 = {k: v.copy() for k, v in lin.grads.items()}
    dx2 = lin.backward(dy)  # backward ADDS into grads
    assert_close(dx2, dx1, "dx")
    for k in g1:
        assert_close(lin.grads[k], 2 * g1[k], k)
    lin.zero_grad()
    assert all(not g.any() for g in lin.grads.values())
    np.testing.assert_array_equal(x, x_before)  # the input is never modified


def test_linear_non_contiguous_and_empty(on_backend):
    rng = np.random.default_rng(3)
    lin = Linear(4, 3, dtype="float64", seed=0)
    x = rng.standard_normal((4, 6, 5))
    xt = x.transpose(2, 1, 0)  # (5, 6, 4), not C-contiguous
    np.testing.assert_allclose(lin(xt), lin(np.ascontiguousarray(xt)), rtol=1e-14)
    y = lin(np.zeros((0, 2, 4)))
    assert y.shape == (0, 2, 3)
    assert lin.backward(np.zeros((0, 2, 3))).shape == (0, 2, 4)
    assert not lin.grads["weight"].any()


@pytest.mark.native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 2048])
def test_linear_native_matches_numpy(dtype, rows):
    rng = np.random.default_rng(4)
    lin = Linear(256, 103, dtype=dtype, seed=0)
    x = rng.standard_normal((rows, 256)).astype(dtype)
    dy = rng.standard_normal((rows, 103)).astype(dtype)
    out = {}
    for backend in ("numpy", "native"):
        with fr.use_backend(backend):
            lin.zero_grad()
            y = lin(x)
            dx = lin.backward(dy)
            out[backend] = (y, dx, lin.grads["weight"].copy(), lin.grads["bias"].copy())
    for name, a, b in zip(("y", "dx", "dweight", "dbias"), out["native"], out["numpy"]):
        assert_close(a, b, name)


def test_linear_misaligned_input(on_backend):
    lin = Linear(3, 2, dtype="float64", seed=0)
    raw = np.zeros(4 * 3 * 8 + 1, np.uint8)
    x = np.frombuffer(raw.data, dtype=np.float64, count=12, offset=1).reshape(4, 3)
    assert not x.flags.aligned
    np.testing.assert_array_equal(lin(x), lin(np.zeros((4, 3))))


@pytest.mark.native
@pytest.mark.parametrize(
    "args, exc, match",
    [
        (
            lambda: ([[1.0]], np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)),
            TypeError,
            "a must be a NumPy array",
        ),
        (lambda: (np.ones((2, 3), np.int32),) * 3, TypeError, "float32 or float64"),
        (
            lambda: (np.ones((2, 3), np.float32), np.ones((3, 2)), np.ones((2, 2), np.float32)),
            TypeError,
            "the same dtype",
        ),
        (lambda: (np.ones((2, 3)), np.ones((3, 2)), np.ones(4)), ValueError, "must be 2-D"),
        (
            lambda: (np.ones((2, 3)), np.ones((2, 2)), np.ones((2, 2))),
            ValueError,
            r"b must have shape \(K=3, N\)",
        ),
        (
            lambda: (np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 3))),
            ValueError,
            r"out must have shape \(2, 2\)",
        ),
        (
            lambda: (np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 2)).T),
            ValueError,
            "out must be C-contiguous",
        ),
    ],
)
def test_native_matmul_rejects(args, exc, match):
    from fastrnn import _native

    with pytest.raises(exc, match=match):
        _native.matmul(*args(), False)


@pytest.mark.native
def test_native_matmul_rejects_overlap_and_read_only():
    from fastrnn import _native

    buf = np.ones((4, 4))
    with pytest.raises(ValueError, match="out must not share memory with a or b"):
        _native.matmul(buf[1:3, :3], np.ones((3, 4)), buf[2:], False)  # row 2 is in both
    with pytest.raises(ValueError, match="out must not share memory with a or b"):
        _native.matmul(buf[:, :2], np.ones((2, 4)), buf, True)
    ro = np.zeros((2, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        _native.matmul(np.ones((2, 3)), np.ones((3, 2)), ro, False)
    a, b, out = np.ones((3, 5)), np.ones((5, 4)), np.zeros((3, 4))
    _native.matmul(a[:, ::-1], b[::-1, ::2].repeat(2, axis=1), out, False)  # negative strides
    np.testing.assert_array_equal(out, np.full((3, 4), 5.0))


def test_linear_init_and_seed():
    lin = Linear(16, 8, seed=5)
    k = 1 / np.sqrt(16)
    for p in lin.parameters():
        assert isinstance(p, Parameter) and p.data.dtype == np.float32 and p.grad.shape == p.data.shape
        assert np.all(np.abs(p.data) <= k)
    assert [p.name for p in lin.parameters()] == ["weight", "bias"]
    assert lin.state_dict()["weight"].shape == (8, 16) and lin.state_dict()["bias"].shape == (8,)
    same = Linear(16, 8, seed=5)
    other = Linear(16, 8, seed=6)
    np.testing.assert_array_equal(same.state_dict()["weight"], lin.state_dict()["weight"])
    assert not np.array_equal(other.state_dict()["weight"], lin.state_dict()["weight"])
    big = Linear(100, 200, seed=0).state_dict()["weight"]
    assert big.min() < -0.09 and big.max() > 0.09  # spans U(-0.1, 0.1)


def test_linear_modes():
    lin = Linear(2, 3)
    with pytest.raises(RuntimeError, match="before any training-mode forward"):
        lin.backward(np.zeros((1, 3), np.float32))
    assert lin.eval() is lin and not lin.training
    y = lin(np.ones((1, 2), np.float32))
    with pytest.raises(RuntimeError, match="eval"):
        lin.backward(np.zeros_like(y))
    assert lin.train() is lin and lin.training
    lin(np.ones((1, 2), np.float32))
    lin.backward(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="mode"):
        lin.train("yes")


def test_linear_repr():
    assert repr(Linear(3, 4)) == "Linear(in_features=3, out_features=4, bias=True)"
    assert (
        repr(Linear(3, 4, bias=False, dtype="float64"))
        == "Linear(in_features=3, out_features=4, bias=False, dtype='float64')"
    )


def test_linear_state_dict_round_trip():
    a, b = Linear(3, 4, seed=0), Linear(3, 4, seed=1)
    sd = a.state_dict()
    sd["weight"][...] = 7  # a copy: the layer is unchanged
    assert not np.any(a.state_dict()["weight"] == 7)
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))
    c = Linear(3, 4, dtype="float64")
    c.load_state_dict(a.state_dict())  # cast to the layer's dtype
    assert c.state_dict()["weight"].dtype == np.float64


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (lambda sd: {"weight": sd["weight"]}, ValueError, "missing keys"),
        (lambda sd: dict(sd, extra=np.zeros(1)), ValueError, "unexpected keys"),
        (lambda sd: dict(sd, bias=np.zeros(5)), ValueError, "bias must have shape"),
        (lambda sd: dict(sd, weight=sd["weight"].T), ValueError, "weight must have shape"),
        (lambda sd: dict(sd, bias=np.zeros(4, bool)), TypeError, "real numbers"),
        (lambda sd: list(sd.values()), TypeError, "mapping"),
    ],
    ids=["missing", "unexpected", "bias_shape", "weight_transposed", "bool", "not_mapping"],
)
def test_linear_load_state_dict_rejects(bad, exc, match):
    lin = Linear(3, 4, seed=0)
    before = lin.state_dict()
    with pytest.raises(exc, match=match):
        lin.load_state_dict(bad(before))
    for k, v in lin.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # unchanged


@pytest.mark.parametrize(
    "x, exc, match",
    [
        (np.zeros((2, 4), np.float32), ValueError, r"x must have shape \(\.\.\., in_features=3\)"),
        (np.zeros((), np.float32), ValueError, "x must have shape"),
        (np.zeros((2, 3), np.float64), TypeError, "x must have the layer's dtype float32"),
        (np.zeros((2, 3), np.int64), TypeError, "x must have the layer's dtype"),
        (np.zeros((2, 3), np.float16), TypeError, "x must have the layer's dtype"),
        (np.zeros((2, 3), bool), TypeError, "x must have the layer's dtype"),
    ],
    ids=["wrong_in", "scalar", "float64", "int", "float16", "bool"],
)
def test_linear_bad_input(x, exc, match):
    with pytest.raises(exc, match=match):
        Linear(3, 5)(x)


def test_linear_bad_dy():
    lin = Linear(3, 5)
    lin(np.zeros((4, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy must have the shape of the forward's output \(4, 2, 5"):
        lin.backward(np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="dy must have the layer's dtype"):
        lin.backward(np.zeros((4, 2, 5), np.float64))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(in_features=0, out_features=2), ValueError, "in_features"),
        (dict(in_features=2, out_features=-1), ValueError, "out_features"),
        (dict(in_features=2.0, out_features=2), TypeError, "in_features"),
        (dict(in_features=2, out_features=2, bias="no"), TypeError, "bias"),
        (dict(in_features=2, out_features=2, dtype="float16"), TypeError, "dtype"),
        (dict(in_features=2, out_features=2, dtype="nope"), TypeError, "dtype"),
        (dict(in_features=2, out_features=2, seed=-1), ValueError, "seed"),
        (dict(in_features=2, out_features=2, seed=1.5), TypeError, "seed"),
    ],
)
def test_linear_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Linear(**kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    torch.manual_seed(0)
    ref = torch.nn.Linear(6, 4).to(tdtype)
    lin = Linear(6, 4, dtype=dtype)
    lin.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 6)).astype(dtype)
    dy = rng.standard_normal((5, 3, 4)).astype(dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    assert_close(lin(x), yt.detach().numpy(), "y")
    assert_close(lin.backward(dy), xt.grad.numpy(), "dx")
    assert_close(lin.grads["weight"], ref.weight.grad.numpy(), "dW")
    assert_close(lin.grads["bias"], ref.bias.grad.numpy(), "db")


# -------------------------------------------------------------------------------------------------
# Embedding


def test_embedding_gradcheck():
    rng = np.random.default_rng(5)
    emb = Embedding(6, 3, dtype="float64", seed=0)
    idx = np.array([[0, 2, 2, 5], [5, 5, 1, 0], [3, 2, 0, 0]])  # repeats accumulate; row 4 unused
    r = rng.standard_normal((3, 4, 3))

    def loss():
        return float(np.sum(emb(idx) * r))

    y = emb(idx)
    assert y.shape == (3, 4, 3) and y.dtype == np.float64
    assert emb.backward(r) is None  # indices have no gradient
    fd = fd_grad(loss, emb.parameters()[0].data)
    assert_close(emb.grads["weight"], fd, "dW", rtol=1e-6, atol_rel=1e-7)
    assert not emb.grads["weight"][4].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_lookup_and_shapes(dtype):
    emb = Embedding(10, 4, dtype=dtype, seed=1)
    W = emb.state_dict()["weight"]
    for idx in (
        np.array(3),
        np.arange(10),
        np.array([[1, 2], [3, 9]], np.uint8),
        [4, 4, 0],
        np.zeros((2, 0), np.int32),
    ):
        y = emb(idx)
        assert y.dtype == dtype and y.shape == np.shape(idx) + (4,)
        np.testing.assert_array_equal(y, W[np.asarray(idx, np.intp)])
    y = emb(np.array([1, 2]))
    y[...] = 0  # the output is a copy, not a view of the weight
    assert emb.state_dict()["weight"][1].any()


def test_embedding_init_seed_repr_and_modes():
    emb = Embedding(200, 50, seed=3)
    w = emb.state_dict()["weight"]
    assert w.dtype == np.float32 and w.shape == (200, 50)
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05  # N(0, 1)
    np.testing.assert_array_equal(Embedding(200, 50, seed=3).state_dict()["weight"], w)
    assert [p.name for p in emb.parameters()] == ["weight"]
    assert repr(Embedding(10, 4)) == "Embedding(10, 4)"
    assert repr(Embedding(10, 4, dtype="float64")) == "Embedding(10, 4, dtype='float64')"
    with pytest.raises(RuntimeError, match="before any training-mode forward"):
        emb.backward(np.zeros((1, 50), np.float32))
    emb.eval()
    emb(np.array([1]))
    with pytest.raises(RuntimeError, match="eval"):
        emb.backward(np.zeros((1, 50), np.float32))


def test_embedding_caches_its_own_indices():
    emb = Embedding(5, 2, dtype="float64")
    idx = np.array([1, 2])
    emb(idx)
    idx[...] = 4  # the caller changes its array after the forward
    emb.backward(np.ones((2, 2)))
    g = emb.grads["weight"]
    assert g[1].all() and g[2].all() and not g[4].any()


def test_embedding_state_dict_round_trip():
    a, b = Embedding(7, 3, seed=0), Embedding(7, 3, seed=1)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(np.arange(7)), b(np.arange(7)))
    with pytest.raises(ValueError, match="weight must have shape"):
        b.load_state_dict({"weight": np.zeros((3, 7))})
    with pytest.raises(ValueError, match="missing keys"):
        b.load_state_dict({})


@pytest.mark.parametrize(
    "idx, exc, match",
    [
        (np.array([0.0, 1.0]), TypeError, "indices must be an integer array"),
        (np.array([True, False]), TypeError, "indices must be an integer array"),
        (np.array([0, 5]), ValueError, r"indices must be in \[0, num_embeddings=5\), got 5"),
        (np.array([[0, -1]]), ValueError, "got -1"),
        (np.array(["a"]), TypeError, "indices"),
    ],
    ids=["float", "bool", "too_big", "negative", "str"],
)
def test_embedding_bad_input(idx, exc, match):
    with pytest.raises(exc, match=match):
        Embedding(5, 2)(idx)


def test_embedding_bad_dy_and_arguments():
    emb = Embedding(5, 2)
    emb(np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match=r"dy must have the shape of the forward's output \(1, 3, 2"):
        emb.backward(np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="dy must have the layer's dtype"):
        emb.backward(np.zeros((1, 3, 2), np.float64))
    with pytest.raises(ValueError, match="num_embeddings"):
        Embedding(0, 2)
    with pytest.raises(TypeError, match="embedding_dim"):
        Embedding(3, "2")
    with pytest.raises(TypeError, match="dtype"):
        Embedding(3, 2, dtype=np.int32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    torch.manual_seed(0)
    ref = torch.nn.Embedding(8, 5).to(tdtype)
    emb = Embedding(8, 5, dtype=dtype)
    emb.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(6)
    idx = rng.integers(0, 8, size=(6, 3))
    dy = rng.standard_normal((6, 3, 5)).astype(dtype)
    yt = ref(torch.from_numpy(idx))
    yt.backward(torch.from_numpy(dy))
    assert_close(emb(idx), yt.detach().numpy(), "y")
    emb.backward(dy)
    assert_close(emb.grads["weight"], ref.weight.grad.numpy(), "dW")
