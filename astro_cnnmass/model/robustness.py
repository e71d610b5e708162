"""Sampling robustness: does removing galaxies change a mass, or only its width? (issue 13)

:func:`sampling_robustness` thins every test cluster (randomly to 70 / 50 / 30 % of its cylinder
galaxies, and to the 50 % of largest stellar mass, a magnitude-limit-like cut), predicts again
with the CNN and the M–σ baseline on the *same* subsets, and reports the median and 16–84 %
width of log M(thinned) − log M(all), the residuals and interval coverage of the thinned
predictions, and dε/dlog10 N at fixed true mass (:func:`slope_eps_log_n`). It also applies two
survey-targeting selections (``TARGETING_SELECTIONS``): only the core observed, and a
completeness falling with radius.
:func:`astro_cnnmass.model.evaluation.evaluate_model` runs it for every model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .metrics import MASS_RANGE, interval_coverage, residual_stats

__all__ = [
    "MAGNITUDE_FRACTIONS",
    "ROBUSTNESS_FRACTIONS",
    "TARGETING_SELECTIONS",
    "percentile_summary",
    "sampling_robustness",
    "slope_eps_log_n",
]


#: Kept fractions of the random-thinning robustness test (issue 13).
ROBUSTNESS_FRACTIONS = (0.7, 0.5, 0.3)
#: Kept fractions of the magnitude-limit-like test (the galaxies of largest stellar mass).
MAGNITUDE_FRACTIONS = (0.5,)
#: Survey-targeting tests, name -> (targeting radius R_t [physical Mpc/h], gradient g): a galaxy
#: at projected radius R is kept with probability 1 − g R/R_t if R < R_t (the targeting of
#: ``astro_cnnmass.mocks.observe``). ``core_0.8``: only R < 0.8 Mpc/h observed, completely;
#: ``gradient_0.7``: completeness falling from 1 at the centre to 0.3 at 1.6 Mpc/h.
TARGETING_SELECTIONS: dict[str, tuple[float, float]] = {
    "core_0.8": (0.8, 0.0),
    "gradient_0.7": (1.6, 0.7),
}


def percentile_summary(d: np.ndarray) -> dict[str, float]:
    """Median, 16th / 84th percentiles, their width, mean and count of the finite values (dex)."""
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {
            "median": math.nan,
            "p16": math.nan,
            "p84": math.nan,
            "width": math.nan,
            "mean": math.nan,
            "n": 0,
        }
    p16, p50, p84 = np.percentile(d, [16, 50, 84])
    return {
        "median": float(p50),
        "p16": float(p16),
        "p84": float(p84),
        "width": float(p84 - p16),
        "mean": float(np.mean(d)),
        "n": int(d.size),
    }


def slope_eps_log_n(eps: np.ndarray, log_m: np.ndarray, log_n: np.ndarray) -> dict[str, float]:
    """dε/dlog10 N at fixed true mass: OLS of ε on [1, log M − 14.5, log10 N].

    Parameters
    ----------
    eps : numpy.ndarray
        Residuals log10 M_pred − log10 M_true [dex].
    log_m : numpy.ndarray
        True log10 M200c [Msun/h].
    log_n : numpy.ndarray
        log10 of the number of cylinder galaxies.

    Returns
    -------
    dict
        ``slope`` (dex per dex of N), its standard error ``slope_err``, ``slope_log_m`` (the
        mass term) and ``n``; NaN with fewer than 10 finite rows.
    """
    ok = np.isfinite(eps) & np.isfinite(log_m) & np.isfinite(log_n)
    nan = {"slope": math.nan, "slope_err": math.nan, "slope_log_m": math.nan, "n": int(ok.sum())}
    if ok.sum() < 10 or np.ptp(log_n[ok]) == 0:
        return nan
    a = np.column_stack([np.ones(ok.sum()), log_m[ok] - 14.5, log_n[ok]])
    coef, *_ = np.linalg.lstsq(a, eps[ok], rcond=None)
    resid = eps[ok] - a @ coef
    dof = max(ok.sum() - 3, 1)
    cov = np.linalg.pinv(a.T @ a) * float(resid @ resid) / dof
    return {
        "slope": float(coef[2]),
        "slope_err": float(np.sqrt(cov[2, 2])),
        "slope_log_m": float(coef[1]),
        "n": int(ok.sum()),
    }


def sampling_robustness(
    predictor: Any,
    prep: dict[str, Any],
    reference: np.ndarray,
    *,
    m_sigma: Any = None,
    fractions: tuple[float, ...] = ROBUSTNESS_FRACTIONS,
    magnitude_fractions: tuple[float, ...] = MAGNITUDE_FRACTIONS,
    targeting: dict[str, tuple[float, float]] | None = None,
    n_min_kept: int = 10,
    mass_range: tuple[float, float] = MASS_RANGE,
    seed: Any = 0,
) -> dict[str, Any]:
    """Does removing galaxies change the mass, or only its width? (issue 13)

    For every test cluster with true mass in ``mass_range``: keep a random ``f`` of its cylinder
    galaxies (``f`` in ``fractions``) or the ``f`` of largest stellar mass (``magnitude_fractions``,
    a magnitude-limit-like cut), rebuild the image, predict again, and compare with the
    prediction from all galaxies. Only clusters that keep at least ``n_min_kept`` galaxies
    enter a fraction's statistics. The same seed gives the same subsets for every model
    evaluated on the same clusters with the same cylinder.

    Parameters
    ----------
    predictor : astro_cnnmass.model.predictor.Predictor
    prep : dict
        ``prepare_features(..., keep_galaxies=True)`` of the test catalogue for this model.
    reference : numpy.ndarray
        Predicted log10 M from all galaxies, rows of ``prep`` [dex].
    m_sigma : astro_cnnmass.MSigmaPowerLaw, optional
        The M–σ baseline, evaluated on the same subsets.
    fractions, magnitude_fractions : tuple of float
        Kept fractions (random; largest ``log_mstar``).
    targeting : dict, optional
        Survey-targeting selections, name -> (R_t [physical Mpc/h], g); default
        ``TARGETING_SELECTIONS``, ``{}`` for none.
    n_min_kept : int
        Smallest kept count entering the statistics (galaxies).
    mass_range : (float, float)
        True log10 M200c range [Msun/h].
    seed : int or numpy.random.Generator

    Returns
    -------
    dict
        Per test (``"random_0.7"``, ..., ``"brightest_0.5"``, ``"core_0.8"``,
        ``"gradient_0.7"``): ``cnn`` and ``m_sigma``
        summaries of Δ = log M(thinned) − log M(all) (``median``, ``p16``, ``p84``, ``width``,
        ``mean``, ``n``; dex), ``cnn_eps`` (residual statistics of the thinned predictions
        against the truth) and, with a predicted std, ``coverage`` (68 %/90 %);
        ``dlogm_dlogn`` (:func:`slope_eps_log_n`) of ``cnn`` and ``m_sigma`` on the full
        clusters (N varies with survey depth and sampling) and ``cnn_thinned`` / ``m_sigma_thinned``
        pooled over the full and randomly thinned clusters.
    """
    from ..classical import grouped_std
    from ..features.config import FeatureConfig
    from ..features.kde import kde_images

    if "galaxies" not in prep:
        raise ValueError("sampling_robustness needs prepare_features(..., keep_galaxies=True)")
    rng = np.random.default_rng(seed)
    gal = prep["galaxies"]
    config = FeatureConfig.from_dict(predictor.bundle.feature_config)
    m = prep["log_m"]
    rows = np.flatnonzero((m > mass_range[0]) & (m < mass_range[1]))
    n_full = prep["n_gal"][rows]
    ref = reference[rows]
    ms_full = m_sigma.predict_log_mass(prep["sigma"][rows]) if m_sigma is not None else None
    tests: list[tuple[str, float, Any]] = [(f"random_{f:g}", f, None) for f in fractions]
    if "log_mstar" in gal:
        tests += [(f"brightest_{f:g}", f, "log_mstar") for f in magnitude_fractions]
    targeting = TARGETING_SELECTIONS if targeting is None else targeting
    tests += [(name, math.nan, sel) for name, sel in targeting.items()]
    out: dict[str, Any] = {"mass_range": list(mass_range), "n_min_kept": int(n_min_kept)}
    pooled = {
        "eps": [ref - m[rows]],
        "eps_ms": [ms_full - m[rows]] if ms_full is not None else [],
        "log_m": [m[rows]],
        "log_n": [np.log10(n_full)],
    }
    for name, f, key in tests:
        if isinstance(key, tuple):  # survey targeting
            pick_all, off_all = _pick_targeted(gal, rows, key, rng)
            use = np.diff(off_all) >= n_min_kept
            pick, new_off = _subset_packed(pick_all, off_all, use)
            selection = f"targeting R_t = {key[0]:g} Mpc/h, g = {key[1]:g}"
        else:
            keep = np.round(f * n_full).astype(np.int64)
            use = keep >= n_min_kept
            pick, new_off = _pick(gal, rows[use], keep[use], rng, key)
            selection = "random" if key is None else f"largest {key}"
        images, valid = kde_images(gal["R"][pick], gal["v"][pick], new_off, config)
        images = np.asarray(images, dtype=np.float32)
        images[~np.asarray(valid, dtype=bool)] = np.nan
        n_kept = np.diff(new_off)
        pred = predictor.predict(images, prep["z"][rows[use]], n=n_kept)
        delta = pred["mean"] - ref[use]
        res: dict[str, Any] = {
            "fraction": float(f) if math.isfinite(f) else float(np.median(n_kept / n_full[use])),
            "selection": selection,
            "cnn": percentile_summary(delta),
            "cnn_eps": residual_stats(pred["mean"] - m[rows[use]]),
        }
        if np.isfinite(pred["std"]).any():
            res["coverage"] = interval_coverage(
                m[rows[use]], pred["mean"], pred["std"], mass_range=mass_range
            )["overall"]
        if ms_full is not None:
            ms = m_sigma.predict_log_mass(grouped_std(gal["v"][pick], new_off))
            res["m_sigma"] = percentile_summary(ms - ms_full[use])
        if key is None:
            pooled["eps"].append(pred["mean"] - m[rows[use]])
            pooled["log_m"].append(m[rows[use]])
            pooled["log_n"].append(np.log10(n_kept))
            if ms_full is not None:
                pooled["eps_ms"].append(ms - m[rows[use]])
        out[name] = res
    slopes = {
        "cnn": slope_eps_log_n(ref - m[rows], m[rows], np.log10(n_full)),
        "cnn_thinned": slope_eps_log_n(
            *(np.concatenate(pooled[k]) for k in ("eps", "log_m", "log_n"))
        ),
    }
    if ms_full is not None:
        slopes["m_sigma"] = slope_eps_log_n(ms_full - m[rows], m[rows], np.log10(n_full))
        slopes["m_sigma_thinned"] = slope_eps_log_n(
            *(np.concatenate(pooled[k]) for k in ("eps_ms", "log_m", "log_n"))
        )
    out["dlogm_dlogn"] = slopes
    return out


def _pick(
    gal: dict, rows: np.ndarray, keep: np.ndarray, rng: np.random.Generator, key: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the kept galaxies of ``rows`` (random, or largest ``key``) and offsets."""
    from .samples import thin_packed

    gidx, sub = _packed_rows(gal, rows)
    kidx, new_off = thin_packed(sub, keep, rng, key=None if key is None else gal[key][gidx])
    return gidx[kidx], new_off


def _packed_rows(gal: dict, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Galaxy indices of the packed clusters ``rows``, cluster by cluster, and their offsets."""
    off = np.asarray(gal["offsets"], dtype=np.int64)
    sizes = off[rows + 1] - off[rows]
    sub = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return np.repeat(off[rows] - sub[:-1], sizes) + np.arange(sub[-1]), sub


def _pick_targeted(
    gal: dict, rows: np.ndarray, selection: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and offsets of the galaxies of ``rows`` that a survey targeting keeps.

    A galaxy at projected radius R is kept with probability 1 − g R/R_t if R < R_t
    (:func:`astro_cnnmass.mocks.observe.targeting_completeness`, the generator's targeting).
    """
    from ..mocks.observe import targeting_completeness

    gidx, sub = _packed_rows(gal, rows)
    R = np.asarray(gal["R"], dtype=np.float64)[gidx]
    kept = rng.random(R.size) < targeting_completeness(R, *selection)
    cid = np.repeat(np.arange(rows.size), np.diff(sub))
    counts = np.bincount(cid[kept], minlength=rows.size)
    return gidx[kept], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _subset_packed(
    index: np.ndarray, offsets: np.ndarray, use: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The packed clusters flagged in ``use`` (galaxy indices and offsets)."""
    counts = np.diff(offsets)
    cid = np.repeat(np.arange(counts.size), counts)
    keep = use[cid]
    return index[keep], np.concatenate([[0], np.cumsum(counts[use])]).astype(np.int64)


def _robustness_lines(rob: dict[str, Any] | None) -> list[str]:
    """Summary lines of :func:`sampling_robustness` (median and 16-84 % width of the shift)."""
    if not rob:
        return []
    lines = ["  log M(thinned) - log M(all) [dex]: median (16-84% width), CNN | M-sigma"]
    for key, r in rob.items():
        if not isinstance(r, dict) or "fraction" not in r:
            continue
        ms = r.get("m_sigma", {})
        lines.append(
            f"    {key:14s} n={r['cnn']['n']:5d}  {r['cnn']['median']:+.3f} "
            f"({r['cnn']['width']:.3f}) | {ms.get('median', math.nan):+.3f} "
            f"({ms.get('width', math.nan):.3f})"
        )
    slopes = rob.get("dlogm_dlogn", {})
    if slopes:
        text = "  ".join(f"{k} {v['slope']:+.3f}" for k, v in slopes.items())
        lines.append(f"  d eps / d log10 N at fixed mass: {text}")
    return lines
