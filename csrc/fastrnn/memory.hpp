// Aligned, uninitialised scratch buffers for the kernels (64-byte aligned: one cache line, and
// whole AVX vectors). Sizes are 64-bit element counts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace fastrnn {

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
    p_ = static_cast<T*>(std::aligned_alloc(64, bytes));
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
