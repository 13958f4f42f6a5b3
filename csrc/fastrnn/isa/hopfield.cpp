// Hopfield network recall (see fastrnn/hopfield.hpp for the contract). Exact integer arithmetic
// (the first fields through an exact float product when their magnitude allows); each state then
// runs on its own. Compiled once per instruction set (CMakeLists.txt); FASTRNN_ISA names this
// copy's namespace. Ctrl-C: the loops poll the caller's interrupt flag (interrupt.hpp) once per row
// of W, flip or sweep, and return early, results unfinished, once it is set (the binding throws).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <utility>

#include "fastrnn/isa.hpp"
#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/runtime/interrupt.hpp"
#include "fastrnn/runtime/memory.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {
namespace {

// h_g = W s_g for the G states of a group (s, h: (G, N)): each row of W is read once per group and
// stays in L1 while the G dot products use it.
template <class Acc>
void compute_fields(index_t N, const std::int32_t* W, index_t G, const Acc* s, Acc* h,
                    const std::atomic<bool>& stop) {
  for (index_t i = 0; i < N && !stop.load(std::memory_order_relaxed); ++i) {
    const std::int32_t* row = W + i * N;
    for (index_t g = 0; g < G; ++g) {
      const Acc* sg = s + g * N;
      Acc sum = 0;
      // s_j is +1 or -1: w * s_j is w or -w, i.e. (w ^ m) - m with the mask m = -(s_j < 0), which
      // vectorises to cheaper instructions than an integer multiply.
      for (index_t j = 0; j < N; ++j) {
        const Acc m = -static_cast<Acc>(sg[j] < 0);
        sum += (static_cast<Acc>(row[j]) ^ m) - m;
      }
      h[g * N + i] = sum;
    }
  }
}

// h += 2 * sign * W[i, :] (W symmetric, so the row is the column): unit i flipped to `sign`.
template <class Acc>
inline void add_flip(index_t N, const std::int32_t* row, Acc sign, Acc* h) {
  if (sign > 0) {
    for (index_t j = 0; j < N; ++j) h[j] += static_cast<Acc>(row[j]) * 2;
  } else {
    for (index_t j = 0; j < N; ++j) h[j] -= static_cast<Acc>(row[j]) * 2;
  }
}

// The sign of the field, or `current` on a tie (h == 0).
template <class Acc>
inline Acc update(Acc h, Acc current) {
  return h > 0 ? Acc(1) : h < 0 ? Acc(-1) : current;
}

// One state's sweeps from its fields h = W s (both (N)); returns {converged, sweeps run}.
template <class Acc>
std::pair<bool, index_t> run_state(const HopfieldArgs& a, Acc* s, Acc* h, index_t* flipped,
                                   const std::atomic<bool>& stop) {
  const index_t N = a.N;
  bool converged = false;
  index_t k = 0;
  while (k < a.K && !converged) {
    if (stop.load(std::memory_order_relaxed)) break;
    index_t flips = 0;
    if (a.sync) {
      // Every unit from the sweep's starting fields; then the flipped rows update the fields.
      for (index_t i = 0; i < N; ++i) {
        const Acc next = update(h[i], s[i]);
        if (next != s[i]) {
          s[i] = next;
          flipped[flips++] = i;
        }
      }
      if (k + 1 < a.K)  // the last sweep's fields are never read
        for (index_t f = 0; f < flips && !stop.load(std::memory_order_relaxed); ++f)
          add_flip(N, a.weights + flipped[f] * N, s[flipped[f]], h);
    } else {
      const std::int32_t* order = a.order + k * N;
      for (index_t u = 0; u < N; ++u) {
        const index_t i = order[u];
        const Acc next = update(h[i], s[i]);
        if (next != s[i]) {
          s[i] = next;
          ++flips;
          add_flip(N, a.weights + i * N, next, h);  // W_ii = 0: h_i itself is unchanged
          if (stop.load(std::memory_order_relaxed)) break;
        }
      }
    }
    ++k;
    converged = flips == 0;
  }
  return {converged, k};
}

constexpr index_t kGroup = 8;      // states whose first fields share one pass over W (integers)
constexpr index_t kGemmRows = 64;  // states whose first fields are one float product
constexpr index_t kFloatExact = index_t(1) << 24;  // float sums of integers are exact below this
// The float product pays with AVX2/AVX-512 (measured 5x faster than the integer pass at N = 500);
// the portable build's is slower than its integer pass.
#ifdef __AVX2__
constexpr bool kGemmPays = true;
#else
constexpr bool kGemmPays = false;
#endif

template <class Acc>
void recall_all(const HopfieldArgs& a) {
  const index_t N = a.N;
  const std::atomic<bool>& stop = interrupt_flag();
  // Every first field h_i = sum_j W_ij s_j and all its partial sums lie in [-reach, reach]. Below
  // 2**24 the float product (packed micro-kernels, gemm.hpp) computes them exactly, much faster
  // than integer dot products (with AVX2 or AVX-512); otherwise the integer pass does.
  const index_t reach = a.max_abs * (N - 1);
  const bool by_gemm = kGemmPays && reach < kFloatExact;
  const index_t rows = std::min(a.B, by_gemm ? kGemmRows : kGroup);
  // s, h (rows, N): the group's states and fields; the units flipped in a sync sweep (N)
  AlignedBuffer<Acc> s_buf(static_cast<std::size_t>(rows * N)), h_buf(s_buf.size());
  AlignedBuffer<index_t> flipped(a.sync ? static_cast<std::size_t>(N) : 0);
  Acc* s = s_buf.data();
  Acc* h = h_buf.data();
  // The float product's operands: W (N, N), the states and their fields (rows, N).
  AlignedBuffer<float> wf, sf, hf;
  PackedB<float> packed;
  if (by_gemm) {
    wf.resize(static_cast<std::size_t>(N * N));
    sf.resize(static_cast<std::size_t>(rows * N));
    hf.resize(sf.size());
    for (index_t e = 0; e < N * N; ++e) wf.data()[e] = static_cast<float>(a.weights[e]);
  }
  for (index_t b0 = 0; b0 < a.B && !stop.load(std::memory_order_relaxed); b0 += rows) {
    const index_t G = std::min(rows, a.B - b0);
    std::int8_t* states = a.states + b0 * N;
    for (index_t e = 0; e < G * N; ++e) s[e] = states[e];
    if (by_gemm) {
      // H (G, N) = S (G, N) W^T, and W^T = W.
      for (index_t e = 0; e < G * N; ++e) sf.data()[e] = static_cast<float>(states[e]);
      gemm<float>(G, N, N, sf.data(), N, 1, wf.data(), N, 1, hf.data(), N, false, packed);
      for (index_t e = 0; e < G * N; ++e) h[e] = static_cast<Acc>(hf.data()[e]);
    } else {
      compute_fields(N, a.weights, G, s, h, stop);
    }
    for (index_t g = 0; g < G; ++g) {
      const auto [converged, sweeps] = run_state(a, s + g * N, h + g * N, flipped.data(), stop);
      a.converged[b0 + g] = converged;
      a.iterations[b0 + g] = sweeps;
    }
    for (index_t e = 0; e < G * N; ++e) states[e] = static_cast<std::int8_t>(s[e]);
  }
}

}  // namespace

void hopfield_recall(const HopfieldArgs& args) {
  if (args.B <= 0 || args.N <= 0) return;
  // int32 fields when every value and update (h +- 2 W_ij) fits: 2 * max|W| * (N - 1) <= INT32_MAX.
  if (2 * args.max_abs * (args.N - 1) > std::numeric_limits<std::int32_t>::max())
    recall_all<std::int64_t>(args);
  else
    recall_all<std::int32_t>(args);
}

HopfieldWeightsCheck hopfield_check_weights(index_t N, const std::int32_t* W) {
  HopfieldWeightsCheck r{HopfieldWeightsCheck::ok, 0, 0, 0};
  std::int64_t max_abs = 0;
  for (index_t i = 0; i < N; ++i) {
    if (W[i * N + i] != 0) return {HopfieldWeightsCheck::diagonal, i, i, 0};
  }
  // Tiles of the upper triangle against the matching tiles of the lower one (cache-friendly).
  constexpr index_t kTile = 64;
  const std::atomic<bool>& stop = interrupt_flag();
  for (index_t ib = 0; ib < N && !stop.load(std::memory_order_relaxed); ib += kTile) {
    const index_t ie = std::min(N, ib + kTile);
    for (index_t jb = ib; jb < N; jb += kTile) {
      const index_t je = std::min(N, jb + kTile);
      for (index_t i = ib; i < ie; ++i) {
        for (index_t j = std::max(jb, i + 1); j < je; ++j) {
          const std::int32_t w = W[i * N + j];
          if (w != W[j * N + i]) return {HopfieldWeightsCheck::asymmetric, i, j, 0};
          max_abs = std::max(max_abs, std::abs(static_cast<std::int64_t>(w)));
        }
      }
    }
  }
  r.max_abs = max_abs;
  return r;
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
