"""Validation statistics of mock catalogues against N-body results (physics note §9, V1–V8).

Used by ``benchmarks/validate_mocks.py`` and by the tests. Targets:

* V1 pure-member σ–M: slope 0.33–0.37, σ_15 ≈ 1083 km/s (Evrard et al. 2008, astro-ph/0702241:
  1082.9 km/s, α = 0.3361 with the mass E(z) M200c; Ho et al. 2019 pure members 1087, 0.366);
  M–σ mass scatter ≈ 0.18 dex over 10^14–10^15 (Ho et al. 2019 notebook);
* V2 cylinder σ–M: slope ≈ 0.24, σ_15 ≈ 1000 km/s, M–σ mass scatter ≈ 0.37 dex (Ho et al. 2019);
* V3 interloper fraction inside R200c (``|v| < 4 V200``) ≈ 0.26, rising with radius (Mamon,
  Biviano & Murante 2010, arXiv:1003.0033);
* V4 mean σ_1D/V200 of members within R200c ≈ 0.66 (Evrard et al. 2008);
* V5 60–70 % of clusters with ≥ 20 members Gaussian (Ribeiro et al. 2013, arXiv:1306.4722);
* V6 projected NFW concentration of members 2.5–4.5 (Budzynski et al. 2012, arXiv:1201.5491);
* V7 N_sat ∝ M^(0.85–1.1) (Zheng et al. 2007; Leauthaud et al. 2011);
* V8 shifting-gapper residual contamination a few % in the virial region (Wojtak et al. 2007,
  astro-ph/0606579: 2–4 %).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .catalog import MockCatalog
from .tables import get_tables

__all__ = [
    "cluster_index",
    "cylinder_sigma",
    "fit_sigma_mass",
    "interloper_fraction_profile",
    "member_count_slope",
    "msigma_mass_scatter",
    "validation_summary",
]

DEFAULT_APERTURE = 1.6
DEFAULT_V_CUT = 2200.0


def cluster_index(cat: MockCatalog) -> np.ndarray:
    """Cluster index of every stored galaxy."""
    return np.repeat(np.arange(cat.n_clusters), cat.n_gal)


def _group_std(idx: np.ndarray, v: np.ndarray, n_clusters: int, n_min: int = 3) -> np.ndarray:
    n = np.bincount(idx, minlength=n_clusters).astype(float)
    s1 = np.bincount(idx, weights=v, minlength=n_clusters)
    s2 = np.bincount(idx, weights=v * v, minlength=n_clusters)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = s2 / n - (s1 / n) ** 2
    out = np.sqrt(np.maximum(var, 0.0))
    out[n < n_min] = np.nan
    return out


def cylinder_sigma(
    cat: MockCatalog,
    aperture: float = DEFAULT_APERTURE,
    v_cut: float = DEFAULT_V_CUT,
    members_only: bool = False,
    n_min: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster population std of v [km/s] and count inside the cylinder.

    The cylinder is ``R < ap`` and ``|v| < v_cut``.
    """
    idx = cluster_index(cat)
    R, v = np.asarray(cat.R, float), np.asarray(cat.v, float)
    m = (R < aperture) & (np.abs(v) < v_cut)
    if members_only:
        m &= cat.is_member
    n = np.bincount(idx[m], minlength=cat.n_clusters)
    return _group_std(idx[m], v[m], cat.n_clusters, n_min), n


def fit_sigma_mass(
    log_m: np.ndarray,
    z: np.ndarray,
    sigma: np.ndarray,
    mass_range: tuple[float, float] = (14.0, 15.3),
    ez_scaling: bool = True,
    cosmology: str = "multidark-planck",
) -> dict[str, float]:
    """OLS fit log10 σ = a (log10 M − 15) + b (M = E(z) M200c if ``ez_scaling``).

    Returns slope ``a``, ``sigma15`` = 10^b [km/s] and the rms ``scatter_dex`` in log10 σ.
    """
    t = get_tables(cosmology)
    x = np.asarray(log_m) + (np.log10(t.E_of_z(np.asarray(z))) if ez_scaling else 0.0) - 15.0
    y = np.log10(sigma)
    ok = np.isfinite(y) & (log_m >= mass_range[0]) & (log_m <= mass_range[1])
    if ok.sum() < 3:
        return {"slope": np.nan, "sigma15": np.nan, "scatter_dex": np.nan, "n": int(ok.sum())}
    a, b = np.polyfit(x[ok], y[ok], 1)
    res = y[ok] - (a * x[ok] + b)
    return {"slope": float(a), "sigma15": float(10**b), "scatter_dex": float(np.std(res)),
            "n": int(ok.sum())}  # fmt: skip


def msigma_mass_scatter(
    log_m: np.ndarray,
    sigma: np.ndarray,
    fit_range: tuple[float, float] = (14.5, 15.3),
    eval_range: tuple[float, float] = (14.0, 15.0),
) -> float:
    """Std of log10 M_pred − log10 M_true of the M–σ power law (Ho et al. 2019 procedure).

    log10 σ is fitted by OLS on log10 M − 15 over ``fit_range``; masses are predicted by
    inverting the fit and the residual std is taken over ``eval_range``.
    """
    y = np.log10(sigma)
    ok = np.isfinite(y)
    f = ok & (log_m >= fit_range[0]) & (log_m <= fit_range[1])
    e = ok & (log_m >= eval_range[0]) & (log_m <= eval_range[1])
    if f.sum() < 3 or e.sum() < 3:
        return float("nan")
    a, b = np.polyfit(log_m[f] - 15.0, y[f], 1)
    pred = (y[e] - b) / a + 15.0
    return float(np.std(pred - log_m[e]))


def interloper_fraction_profile(
    cat: MockCatalog,
    edges: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0),
    kappa: float = 4.0,
) -> dict[str, Any]:
    """Stacked fraction of non-members in annuli of X = R/R200c, with ``|v| < κ V200``."""
    idx = cluster_index(cat)
    c = cat.clusters
    X = np.asarray(cat.R, float) / c["r200c_mpch"][idx]
    sel = np.abs(np.asarray(cat.v, float)) < kappa * c["v200_kms"][idx]
    mem = np.asarray(cat.is_member)
    fr = []
    for lo, hi in itertools.pairwise(edges):
        m = sel & (X >= lo) & (X < hi)
        fr.append(float(1.0 - mem[m].mean()) if m.any() else np.nan)
    m = sel & (X < edges[-1])
    return {"edges": list(edges), "fraction": fr,
            "inside": float(1.0 - mem[m].mean()) if m.any() else np.nan}  # fmt: skip


def member_count_slope(cat: MockCatalog, mass_range=(14.0, 15.5)) -> dict[str, float]:
    """Slope and 10^14 normalisation of log N_members_3d vs log M200c (one LOS per host)."""
    c = cat.clusters
    first = c["los_id"] == 0
    lm, n = c["log_m200c"][first], c["n_members_3d"][first].astype(float)
    ok = (lm >= mass_range[0]) & (lm <= mass_range[1]) & (n > 0)
    if ok.sum() < 3:
        return {"slope": np.nan, "n_at_1e14": np.nan}
    a, b = np.polyfit(lm[ok] - 14.0, np.log10(n[ok]), 1)
    return {"slope": float(a), "n_at_1e14": float(10**b)}


def gaussian_fraction(cat: MockCatalog, n_min: int = 20, alpha: float = 0.05) -> float:
    """Fraction of clusters whose stored members (R < R200c) pass an Anderson–Darling test."""
    from scipy.stats import anderson

    idx = cluster_index(cat)
    c = cat.clusters
    mem = np.asarray(cat.is_member) & (np.asarray(cat.R) < c["r200c_mpch"][idx])
    v = np.asarray(cat.v, float)
    order = np.argsort(idx[mem], kind="stable")
    vi, ii = v[mem][order], idx[mem][order]
    bounds = np.searchsorted(ii, np.arange(cat.n_clusters + 1))
    passed, tested = 0, 0
    for k in range(cat.n_clusters):
        vv = vi[bounds[k] : bounds[k + 1]]
        if vv.size < n_min:
            continue
        res = anderson(vv, "norm", method="interpolate")
        passed += res.pvalue > alpha
        tested += 1
    return float(passed / tested) if tested else float("nan")


def projected_concentration(cat: MockCatalog) -> float:
    """Best-fit NFW concentration of the stacked projected radii of members (R < R200c).

    The model is the projection of an NFW sphere truncated at R200c (as the member definition),
    fitted by maximum likelihood on a grid of c.
    """
    idx = cluster_index(cat)
    c = cat.clusters
    X = np.asarray(cat.R, float) / c["r200c_mpch"][idx]
    mem = np.asarray(cat.is_member) & (X < 1.0)
    # use only clusters without miscentring for this statistic
    if "miscentred" in c:
        mem &= ~c["miscentred"][idx]
    if "fibre_collision_p" in c:  # fibre collisions deplete cores
        mem &= c["fibre_collision_p"][idx] < 0.1
    x = X[mem]
    if x.size < 50:
        return float("nan")
    grid = np.linspace(0.01, 0.999, 200)
    best, cbest = -np.inf, np.nan
    for cc in np.linspace(0.5, 12.0, 116):
        # Σ(X) ∝ ∫_X^1 ρ r dr / sqrt(r² − X²) via substitution r = sqrt(X² + t²)
        sig = np.empty(grid.size)
        for j, g in enumerate(grid):
            tmax = np.sqrt(1.0 - g * g)
            t = np.linspace(0.0, tmax, 200)
            rr = np.sqrt(g * g + t * t)
            sig[j] = np.trapezoid(1.0 / (cc * rr * (1 + cc * rr) ** 2), t)
        pdf = sig * grid
        pdf /= np.trapezoid(pdf, grid)
        ll = np.sum(np.log(np.interp(x, grid, pdf) + 1e-300))
        if ll > best:
            best, cbest = ll, cc
    return float(cbest)


def gapper_contamination(cat: MockCatalog, max_clusters: int = 300) -> dict[str, float]:
    """Shifting gapper (Fadda et al. 1996) on R < R200c: residual contamination, completeness.

    ``contamination`` counts every kept galaxy with r > R200c (including the host's own
    splashback/backsplash galaxies, which no velocity cut can remove); ``contamination_unbound``
    counts only galaxies not bound to the host (neighbour halos and field), the analogue of the
    unbound interlopers of Wojtak et al. 2007.
    """
    import astropy.cosmology.units as cu
    import astropy.units as u

    from ..classical import shifting_gapper

    c = cat.clusters
    n_int = n_unb = n_kept = n_mem = n_mem_kept = 0
    off = cat.offsets
    for i in range(min(cat.n_clusters, max_clusters)):
        R, v, m = cat.galaxies(i)
        org = np.asarray(cat.origin[off[i] : off[i + 1]])
        sel = R < 1.0 * c["r200c_mpch"][i]
        if sel.sum() < 10:
            continue
        keep = shifting_gapper(R[sel] * u.Mpc / cu.littleh, v[sel] * u.km / u.s)
        mm = m[sel]
        n_kept += keep.sum()
        n_int += (keep & ~mm).sum()
        n_unb += (keep & (org[sel] >= 4)).sum()  # not bound to the host (neighbours, field)
        n_mem += mm.sum()
        n_mem_kept += (keep & mm).sum()
    return {
        "contamination": float(n_int / n_kept) if n_kept else np.nan,
        "contamination_unbound": float(n_unb / n_kept) if n_kept else np.nan,
        "completeness": float(n_mem_kept / n_mem) if n_mem else np.nan,
    }


def validation_summary(cat: MockCatalog, full: bool = True) -> dict[str, Any]:
    """All V1–V8 statistics of a catalogue beside their literature targets."""
    c = cat.clusters
    lm, z = c["log_m200c"], c["z"]
    sig_cyl, _ = cylinder_sigma(cat)
    out: dict[str, Any] = {"n_clusters": cat.n_clusters}
    v1 = fit_sigma_mass(lm, z, c["sigma_true_kms"])
    v1["mass_scatter_dex"] = msigma_mass_scatter(lm, c["sigma_true_kms"])
    out["V1_pure_sigma_mass"] = {**v1, "target": {"slope": [0.30, 0.40], "sigma15": 1083.0,
                                                  "mass_scatter_dex": 0.18}}  # fmt: skip
    v2 = fit_sigma_mass(lm, z, sig_cyl)
    v2["mass_scatter_dex"] = msigma_mass_scatter(lm, sig_cyl)
    out["V2_cylinder_sigma_mass"] = {**v2, "target": {"slope": 0.24, "sigma15": 1000.0,
                                                      "mass_scatter_dex": 0.37}}  # fmt: skip
    prof = interloper_fraction_profile(cat)
    out["V3_interlopers"] = {**prof, "target": {"inside": [0.10, 0.40],
                             "fraction_mbm10": [0.04, 0.09, 0.24, 0.45, 0.76]}}  # fmt: skip
    ratio = c["sigma_true_kms"] / c["v200_kms"]
    out["V4_sigma_over_v200"] = {"mean": float(np.nanmean(ratio)), "target": 0.66}
    if full:
        out["V5_gaussian_fraction"] = {"value": gaussian_fraction(cat), "target": [0.6, 0.7]}
        out["V6_projected_concentration"] = {"value": projected_concentration(cat),
                                             "target": [2.5, 4.5]}  # fmt: skip
        out["V8_shifting_gapper"] = {
            **gapper_contamination(cat),
            "target_contamination": [0.02, 0.04],
        }
    out["V7_member_counts"] = {**member_count_slope(cat), "target_slope": [0.85, 1.1]}
    return out
