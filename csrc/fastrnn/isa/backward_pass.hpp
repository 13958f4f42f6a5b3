// The BPTT loop: BackwardPass<T, Cell>::run() lists its phases (the reverse loop holds only the
// gate gradients and dh_prev = dgates W_hh; dx and the weight and bias gradients are products and
// reductions over all rows afterwards). Compiled once per instruction set, like forward_pass.hpp.
#pragma once

#ifndef FASTRNN_ISA
#error "backward_pass.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "fastrnn/isa/cells.hpp"
#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/isa/loop.hpp"
#include "fastrnn/isa/reductions.hpp"
#include "fastrnn/isa/weight_gradients.hpp"
#include "fastrnn/recurrence.hpp"
#include "fastrnn/runtime/interrupt.hpp"
#include "fastrnn/runtime/memory.hpp"
#include "fastrnn/runtime/threads.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

template <class T, class C>
class BackwardPass {
  static constexpr bool gru = C::G == 3;
  static constexpr bool reset_before = C::reset_before;
  // The reset-after GRU is the only cell whose hidden-side gate gradients differ (dgh != dgi).
  static constexpr bool own_dgh = gru && !reset_before;
  static constexpr int G_h = reset_before ? 2 : C::G;  // gates multiplied by h_prev itself

 public:
  // The leading gate rows in which dG_h is dG_i (all of G_h's but the reset-after GRU's n gate):
  // the weight gradients pack them once for dW_ih and dW_hh (weight_gradients.hpp).
  static index_t shared_gate_rows(index_t H) { return (own_dgh ? 2 : G_h) * H; }

  BackwardPass(const Dims& d, bool reverse, const Weights<T>& w, const BackwardArgs<T>& a)
      : d_(d), reverse_(reverse), w_(w), a_(a), sv_(a.saved), B(d.B), I(d.I), H(d.H), P(d.P),
        GH(C::G * d.H), proj_(w.w_hr != nullptr), steps_(a.lengths, d.T, d.B),
        rows_(steps_.count()) {}

  void run() {
    prepare_loop(rows_, d_.T);
    run_steps(0, d_.T);
    finish();
    input_gradients();
    weight_gradients();
  }

  // The phases, for a driver that runs the steps in segments (checkpointed.hpp): the buffers (the
  // gate gradients for `rows` rows, the gradient norms for `steps` steps), then per segment the
  // saved rows to read (set_saved: sv's row 0 is row `base`), where the gate gradients go (their
  // row 0 is row set_grad_base's) and its steps [s0, s1) in processing order.
  // The gate gradients (and the projection's dh, for dW_hr) by row, as forward saved its values,
  // and every buffer of the reverse loop (split like forward's).
  void prepare_loop(index_t rows, index_t steps) {
    dgi_ = buffer<T>(rows * GH);
    dgh_gru_ = buffer<T>(own_dgh ? rows * GH : 0);
    dgh_ = own_dgh ? dgh_gru_.data() : dgi_.data();
    d_rh_ = buffer<T>(reset_before ? B * H : 0);
    dh_total_ = buffer<T>(proj_ ? rows * P : B * P);
    dm_ = buffer<T>(proj_ ? B * H : 0);
    dh_bufs_[0] = buffer<T>(B * P);
    dh_bufs_[1] = buffer<T>(B * P);
    dc_ = buffer<T>(C::has_c ? B * H : 0);
    // dh_prev = dgates_h W_hh of the step's rows, when some sequences did not take it.
    dh_rows_ = buffer<T>(a_.lengths ? B * P : 0);
    w_hh_p_.prepare(G_h * H, P);  // packed in the job, each thread the panels it owns
    if (reset_before) w_hn_p_.prepare(H, P);
    if (proj_) w_hr_p_.prepare(P, H);
    copy_n(dh_bufs_[0].data(), a_.dh_n, B * P);
    if (C::has_c) copy_n(dc_.data(), a_.dc_n, B * H);

    nthreads_ = loop_threads<T>(B, GH, H, P);
    own_rows_ = split_batch<T>(nthreads_, a_.lengths != nullptr, B, GH * P + (proj_ ? P * H : 0));
    // Each thread's list of the sequences that took the step; see ForwardPass.
    act_lists_.assign(nthreads_, std::vector<index_t>(B));
    // Each thread's sum of squares of dLoss/dh_t over its columns, per step run (diagnostics).
    steps_cap_ = steps;
    dh_sq_.assign(static_cast<std::size_t>(nthreads_ * steps), 0.0);
  }

  void set_saved(const Saved<T>* sv, index_t base) {
    sv_ = sv;
    save_base_ = base;
  }
  void set_grad_base(index_t base) { grad_base_ = base; }
  // Row r of the gate gradients (dLoss/dxg, dLoss/dhg) and of the projection's dh (else null).
  T* dgi_row(index_t r) { return dgi_.data() + (r - grad_base_) * GH; }
  const T* dgh_row(index_t r) const { return dgh_ + (r - grad_base_) * GH; }
  const T* dh_row(index_t r) const {
    return proj_ ? dh_total_.data() + (r - grad_base_) * P : nullptr;
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
    stop_if_interrupted(interrupt_);
    packed_ = true;
    cur_ = static_cast<int>((cur_ + (s1 - s0)) & 1);
    if (a_.dh_norms)
      for (index_t s = s0; s < s1; ++s) {
        double sq = 0;
        for (int tid = 0; tid < nthreads_; ++tid) sq += dh_sq_[tid * steps_cap_ + (s - s0)];
        a_.dh_norms[reverse_ ? d_.T - 1 - s : s] = std::sqrt(sq);
      }
  }

  // dh0 and dc0, once every step has run.
  void finish() {
    copy_n(a_.dh0, dh_bufs_[cur_].data(), B * P);
    if (C::has_c) copy_n(a_.dc0, dc_.data(), B * H);
  }

  // dx = dG_i W_ih of rows [lo, hi) into out (row i: row lo + i). One product over them: each
  // row's result depends only on where its micro-tile starts, so a driver that runs the rows in
  // pieces gives whole-tile pieces (lo a multiple of MR, hi too or the last row) the same bits.
  void input_gradients(index_t lo, index_t hi, T* out) {
    PackedB<T> scratch;
    gemm<T>(hi - lo, I, GH, dgi_row(lo), GH, 1, w_.w_ih, I, 1, out, I, false, scratch);
  }

 private:
  // The steps in the opposite order to forward's.
  void thread_loop(int tid) {
    const Split share = split_for<T>(tid, nthreads_, H, P);
    const Split sp = own_rows_ ? split_batch_for<T>(tid, nthreads_, B, H, P) : share;
    const Lane lane{tid, sp, sp.p1 - sp.p0, sp.u1 - sp.u0, act_lists_[tid].data()};
    if (!packed_) {  // each thread packs its share of the panels
      w_hh_p_.pack_panels(share.pb0, share.pb1, w_.w_hh, P, 1);
      if (reset_before) w_hn_p_.pack_panels(share.pb0, share.pb1, w_.w_hh + 2 * H * P, P, 1);
      if (proj_) w_hr_p_.pack_panels(share.ub0, share.ub1, w_.w_hr, H, 1);
      if (own_rows_) barrier_->wait();  // which every thread then reads
    }
    for (index_t s = s1_ - 1; s >= s0_; --s) {
      const index_t t = reverse_ ? d_.T - 1 - s : s;
      const index_t n = active_rows(a_.lengths, B, t, lane.act);
      const index_t j = cur_ + (s1_ - 1 - s);  // the gradient buffers alternate
      const Step<T> st{t,        steps_.first[t],        n,
                       lane.act, dh_bufs_[j & 1].data(), dh_bufs_[(j + 1) & 1].data()};
      T* dtot = total_dh(st, lane, s - s0_);
      const T* dcell = dtot;  // the gradient w.r.t. the cell output (m for a projected LSTM)
      if (proj_) {
        if (!own_rows_) barrier_->wait();  // dm = dh W_hr needs every column of dh
        unproject(st, lane, dtot);
        dcell = dm_.data();
      }
      cell_math(st, lane, dcell);
      if constexpr (reset_before) {
        if (!own_rows_) barrier_->wait();  // dn W_hn needs every unit's dn
        reset_backward(st, lane);
      }
      // dh_prev = dgates_h W_hh needs every gate of every unit; Ctrl-C stops here.
      if (own_rows_ ? interrupt_.load(std::memory_order_relaxed)
                    : barrier_->wait_and_poll(interrupt_))
        break;
      recurrent_product(st, lane);
      pass_through(st, lane);
    }
  }

  // dLoss/dh_t of each sequence that took the step, from the later steps (st.cur) and from y,
  // on the thread's columns; returns where it is (row i: the i-th sequence that took it).
  T* total_dh(const Step<T>& st, const Lane& ln, index_t local_step) {
    T* dtot = proj_ ? dh_total_.data() + (st.r0 - grad_base_) * P : dh_total_.data();
    double sq = 0;
    for (index_t i = ln.sp.first(st.n); i < ln.sp.last(st.n); ++i) {
      T* dst = dtot + i * P;
      add_rows(ln.sp.p0, ln.sp.p1, st.cur + st.act[i] * P, a_.dy + (st.t * B + st.act[i]) * P, dst);
      sq += sum_of_squares(ln.sp.p0, ln.sp.p1, dst);
    }
    dh_sq_[ln.tid * steps_cap_ + local_step] = sq;
    return dtot;
  }

  static void add_rows(index_t j0, index_t j1, const T* __restrict a, const T* __restrict b,
                       T* __restrict out) {
    for (index_t j = j0; j < j1; ++j) out[j] = a[j] + b[j];
  }

  // The sum of a[j]^2 over [j0, j1) in double, for the gradient norms: kLanes interleaved partial
  // sums, added in a fixed order at the end. One serial sum ran at the FMA latency, 4 cycles an
  // element: half of the reverse loop's own time at T=100, B=16, H=256.
  static double sum_of_squares(index_t j0, index_t j1, const T* __restrict a) {
    constexpr int kLanes = 8;
    double part[kLanes] = {};
    index_t j = j0;
    for (; j + kLanes <= j1; j += kLanes)
#pragma GCC unroll 8
      for (int l = 0; l < kLanes; ++l) part[l] += double(a[j + l]) * double(a[j + l]);
    for (int l = 0; j < j1; ++j, ++l) part[l] += double(a[j]) * double(a[j]);
    return ((part[0] + part[1]) + (part[2] + part[3])) +
           ((part[4] + part[5]) + (part[6] + part[7]));
  }

  // dm = dh W_hr on the thread's units (the LSTM projection's backward).
  void unproject(const Step<T>& st, const Lane& ln, const T* dtot) {
    const index_t i0 = ln.sp.first(st.n), rows = ln.sp.last(st.n) - i0;
    if (rows <= 0) return;
    gemm_panels_rows<T>(rows, dtot + i0 * P, P, w_hr_p_, ln.sp.ub0, ln.sp.ub1, dm_.data() + i0 * H,
                        H, false);
  }

  // The gate gradients of the thread's units, dc_prev and (GRU) the direct part of dh_prev.
  void cell_math(const Step<T>& st, const Lane& ln, const T* dcell) {
    for (index_t i = ln.sp.first(st.n); i < ln.sp.last(st.n); ++i) {
      const index_t r = st.r0 - save_base_ + i, g = st.r0 - grad_base_ + i, b = st.act[i];
      const BackwardRow<T> row_i{dcell + i * (proj_ ? H : P),
                                 row(dc_.data(), b, H),
                                 sv_->gates.data() + r * GH,
                                 row(sv_->c_prev.data(), r, H),
                                 row(sv_->c_new.data(), r, H),
                                 sv_->h_prev.data() + r * P,
                                 row(sv_->gh_n.data(), r, H),
                                 w_.w_ph,
                                 nullptr,
                                 dgi_.data() + g * GH,
                                 dgh_ + g * GH,
                                 st.next + b * P};
      C::backward_row(H, ln.sp.u0, ln.sp.u1, row_i);
    }
  }

  // The reset-before GRU's second phase: d_rh = dn W_hn on the thread's units (= its columns: the
  // GRU has P == H), then the r gate's gradient and r * d_rh into dh_prev's direct part.
  void reset_backward(const Step<T>& st, const Lane& ln) {
    const Split& sp = ln.sp;
    const index_t i0 = sp.first(st.n), i1 = sp.last(st.n);
    if (i1 <= i0) return;
    gemm_panels_rows<T>(i1 - i0, dgi_row(st.r0 + i0) + 2 * H, GH, w_hn_p_, sp.pb0, sp.pb1,
                        d_rh_.data() + i0 * H, H, false);
    for (index_t i = i0; i < i1; ++i) {
      const index_t r = st.r0 - save_base_ + i;
      BackwardRow<T> row_i{};
      row_i.gates = sv_->gates.data() + r * GH;
      row_i.h_prev = sv_->h_prev.data() + r * P;
      row_i.d_rh = d_rh_.data() + i * H;
      row_i.dgi = dgi_row(st.r0 + i);
      row_i.dh_direct = st.next + st.act[i] * P;
      C::backward_reset(H, sp.u0, sp.u1, row_i);
    }
  }

  // dh_prev = dgates_h W_hh on the thread's columns (+ the GRU's direct part, already in
  // st.next; the GRU has no projection, so P == H). The step's rows of dgates are consecutive;
  // with every sequence in it, row i is sequence i. The reset-before GRU: its r and z gates only.
  void recurrent_product(const Step<T>& st, const Lane& ln) {
    const Split& sp = ln.sp;
    const T* dgh = dgh_ + (st.r0 - grad_base_) * GH;
    if (st.n == B) {  // (the only case when the threads split the batch)
      const index_t i0 = sp.first(B), i1 = sp.last(B);
      if (i1 > i0)
        gemm_panels_rows<T>(i1 - i0, dgh + i0 * GH, GH, w_hh_p_, sp.pb0, sp.pb1, st.next + i0 * P,
                            P, gru);
    } else if (st.n > 0) {
      gemm_panels_rows<T>(st.n, dgh, GH, w_hh_p_, sp.pb0, sp.pb1, dh_rows_.data(), P, false);
      for (index_t i = 0; i < st.n; ++i) {
        T* dst = st.next + st.act[i] * P;
        const T* src = dh_rows_.data() + i * P;
        for (index_t j = sp.p0; j < sp.p1; ++j) dst[j] = gru ? dst[j] + src[j] : src[j];
      }
    }
  }

  // Sequences that did not take the step pass their gradient through unchanged.
  void pass_through(const Step<T>& st, const Lane& ln) {
    if (own_rows_) return;  // every sequence takes every step (split_batch)
    for (index_t b = 0, i = 0; b < B; ++b) {
      if (i < st.n && st.act[i] == b)
        ++i;
      else
        copy_n(st.next + b * P + ln.sp.p0, st.cur + b * P + ln.sp.p0, ln.pw);
    }
  }

  // dx over all rows (with lengths by row, then into (T, B, I) with zeros where a sequence had
  // ended); nothing when the caller wants no dx.
  void input_gradients() {
    if (!a_.dx) return;
    if (rows_ == d_.T * B) return input_gradients(0, rows_, a_.dx);  // row t * B + b is (t, b)
    AlignedBuffer<T> dx_rows = buffer<T>(rows_ * I);
    input_gradients(0, rows_, dx_rows.data());
    scatter_dx(a_.lengths, B, I, 0, d_.T, dx_rows.data(), a_.dx);
  }

  // The reductions over all rows, in the order the reverse loop made them (weight_gradients.hpp);
  // the variants' extra ones (not checkpointed) over all rows in row order after them.
  void weight_gradients() {
    WeightGradients<T> wg(rows_, GH, G_h * H, I, P, H, shared_gate_rows(H), !reverse_,
                          {a_.dw_ih, a_.dw_hh, a_.db_ih, a_.db_hh, a_.dw_hr});
    const T* x = a_.lengths ? sv_->x_rows.data() : a_.x;
    wg.add(0, rows_,
           {dgi_.data(), dgh_, x, sv_->h_prev.data(), dh_row(0), proj_ ? sv_->m.data() : nullptr});
    wg.finish();
    if constexpr (reset_before)
      reset_before_dw_hn(rows_, H, dgi_.data(), sv_->gates.data(), sv_->h_prev.data(), a_.dw_hh);
    if (a_.dw_ph)
      peephole_sums(rows_, H, dgi_.data(), sv_->c_prev.data(), sv_->c_new.data(), a_.dw_ph);
  }

  const Dims d_;
  const bool reverse_;
  const Weights<T> w_;
  const BackwardArgs<T> a_;
  const Saved<T>* sv_;
  const index_t B, I, H, P, GH;
  const bool proj_;
  const StepRows steps_;
  const index_t rows_;

  AlignedBuffer<T> dgi_, dgh_gru_;  // (rows, G*H) dLoss/dxg; the reset-after GRU's dLoss/dhg
  T* dgh_ = nullptr;                // dLoss/dhg: dgh_gru_, or dgi_ (the same for the other cells)
  AlignedBuffer<T> dh_total_, dm_, dh_bufs_[2], dc_, dh_rows_;
  AlignedBuffer<T> d_rh_;  // (B, H) reset-before GRU, per step: dn W_hn of the step's rows
  PackedB<T> w_hh_p_, w_hn_p_, w_hr_p_;
  int nthreads_ = 1;
  bool own_rows_ = false;  // the threads split the batch, not the units (split_batch)
  std::vector<std::vector<index_t>> act_lists_;
  std::vector<double> dh_sq_;

  index_t steps_cap_ = 0;                  // steps one job may run (dh_sq_ has room for them)
  index_t save_base_ = 0, grad_base_ = 0;  // the rows of sv_'s and of dgi_'s first row
  index_t s0_ = 0, s1_ = 0;                // the steps the job runs
  int cur_ = 0;                            // dh_bufs_[cur_] holds dLoss/dh of the next step
  bool packed_ = false;                    // W_hh (W_hr) packed by an earlier job
  SpinBarrier* barrier_ = nullptr;         // run_steps()'s, for the job
  // The caller's interrupt flag (interrupt.hpp), read by every thread of the job.
  const std::atomic<bool>& interrupt_ = interrupt_flag();
};

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
