// The contract of the time loops: forward and backpropagation through time for one recurrent layer
// in one direction. Pure C++ (no Python); the bindings (csrc/python/rnn.cpp) check every shape
// before calling, so the kernels assume the shapes below and check nothing.
//
// Sizes as in common.hpp (T, B, I, H, P) and G = gate_count(cell). Every array is row-major (last
// axis fastest) and C-contiguous. A sequence b takes the step at time t only while t < lengths[b];
// at the other steps it keeps its state and y[t, b] = 0. `reverse` processes t = T-1 .. 0 (so each
// sequence starts at its own last step).
//
// Aliasing: inputs are read-only and may alias each other; every output is written and must alias
// no other array of the call. The kernels allocate their own workspace (none inside the time loop).
#pragma once

#include "fastrnn/common.hpp"
#include "fastrnn/runtime/memory.hpp"

namespace fastrnn {

// The layer's parameters (read-only), PyTorch's layout: gate-major rows, gates in PyTorch's order.
template <class T>
struct Weights {
  const T* w_ih;            // (G*H, I)
  const T* w_hh;            // (G*H, P)
  const T* b_ih;            // (G*H), or null: no input bias
  const T* b_hh;            // (G*H), or null: no hidden bias
  const T* w_hr;            // (P, H), lstm with projection only; null: no projection (P == H)
  const T* w_ph = nullptr;  // (3*H) lstm peepholes (i, f, o), or null: none
  // gru: n = tanh(xg_n + r * (W_hn h + b_hn)) (PyTorch's), or when false the original GRU's
  // n = tanh(xg_n + W_hn (r * h) + b_hn), whose recurrent product needs r first.
  bool reset_after = true;
};

// What a training forward keeps for backward (forward sizes and fills it; backward reads it). One
// row per (t, b) where sequence b takes step t, in time order (not processing order), then b order;
// without lengths that is every (t, b), row t*B + b. `rows` below is that count.
//
// With `every` = k > 0 (set by the caller before forward) the per-row buffers stay empty: forward
// keeps only the state each k-step segment (in processing order) starts from, and backward
// recomputes each segment's rows from it (fastrnn/isa/checkpointed.hpp), with bitwise the same
// results as when everything is kept.
template <class T>
struct Saved {
  AlignedBuffer<T> x_rows;  // (rows, I) those rows of x; only with lengths (else empty)
  AlignedBuffer<T> h_prev;  // (rows, P) the state step t started from
  AlignedBuffer<T> gates;   // (rows, G*H) activated gates; rnn: the new h
  AlignedBuffer<T> c_prev;  // (rows, H) lstm: the cell state step t started from
  AlignedBuffer<T> c_new;   // (rows, H) lstm: the cell state step t made
  AlignedBuffer<T> m;       // (rows, H) lstm with projection: o * tanh(c_new), before W_hr
  AlignedBuffer<T> gh_n;    // (rows, H) reset-after gru: W_hn h_prev + b_hn

  index_t every = 0;         // steps per checkpoint segment; 0: every row kept
  AlignedBuffer<T> h_bound;  // (segments, B, P) the state each segment starts from
  AlignedBuffer<T> c_bound;  // (segments, B, H) lstm: its cell state
};

template <class T>
struct ForwardArgs {
  const T* x;              // (T, B, I) input
  const T* h0;             // (B, P) initial state
  const T* c0;             // (B, H) initial cell state, lstm only (else null)
  const index_t* lengths;  // (B), 0 <= lengths[b] <= T; null: every sequence has length T
  T* y;                    // (T, B, P) output: the state after each step (0 where not taken)
  T* h_n;                  // (B, P) output: the final state (each sequence's own last step)
  T* c_n;                  // (B, H) output: the final cell state, lstm only (else null)
  Saved<T>* saved;         // training: filled for backward (owned by the caller); null: inference
};

template <class T>
struct BackwardArgs {
  const T* x;              // (T, B, I) the forward's x (read only without lengths)
  const index_t* lengths;  // (B) the forward's lengths, or null
  const Saved<T>* saved;   // what the training forward saved, with the same Weights and reverse
                           // (the biases are read only to recompute checkpointed segments)
  const T* dy;             // (T, B, P) dLoss/dy
  const T* dh_n;           // (B, P) dLoss/dh_n
  const T* dc_n;           // (B, H) dLoss/dc_n, lstm only (else null)
  T* dx;                   // (T, B, I) output (0 where a sequence had ended), or null: not
                           // wanted (its product is skipped)
  T* dh0;                  // (B, P) output
  T* dc0;                  // (B, H) output, lstm only (else null)
  T* dw_ih;                // (G*H, I) output
  T* dw_hh;                // (G*H, P) output
  T* db_ih;                // (G*H) output, or null: not wanted
  T* db_hh;                // (G*H) output, or null: not wanted
  T* dw_hr;                // (P, H) output, with projection only (else null)
  double* dh_norms;        // (T) output: ||dLoss/dh_t|| over the sequences active at t, or null
  T* dw_ph = nullptr;      // (3*H) output, with peepholes only (else null)
};

// Run on the instruction set isa.hpp picks; denormals are flushed inside, the caller's mode kept.
template <class T>
void forward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a);
template <class T>
void backward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w,
              const BackwardArgs<T>& a);

}  // namespace fastrnn
