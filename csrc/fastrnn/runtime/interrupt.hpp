// Stopping a long kernel call on Ctrl-C. While an InterruptWatch is open on the interpreter's main
// thread, SIGINT runs the handler that was installed before (the interpreter's, which records the
// signal for Python to handle later) and then sets a flag (one relaxed atomic store, signal-safe).
// The kernels of the watching thread, and of any thread that joined its watch (the helper running
// a bidirectional layer's second direction), poll that flag once per time step or product block,
// at a point every thread of the job passes, so that all of them leave the loop at the same step;
// the kernel then throws Interrupted from its calling thread, outside any team job, and every
// buffer is freed on the way out. Kernels of other threads poll a flag that is never set: Ctrl-C
// is the main thread's business. Header only: every instruction set and binding shares the flag.
#pragma once

#include <atomic>
#include <exception>

#if defined(__unix__) || defined(__APPLE__)
#include <signal.h>
#define FASTRNN_HAVE_SIGACTION 1
#else
#define FASTRNN_HAVE_SIGACTION 0
#endif

namespace fastrnn {

// What a kernel throws (on the calling thread) when it stopped early on an interrupt.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "fastrnn: kernel interrupted"; }
};

namespace interrupt_detail {
inline std::atomic<bool> requested{false};
inline const std::atomic<bool> never{false};
// The flag the kernels of this thread poll: `requested` inside or joined to a watch, else `never`.
inline thread_local const std::atomic<bool>* polled = &never;
#if FASTRNN_HAVE_SIGACTION
inline struct sigaction previous;

inline void on_sigint(int sig, siginfo_t* info, void* context) {
  // The interpreter's handler first: a kernel that sees the flag finds the signal recorded.
  if (previous.sa_flags & SA_SIGINFO)
    previous.sa_sigaction(sig, info, context);
  else
    previous.sa_handler(sig);
  requested.store(true, std::memory_order_relaxed);
}
#endif
}  // namespace interrupt_detail

// The flag the calling thread's kernels poll (read it on the calling thread, hand it to workers).
inline const std::atomic<bool>& interrupt_flag() { return *interrupt_detail::polled; }

inline void stop_if_interrupted(const std::atomic<bool>& flag) {
  if (flag.load(std::memory_order_relaxed)) throw Interrupted();
}

// Whether this thread's kernels stop on Ctrl-C (inside or joined to a watch).
inline bool interrupts_watched() {
  return interrupt_detail::polled == &interrupt_detail::requested;
}

// Forgets a SIGINT once its handler has run without raising, so that the call can run again.
inline void clear_interrupt() {
  interrupt_detail::requested.store(false, std::memory_order_relaxed);
}

// Makes this thread's kernels poll the watch of another thread (`on`) or nothing: for a helper
// thread whose calls the watching thread waits for. Only while that watch is open.
inline void join_interrupt_watch(bool on) {
  interrupt_detail::polled = on ? &interrupt_detail::requested : &interrupt_detail::never;
}

// Watches for SIGINT for the lifetime of the object, when `enable` and when the handler in place
// is a function (SIG_DFL and SIG_IGN are left alone: the signal then ends the process or is
// ignored, as it would be without fastrnn). The bindings open one only on the interpreter's main
// thread, the only one Python runs signal handlers on; inside an open watch (run_pair holds one
// for both of its calls) a new one does nothing. Costs four system calls, so the bindings open one
// for long calls only.
class InterruptWatch {
 public:
  explicit InterruptWatch(bool enable) {
#if FASTRNN_HAVE_SIGACTION
    using namespace interrupt_detail;
    if (!enable || interrupts_watched() || sigaction(SIGINT, nullptr, &previous) != 0) return;
    const bool function = (previous.sa_flags & SA_SIGINFO) ||
                          (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN);
    if (!function) return;
    requested.store(false, std::memory_order_relaxed);
    struct sigaction ours = previous;
    ours.sa_sigaction = on_sigint;
    ours.sa_flags = (previous.sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
    if (sigaction(SIGINT, &ours, nullptr) != 0) return;
    polled = &requested;
    active_ = true;
#else
    (void)enable;
#endif
  }
  ~InterruptWatch() {
#if FASTRNN_HAVE_SIGACTION
    using namespace interrupt_detail;
    if (!active_) return;
    // Put the old handler back, unless Python code run inside the watch installed another.
    struct sigaction now;
    if (sigaction(SIGINT, nullptr, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
        now.sa_sigaction == on_sigint)
      sigaction(SIGINT, &previous, nullptr);
    polled = &never;
#endif
  }
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

 private:
  bool active_ = false;
};

}  // namespace fastrnn
