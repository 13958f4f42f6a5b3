"""The packed products' block sizes come from the detected caches (csrc/fastrnn/runtime/cache.cpp),
or from FASTRNN_CACHE_SIZES: whatever they are, results agree with the numpy reference and are
bitwise identical across thread counts. Each case runs in a fresh interpreter, because the sizes
are fixed at the first product of a process."""

import json
import os
import subprocess
import sys

import pytest

from helpers import NATIVE, NATIVE_REASON

pytestmark = pytest.mark.skipif(not NATIVE, reason=NATIVE_REASON)

_PROBE = r"""
import json, sys
import numpy as np
from fastrnn import _native, functional as F
from fastrnn._backend import set_num_threads
out = {"cache": _native.cache_sizes(), "paths": {}}
if sys.argv[1:] == ["cache"]:
    print(json.dumps(out))
    sys.exit(0)
rng = np.random.default_rng(0)
T, B, I, H = 7, 13, 700, 37  # I deeper than any kc: the input product runs several k blocks
args = ("lstm", rng.standard_normal((T, B, I)), 0.5 * rng.standard_normal((B, H)),
        0.5 * rng.standard_normal((B, H)), 0.05 * rng.standard_normal((4 * H, I)),
        0.1 * rng.standard_normal((4 * H, H)), rng.standard_normal(4 * H), rng.standard_normal(4 * H))
dy, dh = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
def both(backend, dtype):
    a = [None if v is None or isinstance(v, str) else v.astype(dtype) for v in args]
    a[0] = "lstm"
    y, h, c, cache = F.forward(*a, training=True, backend=backend)
    g = F.backward(cache, dy.astype(dtype), dh.astype(dtype), None)
    return [y, h, c] + [v for v in g[:7] if v is not None]
_native.set_parallel_grain(0.0)  # split every product that can be split
for path in _native.compiled_paths():
    _native.set_cpu_path(path)
    res = {"blocks": _native.gemm_blocks("float32")}
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 2e-4)):
        ref = both("numpy", np.float64)
        runs = []
        for n in (1, 2, 3):
            set_num_threads(n)
            runs.append(both("native", dtype))
        worst = max(float(np.max(np.abs(g - r)) / np.max(np.abs(r))) for g, r in zip(runs[0], ref))
        same = all(a.tobytes() == b.tobytes() for other in runs[1:] for a, b in zip(runs[0], other))
        res[np.dtype(dtype).name] = {"worst": worst, "tol": tol, "bitwise": same}
    out["paths"][path] = res
print(json.dumps(out))
"""


def _probe(cache_sizes=None, *argv):
    env = dict(os.environ)
    env.pop("FASTRNN_CACHE_SIZES", None)
    if cache_sizes is not None:
        env["FASTRNN_CACHE_SIZES"] = cache_sizes
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


# The detected caches, a small core (Zen 3-like: 32 KiB L1d, 512 KiB L2, 4 MiB of L3 per core) and
# a tiny one, whose blocks are the smallest the sizes allow (kc 128, mc one tile, one panel).
@pytest.mark.parametrize("cache_sizes", [None, "32K,512K,4M", "1K,1K,1K"])
def test_any_blocking_agrees_and_is_bitwise_identical_across_threads(cache_sizes):
    out = _probe(cache_sizes)
    if cache_sizes is not None:
        assert out["cache"]["source"] == "FASTRNN_CACHE_SIZES"
    for path, res in out["paths"].items():
        assert 128 <= res["blocks"]["kc"] <= 512 and res["blocks"]["mc"] >= 1, path
        for dtype in ("float64", "float32"):
            assert res[dtype]["worst"] <= res[dtype]["tol"], (path, dtype, res)
            assert res[dtype]["bitwise"], (path, dtype, "differs across thread counts")


def test_an_override_is_read_in_bytes_and_suffixes():
    cache = _probe("48K,1048576,2M", "cache")["cache"]
    assert (cache["l1d"], cache["l2"], cache["l3_per_core"]) == (48 << 10, 1 << 20, 2 << 20)


def test_the_blocks_follow_the_caches():
    small, large = _probe("32K,512K,4M"), _probe("64K,2M,32M")
    for path in small["paths"]:
        s, b = small["paths"][path]["blocks"], large["paths"][path]["blocks"]
        assert s["kc"] <= b["kc"] and s["mc"] <= b["mc"] and s["nc_panels"] < b["nc_panels"], path


@pytest.mark.parametrize("text", ["", "48K", "48K,1M", "48K,1M,x", "1M,48K,32M", "0,1M,32M", "48K,1M,32M,"])
def test_a_malformed_override_falls_back_to_detection(text):
    assert _probe(text, "cache")["cache"]["source"] != "FASTRNN_CACHE_SIZES"
