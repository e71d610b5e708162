"""Out-of-domain check on physical summaries of a phase space, given the network's answer.

The embedding and image out-of-domain models (:mod:`astro_cnnmass.uncertainty.ood`) ask whether a
KDE
image looks like the training images. This one asks whether the *galaxies* look like those of
training clusters that get the *same mass* from the network and have the *same richness*: for
each cluster three summaries of its cylinder galaxies,

* ``edge_fraction``: the fraction with ``|v| > 0.75 v_cut``;
* ``velocity_kurtosis``: the excess kurtosis of ``v`` (about its mean);
* ``inner_fraction``: the fraction with ``R < 0.25 R_aperture``,

are compared with their distribution among training mocks of similar predicted log mass and
log richness. A cluster's velocity distribution is centrally peaked (a Gaussian-like member
component plus a broad projected one; Wojtak et al. 2007, arXiv:astro-ph/0606579; Myles et al.
2021, arXiv:2011.07070) and its galaxies concentrate towards the centre (NFW-like number-density
profiles; Budzynski et al. 2012, arXiv:1201.5491); a flat velocity distribution or an empty
centre at a mass where training clusters show neither is suspect, even when the network's
embedding is unremarkable.

The model (:func:`fit_summary_ood_model`) lives on a grid of (predicted log10 M200c, log10 N):
at each node, the mean and covariance of the summaries of the ``k`` training mocks nearest in
that plane, and the local 95th percentile of their Mahalanobis distances (so that the score is
comparably sized in regions of small and large N, where sampling noise differs). A cluster's
distance is taken at its nearest node and divided by the local percentile; the threshold is the
99th percentile of that ratio over the validation mocks. This is a local-covariance Mahalanobis
distance in the spirit of Lee et al. 2018 (arXiv:1807.03888), conditioned on the prediction.

Units: R in physical Mpc/h, v in km/s, log masses in log10 Msun/h; the summaries are
dimensionless.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "SUMMARY_NAMES",
    "fit_summary_ood_model",
    "phase_space_summaries",
    "summary_distances",
]

#: The summaries compared, in the order of the columns of the model's arrays.
SUMMARY_NAMES = ("edge_fraction", "velocity_kurtosis", "inner_fraction")
#: Velocity (fraction of v_cut) beyond which a galaxy counts towards ``edge_fraction``.
EDGE_VELOCITY_FRACTION = 0.75
#: Radius (fraction of the aperture) within which a galaxy counts towards ``inner_fraction``.
INNER_RADIUS_FRACTION = 0.25
#: Fewest galaxies for which the summaries are defined (the kurtosis needs four).
MIN_GALAXIES = 4


def phase_space_summaries(
    R_mpch: np.ndarray,
    v_kms: np.ndarray,
    offsets: np.ndarray,
    aperture_mpch: float,
    v_cut_kms: float,
) -> dict[str, np.ndarray]:
    """Summaries of many packed phase spaces (galaxies already inside the cylinder).

    Parameters
    ----------
    R_mpch, v_kms : numpy.ndarray
        Flat arrays of projected radii (physical Mpc/h) and line-of-sight velocities (km/s).
    offsets : numpy.ndarray of int
        Cluster ``i`` is ``slice(offsets[i], offsets[i + 1])``.
    aperture_mpch, v_cut_kms : float
        The cylinder (Mpc/h, km/s).

    Returns
    -------
    dict of numpy.ndarray, shape (n_clusters,)
        ``n`` (galaxies), ``edge_fraction``, ``velocity_kurtosis`` (excess), ``inner_fraction``;
        NaN for clusters with fewer than 4 galaxies or no velocity spread.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_cnnmass.uncertainty.summary_ood import phase_space_summaries
    >>> rng = np.random.default_rng(1)
    >>> v = rng.uniform(-2200, 2200, 4000)
    >>> R = 1.6 * np.sqrt(rng.uniform(0, 1, 4000))  # uniform on the disc
    >>> s = phase_space_summaries(R, v, np.array([0, 4000]), 1.6, 2200.0)
    >>> print(f"{s['edge_fraction'][0]:.2f} {s['velocity_kurtosis'][0]:.2f} "
    ...       f"{s['inner_fraction'][0]:.2f}")
    0.26 -1.21 0.06
    """
    R = np.asarray(R_mpch, dtype=float)
    u = np.asarray(v_kms, dtype=float) / float(v_cut_kms)
    x = R / float(aperture_mpch)
    offsets = np.asarray(offsets, dtype=np.int64)
    n = np.diff(offsets)
    cid = np.repeat(np.arange(n.size), n)

    def mean_of(values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(cid, values, minlength=n.size) / n

    centred = u - mean_of(u)[cid]
    squared = centred * centred
    m2 = mean_of(squared)
    m4 = mean_of(squared * squared)
    with np.errstate(invalid="ignore", divide="ignore"):
        kurtosis = m4 / m2**2 - 3.0
    out = {
        "n": n.astype(np.int64),
        "edge_fraction": mean_of((np.abs(u) > EDGE_VELOCITY_FRACTION).astype(float)),
        "velocity_kurtosis": kurtosis,
        "inner_fraction": mean_of((x < INNER_RADIUS_FRACTION).astype(float)),
    }
    # no velocity spread (below ~0.02 km/s, rounding of identical velocities): undefined
    bad = (n < MIN_GALAXIES) | ~(m2 > 1e-10)
    for name in SUMMARY_NAMES:
        out[name] = np.where(bad, np.nan, out[name])
    return out


def _stack(summaries: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([np.asarray(summaries[k], dtype=float) for k in SUMMARY_NAMES])


def _conditions(log_mass: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        log_n = np.log10(np.asarray(n, dtype=float))
    return np.column_stack([np.asarray(log_mass, dtype=float), log_n])


def fit_summary_ood_model(
    log_mass_fit: np.ndarray,
    summaries_fit: dict[str, np.ndarray],
    log_mass_val: np.ndarray,
    summaries_val: dict[str, np.ndarray],
    *,
    k: int = 500,
    local_percentile: float = 95.0,
    percentile: float = 99.0,
    grid_step: float = 0.1,
) -> dict[str, Any]:
    """Fit the summary out-of-domain model on training mocks; threshold on validation mocks.

    Parameters
    ----------
    log_mass_fit, log_mass_val : numpy.ndarray, shape (n,)
        The network's predicted log10 M200c [Msun/h] for the fit (training) and validation mocks.
    summaries_fit, summaries_val : dict
        :func:`phase_space_summaries` of the same mocks.
    k : int
        Training mocks per grid node (nearest in standardized (log M, log N)).
    local_percentile : float
        Percentile of the node's own distances that the distance is divided by.
    percentile : float
        Percentile of the validation scores used as the threshold.
    grid_step : float
        Node spacing in log10 M and in log10 N.

    Returns
    -------
    dict
        Plain arrays, storable in a model bundle's ``domain["ood_summary"]``: ``statistics``,
        ``log_mass_axis`` and ``log_n_axis`` (``[start, step, size]``), ``centre``/``scale`` of
        the (log M, log N) standardization, ``mean`` (nodes, 3), ``precision`` (nodes, 3, 3),
        ``local_threshold`` (nodes,), ``threshold``, ``k``, ``n_fit``, ``n_threshold``,
        ``percentile``, ``local_percentile``.

    Raises
    ------
    ValueError
        If fewer than ``k`` fit mocks have finite summaries and predictions.
    """
    from scipy.spatial import cKDTree

    c_fit = _conditions(log_mass_fit, summaries_fit["n"])
    s_fit = _stack(summaries_fit)
    ok = np.isfinite(c_fit).all(axis=1) & np.isfinite(s_fit).all(axis=1)
    c_fit, s_fit = c_fit[ok], s_fit[ok]
    k = int(k)
    if c_fit.shape[0] < max(k, 2):
        raise ValueError(
            f"need at least k={k} fit mocks with finite summaries, got {c_fit.shape[0]}"
        )
    centre, scale = c_fit.mean(axis=0), c_fit.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    axes = []
    for col in range(2):
        lo = np.floor(c_fit[:, col].min() / grid_step) * grid_step - grid_step
        hi = np.ceil(c_fit[:, col].max() / grid_step) * grid_step + grid_step
        axes.append([float(lo), float(grid_step), round((hi - lo) / grid_step) + 1])
    grid_m = axes[0][0] + axes[0][1] * np.arange(axes[0][2])
    grid_n = axes[1][0] + axes[1][1] * np.arange(axes[1][2])
    nodes = np.array(np.meshgrid(grid_m, grid_n, indexing="ij")).reshape(2, -1).T
    tree = cKDTree((c_fit - centre) / scale)
    _, neighbours = tree.query((nodes - centre) / scale, k=k)
    local = s_fit[neighbours]  # (nodes, k, 3)
    mean = local.mean(axis=1)
    dev = local - mean[:, None, :]
    cov = np.einsum("gki,gkj->gij", dev, dev) / (k - 1)
    # a small ridge keeps degenerate nodes (e.g. all inner fractions equal) invertible
    ridge = 1e-6 * np.trace(cov, axis1=1, axis2=2)[:, None, None] / 3 + 1e-12
    precision = np.linalg.inv(cov + ridge * np.eye(3))
    own = np.sqrt(np.einsum("gki,gij,gkj->gk", dev, precision, dev))
    local_threshold = np.maximum(np.percentile(own, local_percentile, axis=1), 1e-6)
    model = {
        "method": "conditional Mahalanobis distance of phase-space summaries",
        "statistics": list(SUMMARY_NAMES),
        "log_mass_axis": axes[0],
        "log_n_axis": axes[1],
        "centre": centre.tolist(),
        "scale": scale.tolist(),
        "mean": mean.tolist(),
        "precision": precision.tolist(),
        "local_threshold": local_threshold.tolist(),
        "k": k,
        "n_fit": int(c_fit.shape[0]),
        "local_percentile": float(local_percentile),
        "percentile": float(percentile),
    }
    val = summary_distances(model, log_mass_val, summaries_val)
    val = val[np.isfinite(val)]
    model["threshold"] = float(np.percentile(val, percentile)) if val.size else float("nan")
    model["n_threshold"] = int(val.size)
    return model


def summary_distances(
    model: dict, log_mass: np.ndarray, summaries: dict[str, np.ndarray]
) -> np.ndarray:
    """Distances of clusters' summaries from training mocks of like mass and richness.

    Parameters
    ----------
    model : dict
        From :func:`fit_summary_ood_model` (``bundle.domain["ood_summary"]``).
    log_mass : numpy.ndarray, shape (n,)
        The network's predicted log10 M200c [Msun/h].
    summaries : dict
        :func:`phase_space_summaries` of the clusters.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Mahalanobis distance at the nearest grid node over that node's local percentile
        (dimensionless; compare with ``model["threshold"]``); NaN where a summary or the mass
        is not finite.
    """
    cond = _conditions(log_mass, summaries["n"])
    stats_ = _stack(summaries)
    ok = np.isfinite(cond).all(axis=1) & np.isfinite(stats_).all(axis=1)
    out = np.full(cond.shape[0], np.nan)
    if not ok.any():
        return out
    index = np.zeros(cond.shape[0], dtype=np.int64)
    for col, key in enumerate(("log_mass_axis", "log_n_axis")):
        start, step, size = model[key]
        i = np.rint((cond[ok, col] - float(start)) / float(step))
        i = np.clip(i, 0, int(size) - 1).astype(np.int64)
        index[ok] = index[ok] * int(model["log_n_axis"][2]) + i if col else i
    mean = np.asarray(model["mean"], dtype=float)[index[ok]]
    precision = np.asarray(model["precision"], dtype=float)[index[ok]]
    local = np.asarray(model["local_threshold"], dtype=float)[index[ok]]
    r = stats_[ok] - mean
    out[ok] = np.sqrt(np.clip(np.einsum("qi,qij,qj->q", r, precision, r), 0, None)) / local
    return out
