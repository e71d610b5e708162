"""Accuracy metrics of mass estimates, as in Ho et al. (2019, arXiv:1902.05950) §5.

Residual ``eps = log10 M_pred - log10 M_true`` (dex) over 10^14 < M200c < 10^15 Msun/h
(``MASS_RANGE``): mean, median, 16th/84th percentiles, width (84th - 16th), standard
deviation, skewness, excess kurtosis, per 0.1-dex bin of true mass; coverage of central
intervals and the PIT histogram when a standard deviation is given. Plain arrays in, plain
numbers out.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["binned_residuals", "interval_coverage", "pit_histogram", "pit_values", "residual_stats"]


MASS_RANGE = (14.0, 15.0)


# ---------------------------------------------------------------------------- statistics
def residual_stats(eps: np.ndarray) -> dict[str, float]:
    """Summary statistics of residuals (dex); non-finite values are ignored.

    Returns
    -------
    dict
        ``n``, ``mean``, ``median``, ``p16``, ``p84``, ``width`` (p84 - p16), ``std`` (ddof=0),
        ``skew``, ``kurtosis`` (excess, Fisher). NaN where undefined (n = 0; skew/kurtosis
        need n >= 3).
    """
    e = np.asarray(eps, dtype=float)
    e = e[np.isfinite(e)]
    out = {"n": int(e.size)}
    if e.size == 0:
        out.update(
            dict.fromkeys(
                ("mean", "median", "p16", "p84", "width", "std", "skew", "kurtosis"), math.nan
            )
        )
        return out
    p16, p50, p84 = np.percentile(e, [16, 50, 84])
    out.update(
        mean=float(e.mean()),
        median=float(p50),
        p16=float(p16),
        p84=float(p84),
        width=float(p84 - p16),
        std=float(e.std()),
        skew=float(stats.skew(e)) if e.size >= 3 and e.std() > 0 else math.nan,
        kurtosis=float(stats.kurtosis(e)) if e.size >= 3 and e.std() > 0 else math.nan,
    )
    return out


def binned_residuals(
    log_m_true: np.ndarray,
    eps: np.ndarray,
    edges: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Median and 16/84 percentiles of ``eps`` in bins of true log-mass.

    Parameters
    ----------
    log_m_true, eps : array-like
        True log10 M200c [Msun/h] and residuals (dex).
    edges : array-like, optional
        Bin edges in log10 M200c; default 0.1-dex bins over 14–15.

    Returns
    -------
    list of dict
        ``lo``, ``hi``, ``n``, ``median``, ``p16``, ``p84`` (NaN for empty bins).
    """
    if edges is None:
        edges = np.round(np.arange(MASS_RANGE[0], MASS_RANGE[1] + 1e-9, 0.1), 10)
    m = np.asarray(log_m_true, dtype=float)
    e = np.asarray(eps, dtype=float)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = (m >= lo) & (m < hi) & np.isfinite(e)
        if sel.any():
            p16, p50, p84 = np.percentile(e[sel], [16, 50, 84])
        else:
            p16 = p50 = p84 = math.nan
        rows.append(
            {
                "lo": float(lo),
                "hi": float(hi),
                "n": int(sel.sum()),
                "median": float(p50),
                "p16": float(p16),
                "p84": float(p84),
            }
        )
    return rows


def interval_coverage(
    log_m_true: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    levels: tuple[float, ...] = (0.68, 0.90),
    bin_width: float = 0.25,
    mass_range: tuple[float, float] = MASS_RANGE,
) -> dict[str, Any]:
    """Fraction of clusters whose true log-mass lies in the central Gaussian interval.

    Parameters
    ----------
    log_m_true, mean, std : array-like
        True and predicted log10 M200c, predicted standard deviation (dex).
    levels : tuple of float
        Nominal probabilities of the central intervals ``mean +- z_p std``.
    bin_width : float
        Width (dex) of the true-mass bins over ``mass_range``.

    Returns
    -------
    dict
        ``overall``: {level: fraction} over every cluster, ``n``; ``in_range``: {level:
        fraction} over the clusters with true mass in ``mass_range``, ``n_in_range``; ``bins``:
        list of {lo, hi, n, level: fraction}.
    """
    m = np.asarray(log_m_true, dtype=float)
    mu = np.asarray(mean, dtype=float)
    sd = np.asarray(std, dtype=float)
    ok = np.isfinite(m) & np.isfinite(mu) & np.isfinite(sd) & (sd > 0)
    z = np.abs(mu - m) / np.where(ok, sd, 1.0)

    def cover(sel: np.ndarray) -> dict[str, float]:
        n = int(sel.sum())
        return {
            f"{p:.2f}": (float(np.mean(z[sel] <= stats.norm.ppf(0.5 + p / 2))) if n else math.nan)
            for p in levels
        }

    edges = np.round(np.arange(mass_range[0], mass_range[1] + 1e-9, bin_width), 10)
    bins = []
    for lo, hi in itertools.pairwise(edges):
        sel = ok & (m >= lo) & (m < hi)
        bins.append({"lo": float(lo), "hi": float(hi), "n": int(sel.sum()), **cover(sel)})
    in_range = ok & (m >= edges[0]) & (m < edges[-1])
    return {
        "overall": cover(ok),
        "n": int(ok.sum()),
        "in_range": cover(in_range),
        "n_in_range": int(in_range.sum()),
        "bins": bins,
    }


def pit_values(log_m_true: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Probability integral transform ``Phi((log M_true - mean) / std)`` (NaN where undefined)."""
    m, mu, sd = (np.asarray(a, dtype=float) for a in (log_m_true, mean, std))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, stats.norm.cdf((m - mu) / sd), np.nan)


def pit_histogram(pit: np.ndarray, n_bins: int = 10) -> dict[str, list]:
    """Histogram of PIT values on [0, 1]: ``edges``, ``counts`` and ``density`` (1 = calibrated)."""
    p = np.asarray(pit, dtype=float)
    p = p[np.isfinite(p)]
    counts, edges = np.histogram(p, bins=n_bins, range=(0.0, 1.0))
    density = counts * n_bins / max(p.size, 1)
    return {"edges": edges.tolist(), "counts": counts.tolist(), "density": density.tolist()}
