"""Ctrl-C stops every long native call (issue 16, item 2, what test_reliability_round2.py leaves):
a bidirectional layer whose second direction runs on the helper thread (fastrnn's layers and the
torch drop-in), Linear's product and Hopfield recall. Each case is a child process sent a real
SIGINT about a second into a call that takes several seconds: KeyboardInterrupt must come within
half a second, with the inputs and the layer unchanged and the library giving correct results after."""

import os
import textwrap

import pytest

from helpers import NATIVE, interrupted_child

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    import numpy as np
    import fastrnn as fr

    case, threads = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    fr.set_num_threads(threads)
    rng = np.random.default_rng(0)

    def lstm(backend, bidirectional=True):
        layer = fr.LSTM(256, 512, bidirectional=bidirectional, dtype=np.float32, backend=backend)
        layer.eval()
        return layer

    def agree_small(make):
        # The same process and thread team, a small call: native agrees with the numpy backend.
        a, b = make("native"), make("numpy")
        b.load_state_dict(a.state_dict())
        x = rng.standard_normal((20, 3, 256)).astype(np.float32)
        return float(np.max(np.abs(a(x)[0] - b(x)[0])))

    if case in ("bidir", "bidir-numpy", "bidir-note"):
        backend = "numpy" if case == "bidir-numpy" else "native"
        layer = lstm(backend)
        T = {"bidir": 3000, "bidir-numpy": 400, "bidir-note": 3000}[case]  # each call >= ~1.5 s
        x = rng.standard_normal((T, 32, 256)).astype(np.float32)
        args, state = (x,), layer.state_dict()
        expected = layer(x)[0] if case == "bidir-note" else None
        call = lambda: layer(x)[0]
        check = lambda: agree_small(lstm)
    elif case == "torch":
        import torch
        import fastrnn.torch

        torch.manual_seed(0)
        layer = fastrnn.torch.LSTM(256, 512, bidirectional=True)
        x = torch.randn(3000, 32, 256)
        args, state = (x,), {k: v.clone() for k, v in layer.state_dict().items()}
        expected = None

        def call():
            with torch.no_grad():
                return layer(x)[0]

        def check():
            ref = torch.nn.LSTM(256, 512, bidirectional=True)
            ref.load_state_dict(layer.state_dict())
            small = torch.randn(20, 3, 256)
            with torch.no_grad():
                return float((layer(small)[0] - ref(small)[0]).abs().max())
    elif case == "linear-note":
        # out += a @ b under a handler that only takes note: the rerun must start from out as it was
        # (Linear's bias-filled output, the weight gradient it adds into).
        layer = fr.Linear(4096, 4096, dtype=np.float32)
        layer.train()
        x = rng.standard_normal((6000, 4096)).astype(np.float32)
        dy = rng.standard_normal((6000, 4096)).astype(np.float32)
        args, state = (x, dy), layer.state_dict()

        def call():
            layer.zero_grad()
            y = layer(x)
            layer.backward(dy)
            return np.concatenate([y.ravel(), layer.grads["weight"].ravel()])

        expected = call()
        check = lambda: 0.0
    elif case in ("linear-forward", "linear-backward"):
        layer = fr.Linear(4096, 4096, dtype=np.float32)
        x = rng.standard_normal((12000, 4096)).astype(np.float32)
        state = layer.state_dict()
        if case == "linear-backward":
            layer.train()
            dy = np.ones((12000, 4096), np.float32)
            layer(x)
            args = (x, dy)
            call = lambda: layer.backward(dy)
        else:
            args = (x,)
            call = lambda: layer(x)
        expected = None

        def check():
            layer.eval()
            small = rng.standard_normal((70, 4096)).astype(np.float32)
            sd = layer.state_dict()
            want = small.astype(np.float64) @ sd["weight"].T.astype(np.float64) + sd["bias"]
            return float(np.max(np.abs(layer(small) - want)) / np.max(np.abs(want)))
    elif case == "hopfield":
        # W = -(p p^T) with a zero diagonal: sync recall from p flips every unit at every sweep (a
        # 2-cycle), so each of the max_iters sweeps costs N^2 per state.
        N = 2000
        p = rng.choice(np.array([-1, 1], np.int8), N)
        w = -np.outer(p, p).astype(np.int32)
        np.fill_diagonal(w, 0)
        net = fr.Hopfield(N, backend="native")
        net.load_state_dict({"weight": w, "num_patterns": np.array(1)})
        x = np.tile(p, (64, 1))
        args, state, expected = (x,), net.state_dict(), None
        call = lambda: net.recall(x, mode="sync", max_iters=2000)

        def check():
            small = x[:3]
            ours = net.recall(small, mode="sync", max_iters=7)
            ref = fr.Hopfield(N, backend="numpy")
            ref.load_state_dict(net.state_dict())
            want = ref.recall(small, mode="sync", max_iters=7)
            return float(np.any(ours.states != want.states) or np.any(ours.iterations != want.iterations))
    else:
        raise SystemExit(f"unknown case {case}")

    def same(a, b):
        if hasattr(a, "keys"):
            return all(same(a[k], b[k]) for k in a)
        return bool((np.asarray(a) == np.asarray(b)).all())

    copies = [np.array(a, copy=True) for a in args]
    noted = []
    if case.endswith("-note"):  # a handler that only takes note: the call must still give its result
        signal.signal(signal.SIGINT, lambda *a: noted.append(time.monotonic()))
    print("ready", flush=True)
    start = time.monotonic()
    try:
        for _ in range(1 if case.endswith("-note") else 10):  # however fast this machine runs one call
            out = call()
        print("finished", time.monotonic() - start, len(noted), flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
    now = layer.state_dict() if case != "hopfield" else net.state_dict()
    ok = all(same(a, c) for a, c in zip(args, copies)) and same(now, state)
    if expected is not None:
        ok = ok and bool((np.asarray(out) == np.asarray(expected)).all())
    print("unchanged", ok, flush=True)
    print("after", check(), flush=True)
    """
)


def _interrupted_child(case, threads, delay=1.0):
    """Runs CHILD, sends SIGINT ``delay`` s after it is ready; returns (its lines, when it was sent)."""
    return interrupted_child(CHILD, [case, str(threads)], delay)


def _assert_stopped_promptly(lines, sent, bound=0.5):
    assert lines[0].startswith("interrupted"), lines  # not "finished": it did not run to the end
    latency = float(lines[0].split()[1]) - sent
    assert latency < bound, f"KeyboardInterrupt came {latency:.3f} s after SIGINT"
    assert lines[1] == "unchanged True", lines
    assert lines[2].startswith("after") and float(lines[2].split()[1]) < 1e-5, lines


posix_native = pytest.mark.skipif(
    not NATIVE or os.name != "posix", reason="the native backend on a POSIX system"
)


@posix_native
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_sigint_stops_both_directions_of_a_bidirectional_layer(threads):
    # threads >= 2: the second direction runs on the helper thread (run_pair); 1: one after the other.
    lines, sent = _interrupted_child("bidir", threads)
    _assert_stopped_promptly(lines, sent)


@posix_native
def test_a_handler_that_does_not_raise_gets_the_bidirectional_result():
    lines, _ = _interrupted_child("bidir-note", 2, delay=0.5)
    assert lines[0].startswith("finished") and lines[0].split()[2] == "1", lines  # noted once
    assert lines[1] == "unchanged True", lines  # bitwise the uninterrupted call's output
    assert lines[2].startswith("after") and float(lines[2].split()[1]) < 1e-5, lines


@posix_native
def test_a_handler_that_does_not_raise_gets_the_accumulated_product():
    lines, _ = _interrupted_child("linear-note", 1, delay=0.5)
    assert lines[0].startswith("finished") and lines[0].split()[2] == "1", lines  # noted once
    assert lines[1] == "unchanged True", lines  # bitwise the uninterrupted output and gradient


@pytest.mark.skipif(os.name != "posix", reason="a POSIX system")
def test_sigint_stops_a_bidirectional_layer_on_the_numpy_backend():
    lines, sent = _interrupted_child("bidir-numpy", 2)
    _assert_stopped_promptly(lines, sent)


@posix_native
def test_sigint_stops_the_torch_drop_in_bidirectional_layer():
    pytest.importorskip("torch")
    lines, sent = _interrupted_child("torch", 2, delay=2.0)  # importing torch takes a while
    _assert_stopped_promptly(lines, sent)


@posix_native
@pytest.mark.parametrize("case", ["linear-forward", "linear-backward"])
@pytest.mark.parametrize("threads", [1, 2])
def test_sigint_stops_a_linear_product(case, threads):
    lines, sent = _interrupted_child(case, threads)
    _assert_stopped_promptly(lines, sent)


@posix_native
@pytest.mark.parametrize("threads", [1, 2])
def test_sigint_stops_hopfield_recall(threads):
    lines, sent = _interrupted_child("hopfield", threads)
    _assert_stopped_promptly(lines, sent)
