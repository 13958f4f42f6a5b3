"""Training steps of torch models with and without fastrnn.torch.replace(), and the wrapper's own
overhead (issue 11). Standalone:

    python benchmarks/torch_dropin.py [--threads N] [--repeats R] [--json FILE]

Each case builds one torch model, deep-copies it, replaces the copy's recurrent layers, checks
that both give the same loss and gradients, then times training steps (forward + loss +
backward) of the two alternately (A/B/A/B) on the same batch, with the same thread count for
torch and fastrnn (the drop-in follows torch.get_num_threads()). The ratio is torch's median step
time over fastrnn's; each target prints as PASS or MISS. Exits 1 if a check fails, not on a MISS.
"""

import argparse
import copy
import json
import statistics
import sys
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn
import fastrnn.torch as frt


class Model(torch.nn.Module):
    """A recurrent layer stack and a linear head: the loss is a cross-entropy on the head's
    output at every step (padded input) or on each sequence's last state (PackedSequence)."""

    def __init__(self, cell, I, H, layers, bidirectional):
        super().__init__()
        kw = {"nonlinearity": "tanh"} if cell == "RNN" else {}
        self.rnn = getattr(torch.nn, cell)(I, H, num_layers=layers, bidirectional=bidirectional, **kw)
        self.head = torch.nn.Linear(H * (2 if bidirectional else 1), 10)

    def loss(self, x, lengths, target):
        if lengths is None:
            y, _ = self.rnn(x)
            logits = self.head(y)
        else:
            _, h = self.rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
            h = h[0] if isinstance(h, tuple) else h
            last = h[-2:] if self.rnn.bidirectional else h[-1:]
            logits = self.head(torch.cat(list(last), 1))
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 10), target.reshape(-1))


# name, cell, T, B, I, H, layers, bidirectional, packed, target ratio
CASES = [
    ("GRU 2-layer bidir PackedSequence", "GRU", 200, 32, 128, 256, 2, True, True, 3.0),
    ("LSTM 2-layer bidir PackedSequence", "LSTM", 200, 32, 128, 256, 2, True, True, 3.0),
    ("GRU padded", "GRU", 100, 16, 256, 256, 1, False, False, 1.5),
    ("Elman (tanh) padded", "RNN", 100, 16, 256, 256, 1, False, False, 1.5),
    ("LSTM padded", "LSTM", 100, 16, 256, 256, 1, False, False, 1.1),
    ("LSTM B=1", "LSTM", 100, 1, 128, 128, 1, False, False, 1.3),
]


def batch(T, B, I, packed, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, generator=g)
    if packed:  # lengths uniform over [T/4, T], the longest always present
        lengths = torch.randint(T // 4, T + 1, (B,), generator=g)
        lengths[0] = T
        return x, lengths, torch.randint(0, 10, (B,), generator=g)
    return x, None, torch.randint(0, 10, (T, B), generator=g)


def step(model, data):
    model.zero_grad(set_to_none=True)
    loss = model.loss(*data)
    loss.backward()
    return loss


def check_same(ref, ours, data):
    """The two models' losses and gradients agree (float32 rounding); returns the worst error."""
    a, b = step(ref, data), step(ours, data)
    worst = abs(a.item() - b.item())
    for p, q in zip(ref.parameters(), ours.parameters()):
        worst = max(worst, ((p.grad - q.grad).abs().max() / (1 + p.grad.abs().max())).item())
    return worst


def time_pair(fns, repeats, seconds=2.0):
    """Median seconds of each function, run alternately (A/B/A/B...) after one warm-up each:
    ``repeats`` rounds, more for quick functions (about ``seconds`` in all, at most 200 rounds),
    as the median of a few short samples is at the mercy of other processes."""
    warm = []
    for f in fns:
        t0 = time.perf_counter()
        f()
        warm.append(time.perf_counter() - t0)
    rounds = max(repeats, min(200, int(seconds / max(sum(warm), 1e-9))))
    times = [[] for _ in fns]
    for _ in range(rounds):
        for f, ts in zip(fns, times):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times], times


def _iqr(samples):
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return q[2] - q[0]


def overhead(repeats):
    """The drop-in's own cost per layer call: a training forward + backward of a tiny one-layer
    LSTM (kernel time negligible) through frt.LSTM, against the same two fastrnn.functional calls
    on the same arrays; torch.nn.LSTM's own time on the same call for scale. The best round of
    each, as a fixed cost is what is left once other processes stay out of the way. Returns
    microseconds (drop-in, functional, difference, torch.nn.LSTM)."""
    torch.manual_seed(0)
    m = frt.LSTM(8, 8)
    ref = torch.nn.LSTM(8, 8)
    x = torch.randn(2, 1, 8, requires_grad=True)
    w = [p.detach().numpy() for p in m.parameters()]
    xa = x.detach().numpy()
    h0 = torch.zeros(1, 8).numpy()

    def call(module):
        y, (h, c) = module(x)
        y.backward(torch.ones_like(y))

    def functional():
        y, h, c, cache = fastrnn.functional.forward("lstm", xa, h0, h0, *w, backend="native")
        fastrnn.functional.backward(cache, y, None, None)

    n = 50
    _, samples = time_pair(
        [
            lambda: [call(m) for _ in range(n)],
            lambda: [functional() for _ in range(n)],
            lambda: [call(ref) for _ in range(n)],
        ],
        repeats,
    )
    a, b, c = (min(s) for s in samples)
    return a / n * 1e6, b / n * 1e6, (a - b) / n * 1e6, c / n * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for torch and fastrnn alike (default: torch's default)",
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed steps per model at least (more for quick steps)"
    )
    parser.add_argument("--cases", default=None, help="comma-separated case numbers (1-based)")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(
        f"torch {torch.__version__}, fastrnn {fastrnn.__version__}, {threads} thread(s) for "
        f"both, float32, median of >= {args.repeats} interleaved steps"
    )
    chosen = CASES if args.cases is None else [CASES[int(k) - 1] for k in args.cases.split(",")]
    results, failed = [], False
    for name, cell, T, B, I, H, layers, bidir, packed, target in chosen:
        torch.manual_seed(0)
        ref = Model(cell, I, H, layers, bidir)
        ours = frt.replace(copy.deepcopy(ref))
        data = batch(T, B, I, packed)
        err = check_same(ref, ours, data)
        ok = err < 1e-3
        failed |= not ok
        (t_torch, t_ours), samples = time_pair(
            [lambda: step(ref, data), lambda: step(ours, data)], args.repeats
        )
        ratio = t_torch / t_ours
        spread = [_iqr(s) / statistics.median(s) for s in samples]
        verdict = "PASS" if ratio >= target else "MISS"
        print(
            f"{name:34s} T={T:3d} B={B:2d} I={I:3d} H={H:3d}  torch {t_torch * 1e3:8.1f} ms  "
            f"fastrnn {t_ours * 1e3:7.1f} ms  {ratio:5.2f}x  target >= {target}x  {verdict}"
            f"  (n={len(samples[0])}, IQR {spread[0]:.0%}/{spread[1]:.0%}"
            f"{'' if ok else f', CHECK FAILED {err:.2g}'})"
        )
        results.append(
            {
                "case": name,
                "cell": cell,
                "T": T,
                "B": B,
                "I": I,
                "H": H,
                "layers": layers,
                "bidirectional": bidir,
                "packed": packed,
                "torch_s": t_torch,
                "fastrnn_s": t_ours,
                "ratio": ratio,
                "target": target,
                "pass": ratio >= target,
                "check_error": err,
                "torch_samples_s": samples[0],
                "fastrnn_samples_s": samples[1],
            }
        )
    us_dropin, us_functional, us_overhead, us_torch = overhead(args.repeats)
    print(
        f"wrapper overhead per layer call (training forward + backward, T=2 B=1 H=8 LSTM, best round): "
        f"{us_overhead:.0f} us (drop-in {us_dropin:.0f} us, fastrnn.functional {us_functional:.0f}"
        f" us; torch.nn.LSTM {us_torch:.0f} us)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "torch": torch.__version__,
                    "fastrnn": fastrnn.__version__,
                    "threads": threads,
                    "repeats": args.repeats,
                    "cases": results,
                    "overhead_us": {
                        "dropin": us_dropin,
                        "functional": us_functional,
                        "difference": us_overhead,
                        "torch": us_torch,
                    },
                },
                f,
                indent=1,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
