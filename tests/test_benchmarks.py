"""The benchmark harness (benchmarks/, imported as a package from the repository root): the timing
loop, the grid's flop counts and targets, the agreement check that guards every timing, and
``python -m benchmarks`` end to end (tiny sizes: timings are never asserted, only what is computed
from them)."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import grid, harness
from fastrnn._backend import native_available

ROOT = pathlib.Path(__file__).resolve().parents[1]
needs_native = pytest.mark.skipif(not native_available(), reason="the native extension is not built")


class FakeClock:
    """time.perf_counter for bench, advanced only by the timed function: no real time involved."""

    def __init__(self, step):
        self.now, self.step, self.calls = 0.0, step, 0

    def perf_counter(self):
        return self.now

    def fn(self):
        self.calls += 1
        self.now += self.step


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock(0.01)
    monkeypatch.setattr(harness.time, "perf_counter", c.perf_counter)
    return c


def test_warm_up_runs_for_warmup_s_then_repeat_calls_are_timed(clock):
    out = harness.time_function(clock.fn, repeat=4, warmup=1, warmup_s=0.05)
    assert clock.calls == 5 + 4  # warm-up until 0.05 s had passed, then the timed calls
    assert out["repeat"] == 4 and out["times_ms"] == pytest.approx([10.0] * 4)
    assert out["median_ms"] == pytest.approx(10.0) and out["min_ms"] == pytest.approx(10.0)


def test_warm_up_count_wins_over_a_short_warmup_s(clock):
    harness.time_function(clock.fn, repeat=2, warmup=3, warmup_s=0.0)
    assert clock.calls == 3 + 2


def test_no_warm_up_at_all_with_warmup_0(clock):
    out = harness.time_function(clock.fn, repeat=3, warmup=0, warmup_s=1.0)
    assert clock.calls == 3 and out["repeat"] == 3


def test_budget_shrinks_the_timed_calls_but_never_below_one(clock):
    out = harness.time_function(clock.fn, repeat=20, warmup=1, warmup_s=0.0, budget_s=0.035)
    assert out["repeat"] == 3
    out = harness.time_function(clock.fn, repeat=20, warmup=1, warmup_s=0.0, budget_s=0.001)
    assert out["repeat"] == 1


def test_repeat_below_one_is_refused():
    with pytest.raises(ValueError, match="repeat"):
        harness.time_function(lambda: None, repeat=0)


@pytest.mark.parametrize("cell,gates", [("rnn_tanh", 1), ("rnn_relu", 1), ("lstm", 4), ("gru", 3)])
def test_flops_count_the_input_and_recurrent_products(cell, gates):
    T, B, I, H = 100, 1, 64, 128  # S1
    forward = 2.0 * T * B * gates * H * (I + H)
    assert grid.flops(cell, "S1", "forward") == forward
    assert grid.flops(cell, "S1", "forward+backward") == 3 * forward


def test_grid_targets_follow_the_issue():
    assert grid.grid_targets("lstm", "S1", "forward") == [("torch", 2.5)]
    assert grid.grid_targets("lstm", "S1", "forward+backward") == [("torch", 2.5), ("numpy", 10.0)]
    assert grid.grid_targets("rnn_tanh", "S1", "forward+backward") == [("torch", 5.0)]
    assert grid.grid_targets("gru", "S3", "forward") == [("torch", 5.0)]
    assert grid.grid_targets("gru", "S4", "forward") == []
    assert grid.grid_targets("gru", "S5", "forward+backward") == [("sgemm", 0.85), ("torch", 1.5)]
    assert grid.grid_targets("lstm", "S4", "forward+backward") == [("sgemm", 0.85), ("torch", 1.1)]
    pairs = grid.grid_pairs()
    assert ("rnn_relu", "S6") in pairs and ("lstm", "S6") not in pairs and ("gru", "S6") not in pairs
    assert len(pairs) == 4 * 5 + 2


def test_evaluate_targets_rates_each_value():
    row = {
        "cell": "gru",
        "shape": "S4",
        "mode": "forward+backward",
        "native_gflops": 90.0,
        "torch_over_native": 1.2,
    }
    grid.evaluate_targets(row, sgemm_gflops=100.0)
    assert [(t["kind"], t["status"]) for t in row["targets"]] == [("sgemm", "PASS"), ("torch", "MISS")]
    assert row["targets"][0]["value"] == pytest.approx(0.9)
    assert row["targets_text"] == ">=85% sgemm PASS, >=1.5x torch MISS"
    row = {"cell": "gru", "shape": "S4", "mode": "forward+backward", "native_gflops": 90.0}
    grid.evaluate_targets(row, sgemm_gflops=None)  # no sgemm rate, no torch: nothing to rate
    assert [t["status"] for t in row["targets"]] == ["n/a", "n/a"]
    row = {"cell": "gru", "shape": "S4", "mode": "forward"}
    assert grid.evaluate_targets(row)["targets_text"] == "-"


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown cell 'nope'"):
        grid.grid_pairs(cells=["nope"])
    with pytest.raises(ValueError, match="shape must be one of"):
        harness.make_problem("lstm", "S9")
    with pytest.raises(TypeError, match="dtype"):
        harness.make_problem("lstm", "S1", dtype="float16")


@needs_native
def test_a_disagreeing_implementation_stops_the_run():
    problem = harness.make_problem("gru", harness.Shape(T=3, B=2, I=4, H=5))
    reference = harness.run_outputs("numpy", problem, "forward+backward")
    assert harness.check_agreement("native", problem, "forward+backward", reference) < 1e-5
    reference["dw_hh"] = reference["dw_hh"].copy()
    reference["dw_hh"][1, 2] += 0.5
    with pytest.raises(harness.AgreementError, match=r"dw_hh differs .* worst at \(1, 2\)"):
        harness.check_agreement("native", problem, "forward+backward", reference)


@needs_native
def test_grid_rows_hold_ratios_of_the_measured_times():
    results = grid.run_grid(cells=["lstm"], shapes=["S1"], impls=["native", "numpy"], repeat=1, budget_s=0.01)
    rows = grid.summarize_grid(results, sgemm_gflops=None)
    assert [(r["cell"], r["shape"], r["mode"]) for r in rows] == [
        ("lstm", "S1", "forward"),
        ("lstm", "S1", "forward+backward"),
    ]
    for r in rows:
        assert r["numpy_over_native"] == pytest.approx(r["numpy_ms"] / r["native_ms"])
        assert r["native_gflops"] == pytest.approx(r["flops"] / (r["native_ms"] * 1e6))
    kinds = {t["kind"]: t for t in rows[1]["targets"]}
    assert kinds["numpy"]["value"] == pytest.approx(rows[1]["numpy_over_native"])
    assert kinds["torch"]["status"] == "n/a"  # torch was not timed


@needs_native
def test_command_line_grid_writes_its_json(tmp_path):
    path = tmp_path / "grid.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--grid",
            "--cells",
            "rnn_tanh",
            "--shapes",
            "S1",
            "--no-torch",
            "--repeat",
            "1",
            "--budget",
            "0.01",
            "--json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert "targets:" in run.stdout and "rnn_tanh   S1" in run.stdout
    saved = json.loads(path.read_text())
    grid = saved["grid"]
    assert [(r["cell"], r["mode"]) for r in grid["rows"]] == [
        ("rnn_tanh", "forward"),
        ("rnn_tanh", "forward+backward"),
    ]
    assert sum(grid["target_counts"].values()) == len(grid["targets"]) == 2
    assert all(np.isfinite(r["native_ms"]) and r["native_ms"] > 0 for r in grid["rows"])


def test_command_line_refuses_an_unknown_cell():
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--cells", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert "unknown cell 'nope'" in run.stderr


# ---------------------------------------------------------------------------------------------
# python -m fastrnn bench: the short user command (no grid, no targets), in the package


def test_fastrnn_bench_checks_then_times_each_cell_and_mode(capsys):
    from fastrnn.__main__ import main

    assert main(["bench", "--cells", "rnn_tanh,gru", "--repeat", "1", "--no-torch"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("rnn_tanh ", "gru "))]
    assert [r[:2] for r in rows] == [
        ["rnn_tanh", "forward"],
        ["rnn_tanh", "forward+backward"],
        ["gru", "forward"],
        ["gru", "forward+backward"],
    ]
    assert "torch ms" not in out and "PASS" not in out and "MISS" not in out  # no project targets
    if native_available():
        assert out.startswith("ok: native agrees with numpy")
        for r in rows:  # native ms, numpy ms, numpy/native
            native_ms, numpy_ms, ratio = float(r[2]), float(r[3]), float(r[4].rstrip("x"))
            assert ratio == pytest.approx(numpy_ms / native_ms, rel=0.02, abs=0.01)


@needs_native
def test_fastrnn_bench_stops_on_a_disagreement(monkeypatch, capsys):
    from fastrnn import _bench

    monkeypatch.setitem(_bench.TOLERANCE, "float32", -1.0)  # every difference (even 0) is too large
    assert _bench.run(cells=["lstm"], repeat=1, use_torch=False) == 1
    out = capsys.readouterr().out
    assert "native disagrees with numpy on lstm forward" in out and " ms" not in out


def test_fastrnn_bench_refuses_an_unknown_cell():
    run = subprocess.run(
        [sys.executable, "-m", "fastrnn", "bench", "--cells", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "unknown cell 'nope'" in run.stderr


def test_info_imports_neither_the_bench_code_nor_torch():
    code = (
        "import sys\nfrom fastrnn.__main__ import main\nassert main(['info']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('benchmarks', 'torch')"
        " or m == 'fastrnn._bench'))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "[]"
    assert "version " in run.stdout and "torch " in run.stdout
