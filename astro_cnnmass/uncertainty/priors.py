"""Mass-function prior: from the flat training prior to the halo mass function.

The training set is flat in log M, so the network's Gaussian is a likelihood-like estimate
``p(data | log M)`` times a flat prior over the training range. For a cluster drawn at random
from the Universe, the prior is the halo mass function: the posterior is
``N(log M; mu, sigma) * dn/dlog10M(M, z) / p_train(log M)``, which pulls the estimate down, the
more so the steeper the mass function (high mass, high redshift). Ho et al. 2021 (§2.3,
arXiv:2006.13231) reweight the same way. Mass function: Tinker et al. 2008 (ApJ 688, 709;
arXiv:0803.2706) for M200c, through colossus (Diemer 2018, ApJS 239, 35; arXiv:1712.04512).

Units: log10 M200c in dex (M in Msun/h), redshift dimensionless, number densities in
(Mpc/h)^-3 per dex.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from .calibration import QUANTILE_LEVELS

__all__ = [
    "DEFAULT_COSMOLOGY",
    "log_mass_function",
    "posterior_quantiles",
    "posterior_samples",
    "reweight_to_mass_function",
    "reweighted_quantiles",
]


#: colossus cosmology of the default mocks (MultiDark-Planck, as MDPL2 in Ho et al. 2019).
DEFAULT_COSMOLOGY = "multidark-planck"


# ============================================================================ mass-function prior
def _colossus_cosmology(cosmology: Any) -> tuple[str, dict | None]:
    """(name, params) for ``colossus.cosmology.setCosmology`` from a name or a dict."""
    if isinstance(cosmology, str):
        return cosmology, None
    if isinstance(cosmology, dict):
        keys = ("flat", "H0", "Om0", "Ob0", "sigma8", "ns")
        if all(k in cosmology for k in keys[1:]):
            params = {k: cosmology[k] for k in keys if k in cosmology}
            params.setdefault("flat", True)
            return str(cosmology.get("name", "custom")) + "-params", params
        if "name" in cosmology:
            return str(cosmology["name"]), None
    raise TypeError(
        "cosmology must be a colossus cosmology name (e.g. 'multidark-planck') or a dict with "
        f"'name' or H0, Om0, Ob0, sigma8, ns; got {cosmology!r}"
    )


def _cosmology_from_bundle(bundle: Any) -> Any:
    gen = (getattr(bundle, "training", None) or {}).get("generator", {}) or {}
    cosmo = gen.get("cosmology")
    return cosmo if cosmo else DEFAULT_COSMOLOGY


_LOGM_NODES = np.round(np.arange(11.0, 16.5 + 1e-9, 0.01), 10)


_DZ = 0.01


@lru_cache(maxsize=2048)
def _log_hmf_row(name: str, params_key: tuple | None, z: float) -> np.ndarray:
    """log10 of Tinker08 dn/dlog10M [(Mpc/h)^-3 dex^-1] on ``_LOGM_NODES`` at one redshift."""
    from colossus.cosmology import cosmology as ccosmo
    from colossus.lss import mass_function

    try:
        previous = ccosmo.getCurrent()
    except Exception:  # no cosmology set yet
        previous = None
    params = dict(params_key) if params_key is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colossus extrapolation/accuracy notices
        try:
            if params is None:
                ccosmo.setCosmology(name, persistence="")
            else:
                ccosmo.setCosmology(name, params=params, persistence="")
            dn = mass_function.massFunction(
                10.0**_LOGM_NODES, z, q_in="M", q_out="dndlnM", mdef="200c", model="tinker08"
            )
        finally:
            if previous is not None:
                ccosmo.setCurrent(previous)
    dn = np.asarray(dn, dtype=float) * np.log(10.0)
    return np.log10(np.clip(dn, 1e-300, None))


def log_mass_function(
    log_m: np.ndarray, z: np.ndarray, cosmology: Any = DEFAULT_COSMOLOGY
) -> np.ndarray:
    """log10 of the Tinker et al. (2008) M200c halo mass function dn/dlog10M.

    Tabulated once per cosmology on redshift nodes spaced by 0.01 and log10 M nodes spaced by
    0.01 dex over [11, 16.5] (colossus ``massFunction(..., mdef='200c', model='tinker08',
    q_out='dndlnM')``), then interpolated bilinearly; masses outside the table are clipped to
    its edges.

    Parameters
    ----------
    log_m : array-like
        log10 M200c [Msun/h].
    z : array-like
        Redshift, broadcastable against ``log_m``; must be >= 0.
    cosmology : str or dict
        colossus cosmology name (default ``"multidark-planck"``, the mocks' cosmology) or a dict
        with ``H0``, ``Om0``, ``Ob0``, ``sigma8``, ``ns`` (and optionally ``flat``, ``name``).

    Returns
    -------
    numpy.ndarray
        log10(dn/dlog10M / (Mpc/h)^-3), broadcast shape of ``log_m`` and ``z``.
    """
    name, params = _colossus_cosmology(cosmology)
    pkey = tuple(sorted(params.items())) if params is not None else None
    lm, zz = np.broadcast_arrays(np.asarray(log_m, dtype=float), np.asarray(z, dtype=float))
    out = np.full(lm.shape, np.nan)
    ok = np.isfinite(lm) & np.isfinite(zz)
    if not ok.any():
        return out
    if np.any(zz[ok] < 0):
        raise ValueError("redshift must be >= 0 for the mass function")
    k = zz[ok] / _DZ
    k0 = np.floor(k).astype(int)
    nodes = np.unique(np.concatenate([k0, k0 + 1]))
    table = np.stack([_log_hmf_row(name, pkey, round(float(i) * _DZ, 10)) for i in nodes])
    row0 = np.searchsorted(nodes, k0)
    w = k - k0
    x = np.clip(lm[ok], _LOGM_NODES[0], _LOGM_NODES[-1])
    j = np.clip(np.searchsorted(_LOGM_NODES, x, side="right") - 1, 0, _LOGM_NODES.size - 2)
    u = (x - _LOGM_NODES[j]) / (_LOGM_NODES[j + 1] - _LOGM_NODES[j])
    f = np.stack([table[row0, j], table[row0, j + 1], table[row0 + 1, j], table[row0 + 1, j + 1]])
    out[ok] = (1 - w) * ((1 - u) * f[0] + u * f[1]) + w * ((1 - u) * f[2] + u * f[3])
    return out


def reweight_to_mass_function(
    mean: np.ndarray,
    std: np.ndarray,
    z: np.ndarray,
    *,
    bundle: Any = None,
    cosmology: Any = None,
    prior_range: tuple[float, float] | str | None = "bundle",
    grid: np.ndarray | None = None,
    n_grid: int = 400,
    n_sigma: float = 6.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of log10 M200c under a halo-mass-function prior instead of the training prior.

    The networks were trained on mocks sampled flat in log M over ``[log_m_min, log_m_max]``:
    their Gaussian ``N(log M; mean, std)`` is (approximately) the posterior under that flat
    prior, i.e. proportional to the likelihood inside the training range. For a cluster drawn
    from the cosmic population the appropriate prior is the mass function at its redshift::

        p(log M | data) ∝ N(log M; mean, std) * (dn/dlog10M)(M, z) / p_train(log M)

    with ``p_train`` constant inside the training range and zero outside it (where the network
    has seen no cluster, so the posterior is truncated there). Because the mass function falls
    with mass, reweighting moves the estimate down, by roughly ``std^2 * ln(10) * |dlog n/dlog
    M|`` dex: a little near 10^14 Msun/h, much more near 10^15 Msun/h. Use it for clusters drawn
    from the mass function (e.g. a survey sample); keep the flat-prior (default) answer to combine
    with other mass estimates or to compare with the training mocks. (Ho et al. 2021,
    arXiv:2006.13231; mass function: Tinker et al. 2008.)

    Parameters
    ----------
    mean, std : array-like, shape (n,)
        Predicted log10 M200c [Msun/h] and its (calibrated) standard deviation, dex.
    z : float or array-like, shape (n,)
        Cluster redshift(s), >= 0.
    bundle : ModelBundle, optional
        Supplies the cosmology of the training mocks (``training["generator"]["cosmology"]``)
        and the training range (``target_scaling`` ``log_m_min``/``log_m_max``).
    cosmology : str or dict, optional
        colossus cosmology (see :func:`log_mass_function`); default: the bundle's, else
        ``"multidark-planck"``.
    prior_range : (float, float), None or "bundle"
        Support of the flat training prior (log10 M200c). ``"bundle"``: the bundle's training
        range if a bundle is given, else no truncation; None: flat everywhere (no truncation).
    grid : array-like, shape (n_grid,), optional
        A log10 M200c grid shared by all clusters (for example to stack posteriors). Default:
        one grid per cluster, ``n_grid`` points over ``mean +- n_sigma * std`` intersected with
        ``prior_range``.
    n_grid : int
        Number of points of the per-cluster grids.
    n_sigma : float
        Half-width of the per-cluster grids in units of ``std``.

    Returns
    -------
    grid_log_m : numpy.ndarray, shape (n, n_grid)
        log10 M200c [Msun/h] of the grid points (each row increasing).
    pdf : numpy.ndarray, shape (n, n_grid)
        Posterior density per dex, normalised to 1 over each row (trapezoid rule); NaN rows where
        the input is not finite or the Gaussian lies entirely outside ``prior_range``.
    """
    mu = np.atleast_1d(np.asarray(mean, dtype=float))
    sd = np.atleast_1d(np.asarray(std, dtype=float))
    if mu.ndim != 1 or mu.shape != sd.shape:
        raise ValueError(f"mean and std must be 1-D of equal shape, got {mu.shape}, {sd.shape}")
    n = mu.size
    zz = np.broadcast_to(np.asarray(z, dtype=float), (n,)).copy()
    if cosmology is None:
        cosmology = _cosmology_from_bundle(bundle) if bundle is not None else DEFAULT_COSMOLOGY
    if isinstance(prior_range, str):
        if prior_range != "bundle":
            raise ValueError(f"prior_range must be (lo, hi), None or 'bundle', got {prior_range!r}")
        if bundle is not None:
            s = bundle.target_scaling
            prior_range = (float(s["log_m_min"]), float(s["log_m_max"]))
        else:
            prior_range = None
    lo, hi = (-np.inf, np.inf) if prior_range is None else map(float, prior_range)
    ok = np.isfinite(mu) & np.isfinite(sd) & (sd > 0) & np.isfinite(zz)
    if grid is not None:
        g = np.asarray(grid, dtype=float).ravel()
        if g.size < 2 or np.any(np.diff(g) <= 0):
            raise ValueError("grid must be a strictly increasing 1-D array of >= 2 points")
        grid_lm = np.broadcast_to(g, (n, g.size)).copy()
    else:
        if n_grid < 2:
            raise ValueError(f"n_grid must be >= 2, got {n_grid}")
        a = np.maximum(mu - n_sigma * sd, lo)
        b = np.minimum(mu + n_sigma * sd, hi)
        ok &= b > a
        a, b = np.where(ok, a, 0.0), np.where(ok, b, 1.0)
        t = np.linspace(0.0, 1.0, n_grid)
        grid_lm = a[:, None] + (b - a)[:, None] * t[None, :]
    pdf = np.full(grid_lm.shape, np.nan)
    if ok.any():
        g = grid_lm[ok]
        log_like = -0.5 * ((g - mu[ok, None]) / sd[ok, None]) ** 2
        log_hmf = log_mass_function(g, zz[ok, None], cosmology) * np.log(10.0)
        logp = log_like + log_hmf
        logp = np.where((g >= lo) & (g <= hi), logp, -np.inf)
        peak = np.max(logp, axis=1, keepdims=True)
        good = np.isfinite(peak[:, 0])
        p = np.zeros_like(g)
        p[good] = np.exp(logp[good] - peak[good])
        norm = np.trapezoid(p, g, axis=1)
        good &= norm > 0
        p[good] /= norm[good, None]
        p[~good] = np.nan
        pdf[ok] = p
    return grid_lm, pdf


def _cdf(grid_lm: np.ndarray, pdf: np.ndarray) -> np.ndarray:
    g, p = np.atleast_2d(grid_lm), np.atleast_2d(pdf)
    inc = 0.5 * (p[:, 1:] + p[:, :-1]) * np.diff(g, axis=1)
    cdf = np.concatenate([np.zeros((g.shape[0], 1)), np.cumsum(inc, axis=1)], axis=1)
    return cdf / cdf[:, -1:]


def posterior_quantiles(
    grid_log_m: np.ndarray, pdf: np.ndarray, levels: Sequence[float] = QUANTILE_LEVELS
) -> np.ndarray:
    """Quantiles of gridded posteriors (output of :func:`reweight_to_mass_function`).

    Parameters
    ----------
    grid_log_m, pdf : numpy.ndarray, shape (n, n_grid)
        log10 M200c grid [Msun/h] (rows increasing) and density per dex.
    levels : sequence of float
        Probability levels in [0, 1].

    Returns
    -------
    numpy.ndarray, shape (n, len(levels))
        log10 M200c quantiles (dex), by linear interpolation of the trapezoid CDF; NaN rows where
        ``pdf`` is NaN.
    """
    g = np.atleast_2d(np.asarray(grid_log_m, dtype=float))
    cdf = _cdf(g, np.asarray(pdf, dtype=float))
    q = np.asarray(levels, dtype=float)
    out = np.full((g.shape[0], q.size), np.nan)
    good = np.all(np.isfinite(cdf), axis=1)
    if not good.any():
        return out
    c, gg = cdf[good], g[good]
    rows = np.arange(c.shape[0])[:, None]
    # index of the first grid point with cdf >= level (cdf is non-decreasing)
    j = np.clip((c[:, :, None] < q[None, None, :]).sum(axis=1), 1, c.shape[1] - 1)
    c0, c1 = c[rows, j - 1], c[rows, j]
    x0, x1 = gg[rows, j - 1], gg[rows, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(c1 > c0, (q[None, :] - c0) / (c1 - c0), 0.0)
    out[good] = x0 + np.clip(w, 0.0, 1.0) * (x1 - x0)
    return out


def posterior_samples(
    grid_log_m: np.ndarray, pdf: np.ndarray, n_samples: int, seed: Any = None
) -> np.ndarray:
    """Draw log10 M200c samples from gridded posteriors by inverse-CDF sampling.

    Parameters
    ----------
    grid_log_m, pdf : numpy.ndarray, shape (n, n_grid)
        As returned by :func:`reweight_to_mass_function`.
    n_samples : int
        Samples per cluster.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    numpy.ndarray, shape (n, n_samples)
        log10 M200c [Msun/h]; NaN rows where ``pdf`` is NaN.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    g = np.atleast_2d(np.asarray(grid_log_m, dtype=float))
    cdf = _cdf(g, np.asarray(pdf, dtype=float))
    u = rng.random((g.shape[0], int(n_samples)))
    out = np.full(u.shape, np.nan)
    for i in np.flatnonzero(np.all(np.isfinite(cdf), axis=1)):
        out[i] = np.interp(u[i], cdf[i], g[i])
    return out


def reweighted_quantiles(
    mean: np.ndarray,
    std: np.ndarray,
    z: np.ndarray,
    levels: Sequence[float] = QUANTILE_LEVELS,
    **kwargs: Any,
) -> np.ndarray:
    """Quantiles of log10 M200c under the mass-function prior.

    Shorthand for :func:`reweight_to_mass_function` followed by :func:`posterior_quantiles`.

    Parameters
    ----------
    mean, std, z
        As for :func:`reweight_to_mass_function`.
    levels : sequence of float
        Probability levels.
    **kwargs
        Passed to :func:`reweight_to_mass_function` (``bundle``, ``cosmology``, ...).

    Returns
    -------
    numpy.ndarray, shape (n, len(levels))
        log10 M200c [Msun/h] quantiles (dex).
    """
    grid_lm, pdf = reweight_to_mass_function(mean, std, z, **kwargs)
    return posterior_quantiles(grid_lm, pdf, levels)
