// A general strided matrix product for the non-recurrent layers (fastrnn.Linear): pure C++, no
// Python. bindings.cpp checks shapes, dtypes and overlaps first.
//
//   C (M x N, row-major, leading dimension ldc) = A B, or C += A B when `accumulate`;
//   element (i, k) of A is a[i * a_rs + k * a_cs], element (k, n) of B is b[k * b_rs + n * b_cs]
//   (strides in elements, any sign: transposed or sliced NumPy views need no copy).
//
// The product runs on the packed micro-kernels (gemm.hpp) and the thread team; B is packed one
// KC x kMatmulColumns block at a time, so scratch stays a few MiB whatever N is.
#pragma once

#include <cstring>

#include "fastrnn/recurrence.hpp"  // index_t, active_path()

namespace fastrnn {

constexpr index_t kMatmulColumns = 4096;  // columns of B packed at a time

#define FASTRNN_DECLARE_MATMUL_ISA(isa)                                                             \
  namespace isa {                                                                                  \
  void matmul(index_t M, index_t N, index_t K, const float* a, index_t a_rs, index_t a_cs,          \
              const float* b, index_t b_rs, index_t b_cs, float* c, index_t ldc, bool accumulate); \
  void matmul(index_t M, index_t N, index_t K, const double* a, index_t a_rs, index_t a_cs,        \
              const double* b, index_t b_rs, index_t b_cs, double* c, index_t ldc,                 \
              bool accumulate);                                                                    \
  }
FASTRNN_DECLARE_MATMUL_ISA(portable)
FASTRNN_DECLARE_MATMUL_ISA(avx2)
FASTRNN_DECLARE_MATMUL_ISA(avx512)
#undef FASTRNN_DECLARE_MATMUL_ISA

// The copy for the instruction set the kernels run on (active_path()).
template <class T>
void matmul(index_t M, index_t N, index_t K, const T* a, index_t a_rs, index_t a_cs, const T* b,
            index_t b_rs, index_t b_cs, T* c, index_t ldc, bool accumulate) {
#ifdef FASTRNN_HAVE_X86_PATHS
  const char* path = active_path();
  if (std::strcmp(path, "avx512") == 0)
    return avx512::matmul(M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate);
  if (std::strcmp(path, "avx2") == 0)
    return avx2::matmul(M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate);
#endif
  return portable::matmul(M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate);
}

}  // namespace fastrnn
