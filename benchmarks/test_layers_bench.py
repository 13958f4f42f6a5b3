"""2-layer bidirectional LSTM / GRU layers with variable lengths, one pytest-benchmark group per
problem: native, numpy and torch (packed) with the lengths, and native_padded (the native layer on
the same batch without lengths) that native's time is compared with (target: <= 1.2x).

Groups are named "layers <cell> <mode> <shape>" (e.g. "layers lstm forward medium")::

    python -m pytest benchmarks/test_layers_bench.py --benchmark-group-by=group

torch runs pack_padded_sequence(enforce_sorted=False) -> module -> pad_packed_sequence, and the
fastrnn layers load the torch module's state_dict(), so every check compares the same model. Each
test first checks its implementation against the numpy layer (with lengths; native_padded without).
"""

import pytest

from . import harness, layers
from ._common import impl_params, time_call


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")  # when the check fails
@pytest.mark.parametrize("impl", impl_params(layers.LAYER_IMPLEMENTATIONS))
@pytest.mark.parametrize("mode", harness.MODES)
@pytest.mark.parametrize("cell", layers.LAYER_CELLS)
def test_layers(benchmark, layer_problem, layer_reference, layer_torch, threads, cell, mode, impl):
    shape = layers.LAYER_SHAPE
    p = layer_problem(cell, shape)
    module = layer_torch(cell, shape)  # None without torch
    weights = None if module is None else module.state_dict()
    ref = layer_reference(cell, shape, padded=impl == "native_padded")

    layers.check_layer_agreement(impl, p, mode, ref, weights, module)  # raises AgreementError

    run = layers.make_layer_runner(impl, p, mode, weights, module)
    s = p["shape"]
    benchmark.group = f"layers {cell} {mode} {shape}"
    benchmark.extra_info.update(
        {
            "section": "layers",
            "cell": cell,
            "shape": shape,
            "mode": mode,
            "impl": impl,
            "T": s.T,
            "B": s.B,
            "I": s.I,
            "H": s.H,
            "dtype": "float32",
            "threads": threads,
            "num_layers": p["num_layers"],
            "bidirectional": p["bidirectional"],
            "lengths": [int(v) for v in p["lengths"]],
        }
    )
    time_call(benchmark, run)
