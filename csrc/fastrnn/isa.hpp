// The one instruction-set dispatcher. The kernels in isa/ are compiled once per instruction set,
// each copy in its own namespace (fastrnn::portable, ::avx2, ::avx512; CMakeLists.txt), and every
// public entry point (isa.cpp) runs the copy chosen here: the best this CPU supports, unless a test
// forced another. What ships so runs on any x86-64, without -march=native.
#pragma once

#include <cstdint>

#include "fastrnn/common.hpp"
#include "fastrnn/hopfield.hpp"
#include "fastrnn/matmul.hpp"
#include "fastrnn/recurrence.hpp"

namespace fastrnn {

enum class Isa { portable, avx2, avx512 };

Isa active_isa();

// Which instruction sets were compiled in, which one runs, and a way to force one (for tests).
const char* const* compiled_paths();  // null-terminated, best first: {"avx512", "avx2", "portable"}
const char* active_path();            // the name of active_isa()
bool set_path(const char* name);      // false when that path is not compiled or not supported here

// What each instruction set's copy defines (isa/*.cpp, in namespace FASTRNN_ISA): the contracts of
// recurrence.hpp, matmul.hpp and hopfield.hpp, one overload per scalar type.
#define FASTRNN_ISA_KERNELS(isa)                                                                   \
  namespace isa {                                                                                  \
  void forward(Cell, const Dims&, bool, const Weights<float>&, const ForwardArgs<float>&);         \
  void forward(Cell, const Dims&, bool, const Weights<double>&, const ForwardArgs<double>&);       \
  void backward(Cell, const Dims&, bool, const Weights<float>&, const BackwardArgs<float>&);       \
  void backward(Cell, const Dims&, bool, const Weights<double>&, const BackwardArgs<double>&);     \
  void matmul(index_t M, index_t N, index_t K, const float* a, index_t a_rs, index_t a_cs,         \
              const float* b, index_t b_rs, index_t b_cs, float* c, index_t ldc, bool accumulate); \
  void matmul(index_t M, index_t N, index_t K, const double* a, index_t a_rs, index_t a_cs,        \
              const double* b, index_t b_rs, index_t b_cs, double* c, index_t ldc,                 \
              bool accumulate);                                                                    \
  void hopfield_recall(const HopfieldArgs& args);                                                  \
  HopfieldWeightsCheck hopfield_check_weights(index_t N, const std::int32_t* weights);             \
  }
FASTRNN_ISA_KERNELS(portable)
FASTRNN_ISA_KERNELS(avx2)
FASTRNN_ISA_KERNELS(avx512)
#undef FASTRNN_ISA_KERNELS

}  // namespace fastrnn
