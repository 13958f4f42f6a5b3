"""Resources: no leak over many calls, caches freed when dropped, and the peak memory of
forward + backward within 1.2x of the formula in README ("Guarantees")."""

import ctypes
import gc
import pathlib
import subprocess
import sys
import threading
import time
import weakref

import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F

from helpers import GATES, forward_problem, make_problem, make_upstream, under_asan

# AddressSanitizer (.ci/sanitize) keeps freed memory in quarantine and adds shadow memory: resident
# sizes say nothing there.
pytestmark = [
    pytest.mark.native,
    pytest.mark.skipif(under_asan(), reason="memory sizes are meaningless under ASan"),
]

PAGE = 4096


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _malloc_trim():
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _lazily_freed():
    # Pages given back with MADV_FREE (the native cache's kept blocks, runtime/memory.cpp) stay
    # resident until the system needs them, and then it takes them without asking.
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("LazyFree:"):
                    return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


def settled_rss():
    """Resident size once freed heap memory is handed back (glibc keeps freed blocks below its
    mmap threshold, up to 32 MiB each, in the heap until trimmed), not counting lazily freed pages."""
    gc.collect()
    _malloc_trim()
    return rss() - _lazily_freed()


def _forward(p, cell, **kw):
    return forward_problem(p, cell, backend="native", **kw)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_ten_thousand_calls_leave_memory_flat(cell):
    p = make_problem(cell, 5, 3, 4, 8, P=3 if cell == "lstm" else None, dtype=np.float32)
    lengths = np.array([5, 2, 4])
    dy, dh, dc = make_upstream(p, 5)

    def calls(n):
        for i in range(n):
            y, h, c, cache = _forward(p, cell, lengths=lengths, reverse=bool(i & 1))
            F.backward(cache, dy, dh, dc)

    calls(1000)  # warm up: allocator pools, the thread team, numpy's caches
    before = settled_rss()
    calls(10_000)
    grown = settled_rss() - before
    # A leak of one small array per call would be >= 10000 * 64 bytes; allow allocator noise.
    assert grown < 2 << 20, f"resident memory grew by {grown / 2**20:.1f} MiB over 10000 calls"


def test_bad_calls_do_not_leak():
    from fastrnn import _native as N

    p = make_problem("lstm", 5, 3, 4, 8, dtype=np.float64)
    bad_h0 = np.zeros((3, 9))

    def calls(n):
        for _ in range(n):
            with pytest.raises(ValueError):
                N.forward(
                    "lstm", p["x"], bad_h0, p["c0"], p["w_ih"], p["w_hh"], None, None, None, None, False, True
                )
            with pytest.raises(TypeError):
                F.forward("lstm", p["x"].astype(np.float32), None, None, p["w_ih"], p["w_hh"], None, None)

    calls(500)
    before = settled_rss()
    calls(5000)
    assert settled_rss() - before < 2 << 20


def _big_lstm(T=400, B=32, I=64, H=256):
    # Saved buffers: T*B*(P + 4H + 2H) float32 = 400*32*1792*4 bytes ~ 92 MB (each > 32 MB, so glibc
    # gives them their own mappings and returns them on free: RSS shows it).
    return make_problem("lstm", T, B, I, H, dtype=np.float32)


def test_cache_is_freed_when_dropped():
    p = _big_lstm()
    base = settled_rss()
    y, h, c, cache = _forward(p, "lstm")
    native_cache = cache._saved
    refs = weakref.ref(cache), weakref.ref(native_cache)
    held = settled_rss() - base
    assert held > 60 << 20
    del cache, native_cache
    assert refs[0]() is None and refs[1]() is None
    assert settled_rss() - base < held - (60 << 20)
    del y, h, c


def test_layer_cache_is_freed_and_replaced():
    x = np.random.default_rng(0).standard_normal((400, 32, 64)).astype(np.float32)
    base = settled_rss()
    layer = fastrnn.LSTM(64, 256, seed=0)
    layer(x)
    one = settled_rss() - base
    for _ in range(5):  # each forward replaces the previous cache: no growth
        layer(x)
    assert settled_rss() - base < one + (40 << 20)
    layer.eval()
    layer(x)  # an eval forward drops the training cache
    assert settled_rss() - base < one - (60 << 20)
    layer.train()
    layer(x)
    del layer
    assert settled_rss() - base < one - (60 << 20)


def peak_formula_bytes(cell, T, B, I, H, P, itemsize, lengths=False):
    """README's formula: the most that forward + backward hold at once, beyond their inputs
    (x, weights, h0/c0, dy): see "Guarantees"."""
    G = GATES[cell]
    saved = P + G * H + (2 * H if cell == "lstm" else 0) + (H if cell == "gru" or P != H else 0)
    saved += I if lengths else 0
    forward_peak = P + saved + G * H  # y + cache + input projection
    backward_peak = P + saved + I + G * H * (2 if cell == "gru" else 1) + (P if P != H else 0)
    return itemsize * T * B * max(forward_peak, backward_peak)


def checkpointed_peak_formula_bytes(cell, T, B, I, H, P, itemsize, k):
    """README's formula with checkpoint_every = k: y, dx and the segments' initial states over all
    T steps, everything else for one segment's rows (k*B, widened by up to two micro-tiles)."""
    G = GATES[cell]
    rows = min(k, T) * B + 16
    states = -(-T // k) * B * (P + (H if cell == "lstm" else 0))
    segment = P + G * H + (2 * H if cell == "lstm" else 0) + (H if cell == "gru" or P != H else 0)
    forward_peak = T * B * P + states + rows * G * H
    backward_peak = (
        T * B * (P + I)
        + states
        + rows * (segment + G * H * (3 if cell == "gru" else 2) + I + (P if P != H else 0))
    )
    return itemsize * max(forward_peak, backward_peak)


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("cell,proj", [("lstm", False), ("lstm", True), ("gru", False), ("rnn_tanh", False)])
def test_peak_memory_within_formula(cell, proj):
    # Measured in a fresh interpreter: in this one, what earlier tests allocated and freed moves
    # glibc's mmap threshold, and freed-but-resident heap pages would count as part of the peak.
    T, B, I, H = 300, 32, 64, 256
    P = 128 if proj else None
    formula = peak_formula_bytes(cell, T, B, I, H, P or H, 4)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from test_reliability_resources import _peak_in_child; "
        "print(_peak_in_child(sys.argv[2], int(sys.argv[3])))"
    )
    # Weight gradients, packed weights and per-step buffers are small next to the T*B terms. The
    # measurement sees the whole process, so a stray allocation elsewhere gets a second chance.
    peaks = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code, str(pathlib.Path(__file__).parent), cell, str(P or 0)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode == 5:
            pytest.skip("cannot reset the peak RSS (/proc/self/clear_refs)")
        assert out.returncode == 0, out.stderr
        peaks.append(int(out.stdout.split()[-1]))
        if peaks[-1] <= 1.2 * formula + (8 << 20):
            return
    raise AssertionError(
        f"peak {[round(x / 2**20, 1) for x in peaks]} MiB > 1.2 x formula {formula / 2**20:.1f} MiB + 8 MiB"
    )


def _peak_in_child(cell, P, every=0, T=300, B=32, I=64, H=256):
    """Run in a fresh interpreter by the tests here: the peak bytes of one forward + backward."""
    p = make_problem(cell, T, B, I, H, P=P or None, dtype=np.float32)
    dy, dh, dc = make_upstream(p, T)
    if not _reset_peak():
        sys.exit(5)
    return _measure_peak(p, cell, dy, dh, dc, checkpoint_every=every or None)


@pytest.mark.parametrize(
    "cell,proj,every", [("lstm", False, 35), ("lstm", True, 35), ("gru", False, 35), ("rnn_tanh", False, 35)]
)
def test_checkpointed_peak_memory_within_formula(cell, proj, every):
    # T = 1200 steps, k = 35 = "sqrt": y and dx over all steps, the rest for one segment.
    T, B, I, H = 1200, 32, 32, 128
    P = 64 if proj else None
    formula = checkpointed_peak_formula_bytes(cell, T, B, I, H, P or H, 4, every)
    full = peak_formula_bytes(cell, T, B, I, H, P or H, 4)
    assert formula < full / 2  # what checkpointing is for (a quarter for LSTM and GRU)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from test_reliability_resources import _peak_in_child; "
        "print(_peak_in_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), 1200, 32, 32, 128))"
    )
    peaks = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code, str(pathlib.Path(__file__).parent), cell, str(P or 0), str(every)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode == 5:
            pytest.skip("cannot reset the peak RSS (/proc/self/clear_refs)")
        assert out.returncode == 0, out.stderr
        peaks.append(int(out.stdout.split()[-1]))
        if peaks[-1] <= 1.2 * formula + (8 << 20):
            return
    raise AssertionError(
        f"peak {[round(x / 2**20, 1) for x in peaks]} MiB > 1.2 x formula {formula / 2**20:.1f} MiB + 8 MiB"
    )


def _measure_peak(p, cell, dy, dh, dc, **kw):
    settled_rss()
    _reset_peak()
    base = rss()
    # VmHWM can miss a peak that was freed without an unmap; a sampler thread (the GIL is released
    # during the kernels) watches the resident size too.
    samples, stop = [], threading.Event()
    sampler = threading.Thread(
        target=lambda: [samples.append(rss()) or time.sleep(0.0005) for _ in iter(stop.is_set, True)]
    )
    sampler.start()
    try:
        y, h, c, cache = _forward(p, cell, **kw)
        grads = F.backward(cache, dy, dh, dc)
    finally:
        stop.set()
        sampler.join()
    peak = max([_peak()] + samples) - base
    del y, h, c, cache, grads
    return peak


def test_blocks_kept_for_the_next_call_stay_bounded():
    # The native allocator keeps released blocks of 64 KiB - 64 MiB for the next call, at most
    # 64 MiB of them (those from 4 MiB lazily freed), and the kernels' scratch blocks up to 64 MiB,
    # at most 128 MiB of them (runtime/memory.cpp): calls on many sizes must not make it hold more.
    rng = np.random.default_rng(0)
    w = {
        k: rng.standard_normal(s).astype(np.float32) * 0.1
        for k, s in (("w_ih", (512, 32)), ("w_hh", (512, 128)))
    }

    def call(T, B):
        x = rng.standard_normal((T, B, 32)).astype(np.float32)
        y, h, c, cache = F.forward("lstm", x, None, None, w["w_ih"], w["w_hh"], None, None, backend="native")
        F.backward(cache, np.ones_like(y), None, None)

    call(400, 8)
    before = settled_rss()
    for T in range(20, 400, 3):
        call(T, 1 + T % 16)
    grown = settled_rss() - before
    assert grown < (64 + 128 + 8) << 20, f"resident memory grew by {grown / 2**20:.1f} MiB"
