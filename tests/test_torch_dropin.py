"""fastrnn.torch against torch.nn: outputs and every gradient over the grid of what a torch user
can build and pass in, double backward and gradcheck, and what falls back to torch."""

import itertools

import pytest

torch = pytest.importorskip("torch")

from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import fastrnn.torch as frt  # noqa: E402
from fastrnn.torch import _layer  # noqa: E402

# torch.nn's own float32 LSTM with projections says it skips oneDNN (the reference side only).
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
NATIVE = pytest.mark.skipif(not _layer.native_available(), reason="native extension not built")
TORCH_CLASSES = {
    "rnn_tanh": torch.nn.RNN,
    "rnn_relu": torch.nn.RNN,
    "lstm": torch.nn.LSTM,
    "gru": torch.nn.GRU,
}
FRT_CLASSES = {"rnn_tanh": frt.RNN, "rnn_relu": frt.RNN, "lstm": frt.LSTM, "gru": frt.GRU}
TOL = {torch.float64: 1e-10, torch.float32: 2e-5}
T, B, I, H = 5, 3, 3, 4
LENGTHS = {"packed_sorted": [5, 4, 2], "packed_unsorted": [2, 5, 4]}


@pytest.fixture
def native_calls(monkeypatch):
    """Counts the layer runs that reach fastrnn's kernels."""
    calls = []
    real = _layer.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_layer, "forward", counting)
    return calls


def make_pair(cell, dtype=torch.float64, **kw):
    """A torch.nn module and the fastrnn.torch one with the same weights."""
    if cell.startswith("rnn"):
        kw["nonlinearity"] = cell[4:]
    torch.manual_seed(1)
    ref = TORCH_CLASSES[cell](I, H, dtype=dtype, **kw)
    ours = FRT_CLASSES[cell](I, H, dtype=dtype, **kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def run(module, x, hx, kind, lengths, weights):
    """A loss from every output (random weights, so every gradient is a distinct number); returns
    the outputs and the gradients of x, hx and every parameter."""
    module.zero_grad()
    x = x.detach().requires_grad_()
    hx = tuple(h.detach().requires_grad_() for h in hx)
    inp = x
    if kind.startswith("packed"):
        inp = pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=module.batch_first, enforce_sorted=kind == "packed_sorted"
        )
    y, h = module(inp, hx if len(hx) == 2 else hx[0])
    y = y.data if kind.startswith("packed") else y
    states = h if isinstance(h, tuple) else (h,)
    loss = (y * weights[0][: y.numel()].view_as(y)).sum()
    for s, w in zip(states, weights[1:]):
        loss = loss + (s * w[: s.numel()].view_as(s)).sum()
    loss.backward()
    grads = [x.grad, *(h.grad for h in hx), *(p.grad for p in module.parameters())]
    return [y, *states], grads


def assert_close(actual, expected, tol, what):
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, (what, k)
        scale = max(1.0, e.abs().max().item())
        err = (a - e).abs().max().item()
        assert err <= tol * scale, f"{what}[{k}]: max error {err:.3g} (scale {scale:.3g})"


GRID = [
    (cell, proj)
    for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru")
    for proj in ((0, 2) if cell == "lstm" else (0,))
]


@NATIVE
@pytest.mark.parametrize("kind", ["tensor", "packed_sorted", "packed_unsorted", "unbatched"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(
    "layers,bidirectional,batch_first,bias",
    list(itertools.product((1, 2), (False, True), (False, True), (True, False))),
)
@pytest.mark.parametrize("cell,proj", GRID, ids=[f"{c}{'_proj' if p else ''}" for c, p in GRID])
def test_parity_with_torch(cell, proj, layers, bidirectional, batch_first, bias, dtype, kind, native_calls):
    kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    if proj:
        kw["proj_size"] = proj
    ref, ours = make_pair(cell, dtype, **kw)
    g = torch.Generator().manual_seed(2)
    D = 2 if bidirectional else 1
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(shape, generator=g, dtype=dtype)
    hx = [torch.randn(layers * D, B, proj or H, generator=g, dtype=dtype)]
    if cell == "lstm":
        hx.append(torch.randn(layers * D, B, H, generator=g, dtype=dtype))
    if kind == "unbatched":
        x = x[0] if batch_first else x[:, 0]
        hx = [h[:, 0] for h in hx]
    weights = [torch.randn(T * B * D * H, generator=g, dtype=dtype) for _ in range(3)]
    lengths = LENGTHS.get(kind)
    out_ref, grads_ref = run(ref, x, hx, kind, lengths, weights)
    out, grads = run(ours, x, hx, kind, lengths, weights)
    assert len(native_calls) == layers  # every layer ran on fastrnn's kernels
    assert_close(out, out_ref, TOL[dtype], "outputs")
    assert_close(grads, grads_ref, TOL[dtype], "gradients")


@NATIVE
@pytest.mark.parametrize("kind", ["tensor", "packed_unsorted"])
def test_dropout_masks_are_torchs(kind):
    """Same seed, same inter-layer dropout masks as torch.nn, so the same numbers."""
    ref, ours = make_pair("lstm", num_layers=3, dropout=0.4, bidirectional=True)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, I, generator=g, dtype=torch.float64)
    hx = [torch.zeros(6, B, H, dtype=torch.float64)] * 2
    weights = [torch.randn(T * B * 2 * H, generator=g, dtype=torch.float64) for _ in range(3)]
    results = []
    for m in (ref, ours):
        torch.manual_seed(7)
        results.append(run(m, x, hx, kind, LENGTHS.get(kind), weights))
    assert_close(results[1][0], results[0][0], 1e-10, "outputs")
    assert_close(results[1][1], results[0][1], 1e-10, "gradients")
    torch.manual_seed(8)  # another seed: other masks
    assert not torch.equal(run(ours, x, hx, kind, LENGTHS.get(kind), weights)[0][0], results[1][0][0])


@NATIVE
def test_no_hx_and_eval_mode(native_calls):
    ref, ours = make_pair("gru", num_layers=2, dropout=0.5)
    ref.eval(), ours.eval()
    x = torch.randn(T, B, I, dtype=torch.float64)
    (y_ref, h_ref), (y, h) = ref(x), ours(x)
    assert_close([y, h], [y_ref, h_ref], 1e-10, "eval outputs")
    assert len(native_calls) == 2


@NATIVE
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_no_grad_keeps_no_cache(mode, monkeypatch):
    ref, ours = make_pair("lstm", bidirectional=True)
    keeps = []
    real = _layer.forward
    monkeypatch.setattr(_layer, "forward", lambda *a: keeps.append(a[6]) or real(*a))
    x = torch.randn(T, B, I, dtype=torch.float64)
    with getattr(torch, mode)():
        y, (h, c) = ours(x)
        y_ref = ref(x)[0]
    assert keeps == [False] and not y.requires_grad
    assert_close([y], [y_ref], 1e-10, "outputs")


@NATIVE
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_gradcheck(cell):
    """Finite differences through x, hx and every parameter (a PackedSequence, both directions)."""
    kw = {"proj_size": 2} if cell == "lstm" else {}
    _, ours = make_pair(cell, num_layers=2, bidirectional=True, **kw)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 2, I, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 2, 2 if cell == "lstm" else H, generator=g, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in ours.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in ours.parameters()]

    def f(x, h0, *ps):
        hx = (h0, torch.zeros(4, 2, H, dtype=torch.float64)) if cell == "lstm" else h0
        inp = pack_padded_sequence(x, torch.tensor([4, 2]))
        y, h = torch.func.functional_call(ours, dict(zip(names, ps)), (inp, hx))
        return y.data, (h[1] if cell == "lstm" else h)

    assert torch.autograd.gradcheck(f, (x, h0, *params))


@NATIVE
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_double_backward_is_torchs(cell):
    ref, ours = make_pair(cell, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64)
    results = []
    for m in (ref, ours):
        xg = x.clone().requires_grad_()
        y = m(pack_padded_sequence(xg, torch.tensor([5, 3, 1])))[0].data
        (gx,) = torch.autograd.grad(y.pow(2).sum(), xg, create_graph=True)
        penalty = gx.pow(2).sum()
        grads = torch.autograd.grad(penalty, [xg, *m.parameters()])
        results.append([gx.detach(), *grads])
    assert_close(results[1], results[0], 1e-10, "second-order gradients")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_other_dtypes_run_torchs_code(dtype, native_calls):
    ref, ours = make_pair("lstm", dtype=torch.float32, num_layers=2)
    ref.to(dtype), ours.to(dtype)
    x = torch.randn(T, B, I).to(dtype).requires_grad_()
    y_ref, _ = ref(x)
    y, _ = ours(x)
    assert native_calls == [] and y.dtype == dtype
    assert torch.equal(y, y_ref)
    y.sum().backward()


def test_bad_input_raises_torchs_errors(native_calls):
    ref, ours = make_pair("gru", num_layers=2)
    cases = [
        (torch.randn(T, B, I + 1, dtype=torch.float64), None),  # wrong input_size
        (torch.randn(T, B, I, dtype=torch.float32), None),  # dtype differs from the weights
        (torch.randn(2, T, B, I, dtype=torch.float64), None),  # 4-D
        (torch.randn(T, B, I, dtype=torch.float64), torch.zeros(2, B + 1, H, dtype=torch.float64)),
        (torch.randn(T, B, I, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64)),
    ]
    for x, hx in cases:
        with pytest.raises((RuntimeError, ValueError)) as expected:
            ref(x, hx)
        with pytest.raises(type(expected.value), match=None) as got:
            ours(x, hx)
        assert str(got.value) == str(expected.value)
    assert native_calls == []


@NATIVE
def test_in_place_change_before_backward_is_caught():
    _, ours = make_pair("lstm")
    y, _ = ours(torch.randn(T, B, I, dtype=torch.float64))
    with torch.no_grad():
        ours.weight_hh_l0.mul_(2)  # what backward would otherwise silently use
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_torch_func_transforms_run_torchs_code(native_calls):
    ref, ours = make_pair("gru")
    x = torch.randn(T, B, I, dtype=torch.float64)
    grads = [torch.func.grad(lambda x, m=m: m(x)[0].pow(2).sum())(x) for m in (ref, ours)]
    assert native_calls == []
    assert torch.equal(grads[0], grads[1])
