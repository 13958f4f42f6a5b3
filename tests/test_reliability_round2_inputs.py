"""Reliability round 2 (issue 16), items 3-5, and the command-line fixes of issue 13: one-line CLI
errors before any work, early checks in fr.train, and the smaller input defects."""

import os
import runpy
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import functional as F
from fastrnn.__main__ import main
from fastrnn.commands import _versus

from helpers import NATIVE, under_asan

ROOT = Path(__file__).resolve().parent.parent
TEXT = "the cat sat on the mat. " * 40


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _char_checkpoint(path, vocab_chars="\nabc", n_in=None, n_out=None):
    V = len(vocab_chars)
    model = fr.Sequential(fr.Embedding(n_in or V, 3), fr.LSTM(3, 4), fr.Linear(4, n_out or V))
    fr.save_checkpoint(path, model, extra={"vocab": fr.CharVocab(vocab_chars).to_dict()})


def _error_line(argv, capsys):
    """The command's one error line (it must fail before doing any work)."""
    start = time.perf_counter()
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert time.perf_counter() - start < 5, "it did work before failing"
    message = info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in capsys.readouterr().err
    return message


# -- 3. the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train-text", "--out", "nodir/m.npz"], "'nodir' does not exist"),
        (["forecast", "--out", "nodir/f.npz"], "'nodir' does not exist"),
        (["demo", "--out", "nodir/d.npz"], "'nodir' does not exist"),
        (["train-text", "--out", "."], "is a directory"),
        (["train-text", "--hidden", "1000000"], "--hidden 1000000"),
        (["forecast", "--length", str(10**9)], f"--length {10**9}"),
        (["generate", "ok.npz", "--length", str(10**12)], f"--length {10**12}"),
        (["generate", "forecast.npz"], "no character model"),
        (["generate", "mismatch.npz"], "the vocabulary has 4 characters but the model takes 6"),
        (["generate", "missing.npz"], "No such file"),
    ],
)
def test_commands_fail_in_one_line_before_any_work(in_tmp, capsys, argv, expected):
    _char_checkpoint("ok.npz")
    _char_checkpoint("mismatch.npz", n_in=6, n_out=6)
    fr.save_checkpoint(
        "forecast.npz",
        fr.Sequential(fr.LSTM(1, 4), fr.Linear(4, 1)),
        extra={"vocab": fr.CharVocab("ab").to_dict()},
    )
    assert expected in _error_line(argv, capsys)


def test_bench_json_path_is_checked_first(in_tmp):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--json", "nodir/b.json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == ["error: --json 'nodir/b.json': directory 'nodir' does not exist"]


def test_unforeseen_errors_still_end_in_one_line(in_tmp, capsys):
    Path("bad.csv").write_text("x\n1\n2\nthree\n")
    with pytest.raises(SystemExit) as info:
        main(["forecast", "bad.csv"])
    assert "line 4" in info.value.code and "\n" not in info.value.code


def test_max_steps_runs_exactly_that_many_steps(in_tmp, capsys):
    Path("t.txt").write_text(TEXT)
    argv = ["train-text", "t.txt", "--hidden", "8", "--embed", "4", "--bptt", "8", "--batch-size", "4"]
    assert main(argv + ["--max-steps", "40", "--no-progress", "--sample-length", "5"]) == 0
    # The text gives ~28 steps per epoch: 40 steps need a second epoch, which a step limit implies.
    assert "done: 40 steps" in capsys.readouterr().out


def test_forecast_says_higher_when_the_model_loses():
    assert _versus(0.1, 0.2) == "2.0x lower than the baseline"
    assert _versus(0.4, 0.2) == "2.0x higher than the baseline (worse)"
    assert "lower" not in _versus(1.0, 0.1)
    assert _versus(0.2, 0.2) == "the same as the baseline"


def test_semicolon_and_tab_separated_csv(tmp_path):
    for sep in (";", "\t"):
        path = tmp_path / "s.csv"
        path.write_text(f"day{sep}price\n1{sep}2.5\n2{sep}3.5\n")
        values, name = fr.datasets.read_csv_column(path)
        assert name == "price" and values.tolist() == [2.5, 3.5]
    path.write_text("day;price\n1;2,5\n2;3,5\n")
    with pytest.raises(ValueError, match="decimal comma"):
        fr.datasets.read_csv_column(path)


def test_forecast_example_plot_needs_matplotlib_and_says_so_at_once(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    monkeypatch.setattr(sys, "argv", ["forecast.py", "--plot", "f.png"])
    start = time.perf_counter()
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(ROOT / "examples" / "forecast.py"), run_name="__main__")
    assert info.value.code == 2 and time.perf_counter() - start < 5
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_console_script_entry_point():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["fastrnn"] == "fastrnn.__main__:main"
    assert callable(main)


# -- 4. fr.train checks what it needs before the first step ----------------------------------------


def _tiny_model():
    return fr.Sequential(fr.Embedding(5, 3, seed=0), fr.GRU(3, 4, seed=1), fr.Linear(4, 5, seed=2))


@pytest.mark.parametrize(
    "eval_data, error, match",
    [
        ((np.zeros((10, 2), np.int64), np.zeros(10, np.int64)), ValueError, "like the training inputs"),
        ((np.zeros(10), np.zeros(10, np.int64)), ValueError, "dtype kind"),
        ((np.full(10, 9), np.zeros(10, np.int64)), ValueError, r"\[0, 5\)"),
        ((np.zeros(10, np.int64), np.full(10, 7)), ValueError, "eval_data"),
    ],
)
def test_train_checks_eval_data_before_the_first_step(eval_data, error, match):
    steps = []
    ids = np.arange(200) % 5
    with pytest.raises(error, match=match):
        fr.train(
            _tiny_model(),
            ids[:-1],
            ids[1:],
            eval_data=eval_data,
            progress=False,
            callback=lambda s, v: steps.append(s),
        )
    assert steps == []


def test_train_checks_the_checkpoint_path_before_the_first_step(tmp_path):
    steps = []
    ids = np.arange(200) % 5
    target = tmp_path / "nodir" / "m.npz"
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        fr.train(
            _tiny_model(),
            ids[:-1],
            ids[1:],
            checkpoint=target,
            progress=False,
            callback=lambda s, v: steps.append(s),
        )
    assert steps == [] and str(target) in str(info.value)


def test_save_errors_name_the_users_path(tmp_path):
    target = tmp_path / "nodir" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        fr.save_checkpoint(target, _tiny_model())
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if not os.access(read_only, os.W_OK):  # root may write anywhere
            with pytest.raises(PermissionError) as info:
                fr.save_checkpoint(read_only / "m.npz", _tiny_model())
            assert "ro/m.npz" in str(info.value) and ".tmp" not in str(info.value)
    finally:
        read_only.chmod(stat.S_IRWXU)


# -- 5. the smaller defects -------------------------------------------------------------------------


def test_embedding_checks_the_size_before_scanning_the_indices():
    emb = fr.Embedding(10, 8)
    huge = np.broadcast_to(np.int64(3), (2**36,))  # no memory of its own; a scan takes ~1 minute
    start = time.perf_counter()
    with pytest.raises(MemoryError, match="Embedding"):
        emb(huge)
    assert time.perf_counter() - start < 1


def test_char_vocab_keeps_nul():
    vocab = fr.CharVocab.from_text("a\0b")
    assert vocab.decode(vocab.encode("b\0a\0")) == "b\0a\0"


@pytest.mark.parametrize("backend", ["numpy"] + (["native"] if NATIVE else []))
def test_empty_list_of_lengths_for_an_empty_batch(backend):
    lstm = fr.LSTM(3, 4, backend=backend)
    y, (h, c) = lstm(np.zeros((6, 0, 3), np.float32), lengths=[])
    assert y.shape == (6, 0, 4) and h.shape == (1, 0, 4)
    assert F.forward(
        "gru", np.zeros((2, 0, 3)), None, None, np.zeros((12, 3)), np.zeros((12, 4)), None, None, lengths=[]
    )[0].shape == (2, 0, 4)
    with pytest.raises(ValueError, match="shape"):
        lstm(np.zeros((6, 2, 3), np.float32), lengths=[])


@pytest.mark.parametrize("layer", [fr.RNN, fr.LSTM, fr.GRU])
def test_layers_take_big_endian_input(layer):
    m = layer(3, 4, dtype="float64", seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, _ = m(x)
    y_be, _ = m(x.astype(">f8"))
    np.testing.assert_array_equal(y, y_be)
    m.backward(np.ones_like(y))  # the cache of the converted input works too


def test_eval_forward_memory_check_leaves_out_the_training_cache(monkeypatch):
    asked = []
    monkeypatch.setattr(F, "check_memory", lambda nbytes, what: asked.append(nbytes))
    T, B, I, H, G = 7, 3, 5, 4, 4
    args = (np.zeros((T, B, I)), None, None, np.zeros((G * H, I)), np.zeros((G * H, H)), None, None)
    F.forward("lstm", *args, training=False)
    F.forward("lstm", *args, training=True)
    eval_bytes, train_bytes = asked
    assert eval_bytes == 8 * (T * B * (I + H + G * H) + B * 2 * H)
    assert train_bytes == 8 * (T * B * (I + 2 * H + 2 * G * H + 3 * H) + B * 2 * H)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_load_checkpoint_refuses_a_fifo(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            fr.load_checkpoint(fifo)
        except fr.CheckpointError as e:
            outcome.append(str(e))

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("load_checkpoint blocked on a FIFO")
    assert outcome and "not a regular file" in outcome[0]


def test_stepper_prime_is_the_full_forward_and_step_is_within_rounding():
    model = fr.Sequential(
        fr.Embedding(9, 6, seed=0), fr.LSTM(6, 8, num_layers=2, seed=1), fr.Linear(8, 9, seed=2)
    )
    ids = np.random.default_rng(0).integers(0, 9, 30)
    model.eval()
    full = model(ids[:, None])[:, 0]
    stepper = fr.Stepper(model)
    np.testing.assert_array_equal(stepper.prime(ids), full[-1])
    stepper.reset()
    steps = np.stack([stepper.step(np.array(t)) for t in ids])
    np.testing.assert_allclose(steps, full, rtol=2e-5, atol=2e-6)


@pytest.mark.skipif(not NATIVE or not hasattr(os, "fork"), reason="native backend, POSIX resource limits")
# ASan's allocator reports a failed allocation as an error of its own instead of returning null, so
# the kernel's bad_alloc path cannot be reached under .ci/sanitize.
@pytest.mark.skipif(under_asan(), reason="ASan aborts on allocation failure instead of returning null")
def test_native_allocation_failure_says_the_size():
    code = """
import resource, numpy as np
from fastrnn import _backend
native = _backend.native_module()
T, B, I, H = 20000, 64, 8, 256
x = np.zeros((T, B, I), np.float32); h0 = np.zeros((B, H), np.float32)
w_ih = np.zeros((4 * H, I), np.float32); w_hh = np.zeros((4 * H, H), np.float32)
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (3 << 30), hard))  # y fits, the 5 GB projection not
try:
    native.forward("lstm", x, h0, h0, w_ih, w_hh, None, None, None, None, False, False)
    print("no error")
except MemoryError as e:
    print(e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "could not allocate" in r.stdout and "values of 4 bytes" in r.stdout, r.stdout
