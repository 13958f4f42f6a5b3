// The extension module fastrnn._native: one register_* per domain, each in its own file. This
// folder is the only place that includes pybind11; the kernels in csrc/fastrnn know nothing of
// Python.

#include "python/args.hpp"

PYBIND11_MODULE(_native, m) {
  m.doc() =
      "fastrnn's C++ kernels: forward and BPTT for one recurrent layer in one direction, "
      "a strided matrix product (Linear), and Hopfield network recall.";
  fastrnn::bind::register_rnn(m);
  fastrnn::bind::register_matmul(m);
  fastrnn::bind::register_hopfield(m);
  fastrnn::bind::register_runtime(m);
  fastrnn::bind::register_peak(m);
}
