"""fastrnn.convert.to_onnx weights in real ONNX nodes: one RNN / LSTM / GRU node per cell variant
(both GRU formulations, LSTM peepholes through the node's P input), with initial states, run by
ONNX Runtime, gives fastrnn's outputs. (Whole models: test_export_onnx.py.)"""

import numpy as np
import pytest
from convert_reference import VARIANTS, fastrnn_forward, inputs, weights

from fastrnn import convert as C

from helpers import assert_close

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _session(node, in_specs, outputs, initializers):
    flt = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "fastrnn_convert_test",
        [helper.make_tensor_value_info(n, flt, s) for n, s in in_specs],
        [helper.make_tensor_value_info(n, flt, [None] * (4 if n == "Y" else 3)) for n in outputs],
        [numpy_helper.from_array(np.ascontiguousarray(v, np.float32), n) for n, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_onnxruntime_matches_fastrnn(variant, bidirectional, bias):
    cell, reset_after, peepholes = VARIANTS[variant]
    dirs = [weights(cell, np.float32, bias, seed=50, peepholes=peepholes)]
    if bidirectional:
        dirs.append(weights(cell, np.float32, bias, seed=51, peepholes=peepholes))
    D = len(dirs)
    x, h0, c0 = inputs(cell, np.float32, D=D)
    conv = C.to_onnx(cell, *dirs, reset_after=reset_after)
    init = {k: conv[k] for k in ("W", "R", "B", "P") if conv[k] is not None}
    # X, W, R, B, sequence_lens, initial_h, initial_c, P ("" = absent)
    node_inputs = ["X", "W", "R", "B" if bias else "", "", "initial_h"]
    feeds = {"X": x, "initial_h": h0}
    in_specs = [("X", x.shape), ("initial_h", h0.shape)]
    outputs = ["Y", "Y_h"]
    if cell == "lstm":
        node_inputs += ["initial_c", "P" if peepholes else ""]
        feeds["initial_c"] = c0
        in_specs.append(("initial_c", c0.shape))
        outputs.append("Y_c")
    node = helper.make_node(conv["op_type"], node_inputs, outputs, **conv["attributes"])
    got = dict(zip(outputs, _session(node, in_specs, outputs, init).run(outputs, feeds)))
    for d, w in enumerate(dirs):
        y, h_n, c_n = fastrnn_forward(cell, x, h0[d], None if c0 is None else c0[d], w, d == 1, reset_after)
        assert_close(got["Y"][:, d], y, f"Y[:, {d}]")
        assert_close(got["Y_h"][d], h_n, f"Y_h[{d}]")
        if cell == "lstm":
            assert_close(got["Y_c"][d], c_n, f"Y_c[{d}]")
