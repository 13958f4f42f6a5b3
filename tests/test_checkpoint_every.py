"""checkpoint_every: a training forward that keeps the state every k steps and a backward that
recomputes each segment give bitwise the same outputs and gradients as keeping everything, on each
backend, for every cell and option and thread count; bad settings are refused."""

import math

import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F

from helpers import (
    CELL_VARIANTS,
    GRADS,
    NATIVE,
    NATIVE_REASON,
    OUTPUTS,
    forward_problem,
    make_lengths,
    make_upstream,
    make_variant,
)


def _ks(T):
    return sorted({k for k in (1, 2, 3, T - 1, T, T + 5) if k >= 1}) + ["sqrt"]


def _run(p, cell, backend, every, lengths, reverse, upstream):
    y, h_n, c_n, cache = forward_problem(
        p, cell, lengths=lengths, reverse=reverse, training=True, checkpoint_every=every, backend=backend
    )
    grads = F.backward(cache, *upstream)
    out = dict(zip(OUTPUTS, (y, h_n, c_n)), **dict(zip(GRADS, grads)))
    out["dh_norms"] = cache.dh_norms
    return out, cache


def _assert_identical(actual, expected, what):
    for name, e in expected.items():
        a = actual[name]
        if e is None:
            assert a is None, f"{what}: {name}"
        else:
            assert a.dtype == e.dtype and a.shape == e.shape, f"{what}: {name}"
            # Bitwise, NaN for NaN: the same operations in the same order.
            assert np.array_equal(a.view(np.uint8), e.view(np.uint8)), (
                f"{what}: {name} differs (max |diff| {np.max(np.abs(a - e))})"
            )


def _check_all_ks(backend, variant, dtype, with_lengths, reverse, T, B, I, H):
    cell, p = make_variant(variant, T, B, I, H, dtype=dtype)
    lengths = make_lengths(T, B) if with_lengths else None
    upstream = make_upstream(p, T)
    full, _ = _run(p, cell, backend, None, lengths, reverse, upstream)
    for k in _ks(T):
        got, cache = _run(p, cell, backend, k, lengths, reverse, upstream)
        assert cache.every == (math.ceil(math.sqrt(T)) if k == "sqrt" else min(k, T))
        _assert_identical(got, full, f"{backend} {variant} {np.dtype(dtype)} k={k}")


# Sizes that exercise the native kernels' blocking: B not a multiple of the micro-kernel's rows
# (6 or 8), more rows (880) than one block of the weight-gradient reductions (kc rows, at most
# 512; with lengths too), and H wide enough for 2 threads to split every step.
NATIVE_SIZES = dict(T=80, B=11, I=7, H=40)


@pytest.mark.native
@pytest.mark.skipif(not NATIVE, reason=NATIVE_REASON)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_native_bitwise_identical(variant, dtype, with_lengths, reverse, threads):
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(threads)
    try:
        _check_all_ks("native", variant, dtype, with_lengths, reverse, **NATIVE_SIZES)
    finally:
        fastrnn.set_num_threads(before)


@pytest.mark.native
@pytest.mark.skipif(not NATIVE, reason=NATIVE_REASON)
@pytest.mark.parametrize(
    "with_lengths,reverse", [(False, False), (True, True)], ids=["full-fwd", "lengths-rev"]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
@pytest.mark.parametrize("path", ["avx512", "avx2", "portable"])
def test_native_bitwise_identical_on_every_cpu_path(path, variant, dtype, with_lengths, reverse):
    from fastrnn import _native

    if path not in _native.compiled_paths():
        pytest.skip(f"{path} is not compiled into this build")
    before = _native.active_path()
    try:
        _native.set_cpu_path(path)
    except ValueError:
        pytest.skip(f"this CPU cannot run the {path} path")
    try:
        _check_all_ks("native", variant, dtype, with_lengths, reverse, **NATIVE_SIZES)
    finally:
        _native.set_cpu_path(before)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_numpy_bitwise_identical(variant, dtype, with_lengths, reverse):
    _check_all_ks("numpy", variant, dtype, with_lengths, reverse, T=9, B=3, I=4, H=5)


@pytest.mark.native
@pytest.mark.skipif(not NATIVE, reason=NATIVE_REASON)
@pytest.mark.parametrize("T,B", [(1, 1), (2, 3), (4, 1), (5, 1), (13, 2)])
def test_native_small_calls(T, B):
    # Calls of a few rows take the kernels' unpacked path (T*B <= 4); one row per segment too.
    for variant in ("lstm_proj", "gru"):
        _check_all_ks("native", variant, np.float64, False, False, T, B, 3, 20)
        _check_all_ks("native", variant, np.float32, B > 1, True, T, B, 3, 20)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("native", marks=pytest.mark.native)])
def test_empty_segments_and_no_steps(backend):
    if backend == "native" and not NATIVE:
        pytest.skip(NATIVE_REASON)
    # Every sequence ends before T: the last segments have no rows at all. And T = 0.
    for variant, dtype in (("lstm_proj", np.float32), ("gru", np.float64)):
        for T, lengths in ((9, np.array([3, 1, 0])), (0, None)):
            cell, p = make_variant(variant, T, 3, 4, 20, dtype=dtype)
            upstream = make_upstream(p, T)
            full, _ = _run(p, cell, backend, None, lengths, False, upstream)
            for k in (1, 2, 4, "sqrt"):
                for reverse in (False, True):
                    ref = full if not reverse else _run(p, cell, backend, None, lengths, True, upstream)[0]
                    got, _ = _run(p, cell, backend, k, lengths, reverse, upstream)
                    _assert_identical(got, ref, f"{backend} {variant} T={T} k={k} reverse={reverse}")


def test_sqrt_is_the_ceiling_of_the_square_root():
    for T in (0, 1, 2, 3, 4, 5, 99, 100, 101, 20000, 10**6, 10**6 + 1):
        assert F.steps_per_checkpoint("sqrt", T) == max(1, math.ceil(math.sqrt(T)))
    assert F.steps_per_checkpoint(None, 50) == 0
    assert F.steps_per_checkpoint(7, 3) == 3 and F.steps_per_checkpoint(10**30, 5) == 5


def test_numpy_cache_keeps_only_the_segment_states():
    cell, p = make_variant("lstm", 10, 2, 3, 4)
    _, cache = _run(p, cell, "numpy", 4, None, False, make_upstream(p, 10))
    assert cache._saved["steps"] == [] and len(cache._saved["boundaries"]) == 3


@pytest.mark.parametrize("backend", ["numpy", pytest.param("native", marks=pytest.mark.native)])
def test_layers_bidirectional_stack(backend):
    if backend == "native" and not NATIVE:
        pytest.skip(NATIVE_REASON)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 17, 6))  # batch_first (B, T, I)
    lengths = np.array([17, 5, 11])
    for cls, kw in (
        (fastrnn.LSTM, {"proj_size": 3}),
        (fastrnn.GRU, {}),
        (fastrnn.RNN, {"nonlinearity": "relu"}),
    ):
        results = []
        for every in (None, 4, "sqrt"):
            layer = cls(
                6,
                8,
                num_layers=2,
                bidirectional=True,
                batch_first=True,
                dtype="float64",
                seed=1,
                backend=backend,
                **kw,
            )
            layer.checkpoint_every = every
            y, _ = layer(x, lengths=lengths)
            dx, _ = layer.backward(np.cos(y))
            grads = {name: g.copy() for name, g in layer.grads.items()}
            results.append((y, dx, grads, layer.dh_norms))
        for y, dx, grads, norms in results[1:]:
            y0, dx0, grads0, norms0 = results[0]
            assert np.array_equal(y, y0) and np.array_equal(dx, dx0) and np.array_equal(norms, norms0)
            for name in grads0:
                assert np.array_equal(grads[name], grads0[name]), name


def test_layer_argument_and_attribute():
    layer = fastrnn.LSTM(3, 4, checkpoint_every="sqrt")
    assert layer.checkpoint_every == "sqrt" and "checkpoint_every='sqrt'" in repr(layer)
    assert fastrnn.GRU(3, 4).checkpoint_every is None
    assert fastrnn.RNN(3, 4, checkpoint_every=5).checkpoint_every == 5


@pytest.mark.parametrize(
    "bad,error",
    [(0, ValueError), (-1, ValueError), ("cube", ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_bad_values_are_refused(bad, error):
    cell, p = make_variant("gru", 4, 2, 3, 5)
    args = [p[k] for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr")]
    for training in (True, False):
        with pytest.raises(error, match="checkpoint_every"):
            F.forward(cell, *args, training=training, checkpoint_every=bad)
    with pytest.raises(error, match="checkpoint_every"):
        fastrnn.GRU(3, 5, checkpoint_every=bad)
    layer = fastrnn.GRU(3, 5)
    layer.checkpoint_every = bad
    with pytest.raises(error, match="checkpoint_every"):
        layer(p["x"].astype(np.float32))


@pytest.mark.native
@pytest.mark.skipif(not NATIVE, reason=NATIVE_REASON)
def test_native_binding_refuses_negative():
    from fastrnn import _native

    cell, p = make_variant("rnn_tanh", 4, 2, 3, 5)
    args = [p[k] for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr")]
    with pytest.raises(ValueError, match="checkpoint_every"):
        _native.forward(cell, *args, None, False, True, checkpoint_every=-2)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("native", marks=pytest.mark.native)])
@pytest.mark.parametrize("variant", ["peepholes", "reset_before"])
def test_refused_with_cell_variants(backend, variant):
    if backend == "native" and not NATIVE:
        pytest.skip(NATIVE_REASON)
    # Not yet bitwise natively (their extra weight gradients are not reduced segment by segment):
    # refused on both backends, in the layers at construction, and in the native binding itself.
    rng = np.random.default_rng(0)
    T, B, I, H = 4, 2, 3, 5
    cell = "lstm" if variant == "peepholes" else "gru"
    G = 4 if cell == "lstm" else 3
    x = rng.standard_normal((T, B, I))
    w_ih, w_hh = rng.standard_normal((G * H, I)), rng.standard_normal((G * H, H))
    extra = {"w_ph": rng.standard_normal(3 * H)} if cell == "lstm" else {"reset_after": False}
    h0, c0 = np.zeros((B, H)), (np.zeros((B, H)) if cell == "lstm" else None)
    for every in (2, "sqrt"):
        with pytest.raises(ValueError, match="checkpoint_every is not supported"):
            F.forward(
                cell, x, h0, c0, w_ih, w_hh, None, None, checkpoint_every=every, backend=backend, **extra
            )
    y, *_ = F.forward(cell, x, h0, c0, w_ih, w_hh, None, None, backend=backend, **extra)  # without: fine
    assert np.all(np.isfinite(y))
    layer_options = {"peepholes": True} if cell == "lstm" else {"reset_after": False}
    with pytest.raises(ValueError, match="checkpoint_every is not supported"):
        (fastrnn.LSTM if cell == "lstm" else fastrnn.GRU)(I, H, checkpoint_every=3, **layer_options)
    if backend == "native":
        from fastrnn import _native

        with pytest.raises(ValueError, match="checkpoint_every is not supported"):
            _native.forward(
                cell, x, h0, c0, w_ih, w_hh, None, None, None, None, False, True, checkpoint_every=2, **extra
            )


@pytest.mark.parametrize(
    "make",
    [
        lambda: fastrnn.LSTM(3, 4, num_layers=2, checkpoint_every=5),
        lambda: fastrnn.GRU(3, 4, checkpoint_every="sqrt"),
        lambda: fastrnn.RNN(3, 4, nonlinearity="relu", checkpoint_every=1),
    ],
    ids=["lstm", "gru", "rnn"],
)
def test_checkpoint_file_keeps_checkpoint_every(tmp_path, make):
    layer = make()
    fastrnn.save_checkpoint(tmp_path / "m.npz", layer)
    loaded = fastrnn.load_checkpoint(tmp_path / "m.npz").model
    assert loaded.checkpoint_every == layer.checkpoint_every
    x = np.random.default_rng(0).standard_normal((9, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x)[0], layer(x)[0])


def test_checkpoint_file_checkpoint_every_absent_unless_set_and_checked(tmp_path):
    import json

    from fastrnn import CheckpointError
    from fastrnn.checkpoint import HEADER_KEY

    path = tmp_path / "m.npz"
    fastrnn.save_checkpoint(path, fastrnn.LSTM(3, 4))
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    assert "checkpoint_every" not in header["model"]["args"]  # readable by the versions before it
    assert fastrnn.load_checkpoint(path).model.checkpoint_every is None
    for bad in (0, -3, "cbrt", 2.5, True):
        header["model"]["args"]["checkpoint_every"] = bad
        arrays[HEADER_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        with pytest.raises(CheckpointError, match="checkpoint_every"):
            fastrnn.load_checkpoint(path)
    layer = fastrnn.GRU(3, 4)
    layer.checkpoint_every = 0  # set by hand, invalid: refused at save, naming it
    with pytest.raises(ValueError, match="checkpoint_every"):
        fastrnn.save_checkpoint(tmp_path / "n.npz", layer)
