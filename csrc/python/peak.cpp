// fma_peak: the core's measured fp32 FMA rate on one instruction-set path (fastrnn/peak.hpp), for
// the benchmarks' "% of peak" columns. Runs on the calling thread only.

#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

#include "fastrnn/isa.hpp"
#include "fastrnn/peak.hpp"
#include "fastrnn/runtime/cache.hpp"
#include "python/args.hpp"

namespace fastrnn {
namespace bind {

void register_peak(py::module_& m) {
  m.def(
      "fma_peak",
      [](double seconds) {
        require(seconds > 0 && seconds <= 60, "seconds must be in (0, 60]");
        const Isa isa = active_isa();
        const double round = fma_round_flops(isa);
        py::gil_scoped_release release;
        // Grow the run until it lasts `seconds`: short enough runs are mostly clock overhead.
        std::int64_t iterations = 1 << 16;
        double elapsed = 0;
        float sink = 0;
        for (;;) {
          const auto start = std::chrono::steady_clock::now();
          sink += fma_chains(isa, iterations, 0.5f);
          elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          if (elapsed >= seconds || iterations >= (std::int64_t(1) << 40)) break;
          const double grow = elapsed > 0 ? std::max(2.0, 1.2 * seconds / elapsed) : 16.0;
          iterations = static_cast<std::int64_t>(double(iterations) * grow);
        }
        py::gil_scoped_acquire acquire;
        py::dict out;
        out["path"] = std::string(active_path());
        out["gflops"] = round * double(iterations) / elapsed * 1e-9;
        out["seconds"] = elapsed;
        out["flops"] = round * double(iterations);
        out["checksum"] = sink;  // what the chains summed to: keeps the work observable
        return out;
      },
      py::arg("seconds") = 0.1,
      "The calling thread's fp32 FMA rate on the active cpu path, in GFLOP/s: independent FMA\n"
      "chains run for about `seconds`. Returns a dict: path, gflops, seconds, flops, checksum.");
  m.def(
      "cache_sizes",
      [] {
        const CacheSizes& c = cache_sizes();
        py::dict out;
        out["l1d"] = c.l1d;
        out["l2"] = c.l2;
        out["l3_per_core"] = c.l3;
        out["source"] = std::string(c.source);
        return out;
      },
      "The data caches the products' block sizes were chosen from: l1d, l2, l3_per_core (bytes)\n"
      "and source ('sysfs', 'cpuid', 'FASTRNN_CACHE_SIZES' or 'default').");
  m.def(
      "gemm_blocks",
      [](const std::string& dtype) {
        require(dtype == "float32" || dtype == "float64", "dtype must be 'float32' or 'float64'");
        long long b[3];
        const bool f64 = dtype == "float64";
        switch (active_isa()) {
#ifdef FASTRNN_HAVE_X86_PATHS
          case Isa::avx512: avx512::gemm_blocks(f64, b); break;
          case Isa::avx2: avx2::gemm_blocks(f64, b); break;
#endif
          default: portable::gemm_blocks(f64, b); break;
        }
        py::dict out;
        out["kc"] = b[0];
        out["mc"] = b[1];
        out["nc_panels"] = b[2];
        return out;
      },
      py::arg("dtype") = "float32",
      "The active cpu path's block sizes for `dtype`: kc (depth), mc (rows of A), nc_panels\n"
      "(B panels per pass), chosen from cache_sizes().");
}

}  // namespace bind
}  // namespace fastrnn
