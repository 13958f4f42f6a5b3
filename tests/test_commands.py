"""Smoke tests of the training commands: python -m fastrnn train-text / generate / forecast / demo,
with tiny sizes; their --help; their errors; and Ctrl-C on a real train-text process."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.__main__ import main

TEXT = "the cat sat on the mat. the dog sat on the log. " * 40


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_text_then_generate(in_tmp, capsys):
    (in_tmp / "t.txt").write_text(TEXT, encoding="utf-8")
    assert (
        main(
            [
                "train-text",
                "t.txt",
                "--hidden",
                "16",
                "--embed",
                "8",
                "--bptt",
                "10",
                "--batch-size",
                "4",
                "--epochs",
                "2",
                "--eval-every",
                "10",
                "--lr",
                "0.02",
                "--out",
                "m.npz",
                "--sample-length",
                "40",
                "--no-progress",
                "--prime",
                "the ",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"{len(TEXT):,} characters, 14 distinct" in out
    assert "best held-out loss" in out and "saved to m.npz" in out
    assert "sample (temperature 0.8):\nthe " in out
    ckpt = fr.load_checkpoint(in_tmp / "m.npz")
    assert fr.CharVocab.from_dict(ckpt.extra["vocab"]) == fr.CharVocab.from_text(TEXT)
    assert ckpt.extra["train"]["loss"] < np.log(14)  # it learnt something

    assert main(["generate", "m.npz", "--prime", "the c", "--length", "30", "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the c") and len(first) == len("the c") + 30 + 1
    main(["generate", "m.npz", "--prime", "the c", "--length", "30", "--seed", "1"])
    assert capsys.readouterr().out == first  # seeded
    main(["generate", "m.npz", "--length", "5", "--temperature", "0", "--top-k", "2"])
    out = capsys.readouterr().out  # no prime printed, no leading line break
    assert 1 < len(out) <= 5 + 1 and not out.startswith("\n")


def test_generate_errors(in_tmp, capsys):
    with pytest.raises(SystemExit, match="No such file"):
        main(["generate", "missing.npz"])
    fr.save_checkpoint("plain.npz", fr.Sequential(fr.Embedding(3, 2), fr.LSTM(2, 2), fr.Linear(2, 3)))
    with pytest.raises(SystemExit, match="holds no vocabulary: was it written by train-text"):
        main(["generate", "plain.npz"])
    (in_tmp / "t.txt").write_text("abcabc", encoding="utf-8")
    main(
        [
            "train-text",
            "t.txt",
            "--hidden",
            "4",
            "--embed",
            "2",
            "--batch-size",
            "1",
            "--max-steps",
            "1",
            "--no-progress",
            "--out",
            "m.npz",
            "--val-fraction",
            "0.3",
        ]
    )
    capsys.readouterr()
    with pytest.raises(SystemExit, match="--prime uses characters the model never saw: 'xz'"):
        main(["generate", "m.npz", "--prime", "zax"])
    (in_tmp / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(SystemExit, match="checkpoint"):
        main(["generate", "bad.npz"])


def test_train_text_errors(in_tmp):
    (in_tmp / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SystemExit, match="latin1.txt is not UTF-8 text"):
        main(["train-text", "latin1.txt"])
    with pytest.raises(SystemExit, match="cannot read nothere.txt"):
        main(["train-text", "nothere.txt"])
    (in_tmp / "short.txt").write_text("ab", encoding="utf-8")
    with pytest.raises(SystemExit, match="at least 3 characters"):
        main(["train-text", "short.txt"])
    (in_tmp / "t.txt").write_text("abcdefgh" * 3, encoding="utf-8")
    with pytest.raises(SystemExit, match="too few for --batch-size 32"):
        main(["train-text", "t.txt"])


def test_forecast_default_series_beats_persistence(in_tmp, capsys):
    assert (
        main(
            [
                "forecast",
                "--length",
                "800",
                "--epochs",
                "60",
                "--hidden",
                "16",
                "--no-progress",
                "--out",
                "f.npz",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "series: Mackey-Glass (tau=17): 800 values, last 160 for testing" in out
    line = next(x for x in out.splitlines() if x.startswith("one-step-ahead test RMSE"))
    model_rmse = float(line.split("model ")[1].split(",")[0])
    naive = float(line.split("persistence (next = last) ")[1].split()[0])
    assert model_rmse < naive / 2, line
    assert fr.load_checkpoint("f.npz").extra["series"] == "Mackey-Glass (tau=17)"


def test_forecast_csv(in_tmp, capsys):
    t = np.arange(300)
    rows = "\n".join(f"{i},{np.sin(0.3 * i):.6f}" for i in t)
    (in_tmp / "s.csv").write_text("t,value\n" + rows + "\n", encoding="utf-8")
    assert (
        main(
            [
                "forecast",
                "s.csv",
                "--column",
                "value",
                "--epochs",
                "30",
                "--hidden",
                "8",
                "--batch-size",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "series: value: 300 values, last 60 for testing" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no column 'price'; columns: t, value"):
        main(["forecast", "s.csv", "--column", "price"])
    with pytest.raises(SystemExit, match="too few"):
        main(["forecast", "s.csv", "--batch-size", "300"])


def test_demo_runs(in_tmp, capsys):
    assert main(["demo", "--seconds", "1", "--hidden", "16", "--sample-length", "20", "--out", "d.npz"]) == 0
    out = capsys.readouterr().out
    assert "held-out loss before training: " in out
    assert "held-out loss after" in out and "Sample (temperature 0.7, prime 'The '):\nThe " in out
    assert "numpy backend" in out
    if fr._backend.native_available():
        assert "native backend, 1 thread " in out and "x faster" in out
    assert fr.get_num_threads() == 1  # put back
    assert "demo_model" not in out and os.path.exists("d.npz")


@pytest.mark.parametrize("command", ["train-text", "generate", "forecast", "demo"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: python -m fastrnn " + command in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["train-text", "--hidden", "0"],
        ["train-text", "--dropout", "1"],
        ["train-text", "--val-fraction", "1.5"],
        ["generate", "x.npz", "--temperature", "-1"],
        ["forecast", "--lr", "nan"],
        ["demo", "--seconds", "0"],
        ["train-text", "--cell", "tcn"],
    ],
)
def test_bad_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_on_train_text_keeps_the_best_checkpoint(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT * 5, encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "fastrnn",
        "train-text",
        "t.txt",
        "--hidden",
        "16",
        "--embed",
        "8",
        "--bptt",
        "10",
        "--batch-size",
        "4",
        "--epochs",
        "1000",
        "--eval-every",
        "5",
        "--out",
        "m.npz",
        "--sample-length",
        "10",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # wait for the first evaluation (and so a checkpoint)
            if "eval loss" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Ctrl-C: stopping after this step" in err
    assert "interrupted (Ctrl-C)" in out and "sample (temperature" in out
    best_step = int(out.split("best held-out loss ")[1].split(" at step ")[1].split(",")[0])
    assert fr.load_checkpoint(tmp_path / "m.npz").extra["train"]["step"] == best_step


def test_commands_on_the_numpy_backend(in_tmp, capsys, restore_backend):
    (in_tmp / "t.txt").write_text(TEXT, encoding="utf-8")
    assert (
        main(
            [
                "train-text",
                "t.txt",
                "--hidden",
                "8",
                "--embed",
                "4",
                "--bptt",
                "10",
                "--batch-size",
                "4",
                "--max-steps",
                "3",
                "--backend",
                "numpy",
                "--no-progress",
                "--out",
                "m.npz",
                "--sample-length",
                "5",
            ]
        )
        == 0
    )
    assert fr.get_backend() == "numpy"
    assert main(["generate", "m.npz", "--length", "5", "--seed", "0", "--backend", "numpy"]) == 0
    assert (
        main(
            [
                "forecast",
                "--length",
                "300",
                "--epochs",
                "2",
                "--hidden",
                "4",
                "--backend",
                "numpy",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "one-step-ahead test RMSE" in capsys.readouterr().out
