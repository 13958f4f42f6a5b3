// What every binding shares: argument checks (dtype, shape, overflow, memory), the C-contiguous
// copies the kernels read, and the Array type. Each entry point (rnn.cpp, matmul.cpp, hopfield.cpp)
// runs in this order: check shapes -> allocate outputs -> take raw pointers -> release the GIL
// (py::gil_scoped_release) and run the kernel. User errors raise ValueError (std::invalid_argument)
// or TypeError; an allocation too big for the machine raises MemoryError before anything is made.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/sysinfo.h>
#endif

#include "fastrnn/common.hpp"
#include "fastrnn/runtime/interrupt.hpp"

namespace fastrnn {
namespace bind {

namespace py = pybind11;

// The domains module.cpp registers, one file each.
void register_rnn(py::module_& m);
void register_matmul(py::module_& m);
void register_hopfield(py::module_& m);
void register_runtime(py::module_& m);
void register_peak(py::module_& m);

template <class T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

[[noreturn]] inline void memory_error(const std::string& message) {
  PyErr_SetString(PyExc_MemoryError, message.c_str());
  throw py::error_already_set();
}

inline std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// ---- Sizes: every element count the kernels will compute, checked for overflow before anything is
// allocated. Products of sizes use index_t (int64) in the kernels; here they are checked to fit.

constexpr index_t kIndexMax = std::numeric_limits<index_t>::max();

// a * b for a, b >= 0, or -1 when the product does not fit in index_t.
inline index_t mul(index_t a, index_t b) {
  if (a < 0 || b < 0) return -1;
  if (a != 0 && b > kIndexMax / a) return -1;
  return a * b;
}

inline index_t add(index_t a, index_t b) {
  if (a < 0 || b < 0 || b > kIndexMax - a) return -1;
  return a + b;
}

// Memory this machine could ever give (RAM + swap), in bytes; 0 when unknown.
inline std::uint64_t machine_memory() {
#if defined(__linux__)
  struct sysinfo si;
  if (sysinfo(&si) == 0)
    return (static_cast<std::uint64_t>(si.totalram) + si.totalswap) * si.mem_unit;
#endif
  return 0;
}

// Raises MemoryError (allocating nothing) when `elements` values of `itemsize` bytes overflow the
// index type, or need more memory than the machine has.
inline void check_memory(index_t elements, std::size_t itemsize, const std::string& what) {
  const index_t bytes = mul(elements, static_cast<index_t>(itemsize));
  if (elements < 0 || bytes < 0)
    memory_error("fastrnn: " + what + " would need more than 2**63 bytes (sizes overflow 64 bits)");
  const std::uint64_t have = machine_memory();
  if (have && static_cast<std::uint64_t>(bytes) > have)
    memory_error("fastrnn: " + what + " would need " + std::to_string(bytes) +
                 " bytes, more than this machine's memory (" + std::to_string(have) + " bytes)");
}

// ---- Arguments. Phase 1 looks at each argument without copying it (dtype, ndim, shape); phase 2,
// after the sizes are checked, makes the C-contiguous copies the kernels read.

// `value` as a NumPy array, not copied when it already is one.
inline py::array as_array(py::handle value, const char* name) {
  if (value.is_none()) throw py::type_error(std::string(name) + " must be an array, got None");
  py::array arr = py::array::ensure(value);
  if (!arr) throw py::type_error(std::string(name) + " must be an array (or convertible to one)");
  return arr;
}

// A float array of exactly dtype T (any byte order) and `shape` (-1: any size on that axis).
template <class T>
py::array checked_view(py::handle value, const char* name, const std::vector<index_t>& shape,
                       const std::string& expected) {
  py::array arr = as_array(value, name);
  const py::dtype dt = arr.dtype();
  if (dt.kind() != 'f' || dt.itemsize() != static_cast<py::ssize_t>(sizeof(T)))
    throw py::type_error(std::string(name) + " must have dtype " +
                         (sizeof(T) == 4 ? "float32" : "float64") + " like x, got " +
                         std::string(py::str(dt)));
  bool ok = arr.ndim() == static_cast<py::ssize_t>(shape.size());
  for (std::size_t i = 0; ok && i < shape.size(); ++i)
    ok = shape[i] < 0 || arr.shape(i) == shape[i];
  require(ok, std::string(name) + " must have shape " + expected + ", got " + shape_of(arr));
  return arr;
}

// Phase 2: the C-contiguous, native-byte-order array of T (no copy when it already is). A failed
// copy (e.g. MemoryError for a huge broadcast view) propagates as the Python error it is.
template <class T>
Array<T> contiguous(const py::array& view) {
  return Array<T>(py::reinterpret_borrow<py::object>(view));
}

template <class T>
const T* data_or_null(const Array<T>& a, bool present) {
  return present ? a.data() : nullptr;
}

// ---- Running a kernel. Calls of fewer multiply-adds than this finish within a few milliseconds
// and are not watched for Ctrl-C (Python sees the signal right after them anyway); longer ones pay
// the watch's four system calls, well under 0.1% of them.
constexpr double kWatchedWork = double(1 << 24);

inline bool on_main_thread() {
  static const unsigned long main_id =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  return PyThread_get_thread_ident() == main_id;
}

// Whether a SIGINT during a watched call could end in a rerun of it: not when Python's handler is
// its default one, which always raises KeyboardInterrupt, nor when SIGINT is ignored or left to
// end the process (no watch then). Only then does a kernel need a way back to its starting state.
inline bool sigint_may_rerun() {
  py::module_ signal = py::module_::import("signal");
  const py::object handler = signal.attr("getsignal")(signal.attr("SIGINT"));
  return !handler.is(signal.attr("default_int_handler")) &&
         !handler.equal(signal.attr("SIG_IGN")) && !handler.equal(signal.attr("SIG_DFL"));
}

// Runs Python's pending signal handlers (their exception propagates as error_already_set), then
// forgets the SIGINT the watch saw: under run_pair's watch the flag would otherwise stay set.
inline void handle_pending_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  clear_interrupt();
}

struct NoUndo {
  void operator()() const {}
};

// Runs kernel() with the GIL released. A call of `work` >= kWatchedWork multiply-adds made on the
// main thread stops early on Ctrl-C (interrupt.hpp): Python's signal handler then runs here, and
// its KeyboardInterrupt propagates with nothing returned (every output the binding made is
// dropped). A handler that does not raise (one that only takes note) gets the call run again from
// the start, after undo() has put back whatever in place output the kernel had changed: the
// inputs are the binding's own and unchanged, so the result is the same. On a helper thread that
// joined the main thread's watch (run_pair), the kernel stops too and raises
// fastrnn._native.Interrupted: the main thread, which waits for it, runs the handler and decides.
template <class F, class U = NoUndo>
void run_kernel(double work, F&& kernel, U&& undo = U{}) {
  const bool watch = work >= kWatchedWork && on_main_thread();
  for (;;) {
    try {
      InterruptWatch watching(watch);
      py::gil_scoped_release nogil;
      kernel();
      // A product that saw the flag returned early: whatever it made is not a result.
      stop_if_interrupted(interrupt_flag());
      return;
    } catch (const Interrupted&) {
      undo();
      if (!on_main_thread()) throw;  // registered as fastrnn._native.Interrupted (runtime.cpp)
    }
    handle_pending_signals();
  }
}

}  // namespace bind
}  // namespace fastrnn
