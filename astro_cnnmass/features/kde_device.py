"""KDE images built entirely in torch, on any device, from galaxies already on that device.

:func:`astro_cnnmass.features.kde.kde_images` with ``backend="torch"`` runs the heavy matrix
products in torch but gathers the galaxies, computes the per-cluster statistics and assembles
the images in numpy, so on a GPU every chunk crosses the bus several times. This module is the
same computation (the factorised split-exponent KDE of :mod:`astro_cnnmass.features.kde`, same
formulas, same guards, float64) written for tensors that stay on the device:
:func:`kde_images_device` takes the packed galaxies as device tensors and returns the images as a
device tensor.

The rare clusters that the fast path cannot do to full precision (the a-priori split guard or
the a-posteriori underflow guard fires: strongly correlated R–v, very narrow kernels) are
reported in ``fallback``; the caller builds those with the numpy reference implementation (on
the host; a handful of clusters per catalogue), so the device path never gives a less accurate
image than the CPU path.

Units as in :mod:`astro_cnnmass.features.kde`: R in physical Mpc/h, v in km/s, already
cylinder-cut.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import MIN_GALAXIES, FeatureConfig
from .kde import _GUARD, _MAX_SPLIT_EXPONENT, _PAD, _exp_floor, _pad_size

__all__ = ["kde_images_device"]


def kde_images_device(
    R: Any,
    v: Any,
    offsets: Any,
    counts: np.ndarray,
    config: FeatureConfig,
    *,
    work_budget: int = 1 << 22,
) -> tuple[Any, Any, Any]:
    """KDE images of many clusters, computed where the tensors live.

    Parameters
    ----------
    R, v : torch.Tensor, shape (n_galaxies,), float64
        Projected radii (physical Mpc/h) and rest-frame velocities (km/s) of the cylinder
        galaxies, all clusters concatenated, on the device.
    offsets : torch.Tensor, shape (n_clusters + 1,), int64
        Cluster i is ``slice(offsets[i], offsets[i + 1])``; on the device.
    counts : numpy.ndarray of int, shape (n_clusters,)
        The galaxy counts (``diff(offsets)``) on the host: they size the padded buckets.
    config : FeatureConfig
        Grid, kernel and kind.
    work_budget : int
        Padded galaxies per batched evaluation (bounds the device memory to about
        ``work_budget * (2 (n_v + n_R) + 3 n_v n_R / 64) * 8`` bytes).

    Returns
    -------
    images : torch.Tensor, shape (n_clusters, n_v, n_R) or (n_clusters, n_v), float64
        Normalised images (each sums to 1); NaN where not ``valid`` or ``fallback``.
    valid : torch.Tensor of bool, shape (n_clusters,)
        False where the KDE is undefined (as :func:`~astro_cnnmass.features.kde.kde_images`).
    fallback : numpy.ndarray of int
        Indices of clusters with a defined KDE that the fast path could not do to full
        precision: build them with :func:`~astro_cnnmass.features.kde.kde_images`.
    """
    import torch

    dev = R.device
    n = counts.size
    images = torch.full((n, *config.image_shape), math.nan, dtype=torch.float64, device=dev)
    valid = torch.zeros(n, dtype=torch.bool, device=dev)
    fallback: list[np.ndarray] = []
    if n == 0:
        return images, valid, np.zeros(0, dtype=np.int64)
    finite = torch.isfinite(R) & torch.isfinite(v)
    cum = torch.zeros(R.numel() + 1, dtype=torch.int64, device=dev)
    cum[1:] = torch.cumsum(~finite, 0)
    n_bad = (cum[offsets[1:]] - cum[offsets[:-1]]).cpu().numpy()
    candidates = np.flatnonzero((counts >= MIN_GALAXIES) & (n_bad == 0))
    if candidates.size == 0:
        return images, valid, np.zeros(0, dtype=np.int64)
    pads = _pad_size(counts[candidates])
    order = np.argsort(pads, kind="stable")
    candidates, pads = candidates[order], pads[order]
    bounds = np.flatnonzero(np.diff(pads)) + 1
    for group, P in zip(np.split(candidates, bounds), pads[np.concatenate([[0], bounds])]):
        per = max(1, int(work_budget) // max(int(P), 64))
        for s in range(0, group.size, per):
            idx = group[s : s + per]
            idx_t = torch.as_tensor(idx, device=dev)
            img, ok, redo = _chunk(R, v, offsets[idx_t], counts[idx], int(P), config)
            images[idx_t] = img
            valid[idx_t] = ok
            redo = redo.cpu().numpy()
            if redo.any():
                fallback.append(idx[redo])
    fb = np.concatenate(fallback) if fallback else np.zeros(0, dtype=np.int64)
    return images, valid, np.sort(fb)


def _chunk(
    R: Any, v: Any, starts: Any, counts_np: np.ndarray, P: int, config: FeatureConfig
) -> tuple[Any, Any, Any]:
    """Images of one bucket (clusters padded to P): (images, valid, needs the numpy path)."""
    import torch

    dev, f64 = R.device, torch.float64
    k = counts_np.size
    counts = torch.as_tensor(counts_np, device=dev)
    j = torch.arange(P, device=dev)
    mask = j[None, :] < counts[:, None]
    gather = torch.where(
        mask, starts[:, None] + j[None, :], torch.zeros((), dtype=torch.int64, device=dev)
    )
    zero = torch.zeros((), dtype=f64, device=dev)
    vv = torch.where(mask, v[gather], zero)
    RR = torch.where(mask, R[gather], zero)
    nf = counts.to(f64)
    ok = torch.ones(k, dtype=torch.bool, device=dev)

    mean_v = vv.sum(1) / nf
    cv = torch.where(mask, vv - mean_v[:, None], zero)
    var_v = (cv * cv).sum(1) / (nf - 1)
    scale_v = vv.abs().amax(1)
    two_d = config.kind == "2d"
    if two_d:
        mean_R = RR.sum(1) / nf
        cR = torch.where(mask, RR - mean_R[:, None], zero)
        var_R = (cR * cR).sum(1) / (nf - 1)
        cov_vR = (cv * cR).sum(1) / (nf - 1)
        scale_R = RR.abs().amax(1)
    one = torch.ones((), dtype=f64, device=dev)
    if config.kernel == "fixed":
        sig_v = torch.full((k,), config.fixed_sigma_v_kms, dtype=f64, device=dev)
        if two_d:
            sig_R = torch.full((k,), config.fixed_sigma_R_mpch, dtype=f64, device=dev)
            rho = torch.zeros(k, dtype=f64, device=dev)
    else:
        ok &= var_v > (1e-12 * scale_v) ** 2
        sig_v = config.bandwidth * torch.sqrt(torch.where(ok, var_v, one))
        if two_d:
            ok &= var_R > (1e-12 * scale_R) ** 2
            denom = torch.sqrt(torch.where(ok, var_v * var_R, one))
            rho = torch.where(ok, cov_vR / denom, zero)
            ok &= (1.0 - rho * rho) > 1e-12
            rho = torch.where(ok, rho, zero)
            sig_R = config.bandwidth * torch.sqrt(torch.where(ok, var_R, one))

    v_centres = torch.as_tensor(config.v_centres, dtype=f64, device=dev)
    x = torch.where(mask, vv / sig_v[:, None], zero)
    xg = v_centres[None, :] / sig_v[:, None]  # (k, n_v)
    floor64 = _exp_floor(np.float64)
    if not two_d:
        x_pad = torch.where(mask, x, torch.full((), _PAD, dtype=f64, device=dev))[:, None, :]
        E = xg[:, :, None] - x_pad
        E = -0.5 * E * E
        E = E - E.amax((1, 2), keepdim=True)
        E = torch.exp(E.clamp_(min=floor64))
        dens = E.sum(2)
        dens = dens / dens.sum(1, keepdim=True)
        ok &= torch.isfinite(dens).all(1)
        dens[~ok] = math.nan
        return dens, ok, torch.zeros(k, dtype=torch.bool, device=dev)

    R_c = 0.5 * config.aperture_mpch
    R_centres = torch.as_tensor(config.R_centres, dtype=f64, device=dev)
    y = torch.where(mask, (RR - R_c) / sig_R[:, None], zero)
    yg = (R_centres[None, :] - R_c) / sig_R[:, None]  # (k, n_R)
    s = (1.0 / (1.0 - rho * rho))[:, None]
    kappa = rho[:, None] * s
    ax, ay = x.abs(), y.abs()
    xg_max = xg.abs().amax(1, keepdim=True)
    yg_max = yg.abs().amax(1, keepdim=True)
    x_max = ax.amax(1, keepdim=True)
    y_max = ay.amax(1, keepdim=True)
    a_up = (kappa * kappa / (2.0 * s)) * y_max**2
    b_up = kappa.abs() * x_max * yg_max
    ninf = torch.full((), -math.inf, dtype=f64, device=dev)
    p_a = torch.where(mask, s * x - kappa * y, zero)
    q_a = torch.where(mask, x * (kappa * y - 0.5 * s * x), ninf)
    u_a = -0.5 * s * xg * xg - a_up
    p_b = torch.where(mask, s * y - kappa * x, zero)
    q_b = torch.where(mask, -0.5 * s * y * y, ninf)
    u_b = -0.5 * s * yg * yg - b_up
    mag = (
        0.5 * s * (xg_max**2 + x_max**2 + yg_max**2 + y_max**2)
        + xg_max * (s * x_max + kappa.abs() * y_max)
        + yg_max * (s * y_max + kappa.abs() * x_max)
        + kappa.abs() * (x_max * y_max + xg_max * yg_max)
        + a_up
        + b_up
    )[:, 0]
    split_ok = ok & (mag <= _MAX_SPLIT_EXPONENT)

    n_v, n_R = config.n_v, config.n_R
    ones_v = torch.ones((k, n_v), dtype=f64, device=dev)
    ones_P = torch.ones((k, P), dtype=f64, device=dev)
    ones_R = torch.ones((k, n_R), dtype=f64, device=dev)
    Xa = torch.stack([xg, u_a, ones_v], dim=2)  # (k, n_v, 3)
    Ya = torch.stack([p_a, ones_P, q_a], dim=1)  # (k, 3, P)
    Yb = torch.stack([p_b, ones_P, q_b], dim=2)  # (k, P, 3)
    Xb = torch.stack([yg, u_b, ones_R], dim=1)  # (k, 3, n_R)
    corners = kappa * torch.stack(
        [xg[:, 0] * yg[:, 0], xg[:, 0] * yg[:, -1], xg[:, -1] * yg[:, 0], xg[:, -1] * yg[:, -1]],
        dim=1,
    )
    g_max = corners.amax(1)
    Wa = torch.stack([kappa * xg, ones_v], dim=2)  # (k, n_v, 2)
    Wb = torch.stack([yg, -g_max[:, None].expand(k, n_R)], dim=1)  # (k, 2, n_R)

    A = torch.exp((Xa @ Ya).clamp_(min=floor64))
    B = torch.exp((Yb @ Xb).clamp_(min=floor64))
    S = A @ B  # (k, n_v, n_R), every term <= 1
    del A, B
    rtol, _ = _GUARD[np.dtype(np.float64)]
    tiny = math.exp(floor64) * P
    s_min = S.amin((1, 2))
    G = Wa @ Wb
    G = G.clamp_(min=floor64)  # exp() of anything below is 0 in float64 anyway
    J = torch.exp(G) * S
    j_max = J.amax((1, 2))
    j_sum = J.sum((1, 2), keepdim=True)
    J = J / j_sum
    j_sum = j_sum.reshape(-1)
    good = torch.isfinite(j_sum) & (j_sum > 0)
    # clusters that the numpy path would redo in the log domain or evaluate directly
    redo = ok & (~split_ok | ~good | (s_min < tiny / rtol) | (j_max < 1e-100))
    J[~ok | redo] = math.nan
    return J, ok, redo
