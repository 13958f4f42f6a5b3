// The kernels' aligned allocations, with a small cache of released blocks.
//
// A training call allocates the same buffers every time (the saved activations, the hoisted
// products, the packed weights) and frees them when it returns. glibc gives blocks of 64 KiB and
// more back to the system and takes them again on the next call, one page fault per page: at
// T=100, B=4, H=256 a GRU forward+backward took 5.2 ms that way and 3.7 ms with the blocks kept
// (glibc's thresholds raised for the process, which a library must not do). On a VM fresh memory
// costs more than the fault: at T=50, B=64, H=512 an LSTM's training forward on 2 threads took
// 55-60 ms with its saved activations (40 MiB) faulted in again and 24 ms with them kept.
// So released blocks of up to 64 MiB are kept here and handed out again to a request they fit:
// - saved activations and other buffers that reach Python (Reuse::kept): at most 64 MiB of them.
//   Those of 4 MiB and more are offered back to the kernel as they are kept (MADV_FREE): they stay
//   mapped, and a later call that takes one costs nothing, unless the system ran short of memory
//   in between and took the pages, which the call then faults in again. So a dropped cache still
//   gives its memory back to a system that needs it.
// - scratch (Reuse::scratch: buffers that never leave one kernel call): at most 128 MiB. At
//   T=50, B=64, H=512 an LSTM's input projection and gate gradients are 26 MiB each, and faulting
//   them in again cost 3-9% of a training call (more with 4 KiB pages).
#include "fastrnn/runtime/memory.hpp"

#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

// AddressSanitizer finds use-after-free only in memory that really is freed: no cache under it.
#if defined(__SANITIZE_ADDRESS__)
#define FASTRNN_BLOCK_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FASTRNN_BLOCK_CACHE 0
#endif
#endif
#ifndef FASTRNN_BLOCK_CACHE
#define FASTRNN_BLOCK_CACHE 1
#endif

namespace fastrnn {
namespace {

void* system_allocate(std::size_t bytes) {
  if (bytes < kHugeBytes) return std::aligned_alloc(64, bytes);
  void* p = std::aligned_alloc(kHugePage, bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without THP it changes nothing
#endif
  return p;
}

#if FASTRNN_BLOCK_CACHE
constexpr std::size_t kMinBlock = std::size_t(64) << 10;  // malloc's own bins serve smaller ones

struct Block {
  void* p;
  std::size_t bytes;
};

// Blocks of [min_block, max_block] bytes, at most total_bytes of them together.
struct CacheLimits {
  std::size_t min_block, max_block, total_bytes;
  std::size_t max_blocks() const { return total_bytes / min_block; }
};
constexpr CacheLimits kKeptLimits{kMinBlock, std::size_t(64) << 20, std::size_t(64) << 20};
constexpr CacheLimits kScratchLimits{kMinBlock, std::size_t(64) << 20, std::size_t(128) << 20};

class BlockCache {
 public:
  explicit BlockCache(CacheLimits limits) : limits_(limits) {
    blocks_.reserve(limits_.max_blocks());  // so that release never allocates
  }

  bool cacheable(std::size_t bytes) const {
    return bytes >= limits_.min_block && bytes <= limits_.max_block;
  }

  // The smallest cached block of [bytes, bytes + bytes / 4], taken out of the cache, or none.
  Block take(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t best = blocks_.size();
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      const std::size_t b = blocks_[i].bytes;
      const bool fits = b >= bytes && b - bytes <= bytes / 4;
      if (fits && (best == blocks_.size() || b < blocks_[best].bytes)) best = i;
    }
    if (best == blocks_.size()) return {nullptr, 0};
    const Block found = blocks_[best];
    blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(best));
    total_ -= found.bytes;
    return found;
  }

  // Keeps the block (the newest last), freeing the oldest ones to stay within the limits.
  void keep(Block block) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!blocks_.empty() &&
           (total_ + block.bytes > limits_.total_bytes || blocks_.size() >= limits_.max_blocks())) {
      std::free(blocks_.front().p);
      total_ -= blocks_.front().bytes;
      blocks_.erase(blocks_.begin());
    }
    blocks_.push_back(block);  // within the reserved capacity: max_blocks() at most
    total_ += block.bytes;
  }

  // In a child forked while another thread held the lock, neither the lock nor the list can be
  // trusted: start empty (the blocks of the parent's cache stay allocated, unused).
  void reset_after_fork() {
    new (&mutex_) std::mutex();
    new (&blocks_) std::vector<Block>();
    blocks_.reserve(limits_.max_blocks());
    total_ = 0;
  }

 private:
  const CacheLimits limits_;
  std::mutex mutex_;
  std::vector<Block> blocks_;
  std::size_t total_ = 0;
};

// Never destroyed: buffers may be released during exit, after static destructors ran.
BlockCache* make_cache(CacheLimits limits) {
  auto* made = new BlockCache(limits);
#if defined(__unix__) || defined(__APPLE__)
  static std::vector<BlockCache*>* made_so_far = new std::vector<BlockCache*>();
  made_so_far->push_back(made);
  if (made_so_far->size() == 1)
    pthread_atfork(nullptr, nullptr, [] {
      for (BlockCache* c : *made_so_far) c->reset_after_fork();
    });
#endif
  return made;
}

BlockCache& cache(Reuse reuse) {
  static BlockCache* kept = make_cache(kKeptLimits);
  static BlockCache* scratch = make_cache(kScratchLimits);
  return reuse == Reuse::scratch ? *scratch : *kept;
}
#endif  // FASTRNN_BLOCK_CACHE

}  // namespace

Allocation allocate_aligned(std::size_t bytes, Reuse reuse) {
#if FASTRNN_BLOCK_CACHE
  BlockCache& c = cache(reuse);
  if (c.cacheable(bytes)) {
    const Block b = c.take(bytes);
    if (b.p) return {b.p, b.bytes};
  }
#else
  (void)reuse;
#endif
  void* p = system_allocate(bytes);
  return {p, p ? bytes : 0};
}

void release_aligned(void* p, std::size_t bytes, Reuse reuse) noexcept {
  if (!p) return;
#if FASTRNN_BLOCK_CACHE
  BlockCache& c = cache(reuse);
  if (c.cacheable(bytes)) {
#if defined(__linux__) && defined(MADV_FREE)
    // Whole 2 MiB pages (kHugeBytes and up are placed and sized so): no huge page is split.
    if (reuse == Reuse::kept && bytes >= kHugeBytes) madvise(p, bytes, MADV_FREE);
#endif
    c.keep({p, bytes});
    return;
  }
#else
  (void)bytes;
  (void)reuse;
#endif
  std::free(p);
}

}  // namespace fastrnn
