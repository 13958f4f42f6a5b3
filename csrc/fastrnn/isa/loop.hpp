// How the time loops (forward_pass.hpp, backward_pass.hpp) lay out their work: which rows a step
// has, and which part of every step each thread owns. Compiled once per instruction set, with the
// loops.
#pragma once

#ifndef FASTRNN_ISA
#error "loop.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <algorithm>
#include <cstring>
#include <vector>

#include "fastrnn/common.hpp"
#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/runtime/memory.hpp"
#include "fastrnn/runtime/threads.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

template <class T>
inline void copy_n(T* dst, const T* src, index_t n) {
  if (n > 0) std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(n));
}

template <class T>
inline void zero_n(T* dst, index_t n) {
  if (n > 0) std::fill(dst, dst + n, T(0));
}

// Row b of a (rows x stride) array that may be absent (null).
template <class T>
inline T* row(T* p, index_t b, index_t stride) {
  return p ? p + b * stride : nullptr;
}

inline bool is_active(const index_t* lengths, index_t b, index_t t) {
  return lengths == nullptr || t < lengths[b];
}

// The sequences that take step t, in order, into rows; returns how many.
inline index_t active_rows(const index_t* lengths, index_t B, index_t t, index_t* rows) {
  index_t n = 0;
  for (index_t b = 0; b < B; ++b)
    if (is_active(lengths, b, t)) rows[n++] = b;
  return n;
}

// Where a call's values per (t, b) live (xg, what training saves, the gate gradients): only the
// sequences that take step t have rows, consecutive from first[t] in b order; without lengths, row
// t * B + b. So no product, cell math or weight gradient is computed for padding: with lengths
// spread over [T/2, T] that is a quarter of the padded batch's rows.
struct StepRows {
  std::vector<index_t> first;  // (T + 1): the first row of each step; first[T] = all rows
  StepRows(const index_t* lengths, index_t T, index_t B) : first(static_cast<std::size_t>(T + 1)) {
    index_t r = 0;
    for (index_t t = 0; t < T; ++t) {
      first[t] = r;
      for (index_t b = 0; b < B; ++b) r += is_active(lengths, b, t) ? 1 : 0;
    }
    first[T] = r;
  }
  index_t count() const { return first.back(); }
};

// dst row i = src row rows[i] (n rows of width w, strides ld).
template <class T>
inline void gather_rows(index_t n, const index_t* rows, const T* src, index_t ld_src, index_t w,
                        T* dst, index_t ld_dst) {
  for (index_t i = 0; i < n; ++i) copy_n(dst + i * ld_dst, src + rows[i] * ld_src, w);
}

// The static split of a time loop over n threads: thread tid owns hidden units [u0, u1) (all G
// gates of them: the cell math needs nothing from other threads) and state columns [p0, p1), both
// whole NR-wide panels, at every step, so its slice of the weights stays in its own cache.
// Or all units and columns of rows [r0, r1) of every step (split_batch_for).
struct Split {
  index_t u0, u1, ub0, ub1;  // units and their panel indices
  index_t p0, p1, pb0, pb1;  // state columns and their panel indices
  index_t r0 = 0, r1 = kAllRows;
  static constexpr index_t kAllRows = index_t(1) << 62;
  // The rows of a step with n rows that this thread takes.
  index_t first(index_t n) const { return std::min(r0, n); }
  index_t last(index_t n) const { return std::min(r1, n); }
};

// Threads own whole groups of panels, each group a whole number of 64-byte cache lines wide, so
// that no line of a step's rows (the state, the gate products, y) is written by two threads. The
// AVX2 panel is 24 floats (96 bytes): split at single panels, the threads' stores met in one line
// at every boundary at every step, and an LSTM or GRU at T=100, B=1, H=128 ran 0.7-0.8x as fast on
// 2 threads as on 1.
template <class T>
constexpr index_t panels_per_group() {
  index_t g = 1;
  while (g * Tile<T>::NR * index_t(sizeof(T)) % 64 != 0) ++g;
  return g;
}

template <class T>
Split split_for(int tid, int n, index_t H, index_t P) {
  constexpr index_t NR = Tile<T>::NR, g = panels_per_group<T>();
  const index_t hb = (H + NR - 1) / NR, pb = (P + NR - 1) / NR;
  const index_t hg = (hb + g - 1) / g, pg = (pb + g - 1) / g;  // groups
  Split s;
  s.ub0 = std::min(hb, hg * tid / n * g);
  s.ub1 = std::min(hb, hg * (tid + 1) / n * g);
  s.pb0 = std::min(pb, pg * tid / n * g);
  s.pb1 = std::min(pb, pg * (tid + 1) / n * g);
  s.u0 = std::min(s.ub0 * NR, H);
  s.u1 = std::min(s.ub1 * NR, H);
  s.p0 = std::min(s.pb0 * NR, P);
  s.p1 = std::min(s.pb1 * NR, P);
  return s;
}

// When every sequence takes every step, the threads may split the batch instead: each runs its own
// whole MR-row tiles of sequences through every step (the same tiles as one thread: the same
// bits), all units, and no barrier per step is needed, since no thread reads another's rows. With
// the units split, the two threads of an RNN at T=50, B=64, H=512 met at the per-step barrier with
// 22 us of spin between them per 65 us step (the VM's scheduling jitter, paid at every step).
// Each thread then reads all of W_hh at every step instead of its share, so only while that fits
// this core's L2.
template <class T>
bool split_batch(int nthreads, bool lengths, index_t B, index_t weight_values) {
  return nthreads > 1 && !lengths && B >= nthreads * Tile<T>::MR &&
         double(weight_values) * sizeof(T) <= double(cache_sizes().l2);
}

template <class T>
Split split_batch_for(int tid, int n, index_t B, index_t H, index_t P) {
  constexpr index_t NR = Tile<T>::NR, MR = Tile<T>::MR;
  const index_t tiles = (B + MR - 1) / MR;
  Split s;
  s.ub0 = s.pb0 = s.u0 = s.p0 = 0;
  s.ub1 = (H + NR - 1) / NR;
  s.pb1 = (P + NR - 1) / NR;
  s.u1 = H;
  s.p1 = P;
  s.r0 = std::min(B, tiles * tid / n * MR);
  s.r1 = std::min(B, tiles * (tid + 1) / n * MR);
  return s;
}

// Threads for a time loop: each must own at least one group of panels and enough work per step to
// pay for the barrier(s) every step costs. Measured at T=100, B=1, H=128 on 2 threads: a tanh RNN
// (33 kflop per step) ran 0.53-0.87x as fast as on 1 thread (inference) and 0.55-1.16x
// (training), a GRU (98 kflop) 1.2-1.4x, an LSTM (131 kflop) 1.5x: below 4e4 flops a step stays on
// one thread.
template <class T>
int loop_threads(index_t B, index_t GH, index_t H, index_t P) {
  constexpr index_t span = Tile<T>::NR * panels_per_group<T>();
  const double flops_per_step = 2.0 * double(B) * double(GH) * double(P);
  const double grain = 4e4 * ThreadTeam::global().grain();
  const index_t by_size =
      grain > 0 ? static_cast<index_t>(std::min(flops_per_step / grain, 1e6)) + 1 : 1 << 20;
  const index_t groups = std::min((H + span - 1) / span, (P + span - 1) / span);
  const index_t n = std::max<index_t>(1, std::min<index_t>({by_size, groups, 1 << 20}));
  return ThreadTeam::global().available(static_cast<int>(n));
}

// dx at the times [t0, t1) (all of them, or a checkpointed segment), from its rows (src: the
// first one's dx); zeros where a sequence had ended.
template <class T>
void scatter_dx(const index_t* lengths, index_t B, index_t I, index_t t0, index_t t1, const T* src,
                T* dx) {
  for (index_t t = t0, r = 0; t < t1; ++t)
    for (index_t b = 0; b < B; ++b) {
      T* dst = dx + (t * B + b) * I;
      if (is_active(lengths, b, t))
        copy_n(dst, src + (r++) * I, I);
      else
        zero_n(dst, I);
    }
}

// A scratch buffer of n elements (the loops allocate every one before a job starts: a job that
// waits on a barrier must never throw). Scratch never leaves the call, so its big blocks are
// cached for the next one (memory.hpp).
template <class T>
AlignedBuffer<T> buffer(index_t n) {
  return AlignedBuffer<T>(static_cast<std::size_t>(n), Reuse::scratch);
}

// One step as one thread sees it: time t, the step's first row r0 in the per-row arrays, the n
// sequences that take it (act[0..n)), the state it starts from (cur) and the one it makes (next).
template <class T>
struct Step {
  index_t t, r0, n;
  const index_t* act;
  const T* cur;
  T* next;
};

// What one thread of a time loop owns: its split and its list of the step's sequences.
struct Lane {
  int tid;
  Split sp;
  index_t pw, uw;  // widths of its state columns and of its units
  index_t* act;
};

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
