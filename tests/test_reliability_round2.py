"""Reliability round 2 (issue 16), items 1 and 2: shared layers and tied weights, and Ctrl-C inside
the native kernels (a real SIGINT to a child process)."""

import os
import textwrap

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import optim

from helpers import NATIVE, interrupted_child

# -- 1. shared layers and tied weights --------------------------------------------------------------


def _loss_and_grads(model, x, target):
    """Mean-squared loss of model(x) against target, its gradients (backward adds into grads)."""
    model.train()
    model.zero_grad()
    y = model(x)
    d = y - target
    model.backward(d)
    return 0.5 * float(np.sum(d * d)), {p.name: p.grad.copy() for p in model.parameters()}


def _finite_difference(model, x, target, param, eps=1e-6):
    g = np.zeros_like(param.data)
    flat, gflat = param.data.reshape(-1), g.reshape(-1)
    for k in range(flat.size):
        keep = flat[k]
        flat[k] = keep + eps
        up = _loss_and_grads(model, x, target)[0]
        flat[k] = keep - eps
        down = _loss_and_grads(model, x, target)[0]
        flat[k] = keep
        gflat[k] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("backend", ["numpy"] + (["native"] if NATIVE else []))
def test_a_layer_used_twice_gets_both_uses_gradients(backend):
    rng = np.random.default_rng(0)
    lin = fr.Linear(4, 4, dtype="float64", seed=1)
    rnn = fr.GRU(4, 4, dtype="float64", seed=2)
    model = fr.Sequential(lin, rnn, lin, fr.Sequential(rnn, lin))  # also inside a nested chain
    x, target = rng.standard_normal((5, 2, 4)), rng.standard_normal((5, 2, 4))
    with fr.use_backend(backend):
        _, grads = _loss_and_grads(model, x, target)
        names = [p.name for p in model.parameters()]
        assert names == [
            "0.weight",
            "0.bias",
            "1.weight_ih_l0",
            "1.weight_hh_l0",
            "1.bias_ih_l0",
            "1.bias_hh_l0",
        ]
        for p in model.parameters():
            np.testing.assert_allclose(
                grads[p.name], _finite_difference(model, x, target, p), rtol=1e-6, atol=1e-8
            )


def test_shared_layer_matches_torch():
    torch = pytest.importorskip("torch")
    lin = fr.Linear(4, 4, dtype="float64", seed=0)
    model = fr.Sequential(lin, lin)
    x = np.random.default_rng(1).standard_normal((3, 4))
    y = model(x)
    dx = model.backward(np.ones_like(y))
    w = torch.tensor(lin.state_dict()["weight"], requires_grad=True)
    b = torch.tensor(lin.state_dict()["bias"], requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = (xt @ w.T + b) @ w.T + b
    yt.backward(torch.ones_like(yt))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(lin.grads["weight"], w.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(lin.grads["bias"], b.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12)


def test_optimizer_steps_a_shared_weight_once():
    lin = fr.Linear(3, 3, dtype="float64", seed=0)
    model = fr.Sequential(lin, lin)
    assert len(model.parameters()) == 2
    before = lin.state_dict()["weight"]
    model(np.ones((2, 3)))
    model.backward(np.ones((2, 3)))
    opt = optim.SGD(model.parameters(), lr=0.1)
    opt.step()
    np.testing.assert_allclose(lin.state_dict()["weight"], before - 0.1 * lin.grads["weight"], rtol=1e-14)
    # Two wrappers of one weight given by hand are one parameter too; overlapping arrays are refused.
    p = lin.parameters()[0]
    twin = fr.Parameter("twin", p.data, p.grad)
    assert len(optim.Adam([p, twin]).params) == 1
    with pytest.raises(ValueError, match="share memory"):
        optim.SGD([p, fr.Parameter("view", p.data[:1], np.zeros_like(p.data[:1]))])
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p])
    # clip_grad_norm counts it once.
    assert fr.clip_grad_norm([p, twin], 1e9) == pytest.approx(float(np.linalg.norm(p.grad)))


def test_embedding_tied_to_the_output_layer():
    V, E = 7, 5
    emb = fr.Embedding(V, E, dtype="float64", seed=0)
    lstm = fr.LSTM(E, E, dtype="float64", seed=1)
    out = fr.Linear(E, V, dtype="float64", seed=2).tie_weight(emb)
    model = fr.Sequential(emb, lstm, out)
    assert out.parameters()[0] is emb.parameters()[0]
    assert [p.name for p in model.parameters()].count("0.weight") == 1
    assert "2.weight" not in [p.name for p in model.parameters()]
    assert set(model.state_dict()) >= {"0.weight", "2.weight"}  # state_dict names every use, as torch's
    ids = np.random.default_rng(3).integers(0, V, (6, 2))
    target = np.random.default_rng(4).standard_normal((6, 2, V))
    _, grads = _loss_and_grads(model, ids, target)
    weight = model.parameters()[0]
    np.testing.assert_allclose(
        grads["0.weight"], _finite_difference(model, ids, target, weight), rtol=1e-6, atol=1e-8
    )
    with pytest.raises(ValueError, match="shape"):
        fr.Linear(E, V + 1, dtype="float64").tie_weight(emb)
    with pytest.raises(TypeError, match="Linear or Embedding"):
        out.tie_weight(lstm)
    # A checkpoint cannot record the tie: refused, not silently untied on load.
    with pytest.raises(ValueError, match="more than once"):
        fr.save_checkpoint(os.devnull, model)


def test_sharing_what_the_chain_cannot_track_is_refused():
    class Double:
        def __call__(self, x):
            return 2 * x

        def backward(self, d):
            return 2 * d

        def parameters(self):
            return []

        def zero_grad(self):
            pass

        def state_dict(self):
            return {}

        def load_state_dict(self, d):
            pass

        def train(self, mode=True):
            return self

        def eval(self):
            return self

    user = Double()
    fr.Sequential(user)  # once is fine
    with pytest.raises(ValueError, match="Double appears 2 times"):
        fr.Sequential(user, user)
    inner = fr.Sequential(fr.Linear(2, 2))
    with pytest.raises(ValueError, match="Sequential appears 2 times"):
        fr.Sequential(inner, inner)


# -- 2. Ctrl-C inside a native kernel ---------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    import numpy as np
    import fastrnn as fr
    from fastrnn import _backend
    native = _backend.native_module()
    fr.set_num_threads(int(sys.argv[1]))
    mode = sys.argv[2]
    rng = np.random.default_rng(0)
    T, B, I, H = 1200 if mode == "note" else 3000, 32, 256, 512
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w_ih = (0.05 * rng.standard_normal((4 * H, I))).astype(np.float32)
    w_hh = (0.05 * rng.standard_normal((4 * H, H))).astype(np.float32)
    b = np.zeros(4 * H, np.float32)
    h0 = np.zeros((B, H), np.float32)
    noted = []
    # Python's own handler, whatever the runner left (a runner started with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if mode == "note":  # a handler that only takes note: the call must still give its result
        signal.signal(signal.SIGINT, lambda *a: noted.append(time.monotonic()))
    cache = None
    if mode == "backward":
        y, _, _, cache = native.forward("lstm", x[:1200], h0, h0, w_ih, w_hh, b, b, None, None, False, True)
        dy = np.ones_like(y)
    print("ready", flush=True)
    start = time.monotonic()
    try:
        # Repeated, so the signal lands inside a kernel however fast this machine runs one call.
        for _ in range(1 if mode == "note" else 20):
            if mode == "backward":
                native.backward(cache, dy, h0, h0)
            else:
                y, h, c, _ = native.forward("lstm", x, h0, h0, w_ih, w_hh, b, b, None, None, False, False)
        print("finished", time.monotonic() - start, len(noted), flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
    # The same process, the same thread team: a normal call agrees with the reference backend.
    small = x[:30, :3].astype(np.float64)
    args = (h0[:3].astype(np.float64),) * 2 + tuple(a.astype(np.float64) for a in (w_ih, w_hh, b, b))
    ours = native.forward("lstm", small, *args, None, None, False, False)[0]
    ref = fr.functional.forward("lstm", small, *args, backend="numpy", training=False)[0]
    print("after", float(np.max(np.abs(ours - ref))), flush=True)
    """
)


def _interrupted_child(threads, mode, delay=0.5):
    """Runs CHILD, sends SIGINT ``delay`` s after it is ready; returns (its lines, when it was sent)."""
    return interrupted_child(CHILD, [str(threads), mode], delay)


@pytest.mark.skipif(not NATIVE or os.name != "posix", reason="the native backend on a POSIX system")
@pytest.mark.parametrize("mode", ["forward", "backward"])
@pytest.mark.parametrize("threads", [1, 2])
def test_sigint_stops_a_native_kernel_promptly(threads, mode):
    # The backward of 1200 steps runs ~0.7 s on two idle threads: SIGINT comes well before its end.
    lines, sent = _interrupted_child(threads, mode, delay=0.3 if mode == "backward" else 0.5)
    assert lines[0].startswith("interrupted"), lines  # not "finished": it did not run to the end
    latency = float(lines[0].split()[1]) - sent
    # ~10 ms on an idle machine; the bound leaves room for a loaded CI machine (the kernel runs ~5 s)
    assert latency < 1.0, f"KeyboardInterrupt came {latency:.3f} s after SIGINT"
    assert lines[1].startswith("after") and float(lines[1].split()[1]) < 1e-12, lines


@pytest.mark.skipif(not NATIVE or os.name != "posix", reason="the native backend on a POSIX system")
def test_a_handler_that_does_not_raise_gets_the_result():
    lines, _ = _interrupted_child(1, "note")
    assert lines[0].startswith("finished") and lines[0].split()[2] == "1", lines  # noted once, and finished
    assert lines[1].startswith("after") and float(lines[1].split()[1]) < 1e-12, lines
