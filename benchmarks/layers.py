"""Layers: a 2-layer bidirectional LSTM / GRU with variable lengths, native vs numpy vs torch
(through pack_padded_sequence), and the native layer on the same padded batch without lengths."""

import numpy as np

from .harness import (
    _OUTPUTS,
    ALL_SHAPES,
    CELLS,
    GATES,
    MODES,
    AgreementError,
    _check_args,
    _clear_torch_grads,
    _compare,
    _dtype,
    _names,
    _numpy_of,
    _shape,
    _torch_array,
    configure_threads,
    native_available,
    summarize,
    time_function,
    tolerances,
    torch_available,
)

LAYER_CELLS = ("lstm", "gru")
LAYER_SHAPE = "medium"
LAYER_NUM_LAYERS = 2
LAYER_BIDIRECTIONAL = True
# native / numpy: fastrnn's layers with lengths; torch: pack_padded_sequence(enforce_sorted=False)
# -> module -> pad_packed_sequence; native_padded: the native layer on the same padded batch
# without lengths (what "lengths cost no more than padding" is measured against).
LAYER_IMPLEMENTATIONS = ("native", "numpy", "torch", "native_padded")
LENGTHS_TARGET = 1.2  # native with lengths / native padded <= 1.2x


def make_lengths(T, B, rng):
    """B sequence lengths drawn from ``rng`` in [ceil(T/2), T], at least one equal to T, and not
    sorted in decreasing order (so torch needs enforce_sorted=False) whenever they are not all
    equal."""
    lengths = rng.integers((T + 1) // 2, T + 1, size=B)
    lengths[rng.integers(B)] = T
    if B > 1 and np.all(np.diff(lengths) <= 0) and lengths[0] != lengths[-1]:
        lengths = lengths[::-1].copy()
    return lengths.astype(np.int64)


def layer_lengths(shape, seed=0):
    """The lengths make_layer_problem(cell, shape, seed=seed) uses (the same for every cell)."""
    s = _shape(shape)
    return make_lengths(s.T, s.B, np.random.default_rng(seed))


def _layer_class(cell):
    from fastrnn import layers

    if cell in ("rnn_tanh", "rnn_relu"):
        return layers.RNN, {"nonlinearity": cell[len("rnn_") :]}
    if cell == "lstm":
        return layers.LSTM, {}
    if cell == "gru":
        return layers.GRU, {}
    raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")


def make_layer_problem(
    cell,
    shape=LAYER_SHAPE,
    dtype="float32",
    seed=0,
    num_layers=LAYER_NUM_LAYERS,
    bidirectional=LAYER_BIDIRECTIONAL,
):
    """The arrays of one layer benchmark problem as a dict.

    Keys: cell, shape, shape_name, dtype, num_layers, bidirectional, x (T, B, I), lengths (B,),
    h0 (L*D, B, H), c0 (lstm, else None), state_dict (PyTorch names -> arrays, drawn as PyTorch
    initialises them, from ``seed``), dy (T, B, D*H), dh_n (L*D, B, H), dc_n (lstm, else None).
    """
    if cell not in GATES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    shape_name = shape if isinstance(shape, str) else None
    s = _shape(shape)
    dt = _dtype(dtype)
    D = 2 if bidirectional else 1
    LD = num_layers * D
    rng = np.random.default_rng(seed)

    def normal(*dims, scale=1.0):
        return (scale * rng.standard_normal(dims)).astype(dt)

    cls, kwargs = _layer_class(cell)
    weights = cls(
        s.I,
        s.H,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dtype=dt.name,
        backend="numpy",
        seed=seed,
        **kwargs,
    ).state_dict()
    lstm = cell == "lstm"
    return {
        "cell": cell,
        "shape": s,
        "shape_name": shape_name or str(s),
        "dtype": dt,
        "num_layers": num_layers,
        "bidirectional": bidirectional,
        "lengths": make_lengths(s.T, s.B, rng),  # the first draw: layer_lengths() repeats it
        "x": normal(s.T, s.B, s.I),
        "h0": normal(LD, s.B, s.H, scale=0.5),
        "c0": normal(LD, s.B, s.H, scale=0.5) if lstm else None,
        "state_dict": weights,
        "dy": normal(s.T, s.B, D * s.H),
        "dh_n": normal(LD, s.B, s.H),
        "dc_n": normal(LD, s.B, s.H) if lstm else None,
    }


def fastrnn_layer(problem, backend, state_dict=None):
    """The fastrnn layer of ``problem`` on ``backend``, its weights loaded with load_state_dict
    from ``state_dict`` (e.g. a torch module's, tensors and all) or else the problem's."""
    p, s = problem, problem["shape"]
    cls, kwargs = _layer_class(p["cell"])
    m = cls(
        s.I,
        s.H,
        num_layers=p["num_layers"],
        bidirectional=p["bidirectional"],
        dtype=p["dtype"].name,
        backend=backend,
        seed=0,
        **kwargs,
    )
    m.load_state_dict(p["state_dict"] if state_dict is None else state_dict)
    return m


def torch_layer_module(problem):
    """The torch.nn.RNN/LSTM/GRU of ``problem`` holding its weights (through load_state_dict)."""
    import torch

    p, s = problem, problem["shape"]
    kw = {"num_layers": p["num_layers"], "bidirectional": p["bidirectional"]}
    cell = p["cell"]
    if cell in ("rnn_tanh", "rnn_relu"):
        module = torch.nn.RNN(s.I, s.H, nonlinearity=cell[len("rnn_") :], **kw)
    elif cell == "lstm":
        module = torch.nn.LSTM(s.I, s.H, **kw)
    else:
        module = torch.nn.GRU(s.I, s.H, **kw)
    module = module.to(dtype=getattr(torch, p["dtype"].name))
    module.load_state_dict({k: _torch_array(torch, v) for k, v in p["state_dict"].items()})
    return module


def _check_layer_args(impl, mode):
    if impl not in LAYER_IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {LAYER_IMPLEMENTATIONS}, got {impl!r}")
    _check_args("native" if impl == "native_padded" else impl, mode)


def _fastrnn_layer_runner(problem, mode, backend, with_lengths, state_dict=None):
    p = problem
    lstm = p["cell"] == "lstm"
    m = fastrnn_layer(p, backend, state_dict)
    lengths = p["lengths"] if with_lengths else None
    x = p["x"]
    hx = (p["h0"], p["c0"]) if lstm else p["h0"]
    dh_n = (p["dh_n"], p["dc_n"]) if lstm else p["dh_n"]

    def outputs(y, hn):
        h_n, c_n = hn if lstm else (hn, None)
        return {"y": y, "h_n": h_n, "c_n": c_n}

    if mode == "forward":
        m.eval()

        def run():
            return outputs(*m(x, hx, lengths=lengths))

        return run

    m.train()

    def run():
        m.zero_grad()
        out = outputs(*m(x, hx, lengths=lengths))
        dx, dhx = m.backward(p["dy"], dh_n)
        dh0, dc0 = dhx if lstm else (dhx, None)
        out.update(dx=dx, dh0=dh0, dc0=dc0, grads=m.grads)
        return out

    return run


def _torch_layer_runner(problem, mode, module=None):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    p = problem
    T = p["shape"].T
    lstm = p["cell"] == "lstm"
    module = torch_layer_module(p) if module is None else module
    grad = mode == "forward+backward"
    x = _torch_array(torch, p["x"]).requires_grad_(grad)
    lengths = torch.from_numpy(np.array(p["lengths"], dtype=np.int64))
    h0 = _torch_array(torch, p["h0"]).requires_grad_(grad)
    c0 = _torch_array(torch, p["c0"]).requires_grad_(grad) if lstm else None
    hx = (h0, c0) if lstm else h0
    dy = _torch_array(torch, p["dy"])
    dh_n = _torch_array(torch, p["dh_n"])
    dc_n = _torch_array(torch, p["dc_n"]) if lstm else None

    def forward():
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, hn = module(packed, hx)
        y, _ = pad_packed_sequence(out, total_length=T)
        h_n, c_n = hn if lstm else (hn, None)
        return y, h_n, c_n

    if not grad:

        def run():
            with torch.no_grad():
                y, h_n, c_n = forward()
            return {"y": _numpy_of(y), "h_n": _numpy_of(h_n), "c_n": _numpy_of(c_n)}

        return run

    leaves = [x, h0] + ([c0] if lstm else [])

    def run():
        _clear_torch_grads(module, leaves)
        y, h_n, c_n = forward()
        loss = (y * dy).sum() + (h_n * dh_n).sum()
        if lstm:
            loss = loss + (c_n * dc_n).sum()
        loss.backward()
        return {
            "y": _numpy_of(y),
            "h_n": _numpy_of(h_n),
            "c_n": _numpy_of(c_n),
            "dx": _numpy_of(x.grad),
            "dh0": _numpy_of(h0.grad),
            "dc0": _numpy_of(c0.grad) if lstm else None,
            "grads": {name: _numpy_of(w.grad) for name, w in module.named_parameters()},
        }

    return run


def make_layer_runner(impl, problem, mode, state_dict=None, module=None):
    """A no-argument function running ``impl`` (one of LAYER_IMPLEMENTATIONS) once on a layer
    problem in ``mode``; it returns a dict: y, h_n, c_n and, for forward+backward, dx, dh0, dc0 and
    grads ({state_dict name: gradient}). ``state_dict``: the weights for the fastrnn layers (e.g.
    a torch module's state_dict()); ``module``: the torch module to run (torch_layer_module)."""
    _check_layer_args(impl, mode)
    if impl == "torch":
        return _torch_layer_runner(problem, mode, module)
    if impl == "native_padded":
        return _fastrnn_layer_runner(problem, mode, "native", False, state_dict)
    return _fastrnn_layer_runner(problem, mode, impl, True, state_dict)


def layer_reference(problem, padded=False, state_dict=None):
    """The numpy backend's forward+backward outputs of a layer problem, with its lengths or, when
    ``padded``, without them (gradients copied out of the layer)."""
    out = _fastrnn_layer_runner(problem, "forward+backward", "numpy", not padded, state_dict)()
    out["grads"] = {k: np.array(v) for k, v in out["grads"].items()}
    return out


def check_layer_agreement(impl, problem, mode, reference=None, state_dict=None, module=None):
    """Raises AgreementError unless ``impl`` agrees with the numpy layer on ``problem``.

    ``reference``: layer_reference(problem, padded=impl == "native_padded"), computed when None.
    Compares y, h_n, c_n and, for forward+backward, dx, dh0, dc0 and every parameter gradient,
    with the tolerances of check_agreement. Returns the largest relative difference.
    """
    padded = impl == "native_padded"
    if reference is None:
        reference = layer_reference(problem, padded=padded)
    got = make_layer_runner(impl, problem, mode, state_dict, module)()
    (rtol, atol), (grtol, gatol) = tolerances(problem["dtype"])
    what = (
        f"{impl} {problem['num_layers']}-layer "
        f"{'bidirectional ' if problem['bidirectional'] else ''}{problem['cell']} {mode} "
        f"{problem['shape_name']} {problem['dtype']}" + ("" if padded else " with lengths")
    )
    worst = 0.0
    for name in _OUTPUTS:
        worst = max(worst, _compare(what, name, got[name], reference[name], rtol, atol))
    if mode == "forward+backward":
        pairs = [(n, got[n], reference[n]) for n in ("dx", "dh0", "dc0")]
        if set(got["grads"]) != set(reference["grads"]):
            raise AgreementError(
                f"{what}: gradients for {sorted(got['grads'])}, the numpy "
                f"reference has {sorted(reference['grads'])}"
            )
        pairs += [(f"grad of {n}", got["grads"][n], ref) for n, ref in reference["grads"].items()]
        for name, g, ref in pairs:
            scale = float(np.abs(ref).max()) if ref is not None and ref.size else 1.0
            worst = max(worst, _compare(what, name, g, ref, grtol, gatol * scale))
    return worst


def run_layer_benchmarks(
    cells=LAYER_CELLS,
    shapes=(LAYER_SHAPE,),
    modes=MODES,
    impls=None,
    dtype="float32",
    repeat=20,
    warmup=1,
    budget_s=1.0,
    threads=None,
    check=True,
    seed=0,
    num_layers=LAYER_NUM_LAYERS,
    bidirectional=LAYER_BIDIRECTIONAL,
    on_check=None,
    on_result=None,
):
    """Times the layer problems: each is checked against numpy (with and without lengths), then
    every implementation of LAYER_IMPLEMENTATIONS that is available is timed in every mode.

    When torch runs, the fastrnn layers get their weights from the torch module through
    ``load_state_dict(torch_module.state_dict())``, so the checks compare the same model.
    Results: as run_benchmarks', impl one of LAYER_IMPLEMENTATIONS, with num_layers,
    bidirectional and lengths (the problem's) added.
    """
    cells = _names(cells, CELLS, "cell")
    shapes = _names(shapes, ALL_SHAPES, "shape")
    modes = _names(modes, MODES, "mode")
    have = {
        "native": native_available(),
        "numpy": True,
        "torch": torch_available(),
        "native_padded": native_available(),
    }
    impls = (
        [i for i in LAYER_IMPLEMENTATIONS if have[i]]
        if impls is None
        else [i for i in _names(impls, LAYER_IMPLEMENTATIONS, "impl") if have[i]]
    )
    dt = _dtype(dtype)
    n_threads = configure_threads(threads)

    results = []
    for c in cells:
        for s in shapes:
            problem = make_layer_problem(c, s, dt, seed, num_layers, bidirectional)
            module = torch_layer_module(problem) if "torch" in impls else None
            weights = module.state_dict() if module is not None else None
            if check:
                refs = {}
                for impl in [i for i in impls if i != "numpy"]:
                    padded = impl == "native_padded"
                    if padded not in refs:
                        refs[padded] = layer_reference(problem, padded, weights)
                    for mode in modes:
                        worst = check_layer_agreement(impl, problem, mode, refs[padded], weights, module)
                        if on_check is not None:
                            on_check(
                                {
                                    "cell": c,
                                    "shape": s,
                                    "mode": mode,
                                    "impl": impl,
                                    "dtype": dt.name,
                                    "max_rel_diff": worst,
                                }
                            )
                del refs
            shape = ALL_SHAPES[s]
            for mode in modes:
                for impl in impls:
                    run = make_layer_runner(impl, problem, mode, weights, module)
                    timing = time_function(run, repeat=repeat, warmup=warmup, budget_s=budget_s)
                    result = {
                        "cell": c,
                        "shape": s,
                        "T": shape.T,
                        "B": shape.B,
                        "I": shape.I,
                        "H": shape.H,
                        "mode": mode,
                        "impl": impl,
                        "dtype": dt.name,
                        "threads": n_threads,
                        "num_layers": num_layers,
                        "bidirectional": bidirectional,
                        "lengths": [int(v) for v in problem["lengths"]],
                        **timing,
                    }
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
    return results


def summarize_layers(results, stat="median_ms"):
    """One row per (cell, shape, mode): ``<impl>_ms``, numpy/torch ``_over_native`` and
    ``lengths_over_padded`` (native with lengths / native padded) with ``lengths_status`` against
    LENGTHS_TARGET ("PASS", "MISS" or "n/a")."""
    rows = summarize(results, stat=stat)
    for row in rows:
        native, padded = row.get("native_ms"), row.get("native_padded_ms")
        ratio = native / padded if native and padded else None
        row["lengths_over_padded"] = ratio
        row["lengths_status"] = "n/a" if ratio is None else "PASS" if ratio <= LENGTHS_TARGET else "MISS"
        row["lengths_text"] = f"<={LENGTHS_TARGET:g}x {row['lengths_status']}"
    return rows


def layer_table_columns(impls):
    """The columns of the layer table (see table_columns)."""
    cols = [("cell", "cell", 9, "text"), ("shape", "shape", 7, "text"), ("mode", "mode", 17, "text")]
    cols += [(f"{i}_ms", f"{i} ms", 10 if i != "native_padded" else 16, "ms") for i in impls]
    if "native" in impls and "native_padded" in impls:
        cols += [
            ("lengths_over_padded", "lengths/padded", 14, "ratio"),
            ("lengths_text", "target", 11, "text"),
        ]
    if "native" in impls:
        cols += [(f"{i}_over_native", f"{i}/native", 13, "ratio") for i in ("numpy", "torch") if i in impls]
    return cols
