// The forward and BPTT time loops, templated on the scalar type and the cell (cells.hpp).
// Compiled once per instruction set (CMakeLists.txt); FASTRNN_ISA names this copy's namespace.
//
// Forward: the input projection for all T steps is one product before the loop; inside the loop
// only the recurrent product h_prev W_hh^T and the cell's elementwise math run. Backward: only the
// gate gradients and dh_prev = dgates W_hh live in the reverse loop; dx, dW_ih, dW_hh, dW_hr and
// the bias gradients are products/reductions over all T*B rows afterwards (the reductions in the
// order the loop made the rows: weight_gradients.hpp). Every buffer is allocated before the loops
// (a job that waits on a barrier must never throw).
//
// Each pass is a class whose run() lists its phases in order; the per-step phases take the thread's
// Lane (the units and columns it owns, its scratch) and the Step (which rows take it). Checkpointed
// training (checkpointed.hpp) runs the same phases one segment of steps at a time. The
// reset-before GRU has a second product per step (W_hn (r * h), which needs every unit's r): its
// step has one barrier more, forward and backward.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "fastrnn/isa.hpp"
#include "fastrnn/isa/cells.hpp"
#include "fastrnn/isa/checkpointed.hpp"
#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/isa/loop.hpp"
#include "fastrnn/isa/reductions.hpp"
#include "fastrnn/isa/weight_gradients.hpp"
#include "fastrnn/runtime/interrupt.hpp"
#include "fastrnn/runtime/threads.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {
namespace {

template <class T>
AlignedBuffer<T> buffer(index_t n) {
  return AlignedBuffer<T>(static_cast<std::size_t>(n));
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

template <class T, class C>
class ForwardPass {
  static constexpr index_t NR = Tile<T>::NR;
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
  // reset-after GRU's b_hn, which sits inside r * (W_hn h + b_hn) and so is added per step). A
  // call of a few steps (generation: T = 1) reads the weights row-major instead of packing them.
  void project_inputs(index_t lo, index_t hi, const T* x_lo) {
    const index_t n = hi - lo;
    xg_base_ = lo;
    xg_.ensure(static_cast<std::size_t>(std::max<index_t>(n * GH, 1)));
    if (unpacked_)
      product_rowmajor<T>(n, I, x_lo, I, w_.w_ih, I, 0, GH, xg_.data(), GH);
    else
      gemm<T>(n, GH, I, x_lo, I, 1, w_.w_ih, 1, I, xg_.data(), GH, false, w_ih_t_);
    if (w_.b_ih || w_.b_hh)
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

    nthreads_ = loop_threads(B, GH, H, P, NR);
    // Per thread: its packed copy of the state (and of m), the list of sequences that take the
    // step, and their rows of the state.
    h_packs_.resize(nthreads_);
    m_packs_.resize(proj_ ? nthreads_ : 0);
    for (auto& pa : h_packs_) pa.reserve(B, P);
    for (auto& pa : m_packs_) pa.reserve(B, H);
    act_lists_.assign(nthreads_, std::vector<index_t>(B));
    h_gathers_.resize(a_.lengths ? nthreads_ : 0);
    for (auto& g : h_gathers_) g.resize(static_cast<std::size_t>(B * P));
  }

 private:
  void thread_loop(int tid) {
    const Split sp = split_for(tid, nthreads_, H, P, NR);
    const Lane lane{tid, sp, sp.p1 - sp.p0, sp.u1 - sp.u0, act_lists_[tid].data()};
    if (!unpacked_ && !packed_) {  // only this thread reads these panels
      for (int g = 0; g < C::G; ++g)
        w_hh_t_[g].pack_panels(sp.ub0, sp.ub1, w_.w_hh + g * H * P, 1, P);
      if (proj_) w_hr_t_.pack_panels(sp.pb0, sp.pb1, w_.w_hr, 1, H);
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
        barrier_->wait();  // W_hn (r * h) reads every unit's r * h
        reset_product(st, lane);
      }
      cell_math(st, lane, out);
      if (proj_) {
        barrier_->wait();  // the projection needs every unit's m
        project(st, lane, out.cell);
      }
      commit(st, lane, out.c_new);
      // The next step's product reads every column of the new state; Ctrl-C stops here.
      if (barrier_->wait_and_poll(interrupt_)) break;
    }
  }

  // What backward needs from before the step: the state (and cell state) it starts from.
  void save_inputs(const Step<T>& st, const Lane& ln) {
    const Split& sp = ln.sp;
    for (index_t i = 0; i < st.n; ++i) {
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
    if (st.n > 0 && unpacked_) {
      for (int g = 0; g < G_h; ++g)
        product_rowmajor<T>(st.n, P, h_rows, P, w_.w_hh + g * H * P, P, sp.u0, sp.u1,
                            hg_.data() + g * H, GH);
    } else if (st.n > 0) {
      h_packs_[ln.tid].pack(st.n, P, h_rows, P, 1);
      for (int g = 0; g < G_h; ++g)
        gemm_panels<T>(h_packs_[ln.tid], w_hh_t_[g], sp.ub0, sp.ub1, hg_.data() + g * H, GH, false);
    }
  }

  // The reset-before GRU's first phase on the thread's units: r, z and r * h_prev (row i of rh_).
  void reset_gate(const Step<T>& st, const Lane& ln, T* gates) {
    for (index_t i = 0; i < st.n; ++i) {
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
    if (st.n > 0 && unpacked_) {
      product_rowmajor<T>(st.n, H, rh_.data(), H, w_.w_hh + 2 * H * P, P, sp.u0, sp.u1,
                          hg_.data() + 2 * H, GH);
    } else if (st.n > 0) {
      h_packs_[ln.tid].pack(st.n, H, rh_.data(), H, 1);
      gemm_panels<T>(h_packs_[ln.tid], w_hh_t_[2], sp.ub0, sp.ub1, hg_.data() + 2 * H, GH, false);
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
    for (index_t i = 0; i < st.n; ++i) {
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
    if (st.n > 0 && unpacked_) {
      product_rowmajor<T>(st.n, H, m, H, w_.w_hr, H, sp.p0, sp.p1, h_new_.data(), P);
    } else if (st.n > 0) {
      m_packs_[ln.tid].pack(st.n, H, m, H, 1);
      gemm_panels<T>(m_packs_[ln.tid], w_hr_t_, sp.pb0, sp.pb1, h_new_.data(), P, false);
    }
  }

  // Sequences that took the step move to their new state (and write y); the others keep theirs
  // (and y[t] = 0).
  void commit(const Step<T>& st, const Lane& ln, const T* c_new) {
    const Split& sp = ln.sp;
    const index_t pw = ln.pw, uw = ln.uw;
    T* y = a_.y ? a_.y + st.t * B * P : nullptr;  // null: a segment recomputed for backward
    for (index_t b = 0, i = 0; b < B; ++b) {
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

  const T* x_ = nullptr;          // x, or its rows of the steps taken (with lengths)
  AlignedBuffer<T> x_inference_;  // those rows when nothing is saved

  AlignedBuffer<T> xg_;                  // (rows, G*H) the input projection of rows xg_base_...
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
  std::vector<PackedA<T>> h_packs_, m_packs_;
  std::vector<std::vector<index_t>> act_lists_;
  std::vector<AlignedBuffer<T>> h_gathers_;
  AlignedBuffer<T> rh_;             // (B, H) reset-before GRU, per step: r * h_prev of its rows
  SpinBarrier* barrier_ = nullptr;  // run_steps()'s, for the job
  // The caller's interrupt flag (interrupt.hpp), read by every thread of the job.
  const std::atomic<bool>& interrupt_ = interrupt_flag();
};

template <class T, class C>
class BackwardPass {
  static constexpr index_t NR = Tile<T>::NR;
  static constexpr bool gru = C::G == 3;
  static constexpr bool reset_before = C::reset_before;
  // The reset-after GRU is the only cell whose hidden-side gate gradients differ (dgh != dgi).
  static constexpr bool own_dgh = gru && !reset_before;
  static constexpr int G_h = reset_before ? 2 : C::G;  // gates multiplied by h_prev itself

 public:
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

    nthreads_ = loop_threads(B, GH, H, P, NR);
    // Each thread's packed copy of dh (projection) or of the step's dgates, and its list of the
    // sequences that took the step; see ForwardPass.
    a_packs_.resize(nthreads_);
    for (auto& pa : a_packs_) pa.reserve(B, std::max(GH, P));
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
    const Split sp = split_for(tid, nthreads_, H, P, NR);
    const Lane lane{tid, sp, sp.p1 - sp.p0, sp.u1 - sp.u0, act_lists_[tid].data()};
    if (!packed_) {
      w_hh_p_.pack_panels(sp.pb0, sp.pb1, w_.w_hh, P, 1);
      if (reset_before) w_hn_p_.pack_panels(sp.pb0, sp.pb1, w_.w_hh + 2 * H * P, P, 1);
      if (proj_) w_hr_p_.pack_panels(sp.ub0, sp.ub1, w_.w_hr, H, 1);
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
        barrier_->wait();  // dm = dh W_hr needs every column of dh
        unproject(st, lane, dtot);
        dcell = dm_.data();
      }
      cell_math(st, lane, dcell);
      if constexpr (reset_before) {
        barrier_->wait();  // dn W_hn needs every unit's dn
        reset_backward(st, lane);
      }
      // dh_prev = dgates_h W_hh needs every gate of every unit; Ctrl-C stops here.
      if (barrier_->wait_and_poll(interrupt_)) break;
      recurrent_product(st, lane);
      pass_through(st, lane);
    }
  }

  // dLoss/dh_t of each sequence that took the step, from the later steps (st.cur) and from y,
  // on the thread's columns; returns where it is (row i: the i-th sequence that took it).
  T* total_dh(const Step<T>& st, const Lane& ln, index_t local_step) {
    T* dtot = proj_ ? dh_total_.data() + (st.r0 - grad_base_) * P : dh_total_.data();
    double sq = 0;
    for (index_t i = 0; i < st.n; ++i) {
      T* dst = dtot + i * P;
      const T* src = st.cur + st.act[i] * P;
      const T* dyb = a_.dy + (st.t * B + st.act[i]) * P;
      for (index_t j = ln.sp.p0; j < ln.sp.p1; ++j) {
        dst[j] = src[j] + dyb[j];
        sq += double(dst[j]) * double(dst[j]);
      }
    }
    dh_sq_[ln.tid * steps_cap_ + local_step] = sq;
    return dtot;
  }

  // dm = dh W_hr on the thread's units (the LSTM projection's backward).
  void unproject(const Step<T>& st, const Lane& ln, const T* dtot) {
    if (st.n == 0) return;
    a_packs_[ln.tid].pack(st.n, P, dtot, P, 1);
    gemm_panels<T>(a_packs_[ln.tid], w_hr_p_, ln.sp.ub0, ln.sp.ub1, dm_.data(), H, false);
  }

  // The gate gradients of the thread's units, dc_prev and (GRU) the direct part of dh_prev.
  void cell_math(const Step<T>& st, const Lane& ln, const T* dcell) {
    for (index_t i = 0; i < st.n; ++i) {
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
    if (st.n == 0) return;
    const Split& sp = ln.sp;
    a_packs_[ln.tid].pack(st.n, H, dgi_row(st.r0) + 2 * H, GH, 1);
    gemm_panels<T>(a_packs_[ln.tid], w_hn_p_, sp.pb0, sp.pb1, d_rh_.data(), H, false);
    for (index_t i = 0; i < st.n; ++i) {
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
    PackedA<T>& a_packed = a_packs_[ln.tid];
    const T* dgh = dgh_ + (st.r0 - grad_base_) * GH;
    if (st.n == B) {
      a_packed.pack(B, G_h * H, dgh, GH, 1);
      gemm_panels<T>(a_packed, w_hh_p_, sp.pb0, sp.pb1, st.next, P, gru);
    } else if (st.n > 0) {
      a_packed.pack(st.n, G_h * H, dgh, GH, 1);
      gemm_panels<T>(a_packed, w_hh_p_, sp.pb0, sp.pb1, dh_rows_.data(), P, false);
      for (index_t i = 0; i < st.n; ++i) {
        T* dst = st.next + st.act[i] * P;
        const T* src = dh_rows_.data() + i * P;
        for (index_t j = sp.p0; j < sp.p1; ++j) dst[j] = gru ? dst[j] + src[j] : src[j];
      }
    }
  }

  // Sequences that did not take the step pass their gradient through unchanged.
  void pass_through(const Step<T>& st, const Lane& ln) {
    for (index_t b = 0, i = 0; b < B; ++b) {
      if (i < st.n && st.act[i] == b)
        ++i;
      else
        copy_n(st.next + b * P + ln.sp.p0, st.cur + b * P + ln.sp.p0, ln.pw);
    }
  }

  // dx over all rows (with lengths by row, then into (T, B, I) with zeros where a sequence had
  // ended).
  void input_gradients() {
    if (rows_ == d_.T * B) return input_gradients(0, rows_, a_.dx);  // row t * B + b is (t, b)
    AlignedBuffer<T> dx_rows = buffer<T>(rows_ * I);
    input_gradients(0, rows_, dx_rows.data());
    scatter_dx(a_.lengths, B, I, 0, d_.T, dx_rows.data(), a_.dx);
  }

  // The reductions over all rows, in the order the reverse loop made them (weight_gradients.hpp);
  // the variants' extra ones (not checkpointed) over all rows in row order after them.
  void weight_gradients() {
    WeightGradients<T> wg(rows_, GH, G_h * H, I, P, H, !reverse_,
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
  std::vector<PackedA<T>> a_packs_;
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

// Pass<T, the class of `cell` and its variant>(d, reverse, w, a).run().
template <template <class, class> class Pass, class T, class Args>
void run_pass(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const Args& a) {
  switch (cell) {
    case Cell::rnn_tanh: return Pass<T, RnnCell<T, false>>(d, reverse, w, a).run();
    case Cell::rnn_relu: return Pass<T, RnnCell<T, true>>(d, reverse, w, a).run();
    case Cell::lstm:
      if (w.w_ph) return Pass<T, LstmCell<T, true>>(d, reverse, w, a).run();
      return Pass<T, LstmCell<T, false>>(d, reverse, w, a).run();
    case Cell::gru:
      if (!w.reset_after) return Pass<T, GruResetBeforeCell<T>>(d, reverse, w, a).run();
      return Pass<T, GruCell<T>>(d, reverse, w, a).run();
  }
}

// Training that keeps only the segments' initial states (Saved::every > 0): checkpointed.hpp.
template <class T, class C>
using CheckpointedForward = ForwardSegments<T, C, ForwardPass>;
template <class T, class C>
using CheckpointedBackward = BackwardSegments<T, C, ForwardPass, BackwardPass>;

}  // namespace

void forward(Cell cell, const Dims& d, bool reverse, const Weights<float>& w,
             const ForwardArgs<float>& a) {
  if (a.saved && a.saved->every > 0)
    return run_checkpointed<CheckpointedForward, float>(cell, d, reverse, w, a);
  run_pass<ForwardPass, float>(cell, d, reverse, w, a);
}
void forward(Cell cell, const Dims& d, bool reverse, const Weights<double>& w,
             const ForwardArgs<double>& a) {
  if (a.saved && a.saved->every > 0)
    return run_checkpointed<CheckpointedForward, double>(cell, d, reverse, w, a);
  run_pass<ForwardPass, double>(cell, d, reverse, w, a);
}
void backward(Cell cell, const Dims& d, bool reverse, const Weights<float>& w,
              const BackwardArgs<float>& a) {
  if (a.saved->every > 0)
    return run_checkpointed<CheckpointedBackward, float>(cell, d, reverse, w, a);
  run_pass<BackwardPass, float>(cell, d, reverse, w, a);
}
void backward(Cell cell, const Dims& d, bool reverse, const Weights<double>& w,
              const BackwardArgs<double>& a) {
  if (a.saved->every > 0)
    return run_checkpointed<CheckpointedBackward, double>(cell, d, reverse, w, a);
  run_pass<BackwardPass, double>(cell, d, reverse, w, a);
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
