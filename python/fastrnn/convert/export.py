"""export_onnx: a fastrnn layer or Sequential as one ONNX model (inference, eval semantics).

Each piece maps onto standard ONNX operators: Embedding -> Gather, Linear -> MatMul (+ Add), and
each layer of an RNN / LSTM / GRU -> one RNN / LSTM / GRU node (both directions in one node), whose
output (T, D, B, H) is laid out as fastrnn's (T, B, D*H) by a Transpose and a Reshape. A batch_first
layer transposes its input to time-major and its output back, as fastrnn does inside the layer.
"""

import os

import numpy as np

from .._checks import flag, integer
from ..layers import LSTM, is_recurrent
from ..linear import Embedding, Linear
from ..sequential import Sequential
from .onnx_weights import state_dict_to_onnx

DEFAULT_OPSET = 17
MIN_OPSET = 9  # IR 4: initializers need not be graph inputs; every operator used exists unchanged


def _chain(model):
    """[(name prefix, layer)] in order, nested Sequentials flattened (prefixes as in state_dict)."""
    if isinstance(model, Sequential):
        out = []
        for i, layer in enumerate(model):
            out += [(f"{i}.{prefix}", inner) for prefix, inner in _chain(layer)]
        return out
    return [("", model)]


def _check_chain(chain):
    """Refuses what the export cannot express exactly, naming the layer."""
    if not chain:
        raise ValueError("export_onnx: the Sequential has no layers")
    recurrent = [layer for _, layer in chain if is_recurrent(layer)]
    for k, (prefix, layer) in enumerate(chain):
        where = f"layer {prefix[:-1]!r}" if prefix else "the model"
        if not (is_recurrent(layer) or isinstance(layer, (Linear, Embedding))):
            raise TypeError(
                f"export_onnx: {where} is a {type(layer).__name__}; only fastrnn Embedding, Linear, "
                "RNN, LSTM and GRU layers (alone or in a Sequential) can be exported"
            )
        if isinstance(layer, Embedding) and k:
            raise ValueError(
                f"export_onnx: {where} is an Embedding after another layer; an Embedding takes "
                "integer indices, so it can only be the first layer"
            )
        if isinstance(layer, LSTM) and layer.proj_size:
            raise ValueError(
                f"export_onnx: {where} is an LSTM with a projection (proj_size={layer.proj_size}): "
                "ONNX's LSTM operator has no projection"
            )
        if is_recurrent(layer) and layer.batch_first != recurrent[0].batch_first:
            raise ValueError(
                f"export_onnx: {where} has batch_first={layer.batch_first} but the first recurrent "
                f"layer has batch_first={recurrent[0].batch_first}; the exported input and output "
                "have one layout"
            )
        if layer.dtype != chain[0][1].dtype:
            raise TypeError(
                f"export_onnx: {where} has dtype {layer.dtype} but the first layer has "
                f"{chain[0][1].dtype}; a model runs in one dtype"
            )


def _opset(opset, onnx):
    if opset is None:
        return DEFAULT_OPSET
    top = onnx.defs.onnx_opset_version()
    opset = integer("opset", opset, MIN_OPSET)
    if opset > top:
        raise ValueError(f"opset must be at most {top} (the newest this onnx knows), got {opset}")
    return opset


class _Graph:
    """The nodes and initializers being built, with the helpers that add them."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.nodes, self.initializers = [], []
        self.elem_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def const(self, name, value):
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op, inputs, outputs, name, **attributes):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outputs, name=name, **attributes))
        return outputs[0] if len(outputs) == 1 else outputs

    def transpose_tb(self, x, name):
        """(T, B, F) <-> (B, T, F)."""
        return self.node("Transpose", [x], [name], name, perm=[1, 0, 2])


def _linear(g, prefix, layer, x):
    params = layer.state_dict()
    y = g.node(
        "MatMul",
        [x, g.const(f"{prefix}weight_T", params["weight"].T)],
        [f"{prefix}matmul"],
        f"{prefix}MatMul",
    )
    if layer.bias:
        y = g.node("Add", [y, g.const(f"{prefix}bias", params["bias"])], [f"{prefix}add"], f"{prefix}Add")
    return y


def _recurrent(g, prefix, layer, x, lengths):
    """The layer's output (layer's own layout) and its final states [h_n (, c_n)] (D*L, B, H)."""
    if layer.batch_first:
        x = g.transpose_tb(x, f"{prefix}input_time_major")
    D, H = layer.num_directions, layer.hidden_size
    states = {"h": [], "c": []}
    out_shape = g.const(f"{prefix}output_shape", np.array([0, 0, D * H], np.int64))  # 0: keep T, B
    for k in range(layer.num_layers):
        conv = state_dict_to_onnx(layer.cell, layer, layer=k)
        name = f"{prefix}{conv['op_type']}_l{k}"
        inputs = [x, g.const(f"{prefix}W_l{k}", conv["W"]), g.const(f"{prefix}R_l{k}", conv["R"])]
        inputs.append("" if conv["B"] is None else g.const(f"{prefix}B_l{k}", conv["B"]))
        inputs.append(lengths or "")
        if conv["P"] is not None:
            inputs += ["", "", g.const(f"{prefix}P_l{k}", conv["P"])]  # no initial_h, initial_c
        outputs = [f"{name}_Y", f"{name}_Y_h"] + ([f"{name}_Y_c"] if layer.cell == "lstm" else [])
        g.node(conv["op_type"], inputs, outputs, name, **conv["attributes"])
        states["h"].append(outputs[1])
        if layer.cell == "lstm":
            states["c"].append(outputs[2])
        # Y (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H): directions side by side, as fastrnn stacks.
        y = g.node("Transpose", [outputs[0]], [f"{name}_Y_tbdh"], f"{name}_Transpose", perm=[0, 2, 1, 3])
        x = g.node("Reshape", [y, out_shape], [f"{name}_output"], f"{name}_Reshape")
    if layer.batch_first:
        x = g.transpose_tb(x, f"{prefix}output_batch_first")
    finals = []
    for kind in ("h", "c") if layer.cell == "lstm" else ("h",):
        out = g.node("Concat", states[kind], [f"{prefix}{kind}_n"], f"{prefix}{kind}_n", axis=0)
        finals.append((out, layer.num_layers * D, H))
    return x, finals


def export_onnx(model, path, opset=None, *, lengths=False):
    """Writes ``model`` (a fastrnn Embedding / Linear / RNN / LSTM / GRU, or a Sequential of them) to
    ``path`` as one ONNX model computing what ``model`` computes in eval mode (no dropout; zero
    initial states), and returns the ``onnx.ModelProto``. Needs the ``onnx`` package (the ``onnx``
    extra); ``opset`` defaults to 17 (any from 9 to the newest the installed onnx knows).

    Inputs: ``input``, the model's input with dynamic time and batch axes: (T, B, I) floats of the
    model's dtype, or (T, B) int64 indices when the first layer is an Embedding; (B, T, ...) when the
    first recurrent layer is batch_first. With ``lengths=True`` a second input ``lengths`` (B,) int64
    gives each sequence's length (0 <= length <= T), fed to every recurrent node as ONNX's
    ``sequence_lens``: the same semantics as fastrnn's ``lengths``.

    Outputs: ``output``, the model's output; then every recurrent layer's final states, named by
    its state_dict prefix: ``h_n`` (and ``c_n`` for an LSTM) for a lone layer, ``"1.h_n"`` for layer 1
    of a Sequential, shaped (D*num_layers, B, H) as fastrnn returns them.

    Everything fastrnn's layers do at inference is exported: stacked layers, bidirectional,
    batch_first, both GRU formulations (``reset_after`` -> ``linear_before_reset``), LSTM peepholes
    (-> ``P``), RNN tanh / relu, with or without biases. An LSTM with a projection (``proj_size``) is
    refused: ONNX's LSTM has no projection. ONNX Runtime runs these operators in float32 only; a
    float64 model exports as a valid float64 ONNX model for runtimes that take it.
    """
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            "export_onnx needs the onnx package: pip install onnx (or fastrnn's onnx extra)"
        ) from e
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    opset = _opset(opset, onnx)
    lengths = flag("lengths", lengths)
    chain = _chain(model)
    _check_chain(chain)
    recurrent = [layer for _, layer in chain if is_recurrent(layer)]
    if lengths and not recurrent:
        raise ValueError("export_onnx: lengths=True needs a recurrent layer (RNN, LSTM or GRU) in the model")

    helper, TensorProto = onnx.helper, onnx.TensorProto
    g = _Graph(onnx, chain[0][1].dtype)
    axes = ["batch", "time"] if recurrent and recurrent[0].batch_first else ["time", "batch"]
    first = chain[0][1]
    ids = isinstance(first, Embedding)
    in_features = [] if ids else [first.in_features if isinstance(first, Linear) else first.input_size]
    inputs = [
        helper.make_tensor_value_info("input", TensorProto.INT64 if ids else g.elem_type, axes + in_features)
    ]
    seq_lens = None
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]))
        seq_lens = g.node("Cast", ["lengths"], ["lengths_int32"], "lengths_Cast", to=TensorProto.INT32)

    x, features, finals = "input", None, []
    for prefix, layer in chain:
        if isinstance(layer, Embedding):
            weight = g.const(f"{prefix}weight", layer.state_dict()["weight"])
            x = g.node("Gather", [weight, x], [f"{prefix}gather"], f"{prefix}Gather", axis=0)
            features = layer.embedding_dim
        elif isinstance(layer, Linear):
            x, features = _linear(g, prefix, layer, x), layer.out_features
        else:
            x, states = _recurrent(g, prefix, layer, x, seq_lens)
            features = layer.num_directions * layer.hidden_size
            finals += states
    g.node("Identity", [x], ["output"], "output")
    outputs = [helper.make_tensor_value_info("output", g.elem_type, axes + [features])]
    outputs += [helper.make_tensor_value_info(n, g.elem_type, [rows, "batch", H]) for n, rows, H in finals]

    graph = helper.make_graph(g.nodes, "fastrnn", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="fastrnn",
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, os.fspath(path))
    return proto
