"""A PyTorch training script, run twice: as written, then with fastrnn.torch.replace(model).

The model is an ordinary torch classifier of variable-length sequences (a PackedSequence through a
2-layer bidirectional GRU, then a linear head on the last states). The task: say whether the
first feature of a sequence sums to more than zero. Both runs start from the same weights and see
the same batches and dropout masks, so they print the same losses (to float rounding); only the
time per step differs.

    python examples/torch_dropin.py [--steps 30] [--hidden 128] [--batch 32] [--max-len 100]
"""

import argparse
import copy
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn.torch


class Classifier(torch.nn.Module):
    def __init__(self, features, hidden, dropout):
        super().__init__()
        self.rnn = torch.nn.GRU(features, hidden, num_layers=2, bidirectional=True, dropout=dropout)
        self.head = torch.nn.Linear(2 * hidden, 2)

    def forward(self, packed):
        _, h = self.rnn(packed)
        return self.head(torch.cat([h[-2], h[-1]], 1))  # last layer, both directions


def make_batch(g, batch, max_len, features):
    lengths = torch.randint(max_len // 4, max_len + 1, (batch,), generator=g)
    x = torch.randn(max_len, batch, features, generator=g)
    x[torch.arange(max_len).unsqueeze(1) >= lengths] = 0  # padding
    labels = (x[:, :, 0].sum(0) > 0).long()
    return pack_padded_sequence(x, lengths, enforce_sorted=False), labels


def train(model, args):
    """Trains ``model`` for args.steps Adam steps; returns (losses, accuracy, seconds per step)."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)  # the same batches for both runs
    losses, times = [], []
    for step in range(args.steps):
        packed, labels = make_batch(g, args.batch, args.max_len, args.features)
        torch.manual_seed(args.seed + step)  # the same dropout masks for both runs
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(packed), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        packed, labels = make_batch(
            torch.Generator().manual_seed(args.seed + 1), 256, args.max_len, args.features
        )
        accuracy = (model(packed).argmax(1) == labels).float().mean().item()
    model.train()
    steady = sorted(times[1:] or times)  # the first step warms caches up
    return losses, accuracy, steady[len(steady) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=100)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch (and so fastrnn) threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    model = Classifier(args.features, args.hidden, args.dropout)
    twin = copy.deepcopy(model)
    fastrnn.torch.replace(twin)  # the one line a user adds

    print(
        f"{args.steps} steps, batch {args.batch}, lengths {args.max_len // 4}-{args.max_len}, "
        f"GRU hidden {args.hidden} x 2 layers x 2 directions, {torch.get_num_threads()} thread(s)"
    )
    results = {}
    for name, m in (("torch", model), ("fastrnn.torch", twin)):
        results[name] = train(m, args)
    (l_t, acc_t, s_t), (l_f, acc_f, s_f) = results["torch"], results["fastrnn.torch"]
    print("step   loss (torch)   loss (fastrnn.torch)")
    for step in range(0, args.steps, max(1, args.steps // 6)):
        print(f"{step + 1:4d}   {l_t[step]:12.6f}   {l_f[step]:12.6f}")
    print(f"held-out accuracy: torch {acc_t:.3f}, fastrnn.torch {acc_f:.3f}")
    print(f"largest loss difference: {max(abs(a - b) for a, b in zip(l_t, l_f)):.2g}")
    print(f"time per step: torch {s_t * 1e3:.1f} ms, fastrnn.torch {s_f * 1e3:.1f} ms ({s_t / s_f:.1f}x)")
    return {"losses": (l_t, l_f), "accuracy": (acc_t, acc_f), "seconds": (s_t, s_f)}


if __name__ == "__main__":
    main()
