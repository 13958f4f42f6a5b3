"""Both backends against torch.nn.RNN / LSTM / GRU with the same weights: outputs, final states and the
gradients of x, h0, c0 and every weight. Lengths go through pack_padded_sequence(enforce_sorted=False)
and pad_packed_sequence; reverse is the second half of a bidirectional torch layer."""

import numpy as np
import pytest

from helpers import CELL_VARIANTS, DTYPES, backend_params, make_lengths, make_problem, make_upstream, run

torch = pytest.importorskip("torch")

# Torch's notice that its oneDNN path lacks projections (it falls back to its plain kernels) is
# not ours to fix; pyproject's filterwarnings=error would otherwise fail the lstm_proj cases.
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN:UserWarning"
)


@pytest.fixture(autouse=True, scope="module")
def torch_single_thread():
    # Torch's OpenMP team and NumPy's BLAS threads contend on small machines (0.4 s instead of 1 ms per
    # bidirectional call on 2 cores); these problems are tiny, so one torch thread is plenty.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

# Torch sums float32 in its own order, so float32 gets a little more room than backend-vs-backend
# agreement; float64 stays tight.
TOL = {np.dtype(np.float32): (5e-5, 2e-5), np.dtype(np.float64): (1e-10, 1e-12)}


def torch_layer(cell, I, H, P, bias, bidirectional, dtype):
    common = dict(input_size=I, hidden_size=H, bias=bias, bidirectional=bidirectional, dtype=dtype)
    if cell in ("rnn_tanh", "rnn_relu"):
        return torch.nn.RNN(nonlinearity=cell[4:], **common)
    if cell == "lstm":
        return torch.nn.LSTM(proj_size=0 if P == H else P, **common)
    return torch.nn.GRU(**common)


def torch_reference(cell, p, lengths, reverse, up):
    """Runs torch on problem ``p``; returns outputs and gradients keyed like helpers.run()."""
    x_np = p["x"]
    T, B, I = x_np.shape
    H = p["w_ih"].shape[0] // {"lstm": 4, "gru": 3}.get(cell, 1)
    P = p["h0"].shape[1]
    dt = TORCH_DTYPE[x_np.dtype]
    bias = p["b_ih"] is not None
    layer = torch_layer(cell, I, H, P, bias, reverse, dt)
    sfx = "_l0_reverse" if reverse else "_l0"
    names = {
        "w_ih": "weight_ih",
        "w_hh": "weight_hh",
        "b_ih": "bias_ih",
        "b_hh": "bias_hh",
        "w_hr": "weight_hr",
    }
    params = dict(layer.named_parameters())
    with torch.no_grad():
        for ours, theirs in names.items():
            if p[ours] is not None:
                params[theirs + sfx].copy_(torch.from_numpy(p[ours]))
    D = 2 if reverse else 1
    d = D - 1  # our direction's index in torch's (D, B, .) states
    rng = np.random.default_rng(99)  # states of the unused forward half (reverse case)
    h0 = torch.from_numpy(rng.standard_normal((D, B, P))).to(dt)
    h0[d] = torch.from_numpy(p["h0"])
    h0.requires_grad_(True)
    x = torch.from_numpy(x_np.copy()).requires_grad_(True)
    hx = h0
    if cell == "lstm":
        c0 = torch.from_numpy(rng.standard_normal((D, B, H))).to(dt)
        c0[d] = torch.from_numpy(p["c0"])
        c0.requires_grad_(True)
        hx = (h0, c0)
    inp = x
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(lengths), enforce_sorted=False)
    out, hn = layer(inp, hx)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    h_n, c_n = hn if cell == "lstm" else (hn, None)
    y = out[..., d * P : (d + 1) * P]
    dy, dh_n, dc_n = up
    loss = (y * torch.from_numpy(dy)).sum() + (h_n[d] * torch.from_numpy(dh_n)).sum()
    if cell == "lstm":
        loss = loss + (c_n[d] * torch.from_numpy(dc_n)).sum()
    loss.backward()

    def grad(ours):
        if p[ours] is None:
            return None
        return params[names[ours] + sfx].grad.numpy()

    return {
        "y": y.detach().numpy(),
        "h_n": h_n[d].detach().numpy(),
        "c_n": None if cell != "lstm" else c_n[d].detach().numpy(),
        "dx": x.grad.numpy(),
        "dh0": h0.grad[d].numpy(),
        "dc0": None if cell != "lstm" else c0.grad[d].numpy(),
        "dw_ih": grad("w_ih"),
        "dw_hh": grad("w_hh"),
        "db_ih": grad("b_ih"),
        "db_hh": grad("b_hh"),
        "dw_hr": grad("w_hr"),
    }


def compare(actual, expected):
    for name, exp in expected.items():
        act = actual[name]
        if exp is None:
            assert act is None, name
            continue
        assert act is not None and act.shape == exp.shape, name
        assert act.dtype == exp.dtype, name
        rtol, atol_rel = TOL[exp.dtype]
        scale = max(float(np.abs(exp).max()), 1e-30) if exp.size else 1.0
        np.testing.assert_allclose(act, exp, rtol=rtol, atol=atol_rel * scale, err_msg=name)


MODES = {
    "plain": (False, False),
    "lengths": (True, False),
    "reverse": (False, True),
    "lengths_reverse": (True, True),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
@pytest.mark.parametrize("backend", backend_params())
def test_matches_torch(backend, variant, dtype, bias, mode):
    with_lengths, reverse = MODES[mode]
    T, B, I, H = 5, 4, 3, 6
    cell, proj = CELL_VARIANTS[variant]
    p = make_problem(cell, T, B, I, H, 4 if proj else None, dtype, bias, seed=21)
    # torch's packed sequences need lengths >= 1; ours are unsorted and include 1 and T.
    lengths = make_lengths(T, B, low=1) if with_lengths else None
    up = make_upstream(p, T, seed=22)
    expected = torch_reference(cell, p, lengths, reverse, up)
    compare(run(p, cell, backend, lengths, reverse, up), expected)


OTHER_SHAPES = [(1, 1, 1, 1), (7, 1, 5, 3), (3, 6, 17, 33)]
OTHER_CASES = [
    pytest.param(v, s, id="{}-T{}B{}I{}H{}".format(v, *s))
    for v in CELL_VARIANTS
    for s in OTHER_SHAPES
    if not (v == "lstm_proj" and s[3] == 1)
]  # torch needs proj_size < hidden_size


@pytest.mark.parametrize("variant, shape", OTHER_CASES)
@pytest.mark.parametrize("backend", backend_params())
def test_matches_torch_other_shapes(backend, variant, shape):
    # Reverse with lengths at sizes of 1 and odd sizes (float64, tight).
    T, B, I, H = shape
    cell, proj = CELL_VARIANTS[variant]
    p = make_problem(cell, T, B, I, H, max(1, H // 2) if proj else None, np.float64, True, seed=23)
    lengths = make_lengths(T, B, low=1)
    up = make_upstream(p, T, seed=24)
    compare(run(p, cell, backend, lengths, True, up), torch_reference(cell, p, lengths, True, up))
