"""Smoke tests for the scripts in examples/: each runs tiny (a few steps), in seconds."""

import importlib.util
import math
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")


def load_example(name):
    """Imports examples/<name>.py as a module (examples/ is not a package)."""
    path = os.path.join(EXAMPLES, name + ".py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = [
    "--lengths",
    "12",
    "--steps",
    "6",
    "--hidden",
    "8",
    "--batch",
    "4",
    "--eval-every",
    "3",
    "--test-size",
    "32",
    "--seed",
    "3",
]


@pytest.mark.parametrize("backend", [None, "numpy"])
def test_adding_problem_smoke(capsys, backend):
    adding = load_example("adding_problem")
    results = adding.main(TINY + ["--plot", "none"] + (["--backend", backend] if backend else []))
    out = capsys.readouterr().out

    assert [(r["cell"], r["T"]) for r in results] == [(c, 12) for c in adding.CELLS]
    for r in results:
        assert math.isfinite(r["test_mse"]) and math.isfinite(r["final_train_loss"]), r
        assert r["solved"] == (r["test_mse"] < adding.SOLVED_MSE)
    # The table: a header and one row per cell with its MSE.
    assert "test MSE" in out and "solved" in out and "seconds" in out
    for r in results:
        label = adding.CELLS[r["cell"]]["label"]
        assert any(line.startswith(label) and f"{r['test_mse']:.4f}" in line for line in out.splitlines()), (
            label
        )


def test_adding_problem_data():
    import numpy as np

    adding = load_example("adding_problem")
    x, target = adding.make_batch(np.random.default_rng(0), 10, 200)
    assert x.shape == (10, 200, 2) and target.shape == (200, 1) and x.dtype == np.float32
    markers = x[:, :, 1]
    assert np.all(markers.sum(axis=0) == 2)
    assert np.all(markers[:5].sum(axis=0) == 1) and np.all(markers[5:].sum(axis=0) == 1)
    np.testing.assert_allclose(target[:, 0], (x[:, :, 0] * markers).sum(axis=0), rtol=1e-6)


def test_adding_problem_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    adding = load_example("adding_problem")
    path = tmp_path / "grad_norms.png"
    adding.main(TINY + ["--cells", "tanh", "lstm", "--plot", str(path), "--quiet"])
    assert f"wrote {path}" in capsys.readouterr().out
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_char_rnn_smoke(tmp_path, capsys):
    char_rnn = load_example("char_rnn")
    text = tmp_path / "t.txt"
    text.write_text("The cat sat on the mat. " * 50, encoding="utf-8")
    result = char_rnn.main(
        [
            str(text),
            "--minutes",
            "0.005",
            "--hidden",
            "8",
            "--sample-length",
            "20",
            "--out",
            str(tmp_path / "c.npz"),
        ]
    )
    out = capsys.readouterr().out
    assert result.steps >= 1 and math.isfinite(result.best_loss)
    assert "1,200 characters, 12 distinct" in out
    assert out.count("--- temperature") == 3 and "\nThe " in out


def test_forecast_smoke(tmp_path, capsys):
    forecast = load_example("forecast")
    plot = []
    try:
        import matplotlib  # noqa: F401

        plot = ["--plot", str(tmp_path / "f.png")]
    except ImportError:
        pass
    runs = forecast.main(
        ["--length", "600", "--epochs", "2", "--hidden", "8", "--starts", "2", "--cells", "lstm,gru"] + plot
    )
    out = capsys.readouterr().out
    assert set(runs) == {"lstm", "gru"}
    for cell, (_, errors) in runs.items():
        assert len(errors) == len(forecast.HORIZONS) and all(math.isfinite(e) for e in errors)
        assert any(line.startswith(cell) for line in out.splitlines())
    assert "persistence RMSE" in out
    with pytest.raises(SystemExit):
        forecast.main(["--length", "500"])
    if plot:
        assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
