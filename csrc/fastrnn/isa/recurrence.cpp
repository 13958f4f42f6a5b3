// The forward and BPTT time loops, templated on the scalar type and the cell (cells.hpp).
// Compiled once per instruction set (CMakeLists.txt); FASTRNN_ISA names this copy's namespace.
//
// Forward: the input projection for all T steps is one product before the loop; inside the loop only
// the recurrent product h_prev W_hh^T and the cell's elementwise math run. Backward: only the gate
// gradients and dh_prev = dgates W_hh live in the reverse loop; dx, dW_ih, dW_hh, dW_hr and the bias
// gradients are single products/reductions over all T*B rows afterwards. Every buffer is allocated
// before the loops.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "fastrnn/isa.hpp"
#include "fastrnn/isa/cells.hpp"
#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/runtime/threads.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {
namespace {

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

// out[j] = sum over rows r of a[r * n + j].
template <class T>
void column_sums(index_t rows, index_t n, const T* a, T* out) {
  // Split by columns over the team when big (each column is summed in row order by one thread, so
  // the result does not depend on the thread count).
  constexpr index_t kColumns = 64;  // columns per thread at least
  const index_t chunks = (n + kColumns - 1) / kColumns;
  const index_t by_size = rows * n / (1 << 18) + 1;  // ~20 us of adds per extra thread
  const int nthreads = ThreadTeam::global().available(
      static_cast<int>(std::max<index_t>(1, std::min<index_t>({chunks, by_size, 1 << 20}))));
  auto job = [&](int tid) {
    const index_t j0 = std::min(n, chunks * tid / nthreads * kColumns);
    const index_t j1 = std::min(n, chunks * (tid + 1) / nthreads * kColumns);
    zero_n(out + j0, j1 - j0);
    for (index_t r = 0; r < rows; ++r) {
      const T* src = a + r * n;
      for (index_t j = j0; j < j1; ++j) out[j] += src[j];
    }
  };
  ThreadTeam::global().run(nthreads, JobRef(job));
}

// The static split of a time loop over n threads: thread tid owns hidden units [u0, u1) (all G
// gates of them: the cell math needs nothing from other threads) and state columns [p0, p1), both
// whole NR-wide panels, at every step, so its slice of the weights stays in its own cache.
struct Split {
  index_t u0, u1, ub0, ub1;  // units and their panel indices
  index_t p0, p1, pb0, pb1;  // state columns and their panel indices
};

inline Split split_for(int tid, int n, index_t H, index_t P, index_t NR) {
  const index_t hb = (H + NR - 1) / NR, pb = (P + NR - 1) / NR;
  Split s;
  s.ub0 = hb * tid / n;
  s.ub1 = hb * (tid + 1) / n;
  s.pb0 = pb * tid / n;
  s.pb1 = pb * (tid + 1) / n;
  s.u0 = std::min(s.ub0 * NR, H);
  s.u1 = std::min(s.ub1 * NR, H);
  s.p0 = std::min(s.pb0 * NR, P);
  s.p1 = std::min(s.pb1 * NR, P);
  return s;
}

// Threads for a time loop: each must own at least one panel and enough work per step to pay for
// the barrier(s) every step costs. Measured at T=100, B=1, H=128 on 2 threads: a tanh RNN (33
// kflop per step) ran 0.53-0.87x as fast as on 1 thread (inference) and 0.55-1.16x (training), a
// GRU (98 kflop) 1.2-1.4x, an LSTM (131 kflop) 1.5x: below 4e4 flops a step stays on one thread.
inline int loop_threads(index_t B, index_t GH, index_t H, index_t P, index_t NR) {
  const double flops_per_step = 2.0 * double(B) * double(GH) * double(P);
  const double grain = 4e4 * ThreadTeam::global().grain();
  const index_t by_size =
      grain > 0 ? static_cast<index_t>(std::min(flops_per_step / grain, 1e6)) + 1 : 1 << 20;
  const index_t panels = std::min((H + NR - 1) / NR, (P + NR - 1) / NR);
  const index_t n = std::max<index_t>(1, std::min<index_t>({by_size, panels, 1 << 20}));
  return ThreadTeam::global().available(static_cast<int>(n));
}

template <class T, class C>
void forward_loop(const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a) {
  const index_t B = d.B, I = d.I, H = d.H, P = d.P, GH = C::G * H, TB = d.T * d.B;
  constexpr index_t NR = Tile<T>::NR;
  constexpr bool gru = C::G == 3;
  const bool proj = w.w_hr != nullptr;
  Saved<T>* sv = a.saved;
  const StepRows steps(a.lengths, d.T, B);
  const index_t rows = steps.count();

  // With lengths, x's rows of the steps taken, so that no padding is ever read or multiplied.
  const T* x = a.x;
  AlignedBuffer<T> x_inference;
  if (a.lengths) {
    AlignedBuffer<T>& xr = sv ? sv->x_rows : x_inference;
    xr.resize(static_cast<std::size_t>(rows * I));
    for (index_t t = 0, r = 0; t < d.T; ++t)
      for (index_t b = 0; b < B; ++b)
        if (is_active(a.lengths, b, t)) copy_n(xr.data() + (r++) * I, a.x + (t * B + b) * I, I);
    x = xr.data();
  }
  if (sv) {
    sv->h_prev.resize(static_cast<std::size_t>(rows * P));
    sv->gates.resize(static_cast<std::size_t>(rows * GH));
    if (C::has_c) {
      sv->c_prev.resize(static_cast<std::size_t>(rows * H));
      sv->c_new.resize(static_cast<std::size_t>(rows * H));
    }
    if (proj) sv->m.resize(static_cast<std::size_t>(rows * H));
    if (gru) sv->gh_n.resize(static_cast<std::size_t>(rows * H));
  }

  // 1. Input projection for every step at once, with the biases folded in (all but GRU's b_hn,
  //    which sits inside r * (W_hn h + b_hn) and so is added per step).
  // A call of a few steps (generation: T = 1) reads the weights row-major instead of packing them.
  const bool unpacked = TB <= kUnpackedMaxRows;
  AlignedBuffer<T> xg(static_cast<std::size_t>(rows * GH));
  if (unpacked) {
    product_rowmajor<T>(rows, I, x, I, w.w_ih, I, 0, GH, xg.data(), GH);
  } else {
    PackedB<T> w_ih_t;
    gemm<T>(rows, GH, I, x, I, 1, w.w_ih, 1, I, xg.data(), GH, false, w_ih_t);
  }
  AlignedBuffer<T> bias(static_cast<std::size_t>(GH)), b_hn(static_cast<std::size_t>(H));
  zero_n(bias.data(), GH);
  zero_n(b_hn.data(), H);
  for (index_t k = 0; k < GH; ++k) {
    if (w.b_ih) bias.data()[k] += w.b_ih[k];
    if (w.b_hh && (!gru || k < 2 * H)) bias.data()[k] += w.b_hh[k];
  }
  if (gru && w.b_hh) copy_n(b_hn.data(), w.b_hh + 2 * H, H);
  if (w.b_ih || w.b_hh)
    for (index_t r = 0; r < rows; ++r) {
      T* dst = xg.data() + r * GH;
      for (index_t k = 0; k < GH; ++k) dst[k] += bias.data()[k];
    }

  // 2. The time loop. W_hh^T is packed once, one operand per gate, so that a thread's units map
  //    to the same panel range in every gate; each thread packs the panels it owns (in the job).
  std::vector<PackedB<T>> w_hh_t(C::G);
  PackedB<T> w_hr_t;
  if (!unpacked) {
    for (int g = 0; g < C::G; ++g) w_hh_t[g].prepare(P, H);
    if (proj) w_hr_t.prepare(H, P);
  }
  AlignedBuffer<T> h_bufs[2] = {AlignedBuffer<T>(static_cast<std::size_t>(B * P)),
                                AlignedBuffer<T>(static_cast<std::size_t>(B * P))};
  AlignedBuffer<T> c(static_cast<std::size_t>(C::has_c ? B * H : 0));
  // Per step, row i of these is the i-th sequence that takes the step.
  AlignedBuffer<T> hg(static_cast<std::size_t>(B * GH)), h_new(static_cast<std::size_t>(B * P));
  // Inference writes the per-step values that training saves into these instead.
  AlignedBuffer<T> gates_tmp(sv ? 0 : static_cast<std::size_t>(B * GH));
  AlignedBuffer<T> c_new_tmp(sv || !C::has_c ? 0 : static_cast<std::size_t>(B * H));
  AlignedBuffer<T> m_tmp(sv || !proj ? 0 : static_cast<std::size_t>(B * H));
  AlignedBuffer<T> gh_n_tmp(sv || !gru ? 0 : static_cast<std::size_t>(B * H));
  copy_n(h_bufs[0].data(), a.h0, B * P);
  if (C::has_c) copy_n(c.data(), a.c0, B * H);

  const int nthreads = loop_threads(B, GH, H, P, NR);
  // Per thread, allocated here (a job that waits on a barrier must never throw): its packed copy
  // of the state (and of m), the list of sequences that take the step, and their rows of the state.
  std::vector<PackedA<T>> h_packs(nthreads), m_packs(proj ? nthreads : 0);
  for (auto& pa : h_packs) pa.reserve(B, P);
  for (auto& pa : m_packs) pa.reserve(B, H);
  std::vector<std::vector<index_t>> act_lists(nthreads, std::vector<index_t>(B));
  std::vector<AlignedBuffer<T>> h_gathers(a.lengths ? nthreads : 0);
  for (auto& g : h_gathers) g.resize(static_cast<std::size_t>(B * P));
  SpinBarrier barrier(nthreads);
  auto job = [&](int tid) {
    const Split sp = split_for(tid, nthreads, H, P, NR);
    const index_t pw = sp.p1 - sp.p0, uw = sp.u1 - sp.u0;
    PackedA<T>& h_packed = h_packs[tid];
    index_t* act = act_lists[tid].data();
    if (!unpacked) {  // only this thread reads these panels
      for (int g = 0; g < C::G; ++g)
        w_hh_t[g].pack_panels(sp.ub0, sp.ub1, w.w_hh + g * H * P, 1, P);
      if (proj) w_hr_t.pack_panels(sp.pb0, sp.pb1, w.w_hr, 1, H);
    }
    for (index_t s = 0; s < d.T; ++s) {
      const index_t t = reverse ? d.T - 1 - s : s, r0 = steps.first[t];
      const index_t n = active_rows(a.lengths, B, t, act);
      const T* hc = h_bufs[s & 1].data();
      T* hn = h_bufs[(s + 1) & 1].data();
      if (sv)
        for (index_t i = 0; i < n; ++i) {
          copy_n(sv->h_prev.data() + (r0 + i) * P + sp.p0, hc + act[i] * P + sp.p0, pw);
          if (C::has_c)
            copy_n(sv->c_prev.data() + (r0 + i) * H + sp.u0, c.data() + act[i] * H + sp.u0, uw);
        }
      // hg = h_prev W_hh^T for the sequences that take the step (their rows of h gathered first
      // when some have ended): each gate's product, the state packed once for all of them.
      const T* h_rows = hc;
      if (n < B) {
        gather_rows(n, act, hc, P, P, h_gathers[tid].data(), P);
        h_rows = h_gathers[tid].data();
      }
      if (n > 0 && unpacked) {
        for (int g = 0; g < C::G; ++g)
          product_rowmajor<T>(n, P, h_rows, P, w.w_hh + g * H * P, P, sp.u0, sp.u1,
                              hg.data() + g * H, GH);
      } else if (n > 0) {
        h_packed.pack(n, P, h_rows, P, 1);
        for (int g = 0; g < C::G; ++g)
          gemm_panels<T>(h_packed, w_hh_t[g], sp.ub0, sp.ub1, hg.data() + g * H, GH, false);
      }

      T* gates = sv ? sv->gates.data() + r0 * GH : gates_tmp.data();
      T* c_new = !C::has_c ? nullptr : sv ? sv->c_new.data() + r0 * H : c_new_tmp.data();
      T* gh_n = !gru ? nullptr : sv ? sv->gh_n.data() + r0 * H : gh_n_tmp.data();
      T* out = !proj ? h_new.data() : sv ? sv->m.data() + r0 * H : m_tmp.data();
      for (index_t i = 0; i < n; ++i) {
        const index_t b = act[i];
        C::forward_row(H, sp.u0, sp.u1, xg.data() + (r0 + i) * GH, hg.data() + i * GH, b_hn.data(),
                       hc + b * P, row(c.data(), b, H), gates + i * GH, out + i * H,
                       row(c_new, i, H), row(gh_n, i, H));
      }
      if (proj) {
        barrier.wait();  // the projection needs every unit's m
        if (n > 0 && unpacked) {
          product_rowmajor<T>(n, H, out, H, w.w_hr, H, sp.p0, sp.p1, h_new.data(), P);
        } else if (n > 0) {
          m_packs[tid].pack(n, H, out, H, 1);
          gemm_panels<T>(m_packs[tid], w_hr_t, sp.pb0, sp.pb1, h_new.data(), P, false);
        }
      }

      // Sequences that took the step move to their new state; the others keep theirs.
      T* y = a.y + t * B * P;
      for (index_t b = 0, i = 0; b < B; ++b) {
        if (i < n && act[i] == b) {
          copy_n(hn + b * P + sp.p0, h_new.data() + i * P + sp.p0, pw);
          copy_n(y + b * P + sp.p0, h_new.data() + i * P + sp.p0, pw);
          if (C::has_c) copy_n(c.data() + b * H + sp.u0, c_new + i * H + sp.u0, uw);
          ++i;
        } else {
          copy_n(hn + b * P + sp.p0, hc + b * P + sp.p0, pw);
          zero_n(y + b * P + sp.p0, pw);
        }
      }
      barrier.wait();  // the next step's product reads every column of the new state
    }
  };
  ThreadTeam::global().run(nthreads, JobRef(job));
  copy_n(a.h_n, h_bufs[d.T & 1].data(), B * P);
  if (C::has_c) copy_n(a.c_n, c.data(), B * H);
}

template <class T, class C>
void backward_loop(const Dims& d, bool reverse, const Weights<T>& w, const BackwardArgs<T>& a) {
  const index_t B = d.B, I = d.I, H = d.H, P = d.P, GH = C::G * H, TB = d.T * d.B;
  constexpr index_t NR = Tile<T>::NR;
  constexpr bool gru = C::G == 3;  // the only cell whose hidden-side gate gradients differ
  const bool proj = w.w_hr != nullptr;
  const Saved<T>& sv = *a.saved;
  const StepRows steps(a.lengths, d.T, B);
  const index_t rows = steps.count();

  // The gate gradients (and the projection's dh, for dW_hr) by row, as forward saved its values.
  AlignedBuffer<T> dgi(static_cast<std::size_t>(rows * GH));
  AlignedBuffer<T> dgh_gru(static_cast<std::size_t>(gru ? rows * GH : 0));
  T* dgh = gru ? dgh_gru.data() : dgi.data();
  AlignedBuffer<T> dh_total(static_cast<std::size_t>(proj ? rows * P : B * P));
  AlignedBuffer<T> dm(static_cast<std::size_t>(proj ? B * H : 0));
  AlignedBuffer<T> dh_bufs[2] = {AlignedBuffer<T>(static_cast<std::size_t>(B * P)),
                                 AlignedBuffer<T>(static_cast<std::size_t>(B * P))};
  AlignedBuffer<T> dc(static_cast<std::size_t>(C::has_c ? B * H : 0));
  // dh_prev = dgates_h W_hh of the step's rows, when some sequences did not take it.
  AlignedBuffer<T> dh_rows(static_cast<std::size_t>(a.lengths ? B * P : 0));
  PackedB<T> w_hh_p, w_hr_p;  // packed in the job, each thread the panels it owns
  w_hh_p.prepare(GH, P);
  if (proj) w_hr_p.prepare(P, H);
  copy_n(dh_bufs[0].data(), a.dh_n, B * P);
  if (C::has_c) copy_n(dc.data(), a.dc_n, B * H);

  // The reverse loop: steps in the opposite order to forward's, split like forward's.
  const int nthreads = loop_threads(B, GH, H, P, NR);
  // Each thread's packed copy of dh (projection) or of the step's dgates, and its list of the
  // sequences that took the step; see forward_loop.
  std::vector<PackedA<T>> a_packs(nthreads);
  for (auto& pa : a_packs) pa.reserve(B, std::max(GH, P));
  std::vector<std::vector<index_t>> act_lists(nthreads, std::vector<index_t>(B));
  // Each thread's sum of squares of dLoss/dh_t over its columns, per time step (diagnostics).
  std::vector<double> dh_sq(static_cast<std::size_t>(nthreads * d.T), 0.0);
  SpinBarrier barrier(nthreads);
  auto job = [&](int tid) {
    const Split sp = split_for(tid, nthreads, H, P, NR);
    const index_t pw = sp.p1 - sp.p0;
    PackedA<T>& a_packed = a_packs[tid];
    index_t* act = act_lists[tid].data();
    w_hh_p.pack_panels(sp.pb0, sp.pb1, w.w_hh, P, 1);
    if (proj) w_hr_p.pack_panels(sp.ub0, sp.ub1, w.w_hr, H, 1);
    for (index_t k = 0; k < d.T; ++k) {
      const index_t s = d.T - 1 - k, t = reverse ? d.T - 1 - s : s, r0 = steps.first[t];
      const index_t n = active_rows(a.lengths, B, t, act);
      const T* dcur = dh_bufs[k & 1].data();
      T* dnext = dh_bufs[(k + 1) & 1].data();
      // dLoss/dh_t of each sequence that took the step: from the later steps and from y.
      T* dtot = proj ? dh_total.data() + r0 * P : dh_total.data();
      double sq = 0;
      for (index_t i = 0; i < n; ++i) {
        T* dst = dtot + i * P;
        const T* src = dcur + act[i] * P;
        const T* dyb = a.dy + (t * B + act[i]) * P;
        for (index_t j = sp.p0; j < sp.p1; ++j) {
          dst[j] = src[j] + dyb[j];
          sq += double(dst[j]) * double(dst[j]);
        }
      }
      dh_sq[tid * d.T + t] += sq;
      const T* dcell = dtot;  // the gradient w.r.t. the cell output (m for a projected LSTM)
      if (proj) {
        barrier.wait();  // dm = dh W_hr needs every column of dh
        if (n > 0) {
          a_packed.pack(n, P, dtot, P, 1);
          gemm_panels<T>(a_packed, w_hr_p, sp.ub0, sp.ub1, dm.data(), H, false);
        }
        dcell = dm.data();
      }
      for (index_t i = 0; i < n; ++i) {
        const index_t r = r0 + i, b = act[i];
        C::backward_row(H, sp.u0, sp.u1, dcell + i * (proj ? H : P), row(dc.data(), b, H),
                        sv.gates.data() + r * GH, row(sv.c_prev.data(), r, H),
                        row(sv.c_new.data(), r, H), sv.h_prev.data() + r * P,
                        row(sv.gh_n.data(), r, H), dgi.data() + r * GH, dgh + r * GH,
                        dnext + b * P);
      }
      barrier.wait();  // dh_prev = dgates_h W_hh needs every gate of every unit
      // (+ the GRU's direct z * dh, already in dnext; the GRU has no projection, so P == H.) The
      // step's rows of dgates are consecutive; with every sequence in it, row i is sequence i.
      if (n == B) {
        a_packed.pack(B, GH, dgh + r0 * GH, GH, 1);
        gemm_panels<T>(a_packed, w_hh_p, sp.pb0, sp.pb1, dnext, P, gru);
      } else if (n > 0) {
        a_packed.pack(n, GH, dgh + r0 * GH, GH, 1);
        gemm_panels<T>(a_packed, w_hh_p, sp.pb0, sp.pb1, dh_rows.data(), P, false);
        for (index_t i = 0; i < n; ++i) {
          T* dst = dnext + act[i] * P;
          const T* src = dh_rows.data() + i * P;
          for (index_t j = sp.p0; j < sp.p1; ++j) dst[j] = gru ? dst[j] + src[j] : src[j];
        }
      }
      // Sequences that did not take the step pass their gradient through unchanged.
      for (index_t b = 0, i = 0; b < B; ++b) {
        if (i < n && act[i] == b) ++i;
        else copy_n(dnext + b * P + sp.p0, dcur + b * P + sp.p0, pw);
      }
    }
  };
  ThreadTeam::global().run(nthreads, JobRef(job));
  copy_n(a.dh0, dh_bufs[d.T & 1].data(), B * P);
  if (a.dh_norms)
    for (index_t t = 0; t < d.T; ++t) {
      double sq = 0;
      for (int tid = 0; tid < nthreads; ++tid) sq += dh_sq[tid * d.T + t];
      a.dh_norms[t] = std::sqrt(sq);
    }
  if (C::has_c) copy_n(a.dc0, dc.data(), B * H);

  // The hoisted products over all rows (every (t, b) that took its step).
  const T* x = a.lengths ? sv.x_rows.data() : a.x;
  PackedB<T> scratch;
  if (rows == TB) {  // row t * B + b is (t, b)
    gemm<T>(TB, I, GH, dgi.data(), GH, 1, w.w_ih, I, 1, a.dx, I, false, scratch);
  } else {  // dx by row, then into (T, B, I) with zeros where a sequence had ended
    AlignedBuffer<T> dx_rows(static_cast<std::size_t>(rows * I));
    gemm<T>(rows, I, GH, dgi.data(), GH, 1, w.w_ih, I, 1, dx_rows.data(), I, false, scratch);
    for (index_t t = 0, r = 0; t < d.T; ++t)
      for (index_t b = 0; b < B; ++b) {
        T* dst = a.dx + (t * B + b) * I;
        if (is_active(a.lengths, b, t)) copy_n(dst, dx_rows.data() + (r++) * I, I);
        else zero_n(dst, I);
      }
  }
  gemm<T>(GH, I, rows, dgi.data(), 1, GH, x, I, 1, a.dw_ih, I, false, scratch);
  gemm<T>(GH, P, rows, dgh, 1, GH, sv.h_prev.data(), P, 1, a.dw_hh, P, false, scratch);
  if (a.db_ih) column_sums(rows, GH, dgi.data(), a.db_ih);
  if (a.db_hh) column_sums(rows, GH, dgh, a.db_hh);
  if (proj)
    gemm<T>(P, H, rows, dh_total.data(), 1, P, sv.m.data(), H, 1, a.dw_hr, H, false, scratch);
}

template <class T>
void forward_cell(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a) {
  switch (cell) {
    case Cell::rnn_tanh: forward_loop<T, RnnCell<T, false>>(d, reverse, w, a); break;
    case Cell::rnn_relu: forward_loop<T, RnnCell<T, true>>(d, reverse, w, a); break;
    case Cell::lstm: forward_loop<T, LstmCell<T>>(d, reverse, w, a); break;
    case Cell::gru: forward_loop<T, GruCell<T>>(d, reverse, w, a); break;
  }
}

template <class T>
void backward_cell(Cell cell, const Dims& d, bool reverse, const Weights<T>& w,
                   const BackwardArgs<T>& a) {
  switch (cell) {
    case Cell::rnn_tanh: backward_loop<T, RnnCell<T, false>>(d, reverse, w, a); break;
    case Cell::rnn_relu: backward_loop<T, RnnCell<T, true>>(d, reverse, w, a); break;
    case Cell::lstm: backward_loop<T, LstmCell<T>>(d, reverse, w, a); break;
    case Cell::gru: backward_loop<T, GruCell<T>>(d, reverse, w, a); break;
  }
}

}  // namespace

void forward(Cell cell, const Dims& d, bool reverse, const Weights<float>& w,
             const ForwardArgs<float>& a) {
  forward_cell(cell, d, reverse, w, a);
}
void forward(Cell cell, const Dims& d, bool reverse, const Weights<double>& w,
             const ForwardArgs<double>& a) {
  forward_cell(cell, d, reverse, w, a);
}
void backward(Cell cell, const Dims& d, bool reverse, const Weights<float>& w,
              const BackwardArgs<float>& a) {
  backward_cell(cell, d, reverse, w, a);
}
void backward(Cell cell, const Dims& d, bool reverse, const Weights<double>& w,
              const BackwardArgs<double>& a) {
  backward_cell(cell, d, reverse, w, a);
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
