"""Member velocities: spherical Jeans equation with anisotropy, triaxial velocity ellipsoid.

Generator step G6. The radial velocity dispersion of the galaxy tracer ν(r) in the NFW potential of
the host follows from the spherical Jeans equation (Binney & Tremaine 2008, eq. 4.216):

    ν σ_r²(r) = (1/f(r)) ∫_r^∞ f(s) ν(s) G M(s) / s² ds,     f(r) = exp ∫ 2β(r)/r dr,

with three anisotropy profiles β(r) (integrating factors as in MAMPOSSt, Mamon, Biviano & Boué
2013, arXiv:1212.1455):

* Mamon & Łokas 2005 (astro-ph/0405491): β = ½ r/(r + r_a), f = r + r_a, r_a ∈ [0.5, 2] r_s
  (MBM10, arXiv:1003.0033, find r_a ≈ r_s for stacked clusters);
* simplified Tiret et al. 2007 (astro-ph/0610393): β = β∞ r/(r + r_β), f = (r + r_β)^{2β∞},
  β∞ ∈ [0.2, 0.9] (Biviano et al. 2025, arXiv:2508.05195, and 2026, arXiv:2602.15934);
* constant β ∈ [−0.2, 0.5], f = r^{2β};
* Osipkov–Merritt (Osipkov 1979; Merritt 1985): β = r²/(r² + r_a²), f = r² + r_a².

This module is the ``member_velocities='gaussian'`` path (generator 1.0) and provides the Jeans
solution that the distribution-function path (:mod:`~astro_cnnmass.mocks.dflibrary`) is tested
against.

Velocities are drawn as 3D Gaussians (MAMPOSSt's assumption, validated on ΛCDM halos by Mamon et
al. 2013), with σ_t² = (1 − β) σ_r², then stretched along a velocity ellipsoid whose axis ratios
follow the shape, q_v = q_pos^γ (Kasun & Evrard 2005, astro-ph/0408056: velocity space rounder,
(0.72, 0.82) vs (0.64, 0.76); principal axes misaligned by a median ≈ 20°), normalised so that the
3D dispersion is conserved. A global velocity bias b_v ∈ [0.92, 1.08] (Munari et al. 2013,
arXiv:1301.1682; Lau et al. 2010, arXiv:0908.2133; Armitage et al. 2018, arXiv:1708.00508;
Anbajagane et al. 2022, arXiv:2110.01683) and a normalisation factor N(1, 0.04) (Evrard et al.
2008, astro-ph/0702241, ≈4 % intrinsic σ_DM scatter) multiply the result; galaxies above
10^10.5 Msun are slowed by a factor 1 − k (log M* − 10.5), k ∈ [0, 0.05] (dynamical friction,
Old, Gray & Pearce 2013, arXiv:1306.6496; Armitage et al. 2018).
"""

from __future__ import annotations

import numpy as np

from .halos import nfw_mu
from .members import tracer_density

__all__ = ["anisotropy_profile", "jeans_sigma_r", "sample_member_velocities"]

_X = np.geomspace(1e-3, 100.0, 200)
_LX = np.log(_X)


def anisotropy_profile(x: np.ndarray, h: dict) -> tuple[np.ndarray, np.ndarray]:
    """β(x) and the Jeans integrating factor f(x) of a host (x = r/R200c)."""
    rs = 1.0 / h["c200c"]
    model = int(h["anisotropy_model"])
    if model == 0:  # Mamon & Łokas 2005
        ra = h["ml_ra_rs"] * rs
        return 0.5 * x / (x + ra), x + ra
    if model == 1:  # simplified Tiret
        rb, binf = h["tiret_rb_rs"] * rs, h["tiret_beta_inf"]
        return binf * x / (x + rb), (x + rb) ** (2.0 * binf)
    if model == 3:  # Osipkov 1979, Merritt 1985: β = r²/(r² + r_a²), f = r² + r_a²
        ra = h["om_ra_rs"] * rs
        return x * x / (x * x + ra * ra), x * x + ra * ra
    b = h["const_beta"]
    return np.full_like(x, b), x ** (2.0 * b)


def jeans_sigma_r(h: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radial dispersion σ_r/V200 of the galaxy tracer on a log grid of x = r/R200c.

    Returns
    -------
    log_x, sigma_r, beta : ndarray
        Natural log of x, σ_r in units of V200 = sqrt(G M200c / R200c), and β(x).
    """
    alpha = h["einasto_alpha"] if h["tracer_profile"] == 1 else None
    nu = tracer_density(_X, h["c_gal"], alpha)
    mass = nfw_mu(h["c200c"] * _X) / nfw_mu(h["c200c"])
    beta, f = anisotropy_profile(_X, h)
    g = f * nu * mass / _X  # integrand in d ln x:  f ν M / x² · x
    seg = 0.5 * (g[1:] + g[:-1]) * np.diff(_LX)
    integral = np.concatenate([np.cumsum(seg[::-1])[::-1], [0.0]])
    sig2 = integral / (f * nu)
    return _LX, np.sqrt(np.maximum(sig2, 0.0)), beta


def isotropic_gaussian(rng: np.random.Generator, sr: np.ndarray, st: np.ndarray,
                       u: np.ndarray) -> np.ndarray:  # fmt: skip
    """3D Gaussian velocities: radial σ ``sr`` along unit vectors ``u``, tangential ``st``."""
    g = rng.standard_normal((len(sr), 3))
    gr = np.einsum("ij,ij->i", g, u)
    return st[:, None] * (g - gr[:, None] * u) + (sr * gr)[:, None] * u


def sample_member_velocities(
    rng: np.random.Generator,
    h: dict,
    x_ell: np.ndarray,
    u: np.ndarray,
    log_mstar: np.ndarray,
    jeans: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Velocities [km/s] of the smooth member population (host principal frame).

    Parameters
    ----------
    rng : numpy.random.Generator
    h : dict
        Host parameters from :func:`astro_cnnmass.mocks.halos.draw_host`.
    x_ell : ndarray
        Ellipsoidal radius r/R200c of each galaxy (before the triaxial stretch).
    u : ndarray, shape (n, 3)
        Unit radial vectors of the galaxies (before the stretch).
    log_mstar : ndarray
        log10 M* [Msun] (for mass segregation).
    jeans : tuple, optional
        Output of :func:`jeans_sigma_r` (computed if not given).
    """
    lx, sig, beta = jeans if jeans is not None else jeans_sigma_r(h)
    lxx = np.log(np.clip(x_ell, _X[0], _X[-1]))
    sr = np.interp(lxx, lx, sig)
    st = sr * np.sqrt(np.maximum(1.0 - np.interp(lxx, lx, beta), 0.0))
    v = isotropic_gaussian(rng, sr, st, u)
    return v * velocity_scale(h, log_mstar)[:, None] if len(v) else v


def velocity_scale(h: dict, log_mstar: np.ndarray) -> np.ndarray:
    """Per-galaxy factor V200 · b_v · N(1, s) · mass segregation [km/s]."""
    seg = 1.0 - h["mass_segregation_k"] * np.maximum(log_mstar - 10.5, 0.0)
    return h["v200_kms"] * h["velocity_bias"] * h["sigma_norm"] * np.maximum(seg, 0.5)


def apply_velocity_ellipsoid(v: np.ndarray, h: dict) -> np.ndarray:
    """Stretch velocities along the (misaligned) velocity ellipsoid, conserving σ_3D."""
    s = np.array([1.0, h["qv_ba"], h["qv_ca"]])
    s /= np.sqrt(np.mean(s * s))
    rot = h["_vel_rot"]
    return ((v @ rot) * s) @ rot.T
