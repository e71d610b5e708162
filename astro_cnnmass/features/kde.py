"""Batched kernel-density images of a cluster's projected phase space.

This is the one feature builder of the package: the training side (mock catalogues) and the
observation side (a single observed cluster) both call :func:`kde_images`, so a model is always
fed features built exactly as those it was trained on.

The default features follow Ho et al. (2019, arXiv:1902.05950): a Gaussian kernel-density
estimate (KDE) of the galaxies' (line-of-sight velocity v, projected radius R) with the
``scipy.stats.gaussian_kde(bw_method=0.25)`` convention (kernel covariance = 0.25² × the
cluster's own unbiased sample covariance), evaluated at the 48 × 48 bin centres of
v ∈ [−v_cut, v_cut] (axis 0) and R ∈ [0, aperture] (axis 1), normalised to sum to 1.

Units at this boundary are plain floats: R in physical (proper) Mpc/h at the cluster redshift,
v in km/s in the cluster rest frame. The caller applies the cylinder cut before calling.

Notes
-----
Implementation. Evaluating every kernel at every grid point costs ``n_v * n_R * N`` exponentials
per cluster. Here the exponent is split exactly. In scaled coordinates ``x = (v - v_c) / s_v``,
``y = (R - R_c) / s_R`` (``s_v``, ``s_R`` the kernel widths, ``(v_c, R_c)`` the grid centre) and
with ``ρ`` the kernel correlation, ``s = 1 / (1 - ρ²)``, ``κ = ρ s``, the log-kernel of galaxy i
at grid point g is::

    E = -s/2 (dx² + dy²) + κ dx dy,   dx = x_g - x_i,  dy = y_g - y_i
      = α(x_g, i) + β(y_g, i) + γ(x_g, y_g)

with ``α = -s/2 dx² - κ y_i dx``, ``β = -s/2 dy² - κ x_i y_g`` and ``γ = κ x_g y_g``. Hence
``density(g) = exp(γ_g) Σ_i exp(α) exp(β)``: two ``(n_v, N)`` / ``(N, n_R)`` exponential
matrices per cluster and one batched matrix product (clusters grouped by N into buckets padded
to a common length, padding zero-weighted). Because the grids are uniform, the exponential
matrices themselves are products of exponentials of small tables (a coarse and a fine part of
each grid coordinate: :mod:`~astro_cnnmass.features.exp_tables`), for every cluster whose
factors stay inside the float64 range; the others take the exponentials element by element.
``α`` and ``β`` are shifted by analytic upper
bounds so both matrices are <= 1 (no overflow); the image is assembled as
``S · exp(γ − max γ)`` and normalised. Exponents below log(tiny) are clamped (exp() of
subnormal results is ~10× slower); an a-posteriori bound on the terms lost to clamping /
underflow and an a-priori bound on the rounding of the split exponents send the rare clusters
where the split could lose precision (strongly correlated R–v, very narrow kernels) to a log-domain
assembly or to a direct, chunked float64 evaluation (the "safe path").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .array_ops import _ops
from .config import MIN_GALAXIES, FeatureConfig, _check_flat, _normalise_dtype
from .exp_tables import SplitTerms, assemble_gamma, assemble_tables, exp_tables

__all__ = ["kde_image", "kde_images"]


#: Default work budget of :func:`kde_images`, in padded galaxies per chunk.
DEFAULT_CHUNK_SIZE = 8192


# A-priori guard: clusters whose split exponent terms can reach this magnitude (in units of the
# log-kernel) go to the direct path; the rounding error of the split is ~ 1e-16 x this.
_MAX_SPLIT_EXPONENT = 5000.0


# Padding value of scaled velocities in the 1-D kernel: its kernel underflows to exactly 0.
_PAD = 1e200


# A-posteriori guard (float64 / float32 matrix products), (rtol, atol): a pixel whose shifted
# sum S is below P * exp(floor) / rtol may have lost terms to clamping / underflow; the cluster
# falls back to a safer path unless the absolute error bound of every such pixel is below
# atol x the image maximum.
_GUARD = {
    np.dtype(np.float64): (1e-14, 1e-200),
    np.dtype(np.float32): (1e-8, 1e-30),
}


# Exponential matrices from exponentials of small tables (features.exp_tables) where they fit.
_USE_TABLES = True


def _pad_size(n: np.ndarray) -> np.ndarray:
    """Padded length of a bucket: round up to a multiple of max(8, 2**(floor(log2 n) - 3))."""
    n = np.maximum(np.asarray(n, dtype=np.int64), 1)
    q = np.maximum(8, 2 ** np.maximum(np.floor(np.log2(n)).astype(np.int64) - 3, 0))
    return (n + q - 1) // q * q


# ---------------------------------------------------------------------------------------------
# kernels (batched over clusters; arrays padded to a common length P with a -inf bias)
# ---------------------------------------------------------------------------------------------
def _exp_floor(dtype: Any) -> float:
    """Smallest exponent whose exp() is a normal number of ``dtype`` (plus a margin)."""
    return math.log(float(np.finfo(dtype).tiny)) + 1.0


def _kernel_2d_split(
    ops: Any,
    Xa: Any,
    Ya: Any,
    Yb: Any,
    Xb: Any,
    Wa: Any,
    Wb: Any,
    n_pad: int,
    mm_dtype: np.dtype,
    clamp_w: bool,
    tables: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Factorised 2-D KDE on a batch of clusters (see the module docstring).

    The two exponent matrices are built as rank-3 products,
    ``α' = [x_g, u_g, 1] @ [p_i; 1; q_i]`` (shape (n, n_v, P)) and
    ``β'ᵀ = [p'_i, 1, q'_i] @ [y_g; u'_g; 1]`` (shape (n, P, n_R)), both <= 0 by construction
    (padding: ``p = 0, q = -inf``), and the non-separable factor as
    ``γ - max γ = [κ x_g, 1] @ [y_g; -max γ]`` (``Wa`` (n, n_v, 2), ``Wb`` (n, 2, n_R)).
    All inputs are float64 arrays of the backend.

    With ``tables`` (:func:`~astro_cnnmass.features.exp_tables.exp_tables`) the three
    exponential matrices are instead assembled from exponentials of small tables (products of
    their rows), with about a third of the exponentials; ``Xa``/``Ya``/``Yb``/``Xb`` are then
    unused, ``Wa``/``Wb`` serve the log-domain redo only.

    Returns
    -------
    images : ndarray (n, n_v, n_R), float64, normalised to sum 1
    ok : ndarray (n,), bool; False where terms lost to underflow may matter.
    """
    # exponents below log(tiny) are clamped there: exp() of arguments in the subnormal range
    # is ~10x slower, and each clamped term is off by at most exp(floor), which the
    # underflow guard accounts for
    floor = _exp_floor(mm_dtype)
    if tables is None:
        A = ops.exp_(ops.clamp_min_(Xa @ Ya, floor))
        B = ops.exp_(ops.clamp_min_(Yb @ Xb, floor))
    else:
        A, B = assemble_tables(ops, tables)
    if mm_dtype != np.dtype(np.float64):
        if tables is not None:  # as the clamped exponents: no subnormal float32 products
            A = ops.clamp_min_(A, math.exp(floor))
            B = ops.clamp_min_(B, math.exp(floor))
        A = ops.cast(A, mm_dtype)
        B = ops.cast(B, mm_dtype)
    S = A @ B  # (n, n_v, n_R); every term <= 1
    del A, B
    if mm_dtype != np.dtype(np.float64):
        S = ops.cast(S, np.float64)
    rtol, atol = _GUARD[np.dtype(mm_dtype)]
    tiny = math.exp(floor) * n_pad  # bound on the error of one pixel's sum from clamping
    s_min = ops.to_numpy(ops.amin(S, (1, 2))).reshape(-1)

    # fast assembly: J = S exp(γ - max γ)
    if tables is None:
        G = Wa @ Wb
        if clamp_w:
            G = ops.clamp_min_(G, _exp_floor(np.float64))
        J = ops.exp_(G)
    else:
        J = assemble_gamma(ops, tables)
    J *= S
    j_sum = ops.asum(J, (1, 2))
    J /= j_sum
    images = ops.to_numpy(J)
    j_sum = ops.to_numpy(j_sum).reshape(-1)
    ok = np.isfinite(j_sum) & (j_sum > 0)
    # Clusters where a pixel may have lost terms to clamping / underflow (S < tiny / rtol) or
    # where J itself may have underflowed (a tiny maximum: every cluster whose maximum is
    # below 1e-100 has a sum below 1e-100 x the pixel count) are redone in the log domain,
    # which also decides whether the lost terms matter.
    n_pixels = images.shape[1] * images.shape[2]
    redo = np.flatnonzero(ok & ((s_min < tiny / rtol) | (j_sum < 1e-100 * n_pixels)))
    if redo.size:
        idx = ops.index(redo)
        S_r = S[idx]
        G_r = Wa[idx] @ Wb[idx]
        L = ops.log_(S_r.clone() if ops.is_torch else S_r.copy())  # S = 0 -> -inf
        L += G_r
        L_max = ops.amax(L, (1, 2))
        L -= L_max
        J_r = ops.exp_(ops.clamp_min_(L, _exp_floor(np.float64)))
        J_r /= ops.asum(J_r, (1, 2))
        # the absolute error of a suspect pixel is <= exp(G) tiny (up to the common shift);
        # it must stay below atol x the image maximum exp(L_max)
        lost = (S_r < tiny / rtol) & (G_r - L_max > math.log(atol) - math.log(tiny))
        lost = ops.to_numpy(ops.amax(ops.cast(lost, np.float64), (1, 2))).reshape(-1) > 0
        images[redo] = ops.to_numpy(J_r)
        ok[redo] = ~lost & np.isfinite(images[redo]).all(axis=(1, 2))
    return images, ok


def _kernel_1d(ops: Any, x: Any, xg: Any) -> np.ndarray:
    """Direct 1-D KDE: x (n, 1, P) scaled velocities (padding: +huge), xg (n, n_v, 1)."""
    E = xg - x
    E *= E
    E *= -0.5
    E -= ops.amax(E, (1, 2))
    E = ops.exp_(ops.clamp_min_(E, _exp_floor(np.float64)))  # terms < 1e-307 x max
    dens = ops.asum(E, 2)[..., 0]
    dens /= ops.asum(dens, 1)
    return ops.to_numpy(dens)


def _direct_2d(
    x: np.ndarray, y: np.ndarray, xg: np.ndarray, yg: np.ndarray, rho: float, block: int
) -> np.ndarray:
    """Direct float64 evaluation of one cluster (safe path), log-sum-exp over galaxy blocks.

    Uses the Cholesky form Q = (dx - ρ dy)² / (1 - ρ²) + dy², as scipy's whitening does.
    """
    n_v, n_R = xg.size, yg.size
    inv = 1.0 / math.sqrt(1.0 - rho * rho)
    m_run = np.full((n_v, n_R), -np.inf)
    s_run = np.zeros((n_v, n_R))
    for start in range(0, x.size, block):
        xb, yb = x[start : start + block], y[start : start + block]
        dy = yg[None, :, None] - yb[None, None, :]  # (1, n_R, b)
        z1 = ((xg[:, None, None] - xb[None, None, :]) - rho * dy) * inv  # (n_v, n_R, b)
        E = -0.5 * (z1 * z1 + dy * dy)
        m_blk = E.max(axis=2)
        m_new = np.maximum(m_run, m_blk)
        s_run = s_run * np.exp(m_run - m_new) + np.exp(E - m_new[..., None]).sum(axis=2)
        m_run = m_new
    log_d = np.log(s_run) + m_run
    img = np.exp(log_d - log_d.max())
    return img / img.sum()


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------
def kde_images(
    R: Any,
    v: Any,
    offsets: Any,
    config: FeatureConfig | None = None,
    *,
    backend: str = "numpy",
    device: Any = None,
    dtype: Any = np.float64,
    out_dtype: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """KDE images of many clusters at once (the package's one feature builder).

    Parameters
    ----------
    R : array-like of float, shape ``(n_galaxies,)``
        Projected radii, physical Mpc/h, all clusters concatenated (already cylinder-cut).
    v : array-like of float, shape ``(n_galaxies,)``
        Line-of-sight velocities in the cluster rest frame, km/s.
    offsets : array-like of int, shape ``(n_clusters + 1,)``
        Cluster i is ``slice(offsets[i], offsets[i + 1])`` of ``R`` and ``v`` (see
        :func:`~astro_cnnmass.features.config.pack`).
    config : FeatureConfig, optional
        Grid, kernel and kind; default ``FeatureConfig()`` (the paper's CNN_2D input).
    backend : {"numpy", "torch"}
        Array library for the heavy part. ``"torch"`` runs the same math on ``device``.
    device : str or torch.device, optional
        Torch device (``"cpu"``, ``"cuda"``, ...); only with ``backend="torch"``.
    dtype : {numpy.float64, numpy.float32}
        Precision of the computation (and the output dtype unless ``out_dtype`` is given).
        With float32 the batched matrix product of the 2-D path runs in float32
        (exponentials, guards and normalisation stay in float64; images agree with float64 to
        ~1e-6 relative); clusters whose float32 product fails the underflow guard are redone
        in float64.
    out_dtype : {None, numpy.float64, numpy.float32}
        Dtype of the returned images; default ``dtype``. ``dtype=float64,
        out_dtype=float32`` computes in float64 and rounds each image once, as it is stored:
        the result equals ``kde_images(...)[0].astype(numpy.float32)`` exactly, with half the
        memory and without a float64 copy of the whole batch (the networks read float32).
    chunk_size : int
        Work budget: clusters padded to length P are processed
        ``max(1, chunk_size // max(P, 64))`` at a time, which bounds the working memory to
        about ``chunk_size * (2 (n_v + n_R) + 3 n_v n_R / 64) * 8 B`` (~14 MiB at the
        default 8192 for 48 × 48 images), except for single clusters larger than that.

    Returns
    -------
    images : ndarray, shape ``(n_clusters, n_v, n_R)`` (2d) or ``(n_clusters, n_v)`` (1d)
        Axis 1 = velocity bin centres
        (`~astro_cnnmass.features.config.FeatureConfig.v_centres`), axis 2 = radius bin
        centres (`~astro_cnnmass.features.config.FeatureConfig.R_centres`); each image sums
        to 1. NaN where ``valid`` is False.
    valid : ndarray of bool, shape ``(n_clusters,)``
        False where the KDE is undefined: fewer than 3 galaxies, non-finite R or v, a singular
        sample covariance (e.g. all galaxies at the same R), or a KDE that is numerically zero
        on the whole grid. One bad cluster never affects the others and never raises.

    Raises
    ------
    ValueError
        If the arrays are malformed (shapes, offsets) or an option is unknown.
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise TypeError(f"config must be a FeatureConfig, got {type(config).__name__}")
    R, v, offsets = _check_flat(R, v, offsets)
    compute_dtype = _normalise_dtype(dtype)
    store_dtype = compute_dtype if out_dtype is None else _normalise_dtype(out_dtype)
    ops = _ops(backend, device)
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int | np.integer)
        or (chunk_size < 1)
    ):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")

    n = offsets.size - 1
    counts = np.diff(offsets)
    images = np.empty((n, *config.image_shape), dtype=store_dtype)  # every row written below
    valid = np.zeros(n, dtype=bool)
    if n == 0:
        return images, valid

    # clusters with enough, all-finite galaxies (others stay invalid / NaN)
    finite = np.isfinite(R) & np.isfinite(v)
    cum = np.concatenate([[0], np.cumsum(~finite)])
    n_bad = cum[offsets[1:]] - cum[offsets[:-1]]
    candidates = np.flatnonzero((counts >= MIN_GALAXIES) & (n_bad == 0))
    if candidates.size == 0:
        images[:] = np.nan
        return images, valid

    # buckets of equal padded length; sorted so that chunks contain similar sizes
    pads = _pad_size(counts[candidates])
    order = np.argsort(pads, kind="stable")
    candidates, pads = candidates[order], pads[order]
    bounds = np.flatnonzero(np.diff(pads)) + 1
    for group, P in zip(np.split(candidates, bounds), pads[np.concatenate([[0], bounds])]):
        per_chunk = max(1, int(chunk_size) // max(int(P), 64))
        for start in range(0, group.size, per_chunk):
            idx = group[start : start + per_chunk]
            with np.errstate(divide="ignore", under="ignore", over="ignore", invalid="ignore"):
                img, ok = _process_chunk(
                    R,
                    v,
                    offsets[idx],
                    counts[idx],
                    int(P),
                    config,
                    ops,
                    compute_dtype,
                    chunk_size,
                )
            images[idx] = img  # rounded to store_dtype here, if it differs
            valid[idx] = ok
    images[~valid] = np.nan
    return images, valid


def _rank3_factors(terms: SplitTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``Xa, Ya, Yb, Xb`` of :func:`_kernel_2d_split` for the clusters of ``terms``."""
    xg, yg, p_a, q_a, u_a, p_b, q_b, u_b = terms
    kt, n_v, n_R, P = xg.shape[0], xg.shape[1], yg.shape[1], p_a.shape[1]
    Xa = np.empty((kt, n_v, 3))
    Xa[:, :, 0], Xa[:, :, 1], Xa[:, :, 2] = xg, u_a, 1.0
    Ya = np.empty((kt, 3, P))
    Ya[:, 0], Ya[:, 1], Ya[:, 2] = p_a, 1.0, q_a
    Yb = np.empty((kt, P, 3))
    Yb[:, :, 0], Yb[:, :, 1], Yb[:, :, 2] = p_b, 1.0, q_b
    Xb = np.empty((kt, 3, n_R))
    Xb[:, 0], Xb[:, 1], Xb[:, 2] = yg, u_b, 1.0
    return Xa, Ya, Yb, Xb


def _process_chunk(
    R: np.ndarray,
    v: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    P: int,
    config: FeatureConfig,
    ops: Any,
    compute_dtype: np.dtype,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Images of one chunk of clusters padded to length P; returns (images, valid)."""
    k = starts.size
    j = np.arange(P)
    mask = j[None, :] < counts[:, None]
    gather = np.where(mask, starts[:, None] + j[None, :], 0)
    vv = np.where(mask, v[gather], 0.0)
    RR = np.where(mask, R[gather], 0.0)
    n = counts.astype(np.float64)

    ok = np.ones(k, dtype=bool)

    # per-cluster statistics (two-pass, as numpy.cov does)
    mean_v = vv.sum(axis=1) / n
    cv = np.where(mask, vv - mean_v[:, None], 0.0)
    var_v = (cv * cv).sum(axis=1) / (n - 1)
    scale_v = np.abs(vv).max(axis=1)
    if config.kind == "2d":
        mean_R = RR.sum(axis=1) / n
        cR = np.where(mask, RR - mean_R[:, None], 0.0)
        var_R = (cR * cR).sum(axis=1) / (n - 1)
        cov_vR = (cv * cR).sum(axis=1) / (n - 1)
        scale_R = np.abs(RR).max(axis=1)

    if config.kernel == "fixed":
        sig_v = np.full(k, config.fixed_sigma_v_kms)
        if config.kind == "2d":
            sig_R = np.full(k, config.fixed_sigma_R_mpch)
            rho = np.zeros(k)
    else:
        ok &= var_v > (1e-12 * scale_v) ** 2
        sig_v = config.bandwidth * np.sqrt(np.where(ok, var_v, 1.0))
        if config.kind == "2d":
            ok &= var_R > (1e-12 * scale_R) ** 2
            denom = np.sqrt(np.where(ok, var_v * var_R, 1.0))
            rho = np.where(ok, cov_vR / denom, 0.0)
            ok &= (1.0 - rho * rho) > 1e-12
            rho = np.where(ok, rho, 0.0)
            sig_R = config.bandwidth * np.sqrt(np.where(ok, var_R, 1.0))

    v_c = 0.0
    x = np.where(mask, (vv - v_c) / sig_v[:, None], 0.0)
    xg = (config.v_centres[None, :] - v_c) / sig_v[:, None]  # (k, n_v)

    if config.kind == "1d":
        x_pad = np.where(mask, x, _PAD)[:, None, :]
        images = _kernel_1d(ops, ops.asarray(x_pad), ops.asarray(xg[:, :, None]))
        ok &= np.isfinite(images).all(axis=1)
        images[~ok] = np.nan
        return images.astype(compute_dtype, copy=False), ok

    R_c = 0.5 * config.aperture_mpch
    y = np.where(mask, (RR - R_c) / sig_R[:, None], 0.0)
    yg = (config.R_centres[None, :] - R_c) / sig_R[:, None]  # (k, n_R)
    s = (1.0 / (1.0 - rho * rho))[:, None]
    kappa = rho[:, None] * s

    # Split exponents (module docstring), expanded so that each matrix is a rank-2 product:
    #   α - a_up = u_g + x_g p_i + q_i,   a_up = max_i κ² y_i² / (2 s) >= max α
    #   β - b_up = u'_g + y_g p'_i + q'_i, b_up = |κ| max|x_i| max|y_g| >= max β
    ax, ay = np.abs(x), np.abs(y)
    xg_max = np.abs(xg).max(axis=1, keepdims=True)
    yg_max = np.abs(yg).max(axis=1, keepdims=True)
    x_max = ax.max(axis=1, keepdims=True)
    y_max = ay.max(axis=1, keepdims=True)
    a_up = (kappa * kappa / (2.0 * s)) * y_max**2
    b_up = np.abs(kappa) * x_max * yg_max
    p_a = np.where(mask, s * x - kappa * y, 0.0)
    q_a = np.where(mask, x * (kappa * y - 0.5 * s * x), -np.inf)
    u_a = -0.5 * s * xg * xg - a_up
    p_b = np.where(mask, s * y - kappa * x, 0.0)
    q_b = np.where(mask, -0.5 * s * y * y, -np.inf)
    u_b = -0.5 * s * yg * yg - b_up
    # a-priori precision guard: magnitude of the largest partial exponent term
    mag = (
        0.5 * s * (xg_max**2 + x_max**2 + yg_max**2 + y_max**2)
        + xg_max * (s * x_max + np.abs(kappa) * y_max)
        + yg_max * (s * y_max + np.abs(kappa) * x_max)
        + np.abs(kappa) * (x_max * y_max + xg_max * yg_max)
        + a_up
        + b_up
    )[:, 0]
    split_ok = ok & (mag <= _MAX_SPLIT_EXPONENT)

    mm_dtypes = (
        [compute_dtype] if compute_dtype == np.float64 else [compute_dtype, np.dtype(np.float64)]
    )
    todo = np.flatnonzero(split_ok)
    n_v, n_R = config.n_v, config.n_R
    images = np.empty((k, n_v, n_R))
    done = np.zeros(k, dtype=bool)
    for mm_dtype in mm_dtypes:
        if todo.size == 0:
            break
        t = todo
        kt = t.size
        # γ = κ x_g y_g is bilinear: its extremes over the grid are at the corners
        corners = kappa[t] * np.stack(
            [
                xg[t, 0] * yg[t, 0],
                xg[t, 0] * yg[t, -1],
                xg[t, -1] * yg[t, 0],
                xg[t, -1] * yg[t, -1],
            ],
            axis=1,
        )
        g_max = corners.max(axis=1)
        Wa = np.empty((kt, n_v, 2))
        Wa[:, :, 0], Wa[:, :, 1] = kappa[t] * xg[t], 1.0
        Wb = np.empty((kt, 2, n_R))
        Wb[:, 0], Wb[:, 1] = yg[t], -g_max[:, None]
        clamp_w = bool(np.any(g_max - corners.min(axis=1) > 700.0))
        terms = SplitTerms(xg, yg, p_a, q_a, u_a, p_b, q_b, u_b).take(t)
        tables, fits = exp_tables(terms, kappa[t], g_max, mask[t])
        if not _USE_TABLES:
            fits[:] = False
        img = np.empty((kt, n_v, n_R))
        good = np.zeros(kt, dtype=bool)
        for use, part in ((True, np.flatnonzero(fits)), (False, np.flatnonzero(~fits))):
            if part.size == 0:
                continue
            whole = part.size == kt
            sub = slice(None) if whole else part
            if use:  # the rank-3 exponent factors are not needed
                factors = (None,) * 4
                part_tables = {k_: ops.asarray(a[sub]) for k_, a in tables.items()}
            else:
                factors = tuple(ops.asarray(a) for a in _rank3_factors(terms.take(part)))
                part_tables = None
            img_p, good_p = _kernel_2d_split(
                ops,
                *factors,
                ops.asarray(Wa[sub]),
                ops.asarray(Wb[sub]),
                P,
                mm_dtype,
                clamp_w,
                part_tables,
            )
            if whole:
                img, good = img_p, good_p
            else:
                img[part], good[part] = img_p, good_p
        if t.size == k and good.all():  # the common case: no copy
            images = img
        else:
            images[t[good]] = img[good]
        done[t[good]] = True
        todo = t[~good]

    # safe path: direct, chunked evaluation (strongly correlated R-v, extreme ranges)
    direct = np.flatnonzero(ok & ~done)
    rho = rho.ravel()
    block = max(1, chunk_size * (config.n_v + config.n_R) // (config.n_v * config.n_R))
    for c in direct:
        m = int(counts[c])
        img = _direct_2d(x[c, :m], y[c, :m], xg[c], yg[c], float(rho[c]), block)
        if np.all(np.isfinite(img)):
            images[c] = img
        else:
            ok[c] = False
    if not ok.all():
        images[~ok] = np.nan
    return images.astype(compute_dtype, copy=False), ok


def kde_image(R: Any, v: Any, config: FeatureConfig | None = None, **kwargs: Any) -> np.ndarray:
    """KDE image of a single cluster (convenience wrapper of :func:`kde_images`).

    Parameters
    ----------
    R : array-like of float, shape ``(N,)``
        Projected radii, physical Mpc/h (already cylinder-cut).
    v : array-like of float, shape ``(N,)``
        Line-of-sight velocities in the cluster rest frame, km/s.
    config : FeatureConfig, optional
        Default ``FeatureConfig()``.
    **kwargs
        Passed to :func:`kde_images` (``backend``, ``device``, ``dtype``, ``chunk_size``).

    Returns
    -------
    image : ndarray, shape ``(n_v, n_R)`` (2d) or ``(n_v,)`` (1d), sums to 1.

    Raises
    ------
    ValueError
        If the KDE is undefined for this cluster (fewer than 3 galaxies, non-finite values,
        singular covariance).

    Examples
    --------
    >>> import numpy as np
    >>> from astro_cnnmass.features.kde import kde_image
    >>> rng = np.random.default_rng(1)
    >>> img = kde_image(rng.uniform(0, 1.6, 60), rng.normal(0, 600, 60))
    >>> img.shape, round(float(img.sum()), 12)
    ((48, 48), 1.0)
    """
    R = np.atleast_1d(np.asarray(R, dtype=np.float64))
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if R.ndim != 1 or R.shape != v.shape:
        raise ValueError(f"R and v must be 1-D of equal length, got {R.shape} and {v.shape}")
    images, valid = kde_images(R, v, np.array([0, R.size]), config, **kwargs)
    if not valid[0]:
        n_fin = int(np.count_nonzero(np.isfinite(R) & np.isfinite(v)))
        if R.size < MIN_GALAXIES:
            why = f"it has {R.size} galaxies (at least {MIN_GALAXIES} are needed)"
        elif n_fin < R.size:
            why = f"{R.size - n_fin} of its R/v values are not finite"
        else:
            why = "its sample covariance of (v, R) is singular (e.g. all galaxies at one R or v)"
        raise ValueError(f"the KDE image of this cluster is undefined: {why}")
    return images[0]
