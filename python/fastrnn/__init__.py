"""fastrnn: fast CPU recurrent neural networks (RNN, LSTM, GRU) with C++ forward and BPTT kernels."""

from . import convert, datasets, diagnostics, functional, generate, init, losses, optim
from ._backend import get_backend, get_num_threads, info, set_backend, set_num_threads, use_backend
from ._module import Parameter
from ._version import __version__
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .clip import clip_grad_norm, clip_grad_value
from .generate import CharVocab, Stepper, sample
from .hopfield import Hopfield
from .layers import GRU, LSTM, RNN, is_recurrent
from .linear import Embedding, Linear
from .sequential import Sequential
from .training import TrainResult, batchify, evaluate, train

__all__ = [
    "functional",
    "convert",
    "losses",
    "RNN",
    "LSTM",
    "GRU",
    "Linear",
    "Embedding",
    "Sequential",
    "is_recurrent",
    "Parameter",
    "init",
    "optim",
    "clip_grad_norm",
    "clip_grad_value",
    "generate",
    "Stepper",
    "sample",
    "CharVocab",
    "save_checkpoint",
    "load_checkpoint",
    "Checkpoint",
    "CheckpointError",
    "train",
    "evaluate",
    "batchify",
    "TrainResult",
    "datasets",
    "diagnostics",
    "Hopfield",
    "get_backend",
    "set_backend",
    "use_backend",
    "get_num_threads",
    "set_num_threads",
    "info",
    "__version__",
]

get_num_threads()  # applies FASTRNN_NUM_THREADS (default 1) to the native thread team
