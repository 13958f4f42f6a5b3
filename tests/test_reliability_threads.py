"""Python threads and the native kernels: concurrent calls give exactly the serial results, the GIL is
released while a kernel runs, and results are bitwise identical run to run and for any thread count."""

import functools
import os
import threading
import time

import numpy as np
import pytest

import fastrnn

from helpers import CELL_VARIANTS, DTYPES, in_threads, make_lengths, make_upstream, make_variant, run

pytestmark = pytest.mark.native


def assert_identical(a, b, what=""):
    for name, value in a.items():
        if value is None:
            assert b[name] is None, name
        else:
            np.testing.assert_array_equal(b[name], value, err_msg=f"{what} {name}")


# -------------------------------------------------------------------------------------------------
# Concurrency


@pytest.mark.parametrize("team", [1, 2], ids=["team1", "team2"])
def test_eight_threads_shared_and_separate_inputs_match_serial(team, restore_threads):
    fastrnn.set_num_threads(team)
    cases = []
    for k, variant in enumerate(CELL_VARIANTS):
        for dtype in DTYPES:
            cell, p = make_variant(variant, 7, 5, 6, 20, dtype, seed=k)
            cases.append((cell, p, make_lengths(7, 5, seed=k), k % 2 == 1, make_upstream(p, 7)))
    serial = [run(p, cell, "native", lengths, rev, up) for cell, p, lengths, rev, up in cases]

    # Shared: all 8 threads run the same problem (same input arrays) several times each.
    for idx in (0, 5):
        cell, p, lengths, rev, up = cases[idx]
        outs = in_threads(8, lambda i: [run(p, cell, "native", lengths, rev, up) for _ in range(5)])
        for per_thread in outs:
            for result in per_thread:
                assert_identical(serial[idx], result, f"shared case {idx}")

    # Separate: thread i runs every case, starting at a different one.
    def separate(i):
        order = [(i + j) % len(cases) for j in range(len(cases))]
        return {j: run(cases[j][1], cases[j][0], "native", *cases[j][2:]) for j in order}

    for per_thread in in_threads(8, separate):
        for j, result in per_thread.items():
            assert_identical(serial[j], result, f"separate case {j}")


def test_eight_threads_on_layers_match_serial():
    x = np.random.default_rng(0).standard_normal((9, 4, 6)).astype(np.float32)
    lengths = np.array([9, 3, 7, 1])

    # Separate layers (one per thread), forward + backward.
    def make(i):
        return fastrnn.LSTM(6, 8, num_layers=2, bidirectional=True, seed=i)

    def train_step(layer):
        y, (h, c) = layer(x, lengths=lengths)
        dx, (dh0, dc0) = layer.backward(np.ones_like(y))
        return y, h, c, dx, dh0, dc0, {k: v.copy() for k, v in layer.grads.items()}

    serial = [train_step(make(i)) for i in range(8)]
    layers = [make(i) for i in range(8)]
    parallel = in_threads(8, lambda i: train_step(layers[i]))
    for s, p in zip(serial, parallel):
        for a, b in zip(s[:-1], p[:-1]):
            np.testing.assert_array_equal(a, b)
        for k in s[-1]:
            np.testing.assert_array_equal(s[-1][k], p[-1][k], err_msg=k)

    # One shared layer in eval mode (inference keeps no per-call state), 8 threads at once.
    shared = fastrnn.GRU(6, 8, num_layers=2, seed=9).eval()
    expected = shared(x, lengths=lengths)
    for y, h in in_threads(8, lambda i: shared(x, lengths=lengths)):
        np.testing.assert_array_equal(y, expected[0])
        np.testing.assert_array_equal(h, expected[1])


# -------------------------------------------------------------------------------------------------
# The GIL is released while a kernel runs: a Python thread makes progress during the call.


@functools.lru_cache(maxsize=None)
def _long_problem(target_seconds=0.25):
    """An LSTM problem whose native forward takes about target_seconds (calibrated once)."""
    T = 256
    while True:
        cell, p = make_variant("lstm", T, 4, 64, 128, np.float32, seed=1)
        start = time.perf_counter()
        run(p, cell, "native")
        took = time.perf_counter() - start
        if took >= target_seconds or T >= 2**16:
            return cell, p, took
        T = int(T * min(8.0, max(1.5, 1.2 * target_seconds / max(took, 1e-4))))


@pytest.mark.parametrize("phase", ["forward", "backward"])
def test_gil_is_released_during_kernels(phase):
    from fastrnn import functional as F

    cell, p, _ = _long_problem()
    args = (cell, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["w_hr"])
    cache = F.forward(*args, backend="native")[3] if phase == "backward" else None
    stamps, stop = [], threading.Event()

    def ticker():  # pure Python: runs only while it holds the GIL
        while not stop.is_set():
            stamps.append(time.perf_counter())

    t = threading.Thread(target=ticker)
    t.start()
    try:
        time.sleep(0.02)
        begin = time.perf_counter()
        if phase == "forward":
            F.forward(*args, backend="native")
        else:
            F.backward(cache, None, None, None)
        end = time.perf_counter()
    finally:
        stop.set()
        t.join()
    # Had the call kept the GIL, the ticker could only run in the few microseconds around it (a
    # switch interval at most at each end); well inside the call it would record nothing.
    margin = min(0.05, (end - begin) / 4)
    inside = [s for s in stamps if begin + margin < s < end - margin]
    assert len(inside) > 100, (len(inside), end - begin)


def test_two_native_calls_overlap_in_time(restore_threads):
    # Thread A runs one long native call; thread B meanwhile runs short native calls back to back.
    # At least one of B's calls must begin and end well inside A's call: B's Python code (the time
    # stamps) and its own native call ran while A's kernel was in flight. Were the GIL kept through a
    # kernel, nothing of B could run inside A's call but for a switch interval at either end.
    from fastrnn import functional as F

    fastrnn.set_num_threads(1)
    cell, p, _ = _long_problem()
    args = (cell, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["w_hr"])
    small = make_variant("gru", 20, 2, 8, 16, np.float32)
    small_args = (small[0],) + tuple(
        small[1][k] for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr")
    )
    a_window, b_calls, a_done = [], [], threading.Event()

    def body(i):
        if i == 0:
            begin = time.perf_counter()
            F.forward(*args, training=False, backend="native")
            a_window.append((begin, time.perf_counter()))
            a_done.set()
        else:
            while not a_done.is_set():
                begin = time.perf_counter()
                F.forward(*small_args, training=False, backend="native")
                b_calls.append((begin, time.perf_counter()))

    in_threads(2, body)
    ((a0, a1),) = a_window
    margin = min(0.05, (a1 - a0) / 4)
    inside = [(b0, b1) for b0, b1 in b_calls if a0 + margin < b0 and b1 < a1 - margin]
    assert inside, (a1 - a0, len(b_calls))


# -------------------------------------------------------------------------------------------------
# Determinism


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_bitwise_identical_runs_and_thread_counts(variant, dtype, split_everything):
    # Big enough for the hoisted products to be split too (T*B = 600 rows).
    T, B, I, H = 40, 15, 33, 70
    cell, p = make_variant(variant, T, B, I, H, dtype, seed=21)
    lengths = make_lengths(T, B, seed=3)
    up = make_upstream(p, T)
    results = {}
    for n in (1, 2, 3, 1, 2):
        fastrnn.set_num_threads(n)
        for reverse in (False, True):
            r = run(p, cell, "native", lengths, reverse, up)
            if reverse in results:
                assert_identical(results[reverse], r, f"threads={n} reverse={reverse}")
            else:
                results[reverse] = r


def test_bitwise_identical_layers_for_any_thread_count(split_everything):
    x = np.random.default_rng(1).standard_normal((12, 5, 9))
    lengths = np.array([12, 4, 9, 1, 12])
    first = None
    for n in (1, 2, 3):
        fastrnn.set_num_threads(n)
        layer = fastrnn.LSTM(9, 24, num_layers=2, bidirectional=True, proj_size=7, dtype="float64", seed=4)
        y, (h, c) = layer(x, lengths=lengths)
        dx, (dh, dc) = layer.backward(np.cos(y))
        out = [y, h, c, dx, dh, dc] + [layer.grads[k] for k in sorted(layer.grads)]
        if first is None:
            first = out
        for a, b in zip(first, out):
            np.testing.assert_array_equal(a, b)


def test_thread_count_changes_during_calls(split_everything):
    # One thread keeps changing the team size while others compute: results stay bitwise the
    # serial ones (they do not depend on the thread count), and nothing deadlocks.
    cell, p = make_variant("lstm_proj", 12, 6, 10, 40, np.float64, seed=8)
    lengths = make_lengths(12, 6)
    up = make_upstream(p, 12)
    fastrnn.set_num_threads(1)
    expected = run(p, cell, "native", lengths, False, up)
    done = threading.Event()

    def body(i):
        if i == 0:
            k = 0
            while not done.is_set():
                fastrnn.set_num_threads(1 + k % 3)
                k += 1
                time.sleep(0.001)
            return None
        try:
            return [run(p, cell, "native", lengths, False, up) for _ in range(30)]
        finally:
            if i == 1:
                done.set()

    for per_thread in in_threads(4, body)[1:]:
        for r in per_thread:
            assert_identical(expected, r, "while resizing")


def wait_for_child(pid, what):
    """Waits up to 30 s for a forked child that reports through its exit code (0: ok)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung in {what}")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_its_own_thread_team(split_everything):
    # A forked child has only the forking thread: the team must not wait for workers that do not
    # exist there (a hang), and the child keeps the parent's thread count with workers of its own.
    fastrnn.set_num_threads(2)
    cell, p = make_variant("lstm", 5, 3, 4, 40, np.float64, seed=41)
    expected = run(p, cell, "native")
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        ok = False
        try:
            ok = fastrnn.get_num_threads() == 2 and all(
                np.array_equal(v, expected[k]) for k, v in run(p, cell, "native").items() if v is not None
            )
        finally:
            os._exit(0 if ok else 3)
    wait_for_child(pid, "a native call")


@pytest.mark.native
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_runs_bidirectional_layers_side_by_side(restore_threads):
    # The directions of a bidirectional layer run on a helper thread (2+ threads); a child forked
    # after the parent used it must start its own helper instead of waiting for the parent's.
    fastrnn.set_num_threads(2)
    layer = fastrnn.GRU(3, 8, bidirectional=True, dtype="float64", seed=0)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    expected, _ = layer(x)
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            y, _ = layer(x)
            layer.backward(np.ones_like(y))
            ok = np.array_equal(y, expected)
        finally:
            os._exit(0 if ok else 3)
    wait_for_child(pid, "a bidirectional layer")
