// The kernels' aligned allocations, with a small cache of released blocks.
//
// A training call allocates the same buffers every time (the saved activations, the hoisted
// products, the packed weights) and frees them when it returns. Between 64 KiB and a few MiB glibc
// gives such blocks back to the system and takes them again on the next call, one page fault per
// 4 KiB page: at T=100, B=4, H=256 a GRU forward+backward took 5.2 ms that way and 3.7 ms with the
// blocks kept (glibc's thresholds raised for the process, which a library must not do). So blocks
// of that size are kept here, at most kCacheBytes of them, and handed out again to a request they
// fit. Bigger blocks are rare, use huge pages and go straight back to the system, so a call of a
// large model still returns its memory when it ends.
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
constexpr std::size_t kMaxBlock = std::size_t(8) << 20;
constexpr std::size_t kCacheBytes = std::size_t(32) << 20;  // all cached blocks together
constexpr std::size_t kMaxBlocks = kCacheBytes / kMinBlock;

struct Block {
  void* p;
  std::size_t bytes;
};

class BlockCache {
 public:
  BlockCache() { blocks_.reserve(kMaxBlocks); }  // so that release never allocates

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

  // Keeps the block (the newest last), freeing the oldest ones to stay within kCacheBytes.
  void keep(Block block) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!blocks_.empty() &&
           (total_ + block.bytes > kCacheBytes || blocks_.size() >= kMaxBlocks)) {
      std::free(blocks_.front().p);
      total_ -= blocks_.front().bytes;
      blocks_.erase(blocks_.begin());
    }
    blocks_.push_back(block);  // within the reserved capacity: kMaxBlocks blocks at most
    total_ += block.bytes;
  }

  // In a child forked while another thread held the lock, neither the lock nor the list can be
  // trusted: start empty (the blocks of the parent's cache stay allocated, unused).
  void reset_after_fork() {
    new (&mutex_) std::mutex();
    new (&blocks_) std::vector<Block>();
    blocks_.reserve(kMaxBlocks);
    total_ = 0;
  }

 private:
  std::mutex mutex_;
  std::vector<Block> blocks_;
  std::size_t total_ = 0;
};

BlockCache& cache() {
  // Never destroyed: buffers may be released during exit, after static destructors ran.
  static BlockCache* c = [] {
    auto* made = new BlockCache();
#if defined(__unix__) || defined(__APPLE__)
    pthread_atfork(nullptr, nullptr, [] { cache().reset_after_fork(); });
#endif
    return made;
  }();
  return *c;
}

bool cacheable(std::size_t bytes) { return bytes >= kMinBlock && bytes <= kMaxBlock; }
#endif  // FASTRNN_BLOCK_CACHE

}  // namespace

Allocation allocate_aligned(std::size_t bytes) {
#if FASTRNN_BLOCK_CACHE
  if (cacheable(bytes)) {
    const Block b = cache().take(bytes);
    if (b.p) return {b.p, b.bytes};
  }
#endif
  void* p = system_allocate(bytes);
  return {p, p ? bytes : 0};
}

void release_aligned(void* p, std::size_t bytes) noexcept {
  if (!p) return;
#if FASTRNN_BLOCK_CACHE
  if (cacheable(bytes)) {
    cache().keep({p, bytes});
    return;
  }
#endif
  std::free(p);
}

}  // namespace fastrnn
