"""Scoring a trained forecaster over many independent series on a Dask cluster.

Train once: ``python -m fastrnn forecast --out forecaster.npz``. That checkpoint holds the model (a
recurrent layer -> Linear(H, 1)) and the mean and std of the series it was trained on, because the
model works on standardised values. This script runs the model over many series, one step ahead:
at every step the model has seen the true values so far and predicts the next one. For each series
it reports the RMSE of these predictions (after --warmup steps in which the state settles), the RMSE
of the persistence baseline (next value = last value) and the forecast of the value after the last.

The work runs on dask.distributed: a LocalCluster of worker processes by default, or any running
scheduler (--scheduler tcp://host:8786; its workers need numpy and fastrnn but not this file, as
Dask pickles a script's functions by value). The model is sent to every worker once
(Client.scatter with broadcast=True). The series are cut into partitions of --partition-size
series, which are scattered to the workers and scored as one batch each (padded to the longest
series, with lengths). The results come back in input order. --check also scores the same
partitions in this process and compares the two.

    python -m fastrnn forecast --out forecaster.npz
    python examples/dask_forecast.py forecaster.npz --series 2000 --check
    python examples/dask_forecast.py forecaster.npz series.csv --out scores.csv
    python examples/dask_forecast.py forecaster.npz --series 100000 --scheduler tcp://scheduler-host:8786

Input series: a .npy file, 1-D (one series) or 2-D (one series per row; trailing NaNs pad the
shorter ones), or a CSV file with one series per row (rows may differ in length). Without a file,
--series windows cut from Mackey-Glass trajectories (fastrnn.datasets.mackey_glass).
"""

import argparse
import csv
import math
import os
import time

import numpy as np

import fastrnn as fr


# -- the forecaster and the series -----------------------------------------------------------------

def load_forecaster(path):
    """(model in eval mode, mean, std) from a checkpoint of ``python -m fastrnn forecast``."""
    try:
        model, _, extra = fr.load_checkpoint(path)
    except (fr.CheckpointError, OSError) as e:
        raise SystemExit(f"error: {e}")
    if not isinstance(model, fr.Sequential):
        raise SystemExit(f"error: {path} holds a {type(model).__name__}, not a Sequential "
                         "forecaster: was it written by `python -m fastrnn forecast`?")
    stats = extra if isinstance(extra, dict) else {}
    mean, std = stats.get("mean"), stats.get("std")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (mean, std)) or std <= 0:
        raise SystemExit(f"error: {path} has no finite mean and std > 0 of its training series: "
                         "was it written by `python -m fastrnn forecast`?")
    if any(getattr(layer, "bidirectional", False) for layer in model):
        raise SystemExit(f"error: {path}: a bidirectional model reads the future: no forecaster")
    model.eval()
    try:
        out = model(np.zeros((2, 1, 1), model.parameters()[0].data.dtype))
    except (ValueError, TypeError) as e:
        raise SystemExit(f"error: {path}: the model does not take one value per step: {e}")
    if out.shape != (2, 1, 1):
        raise SystemExit(f"error: {path}: the model gives {out.shape[-1]} values per step, not one")
    return model, float(mean), float(std)


def generated_series(count, length, min_length, seed):
    """``count`` windows of ``min_length``..``length`` values, each at a random offset of one of 8
    Mackey-Glass trajectories that start from different constant histories (chaos makes them
    diverge)."""
    rng = np.random.default_rng(seed)
    span = 4 * length
    bases = [fr.datasets.mackey_glass(span, x0=x0) for x0 in np.linspace(0.6, 1.4, 8)]
    sizes = rng.integers(min_length, length + 1, size=count)
    which = rng.integers(0, len(bases), size=count)
    starts = rng.integers(0, span - sizes + 1)
    return [bases[b][s:s + n] for b, s, n in zip(which, starts, sizes)]


def _trim_padding(row, where):
    """A float64 row without its trailing NaNs; any other non-finite value is an error."""
    n = len(row)
    while n and math.isnan(row[n - 1]):
        n -= 1
    if not np.all(np.isfinite(row[:n])):
        raise SystemExit(f"error: {where} holds a NaN or infinity before its end")
    return row[:n]


def read_series(path):
    """The series in a .npy or CSV file (see the module docstring), as a list of float64 arrays."""
    try:
        if path.endswith(".npy"):
            data = np.load(path, allow_pickle=False)
            if data.ndim not in (1, 2) or data.dtype.kind not in "iuf":
                raise SystemExit(f"error: {path}: expected a 1-D or 2-D array of numbers, got "
                                 f"{data.ndim}-D {data.dtype}")
            rows = np.atleast_2d(data.astype(np.float64))
            return [_trim_padding(row, f"{path}, row {i}") for i, row in enumerate(rows)]
        series = []
        with open(path, newline="", encoding="utf-8-sig") as f:
            for line, row in enumerate(csv.reader(f), 1):
                cells = [c.strip() for c in row]
                while cells and not cells[-1]:
                    cells.pop()
                if not cells:
                    continue
                try:
                    series.append(_trim_padding(np.array([float(c) for c in cells]),
                                                f"{path}, line {line}"))
                except ValueError:
                    raise SystemExit(f"error: {path}, line {line}: expected numbers separated by "
                                     f"commas, got {row[:4]}{'...' if len(row) > 4 else ''}")
        return series
    except (OSError, ValueError, EOFError) as e:
        raise SystemExit(f"error: cannot read {path}: {e}")


# -- scoring (this runs on the workers) ------------------------------------------------------------

def score_partition(series, model, mean, std, warmup, threads):
    """(len(series), 3) float64: one-step RMSE of the model, of persistence, and the next-value
    forecast, for each series of one partition, run as one batch."""
    # Worker processes are the parallelism: one per core, each with ``threads`` kernel threads
    # (1 by default) so that workers x threads does not oversubscribe the cores. Set here, in the
    # task, so that workers that join a running cluster later get it too.
    if fr.get_num_threads() != threads:
        fr.set_num_threads(threads)
    lengths = np.array([len(s) for s in series], np.int64)
    z = np.zeros((int(lengths.max()), len(series), 1), model.parameters()[0].data.dtype)
    for j, s in enumerate(series):
        z[:len(s), j, 0] = (s - mean) / std
    # A causal model: the output at step t depends on steps <= t only, so padding never leaks in.
    # It is the prediction of the value at t + 1. An eval-mode forward keeps nothing of the call
    # in the model (no cache) and only reads the weights: threads of one worker may share it.
    pred = model(z, lengths=lengths)[:, :, 0].astype(np.float64) * std + mean
    out = np.empty((len(series), 3))
    for j, s in enumerate(series):
        n = len(s)
        truth = s[warmup + 1:]
        out[j, 0] = np.sqrt(np.mean((pred[warmup:n - 1, j] - truth) ** 2))
        out[j, 1] = np.sqrt(np.mean((s[warmup:n - 1] - truth) ** 2))
        out[j, 2] = pred[n - 1, j]
    return out


def score_serial(model, mean, std, parts, warmup, threads):
    """The single-process loop: the same partitions, in order, in this process."""
    before = fr.get_num_threads()
    try:
        return np.concatenate([score_partition(p, model, mean, std, warmup, threads)
                               for p in parts])
    finally:
        fr.set_num_threads(before)


def score_on_cluster(client, model, mean, std, parts, warmup, threads, progress=True):
    """Scores the partitions on the cluster behind ``client``; results in input order."""
    shared = client.scatter(model, broadcast=True, hash=False)   # once per worker, not per task
    data = client.scatter(parts, hash=False)                      # spread over the workers
    futures = client.map(score_partition, data, model=shared, mean=mean, std=std, warmup=warmup,
                         threads=threads, pure=False)
    if progress:
        _show_progress(futures)
    return np.concatenate(client.gather(futures))


def _show_progress(futures):
    """tqdm's bar over the partitions as they finish, or a plain text bar without tqdm. (Not
    distributed.progress: its scheduler-side feed can still be running when the cluster closes,
    and then the scheduler logs a CancelledError traceback.)"""
    from distributed import as_completed
    try:
        from tqdm import tqdm
    except ImportError:
        n = len(futures)
        for done, _ in enumerate(as_completed(futures), 1):
            filled = 40 * done // n
            print(f"\r[{'#' * filled}{' ' * (40 - filled)}] | {100 * done // n:3d}% Completed | "
                  f"{done} of {n} partitions", end="", flush=True)
        print()
        return
    with tqdm(total=len(futures), unit="partition", desc="scoring") as bar:
        for _ in as_completed(futures):
            bar.update()


# -- command line ----------------------------------------------------------------------------------

def _positive(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[2:4]))
    p.add_argument("checkpoint", help="a .npz written by `python -m fastrnn forecast --out`")
    p.add_argument("file", nargs="?", help="series to score: .npy or .csv (default: generated)")
    g = p.add_argument_group("generated series (without FILE)")
    g.add_argument("--series", type=_positive, help="how many (default: 1000)")
    g.add_argument("--length", type=_positive, help="values each (default: 500)")
    g.add_argument("--min-length", type=_positive,
                   help="lengths drawn from [min-length, length] (default: all --length)")
    g.add_argument("--seed", type=int, help="seed of the windows (default: 0)")
    p.add_argument("--warmup", type=int, default=50,
                   help="first predictions of each series left out of its RMSE (default: 50)")
    p.add_argument("--partition-size", type=_positive, default=256,
                   help="series per task (default: 256)")
    c = p.add_argument_group("cluster")
    c.add_argument("--scheduler", help="address of a running scheduler (default: a LocalCluster)")
    c.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the scheduler (default: 10)")
    c.add_argument("--workers", type=_positive, help="LocalCluster worker processes "
                   f"(default: {os.cpu_count() or 1}, one per core)")
    c.add_argument("--dashboard", metavar="ADDRESS",
                   help="serve the LocalCluster's dashboard there, e.g. :8787 (needs bokeh)")
    c.add_argument("--threads", type=_positive, default=1,
                   help="fastrnn kernel threads per worker (default: 1: the workers are the "
                        "parallelism, one per core)")
    p.add_argument("--check", action="store_true",
                   help="also score in this process and compare (exits 1 on a mismatch)")
    p.add_argument("--out", help="write a CSV: series,length,rmse,persistence_rmse,next_value")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.warmup < 0:
        p.error(f"argument --warmup: expected an integer >= 0, got {args.warmup}")
    if args.threads > 1024:    # fastrnn.set_num_threads's range, checked before any worker fails
        p.error(f"argument --threads: expected at most 1024, got {args.threads}")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        p.error(f"argument --timeout: expected a number of seconds > 0, got {args.timeout}")
    if args.scheduler and (args.workers or args.dashboard):
        p.error("--workers and --dashboard are for the LocalCluster; a --scheduler brings its own")
    generated = ("series", "length", "min_length", "seed")
    if args.file is not None:
        given = [f"--{n.replace('_', '-')}" for n in generated if getattr(args, n) is not None]
        if given:
            p.error(f"{', '.join(given)}: for generated series, not with FILE {args.file}")
    else:
        for name, default in zip(generated, (1000, 500, None, 0)):
            if getattr(args, name) is None:
                setattr(args, name, default)
        args.min_length = args.min_length or args.length
        if args.min_length > args.length:
            p.error(f"--min-length {args.min_length} is more than --length {args.length}")
        if args.min_length < args.warmup + 2:
            p.error(f"series of {args.min_length} values leave nothing to score after "
                    f"--warmup {args.warmup} (need at least {args.warmup + 2})")
    return args


def _connect(args):
    """(client, cluster or None, description)."""
    from distributed import Client, LocalCluster
    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout=args.timeout)
        except (OSError, ValueError, TypeError) as e:
            raise SystemExit(f"error: cannot connect to the scheduler {args.scheduler}: {e}")
        return client, None, f"scheduler {args.scheduler}"
    workers = args.workers or os.cpu_count() or 1
    # Processes, one thread each: fastrnn releases the GIL, but separate processes keep the
    # example honest about what a multi-machine cluster has to ship. The scheduler serves HTTP
    # (health, metrics) even without a dashboard, by default on 8787; a random local port never
    # collides with another cluster on this machine (a taken 8787 warns and moves).
    http = {"dashboard_address": args.dashboard} if args.dashboard else {
        "dashboard_address": "127.0.0.1:0", "scheduler_kwargs": {"dashboard": False}}
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, **http)
    return Client(cluster), cluster, f"LocalCluster of {workers} worker process(es) x 1 thread"


def _write_csv(path, lengths, results):
    try:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["series", "length", "rmse", "persistence_rmse", "next_value"])
            for i, (n, row) in enumerate(zip(lengths, results)):
                w.writerow([i, int(n)] + [repr(float(v)) for v in row])   # repr: exact round trip
    except OSError as e:
        raise SystemExit(f"error: cannot write {path}: {e}")


def main(argv=None):
    """Runs the command line; returns a dict with "results" ((N, 3) as score_partition gives),
    "lengths", "seconds" (on the cluster) and, with --check, "serial" and "serial_seconds"."""
    args = _parse(argv)
    model, mean, std = load_forecaster(args.checkpoint)
    if args.file is None:
        series = generated_series(args.series, args.length, args.min_length, args.seed)
        sizes = (f"{args.min_length}-" if args.min_length < args.length else "") + str(args.length)
        source = f"{len(series)} Mackey-Glass windows of {sizes} values (seed {args.seed})"
    else:
        series, source = read_series(args.file), args.file
        if not series:
            raise SystemExit(f"error: {args.file} holds no series")
        short = [i for i, s in enumerate(series) if len(s) < args.warmup + 2]
        if short:
            raise SystemExit(f"error: {args.file}: series {short[0]} has {len(series[short[0]])} "
                             f"values; each needs at least --warmup + 2 = {args.warmup + 2}")
    lengths = np.array([len(s) for s in series])
    size = args.partition_size
    parts = [series[i:i + size] for i in range(0, len(series), size)]
    print(f"model: {args.checkpoint}: {' -> '.join(type(m).__name__ for m in model)}, inputs "
          f"standardised with its training series' mean {mean:.4g} and std {std:.4g}")
    print(f"series: {source}: {lengths.sum():,} values in {len(parts)} partition(s)")

    import distributed   # only here: the example needs dask, fastrnn never imports it
    t0 = time.perf_counter()
    client, cluster, where = _connect(args)
    try:
        print(f"cluster: {where}, up in {time.perf_counter() - t0:.1f} s "
              f"(fastrnn threads per worker: {args.threads}; dask {distributed.__version__})")
        t0 = time.perf_counter()
        results = score_on_cluster(client, model, mean, std, parts, args.warmup, args.threads,
                                   progress=not args.no_progress)
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(f"scored {len(series):,} series in {seconds:.2f} s "
          f"({lengths.sum() / seconds:,.0f} values/s)")
    better = np.mean(results[:, 0] < results[:, 1])
    print(f"one-step RMSE after {args.warmup} warm-up steps, median over the series: model "
          f"{np.median(results[:, 0]):.5f}, persistence {np.median(results[:, 1]):.5f}; the model "
          f"is better on {better:.1%} of them")
    run = {"results": results, "lengths": lengths, "seconds": seconds}
    if args.check:
        t0 = time.perf_counter()
        run["serial"] = score_serial(model, mean, std, parts, args.warmup, args.threads)
        run["serial_seconds"] = time.perf_counter() - t0
        same = np.array_equal(run["serial"], results)
        # Another machine's workers may run another CPU path (fr.info()["cpu_path"]): last bits.
        rtol = 1e-5 if model.parameters()[0].data.dtype == np.float32 else 1e-10
        close = same or np.allclose(results, run["serial"], rtol=rtol, atol=0)
        print(f"check: a single-process loop over the same partitions took "
              f"{run['serial_seconds']:.2f} s and gave "
              + ("bitwise the same numbers" if same else
                 f"numbers within rtol {rtol:g}" if close else "DIFFERENT numbers"))
        if not close:
            raise SystemExit(1)
    if args.out:
        _write_csv(args.out, lengths, results)
        print(f"wrote {args.out}")
    return run


if __name__ == "__main__":
    main()
