// The weight gradients of one layer and direction: reductions over the rows backward makes (one per
// (t, b) that took its step, numbered as in fastrnn/recurrence.hpp). dW_ih = dG_i^T x, dW_hh =
// dG_h^T h_prev (its first GHh rows: the reset-before GRU's n gate is not a product with h_prev),
// dW_hr = dh^T m and the bias gradients (column sums of dG_i, dG_h).
//
// Rows arrive in the order backward makes them (descending for a forward layer, ascending for a
// reverse one), all at once (everything kept) or one checkpoint segment at a time. Each product
// sums kc-row blocks at fixed offsets (multiples of kc: blocks().kc, from the caches, never from
// the thread count) in that order, a block that straddles two pieces being copied aside until its
// last rows arrive, and each bias gradient adds its rows in that order: how the rows are cut into
// pieces changes no bit of the result.
#pragma once

#ifndef FASTRNN_ISA
#error "weight_gradients.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <algorithm>
#include <atomic>

#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/isa/loop.hpp"
#include "fastrnn/isa/reductions.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

// One product of gemm_pair: C (M x N, ldc) (+)= A (M x K: element (i, k) at a[i * a_rs + k * a_cs])
// times B (K x N: element (k, n) at b[k * b_rs + n * b_cs]).
template <class T>
struct PairProduct {
  index_t M;
  const T* a;
  index_t a_rs, a_cs;
  index_t N;
  const T* b;
  index_t b_rs, b_cs;
  T* c;
  index_t ldc;
};

// Two products of the same depth, at most one block deep (K <= kc), whose A operands agree in their
// first shared_rows rows: the weight gradients dG_i^T x and dG_h^T h_prev, whose gate gradients
// are one array (the GRU: all but the n gate's rows). Each block of those rows is packed once
// for both products instead of once per product. The threads split the panels of both B operands
// together; every tile is the one gemm() would make (same blocks, same micro-kernel, same order
// over k), so the results have the same bits as two calls of gemm().
template <class T>
void gemm_pair(index_t K, const PairProduct<T>& p1, const PairProduct<T>& p2, index_t shared_rows,
               bool accumulate, PackedB<T>& scratch1, PackedB<T>& scratch2) {
  const Blocks& bl = blocks<T>();
  scratch1.prepare(K, p1.N);
  scratch2.prepare(K, p2.N);
  const index_t n1 = scratch1.panels(), panels = n1 + scratch2.panels();
  const index_t M = std::max(p1.M, p2.M);
  const int nthreads = gemm_threads(M, p1.N + p2.N, K, panels);
  const std::atomic<bool>& stop = interrupt_flag();
  auto job = [&](int tid) {
    const index_t q0 = panels * tid / nthreads, q1 = panels * (tid + 1) / nthreads;
    // Panels [q0, q1) of B1's then B2's: each thread packs the ones it multiplies.
    scratch1.pack_panels(std::min(q0, n1), std::min(q1, n1), p1.b, p1.b_rs, p1.b_cs);
    scratch2.pack_panels(std::max(q0, n1) - n1, std::max(q1, n1) - n1, p2.b, p2.b_rs, p2.b_cs);
    AlignedBuffer<T>& a_pack = a_block_scratch<T>();
    for (index_t j0 = q0; j0 < q1; j0 += bl.nc) {
      const index_t j1 = std::min(q1, j0 + bl.nc);
      for (index_t i0 = 0; i0 < M; i0 += bl.mc) {
        if (stop.load(std::memory_order_relaxed)) return;
        const index_t mc1 = std::max<index_t>(0, std::min(bl.mc, p1.M - i0));
        const index_t mc2 = std::max<index_t>(0, std::min(bl.mc, p2.M - i0));
        const bool first = j0 < n1 && mc1 > 0, second = j1 > n1 && mc2 > 0;
        if (first) {
          pack_a(mc1, K, p1.a + i0 * p1.a_rs, p1.a_rs, p1.a_cs, a_pack.data());
          gemm_block(a_pack.data(), i0, mc1, 0, K, scratch1, j0, std::min(j1, n1), p1.c, p1.ldc,
                     accumulate);
        }
        if (!second) continue;
        if (!first || mc1 != mc2 || i0 + mc2 > shared_rows)  // not the block just packed
          pack_a(mc2, K, p2.a + i0 * p2.a_rs, p2.a_rs, p2.a_cs, a_pack.data());
        gemm_block(a_pack.data(), i0, mc2, 0, K, scratch2, std::max(j0, n1) - n1, j1 - n1, p2.c,
                   p2.ldc, accumulate);
      }
    }
  };
  ThreadTeam::global().run(nthreads, JobRef(job));
}

// One piece of rows: where its first row is in each per-row array (null where absent).
template <class T>
struct GradientRows {
  const T* dgi;     // (rows, G*H) dLoss/d(x W_ih^T)
  const T* dgh;     // (rows, G*H) dLoss/d(h_prev W_hh^T)
  const T* x;       // (rows, I)
  const T* h_prev;  // (rows, P)
  const T* dh;      // (rows, P) projection only: dLoss/dh
  const T* m;       // (rows, H) projection only: the cell output before W_hr
};

template <class T>
struct GradientOutputs {
  T* dw_ih;  // (G*H, I)
  T* dw_hh;  // (G*H, P)
  T* db_ih;  // (G*H) or null
  T* db_hh;  // (G*H) or null
  T* dw_hr;  // (P, H) or null
};

template <class T>
class WeightGradients {
  static constexpr int kParts = 6;  // the arrays of GradientRows, in its order

 public:
  // shared: the leading columns in which every row of dgh equals dgi's (GHh where they are one
  // array; the reset-after GRU: its r and z gates, 2*H): dW_ih and dW_hh pack them once.
  WeightGradients(index_t rows, index_t GH, index_t GHh, index_t I, index_t P, index_t H,
                  index_t shared, bool descending, const GradientOutputs<T>& out)
      : rows_(rows), GH(GH), GHh(GHh), I(I), P(P), H(H), KC(blocks<T>().kc), shared_(shared),
        descending_(descending), out_(out), widths_{GH, GH, I, P, P, H} {}

  // Rows [lo, hi), next to the previous piece in backward's order.
  void add(index_t lo, index_t hi, const GradientRows<T>& r) {
    if (hi <= lo) return;
    // One gate gradient for both sides (every cell but the reset-after GRU): the two bias
    // gradients are the same sums, made once (finish() copies them).
    db_hh_is_db_ih_ = r.dgh == r.dgi && out_.db_ih && out_.db_hh;
    if (out_.db_ih) column_sums(hi - lo, GH, r.dgi, out_.db_ih, descending_, summed_);
    if (out_.db_hh && !db_hh_is_db_ih_)
      column_sums(hi - lo, GH, r.dgh, out_.db_hh, descending_, summed_);
    summed_ = true;
    const index_t first = lo / KC, last = (hi - 1) / KC;
    for (index_t i = 0; i <= last - first; ++i) {
      const index_t b0 = (descending_ ? last - i : first + i) * KC;
      const index_t b1 = std::min(b0 + KC, rows_);
      const index_t p0 = std::max(b0, lo), p1 = std::min(b1, hi);
      if (p0 == b0 && p1 == b1) {
        products(b1 - b0, offset(r, b0 - lo));
        continue;
      }
      stage(p0 - b0, offset(r, p0 - lo), p1 - p0);
      if (descending_ ? p0 == b0 : p1 == b1) products(b1 - b0, staged());
    }
  }

  // After the last piece: what no row reached is zero.
  void finish() {
    if (!multiplied_) {
      zero_n(out_.dw_ih, GH * I);
      zero_n(out_.dw_hh, GHh * P);
      if (out_.dw_hr) zero_n(out_.dw_hr, P * H);
    }
    if (!summed_) {
      if (out_.db_ih) zero_n(out_.db_ih, GH);
      if (out_.db_hh) zero_n(out_.db_hh, GH);
    } else if (db_hh_is_db_ih_) {
      copy_n(out_.db_hh, out_.db_ih, GH);
    }
  }

 private:
  GradientRows<T> offset(const GradientRows<T>& r, index_t n) const {
    auto at = [n](const T* p, index_t width) { return p ? p + n * width : nullptr; };
    return {at(r.dgi, GH), at(r.dgh, GH), at(r.x, I), at(r.h_prev, P), at(r.dh, P), at(r.m, H)};
  }

  // Rows of a straddling block into the copy kept aside, at its row `at`.
  void stage(index_t at, const GradientRows<T>& r, index_t n) {
    const T* src[kParts] = {r.dgi, r.dgh, r.x, r.h_prev, r.dh, r.m};
    for (int p = 0; p < kParts; ++p) {
      if (!src[p]) continue;
      staged_[p].ensure(static_cast<std::size_t>(std::max<index_t>(KC * widths_[p], 1)));
      copy_n(staged_[p].data() + at * widths_[p], src[p], n * widths_[p]);
    }
  }

  GradientRows<T> staged() const {
    auto part = [this](int p) { return staged_[p].size() ? staged_[p].data() : nullptr; };
    return {part(0), part(1), part(2), part(3), part(4), part(5)};
  }

  // One block (kc rows): its share of each product, added to the earlier blocks'.
  void products(index_t kc, const GradientRows<T>& r) {
    const bool acc = multiplied_;
    multiplied_ = true;
    gemm_pair<T>(kc, {GH, r.dgi, 1, GH, I, r.x, I, 1, out_.dw_ih, I},
                 {GHh, r.dgh, 1, GH, P, r.h_prev, P, 1, out_.dw_hh, P}, shared_, acc, scratch_,
                 scratch2_);
    if (out_.dw_hr) gemm<T>(P, H, kc, r.dh, 1, P, r.m, H, 1, out_.dw_hr, H, acc, scratch_);
  }

  const index_t rows_, GH, GHh, I, P, H, KC;  // KC: rows per block
  const index_t shared_;                      // dgh's leading columns that are dgi's
  const bool descending_;
  const GradientOutputs<T> out_;
  const index_t widths_[kParts];
  bool multiplied_ = false, summed_ = false;
  bool db_hh_is_db_ih_ = false;  // the pieces' dgh is their dgi: db_hh is a copy of db_ih
  AlignedBuffer<T> staged_[kParts] = {
      // the block being completed, KC rows of each part
      AlignedBuffer<T>(Reuse::scratch), AlignedBuffer<T>(Reuse::scratch),
      AlignedBuffer<T>(Reuse::scratch), AlignedBuffer<T>(Reuse::scratch),
      AlignedBuffer<T>(Reuse::scratch), AlignedBuffer<T>(Reuse::scratch)};
  PackedB<T> scratch_, scratch2_;
};

// The reset-before GRU's dW_hn = dn^T (r * h_prev) over all rows (row order), r * h_prev remade
// from the saved gates (r first) and h_prev; dgi, gates (rows, 3*H), h_prev (rows, H), dw_hh (3*H,
// H): its last H rows.
template <class T>
void reset_before_dw_hn(index_t rows, index_t H, const T* dgi, const T* gates, const T* h_prev,
                        T* dw_hh) {
  AlignedBuffer<T> rh = buffer<T>(std::max<index_t>(rows * H, 1));
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 0; j < H; ++j) rh.data()[r * H + j] = gates[r * 3 * H + j] * h_prev[r * H + j];
  PackedB<T> scratch;
  gemm<T>(H, H, rows, dgi + 2 * H, 1, 3 * H, rh.data(), H, 1, dw_hh + 2 * H * H, H, false, scratch);
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
