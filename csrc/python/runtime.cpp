// The runtime controls: the thread team (fastrnn/runtime/threads.hpp), the instruction-set paths
// (fastrnn/isa.hpp) and the Ctrl-C watch that spans two calls (fastrnn/runtime/interrupt.hpp).

#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "fastrnn/isa.hpp"
#include "fastrnn/runtime/threads.hpp"
#include "python/args.hpp"

namespace fastrnn {
namespace bind {

constexpr int kMaxThreads = 1024;  // as fastrnn.set_num_threads

namespace {

// `with watch_interrupts() as watched:` holds one Ctrl-C watch open on the main thread for the
// block (elsewhere it does nothing; watched says whether this thread's kernels now stop on SIGINT).
class WatchScope {
 public:
  bool enter() {
    if (!watch_) watch_ = std::make_unique<InterruptWatch>(on_main_thread());
    return interrupts_watched();
  }
  void exit() { watch_.reset(); }

 private:
  std::unique_ptr<InterruptWatch> watch_;
};

void register_interrupts(py::module_& m) {
  // What a kernel on a thread that joined the main thread's watch raises when it stopped early.
  py::register_exception<Interrupted>(m, "Interrupted", PyExc_KeyboardInterrupt);
  py::class_<WatchScope>(m, "InterruptWatch")
      .def("__enter__", &WatchScope::enter)
      .def("__exit__", [](WatchScope& w, py::args) { w.exit(); });
  m.def(
      "watch_interrupts", [] { return WatchScope(); },
      "A context manager holding one Ctrl-C watch open on the main thread for its block, for the\n"
      "kernels of this thread and of the threads that join it; `as` gives whether it watches.");
  m.def(
      "join_interrupt_watch",
      [](bool on) {
        require(!on_main_thread(), "join_interrupt_watch is for threads other than the main one");
        const bool before = interrupts_watched();
        join_interrupt_watch(on);
        return before;
      },
      py::arg("on"),
      "Makes this (helper) thread's kernels stop on the main thread's open watch (on) or never;\n"
      "they then raise Interrupted. Only while the main thread waits for them. Returns the\n"
      "previous setting.");
  m.def("check_signals", &handle_pending_signals,
        "Runs Python's pending signal handlers now (their exception propagates); then forgets the\n"
        "SIGINT the watch saw, so that an interrupted call can run again.");
}

}  // namespace

void register_runtime(py::module_& m) {
  register_interrupts(m);
  m.def(
      "set_num_threads",
      [](int n) {
        require(n >= 1 && n <= kMaxThreads,
                "n must be in [1, " + std::to_string(kMaxThreads) + "], got " + std::to_string(n));
        fastrnn::ThreadTeam::global().set_size(n);
      },
      py::arg("n"), "Sets how many threads the kernels use (the caller included).");
  m.def("get_num_threads", [] { return fastrnn::ThreadTeam::global().size(); });
  m.def(
      "set_thread_cap",
      [](int n) {
        require(n >= 0 && n <= kMaxThreads,
                "n must be in [0, " + std::to_string(kMaxThreads) + "], got " + std::to_string(n));
        fastrnn::ThreadTeam::set_thread_cap(n);
      },
      py::arg("n"),
      "Caps the threads kernels called from this OS thread use (0: no cap), so that calls from\n"
      "two Python threads can run side by side, e.g. the two directions of a bidirectional layer.");
  m.def("get_thread_cap", [] { return fastrnn::ThreadTeam::thread_cap(); });
  m.def(
      "set_parallel_grain",
      [](double scale) {
        require(scale >= 0, "scale must be >= 0");
        fastrnn::ThreadTeam::global().set_grain(scale);
      },
      py::arg("scale"),
      "Scales how much work each extra thread needs before the kernels split a product or a time\n"
      "loop (1: the measured default; 0: split whatever can be split, e.g. to test the threads).");
  m.def(
      "compiled_paths",
      [] {
        std::vector<std::string> out;
        for (const char* const* p = fastrnn::compiled_paths(); *p; ++p) out.emplace_back(*p);
        return out;
      },
      "The instruction-set paths compiled into this build, best first.");
  m.def(
      "active_path", [] { return std::string(fastrnn::active_path()); },
      "The instruction-set path the kernels run on this CPU.");
  m.def(
      "set_cpu_path",
      [](const std::string& name) {
        require(fastrnn::set_path(name.c_str()),
                "cpu path '" + name + "' is not compiled in or not supported by this CPU");
      },
      py::arg("name"),
      "Forces one instruction-set path ('avx512', 'avx2' or 'portable'), e.g. to test it.");
}

}  // namespace bind
}  // namespace fastrnn
