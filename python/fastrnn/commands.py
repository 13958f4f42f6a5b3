"""The training and generation commands of ``python -m fastrnn``: train-text, generate, forecast, demo.

Each is a thin layer over the library (``fastrnn.train``, ``fastrnn.sample``, checkpoints); the
argument parsers live here beside the code they drive, and ``__main__`` registers them.
"""

import argparse
import math
import os
import time

import numpy as np

from . import _backend, optim
from ._argtypes import fraction, nonnegative_number, positive_int, positive_number, probability
from ._cli import fail, fits_in_memory, forward_bytes, output_path, recurrent_bytes
from .checkpoint import CheckpointError, load_checkpoint
from .datasets import mackey_glass, python_docs_text, read_csv_column
from .generate import CharVocab, sample
from .layers import GRU, LSTM, RNN
from .linear import Embedding, Linear
from .sequential import Sequential
from .training import evaluate, train

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


# -- shared pieces ----------------------------------------------------------------------------------


def _recurrent(cell, input_size, hidden, layers, dropout, dtype, seed):
    args = dict(num_layers=layers, dropout=dropout if layers > 1 else 0.0, dtype=dtype, seed=seed)
    if cell == "lstm":
        return LSTM(input_size, hidden, **args)
    if cell == "gru":
        return GRU(input_size, hidden, **args)
    return RNN(input_size, hidden, nonlinearity=cell[4:], **args)


def char_model(vocab_size, cell="lstm", hidden=256, layers=1, embed=64, dropout=0.0, dtype="float32", seed=0):
    """Embedding -> recurrent layer(s) -> Linear: a character language model."""
    return Sequential(
        Embedding(vocab_size, embed, dtype=dtype, seed=seed),
        _recurrent(cell, embed, hidden, layers, dropout, dtype, seed + 1),
        Linear(hidden, vocab_size, dtype=dtype, seed=seed + 2),
    )


def _setup(args):
    """Applies --backend/--threads (a bad value exits with argparse's usage error)."""
    from ._backend import set_backend, set_num_threads

    if getattr(args, "backend", None):
        set_backend(args.backend)
    if getattr(args, "threads", None):
        set_num_threads(args.threads)


def _read_text(path):
    if path is None:
        return python_docs_text(), "the Python documentation (pydoc_data.topics)"
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(), path
    except UnicodeDecodeError as e:
        raise SystemExit(f"error: {path} is not UTF-8 text ({e.reason} at byte {e.start})")
    except OSError as e:
        raise SystemExit(f"error: cannot read {path}: {e.strerror}")


def _split(ids, fraction):
    """(train, held out): the last ``fraction`` of the sequence is held out."""
    cut = len(ids) - max(2, int(len(ids) * fraction))
    return ids[:cut], ids[cut:]


def _training_args(p, hidden, bptt, batch, lr, epochs=1, eval_every=None, cell="lstm"):
    g = p.add_argument_group("model and training")
    g.add_argument("--cell", choices=CELLS, default=cell, help=f"recurrent cell (default: {cell})")
    g.add_argument("--hidden", type=positive_int, default=hidden, help=f"hidden units (default: {hidden})")
    g.add_argument("--layers", type=positive_int, default=1, help="stacked layers (default: 1)")
    g.add_argument(
        "--bptt",
        type=positive_int,
        default=bptt,
        help=f"truncated-BPTT chunk length in time steps (default: {bptt})",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch,
        help=f"parallel streams the sequence is cut into (default: {batch})",
    )
    g.add_argument("--lr", type=positive_number, default=lr, help=f"Adam learning rate (default: {lr})")
    g.add_argument(
        "--clip", type=positive_number, default=1.0, help="gradient-norm clipping threshold (default: 1.0)"
    )
    g.add_argument(
        "--epochs",
        type=positive_int,
        help=f"passes over the data (default: {epochs}, or as many as --max-steps/--minutes allow)",
    )
    g.add_argument(
        "--max-steps", type=positive_int, help="stop after exactly this many steps (more epochs if needed)"
    )
    g.add_argument("--minutes", type=positive_number, help="stop after this many minutes")
    p.set_defaults(default_epochs=epochs)
    g.add_argument(
        "--eval-every",
        type=positive_int,
        default=eval_every,
        help="steps between evaluations (default: "
        + ("once per epoch" if eval_every is None else str(eval_every))
        + ")",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default: 0)")
    r = p.add_argument_group("runtime")
    r.add_argument("--backend", choices=("native", "numpy"), help="backend (default: native)")
    r.add_argument("--threads", type=positive_int, help="native kernel threads (default: 1)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar / progress lines")


def _epochs(args):
    """--epochs, or its default; a step or time limit alone runs as many epochs as it allows."""
    if args.epochs is not None:
        return args.epochs
    return 2**62 if args.max_steps is not None or args.minutes is not None else args.default_epochs


def _train(args, model, x, y, held, extra, out):
    opt = optim.Adam(model.parameters(), lr=args.lr)
    result = train(
        model,
        x,
        y,
        optimizer=opt,
        epochs=_epochs(args),
        bptt=args.bptt,
        batch_size=args.batch_size,
        clip=args.clip,
        max_steps=args.max_steps,
        max_seconds=None if args.minutes is None else args.minutes * 60,
        eval_data=held,
        eval_every=args.eval_every,
        checkpoint=out,
        extra=extra,
        progress=not args.no_progress,
    )
    how = "interrupted (Ctrl-C)" if result.interrupted else "done"
    print(
        f"{how}: {result.steps} steps in {result.seconds:.1f} s "
        f"({result.positions_per_second:,.0f} positions/s)"
    )
    if result.checkpoint:
        which = "held-out" if held is not None else "training"
        print(
            f"best {which} loss {result.best_loss:.4f} at step {result.best_step}, saved to "
            f"{result.checkpoint}"
        )
    return result


# -- train-text / generate --------------------------------------------------------------------------


def _train_text(args):
    output_path(args.out, "--out")
    fits_in_memory(
        recurrent_bytes(args.cell, args.embed, args.hidden, args.layers, args.bptt, args.batch_size),
        f"a {args.cell} of --hidden {args.hidden} x --layers {args.layers}",
    )
    _setup(args)
    text, source = _read_text(args.file)
    if len(text) < 3:
        fail("the text needs at least 3 characters")
    vocab = CharVocab.from_text(text)
    V = len(vocab)
    fits_in_memory(
        16 * V * (args.embed + args.hidden) + 12 * args.bptt * args.batch_size * V,
        f"the embedding and output layers of {V} characters",
    )
    ids = np.asarray(vocab.encode(text), np.int64)
    train_ids, held_ids = _split(ids, args.val_fraction)
    if len(train_ids) - 1 < args.batch_size:
        raise SystemExit(
            f"error: {len(train_ids)} training characters are too few for --batch-size {args.batch_size}"
        )
    model = char_model(
        len(vocab), args.cell, args.hidden, args.layers, args.embed, args.dropout, seed=args.seed
    )
    print(f"corpus: {source}: {len(text):,} characters, {len(vocab)} distinct; {len(held_ids):,} held out")
    print(
        f"model: {sum(p.data.size for p in model.parameters()):,} parameters "
        f"({args.cell}, hidden {args.hidden}, {args.layers} layer(s))"
    )
    print(f"chance level: loss {math.log(len(vocab)):.3f} (nats per character)")
    extra = {"vocab": vocab.to_dict(), "corpus": source}
    result = _train(
        args, model, train_ids[:-1], train_ids[1:], (held_ids[:-1], held_ids[1:]), extra, args.out
    )
    if result.checkpoint:
        model = load_checkpoint(result.checkpoint).model
    prime = args.prime or text[0]
    _, generated = sample(
        model, prime, args.sample_length, temperature=args.temperature, seed=args.seed, vocab=vocab
    )
    print(f"\nsample (temperature {args.temperature:g}):\n{prime}{generated}")
    if result.checkpoint:
        print(f"\nmore: python -m fastrnn generate {result.checkpoint}")
    return 0


def _vocab_of(checkpoint, path):
    extra = checkpoint.extra
    if not isinstance(extra, dict) or "vocab" not in extra:
        raise SystemExit(f"error: {path} holds no vocabulary: was it written by train-text?")
    try:
        return CharVocab.from_dict(extra["vocab"])
    except (TypeError, ValueError) as e:
        raise SystemExit(f"error: {path}: bad vocabulary: {e}")


def _token_model(model, vocab, path):
    """Fails unless ``model`` maps the vocabulary's ids to as many scores: Embedding first, output
    of the vocabulary's size last."""
    layers = list(model) if isinstance(model, Sequential) else [model]
    if not isinstance(layers[0], Embedding):
        fail(
            f"{path} holds no character model (its first layer is not an Embedding): "
            "was it written by train-text?"
        )
    n_in = layers[0].num_embeddings
    n_out = getattr(layers[-1], "out_features", None)
    if n_in != len(vocab) or n_out != len(vocab):
        fail(
            f"{path}: the vocabulary has {len(vocab)} characters but the model takes {n_in} and "
            f"scores {n_out if n_out is not None else 'an unknown number of'} tokens"
        )


def _generate(args):
    fits_in_memory(16 * args.length, f"--length {args.length}")
    _setup(args)
    try:
        ckpt = load_checkpoint(args.checkpoint)
    except (CheckpointError, OSError) as e:
        fail(e)
    vocab = _vocab_of(ckpt, args.checkpoint)
    _token_model(ckpt.model, vocab, args.checkpoint)
    # Without --prime the model continues from a line break (the start of a line), not printed.
    prime = args.prime if args.prime is not None else ("\n" if "\n" in vocab.chars else vocab.chars[0])
    missing = sorted(set(prime) - set(vocab.chars))
    if missing:
        fail(f"--prime uses characters the model never saw: {''.join(missing)!r}")
    _, text = sample(
        ckpt.model,
        prime,
        args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        vocab=vocab,
    )
    print(prime + text if args.prime is not None else text.lstrip("\n"))
    return 0


# -- forecast ---------------------------------------------------------------------------------------


def _forecast(args):
    output_path(args.out, "--out")
    need = recurrent_bytes(args.cell, 1, args.hidden, args.layers, args.bptt, args.batch_size)
    fits_in_memory(need, f"a {args.cell} of --hidden {args.hidden} x --layers {args.layers}")
    if args.csv is None:  # the series, its one pass through the model, and its generation
        what = f"--length {args.length}"
        fits_in_memory(
            forward_bytes(args.cell, args.hidden, args.layers, args.length) + 320 * args.length, what
        )
    _setup(args)
    if args.csv is None:
        series, name = mackey_glass(args.length), "Mackey-Glass (tau=17)"
    else:
        try:
            series, name = read_csv_column(args.csv, args.column)
        except (OSError, ValueError) as e:
            fail(e)
        fits_in_memory(
            forward_bytes(args.cell, args.hidden, args.layers, len(series)), f"{len(series)} values"
        )
    n_test = int(len(series) * args.test_fraction)
    if len(series) - n_test < args.batch_size + 1 or n_test < 2:
        raise SystemExit(
            f"error: {len(series)} values are too few (need room for "
            f"--batch-size {args.batch_size} training streams and a test part)"
        )
    train_part = series[: len(series) - n_test]
    mean, std = float(train_part.mean()), float(train_part.std()) or 1.0
    z = ((series - mean) / std).astype(np.float32)[:, None]  # (N, 1)
    zt = z[: len(z) - n_test]

    model = Sequential(
        _recurrent(args.cell, 1, args.hidden, args.layers, 0.0, "float32", args.seed),
        Linear(args.hidden, 1, seed=args.seed + 1),
    )
    print(f"series: {name}: {len(series)} values, last {n_test} for testing")
    result = _train(args, model, zt[:-1], zt[1:], None, {"mean": mean, "std": std, "series": name}, args.out)

    # One pass over the whole series (the test part continues from the state the training part
    # ends in); the prediction for step t+1 is the output at step t.
    model.eval()
    pred = model(z[:-1, None])[:, 0, 0] * std + mean
    truth = series[1:]
    test = slice(len(truth) - n_test, None)
    rmse = float(np.sqrt(np.mean((pred[test] - truth[test]) ** 2)))
    naive = float(np.sqrt(np.mean((series[:-1][test] - truth[test]) ** 2)))
    print(
        f"one-step-ahead test RMSE: model {rmse:.5f}, persistence (next = last) {naive:.5f} "
        f"-> {_versus(rmse, naive)}"
    )
    print("   t       actual    predicted")
    for t in range(len(truth) - n_test, len(truth) - n_test + 5):
        print(f"{t + 1:5d}  {truth[t]:11.5f}  {pred[t]:11.5f}")
    return 0 if math.isfinite(rmse) and result.steps > 0 else 1


def _versus(rmse, naive):
    """How the model's RMSE compares with the baseline's, in words that stay true when it loses."""
    if not (math.isfinite(rmse) and math.isfinite(naive)):
        return "no comparison (a non-finite RMSE)"
    if rmse == naive:
        return "the same as the baseline"
    if rmse < naive:
        return f"{naive / rmse:.1f}x lower than the baseline" if rmse > 0 else "zero, the baseline's is not"
    return (
        f"{rmse / naive:.1f}x higher than the baseline (worse)"
        if naive > 0
        else "higher than the baseline's zero"
    )


# -- demo -------------------------------------------------------------------------------------------


def _step_ms(model, x, y, backend, repeat):
    """Median ms of one training step's forward + loss + backward on ``backend`` (after two
    untimed steps)."""
    from ._backend import use_backend
    from .losses import cross_entropy

    times = []
    with use_backend(backend):
        for _ in range(repeat + 2):
            t0 = time.perf_counter()
            out = model(x)
            _, d = cross_entropy(out, y)
            model.zero_grad()
            model.backward(d)
            times.append(time.perf_counter() - t0)
    model.zero_grad()
    return 1e3 * float(np.median(times[2:]))


def _demo(args):
    output_path(args.out, "--out")
    fits_in_memory(recurrent_bytes("lstm", 64, args.hidden, 1, 64, 32), f"an lstm of --hidden {args.hidden}")
    _setup(args)
    text, source = python_docs_text(), "the Python documentation (pydoc_data.topics)"
    vocab = CharVocab.from_text(text)
    ids = np.asarray(vocab.encode(text), np.int64)
    train_ids, held_ids = _split(ids, 0.02)
    model = char_model(len(vocab), "lstm", args.hidden, 1, 64, seed=args.seed)
    print(
        f"fastrnn demo: a character-level LSTM (hidden {args.hidden}) learns to write like\n"
        f"{source}: {len(text):,} characters, {len(vocab)} distinct.\n"
        f"Training for {args.seconds:g} s (truncated BPTT, 64-step chunks, 32 streams, Adam); "
        f"chance level is loss {math.log(len(vocab)):.2f}.\n"
    )
    last = [time.perf_counter()]

    def report(step, loss):
        now = time.perf_counter()
        if now - last[0] >= args.report_every:
            print(f"  step {step:5d}  training loss {loss:.3f}", flush=True)
            last[0] = now

    t0 = time.perf_counter()
    before = evaluate(model, held_ids[:-1], held_ids[1:], bptt=64, batch_size=32)
    print(f"  held-out loss before training: {before:.3f}")
    result = train(
        model,
        train_ids[:-1],
        train_ids[1:],
        optimizer=optim.Adam(model.parameters(), lr=3e-3),
        bptt=64,
        batch_size=32,
        epochs=100,
        max_seconds=args.seconds,
        progress=False,
        callback=report,
        eval_data=(held_ids[:-1], held_ids[1:]),
        checkpoint=args.out,
        extra={"vocab": vocab.to_dict(), "corpus": source},
    )
    after = result.best_loss
    print(
        f"  held-out loss after {result.steps} steps ({time.perf_counter() - t0:.0f} s): "
        f"{after:.3f} ({after / math.log(2):.2f} bits per character)"
        + ("  [interrupted]" if result.interrupted else "")
    )

    prime = "The "
    _, generated = sample(model, prime, args.sample_length, temperature=0.7, seed=args.seed, vocab=vocab)
    print(f"\nSample (temperature 0.7, prime {prime!r}):\n{prime}{generated}\n")

    x = np.ascontiguousarray(train_ids[: 64 * 32].reshape(32, 64).T)
    y = np.ascontiguousarray(train_ids[1 : 64 * 32 + 1].reshape(32, 64).T)
    # Native first: NumPy's BLAS threads keep spinning for a while after its calls.
    native = {}
    if _backend.native_available():
        from ._backend import get_num_threads, set_num_threads

        before = get_num_threads()
        try:
            for n in sorted({1, os.cpu_count() or 1, before}):
                set_num_threads(n)
                native[n] = _step_ms(model, x, y, "native", 10)
        finally:
            set_num_threads(before)
    t_numpy = _step_ms(model, x, y, "numpy", 3)
    print("Speed of one training step (forward + loss + backward, 64 steps x 32 streams):")
    print(f"  numpy backend             {t_numpy:7.1f} ms   (NumPy's BLAS may use every core)")
    for n, t in native.items():
        print(f"  native backend, {n} thread{'s' if n > 1 else ' '} {t:7.1f} ms   {t_numpy / t:.1f}x faster")
    if not native:
        print("  (the native backend is not available here: only the numpy backend ran)")
    if args.out:
        print(f"\nThe best model is in {args.out}: python -m fastrnn generate {args.out}")
    return 0


# -- registration -----------------------------------------------------------------------------------


def add_commands(sub):
    """Adds train-text, generate, forecast and demo to an argparse subparsers object."""
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "train-text",
        help="train a character-level language model on a text file",
        formatter_class=raw,
        description="Trains an Embedding -> LSTM/GRU/RNN -> Linear character model with truncated\n"
        "BPTT on FILE (UTF-8; default: the Python documentation shipped with CPython\n"
        "as pydoc_data.topics, so no download is needed). The last --val-fraction of\n"
        "the text is held out; whenever its loss improves the model is saved to --out\n"
        "(with the vocabulary). Ctrl-C stops cleanly and keeps the best checkpoint.\n"
        "At the end a sample is printed.",
        epilog="examples:\n"
        "  python -m fastrnn train-text --minutes 5\n"
        "  python -m fastrnn train-text my.txt --hidden 512 --layers 2 --epochs 3 --out m.npz\n"
        "  python -m fastrnn generate m.npz --prime 'Once' --length 400",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="UTF-8 text (default: Python docs)")
    _training_args(p, hidden=256, bptt=64, batch=32, lr=3e-3)
    p.add_argument("--embed", type=positive_int, default=64, help="embedding size (default: 64)")
    p.add_argument(
        "--dropout", type=probability, default=0.0, help="dropout between stacked layers (default: 0)"
    )
    p.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.05,
        help="fraction of the text held out for evaluation (default: 0.05)",
    )
    p.add_argument("--out", default="char_model.npz", help="checkpoint path (default: char_model.npz)")
    p.add_argument("--prime", default="", help="start of the final sample")
    p.add_argument(
        "--sample-length",
        type=positive_int,
        default=300,
        help="characters in the final sample (default: 300)",
    )
    p.add_argument(
        "--temperature",
        type=nonnegative_number,
        default=0.8,
        help="sampling temperature (default: 0.8; 0 = greedy)",
    )
    p.set_defaults(run=_train_text)

    p = sub.add_parser(
        "generate",
        help="sample text from a train-text checkpoint",
        description="Loads a checkpoint written by train-text (or demo) and continues --prime.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .npz written by train-text or demo")
    p.add_argument("--prime", help="text to continue (default: the vocabulary's first character)")
    p.add_argument("--length", type=positive_int, default=500, help="characters to generate (default: 500)")
    p.add_argument(
        "--temperature",
        type=nonnegative_number,
        default=0.8,
        help="sampling temperature (default: 0.8; 0 = greedy)",
    )
    p.add_argument("--top-k", type=positive_int, help="sample only from the k likeliest characters")
    p.add_argument("--seed", type=int, help="random seed (default: fresh randomness)")
    p.add_argument("--backend", choices=("native", "numpy"), help="backend (default: native)")
    p.set_defaults(run=_generate, threads=None)

    p = sub.add_parser(
        "forecast",
        help="one-step-ahead forecasting of a numeric series",
        formatter_class=raw,
        description="Trains a recurrent model -> Linear to predict the next value of a series from\n"
        "the values so far (MSE on the standardised series, truncated BPTT), then\n"
        "reports the one-step-ahead RMSE on the held-out tail against the persistence\n"
        "baseline (next value = last value). Default series: the chaotic Mackey-Glass\n"
        "equation (tau=17), generated on the spot.",
        epilog="examples:\n"
        "  python -m fastrnn forecast\n"
        "  python -m fastrnn forecast prices.csv --column close --epochs 30",
    )
    p.add_argument(
        "csv", nargs="?", metavar="CSV", help="CSV file; a first row that is not all numbers is a header"
    )
    p.add_argument("--column", help="column name or 0-based index (default: the last column)")
    p.add_argument(
        "--length",
        type=positive_int,
        default=3000,
        help="Mackey-Glass values to generate when no CSV is given (default: 3000)",
    )
    p.add_argument(
        "--test-fraction",
        type=fraction,
        default=0.2,
        help="fraction of the series held out for testing (default: 0.2)",
    )
    p.add_argument("--out", help="also save the best model to this checkpoint")
    _training_args(p, hidden=64, bptt=50, batch=16, lr=1e-2, epochs=300, eval_every=100)
    p.set_defaults(run=_forecast)

    p = sub.add_parser(
        "demo",
        help="train a small char-LSTM for about a minute and show what it learned",
        description="Trains a character-level LSTM on the Python documentation (shipped with\n"
        "CPython) for --seconds, printing the falling loss; then prints a generated\n"
        "sample and how much faster one training step runs on the native backend than\n"
        "on the numpy reference backend.",
        formatter_class=raw,
    )
    p.add_argument("--seconds", type=positive_number, default=60.0, help="training time (default: 60)")
    p.add_argument("--hidden", type=positive_int, default=256, help="hidden units (default: 256)")
    p.add_argument(
        "--report-every", type=positive_number, default=5.0, help="seconds between loss lines (default: 5)"
    )
    p.add_argument(
        "--sample-length", type=positive_int, default=300, help="characters in the sample (default: 300)"
    )
    p.add_argument(
        "--out", default="demo_model.npz", help="checkpoint of the best model (default: demo_model.npz)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--threads", type=positive_int, help="native kernel threads (default: 1)")
    p.set_defaults(run=_demo, backend=None)
