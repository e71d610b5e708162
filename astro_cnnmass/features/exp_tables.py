"""Exponential matrices of the split 2-D KDE from exponentials of small tables.

The split KDE of :mod:`astro_cnnmass.features.kde` needs, per cluster, ``A = exp(α')``
(n_v × P), ``B = exp(β')`` (P × n_R) and ``exp(γ - max γ)`` (n_v × n_R): ~7,700 exponentials
for 48 × 48 images of 56 galaxies, the largest cost of the feature builder on a CPU. Because
the grids are uniform, the grid-linear part of each exponent separates into a coarse and a
fine part, and each matrix is the element-wise product of exponentials of two small tables
(14 rows instead of 48): ~2,200 exponentials and one or two multiplications per element.
Clusters whose factors could leave the float64 range (strong R–v correlation, very narrow
kernels) keep the direct exponentials.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["SplitTerms", "assemble_gamma", "assemble_tables", "exp_tables", "grid_factors"]


def grid_factors(n: int) -> tuple[int, int]:
    """``(n_hi, n_lo)`` with ``n_hi * n_lo == n``, ``n_lo`` the smallest divisor >= sqrt(n).

    The fine factor is the inner (contiguous) axis of the assembled products, so it is the
    larger one (8 for a 48-point grid).

    Parameters
    ----------
    n : int
        Number of grid points (>= 1).

    Returns
    -------
    n_hi, n_lo : int
        Coarse and fine factor; a grid index is ``n_lo * a + b`` with ``a < n_hi``,
        ``b < n_lo``.
    """
    n_lo = min(d for d in range(1, n + 1) if n % d == 0 and d * d >= n)
    return n // n_lo, n_lo


class SplitTerms(NamedTuple):
    """The terms of a chunk's split exponents (module docstring of ``features.kde``).

    ``xg``, ``yg`` (k, n_v), (k, n_R): scaled grid coordinates (uniform along axis 1);
    ``p_a``, ``q_a``, ``p_b``, ``q_b`` (k, P): galaxy terms (padding: ``p = 0``,
    ``q = -inf``); ``u_a``, ``u_b`` (k, n_v), (k, n_R): grid terms (<= 0), with
    ``α' = u_g + x_g p_i + q_i`` and ``β' = u'_k + y_k p'_i + q'_i``.
    """

    xg: np.ndarray
    yg: np.ndarray
    p_a: np.ndarray
    q_a: np.ndarray
    u_a: np.ndarray
    p_b: np.ndarray
    q_b: np.ndarray
    u_b: np.ndarray

    def take(self, rows: Any) -> SplitTerms:
        """The terms of the clusters ``rows`` (an index array or mask along axis 0)."""
        return SplitTerms(*(a[rows] for a in self))


def exp_tables(
    terms: SplitTerms,
    kappa: np.ndarray,
    g_max: np.ndarray,
    mask: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Log-tables whose exponentials multiply into the three exponential matrices.

    The grids are uniform, ``x_g = x_0 + g Δx``; writing ``g = n_lo a + b`` splits
    ``x_g = X_a + x_b`` (a coarse and a fine part), so the x_g-linear part of each exponent
    separates: ``exp(α') = exp(X_a p_i) · exp(x_b p_i + q_i) · exp(u_g)``, likewise
    ``exp(β')`` over ``y_k`` and ``exp(γ - max γ) = exp(κ X_a y_k) · exp(κ x_b y_k - max γ)``.
    Exponentials are taken of the ``(n_hi + n_lo)``-row tables only (14 instead of 48 rows
    for a 48-point grid); each matrix element is then one or two products, with the relative
    rounding of the exponentials of its factors (<= ~1e-16 x the factors' exponents, as for
    the exponent sums of the direct split). Every table has the long axis (galaxies, or the
    other grid) last, which is what numpy and torch broadcast fastest.

    Parameters
    ----------
    terms : SplitTerms
        The split exponents' terms of the k clusters.
    kappa, g_max : ndarray, shape (k, 1), (k,)
        Kernel coupling ``κ`` and the maximum of ``γ`` over the grid.
    mask : ndarray of bool, shape (k, P)
        True for galaxies, False for padding.

    Returns
    -------
    tables : dict of float64 ndarrays
        ``a_hi`` (k, n_hi_v, P), ``a_lo`` (k, n_lo_v, P), ``a_grid`` (k, n_v): log-factors of
        ``A``; ``b_hi`` (k, n_hi_R, P), ``b_lo`` (k, n_lo_R, P), ``b_grid`` (k, n_R): of ``B``;
        ``gamma_hi`` (k, n_hi_v, n_R), ``gamma_lo`` (k, n_lo_v, n_R): of ``exp(γ - max γ)``.
    fits : ndarray of bool, shape (k,)
        True where bounds on the factors' exponents (products of per-cluster maxima) keep
        every factor and every product of two factors inside the float64 range
        (``|log| <= 700``): a product then underflows only where it is below the normal range
        itself, and nothing overflows. The other clusters take the direct split.
    """
    lim = 700.0
    xg, yg, p_a, q_a, u_a, p_b, q_b, u_b = terms

    def coarse_fine(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_hi, n_lo = grid_factors(grid.shape[1])
        step = (grid[:, -1] - grid[:, 0]) / (grid.shape[1] - 1)
        centre = 0.5 * n_lo * (n_hi - 1)  # balances the coarse factors around exp(0)
        coarse = (n_lo * np.arange(n_hi) - centre)[None, :] * step[:, None]
        fine = grid[:, :1] + (centre + np.arange(n_lo))[None, :] * step[:, None]
        return coarse, fine

    xc, xf = coarse_fine(xg)
    yc, yf = coarse_fine(yg)
    a_hi = xc[:, :, None] * p_a[:, None, :]
    a_lo = xf[:, :, None] * p_a[:, None, :]
    a_lo += q_a[:, None, :]  # -inf on padding: exact zeros of A
    b_hi = yc[:, :, None] * p_b[:, None, :]
    b_lo = yf[:, :, None] * p_b[:, None, :]
    b_lo += q_b[:, None, :]
    ky = kappa * yg
    gamma_hi = xc[:, :, None] * ky[:, None, :]
    gamma_lo = xf[:, :, None] * ky[:, None, :]
    gamma_lo -= g_max[:, None, None]
    tables = {
        "a_hi": a_hi,
        "a_lo": a_lo,
        "a_grid": u_a,
        "b_hi": b_hi,
        "b_lo": b_lo,
        "b_grid": u_b,
        "gamma_hi": gamma_hi,
        "gamma_lo": gamma_lo,
    }

    def amax(t: np.ndarray) -> np.ndarray:
        return np.abs(t).max(axis=1)  # NaN propagates: such a cluster does not fit

    pa, pb = amax(p_a), amax(p_b)  # padding: p = 0
    qa, qb = amax(np.where(mask, q_a, 0.0)), amax(np.where(mask, q_b, 0.0))
    xc_, xf_, yc_, yf_, ky_ = amax(xc), amax(xf), amax(yc), amax(yf), amax(ky)
    fits = (
        (xc_ * pa + xf_ * pa + qa <= lim)
        & (yc_ * pb + yf_ * pb + qb <= lim)
        & ((xc_ + xf_) * ky_ + np.abs(g_max) <= lim)
        & (amax(u_a) <= lim)
        & (amax(u_b) <= lim)
    )
    return tables, fits


def assemble_tables(ops: Any, tables: dict[str, Any]) -> tuple[Any, Any]:
    """The exponential matrices ``A`` (n, n_v, P) and ``B`` (n, P, n_R) from their tables.

    Parameters
    ----------
    ops : array namespace of ``astro_cnnmass.features.array_ops``
        The backend (numpy, or torch on a device) that holds the tables.
    tables : dict
        The log-tables of :func:`exp_tables`, as arrays of that backend; the ``a_*`` and
        ``b_*`` entries are exponentiated in place.

    Returns
    -------
    A, B : arrays of the backend, float64
        ``A[g, i] = exp(α'_gi)`` and ``B[i, k] = exp(β'_ik)`` (padding columns / rows are 0).
    """
    a_hi, a_lo = ops.exp_(tables["a_hi"]), ops.exp_(tables["a_lo"])
    n, n_hi, P = a_hi.shape
    A = (a_hi[:, :, None, :] * a_lo[:, None, :, :]).reshape(n, n_hi * a_lo.shape[1], P)
    A *= ops.exp_(tables["a_grid"])[:, :, None]
    # B has the grid last: the products read the (grid, galaxy) tables transposed
    b_hi = ops.exp_(tables["b_hi"]).swapaxes(1, 2)
    b_lo = ops.exp_(tables["b_lo"]).swapaxes(1, 2)
    B = (b_hi[..., None] * b_lo[:, :, None, :]).reshape(n, P, b_hi.shape[2] * b_lo.shape[2])
    B *= ops.exp_(tables["b_grid"])[:, None, :]
    return A, B


def assemble_gamma(ops: Any, tables: dict[str, Any]) -> Any:
    """``exp(γ - max γ)``, shape (n, n_v, n_R), from its tables.

    Parameters
    ----------
    ops : array namespace of ``astro_cnnmass.features.array_ops``
        The backend that holds the tables.
    tables : dict
        The log-tables of :func:`exp_tables`; the ``gamma_*`` entries are exponentiated in
        place.

    Returns
    -------
    array of the backend, float64, shape (n, n_v, n_R)
        Every element <= 1 (the shift by ``max γ``).
    """
    g_hi, g_lo = ops.exp_(tables["gamma_hi"]), ops.exp_(tables["gamma_lo"])
    n, n_hi, n_R = g_hi.shape
    return (g_hi[:, :, None, :] * g_lo[:, None, :, :]).reshape(n, n_hi * g_lo.shape[1], n_R)
