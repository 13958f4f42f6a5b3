"""Sequential: a whole Embedding -> LSTM -> Linear model with cross_entropy against finite differences
and PyTorch, native vs numpy backends, prefixed names, state_dict round trips, modes and the container
protocol."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import losses
from fastrnn.linear import Embedding, Linear
from fastrnn.sequential import Sequential

from helpers import assert_close, backend_params

V, E, H, T, B = 7, 4, 5, 6, 3


def make_model(backend=None, dtype="float64", seed=0):
    return Sequential(
        Embedding(V, E, dtype=dtype, seed=seed),
        fr.LSTM(E, H, dtype=dtype, backend=backend, seed=seed + 1),
        Linear(H, V, dtype=dtype, seed=seed + 2),
    )


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, V, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    mask = np.ones((T, B), bool)
    mask[4:, 1] = False  # a shorter sequence: padding is not counted
    return tokens, targets, mask


def loss_and_grads(model, tokens, targets, mask):
    model.zero_grad()
    logits = model(tokens)
    loss, dlogits = losses.cross_entropy(logits, targets, mask)
    dx = model.backward(dlogits)
    return loss, logits, dx, {k: v.copy() for k, v in model.grads.items()}


@pytest.mark.parametrize("backend", backend_params())
def test_whole_model_gradcheck(backend):
    model = make_model(backend)
    tokens, targets, mask = make_data()
    loss, logits, dx, grads = loss_and_grads(model, tokens, targets, mask)
    assert logits.shape == (T, B, V) and dx is None  # the Embedding's indices have no gradient
    rng = np.random.default_rng(7)
    eps = 1e-6
    for p in model.parameters():
        assert grads[p.name].shape == p.data.shape and np.any(grads[p.name])
        for _ in range(4):  # spot-check a few entries of every parameter
            i = tuple(int(rng.integers(n)) for n in p.data.shape)
            old = p.data[i]
            p.data[i] = old + eps  # p.data is the layer's own array
            up = losses.cross_entropy(model(tokens), targets, mask)[0]
            p.data[i] = old - eps
            down = losses.cross_entropy(model(tokens), targets, mask)[0]
            p.data[i] = old
            fd = (up - down) / (2 * eps)
            got = grads[p.name][i]
            assert abs(got - fd) <= 1e-7 + 1e-5 * abs(fd), (p.name, i, got, fd)


@pytest.mark.native
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_native_and_numpy_backends_agree(dtype):
    tokens, targets, mask = make_data(1)
    results = [loss_and_grads(make_model(b, dtype), tokens, targets, mask) for b in ("numpy", "native")]
    (loss_np, y_np, _, g_np), (loss_nat, y_nat, _, g_nat) = results
    assert_close(y_nat, y_np, "logits")
    np.testing.assert_allclose(loss_nat, loss_np, rtol=1e-5 if dtype == "float32" else 1e-12)
    assert list(g_nat) == list(g_np)
    for k in g_np:
        assert_close(g_nat[k], g_np[k], k)


@pytest.mark.parametrize("backend", backend_params())
def test_matches_torch(backend):
    torch = pytest.importorskip("torch")
    model = make_model(backend)
    tokens, targets, mask = make_data(2)
    loss, logits, _, grads = loss_and_grads(model, tokens, targets, mask)

    torch.manual_seed(0)
    parts = torch.nn.ModuleList([torch.nn.Embedding(V, E), torch.nn.LSTM(E, H), torch.nn.Linear(H, V)])
    parts = parts.double()
    parts.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    h, _ = parts[1](parts[0](torch.from_numpy(tokens)))
    out = parts[2](h)
    t_targets = np.where(mask, targets, -100)
    ref = torch.nn.functional.cross_entropy(out.reshape(-1, V), torch.from_numpy(t_targets).reshape(-1))
    ref.backward()
    assert_close(logits, out.detach().numpy(), "logits")
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
    torch_grads = {k: p.grad.numpy() for k, p in parts.named_parameters()}
    assert sorted(torch_grads) == sorted(grads)
    for k, g in torch_grads.items():
        assert_close(grads[k], g, k)


def test_names_and_shared_parameters():
    model = make_model()
    names = [
        "0.weight",
        "1.weight_ih_l0",
        "1.weight_hh_l0",
        "1.bias_ih_l0",
        "1.bias_hh_l0",
        "2.weight",
        "2.bias",
    ]
    assert [p.name for p in model.parameters()] == names
    assert list(model.state_dict()) == names and list(model.grads) == names
    assert model.parameters()[0] is model.parameters()[0]  # stable objects for optimizers
    # The Parameters share the layers' arrays: an in-place update is seen by the layer and vice versa.
    p = model.parameters()[5]
    p.data[...] = 0
    assert not model[2].state_dict()["weight"].any()
    model[2].zero_grad()
    model[2].grads["weight"][...] = 3
    assert np.all(p.grad == 3)
    model.zero_grad()
    assert all(not g.any() for g in model.grads.values())
    nested = Sequential(Linear(2, 3), Sequential(Linear(3, 3), Linear(3, 1, bias=False)))
    assert list(nested.state_dict()) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.1.weight"]


def test_chains_single_state_layers_and_returns_dx():
    rng = np.random.default_rng(3)
    model = Sequential(
        Linear(3, 4, dtype="float64", seed=0),
        fr.GRU(4, 5, dtype="float64", seed=1),
        fr.RNN(5, 2, dtype="float64", seed=2),
    )
    x = rng.standard_normal((T, B, 3))
    y = model(x)
    y_ref, _ = model[2](model[1](model[0](x))[0])
    np.testing.assert_array_equal(y, y_ref)
    model.zero_grad()
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    assert dx.shape == x.shape
    # Same as running the layers' backward by hand.
    g = {k: v.copy() for k, v in model.grads.items()}
    model.zero_grad()
    model(x)
    d2, _ = model[2].backward(dy)
    d1, _ = model[1].backward(d2)
    np.testing.assert_array_equal(model[0].backward(d1), dx)
    for k, v in model.grads.items():
        np.testing.assert_array_equal(v, g[k])
    empty = Sequential()
    assert empty(x) is x and empty.backward(dy) is dy and empty.parameters() == []


def test_state_dict_round_trip_and_rejection():
    a, b = make_model(seed=0), make_model(seed=10)
    tokens, _, _ = make_data()
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(tokens), b(tokens))
    sd = a.state_dict()
    sd["0.weight"][...] = 123  # a copy
    assert not np.any(a.state_dict()["0.weight"] == 123)

    c = make_model(seed=20)
    before = c.state_dict()
    bad = dict(a.state_dict())
    bad["2.bias"] = np.zeros(V + 1)  # the last layer rejects it after the first two loaded
    with pytest.raises(ValueError, match="bias must have shape"):
        c.load_state_dict(bad)
    for k, v in c.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing changed
    with pytest.raises(ValueError, match=r"missing keys \['2.bias'\]"):
        c.load_state_dict({k: v for k, v in before.items() if k != "2.bias"})
    with pytest.raises(ValueError, match=r"unexpected keys \['3.weight'\]"):
        c.load_state_dict(dict(before, **{"3.weight": np.zeros(1)}))
    with pytest.raises(TypeError, match="mapping"):
        c.load_state_dict([1, 2])


def test_modes_propagate():
    model = make_model()
    tokens, _, _ = make_data()
    with pytest.raises(RuntimeError, match="before any training-mode forward"):
        model.backward(np.zeros((T, B, V)))
    assert model.eval() is model and not model.training
    assert not any(layer.training for layer in model)
    y = model(tokens)
    with pytest.raises(RuntimeError, match="eval"):
        model.backward(np.zeros_like(y))
    assert model.train() is model and all(layer.training for layer in model)
    model.backward(np.zeros_like(model(tokens)))
    with pytest.raises(TypeError, match="mode"):
        model.train(1)


def test_container_protocol_and_repr():
    layers = [Embedding(V, E), fr.LSTM(E, H), Linear(H, V)]
    model = Sequential(*layers)
    assert len(model) == 3 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[2] and model[np.int64(1)] is layers[1]
    tail = model[1:]
    assert isinstance(tail, Sequential) and len(tail) == 2 and tail[0] is layers[1]
    assert list(tail.state_dict())[0] == "0.weight_ih_l0"
    with pytest.raises(IndexError):
        model[3]
    with pytest.raises(TypeError, match="integers or slices"):
        model["0"]
    assert repr(model) == (
        "Sequential(\n  (0): Embedding(7, 4)\n  (1): LSTM(4, 5)\n"
        "  (2): Linear(in_features=5, out_features=7, bias=True)\n)"
    )
    assert repr(Sequential(Sequential(Linear(1, 1)))) == (
        "Sequential(\n  (0): Sequential(\n    (0): Linear(in_features=1, out_features=1, bias=True)\n  )\n)"
    )
    assert repr(Sequential()) == "Sequential()"


@pytest.mark.parametrize("bad", [3, np.zeros(2), lambda x: x, "Linear"])
def test_rejects_non_layers(bad):
    with pytest.raises(TypeError, match="layer 1 .* is not a fastrnn layer"):
        Sequential(Linear(2, 2), bad)


def test_bad_input_reaches_the_layers():
    model = make_model(dtype="float32")
    with pytest.raises(TypeError, match="indices must be an integer array"):
        model(np.zeros((T, B), np.float32))
    with pytest.raises(ValueError, match="indices must be in"):
        model(np.full((T, B), V))
    model(make_data()[0])
    with pytest.raises(ValueError, match="dy must have the shape"):
        model.backward(np.zeros((T, B, V + 1), np.float32))


def test_public_names():
    assert fr.Linear is Linear and fr.Embedding is Embedding and fr.Sequential is Sequential
    assert fr.losses is losses


# -- carrying state: forward_with_state ------------------------------------------------------------


def stacked_model(backend=None, dtype="float64"):
    """Embedding -> (GRU -> RNN nested in a Sequential) -> LSTM -> Linear: three recurrent layers."""
    return Sequential(
        Embedding(V, E, dtype=dtype, seed=0),
        Sequential(
            fr.GRU(E, H, dtype=dtype, backend=backend, seed=1),
            fr.RNN(H, H, num_layers=2, dtype=dtype, backend=backend, seed=2),
        ),
        fr.LSTM(H, H, dtype=dtype, backend=backend, seed=3),
        Linear(H, V, dtype=dtype, seed=4),
    )


@pytest.mark.parametrize("backend", backend_params())
def test_chunks_with_carried_state_equal_one_forward(backend):
    model = stacked_model(backend)
    assert model.num_recurrent == 3 and model[1].num_recurrent == 2
    tokens = np.random.default_rng(3).integers(0, V, size=(11, B))
    whole, states = model.forward_with_state(tokens)
    assert [type(s).__name__ for s in states] == ["ndarray", "ndarray", "tuple"]
    assert states[1].shape == (2, B, H) and states[2][1].shape == (1, B, H)
    y1, s1 = model.forward_with_state(tokens[:4])
    y2, s2 = model.forward_with_state(tokens[4:], s1)
    assert_close(np.concatenate([y1, y2]), whole, "y")
    for a, b in zip(s2[:2] + list(s2[2]), states[:2] + list(states[2])):
        assert_close(a, b, "state")
    np.testing.assert_array_equal(model(tokens), whole)  # __call__ is forward_with_state's y


def test_forward_with_state_passes_lengths_and_partial_hx():
    model = Sequential(fr.GRU(3, H, dtype="float64", seed=0), fr.GRU(H, 2, dtype="float64", seed=1))
    x = np.random.default_rng(0).standard_normal((5, B, 3))
    lengths = np.array([5, 2, 3])
    h0 = np.full((1, B, 2), 0.5)
    y, (h_a, h_b) = model.forward_with_state(x, [None, h0], lengths)
    ref_y1, ref_h1 = model[0](x, lengths=lengths)
    ref_y, ref_h = model[1](ref_y1, h0, lengths=lengths)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(h_a, ref_h1)
    np.testing.assert_array_equal(h_b, ref_h)
    assert np.all(y[2:, 1] == 0)  # padding after each sequence's length
    np.testing.assert_array_equal(model(x, [None, h0], lengths), ref_y)


@pytest.mark.parametrize(
    "hx, match",
    [
        ([None], r"one state per recurrent layer \(2\), got list of length 1"),
        ((None, None, None), r"\(2\), got tuple of length 3"),
        (np.zeros((1, B, H)), r"got ndarray"),
    ],
)
def test_forward_with_state_rejects_bad_hx(hx, match):
    model = Sequential(fr.GRU(3, H, seed=0), fr.GRU(H, 2, seed=1))
    with pytest.raises(ValueError, match=match):
        model.forward_with_state(np.zeros((2, B, 3), np.float32), hx)


def test_forward_with_state_bad_state_shape_names_the_layer_argument():
    model = Sequential(fr.LSTM(3, H, seed=0))
    with pytest.raises(TypeError, match=r"hx must be a pair \(h, c\) for LSTM, got ndarray"):
        model.forward_with_state(np.zeros((2, B, 3), np.float32), [np.zeros((1, B, H), np.float32)])


def test_is_recurrent_tells_the_recurrent_layers_apart():
    recurrent = [fr.RNN(3, 4), fr.RNN(3, 4, nonlinearity="relu"), fr.LSTM(3, 4), fr.GRU(3, 4, num_layers=2)]
    others = [fr.Linear(3, 4), fr.Embedding(5, 3), fr.Sequential(fr.LSTM(3, 4)), np.tanh, None, "LSTM"]
    assert all(fr.is_recurrent(layer) for layer in recurrent)
    assert not any(fr.is_recurrent(layer) for layer in others)

    class MyLSTM(fr.LSTM):
        pass

    assert fr.is_recurrent(MyLSTM(3, 4))
