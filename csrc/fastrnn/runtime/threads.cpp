// The thread team of threads.hpp: its workers, their wake-ups and the per-thread caps.

#include "fastrnn/runtime/threads.hpp"

#include <algorithm>
#include <new>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include "fastrnn/runtime/fpenv.hpp"

namespace fastrnn {

namespace {
thread_local bool in_team_job = false;
thread_local int cap_of_this_thread = 0;  // ThreadTeam::set_thread_cap: 0 = no cap
}  // namespace

void ThreadTeam::set_thread_cap(int n) { cap_of_this_thread = n < 0 ? 0 : n; }
int ThreadTeam::thread_cap() { return cap_of_this_thread; }

ThreadTeam& ThreadTeam::global() {
  // Never destroyed: worker threads may still be asleep when the interpreter exits.
  static ThreadTeam* team = [] {
    auto* t = new ThreadTeam();
#if defined(__unix__) || defined(__APPLE__)
    pthread_atfork(nullptr, nullptr, [] { global().reset_after_fork(); });
#endif
    return t;
  }();
  return *team;
}

void ThreadTeam::reset_after_fork() {
  // The workers' std::thread objects name threads that do not exist in this process: leak them
  // (destroying a joinable std::thread terminates). Locks may have been held by those threads.
  new std::vector<std::thread>(std::move(workers_));
  workers_.clear();
  new (&run_mutex_) std::mutex();
  new (&sleep_mutex_) std::mutex();
  new (&wake_) std::condition_variable();
  new (&done_) std::condition_variable();
  started_.store(0);
  size_.store(1);
  pending_.store(0);
  generation_.store(0);
}

void ThreadTeam::set_size(int n) {
  if (n < 1) n = 1;
  std::lock_guard<std::mutex> lock(run_mutex_);
  // Workers are started on demand and kept; a smaller size just leaves some idle.
  while (static_cast<int>(workers_.size()) < n - 1) {
    int tid = static_cast<int>(workers_.size()) + 1;
    workers_.emplace_back([this, tid] { worker_loop(tid); });
    started_.store(static_cast<int>(workers_.size()), std::memory_order_release);
  }
  size_.store(n, std::memory_order_relaxed);
}

void ThreadTeam::worker_loop(int tid) {
  std::uint64_t seen = 0;
  for (;;) {
    spin_then_sleep([&] { return generation_.load(std::memory_order_acquire) != seen; },
                    sleep_mutex_, wake_);
    seen = generation_.load(std::memory_order_acquire);
    if (tid < job_threads_) {
      FlushDenormals flush;  // a job is kernel code; the worker's own state is restored after
      in_team_job = true;
      try {
        (*job_)(tid);
      } catch (...) {  // e.g. std::bad_alloc: handed to the caller instead of std::terminate
        std::lock_guard<std::mutex> lock(sleep_mutex_);
        if (!job_error_) job_error_ = std::current_exception();
      }
      in_team_job = false;
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) wake_all(sleep_mutex_, done_);
  }
}

int ThreadTeam::available(int n) const {
  if (in_team_job) return 1;
  if (cap_of_this_thread > 0) n = std::min(n, cap_of_this_thread);
  return std::max(1, std::min({n, size(), started_.load(std::memory_order_acquire) + 1}));
}

void ThreadTeam::run(int n, JobRef job) {
  if (n <= 1 || in_team_job || n > started_.load(std::memory_order_acquire) + 1) {
    for (int tid = 0; tid < std::max(n, 1); ++tid) job(tid);
    return;
  }
  std::lock_guard<std::mutex> lock(run_mutex_);
  job_error_ = nullptr;
  job_ = &job;
  job_threads_ = n;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> sleep_lock(sleep_mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  in_team_job = true;
  std::exception_ptr error;
  try {
    job(0);
  } catch (...) {
    error = std::current_exception();
  }
  in_team_job = false;
  spin_then_sleep([&] { return pending_.load(std::memory_order_acquire) == 0; }, sleep_mutex_,
                  done_);
  if (!error) {
    std::lock_guard<std::mutex> sleep_lock(sleep_mutex_);
    error = job_error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace fastrnn
