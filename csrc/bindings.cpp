// The only file that includes pybind11. Each entry point: check shapes -> allocate outputs -> take raw
// pointers -> release the GIL and run the kernel. The checks repeat what functional.py checks, so the
// C++ stays safe when fastrnn._native is called directly. User errors raise ValueError/TypeError.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/sysinfo.h>
#endif

#include "fastrnn/hopfield.hpp"
#include "fastrnn/matmul.hpp"
#include "fastrnn/recurrence.hpp"
#include "fastrnn/threads.hpp"

namespace py = pybind11;
using fastrnn::Cell;
using fastrnn::index_t;

namespace {

template <class T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

[[noreturn]] void memory_error(const std::string& message) {
  PyErr_SetString(PyExc_MemoryError, message.c_str());
  throw py::error_already_set();
}

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// ---- Sizes: every element count the kernels will compute, checked for overflow before anything is
// allocated. Products of sizes use index_t (int64) inside the kernels; here they are checked to fit.

constexpr int kMaxThreads = 1024;  // as fastrnn.set_num_threads
constexpr index_t kIndexMax = std::numeric_limits<index_t>::max();

// a * b for a, b >= 0, or -1 when the product does not fit in index_t.
index_t mul(index_t a, index_t b) {
  if (a < 0 || b < 0) return -1;
  if (a != 0 && b > kIndexMax / a) return -1;
  return a * b;
}

index_t add(index_t a, index_t b) {
  if (a < 0 || b < 0 || b > kIndexMax - a) return -1;
  return a + b;
}

// Memory this machine could ever give (RAM + swap), in bytes; 0 when unknown.
std::uint64_t machine_memory() {
#if defined(__linux__)
  struct sysinfo si;
  if (sysinfo(&si) == 0)
    return (static_cast<std::uint64_t>(si.totalram) + si.totalswap) * si.mem_unit;
#endif
  return 0;
}

// Raises MemoryError (allocating nothing) when `elements` values of `itemsize` bytes overflow the
// index type, or need more memory than the machine has.
void check_memory(index_t elements, std::size_t itemsize, const std::string& what) {
  const index_t bytes = mul(elements, static_cast<index_t>(itemsize));
  if (elements < 0 || bytes < 0)
    memory_error("fastrnn: " + what + " would need more than 2**63 bytes (sizes overflow 64 bits)");
  const std::uint64_t have = machine_memory();
  if (have && static_cast<std::uint64_t>(bytes) > have)
    memory_error("fastrnn: " + what + " would need " + std::to_string(bytes) +
                 " bytes, more than this machine's memory (" + std::to_string(have) + " bytes)");
}

// ---- Arguments. Phase 1 looks at each argument without copying it (dtype, ndim, shape); phase 2,
// after the sizes are checked, makes the C-contiguous copies the kernels read.

// `value` as a NumPy array, not copied when it already is one.
py::array as_array(py::handle value, const char* name) {
  if (value.is_none()) throw py::type_error(std::string(name) + " must be an array, got None");
  py::array arr = py::array::ensure(value);
  if (!arr) throw py::type_error(std::string(name) + " must be an array (or convertible to one)");
  return arr;
}

// A float array of exactly dtype T (any byte order) and `shape` (-1: any size on that axis).
template <class T>
py::array checked_view(py::handle value, const char* name, const std::vector<index_t>& shape,
                       const std::string& expected) {
  py::array arr = as_array(value, name);
  const py::dtype dt = arr.dtype();
  if (dt.kind() != 'f' || dt.itemsize() != static_cast<py::ssize_t>(sizeof(T)))
    throw py::type_error(std::string(name) + " must have dtype " +
                         (sizeof(T) == 4 ? "float32" : "float64") + " like x, got " +
                         std::string(py::str(dt)));
  bool ok = arr.ndim() == static_cast<py::ssize_t>(shape.size());
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || arr.shape(i) == shape[i];
  require(ok, std::string(name) + " must have shape " + expected + ", got " + shape_of(arr));
  return arr;
}

// Phase 2: the C-contiguous, native-byte-order array of T (no copy when it already is). A failed
// copy (e.g. MemoryError for a huge broadcast view) propagates as the Python error it is.
template <class T>
Array<T> contiguous(const py::array& view) {
  return Array<T>(py::reinterpret_borrow<py::object>(view));
}

Cell parse_cell(const std::string& name) {
  if (name == "rnn_tanh") return Cell::rnn_tanh;
  if (name == "rnn_relu") return Cell::rnn_relu;
  if (name == "lstm") return Cell::lstm;
  if (name == "gru") return Cell::gru;
  throw std::invalid_argument("cell must be one of 'rnn_tanh', 'rnn_relu', 'lstm', 'gru', got '" +
                              name + "'");
}

template <class T>
const T* data_or_null(const Array<T>& a, bool present) {
  return present ? a.data() : nullptr;
}

template <class T>
Array<T> zeros(std::vector<py::ssize_t> shape) {
  Array<T> a(shape);
  if (a.size()) std::fill(a.mutable_data(), a.mutable_data() + a.size(), T(0));
  return a;
}

// Everything backward needs: the forward's arguments (kept alive here) and its saved buffers.
template <class T>
struct CacheData {
  Cell cell;
  fastrnn::Dims d;
  bool reverse;
  Array<T> x, w_ih, w_hh, w_hr;
  Array<index_t> lengths;
  bool has_b_ih, has_b_hh, has_w_hr, has_lengths;
  fastrnn::Saved<T> saved;
};

// The opaque cache object handed to Python: one of the two is set.
struct NativeCache {
  std::unique_ptr<CacheData<float>> f32;
  std::unique_ptr<CacheData<double>> f64;
};

// Elements forward allocates (outputs, what training saves, its own workspace), overflow-checked.
index_t forward_elements(const fastrnn::Dims& d, index_t G, bool lstm, bool proj, bool gru,
                         bool lengths, bool training) {
  const index_t TB = mul(d.T, d.B), GH = mul(G, d.H);
  index_t n = 0;
  auto plus = [&](index_t v) { n = add(n, v); };
  plus(mul(TB, d.P));                    // y
  plus(mul(TB, GH));                     // input projection for all steps
  plus(mul(d.B, add(mul(3, d.P), mul(2, GH))));  // state buffers, recurrent product
  plus(mul(4, mul(d.B, d.H)));           // c, c_n and per-step temporaries
  plus(add(mul(GH, add(d.P, d.I)), mul(d.P, d.H)));  // packed weights
  if (lengths) plus(mul(TB, d.I));       // x with the padding zeroed
  if (training) {
    plus(mul(TB, d.P));                  // h_prev
    plus(mul(TB, GH));                   // gates
    if (lstm) plus(mul(2, mul(TB, d.H)));  // c_prev, c_new
    if (proj || gru) plus(mul(TB, d.H));   // m / gh_n
  }
  return n;
}

// Elements backward allocates (gradients and its workspace; the cache already exists).
index_t backward_elements(const fastrnn::Dims& d, index_t G, bool proj, bool gru) {
  const index_t TB = mul(d.T, d.B), GH = mul(G, d.H);
  index_t n = 0;
  auto plus = [&](index_t v) { n = add(n, v); };
  plus(mul(TB, d.I));                               // dx
  plus(mul(gru ? 2 : 1, mul(TB, GH)));              // gate gradients
  plus(mul(proj ? d.T : 1, mul(d.B, d.P)));         // dh_total
  plus(mul(d.B, add(mul(3, d.P), mul(2, d.H))));    // dh buffers, dc, dm, dh0, dc0
  plus(mul(2, add(mul(GH, add(d.P, d.I)), add(mul(d.P, d.H), mul(2, GH)))));  // grads, packing
  return n;
}

template <class T>
py::tuple forward_impl(Cell cell, py::handle x_, py::handle h0_, py::handle c0_, py::handle w_ih_,
                       py::handle w_hh_, py::handle b_ih_, py::handle b_hh_, py::handle w_hr_,
                       py::handle lengths_, bool reverse, bool training) {
  const index_t G = fastrnn::gate_count(cell);
  const bool lstm = cell == Cell::lstm, gru = cell == Cell::gru;
  // Phase 1: dtypes and shapes, nothing copied.
  py::array xv = checked_view<T>(x_, "x", {-1, -1, -1}, "(T, B, I)");
  const index_t T_ = xv.shape(0), B = xv.shape(1), I = xv.shape(2);
  py::array w_ihv = checked_view<T>(w_ih_, "w_ih", {-1, I}, "(G*H, I=" + std::to_string(I) + ")");
  require(w_ihv.shape(0) > 0 && w_ihv.shape(0) % G == 0,
          "w_ih must have shape (G*H, I) with G=" + std::to_string(G) + " and H >= 1, got " +
              shape_of(w_ihv));
  const index_t H = w_ihv.shape(0) / G, GH = G * H;
  const bool has_w_hr = !w_hr_.is_none();
  require(!has_w_hr || lstm, "w_hr (projection) is only for cell 'lstm'");
  py::array w_hrv;
  index_t P = H;
  if (has_w_hr) {
    w_hrv = checked_view<T>(w_hr_, "w_hr", {-1, H}, "(P, H=" + std::to_string(H) + ")");
    P = w_hrv.shape(0);
    require(P > 0, "w_hr must have shape (P, H) with P >= 1");
  }
  const std::string sGH = std::to_string(GH), sB = std::to_string(B), sP = std::to_string(P),
                    sH = std::to_string(H);
  py::array w_hhv = checked_view<T>(w_hh_, "w_hh", {GH, P}, "(G*H=" + sGH + ", P=" + sP + ")");
  const bool has_b_ih = !b_ih_.is_none(), has_b_hh = !b_hh_.is_none();
  py::array b_ihv, b_hhv, c0v;
  if (has_b_ih) b_ihv = checked_view<T>(b_ih_, "b_ih", {GH}, "(G*H=" + sGH + ",)");
  if (has_b_hh) b_hhv = checked_view<T>(b_hh_, "b_hh", {GH}, "(G*H=" + sGH + ",)");
  py::array h0v = checked_view<T>(h0_, "h0", {B, P}, "(B=" + sB + ", P=" + sP + ")");
  if (lstm) c0v = checked_view<T>(c0_, "c0", {B, H}, "(B=" + sB + ", H=" + sH + ")");
  else require(c0_.is_none(), "c0 is only for cell 'lstm'");
  const bool has_lengths = !lengths_.is_none();
  py::array lengthsv;
  if (has_lengths) {
    lengthsv = as_array(lengths_, "lengths");
    const char kind = lengthsv.dtype().kind();
    if (kind != 'i' && kind != 'u')
      throw py::type_error("lengths must be an integer array, got dtype " +
                           std::string(py::str(lengthsv.dtype())));
    require(lengthsv.ndim() == 1 && lengthsv.shape(0) == B,
            "lengths must have shape (B=" + sB + ",), got " + shape_of(lengthsv));
  }
  const fastrnn::Dims dims{T_, B, I, H, P};
  check_memory(forward_elements(dims, G, lstm, has_w_hr, gru, has_lengths, training), sizeof(T),
               "forward");

  // Phase 2: contiguous copies (only where needed), then the values of lengths.
  Array<T> x = contiguous<T>(xv), w_ih = contiguous<T>(w_ihv), w_hh = contiguous<T>(w_hhv);
  Array<T> h0 = contiguous<T>(h0v), w_hr, b_ih, b_hh, c0;
  if (has_w_hr) w_hr = contiguous<T>(w_hrv);
  if (has_b_ih) b_ih = contiguous<T>(b_ihv);
  if (has_b_hh) b_hh = contiguous<T>(b_hhv);
  if (lstm) c0 = contiguous<T>(c0v);
  Array<index_t> lengths;
  if (has_lengths) {
    // Unsigned values past 2**63 wrap to negative here and fail the range check below.
    lengths = contiguous<index_t>(lengthsv);
    for (index_t b = 0; b < B; ++b)
      require(lengths.data()[b] >= 0 && lengths.data()[b] <= T_,
              "lengths must lie in [0, T=" + std::to_string(T_) + "]");
  }

  Array<T> y({T_, B, P}), h_n({B, P});
  Array<T> c_n = lstm ? Array<T>({B, H}) : Array<T>();
  std::unique_ptr<CacheData<T>> cache;
  if (training) {
    cache.reset(new CacheData<T>{cell, dims, reverse, x, w_ih, w_hh, w_hr, lengths, has_b_ih,
                                 has_b_hh, has_w_hr, has_lengths, {}});
  }
  // No sequences: nothing to compute (and no T-step loop over an empty batch, however large T).
  if (B > 0) {
    const fastrnn::Weights<T> w{w_ih.data(), w_hh.data(), data_or_null(b_ih, has_b_ih),
                                data_or_null(b_hh, has_b_hh), data_or_null(w_hr, has_w_hr)};
    const fastrnn::ForwardArgs<T> args{x.data(), h0.data(), data_or_null(c0, lstm),
                                       data_or_null(lengths, has_lengths), y.mutable_data(),
                                       h_n.mutable_data(), lstm ? c_n.mutable_data() : nullptr,
                                       cache ? &cache->saved : nullptr};
    py::gil_scoped_release nogil;
    fastrnn::forward<T>(cell, dims, reverse, w, args);
  }
  py::object cache_obj = py::none();
  if (training) {
    auto nc = std::make_unique<NativeCache>();
    if constexpr (std::is_same_v<T, float>) nc->f32 = std::move(cache);
    else nc->f64 = std::move(cache);
    cache_obj = py::cast(std::move(nc));
  }
  return py::make_tuple(y, h_n, lstm ? py::object(c_n) : py::none(), cache_obj);
}

py::tuple forward(const std::string& cell_name, py::handle x, py::handle h0, py::handle c0,
                  py::handle w_ih, py::handle w_hh, py::handle b_ih, py::handle b_hh, py::handle w_hr,
                  py::handle lengths, bool reverse, bool training) {
  const Cell cell = parse_cell(cell_name);
  const py::array arr = as_array(x, "x");
  const py::dtype dt = arr.dtype();
  // By kind and size, not identity: an equal dtype object need not be numpy's canonical one.
  if (dt.kind() == 'f' && dt.itemsize() == 4)
    return forward_impl<float>(cell, arr, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse,
                               training);
  if (dt.kind() == 'f' && dt.itemsize() == 8)
    return forward_impl<double>(cell, arr, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse,
                                training);
  throw py::type_error("x must have dtype float32 or float64, got " + std::string(py::str(dt)));
}

template <class T>
py::tuple backward_impl(const CacheData<T>& c, py::handle dy_, py::handle dh_n_, py::handle dc_n_) {
  const fastrnn::Dims& d = c.d;
  const bool lstm = c.cell == Cell::lstm, gru = c.cell == Cell::gru;
  const index_t G = fastrnn::gate_count(c.cell), GH = G * d.H;
  const std::string sT = std::to_string(d.T), sB = std::to_string(d.B), sP = std::to_string(d.P),
                    sH = std::to_string(d.H);
  py::array dyv = checked_view<T>(dy_, "dy", {d.T, d.B, d.P},
                                  "(T=" + sT + ", B=" + sB + ", P=" + sP + ")");
  py::array dh_nv = checked_view<T>(dh_n_, "dh_n", {d.B, d.P}, "(B=" + sB + ", P=" + sP + ")");
  py::array dc_nv;
  if (lstm) dc_nv = checked_view<T>(dc_n_, "dc_n", {d.B, d.H}, "(B=" + sB + ", H=" + sH + ")");
  else require(dc_n_.is_none(), "dc_n is only for cell 'lstm'");
  check_memory(backward_elements(d, G, c.has_w_hr, gru), sizeof(T), "backward");
  Array<T> dy = contiguous<T>(dyv), dh_n = contiguous<T>(dh_nv), dc_n;
  if (lstm) dc_n = contiguous<T>(dc_nv);

  Array<T> dx({d.T, d.B, d.I}), dh0({d.B, d.P}), dw_ih({GH, d.I}), dw_hh({GH, d.P});
  Array<T> dc0 = lstm ? Array<T>({d.B, d.H}) : Array<T>();
  Array<T> db_ih = c.has_b_ih ? Array<T>({GH}) : Array<T>();
  Array<T> db_hh = c.has_b_hh ? Array<T>({GH}) : Array<T>();
  Array<T> dw_hr = c.has_w_hr ? Array<T>({d.P, d.H}) : Array<T>();
  // Per-step gradient norms; with no sequences a read-only zero-stride view (T may be huge).
  py::object dh_norms_obj;
  double* dh_norms = nullptr;
  if (d.B == 0) {
    dh_norms_obj = py::module_::import("numpy").attr("broadcast_to")(0.0, py::make_tuple(d.T));
  } else {
    Array<double> norms({d.T});
    dh_norms = norms.mutable_data();
    dh_norms_obj = norms;
  }
  if (d.B == 0) {
    // No sequences: every gradient is zero (dx, dh0, dc0 are empty).
    for (Array<T>* a : {&dw_ih, &dw_hh, &db_ih, &db_hh, &dw_hr})
      if (a->size()) std::fill(a->mutable_data(), a->mutable_data() + a->size(), T(0));
  } else {
    const fastrnn::Weights<T> w{c.w_ih.data(), c.w_hh.data(), nullptr, nullptr,
                                data_or_null(c.w_hr, c.has_w_hr)};
    const fastrnn::BackwardArgs<T> args{
        c.x.data(), data_or_null(c.lengths, c.has_lengths), &c.saved, dy.data(), dh_n.data(),
        data_or_null(dc_n, lstm), dx.mutable_data(), dh0.mutable_data(),
        lstm ? dc0.mutable_data() : nullptr, dw_ih.mutable_data(), dw_hh.mutable_data(),
        c.has_b_ih ? db_ih.mutable_data() : nullptr, c.has_b_hh ? db_hh.mutable_data() : nullptr,
        c.has_w_hr ? dw_hr.mutable_data() : nullptr, dh_norms};
    py::gil_scoped_release nogil;
    fastrnn::backward<T>(c.cell, d, c.reverse, w, args);
  }
  auto opt = [](bool present, const Array<T>& a) { return present ? py::object(a) : py::none(); };
  return py::make_tuple(dx, dh0, opt(lstm, dc0), dw_ih, dw_hh, opt(c.has_b_ih, db_ih),
                        opt(c.has_b_hh, db_hh), opt(c.has_w_hr, dw_hr), dh_norms_obj);
}

py::tuple backward(py::handle cache, py::handle dy, py::handle dh_n, py::handle dc_n) {
  if (cache.is_none())
    throw std::invalid_argument("cache is None: forward was run with training=False");
  if (!py::isinstance<NativeCache>(cache))
    throw py::type_error("cache must be the cache returned by fastrnn._native.forward");
  const NativeCache& nc = cache.cast<const NativeCache&>();
  if (nc.f32) return backward_impl<float>(*nc.f32, dy, dh_n, dc_n);
  if (nc.f64) return backward_impl<double>(*nc.f64, dy, dh_n, dc_n);
  throw std::invalid_argument("cache is empty");
}

// ---- Hopfield recall (fastrnn/hopfield.hpp). Integer arrays only; every value the kernel uses as an
// index or relies on (symmetry, zero diagonal, +1/-1 states, permutation orders) is checked here.

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
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || arr.shape(i) == shape[i];
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
  {
    py::gil_scoped_release nogil;
    wc = fastrnn::hopfield_check_weights(N, weights.data());
  }
  const std::string i = std::to_string(wc.row), j = std::to_string(wc.col);
  require(wc.status != fastrnn::HopfieldWeightsCheck::diagonal,
          "weights must have a zero diagonal, got a nonzero value at (" + i + ", " + i + ")");
  require(wc.status != fastrnn::HopfieldWeightsCheck::asymmetric,
          "weights must be symmetric, got weights[" + i + ", " + j + "] != weights[" + j + ", " + i +
              "]");
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
    std::copy(sin, sin + BN, states.mutable_data());
    const fastrnn::HopfieldArgs args{N, B, max_sweeps, sync, wc.max_abs, weights.data(),
                                     sync ? nullptr : order.data(), states.mutable_data(),
                                     converged.mutable_data(), iterations.mutable_data()};
    py::gil_scoped_release nogil;
    fastrnn::hopfield_recall(args);
  }
  return py::make_tuple(states, converged, iterations);
}

// ---- matmul: out = a @ b (or out += a @ b) on strided views, for fastrnn.Linear.

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
  py::gil_scoped_release nogil;
  fastrnn::matmul<T>(M, N, K, ap, a_rs, a_cs, bp, b_rs, b_cs, cp, N, accumulate);
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
          "out must have shape (" + std::to_string(a.shape(0)) + ", " +
              std::to_string(b.shape(1)) + "), got " + shape_of(out));
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

PYBIND11_MODULE(_native, m) {
  m.doc() = "fastrnn's C++ kernels: forward and BPTT for one recurrent layer in one direction, "
            "a strided matrix product (Linear), and Hopfield network recall.";

  py::class_<NativeCache>(m, "Cache", "What backward needs from one training-mode forward (opaque).");

  m.def("forward", &forward, py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("w_hr"),
        py::arg("lengths"), py::arg("reverse"), py::arg("training"),
        "forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse, training)\n"
        "-> (y, h_n, c_n, cache). Shapes as in fastrnn.functional.forward; h0 is required,\n"
        "c0 only for 'lstm', biases/w_hr/lengths may be None. cache is None unless training.");
  m.def("backward", &backward, py::arg("cache"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"),
        "backward(cache, dy, dh_n, dc_n) -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr,\n"
        "dh_norms); dh_norms (T,) float64: the norm of dLoss/dh_t at each time step.");
  m.def("hopfield_recall", &hopfield_recall, py::arg("weights"), py::arg("states"), py::arg("mode"),
        py::arg("max_sweeps"), py::arg("order"),
        "hopfield_recall(weights, states, mode, max_sweeps, order)\n"
        "-> (states, converged, iterations). weights (N, N) int32 symmetric with a zero diagonal;\n"
        "states (B, N) int8 of +1/-1 (not modified); mode 'async' (order (max_sweeps, N) int32, a\n"
        "permutation of 0..N-1 per sweep) or 'sync' (order None). Returns the recalled states\n"
        "(B, N) int8, converged (B,) bool and iterations (B,) int64 (sweeps run, the final\n"
        "unchanged one included). A unit whose field is 0 keeps its state.");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("accumulate"),
        "matmul(a, b, out, accumulate): out = a @ b, or out += a @ b when accumulate. a (M, K) and\n"
        "b (K, N) may be any strided views (transposes need no copy); out (M, N) C-contiguous,\n"
        "writeable and not overlapping them; all float32 or all float64. Runs on the thread team.");
  m.def(
      "set_num_threads",
      [](int n) {
        require(n >= 1 && n <= kMaxThreads,
                "n must be in [1, " + std::to_string(kMaxThreads) + "], got " + std::to_string(n));
        fastrnn::ThreadTeam::global().set_size(n);
      },
      py::arg("n"), "Sets how many threads the kernels use (the caller included).");
  m.def("get_num_threads", [] { return fastrnn::ThreadTeam::global().size(); });
  m.def(
      "set_thread_cap",
      [](int n) {
        require(n >= 0 && n <= kMaxThreads,
                "n must be in [0, " + std::to_string(kMaxThreads) + "], got " + std::to_string(n));
        fastrnn::ThreadTeam::set_thread_cap(n);
      },
      py::arg("n"),
      "Caps the threads kernels called from this OS thread use (0: no cap), so that calls from\n"
      "two Python threads can run side by side, e.g. the two directions of a bidirectional layer.");
  m.def("get_thread_cap", [] { return fastrnn::ThreadTeam::thread_cap(); });
  m.def(
      "set_parallel_grain",
      [](double scale) {
        require(scale >= 0, "scale must be >= 0");
        fastrnn::ThreadTeam::global().set_grain(scale);
      },
      py::arg("scale"),
      "Scales how much work each extra thread needs before the kernels split a product or a time\n"
      "loop (1: the measured default; 0: split whatever can be split, e.g. to test the threads).");
  m.def(
      "compiled_paths",
      [] {
        std::vector<std::string> out;
        for (const char* const* p = fastrnn::compiled_paths(); *p; ++p) out.emplace_back(*p);
        return out;
      },
      "The instruction-set paths compiled into this build, best first.");
  m.def("active_path", [] { return std::string(fastrnn::active_path()); },
        "The instruction-set path the kernels run on this CPU.");
  m.def(
      "set_cpu_path",
      [](const std::string& name) {
        require(fastrnn::set_path(name.c_str()),
                "cpu path '" + name + "' is not compiled in or not supported by this CPU");
      },
      py::arg("name"), "Forces one instruction-set path ('avx2' or 'portable'), e.g. to test it.");
}
