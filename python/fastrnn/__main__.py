"""Command line: ``python -m fastrnn info``, ``bench``, and (from fastrnn.commands) ``train-text``,
``generate``, ``forecast`` and ``demo``. Each command imports what it needs only when it runs."""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._argtypes import comma_list, merged_lists, positive_int
from ._cells import CELLS
from ._version import __version__


def _parser() -> argparse.ArgumentParser:
    script = os.path.basename(sys.argv[0]) == "fastrnn"  # the console script, not python -m
    parser = argparse.ArgumentParser(
        prog="fastrnn" if script else "python -m fastrnn",
        description="fastrnn: fast CPU RNN, LSTM and GRU (C++ forward and BPTT kernels behind a NumPy API).",
    )
    parser.add_argument("--version", action="version", version=f"fastrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser(
        "info",
        help="show version, backend, compiled CPU paths and thread count",
        description="Prints fastrnn.info(), one key per line.",
    )

    bench = sub.add_parser(
        "bench",
        help="time native vs numpy vs PyTorch vs ONNX Runtime",
        description="Times native (the C++ kernels, if built), numpy (the reference backend), "
        "torch (torch.nn.RNN/LSTM/GRU with the same weights, if installed) and ort (ONNX "
        "Runtime, one RNN/LSTM/GRU node, forward only, if onnx and onnxruntime are installed) "
        "on one layer, one direction, forward and forward+backward, all on the same thread "
        "count (numpy's BLAS too, with threadpoolctl), native rated against the core's "
        "measured FMA peak. Every implementation is "
        "first checked against numpy's outputs and gradients; a disagreement stops the "
        "run before anything is timed. The project's performance grid with its "
        "targets is in the repository's benchmarks/ (python -m benchmarks).",
        epilog="example: python -m fastrnn bench --cells lstm,gru --threads 1",
    )
    bench.add_argument(
        "--cells",
        type=comma_list(CELLS, "cells"),
        action="append",
        metavar="LIST",
        help=f"comma-separated cells from {', '.join(CELLS)} (default: rnn_tanh,lstm,gru)",
    )
    bench.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="floating-point type (default: float32)",
    )
    bench.add_argument(
        "--repeat",
        type=positive_int,
        default=10,
        metavar="N",
        help="timed calls per entry after one warm-up (default: 10)",
    )
    bench.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="threads for the native kernels, torch, ort and numpy's BLAS (default: "
        "fastrnn.get_num_threads())",
    )
    bench.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    bench.add_argument("--no-ort", action="store_true", help="do not time ONNX Runtime")

    from .commands import add_commands

    add_commands(sub)
    return parser


def _torch_version() -> str | None:
    """torch's version when it is installed, read from its metadata (importing torch is slow)."""
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _info() -> int:
    import platform
    import warnings

    import numpy as np

    from ._backend import info

    with warnings.catch_warnings():
        # info() asks for the default backend, which warns when the extension is missing;
        # native_available / native_error say the same here.
        warnings.simplefilter("ignore", RuntimeWarning)
        env: dict[str, Any] = dict(info())
    env.update(
        numpy=np.__version__,
        torch=_torch_version(),
        python=platform.python_version(),
        machine=platform.machine(),
    )
    width = max(len(k) for k in env)
    for key, value in env.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) if value else "(none)"
        elif value is None:
            value = "-"
        print(f"{key.ljust(width)}  {value}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from . import _bench
    from ._backend import set_num_threads

    if args.threads is not None:
        set_num_threads(args.threads)
    return _bench.run(
        cells=merged_lists(args.cells, _bench.DEFAULT_CELLS),
        dtype=args.dtype,
        repeat=args.repeat,
        use_torch=not args.no_torch,
        use_ort=not args.no_ort,
    )


def _run(args: argparse.Namespace) -> int:
    if args.command == "info":
        return _info()
    if args.command == "bench":
        return _bench(args)
    code: int = args.run(args)  # train-text, generate, forecast, demo (fastrnn.commands)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fastrnn`` console script and ``python -m fastrnn``: runs one command, returns its exit
    status. Bad arguments end in argparse's usage error, impossible requests in one ``error:`` line
    before any work (fastrnn._cli)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, MemoryError, OSError) as e:
        # The last guard: what the commands' own checks did not foresee still ends in one line.
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
