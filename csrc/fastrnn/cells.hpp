// Per-cell elementwise math for one sequence (one row of the batch), PyTorch's equations and gate
// order. Gate pre-activations arrive split in two: xg = W_ih x + b_ih (+ b_hh, folded in where it
// may be: everywhere but GRU's n gate) and hg = W_hh h_prev, both G*H long, gate-major.
//
// forward_row writes the activated gates (what backward needs), the cell output `out` (the new h; for
// the LSTM m = o * tanh(c), which the projection, if any, turns into h) and the cell's extras.
// backward_row turns dh (dm for the LSTM) and dc into the gradients w.r.t. xg (dgi) and hg (dgh),
// the part of dh_prev that bypasses W_hh (GRU only) and dc_prev (in place in dc).
#pragma once

#ifndef FASTRNN_ISA
#error "cells.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <cmath>
#include <cstdint>

namespace fastrnn {
namespace FASTRNN_ISA {

using index_t = std::int64_t;

template <class T>
inline T sigmoid(T a) {
  return T(1) / (T(1) + std::exp(-a));  // exp overflows to inf for a << 0: the result is then 0
}

template <class T, bool Relu>
struct RnnCell {
  static constexpr int G = 1;
  static constexpr bool has_c = false;

  static void forward_row(index_t H, const T* xg, const T* hg, const T* /*b_hn*/, const T* /*h_prev*/,
                          const T* /*c_prev*/, T* gates, T* out, T* /*c_new*/, T* /*gh_n*/) {
    for (index_t j = 0; j < H; ++j) {
      const T a = xg[j] + hg[j];
      const T h = Relu ? (a > T(0) ? a : T(0)) : std::tanh(a);
      gates[j] = h;
      out[j] = h;
    }
  }

  static void backward_row(index_t H, const T* dh, T* /*dc*/, const T* gates, const T* /*c_prev*/,
                           const T* /*c_new*/, const T* /*h_prev*/, const T* /*gh_n*/, T* dgi,
                           T* /*dgh*/, T* /*dh_direct*/) {
    for (index_t j = 0; j < H; ++j) {
      const T h = gates[j];
      dgi[j] = Relu ? (h > T(0) ? dh[j] : T(0)) : dh[j] * (T(1) - h * h);
    }
  }
};

template <class T>
struct LstmCell {
  static constexpr int G = 4;
  static constexpr bool has_c = true;

  static void forward_row(index_t H, const T* xg, const T* hg, const T* /*b_hn*/, const T* /*h_prev*/,
                          const T* c_prev, T* gates, T* out, T* c_new, T* /*gh_n*/) {
    for (index_t j = 0; j < H; ++j) {
      const T i = sigmoid(xg[j] + hg[j]);
      const T f = sigmoid(xg[H + j] + hg[H + j]);
      const T g = std::tanh(xg[2 * H + j] + hg[2 * H + j]);
      const T o = sigmoid(xg[3 * H + j] + hg[3 * H + j]);
      const T c = f * c_prev[j] + i * g;
      gates[j] = i;
      gates[H + j] = f;
      gates[2 * H + j] = g;
      gates[3 * H + j] = o;
      c_new[j] = c;
      out[j] = o * std::tanh(c);
    }
  }

  static void backward_row(index_t H, const T* dm, T* dc, const T* gates, const T* c_prev,
                           const T* c_new, const T* /*h_prev*/, const T* /*gh_n*/, T* dgi,
                           T* /*dgh*/, T* /*dh_direct*/) {
    for (index_t j = 0; j < H; ++j) {
      const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
      const T tc = std::tanh(c_new[j]);
      const T dct = dc[j] + dm[j] * o * (T(1) - tc * tc);
      dgi[j] = dct * g * i * (T(1) - i);
      dgi[H + j] = dct * c_prev[j] * f * (T(1) - f);
      dgi[2 * H + j] = dct * i * (T(1) - g * g);
      dgi[3 * H + j] = dm[j] * tc * o * (T(1) - o);
      dc[j] = dct * f;
    }
  }
};

template <class T>
struct GruCell {
  static constexpr int G = 3;
  static constexpr bool has_c = false;

  static void forward_row(index_t H, const T* xg, const T* hg, const T* b_hn, const T* h_prev,
                          const T* /*c_prev*/, T* gates, T* out, T* /*c_new*/, T* gh_n) {
    for (index_t j = 0; j < H; ++j) {
      const T r = sigmoid(xg[j] + hg[j]);
      const T z = sigmoid(xg[H + j] + hg[H + j]);
      const T ghn = hg[2 * H + j] + b_hn[j];
      const T n = std::tanh(xg[2 * H + j] + r * ghn);
      gates[j] = r;
      gates[H + j] = z;
      gates[2 * H + j] = n;
      gh_n[j] = ghn;
      out[j] = (T(1) - z) * n + z * h_prev[j];
    }
  }

  static void backward_row(index_t H, const T* dh, T* /*dc*/, const T* gates, const T* /*c_prev*/,
                           const T* /*c_new*/, const T* h_prev, const T* gh_n, T* dgi, T* dgh,
                           T* dh_direct) {
    for (index_t j = 0; j < H; ++j) {
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

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
