"""A user's script, type-checked by tests/test_typing.py: mypy --strict must pass on it and find no
expression of type Any (so every fastrnn result it uses has a real type). It also runs."""

import os
import tempfile
from typing import Any

import numpy as np
from numpy.typing import NDArray

import fastrnn as fr

rng = np.random.default_rng(0)
x = rng.standard_normal((12, 3, 5)).astype(np.float32)  # (T, B, I)
lengths = np.array([12, 7, 3])

# Layers: forward, backward, gradients
lstm = fr.LSTM(5, 8, num_layers=2, bidirectional=True, seed=0)
y, (h_n, c_n) = lstm(x, lengths=lengths)
dx, (dh0, dc0) = lstm.backward(np.ones_like(y))
grads: dict[str, NDArray[np.floating[Any]]] = lstm.grads
first: fr.Parameter = lstm.parameters()[0]
print(y.shape, h_n.shape, c_n.dtype, dx.shape, dh0.shape, dc0.shape, sorted(grads)[0], first.name)

gru = fr.GRU(5, 4, batch_first=True, dtype="float64").eval()
out, h = gru(x.transpose(1, 0, 2).astype(np.float64))
print(out.shape, h.shape, fr.is_recurrent(gru))

# A model, a loss, an optimizer, clipping
vocab = fr.CharVocab.from_text("abcd")
ids: NDArray[np.int64] = vocab.encode("abcdabcdabcd")
inputs = np.array(ids[:-1]).reshape(-1, 1)
targets = np.array(ids[1:]).reshape(-1, 1)
model = fr.Sequential(fr.Embedding(len(vocab), 6, seed=0), fr.LSTM(6, 16, seed=0), fr.Linear(16, 4, seed=0))
opt = fr.optim.Adam(model.parameters(), lr=0.01)
loss, dlogits = fr.losses.cross_entropy(model(inputs), targets)
opt.zero_grad()
model.backward(dlogits)
norm: float = fr.clip_grad_norm(model.parameters(), max_norm=1.0)
opt.step()
mse, dpred = fr.losses.mse(y, np.zeros_like(y))
print(f"{loss:.3f} {norm:.3f} {mse:.3f}", dpred.dtype)

# Training, checkpoints, sampling
result: fr.TrainResult = fr.train(
    model, inputs[:, 0], targets[:, 0], optimizer=opt, bptt=4, batch_size=1, epochs=1, progress=False
)
path = os.path.join(tempfile.mkdtemp(), "model.npz")
fr.save_checkpoint(path, model, opt, extra={"vocab": vocab.to_dict()})
checkpoint: fr.Checkpoint = fr.load_checkpoint(path)
sampled, text = fr.sample(checkpoint.model, "ab", 5, temperature=0, vocab=vocab)
print(result.steps, len(sampled), text)

# The functional core
w_ih = rng.uniform(-0.3, 0.3, (4 * 8, 5)).astype(np.float32)
w_hh = rng.uniform(-0.3, 0.3, (4 * 8, 8)).astype(np.float32)
y1, h1, c1, cache = fr.functional.forward("lstm", x, None, None, w_ih, w_hh, None, None)
grads1 = fr.functional.backward(cache, np.ones_like(y1), None, None)
dw_hh: NDArray[np.floating[Any]] | None = grads1[4]
print(y1.shape, h1.shape, c1 is not None, dw_hh is not None)

# Backends, threads, Hopfield networks, initialisers
backend: str = fr.get_backend()
threads: int = fr.get_num_threads()
with fr.use_backend("numpy"):
    print(backend, threads, fr.info()["version"])
patterns = rng.choice([-1, 1], size=(2, 16))
net = fr.Hopfield(16, patterns)
states, converged, sweeps = net.recall(patterns, seed=0)
weights: NDArray[np.int32] = net.weights
fr.init.orthogonal_(lstm, seed=0)
print(states.shape, converged, sweeps, weights.shape)
