// matmul's binding: out = a @ b (or out += a @ b) on strided views, for fastrnn.Linear
// (fastrnn/matmul.hpp).

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "fastrnn/matmul.hpp"
#include "python/args.hpp"

namespace fastrnn {
namespace bind {
namespace {

// The lowest and highest byte an array's elements occupy (empty: lo > hi).
std::pair<std::uintptr_t, std::uintptr_t> byte_extent(const py::array& a) {
  auto lo = reinterpret_cast<std::uintptr_t>(a.data()), hi = lo;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) == 0) return {1, 0};
    const std::intptr_t span = static_cast<std::intptr_t>(a.shape(d) - 1) * a.strides(d);
    (span < 0 ? lo : hi) += static_cast<std::uintptr_t>(span);
  }
  return {lo, hi + static_cast<std::uintptr_t>(a.itemsize()) - 1};
}

bool overlap(const py::array& a, const py::array& b) {
  const auto [alo, ahi] = byte_extent(a);
  const auto [blo, bhi] = byte_extent(b);
  return alo <= ahi && blo <= bhi && alo <= bhi && blo <= ahi;
}

template <class T>
void matmul_typed(const py::array& a, const py::array& b, py::array& out, bool accumulate) {
  const auto stride = [](const py::array& v, int d, const char* name) {
    require(v.strides(d) % static_cast<py::ssize_t>(sizeof(T)) == 0,
            std::string(name) + "'s strides must be multiples of its item size");
    return static_cast<index_t>(v.strides(d) / static_cast<py::ssize_t>(sizeof(T)));
  };
  const index_t a_rs = stride(a, 0, "a"), a_cs = stride(a, 1, "a");
  const index_t b_rs = stride(b, 0, "b"), b_cs = stride(b, 1, "b");
  const index_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  const T* ap = static_cast<const T*>(a.data());
  const T* bp = static_cast<const T*>(b.data());
  T* cp = static_cast<T*>(out.mutable_data());
  const double work = double(M) * double(N) * double(K);
  // A rerun (a SIGINT handler that does not raise) must start from out as it was: with
  // accumulate, keep a copy, but only when a rerun can happen (args.hpp: sigint_may_rerun).
  std::vector<T> before;
  if (accumulate && work >= kWatchedWork && on_main_thread() && sigint_may_rerun()) {
    check_memory(mul(M, N), sizeof(T), "matmul (out's copy, kept in case of Ctrl-C)");
    before.assign(cp, cp + M * N);
  }
  const auto undo = [&] { std::copy(before.begin(), before.end(), cp); };
  run_kernel(
      work, [&] { fastrnn::matmul<T>(M, N, K, ap, a_rs, a_cs, bp, b_rs, b_cs, cp, N, accumulate); },
      undo);
}

void matmul(py::handle a_, py::handle b_, py::handle out_, bool accumulate) {
  for (auto [h, name] : {std::pair{a_, "a"}, std::pair{b_, "b"}, std::pair{out_, "out"}})
    if (!py::isinstance<py::array>(h))
      throw py::type_error(std::string(name) + " must be a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(a_), b = py::reinterpret_borrow<py::array>(b_);
  py::array out = py::reinterpret_borrow<py::array>(out_);
  const py::dtype dt = a.dtype();
  const bool f32 = dt.equal(py::dtype::of<float>()), f64 = dt.equal(py::dtype::of<double>());
  if (!f32 && !f64)
    throw py::type_error("a must have dtype float32 or float64 (native byte order), got " +
                         std::string(py::str(dt)));
  if (!b.dtype().equal(dt) || !out.dtype().equal(dt))
    throw py::type_error("a, b and out must have the same dtype, got " + std::string(py::str(dt)) +
                         ", " + std::string(py::str(b.dtype())) + " and " +
                         std::string(py::str(out.dtype())));
  require(a.ndim() == 2 && b.ndim() == 2 && out.ndim() == 2,
          "a, b and out must be 2-D, got shapes " + shape_of(a) + ", " + shape_of(b) + " and " +
              shape_of(out));
  require(b.shape(0) == a.shape(1), "b must have shape (K=" + std::to_string(a.shape(1)) +
                                        ", N) for a of shape " + shape_of(a) + ", got " +
                                        shape_of(b));
  require(out.shape(0) == a.shape(0) && out.shape(1) == b.shape(1),
          "out must have shape (" + std::to_string(a.shape(0)) + ", " + std::to_string(b.shape(1)) +
              "), got " + shape_of(out));
  require(out.flags() & py::array::c_style, "out must be C-contiguous");
  require(out.writeable(), "out must be writeable");
  require(!overlap(out, a) && !overlap(out, b), "out must not share memory with a or b");
  for (const py::array* v : {&a, &b, &out})
    require(reinterpret_cast<std::uintptr_t>(v->data()) % v->itemsize() == 0,
            "a, b and out must be aligned to their item size");
  if (f32)
    matmul_typed<float>(a, b, out, accumulate);
  else
    matmul_typed<double>(a, b, out, accumulate);
}

}  // namespace

void register_matmul(py::module_& m) {
  m.def(
      "matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("accumulate"),
      "matmul(a, b, out, accumulate): out = a @ b, or out += a @ b when accumulate. a (M, K) and\n"
      "b (K, N) may be any strided views (transposes need no copy); out (M, N) C-contiguous,\n"
      "writeable and not overlapping them; all float32 or all float64. Runs on the thread team.\n"
      "Ctrl-C stops a long product (KeyboardInterrupt); out is then restored when accumulating\n"
      "under a SIGINT handler other than Python's default, else left part-written.");
}

}  // namespace bind
}  // namespace fastrnn
