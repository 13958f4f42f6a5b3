"""fastrnn as a drop-in backend for PyTorch models (needs torch; ``import fastrnn`` never imports
this package).

    import fastrnn.torch as frt
    lstm = frt.LSTM(input_size, hidden_size, num_layers=2, bidirectional=True)  # a torch.nn.LSTM
    model = frt.replace(model)  # every torch.nn.RNN/LSTM/GRU inside now runs on fastrnn

``RNN``, ``LSTM`` and ``GRU`` subclass torch.nn's classes and keep their constructors, Parameter
names and shapes, state_dict, to(), train()/eval(), pickling and torch.save. Their forward takes
and returns exactly what torch's does (a Tensor or a PackedSequence, sorted or not, batched or
not); outputs and all gradients match torch's to float rounding.

What runs natively: CPU float32/float64 tensors, with autograd through a torch.autograd.Function
(zero-copy views between tensors and arrays, no Python per time step, a PackedSequence mapped to
per-sequence lengths without repacking between layers). Inter-layer dropout draws torch's own
masks from torch's generator. Under no_grad / inference_mode no cache is kept.

torch.compile: dynamo refuses every RNN module unless ``torch._dynamo.config.allow_rnn = True``;
by default the layer runs eagerly (still natively) between compiled graphs. With allow_rnn a model
on Tensors traces as one graph, each layer a torch.library custom op (a PackedSequence breaks the
graph where its batch size is read).

What runs torch's own implementation instead: other devices (CUDA...) and dtypes (float16,
bfloat16), autocast, empty batches or sequences, and anything torch would reject (so its errors
are torch's). A backward with ``create_graph=True`` (double backward) differentiates the layer
recomputed in torch operations, so higher-order gradients are torch's too.

Threads: the kernels use torch.get_num_threads() threads, unless fastrnn.set_num_threads was
called or FASTRNN_NUM_THREADS is set.
"""

from ._modules import GRU, LSTM, RNN, replace

__all__ = ["RNN", "LSTM", "GRU", "replace"]
