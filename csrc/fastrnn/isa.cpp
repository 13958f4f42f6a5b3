// Runtime CPU dispatch: picks, once, the best compiled copy of the kernels this CPU can run, lets
// tests force another one, and routes every public entry point to the copy that is active.

#include "fastrnn/isa.hpp"

#include <atomic>
#include <cstring>
#include <initializer_list>

#include "fastrnn/runtime/fpenv.hpp"

namespace fastrnn {

namespace {

bool cpu_supports(Isa isa) {
  if (isa == Isa::portable) return true;
#if defined(FASTRNN_HAVE_X86_PATHS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::avx2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

Isa best_isa() {
  if (cpu_supports(Isa::avx512)) return Isa::avx512;
  if (cpu_supports(Isa::avx2)) return Isa::avx2;
  return Isa::portable;
}

std::atomic<Isa>& current_isa() {
  static std::atomic<Isa> isa{best_isa()};
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace

Isa active_isa() { return current_isa().load(); }

const char* const* compiled_paths() {
#ifdef FASTRNN_HAVE_X86_PATHS
  static const char* const names[] = {"avx512", "avx2", "portable", nullptr};
#else
  static const char* const names[] = {"portable", nullptr};
#endif
  return names;
}

const char* active_path() { return isa_name(active_isa()); }

bool set_path(const char* name) {
  // Never stores a path this CPU cannot run, not even for a moment: another thread may be calling.
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512}) {
    if (std::strcmp(name, isa_name(isa)) == 0 && cpu_supports(isa)) {
      current_isa().store(isa);
      return true;
    }
  }
  return false;
}

// `return <the active copy>::call` (the x86 copies exist only where they were compiled).
#ifdef FASTRNN_HAVE_X86_PATHS
#define FASTRNN_ON_ACTIVE_ISA(call)        \
  switch (active_isa()) {                  \
    case Isa::avx512: return avx512::call; \
    case Isa::avx2: return avx2::call;     \
    default: return portable::call;        \
  }
#else
#define FASTRNN_ON_ACTIVE_ISA(call) return portable::call
#endif

template <class T>
void forward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a) {
  FlushDenormals flush;
  FASTRNN_ON_ACTIVE_ISA(forward(cell, d, reverse, w, a));
}

template <class T>
void backward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w,
              const BackwardArgs<T>& a) {
  FlushDenormals flush;
  FASTRNN_ON_ACTIVE_ISA(backward(cell, d, reverse, w, a));
}

template <class T>
void matmul(index_t M, index_t N, index_t K, const T* a, index_t a_rs, index_t a_cs, const T* b,
            index_t b_rs, index_t b_cs, T* c, index_t ldc, bool accumulate) {
  FASTRNN_ON_ACTIVE_ISA(matmul(M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate));
}

void hopfield_recall(const HopfieldArgs& args) { FASTRNN_ON_ACTIVE_ISA(hopfield_recall(args)); }

HopfieldWeightsCheck hopfield_check_weights(index_t N, const std::int32_t* weights) {
  return portable::hopfield_check_weights(N, weights);  // a scan of memory: any copy will do
}

#undef FASTRNN_ON_ACTIVE_ISA

template void forward(Cell, const Dims&, bool, const Weights<float>&, const ForwardArgs<float>&);
template void forward(Cell, const Dims&, bool, const Weights<double>&, const ForwardArgs<double>&);
template void backward(Cell, const Dims&, bool, const Weights<float>&, const BackwardArgs<float>&);
template void backward(Cell, const Dims&, bool, const Weights<double>&,
                       const BackwardArgs<double>&);
template void matmul(index_t, index_t, index_t, const float*, index_t, index_t, const float*,
                     index_t, index_t, float*, index_t, bool);
template void matmul(index_t, index_t, index_t, const double*, index_t, index_t, const double*,
                     index_t, index_t, double*, index_t, bool);

}  // namespace fastrnn
