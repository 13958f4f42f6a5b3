// Per-cell elementwise math for one sequence (one row of the batch), PyTorch's equations and gate
// order. Gate pre-activations arrive split in two: xg = W_ih x + b_ih (+ b_hh, folded in where it
// may be: everywhere but the reset-after GRU's n gate) and hg = W_hh h_prev, both G*H long,
// gate-major. Two variants PyTorch lacks: LSTM peepholes (w_ph) and the reset-before GRU, whose n
// gate's product W_hn (r * h_prev) needs r first: its step runs in two phases around that product
// (forward_reset, then forward_row; backward_row, then backward_reset).
//
// forward_row writes the activated gates (what backward needs), the cell output `out` (the new h;
// for the LSTM m = o * tanh(c), which the projection, if any, turns into h) and the cell's extras.
// backward_row turns dh (dm for the LSTM) and dc into the gradients w.r.t. xg (dgi) and hg (dgh),
// the part of dh_prev that bypasses W_hh (GRU only) and dc_prev (in place in dc).
// Both cover hidden units [j0, j1) of the row: each thread of the time loop owns a range of units
// and all G gates of them. The row structs point to the start of the row; H is the gate stride.
// No two of a row's pointers overlap: each cell's *_units loop takes them as __restrict
// parameters, which GCC vectorises (as __restrict locals it does not: 2x slower, measured).
#pragma once

#ifndef FASTRNN_ISA
#error "cells.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "fastrnn/common.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

// exp, sigmoid and tanh written with arithmetic and bit operations only, so that the compiler
// vectorises the loops below (libm's scalar calls cost more than the products at small sizes).
// exp: x = n ln2 + r with |r| <= ln2/2, a Taylor polynomial for e^r, then the exponent bits.
// Relative error about 1e-7 (float; Taylor degree 7) and 2e-16 (double; degree 12).
template <class T>
struct ExpConst;
template <>
struct ExpConst<float> {
  using Int = std::int32_t;
  static constexpr float lo = -87.3f, hi = 88.3f;  // 2^n stays a normal number
  static constexpr float magic = 12582912.0f;      // 1.5 * 2^23: adding it rounds to an integer
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
  static constexpr int degree = 7, mantissa = 23, bias = 127;
};
template <>
struct ExpConst<double> {
  using Int = std::int64_t;
  static constexpr double lo = -708.0, hi = 709.0;
  static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
  static constexpr int degree = 12, mantissa = 52, bias = 1023;
};

template <class T>
inline T exp_approx(T x) {
  using K = ExpConst<T>;
  x = std::min(std::max(x, K::lo), K::hi);
  const T n = (x * T(1.4426950408889634) + K::magic) - K::magic;
  const T r = (x - n * K::ln2_hi) - n * K::ln2_lo;
  T p;  // sum of r^k / k!, Horner form, written out so the loop around it vectorises
  // clang-format off: one line per few terms reads better than the formatter's staircase
  if constexpr (K::degree == 7) {
    p = T(1) + r * (T(1) + r * (T(1) / 2 + r * (T(1) / 6 + r * (T(1) / 24 + r * (T(1) / 120 +
        r * (T(1) / 720 + r * (T(1) / 5040)))))));
  } else {
    p = T(1) + r * (T(1) + r * (T(1) / 2 + r * (T(1) / 6 + r * (T(1) / 24 + r * (T(1) / 120 +
        r * (T(1) / 720 + r * (T(1) / 5040 + r * (T(1) / 40320 + r * (T(1) / 362880 +
        r * (T(1) / 3628800 + r * (T(1) / 39916800 + r * (T(1) / 479001600))))))))))));
  }
  // clang-format on
  const T n_finite = n == n ? n : T(0);  // NaN x: converting n would be undefined; p stays NaN
  typename K::Int bits = (static_cast<typename K::Int>(n_finite) + K::bias) << K::mantissa;
  T scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

template <class T>
inline T sigmoid(T a) {
  return T(1) / (T(1) + exp_approx(-a));  // well conditioned for every a
}

// tanh(a) = 1 - 2 / (e^{2a} + 1), except near 0 where that cancels: there its odd Taylor series.
template <class T>
inline T tanh_approx(T a) {
  const T x2 = a * a;
  // clang-format off
  const T series =
      a * (T(1) + x2 * (T(-1) / 3 + x2 * (T(2) / 15 + x2 * (T(-17) / 315 + x2 * (T(62) / 2835 +
          x2 * (T(-1382) / 155925 + x2 * (T(21844) / 6081075)))))));
  // clang-format on
  const T big = T(1) - T(2) / (exp_approx(T(2) * a) + T(1));
  const T small_limit = sizeof(T) == 4 ? T(0.3) : T(0.02);
  return std::fabs(a) < small_limit ? series : big;
}

// One row's operands in forward_row. Sizes per row; unused fields (another cell's) may be null.
template <class T>
struct ForwardRow {
  const T* xg;      // (G*H) W_ih x + the folded biases
  const T* hg;      // (G*H) W_hh h_prev
  const T* b_hn;    // (H) gru: b_hh's n gate, added inside r * (W_hn h + b_hn)
  const T* h_prev;  // (H) gru: the state the step starts from (the GRU has P == H)
  const T* c_prev;  // (H) lstm: the cell state the step starts from
  const T* w_ph;    // (3*H) lstm with peepholes: p_i, p_f, p_o
  T* gates;         // (G*H) out: the activated gates (rnn: the new h)
  T* out;           // (H) out: the new h (lstm: m = o * tanh(c_new))
  T* c_new;         // (H) out, lstm: the new cell state
  T* gh_n;          // (H) out, reset-after gru: W_hn h_prev + b_hn
  T* rh;            // (H) out of forward_reset, reset-before gru: r * h_prev, what W_hn multiplies
};

// One row's operands in backward_row: forward's saved values and the gradients.
template <class T>
struct BackwardRow {
  const T* dh;      // (H) dLoss/d out (lstm: dLoss/dm)
  T* dc;            // (H) lstm: dLoss/dc_new in, dLoss/dc_prev out
  const T* gates;   // (G*H) forward's activated gates
  const T* c_prev;  // (H) lstm
  const T* c_new;   // (H) lstm
  const T* h_prev;  // (H) gru
  const T* gh_n;    // (H) reset-after gru
  const T* w_ph;    // (3*H) lstm with peepholes
  const T* d_rh;    // (H) reset-before gru, in backward_reset: dLoss/d(r * h_prev) = dn W_hn
  T* dgi;           // (G*H) out: dLoss/dxg
  T* dgh;           // (G*H) out, reset-after gru: dLoss/dhg (the other cells: dgi serves both)
  T* dh_direct;     // (H) out, gru: the part of dLoss/dh_prev that bypasses W_hh's product by h
};

template <class T, bool Relu>
struct RnnCell {
  static constexpr int G = 1;
  static constexpr bool has_c = false;
  static constexpr bool reset_before = false;

  static void forward_row(index_t H, index_t j0, index_t j1, const ForwardRow<T>& row) {
    forward_units(H, j0, j1, row.xg, row.hg, row.gates, row.out);
  }

  static void forward_units(index_t /*H*/, index_t j0, index_t j1, const T* __restrict xg,
                            const T* __restrict hg, T* __restrict gates, T* __restrict out) {
    for (index_t j = j0; j < j1; ++j) {
      const T a = xg[j] + hg[j];
      const T h = Relu ? (a < T(0) ? T(0) : a) : tanh_approx(a);  // NaN stays NaN, as in NumPy
      gates[j] = h;
      out[j] = h;
    }
  }

  static void backward_row(index_t H, index_t j0, index_t j1, const BackwardRow<T>& row) {
    backward_units(H, j0, j1, row.dh, row.gates, row.dgi);
  }

  static void backward_units(index_t /*H*/, index_t j0, index_t j1, const T* __restrict dh,
                             const T* __restrict gates, T* __restrict dgi) {
    for (index_t j = j0; j < j1; ++j) {
      const T h = gates[j];
      dgi[j] = Relu ? dh[j] * (h > T(0) ? T(1) : T(0)) : dh[j] * (T(1) - h * h);
    }
  }
};

// Peepholes: i and f also see p_i * c_prev and p_f * c_prev, o sees p_o * c_new (ONNX's P).
template <class T, bool Peepholes>
struct LstmCell {
  static constexpr int G = 4;
  static constexpr bool has_c = true;
  static constexpr bool reset_before = false;

  static void forward_row(index_t H, index_t j0, index_t j1, const ForwardRow<T>& row) {
    forward_units(H, j0, j1, row.xg, row.hg, row.c_prev, row.w_ph, row.gates, row.out, row.c_new);
  }

  static void forward_units(index_t H, index_t j0, index_t j1, const T* __restrict xg,
                            const T* __restrict hg, const T* __restrict c_prev,
                            const T* __restrict w_ph, T* __restrict gates, T* __restrict out,
                            T* __restrict c_new) {
    for (index_t j = j0; j < j1; ++j) {
      T ai = xg[j] + hg[j], af = xg[H + j] + hg[H + j], ao = xg[3 * H + j] + hg[3 * H + j];
      if constexpr (Peepholes) {
        ai += w_ph[j] * c_prev[j];
        af += w_ph[H + j] * c_prev[j];
      }
      const T i = sigmoid(ai);
      const T f = sigmoid(af);
      const T g = tanh_approx(xg[2 * H + j] + hg[2 * H + j]);
      const T c = f * c_prev[j] + i * g;
      if constexpr (Peepholes) ao += w_ph[2 * H + j] * c;
      const T o = sigmoid(ao);
      gates[j] = i;
      gates[H + j] = f;
      gates[2 * H + j] = g;
      gates[3 * H + j] = o;
      c_new[j] = c;
      out[j] = o * tanh_approx(c);
    }
  }

  static void backward_row(index_t H, index_t j0, index_t j1, const BackwardRow<T>& row) {
    backward_units(H, j0, j1, row.dh, row.dc, row.gates, row.c_prev, row.c_new, row.w_ph, row.dgi);
  }

  // The peepholes' own gradient is a reduction over rows of dgi * c afterwards (not per step).
  static void backward_units(index_t H, index_t j0, index_t j1, const T* __restrict dm,
                             T* __restrict dc, const T* __restrict gates,
                             const T* __restrict c_prev, const T* __restrict c_new,
                             const T* __restrict w_ph, T* __restrict dgi) {
    for (index_t j = j0; j < j1; ++j) {
      const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
      const T tc = tanh_approx(c_new[j]);
      const T dao = dm[j] * tc * o * (T(1) - o);
      T dct = dc[j] + dm[j] * o * (T(1) - tc * tc);
      if constexpr (Peepholes) dct += dao * w_ph[2 * H + j];
      const T dai = dct * g * i * (T(1) - i);
      const T daf = dct * c_prev[j] * f * (T(1) - f);
      dgi[j] = dai;
      dgi[H + j] = daf;
      dgi[2 * H + j] = dct * i * (T(1) - g * g);
      dgi[3 * H + j] = dao;
      if constexpr (Peepholes)
        dc[j] = dct * f + dai * w_ph[j] + daf * w_ph[H + j];
      else
        dc[j] = dct * f;
    }
  }
};

template <class T>
struct GruCell {
  static constexpr int G = 3;
  static constexpr bool has_c = false;
  static constexpr bool reset_before = false;

  static void forward_row(index_t H, index_t j0, index_t j1, const ForwardRow<T>& row) {
    forward_units(H, j0, j1, row.xg, row.hg, row.b_hn, row.h_prev, row.gates, row.out, row.gh_n);
  }

  static void forward_units(index_t H, index_t j0, index_t j1, const T* __restrict xg,
                            const T* __restrict hg, const T* __restrict b_hn,
                            const T* __restrict h_prev, T* __restrict gates, T* __restrict out,
                            T* __restrict gh_n) {
    for (index_t j = j0; j < j1; ++j) {
      const T r = sigmoid(xg[j] + hg[j]);
      const T z = sigmoid(xg[H + j] + hg[H + j]);
      const T ghn = hg[2 * H + j] + b_hn[j];
      const T n = tanh_approx(xg[2 * H + j] + r * ghn);
      gates[j] = r;
      gates[H + j] = z;
      gates[2 * H + j] = n;
      gh_n[j] = ghn;
      out[j] = (T(1) - z) * n + z * h_prev[j];
    }
  }

  static void backward_row(index_t H, index_t j0, index_t j1, const BackwardRow<T>& row) {
    backward_units(H, j0, j1, row.dh, row.gates, row.h_prev, row.gh_n, row.dgi, row.dgh,
                   row.dh_direct);
  }

  static void backward_units(index_t H, index_t j0, index_t j1, const T* __restrict dh,
                             const T* __restrict gates, const T* __restrict h_prev,
                             const T* __restrict gh_n, T* __restrict dgi, T* __restrict dgh,
                             T* __restrict dh_direct) {
    for (index_t j = j0; j < j1; ++j) {
      const T r = gates[j], z = gates[H + j], n = gates[2 * H + j];
      const T dn = dh[j] * (T(1) - z) * (T(1) - n * n);
      const T dz = dh[j] * (h_prev[j] - n) * z * (T(1) - z);
      const T dr = dn * gh_n[j] * r * (T(1) - r);
      dgi[j] = dgh[j] = dr;
      dgi[H + j] = dgh[H + j] = dz;
      dgi[2 * H + j] = dn;
      dgh[2 * H + j] = dn * r;
      dh_direct[j] = dh[j] * z;
    }
  }
};

// The original GRU (Cho et al. 2014): n = tanh(xg_n + W_hn (r * h_prev)), b_hn folded into xg_n.
// hg holds the r and z products first (forward_reset makes r * h_prev), then the n product.
template <class T>
struct GruResetBeforeCell {
  static constexpr int G = 3;
  static constexpr bool has_c = false;
  static constexpr bool reset_before = true;

  static void forward_reset(index_t H, index_t j0, index_t j1, const ForwardRow<T>& row) {
    reset_units(H, j0, j1, row.xg, row.hg, row.h_prev, row.gates, row.rh);
  }

  static void reset_units(index_t H, index_t j0, index_t j1, const T* __restrict xg,
                          const T* __restrict hg, const T* __restrict h_prev, T* __restrict gates,
                          T* __restrict rh) {
    for (index_t j = j0; j < j1; ++j) {
      const T r = sigmoid(xg[j] + hg[j]);
      gates[j] = r;
      gates[H + j] = sigmoid(xg[H + j] + hg[H + j]);
      rh[j] = r * h_prev[j];
    }
  }

  static void forward_row(index_t H, index_t j0, index_t j1, const ForwardRow<T>& row) {
    forward_units(H, j0, j1, row.xg, row.hg, row.h_prev, row.gates, row.out);
  }

  static void forward_units(index_t H, index_t j0, index_t j1, const T* __restrict xg,
                            const T* __restrict hg, const T* __restrict h_prev, T* __restrict gates,
                            T* __restrict out) {
    for (index_t j = j0; j < j1; ++j) {
      const T z = gates[H + j];
      const T n = tanh_approx(xg[2 * H + j] + hg[2 * H + j]);
      gates[2 * H + j] = n;
      out[j] = (T(1) - z) * n + z * h_prev[j];
    }
  }

  // The z and n gate gradients and dh_direct = z * dh; dr needs dn W_hn first (backward_reset).
  static void backward_row(index_t H, index_t j0, index_t j1, const BackwardRow<T>& row) {
    backward_units(H, j0, j1, row.dh, row.gates, row.h_prev, row.dgi, row.dh_direct);
  }

  static void backward_units(index_t H, index_t j0, index_t j1, const T* __restrict dh,
                             const T* __restrict gates, const T* __restrict h_prev,
                             T* __restrict dgi, T* __restrict dh_direct) {
    for (index_t j = j0; j < j1; ++j) {
      const T z = gates[H + j], n = gates[2 * H + j];
      dgi[H + j] = dh[j] * (h_prev[j] - n) * z * (T(1) - z);
      dgi[2 * H + j] = dh[j] * (T(1) - z) * (T(1) - n * n);
      dh_direct[j] = dh[j] * z;
    }
  }

  // With d_rh = dn W_hn: the r gate's gradient, and r * d_rh into dh_direct.
  static void backward_reset(index_t H, index_t j0, index_t j1, const BackwardRow<T>& row) {
    reset_backward_units(j0, j1, row.d_rh, row.gates, row.h_prev, row.dgi, row.dh_direct);
  }

  static void reset_backward_units(index_t j0, index_t j1, const T* __restrict d_rh,
                                   const T* __restrict gates, const T* __restrict h_prev,
                                   T* __restrict dgi, T* __restrict dh_direct) {
    for (index_t j = j0; j < j1; ++j) {
      const T r = gates[j];
      dgi[j] = d_rh[j] * h_prev[j] * r * (T(1) - r);
      dh_direct[j] += d_rh[j] * r;
    }
  }
};

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
