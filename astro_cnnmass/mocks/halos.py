"""Host halos: redshift, mass (flat or Tinker08 prior), concentration, shape, mass definitions.

Generator steps G1–G3 of the physics note. Relations used:

* mass function: Tinker et al. 2008 (ApJ 688, 709; arXiv:0803.2706), M200c, via colossus;
* c200c(M, z): Diemer & Joyce 2019 (arXiv:1809.07326), Duffy et al. 2008 (arXiv:0804.2486) or
  Ishiyama et al. 2021 (arXiv:2007.14720), chosen per host, with a lognormal scatter of
  0.11–0.16 dex (Bullock et al. 2001, astro-ph/9908159; Diemer & Kravtsov 2015, arXiv:1407.4730);
* axis ratios: mean c/a of Kasun & Evrard 2005 (astro-ph/0408056),
  ⟨c/a⟩ = 0.631 [1 − 0.023 ln(M/10^15)] (1+z)^−0.086, prolate-leaning b/a (Despali et al. 2014,
  arXiv:1212.4157);
* NFW mass-definition conversions (Navarro, Frenk & White 1997, astro-ph/9611107) with the
  Bryan & Norman 1998 (astro-ph/9710107) virial overdensity.
"""

from __future__ import annotations

import numpy as np

from .config import MockConfig
from .tables import Tables

__all__ = ["CM_MODELS", "convert_mass", "draw_host", "nfw_mu", "random_rotation"]

CM_MODELS = ("diemer19", "duffy08", "ishiyama21")
ANISOTROPY_MODELS = ("ml", "tiret", "const", "om")
#: Einasto α of the Einasto tracers of the distribution-function library (``dflibrary``).
DF_EINASTO_ALPHA = 0.2
TRACER_PROFILES = ("nfw", "einasto")


def nfw_mu(x):
    """NFW enclosed-mass shape m(x) = ln(1 + x) − x / (1 + x)."""
    return np.log1p(x) - x / (1.0 + x)


def _delta_c(definition: str, om_z: float) -> float:
    """Overdensity with respect to the critical density of a spherical-overdensity definition."""
    if definition == "200c":
        return 200.0
    if definition == "500c":
        return 500.0
    if definition == "200m":
        return 200.0 * om_z
    if definition == "vir":  # Bryan & Norman 1998, flat universe
        x = om_z - 1.0
        return 18.0 * np.pi**2 + 82.0 * x - 39.0 * x**2
    raise ValueError(f"unknown mass definition {definition!r} (200c, 500c, 200m, vir)")


#: Grid of r / R200c on which :func:`radius_ratio` inverts the mean enclosed density.
_RATIO_GRID = np.geomspace(0.2, 5.0, 400)
_RATIO_GRID.flags.writeable = False


def radius_ratio(c200c: float, delta_c: float) -> float:
    """R_Δ / R200c of an NFW halo of concentration c200c for overdensity Δ (× critical)."""
    x = _RATIO_GRID
    y = nfw_mu(c200c * x) / (nfw_mu(c200c) * x**3)  # mean density / (200 ρc), decreasing
    return float(np.interp(delta_c / 200.0, y[::-1], x[::-1]))


def convert_mass(
    log_m200c: float, c200c: float, z: float, to: str, tables: Tables
) -> tuple[float, float]:
    """Convert an NFW M200c to another spherical-overdensity definition.

    Parameters
    ----------
    log_m200c : float
        log10 M200c [Msun/h].
    c200c : float
        Concentration R200c / r_s.
    z : float
        Redshift.
    to : {'200c', '500c', '200m', 'vir'}
        Target definition.
    tables : Tables
        Cosmology tables (for Ω_m(z)).

    Returns
    -------
    log_m, r_ratio : float
        log10 M_Δ [Msun/h] and R_Δ / R200c.
    """
    xr = radius_ratio(c200c, _delta_c(to, float(tables.Om_of_z(z))))
    return log_m200c + np.log10(nfw_mu(c200c * xr) / nfw_mu(c200c)), xr


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3×3 rotation matrix (unit quaternion from 4 Gaussians)."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix by ``angle`` [rad] about the unit vector ``axis`` (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _u(rng: np.random.Generator, rng_pair: tuple[float, float]) -> float:
    lo, hi = rng_pair
    return float(lo + (hi - lo) * rng.random()) if hi > lo else float(lo)


def draw_host(
    rng: np.random.Generator, cfg: MockConfig, tables: Tables, prior: str = "flat"
) -> dict:
    """Draw the redshift, mass and structural parameters of one host halo (steps G1–G3).

    Returns a flat dict of floats (the per-cluster truth and nuisance parameters) plus a few
    private entries starting with ``_`` (rotation matrices) used by later stages.
    """
    h: dict = {}
    z = _u(rng, cfg.z_range)
    h["z"] = z
    lo, hi = cfg.log_m_range
    if prior == "flat" or hi == lo:
        logm = _u(rng, cfg.log_m_range)
    else:  # Tinker08 at the drawn redshift
        logm = float(tables.sample_masses(rng, 1, z, lo, hi)[0])
    h["log_m200c"] = logm
    # ---- concentration (G3)
    k = int(rng.integers(len(cfg.cm_models)))
    model = cfg.cm_models[k]
    h["cm_model"] = CM_MODELS.index(model)
    h["cm_scatter_dex"] = _u(rng, cfg.cm_scatter_dex)
    zc = rng.standard_normal()
    h["c200c_resid_dex"] = h["cm_scatter_dex"] * zc
    c = float(tables.concentration(logm, z, model)) * 10.0 ** h["c200c_resid_dex"]
    c = float(np.clip(c, 1.5, 30.0))
    h["c200c"] = c
    h["r200c_mpch"] = float(tables.r200c_phys(logm, z))
    h["v200_kms"] = float(tables.v200(logm, z))
    h["log_m200m"], h["r200m_r200c"] = convert_mass(logm, c, z, "200m", tables)
    h["log_mvir"], h["rvir_r200c"] = convert_mass(logm, c, z, "vir", tables)
    h["log_m500c"], _ = convert_mass(logm, c, z, "500c", tables)
    # ---- galaxy profile
    h["f_c"] = _u(rng, cfg.f_c)
    h["c_gal"] = c * h["f_c"]
    tp = cfg.tracer_profiles[int(rng.integers(len(cfg.tracer_profiles)))]
    h["tracer_profile"] = TRACER_PROFILES.index(tp)
    h["einasto_alpha"] = _u(rng, cfg.einasto_alpha) if tp == "einasto" else np.nan
    if tp == "einasto" and cfg.member_velocities == "df":
        h["einasto_alpha"] = DF_EINASTO_ALPHA  # the library's Einasto tracers
    h["trunc_r200m"] = _u(rng, cfg.truncation_r200m)
    h["r_trunc_r200c"] = h["trunc_r200m"] * h["r200m_r200c"]
    # ---- shape (Kasun & Evrard 2005 mean c/a; prolate-leaning b/a)
    if cfg.triaxial:
        mean_ca = 0.631 * (1 - 0.023 * np.log(10.0 ** (logm - 15.0))) * (1 + z) ** -0.086
        h["shape_sigma"] = _u(rng, cfg.shape_sigma)
        q_ca = float(np.clip(mean_ca + h["shape_sigma"] * rng.standard_normal(), 0.3, 1.0))
        mode = float(np.clip((1 + q_ca) / 2 - 0.05, q_ca, 1.0))
        q_ba = float(rng.triangular(q_ca, mode, 1.0)) if q_ca < 1.0 else 1.0
        h["vel_shape_exponent"] = _u(rng, cfg.velocity_shape_exponent)
        # misalignment angle: half-normal with the configured median (median = 0.674 σ)
        sig = np.deg2rad(cfg.misalignment_median_deg) / 0.6745
        ang = float(min(abs(rng.standard_normal()) * sig, np.pi / 2))
        axis = rng.standard_normal(3)
        axis /= np.linalg.norm(axis)
        h["_vel_rot"] = rotation_about(axis, ang)
        h["vel_misalign_deg"] = float(np.rad2deg(ang))
    else:
        q_ca = q_ba = 1.0
        h["shape_sigma"] = 0.0
        h["vel_shape_exponent"] = 0.0
        h["_vel_rot"] = np.eye(3)
        h["vel_misalign_deg"] = 0.0
    h["q_ba"], h["q_ca"] = q_ba, q_ca
    h["qv_ba"] = q_ba ** h["vel_shape_exponent"]
    h["qv_ca"] = q_ca ** h["vel_shape_exponent"]
    # ---- anisotropy (Mamon & Łokas 2005; Tiret et al. 2007; constant)
    am = cfg.anisotropy_models[int(rng.integers(len(cfg.anisotropy_models)))]
    h["anisotropy_model"] = ANISOTROPY_MODELS.index(am)
    h["ml_ra_rs"] = _u(rng, cfg.ml_ra_rs) if am == "ml" else np.nan
    h["tiret_beta_inf"] = _u(rng, cfg.tiret_beta_inf) if am == "tiret" else np.nan
    h["tiret_rb_rs"] = _u(rng, cfg.tiret_rb_rs) if am == "tiret" else np.nan
    h["const_beta"] = _u(rng, cfg.const_beta) if am == "const" else np.nan
    h["om_ra_rs"] = _u(rng, cfg.om_ra_rs) if am == "om" else np.nan
    h["velocity_bias"] = _u(rng, cfg.velocity_bias)
    h["sigma_norm"] = float(1.0 + cfg.sigma_norm_scatter * rng.standard_normal())
    h["mass_segregation_k"] = _u(rng, cfg.mass_segregation_k)
    # ---- counts (G4 parameters); ε anti-correlated with the c residual (Mao+15) [A: ρ = -0.3]
    h["nsat_norm_dex"] = _u(rng, cfg.nsat_norm_dex)
    h["nsat_slope"] = _u(rng, cfg.nsat_slope)
    h["nsat_scatter"] = _u(rng, cfg.nsat_scatter)
    rho = -0.3
    h["nsat_eps"] = h["nsat_scatter"] * (rho * zc + np.sqrt(1 - rho**2) * rng.standard_normal())
    h["log_mstar_cut"] = _u(rng, cfg.log_mstar_cut)
    h["include_centrals"] = float(rng.random() < cfg.p_centrals)
    # ---- substructure
    h["p_substructure"] = _u(rng, cfg.p_substructure)
    h["n_subgroups"] = float(rng.integers(1, 4)) if rng.random() < h["p_substructure"] else 0.0
    h["p_merger"] = _u(rng, cfg.p_merger)
    h["merger"] = float(rng.random() < h["p_merger"])
    # ---- surroundings
    for name in (
        "infall_amplitude", "x_turnaround", "x_splashback", "infall_delta1", "infall_slope",
        "field_sigma_kms", "student_nu", "neighbour_bias", "field_density", "uniform_fraction",
        "turnaround_delta", "stream_amplitude", "stream_sigma", "stream_sigma_t_ratio",
        "infall_inner_r200c",
    ):  # fmt: skip
        h[name] = _u(rng, getattr(cfg, name))
    # filaments through the host (connectivity 2-4: Codis et al. 2018, arXiv:1803.11477;
    # ~half of the mass in filaments: Cautun et al. 2014, arXiv:1401.7866; radius ~1-2.5 Mpc/h
    # [M]); isotropic axis directions [A]
    lo_f, hi_f = cfg.n_filaments
    n_fil = int(rng.integers(round(lo_f), round(hi_f) + 1))
    h["n_filaments"] = float(n_fil)
    h["filament_fraction"] = _u(rng, cfg.filament_fraction) if n_fil else 0.0
    h["filament_radius_mpch"] = _u(rng, cfg.filament_radius_mpch)
    f = rng.standard_normal((n_fil, 3))
    h["_filaments"] = f / np.linalg.norm(f, axis=1, keepdims=True) if n_fil else f
    return h
