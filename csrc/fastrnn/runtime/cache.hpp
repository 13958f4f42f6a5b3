// The data cache sizes of the core the kernels run on, detected once at run time, from which the
// packed products choose their block sizes (isa/gemm.hpp): the kernels adapt to the CPU they run
// on instead of to the machine they were tuned on.
#pragma once

#include <cstddef>

namespace fastrnn {

struct CacheSizes {
  std::size_t l1d;     // bytes of level-1 data cache of one core
  std::size_t l2;      // bytes of level-2 cache of one core
  std::size_t l3;      // bytes of level-3 cache per core: its size over the cores that share it
  const char* source;  // "sysfs", "cpuid", "FASTRNN_CACHE_SIZES" or "default"
};

// Detected on first use, then fixed for the life of the process (so every product of one process
// uses the same blocks, whatever its thread count). In order: the environment variable
// FASTRNN_CACHE_SIZES="L1D,L2,L3" (bytes, with optional K/M suffixes; L3 per core), Linux's sysfs
// (cpu0's cache/index*), cpuid (x86 deterministic cache parameters), else 32K, 512K, 2M.
const CacheSizes& cache_sizes();

// The same parse of a "L1D,L2,L3" string, for the tests: false when it is not three sizes in
// [1 KiB, 1 GiB] in increasing order.
bool parse_cache_sizes(const char* text, CacheSizes* out);

}  // namespace fastrnn
