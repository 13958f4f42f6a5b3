// One persistent thread team per process. The kernels hand it a job that runs on n threads
// (the caller is thread 0); workers spin briefly between jobs, then sleep, so back-to-back jobs
// (one per time step) cost no thread creation and no system call.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace fastrnn {

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

  // Runs job(tid) for tid in [0, n) and returns when all have finished. n is clipped to size().
  // Calls from several Python threads take turns; a call from inside a job runs serially.
  void run(int n, JobRef job);

 private:
  ThreadTeam() = default;
  void worker_loop(int tid);

  std::atomic<int> size_{1};
  std::mutex run_mutex_;                 // one parallel job at a time
  std::vector<std::thread> workers_;     // threads 1 .. workers_.size()
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  int job_threads_ = 0;
  JobRef* job_ = nullptr;
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
};

}  // namespace fastrnn
