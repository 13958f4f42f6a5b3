// Aligned, uninitialised scratch buffers for the kernels (64-byte aligned: one cache line, and
// whole AVX vectors). Sizes are 64-bit element counts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastrnn {

// Buffers this big are placed on 2 MiB boundaries and offered transparent huge pages: fresh memory
// costs a page fault on first touch, and at 4 KiB pages the saved activations of one large training
// call (tens of MiB) cost thousands of faults, 5-15% of the call (measured at T=50, B=64, H=512).
constexpr std::size_t kHugeBytes = std::size_t(4) << 20;
constexpr std::size_t kHugePage = std::size_t(2) << 20;

inline void* allocate_aligned(std::size_t bytes) {
  if (bytes < kHugeBytes) return std::aligned_alloc(64, bytes);
  if (bytes > SIZE_MAX - kHugePage) return nullptr;  // rounding up would wrap around
  bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without THP it changes nothing
#endif
  return p;
}

template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) { release(); p_ = o.p_; n_ = o.n_; o.p_ = nullptr; o.n_ = 0; }
    return *this;
  }
  ~AlignedBuffer() { release(); }

  // Discards the contents. Throws std::bad_alloc when the memory cannot be had.
  void resize(std::size_t n) {
    if (n == n_) return;
    release();
    if (n == 0) return;
    if (n > (SIZE_MAX - 64) / sizeof(T)) throw std::bad_alloc();
    std::size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    p_ = static_cast<T*>(allocate_aligned(bytes));
    if (!p_) throw std::bad_alloc();
    n_ = n;
  }
  // Grows (never shrinks) to at least n elements.
  void ensure(std::size_t n) { if (n > n_) resize(n); }

  T* data() { return p_; }
  const T* data() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  void release() { std::free(p_); p_ = nullptr; n_ = 0; }
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace fastrnn
