// The forward time loop: ForwardPass<T, Cell>::run() lists its phases in order (gather the
// inputs, project them for all T steps in one product, then per step the recurrent product, the
// cell math, the projection and the state commit). One header per pass so that each reads on its
// own; recurrence.cpp instantiates both for every cell. Compiled once per instruction set.
#pragma once

#ifndef FASTRNN_ISA
#error "forward_pass.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <algorithm>
#include <atomic>
#include <vector>

#include "fastrnn/isa/cells.hpp"
#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/isa/loop.hpp"
#include "fastrnn/recurrence.hpp"
#include "fastrnn/runtime/interrupt.hpp"
#include "fastrnn/runtime/memory.hpp"
#include "fastrnn/runtime/threads.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

template <class T, class C>
class ForwardPass {
  static constexpr bool gru = C::G == 3;
  static constexpr bool reset_before = C::reset_before;     // GRU whose n product needs r first
  static constexpr bool b_hn_apart = gru && !reset_before;  // b_hn added inside r * (...)
  static constexpr int G_h = reset_before ? 2 : C::G;       // gates multiplied by h_prev itself

 public:
  ForwardPass(const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a)
      : d_(d), reverse_(reverse), w_(w), a_(a), sv_(a.saved), B(d.B), I(d.I), H(d.H), P(d.P),
        GH(C::G * d.H), proj_(w.w_hr != nullptr), unpacked_(d.T * d.B <= kUnpackedMaxRows),
        steps_(a.lengths, d.T, d.B), rows_(steps_.count()) {}

  void run() {
    gather_x();
    size_saved(rows_);
    prepare_loop();
    project_inputs(0, rows_, x_);
    run_steps(0, d_.T);
    finish();
  }

  // The phases, for a driver that runs the steps in segments (checkpointed.hpp): the per-row
  // buffers training saves (for `rows` rows, from row `base` on: set_save_base), the loop's
  // buffers, then per segment its input projection and its steps [s0, s1) in processing order.
  void size_saved(index_t rows) {
    if (!sv_) return;
    sv_->h_prev.resize(static_cast<std::size_t>(rows * P));
    sv_->gates.resize(static_cast<std::size_t>(rows * GH));
    if (C::has_c) {
      sv_->c_prev.resize(static_cast<std::size_t>(rows * H));
      sv_->c_new.resize(static_cast<std::size_t>(rows * H));
    }
    if (proj_) sv_->m.resize(static_cast<std::size_t>(rows * H));
    if (b_hn_apart) sv_->gh_n.resize(static_cast<std::size_t>(rows * H));
  }
  void set_save_base(index_t base) { save_base_ = base; }

  // The input projection of rows [lo, hi) (x_lo: their x), with the biases folded in (all but the
  // reset-after GRU's b_hn, which sits inside r * (W_hn h + b_hn) and so is added per step): the
  // packed product adds them as it stores each tile. A call of a few steps (generation: T = 1)
  // reads the weights row-major instead of packing them, and adds the biases after.
  void project_inputs(index_t lo, index_t hi, const T* x_lo) {
    const index_t n = hi - lo;
    const bool biased = w_.b_ih || w_.b_hh;
    xg_base_ = lo;
    xg_.ensure(static_cast<std::size_t>(std::max<index_t>(n * GH, 1)));
    if (!unpacked_) {
      gemm<T>(n, GH, I, x_lo, I, 1, w_.w_ih, 1, I, xg_.data(), GH, false, w_ih_t_,
              biased ? bias_.data() : nullptr);
      return;
    }
    product_rowmajor<T>(n, I, x_lo, I, w_.w_ih, I, 0, GH, xg_.data(), GH);
    if (biased)
      for (index_t r = 0; r < n && !interrupt_.load(std::memory_order_relaxed); ++r) {
        T* dst = xg_.data() + r * GH;
        for (index_t k = 0; k < GH; ++k) dst[k] += bias_.data()[k];
      }
  }

  void run_steps(index_t s0, index_t s1) {
    if (s1 <= s0) return;
    s0_ = s0;
    s1_ = s1;
    stop_if_interrupted(interrupt_);
    SpinBarrier barrier(nthreads_);
    barrier_ = &barrier;
    auto job = [this](int tid) { thread_loop(tid); };
    ThreadTeam::global().run(nthreads_, JobRef(job));
    stop_if_interrupted(interrupt_);  // the loop stopped early: no half-made outputs
    packed_ = true;
    cur_ = static_cast<int>((cur_ + (s1 - s0)) & 1);
  }

  // The state the next step starts from (h, and c for an LSTM; else null).
  const T* state_h() const { return h_bufs_[cur_].data(); }
  const T* state_c() const { return C::has_c ? c_.data() : nullptr; }
  void set_state(const T* h, const T* c) {
    copy_n(h_bufs_[cur_].data(), h, B * P);
    if (C::has_c) copy_n(c_.data(), c, B * H);
  }

  void finish() {
    if (a_.h_n) copy_n(a_.h_n, state_h(), B * P);
    if (C::has_c && a_.c_n) copy_n(a_.c_n, c_.data(), B * H);
  }

 private:
  // With lengths, x's rows of the steps taken, so that no padding is ever read or multiplied.
  void gather_x() {
    x_ = a_.x;
    if (!a_.lengths) return;
    AlignedBuffer<T>& xr = sv_ ? sv_->x_rows : x_inference_;
    xr.resize(static_cast<std::size_t>(rows_ * I));
    for (index_t t = 0, r = 0; t < d_.T; ++t)
      for (index_t b = 0; b < B; ++b)
        if (is_active(a_.lengths, b, t)) copy_n(xr.data() + (r++) * I, a_.x + (t * B + b) * I, I);
    x_ = xr.data();
  }

 public:
  // Every buffer of the time loop and the folded biases. W_hh^T is packed (in the first job:
  // each thread the panels it owns) one operand per gate, so that a thread's units map to the same
  // panel range in every gate.
  void prepare_loop() {
    bias_ = buffer<T>(GH);
    b_hn_ = buffer<T>(H);
    zero_n(bias_.data(), GH);
    zero_n(b_hn_.data(), H);
    for (index_t k = 0; k < GH; ++k) {
      if (w_.b_ih) bias_.data()[k] += w_.b_ih[k];
      if (w_.b_hh && (!b_hn_apart || k < 2 * H)) bias_.data()[k] += w_.b_hh[k];
    }
    if (b_hn_apart && w_.b_hh) copy_n(b_hn_.data(), w_.b_hh + 2 * H, H);
    w_hh_t_.resize(C::G);
    if (!unpacked_) {
      for (int g = 0; g < C::G; ++g) w_hh_t_[g].prepare(P, H);
      if (proj_) w_hr_t_.prepare(H, P);
    }
    h_bufs_[0] = buffer<T>(B * P);
    h_bufs_[1] = buffer<T>(B * P);
    c_ = buffer<T>(C::has_c ? B * H : 0);
    // Per step, row i of these is the i-th sequence that takes the step.
    hg_ = buffer<T>(B * GH);
    h_new_ = buffer<T>(B * P);
    // Inference writes the per-step values that training saves into these instead.
    gates_tmp_ = buffer<T>(sv_ ? 0 : B * GH);
    c_new_tmp_ = buffer<T>(sv_ || !C::has_c ? 0 : B * H);
    m_tmp_ = buffer<T>(sv_ || !proj_ ? 0 : B * H);
    gh_n_tmp_ = buffer<T>(sv_ || !b_hn_apart ? 0 : B * H);
    rh_ = buffer<T>(reset_before ? B * H : 0);
    copy_n(h_bufs_[0].data(), a_.h0, B * P);
    if (C::has_c) copy_n(c_.data(), a_.c0, B * H);

    nthreads_ = loop_threads<T>(B, GH, H, P);
    own_rows_ = split_batch<T>(nthreads_, a_.lengths != nullptr, B, GH * P + (proj_ ? P * H : 0));
    // Per thread: the list of sequences that take the step, and their rows of the state.
    act_lists_.assign(nthreads_, std::vector<index_t>(B));
    h_gathers_.resize(a_.lengths ? nthreads_ : 0);
    for (auto& g : h_gathers_) g.resize(static_cast<std::size_t>(B * P));
  }

 private:
  void thread_loop(int tid) {
    const Split share = split_for<T>(tid, nthreads_, H, P);
    const Split sp = own_rows_ ? split_batch_for<T>(tid, nthreads_, B, H, P) : share;
    const Lane lane{tid, sp, sp.p1 - sp.p0, sp.u1 - sp.u0, act_lists_[tid].data()};
    if (!unpacked_ && !packed_) {  // each thread packs its share of the panels
      for (int g = 0; g < C::G; ++g)
        w_hh_t_[g].pack_panels(share.ub0, share.ub1, w_.w_hh + g * H * P, 1, P);
      if (proj_) w_hr_t_.pack_panels(share.pb0, share.pb1, w_.w_hr, 1, H);
      if (own_rows_) barrier_->wait();  // which every thread then reads
    }
    for (index_t s = s0_; s < s1_; ++s) {
      const index_t t = reverse_ ? d_.T - 1 - s : s;
      const index_t n = active_rows(a_.lengths, B, t, lane.act);
      const index_t j = cur_ + (s - s0_);  // the state buffers alternate
      const Step<T> st{t,        steps_.first[t],       n,
                       lane.act, h_bufs_[j & 1].data(), h_bufs_[(j + 1) & 1].data()};
      const Outputs out = outputs(st.r0);
      if (sv_) save_inputs(st, lane);
      recurrent_product(st, lane);
      if constexpr (reset_before) {
        reset_gate(st, lane, out.gates);
        if (!own_rows_) barrier_->wait();  // W_hn (r * h) reads every unit's r * h
        reset_product(st, lane);
      }
      cell_math(st, lane, out);
      if (proj_) {
        if (!own_rows_) barrier_->wait();  // the projection needs every unit's m
        project(st, lane, out.cell);
      }
      commit(st, lane, out.c_new);
      // The next step's product reads every column of the new state; Ctrl-C stops here.
      if (own_rows_ ? interrupt_.load(std::memory_order_relaxed)
                    : barrier_->wait_and_poll(interrupt_))
        break;
    }
  }

  // What backward needs from before the step: the state (and cell state) it starts from.
  void save_inputs(const Step<T>& st, const Lane& ln) {
    const Split& sp = ln.sp;
    for (index_t i = sp.first(st.n); i < sp.last(st.n); ++i) {
      const index_t r = st.r0 - save_base_ + i;
      copy_n(sv_->h_prev.data() + r * P + sp.p0, st.cur + st.act[i] * P + sp.p0, ln.pw);
      if (C::has_c)
        copy_n(sv_->c_prev.data() + r * H + sp.u0, c_.data() + st.act[i] * H + sp.u0, ln.uw);
    }
  }

  // hg = h_prev W_hh^T for the sequences that take the step (their rows of h gathered first when
  // some have ended): each gate's product, the state packed once for all of them (the
  // reset-before GRU: the r and z gates only).
  void recurrent_product(const Step<T>& st, const Lane& ln) {
    const Split& sp = ln.sp;
    const T* h_rows = st.cur;
    if (st.n < B) {
      gather_rows(st.n, st.act, st.cur, P, P, h_gathers_[ln.tid].data(), P);
      h_rows = h_gathers_[ln.tid].data();
    }
    const index_t i0 = sp.first(st.n), m = sp.last(st.n) - i0;
    h_rows += i0 * P;
    T* hg = hg_.data() + i0 * GH;
    if (m > 0 && unpacked_) {
      for (int g = 0; g < G_h; ++g)
        product_rowmajor<T>(m, P, h_rows, P, w_.w_hh + g * H * P, P, sp.u0, sp.u1, hg + g * H, GH);
    } else if (m > 0) {
      for (int g = 0; g < G_h; ++g)
        gemm_panels_rows<T>(m, h_rows, P, w_hh_t_[g], sp.ub0, sp.ub1, hg + g * H, GH, false);
    }
  }

  // The reset-before GRU's first phase on the thread's units: r, z and r * h_prev (row i of rh_).
  void reset_gate(const Step<T>& st, const Lane& ln, T* gates) {
    for (index_t i = ln.sp.first(st.n); i < ln.sp.last(st.n); ++i) {
      ForwardRow<T> r{};
      r.xg = xg_.data() + (st.r0 + i - xg_base_) * GH;
      r.hg = hg_.data() + i * GH;
      r.h_prev = st.cur + st.act[i] * P;
      r.gates = gates + i * GH;
      r.rh = rh_.data() + i * H;
      C::forward_reset(H, ln.sp.u0, ln.sp.u1, r);
    }
  }

  // Its n gate's product hg_n = (r * h_prev) W_hn^T on the thread's units (after the barrier: it
  // reads every unit of r * h_prev). The GRU has no projection: P == H.
  void reset_product(const Step<T>& st, const Lane& ln) {
    const Split& sp = ln.sp;
    const index_t i0 = sp.first(st.n), m = sp.last(st.n) - i0;
    const T* rh = rh_.data() + i0 * H;
    T* hg_n = hg_.data() + i0 * GH + 2 * H;
    if (m > 0 && unpacked_) {
      product_rowmajor<T>(m, H, rh, H, w_.w_hh + 2 * H * P, P, sp.u0, sp.u1, hg_n, GH);
    } else if (m > 0) {
      gemm_panels_rows<T>(m, rh, H, w_hh_t_[2], sp.ub0, sp.ub1, hg_n, GH, false);
    }
  }

  // Where the cell math of the step whose rows start at r0 writes (row i: the i-th sequence that
  // takes it): what training saves, or the inference scratch. `cell` is the new h, or the LSTM's m
  // when a projection follows.
  struct Outputs {
    T* gates;
    T* c_new;
    T* gh_n;
    T* cell;
  };
  Outputs outputs(index_t r0) {
    r0 -= save_base_;
    T* gates = sv_ ? sv_->gates.data() + r0 * GH : gates_tmp_.data();
    T* c_new = !C::has_c ? nullptr : sv_ ? sv_->c_new.data() + r0 * H : c_new_tmp_.data();
    T* gh_n = !b_hn_apart ? nullptr : sv_ ? sv_->gh_n.data() + r0 * H : gh_n_tmp_.data();
    T* cell = !proj_ ? h_new_.data() : sv_ ? sv_->m.data() + r0 * H : m_tmp_.data();
    return {gates, c_new, gh_n, cell};
  }

  // The cell's elementwise math on the thread's units of each row.
  void cell_math(const Step<T>& st, const Lane& ln, const Outputs& out) {
    for (index_t i = ln.sp.first(st.n); i < ln.sp.last(st.n); ++i) {
      const index_t b = st.act[i];
      const ForwardRow<T> r{xg_.data() + (st.r0 + i - xg_base_) * GH,
                            hg_.data() + i * GH,
                            b_hn_.data(),
                            st.cur + b * P,
                            row(c_.data(), b, H),
                            w_.w_ph,
                            out.gates + i * GH,
                            out.cell + i * H,
                            row(out.c_new, i, H),
                            row(out.gh_n, i, H),
                            nullptr};
      C::forward_row(H, ln.sp.u0, ln.sp.u1, r);
    }
  }

  // The LSTM projection h = m W_hr^T, on the thread's state columns (after the barrier: it reads
  // every unit's m).
  void project(const Step<T>& st, const Lane& ln, const T* m) {
    const Split& sp = ln.sp;
    const index_t i0 = sp.first(st.n), rows = sp.last(st.n) - i0;
    m += i0 * H;
    T* h = h_new_.data() + i0 * P;
    if (rows > 0 && unpacked_) {
      product_rowmajor<T>(rows, H, m, H, w_.w_hr, H, sp.p0, sp.p1, h, P);
    } else if (rows > 0) {
      gemm_panels_rows<T>(rows, m, H, w_hr_t_, sp.pb0, sp.pb1, h, P, false);
    }
  }

  // Sequences that took the step move to their new state (and write y); the others keep theirs
  // (and y[t] = 0).
  void commit(const Step<T>& st, const Lane& ln, const T* c_new) {
    const Split& sp = ln.sp;
    const index_t pw = ln.pw, uw = ln.uw;
    T* y = a_.y ? a_.y + st.t * B * P : nullptr;  // null: a segment recomputed for backward
    // Its own rows are sequences b0..b1 - 1, all taking the step (split_batch: no lengths).
    const index_t b0 = own_rows_ ? sp.first(st.n) : 0, b1 = own_rows_ ? sp.last(st.n) : B;
    for (index_t b = b0, i = b0; b < b1; ++b) {
      if (i < st.n && st.act[i] == b) {
        copy_n(st.next + b * P + sp.p0, h_new_.data() + i * P + sp.p0, pw);
        if (y) copy_n(y + b * P + sp.p0, h_new_.data() + i * P + sp.p0, pw);
        if (C::has_c) copy_n(c_.data() + b * H + sp.u0, c_new + i * H + sp.u0, uw);
        ++i;
      } else {
        copy_n(st.next + b * P + sp.p0, st.cur + b * P + sp.p0, pw);
        if (y) zero_n(y + b * P + sp.p0, pw);
      }
    }
  }

  const Dims d_;
  const bool reverse_;
  const Weights<T> w_;
  const ForwardArgs<T> a_;
  Saved<T>* const sv_;
  const index_t B, I, H, P, GH;
  const bool proj_, unpacked_;
  const StepRows steps_;
  const index_t rows_;

  const T* x_ = nullptr;  // x, or its rows of the steps taken (with lengths)
  AlignedBuffer<T> x_inference_{Reuse::scratch};  // those rows when nothing is saved

  AlignedBuffer<T> xg_{Reuse::scratch};  // (rows, G*H) the input projection of rows xg_base_...
  AlignedBuffer<T> bias_, b_hn_;         // (G*H) the biases folded into it; (H) GRU's b_hn
  PackedB<T> w_ih_t_;                    // the input projection's scratch
  index_t xg_base_ = 0, save_base_ = 0;  // the rows of xg_'s and of sv_'s first row
  index_t s0_ = 0, s1_ = 0;              // the steps the job runs
  int cur_ = 0;                          // h_bufs_[cur_] holds the state
  bool packed_ = false;                  // W_hh^T (W_hr^T) packed by an earlier job
  std::vector<PackedB<T>> w_hh_t_;
  PackedB<T> w_hr_t_;
  AlignedBuffer<T> h_bufs_[2], c_, hg_, h_new_;
  AlignedBuffer<T> gates_tmp_, c_new_tmp_, m_tmp_, gh_n_tmp_;
  int nthreads_ = 1;
  bool own_rows_ = false;  // the threads split the batch, not the units (split_batch)
  std::vector<std::vector<index_t>> act_lists_;
  std::vector<AlignedBuffer<T>> h_gathers_;
  AlignedBuffer<T> rh_;             // (B, H) reset-before GRU, per step: r * h_prev of its rows
  SpinBarrier* barrier_ = nullptr;  // run_steps()'s, for the job
  // The caller's interrupt flag (interrupt.hpp), read by every thread of the job.
  const std::atomic<bool>& interrupt_ = interrupt_flag();
};

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
