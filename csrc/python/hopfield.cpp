// Hopfield recall's binding (fastrnn/hopfield.hpp). Integer arrays only; every value the kernel
// uses as an index or relies on (symmetry, zero diagonal, +1/-1 states, permutation orders) is
// checked here.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fastrnn/hopfield.hpp"
#include "python/args.hpp"

namespace fastrnn {
namespace bind {
namespace {

// An integer array of exactly dtype T (any byte order) and `shape` (-1: any size on that axis).
template <class T>
py::array checked_int_view(py::handle value, const char* name, const std::vector<index_t>& shape,
                           const std::string& expected, const char* dtype_name) {
  py::array arr = as_array(value, name);
  const py::dtype dt = arr.dtype();
  if (dt.kind() != 'i' || dt.itemsize() != static_cast<py::ssize_t>(sizeof(T)))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name + ", got " +
                         std::string(py::str(dt)));
  bool ok = arr.ndim() == static_cast<py::ssize_t>(shape.size());
  for (std::size_t i = 0; ok && i < shape.size(); ++i)
    ok = shape[i] < 0 || arr.shape(i) == shape[i];
  require(ok, std::string(name) + " must have shape " + expected + ", got " + shape_of(arr));
  return arr;
}

py::tuple hopfield_recall(py::handle weights_, py::handle states_, const std::string& mode,
                          index_t max_sweeps, py::handle order_) {
  require(mode == "async" || mode == "sync", "mode must be 'async' or 'sync', got '" + mode + "'");
  const bool sync = mode == "sync";
  require(max_sweeps >= 1, "max_sweeps must be >= 1, got " + std::to_string(max_sweeps));
  // Phase 1: dtypes and shapes, nothing copied.
  py::array wv = checked_int_view<std::int32_t>(weights_, "weights", {-1, -1}, "(N, N)", "int32");
  const index_t N = wv.shape(0);
  require(N >= 1 && wv.shape(1) == N,
          "weights must have shape (N, N) with N >= 1, got " + shape_of(wv));
  const std::string sN = std::to_string(N);
  py::array sv =
      checked_int_view<std::int8_t>(states_, "states", {-1, N}, "(B, N=" + sN + ")", "int8");
  const index_t B = sv.shape(0);
  py::array ov;
  if (sync) {
    require(order_.is_none(), "order must be None for mode 'sync'");
  } else {
    require(!order_.is_none(), "order (max_sweeps, N) is required for mode 'async'");
    const std::string expected = "(max_sweeps=" + std::to_string(max_sweeps) + ", N=" + sN + ")";
    ov = checked_int_view<std::int32_t>(order_, "order", {max_sweeps, N}, expected, "int32");
  }
  // Bytes at most: copies of weights, states and order (when not already C-contiguous int32/int8),
  // the outputs (states, converged, iterations), the order check's marks and the kernel's scratch
  // (fastrnn/hopfield.hpp: 4 N^2 + 3080 N).
  const index_t K = sync ? 0 : max_sweeps;
  index_t bytes = add(mul(8, mul(N, N)), mul(B, add(mul(2, N), 9)));
  bytes = add(bytes, add(mul(4, mul(K, N)), mul(3088, N)));
  check_memory(bytes, 1, "hopfield_recall");

  // Phase 2: contiguous copies, then the values.
  Array<std::int32_t> weights = contiguous<std::int32_t>(wv), order;
  Array<std::int8_t> states_in = contiguous<std::int8_t>(sv);
  fastrnn::HopfieldWeightsCheck wc;
  run_kernel(double(N) * double(N),
             [&] { wc = fastrnn::hopfield_check_weights(N, weights.data()); });
  const std::string i = std::to_string(wc.row), j = std::to_string(wc.col);
  require(wc.status != fastrnn::HopfieldWeightsCheck::diagonal,
          "weights must have a zero diagonal, got a nonzero value at (" + i + ", " + i + ")");
  require(wc.status != fastrnn::HopfieldWeightsCheck::asymmetric,
          "weights must be symmetric, got weights[" + i + ", " + j + "] != weights[" + j + ", " +
              i + "]");
  const std::int8_t* sin = states_in.data();
  const index_t BN = B * N;
  for (index_t e = 0; e < BN; ++e)  // (the message is built only for a bad value)
    if (sin[e] != 1 && sin[e] != -1)
      throw std::invalid_argument("states must hold only +1 and -1, got " +
                                  std::to_string(int(sin[e])) + " at (" + std::to_string(e / N) +
                                  ", " + std::to_string(e % N) + ")");
  if (!sync) {
    order = contiguous<std::int32_t>(ov);
    std::vector<index_t> seen(static_cast<std::size_t>(N), -1);
    const std::int32_t* o = order.data();
    for (index_t k = 0; k < K; ++k) {
      for (index_t u = 0; u < N; ++u) {
        const std::int32_t i = o[k * N + u];
        if (i < 0 || i >= N || seen[static_cast<std::size_t>(i)] == k)
          throw std::invalid_argument("order must hold a permutation of 0..N-1 in each row, row " +
                                      std::to_string(k) + " is not one");
        seen[static_cast<std::size_t>(i)] = k;
      }
    }
  }
  // The kernel's int64 fields need 2 * max|W| * N to fit (always: |W_ij| <= 2**31 and N < 2**31,
  // as N*N int32 values exist).
  require(mul(mul(2, wc.max_abs), N) >= 0, "weights too large: 2 * max|W| * N overflows 64 bits");

  Array<std::int8_t> states({B, N});
  Array<bool> converged({B});
  Array<std::int64_t> iterations({B});
  if (B > 0) {
    const fastrnn::HopfieldArgs args{N,
                                     B,
                                     max_sweeps,
                                     sync,
                                     wc.max_abs,
                                     weights.data(),
                                     sync ? nullptr : order.data(),
                                     states.mutable_data(),
                                     converged.mutable_data(),
                                     iterations.mutable_data()};
    // The first fields cost N^2 per state and a sweep at least N (N^2 when every unit flips).
    const double work = double(B) * double(N) * (double(N) + double(max_sweeps));
    run_kernel(work, [&] {
      std::copy(sin, sin + BN, states.mutable_data());  // a rerun starts from the same states
      fastrnn::hopfield_recall(args);
    });
  }
  return py::make_tuple(states, converged, iterations);
}

}  // namespace

void register_hopfield(py::module_& m) {
  m.def("hopfield_recall", &hopfield_recall, py::arg("weights"), py::arg("states"), py::arg("mode"),
        py::arg("max_sweeps"), py::arg("order"),
        "hopfield_recall(weights, states, mode, max_sweeps, order)\n"
        "-> (states, converged, iterations). weights (N, N) int32 symmetric with a zero diagonal;\n"
        "states (B, N) int8 of +1/-1 (not modified); mode 'async' (order (max_sweeps, N) int32, a\n"
        "permutation of 0..N-1 per sweep) or 'sync' (order None). Returns the recalled states\n"
        "(B, N) int8, converged (B,) bool and iterations (B,) int64 (sweeps run, the final\n"
        "unchanged one included). A unit whose field is 0 keeps its state.");
}

}  // namespace bind
}  // namespace fastrnn
