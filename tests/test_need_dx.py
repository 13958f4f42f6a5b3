"""backward(..., need_dx=False): dx is skipped (None) and every other gradient is bitwise the one
the full backward gives, on both backends; the torch drop-in skips dx for an input that needs no
gradient (eager and under torch.compile)."""

import numpy as np
import pytest

from fastrnn import functional as F

from helpers import CELL_VARIANTS, backend_params, forward_problem, make_lengths, make_upstream, make_variant


def _training_forward(cell, p, backend, lengths, every):
    return forward_problem(p, cell, lengths=lengths, training=True, backend=backend, checkpoint_every=every)[
        3
    ]


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("variant", sorted(CELL_VARIANTS))
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("every", [None, 3])
def test_need_dx_false_skips_dx_only(backend, variant, with_lengths, every):
    T, B = 7, 5
    cell, p = make_variant(variant, T, B, 4, 6, dtype=np.float32)
    lengths = make_lengths(T, B, low=1) if with_lengths else None
    dy, dh_n, dc_n = make_upstream(p, T)
    full = F.backward(_training_forward(cell, p, backend, lengths, every), dy, dh_n, dc_n)
    cache = _training_forward(cell, p, backend, lengths, every)
    skipped = F.backward(cache, dy, dh_n, dc_n, need_dx=False)
    assert full[0] is not None and skipped[0] is None
    assert len(skipped) == len(full)
    for a, b in zip(full[1:], skipped[1:]):
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", backend_params())
def test_need_dx_empty_batch_and_bad_flag(backend):
    cell, p = make_variant("lstm", 3, 0, 4, 5)
    cache = _training_forward(cell, p, backend, None, None)
    grads = F.backward(cache, None, None, None, need_dx=False)
    assert grads[0] is None and grads[3].shape == (20, 4)
    cell, p = make_variant("gru", 3, 2, 4, 5)
    cache = _training_forward(cell, p, backend, None, None)
    with pytest.raises(TypeError, match="need_dx"):
        F.backward(cache, None, None, None, need_dx="no")


def _record_need_dx(monkeypatch):
    """The need_dx of every functional.backward call from now on (the layers call it per direction)."""
    seen = []
    real = F.backward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("need_dx", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "backward", spy)
    return seen


def _dropin_grads(torch, frt, x_requires_grad, compiled, monkeypatch):
    """(torch's and the drop-in's parameter grads and dx, need_dx of each F.backward call)."""
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    ours = frt.replace(torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True))
    ours.load_state_dict(ref.state_dict())
    seen = _record_need_dx(monkeypatch)
    x = torch.randn(6, 4, 3, requires_grad=x_requires_grad)
    results = []
    for m in (ref, ours):
        x.grad = None

        def loss(x, m=m):
            return m(x)[0].tanh().sum()

        (torch.compile(loss, fullgraph=True) if compiled and m is ours else loss)(x).backward()
        results.append(([q.grad.clone() for q in m.parameters()], None if x.grad is None else x.grad.clone()))
    return results, seen


@pytest.mark.native
@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("x_requires_grad", [False, True])
def test_dropin_skips_dx_for_an_input_without_grad(compiled, x_requires_grad, monkeypatch):
    torch = pytest.importorskip("torch")
    import fastrnn.torch as frt

    # config.patch, not monkeypatch: pytest 9.2's monkeypatch deletes, on undo, a module attribute that
    # was not in the module's __dict__, and dynamo's config values live behind __getattr__.
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=compiled):
        results, seen = _dropin_grads(torch, frt, x_requires_grad, compiled, monkeypatch)
    (ref_w, ref_dx), (our_w, our_dx) = results
    for a, b in zip(ref_w, our_w):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    if x_requires_grad:
        torch.testing.assert_close(our_dx, ref_dx, rtol=1e-4, atol=1e-5)
    else:
        assert our_dx is None and ref_dx is None
    # Layer 1 (its input is layer 0's output) first, both directions; then layer 0, whose input is x.
    assert seen == [True, True, x_requires_grad, x_requires_grad]


def _grads(model):
    return [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_layer_backward_need_dx_false(backend, kind):
    import fastrnn

    make = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU, "rnn": fastrnn.RNN}[kind]
    x = np.random.default_rng(0).standard_normal((6, 3, 4))
    lengths = np.array([6, 2, 4])
    results = []
    for need in (True, False):
        layer = make(4, 5, num_layers=2, bidirectional=True, dtype="float64", backend=backend, seed=1)
        y, h_n = layer(x, lengths=lengths)
        dx, dh0 = layer.backward(np.ones_like(y), need_dx=need)
        results.append((dx, dh0, _grads(layer), layer.dh_norms))
    (dx, dh0, grads, norms), (dx2, dh02, grads2, norms2) = results
    assert dx.shape == x.shape and dx2 is None
    for a, b in zip([*np.atleast_1d(dh0), *grads, norms], [*np.atleast_1d(dh02), *grads2, norms2]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="need_dx"):
        layer.backward(np.ones_like(y), need_dx=None)


@pytest.mark.parametrize("first", ["lstm", "linear"])
def test_sequential_backward_need_dx_false(first):
    import fastrnn

    def model():
        head = (
            fastrnn.LSTM(4, 5, seed=1, dtype="float64")
            if first == "lstm"
            else fastrnn.Linear(4, 4, seed=1, dtype="float64")
        )
        return fastrnn.Sequential(head, fastrnn.GRU(5 if first == "lstm" else 4, 3, seed=2, dtype="float64"))

    x = np.random.default_rng(0).standard_normal((5, 2, 4))
    a, b = model(), model()
    ya, yb = a(x), b(x)
    dx = a.backward(np.ones_like(ya))
    assert dx.shape == x.shape
    assert b.backward(np.ones_like(yb), need_dx=False) is None
    for ga, gb in zip(_grads(a), _grads(b)):
        np.testing.assert_array_equal(ga, gb)


def test_train_skips_the_data_gradient(monkeypatch):
    import fastrnn

    seen = _record_need_dx(monkeypatch)
    series = np.sin(np.arange(60) / 5.0)[:, None].astype(np.float32)
    model = fastrnn.Sequential(fastrnn.LSTM(1, 4, num_layers=2, seed=0), fastrnn.Linear(4, 1, seed=0))
    fastrnn.train(model, series[:-1], series[1:], epochs=1, bptt=20, progress=False)
    # Each step: layer 1 (its input needs a gradient), then layer 0 (the data's: skipped).
    assert seen and seen == [True, False] * (len(seen) // 2)
