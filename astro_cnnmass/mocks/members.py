"""Member galaxies: counts (HOD with super-Poisson scatter), stellar masses and 3D positions.

Generator steps G4–G5. Relations used:

* satellite occupation ⟨N_sat⟩ = N_14 10^Δ (M/10^14)^α exp(−M_cut/M), normalised to 60 satellites
  with M* > 10^9.5 Msun inside R200m of a 10^14 Msun/h halo and M_cut ≈ 10^12 Msun/h, from the
  Leauthaud et al. 2011 (arXiv:1104.0928, SIG_MOD1, lowest-z bin) HOD as coded in halotools,
  converted to M200c (physics note §2.3); α ∈ [0.85, 1.1] spans Zheng et al. 2007
  (astro-ph/0703457);
* counts ~ Poisson(λ e^ε) with ε ~ N(0, σ_int²), σ_int ∈ [0.10, 0.25] (super-Poisson scatter:
  Boylan-Kolchin et al. 2010, arXiv:0911.4484; Jiang & van den Bosch 2017, arXiv:1610.02399);
* satellite stellar masses from the GAMA double-Schechter stellar-mass function of Baldry et al.
  2012 (arXiv:1111.5707); its shape gives N(>10^10)/N(>10^9.5) = 0.61, as the L11 HOD (0.63);
* central stellar masses from the L11 stellar-to-halo-mass relation (Behroozi et al. 2010 form,
  arXiv:1001.0015) with 0.2 dex scatter;
* positions: truncated NFW (Navarro, Frenk & White 1997) or Einasto (1965) number-density profile
  with concentration c_gal = f_c c_DM (Budzynski et al. 2012, arXiv:1201.5491, c_gal ≈ 2.6;
  Wang et al. 2018 and Aung et al. 2022, arXiv:2209.12918, c_gal ≈ c_DM), truncated at
  r_t ∈ [1, 1.5] R200m, stretched into a volume-conserving triaxial ellipsoid.

Stellar masses are log10(M*/Msun) in the h = 0.7 convention of the stellar-mass functions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import gammainc, gammaincinv

from .halos import nfw_mu

__all__ = [
    "ORIGIN",
    "central_log_mstar",
    "depth_factor",
    "nsat_mean",
    "sample_satellite_mstar",
    "sample_tracer_radii",
    "tracer_enclosed",
]

#: Codes of the per-galaxy ``origin`` column.
ORIGIN = {
    "host_satellite": 0,
    "host_subgroup": 1,
    "merger_companion": 2,
    "host_central": 3,
    "neighbour_central": 4,
    "neighbour_satellite": 5,
    "uniform_field": 6,
}

#: log10 M_cut [Msun/h, M200c] of the satellite occupation (L11 B_cut, β_cut; physics note §2.3).
LOG_MCUT_SAT = 12.0
_H_SMF = 0.7  # Baldry+12 uses H0 = 70


@lru_cache(maxsize=1)
def _smf_table() -> tuple[np.ndarray, np.ndarray]:
    """Cumulative GAMA SMF n(>M*) [(Mpc/h)^-3] on a log10 M* grid (Baldry et al. 2012)."""
    lm = np.linspace(7.5, 12.8, 1061)
    x = 10.0 ** (lm - 10.66)
    phi = np.log(10.0) * np.exp(-x) * (3.96e-3 * x ** (1 - 0.35) + 0.79e-3 * x ** (1 - 1.47))
    dl = lm[1] - lm[0]
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (phi[1:] + phi[:-1]) * dl)])
    n_above = (cum[-1] - cum) / _H_SMF**3
    return lm, n_above


def smf_number_density(log_mstar_cut: float) -> float:
    """Field number density of galaxies above ``log_mstar_cut`` [(Mpc/h)^-3] (Baldry+12)."""
    lm, n = _smf_table()
    return float(np.interp(log_mstar_cut, lm, n))


@lru_cache(maxsize=1024)
def depth_factor(log_mstar_cut: float) -> float:
    """N(>cut) / N(>10^9.5) from the shape of the GAMA SMF (cached: one cut per host)."""
    return smf_number_density(log_mstar_cut) / smf_number_density(9.5)


def sample_satellite_mstar(rng: np.random.Generator, n: int, cut: float) -> np.ndarray:
    """log10 M* of ``n`` satellites above ``cut``, from the Baldry+12 SMF shape."""
    lm, nab = _smf_table()
    top = nab[0] - nab  # increasing cumulative from the low end
    c_lo = np.interp(cut, lm, top)
    u = c_lo + rng.random(n) * (top[-1] - c_lo)
    return np.interp(u, top, lm)


@lru_cache(maxsize=1)
def _smhm_table() -> tuple[np.ndarray, np.ndarray]:
    """L11 SMHM (SIG_MOD1, z_1): log10 M200c [Msun/h] of the mean central log10 M* grid."""
    lms = np.linspace(8.0, 12.3, 400)
    log_m1, log_ms0, beta, delta, gamma = 12.52, 10.916, 0.457, 0.566, 1.54
    r = 10.0 ** (lms - log_ms0)
    log_mh_b = log_m1 + beta * np.log10(r) + r**delta / (1 + r ** (-gamma)) - 0.5  # Msun, M200b
    # Msun (h = 0.72) -> Msun/h, and M200b -> M200c (M200b ≈ 1.35 M200c; physics note §2.3)
    log_mh_c = log_mh_b + np.log10(0.72) - np.log10(1.35)
    return log_mh_c, lms


def central_log_mstar(rng: np.random.Generator, log_mh: np.ndarray) -> np.ndarray:
    """Central log10 M* for halos of log10 M200c ``log_mh`` (L11 SMHM, 0.206 dex scatter)."""
    x, y = _smhm_table()
    mean = np.interp(log_mh, x, y)
    return mean + 0.206 * rng.standard_normal(np.shape(log_mh))


def nsat_mean(
    log_m: np.ndarray | float,
    log_mstar_cut: float,
    n14: float,
    norm_dex: float = 0.0,
    slope: float = 1.0,
) -> np.ndarray:
    """Mean satellite count above ``log_mstar_cut`` inside R200m of halos of log10 M200c."""
    m = 10.0 ** (np.asarray(log_m) - 14.0)
    return (
        n14 * 10.0**norm_dex * m**slope * np.exp(-(10.0 ** (LOG_MCUT_SAT - 14.0)) / m)
        * depth_factor(log_mstar_cut)
    )  # fmt: skip


@lru_cache(maxsize=1)
def _nfw_inverse_table() -> tuple[np.ndarray, np.ndarray]:
    s = np.geomspace(1e-4, 1e3, 3000)
    return nfw_mu(s), s


def tracer_enclosed(x, c_gal: float, alpha: float | None) -> np.ndarray:
    """Enclosed tracer number (arbitrary normalisation) within x = r/R200c."""
    s = c_gal * np.asarray(x)
    if alpha is None or not np.isfinite(alpha):
        return nfw_mu(s)
    return gammainc(3.0 / alpha, (2.0 / alpha) * s**alpha)


def tracer_density(x, c_gal: float, alpha: float | None) -> np.ndarray:
    """Tracer number density ν(x) (arbitrary normalisation), x = r/R200c."""
    s = c_gal * np.asarray(x)
    if alpha is None or not np.isfinite(alpha):
        return 1.0 / (s * (1.0 + s) ** 2)
    return np.exp(-(2.0 / alpha) * (s**alpha - 1.0))


def sample_tracer_radii(
    rng: np.random.Generator, n: int, c_gal: float, alpha: float | None, x_t: float
) -> np.ndarray:
    """Radii x = r/R200c of ``n`` tracers of an NFW (alpha None) or Einasto profile, x < x_t."""
    u = rng.random(n)
    if alpha is None or not np.isfinite(alpha):
        mu_tab, s_tab = _nfw_inverse_table()
        return np.interp(u * nfw_mu(c_gal * x_t), mu_tab, s_tab) / c_gal
    a = 3.0 / alpha
    p = u * gammainc(a, (2.0 / alpha) * (c_gal * x_t) ** alpha)
    y = gammaincinv(a, np.maximum(p, 1e-300))
    return (alpha * y / 2.0) ** (1.0 / alpha) / c_gal


def random_directions(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` isotropic unit vectors, shape (n, 3)."""
    cz = 2.0 * rng.random(n) - 1.0
    ph = 2.0 * np.pi * rng.random(n)
    sz = np.sqrt(1.0 - cz * cz)
    return np.column_stack([sz * np.cos(ph), sz * np.sin(ph), cz])


def host_counts(rng: np.random.Generator, h: dict, n14: float) -> int:
    """Number of host satellites inside the truncation radius (step G4)."""
    lam = nsat_mean(h["log_m200c"], h["log_mstar_cut"], n14, h["nsat_norm_dex"], h["nsat_slope"])
    alpha = h["einasto_alpha"] if h["tracer_profile"] == 1 else None
    frac = tracer_enclosed(h["r_trunc_r200c"], h["c_gal"], alpha) / tracer_enclosed(
        h["r200m_r200c"], h["c_gal"], alpha
    )
    return int(rng.poisson(lam * frac * np.exp(h["nsat_eps"])))
