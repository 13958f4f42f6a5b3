// What every part of the kernels shares: the index type, the cells and the sizes of one layer.
// Pure C++ (no Python).
#pragma once

#include <cstdint>

namespace fastrnn {

// Element counts and offsets: 64-bit, so T * B * G * H never wraps (the bindings check it fits).
using index_t = std::int64_t;

enum class Cell { rnn_tanh, rnn_relu, lstm, gru };

// Gates per hidden unit: 1 (rnn), 4 (lstm: i, f, g, o), 3 (gru: r, z, n), in PyTorch's order.
inline int gate_count(Cell cell) { return cell == Cell::lstm ? 4 : cell == Cell::gru ? 3 : 1; }

// The sizes of one layer in one direction: T steps, B sequences, I inputs, H hidden units and P the
// recurrent state size (H, or the LSTM projection size).
struct Dims {
  index_t T, B, I, H, P;
};

}  // namespace fastrnn
