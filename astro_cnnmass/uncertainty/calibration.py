"""Interval calibration of the predictive distribution.

The predictive distribution of :class:`astro_cnnmass.model.predictor.Predictor` is a Gaussian in
log10 M200c [Msun/h] (Gaussian heads and a deep ensemble; Ho et al. 2021, arXiv:2006.13231).
:func:`fit_std_calibration` fits one multiplicative factor ``s`` on the predicted standard
deviation on the *validation* split (never on the test mocks), so that the central 68 % interval
covers 68 % of the validation clusters at least 0.5 dex inside the training mass range
(:func:`calibration_mass_range`). ``train_model`` stores it in
``bundle.target_scaling["calibration"]["std_scale"]``, where the predictor applies it.

Units: log10 M200c in dex (M in Msun/h), standard deviations in dex.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = [
    "CALIBRATION_MARGIN_DEX",
    "QUANTILE_LEVELS",
    "calibration_mass_range",
    "fit_std_calibration",
    "gaussian_quantiles",
]


#: Quantile levels reported by the estimator.
QUANTILE_LEVELS = (0.05, 0.16, 0.5, 0.84, 0.95)


_Z68 = float(stats.norm.ppf(0.84))  # 0.9945: half-width of the central 68 % interval in sigma


# ============================================================================ calibration
def fit_std_calibration(
    mean: np.ndarray,
    std: np.ndarray,
    log_m_true: np.ndarray,
    *,
    level: float = 0.68,
) -> float:
    """Multiplicative factor on the predicted std that makes the central interval cover ``level``.

    With ``t = |log M_true - mean| / std`` on a calibration set, the central Gaussian interval
    ``mean +- z_p * s * std`` (``z_p = Phi^-1(0.5 + level / 2)``) contains the true value when
    ``t <= z_p * s``. The factor ``s = quantile_level(t) / z_p`` makes the empirical coverage
    equal ``level`` exactly (up to the discreteness of the sample). For ``level = 0.5`` this is
    the classical ``median(|eps| / sigma) / 0.6745``.

    Fit it on a *validation* set, never on the mocks used to report coverage: a factor fitted on
    the test set makes the test coverage 68 % by construction.

    Parameters
    ----------
    mean, std : array-like, shape (n,)
        Predicted log10 M200c and its standard deviation (dex), *before* any calibration.
    log_m_true : array-like, shape (n,)
        True log10 M200c [Msun/h].
    level : float
        Nominal probability of the central interval to calibrate, in (0, 1).

    Returns
    -------
    float
        The factor ``s`` (> 0); 1 means the predicted std was already calibrated at ``level``.

    Raises
    ------
    ValueError
        If ``level`` is outside (0, 1) or no row has finite values and ``std > 0``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mu, sd, m = (np.asarray(a, dtype=float).ravel() for a in (mean, std, log_m_true))
    if not mu.shape == sd.shape == m.shape:
        raise ValueError(f"mean, std, log_m_true shapes differ: {mu.shape}, {sd.shape}, {m.shape}")
    ok = np.isfinite(mu) & np.isfinite(sd) & np.isfinite(m) & (sd > 0)
    if not ok.any():
        raise ValueError("no cluster with finite mean, std > 0 and true mass to calibrate on")
    t = np.abs(m[ok] - mu[ok]) / sd[ok]
    scale = float(np.quantile(t, level)) / float(stats.norm.ppf(0.5 + level / 2))
    if not scale > 0:  # every residual exactly zero: nothing to rescale
        return 1.0
    return scale


def gaussian_quantiles(
    mean: np.ndarray, std: np.ndarray, levels: Sequence[float] = QUANTILE_LEVELS
) -> np.ndarray:
    """Quantiles of the Gaussian predictive distribution of log10 M200c.

    Parameters
    ----------
    mean, std : array-like, shape (n,)
        log10 M200c [Msun/h] and standard deviation (dex).
    levels : sequence of float
        Probability levels in (0, 1).

    Returns
    -------
    numpy.ndarray, shape (n, len(levels))
        log10 M200c quantiles (dex); NaN where ``mean`` or ``std`` is not finite.
    """
    mu = np.atleast_1d(np.asarray(mean, dtype=float))
    sd = np.atleast_1d(np.asarray(std, dtype=float))
    zq = stats.norm.ppf(np.asarray(levels, dtype=float))
    return mu[:, None] + sd[:, None] * zq[None, :]


#: Interval calibration uses validation clusters this far (dex) inside the training mass range
#: (:func:`calibration_mass_range`): 13.5-15.5 -> 14-15, the range of the paper's figures.
CALIBRATION_MARGIN_DEX = 0.5


def calibration_mass_range(
    scaling: dict, margin: float = CALIBRATION_MARGIN_DEX
) -> tuple[float, float]:
    """True log-mass range whose validation clusters calibrate the intervals.

    The flat training prior stops at the edges of the training range, so estimates within a few
    tenths of a dex of them are pulled inwards and their residuals are larger. Ho et al. 2019
    (arXiv:1902.05950) therefore train from 10^13.5 Msun/h and report on 10^14–10^15 Msun/h,
    and so does this package. A std scale fitted over the whole range would widen every
    interval to cover those edge effects, so the calibration uses the validation clusters at
    least ``margin`` dex inside the edges.

    Parameters
    ----------
    scaling : dict
        ``bundle.target_scaling`` (``log_m_min``, ``log_m_max``: the training range, log10
        Msun/h).
    margin : float
        Dex; 0 uses the whole training range.

    Returns
    -------
    (float, float)
        ``(low, high)`` in log10 Msun/h; the whole range if the margin leaves nothing.
    """
    lo, hi = float(scaling["log_m_min"]), float(scaling["log_m_max"])
    if margin < 0:
        raise ValueError(f"calibration margin must be >= 0, got {margin}")
    if hi - lo <= 2 * margin:
        return lo, hi
    return lo + margin, hi - margin
