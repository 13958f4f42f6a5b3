// The recurrent layer's bindings: forward and backward of one layer in one direction
// (fastrnn/recurrence.hpp), and the opaque cache a training forward hands to backward. The checks
// repeat the Python layer's, so the C++ stays safe when fastrnn._native is called directly.

#include <algorithm>
#include <memory>
#include <string>
#include <type_traits>

#include "fastrnn/recurrence.hpp"
#include "python/args.hpp"

namespace fastrnn {
namespace bind {
namespace {

Cell parse_cell(const std::string& name) {
  if (name == "rnn_tanh") return Cell::rnn_tanh;
  if (name == "rnn_relu") return Cell::rnn_relu;
  if (name == "lstm") return Cell::lstm;
  if (name == "gru") return Cell::gru;
  throw std::invalid_argument("cell must be one of 'rnn_tanh', 'rnn_relu', 'lstm', 'gru', got '" +
                              name + "'");
}

// Everything backward needs: the forward's arguments (kept alive here) and its saved buffers.
template <class T>
struct CacheData {
  Cell cell;
  fastrnn::Dims d;
  bool reverse;
  Array<T> x, w_ih, w_hh, w_hr, b_ih, b_hh, w_ph;
  Array<index_t> lengths;
  bool has_b_ih, has_b_hh, has_w_hr, has_lengths, has_w_ph, reset_after;
  fastrnn::Saved<T> saved;
};

// The opaque cache object handed to Python: one of the two is set.
struct NativeCache {
  std::unique_ptr<CacheData<float>> f32;
  std::unique_ptr<CacheData<double>> f64;
};

// Elements forward allocates (outputs, what training saves, its own workspace), overflow-checked.
// With checkpoints every k steps the per-row buffers hold one segment's rows (k*B) instead of T*B,
// and the cache one state per segment.
index_t forward_elements(const fastrnn::Dims& d, index_t G, bool lstm, bool proj, bool gru,
                         bool lengths, bool training, index_t every) {
  const index_t TB = mul(d.T, d.B), GH = mul(G, d.H);
  const index_t rows = every > 0 ? mul(std::min(every, d.T), d.B) : TB;
  index_t n = 0;
  auto plus = [&](index_t v) { n = add(n, v); };
  plus(mul(TB, d.P));                                // y
  plus(mul(rows, GH));                               // input projection for all steps
  plus(mul(d.B, add(mul(3, d.P), mul(2, GH))));      // state buffers, recurrent product
  plus(mul(5, mul(d.B, d.H)));                       // c, c_n, per-step temporaries (GRU: r * h)
  plus(add(mul(GH, add(d.P, d.I)), mul(d.P, d.H)));  // packed weights
  if (lengths) plus(mul(rows, d.I));  // the rows of x of the steps taken (no padding)
  if (training && every > 0) {
    plus(mul(add(d.T / every, 1), mul(d.B, add(d.P, d.H))));  // the segments' initial states
  } else if (training) {
    plus(mul(TB, d.P));                    // h_prev
    plus(mul(TB, GH));                     // gates
    if (lstm) plus(mul(2, mul(TB, d.H)));  // c_prev, c_new
    if (proj || gru) plus(mul(TB, d.H));   // m / gh_n
  }
  return n;
}

// Elements backward allocates (gradients and its workspace; the cache already exists).
index_t backward_elements(const fastrnn::Dims& d, index_t G, bool proj, bool gru, index_t every,
                          bool need_dx) {
  const index_t TB = mul(d.T, d.B), GH = mul(G, d.H);
  const index_t rows = every > 0 ? mul(std::min(every, d.T), d.B) : TB;
  index_t n = 0;
  auto plus = [&](index_t v) { n = add(n, v); };
  if (need_dx) plus(mul(TB, d.I));           // dx
  plus(mul(gru ? 2 : 1, mul(rows, GH)));     // gate gradients
  plus(mul(proj ? d.T : 1, mul(d.B, d.P)));  // dh_total
  // A segment's recomputed forward: its saved rows, input projection and x/dx rows.
  if (every > 0) plus(mul(rows, add(mul(3, GH), add(mul(2, d.P), add(mul(4, d.H), mul(2, d.I))))));
  plus(mul(d.B, add(mul(3, d.P), mul(2, d.H))));  // dh buffers, dc, dm, dh0, dc0
  plus(mul(2, add(mul(GH, add(d.P, d.I)), add(mul(d.P, d.H), mul(2, GH)))));  // grads, packing
  return n;
}

template <class T>
py::tuple forward_impl(Cell cell, py::handle x_, py::handle h0_, py::handle c0_, py::handle w_ih_,
                       py::handle w_hh_, py::handle b_ih_, py::handle b_hh_, py::handle w_hr_,
                       py::handle lengths_, bool reverse, bool training, py::handle w_ph_,
                       bool reset_after, index_t every) {
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
  const bool has_w_ph = !w_ph_.is_none();
  require(!has_w_ph || lstm, "w_ph (peepholes) is only for cell 'lstm'");
  require(reset_after || gru, "reset_after=False (the original GRU) is only for cell 'gru'");
  py::array w_phv;
  if (has_w_ph)
    w_phv = checked_view<T>(w_ph_, "w_ph", {3 * H}, "(3*H=" + std::to_string(3 * H) + ",)");
  py::array w_hhv = checked_view<T>(w_hh_, "w_hh", {GH, P}, "(G*H=" + sGH + ", P=" + sP + ")");
  const bool has_b_ih = !b_ih_.is_none(), has_b_hh = !b_hh_.is_none();
  py::array b_ihv, b_hhv, c0v;
  if (has_b_ih) b_ihv = checked_view<T>(b_ih_, "b_ih", {GH}, "(G*H=" + sGH + ",)");
  if (has_b_hh) b_hhv = checked_view<T>(b_hh_, "b_hh", {GH}, "(G*H=" + sGH + ",)");
  py::array h0v = checked_view<T>(h0_, "h0", {B, P}, "(B=" + sB + ", P=" + sP + ")");
  if (lstm)
    c0v = checked_view<T>(c0_, "c0", {B, H}, "(B=" + sB + ", H=" + sH + ")");
  else
    require(c0_.is_none(), "c0 is only for cell 'lstm'");
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
  require(every >= 0,
          "checkpoint_every must be >= 0 (0: keep every step), got " + std::to_string(every));
  require(every == 0 || (!has_w_ph && reset_after),
          "checkpoint_every is not supported with peepholes (w_ph) or reset_after=False");
  every = training ? std::min(every, std::max<index_t>(T_, 1)) : 0;  // k >= T: one segment
  const fastrnn::Dims dims{T_, B, I, H, P};
  check_memory(forward_elements(dims, G, lstm, has_w_hr, gru, has_lengths, training, every),
               sizeof(T), "forward");

  // Phase 2: contiguous copies (only where needed), then the values of lengths.
  Array<T> x = contiguous<T>(xv), w_ih = contiguous<T>(w_ihv), w_hh = contiguous<T>(w_hhv);
  Array<T> h0 = contiguous<T>(h0v), w_hr, w_ph, b_ih, b_hh, c0;
  if (has_w_hr) w_hr = contiguous<T>(w_hrv);
  if (has_w_ph) w_ph = contiguous<T>(w_phv);
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
    cache.reset(new CacheData<T>{cell,
                                 dims,
                                 reverse,
                                 x,
                                 w_ih,
                                 w_hh,
                                 w_hr,
                                 b_ih,
                                 b_hh,
                                 w_ph,
                                 lengths,
                                 has_b_ih,
                                 has_b_hh,
                                 has_w_hr,
                                 has_lengths,
                                 has_w_ph,
                                 reset_after,
                                 {}});
    cache->saved.every = every;
  }
  // No sequences: nothing to compute (and no T-step loop over an empty batch, however large T).
  if (B > 0) {
    const fastrnn::Weights<T> w{w_ih.data(),
                                w_hh.data(),
                                data_or_null(b_ih, has_b_ih),
                                data_or_null(b_hh, has_b_hh),
                                data_or_null(w_hr, has_w_hr),
                                data_or_null(w_ph, has_w_ph),
                                reset_after};
    const fastrnn::ForwardArgs<T> args{x.data(),
                                       h0.data(),
                                       data_or_null(c0, lstm),
                                       data_or_null(lengths, has_lengths),
                                       y.mutable_data(),
                                       h_n.mutable_data(),
                                       lstm ? c_n.mutable_data() : nullptr,
                                       cache ? &cache->saved : nullptr};
    const double work = double(T_) * double(B) * double(GH) * double(P + I);
    run_kernel(work, [&] { fastrnn::forward<T>(cell, dims, reverse, w, args); });
  }
  py::object cache_obj = py::none();
  if (training) {
    auto nc = std::make_unique<NativeCache>();
    if constexpr (std::is_same_v<T, float>)
      nc->f32 = std::move(cache);
    else
      nc->f64 = std::move(cache);
    cache_obj = py::cast(std::move(nc));
  }
  return py::make_tuple(y, h_n, lstm ? py::object(c_n) : py::none(), cache_obj);
}

py::tuple forward(const std::string& cell_name, py::handle x, py::handle h0, py::handle c0,
                  py::handle w_ih, py::handle w_hh, py::handle b_ih, py::handle b_hh,
                  py::handle w_hr, py::handle lengths, bool reverse, bool training, py::handle w_ph,
                  bool reset_after, index_t checkpoint_every) {
  const Cell cell = parse_cell(cell_name);
  const py::array arr = as_array(x, "x");
  const py::dtype dt = arr.dtype();
  // By kind and size, not identity: an equal dtype object need not be numpy's canonical one.
  if (dt.kind() == 'f' && dt.itemsize() == 4)
    return forward_impl<float>(cell, arr, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse,
                               training, w_ph, reset_after, checkpoint_every);
  if (dt.kind() == 'f' && dt.itemsize() == 8)
    return forward_impl<double>(cell, arr, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse,
                                training, w_ph, reset_after, checkpoint_every);
  throw py::type_error("x must have dtype float32 or float64, got " + std::string(py::str(dt)));
}

template <class T>
py::tuple backward_impl(const CacheData<T>& c, py::handle dy_, py::handle dh_n_, py::handle dc_n_,
                        bool need_dx) {
  const fastrnn::Dims& d = c.d;
  const bool lstm = c.cell == Cell::lstm, gru = c.cell == Cell::gru;
  const index_t G = fastrnn::gate_count(c.cell), GH = G * d.H;
  const std::string sT = std::to_string(d.T), sB = std::to_string(d.B), sP = std::to_string(d.P),
                    sH = std::to_string(d.H);
  py::array dyv =
      checked_view<T>(dy_, "dy", {d.T, d.B, d.P}, "(T=" + sT + ", B=" + sB + ", P=" + sP + ")");
  py::array dh_nv = checked_view<T>(dh_n_, "dh_n", {d.B, d.P}, "(B=" + sB + ", P=" + sP + ")");
  py::array dc_nv;
  if (lstm)
    dc_nv = checked_view<T>(dc_n_, "dc_n", {d.B, d.H}, "(B=" + sB + ", H=" + sH + ")");
  else
    require(dc_n_.is_none(), "dc_n is only for cell 'lstm'");
  check_memory(backward_elements(d, G, c.has_w_hr, gru, c.saved.every, need_dx), sizeof(T),
               "backward");
  Array<T> dy = contiguous<T>(dyv), dh_n = contiguous<T>(dh_nv), dc_n;
  if (lstm) dc_n = contiguous<T>(dc_nv);

  Array<T> dx = need_dx ? Array<T>({d.T, d.B, d.I}) : Array<T>();
  Array<T> dh0({d.B, d.P}), dw_ih({GH, d.I}), dw_hh({GH, d.P});
  Array<T> dc0 = lstm ? Array<T>({d.B, d.H}) : Array<T>();
  Array<T> db_ih = c.has_b_ih ? Array<T>({GH}) : Array<T>();
  Array<T> db_hh = c.has_b_hh ? Array<T>({GH}) : Array<T>();
  Array<T> dw_hr = c.has_w_hr ? Array<T>({d.P, d.H}) : Array<T>();
  Array<T> dw_ph = c.has_w_ph ? Array<T>({3 * d.H}) : Array<T>();
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
    for (Array<T>* a : {&dw_ih, &dw_hh, &db_ih, &db_hh, &dw_hr, &dw_ph})
      if (a->size()) std::fill(a->mutable_data(), a->mutable_data() + a->size(), T(0));
  } else {
    const fastrnn::Weights<T> w{c.w_ih.data(),
                                c.w_hh.data(),
                                data_or_null(c.b_ih, c.has_b_ih),
                                data_or_null(c.b_hh, c.has_b_hh),
                                data_or_null(c.w_hr, c.has_w_hr),
                                data_or_null(c.w_ph, c.has_w_ph),
                                c.reset_after};
    const fastrnn::BackwardArgs<T> args{c.x.data(),
                                        data_or_null(c.lengths, c.has_lengths),
                                        &c.saved,
                                        dy.data(),
                                        dh_n.data(),
                                        data_or_null(dc_n, lstm),
                                        need_dx ? dx.mutable_data() : nullptr,
                                        dh0.mutable_data(),
                                        lstm ? dc0.mutable_data() : nullptr,
                                        dw_ih.mutable_data(),
                                        dw_hh.mutable_data(),
                                        c.has_b_ih ? db_ih.mutable_data() : nullptr,
                                        c.has_b_hh ? db_hh.mutable_data() : nullptr,
                                        c.has_w_hr ? dw_hr.mutable_data() : nullptr,
                                        dh_norms,
                                        c.has_w_ph ? dw_ph.mutable_data() : nullptr};
    const double work = double(d.T) * double(d.B) * double(GH) * double(2 * d.P + d.I);
    run_kernel(work, [&] { fastrnn::backward<T>(c.cell, d, c.reverse, w, args); });
  }
  auto opt = [](bool present, const Array<T>& a) { return present ? py::object(a) : py::none(); };
  return py::make_tuple(opt(need_dx, dx), dh0, opt(lstm, dc0), dw_ih, dw_hh, opt(c.has_b_ih, db_ih),
                        opt(c.has_b_hh, db_hh), opt(c.has_w_hr, dw_hr), opt(c.has_w_ph, dw_ph),
                        dh_norms_obj);
}

py::tuple backward(py::handle cache, py::handle dy, py::handle dh_n, py::handle dc_n,
                   bool need_dx) {
  if (cache.is_none())
    throw std::invalid_argument("cache is None: forward was run with training=False");
  if (!py::isinstance<NativeCache>(cache))
    throw py::type_error("cache must be the cache returned by fastrnn._native.forward");
  const NativeCache& nc = cache.cast<const NativeCache&>();
  if (nc.f32) return backward_impl<float>(*nc.f32, dy, dh_n, dc_n, need_dx);
  if (nc.f64) return backward_impl<double>(*nc.f64, dy, dh_n, dc_n, need_dx);
  throw std::invalid_argument("cache is empty");
}

}  // namespace

void register_rnn(py::module_& m) {
  py::class_<NativeCache>(m, "Cache",
                          "What backward needs from one training-mode forward (opaque).");

  m.def("forward", &forward, py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("w_hr"),
        py::arg("lengths"), py::arg("reverse"), py::arg("training"), py::arg("w_ph") = py::none(),
        py::arg("reset_after") = true, py::arg("checkpoint_every") = 0,
        "forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse, training,\n"
        "w_ph=None, reset_after=True, checkpoint_every=0) -> (y, h_n, c_n, cache). Shapes as in\n"
        "fastrnn.functional.forward; h0 is required, c0 only for 'lstm', biases/w_hr/w_ph/lengths\n"
        "may be None. cache is None unless training. checkpoint_every k > 0: keep the state every\n"
        "k steps, recompute in backward (same gradients).");
  m.def(
      "backward", &backward, py::arg("cache"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"),
      py::arg("need_dx") = true,
      "backward(cache, dy, dh_n, dc_n, need_dx=True) -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, "
      "db_hh,\n"
      "dw_hr, dw_ph, dh_norms); dh_norms (T,) float64: the norm of dLoss/dh_t at each time step;\n"
      "dx is None (its product skipped) unless need_dx.");
}

}  // namespace bind
}  // namespace fastrnn
