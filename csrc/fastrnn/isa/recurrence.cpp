// The forward and BPTT time loops, templated on the scalar type and the cell (cells.hpp).
// Compiled once per instruction set (CMakeLists.txt); FASTRNN_ISA names this copy's namespace.
//
// Forward: the input projection for all T steps is one product before the loop; inside the loop
// only the recurrent product h_prev W_hh^T and the cell's elementwise math run. Backward: only the
// gate gradients and dh_prev = dgates W_hh live in the reverse loop; dx, dW_ih, dW_hh, dW_hr and
// the bias gradients are products/reductions over all T*B rows afterwards (the reductions in the
// order the loop made the rows: weight_gradients.hpp). Every buffer is allocated before the loops
// (a job that waits on a barrier must never throw).
//
// Each pass is a class whose run() lists its phases in order (forward_pass.hpp, backward_pass.hpp);
// the per-step phases take the thread's Lane (the units and columns it owns, its scratch) and the
// Step (which rows take it). Checkpointed training (checkpointed.hpp) runs the same phases one
// segment of steps at a time. The reset-before GRU has a second product per step (W_hn (r * h),
// which needs every unit's r): its step has one barrier more, forward and backward.

#include "fastrnn/isa.hpp"
#include "fastrnn/isa/backward_pass.hpp"
#include "fastrnn/isa/checkpointed.hpp"
#include "fastrnn/isa/forward_pass.hpp"

namespace fastrnn {
namespace FASTRNN_ISA {
namespace {

// Pass<T, the class of `cell` and its variant>(d, reverse, w, a).run().
template <template <class, class> class Pass, class T, class Args>
void run_pass(Cell cell, const Dims& d, bool reverse, const Weights<T>& w, const Args& a) {
  switch (cell) {
    case Cell::rnn_tanh: return Pass<T, RnnCell<T, false>>(d, reverse, w, a).run();
    case Cell::rnn_relu: return Pass<T, RnnCell<T, true>>(d, reverse, w, a).run();
    case Cell::lstm:
      if (w.w_ph) return Pass<T, LstmCell<T, true>>(d, reverse, w, a).run();
      return Pass<T, LstmCell<T, false>>(d, reverse, w, a).run();
    case Cell::gru:
      if (!w.reset_after) return Pass<T, GruResetBeforeCell<T>>(d, reverse, w, a).run();
      return Pass<T, GruCell<T>>(d, reverse, w, a).run();
  }
}

// Training that keeps only the segments' initial states (Saved::every > 0): checkpointed.hpp.
template <class T, class C>
using CheckpointedForward = ForwardSegments<T, C, ForwardPass>;
template <class T, class C>
using CheckpointedBackward = BackwardSegments<T, C, ForwardPass, BackwardPass>;

}  // namespace

void forward(Cell cell, const Dims& d, bool reverse, const Weights<float>& w,
             const ForwardArgs<float>& a) {
  if (a.saved && a.saved->every > 0)
    return run_checkpointed<CheckpointedForward, float>(cell, d, reverse, w, a);
  run_pass<ForwardPass, float>(cell, d, reverse, w, a);
}
void forward(Cell cell, const Dims& d, bool reverse, const Weights<double>& w,
             const ForwardArgs<double>& a) {
  if (a.saved && a.saved->every > 0)
    return run_checkpointed<CheckpointedForward, double>(cell, d, reverse, w, a);
  run_pass<ForwardPass, double>(cell, d, reverse, w, a);
}
void backward(Cell cell, const Dims& d, bool reverse, const Weights<float>& w,
              const BackwardArgs<float>& a) {
  if (a.saved->every > 0)
    return run_checkpointed<CheckpointedBackward, float>(cell, d, reverse, w, a);
  run_pass<BackwardPass, float>(cell, d, reverse, w, a);
}
void backward(Cell cell, const Dims& d, bool reverse, const Weights<double>& w,
              const BackwardArgs<double>& a) {
  if (a.saved->every > 0)
    return run_checkpointed<CheckpointedBackward, double>(cell, d, reverse, w, a);
  run_pass<BackwardPass, double>(cell, d, reverse, w, a);
}

}  // namespace FASTRNN_ISA
}  // namespace fastrnn
