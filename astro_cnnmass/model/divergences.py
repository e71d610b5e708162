"""Nonparametric divergences between samples of points, and kernels built from them (for SDM).

The k-nearest-neighbour estimator of the Kullback-Leibler divergence of Wang, Kulkarni & Verdú
(2009, IEEE Trans. Inf. Theory 55, 2392), with the same k in both samples::

    D(P || Q) ≈ (d / n) Σ_i log(ν_k(i) / ρ_k(i)) + log(m / (n − 1)),

where ρ_k(i) is the distance from x_i to its k-th nearest neighbour in X \\ {x_i} and ν_k(i)
that to its k-th nearest neighbour in Y (the ``"kl"`` estimator of Póczos et al. 2012,
arXiv:1202.0302). The k-NN searches use :class:`scipy.spatial.cKDTree`: one tree per sample and
one batched query per tree. :func:`divergence_kernel` turns divergences into a kernel and
:func:`project_psd` makes it positive semi-definite (Chen et al. 2009).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["divergence_kernel", "kl_divergence_matrix", "knn_kl_divergence", "project_psd"]


DEFAULT_K = 4


# ---------------------------------------------------------------------------- samples
def _as_bags(points: Any, offsets: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(points (N, d) float64, offsets (n + 1) int64)`` with checks."""
    pts = np.asarray(points, dtype=float)
    if pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim != 2:
        raise ValueError(f"points must be of shape (N,) or (N, d), got {pts.shape}")
    off = np.asarray(offsets, dtype=np.int64)
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != pts.shape[0]:
        raise ValueError("offsets must be 1-D, start at 0 and end at the number of points")
    if np.any(np.diff(off) < 0):
        raise ValueError("offsets must be non-decreasing")
    return pts, off


def _self_log_rho(
    points: np.ndarray, offsets: np.ndarray, k: int, min_dist: float, workers: int
) -> np.ndarray:
    """log of the distance of every point to its k-th neighbour within its own sample.

    One tree for all samples: each sample is moved along an extra coordinate by a multiple of
    a length larger than any distance within a sample, so that (for samples of at least
    ``k + 1`` points) the ``k + 1`` nearest points of a point all belong to its own sample.
    """
    n_s = offsets.size - 1
    sid = np.repeat(np.arange(n_s), np.diff(offsets)).astype(float)
    span = float(np.ptp(points, axis=0).max()) if points.size else 0.0
    gap = 4.0 * span + 1.0
    tree = cKDTree(np.column_stack([points, sid * gap]))
    dist, _ = tree.query(np.column_stack([points, sid * gap]), k=[k + 1], workers=workers)
    return np.log(np.maximum(dist[:, 0], min_dist))


def _cross_log_nu_sums(
    points_a: np.ndarray,
    offsets_a: np.ndarray,
    points_b: np.ndarray,
    offsets_b: np.ndarray,
    k: int,
    min_dist: float,
    workers: int,
) -> np.ndarray:
    """``S[i, j] = Σ_{x in A_i} log ν_k(x; B_j)``: one tree per B sample, one query each."""
    n_a, n_b = offsets_a.size - 1, offsets_b.size - 1
    out = np.empty((n_a, n_b))
    starts = offsets_a[:-1]
    for j in range(n_b):
        tree = cKDTree(points_b[offsets_b[j] : offsets_b[j + 1]])
        dist, _ = tree.query(points_a, k=[k], workers=workers)
        out[:, j] = np.add.reduceat(np.log(np.maximum(dist[:, 0], min_dist)), starts)
    return out


def kl_divergence_matrix(
    points_a: Any,
    offsets_a: Any,
    points_b: Any = None,
    offsets_b: Any = None,
    *,
    k: int = DEFAULT_K,
    min_dist: float = 1e-6,
    workers: int = 1,
) -> np.ndarray:
    """k-NN estimates of D(A_i || B_j) for every pair of samples (Wang, Kulkarni & Verdú 2009).

    Parameters
    ----------
    points_a : array-like, shape (N_a,) or (N_a, d)
        Points of all samples of set A, sample after sample.
    offsets_a : array-like of int, shape (n_a + 1,)
        Sample ``i`` is ``points_a[offsets_a[i]:offsets_a[i + 1]]``.
    points_b, offsets_b : optional
        Set B (default: A itself; the diagonal is then set to 0).
    k : int
        Neighbour order (paper: 4). Every sample needs at least ``k + 1`` points.
    min_dist : float
        Floor of the neighbour distances (same units as the points).
    workers : int
        Threads of :meth:`scipy.spatial.cKDTree.query` (-1: all cores).

    Returns
    -------
    numpy.ndarray, shape (n_a, n_b)
        D[i, j] ≈ KL(P_Ai || P_Bj) in nats.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pa, oa = _as_bags(points_a, offsets_a)
    same = points_b is None
    pb, ob = (pa, oa) if same else _as_bags(points_b, offsets_b)
    if pa.shape[1] != pb.shape[1]:
        raise ValueError(f"samples of dimension {pa.shape[1]} and {pb.shape[1]}")
    na, nb = np.diff(oa), np.diff(ob)
    if na.size and na.min() < k + 1:
        raise ValueError(f"every sample of A needs at least k + 1 = {k + 1} points")
    if nb.size and nb.min() < k:
        raise ValueError(f"every sample of B needs at least k = {k} points")
    d = pa.shape[1]
    log_rho_sum = (
        np.add.reduceat(_self_log_rho(pa, oa, k, min_dist, workers), oa[:-1])
        if na.size
        else np.zeros(0)
    )
    S = _cross_log_nu_sums(pa, oa, pb, ob, k, min_dist, workers)
    D = d * (S - log_rho_sum[:, None]) / na[:, None] + np.log(nb[None, :] / (na[:, None] - 1))
    if same:
        np.fill_diagonal(D, 0.0)
    return D


def knn_kl_divergence(x: Any, y: Any, k: int = DEFAULT_K, min_dist: float = 1e-6) -> float:
    """k-NN estimate of KL(P || Q) in nats from samples ``x ~ P`` and ``y ~ Q``.

    Parameters
    ----------
    x, y : array-like, shape (n,) or (n, d)
    k : int
        Neighbour order (Wang, Kulkarni & Verdú 2009, with k in both samples).
    min_dist : float
        Floor of the neighbour distances.

    Returns
    -------
    float
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    return float(
        kl_divergence_matrix(x, [0, x.shape[0]], y, [0, y.shape[0]], k=k, min_dist=min_dist)[0, 0]
    )


def divergence_kernel(divergences: np.ndarray, sigma2: float) -> np.ndarray:
    """``exp(-max(D, 0) / sigma2)`` of a (symmetrised) divergence matrix."""
    if not sigma2 > 0:
        raise ValueError(f"sigma2 must be > 0, got {sigma2}")
    return np.exp(-np.maximum(np.asarray(divergences, dtype=float), 0.0) / sigma2)


def project_psd(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest PSD matrix (negative eigenvalues clipped) and the test-kernel transform.

    Returns
    -------
    kernel_psd : numpy.ndarray, shape (n, n)
    transform : numpy.ndarray, shape (n, n)
        ``V 1[λ > 0] Vᵀ``: a test kernel ``K_test`` (n_test, n) becomes ``K_test @ transform``
        (Chen et al. 2009).
    """
    K = 0.5 * (np.asarray(kernel, dtype=float) + np.asarray(kernel, dtype=float).T)
    vals, vecs = np.linalg.eigh(K)
    pos = vals > 0
    kpsd = (vecs * np.maximum(vals, 0.0)) @ vecs.T
    transform = vecs[:, pos] @ vecs[:, pos].T
    return 0.5 * (kpsd + kpsd.T), transform
