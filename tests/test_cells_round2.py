"""The second round's cell variants: the original (reset-before) GRU and LSTM peepholes.

PyTorch has neither, so there is no torch reference: the NumPy reference is checked against finite
differences (float64) and, where onnxruntime is installed, against ONNX Runtime's GRU
(linear_before_reset=0) and LSTM (with P); the native kernels against the reference (dtypes,
lengths, reverse, bidirectional stacks, thread counts, CPU paths) and against themselves (bitwise
across thread counts).
"""

import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F

from helpers import (
    DTYPES,
    GRADS,
    INPUTS,
    NATIVE,
    assert_close,
    assert_results_close,
    forward_problem,
    make_lengths,
    make_problem,
    make_upstream,
    run,
)

# variant -> (cell, projection, peepholes, reset_after)
VARIANTS = {
    "gru_reset_before": ("gru", False, False, False),
    "lstm_peepholes": ("lstm", False, True, True),
    "lstm_peepholes_proj": ("lstm", True, True, True),
}
NAMES = list(VARIANTS)

# variant -> the layer that runs it
LAYERS = {
    "gru_reset_before": lambda **kw: fastrnn.GRU(reset_after=False, **kw),
    "lstm_peepholes": lambda **kw: fastrnn.LSTM(peepholes=True, **kw),
    "lstm_peepholes_proj": lambda **kw: fastrnn.LSTM(peepholes=True, proj_size=2, **kw),
}


def make(variant, T, B, I, H, dtype=np.float64, bias=True, seed=0):
    """(cell, problem, reset_after) for a VARIANTS key; the projection has P = max(1, H // 2)."""
    cell, proj, peepholes, reset_after = VARIANTS[variant]
    P = max(1, H // 2) if proj else None
    return cell, make_problem(cell, T, B, I, H, P, dtype, bias, seed, peepholes), reset_after


def forward(p, cell, reset_after, backend, lengths=None, reverse=False, training=False):
    return forward_problem(
        p,
        cell,
        lengths=lengths,
        reverse=reverse,
        training=training,
        backend=backend,
        reset_after=reset_after,
    )


# -------------------------------------------------------------------------------------------------
# The reference: finite differences and independent implementations


def _loss(p, cell, reset_after, lengths, reverse, up):
    y, h_n, c_n, _ = forward(p, cell, reset_after, "numpy", lengths, reverse)
    dy, dh_n, dc_n = up
    total = np.sum(y * dy) + np.sum(h_n * dh_n)
    return total if dc_n is None else total + np.sum(c_n * dc_n)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("variant", NAMES)
def test_reference_backward_matches_finite_differences(variant, with_lengths, reverse, bias):
    T, B, I, H = 3, 3, 3, 2
    cell, p, reset_after = make(variant, T, B, I, H, np.float64, bias, seed=11)
    lengths = make_lengths(T, B) if with_lengths else None
    up = make_upstream(p, T, seed=12)
    got = run(p, cell, "numpy", lengths, reverse, up, reset_after)
    checked = 0
    for name, gname in zip(INPUTS, GRADS):
        if p[name] is None:
            assert got[gname] is None, gname
            continue
        arr, numeric, eps = p[name], np.zeros_like(p[name]), 1e-6
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            plus = _loss(p, cell, reset_after, lengths, reverse, up)
            arr[idx] = old - eps
            minus = _loss(p, cell, reset_after, lengths, reverse, up)
            arr[idx] = old
            numeric[idx] = (plus - minus) / (2 * eps)
        err = np.abs(got[gname] - numeric)
        assert np.all(err <= 1e-7 + 1e-6 * (np.abs(numeric).max() + np.abs(numeric))), (gname, err.max())
        checked += 1
    # x, h0, w_ih, w_hh; c0 and w_ph (lstm); the biases; w_hr (projection)
    assert checked == 4 + 2 * (cell == "lstm") + 2 * bias + VARIANTS[variant][1]


def _reset_before_gru_by_hand(p):
    """The original GRU written out unit by unit (float64 loops), for one direction, no lengths."""
    x, h = p["x"], p["h0"].copy()
    T, B, _ = x.shape
    H = h.shape[1]
    W, R, bw, br = p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"]
    ys = np.zeros((T, B, H))
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    for t in range(T):
        new = np.zeros_like(h)
        for b in range(B):
            r = [sig(W[j] @ x[t, b] + bw[j] + R[j] @ h[b] + br[j]) for j in range(H)]
            z = [sig(W[H + j] @ x[t, b] + bw[H + j] + R[H + j] @ h[b] + br[H + j]) for j in range(H)]
            rh = np.array(r) * h[b]
            for j in range(H):
                n = np.tanh(W[2 * H + j] @ x[t, b] + bw[2 * H + j] + R[2 * H + j] @ rh + br[2 * H + j])
                new[b, j] = (1 - z[j]) * n + z[j] * h[b, j]
        h = new
        ys[t] = h
    return ys


def test_reset_before_gru_matches_its_equations_written_out():
    cell, p, reset_after = make("gru_reset_before", 4, 3, 5, 4, seed=3)
    y, *_ = forward(p, cell, reset_after, "numpy")
    np.testing.assert_allclose(y, _reset_before_gru_by_hand(p), rtol=1e-12, atol=1e-12)


def test_variants_change_the_numbers_and_reduce_to_the_plain_cells():
    # The flags are not ignored: reset-before differs from reset-after; zero peepholes are the
    # plain LSTM exactly (both backends).
    cell, p, _ = make("gru_reset_before", 5, 3, 4, 6, seed=4)
    before, after = forward(p, cell, False, "numpy")[0], forward(p, cell, True, "numpy")[0]
    assert np.abs(before - after).max() > 1e-3
    cell, p, _ = make("lstm_peepholes", 5, 3, 4, 6, seed=5)
    assert (
        np.abs(forward(p, cell, True, "numpy")[0] - forward(dict(p, w_ph=None), cell, True, "numpy")[0]).max()
        > 1e-3
    )
    for backend in ["numpy"] + (["native"] if NATIVE else []):
        zero = forward(dict(p, w_ph=np.zeros_like(p["w_ph"])), cell, True, backend)
        plain = forward(dict(p, w_ph=None), cell, True, backend)
        for a, b in zip(zero[:3], plain[:3]):
            np.testing.assert_array_equal(a, b)


def _onnx_run(kind, attrs, x, inputs):
    """One ONNX RNN node (direction forward, float32) run by ONNX Runtime. ``inputs``: (name,
    array) after X in the node's input order, array None for an omitted optional input. Returns Y
    (T, 1, B, H)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node(kind, ["X"] + [n if a is not None else "" for n, a in inputs], ["Y"], **attrs)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in inputs if a is not None]
    x = x.astype(np.float32)
    graph = helper.make_graph(
        [node],
        "one_node",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [
            helper.make_tensor_value_info(
                "Y", TensorProto.FLOAT, [x.shape[0], 1, x.shape[1], attrs["hidden_size"]]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})[0]


def _gates(a, H, order):
    """a's gate blocks (of H rows) taken in ``order``, with ONNX's leading direction axis."""
    return np.concatenate([a[g * H : (g + 1) * H] for g in order])[None]


def test_reset_before_gru_matches_onnx_runtime():
    H = 4
    cell, p, _ = make("gru_reset_before", 6, 3, 5, H, seed=6)
    zrh = (1, 0, 2)  # ONNX's gate order z, r, h from fastrnn's r, z, n
    inputs = [
        ("W", _gates(p["w_ih"], H, zrh)),
        ("R", _gates(p["w_hh"], H, zrh)),
        ("B", np.concatenate([_gates(p["b_ih"], H, zrh), _gates(p["b_hh"], H, zrh)], axis=1)),
        ("sequence_lens", None),
        ("initial_h", p["h0"][None]),
    ]
    y_onnx = _onnx_run("GRU", {"hidden_size": H, "linear_before_reset": 0}, p["x"], inputs)
    y, *_ = forward(p, cell, False, "numpy")
    np.testing.assert_allclose(y, y_onnx[:, 0], rtol=1e-5, atol=1e-5)


def test_peephole_lstm_matches_onnx_runtime():
    H = 4
    cell, p, _ = make("lstm_peepholes", 6, 3, 5, H, seed=7)
    iofc = (0, 3, 1, 2)  # ONNX's gate order i, o, f, c from fastrnn's i, f, g, o
    inputs = [
        ("W", _gates(p["w_ih"], H, iofc)),
        ("R", _gates(p["w_hh"], H, iofc)),
        ("B", np.concatenate([_gates(p["b_ih"], H, iofc), _gates(p["b_hh"], H, iofc)], axis=1)),
        ("sequence_lens", None),
        ("initial_h", p["h0"][None]),
        ("initial_c", p["c0"][None]),
        ("P", _gates(p["w_ph"], H, (0, 2, 1))),  # ONNX's P is (i, o, f), fastrnn's (i, f, o)
    ]
    y_onnx = _onnx_run("LSTM", {"hidden_size": H}, p["x"], inputs)
    y, *_ = forward(p, cell, True, "numpy")
    np.testing.assert_allclose(y, y_onnx[:, 0], rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------------------------------
# The native kernels against the reference, and against themselves


# (T, B, I, H): partial panels; many sequences; T*B <= 4 (the unpacked products of short calls)
SHAPES = {"small": (5, 3, 7, 6), "edges": (4, 13, 17, 37), "one_row": (1, 1, 3, 5), "four_rows": (2, 2, 3, 9)}


@pytest.mark.native
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", NAMES)
def test_native_matches_the_reference(variant, dtype, shape, bias):
    T, B, I, H = SHAPES[shape]
    cell, p, reset_after = make(variant, T, B, I, H, dtype, bias, seed=21)
    up = make_upstream(p, T)
    for lengths in (None, make_lengths(T, B)):
        for reverse in (False, True):
            expected = run(p, cell, "numpy", lengths, reverse, up, reset_after)
            assert_results_close(run(p, cell, "native", lengths, reverse, up, reset_after), expected)


def _with_threads(n, p, cell, lengths, reverse, up, reset_after):
    fastrnn.set_num_threads(n)
    return run(p, cell, "native", lengths, reverse, up, reset_after)


@pytest.mark.native
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", NAMES)
def test_threads_split_the_step_and_agree_bitwise(variant, dtype, with_lengths, split_everything):
    # Grain 0: every step is split over the team (H=37: 3 panels of 16 floats or 5 of 8 doubles,
    # the last one partial), so the reset-before GRU's extra barrier and product are exercised.
    T, B, I, H = 6, 5, 11, 37
    cell, p, reset_after = make(variant, T, B, I, H, dtype, seed=11)
    lengths = make_lengths(T, B) if with_lengths else None
    up = make_upstream(p, T)
    for reverse in (False, True):
        results = {n: _with_threads(n, p, cell, lengths, reverse, up, reset_after) for n in (1, 2, 3)}
        assert_results_close(results[2], run(p, cell, "numpy", lengths, reverse, up, reset_after))
        for n in (2, 3):
            for name, value in results[1].items():
                if value is not None:
                    np.testing.assert_array_equal(results[n][name], value, err_msg=f"{name}, {n} threads")


@pytest.mark.native
@pytest.mark.parametrize("variant", NAMES)
def test_steps_that_some_sequences_skip(variant, split_everything):
    # Active rows scattered and changing at every step, and the last steps with none at all.
    T, B, I, H = 8, 9, 5, 37
    cell, p, reset_after = make(variant, T, B, I, H, np.float64, seed=13)
    lengths = np.array([0, 6, 1, 5, 3, 6, 2, 0, 4])
    up = make_upstream(p, T)
    for reverse in (False, True):
        expected = run(p, cell, "numpy", lengths, reverse, up, reset_after)
        for n in (1, 3):
            assert_results_close(_with_threads(n, p, cell, lengths, reverse, up, reset_after), expected)


@pytest.fixture(params=["avx512", "avx2", "portable"])
def cpu_path(request):
    from fastrnn import _native

    if request.param not in _native.compiled_paths():
        pytest.skip(f"{request.param} is not compiled into this build")
    before = _native.active_path()
    try:
        _native.set_cpu_path(request.param)
    except ValueError:
        pytest.skip(f"this CPU cannot run the {request.param} path")
    yield request.param
    _native.set_cpu_path(before)


@pytest.mark.native
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", NAMES)
def test_every_cpu_path_matches_the_reference(cpu_path, variant, dtype):
    T, B, I, H = SHAPES["edges"]
    cell, p, reset_after = make(variant, T, B, I, H, dtype, seed=22)
    lengths = make_lengths(T, B)
    up = make_upstream(p, T)
    for reverse in (False, True):
        expected = run(p, cell, "numpy", lengths, reverse, up, reset_after)
        assert_results_close(run(p, cell, "native", lengths, reverse, up, reset_after), expected)


@pytest.mark.native
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("variant", NAMES)
def test_bidirectional_stack_native_matches_numpy(variant, threads, restore_threads):
    # Two layers, both directions (side by side on 2 threads), lengths, batch_first, dropout off.
    fastrnn.set_num_threads(threads)
    rng = np.random.default_rng(4)
    T, B = 7, 4
    x = rng.standard_normal((B, T, 5))
    lengths = np.array([7, 3, 0, 5])
    results = {}
    for backend in ("numpy", "native"):
        layer = LAYERS[variant](
            input_size=5,
            hidden_size=9,
            num_layers=2,
            bidirectional=True,
            batch_first=True,
            dtype="float64",
            seed=8,
        )
        layer.backend = backend
        y, state = layer(x, lengths=lengths)
        dx, _ = layer.backward(np.ones_like(y))
        results[backend] = (y, dx, layer.grads)
    (y0, dx0, g0), (y1, dx1, g1) = results["numpy"], results["native"]
    assert_close(y1, y0, "y")
    assert_close(dx1, dx0, "dx")
    for name in g0:
        assert_close(g1[name], g0[name], name)


# -------------------------------------------------------------------------------------------------
# Layers: flags, parameters, training, checkpoints, step-by-step generation


def test_peephole_parameters_are_named_shaped_and_initialised_like_the_others():
    H = 5
    lstm = fastrnn.LSTM(3, H, num_layers=2, bidirectional=True, peepholes=True, seed=1, dtype="float64")
    names = list(lstm.state_dict())
    for k in range(2):
        for suffix in ("", "_reverse"):
            name = f"weight_ph_l{k}{suffix}"
            assert lstm.state_dict()[name].shape == (3 * H,)
            # after the direction's other weights (PyTorch's order for those is unchanged)
            assert names.index(name) == names.index(f"bias_hh_l{k}{suffix}") + 1
    values = np.concatenate([v.ravel() for v in lstm.state_dict().values()])
    assert np.abs(values).max() <= 1 / np.sqrt(H)
    ph = lstm.state_dict()["weight_ph_l0"]
    assert len(np.unique(ph)) == ph.size  # drawn, not zeros
    plain = fastrnn.LSTM(3, H, num_layers=2, bidirectional=True, seed=1, dtype="float64")
    assert len(names) == len(plain.state_dict()) + 4
    assert lstm.grads.keys() == lstm.state_dict().keys()
    gru = fastrnn.GRU(3, H, reset_after=False, seed=1)
    assert gru.state_dict().keys() == fastrnn.GRU(3, H, seed=1).state_dict().keys()
    assert gru.reset_after is False and lstm.peepholes is True and plain.peepholes is False
    assert "reset_after=False" in repr(gru) and "peepholes=True" in repr(lstm)
    assert "peepholes" not in repr(plain) and "reset_after" not in repr(fastrnn.GRU(3, H))


def _layer_run(layer, x, dy, backend):
    layer.backend = backend
    layer.zero_grad()
    out, state = layer(x)
    layer.backward(dy)
    return out, state, {k: v.copy() for k, v in layer.grads.items()}


@pytest.mark.parametrize("variant", NAMES)
def test_layer_runs_the_functional_core_per_direction(variant):
    # Each direction of a bidirectional layer is one functional call with the layer's own weights
    # and variant; every weight, the peepholes included, gets a gradient.
    layer = LAYERS[variant](input_size=4, hidden_size=6, bidirectional=True, dtype="float64", seed=3)
    layer.backend = "numpy"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 4))
    y, _ = layer(x)
    layer.backward(rng.standard_normal(y.shape))
    assert all(np.abs(g).sum() > 0 for g in layer.grads.values())
    cell = "gru" if "gru" in variant else "lstm"
    P = layer._out_size
    for d in (0, 1):
        y_d, *_ = F.forward(
            cell,
            x,
            None,
            None,
            *layer._weights(0, d),
            reverse=bool(d),
            training=False,
            backend="numpy",
            **layer._cell_options(0, d),
        )
        np.testing.assert_array_equal(y[..., d * P : (d + 1) * P], y_d)
    assert layer._cell_options(0, 1) != {}


@pytest.mark.parametrize("variant", NAMES)
def test_checkpoint_round_trip_keeps_the_variant(variant, tmp_path):
    from fastrnn.checkpoint import load_checkpoint, save_checkpoint

    layer = LAYERS[variant](input_size=3, hidden_size=4, dtype="float64", seed=5)
    layer.backend = "numpy"
    path = tmp_path / "model.npz"
    save_checkpoint(path, layer)
    loaded = load_checkpoint(path).model
    assert type(loaded) is type(layer) and loaded.state_dict().keys() == layer.state_dict().keys()
    assert getattr(loaded, "reset_after", True) == getattr(layer, "reset_after", True)
    assert getattr(loaded, "peepholes", False) == getattr(layer, "peepholes", False)
    x = np.random.default_rng(1).standard_normal((4, 2, 3))
    loaded.backend = "numpy"
    np.testing.assert_array_equal(loaded(x)[0], layer(x)[0])


def test_checkpoint_written_before_the_flags_loads_as_the_plain_cells(tmp_path):
    # A file from before reset_after/peepholes existed has no such args: it means the plain cells.
    import json

    from fastrnn.checkpoint import HEADER_KEY, load_checkpoint, save_checkpoint

    path = tmp_path / "old.npz"
    save_checkpoint(path, fastrnn.Sequential(fastrnn.GRU(3, 4, seed=1), fastrnn.LSTM(4, 4, seed=2)))
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    header = json.loads(members[HEADER_KEY].tobytes().decode())
    for layer_spec in header["model"]["layers"]:
        assert layer_spec["args"].pop("reset_after" if layer_spec["type"] == "GRU" else "peepholes") in (
            True,
            False,
        )
    members[HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **members)
    model = load_checkpoint(path).model
    assert model[0].reset_after is True and model[1].peepholes is False


@pytest.mark.parametrize("variant", ["gru_reset_before", "lstm_peepholes"])
def test_stepper_steps_the_variant(variant):
    from fastrnn.generate import Stepper

    layer = LAYERS[variant](input_size=3, hidden_size=5, num_layers=2, dtype="float64", seed=7)
    layer.backend = "numpy"
    layer.eval()
    x = np.random.default_rng(2).standard_normal((6, 2, 3))
    whole = layer(x)[0]
    stepper = Stepper(layer, batch_size=2)
    steps = np.stack([stepper.step(x[t]) for t in range(6)])
    np.testing.assert_allclose(steps, whole, rtol=1e-12, atol=1e-12)


# -------------------------------------------------------------------------------------------------
# Bad input


def _args(variant="lstm_peepholes", dtype=np.float64):
    cell, p, reset_after = make(variant, 3, 2, 4, 5, dtype)
    return cell, p, reset_after


@pytest.mark.parametrize("backend", ["numpy", pytest.param("native", marks=pytest.mark.native)])
def test_bad_variant_arguments_are_refused_naming_them(backend):
    cell, p, _ = _args()
    with pytest.raises(ValueError, match=r"w_ph must have shape \(3\*H=15,\)"):
        forward(dict(p, w_ph=np.zeros(12)), cell, True, backend)
    with pytest.raises(ValueError, match="w_ph"):
        forward(dict(p, w_ph=np.zeros((3, 5))), cell, True, backend)
    with pytest.raises(TypeError, match="w_ph"):
        forward(dict(p, w_ph=np.zeros(15, np.float32)), cell, True, backend)
    with pytest.raises(TypeError, match="w_ph"):
        forward(dict(p, w_ph=np.zeros(15, np.int64)), cell, True, backend)
    with pytest.raises(ValueError, match="reset_after=False .* only for cell 'gru'"):
        forward(p, cell, False, backend)
    for bad in (0, 1, "False", None):
        with pytest.raises(TypeError, match="reset_after must be a bool"):
            forward(p, cell, bad, backend)
    gcell, gp, _ = _args("gru_reset_before")
    with pytest.raises(ValueError, match="w_ph .* only for cell 'lstm'"):
        forward(dict(gp, w_ph=np.zeros(15)), gcell, False, backend)
    with pytest.raises(TypeError, match="reset_after must be a bool"):
        forward(gp, gcell, np.float64(0), backend)


def test_bad_layer_flags_are_refused():
    for bad in (0, "yes", None):
        with pytest.raises(TypeError, match="reset_after must be a bool"):
            fastrnn.GRU(3, 4, reset_after=bad)
        with pytest.raises(TypeError, match="peepholes must be a bool"):
            fastrnn.LSTM(3, 4, peepholes=bad)
    with pytest.raises(TypeError):
        fastrnn.RNN(3, 4, reset_after=False)
    layer = fastrnn.LSTM(3, 4, peepholes=True)
    sd = layer.state_dict()
    with pytest.raises(ValueError, match=r"weight_ph_l0 must have shape \(12,\)"):
        layer.load_state_dict(dict(sd, weight_ph_l0=np.zeros(8)))
    with pytest.raises(ValueError, match="missing keys"):
        fastrnn.LSTM(3, 4, peepholes=True).load_state_dict(fastrnn.LSTM(3, 4).state_dict())
    with pytest.raises(ValueError, match="unexpected keys"):
        fastrnn.LSTM(3, 4).load_state_dict(sd)


def test_empty_batch_gives_a_zero_peephole_gradient():
    cell, p, _ = make("lstm_peepholes", 3, 0, 4, 5)
    *_, cache = forward(p, cell, True, "numpy", training=True)
    grads = F.backward(cache, None, None, None)
    assert len(grads) == 9 and grads[-1].shape == (15,) and not grads[-1].any()


@pytest.mark.native
def test_the_binding_checks_the_variant_arguments_itself():
    # fastrnn._native may be called directly: its own checks refuse what functional would.
    from fastrnn import _native

    cell, p, _ = _args()
    args = [p[k] for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr")] + [None, False, False]
    with pytest.raises(ValueError, match=r"w_ph must have shape \(3\*H=15,\)"):
        _native.forward(cell, *args, w_ph=np.zeros(14))
    with pytest.raises(TypeError, match="w_ph"):
        _native.forward(cell, *args, w_ph=np.zeros(15, np.float32))
    with pytest.raises(ValueError, match="reset_after=False .* only for cell 'gru'"):
        _native.forward(cell, *args, reset_after=False)
    gcell, gp, _ = _args("gru_reset_before")
    gargs = [gp[k] for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr")] + [None, False, False]
    with pytest.raises(ValueError, match="w_ph .* only for cell 'lstm'"):
        _native.forward(gcell, *gargs, w_ph=np.zeros(15))
