"""What fills the cylinder besides the host: neighbour halos, infall region, uniform field.

Generator step G7 (physics note §5.2). Everything is drawn in the light cone of the storage
cylinder (angular radius θ_max, comoving distances [χ_lo, χ_hi] around the cluster distance χ_cl),
so the projected geometry is exact at low redshift too.

* Neighbour halos (10^10.8 Msun/h ≤ M' ): number density dn/dM' [1 + b(M') δ_m(r)] with
  Tinker et al. 2008 (arXiv:0803.2706) dn/dM' and Tinker et al. 2010 (arXiv:1001.3162) b(M');
  the matter overdensity around the host is δ_m(r) = max(A_nb b(M) ξ_lin(r),
  δ1 (r/R200m)^−s): linear clustering far away and the infalling-matter power law of Diemer 2022
  (arXiv:2205.03420; colossus ``profile_outer``) near the host, with δ1 ∈ [5, 20] and s ∈ [1, 2].
  Halo centres inside the host's orbiting region (r < r_t) are excluded. Each neighbour gets a
  central (L11 SMHM, if centrals are included and above the stellar-mass cut) and Poisson
  satellites from the same HOD as the host, NFW-distributed, with internal dispersion
  0.65 V200(M') (Evrard et al. 2008, astro-ph/0702241).
* Uniform field: galaxies not in resolved halos, a fraction ∈ [0, 0.15] of the Baldry et al. 2012
  (arXiv:1111.5707) GAMA number density above the cut [A].
* Peculiar velocities (:class:`InfallModel`): by default (``infall_kinematics='stream'``) the
  neighbours and field galaxies are on first infall, falling from rest at the turnaround radius
  (δ̄ = δ_ta ≈ 11, Korkidis et al. 2020, arXiv:1912.08216) and reaching in to 1–1.3 R200c, where
  they mix with the host's splashback galaxies; linear theory with a nonlinear correction
  outside turnaround; Student-t random motions (Zu & Weinberg 2013, arXiv:1211.1379). The
  generator-1.0 field (``'mean'``): the all-matter mean infall
  v_r(x)/V200 = −A (f/3)(0.1 x) δ̄(<x) / sqrt(1 + δ̄(<x)/δ_c) with δ_c fixed by v_tot = 0 at the
  turnaround radius x_ta ∈ [3.5, 5.5] R200c (Cupani et al. 2008, arXiv:0807.3239; peak infall
  ≲ 900 km/s, Pivato et al. 2006, astro-ph/0512160), tapered to 0 inside the splashback radius
  x_sp ∈ [1.2, 2] R200c (Pizzardo et al. 2024, A&A 683, A82), radial σ falling from 0.55 V200 at
  x_sp to the field value σ_f ∈ [200, 350] km/s, tangential σ = 0.85 × radial [A]. Applying the
  all-matter mean to the infalling galaxies alone made the cylinders too cold (issue 12).
"""

from __future__ import annotations

import numpy as np

from .config import MockConfig
from .halos import nfw_mu
from .members import (
    ORIGIN,
    central_log_mstar,
    nsat_mean,
    random_directions,
    sample_satellite_mstar,
    sample_tracer_radii,
    smf_number_density,
)
from .tables import Tables

__all__ = ["LOG_M_MIN_NEIGHBOUR", "InfallModel", "matter_overdensity", "sample_surroundings"]

# Fixed grids (made once, read-only): r / R200c of the infall model's enclosed-overdensity
# integral, and the sinh-spaced LOS and area-uniform angular cell edges of the clustered halos.
_INFALL_GRID = np.geomspace(0.3, 300.0, 160)
_CELL_T = np.linspace(-1.0, 1.0, 81)
_CELL_SQRT_U = np.sqrt(np.linspace(0.0, 1.0, 9))
_SINH4 = np.sinh(4.0)
for _grid in (_INFALL_GRID, _CELL_T, _CELL_SQRT_U):
    _grid.flags.writeable = False

LOG_M_MIN_NEIGHBOUR = 10.8
LOG_M_MAX_NEIGHBOUR = 15.9


def matter_overdensity(r_com: np.ndarray, h: dict, tables: Tables, b_host: float) -> np.ndarray:
    """Matter overdensity δ_m(r) around the host at comoving distance ``r_com`` [Mpc/h]."""
    lin = h["neighbour_bias"] * b_host * tables.xi_lin(r_com, h["z"])
    if h.get("_no_infall", False):
        return lin
    r200m_com = h["r200c_mpch"] * (1 + h["z"]) * h["r200m_r200c"]
    inf = h["infall_delta1"] * (np.maximum(r_com, 1e-3) / r200m_com) ** (-h["infall_slope"])
    return np.maximum(lin, inf)


class InfallModel:
    """Radial velocity field (mean and dispersion) of the galaxies around one host.

    ``infall_kinematics='stream'`` (default). Galaxies and halos outside the host's orbiting
    population are on first infall. In N-body haloes the *mean* radial velocity of all matter is
    ≈ 0 inside the static radius ≈ R_vir of clusters (Cuesta et al. 2008, arXiv:0710.5520) only
    because infalling material (large negative v_r) and orbiting/splashback material (v_r of
    both signs) are mixed there (Aung et al. 2021, arXiv:2003.11557: infalling, splashback and
    virialised populations mixed spatially; Zu & Weinberg 2013, arXiv:1211.1379: a virialised
    component plus an infall component with its own characteristic infall velocity v_r,c(r)
    and separate radial and tangential dispersions). The orbiting and splashback galaxies come
    from the distribution-function library (``dflibrary``); this class gives the infalling ones
    their own kinematics:

    * turnaround x_ta where the mean enclosed overdensity of the total profile (NFW inside the
      orbiting region, max(b b' ξ_lin, infalling power law) outside) equals δ_ta ∈ [8, 15]
      (Korkidis et al. 2020, arXiv:1912.08216: δ ≈ 11), clipped to ``x_turnaround``;
    * inside x_ta, total radial velocity −A_s sqrt(2 [Φ(x_ta) − Φ(x)]) (radial free fall from rest
      at turnaround in the static potential of the enclosed mass; A_s ∈ [0.7, 1] for the speed
      that goes into tangential motion, Cupani et al. 2008, arXiv:0807.3239) [A];
    * outside x_ta, linear theory with a nonlinear correction,
      v_tot / (H r) = 1 − (f/3) δ̄ / sqrt(1 + δ̄/δ_c) (Peebles 1980; the physics note §5.2), with
      δ_c such that v_tot(x_ta) = 0;
    * radial dispersion sqrt(σ_f² + (s V200)² / x), s ∈ [0.25, 0.45] at R200c, falling to the field
      value σ_f (Wojtak et al. 2005, astro-ph/0503391: dispersion falls to the background out to
      10 r_vir), tangential = q_t × radial, q_t ∈ [0.6, 1] [A]; Student-t random motions
      (ν ∈ [3, 10]) for the peaked, heavy-tailed velocity distribution outside r_vir (Zu &
      Weinberg 2013 t-distribution; Wojtak et al. 2005: kurtosis rises above Gaussian beyond
      r_vir).

    ``'mean'`` is the generator-1.0 mean-infall field (tapered to 0 inside x_sp); ``'none'``
    has no infall motion (and no infalling-matter excess, see :func:`matter_overdensity`).
    """

    def __init__(self, h: dict, tables: Tables, mode: str = "stream", x_ta_range=(3.5, 5.5)):
        z = h["z"]
        self.mode = mode
        self.b_host = float(tables.halo_bias(h["log_m200c"], z))
        self.r200c_com = h["r200c_mpch"] * (1 + z)
        om = float(tables.Om_of_z(z))
        f = float(tables.growth_rate(z))
        x = _INFALL_GRID  # units of R200c
        xt = h["r_trunc_r200c"]
        c = h["c200c"]
        k = om / 200.0  # ρ_m V(x) / M200c = (Ω_m(z)/200) x³
        dm = matter_overdensity(x * self.r200c_com, h, tables, self.b_host)
        dm = np.where(x > xt, dm, 0.0)
        seg = 0.5 * (dm[1:] * x[1:] ** 3 + dm[:-1] * x[:-1] ** 3) * np.diff(np.log(x))
        outer = 3.0 * np.concatenate([[0.0], np.cumsum(seg)])  # ∫ 3 δ s² ds
        m_in = nfw_mu(c * np.minimum(x, xt)) / nfw_mu(c) - k * np.minimum(x, xt) ** 3
        dbar = (m_in + k * outer) / (k * x**3)
        v200 = h["v200_kms"]
        self.lx = np.log(x)
        self.dbar = dbar
        sf = h["field_sigma_kms"]
        if mode == "stream":
            d_ta = h["turnaround_delta"]
            # dbar decreases outwards: first x where dbar < δ_ta
            dmono = np.minimum.accumulate(dbar)  # decreasing outwards
            x_ta = float(np.exp(np.interp(np.log(d_ta), np.log(dmono[::-1]), self.lx[::-1])))
            x_ta = float(np.clip(x_ta, *x_ta_range))
            h["x_turnaround"] = x_ta
            d_ta = float(np.interp(np.log(x_ta), self.lx, dbar))
            kk = f * d_ta / 3.0
            dc = d_ta / (kk * kk - 1.0) if kk > 1.0 else np.inf
            vtot_out = 0.1 * x * (1.0 - (f / 3.0) * dbar / np.sqrt(1.0 + dbar / dc))
            # free fall from rest at x_ta: Φ(x_ta) − Φ(x) = ∫_x^x_ta M(s)/s² ds (G M200 = 1)
            mass = k * x**3 * (1.0 + dbar)
            g = mass / x  # M/s² ds = (M/s) dln s
            cum = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(self.lx))])
            dphi = np.interp(np.log(x_ta), self.lx, cum) - cum
            vtot_in = -h["stream_amplitude"] * np.sqrt(np.maximum(2.0 * dphi, 0.0))
            vtot = np.where(x < x_ta, vtot_in, np.maximum(vtot_out, 0.0) if kk <= 1 else vtot_out)
            self.vr_kms = (vtot - 0.1 * x) * v200  # peculiar (Hubble flow added by distance)
            self.vtot_v200 = vtot
            sr = np.sqrt(sf**2 + (h["stream_sigma"] * v200) ** 2 / np.maximum(x, 1.0))
            self.qt = h["stream_sigma_t_ratio"]
        elif mode == "mean":
            amp = h["infall_amplitude"]
            d_ta = float(np.interp(h["x_turnaround"], x, dbar))
            kk = amp * f * d_ta / 3.0
            dc = d_ta / (kk * kk - 1.0) if kk > 1.0 else np.inf
            taper = np.clip((x - 1.0) / (h["x_splashback"] - 1.0), 0.0, 1.0)
            vr = -amp * (f / 3.0) * 0.1 * x * dbar / np.sqrt(1.0 + dbar / dc) * taper
            self.vr_kms = vr * v200
            self.vtot_v200 = vr + 0.1 * x
            sr = np.sqrt(sf**2 + (0.55 * v200) ** 2 * np.minimum(1.0, (h["x_splashback"] / x) ** 2))
            self.qt = 0.85
        else:  # no infall region
            self.vr_kms = np.zeros_like(x)
            self.vtot_v200 = 0.1 * x
            sr = np.full_like(x, sf)
            self.qt = 1.0
        self.sig_kms = sr
        self.nu = h["student_nu"]

    def radial_velocity(self, rng: np.random.Generator, r_com: np.ndarray) -> tuple:
        """Mean peculiar radial velocity and radial/tangential dispersions [km/s] at ``r_com``."""
        lx = np.log(np.maximum(r_com, 1e-6) / self.r200c_com)
        vr = np.interp(lx, self.lx, self.vr_kms, right=0.0)
        sr = np.interp(lx, self.lx, self.sig_kms)
        return vr, sr, self.qt * sr

    def velocity_3d(self, rng: np.random.Generator, pos: np.ndarray) -> np.ndarray:
        """3D peculiar velocities [km/s] of objects at host-relative comoving ``pos`` (n, 3)."""
        r = np.sqrt(np.einsum("ij,ij->i", pos, pos))
        u = pos / np.maximum(r, 1e-9)[:, None]
        vr, sr, st = self.radial_velocity(rng, r)
        t = rng.standard_t(self.nu, size=pos.shape) * np.sqrt((self.nu - 2.0) / self.nu)
        tr = np.einsum("ij,ij->i", t, u)
        return (vr + sr * tr)[:, None] * u + st[:, None] * (t - tr[:, None] * u)

    def los_velocity(self, rng: np.random.Generator, X, Y, D) -> np.ndarray:
        """LOS peculiar velocity [km/s] of objects at host-relative comoving (X, Y, D)."""
        r = np.sqrt(X * X + Y * Y + D * D)
        vr, sr, st = self.radial_velocity(rng, r)
        mu2 = (D / np.maximum(r, 1e-9)) ** 2
        s_los = np.sqrt(sr * sr * mu2 + st * st * (1.0 - mu2))
        t = rng.standard_t(self.nu, size=r.shape) * np.sqrt((self.nu - 2.0) / self.nu)
        return vr * D / np.maximum(r, 1e-9) + s_los * t


def filament_factor(h: dict, los: np.ndarray | None, r, d_los, rho) -> np.ndarray:
    """Anisotropic weight of the clustered halos from the host's filaments (mean 1 per shell).

    A filament k through the host along unit vector f_k adds a Gaussian tube of radius r_f; a
    point at LOS offset ``d_los`` and transverse radius ``rho`` (azimuth-averaged) has squared
    distance d² ≈ r² − (f_z² d_los² + f_⊥² rho²/2) to the axis. The tube profile is normalised
    by its mean over the sphere of radius r, ≈ min(1, (r_f/r)²) per filament, so that the
    number of clustered halos per shell is unchanged: weight = (1 − w) + w F/⟨F⟩ [A].
    """
    n_fil = int(h.get("n_filaments", 0))
    w_f = h.get("filament_fraction", 0.0)
    if los is None or n_fil == 0 or w_f == 0:
        return np.ones_like(r)
    fz = h["_filaments"] @ los  # (n_fil,)
    rf2 = h["filament_radius_mpch"] ** 2
    r2 = np.maximum(r * r, 1e-6)
    F = np.zeros_like(r)
    for c in fz:
        d2 = np.maximum(r2 - c * c * d_los**2 - (1 - c * c) * rho**2 / 2.0, 0.0)
        F += np.exp(-d2 / (2.0 * rf2))
    F /= n_fil * np.minimum(1.0, rf2 / r2)
    return (1.0 - w_f) + w_f * F


def _cone_uniform(rng, n, chi_lo, chi_hi, th_lo, th_hi):
    """Uniform points in volume between comoving distances and polar angles (arrays ok)."""
    a3, b3 = chi_lo**3, chi_hi**3
    chi = np.cbrt(a3 + rng.random(n) * (b3 - a3))
    th = np.sqrt(th_lo**2 + rng.random(n) * (th_hi**2 - th_lo**2))
    return chi, th


def _to_xyz(rng, chi, th, chi_cl):
    ph = 2.0 * np.pi * rng.random(len(chi))
    rt = chi * th
    return rt * np.cos(ph), rt * np.sin(ph), chi - chi_cl


def sample_surroundings(
    rng: np.random.Generator,
    h: dict,
    cfg: MockConfig,
    tables: Tables,
    infall: InfallModel,
    chi_cl: float,
    chi_lo: float,
    chi_hi: float,
    theta_max: float,
    los: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Galaxies of the surroundings in the light cone, host-relative comoving coordinates.

    Returns
    -------
    dict
        ``X``, ``Y`` (transverse) and ``D`` (along the LOS) in comoving Mpc/h relative to the
        host, ``vpec`` (LOS peculiar velocity, km/s), ``log_mstar``, ``origin``.
    """
    z = h["z"]
    cut = h["log_mstar_cut"]
    # innermost radius of infalling neighbours: the host's orbiting region with the 1.0 'mean'
    # model; with the infalling stream they reach in to infall_inner_r200c (≥ R200c), where
    # they mix with the splashback galaxies (Aung et al. 2021)
    if infall.mode == "stream":
        r_ex = h["infall_inner_r200c"] * infall.r200c_com
    else:
        r_ex = h["r_trunc_r200c"] * infall.r200c_com
    fd = h["field_density"]
    # ---- cell grid for the clustered component
    d_max = max(chi_cl - chi_lo, chi_hi - chi_cl)
    t = _CELL_T
    # sinh and the clip are monotonic: dropping repeats equals np.unique (without its sort)
    d_edges = np.clip(d_max * np.sinh(4.0 * t) / _SINH4, chi_lo - chi_cl, chi_hi - chi_cl)
    d_edges = d_edges[np.concatenate(([True], d_edges[1:] != d_edges[:-1]))]
    c_edges = chi_cl + d_edges
    th_edges = theta_max * _CELL_SQRT_U
    c_lo, c_hi = c_edges[:-1, None], c_edges[1:, None]
    t_lo, t_hi = th_edges[None, :-1], th_edges[None, 1:]
    vol = (c_hi**3 - c_lo**3) / 3.0 * np.pi * (t_hi**2 - t_lo**2)
    cc = 0.5 * (c_lo + c_hi)
    tc = np.sqrt(0.5 * (t_lo**2 + t_hi**2))
    rc = np.sqrt((cc * tc) ** 2 + (cc - chi_cl) ** 2)
    w = matter_overdensity(rc, h, tables, infall.b_host) * vol
    w = w * filament_factor(h, los, rc, cc - chi_cl, cc * tc)
    w = np.where(rc > r_ex, w, 0.0).ravel()
    v_tot = float(vol.sum())
    lm_hi_cl = min(h["log_m200c"], LOG_M_MAX_NEIGHBOUR)
    n_unif = fd * tables.number_density(z, LOG_M_MIN_NEIGHBOUR, LOG_M_MAX_NEIGHBOUR) * v_tot
    n_clus = fd * tables.number_density(z, LOG_M_MIN_NEIGHBOUR, lm_hi_cl, weighted=True) * w.sum()
    nu_, nc_ = int(rng.poisson(n_unif)), int(rng.poisson(n_clus))
    # uniform halos
    chi_u, th_u = _cone_uniform(rng, nu_, chi_lo, chi_hi, 0.0, theta_max)
    lm_u = tables.sample_masses(rng, nu_, z, LOG_M_MIN_NEIGHBOUR, LOG_M_MAX_NEIGHBOUR)
    # clustered halos: pick cells by weight, uniform inside the cell
    cw = np.cumsum(w)
    cell = np.searchsorted(cw, rng.random(nc_) * cw[-1], side="right")
    cell = np.minimum(cell, w.size - 1)
    ic, it = np.divmod(cell, th_edges.size - 1)
    chi_c, th_c = _cone_uniform(
        rng, nc_, c_edges[ic], c_edges[ic + 1], th_edges[it], th_edges[it + 1]
    )
    lm_c = tables.sample_masses(rng, nc_, z, LOG_M_MIN_NEIGHBOUR, lm_hi_cl, weighted=True)
    chi_h = np.concatenate([chi_u, chi_c])
    th_h = np.concatenate([th_u, th_c])
    lm_h = np.concatenate([lm_u, lm_c])
    X, Y, D = _to_xyz(rng, chi_h, th_h, chi_cl)
    keep = X * X + Y * Y + D * D > r_ex * r_ex  # halo exclusion
    X, Y, D, lm_h = X[keep], Y[keep], D[keep], lm_h[keep]
    # ---- galaxies of the neighbour halos
    ns = rng.poisson(nsat_mean(lm_h, cut, cfg.nsat_14, h["nsat_norm_dex"], h["nsat_slope"]))
    if h["include_centrals"]:
        lms_cen = central_log_mstar(rng, lm_h)
        has_cen = lms_cen > cut
    else:
        lms_cen = np.empty(0)
        has_cen = np.zeros(lm_h.size, bool)
    occupied = (ns > 0) | has_cen
    X, Y, D, lm_h, ns = X[occupied], Y[occupied], D[occupied], lm_h[occupied], ns[occupied]
    has_cen = has_cen[occupied]
    v_halo = infall.los_velocity(rng, X, Y, D)
    out_X, out_Y, out_D, out_v, out_m, out_o = [], [], [], [], [], []
    if h["include_centrals"]:
        sel = has_cen
        out_X.append(X[sel])
        out_Y.append(Y[sel])
        out_D.append(D[sel])
        out_v.append(v_halo[sel])
        out_m.append(lms_cen[occupied][sel])
        out_o.append(np.full(int(sel.sum()), ORIGIN["neighbour_central"], np.uint8))
    nsat_tot = int(ns.sum())
    if nsat_tot:
        idx = np.repeat(np.arange(ns.size), ns)
        lmi = lm_h[idx]
        r200_com = tables.r200c_phys(lmi, z) * (1 + z)
        c_n = tables.concentration(lmi, z, "diemer19") * h["f_c"]
        # NFW radii inside 1.5 R200c (≈ R200m) of each neighbour (per-galaxy concentration)
        x = sample_tracer_radii(rng, nsat_tot, c_n, None, 1.5)
        off = (x * r200_com)[:, None] * random_directions(rng, nsat_tot)
        sig_int = 0.65 * tables.v200(lmi, z)
        out_X.append(X[idx] + off[:, 0])
        out_Y.append(Y[idx] + off[:, 1])
        out_D.append(D[idx] + off[:, 2])
        out_v.append(v_halo[idx] + sig_int * rng.standard_normal(nsat_tot))
        out_m.append(sample_satellite_mstar(rng, nsat_tot, cut))
        out_o.append(np.full(nsat_tot, ORIGIN["neighbour_satellite"], np.uint8))
    # ---- uniform (halo-less) field
    n_f = int(rng.poisson(h["uniform_fraction"] * fd * smf_number_density(cut) * v_tot))
    chi_f, th_f = _cone_uniform(rng, n_f, chi_lo, chi_hi, 0.0, theta_max)
    fX, fY, fD = _to_xyz(rng, chi_f, th_f, chi_cl)
    kf = fX * fX + fY * fY + fD * fD > r_ex * r_ex
    fX, fY, fD = fX[kf], fY[kf], fD[kf]
    out_X.append(fX)
    out_Y.append(fY)
    out_D.append(fD)
    out_v.append(infall.los_velocity(rng, fX, fY, fD))
    out_m.append(sample_satellite_mstar(rng, fX.size, cut))
    out_o.append(np.full(fX.size, ORIGIN["uniform_field"], np.uint8))
    return {
        "X": np.concatenate(out_X),
        "Y": np.concatenate(out_Y),
        "D": np.concatenate(out_D),
        "vpec": np.concatenate(out_v),
        "log_mstar": np.concatenate(out_m),
        "origin": np.concatenate(out_o),
    }
