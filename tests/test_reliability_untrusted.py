"""Untrusted weights: load_state_dict with malformed values gives clear errors, leaves the layer as it
was, and never runs code hidden in the data (pickles). fastrnn has no checkpoint format of its own
yet; state_dicts saved with numpy.savez load back with numpy.load's default allow_pickle=False."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastrnn


def _layer():
    return fastrnn.LSTM(3, 4, num_layers=1, seed=0)


def _snapshot(layer):
    return {k: v.copy() for k, v in layer.state_dict().items()}


class _Boom:
    """Unpickling this runs code (writes a marker file): what a malicious pickle would do."""

    marker = None

    def __reduce__(self):
        return (open, (_Boom.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    _Boom.marker = str(tmp_path / "pwned")
    yield tmp_path / "pwned"
    _Boom.marker = None


def _replace(layer, name, value):
    d = dict(layer.state_dict())
    d[name] = value
    return d


@pytest.mark.parametrize(
    "value,error,match",
    [
        (np.zeros((16, 4)), ValueError, "shape"),  # wrong shape
        (np.zeros((4, 16)), ValueError, "shape"),  # transposed
        (np.zeros(16 * 3), ValueError, "shape"),  # flattened
        (np.zeros((16, 3), dtype=object), TypeError, "dtype"),  # object array
        (np.full((16, 3), "1.0"), TypeError, "dtype"),  # strings
        (np.zeros((16, 3), dtype=np.complex64), TypeError, "dtype"),  # complex
        (np.zeros((16, 3), dtype=bool), TypeError, "dtype"),  # bool
        (np.zeros((16, 3), dtype="V8"), TypeError, "dtype"),  # raw bytes
        (b"\x80\x04\x95", TypeError, "dtype"),  # bytes (e.g. a pickle)
        ("weights.npy", TypeError, "dtype"),  # a path, not loaded
        (None, TypeError, "dtype"),
        ({"a": 1}, TypeError, "dtype"),
        ([[1.0, 2.0], [3.0]], ValueError, None),  # ragged (numpy's message)
    ],
)
def test_malformed_values_raise_clearly_and_change_nothing(value, error, match):
    layer = _layer()
    before = _snapshot(layer)
    with pytest.raises(error, match=match) as info:
        layer.load_state_dict(_replace(layer, "weight_ih_l0", value))
    if match is not None:
        assert "weight_ih_l0" in str(info.value)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_pickled_object_in_a_state_dict_is_not_unpickled(marker):
    layer = _layer()
    payload = pickle.dumps(_Boom())
    for value in (
        payload,
        np.frombuffer(payload, np.uint8),
        np.array([payload]),
        np.array([_Boom()], dtype=object),
    ):
        with pytest.raises((TypeError, ValueError)):
            layer.load_state_dict(_replace(layer, "bias_hh_l0", value))
    assert not marker.exists()


def test_missing_and_unexpected_keys():
    layer = _layer()
    d = dict(layer.state_dict())
    d.pop("bias_ih_l0")
    with pytest.raises(ValueError, match="missing keys \\['bias_ih_l0'\\]"):
        layer.load_state_dict(d)
    d = dict(layer.state_dict(), extra=np.zeros(3))
    with pytest.raises(ValueError, match="unexpected keys \\['extra'\\]"):
        layer.load_state_dict(d)
    for not_a_mapping in (None, [1, 2], "state", 3):
        with pytest.raises(TypeError, match="mapping"):
            layer.load_state_dict(not_a_mapping)


def test_one_bad_value_among_good_ones_changes_nothing():
    layer = _layer()
    before = _snapshot(layer)
    d = {k: v + 1 for k, v in before.items()}
    d["bias_hh_l0"] = np.zeros(5)
    with pytest.raises(ValueError):
        layer.load_state_dict(d)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_non_finite_and_integer_values_load_as_given():
    layer = _layer()
    d = {k: np.zeros_like(v, dtype=np.int64) for k, v in layer.state_dict().items()}
    d["weight_hh_l0"] = np.full((16, 4), np.nan)
    layer.load_state_dict(d)
    assert np.isnan(layer.state_dict()["weight_hh_l0"]).all()
    assert layer.state_dict()["weight_ih_l0"].dtype == np.float32


# -------------------------------------------------------------------------------------------------
# Files: numpy.savez / numpy.load (fastrnn's own checkpoints are a later issue).


def test_npz_round_trip(tmp_path):
    layer, other = _layer(), fastrnn.LSTM(3, 4, seed=1)
    np.savez(tmp_path / "w.npz", **layer.state_dict())
    with np.load(tmp_path / "w.npz") as f:  # allow_pickle=False by default
        other.load_state_dict(dict(f))
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)


def test_npz_with_a_pickled_object_is_refused_without_running_it(tmp_path, marker):
    path = tmp_path / "evil.npz"
    np.savez(path, weight_ih_l0=np.array([_Boom()], dtype=object))
    with np.load(path) as f, pytest.raises(ValueError, match="allow_pickle"):
        f["weight_ih_l0"]
    assert not marker.exists()


@pytest.mark.parametrize("cut", [10, 100, -20])
def test_truncated_npz_is_an_error(tmp_path, cut):
    buf = io.BytesIO()
    np.savez(buf, **_layer().state_dict())
    data = buf.getvalue()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:cut] if cut > 0 else data[: len(data) + cut])
    # (An open file handle: numpy.load leaves the file it opened itself unclosed when it fails.)
    with open(path, "rb") as fh, pytest.raises((ValueError, OSError, EOFError, zipfile.BadZipFile)):
        with np.load(fh) as f:
            _layer().load_state_dict(dict(f))


def test_npz_with_wrong_shapes_is_a_clear_error(tmp_path):
    d = _layer().state_dict()
    d["weight_hh_l0"] = np.zeros((4, 16), np.float32)
    np.savez(tmp_path / "w.npz", **d)
    with np.load(tmp_path / "w.npz") as f, pytest.raises(ValueError, match="weight_hh_l0"):
        _layer().load_state_dict(dict(f))
    assert os.path.exists(tmp_path / "w.npz")
