// Packed matrix products C (M x N) = A (M x K) * B (K x N) [+ C], row-major C, any strides for A,
// B.
//
// GotoBLAS/BLIS structure: B is packed once into NR-column panels (the weights, once per call and
// reused at every time step), A is packed per (MC x KC) block into MR-row panels, and a register-
// tiled micro-kernel computes each MR x NR tile of C. One source serves every instruction set: it
// is compiled once per ISA (FASTRNN_ISA names the namespace) with that ISA's compiler flags, and
// the 32-byte GCC vector type becomes AVX2/FMA code there and pairs of SSE2 registers in the
// portable build (64-byte vectors in the AVX-512 build). Transposed operands are just other
// strides, so forward (x W^T), BPTT (dG W) and the weight gradients (dG^T x) all use this one
// product.
#pragma once

#ifndef FASTRNN_ISA
#error "gemm.hpp is compiled once per instruction set: define FASTRNN_ISA"
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fastrnn/common.hpp"
#include "fastrnn/runtime/cache.hpp"
#include "fastrnn/runtime/interrupt.hpp"
#include "fastrnn/runtime/memory.hpp"
#include "fastrnn/runtime/threads.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {

#ifndef FASTRNN_VECTOR_BYTES
#define FASTRNN_VECTOR_BYTES 32  // AVX2 registers; the portable build splits them into SSE2 pairs
#endif

// The micro-tile: MR rows x NV vectors of C in MR*NV accumulator registers, plus NV for a row of B
// and one for a broadcast value of A.
// - AVX-512 (32 registers): 8 x 2 (16 accumulators); rows of 8 divide every batch size that occurs.
// - AVX2 (16 registers): 4 x 3 (12 accumulators). Its 6 x 2 tile left a ragged 4-row tile at
//   B = 16 (6 + 6 + 4: 89% of the tiles' rows in use) and ran B = 4 on 8 accumulators only; 4 x 3
//   divides B = 4, 16, 32, 64 and loads 7 values per 12 FMAs instead of 8.
// - portable (SSE2 pairs of 16 registers): 6 x 2, as before.
template <class T>
struct Tile {
  typedef T vec __attribute__((vector_size(FASTRNN_VECTOR_BYTES)));
  static constexpr int VL = FASTRNN_VECTOR_BYTES / sizeof(T);  // lanes per vector
  // kAccumulators: the vector registers that few-row tiles may fill (micro_kernel's S).
#if FASTRNN_VECTOR_BYTES == 64
  static constexpr int NV = 2, MR = 8, kAccumulators = 16;
#elif defined(__AVX2__)
  static constexpr int NV = 3, MR = 4, kAccumulators = 12;
#else
  static constexpr int NV = 2, MR = 6, kAccumulators = 8;
#endif
  static constexpr int NR = NV * VL;  // columns of C per micro-tile: the width of B's panels
};

// The block sizes, chosen once per process from the detected caches (runtime/cache.hpp), so that
// they suit the core the code runs on (they were constants tuned on one Zen 5: KC 384, MC 144):
// - kc, the depth of a packed block: the kc x NR slice of B that each MR-row tile of the block
//   re-reads fills L1d (on that Zen 5, 48 KiB: 384 deep for AVX-512 fp32, as tuned);
// - mc, the rows of A per packed block: the mc x kc block fills a quarter of L2, leaving the rest
//   to the B slices that stream past it;
// - nc, B panels per pass over a block row of A: their kc-deep slices fill half of this core's
//   share of L3, so the rows of A that follow find them there.
// Fixed per process and independent of the thread count (threads split the panels, never k), so
// results are bitwise identical however many threads run.
struct Blocks {
  index_t kc, mc, nc;
};

template <class T>
Blocks choose_blocks(const CacheSizes& cache) {
  using Tl = Tile<T>;
  const index_t l1 = static_cast<index_t>(cache.l1d), l2 = static_cast<index_t>(cache.l2),
                l3 = static_cast<index_t>(cache.l3), s = sizeof(T);
  const index_t kc = std::min<index_t>(512, std::max<index_t>(128, l1 / (Tl::NR * s) / 16 * 16));
  const index_t mc =
      std::min<index_t>(1020, std::max<index_t>(Tl::MR, l2 / 4 / (kc * s) / Tl::MR * Tl::MR));
  const index_t nc = std::max<index_t>(1, l3 / 2 / (kc * Tl::NR * s));
  return Blocks{kc, mc, nc};
}

template <class T>
const Blocks& blocks() {
  static const Blocks b = choose_blocks<T>(cache_sizes());
  return b;
}

// The transposed copy of an L x L block (L = 16 bytes' worth of T: 4 floats, 2 doubles; SSE2 and
// NEON registers): row i of src (stride ls) becomes column i of dst (stride ld). Packing a weight
// matrix for x W^T is a transpose; element by element it ran at 5-6 GB/s (3.4 ms for an LSTM's
// 16 MiB W_ih at H = 1024, every forward call), in register shuffles several times that.
template <class T>
struct Transpose16 {
  typedef T vec __attribute__((vector_size(16)));
  static constexpr int L = 16 / sizeof(T);

  template <int... I>
  static vec shuffle(vec a, vec b) {
#if defined(__clang__) || __GNUC__ >= 12
    return __builtin_shufflevector(a, b, I...);
#else
    typedef std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t> Int;
    typedef Int mask __attribute__((vector_size(16)));
    return __builtin_shuffle(a, b, mask{I...});
#endif
  }

  static void block(const T* src, index_t ls, T* dst, index_t ld) {
    vec r[L];
    for (int i = 0; i < L; ++i) std::memcpy(&r[i], src + i * ls, sizeof(vec));
    if constexpr (L == 4) {
      const vec t0 = shuffle<0, 4, 1, 5>(r[0], r[1]), t1 = shuffle<2, 6, 3, 7>(r[0], r[1]);
      const vec t2 = shuffle<0, 4, 1, 5>(r[2], r[3]), t3 = shuffle<2, 6, 3, 7>(r[2], r[3]);
      r[0] = shuffle<0, 1, 4, 5>(t0, t2);
      r[1] = shuffle<2, 3, 6, 7>(t0, t2);
      r[2] = shuffle<0, 1, 4, 5>(t1, t3);
      r[3] = shuffle<2, 3, 6, 7>(t1, t3);
    } else {
      const vec t0 = shuffle<0, 2>(r[0], r[1]), t1 = shuffle<1, 3>(r[0], r[1]);
      r[0] = t0;
      r[1] = t1;
    }
    for (int i = 0; i < L; ++i) std::memcpy(dst + i * ld, &r[i], sizeof(vec));
  }
};

// A K x N operand packed into ceil(N / NR) panels, each K x NR, k-major, zero-padded past N.
template <class T>
class PackedB {
 public:
  static constexpr int NR = Tile<T>::NR;

  // Element (k, n) of the source is b[k * rs + n * cs].
  void pack(index_t K, index_t N, const T* b, index_t rs, index_t cs) {
    prepare(K, N);
    pack_panels(0, panels_, b, rs, cs);
  }

  // The two halves of pack(): sizing (may allocate: call it outside a team job) and the copy of
  // panels [p_begin, p_end), which threads may do side by side, each for the panels it multiplies.
  void prepare(index_t K, index_t N) {
    K_ = K;
    N_ = N;
    panels_ = (N + NR - 1) / NR;
    buf_.ensure(static_cast<std::size_t>(std::max<index_t>(panels_ * K * NR, 1)));
  }
  void pack_panels(index_t p_begin, index_t p_end, const T* b, index_t rs, index_t cs) {
    const index_t K = K_, N = N_;
    for (index_t p = p_begin; p < std::min(p_end, panels_); ++p) {
      T* out = panel(p);
      const index_t n0 = p * NR, nc = std::min<index_t>(NR, N - n0);
      if (rs == 1 && cs != 1) {
        // B is a transposed weight matrix (x W^T): copy 16-deep strips of W's rows, so that
        // both what is read and what is written stay within a few cache lines, L x L blocks
        // of them transposed in registers (the edges element by element).
        constexpr index_t L = Transpose16<T>::L;
        const index_t nc_blocks = nc - nc % L;
        for (index_t k0 = 0; k0 < K; k0 += 16) {
          const index_t kn = std::min<index_t>(16, K - k0), kn_blocks = kn - kn % L;
          for (index_t j = 0; j < nc_blocks; j += L) {
            const T* src = b + (n0 + j) * cs + k0;
            for (index_t k = 0; k < kn_blocks; k += L)
              Transpose16<T>::block(src + k, cs, out + (k0 + k) * NR + j, NR);
            for (index_t i = 0; i < L; ++i)
              for (index_t k = kn_blocks; k < kn; ++k) out[(k0 + k) * NR + j + i] = src[i * cs + k];
          }
          for (index_t j = nc_blocks; j < nc; ++j) {
            const T* src = b + (n0 + j) * cs + k0;
            for (index_t k = 0; k < kn; ++k) out[(k0 + k) * NR + j] = src[k];
          }
        }
        for (index_t k = 0; k < K; ++k)
          for (index_t j = nc; j < NR; ++j) out[k * NR + j] = T(0);
        continue;
      }
      for (index_t k = 0; k < K; ++k) {
        const T* src = b + k * rs + n0 * cs;
        T* dst = out + k * NR;
        if (cs == 1) {
          std::memcpy(dst, src, sizeof(T) * nc);
        } else {
          for (index_t j = 0; j < nc; ++j) dst[j] = src[j * cs];
        }
        for (index_t j = nc; j < NR; ++j) dst[j] = T(0);
      }
    }
  }
  index_t K() const { return K_; }
  index_t N() const { return N_; }
  index_t panels() const { return panels_; }
  const T* panel(index_t p) const { return buf_.data() + p * K_ * NR; }

 private:
  T* panel(index_t p) { return buf_.data() + p * K_ * NR; }
  AlignedBuffer<T> buf_{Reuse::scratch};
  index_t K_ = 0, N_ = 0, panels_ = 0;
};

// C[R x ncols] (+)= A-panel (kc x R, k-major) * B-panel slice (kc x NR, k-major), then + bias
// (ncols values, added to every row) when given: the input projection's folded biases, added as
// the tile is stored instead of in a pass of their own over the (T*B, G*H) result, with the same
// two roundings (the sum, then the bias). W (<= NV) vectors of the panel are computed: a last,
// narrower panel (ncols <= W * VL) does only the work it needs.
// Few rows (small batches: a matrix-vector product) leave too few independent accumulators to hide
// the FMA latency, so those split k over S interleaved accumulator sets, summed at the end: as
// many as fill the tile's accumulators (a narrow last panel too). At B=4 on AVX-512 the second set
// made RNN and GRU steps 5-6% faster. The panels never depend on the thread count: neither do S
// and the bits.
// A is a packed panel (element (i, k) at ap[k * R + i]) or, with Rows, R rows as they are
// (ap[i * a_ld + k]; the recurrent products' few rows, which packing would copy at every step for
// nothing: both read the same values in the same order, so the bits are the same).
template <class T, int R, int W, bool Rows>
inline void micro_kernel(index_t kc, const T* __restrict ap, index_t a_ld, const T* __restrict bp,
                         T* __restrict c, index_t ldc, int ncols, bool accumulate,
                         const T* __restrict bias) {
  using Tl = Tile<T>;
  using V = typename Tl::vec;
  constexpr int VL = Tl::VL, NR = Tl::NR;
  constexpr int S = std::max(1, std::min(4, Tl::kAccumulators / (W * R)));
  V acc[S][R][W];
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 3
      for (int j = 0; j < W; ++j) acc[s][i][j] = V{};
  index_t k = 0;
  for (; k + S <= kc; k += S) {
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) {
      V b[W];
#pragma GCC unroll 3
      for (int j = 0; j < W; ++j) std::memcpy(&b[j], bp + (k + s) * NR + j * VL, sizeof(V));
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const T a = Rows ? ap[i * a_ld + k + s] : ap[(k + s) * R + i];
#pragma GCC unroll 3
        for (int j = 0; j < W; ++j) acc[s][i][j] += a * b[j];
      }
    }
  }
  for (; k < kc; ++k) {
    V b[W];
#pragma GCC unroll 3
    for (int j = 0; j < W; ++j) std::memcpy(&b[j], bp + k * NR + j * VL, sizeof(V));
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const T a = Rows ? ap[i * a_ld + k] : ap[k * R + i];
#pragma GCC unroll 3
      for (int j = 0; j < W; ++j) acc[0][i][j] += a * b[j];
    }
  }
#pragma GCC unroll 4
  for (int s = 1; s < S; ++s)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 3
      for (int j = 0; j < W; ++j) acc[0][i][j] += acc[s][i][j];
  if (ncols == W * VL) {
    V bias_v[W] = {};
    if (bias)
#pragma GCC unroll 3
      for (int j = 0; j < W; ++j) std::memcpy(&bias_v[j], bias + j * VL, sizeof(V));
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      T* row = c + i * ldc;
#pragma GCC unroll 3
      for (int j = 0; j < W; ++j) {
        if (accumulate) {
          V old;
          std::memcpy(&old, row + j * VL, sizeof(V));
          acc[0][i][j] += old;
        }
        if (bias) acc[0][i][j] += bias_v[j];
        std::memcpy(row + j * VL, &acc[0][i][j], sizeof(V));
      }
    }
  } else {
    alignas(64) T tmp[W * VL];
    for (int i = 0; i < R; ++i) {
      std::memcpy(tmp, &acc[0][i][0], sizeof(tmp));
      T* row = c + i * ldc;
      for (int j = 0; j < ncols; ++j) {
        row[j] = accumulate ? row[j] + tmp[j] : tmp[j];
        if (bias) row[j] += bias[j];
      }
    }
  }
}

template <class T, int R, bool Rows>
inline void micro_kernel_cols(index_t kc, const T* ap, index_t a_ld, const T* bp, T* c, index_t ldc,
                              int ncols, bool accumulate, const T* bias) {
  constexpr int VL = Tile<T>::VL, NV = Tile<T>::NV;
  if (NV == 3 && ncols > 2 * VL)
    return micro_kernel<T, R, NV, Rows>(kc, ap, a_ld, bp, c, ldc, ncols, accumulate, bias);
  if (ncols > VL)
    return micro_kernel<T, R, NV == 3 ? 2 : NV, Rows>(kc, ap, a_ld, bp, c, ldc, ncols, accumulate,
                                                      bias);
  micro_kernel<T, R, 1, Rows>(kc, ap, a_ld, bp, c, ldc, ncols, accumulate, bias);
}

// The micro-kernel for `rows` (1..MR) rows.
template <class T, bool Rows, int R = 1>
inline void micro_kernel_rows(int rows, index_t kc, const T* ap, index_t a_ld, const T* bp, T* c,
                              index_t ldc, int ncols, bool accumulate, const T* bias) {
  if constexpr (R < Tile<T>::MR) {
    if (rows > R)
      return micro_kernel_rows<T, Rows, R + 1>(rows, kc, ap, a_ld, bp, c, ldc, ncols, accumulate,
                                               bias);
  }
  micro_kernel_cols<T, R, Rows>(kc, ap, a_ld, bp, c, ldc, ncols, accumulate, bias);
}

// Packs rows [i0, i0 + mc) x depth [k0, k0 + kc) of A (element (i, k) at a[i * rs + k * cs]) into
// MR-row panels; the last panel holds the leftover rows, tightly (stride = its row count).
template <class T>
inline void pack_a(index_t mc, index_t kc, const T* a, index_t rs, index_t cs, T* out) {
  constexpr int MR = Tile<T>::MR;
  if (rs == 1) {
    // A stored transposed (dG^T in the weight gradients): walk each k's contiguous run of rows.
    constexpr index_t kAhead = 8;              // rows of A^T fetched ahead
    constexpr index_t kLine = 64 / sizeof(T);  // elements per cache line
    const index_t full = mc - mc % MR;
    for (index_t k = 0; k < kc; ++k) {
      const T* src = a + k * cs;
      // Its rows are far apart (one per time step), which the hardware prefetchers do not follow.
      if (k + kAhead < kc)
        for (index_t l = 0; l < mc; l += kLine) __builtin_prefetch(src + kAhead * cs + l);
      for (index_t p0 = 0; p0 < full; p0 += MR)
        std::memcpy(out + p0 * kc + k * MR, src + p0, sizeof(T) * MR);
      const int rows = static_cast<int>(mc - full);
      T* dst = out + full * kc + k * rows;
      for (int i = 0; i < rows; ++i) dst[i] = src[full + i];
    }
    return;
  }
  for (index_t p0 = 0; p0 < mc; p0 += MR) {
    const int rows = static_cast<int>(std::min<index_t>(MR, mc - p0));
    T* dst = out + p0 * kc;
    if (rows == MR && cs == 1) {
      // A full panel of row-major A: write it in order, reading its MR rows side by side.
      const T* src = a + p0 * rs;
      for (index_t k = 0; k < kc; ++k)
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) dst[k * MR + i] = src[i * rs + k];
      continue;
    }
    for (int i = 0; i < rows; ++i) {
      const T* src = a + (p0 + i) * rs;
      for (index_t k = 0; k < kc; ++k) dst[k * rows + i] = src[k * cs];
    }
  }
}

// How many threads a product of this size is worth (each extra one must have real work to do).
inline int gemm_threads(index_t M, index_t N, index_t K, index_t panels) {
  const double flops = 2.0 * double(M) * double(N) * double(K);
  // 8 Mflop (~40 us at 200 GFLOP/s) per extra thread: with 4 Mflop a tanh RNN's forward+backward
  // at T=100, B=1, H=128 ran 10% slower on 2 threads than on 1 (waking the worker for its 12 us
  // share of the weight gradients cost more than it saved).
  const double grain = 8e6 * ThreadTeam::global().grain();
  const index_t by_size =
      grain > 0 ? static_cast<index_t>(std::min(flops / grain, 1e6)) + 1 : 1 << 20;
  const index_t n = std::min<index_t>({by_size, panels, 1 << 20});
  return ThreadTeam::global().available(static_cast<int>(std::max<index_t>(1, n)));
}

// C[:, panels [p_begin, p_end)] (+)= the (mc x kc) packed block of A at rows i0, depth k0, times B
// (then + bias[n] in column n, when given: only in the last block over k). With Rows, a_block is
// A's rows as they are, row i at a_block + i * a_ld, already at depth k0 (gemm_panels_rows).
template <class T, bool Rows = false>
inline void gemm_block(const T* a_block, index_t i0, index_t mc, index_t k0, index_t kc,
                       const PackedB<T>& b, index_t p_begin, index_t p_end, T* c, index_t ldc,
                       bool acc, const T* bias = nullptr, index_t a_ld = 0) {
  using Tl = Tile<T>;
  const index_t a_tile = Rows ? a_ld : kc;  // from one row tile's A to the next's, per row
  for (index_t p = p_begin; p < p_end; ++p) {
    const T* bp = b.panel(p) + k0 * Tl::NR;
    const int ncols = static_cast<int>(std::min<index_t>(Tl::NR, b.N() - p * Tl::NR));
    for (index_t r0 = 0; r0 < mc; r0 += Tl::MR) {
      const int rows = static_cast<int>(std::min<index_t>(Tl::MR, mc - r0));
      micro_kernel_rows<T, Rows>(rows, kc, a_block + r0 * a_tile, a_ld, bp,
                                 c + (i0 + r0) * ldc + p * Tl::NR, ldc, ncols, acc,
                                 bias ? bias + p * Tl::NR : nullptr);
    }
  }
}

// Zeroes (or leaves, when accumulating) columns [p_begin, p_end) of C: the product with K == 0.
template <class T>
inline void gemm_empty(index_t M, const PackedB<T>& b, index_t p_begin, index_t p_end, T* c,
                       index_t ldc, bool accumulate) {
  if (accumulate) return;
  const index_t n0 = p_begin * Tile<T>::NR, n1 = std::min(p_end * Tile<T>::NR, b.N());
  for (index_t i = 0; i < M; ++i) std::fill(c + i * ldc + n0, c + i * ldc + n1, T(0));
}

// Columns [p_begin * NR, min(p_end * NR, N)) of C = A * B (accumulate == false) or C += A * B, on
// the calling thread, A's M rows read as they are (row i at a + i * lda): the time loops' products
// of a few rows (the batch) by each gate's packed weights. Packing those rows, at every step and
// on every thread (each needs all of them), cost more than it saved: 2% of a tanh RNN's forward
// at T=50, B=64, H=512 on one thread, and a part of it that a second thread did not shorten.
template <class T>
void gemm_panels_rows(index_t M, const T* a, index_t lda, const PackedB<T>& b, index_t p_begin,
                      index_t p_end, T* c, index_t ldc, bool accumulate) {
  const Blocks& bl = blocks<T>();
  const index_t K = b.K();
  p_end = std::min(p_end, b.panels());
  if (M <= 0 || p_begin >= p_end) return;
  if (K == 0) return gemm_empty(M, b, p_begin, p_end, c, ldc, accumulate);
  for (index_t k0 = 0; k0 < K; k0 += bl.kc) {
    const index_t kc = std::min<index_t>(bl.kc, K - k0);
    for (index_t j0 = p_begin; j0 < p_end; j0 += bl.nc)
      gemm_block<T, true>(a + k0, 0, M, k0, kc, b, j0, std::min(p_end, j0 + bl.nc), c, ldc,
                          accumulate || k0 > 0, nullptr, lda);
  }
}

// The calling thread's room for one packed MC x KC block of A.
template <class T>
AlignedBuffer<T>& a_block_scratch() {
  static thread_local AlignedBuffer<T> a_pack{Reuse::scratch};
  a_pack.ensure(static_cast<std::size_t>(blocks<T>().mc * blocks<T>().kc));
  return a_pack;
}

// The same with A unpacked (element (i, k) at a[i * a_rs + k * a_cs]): packs one MC x KC block at
// a time, so that large operands need no copy of their own. Returns early, C unfinished, once
// `stop` is set (the caller's interrupt flag, interrupt.hpp: the caller then throws). With bias
// (N values), C's column n gets + bias[n] after the product.
template <class T>
void gemm_panels(index_t M, const T* a, index_t a_rs, index_t a_cs, const PackedB<T>& b,
                 index_t p_begin, index_t p_end, T* c, index_t ldc, bool accumulate,
                 const std::atomic<bool>& stop, const T* bias = nullptr) {
  const Blocks& bl = blocks<T>();
  const index_t K = b.K();
  p_end = std::min(p_end, b.panels());
  if (M <= 0 || p_begin >= p_end) return;
  if (K == 0) return gemm_empty(M, b, p_begin, p_end, c, ldc, accumulate);
  AlignedBuffer<T>& a_pack = a_block_scratch<T>();
  for (index_t k0 = 0; k0 < K; k0 += bl.kc) {
    const index_t kc = std::min<index_t>(bl.kc, K - k0);
    // Each pass over nc panels packs the blocks of A again: far cheaper than the products they
    // serve, and a pass at all only where B's slice outgrows this core's L3.
    for (index_t j0 = p_begin; j0 < p_end; j0 += bl.nc) {
      const index_t j1 = std::min(p_end, j0 + bl.nc);
      for (index_t i0 = 0; i0 < M; i0 += bl.mc) {
        if (stop.load(std::memory_order_relaxed)) return;
        const index_t mc = std::min<index_t>(bl.mc, M - i0);
        pack_a(mc, kc, a + i0 * a_rs + k0 * a_cs, a_rs, a_cs, a_pack.data());
        gemm_block(a_pack.data(), i0, mc, k0, kc, b, j0, j1, c, ldc, accumulate || k0 > 0,
                   k0 + kc == K ? bias : nullptr);
      }
    }
  }
}

// Products with at most this many rows multiply by the weights as given (product_rowmajor) instead
// of packing them: at one row and H = 256 packing an LSTM's W_hh cost ~100 us, the products ~20 us.
constexpr index_t kUnpackedMaxRows = 4;

// C[m, n] = sum_k A[m, k] * W[n, k] for n in [n0, n1) (C[m, n] += ... when accumulating): the
// product with a weight matrix W stored row-major (G*H x K, as the user gave it), without packing
// it. For calls of one or a few time steps (step-by-step generation) packing W would cost more than
// every product it serves.
template <class T>
void product_rowmajor(index_t M, index_t K, const T* a, index_t lda, const T* w, index_t ldw,
                      index_t n0, index_t n1, T* c, index_t ldc, bool accumulate = false) {
  using V = typename Tile<T>::vec;
  constexpr int VL = Tile<T>::VL;
  for (index_t m = 0; m < M; ++m) {
    const T* am = a + m * lda;
    for (index_t n = n0; n < n1; ++n) {
      const T* wn = w + n * ldw;
      V acc0{}, acc1{};  // two chains: the loads, not the FMA latency, bound this loop
      index_t k = 0;
      for (; k + 2 * VL <= K; k += 2 * VL) {
        V x0, x1, y0, y1;
        std::memcpy(&x0, am + k, sizeof(V));
        std::memcpy(&x1, am + k + VL, sizeof(V));
        std::memcpy(&y0, wn + k, sizeof(V));
        std::memcpy(&y1, wn + k + VL, sizeof(V));
        acc0 += x0 * y0;
        acc1 += x1 * y1;
      }
      acc0 += acc1;
      T sum = T(0);
      for (int l = 0; l < VL; ++l) sum += acc0[l];
      for (; k < K; ++k) sum += am[k] * wn[k];
      c[m * ldc + n] = accumulate ? c[m * ldc + n] + sum : sum;
    }
  }
}

// The whole product, its column panels split over the thread team when it is big enough.
template <class T>
void gemm(index_t M, const T* a, index_t a_rs, index_t a_cs, const PackedB<T>& b, T* c, index_t ldc,
          bool accumulate) {
  const index_t panels = b.panels();
  const int nthreads = gemm_threads(M, b.N(), b.K(), panels);
  const std::atomic<bool>& stop = interrupt_flag();  // the caller's, for every thread
  auto job = [&](int tid) {
    gemm_panels(M, a, a_rs, a_cs, b, panels * tid / nthreads, panels * (tid + 1) / nthreads, c, ldc,
                accumulate, stop);
  };
  ThreadTeam::global().run(nthreads, JobRef(job));
}

// The same with B given unpacked: element (k, n) at b[k * b_rs + n * b_cs], B is K x N. B is packed
// one KC-deep slice at a time, so scratch holds KC x N however deep the product (the weight
// gradients run over all T*B rows) and no copy of B the size of the input is ever made. With bias
// (N values), C's column n gets + bias[n] after the product (as the last slice's tiles are stored).
template <class T>
void gemm(index_t M, index_t N, index_t K, const T* a, index_t a_rs, index_t a_cs, const T* b,
          index_t b_rs, index_t b_cs, T* c, index_t ldc, bool accumulate, PackedB<T>& scratch,
          const T* bias = nullptr) {
  if (K == 0) {
    scratch.pack(0, N, b, b_rs, b_cs);
    gemm(M, a, a_rs, a_cs, scratch, c, ldc, accumulate);
    if (bias)
      for (index_t i = 0; i < M; ++i)
        for (index_t n = 0; n < N; ++n) c[i * ldc + n] += bias[n];
    return;
  }
  const std::atomic<bool>& stop = interrupt_flag();
  const index_t KC = blocks<T>().kc;
  for (index_t k0 = 0; k0 < K && !stop.load(std::memory_order_relaxed); k0 += KC) {
    const index_t kc = std::min<index_t>(KC, K - k0);
    scratch.prepare(kc, N);
    const index_t panels = scratch.panels();
    const int nthreads = gemm_threads(M, N, kc, panels);
    // Each thread packs the panels of B it multiplies: no thread waits for another's packing.
    auto job = [&](int tid) {
      const index_t p0 = panels * tid / nthreads, p1 = panels * (tid + 1) / nthreads;
      scratch.pack_panels(p0, p1, b + k0 * b_rs, b_rs, b_cs);
      gemm_panels(M, a + k0 * a_cs, a_rs, a_cs, scratch, p0, p1, c, ldc, accumulate || k0 > 0, stop,
                  k0 + kc == K ? bias : nullptr);
    };
    ThreadTeam::global().run(nthreads, JobRef(job));
  }
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
