"""examples/dask_forecast.py: scoring a forecaster over many series on a 2-worker LocalCluster gives
the numbers of a single-process loop; its input readers and argument errors."""

import importlib.util
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.__main__ import main as fastrnn_main

pytest.importorskip("dask")
pytest.importorskip("distributed")

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples",
                       "dask_forecast.py")


@pytest.fixture(scope="module")
def example():
    """The example as a module that is not in sys.modules: the workers cannot import it by name,
    so pickle fails on its functions and distributed falls back to cloudpickle, which sends them
    by value, as it does for a script's __main__."""
    spec = importlib.util.spec_from_file_location("example_dask_forecast", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small forecaster written by the real command (a few epochs: the numbers, not the skill,
    are under test)."""
    path = str(tmp_path_factory.mktemp("dask") / "forecaster.npz")
    assert fastrnn_main(["forecast", "--length", "300", "--epochs", "3", "--hidden", "8",
                         "--no-progress", "--out", path]) == 0
    return path


def one_at_a_time(path, series, warmup):
    """The plainest loop: each series alone through the model (batch of one, no padding)."""
    model, _, extra = fr.load_checkpoint(path)
    model.eval()
    mean, std = extra["mean"], extra["std"]
    rows = []
    for s in series:
        z = ((s - mean) / std).astype(np.float32)[:, None, None]
        pred = model(z)[:, 0, 0].astype(np.float64) * std + mean
        truth = s[warmup + 1:]
        rows.append([np.sqrt(np.mean((pred[warmup:-1] - truth) ** 2)),
                     np.sqrt(np.mean((s[warmup:-1] - truth) ** 2)), pred[-1]])
    return np.array(rows)


@pytest.fixture
def port_8787_taken():
    """Holds distributed's default HTTP port, as another cluster on the machine would: the example
    must not warn (a warning is an error here)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8787))
            s.listen()
        except OSError:
            pass          # someone else holds it: the same situation
        yield


def test_two_workers_give_the_serial_numbers(example, checkpoint, tmp_path, capsys,
                                             port_8787_taken):
    out = tmp_path / "scores.csv"
    # 40 ragged series in partitions of 7: six partitions, the last one short, each padded.
    args = [checkpoint, "--series", "40", "--length", "90", "--min-length", "30", "--warmup", "5",
            "--partition-size", "7", "--workers", "2", "--check", "--no-progress",
            "--out", str(out)]
    run = example.main(args)
    printed = capsys.readouterr().out
    assert "LocalCluster of 2 worker process(es)" in printed
    assert "40 Mackey-Glass windows of 30-90 values (seed 0)" in printed
    assert "6 partition(s)" in printed
    assert "gave bitwise the same numbers" in printed

    results = run["results"]
    assert results.shape == (40, 3) and np.all(np.isfinite(results))
    np.testing.assert_array_equal(results, run["serial"])
    series = example.generated_series(40, 90, 30, 0)
    assert list(run["lengths"]) == [len(s) for s in series] and len(set(run["lengths"])) > 1
    # Batched and padded in partitions vs each series alone: the same up to float32 rounding.
    np.testing.assert_allclose(results, one_at_a_time(checkpoint, series, 5), rtol=1e-5, atol=0)

    table = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(table[:, 0], np.arange(40))
    np.testing.assert_array_equal(table[:, 1], run["lengths"])
    np.testing.assert_array_equal(table[:, 2:], results)     # repr() round-trips exactly


def test_script_with_dask_progress_bar(checkpoint, tmp_path):
    """As documented: the script itself (functions shipped from __main__), warnings as errors,
    without tqdm (so the plain text bar), scoring a .npy file."""
    np.save(tmp_path / "s.npy", np.stack([fr.datasets.mackey_glass(120, x0=x0)
                                          for x0 in (0.7, 1.0, 1.3)]))
    blocker = tmp_path / "no_tqdm"
    blocker.mkdir()
    (blocker / "tqdm.py").write_text("raise ImportError('tqdm is blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker)] + sys.path))
    r = subprocess.run([sys.executable, "-W", "error", EXAMPLE, checkpoint, str(tmp_path / "s.npy"),
                        "--workers", "2", "--partition-size", "2", "--warmup", "10", "--check"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "series: " + str(tmp_path / "s.npy") + ": 360 values in 2 partition(s)" in r.stdout
    assert "100% Completed" in r.stdout and "gave bitwise the same numbers" in r.stdout
    assert "Warning" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_read_series_npy_and_csv(example, tmp_path):
    a = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, np.nan, np.nan]])
    np.save(tmp_path / "s.npy", a)
    got = example.read_series(str(tmp_path / "s.npy"))
    assert [s.tolist() for s in got] == [[1, 2, 3, 4], [5, 6]]
    np.save(tmp_path / "one.npy", np.arange(5, dtype=np.int32))
    assert [s.tolist() for s in example.read_series(str(tmp_path / "one.npy"))] == [[0, 1, 2, 3, 4]]
    (tmp_path / "s.csv").write_text("1,2,3\n\n4.5, 5e1 ,,\n", encoding="utf-8")
    assert [s.tolist() for s in example.read_series(str(tmp_path / "s.csv"))] == [[1, 2, 3],
                                                                                 [4.5, 50]]


@pytest.mark.parametrize("content, message", [
    ("1,2,x\n", r"s.csv, line 1: expected numbers separated by commas"),
    ("1,2,3\n4,,6\n", r"s.csv, line 2: expected numbers"),
    ("1,nan,3\n", r"s.csv, line 1 holds a NaN or infinity before its end"),
])
def test_read_series_bad_csv(example, tmp_path, content, message):
    (tmp_path / "s.csv").write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit, match=message):
        example.read_series(str(tmp_path / "s.csv"))


def test_read_series_bad_npy(example, tmp_path):
    np.save(tmp_path / "3d.npy", np.zeros((2, 2, 2)))
    with pytest.raises(SystemExit, match=r"expected a 1-D or 2-D array of numbers, got 3-D "):
        example.read_series(str(tmp_path / "3d.npy"))
    np.save(tmp_path / "inf.npy", np.array([[1.0, np.inf, 2.0]]))
    with pytest.raises(SystemExit, match=r"inf.npy, row 0 holds a NaN or infinity"):
        example.read_series(str(tmp_path / "inf.npy"))
    with pytest.raises(SystemExit, match=r"cannot read .*missing.npy"):
        example.read_series(str(tmp_path / "missing.npy"))


@pytest.mark.parametrize("extra, message", [
    (["--series", "0"], r"--series: expected a positive integer, got '0'"),
    (["--warmup", "-1"], r"--warmup: expected an integer >= 0"),
    (["--min-length", "600"], r"--min-length 600 is more than --length 500"),
    (["--length", "40"], r"leave nothing to score after --warmup 50 \(need at least 52\)"),
    (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], r"--workers and --dashboard are for "),
    (["s.csv", "--series", "3", "--seed", "1"],
     r"--series, --seed: for generated series, not with FILE s.csv"),
    (["--threads", "1025"], r"--threads: expected at most 1024, got 1025"),
    (["--timeout", "inf"], r"--timeout: expected a number of seconds > 0, got inf"),
])
def test_bad_arguments(example, checkpoint, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        example.main([checkpoint] + extra)
    assert e.value.code == 2                   # argparse's usage error, before any cluster starts
    assert re.search(message, capsys.readouterr().err)


def test_bad_inputs(example, checkpoint, tmp_path):
    (tmp_path / "x.npz").write_bytes(b"nope")
    with pytest.raises(SystemExit, match=r"error: checkpoint: .*not a checkpoint"):
        example.main([str(tmp_path / "x.npz")])
    plain = str(tmp_path / "plain.npz")
    fr.save_checkpoint(plain, fr.Sequential(fr.LSTM(1, 4), fr.Linear(4, 1)))
    with pytest.raises(SystemExit, match=r"no finite mean and std > 0.*fastrnn forecast"):
        example.main([plain])
    wide = str(tmp_path / "wide.npz")
    fr.save_checkpoint(wide, fr.Sequential(fr.LSTM(3, 4), fr.Linear(4, 1)),
                       extra={"mean": 0.0, "std": 1.0})
    with pytest.raises(SystemExit, match=r"does not take one value per step"):
        example.main([wide])
    bi = str(tmp_path / "bi.npz")
    fr.save_checkpoint(bi, fr.Sequential(fr.GRU(1, 4, bidirectional=True), fr.Linear(8, 1)),
                       extra={"mean": 0.0, "std": 1.0})
    with pytest.raises(SystemExit, match=r"bidirectional model reads the future: no forecaster"):
        example.main([bi])
    np.save(tmp_path / "short.npy", np.ones((3, 10)))
    with pytest.raises(SystemExit, match=r"series 0 has 10 values; each needs at least --warmup"):
        example.main([checkpoint, str(tmp_path / "short.npy")])
    with pytest.raises(SystemExit, match=r"cannot connect to the scheduler tcp://127.0.0.1:1: "
                                         r"Timed out .* after 0.5 s"):
        example.main([checkpoint, "--series", "2", "--scheduler", "tcp://127.0.0.1:1",
                      "--timeout", "0.5"])
    with pytest.raises(SystemExit, match=r"cannot connect to the scheduler foo://x: unknown "):
        example.main([checkpoint, "--series", "2", "--scheduler", "foo://x"])


def test_fastrnn_does_not_import_dask():
    code = ("import sys, fastrnn; fastrnn.info(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
