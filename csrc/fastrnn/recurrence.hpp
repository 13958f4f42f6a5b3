// The kernels' public interface: forward and backpropagation through time for one recurrent layer in
// one direction. Pure C++ (no Python); bindings.cpp checks every shape before calling.
//
// Sizes: T steps, B sequences, I inputs, H hidden units, G gates (1 rnn, 4 lstm i,f,g,o, 3 gru r,z,n),
// P recurrent state size (H, or the LSTM projection size). All arrays row-major, last axis fastest:
//   x (T, B, I)   w_ih (G*H, I)   w_hh (G*H, P)   b_ih, b_hh (G*H)   w_hr (P, H)
//   h0, h_n (B, P)   c0, c_n (B, H)   y (T, B, P)   lengths (B), 0 <= lengths[b] <= T
// A sequence takes the step at time t only while t < lengths[b]; otherwise it keeps its state and
// y[t, b] = 0. reverse processes t = T-1 .. 0 (each sequence so starts at its own last step).
#pragma once

#include <cstdint>

#include "fastrnn/memory.hpp"

namespace fastrnn {

using index_t = std::int64_t;

enum class Cell { rnn_tanh, rnn_relu, lstm, gru };

inline int gate_count(Cell cell) {
  return cell == Cell::lstm ? 4 : cell == Cell::gru ? 3 : 1;
}

struct Dims {
  index_t T, B, I, H, P;
};

// The layer's parameters. Biases and w_hr may be null (absent).
template <class T>
struct Weights {
  const T* w_ih;
  const T* w_hh;
  const T* b_ih;
  const T* b_hh;
  const T* w_hr;
};

// What a training forward keeps for backward: one row per (t, b) where sequence b takes step t, in
// time order (not processing order), then b order; without lengths that is every (t, b), row t*B+b.
template <class T>
struct Saved {
  AlignedBuffer<T> x_rows;    // (rows, I) those rows of x; only with lengths
  AlignedBuffer<T> h_prev;    // (rows, P) the state step t started from
  AlignedBuffer<T> gates;     // (rows, G*H) activated gates; rnn: the new h
  AlignedBuffer<T> c_prev;    // (rows, H) lstm
  AlignedBuffer<T> c_new;     // (rows, H) lstm
  AlignedBuffer<T> m;         // (rows, H) lstm with projection: o * tanh(c_new)
  AlignedBuffer<T> gh_n;      // (rows, H) gru: W_hn h_prev + b_hn
};

template <class T>
struct ForwardArgs {
  const T* x;
  const T* h0;
  const T* c0;               // lstm only
  const index_t* lengths;    // or null: every sequence has length T
  T* y;
  T* h_n;
  T* c_n;                    // lstm only
  Saved<T>* saved;           // null for inference
};

template <class T>
struct BackwardArgs {
  const T* x;                // the forward's x
  const index_t* lengths;    // the forward's lengths, or null
  const Saved<T>* saved;
  const T* dy;               // (T, B, P)
  const T* dh_n;             // (B, P)
  const T* dc_n;             // (B, H) lstm only
  T* dx;                     // (T, B, I)
  T* dh0;                    // (B, P)
  T* dc0;                    // (B, H) lstm only
  T* dw_ih;                  // (G*H, I)
  T* dw_hh;                  // (G*H, P)
  T* db_ih;                  // (G*H) or null
  T* db_hh;                  // (G*H) or null
  T* dw_hr;                  // (P, H) or null
  double* dh_norms;          // (T): ||dLoss/dh_t|| over the sequences active at t (diagnostics)
};

// Dispatching entry points (dispatch.cpp): run the best compiled instruction set for this CPU.
template <class T>
void forward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a);
template <class T>
void backward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const BackwardArgs<T>& a);

// Explicit instantiations of forward/backward for float and double, in the namespace it is used in
// (the dispatching entry points, or one instruction set's copy).
#define FASTRNN_INSTANTIATE_KERNELS()                                                              \
  template void forward<float>(Cell, const Dims&, bool, const Weights<float>&,                     \
                               const ForwardArgs<float>&);                                         \
  template void forward<double>(Cell, const Dims&, bool, const Weights<double>&,                   \
                                const ForwardArgs<double>&);                                       \
  template void backward<float>(Cell, const Dims&, bool, const Weights<float>&,                    \
                                const BackwardArgs<float>&);                                       \
  template void backward<double>(Cell, const Dims&, bool, const Weights<double>&,                  \
                                 const BackwardArgs<double>&);

// One copy of the kernels per instruction set (recurrence.cpp compiled with each ISA's flags).
#define FASTRNN_DECLARE_ISA(isa)                                                                    \
  namespace isa {                                                                                  \
  template <class T>                                                                               \
  void forward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w,                        \
               const ForwardArgs<T>& a);                                                           \
  template <class T>                                                                               \
  void backward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w,                       \
                const BackwardArgs<T>& a);                                                         \
  }
FASTRNN_DECLARE_ISA(portable)
FASTRNN_DECLARE_ISA(avx2)
FASTRNN_DECLARE_ISA(avx512)
#undef FASTRNN_DECLARE_ISA

// Which instruction sets were compiled in, which one runs, and a way to force one (for tests).
const char* const* compiled_paths();  // null-terminated, best first: {"avx512", "avx2", "portable"}
const char* active_path();
bool set_path(const char* name);      // false when that path is not compiled or not supported here

}  // namespace fastrnn
