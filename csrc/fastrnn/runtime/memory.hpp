// Aligned, uninitialised scratch buffers for the kernels (64-byte aligned: one cache line, and
// whole AVX vectors). Sizes are 64-bit element counts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace fastrnn {

// Buffers this big are placed on 2 MiB boundaries and offered transparent huge pages: fresh memory
// costs a page fault on first touch, and at 4 KiB pages the saved activations of one large training
// call (tens of MiB) cost thousands of faults, 5-15% of the call (measured at T=50, B=64, H=512).
constexpr std::size_t kHugeBytes = std::size_t(4) << 20;
constexpr std::size_t kHugePage = std::size_t(2) << 20;

// The bytes allocate_aligned really reserves for a request of `bytes` (0 if that overflows).
inline std::size_t aligned_size(std::size_t bytes) {
  const std::size_t unit = bytes < kHugeBytes ? 64 : kHugePage;
  return bytes > SIZE_MAX - unit ? 0 : (bytes + unit - 1) / unit * unit;
}

// What a buffer holds, for the cache of released blocks (memory.cpp): `kept` is anything (the saved
// activations a training call hands to Python among them: cached blocks of 4 MiB and more are
// offered back to the kernel, so that a dropped cache's memory goes to a system that needs it);
// `scratch` lives only inside one kernel call (the input projection, the gate gradients).
enum class Reuse { kept, scratch };

// At least `bytes` (a value aligned_size returned) of 64-byte aligned memory (2 MiB aligned from
// kHugeBytes), or nullptr. Blocks between 64 KiB and 64 MiB come from a small process-wide cache
// of blocks released earlier when one fits (memory.cpp): glibc hands such blocks back to the
// system between calls, and the page faults of taking them again cost up to half a call.
struct Allocation {
  void* p;
  std::size_t bytes;  // what the block really holds (>= the request): pass it to release_aligned
};
Allocation allocate_aligned(std::size_t bytes, Reuse reuse = Reuse::kept);
void release_aligned(void* p, std::size_t bytes, Reuse reuse = Reuse::kept) noexcept;

// The std::bad_alloc of a failed kernel allocation, saying its size (pybind11 makes it a
// MemoryError with this text). Formatted into the object itself: nothing more is allocated.
class AllocationFailed : public std::bad_alloc {
 public:
  AllocationFailed(std::size_t n, std::size_t itemsize) {
    std::snprintf(text_, sizeof text_,
                  "fastrnn: could not allocate %zu values of %zu bytes (kernel workspace)", n,
                  itemsize);
  }
  const char* what() const noexcept override { return text_; }

 private:
  char text_[112];
};

template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(Reuse reuse) : reuse_(reuse) {}
  explicit AlignedBuffer(std::size_t n, Reuse reuse = Reuse::kept) : reuse_(reuse) { resize(n); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : p_(o.p_), n_(o.n_), bytes_(o.bytes_), reuse_(o.reuse_) {
    o.p_ = nullptr;
    o.n_ = o.bytes_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = o.p_;
      n_ = o.n_;
      bytes_ = o.bytes_;
      reuse_ = o.reuse_;
      o.p_ = nullptr;
      o.n_ = o.bytes_ = 0;
    }
    return *this;
  }
  ~AlignedBuffer() { release(); }

  // Discards the contents. Throws AllocationFailed when the memory cannot be had.
  void resize(std::size_t n) {
    if (n == n_) return;
    release();
    if (n == 0) return;
    if (n > (SIZE_MAX - 64) / sizeof(T)) throw AllocationFailed(n, sizeof(T));
    const std::size_t bytes = aligned_size(n * sizeof(T));
    const Allocation a = bytes ? allocate_aligned(bytes, reuse_) : Allocation{nullptr, 0};
    if (!a.p) throw AllocationFailed(n, sizeof(T));
    p_ = static_cast<T*>(a.p);
    bytes_ = a.bytes;
    n_ = n;
  }
  // Grows (never shrinks) to at least n elements.
  void ensure(std::size_t n) {
    if (n > n_) resize(n);
  }

  T* data() { return p_; }
  const T* data() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  void release() {
    if (p_) release_aligned(p_, bytes_, reuse_);
    p_ = nullptr;
    n_ = bytes_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0, bytes_ = 0;
  Reuse reuse_ = Reuse::kept;
};

}  // namespace fastrnn
