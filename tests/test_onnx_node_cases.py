"""ONNX's own backend node tests for RNN, LSTM and GRU, run through fastrnn.

Every case that ``onnx.backend.test`` generates for the three operators (the generators in
onnx/backend/test/case/node/{rnn,lstm,gru}.py, which are what writes onnx's data/node/test_*/
model.onnx and test_data_set_*/*.pb; the installed wheel does not ship those files, so the cases are
generated here and round-tripped through the same protobuf serialisation) is converted with
fastrnn.convert and run by fastrnn: its layers for forward and bidirectional nodes, the functional core
for direction="reverse" (a layer has no reverse-only mode). Outputs are compared with the outputs ONNX
computed with its own reference equations, on both backends.
"""

import warnings

import pytest

import fastrnn as fr
from fastrnn import convert as C
from fastrnn import functional as F

from helpers import assert_close, backend_params

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

OPS = ("RNN", "LSTM", "GRU")
NODE_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


def _generated_cases():
    """{name: (model, inputs, outputs)} for every generated case whose node is RNN, LSTM or GRU."""
    from onnx.backend.test.case import node

    with warnings.catch_warnings():  # other operators' generators warn (overflowing casts, log(0))
        warnings.simplefilter("ignore")
        cases = node.collect_testcases()
    out = {}
    for case in cases:
        if not any(n.op_type in OPS for n in case.model.graph.node):
            continue
        model = onnx.ModelProto.FromString(case.model.SerializeToString())  # as model.onnx holds it
        for inputs, outputs in case.data_sets:
            as_pb = lambda arrays: [  # noqa: E731  as test_data_set_*/*.pb hold them
                numpy_helper.to_array(
                    onnx.TensorProto.FromString(numpy_helper.from_array(a).SerializeToString())
                )
                for a in arrays
            ]
            out.setdefault(case.name, []).append((model, as_pb(inputs), as_pb(outputs)))
    return out


CASES = _generated_cases()


def test_every_operator_has_cases():
    ops = {data[0][0].graph.node[0].op_type for data in CASES.values()}
    assert ops == set(OPS), f"found cases for {sorted(ops)} only"
    assert len(CASES) >= 18  # onnx 1.23 generates 6 per operator


def _cell(op, attrs):
    if op == "LSTM":
        return "lstm"
    if op == "GRU":
        return "gru"
    acts = [a.decode() for a in attrs.get("activations", [b"Tanh"])]
    return {"Tanh": "rnn_tanh", "Relu": "rnn_relu"}[acts[0]]


def run_with_fastrnn(model, inputs, backend):
    """The graph's outputs, in order, computed by fastrnn from the node's weights converted with
    fastrnn.convert."""
    (node,) = model.graph.node
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    feeds = dict(zip((i.name for i in model.graph.input), inputs))
    given = {role: feeds[name] for role, name in zip(NODE_INPUTS, node.input) if name}
    cell = _cell(node.op_type, attrs)
    direction = attrs.get("direction", b"forward").decode()
    batch_first = attrs.get("layout", 0) == 1
    node_attrs = {
        "linear_before_reset": attrs.get("linear_before_reset", 0) if cell == "gru" else None,
        "activations": attrs.get("activations"),
        "clip": attrs.get("clip"),
        "input_forget": attrs.get("input_forget", 0),
    }
    weights = [given["W"], given["R"], given.get("B"), given.get("P")]
    x, lengths = given["X"], given.get("sequence_lens")
    # ONNX's initial states are (D, B, H), or (B, D, H) with layout=1; fastrnn's are (D, B, H).
    h0, c0 = (given.get(k) for k in ("initial_h", "initial_c"))
    if batch_first:
        h0, c0 = (None if s is None else s.transpose(1, 0, 2) for s in (h0, c0))
    D, H = given["W"].shape[0], given["R"].shape[-1]
    form = {"reset_after": node_attrs["linear_before_reset"] == 1} if cell == "gru" else {}

    if direction == "reverse":  # one direction, run backwards: the functional core's reverse=True
        (w,) = C.from_onnx(cell, *weights, **node_attrs)
        y, h_n, c_n, _ = F.forward(
            cell,
            x.transpose(1, 0, 2) if batch_first else x,
            None if h0 is None else h0[0],
            None if c0 is None else c0[0],
            w["w_ih"],
            w["w_hh"],
            w["b_ih"],
            w["b_hh"],
            w_ph=w.get("w_ph"),
            lengths=lengths,
            reverse=True,
            training=False,
            backend=backend,
            **form,
        )
        y, h_n = y[:, :, None, :], h_n[None]  # (T, B, D=1, H), (D=1, B, H)
        c_n = None if c_n is None else c_n[None]
        if batch_first:
            y = y.transpose(1, 0, 2, 3)
    else:
        state = C.onnx_to_state_dict(cell, *weights, layer=0, **node_attrs)
        kind = {"rnn_tanh": fr.RNN, "rnn_relu": fr.RNN, "lstm": fr.LSTM, "gru": fr.GRU}[cell]
        if cell.startswith("rnn_"):
            form["nonlinearity"] = cell[4:]
        if cell == "lstm":
            form["peepholes"] = "weight_ph_l0" in state
        layer = kind(
            x.shape[-1],
            H,
            bias="bias_ih_l0" in state,
            batch_first=batch_first,
            bidirectional=D == 2,
            dtype=x.dtype,
            backend=backend,
            **form,
        )
        layer.load_state_dict(state)
        layer.eval()
        y, states = layer(x, None if h0 is None else ((h0, c0) if cell == "lstm" else h0), lengths)
        h_n, c_n = states if cell == "lstm" else (states, None)
        y = y.reshape(y.shape[:2] + (D, H))  # (T, B, D, H), or (B, T, D, H) batch_first as ONNX's
        if not batch_first:
            y = y.transpose(0, 2, 1, 3)  # ONNX's (T, D, B, H)
    if batch_first:
        h_n, c_n = (None if s is None else s.transpose(1, 0, 2) for s in (h_n, c_n))
    by_name = {name: v for name, v in zip(node.output, (y, h_n, c_n)) if name}
    return [by_name[out.name] for out in model.graph.output]


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_node_case(name, backend):
    for model, inputs, expected in CASES[name]:
        got = run_with_fastrnn(model, inputs, backend)
        assert len(got) == len(expected)
        for out, g, e in zip(model.graph.output, got, expected):
            assert_close(g, e, f"{name}: {out.name}")
