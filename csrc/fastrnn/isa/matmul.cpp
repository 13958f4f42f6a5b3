// The strided matrix product of fastrnn/matmul.hpp, compiled once per instruction set
// (CMakeLists.txt; FASTRNN_ISA names this copy's namespace).

#include <algorithm>

#include "fastrnn/isa.hpp"
#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/runtime/fpenv.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {
namespace {

template <class T>
void matmul_impl(index_t M, index_t N, index_t K, const T* a, index_t a_rs, index_t a_cs,
                 const T* b, index_t b_rs, index_t b_cs, T* c, index_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  FlushDenormals ftz;  // as the recurrent kernels: no denormal slow paths, caller's mode restored
  if (M <= kUnpackedMaxRows && a_cs == 1 && b_rs == 1) {
    // A few rows (one step of generation) by a B whose columns are contiguous (x W^T for a
    // row-major W): dot products straight from the operands cost less than packing B.
    product_rowmajor<T>(M, K, a, a_rs, b, b_cs, 0, N, c, ldc, accumulate);
    return;
  }
  PackedB<T> scratch;
  for (index_t n0 = 0; n0 < N; n0 += kMatmulColumns) {
    const index_t nb = std::min(kMatmulColumns, N - n0);
    gemm<T>(M, nb, K, a, a_rs, a_cs, b + n0 * b_cs, b_rs, b_cs, c + n0, ldc, accumulate, scratch);
  }
}

}  // namespace

void matmul(index_t M, index_t N, index_t K, const float* a, index_t a_rs, index_t a_cs,
            const float* b, index_t b_rs, index_t b_cs, float* c, index_t ldc, bool accumulate) {
  matmul_impl(M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate);
}

void matmul(index_t M, index_t N, index_t K, const double* a, index_t a_rs, index_t a_cs,
            const double* b, index_t b_rs, index_t b_cs, double* c, index_t ldc, bool accumulate) {
  matmul_impl(M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate);
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
