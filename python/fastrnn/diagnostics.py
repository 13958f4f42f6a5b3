"""Gradient diagnostics: how the gradient of the loss w.r.t. the hidden state changes through time.

After ``layer.backward(...)``, ``layer.dh_norms`` holds ||dLoss/dh_t|| for every layer, direction and
time step (``functional.backward`` sets ``cache.dh_norms`` the same way). Norms that shrink
geometrically towards t = 0 are vanishing gradients; norms that grow are exploding ones.
"""

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:  # matplotlib is optional: imported only when plotting
    from matplotlib.axes import Axes


def plot_grad_norms(
    norms: ArrayLike,
    labels: Sequence[str | None] | None = None,
    ax: "Axes | None" = None,
    path: "str | os.PathLike[str] | None" = None,
    title: str | None = None,
) -> "Axes":
    """Plots ``norms`` (T,) or (K, T) on a log scale against the time step; returns the Axes.

    ``labels`` names the K curves (default: "layer 0", ...), ``ax`` draws into existing axes,
    ``path`` saves the figure (PNG, PDF... by extension). Needs matplotlib (``pip install
    matplotlib``, or the ``bench`` extra).
    """
    try:
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg")  # saving a file needs no display
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plot_grad_norms needs matplotlib: pip install matplotlib") from None
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim == 1:
        norms = norms[None]
    if norms.ndim != 2:
        raise ValueError(f"norms must have shape (T,) or (K, T), got {norms.shape}")
    if labels is None:
        labels = [f"layer {k}" for k in range(len(norms))] if len(norms) > 1 else [None]
    if len(labels) != len(norms):
        raise ValueError(f"labels must name {len(norms)} curves, got {len(labels)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(norms.shape[1])
    for curve, label in zip(norms, labels):
        ax.semilogy(steps, np.where(curve > 0, curve, np.nan), label=label)
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dLoss / dh_t||")
    if title:
        ax.set_title(title)
    if any(label is not None for label in labels):
        ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    if path is not None:
        fig = ax.figure
        root = fig if isinstance(fig, Figure) else fig.figure  # axes of a subfigure: save the whole figure
        root.tight_layout()
        root.savefig(path, dpi=120)
    return ax
