"""The host's own galaxies in 3D: smooth satellites, infalling subgroups, merger companion, BCG.

Combines the counts and positions of :mod:`~astro_cnnmass.mocks.members` with the velocities of
:mod:`~astro_cnnmass.mocks.velocities` (steps G4–G6). Substructure follows the recipe of the
physics note §4.6: with probability p_sub ∈ [0.2, 0.45] (≈ a quarter of clusters have significant
substructure, Old et al. 2018, MNRAS 475, 853) 1–3 bound subgroups with mass ratio
μ ∈ logU[0.03, 0.3] take ≈ μ N_sat of the galaxies, sit at r ∈ U[0.3, 1.5] R200c, move with the
host's local dispersion plus a radial infall up to V200, and have an internal dispersion of
0.66 V200(μM) (Evrard et al. 2008, astro-ph/0702241) and a tidally truncated size
R200c(μM) × U[0.5, 1] (White, Cohn & Smit 2010, arXiv:1005.3022: infalling groups keep their
identity in phase space). With probability p_merger ∈ [0, 0.1] a companion halo of mass ratio
U[0.3, 1] sits at 0.5–2 R200c with a relative velocity ≈ V200 [A].

Generator 2.0 (``member_velocities='df'``, ``infall_kinematics='stream'``): the smooth members
are drawn jointly in position and velocity from the distribution-function library
(:mod:`~astro_cnnmass.mocks.dflibrary`); subgroups fall in on the host's infalling stream
(bulk radial velocity U[0.5, 1] × the free-fall speed from turnaround at their radius, plus the
host's local tangential dispersion: groups on first infall, White et al. 2010); the merger
companion approaches on a two-body orbit released at rest at the host's turnaround radius,
v_rel² = 2 G (M + M₂)(1/d − 1/d_ta), within 45° of radial [A]. Bimodal and skewed LOS velocity
distributions follow from these bulk motions; none is drawn by hand.
"""

from __future__ import annotations

import numpy as np

from .config import MockConfig
from .dflibrary import sample_df_members
from .members import (
    ORIGIN,
    central_log_mstar,
    host_counts,
    nsat_mean,
    random_directions,
    sample_satellite_mstar,
    sample_tracer_radii,
)
from .tables import Tables
from .velocities import (
    apply_velocity_ellipsoid,
    isotropic_gaussian,
    jeans_sigma_r,
    sample_member_velocities,
    velocity_scale,
)

__all__ = ["host_population", "member_radius"]


def member_radius(h: dict, definition: str) -> float:
    """3D radius (units of R200c) inside which a galaxy is a true member."""
    return {"r200c": 1.0, "rvir": h["rvir_r200c"], "r200m": h["r200m_r200c"]}[definition]


def _satellites_of(rng, n, c, x_max, v_int_kms, log_m_cut):
    """Positions (units of R200c of the host), internal velocities and M* of a subgroup."""
    x = sample_tracer_radii(rng, n, c, None, x_max)
    pos = x[:, None] * random_directions(rng, n)
    vel = rng.standard_normal((n, 3)) * v_int_kms
    return pos, vel, sample_satellite_mstar(rng, n, log_m_cut)


def _stream_speed(infall, x: float) -> float:
    """Free-fall (stream) total radial speed [V200] at x = r/R200c, or 0 without a stream."""
    if infall is None or infall.mode != "stream":
        return 0.0
    return float(-np.interp(np.log(max(x, 1e-3)), infall.lx, infall.vtot_v200))


def host_population(
    rng: np.random.Generator, h: dict, cfg: MockConfig, tables: Tables, infall=None
) -> dict[str, np.ndarray]:
    """3D galaxies of one host in its principal frame.

    Returns
    -------
    dict
        ``pos`` (n, 3) comoving Mpc/h, ``vel`` (n, 3) km/s (host rest frame), ``log_mstar``,
        ``origin`` (uint8 codes of :data:`~astro_cnnmass.mocks.members.ORIGIN`), ``is_member``
        (3D radius < member radius). Adds summary entries to ``h``.
    """
    z, logm, v200 = h["z"], h["log_m200c"], h["v200_kms"]
    cut = h["log_mstar_cut"]
    n_tot = host_counts(rng, h, cfg.nsat_14)
    # ---- subgroups take a share of the galaxies
    n_sub = int(h["n_subgroups"])
    mus = 10.0 ** rng.uniform(*np.log10(cfg.substructure_mu), size=n_sub) if n_sub else []
    n_k = [int(rng.binomial(n_tot, min(mu, 0.9))) for mu in mus]
    while sum(n_k) > n_tot:  # rare: shrink the last groups
        n_k[int(np.argmax(n_k))] -= 1
    n_smooth = n_tot - sum(n_k)
    h["sub_mu_max"] = float(max(mus)) if n_sub else 0.0
    h["sub_fraction"] = float(sum(n_k) / n_tot) if n_tot else 0.0
    # ---- smooth component (triaxial; DF or Jeans + Gaussian velocities)
    alpha = h["einasto_alpha"] if h["tracer_profile"] == 1 else None
    jeans = jeans_sigma_r(h)
    if cfg.member_velocities == "df":
        x, u, v_unit, summary = sample_df_members(rng, h, n_smooth, h["r_trunc_r200c"])
        h.update(summary)
        lms = sample_satellite_mstar(rng, x.size, cut)
        vel = v_unit * velocity_scale(h, lms)[:, None] if x.size else v_unit
        n_smooth = x.size
    else:
        x = sample_tracer_radii(rng, n_smooth, h["c_gal"], alpha, h["r_trunc_r200c"])
        u = random_directions(rng, n_smooth)
        lms = sample_satellite_mstar(rng, n_smooth, cut)
        vel = sample_member_velocities(rng, h, x, u, lms, jeans)
    vel = apply_velocity_ellipsoid(vel, h)
    axes = np.array([1.0, h["q_ba"], h["q_ca"]]) / (h["q_ba"] * h["q_ca"]) ** (1.0 / 3.0)
    pos_l = [x[:, None] * u * axes]
    vel_l = [vel]
    lms_l = [lms]
    org_l = [np.full(n_smooth, ORIGIN["host_satellite"], np.uint8)]
    # ---- subgroups
    lx, sig, beta = jeans
    vscale = v200 * h["velocity_bias"] * h["sigma_norm"]
    for mu, nk in zip(mus, n_k):
        rk = rng.uniform(0.3, 1.5)
        uk = random_directions(rng, 1)
        srk = float(np.interp(np.log(rk), lx, sig))
        stk = srk * np.sqrt(max(1.0 - float(np.interp(np.log(rk), lx, beta)), 0.0))
        bulk = isotropic_gaussian(rng, np.array([srk]), np.array([stk]), uk)[0] * vscale
        if infall is not None and infall.mode == "stream":
            # first infall on the stream: drop the random radial part, fall at U[0.5, 1] of the
            # free-fall speed from turnaround
            bulk -= (bulk @ uk[0]) * uk[0]
            bulk -= rng.uniform(0.5, 1.0) * _stream_speed(infall, rk) * v200 * uk[0]
        else:
            bulk -= rng.uniform(0.0, 1.0) * v200 * uk[0]  # extra radial infall, up to V200
        c_sub = float(tables.concentration(logm + np.log10(mu), z, "diemer19"))
        size = mu ** (1.0 / 3.0) * rng.uniform(0.5, 1.0)
        p, v, m = _satellites_of(rng, nk, c_sub, size, 0.66 * v200 * mu ** (1 / 3), cut)
        pos_l.append(p + rk * uk)
        vel_l.append(v + bulk)
        lms_l.append(m)
        org_l.append(np.full(nk, ORIGIN["host_subgroup"], np.uint8))
    # ---- merger companion (extra galaxies, not taken from the host)
    h["merger_mu"] = 0.0
    h["merger_vrel_v200"] = 0.0
    if h["merger"]:
        mu = rng.uniform(0.3, 1.0)
        h["merger_mu"] = float(mu)
        lm2 = logm + np.log10(mu)
        nk = int(rng.poisson(nsat_mean(lm2, cut, cfg.nsat_14, h["nsat_norm_dex"], h["nsat_slope"])))
        c2 = float(tables.concentration(lm2, z, "diemer19"))
        sep = rng.uniform(0.5, 2.0) * random_directions(rng, 1)[0]
        if infall is not None and infall.mode == "stream":
            d = float(np.linalg.norm(sep))
            x_ta = h["x_turnaround"]
            v_rel = np.sqrt(max(2.0 * (1.0 + mu) * (1.0 / d - 1.0 / x_ta), 0.0))
            s_hat = sep / d
            t_hat = random_directions(rng, 1)[0]
            t_hat -= (t_hat @ s_hat) * s_hat
            t_hat /= max(np.linalg.norm(t_hat), 1e-12)
            psi = rng.uniform(0.0, np.pi / 4)
            bulk = v_rel * v200 * (-np.cos(psi) * s_hat + np.sin(psi) * t_hat)
            h["merger_vrel_v200"] = float(v_rel)
        else:
            bulk = rng.standard_normal(3) * 0.6 * v200
            h["merger_vrel_v200"] = float(np.linalg.norm(bulk) / v200)
        p, v, m = _satellites_of(rng, nk, c2, 1.5 * mu ** (1 / 3), 0.66 * v200 * mu ** (1 / 3), cut)
        pos_l.append(p + sep)
        vel_l.append(v + bulk)
        lms_l.append(m)
        org_l.append(np.full(nk, ORIGIN["merger_companion"], np.uint8))
    # ---- brightest central galaxy (only when centrals are included)
    if h["include_centrals"]:
        lm_c = central_log_mstar(rng, np.array([logm]))
        pos_l.append(np.zeros((1, 3)))
        # BCG peculiar velocity ~ 0.1 V200 per axis [A; Lauer et al. 2014, arXiv:1407.4528]
        vel_l.append(rng.standard_normal((1, 3)) * 0.1 * v200)
        lms_l.append(lm_c)
        org_l.append(np.full(1, ORIGIN["host_central"], np.uint8))
    pos = np.concatenate(pos_l)
    r3d = np.sqrt(np.einsum("ij,ij->i", pos, pos))
    is_member = r3d < member_radius(h, cfg.member_radius)
    return {
        "pos": pos * h["r200c_mpch"] * (1.0 + z),  # comoving Mpc/h
        "vel": np.concatenate(vel_l),
        "log_mstar": np.concatenate(lms_l),
        "origin": np.concatenate(org_l),
        "is_member": is_member,
    }
