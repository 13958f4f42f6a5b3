"""Gradient diagnostics: the per-step norms of dLoss/dh_t from backward, on both backends."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import functional as F

from helpers import CELL_VARIANTS, forward_problem, make_lengths, make_upstream, make_variant


def norms(problem, cell, backend, lengths=None, reverse=False, upstream=(None, None, None)):
    *_, cache = forward_problem(problem, cell, lengths=lengths, reverse=reverse, backend=backend)
    assert cache.dh_norms is None
    F.backward(cache, *upstream)
    return cache.dh_norms


@pytest.mark.native
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
def test_native_norms_match_reference(variant, reverse):
    cell, p = make_variant(variant, 6, 5, 4, 7, np.float64, seed=31)
    lengths, up = make_lengths(6, 5), make_upstream(p, 6)
    expected = norms(p, cell, "numpy", lengths, reverse, up)
    assert expected.shape == (6,) and np.all(expected >= 0)
    np.testing.assert_allclose(norms(p, cell, "native", lengths, reverse, up), expected, rtol=1e-10)


def test_norm_is_the_gradient_wrt_the_state_at_that_step():
    # Only the output at the last step carries a loss: ||dL/dh_T-1|| is ||dy[T-1]|| itself, and
    # earlier steps see it through the recurrence (tanh with small weights: it shrinks).
    cell, p = make_variant("rnn_tanh", 8, 3, 4, 5, np.float64, seed=32)
    p["w_hh"] *= 0.3
    dy = np.zeros((8, 3, 5))
    dy[-1] = np.random.default_rng(0).standard_normal((3, 5))
    n = norms(p, cell, "numpy", upstream=(dy, None, None))
    assert n[-1] == pytest.approx(np.linalg.norm(dy[-1]), rel=1e-12)
    assert np.all(np.diff(n) > 0)  # vanishing towards t = 0


@pytest.mark.parametrize("backend", ["numpy", pytest.param("native", marks=pytest.mark.native)])
def test_layer_norms_per_layer_and_direction(backend):
    lstm = fr.LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", backend=backend, seed=1)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    y, _ = lstm(x)
    assert lstm.dh_norms is None
    lstm.backward(np.ones_like(y))
    assert lstm.dh_norms.shape == (4, 5) and np.all(lstm.dh_norms > 0)


def test_plot_grad_norms(tmp_path):
    pytest.importorskip("matplotlib")
    from fastrnn.diagnostics import plot_grad_norms

    path = tmp_path / "norms.png"
    ax = plot_grad_norms(np.array([[1.0, 0.5, 0.25], [1.0, 2.0, 4.0]]), labels=["a", "b"], path=path)
    assert path.stat().st_size > 0 and len(ax.get_lines()) == 2
    with pytest.raises(ValueError, match="labels"):
        plot_grad_norms(np.ones((2, 3)), labels=["one"])
