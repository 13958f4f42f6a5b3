// The reductions over the rows of the saved per-(t, b) arrays that backward runs after its time
// loop (backward_pass.hpp): the bias gradients' column sums and the LSTM peepholes' gradient. Each
// output element is summed in row order by one thread, so results do not depend on the thread
// count. Compiled once per instruction set, with the loops.
#pragma once

#ifndef FASTRNN_ISA
#error "reductions.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <algorithm>

#include "fastrnn/common.hpp"
#include "fastrnn/isa/loop.hpp"
#include "fastrnn/runtime/threads.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

// out[j] (+)= sum over rows r of a[r * n + j], rows taken last to first when `descending`.
template <class T>
void column_sums(index_t rows, index_t n, const T* a, T* out, bool descending, bool accumulate) {
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
    if (!accumulate) zero_n(out + j0, j1 - j0);
    for (index_t i = 0; i < rows; ++i) {
      const T* src = a + (descending ? rows - 1 - i : i) * n;
      for (index_t j = j0; j < j1; ++j) out[j] += src[j];
    }
  };
  ThreadTeam::global().run(nthreads, JobRef(job));
}

// The peepholes' gradient: dp_i, dp_f = sums over rows of the i and f gate gradients times c_prev,
// dp_o of the o gate's times c_new. dgi (rows, 4*H); c_prev, c_new (rows, H); dp (3*H).
template <class T>
void peephole_sums(index_t rows, index_t H, const T* dgi, const T* c_prev, const T* c_new, T* dp) {
  zero_n(dp, 3 * H);
  for (index_t r = 0; r < rows; ++r) {
    const T* dg = dgi + r * 4 * H;
    const T* cp = c_prev + r * H;
    const T* cn = c_new + r * H;
    for (index_t j = 0; j < H; ++j) {
      dp[j] += dg[j] * cp[j];
      dp[H + j] += dg[H + j] * cp[j];
      dp[2 * H + j] += dg[3 * H + j] * cn[j];
    }
  }
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
