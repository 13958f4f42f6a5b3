// A general strided matrix product for the non-recurrent layers (fastrnn.Linear): pure C++, no
// Python. The bindings (csrc/python/matmul.cpp) check shapes, dtypes and overlaps first.
//
//   C = A B, or C += A B when `accumulate`, with
//   a  A (M x K): element (i, k) at a[i * a_rs + k * a_cs], read-only
//   b  B (K x N): element (k, n) at b[k * b_rs + n * b_cs], read-only
//   c  C (M x N): row-major, element (i, n) at c[i * ldc + n], written (read too when accumulating)
// Strides are in elements and may have any sign: transposed or sliced NumPy views need no copy.
// a and b may alias each other; c must not overlap either.
//
// The product runs on the packed micro-kernels (isa/gemm.hpp) and the thread team; B is packed one
// KC x kMatmulColumns block at a time, so scratch stays a few MiB whatever N is.
#pragma once

#include "fastrnn/common.hpp"

namespace fastrnn {

constexpr index_t kMatmulColumns = 4096;  // columns of B packed at a time

// Runs on the instruction set isa.hpp picks (float and double).
template <class T>
void matmul(index_t M, index_t N, index_t K, const T* a, index_t a_rs, index_t a_cs, const T* b,
            index_t b_rs, index_t b_cs, T* c, index_t ldc, bool accumulate);

}  // namespace fastrnn
