"""Checkpoints (fastrnn.checkpoint): round trips of every layer kind and of Sequential models, with and
without an optimizer, in float32 and float64 (training continued after a load is bitwise the training
continued without it); atomic saves; and malformed or malicious files, each refused with a
CheckpointError (a ValueError) that names the problem, without unpickling or allocating anything."""

import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest

import fastrnn
from fastrnn import _checkpoint_format as ckpt_format
from fastrnn import checkpoint as ckpt
from fastrnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

DTYPES = ("float32", "float64")
HEADER = ckpt.HEADER_KEY
V = 7  # vocabulary of the token models


# -------------------------------------------------------------------------------------------------
# Models and a deterministic training step


def _make(kind, dtype):
    if kind == "rnn":
        return fastrnn.RNN(3, 5, num_layers=2, nonlinearity="relu", dtype=dtype, seed=1)
    if kind == "lstm":
        return fastrnn.LSTM(
            3,
            6,
            num_layers=2,
            proj_size=2,
            bidirectional=True,
            dropout=0.3,
            batch_first=True,
            dtype=dtype,
            seed=2,
        )
    if kind == "gru":
        return fastrnn.GRU(3, 4, bias=False, bidirectional=True, dtype=dtype, backend="numpy", seed=3)
    if kind == "linear":
        return fastrnn.Linear(3, 4, dtype=dtype, seed=4)
    if kind == "embedding":
        return fastrnn.Embedding(V, 3, dtype=dtype, seed=5)
    if kind == "seq":
        return fastrnn.Sequential(
            fastrnn.Embedding(V, 3, dtype=dtype, seed=6),
            fastrnn.LSTM(3, 5, num_layers=2, dropout=0.25, dtype=dtype, seed=7),
            fastrnn.Linear(5, V, dtype=dtype, seed=8),
        )
    if kind == "nested":
        return fastrnn.Sequential(
            fastrnn.Sequential(fastrnn.Embedding(V, 4, dtype=dtype, seed=9)),
            fastrnn.Sequential(
                fastrnn.GRU(4, 3, dtype=dtype, seed=10),
                fastrnn.Linear(3, V, bias=False, dtype=dtype, seed=11),
            ),
        )
    raise AssertionError(kind)


KINDS = ("rnn", "lstm", "gru", "linear", "embedding", "seq", "nested")


def _step(model, kind, dtype, t, optimizer=None):
    """One forward + backward (+ optimizer step) on data fixed by t."""
    rng = np.random.default_rng(1000 + t)
    if optimizer is not None:
        optimizer.zero_grad()
    else:
        model.zero_grad()
    if kind in ("seq", "nested"):
        idx = rng.integers(0, V, size=(4, 2))
        logits = model(idx)
        _, d = fastrnn.losses.cross_entropy(logits, idx)
        model.backward(d)
    elif kind == "embedding":
        y = model(rng.integers(0, V, size=(4, 2)))
        model.backward(rng.standard_normal(y.shape).astype(dtype))
    else:
        out = model(rng.standard_normal((4, 2, 3)).astype(dtype))
        y = out[0] if isinstance(out, tuple) else out
        _, d = fastrnn.losses.mse(y, np.zeros_like(y))
        model.backward(d)
    if optimizer is not None:
        optimizer.step()


def _make_optimizer(name, model):
    if name == "adam":
        return fastrnn.optim.Adam(model, lr=1e-2, betas=(0.8, 0.99), amsgrad=True)
    if name == "sgd":
        return fastrnn.optim.SGD(model, lr=0.05, momentum=0.9, nesterov=True)
    return None


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
        assert np.array_equal(sa[k], sb[k]), k


# -------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("opt_name", [None, "sgd", "adam"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_and_continued_training(tmp_path, kind, dtype, opt_name):
    model = _make(kind, dtype)
    opt = _make_optimizer(opt_name, model)
    for t in range(2):
        _step(model, kind, dtype, t, opt)
    extra = {
        "vocab": "abcdefg",
        "step": 2,
        "best_loss": 1.25,
        "worst": float("inf"),
        "nested": [1, None, True, {"é": "ü"}],
    }
    path = tmp_path / "model.ckpt"
    assert save_checkpoint(path, model, opt, extra=extra) == os.fspath(path)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]  # no temporary file left behind

    loaded = load_checkpoint(path)
    model2, opt2, extra2 = loaded
    assert isinstance(loaded, ckpt.Checkpoint) and loaded.model is model2
    assert extra2 == extra
    assert type(model2) is type(model) and repr(model2) == repr(model)
    _assert_same_weights(model, model2)
    if opt is None:
        assert opt2 is None
        opt, opt2 = fastrnn.optim.SGD(model, lr=0.1), fastrnn.optim.SGD(model2, lr=0.1)
    else:
        assert type(opt2) is type(opt) and opt2.state_dict()["hyperparams"] == opt.state_dict()["hyperparams"]
        assert len(opt2.params) == len(model2.parameters()) and all(
            p.data is q.data for p, q in zip(opt2.params, model2.parameters())
        )

    # Continue both: bitwise the same trajectory (optimizer state, dropout generators included).
    for t in range(2, 5):
        _step(model, kind, dtype, t, opt)
        _step(model2, kind, dtype, t, opt2)
    _assert_same_weights(model, model2)


def test_eval_mode_and_plain_layers_round_trip(tmp_path):
    model = _make("seq", "float64").eval()
    save_checkpoint(tmp_path / "m.npz", model)
    model2, opt2, extra2 = load_checkpoint(tmp_path / "m.npz")
    assert opt2 is None and extra2 is None
    assert not model2.training and all(not layer.training for layer in model2)
    idx = np.arange(6).reshape(3, 2)
    assert np.array_equal(model(idx), model2(idx))


def test_empty_sequential_and_no_extra(tmp_path):
    save_checkpoint(tmp_path / "e.npz", fastrnn.Sequential())
    model, opt, extra = load_checkpoint(tmp_path / "e.npz")
    assert type(model) is fastrnn.Sequential and len(model) == 0 and opt is None and extra is None


def test_save_overwrites_atomically(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _make("gru", "float32"), extra=1)
    before = path.read_bytes()

    def interrupted(f, *args, **kwds):
        f.write(b"PK\x03\x04partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _make("rnn", "float32"), extra=2)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.npz"]
    assert load_checkpoint(path).extra == 1
    save_checkpoint(path, _make("rnn", "float32"), extra=3)
    assert load_checkpoint(path).extra == 3 and os.listdir(tmp_path) == ["c.npz"]


def test_save_rejects_what_it_cannot_store(tmp_path):
    path = tmp_path / "c.npz"
    model = _make("linear", "float32")

    class Custom(fastrnn.Linear):
        pass

    with pytest.raises(TypeError, match="Custom"):
        save_checkpoint(path, Custom(2, 2))
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(path, model, extra={"f": object()})
    with pytest.raises(ValueError, match="model.parameters"):
        save_checkpoint(path, model, fastrnn.optim.SGD(_make("linear", "float32")))
    assert not path.exists() and os.listdir(tmp_path) == []


# -------------------------------------------------------------------------------------------------
# Malformed and malicious files


@pytest.fixture
def good(tmp_path):
    """A valid checkpoint (Sequential + Adam mid-training): its path, header and arrays."""
    model = _make("seq", "float32")
    opt = fastrnn.optim.Adam(model, lr=1e-3)
    _step(model, "seq", "float32", 0, opt)
    path = tmp_path / "good.npz"
    save_checkpoint(path, model, opt, extra={"vocab": "abc"})
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop(HEADER).tobytes().decode("utf-8"))
    return path, header, arrays


def _write(path, header, arrays, raw=None):
    members = dict(arrays)
    if raw is None and header is not None:
        raw = json.dumps(header).encode("utf-8")
    if raw is not None:
        members[HEADER] = np.frombuffer(raw, dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **members)
    return path


def _refused(path, *words):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and msg.startswith("checkpoint:")
    for w in words:
        assert w in msg, (w, msg)
    return msg


def test_good_fixture_loads(good):
    path, header, arrays = good
    assert load_checkpoint(path).extra == {"vocab": "abc"}
    _write(path, header, arrays)  # rewriting the parts unchanged stays valid
    assert load_checkpoint(path).optimizer is not None


def test_truncated_file(good, tmp_path):
    path = good[0]
    data = path.read_bytes()
    bad = tmp_path / "cut.npz"
    for cut in (0, 3, 10, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        bad.write_bytes(data[:cut])
        _refused(bad)


def test_not_a_zip(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(os.urandom(256))
    _refused(bad, "not")
    np.save(tmp_path / "plain.npy", np.zeros((2, 2)))
    _refused(tmp_path / "plain.npy", "not")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")


def test_missing_header(good):
    path, _, arrays = good
    _refused(_write(path, None, arrays), "no header")


@pytest.mark.parametrize(
    "raw, words",
    [(b"{not json", "JSON"), (b"\xff\xfe\x00", "UTF-8"), (b"[1, 2]", "object"), (b"[" * 100000, "JSON")],
)
def test_header_not_json(good, raw, words):
    path, _, arrays = good
    _refused(_write(path, None, arrays, raw=raw), words)


def test_header_of_wrong_type(good):
    path, header, arrays = good
    arrays = dict(arrays)
    arrays[HEADER] = np.zeros(3, np.float32)
    _refused(_write(path, None, arrays), "uint8")


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("version", 2, "version"),
        ("version", True, "version"),
        ("version", "1", "version"),
        ("format", "pytorch", "format"),
    ],
)
def test_unknown_format_or_version(good, field, value, words):
    path, header, arrays = good
    header[field] = value
    _refused(_write(path, header, arrays), words)


def test_unknown_top_level_key(good):
    path, header, arrays = good
    header["code"] = "print(1)"
    _refused(_write(path, header, arrays), "keys")


@pytest.mark.parametrize("layer_type", ["os.system", "Module", "__import__", "sequential", None, 3])
def test_unknown_layer_type(good, layer_type):
    path, header, arrays = good
    header["model"]["layers"][1]["type"] = layer_type
    _refused(_write(path, header, arrays), "unknown layer type", "layers[1]")


def test_unknown_optimizer_type(good):
    path, header, arrays = good
    header["optimizer"]["type"] = "subprocess.Popen"
    _refused(_write(path, header, arrays), "unknown optimizer type")


@pytest.mark.parametrize(
    "arg, value, words",
    [
        ("hidden_size", "5", "hidden_size"),
        ("hidden_size", 5.0, "hidden_size"),
        ("hidden_size", True, "hidden_size"),
        ("num_layers", -1, "num_layers"),
        ("dropout", 2.0, "dropout"),
        ("dropout", "0.1", "dropout"),
        ("bias", 1, "bias"),
        ("dtype", "int32", "dtype"),
        ("dtype", "object", "dtype"),
        ("backend", "cuda", "backend"),
        ("seed", -3, "seed"),
        ("proj_size", 5, "proj_size"),
    ],
)
def test_bad_constructor_args(good, arg, value, words):
    path, header, arrays = good
    header["model"]["layers"][1]["args"][arg] = value
    _refused(_write(path, header, arrays), words, "LSTM")


def test_missing_and_unknown_constructor_args(good):
    path, header, arrays = good
    del header["model"]["layers"][2]["args"]["bias"]
    _refused(_write(path, header, arrays), "args", "Linear")
    header["model"]["layers"][2]["args"].update(bias=True, exec="x")
    _refused(_write(path, header, arrays), "args", "Linear")


def test_bad_rng_state(good):
    path, header, arrays = good
    header["model"]["layers"][1]["rng"]["state"]["state"] = -1
    _refused(_write(path, header, arrays), "rng")
    header["model"]["layers"][1]["rng"] = {"bit_generator": "MT19937"}
    _refused(_write(path, header, arrays), "rng")


def test_wrong_shape(good):
    path, header, arrays = good
    key = "model/2.weight"
    # The header and the array agree with each other but not with the model.
    arrays[key] = np.zeros((V, 4), np.float32)
    header["arrays"][key]["shape"] = [V, 4]
    _refused(_write(path, header, arrays), "model")
    # The array disagrees with the header.
    header["arrays"][key]["shape"] = [V, 5]
    _refused(_write(path, header, arrays), key, "shape")


def test_weights_that_fit_the_bytes_but_not_the_names(good):
    path, header, arrays = good
    arrays["model/2.weight_renamed"] = arrays.pop("model/2.weight")
    header["arrays"]["model/2.weight_renamed"] = header["arrays"].pop("model/2.weight")
    _refused(_write(path, header, arrays), "model/2.weight")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex64, ">f4", np.bool_])
def test_wrong_dtype_in_array(good, dtype):
    path, header, arrays = good
    key = "model/0.weight"
    arrays[key] = arrays[key].astype(dtype)
    _refused(_write(path, header, arrays), key, "dtype")


@pytest.mark.parametrize("dtype", ["int32", "object", "float16", "O", "<f4", None])
def test_wrong_dtype_in_header(good, dtype):
    path, header, arrays = good
    header["arrays"]["model/0.weight"]["dtype"] = dtype
    _refused(_write(path, header, arrays), "dtype")


def test_float64_weights_for_a_float32_model(good):
    path, header, arrays = good
    key = "model/2.bias"
    arrays[key] = arrays[key].astype(np.float64)
    header["arrays"][key]["dtype"] = "float64"
    _refused(_write(path, header, arrays))


def test_optimizer_state_of_wrong_dtype(good):
    path, header, arrays = good
    key = "optim/0/exp_avg"
    arrays[key] = arrays[key].astype(np.float64)
    header["arrays"][key]["dtype"] = "float64"
    _refused(_write(path, header, arrays), key)


def test_optimizer_state_inconsistent(good):
    path, header, arrays = good
    header["optimizer"]["state"][0]["arrays"].append("max_exp_avg_sq")
    _refused(_write(path, header, arrays), "optim/0/max_exp_avg_sq")
    header["optimizer"]["state"][0]["arrays"].pop()
    header["optimizer"]["hyperparams"]["lr"] = -1.0
    _refused(_write(path, header, arrays), "lr")
    header["optimizer"]["hyperparams"]["lr"] = 1e-3
    header["optimizer"]["state"].pop()
    _refused(_write(path, header, arrays), "state")


def test_unexpected_array(good):
    path, header, arrays = good
    arrays["model/evil"] = np.zeros(3, np.float32)
    _refused(_write(path, header, arrays), "unexpected", "model/evil")
    header["arrays"]["model/evil"] = {"shape": [3], "dtype": "float32"}
    _refused(_write(path, header, arrays))
    arrays["optim/99/x"] = np.zeros(3, np.float32)
    header["arrays"]["optim/99/x"] = {"shape": [3], "dtype": "float32"}
    del arrays["model/evil"], header["arrays"]["model/evil"]
    _refused(_write(path, header, arrays), "optim/99/x")


def test_missing_array(good):
    path, header, arrays = good
    del arrays["model/1.weight_hh_l1"]
    _refused(_write(path, header, arrays), "missing", "model/1.weight_hh_l1")
    del header["arrays"]["model/1.weight_hh_l1"]  # gone from both: the model needs it
    _refused(_write(path, header, arrays))
    del arrays["optim/0/exp_avg"]
    _refused(_write(path, header, arrays), "optim/0/exp_avg")


class _Boom:
    """Unpickling this runs code (creates a marker file): what a malicious pickle would do."""

    marker = None

    def __reduce__(self):
        return (open, (_Boom.marker, "w"))


def test_pickled_object_array_is_never_unpickled(good, tmp_path):
    path, header, arrays = good
    marker = tmp_path / "pwned"
    _Boom.marker = str(marker)
    try:
        evil = np.empty(1, dtype=object)
        evil[0] = _Boom()
        for key in ("model/0.weight", "model/evil", HEADER):
            members = dict(arrays)
            members[key] = evil
            if key != HEADER:
                members[HEADER] = np.frombuffer(json.dumps(header).encode(), np.uint8)
            with open(path, "wb") as f:
                np.savez(f, **members)  # allow_pickle defaults to True on save: a real pickle
            _refused(path)
            assert not marker.exists()
        # The header itself saying "object" changes nothing.
        header["arrays"]["model/0.weight"]["dtype"] = "object"
        members = dict(arrays, **{"model/0.weight": evil})
        members[HEADER] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **members)
        _refused(path, "dtype")
        assert not marker.exists()
    finally:
        _Boom.marker = None


@pytest.mark.parametrize(
    "arg, value", [("hidden_size", 2**40), ("num_layers", 2**62), ("input_size", 10**300)]
)
def test_absurd_sizes_in_config_are_refused_before_allocating(good, arg, value):
    path, header, arrays = good
    header["model"]["layers"][1]["args"][arg] = value
    _refused(_write(path, header, arrays), "bytes")


def test_absurd_array_shape_in_header(good):
    path, header, arrays = good
    header["arrays"]["model/0.weight"]["shape"] = [2**40, 2**40]
    _refused(_write(path, header, arrays), "model/0.weight")
    header["arrays"]["model/0.weight"]["shape"] = [2] * 1000
    _refused(_write(path, header, arrays), "shape")


def test_absurd_shape_in_npy_header(good):
    """Members whose own .npy header claims a huge array (the data is not there): refused from the
    headers alone, before any array is allocated or read."""
    path, header, arrays = good
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (2**20, 2**20)}
    )
    fake = buf.getvalue() + b"\0" * 16

    def with_huge_member(name):
        _write(path, header, arrays)
        with zipfile.ZipFile(path, "a") as z:
            z.writestr(name + ".npy", fake)
        return path

    _refused(with_huge_member("model/huge"), "unexpected", "model/huge")
    # Listed in the header with the huge shape: more bytes than the member holds.
    header["arrays"]["model/huge"] = {"shape": [2**20, 2**20], "dtype": "float32"}
    _refused(with_huge_member("model/huge"), "model/huge", "bytes")
    # Listed with a small shape, but the .npy header disagrees.
    header["arrays"]["model/huge"] = {"shape": [4], "dtype": "float32"}
    _refused(with_huge_member("model/huge"), "model/huge", "shape")
    # In place of a real weight.
    del header["arrays"]["model/huge"]
    del arrays["model/0.weight"]
    _refused(with_huge_member("model/0.weight"), "model/0.weight", "shape")


def test_compressed_and_duplicated_members(good, tmp_path):
    path, header, arrays = good
    members = dict(arrays)
    members[HEADER] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez_compressed(f, **members)
    _refused(path, "compressed")
    _write(path, header, arrays)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as z:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        z.writestr("model/0.weight.npy", b"x")
    _refused(path, "twice")


def test_weight_count_matches_layers():
    """The size guard's formula equals what the layers really allocate."""
    layers = [
        fastrnn.LSTM(3, 6, num_layers=3, proj_size=2, bidirectional=True),
        fastrnn.LSTM(2, 4, bias=False),
        fastrnn.GRU(5, 3, num_layers=2, bidirectional=True),
        fastrnn.RNN(1, 2, num_layers=4, bias=False),
        fastrnn.Linear(4, 3, bias=False),
        fastrnn.Embedding(9, 2),
    ]
    for layer in layers:
        spec = ckpt._model_spec(layer, "model", 0)
        assert ckpt_format._weight_count(spec["type"], spec["args"]) == sum(
            v.size for v in layer.state_dict().values()
        ), layer
