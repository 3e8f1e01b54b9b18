r"""Model-based hierarchical agglomeration: the start mclust uses for EM.

Fraley (1998) merges, at every step, the two groups whose union lowers the classification
likelihood of a Gaussian model the least; for the spherical equal-volume model (EII) that
criterion is Ward's sum of squares, merged in :math:`O(n^2)` by SciPy's
``scipy.cluster.hierarchy.ward``. As in mclust (``hcUse = "SVD"``), the groups are formed in
scaled singular-vector coordinates: each feature centred and divided by its standard
deviation, then rotated to the right singular vectors :math:`V` and divided by the square
root of the singular values, :math:`z = X_s V D^{-1/2}`, which makes the spherical
criterion sensitive to elongated clusters without whitening them away. mclust's default
agglomerates with the unconstrained (VVV) criterion instead, whose merges depend on the
order in which ties are broken; bgmm keeps SciPy's well-tested spherical one, and
``init_params="auto"`` adds k-means and k-means++ restarts to it (the README measures
how close each start comes to mclust's log-likelihoods).

With more than ``max_points`` observations, the tree is grown on a random subset (as
mclust does) and every other observation joins the group whose mean is nearest in
:math:`z`.

Sources: Fraley (1998), Algorithms for model-based Gaussian hierarchical clustering, SIAM J. Sci.
Comput. 20(1). Scrucca & Raftery (2015), Improved initialisation of model-based clustering
using Gaussian hierarchical partitions, Adv. Data Anal. Classif. 9.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, ward

__all__ = ["hierarchical_partition", "svd_coordinates"]

#: Observations the tree is grown on at most (mclust's default subset).
MAX_POINTS = 2000


def svd_coordinates(values: np.ndarray) -> np.ndarray:
    r"""The coordinates :math:`z = X_s V D^{-1/2}` of mclust's ``hcUse = "SVD"``.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Finite observations.

    Returns
    -------
    ndarray of shape (n_samples, r)
        The coordinates, with ``r`` the number of non-zero singular values.
    """
    x = np.asarray(values, dtype=np.float64)
    sd = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.ones(x.shape[1])
    scaled = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    _, singular, vt = np.linalg.svd(scaled, full_matrices=False)
    keep = singular > singular.max(initial=0.0) * 1e-12
    if not keep.any():  # every row the same: one coordinate of zeros
        return np.zeros((x.shape[0], 1))
    return scaled @ vt[keep].T / np.sqrt(singular[keep])


def hierarchical_partition(
    values: np.ndarray,
    n_components: int,
    rng: np.random.Generator,
    max_points: int = MAX_POINTS,
) -> np.ndarray:
    """Hard labels of ``n_components`` groups from the agglomerative tree.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        The observations.
    n_components : int
        The number of groups (the tree is cut there).
    rng : numpy.random.Generator
        Draws the subset when there are more than ``max_points`` observations.
    max_points : int, default 2000
        Largest number of observations the tree is grown on.

    Returns
    -------
    ndarray of int, shape (n_samples,)
        Labels ``0 .. n_components - 1``, numbered by first appearance.
    """
    z = svd_coordinates(values)
    n = z.shape[0]
    rows = np.sort(rng.choice(n, max_points, replace=False)) if n > max_points else None
    tree_z = z if rows is None else z[rows]
    if n_components == 1 or tree_z.shape[0] < 2:
        return np.zeros(n, dtype=np.intp)
    labels = fcluster(ward(tree_z), t=n_components, criterion="maxclust") - 1
    if rows is not None:
        centres = np.stack([tree_z[labels == j].mean(axis=0) for j in np.unique(labels)])
        distances = ((z[:, None, :] - centres[None]) ** 2).sum(axis=-1)
        labels = distances.argmin(axis=1)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.intp)
