"""Matplotlib figures of data and fitted components."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from bgmm.data import GMMData
from bgmm.params import GMMParams

__all__ = ["add_ellipses", "plot_fit", "save_figure"]


def add_ellipses(ax, params: GMMParams, dims=(0, 1), n_std=(1.0, 2.0), **kwargs) -> None:
    r"""Draw the ``n_std``-standard-deviation ellipses of every component on ``ax``.

    The ellipse of component *k* is :math:`\{x : (x-\mu_k)^T \Sigma_k^{-1} (x-\mu_k) = c^2\}`
    in the two features ``dims``, with axes along the eigenvectors of the 2 x 2 block.
    """
    i, j = dims
    colors = kwargs.pop("colors", None) or [f"C{k}" for k in range(params.n_components)]
    for k in range(params.n_components):
        block = params.covariances[k][np.ix_([i, j], [i, j])]
        eigvals, eigvecs = np.linalg.eigh(block)
        angle = float(np.degrees(np.arctan2(eigvecs[1, -1], eigvecs[0, -1])))
        for c in n_std:
            width, height = 2.0 * c * np.sqrt(np.maximum(eigvals[::-1], 0.0))
            ax.add_patch(
                Ellipse(
                    (params.means[k, i], params.means[k, j]),
                    width,
                    height,
                    angle=angle,
                    fill=False,
                    color=colors[k % len(colors)],
                    lw=1.5,
                    **kwargs,
                )
            )
        ax.plot(*params.means[k, [i, j]], marker="x", color=colors[k % len(colors)], ms=10)


def plot_fit(data: GMMData, params: GMMParams, labels=None, *, title: str = "") -> Figure:
    """Scatter the first two features with the fitted component ellipses (1 and 2 sd)."""
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    X = np.asarray(data.values)
    colors = None if labels is None else [f"C{k}" for k in labels]
    ax.scatter(X[:, 0], X[:, 1], s=12, c=colors, alpha=0.6, edgecolors="none")
    add_ellipses(ax, params)
    ax.set_xlabel(data.feature_names[0])
    ax.set_ylabel(data.feature_names[1] if data.n_features > 1 else "")
    ax.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save atomically: write a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, dpi=dpi, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
