// Runtime CPU dispatch: picks, once, the best compiled copy of the kernels this CPU can run.

#include <atomic>
#include <cstring>

#include "fastrnn/recurrence.hpp"

namespace fastrnn {

namespace {

enum class Path { portable, avx2 };

bool cpu_supports_avx2_fma() {
#if defined(FASTRNN_HAVE_AVX2) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

std::atomic<Path>& current_path() {
  static std::atomic<Path> path{cpu_supports_avx2_fma() ? Path::avx2 : Path::portable};
  return path;
}

}  // namespace

const char* const* compiled_paths() {
#ifdef FASTRNN_HAVE_AVX2
  static const char* const names[] = {"avx2", "portable", nullptr};
#else
  static const char* const names[] = {"portable", nullptr};
#endif
  return names;
}

const char* active_path() {
  return current_path().load() == Path::avx2 ? "avx2" : "portable";
}

bool set_path(const char* name) {
  if (std::strcmp(name, "portable") == 0) {
    current_path().store(Path::portable);
    return true;
  }
  if (std::strcmp(name, "avx2") == 0 && cpu_supports_avx2_fma()) {
    current_path().store(Path::avx2);
    return true;
  }
  return false;
}

template <class T>
void forward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a) {
#ifdef FASTRNN_HAVE_AVX2
  if (current_path().load() == Path::avx2) return avx2::forward<T>(cell, d, reverse, w, a);
#endif
  portable::forward<T>(cell, d, reverse, w, a);
}

template <class T>
void backward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const BackwardArgs<T>& a) {
#ifdef FASTRNN_HAVE_AVX2
  if (current_path().load() == Path::avx2) return avx2::backward<T>(cell, d, reverse, w, a);
#endif
  portable::backward<T>(cell, d, reverse, w, a);
}

template void forward<float>(Cell, const Dims&, bool, const Weights<float>&, const ForwardArgs<float>&);
template void forward<double>(Cell, const Dims&, bool, const Weights<double>&,
                              const ForwardArgs<double>&);
template void backward<float>(Cell, const Dims&, bool, const Weights<float>&,
                              const BackwardArgs<float>&);
template void backward<double>(Cell, const Dims&, bool, const Weights<double>&,
                               const BackwardArgs<double>&);

}  // namespace fastrnn
