"""Data the command line and the examples train on, all available offline.

- ``python_docs_text()``: the Python reference documentation that ships inside every CPython as
  ``pydoc_data.topics`` (about 0.5 MB of English prose and code), the default char-LM corpus.
- ``mackey_glass(n)``: the Mackey-Glass delay differential equation, the classic chaotic series for
  one-step-ahead forecasting.
- ``read_csv_column(path, column=None)``: one numeric column of a CSV file.
"""

import csv
import io
import math
import numbers
import os

import numpy as np

__all__ = ["python_docs_text", "mackey_glass", "read_csv_column"]


def python_docs_text():
    """The text of every pydoc topic (sorted by topic name), joined by blank lines."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        raise RuntimeError("this Python has no pydoc_data.topics; pass a text file instead") from None
    return "\n\n".join(topics[k].strip() for k in sorted(topics))


def mackey_glass(
    n, tau=17.0, beta=0.2, gamma=0.1, exponent=10.0, dt=0.1, sample_every=10, x0=1.2, discard=500
):
    """``n`` samples of dx/dt = beta x(t - tau) / (1 + x(t - tau)^exponent) - gamma x(t), integrated
    with 4th-order Runge-Kutta at step ``dt`` (the delayed term held at its grid values, averaged at
    half steps) from the constant history x0 and sampled every ``sample_every`` steps (every 1.0 time
    unit by default) after ``discard`` samples of transient. tau=17 gives the usual chaotic series
    with values in about [0.4, 1.4]. Returns float64 (n,)."""
    for name, v, low in (("n", n, 1), ("sample_every", sample_every, 1), ("discard", discard, 0)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    for name, v in (("tau", tau), ("dt", dt)):
        if not (isinstance(v, numbers.Real) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    lag = max(1, int(round(tau / dt)))
    steps = (n + discard) * sample_every
    x = [float(x0)] * (lag + 1) + [0.0] * steps  # Python floats: ~10x faster here than numpy's

    def f(xt, xd):
        return beta * xd / (1.0 + xd**exponent) - gamma * xt

    for i in range(lag, lag + steps):
        d0, d1 = x[i - lag], x[i - lag + 1]
        dm = 0.5 * (d0 + d1)
        k1 = f(x[i], d0)
        k2 = f(x[i] + 0.5 * dt * k1, dm)
        k3 = f(x[i] + 0.5 * dt * k2, dm)
        k4 = f(x[i] + dt * k3, d1)
        x[i + 1] = x[i] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return np.array(x[lag + discard * sample_every + sample_every :: sample_every][:n])


def _number(text):
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _delimiter(lines):
    """The field separator of a CSV file from its first lines: a tab, ';' or ',' when it splits
    every non-blank line into the same number (> 1) of fields (in that order of preference: ','
    also splits numbers written with decimal commas), else ','."""
    lines = [line for line in lines if line.strip()]
    for d in ("\t", ";", ","):
        counts = {len(row) for row in csv.reader(lines, delimiter=d)}
        if len(counts) == 1 and counts.pop() > 1:
            return d
    return ","


def read_csv_column(path, column=None):
    """One numeric column of a CSV file as float64 (N,), and its name.

    Fields are separated by ',', ';' or tabs (found from the first lines). A first row that is not
    all numbers is a header. ``column`` is a header name or a 0-based index
    (an int or a string of digits); by default the last column. Blank lines are skipped; any other
    row whose value in that column is missing, not a number, or not finite raises ValueError naming
    the line. Returns (values, name), name being the header entry or "column <index>".
    """
    path = os.fspath(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    delimiter = _delimiter(text.splitlines()[:50])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = [(i + 1, row) for i, row in enumerate(reader) if any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"{path}: no data rows")
    header = None
    if any(_number(c) is None for c in rows[0][1]):
        header = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{path}: a header but no data rows")
    width = len(header) if header is not None else len(rows[0][1])
    if column is None:
        index = width - 1
    elif isinstance(column, numbers.Integral) and not isinstance(column, bool):
        index = int(column)
    elif isinstance(column, str) and header is not None and column in header:
        index = header.index(column)
    elif isinstance(column, str) and column.strip().isdigit():
        index = int(column)
    else:
        names = f"; columns: {', '.join(header)}" if header else " (the file has no header)"
        raise ValueError(f"{path}: no column {column!r}{names}")
    if not 0 <= index < width:
        raise ValueError(
            f"{path}: column index {index} out of range: the file has {width} "
            f"column{'s' if width != 1 else ''}"
        )
    values = np.empty(len(rows))
    for k, (line, row) in enumerate(rows):
        v = _number(row[index]) if index < len(row) else None
        if v is None:
            cell = repr(row[index]) if index < len(row) else "nothing"
            hint = ""
            if index < len(row) and _number(row[index].replace(",", ".")) is not None:
                hint = " (decimal commas are not read: write 1.5, not 1,5)"
            raise ValueError(f"{path}, line {line}: column {index} holds {cell}, not a finite number{hint}")
        values[k] = v
    name = header[index] if header is not None else f"column {index}"
    return values, name
