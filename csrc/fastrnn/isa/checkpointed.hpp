// Checkpointed training (Saved::every = k > 0): forward keeps only the state each k-step segment
// (in processing order) starts from; backward takes the segments from the last, recomputes each
// one's saved rows from its state into a segment-sized buffer, runs its reverse loop and adds its
// rows to the gradients. Memory: one segment's rows instead of all T*B.
//
// The results are bitwise those of keeping everything (same CPU path and thread count), because
// every value is made by the same operations in the same order:
// - the steps (cell math, recurrent products, their thread split) start from the same states;
// - a row-wise product (the input projection, dx) gives a row the bits of the micro-tile it lands
//   in, whose row count sets the kernel's accumulation order (gemm.hpp): each segment's rows are
//   widened to whole MR-row tiles (a few extra rows computed and dropped), so that every tile lands
//   where it does in the product over all rows, the ragged one only at the very end;
// - the reductions over rows (weight and bias gradients) go through weight_gradients.hpp, which
//   blocks them at fixed rows in backward's order however the rows arrive.
#pragma once

#ifndef FASTRNN_ISA
#error "checkpointed.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <algorithm>
#include <stdexcept>

#include "fastrnn/isa/cells.hpp"
#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/isa/loop.hpp"
#include "fastrnn/isa/weight_gradients.hpp"
#include "fastrnn/recurrence.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

// Segment i: processing-order steps [s0, s1), the times [t0, t1) they are, their rows [lo, hi)
// (rows are in time order) and those widened to whole micro-tiles, [alo, ahi).
struct Segment {
  index_t s0, s1, t0, t1, lo, hi, alo, ahi;
};

inline Segment segment_of(const StepRows& steps, index_t T, bool reverse, index_t k, index_t i,
                          index_t MR) {
  Segment g;
  g.s0 = i * k;
  g.s1 = std::min(T, g.s0 + k);
  g.t0 = reverse ? T - g.s1 : g.s0;
  g.t1 = reverse ? T - g.s0 : g.s1;
  g.lo = steps.first[g.t0];
  g.hi = steps.first[g.t1];
  g.alo = g.lo - g.lo % MR;
  g.ahi = std::min(steps.count(), (g.hi + MR - 1) / MR * MR);
  return g;
}

inline index_t segment_count(index_t T, index_t k) { return T / k + (T % k ? 1 : 0); }

// The most widened rows any segment has.
inline index_t widest_segment(const StepRows& steps, index_t T, bool reverse, index_t k,
                              index_t MR) {
  index_t w = 0;
  for (index_t i = 0; i < segment_count(T, k); ++i) {
    const Segment g = segment_of(steps, T, reverse, k, i, MR);
    w = std::max(w, g.ahi - g.alo);
  }
  return w;
}

// x's rows [lo, hi) as the per-row arrays number them: x itself without lengths, else gathered
// into buf.
template <class T>
const T* x_rows(const StepRows& steps, const index_t* lengths, const T* x, index_t B, index_t I,
                index_t lo, index_t hi, AlignedBuffer<T>& buf) {
  if (!lengths) return x + lo * I;
  if (hi <= lo) return buf.data();
  const auto& f = steps.first;  // the last step that starts at or before row lo
  index_t t = static_cast<index_t>(std::upper_bound(f.begin(), f.end(), lo) - f.begin()) - 1;
  for (index_t r = f[t]; r < hi; ++t)
    for (index_t b = 0; b < B && r < hi; ++b)
      if (is_active(lengths, b, t)) {
        if (r >= lo) copy_n(buf.data() + (r - lo) * I, x + (t * B + b) * I, I);
        ++r;
      }
  return buf.data();
}

// The training forward: y, h_n, c_n as usual, and in the cache only the segments' initial states.
template <class T, class C, template <class, class> class Forward>
class ForwardSegments {
 public:
  ForwardSegments(const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a)
      : d_(d), reverse_(reverse), w_(w), a_(a) {}

  void run() {
    constexpr index_t MR = Tile<T>::MR;
    Saved<T>& sv = *a_.saved;
    const index_t k = sv.every, n = segment_count(d_.T, k);
    const index_t BP = d_.B * d_.P, BH = d_.B * d_.H;
    const StepRows steps(a_.lengths, d_.T, d_.B);
    sv.h_bound.resize(static_cast<std::size_t>(n * BP));
    if (C::has_c) sv.c_bound.resize(static_cast<std::size_t>(n * BH));
    ForwardArgs<T> unsaved = a_;  // the steps run as in inference
    unsaved.saved = nullptr;
    Forward<T, C> pass(d_, reverse_, w_, unsaved);
    pass.prepare_loop();
    AlignedBuffer<T> xbuf =
        buffer<T>(a_.lengths ? widest_segment(steps, d_.T, reverse_, k, MR) * d_.I : 0);
    for (index_t i = 0; i < n; ++i) {
      const Segment g = segment_of(steps, d_.T, reverse_, k, i, MR);
      copy_n(sv.h_bound.data() + i * BP, pass.state_h(), BP);
      if (C::has_c) copy_n(sv.c_bound.data() + i * BH, pass.state_c(), BH);
      pass.project_inputs(g.alo, g.ahi,
                          x_rows(steps, a_.lengths, a_.x, d_.B, d_.I, g.alo, g.ahi, xbuf));
      pass.run_steps(g.s0, g.s1);
    }
    pass.finish();
  }

 private:
  const Dims d_;
  const bool reverse_;
  const Weights<T> w_;
  const ForwardArgs<T> a_;
};

// BPTT from the segments' initial states (Weights must carry the forward's biases).
template <class T, class C, template <class, class> class Forward,
          template <class, class> class Backward>
class BackwardSegments {
 public:
  BackwardSegments(const Dims& d, bool reverse, const Weights<T>& w, const BackwardArgs<T>& a)
      : d_(d), reverse_(reverse), w_(w), a_(a) {}

  void run() {
    constexpr index_t MR = Tile<T>::MR;
    const Saved<T>& sv = *a_.saved;
    const index_t k = sv.every, n = segment_count(d_.T, k);
    if (n == 0) return Backward<T, C>(d_, reverse_, w_, a_).run();  // T = 0: nothing saved
    const index_t BP = d_.B * d_.P, BH = d_.B * d_.H, I = d_.I, GH = C::G * d_.H;
    const StepRows steps(a_.lengths, d_.T, d_.B);
    const index_t cap = widest_segment(steps, d_.T, reverse_, k, MR);

    Saved<T> seg;  // one segment's recomputed rows
    const ForwardArgs<T> fa{a_.x,
                            sv.h_bound.data(),
                            C::has_c ? sv.c_bound.data() : nullptr,
                            a_.lengths,
                            nullptr,
                            nullptr,
                            nullptr,
                            &seg};
    Forward<T, C> fwd(d_, reverse_, w_, fa);
    fwd.size_saved(cap);
    fwd.prepare_loop();
    BackwardArgs<T> ba = a_;
    ba.saved = &seg;
    Backward<T, C> bwd(d_, reverse_, w_, ba);
    bwd.prepare_loop(cap, k);
    WeightGradients<T> wg(steps.count(), GH, GH, I, d_.P, d_.H,
                          Backward<T, C>::shared_gate_rows(d_.H), !reverse_,
                          {a_.dw_ih, a_.dw_hh, a_.db_ih, a_.db_hh, a_.dw_hr});
    AlignedBuffer<T> xbuf = buffer<T>(a_.lengths ? cap * I : 0);
    AlignedBuffer<T> dx_rows = buffer<T>(a_.dx ? std::max<index_t>(cap * I, 1) : 0);

    for (index_t i = n - 1; i >= 0; --i) {
      const Segment g = segment_of(steps, d_.T, reverse_, k, i, MR);
      const T* x = x_rows(steps, a_.lengths, a_.x, d_.B, I, g.alo, g.ahi, xbuf);  // row alo
      fwd.set_state(sv.h_bound.data() + i * BP, C::has_c ? sv.c_bound.data() + i * BH : nullptr);
      fwd.set_save_base(g.lo);
      fwd.project_inputs(g.alo, g.ahi, x);
      fwd.run_steps(g.s0, g.s1);

      bwd.set_saved(&seg, g.lo);
      bwd.set_grad_base(g.alo);
      // The widening rows' dG_i only pad dx's tiles (their results are dropped).
      zero_n(bwd.dgi_row(g.alo), (g.lo - g.alo) * GH);
      zero_n(bwd.dgi_row(g.hi), (g.ahi - g.hi) * GH);
      bwd.run_steps(g.s0, g.s1);
      if (a_.dx) {
        bwd.input_gradients(g.alo, g.ahi, dx_rows.data());
        scatter_dx(a_.lengths, d_.B, I, g.t0, g.t1, dx_rows.data() + (g.lo - g.alo) * I, a_.dx);
      }
      wg.add(g.lo, g.hi,
             {bwd.dgi_row(g.lo), bwd.dgh_row(g.lo), x + (g.lo - g.alo) * I, seg.h_prev.data(),
              bwd.dh_row(g.lo), w_.w_hr ? seg.m.data() : nullptr});
    }
    wg.finish();
    bwd.finish();
  }

 private:
  const Dims d_;
  const bool reverse_;
  const Weights<T> w_;
  const BackwardArgs<T> a_;
};

// The same for checkpointed training, which has the plain cells only (the bindings refuse
// checkpoint_every with peepholes or the reset-before GRU).
template <template <class, class> class Pass, class T, class Args>
void run_checkpointed(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const Args& a) {
  if (w.w_ph || !w.reset_after)
    throw std::invalid_argument("checkpoint_every does not support peepholes or reset_after=False");
  switch (cell) {
    case Cell::rnn_tanh: return Pass<T, RnnCell<T, false>>(d, reverse, w, a).run();
    case Cell::rnn_relu: return Pass<T, RnnCell<T, true>>(d, reverse, w, a).run();
    case Cell::lstm: return Pass<T, LstmCell<T, false>>(d, reverse, w, a).run();
    case Cell::gru: return Pass<T, GruCell<T>>(d, reverse, w, a).run();
  }
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
