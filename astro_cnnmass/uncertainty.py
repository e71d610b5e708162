"""Honest uncertainties: interval calibration, mass-function prior, out-of-domain score.

Three tools complete the predictive distribution of :class:`astro_cnnmass.inference.Predictor`
(a Gaussian in log10 M200c [Msun/h], from Gaussian heads, MC dropout and/or a deep ensemble;
Ho et al. 2021, arXiv:2006.13231):

* **Interval calibration** (:func:`fit_std_calibration`): one multiplicative factor ``s`` on the
  predicted standard deviation, fitted on the *validation* split (never on the test mocks) so
  that the central 68 % interval covers 68 % of the validation clusters at least 0.5 dex inside
  the training mass range (:func:`astro_cnnmass.training.calibration_mass_range`).
  ``train_model`` stores it in ``bundle.target_scaling["calibration"]["std_scale"]``, where the
  predictor applies it.
* **Mass-function prior** (:func:`reweight_to_mass_function`, :func:`posterior_quantiles`): the
  training set is flat in log M, so the network's Gaussian is a likelihood-like estimate
  ``p(data | log M)`` times a flat prior over the training range. For a cluster drawn at random
  from the Universe, the prior is the halo mass function: the posterior is
  ``N(log M; mu, sigma) * dn/dlog10M(M, z) / p_train(log M)``, which pulls the estimate down, the
  more so the steeper the mass function (high mass, high redshift). Ho et al. 2021 (§2.3)
  reweight the same way. Mass function: Tinker et al. 2008 (ApJ 688, 709; arXiv:0803.2706) for
  M200c, through colossus (Diemer 2018, ApJS 239, 35; arXiv:1712.04512).
* **Out-of-domain score** (:func:`fit_ood_model`, :func:`ood_scores`): the Mahalanobis distance
  of the penultimate-layer embedding (:meth:`astro_cnnmass.networks.CNNMassNet.embed`, ensemble
  member 0) from the distribution of the training embeddings (Lee et al. 2018, "A Simple
  Unified Framework for Detecting Out-of-Distribution Samples", arXiv:1807.03888), with a
  covariance shrunk towards a scaled identity. The threshold is the 99th percentile of the
  distances of the validation mocks, so about 1 % of in-distribution clusters are flagged.
  ``train_model`` stores the model in ``bundle.domain["ood"]``. Two more models complete the
  score (:func:`normalized_ood_scores`): a principal-component model of the KDE images
  (:func:`fit_image_ood_model`, ``domain["ood_image"]``) and one of physical summaries of the
  galaxies given the predicted mass and richness (:mod:`astro_cnnmass.summary_ood`,
  ``domain["ood_summary"]``).

Units: log10 M200c in dex (M in Msun/h), standard deviations in dex, redshift dimensionless,
number densities in (Mpc/h)^-3 per dex.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "DEFAULT_COSMOLOGY",
    "QUANTILE_LEVELS",
    "embeddings",
    "fit_image_ood_model",
    "fit_ood_model",
    "fit_std_calibration",
    "gaussian_quantiles",
    "log_mass_function",
    "normalized_ood_scores",
    "ood_score_components",
    "ood_scores",
    "ood_threshold",
    "posterior_quantiles",
    "posterior_samples",
    "reweight_to_mass_function",
    "reweighted_quantiles",
]

#: Quantile levels reported by the estimator.
QUANTILE_LEVELS = (0.05, 0.16, 0.5, 0.84, 0.95)
#: colossus cosmology of the default mocks (MultiDark-Planck, as MDPL2 in Ho et al. 2019).
DEFAULT_COSMOLOGY = "multidark-planck"

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
    out[ok] = ((1 - w) * ((1 - u) * f[0] + u * f[1]) + w * ((1 - u) * f[2] + u * f[3]))
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


# ============================================================================ out-of-domain score
def _network_and_scaling(model: Any, device: Any) -> tuple[Any, dict, Any]:
    """(member-0 network in eval mode, target scaling, device) from a bundle or a Predictor."""
    from .inference import Predictor
    from .weights import ModelBundle, _resolve_device

    if isinstance(model, Predictor):
        return model.networks[0], model.scaling, model.device
    if isinstance(model, ModelBundle):
        dev = _resolve_device(device)
        net = model.build_networks(dev)[0]
        return net, model.target_scaling, dev
    raise TypeError(f"expected a ModelBundle or a Predictor, got {type(model).__name__}")


def embeddings(
    model: Any,
    images: np.ndarray,
    z: Any,
    *,
    device: Any = None,
    chunk_size: int = 8192,
) -> np.ndarray:
    """Penultimate-layer embeddings of ensemble member 0 (dropout off).

    Parameters
    ----------
    model : ModelBundle or astro_cnnmass.inference.Predictor
        A Predictor reuses its networks (no rebuild).
    images : numpy.ndarray, shape (n, n_v, n_R) or (n, n_v)
        KDE images (each summing to 1).
    z : float or array-like, shape (n,)
        Cluster redshifts (unscaled).
    device : str or torch.device, optional
        Only used with a bundle. Default: CUDA when available, else CPU.
    chunk_size : int
        Clusters per forward pass.

    Returns
    -------
    numpy.ndarray, shape (n, n_embed)
        float64 activations; NaN rows where the image or z is not finite.
    """
    import torch

    from .weights import scale_redshift

    net, scaling, dev = _network_and_scaling(model, device)
    images = np.asarray(images, dtype=np.float32)
    n = images.shape[0]
    zz = np.broadcast_to(np.asarray(z, dtype=float), (n,)).copy()
    good = np.isfinite(images.reshape(n, -1)).all(axis=1) & np.isfinite(zz)
    zs = scale_redshift(np.where(np.isfinite(zz), zz, 0.0), scaling).astype(np.float32)
    width = net.config["dense"][-1] if net.config["dense"] else None
    out = None if width is None else np.full((n, width), np.nan)
    idx = np.flatnonzero(good)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for start in range(0, idx.size, max(int(chunk_size), 1)):
                sel = idx[start : start + chunk_size]
                x = torch.from_numpy(images[sel]).to(dev)
                zt = torch.from_numpy(zs[sel]).to(dev)
                e = net.embed(x, zt).double().cpu().numpy()
                if out is None:
                    out = np.full((n, e.shape[1]), np.nan)
                out[sel] = e
    finally:
        net.train(was_training)
    if out is None:  # no hidden dense layer and no valid row
        out = np.full((n, 0), np.nan)
    return out


def fit_ood_model(
    train_embeddings: np.ndarray,
    val_embeddings: np.ndarray | None = None,
    *,
    percentile: float = 99.0,
    shrinkage: float = 0.05,
) -> dict[str, Any]:
    """Fit the Mahalanobis out-of-domain model on training embeddings.

    The mean ``m`` and covariance ``C`` of the training embeddings are estimated; ``C`` is shrunk
    towards a scaled identity, ``C' = (1 - shrinkage) C + shrinkage * (tr C / d) I`` (so that
    units that never fire on the training set, a common case after a ReLU, stay invertible and
    count strongly when they do fire). The score of an embedding ``x`` is the distance
    ``sqrt((x - m)^T C'^-1 (x - m))``. The threshold is the ``percentile``-th percentile of the
    scores of ``val_embeddings`` (held-out in-distribution mocks), so about ``100 - percentile``
    % of in-distribution clusters exceed it.

    Parameters
    ----------
    train_embeddings : numpy.ndarray, shape (n_train, d)
        Embeddings (:func:`embeddings`) of the training mocks; non-finite rows are ignored.
    val_embeddings : numpy.ndarray, shape (n_val, d), optional
        Embeddings of validation mocks for the threshold. Without them the training scores are
        used (an optimistic, i.e. too low, threshold).
    percentile : float
        Percentile of the validation scores taken as threshold, in (0, 100].
    shrinkage : float
        Covariance shrinkage towards the scaled identity, in (0, 1].

    Returns
    -------
    dict
        Plain-Python (list/float) entries, ready for ``bundle.domain["ood"]``: ``method``
        (``"mahalanobis_embedding"``), ``member`` (0), ``mean`` (d,), ``precision`` (d x d, the
        inverse of ``C'``), ``threshold``, ``percentile``, ``shrinkage``, ``n_fit``,
        ``n_threshold``, ``threshold_set`` (``"validation"`` or ``"training"``), and
        ``score_quantiles`` (the 50/90/99th percentiles of the threshold-set scores).
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if not 0 < shrinkage <= 1:
        raise ValueError(f"shrinkage must be in (0, 1], got {shrinkage}")
    x = np.asarray(train_embeddings, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"train_embeddings must be 2-D (n, d), got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < 2:
        raise ValueError("need at least 2 finite training embeddings to fit the OOD model")
    d = x.shape[1]
    mean = x.mean(axis=0)
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    scale = float(np.trace(cov)) / d
    if not scale > 0:
        scale = 1.0
    cov_reg = (1.0 - shrinkage) * cov + shrinkage * scale * np.eye(d)
    precision = np.linalg.inv(cov_reg)
    precision = 0.5 * (precision + precision.T)
    model: dict[str, Any] = {
        "method": "mahalanobis_embedding",
        "member": 0,
        "mean": mean.tolist(),
        "precision": precision.tolist(),
        "percentile": float(percentile),
        "shrinkage": float(shrinkage),
        "n_fit": int(x.shape[0]),
    }
    ref = x
    which = "training"
    if val_embeddings is not None:
        v = np.asarray(val_embeddings, dtype=float)
        v = v[np.isfinite(v).all(axis=1)] if v.ndim == 2 else v
        if v.ndim == 2 and v.shape[0] > 0:
            ref, which = v, "validation"
    scores = _mahalanobis(ref, mean, precision)
    model["threshold"] = float(np.percentile(scores, percentile))
    model["threshold_set"] = which
    model["n_threshold"] = int(scores.size)
    model["score_quantiles"] = {
        str(p): float(np.percentile(scores, p)) for p in (50, 90, 99)
    }
    return model


def _mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    dx = x - mean
    d2 = np.einsum("ij,jk,ik->i", dx, precision, dx)
    return np.sqrt(np.clip(d2, 0.0, None))


def _ood_model(model: Any) -> dict | None:
    from .inference import Predictor

    bundle = model.bundle if isinstance(model, Predictor) else model
    ood = (getattr(bundle, "domain", None) or {}).get("ood")
    return ood if isinstance(ood, dict) and "precision" in ood else None


def ood_threshold(model: Any) -> float:
    """The out-of-domain threshold stored in a bundle (NaN if it has no OOD model).

    Parameters
    ----------
    model : ModelBundle or astro_cnnmass.inference.Predictor

    Returns
    -------
    float
        Scores above it are flagged out of distribution.
    """
    ood = _ood_model(model)
    return float("nan") if ood is None else float(ood["threshold"])


def ood_scores(
    model: Any,
    images: np.ndarray,
    z: Any,
    *,
    device: Any = None,
    chunk_size: int = 8192,
) -> np.ndarray:
    """Out-of-domain scores: Mahalanobis distance of the embeddings from the training set.

    Compare with :func:`ood_threshold` (the 99th percentile of the validation mocks' scores):
    ``ood_scores(m, images, z) > ood_threshold(m)`` flags inputs unlike the training phase
    spaces. A large score means the network is extrapolating; its mass and interval are then not
    covered by the calibration.

    Parameters
    ----------
    model : ModelBundle or astro_cnnmass.inference.Predictor
        With ``domain["ood"]`` (written by ``train_model``). A Predictor reuses its networks.
    images : numpy.ndarray, shape (n, n_v, n_R) or (n, n_v)
        KDE images.
    z : float or array-like, shape (n,)
        Cluster redshifts.
    device : str or torch.device, optional
        Only used with a bundle.
    chunk_size : int
        Clusters per forward pass.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Dimensionless distances (>= 0); all NaN if the bundle has no OOD model, NaN rows where
        the input is not finite.
    """
    images = np.asarray(images)
    ood = _ood_model(model)
    if ood is None:
        return np.full(images.shape[0], np.nan)
    from .inference import Predictor

    emb = embeddings(model, images, z, device=device, chunk_size=chunk_size)
    holder = model if isinstance(model, Predictor) else None
    return _mahalanobis(emb, *_model_arrays(ood, ("mean", "precision"), holder))


# ---------------------------------------------------------------------------- image-space OOD
def fit_image_ood_model(
    train_images: np.ndarray,
    val_images: np.ndarray,
    *,
    n_components: int = 12,
    percentile: float = 99.0,
) -> dict[str, Any]:
    """Out-of-domain model in the space of the KDE images themselves.

    The network's embedding can map a strange input (e.g. galaxies spread uniformly over the
    cylinder) onto the embedding of an ordinary massive cluster, so the package also scores the
    input image directly: a principal-component model of the training images (Jolliffe 2002,
    *Principal Component Analysis*), with the score

    ``d² = Σ_k p_k² / λ_k + ‖r‖² / ⟨‖r‖²⟩``,

    where ``p_k`` are the projections on the first ``n_components`` components (variances
    ``λ_k``) and ``r`` the residual outside them, normalised by its mean training value. The
    threshold is the ``percentile`` of ``d`` over the validation images.

    Parameters
    ----------
    train_images, val_images : numpy.ndarray, shape (n, ...)
        KDE images (each summing to 1) of training and validation mocks.
    n_components : int
        Principal components kept.
    percentile : float
        Percentile of the validation scores used as threshold.

    Returns
    -------
    dict
        ``mean``, ``components`` (k, d), ``variances`` (k,), ``residual_scale``,
        ``threshold``, ``percentile``, ``n_fit``, ``n_val`` (plain lists and floats).
    """
    X = _flat_images(train_images)
    if X.shape[0] <= n_components + 1:
        raise ValueError(f"need more than {n_components + 1} training images, got {X.shape[0]}")
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    comps = vt[:n_components]
    variances = s[:n_components] ** 2 / (X.shape[0] - 1)
    proj = (X - mean) @ comps.T
    resid = ((X - mean) - proj @ comps) ** 2
    residual_scale = float(resid.sum(axis=1).mean())
    model = {
        "kind": "pca_image",
        "mean": mean.tolist(),
        "components": comps.tolist(),
        "variances": variances.tolist(),
        "residual_scale": residual_scale,
        "percentile": float(percentile),
        "n_fit": int(X.shape[0]),
        "n_val": len(val_images),
    }
    model["threshold"] = float(np.nanpercentile(_image_distance(model, val_images), percentile))
    return model


def _flat_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    n = images.shape[0]
    flat = images.reshape(n, -1)
    return flat * flat.shape[1]  # mean pixel 1, as the network's input scaling


def _model_arrays(model: dict, keys: tuple[str, ...], holder: Any = None) -> tuple:
    """``model[key]`` of an out-of-domain model as arrays (they are stored as plain lists).

    The conversion is cached on ``holder`` (a Predictor), per model dict, so repeated batches
    do not convert the same lists again.
    """
    cache = getattr(holder, "_ood_array_cache", None)
    if cache is not None and id(model) in cache and cache[id(model)][0] is model:
        return cache[id(model)][1]
    arrays = tuple(np.asarray(model[key]) for key in keys)
    if holder is not None:
        if cache is None:
            cache = holder._ood_array_cache = {}
        cache[id(model)] = (model, arrays)
    return arrays


def _image_distance(model: dict, images: np.ndarray, holder: Any = None) -> np.ndarray:
    X = _flat_images(images)
    good = np.isfinite(X).all(axis=1)
    out = np.full(X.shape[0], np.nan)
    if not good.any():
        return out
    mean, comps, variances = _model_arrays(model, ("mean", "components", "variances"), holder)
    dx = X[good] - mean
    proj = dx @ comps.T
    resid = ((dx - proj @ comps) ** 2).sum(axis=1)
    d2 = (proj**2 / variances).sum(axis=1)
    d2 += resid / float(model["residual_scale"])
    out[good] = np.sqrt(d2)
    return out


def normalized_ood_scores(
    model: Any,
    images: np.ndarray,
    z: Any,
    *,
    embeddings: np.ndarray | None = None,
    summaries: dict[str, np.ndarray] | None = None,
    log_mass: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-domain score in units of the thresholds: above 1 means out of distribution.

    The largest of the parts of :func:`ood_score_components` (each over its threshold, the
    99th percentile of held-out validation mocks):

    * the embedding distance (:func:`ood_scores`);
    * the image distance (:func:`fit_image_ood_model`);
    * the summary distance (:func:`astro_cnnmass.summary_ood.summary_distances`): the velocity
      shape and central concentration of the galaxies against training mocks of the same
      predicted mass and richness (bundles that carry ``domain["ood_summary"]``).

    About 2–3 % of ordinary mocks score above 1.

    Parameters
    ----------
    model, images, z, embeddings, summaries, log_mass
        As :func:`ood_score_components`.

    Returns
    -------
    numpy.ndarray, shape (n,)
        NaN where the bundle has no out-of-domain model or the input is not finite.

    Raises
    ------
    ValueError
        If the bundle has a summary model and ``summaries`` is not given.
    """
    parts = list(ood_score_components(model, images, z, embeddings=embeddings,
                                      summaries=summaries, log_mass=log_mass).values())
    if not parts:
        return np.full(np.asarray(images).shape[0], np.nan)
    return np.fmax.reduce(parts) if len(parts) > 1 else parts[0]


def ood_score_components(
    model: Any,
    images: np.ndarray,
    z: Any,
    *,
    embeddings: np.ndarray | None = None,
    summaries: dict[str, np.ndarray] | None = None,
    log_mass: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Each out-of-domain distance of a bundle over its threshold (above 1: that part flags).

    Parameters
    ----------
    model : ModelBundle or astro_cnnmass.inference.Predictor
    images : numpy.ndarray, shape (n, ...)
        KDE images.
    z : float or array-like
        Cluster redshifts.
    embeddings : numpy.ndarray, shape (n, width), optional
        Member-0 embeddings already computed for these images (``Predictor.predict(...,
        return_embeddings=True)``); saves a second forward pass.
    summaries : dict, optional
        :func:`astro_cnnmass.summary_ood.phase_space_summaries` of the same clusters; required
        when the bundle has a summary model.
    log_mass : numpy.ndarray, shape (n,), optional
        The predicted log10 M200c [Msun/h] of these clusters; computed when not given.

    Returns
    -------
    dict of numpy.ndarray, shape (n,)
        ``"embedding"``, ``"image"`` and ``"summary"``, for the models the bundle has (an
        empty dict for none); NaN where the input is not finite.

    Raises
    ------
    ValueError
        If the bundle has a summary model and ``summaries`` is not given.
    """
    from .inference import Predictor
    from .summary_ood import summary_distances

    images = np.asarray(images)
    bundle = model.bundle if isinstance(model, Predictor) else model
    holder = model if isinstance(model, Predictor) else None
    domain = getattr(bundle, "domain", None) or {}
    parts: dict[str, np.ndarray] = {}
    threshold = ood_threshold(model)
    if np.isfinite(threshold):
        if embeddings is None:
            distance = ood_scores(model, images, z)
        else:
            distance = _mahalanobis(np.asarray(embeddings, dtype=float),
                                    *_model_arrays(_ood_model(model), ("mean", "precision"),
                                                   holder))
        parts["embedding"] = distance / threshold
    image_model = domain.get("ood_image")
    if isinstance(image_model, dict) and "components" in image_model:
        parts["image"] = (_image_distance(image_model, images, holder)
                          / float(image_model["threshold"]))
    summary_model = domain.get("ood_summary")
    if isinstance(summary_model, dict) and "precision" in summary_model:
        if summaries is None:
            raise ValueError("this model's out-of-domain score needs the phase-space summaries "
                             "(astro_cnnmass.summary_ood.phase_space_summaries) of the clusters")
        if log_mass is None:
            predictor = holder if holder is not None else Predictor(bundle)
            log_mass = predictor.predict(images, z)["mean"]
        arrays = dict(zip(("mean", "precision", "local_threshold"),
                          _model_arrays(summary_model, ("mean", "precision", "local_threshold"),
                                        holder), strict=True))
        parts["summary"] = (summary_distances({**summary_model, **arrays}, log_mass, summaries)
                            / float(summary_model["threshold"]))
    return parts
