"""ONNX Runtime as a peer: one ONNX RNN/LSTM/GRU node holding a problem's weights, run forward.

ONNX Runtime is an inference engine, so it has a forward (inference) entry only. The model is the
one ``python -m fastrnn bench`` times (fastrnn._bench.onnx_model: fastrnn.convert.to_onnx's
weights as initializers, which ORT may prepack). onnx and onnxruntime are optional: imported
inside the functions that need them.
"""

from fastrnn._bench import ort_forward


def ort_available():
    """Whether onnx (to build the model) and onnxruntime (to run it) can both be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def ort_version():
    if not ort_available():
        return None
    import onnxruntime

    return onnxruntime.__version__


def ort_runner(problem, threads):
    """A no-argument function running the ORT session once on ``problem`` with ``threads``
    intra-op threads: returns y, h_n, c_n (None unless lstm) as NumPy arrays."""
    p = problem
    weights = {k: p[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
    run = ort_forward(p["cell"], weights, p["x"], p["h0"], p["c0"], threads)

    def outputs():
        y, h_n, c_n = run()
        return {"y": y, "h_n": h_n, "c_n": c_n}

    return outputs
