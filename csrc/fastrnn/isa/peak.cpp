// The FMA-chain loop of fastrnn/peak.hpp, compiled once per instruction set (CMakeLists.txt).
// Enough independent chains to cover FMA latency x FMA units on current cores (4 cycles x 2
// units needs 8): 12 on AVX2 (16 vector registers), 24 on AVX-512 (32), as many as the register
// file holds beside the two constants, so that no chain waits for another and nothing spills.

#include <cstdint>
#include <cstring>

#include "fastrnn/isa/gemm.hpp"
#include "fastrnn/peak.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

#ifndef FASTRNN_VECTOR_BYTES
#define FASTRNN_VECTOR_BYTES 32
#endif

namespace {
typedef float vec __attribute__((vector_size(FASTRNN_VECTOR_BYTES)));
constexpr int kLanes = FASTRNN_VECTOR_BYTES / sizeof(float);
constexpr int kChains = FASTRNN_VECTOR_BYTES == 64 ? 24 : 12;
}  // namespace

int fma_chain_count() { return kChains; }

void gemm_blocks(bool f64, long long out[3]) {
  const Blocks& b = f64 ? blocks<double>() : blocks<float>();
  out[0] = b.kc;
  out[1] = b.mc;
  out[2] = b.nc;
}
int fma_chain_lanes() { return kLanes; }

float fma_chains(std::int64_t iterations, float seed) {
  // acc = acc * m + a with m just below 1 converges to a / (1 - m): the values stay finite and
  // normal however long it runs, and every step depends on the one before.
  const vec m = vec{} + (1.0f - 1e-6f), a = vec{} + 1e-6f;
  vec acc[kChains];
#pragma GCC unroll 32
  for (int i = 0; i < kChains; ++i) acc[i] = vec{} + (seed + 0.01f * i);
  for (std::int64_t n = 0; n < iterations; ++n) {
#pragma GCC unroll 32
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * m + a;
  }
  vec total = vec{};
#pragma GCC unroll 32
  for (int i = 0; i < kChains; ++i) total += acc[i];
  float lanes[kLanes];
  std::memcpy(lanes, &total, sizeof(total));
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
