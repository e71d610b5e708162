"""Observation of one line of sight: projection, v_los, storage cylinder, survey effects.

Generator steps G8–G9.

* Projection in the light cone: a galaxy at comoving distance χ = χ_cl + D and transverse
  comoving offset (X, Y) is seen at angle θ = |(X, Y)| / χ; its projected radius is
  R = D_A(z_cl) θ = χ_cl θ / (1 + z_cl) (physical Mpc/h, the package convention).
* Redshift: 1 + z_obs = (1 + z_cos(χ)) (1 + v_pec/c) and v = c (z_obs − z_cl)/(1 + z_cl) (the
  package's rest-frame velocity; Harrison 1974, ApJ 191, L51), which reproduces Ho et al.'s
  relativistic composition of Hubble and peculiar velocities to O(v²/c²).
* Redshift errors: Gaussian σ_err ∈ [15, 60] km/s (SDSS ≈ 30 km/s [M]) plus a catastrophic
  fraction ≤ 1 % uniform in the storage window [A].
* Velocity zero point: δv ~ N(0, (0–0.3) σ_true) (BCG or biweight redshift; Zabludoff et al. 1990
  find significant cD offsets in 8 of 19 clusters) [A].
* Miscentring: with probability f_mis ∈ [0, 0.3] the centre is offset by R_off ~ Gamma(2, θ R200c),
  θ ∈ [0.05, 0.25] (Zhang et al. 2019, arXiv:1901.07119: 75 ± 8 % of redMaPPer clusters well
  centred; Gamma-distributed offsets).
* Incompleteness: random sampling fraction ∈ [0.5, 1] (Ho et al. 2019 test sampling-rate
  stability) times a linear completeness ramp of width w ∈ [0, 0.3] dex above the stellar-mass cut
  (fainter galaxies missed first) [A].
* Targeting (off by default; randomized in the bundled model's training set and in the
  ``central_targeting`` variant): a per-line-of-sight targeting radius R_t (physical Mpc/h)
  beyond which nothing is observed, and a completeness falling linearly with radius inside it,
  1 − g R/R_t. Cluster redshift surveys choose their targets by field of view, distance from
  the centre and colour: WINGS-SPE (Cava et al. 2009, arXiv:0812.2022) observes the fields of
  its wide-field imaging of nearby clusters, HeCS (Rines et al. 2013, ApJ 767, 15) targets
  red-sequence galaxies out to the infall region. A model must not read the radial profile of
  the *observed* galaxies that a targeting strategy leaves as a property of the cluster [A].
* Fibre collisions: a galaxy with k neighbours closer than 55″ (SDSS; NYU-VAGC "Fixing
  collisions") is lost with probability 0.7 p_fc k/(k+1) (one fibre per collision group and tile;
  ≈ 70 % of collided pairs are outside tile overlaps), p_fc ∈ [0, 1] [A].
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .config import MockConfig
from .members import ORIGIN
from .tables import C_KMS, Tables

__all__ = ["draw_los_params", "observe", "targeting_completeness"]

_ARCSEC = np.pi / (180.0 * 3600.0)


def _u(rng: np.random.Generator, pair: tuple[float, float]) -> float:
    lo, hi = pair
    return float(lo + (hi - lo) * rng.random()) if hi > lo else float(lo)


def targeting_completeness(R: np.ndarray, r_t: float, g: float) -> np.ndarray:
    """Probability that a survey's targeting observes a galaxy at projected radius ``R``.

    Parameters
    ----------
    R : numpy.ndarray
        Projected radii [physical Mpc/h].
    r_t : float
        Targeting radius [physical Mpc/h]: nothing beyond it is observed.
    g : float
        Completeness gradient: 1 − g R/R_t inside R_t.

    Returns
    -------
    numpy.ndarray
        1 − g R/R_t for R < R_t, 0 beyond.
    """
    return np.where(R < r_t, 1.0 - g * np.minimum(R / r_t, 1.0), 0.0)


def draw_los_params(rng: np.random.Generator, h: dict, cfg: MockConfig) -> dict:
    """Observational nuisance parameters of one line of sight (step G9)."""
    p = {
        "velocity_error_kms": _u(rng, cfg.velocity_error_kms),
        "catastrophic_fraction": _u(rng, cfg.catastrophic_fraction),
        "sampling_fraction": _u(rng, cfg.sampling_fraction),
        "completeness_width_dex": _u(rng, cfg.completeness_width_dex),
        "fibre_collision_p": _u(rng, cfg.fibre_collision_p),
        "targeting_aperture_mpch": _u(rng, cfg.targeting_aperture_mpch),
        "targeting_gradient": _u(rng, cfg.targeting_gradient),
        "miscentring_fraction": _u(rng, cfg.miscentring_fraction),
        "miscentring_scale_r200c": _u(rng, cfg.miscentring_scale_r200c),
        "velocity_offset_frac": _u(rng, cfg.velocity_offset_frac),
    }
    mis = rng.random() < p["miscentring_fraction"]
    p["miscentred"] = float(mis)
    r_off = rng.gamma(2.0, p["miscentring_scale_r200c"]) * h["r200c_mpch"] if mis else 0.0
    p["r_offset_mpch"] = float(r_off)
    p["_offset_angle"] = float(2 * np.pi * rng.random())
    return p


def observe(
    rng: np.random.Generator,
    h: dict,
    p: dict,
    cfg: MockConfig,
    tables: Tables,
    chi_cl: float,
    gal: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Project galaxies, add survey effects and keep those in the storage cylinder.

    Parameters
    ----------
    gal : dict
        ``X``, ``Y``, ``D`` host-relative comoving coordinates [Mpc/h] (D along the LOS),
        ``vpec`` LOS peculiar velocity [km/s], ``log_mstar``, ``origin``, ``is_member``.

    Returns
    -------
    dict
        ``R`` [physical Mpc/h], ``v`` [km/s], ``is_member``, ``log_mstar``, ``origin`` of the
        stored galaxies. Sets ``sigma_true_kms``, ``n_members_3d`` and ``v_offset_kms`` in ``p``.
    """
    z = h["z"]
    chi = chi_cl + gal["D"]
    ok = chi > 0.5
    if not ok.all():
        gal = {k: a[ok] for k, a in gal.items()}
        chi = chi[ok]
    scale = chi_cl / (chi * (1.0 + z))  # transverse comoving -> physical Mpc/h at the cluster
    xs, ys = gal["X"] * scale, gal["Y"] * scale
    z_obs = (1.0 + tables.z_of_chi(chi)) * (1.0 + gal["vpec"] / C_KMS) - 1.0
    v = C_KMS * (z_obs - z) / (1.0 + z)
    # ---- truth: LOS dispersion of all 3D members (no central), before survey effects
    mem = gal["is_member"] & (gal["origin"] != ORIGIN["host_central"])
    n_mem = int(mem.sum())
    p["n_members_3d"] = n_mem
    p["sigma_true_kms"] = float(np.std(v[mem])) if n_mem > 1 else np.nan
    # ---- velocity zero point, errors
    sig_ref = p["sigma_true_kms"] if np.isfinite(p["sigma_true_kms"]) else 0.0
    dv = p["velocity_offset_frac"] * sig_ref * rng.standard_normal()
    p["v_offset_kms"] = float(dv)
    v = v - dv + p["velocity_error_kms"] * rng.standard_normal(v.size)
    vs = cfg.storage_v_cut_kms
    cat = rng.random(v.size) < p["catastrophic_fraction"]
    if cat.any():
        v[cat] = rng.uniform(-vs, vs, int(cat.sum()))
    # ---- miscentring
    if p["r_offset_mpch"] > 0:
        xs = xs - p["r_offset_mpch"] * np.cos(p["_offset_angle"])
        ys = ys - p["r_offset_mpch"] * np.sin(p["_offset_angle"])
    R = np.hypot(xs, ys)
    keep = (R < cfg.storage_aperture_mpch) & (np.abs(v) < vs)
    # ---- incompleteness
    w = p["completeness_width_dex"]
    lms = gal["log_mstar"]
    ramp = np.clip((lms - h["log_mstar_cut"]) / w, 0.0, 1.0) if w > 0 else 1.0
    r_t, g_t = p["targeting_aperture_mpch"], p["targeting_gradient"]
    if r_t < cfg.storage_aperture_mpch or g_t > 0:
        # survey targeting: nothing beyond R_t (completeness 0 there), falling as
        # 1 − g R/R_t inside
        ramp = ramp * targeting_completeness(R, r_t, g_t)
    keep &= rng.random(v.size) < p["sampling_fraction"] * ramp
    idx = np.flatnonzero(keep)
    # ---- fibre collisions
    d_fc = chi_cl / (1.0 + z) * cfg.fibre_angle_arcsec * _ARCSEC  # physical Mpc/h
    p["fibre_size_mpch"] = float(d_fc)
    if p["fibre_collision_p"] > 0 and idx.size > 1:
        pairs = cKDTree(np.column_stack([xs[idx], ys[idx]])).query_pairs(
            d_fc, output_type="ndarray"
        )
        if len(pairs):
            # a galaxy colliding with k others survives with probability ~1/(k+1) per tile
            # (one fibre per collision group); 0.7 p_fc of the losses are not recovered by
            # tile overlaps (NYU-VAGC)
            k = np.bincount(pairs.ravel(), minlength=idx.size)
            p_drop = 0.7 * p["fibre_collision_p"] * k / (k + 1.0)
            idx = idx[rng.random(idx.size) >= p_drop]
    return {
        "R": R[idx],
        "v": v[idx],
        "is_member": gal["is_member"][idx],
        "log_mstar": lms[idx],
        "origin": gal["origin"][idx],
    }
