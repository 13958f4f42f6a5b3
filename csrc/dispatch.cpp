// Runtime CPU dispatch: picks, once, the best compiled copy of the kernels this CPU can run, and
// lets tests force another one.

#include <atomic>
#include <cstring>
#include <initializer_list>

#include "fastrnn/recurrence.hpp"
#include "fastrnn/threads.hpp"

namespace fastrnn {

namespace {

enum class Path { portable, avx2, avx512 };

bool cpu_supports(Path path) {
  if (path == Path::portable) return true;
#if defined(FASTRNN_HAVE_X86_PATHS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (path == Path::avx2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

Path best_path() {
  if (cpu_supports(Path::avx512)) return Path::avx512;
  if (cpu_supports(Path::avx2)) return Path::avx2;
  return Path::portable;
}

std::atomic<Path>& current_path() {
  static std::atomic<Path> path{best_path()};
  return path;
}

}  // namespace

const char* const* compiled_paths() {
#ifdef FASTRNN_HAVE_X86_PATHS
  static const char* const names[] = {"avx512", "avx2", "portable", nullptr};
#else
  static const char* const names[] = {"portable", nullptr};
#endif
  return names;
}

const char* path_name(Path path) {
  switch (path) {
    case Path::avx512: return "avx512";
    case Path::avx2: return "avx2";
    default: return "portable";
  }
}

const char* active_path() { return path_name(current_path().load()); }

bool set_path(const char* name) {
  // Never stores a path this CPU cannot run, not even for a moment: another thread may be calling.
  for (Path path : {Path::portable, Path::avx2, Path::avx512}) {
    if (std::strcmp(name, path_name(path)) == 0 && cpu_supports(path)) {
      current_path().store(path);
      return true;
    }
  }
  return false;
}

template <class T>
void forward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const ForwardArgs<T>& a) {
  FlushDenormals flush;
  switch (current_path().load()) {
#ifdef FASTRNN_HAVE_X86_PATHS
    case Path::avx512: return avx512::forward<T>(cell, d, reverse, w, a);
    case Path::avx2: return avx2::forward<T>(cell, d, reverse, w, a);
#endif
    default: return portable::forward<T>(cell, d, reverse, w, a);
  }
}

template <class T>
void backward(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const BackwardArgs<T>& a) {
  FlushDenormals flush;
  switch (current_path().load()) {
#ifdef FASTRNN_HAVE_X86_PATHS
    case Path::avx512: return avx512::backward<T>(cell, d, reverse, w, a);
    case Path::avx2: return avx2::backward<T>(cell, d, reverse, w, a);
#endif
    default: return portable::backward<T>(cell, d, reverse, w, a);
  }
}

FASTRNN_INSTANTIATE_KERNELS()

}  // namespace fastrnn
