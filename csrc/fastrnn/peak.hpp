// The core's floating-point peak, measured rather than looked up: a loop of independent fp32 FMA
// chains (isa/peak.cpp, compiled once per instruction set) that keeps every FMA unit busy and
// touches no memory. The benchmarks rate their compute-bound rows against it.
#pragma once

#include <cstdint>

#include "fastrnn/isa.hpp"

namespace fastrnn {

// What each instruction set's copy defines: `iterations` rounds of fma_chain_count() chains, each
// one vector FMA (fma_chain_lanes() fp32 lanes) per round; returns a sum of the chains, so that the
// work cannot be dropped. gemm_blocks: the block sizes that copy's products chose from the caches
// (kc, mc, nc; fp64 or fp32), for the benchmarks to print.
#define FASTRNN_PEAK_KERNELS(isa)                        \
  namespace isa {                                        \
  float fma_chains(std::int64_t iterations, float seed); \
  int fma_chain_count();                                 \
  int fma_chain_lanes();                                 \
  void gemm_blocks(bool f64, long long out[3]);          \
  }
FASTRNN_PEAK_KERNELS(portable)
FASTRNN_PEAK_KERNELS(avx2)
FASTRNN_PEAK_KERNELS(avx512)
#undef FASTRNN_PEAK_KERNELS

// Floating-point operations one round of the active path's chains does (2 per lane per FMA).
inline double fma_round_flops(Isa isa) {
  switch (isa) {
#ifdef FASTRNN_HAVE_X86_PATHS
    case Isa::avx512: return 2.0 * avx512::fma_chain_count() * avx512::fma_chain_lanes();
    case Isa::avx2: return 2.0 * avx2::fma_chain_count() * avx2::fma_chain_lanes();
#endif
    default: return 2.0 * portable::fma_chain_count() * portable::fma_chain_lanes();
  }
}

inline float fma_chains(Isa isa, std::int64_t iterations, float seed) {
  switch (isa) {
#ifdef FASTRNN_HAVE_X86_PATHS
    case Isa::avx512: return avx512::fma_chains(iterations, seed);
    case Isa::avx2: return avx2::fma_chains(iterations, seed);
#endif
    default: return portable::fma_chains(iterations, seed);
  }
}

}  // namespace fastrnn
