"""What every command of ``python -m fastrnn`` checks before it starts any work, and its one-line errors.

A command that cannot succeed (an output path in a missing directory, sizes no machine could hold, a
checkpoint of the wrong kind) stops at once with ``error: ...`` on stderr and exit status 1, never
after minutes of training and never with a traceback.
"""

from ._checks import check_memory, writable_path


def fail(message):
    """Ends the command with ``error: message`` (one line, exit status 1)."""
    raise SystemExit(f"error: {' '.join(str(message).split())}")


def output_path(path, option):
    """``path`` (the value of ``option``), checked to be writable; None passes through."""
    if path is None:
        return None
    try:
        return writable_path(option, path)
    except (OSError, ValueError) as e:
        fail(e.strerror if isinstance(e, OSError) and e.strerror else e)


def fits_in_memory(nbytes, what):
    """Fails when ``what`` needs ``nbytes`` bytes (a lower bound), more than the machine has."""
    try:
        check_memory(int(nbytes), what)
    except MemoryError as e:
        fail(str(e).removeprefix("fastrnn: "))


def recurrent_bytes(cell, input_size, hidden, layers, steps, streams):
    """A lower bound of the bytes (float32) one training step of ``layers`` stacked layers of
    ``cell`` over ``steps`` x ``streams`` positions needs: each weight four times (data, gradient,
    Adam's two moments) and each layer's saved activations (gates and states)."""
    gates = {"lstm": 4, "gru": 3}.get(cell, 1)
    weights = sum(gates * hidden * ((input_size if k == 0 else hidden) + hidden + 2) for k in range(layers))
    saved = steps * streams * layers * (2 * gates * hidden + 4 * hidden)
    return 4 * (4 * weights + saved)


def forward_bytes(cell, hidden, layers, steps):
    """A lower bound of the bytes (float32) an eval forward of one stream over ``steps`` needs: the
    input projection of every step and the output."""
    gates = {"lstm": 4, "gru": 3}.get(cell, 1)
    return 4 * steps * (gates * hidden + hidden * layers)
