"""The benchmark harness (benchmarks/, imported as a package from the repository root): the timing
loop, the grid's flop counts and targets, the agreement check that guards every timing, and
``python -m benchmarks`` end to end (tiny sizes: timings are never asserted, only what is computed
from them)."""

import json
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks import grid, harness
from fastrnn._backend import native_available, native_module

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


def test_interleaved_timing_alternates_and_lets_slow_entries_drop_out():
    order = []

    def fast():
        order.append("fast")

    def slow():
        order.append("slow")
        time.sleep(0.02)

    out = harness.time_interleaved(
        {"fast": fast, "slow": slow}, repeat=4, warmup=1, warmup_s=0.0, budget_s=0.03
    )
    assert out["fast"]["repeat"] == 4 and out["slow"]["repeat"] == 1
    assert order == ["fast", "slow", "fast", "slow", "fast", "fast", "fast"]  # warm-ups, then rounds
    assert out["slow"]["min_ms"] >= 20


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
    bitwise = ("bitwise", 1.0)
    assert grid.grid_targets("lstm", "S1", "forward") == [("peers", 1.0), bitwise]
    assert grid.grid_targets("gru", "S3", "forward+backward") == [("torch", 1.1), bitwise]
    assert grid.grid_targets("gru", "S4", "forward") == [("peers", 1.0), ("peak", 0.90), bitwise]
    assert grid.grid_targets("lstm", "S5", "forward+backward") == [("torch", 1.1), ("peak", 0.85), bitwise]
    assert grid.grid_targets("rnn_tanh", "S6", "forward") == [bitwise]
    pairs = grid.grid_pairs()
    assert ("rnn_relu", "S6") in pairs and ("lstm", "S6") not in pairs and ("gru", "S6") not in pairs
    assert len(pairs) == 4 * 5 + 2


def test_evaluate_targets_rates_each_value():
    row = {
        "cell": "gru",
        "shape": "S4",
        "mode": "forward+backward",
        "native_pct_peak": 0.9,
        "torch_over_native": 1.05,
        "bitwise_threads": True,
    }
    grid.evaluate_targets(row)
    assert [(t["kind"], t["status"]) for t in row["targets"]] == [
        ("torch", "MISS"),
        ("peak", "PASS"),
        ("bitwise", "PASS"),
    ]
    assert row["targets"][1]["value"] == pytest.approx(0.9)
    assert row["targets_text"] == ">=1.1x torch MISS, >=85% peak PASS, bitwise 1=2 threads PASS"
    row = {"cell": "gru", "shape": "S4", "mode": "forward", "bitwise_threads": False}
    grid.evaluate_targets(row)  # no peers, no peak: n/a; threads differ: MISS
    assert [t["status"] for t in row["targets"]] == ["n/a", "n/a", "MISS"]


def test_summary_rates_forward_against_the_faster_peer():
    results = [
        {"cell": "gru", "shape": "S2", "mode": "forward", "impl": i, "median_ms": ms}
        for i, ms in (("native", 2.0), ("torch", 3.0), ("ort", 1.0))
    ]
    results[0]["bitwise_threads"] = True
    (row,) = grid.summarize_grid(results, peak_gflops=100.0)
    assert row["peers_over_native"] == pytest.approx(0.5)
    assert row["native_pct_peak"] == pytest.approx(row["native_gflops"] / 100.0)
    assert [(t["kind"], t["status"]) for t in row["targets"]] == [("peers", "MISS"), ("bitwise", "PASS")]


@needs_native
def test_the_fma_peak_is_measured_on_the_active_path():
    peak = grid.measure_peak(repeat=2, seconds=0.01)
    assert peak["path"] == native_module().active_path()
    assert len(peak["gflops"]) == 2 and all(g > 0.5 for g in peak["gflops"])


@pytest.mark.skipif(not harness.ort_available(), reason="onnx and onnxruntime are not installed")
@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_onnx_runtime_agrees_with_numpy_forward(cell):
    problem = harness.make_problem(cell, harness.Shape(T=4, B=3, I=5, H=6))
    assert harness.check_agreement("ort", problem, "forward") < 1e-5
    with pytest.raises(ValueError, match="no backward"):
        harness.make_runner("ort", problem, "forward+backward")


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
    assert all(r["bitwise_threads"] is True for r in rows)
    assert [(r["cell"], r["shape"], r["mode"]) for r in rows] == [
        ("lstm", "S1", "forward"),
        ("lstm", "S1", "forward+backward"),
    ]
    for r in rows:
        assert r["numpy_over_native"] == pytest.approx(r["numpy_ms"] / r["native_ms"])
        assert r["native_gflops"] == pytest.approx(r["flops"] / (r["native_ms"] * 1e6))
    kinds = {t["kind"]: t for t in rows[1]["targets"]}
    assert kinds["bitwise"]["status"] == "PASS"
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
    assert sum(grid["target_counts"].values()) == len(grid["targets"]) == 4
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


def test_thread_targets_follow_the_issue():
    from benchmarks import threads

    assert threads.verdicts("S4", 1.8) == {"not_slower": "PASS", "scaling": "PASS"}
    assert threads.verdicts("S5", 1.79) == {"not_slower": "PASS", "scaling": "MISS"}
    assert threads.verdicts("S1", 0.99) == {"not_slower": "PASS"}  # no scaling target below S4
    assert threads.verdicts("S2", 0.97) == {"not_slower": "MISS"}


@needs_native
def test_command_line_threads_times_both_counts_and_writes_its_json(tmp_path):
    path = tmp_path / "threads.json"
    argv = ["--cells", "rnn_tanh", "--shapes", "S1", "--rounds", "1", "--batch", "0", "--json", str(path)]
    cmd = [sys.executable, "-m", "benchmarks.threads"]
    run = subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    rows = json.loads(path.read_text())["rows"]
    assert [(r["cell"], r["shape"], r["mode"]) for r in rows] == [
        ("rnn_tanh", "S1", "forward"),
        ("rnn_tanh", "S1", "forward+backward"),
    ]
    for r in rows:
        assert r["ratio"] == pytest.approx(r["ms_1"] / r["ms_2"]) and r["ms_2"] > 0
        assert set(r["targets"]) == {"not_slower"}
    bad = subprocess.run([*cmd, "--shapes", "S9"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and "unknown shape 'S9'" in bad.stderr


# ---------------------------------------------------------------------------------------------
# python -m fastrnn bench: the short user command (no grid, no targets), in the package


def test_fastrnn_bench_checks_then_times_each_cell_and_mode(capsys):
    from fastrnn.__main__ import main

    assert main(["bench", "--cells", "rnn_tanh,gru", "--repeat", "1", "--no-torch", "--no-ort"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("rnn_tanh ", "gru "))]
    assert [r[:2] for r in rows] == [
        ["rnn_tanh", "forward"],
        ["rnn_tanh", "forward+backward"],
        ["gru", "forward"],
        ["gru", "forward+backward"],
    ]
    assert (
        "torch ms" not in out and "ort ms" not in out and "PASS" not in out and "MISS" not in out
    )  # no project targets
    if native_available():
        assert out.startswith("ok: native agrees with numpy")
        for r in rows:  # native ms, numpy ms, numpy/native
            native_ms, numpy_ms, ratio = float(r[2]), float(r[3]), float(r[4].rstrip("x"))
            assert ratio == pytest.approx(numpy_ms / native_ms, rel=0.02, abs=0.01)


@needs_native
@pytest.mark.skipif(not harness.ort_available(), reason="onnx and onnxruntime are not installed")
def test_fastrnn_bench_times_onnx_runtime_forward_and_rates_the_peak(capsys):
    from fastrnn.__main__ import main

    assert main(["bench", "--cells", "lstm", "--repeat", "1", "--no-torch", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: native, ort agree with numpy") and "FMA peak of this core" in out
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith("lstm ")}
    # native ms, numpy ms, ort ms, numpy/native, ort/native, GFLOP/s, %peak
    assert rows["forward"][4] != "n/a" and rows["forward+backward"][4] == "n/a"
    ratio = float(rows["forward"][6].rstrip("x"))
    assert ratio == pytest.approx(float(rows["forward"][4]) / float(rows["forward"][2]), rel=0.02, abs=0.01)


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
