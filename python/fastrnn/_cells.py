"""The cells fastrnn knows: their names and how many gates each has (the G in G*H rows of w_ih).

Every layer, backend and converter takes these facts from here; the kernels hold the same table in
csrc (a cell's gates are stacked in PyTorch's order: i, f, g, o for lstm; r, z, n for gru).
"""

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
CELLS = tuple(GATES)  # rnn_tanh, rnn_relu, lstm, gru

# fastrnn.RNN(nonlinearity=...) -> the cell it runs
RNN_CELLS = {"tanh": "rnn_tanh", "relu": "rnn_relu"}

# A layer class's name (as a checkpoint records it) -> its gate count
LAYER_GATES = {"RNN": GATES["rnn_tanh"], "GRU": GATES["gru"], "LSTM": GATES["lstm"]}
