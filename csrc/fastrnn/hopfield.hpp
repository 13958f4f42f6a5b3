// The classic Hopfield network's recall: pure C++ (no Python). The bindings
// (csrc/python/hopfield.cpp) check every argument first; hopfield_check_weights is the check they
// cannot afford to make while holding the GIL.
//
// Sizes: N units, B states, K sweeps at most. All arrays row-major, last axis fastest:
//   weights (N, N) int32: symmetric with a zero diagonal (the Hebbian counts sum_p p_i p_j, i != j)
//   states  (B, N) int8: each value +1 or -1; read as the starting states, overwritten with the
//           result
//   order   (K, N) int32, async only: row k is a permutation of 0..N-1, the update order of sweep k
//   converged (B) bool, iterations (B) int64: written for every state
//
// Update rule: h_i = sum_j W_ij s_j; s_i becomes +1 if h_i > 0, -1 if h_i < 0 and keeps its value
// if h_i == 0. Async: in sweep k the units are updated one at a time in the order order[k], each
// seeing the latest values of the others. Sync: every unit at once from the state the sweep started
// from. A state stops after the first sweep that changes nothing (converged, iterations = the
// number of sweeps run, that last one included) or after K sweeps (not converged, iterations = K).
//
// The arithmetic is exact: the local fields are integers kept in int32 when
// 2 * max|W_ij| * (N - 1) <= INT32_MAX and in int64 otherwise, so every intermediate value is
// representable. Each state's first fields are one product W s: a float product (isa/gemm.hpp) when
// max|W_ij| * (N - 1) < 2**24, where float sums of integers are exact, in the AVX2 and AVX-512
// builds; else integer dot products.
// Then async keeps the fields up to date incrementally (a flip of unit i adds 2 s_i W[i, :], a
// contiguous row since W is symmetric) and sync adds the rows of the units that flipped in the
// sweep. The results are the same as recomputing every field from scratch.
#pragma once

#include <cstdint>

#include "fastrnn/common.hpp"

namespace fastrnn {

struct HopfieldArgs {
  index_t N, B, K;              // units, states, sweeps at most
  bool sync;                    // false: async, in the order `order`
  std::int64_t max_abs;         // max |W_ij| (or an upper bound); 2 * max_abs * N must fit in int64
  const std::int32_t* weights;  // (N, N) read-only
  const std::int32_t* order;    // (K, N) read-only, async only (null for sync)
  std::int8_t* states;          // (B, N) in place: the starting states in, the results out
  bool* converged;              // (B) output
  std::int64_t* iterations;     // (B) output
};
// states, converged and iterations must not overlap each other or the inputs.

// What hopfield_check_weights found: ok, or an offending position (row, col).
struct HopfieldWeightsCheck {
  enum Status { ok, diagonal, asymmetric } status;
  index_t row, col;
  std::int64_t max_abs;  // max |W_ij| (valid when ok)
};

// Runs the recall of all B states (one after another; the first fields' float product may use the
// thread team, fastrnn::set_num_threads) on the instruction set isa.hpp picks. Allocates at most
// 4 N^2 + (384 * 4 + 64 * 24 + 8) N bytes of scratch; throws std::bad_alloc when it cannot.
void hopfield_recall(const HopfieldArgs& args);

// Checks that weights (N, N) is symmetric with a zero diagonal, and finds max |W_ij|.
HopfieldWeightsCheck hopfield_check_weights(index_t N, const std::int32_t* weights);

}  // namespace fastrnn
