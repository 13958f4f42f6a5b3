"""fastrnn.train / evaluate / batchify: truncated BPTT against a hand-written loop, both backends,
loss falling on a seeded run, evaluation and the best checkpoint, stopping (max_steps, callback,
Ctrl-C), progress output, and bad arguments."""

import math
import os
import signal
import sys

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import losses

from helpers import backend_params

V = 5


def char_model(backend=None, dtype="float64", hidden=12, batch_first=False):
    return fr.Sequential(
        fr.Embedding(V, 6, dtype=dtype, seed=0),
        fr.LSTM(6, hidden, dtype=dtype, backend=backend, seed=1, batch_first=batch_first),
        fr.Linear(hidden, V, dtype=dtype, seed=2),
    )


def pattern(n=600, seed=0):
    """A learnable token stream: the cycle 0 1 2 3 4 with a few random tokens."""
    ids = np.arange(n) % V
    noise = np.random.default_rng(seed).random(n) < 0.05
    ids[noise] = np.random.default_rng(seed + 1).integers(0, V, noise.sum())
    return ids


# -- batchify -----------------------------------------------------------------------------------


def test_batchify_cuts_contiguous_streams():
    seq = np.arange(23)
    x = fr.batchify(seq, 4)
    assert x.shape == (5, 4) and x.flags.c_contiguous
    np.testing.assert_array_equal(x[:, 1], np.arange(5, 10))  # stream b = the b-th stretch
    feats = fr.batchify(np.arange(20.0).reshape(10, 2), 3)
    assert feats.shape == (3, 3, 2)
    np.testing.assert_array_equal(feats[:, 2], np.arange(12.0, 18.0).reshape(3, 2))


@pytest.mark.parametrize(
    "seq, b, exc, match",
    [
        (np.arange(3), 4, ValueError, "3 steps is too short for batch_size=4"),
        (np.float64(1.0), 1, ValueError, "shape"),
        (np.arange(8), 0, ValueError, "batch_size must be >= 1"),
        (np.arange(8), 2.0, TypeError, "batch_size must be a positive int"),
    ],
)
def test_batchify_rejects(seq, b, exc, match):
    with pytest.raises(exc, match=match):
        fr.batchify(seq, b)


# -- the training loop ------------------------------------------------------------------------------


def manual_tbptt(model, ids, bptt, batch_size, steps, lr, clip):
    """The loop train() must be: carried state, zero_grad, backward, clip, Adam step."""
    opt = fr.optim.Adam(model.parameters(), lr=lr)
    x, y = fr.batchify(ids[:-1], batch_size), fr.batchify(ids[1:], batch_size)
    state, done = None, 0
    for t in range(0, x.shape[0], bptt):
        out, state = model.forward_with_state(x[t : t + bptt], state)
        _, d = losses.cross_entropy(out, y[t : t + bptt])
        model.zero_grad()
        model.backward(d)
        fr.clip_grad_norm(model.parameters(), clip)
        opt.step()
        done += 1
        if done == steps:
            break


def test_matches_a_hand_written_tbptt_loop():
    ids = pattern(200)
    a, b = char_model(), char_model()
    result = fr.train(
        a,
        ids[:-1],
        ids[1:],
        optimizer=fr.optim.Adam(a.parameters(), lr=0.01),
        bptt=7,
        batch_size=4,
        clip=0.5,
        max_steps=5,
        progress=False,
    )
    manual_tbptt(b, ids, bptt=7, batch_size=4, steps=5, lr=0.01, clip=0.5)
    assert result.steps == 5 and result.positions == 5 * 7 * 4
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=p.name)


@pytest.mark.parametrize("backend", backend_params())
def test_seeded_run_loss_falls(backend):
    ids = pattern(1200)
    model = char_model(backend, dtype="float32", hidden=24)
    result = fr.train(
        model,
        ids[:-1],
        ids[1:],
        optimizer=fr.optim.Adam(model.parameters(), lr=0.02),
        bptt=20,
        batch_size=8,
        epochs=4,
        progress=False,
    )
    first, last = result.train_losses[0][1], result.train_losses[-1][1]
    assert first > 1.5  # about log(5) = 1.61 at the start
    assert last < first / 3, (first, last)  # the cycle is learnt: the noise floor is about 0.3
    assert result.epochs == 4 and result.steps == 4 * math.ceil((1199 // 8) / 20)
    assert result.positions_per_second > 0 and result.train_seconds <= result.seconds


@pytest.mark.native
def test_backends_train_identically_in_float64():
    ids = pattern(300)
    runs = []
    for backend in ("numpy", "native"):
        model = char_model(backend)
        fr.train(
            model,
            ids[:-1],
            ids[1:],
            optimizer=fr.optim.Adam(model.parameters(), lr=0.01),
            bptt=9,
            batch_size=3,
            max_steps=6,
            progress=False,
        )
        runs.append(model.state_dict())
    for k in runs[0]:
        np.testing.assert_allclose(runs[1][k], runs[0][k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_batch_first_model_trains_on_the_same_chunks():
    ids = pattern(200)
    a, b = char_model(), char_model(batch_first=True)
    for m in (a, b):
        fr.train(
            m,
            ids[:-1],
            ids[1:],
            optimizer=fr.optim.SGD(m.parameters(), lr=0.1),
            bptt=6,
            batch_size=4,
            max_steps=4,
            progress=False,
        )
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-14)


def test_mse_on_a_float_series_with_a_bare_layer():
    t = np.arange(400) * 0.2
    series = np.stack([np.sin(t), np.cos(t)], axis=1)
    layer = fr.GRU(2, 2, dtype="float64", seed=0)
    result = fr.train(
        layer,
        series[:-1],
        series[1:],
        optimizer=fr.optim.Adam(layer.parameters(), lr=0.02),
        bptt=25,
        batch_size=4,
        epochs=15,
        progress=False,
    )
    assert result.train_losses[-1][1] < result.train_losses[0][1] / 5


# -- evaluation and checkpoints --------------------------------------------------------------------


def test_evaluate_weights_chunks_by_size_and_restores_mode():
    ids = pattern(103)
    model = char_model()
    model.train()
    got = fr.evaluate(model, ids[:-1], ids[1:], bptt=10, batch_size=3)
    assert model.training
    model.eval()
    x, y = fr.batchify(ids[:-1], 3), fr.batchify(ids[1:], 3)
    out = model(x)  # one chunk holding everything: the same positions, the same state flow
    expected, _ = losses.cross_entropy(out, y)
    assert got == pytest.approx(expected, rel=1e-12)


def test_keeps_the_best_checkpoint(tmp_path):
    ids = pattern(800)
    held = pattern(200, seed=5)
    model = char_model()
    path = tmp_path / "best.npz"
    result = fr.train(
        model,
        ids[:-1],
        ids[1:],
        optimizer=fr.optim.Adam(model.parameters(), lr=0.02),
        bptt=10,
        batch_size=4,
        epochs=2,
        eval_every=5,
        eval_data=(held[:-1], held[1:]),
        checkpoint=path,
        extra={"note": "hi"},
        progress=False,
    )
    steps = 2 * math.ceil((799 // 4) / 10)
    assert [s for s, _ in result.eval_losses] == list(range(5, steps + 1, 5)) + ([steps] if steps % 5 else [])
    best_step, best = min(result.eval_losses, key=lambda e: e[1])
    assert (result.best_step, result.best_loss) == (best_step, best)
    assert result.checkpoint == os.fspath(path)
    ckpt = fr.load_checkpoint(path)
    assert ckpt.extra == {"note": "hi", "train": {"step": best_step, "loss": best}}
    assert fr.evaluate(ckpt.model, held[:-1], held[1:], bptt=10, batch_size=4) == pytest.approx(
        best, rel=1e-12
    )
    assert ckpt.optimizer.state_dict()["state"]  # the optimizer state went in too


def test_without_eval_data_the_training_loss_decides(tmp_path):
    ids = pattern(300)
    model = char_model()
    result = fr.train(
        model,
        ids[:-1],
        ids[1:],
        bptt=10,
        batch_size=3,
        eval_every=4,
        max_steps=9,
        checkpoint=tmp_path / "c.npz",
        progress=False,
    )
    losses_ = [v for _, v in result.train_losses]
    assert [s for s, _ in result.eval_losses] == [4, 8, 9]
    assert result.eval_losses[0][1] == pytest.approx(np.mean(losses_[:4]))
    assert result.eval_losses[2][1] == pytest.approx(losses_[8])


def test_nan_loss_never_becomes_the_best(tmp_path):
    ids = pattern(100)
    model = char_model()

    def nan_loss(pred, target):
        return float("nan"), np.zeros_like(pred)

    result = fr.train(
        model,
        ids[:-1],
        ids[1:],
        loss=nan_loss,
        bptt=10,
        batch_size=2,
        max_steps=3,
        checkpoint=tmp_path / "c.npz",
        progress=False,
    )
    assert result.checkpoint is None and not (tmp_path / "c.npz").exists()
    assert result.best_loss == math.inf and result.best_step == 0


# -- stopping -----------------------------------------------------------------------------------


def test_max_steps_max_seconds_and_callback():
    ids = pattern(400)
    model = char_model()
    assert fr.train(model, ids[:-1], ids[1:], bptt=5, batch_size=2, max_steps=3, progress=False).steps == 3
    # max_seconds is checked after each step: a tiny budget stops after the first one
    assert (
        fr.train(model, ids[:-1], ids[1:], bptt=5, batch_size=2, max_seconds=1e-9, progress=False).steps == 1
    )
    seen = []
    r = fr.train(
        model,
        ids[:-1],
        ids[1:],
        bptt=5,
        batch_size=2,
        progress=False,
        callback=lambda step, loss: seen.append((step, loss)) or step == 4,
    )
    assert r.steps == 4 and r.stopped_by_callback and not r.interrupted
    assert seen == r.train_losses


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_cleanly_and_keeps_the_best_checkpoint(tmp_path):
    ids = pattern(600)
    model = char_model()
    path = tmp_path / "best.npz"
    before = signal.getsignal(signal.SIGINT)

    def press_ctrl_c(step, loss):
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    result = fr.train(
        model,
        ids[:-1],
        ids[1:],
        bptt=5,
        batch_size=2,
        eval_every=4,
        progress=False,
        eval_data=(ids[:50], ids[1:51]),
        checkpoint=path,
        callback=press_ctrl_c,
    )
    assert result.interrupted and result.steps == 6
    assert [s for s, _ in result.eval_losses] == [4, 6]  # a final evaluation after the stop
    assert fr.load_checkpoint(path).extra["train"]["step"] == result.best_step
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back

    def press_twice(step, loss):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        fr.train(model, ids[:-1], ids[1:], bptt=5, batch_size=2, progress=False, callback=press_twice)
    assert signal.getsignal(signal.SIGINT) is before


# -- progress -----------------------------------------------------------------------------------


def test_progress_lines_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    ids = pattern(200)
    fr.train(char_model(), ids[:-1], ids[1:], bptt=5, batch_size=2, max_steps=4, log_every=2, eval_every=3)
    err = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[0] for line in err if line.startswith("step ") and "/" in line] == [
        "step 2/4",
        "step 4/4",
    ]
    assert any(line.startswith("step 3: train loss") for line in err)
    fr.train(char_model(), ids[:-1], ids[1:], bptt=5, batch_size=2, max_steps=2, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    ids = pattern(200)
    fr.train(char_model(), ids[:-1], ids[1:], bptt=5, batch_size=2, max_steps=3)
    err = capsys.readouterr().err
    assert "3/3" in err and "loss=" in err


# -- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"model": fr.Linear(2, 2)}, TypeError, "model must be a fastrnn.Sequential or RNN/LSTM/GRU"),
        ({"targets": np.zeros(5, np.int64)}, ValueError, "same length N along axis 0, got 99 and 5"),
        ({"bptt": 0}, ValueError, "bptt must be >= 1"),
        ({"epochs": 1.5}, TypeError, "epochs must be a positive int"),
        ({"batch_size": 500}, ValueError, "too short for batch_size=500"),
        ({"clip": -1.0}, ValueError, "clip must be > 0"),
        ({"clip": "1"}, TypeError, "clip must be a positive number or None"),
        ({"max_seconds": 0}, ValueError, "max_seconds must be > 0"),
        ({"max_steps": True}, TypeError, "max_steps must be a positive int or None"),
        ({"loss": "hinge"}, ValueError, "loss must be 'cross_entropy', 'mse' or a callable"),
        ({"eval_data": np.zeros(3)}, TypeError, "eval_data must be None or a pair"),
        (
            {"eval_data": (np.zeros(3, np.int64), np.zeros(4, np.int64))},
            ValueError,
            "eval_data: inputs and targets must have the same length",
        ),
        ({"extra": [1]}, TypeError, "extra must be a dict or None"),
        ({"callback": 3}, TypeError, "callback must be callable"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    ids = pattern(100)
    args = {"model": char_model(), "inputs": ids[:-1], "targets": ids[1:], "progress": False}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        fr.train(**args)


def test_bad_data_reaches_the_layers():
    model = char_model()
    with pytest.raises(ValueError, match=r"indices must be in \[0, num_embeddings=5\), got 8"):
        fr.train(model, np.full(50, V + 3), np.zeros(50, np.int64), bptt=5, batch_size=2, progress=False)


def test_progress_lines_under_a_time_limit_have_no_total(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    ids = pattern(200)
    fr.train(char_model(), ids[:-1], ids[1:], bptt=5, batch_size=2, max_steps=2, log_every=1, max_seconds=60)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("step ") and ":" not in x]
    assert [x.split("  ")[0] for x in lines] == ["step 1", "step 2"]
