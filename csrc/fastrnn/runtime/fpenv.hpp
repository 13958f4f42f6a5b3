// The floating-point environment of kernel threads.
#pragma once

#if defined(__SSE__) || defined(__x86_64__)
#include <immintrin.h>
#endif

namespace fastrnn {

// While alive, the calling thread flushes denormal results and inputs to zero (x86 MXCSR FTZ/DAZ):
// tiny gradients of saturated gates are otherwise slow on some CPUs. The previous state is
// restored on destruction, so a caller's floating-point environment is never changed.
class FlushDenormals {
 public:
#if defined(__SSE__) || defined(__x86_64__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

}  // namespace fastrnn
