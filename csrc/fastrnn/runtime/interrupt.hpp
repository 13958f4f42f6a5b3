// Stopping a long kernel call on Ctrl-C. While an InterruptWatch is alive on the calling thread,
// SIGINT sets a flag (one relaxed atomic store, signal-safe) and then runs the handler that was
// installed before (the interpreter's, which records the signal for Python to handle later). The
// calling thread's kernels poll that flag once per time step, at a barrier every thread of the job
// passes, so that all of them leave the loop at the same step; the kernel then throws Interrupted
// from the calling thread, outside any team job, and every buffer is freed on the way out. Header
// only: the kernels of every instruction set and the bindings share the one flag.
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
// The flag the kernels of this thread poll: `requested` inside a watch, `never` outside.
inline thread_local const std::atomic<bool>* polled = &never;
#if FASTRNN_HAVE_SIGACTION
inline struct sigaction previous;

inline void on_sigint(int sig, siginfo_t* info, void* context) {
  requested.store(true, std::memory_order_relaxed);
  if (previous.sa_flags & SA_SIGINFO)
    previous.sa_sigaction(sig, info, context);
  else
    previous.sa_handler(sig);
}
#endif
}  // namespace interrupt_detail

// The flag the calling thread's kernels poll (read it on the calling thread, hand it to workers).
inline const std::atomic<bool>& interrupt_flag() { return *interrupt_detail::polled; }

inline void stop_if_interrupted(const std::atomic<bool>& flag) {
  if (flag.load(std::memory_order_relaxed)) throw Interrupted();
}

// Watches for SIGINT for the lifetime of the object, when `enable` and when the handler in place
// is a function (SIG_DFL and SIG_IGN are left alone: the signal then ends the process or is
// ignored, as it would be without fastrnn). One watch at a time, on one thread: the bindings open
// one only on the interpreter's main thread, the only one Python runs signal handlers on. Costs
// three system calls, so the bindings open it for long calls only.
class InterruptWatch {
 public:
  explicit InterruptWatch(bool enable) {
#if FASTRNN_HAVE_SIGACTION
    using namespace interrupt_detail;
    if (!enable || sigaction(SIGINT, nullptr, &previous) != 0) return;
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
    if (!active_) return;
    sigaction(SIGINT, &interrupt_detail::previous, nullptr);
    interrupt_detail::polled = &interrupt_detail::never;
#endif
  }
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

 private:
  bool active_ = false;
};

}  // namespace fastrnn
