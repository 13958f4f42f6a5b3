"""Character-level language model: Embedding -> LSTM -> Linear, trained with truncated BPTT, then
sampled at a few temperatures.

    python examples/char_rnn.py                     # the Python docs shipped with CPython, 3 minutes
    python examples/char_rnn.py my.txt --minutes 10 --hidden 512

The same thing as ``python -m fastrnn train-text``, written out with the library API.
"""

import argparse
import math

import numpy as np

import fastrnn as fr


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", nargs="?", help="UTF-8 text (default: the Python documentation)")
    p.add_argument("--minutes", type=float, default=3.0, help="training time (default: 3)")
    p.add_argument("--hidden", type=int, default=256, help="LSTM units (default: 256)")
    p.add_argument("--layers", type=int, default=1, help="stacked LSTM layers (default: 1)")
    p.add_argument("--sample-length", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="char_rnn.npz", help="best checkpoint (default: char_rnn.npz)")
    args = p.parse_args(argv)

    if args.file:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    else:
        text = fr.datasets.python_docs_text()
    vocab = fr.CharVocab.from_text(text)
    ids = np.array(vocab.encode(text))
    cut = int(len(ids) * 0.95)
    train_ids, held = ids[:cut], ids[cut:]
    V = len(vocab)
    print(f"{len(text):,} characters, {V} distinct; chance level {math.log(V):.2f} nats/char")

    model = fr.Sequential(
        fr.Embedding(V, 64, seed=args.seed),
        fr.LSTM(
            64,
            args.hidden,
            num_layers=args.layers,
            dropout=0.1 if args.layers > 1 else 0.0,
            seed=args.seed + 1,
        ),
        fr.Linear(args.hidden, V, seed=args.seed + 2),
    )
    fr.init.forget_gate_bias_(model[1], 1.0)  # remember by default early in training
    optimizer = fr.optim.Adam(model.parameters(), lr=3e-3)

    result = fr.train(
        model,
        train_ids[:-1],
        train_ids[1:],
        optimizer=optimizer,
        bptt=64,
        batch_size=32,
        epochs=1000,
        max_seconds=60 * args.minutes,
        clip=1.0,
        eval_data=(held[:-1], held[1:]),
        eval_every=200,
        checkpoint=args.out,
        extra={"vocab": vocab.to_dict()},
    )
    print(
        f"{result.steps} steps, {result.positions_per_second:,.0f} characters/s; best held-out "
        f"loss {result.best_loss:.3f} nats = {result.best_loss / math.log(2):.2f} bits/char "
        f"(step {result.best_step}, saved in {result.checkpoint})"
    )

    best = fr.load_checkpoint(args.out).model
    for temperature in (0.5, 0.8, 1.0):
        _, sample = fr.sample(
            best, "The ", args.sample_length, temperature=temperature, seed=args.seed, vocab=vocab
        )
        print(f"\n--- temperature {temperature} ---\nThe {sample}")
    return result


if __name__ == "__main__":
    main()
