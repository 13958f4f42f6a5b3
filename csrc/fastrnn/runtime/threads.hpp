// One persistent thread team per process. The kernels hand it a job that runs on n threads
// (the caller is thread 0); workers spin briefly between jobs, then sleep, so back-to-back jobs
// cost no thread creation and, on an idle machine, no system call.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTRNN_CPU_RELAX() _mm_pause()
#else
#define FASTRNN_CPU_RELAX() std::this_thread::yield()
#endif

namespace fastrnn {

// Waits until ready() holds: spins briefly (the cheapest wake-up when every thread has a core),
// then sleeps on `cv` until a waker changes the state and calls wake_all(m, cv). Sleeping, not
// yielding, is what keeps a thread team usable when other processes compete for the cores: a
// yield can hand the core to another process for a whole time slice at every step.
template <class F>
inline void spin_then_sleep(F ready, std::mutex& m, std::condition_variable& cv) {
  for (int i = 0; i < 2000; ++i) {
    if (ready()) return;
    FASTRNN_CPU_RELAX();
  }
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, ready);
}

// Wakes the sleepers of spin_then_sleep after the state they wait on has been changed. Taking the
// lock orders the change before any waiter's last check, so no wake-up is lost.
inline void wake_all(std::mutex& m, std::condition_variable& cv) {
  {
    std::lock_guard<std::mutex> lock(m);
  }
  cv.notify_all();
}

// All n threads of a team job wait here until each has arrived (used once or twice per time step).
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait() {
    if (n_ <= 1) return;
    const unsigned gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      wake_all(mutex_, cv_);
      return;
    }
    spin_then_sleep([&] { return generation_.load(std::memory_order_acquire) != gen; }, mutex_,
                    cv_);
  }

  // wait(), then whether `flag` (interrupt.hpp) was set when the last thread arrived. Every thread
  // gets the same answer, so all of them can leave a time loop at the same step (one leaving alone
  // would leave the others waiting forever). The answer is written before the release that frees
  // the others and rewritten only at the next barrier, which every thread must reach first.
  bool wait_and_poll(const std::atomic<bool>& flag) {
    if (n_ <= 1) return flag.load(std::memory_order_relaxed);
    const unsigned gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      stop_.store(flag.load(std::memory_order_relaxed), std::memory_order_relaxed);
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      wake_all(mutex_, cv_);
    } else {
      spin_then_sleep([&] { return generation_.load(std::memory_order_acquire) != gen; }, mutex_,
                      cv_);
    }
    return stop_.load(std::memory_order_relaxed);
  }

 private:
  const int n_;
  std::atomic<bool> stop_{false};
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> generation_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

// A non-owning reference to a callable `void(int thread_id)`: no allocation, unlike std::function.
class JobRef {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, JobRef>>>
  explicit JobRef(F& f) : obj_(&f), call_([](void* o, int tid) { (*static_cast<F*>(o))(tid); }) {}
  void operator()(int tid) const { call_(obj_, tid); }

 private:
  void* obj_;
  void (*call_)(void*, int);
};

class ThreadTeam {
 public:
  static ThreadTeam& global();

  // Sets the number of threads the kernels may use (>= 1, the caller included).
  void set_size(int n);
  int size() const { return size_.load(std::memory_order_relaxed); }

  // Scales the work each extra thread must get before a product or time loop is split (1: the
  // measured defaults; 0: split whatever can be split, which tests use to exercise the threads).
  void set_grain(double scale) { grain_.store(scale < 0 ? 0 : scale, std::memory_order_relaxed); }
  double grain() const { return grain_.load(std::memory_order_relaxed); }

  // How many threads run(n, ...) would run concurrently now: n clipped to size() and to the calling
  // thread's cap, and 1 from inside a job. Jobs that synchronise (SpinBarrier) must be run with
  // exactly this many.
  int available(int n) const;

  // Caps the threads the calling OS thread's kernels ask for (0: no cap). Two Python threads that
  // each run one direction of a bidirectional layer cap themselves to 1: their kernels then run
  // side by side, each on its own core, with no per-step barrier between them.
  static void set_thread_cap(int n);
  static int thread_cap();

  // Runs job(tid) for tid in [0, n) and returns when all have finished: concurrently when
  // n <= available(n), otherwise (only from inside a job) one after another on the caller.
  // Calls from several Python threads take turns.
  void run(int n, JobRef job);

 private:
  ThreadTeam() = default;
  // In a forked child only the forking thread exists: forget the workers (and any lock state).
  void reset_after_fork();
  void worker_loop(int tid);

  std::atomic<int> size_{1};
  std::atomic<double> grain_{1.0};
  std::mutex run_mutex_;              // one parallel job at a time
  std::vector<std::thread> workers_;  // threads 1 .. workers_.size()
  std::atomic<int> started_{0};       // workers_.size(), readable without the lock; never shrinks
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  int job_threads_ = 0;
  std::exception_ptr job_error_;  // the first exception a worker's job threw
  JobRef* job_ = nullptr;
  std::mutex sleep_mutex_;
  std::condition_variable wake_;  // workers: a new job
  std::condition_variable done_;  // the caller: every worker has finished the job
};

}  // namespace fastrnn
