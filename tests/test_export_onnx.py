"""fastrnn.convert.export_onnx: models built here are exported, checked with onnx.checker, and run in
ONNX Runtime on time lengths and batch sizes that the export never saw (it runs nothing: both axes
are symbolic), with and without per-sequence lengths; the outputs and final states must be fastrnn's
(float32, 1e-5). float64 exports run in ONNX's reference evaluator (ONNX Runtime's RNN operators are
float32 only). Refusals are clear, and ``import fastrnn`` never imports onnx."""

import subprocess
import sys

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.convert import export_onnx

from helpers import assert_close

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

I, H, E, V, OUT = 5, 6, 4, 11, 3
SHAPES = [(7, 3), (1, 1), (13, 5)]  # (T, B) pairs the model is run on after export


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _recurrent_layers(model):
    layers = list(model) if isinstance(model, fr.Sequential) else [model]
    out = []
    for layer in layers:
        out += _recurrent_layers(layer) if isinstance(layer, fr.Sequential) else [layer]
    return [layer for layer in out if fr.is_recurrent(layer)]


def fastrnn_outputs(model, x, lengths=None):
    """[output, then h_n (and c_n) of each recurrent layer]: what the export's outputs hold."""
    model.eval()
    y, states = fr.Sequential(model).forward_with_state(x, None, lengths)
    flat = []
    for layer, s in zip(_recurrent_layers(model), states):
        flat += list(s) if layer.cell == "lstm" else [s]
    return [y] + flat


def model_input(model, T, B, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    first = list(model)[0] if isinstance(model, fr.Sequential) else model
    while isinstance(first, fr.Sequential):
        first = list(first)[0]
    rec = _recurrent_layers(model)
    shape = (B, T) if rec and rec[0].batch_first else (T, B)
    if isinstance(first, fr.Embedding):
        return rng.integers(0, V, size=shape).astype(np.int64)
    size = first.in_features if isinstance(first, fr.Linear) else first.input_size
    return rng.standard_normal(shape + (size,)).astype(dtype)


# Each builder gives a fresh model (seeded): name -> callable.
MODELS = {
    "rnn_tanh": lambda: fr.RNN(I, H, seed=1),
    "rnn_relu_2layer_bi_nobias": lambda: fr.RNN(
        I, H, num_layers=2, nonlinearity="relu", bias=False, bidirectional=True, seed=2
    ),
    "lstm": lambda: fr.LSTM(I, H, seed=3),
    "lstm_3layer_bi_batch_first": lambda: fr.LSTM(
        I, H, num_layers=3, bidirectional=True, batch_first=True, seed=4
    ),
    "lstm_peepholes_2layer_bi": lambda: fr.LSTM(
        I, H, num_layers=2, bidirectional=True, peepholes=True, seed=5
    ),
    "gru_reset_after": lambda: fr.GRU(I, H, num_layers=2, seed=6),
    "gru_reset_before_bi_batch_first": lambda: fr.GRU(
        I, H, num_layers=2, bidirectional=True, batch_first=True, reset_after=False, seed=7
    ),
    "gru_reset_before_nobias": lambda: fr.GRU(I, H, bias=False, reset_after=False, seed=8),
    "embedding_lstm_linear": lambda: fr.Sequential(
        fr.Embedding(V, E, seed=9), fr.LSTM(E, H, num_layers=2, seed=10), fr.Linear(H, OUT, seed=11)
    ),
    "embedding_gru_bi_batch_first_linear": lambda: fr.Sequential(
        fr.Embedding(V, E, seed=12),
        fr.GRU(E, H, bidirectional=True, batch_first=True, reset_after=False, seed=13),
        fr.Linear(2 * H, OUT, bias=False, seed=14),
    ),
    "linear_stacked_recurrent_nested": lambda: fr.Sequential(
        fr.Linear(I, E, seed=15),
        fr.Sequential(fr.RNN(E, H, seed=16), fr.LSTM(H, H, peepholes=True, bidirectional=True, seed=17)),
        fr.Linear(2 * H, OUT, seed=18),
    ),
    "embedding_alone": lambda: fr.Embedding(V, E, seed=19),
    "linear_alone": lambda: fr.Linear(I, OUT, seed=20),
}


def _perturb(model, seed):
    """Nonzero, distinct values everywhere (peepholes and biases included), so a swapped gate, bias
    or direction shows."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.uniform(-0.6, 0.6, p.data.shape).astype(p.data.dtype)
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnxruntime_matches_fastrnn(name, tmp_path):
    model = _perturb(MODELS[name](), 30)
    path = tmp_path / "model.onnx"
    proto = export_onnx(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"]
    sess = _session(path)
    names = [o.name for o in sess.get_outputs()]
    assert names[0] == "output"
    for T, B in SHAPES:
        x = model_input(model, T, B, seed=T)
        want = fastrnn_outputs(model, x)
        got = sess.run(None, {"input": x})
        assert len(got) == len(want)
        for n, g, w in zip(names, got, want):
            assert_close(g, w, f"{name} {n} at T={T}, B={B}")


@pytest.mark.parametrize(
    "name",
    [
        "rnn_relu_2layer_bi_nobias",
        "lstm_3layer_bi_batch_first",
        "lstm_peepholes_2layer_bi",
        "gru_reset_before_bi_batch_first",
        "embedding_lstm_linear",
        "linear_stacked_recurrent_nested",
    ],
)
def test_lengths_input(name, tmp_path):
    """lengths=True: a second input, ONNX's sequence_lens for every recurrent node; padding,
    reversed directions and final states as fastrnn's lengths give them."""
    model = _perturb(MODELS[name](), 31)
    path = tmp_path / "model.onnx"
    proto = export_onnx(model, path, lengths=True)
    inputs = {i.name: i for i in proto.graph.input}
    assert list(inputs) == ["input", "lengths"]
    assert inputs["lengths"].type.tensor_type.elem_type == onnx.TensorProto.INT64
    sess = _session(path)
    rng = np.random.default_rng(32)
    for T, B in SHAPES:
        x = model_input(model, T, B, seed=T + 1)
        lengths = rng.integers(0, T + 1, size=B)
        lengths[0] = T  # the longest one fills the time axis
        if B > 2:
            lengths[1] = 0  # an empty sequence: zero outputs, zero (initial) state
        want = fastrnn_outputs(model, x, lengths)
        got = sess.run(None, {"input": x, "lengths": lengths.astype(np.int64)})
        for k, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{name} output {k} at T={T}, B={B}, lengths={lengths}")


def test_a_trained_sequential_runs_in_onnxruntime(tmp_path):
    """The deployment path: train a character model a few steps (dropout on), export it, and run it
    in ONNX Runtime on longer text and a bigger batch than training used."""
    rng = np.random.default_rng(40)
    model = fr.Sequential(
        fr.Embedding(V, E, seed=41),
        fr.LSTM(E, H, num_layers=2, dropout=0.3, seed=42),
        fr.Linear(H, V, seed=43),
    )
    opt = fr.optim.Adam(model.parameters(), lr=0.02)
    ids = rng.integers(0, V, size=(9, 2))
    first = None
    for _ in range(30):
        loss, dlogits = fr.losses.cross_entropy(model(ids[:-1]), ids[1:])
        opt.zero_grad()
        model.backward(dlogits)
        opt.step()
        first = loss if first is None else first
    assert loss < first
    assert model.training  # export does not need eval(), and does not switch it
    path = tmp_path / "trained.onnx"
    export_onnx(model, path)
    assert model.training
    x = rng.integers(0, V, size=(20, 6)).astype(np.int64)
    got = _session(path).run(None, {"input": x})
    want = fastrnn_outputs(model, x)  # eval: no dropout
    for g, w in zip(got, want):
        assert_close(g, w, "trained model")


def test_graph_interface(tmp_path):
    """Names, element types and symbolic (dynamic) axes of the inputs and outputs."""
    model = fr.Sequential(
        fr.Embedding(V, E, seed=0),
        fr.LSTM(E, H, bidirectional=True, batch_first=True, seed=0),
        fr.Linear(2 * H, 3),
    )
    proto = export_onnx(model, tmp_path / "m.onnx", lengths=True)

    def dims(value_info):
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]

    ins, outs = list(proto.graph.input), list(proto.graph.output)
    assert [i.name for i in ins] == ["input", "lengths"]
    assert ins[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert dims(ins[0]) == ["batch", "time"] and dims(ins[1]) == ["batch"]
    assert [o.name for o in outs] == ["output", "1.h_n", "1.c_n"]
    assert dims(outs[0]) == ["batch", "time", 3]
    assert dims(outs[1]) == [2, "batch", H]
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in outs)
    assert not {init.name for init in proto.graph.initializer} & {"input", "lengths"}


@pytest.mark.parametrize("opset", ["min", "default", "max"])
def test_opsets(opset, tmp_path):
    model = _perturb(fr.GRU(I, H, bidirectional=True, reset_after=False, seed=50), 51)
    value = {"min": 9, "default": None, "max": onnx.defs.onnx_opset_version()}[opset]
    proto = export_onnx(model, tmp_path / "m.onnx", opset=value)
    want_opset = {"min": 9, "default": 17, "max": value}[opset]
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", want_opset)]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    if opset != "max":  # onnx may know newer opsets than this onnxruntime runs
        x = model_input(model, 4, 2)
        got = _session(tmp_path / "m.onnx").run(None, {"input": x})
        for g, w in zip(got, fastrnn_outputs(model, x)):
            assert_close(g, w, f"opset {want_opset}")


@pytest.mark.parametrize(
    "build",
    [
        lambda: fr.LSTM(I, H, num_layers=2, peepholes=True, dtype="float64", seed=60),
        lambda: fr.GRU(I, H, reset_after=False, dtype="float64", seed=61),
        lambda: fr.Sequential(fr.Embedding(V, E, dtype="float64"), fr.RNN(E, H, dtype="float64", seed=62)),
    ],
    ids=["lstm_peepholes", "gru_reset_before", "embedding_rnn"],
)
def test_float64_exports_run_in_the_reference_evaluator(build, tmp_path):
    from onnx.reference import ReferenceEvaluator

    model = _perturb(build(), 63)
    proto = export_onnx(model, tmp_path / "m.onnx")
    types = {init.data_type for init in proto.graph.initializer} - {onnx.TensorProto.INT64}  # shapes
    assert types == {onnx.TensorProto.DOUBLE}
    x = model_input(model, 6, 3, dtype=np.float64)
    got = ReferenceEvaluator(proto).run(None, {"input": x})
    for g, w in zip(got, fastrnn_outputs(model, x)):
        assert_close(g, w, "float64", rtol=1e-9)


def test_export_leaves_the_model_alone(tmp_path):
    model = fr.Sequential(fr.Linear(I, E, seed=0), fr.GRU(E, H, reset_after=False, seed=1))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    export_onnx(model, str(tmp_path / "m.onnx"))  # a str path works too
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before) and model.training


REFUSED = [
    ("projection", lambda: fr.LSTM(I, H, proj_size=2), {}, ValueError, "projection.*proj_size=2"),
    (
        "projection_inside",
        lambda: fr.Sequential(fr.Linear(I, I), fr.LSTM(I, H, proj_size=2)),
        {},
        ValueError,
        "layer '1' is an LSTM with a projection",
    ),
    ("hopfield", lambda: fr.Hopfield(4), {}, TypeError, "Hopfield.*only fastrnn Embedding"),
    ("not_a_layer", lambda: np.zeros(3), {}, TypeError, "the model is a ndarray"),
    ("empty_sequential", lambda: fr.Sequential(), {}, ValueError, "the Sequential has no layers"),
    (
        "embedding_not_first",
        lambda: fr.Sequential(fr.Linear(I, I), fr.Embedding(V, E)),
        {},
        ValueError,
        "layer '1' is an Embedding after another layer",
    ),
    (
        "mixed_dtypes",
        lambda: fr.Sequential(fr.Linear(I, I), fr.RNN(I, H, dtype="float64")),
        {},
        TypeError,
        "float64 but the first layer has float32",
    ),
    (
        "mixed_batch_first",
        lambda: fr.Sequential(fr.RNN(I, H), fr.RNN(H, H, batch_first=True)),
        {},
        ValueError,
        "batch_first=True but the first recurrent layer has batch_first=False",
    ),
    (
        "lengths_without_recurrent",
        lambda: fr.Linear(I, I),
        {"lengths": True},
        ValueError,
        "lengths=True needs",
    ),
    ("lengths_not_bool", lambda: fr.RNN(I, H), {"lengths": 1}, TypeError, "lengths must be a bool"),
    ("opset_too_old", lambda: fr.RNN(I, H), {"opset": 8}, ValueError, "opset must be >= 9"),
    ("opset_too_new", lambda: fr.RNN(I, H), {"opset": 10_000}, ValueError, "opset must be at most"),
    ("opset_str", lambda: fr.RNN(I, H), {"opset": "17"}, TypeError, "opset must be an int"),
    ("opset_bool", lambda: fr.RNN(I, H), {"opset": True}, TypeError, "opset must be an int"),
]


@pytest.mark.parametrize("build, kwargs, exc, match", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refusals(build, kwargs, exc, match, tmp_path):
    path = tmp_path / "m.onnx"
    with pytest.raises(exc, match=match):
        export_onnx(build(), path, **kwargs)
    assert not path.exists()


def test_path_must_be_a_path():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        export_onnx(fr.RNN(I, H), 3)


def test_import_fastrnn_does_not_import_onnx():
    code = "import sys, fastrnn, fastrnn.convert; print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_without_onnx_the_export_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx fails
    with pytest.raises(ImportError, match="export_onnx needs the onnx package"):
        export_onnx(fr.RNN(I, H), tmp_path / "m.onnx")
