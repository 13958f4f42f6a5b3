"""Forecasting the chaotic Mackey-Glass series with an LSTM, a GRU and a tanh RNN.

Each model reads the series and predicts the next value (trained with truncated BPTT on the first
80%). On the held-out 20% it is scored two ways:
- one step ahead: every prediction sees the true values so far;
- free-running: from a point in the test part, its own predictions are fed back in (fastrnn.Stepper)
  for 100 steps; the error then grows with the horizon, as it must for a chaotic system.
The persistence baseline (next value = current value) sets the scale.

    python examples/forecast.py                   # about a minute
    python examples/forecast.py --plot forecast.png
"""

import argparse
import time

import numpy as np

import fastrnn as fr

HORIZONS = (1, 10, 25, 50, 100)


def make_model(cell, hidden, seed):
    layer = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn_tanh": fr.RNN}[cell](1, hidden, seed=seed)
    return fr.Sequential(layer, fr.Linear(hidden, 1, seed=seed + 1))


def free_run(model, history, steps):
    """Feeds ``history`` (N,) to the model, then its own predictions back for ``steps`` steps."""
    stepper = fr.Stepper(model)
    pred = float(stepper.prime(history[:, None].astype(np.float32))[0])
    out = []
    for _ in range(steps):
        out.append(pred)
        pred = float(stepper.step(np.array([pred], np.float32))[0])
    return np.array(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--length", type=int, default=4000, help="series length (default: 4000)")
    p.add_argument("--epochs", type=int, default=600)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--cells", default="lstm,gru,rnn_tanh")
    p.add_argument("--starts", type=int, default=20, help="free-running starts averaged over")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="save a chart of a free-running forecast to this PNG")
    args = p.parse_args(argv)
    if args.length // 5 <= max(HORIZONS):
        p.error(f"--length must leave more than {max(HORIZONS)} test values (its last 20%)")
    if args.plot:  # found missing now, not after the training
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            p.error('--plot needs matplotlib, which is not installed (pip install "fastrnn[bench]")')

    series = fr.datasets.mackey_glass(args.length)
    n_train = int(0.8 * len(series))
    mean, std = series[:n_train].mean(), series[:n_train].std()
    z = ((series - mean) / std).astype(np.float32)
    ztrain = z[:n_train, None]
    test = np.arange(n_train, len(series) - 1)  # predict series[t + 1] from series[:t + 1]
    persistence = np.sqrt(np.mean((series[test] - series[test + 1]) ** 2))
    print(
        f"Mackey-Glass (tau=17): {len(series)} values, {len(series) - n_train} held out; "
        f"persistence RMSE {persistence:.5f}"
    )

    rng = np.random.default_rng(args.seed)
    starts = rng.integers(n_train, len(series) - max(HORIZONS), size=args.starts)
    print(f"\n{'':45s}free-running RMSE after h steps")
    print(
        f"{'cell':9s} {'train s':>8s} {'1-step RMSE':>12s} {'vs persist':>10s}    "
        + " ".join(f"{'h=' + str(h):>7s}" for h in HORIZONS)
    )
    runs = {}
    for cell in args.cells.split(","):
        model = make_model(cell, args.hidden, args.seed)
        t0 = time.perf_counter()
        fr.train(
            model,
            ztrain[:-1],
            ztrain[1:],
            optimizer=fr.optim.Adam(model.parameters(), lr=1e-2),
            epochs=args.epochs,
            bptt=50,
            batch_size=16,
            progress=False,
        )
        seconds = time.perf_counter() - t0
        model.eval()
        pred = model(z[:-1, None, None])[:, 0, 0] * std + mean  # one pass over the whole series
        one_step = np.sqrt(np.mean((pred[test] - series[test + 1]) ** 2))
        errors = np.array(
            [
                free_run(model, z[:s], max(HORIZONS)) * std + mean - series[s : s + max(HORIZONS)]
                for s in starts
            ]
        )
        at = [np.sqrt(np.mean(errors[:, h - 1] ** 2)) for h in HORIZONS]
        runs[cell] = (model, at)
        print(
            f"{cell:9s} {seconds:8.1f} {one_step:12.5f} {persistence / one_step:9.1f}x    "
            + " ".join(f"{e:7.4f}" for e in at)
        )

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        s = int(starts[0])
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.plot(range(s - 100, s + 100), series[s - 100 : s + 100], "k", lw=2, label="Mackey-Glass")
        for cell, (model, _) in runs.items():
            ax.plot(range(s, s + 100), free_run(model, z[:s], 100) * std + mean, "--", label=cell)
        ax.axvline(s, color="grey", lw=0.8)
        ax.set_xlabel("t")
        ax.set_title("free-running forecasts from t = %d (each model fed its own output)" % s)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nwrote {args.plot}")
    return runs


if __name__ == "__main__":
    main()
