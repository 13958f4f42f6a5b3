"""fastrnn.init: shapes, statistics, gate blocks, seeds, in-place updates and bad input."""

import numpy as np
import pytest

import fastrnn
from fastrnn import Parameter, init

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def snapshot(layer):
    return {p.name: p.data.copy() for p in layer.parameters()}


def data_ids(layer):
    return [id(p.data) for p in layer.parameters()]


def assert_orthonormal(block, tol):
    """Rows orthonormal if the block is wide, columns if tall (both if square)."""
    b = block.astype(np.float64)
    gram = b @ b.T if b.shape[0] <= b.shape[1] else b.T @ b
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=tol)


# -------------------------------------------------------------------------------------------------
# uniform_: PyTorch's default


@pytest.mark.parametrize("cls", [fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_reproduces_the_constructor(cls, dtype):
    ref = cls(3, 5, num_layers=2, bidirectional=True, dtype=dtype, seed=11)
    m = cls(3, 5, num_layers=2, bidirectional=True, dtype=dtype, seed=99)
    ids = data_ids(m)
    assert init.uniform_(m, seed=11) is m
    assert data_ids(m) == ids  # in place
    for name, w in ref.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[name], w, err_msg=name)
        assert np.all(np.abs(w) <= 1 / np.sqrt(5))


def test_uniform_bounds_arrays_and_seeds():
    a = np.zeros((50, 40))
    init.uniform_(a, seed=0)  # fan_in = 40
    assert np.abs(a).max() <= 1 / np.sqrt(40) and np.abs(a).max() > 0.9 / np.sqrt(40)
    b = np.zeros(1000, np.float32)
    init.uniform_(b, bound=0.25, seed=1)
    assert b.dtype == np.float32 and np.abs(b).max() <= 0.25
    assert abs(b.mean()) < 0.03 and b.std() == pytest.approx(0.25 / np.sqrt(3), rel=0.1)
    c = np.zeros(1000, np.float32)
    init.uniform_(c, bound=0.25, seed=1)
    np.testing.assert_array_equal(b, c)
    init.uniform_(c, bound=0.25, seed=2)
    assert not np.array_equal(b, c)
    with pytest.raises(ValueError, match="bound"):
        init.uniform_(np.zeros(5), seed=0)


# -------------------------------------------------------------------------------------------------
# orthogonal_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, gates", [(fastrnn.RNN, 1), (fastrnn.LSTM, 4), (fastrnn.GRU, 3)])
def test_orthogonal_per_gate_block(cls, gates, dtype):
    H = 6
    m = cls(5, H, num_layers=2, bidirectional=True, dtype=np.dtype(dtype).name, seed=0)
    before = snapshot(m)
    ids = data_ids(m)
    init.orthogonal_(m, seed=3)
    assert data_ids(m) == ids
    for p in m.parameters():
        if p.name.startswith("weight_hh"):
            assert p.data.shape == (gates * H, H)
            for k in range(gates):
                assert_orthonormal(p.data[k * H : (k + 1) * H], TOL[dtype])
            # Different gates get different matrices.
            if gates > 1:
                assert not np.allclose(p.data[:H], p.data[H : 2 * H])
        else:  # which="hh": everything else untouched
            np.testing.assert_array_equal(p.data, before[p.name])


def test_orthogonal_which_gain_and_projection():
    H, P = 6, 3
    m = fastrnn.LSTM(4, H, proj_size=P, dtype="float64", seed=0)
    init.orthogonal_(m, gain=2.0, seed=1, which="all")
    sd = m.state_dict()
    for k in range(4):
        assert_orthonormal(sd["weight_ih_l0"][k * H : (k + 1) * H] / 2.0, 1e-12)  # (6, 4): columns
        assert_orthonormal(sd["weight_hh_l0"][k * H : (k + 1) * H] / 2.0, 1e-12)  # (6, 3): columns
    assert_orthonormal(sd["weight_hr_l0"] / 2.0, 1e-12)  # (3, 6): rows
    m2 = fastrnn.LSTM(4, H, proj_size=P, dtype="float64", seed=0)
    before = snapshot(m2)
    init.orthogonal_(m2, seed=1, which="ih")
    after = m2.state_dict()
    assert not np.array_equal(after["weight_ih_l0"], before["weight_ih_l0"])
    for name in ("weight_hh_l0", "weight_hr_l0", "bias_ih_l0", "bias_hh_l0"):
        np.testing.assert_array_equal(after[name], before[name])


def test_orthogonal_arrays():
    a = np.zeros((8, 3))
    init.orthogonal_(a, seed=0)
    assert_orthonormal(a, 1e-12)
    b = np.zeros((3, 8), np.float32)
    init.orthogonal_(b, seed=0)
    assert_orthonormal(b, 1e-5)
    c = np.zeros((8, 4))
    init.orthogonal_(c, seed=0, gate_blocks=2)
    assert_orthonormal(c[:4], 1e-12)
    assert_orthonormal(c[4:], 1e-12)
    # A Parameter and a list of arrays work too.
    p = Parameter("weight_hh_l0", np.zeros((5, 5)))
    d = np.zeros((5, 5))
    init.orthogonal_([p, d], seed=0)
    assert_orthonormal(p.data, 1e-12)
    assert_orthonormal(d, 1e-12)
    assert not np.allclose(p.data, d)


def test_seeds_are_reproducible_and_generators_are_shared():
    def build(seed):
        m = fastrnn.GRU(3, 4, dtype="float64", seed=0)
        init.orthogonal_(m, seed=seed)
        return m.state_dict()["weight_hh_l0"]

    np.testing.assert_array_equal(build(5), build(5))
    assert not np.allclose(build(5), build(6))
    # One Generator gives a stream: two draws from it differ, and restart identically.
    g = np.random.default_rng(0)
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    init.xavier_uniform_(a, seed=g)
    init.xavier_uniform_(b, seed=g)
    assert not np.allclose(a, b)
    c = np.zeros((4, 4))
    init.xavier_uniform_(c, seed=np.random.default_rng(0))
    np.testing.assert_array_equal(a, c)
    # float32 and float64 draw the same values (up to rounding).
    m32 = fastrnn.LSTM(3, 4, dtype="float32", seed=0)
    m64 = fastrnn.LSTM(3, 4, dtype="float64", seed=0)
    init.xavier_normal_(m32, seed=9)
    init.xavier_normal_(m64, seed=9)
    for name, w in m64.state_dict().items():
        np.testing.assert_allclose(m32.state_dict()[name], w, rtol=1e-6, atol=1e-7)


# -------------------------------------------------------------------------------------------------
# identity_ (IRNN)


def test_identity_irnn():
    m = fastrnn.RNN(3, 5, nonlinearity="relu", num_layers=2, dtype="float64", seed=0)
    before = snapshot(m)
    ids = data_ids(m)
    init.identity_(m)
    assert data_ids(m) == ids
    sd = m.state_dict()
    for layer in (0, 1):
        np.testing.assert_array_equal(sd[f"weight_hh_l{layer}"], np.eye(5))
        assert not np.any(sd[f"bias_ih_l{layer}"]) and not np.any(sd[f"bias_hh_l{layer}"])
        np.testing.assert_array_equal(sd[f"weight_ih_l{layer}"], before[f"weight_ih_l{layer}"])
    # With identity recurrence, zero input and zero biases, a ReLU RNN carries h0 unchanged.
    m0 = fastrnn.RNN(2, 4, nonlinearity="relu", dtype="float64", seed=0)
    init.identity_(m0, input_std=0.001, seed=0)
    assert np.std(m0.state_dict()["weight_ih_l0"]) < 0.005
    h0 = np.abs(np.random.default_rng(0).standard_normal((1, 2, 4)))
    _, h_n = m0(np.zeros((7, 2, 2)), h0)
    np.testing.assert_allclose(h_n, h0, rtol=1e-15)


def test_identity_scale_gates_and_arrays():
    m = fastrnn.GRU(2, 3, dtype="float32", seed=0)
    init.identity_(m, scale=0.5)
    w = m.state_dict()["weight_hh_l0"]
    for k in range(3):
        np.testing.assert_array_equal(w[3 * k : 3 * (k + 1)], 0.5 * np.eye(3, dtype=np.float32))
    a = np.ones((4, 4), np.float32)
    init.identity_(a, scale=2.0)
    np.testing.assert_array_equal(a, 2 * np.eye(4))


# -------------------------------------------------------------------------------------------------
# Xavier / Glorot


def test_xavier_uniform_bounds_and_statistics():
    a = np.zeros((200, 300))
    init.xavier_uniform_(a, gain=1.5, seed=0)
    bound = 1.5 * np.sqrt(6.0 / 500)
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound
    assert a.var() == pytest.approx(bound**2 / 3, rel=0.02)
    # Per gate block for a layer: fan_out = H, not 4H.
    H, I = 8, 5
    m = fastrnn.LSTM(I, H, dtype="float64", seed=0)
    before = snapshot(m)
    init.xavier_uniform_(m, seed=1)
    sd = m.state_dict()
    assert np.abs(sd["weight_ih_l0"]).max() <= np.sqrt(6.0 / (I + H))
    assert np.abs(sd["weight_hh_l0"]).max() <= np.sqrt(6.0 / (H + H))
    assert np.abs(sd["weight_ih_l0"]).max() > np.sqrt(6.0 / (I + 4 * H))  # wider than whole-matrix
    np.testing.assert_array_equal(sd["bias_ih_l0"], before["bias_ih_l0"])


def test_xavier_matches_torch_bound():
    torch = pytest.importorskip("torch")
    t = torch.empty(30, 70, dtype=torch.float64)
    torch.nn.init.xavier_uniform_(t, gain=0.7)
    a = np.zeros((30, 70))
    init.xavier_uniform_(a, gain=0.7, seed=0)
    bound = 0.7 * np.sqrt(6.0 / 100)
    assert float(t.abs().max()) <= bound and np.abs(a).max() <= bound
    assert a.std() == pytest.approx(float(t.std()), rel=0.1)


def test_xavier_normal_statistics():
    a = np.zeros((300, 500), np.float32)
    init.xavier_normal_(a, seed=0)
    assert a.dtype == np.float32
    assert abs(float(a.mean())) < 1e-3
    assert a.std() == pytest.approx(np.sqrt(2.0 / 800), rel=0.02)
    g = np.zeros((400, 100))
    init.xavier_normal_(g, seed=0, gate_blocks=4)  # blocks (100, 100)
    assert g.std() == pytest.approx(np.sqrt(2.0 / 200), rel=0.03)


# -------------------------------------------------------------------------------------------------
# Forget-gate bias


def test_forget_gate_bias_slices():
    H = 4
    m = fastrnn.LSTM(3, H, num_layers=2, bidirectional=True, dtype="float64", seed=0)
    before = snapshot(m)
    init.forget_gate_bias_(m, 1.0)
    for name, b in m.state_dict().items():
        if name.startswith("bias_ih"):
            np.testing.assert_array_equal(b[H : 2 * H], 1.0)
        elif name.startswith("bias_hh"):
            np.testing.assert_array_equal(b[H : 2 * H], 0.0)
        if name.startswith("bias"):
            np.testing.assert_array_equal(b[:H], before[name][:H])
            np.testing.assert_array_equal(b[2 * H :], before[name][2 * H :])
        else:
            np.testing.assert_array_equal(b, before[name])
    # The option on the other initialisers.
    m2 = fastrnn.LSTM(3, H, dtype="float32", seed=0)
    init.orthogonal_(m2, seed=0, forget_bias=2.0)
    np.testing.assert_array_equal(m2.state_dict()["bias_ih_l0"][H : 2 * H], 2.0)
    init.uniform_(m2, seed=0, forget_bias=1.0)
    np.testing.assert_array_equal(m2.state_dict()["bias_ih_l0"][H : 2 * H], 1.0)
    # A single bias array.
    b = np.zeros(4 * H)
    init.forget_gate_bias_(b, 3.0)
    np.testing.assert_array_equal(b, np.r_[np.zeros(H), 3 * np.ones(H), np.zeros(2 * H)])


@pytest.mark.parametrize("value, c_expected", [(30.0, 1.0), (-30.0, 0.0)])
def test_forget_gate_bias_really_drives_the_forget_gate(value, c_expected):
    # All weights and other biases zero: g = tanh(0) = 0, so c_t = sigmoid(value) * c_{t-1}.
    m = fastrnn.LSTM(2, 3, dtype="float64", seed=0)
    init.uniform_(m, bound=0.0, forget_bias=value)
    h0, c0 = np.zeros((1, 1, 3)), np.ones((1, 1, 3))
    _, (_, c_n) = m(np.zeros((3, 1, 2)), (h0, c0))
    np.testing.assert_allclose(c_n, c_expected, atol=1e-10)


def test_forget_gate_bias_errors():
    with pytest.raises(ValueError, match="LSTM"):
        init.forget_gate_bias_(fastrnn.GRU(2, 3), 1.0)
    with pytest.raises(ValueError, match="no biases"):
        init.forget_gate_bias_(fastrnn.LSTM(2, 3, bias=False), 1.0)
    with pytest.raises(ValueError, match="4 \\* hidden_size"):
        init.forget_gate_bias_(np.zeros(10), 1.0, hidden_size=3)


# -------------------------------------------------------------------------------------------------
# Bad input


def test_bad_input():
    with pytest.raises(TypeError, match="float32 or float64"):
        init.orthogonal_(np.zeros((3, 3), np.int64), seed=0)
    with pytest.raises(TypeError, match="init target"):
        init.orthogonal_("weights", seed=0)
    with pytest.raises(ValueError, match="which"):
        init.orthogonal_(fastrnn.LSTM(2, 3), which="bias")
    with pytest.raises(ValueError, match="gate blocks"):
        init.orthogonal_(np.zeros((5, 3)), gate_blocks=2)
    with pytest.raises(ValueError, match="gate_blocks"):
        init.xavier_uniform_(np.zeros((4, 3)), gate_blocks=0)
    with pytest.raises(ValueError, match="2-D"):
        init.xavier_uniform_(np.zeros(4))
    with pytest.raises(TypeError, match="seed"):
        init.xavier_normal_(np.zeros((3, 3)), seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        init.xavier_normal_(np.zeros((3, 3)), seed=-1)
    with pytest.raises(TypeError, match="gain"):
        init.orthogonal_(np.zeros((3, 3)), gain="1")
    with pytest.raises(ValueError, match="bound"):
        init.uniform_(np.zeros((3, 3)), bound=-1.0)
    ro = np.zeros((3, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        init.orthogonal_(ro, seed=0)


# -------------------------------------------------------------------------------------------------
# Containers (fastrnn.Sequential or anything iterable with parameters())


class _Chain:
    """A minimal container: iterable over its layers, parameters() with prefixed names."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def __iter__(self):
        return iter(self.layers)

    def parameters(self):
        return [
            Parameter(f"{i}.{p.name}", p.data, p.grad)
            for i, layer in enumerate(self.layers)
            for p in layer.parameters()
        ]


def _check_container(chain, rnn, lstm):
    H = lstm.hidden_size
    rnn_before, lstm_before = snapshot(rnn), snapshot(lstm)
    init.orthogonal_(chain, seed=0, forget_bias=1.0)
    assert_orthonormal(rnn.state_dict()["weight_hh_l0"], 1e-12)
    for k in range(4):
        assert_orthonormal(lstm.state_dict()["weight_hh_l0"][k * H : (k + 1) * H], 1e-12)
    np.testing.assert_array_equal(lstm.state_dict()["bias_ih_l0"][H : 2 * H], 1.0)
    np.testing.assert_array_equal(rnn.state_dict()["bias_ih_l0"], rnn_before["bias_ih_l0"])
    init.identity_(chain)
    np.testing.assert_array_equal(rnn.state_dict()["weight_hh_l0"], np.eye(rnn.hidden_size))
    init.uniform_(chain, seed=4)  # each layer its own default bound
    assert np.abs(lstm.state_dict()["weight_ih_l0"]).max() <= 1 / np.sqrt(H)
    assert not np.array_equal(lstm.state_dict()["weight_ih_l0"], lstm_before["weight_ih_l0"])
    init.forget_gate_bias_(chain, 2.0)
    np.testing.assert_array_equal(lstm.state_dict()["bias_ih_l0"][H : 2 * H], 2.0)
    with pytest.raises(ValueError, match="holds none"):
        init.forget_gate_bias_(_Chain(fastrnn.GRU(2, 2)), 1.0)


def test_container_layer_by_layer():
    rnn = fastrnn.RNN(3, 5, nonlinearity="relu", dtype="float64", seed=0)
    lstm = fastrnn.LSTM(5, 4, dtype="float64", seed=0)
    _check_container(_Chain(rnn, lstm), rnn, lstm)


def test_real_sequential_with_linear():
    if not all(hasattr(fastrnn, n) for n in ("Sequential", "Linear", "Embedding")):
        pytest.skip("fastrnn.Sequential/Linear/Embedding not exported yet")
    rnn = fastrnn.RNN(3, 5, nonlinearity="relu", dtype="float64", seed=0)
    lstm = fastrnn.LSTM(5, 4, dtype="float64", seed=0)
    lin = fastrnn.Linear(4, 2, dtype="float64", seed=0)
    _check_container(fastrnn.Sequential(rnn, lstm, lin), rnn, lstm)
    # Linear: torch.nn.Linear's bound 1/sqrt(in_features); identity_ leaves it alone.
    before = lin.state_dict()
    init.identity_(fastrnn.Sequential(lin))
    for k, v in lin.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    init.uniform_(lin, seed=0)
    assert all(np.abs(v).max() <= 0.5 for v in lin.state_dict().values())
    emb = fastrnn.Embedding(50, 40, dtype="float64", seed=0)
    init.uniform_(emb, seed=1)  # PyTorch's Embedding default: N(0, 1)
    assert emb.state_dict()["weight"].std() == pytest.approx(1.0, rel=0.05)
