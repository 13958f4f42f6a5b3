"""The adding problem (Hochreiter & Schmidhuber 1997): tanh RNN vs IRNN vs LSTM vs GRU.

Each input sequence has T steps of two features: a value drawn uniformly from [0, 1] and a marker
that is 1 at exactly two steps (one in the first half of the sequence, one in the second half) and 0
elsewhere. The target is the sum of the two marked values, to be read off after the last step. A
model that ignores the input and predicts 1.0 scores MSE = Var(U + U') = 2/12 ~ 0.167; a model that
solves the task (test MSE < 0.01) has to carry the first marked value across T/2 steps or more,
which is what vanishing gradients make hard for a plain tanh RNN.

Model: recurrent layer over time-major x (T, B, 2) -> output at the last time step ->
fr.Linear(H, 1) -> fr.losses.mse. Backward: Linear, then the recurrent layer with dy zero everywhere
except the last step. Adam with a per-cell learning rate, gradient-norm clipping, fixed seeds.

    python examples/adding_problem.py                       # the full comparison, a few minutes
    python examples/adding_problem.py --lengths 100 --cells lstm tanh --steps 1000 --plot none

It also writes docs/adding_grad_norms.png (``--plot``): ||dLoss/dh_t|| against t at T=100 (or the
first length) for each cell, from ``layer.dh_norms`` after one backward on one batch, at
initialisation and after training. Results, seeds and the learning rates: examples/README.md.
"""

import argparse
import importlib.util
import os
import sys
import time

import numpy as np

import fastrnn as fr

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PLOT = os.path.join(HERE, os.pardir, "docs", "adding_grad_norms.png")

BASELINE_MSE = 1.0 / 6.0  # predicting the constant 1.0: Var(U1 + U2) = 2 * 1/12
SOLVED_MSE = 0.01  # test MSE below this counts as solved
IRNN_INPUT_STD = 0.01  # std of the IRNN's input weights

# The four recurrent cells. lr is Adam's learning rate for each (see examples/README.md):
# - tanh: PyTorch's default init (U(-1/sqrt(H), 1/sqrt(H))).
# - irnn: ReLU RNN, W_hh = I and zero biases (Le, Jaitly & Hinton 2015, fr.init.identity_), input
#   weights N(0, 0.01^2). With the identity, W_hh's largest eigenvalue is exactly 1 and the ReLU
#   state is unbounded: Adam's first steps move every W_hh entry by about lr, which with lr = 1e-3
#   pushes the eigenvalue past 1 and the state (and loss) to inf/NaN at T = 200. It needs a 20x
#   smaller learning rate than the gated cells. Small input weights (the paper uses 0.001; 0.01
#   learns faster here) keep the early state small.
# - lstm: PyTorch's default init with the forget-gate bias set to 1 (Gers et al. 2000; Jozefowicz
#   et al. 2015, fr.init.forget_gate_bias_), the usual choice for long-range memory.
# - gru: PyTorch's default init.
CELLS = {
    "tanh": {"label": "tanh RNN", "lr": 1e-3},
    "irnn": {"label": "IRNN (ReLU, W_hh=I)", "lr": 5e-4},
    "lstm": {"label": "LSTM", "lr": 1e-2},
    "gru": {"label": "GRU", "lr": 1e-2},
}


# -------------------------------------------------------------------------------------------------
# Data


def make_batch(rng, T, B, dtype=np.float32):
    """x (T, B, 2) time-major and target (B, 1): the sum of the two marked values."""
    if T < 2:
        raise ValueError(f"the adding problem needs T >= 2, got {T}")
    values = rng.uniform(0.0, 1.0, size=(T, B))
    half = T // 2
    cols = np.arange(B)
    first = rng.integers(0, half, size=B)  # one marker in the first half
    second = rng.integers(half, T, size=B)  # one in the second half
    markers = np.zeros((T, B))
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    x = np.stack([values, markers], axis=2).astype(dtype)
    target = (values[first, cols] + values[second, cols])[:, None].astype(dtype)
    return x, target


# -------------------------------------------------------------------------------------------------
# Model


def make_model(cell, hidden, seed, backend=None):
    """(recurrent layer, Linear head) for one of CELLS, seeded."""
    if cell == "tanh":
        rnn = fr.RNN(2, hidden, nonlinearity="tanh", backend=backend, seed=seed)
    elif cell == "irnn":
        rnn = fr.RNN(2, hidden, nonlinearity="relu", backend=backend, seed=seed)
        # W_hh = I, bias_ih = bias_hh = 0, W_ih ~ N(0, 0.01^2)
        fr.init.identity_(rnn, input_std=IRNN_INPUT_STD, seed=seed)
    elif cell == "lstm":
        rnn = fr.LSTM(2, hidden, backend=backend, seed=seed)
        fr.init.forget_gate_bias_(rnn, 1.0)
    elif cell == "gru":
        rnn = fr.GRU(2, hidden, backend=backend, seed=seed)
    else:
        raise ValueError(f"unknown cell {cell!r}; choose from {sorted(CELLS)}")
    head = fr.Linear(hidden, 1, seed=seed + 1)
    return rnn, head


def forward(rnn, head, x):
    """Prediction (B, 1) from the last time step's output; also y (T, B, H) for the backward."""
    y = rnn(x)[0]
    return head(y[-1]), y


def backward(rnn, head, y, dpred):
    """Gradients into every parameter: Linear, then BPTT with dy nonzero only at t = T-1."""
    dlast = head.backward(dpred)
    dy = np.zeros_like(y)
    dy[-1] = dlast
    rnn.backward(dy)


def evaluate(rnn, head, x, target, chunk=1000):
    """Test MSE (eval mode, no caches kept)."""
    rnn.eval()
    head.eval()
    try:
        sq = 0.0
        for s in range(0, x.shape[1], chunk):
            pred, _ = forward(rnn, head, x[:, s : s + chunk])
            sq += float(np.sum((pred.astype(np.float64) - target[s : s + chunk]) ** 2))
        return sq / x.shape[1]
    finally:
        rnn.train()
        head.train()


def train(cell, T, args, log=print):
    """Trains one cell on one length; returns a result dict."""
    lr = args.lr if args.lr is not None else CELLS[cell]["lr"]
    rnn, head = make_model(cell, args.hidden, args.seed, args.backend)
    params = rnn.parameters() + head.parameters()
    opt = fr.optim.Adam(params, lr=lr)
    # Separate, fixed streams: training batches and the held-out test set never share draws.
    train_rng = np.random.default_rng([args.seed, T, 1])
    x_test, y_test = make_batch(np.random.default_rng([args.seed, T, 2]), T, args.test_size)

    start = time.perf_counter()
    history = []
    losses = []
    for step in range(1, args.steps + 1):
        x, target = make_batch(train_rng, T, args.batch)
        # A diverging IRNN shows up as an inf/nan loss in the log and the table, without warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            pred, y = forward(rnn, head, x)
            loss, dpred = fr.losses.mse(pred, target)
            opt.zero_grad()
            backward(rnn, head, y, dpred)
            fr.clip_grad_norm(params, args.clip)
            opt.step()
        losses.append(loss)
        if step % args.eval_every == 0 or step == args.steps:
            with np.errstate(over="ignore", invalid="ignore"):
                test = evaluate(rnn, head, x_test, y_test)
            history.append((step, test))
            if args.verbose:
                recent = float(np.mean(losses[-args.eval_every :]))
                log(
                    f"  {cell:5s} T={T:4d} step {step:5d}  train {recent:.4f}  test {test:.4f}  "
                    f"({time.perf_counter() - start:.1f} s)"
                )
    seconds = time.perf_counter() - start
    test = history[-1][1]
    return {
        "cell": cell,
        "T": T,
        "lr": lr,
        "test_mse": test,
        "solved": test < SOLVED_MSE,
        "seconds": seconds,
        "history": history,
        "final_train_loss": losses[-1],
        "model": (rnn, head),
    }


# -------------------------------------------------------------------------------------------------
# Gradient norms through time


def grad_norms(rnn, head, T, seed):
    """||dLoss/dh_t|| for t = 0..T-1: ``rnn.dh_norms`` after one backward on a fixed batch of 64."""
    x, target = make_batch(np.random.default_rng([seed, T, 3]), T, 64)
    pred, y = forward(rnn, head, x)
    _, dpred = fr.losses.mse(pred, target)
    backward(rnn, head, y, dpred)
    rnn.zero_grad()
    head.zero_grad()
    return rnn.dh_norms[0]


def plot(panels, T, path, subtitle=""):
    """Writes the chart: a panel per (title, {cell: norms (T,)}), a curve per cell, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastrnn.diagnostics import plot_grad_norms

    colors = {"tanh": "tab:red", "irnn": "tab:orange", "lstm": "tab:blue", "gru": "tab:green"}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.8), sharey=True, squeeze=False)
    for ax, (title, norms) in zip(axes[0], panels):
        cells = list(norms)
        plot_grad_norms(
            np.stack([norms[c] for c in cells]), labels=[CELLS[c]["label"] for c in cells], ax=ax, title=title
        )
        for line, c in zip(ax.get_lines(), cells):
            line.set_color(colors[c])
            line.set_linewidth(2)
        ax.set_xlim(0, T - 1)
        ax.set_xlabel("time step t  (the loss is taken after t = T-1)")
        ax.axvspan(0, T // 2, color="0.9", zorder=0)
        ax.text(
            T // 4,
            0.02,
            "first marker lies here",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=9,
            color="0.35",
        )
        ax.legend(loc="lower right", fontsize=9, framealpha=0.9)
    axes[0][0].set_ylabel("||dLoss / dh_t||  (log scale)")
    for ax in axes[0][1:]:
        ax.set_ylabel("")
    fig.suptitle(
        f"Adding problem, T = {T}: how much gradient reaches each time step"
        + (f"\n{subtitle}" if subtitle else ""),
        fontsize=11,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200], help="sequence lengths T")
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    p.add_argument("--steps", type=int, default=2500, help="training steps per (cell, T)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size")
    p.add_argument("--batch", type=int, default=64, help="batch size")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate for every cell (default: each cell's own, see CELLS)",
    )
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm")
    p.add_argument("--test-size", type=int, default=1000, help="held-out test sequences")
    p.add_argument("--eval-every", type=int, default=500, help="steps between test evaluations")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, batches and test set")
    p.add_argument(
        "--backend",
        default=None,
        choices=["native", "numpy"],
        help="fastrnn backend (default: fastrnn's default, native when built)",
    )
    p.add_argument(
        "--plot",
        default=DEFAULT_PLOT,
        help="where to write the gradient-norm chart (T=100 if run, else the first length); 'none' to skip",
    )
    p.add_argument("--quiet", dest="verbose", action="store_false", help="print only the final table")
    args = p.parse_args(argv)
    for name in ("steps", "hidden", "batch", "test_size", "eval_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.lengths) < 2:
        p.error("--lengths must be >= 2")
    return args


def format_table(results):
    lines = [f"{'cell':<22s}{'T':>5s}{'lr':>9s}{'test MSE':>11s}{'solved':>8s}{'seconds':>9s}", "-" * 64]
    for r in results:
        lines.append(
            f"{CELLS[r['cell']]['label']:<22s}{r['T']:>5d}{r['lr']:>9.0e}"
            f"{r['test_mse']:>11.4f}{'yes' if r['solved'] else 'no':>8s}"
            f"{r['seconds']:>9.1f}"
        )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    info = fr.info()  # the layers get args.backend themselves: the global default is left alone
    print(
        f"adding problem: lengths {args.lengths}, cells {args.cells}, steps {args.steps}, "
        f"hidden {args.hidden}, batch {args.batch}, clip {args.clip}, test set "
        f"{args.test_size}, seed {args.seed}"
    )
    print(
        f"fastrnn {info['version']}, backend {args.backend or info['backend']}, threads "
        f"{info['num_threads']}; baseline (predict 1.0) MSE = {BASELINE_MSE:.4f}; "
        f"solved = test MSE < {SOLVED_MSE}"
    )
    print(
        f"seeds: weights seed={args.seed} (Linear head {args.seed + 1}); training batches "
        f"default_rng([{args.seed}, T, 1]); test set default_rng([{args.seed}, T, 2]); "
        f"gradient-norm batch default_rng([{args.seed}, T, 3])"
    )
    print(
        "Adam lr: "
        + ", ".join(f"{c} {args.lr if args.lr is not None else CELLS[c]['lr']:g}" for c in args.cells)
    )
    sys.stdout.flush()

    total = time.perf_counter()
    results = []
    for T in args.lengths:
        for cell in args.cells:
            r = train(cell, T, args)
            results.append(r)
            print(
                f"{CELLS[cell]['label']:<22s} T={T:<4d} test MSE {r['test_mse']:.4f}  "
                f"{'solved' if r['solved'] else 'not solved'}  ({r['seconds']:.1f} s)"
            )
            sys.stdout.flush()

    print()
    print(format_table(results))
    print(f"total {time.perf_counter() - total:.1f} s")

    if args.plot and args.plot.lower() != "none":
        if importlib.util.find_spec("matplotlib") is None:
            print("matplotlib not installed: no plot")
        else:
            T = 100 if 100 in args.lengths else args.lengths[0]
            init = {
                c: grad_norms(*make_model(c, args.hidden, args.seed, args.backend), T, args.seed)
                for c in args.cells
            }
            trained = {r["cell"]: grad_norms(*r["model"], T, args.seed) for r in results if r["T"] == T}
            panels = [("at initialisation", init), (f"after training ({args.steps} steps)", trained)]
            plot(panels, T, args.plot, subtitle=f"hidden {args.hidden}, one batch of 64, seed {args.seed}")
            print(f"wrote {args.plot}")
    return results


if __name__ == "__main__":
    main()
