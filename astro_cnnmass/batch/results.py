"""The result table of a table-driven batch, built column by column.

:func:`batch_results_table` is the back half of
`~astro_cnnmass.DynamicalMassEstimator.estimate_many` and
`~astro_cnnmass.DynamicalMassEstimator.estimate_phase_spaces`: from the per-cluster arrays of
`~astro_cnnmass.DynamicalMassEstimator.predict_packed` and the packed phase spaces
(:class:`~astro_cnnmass.observe.packed.PackedPhaseSpaces`) it builds the same QTable as one
`~astro_cnnmass.MassEstimate` a cluster turned into rows would give (the columns of
``data_spec/tables/results.yaml``), with whole-column arithmetic instead of one Python object a
cluster: quantiles ``10 ** (mu + Φ⁻¹(q) σ)`` for the flat prior, or the mass-function posterior
of all clusters in one :func:`~astro_cnnmass.uncertainty.priors.reweight_to_mass_function`
call. Only the optional conversions to other mass definitions (a Monte Carlo per cluster) go
through `~astro_cnnmass.MassEstimate.mass_as` cluster by cluster.

Units: masses in Msun/h (Quantity columns), log masses in dex, σ_v in km/s, centres in deg.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.table import QTable
from scipy.stats import norm

from ..classical import MSUN_H
from ..flags import FlagArray
from ..result import MassEstimate, results_table_meta
from ..uncertainty.calibration import QUANTILE_LEVELS

if TYPE_CHECKING:
    from ..observe.packed import PackedPhaseSpaces
    from ..observe.phase_space import PhaseSpace

__all__ = ["batch_quantiles", "batch_results_table", "mass_estimate_from_batch"]

_KMS = u.km / u.s


def batch_quantiles(
    log_mass: np.ndarray,
    log_mass_std: np.ndarray,
    z: np.ndarray,
    estimator: Any,
    posterior: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reported log mass, its std and the quantiles of every cluster under the estimator's prior.

    Parameters
    ----------
    log_mass, log_mass_std : ndarray, shape (n,)
        The network's predictive mean and calibrated standard deviation, dex.
    z : ndarray, shape (n,)
        Cluster redshifts (used by the mass-function prior).
    estimator : `~astro_cnnmass.DynamicalMassEstimator`
    posterior : dict, optional
        Filled with ``grid`` and ``pdf`` (rows of the valid clusters) of the mass-function
        posterior, when that prior is used.

    Returns
    -------
    log_mass, log_mass_std : ndarray, shape (n,)
        As reported (for the mass-function prior: the posterior median and half the 16–84 %
        width).
    levels : ndarray, shape (n, len(QUANTILE_LEVELS))
        log10 of the quantiles (NaN where the mass or std is not usable).
    valid : ndarray of bool, shape (n,)
        Where a finite mass with a positive std was given.
    """
    mu = np.asarray(log_mass, dtype=float).copy()
    sd = np.asarray(log_mass_std, dtype=float).copy()
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(mu) & np.isfinite(sd) & (sd > 0)
    levels = np.full((mu.size, len(QUANTILE_LEVELS)), np.nan)
    if not valid.any():
        return mu, sd, levels, valid
    if estimator.prior == "mass_function":
        from ..uncertainty.priors import posterior_quantiles, reweight_to_mass_function

        grid, pdf = reweight_to_mass_function(
            mu[valid], sd[valid], np.asarray(z, dtype=float)[valid], bundle=estimator.bundle
        )
        lv = posterior_quantiles(grid, pdf, QUANTILE_LEVELS)
        if posterior is not None:
            posterior.update(grid=grid, pdf=pdf)
        levels[valid] = lv
        # summarised the way a single estimate summarises its reweighted posterior
        mu[valid] = lv[:, 2]
        sd[valid] = (lv[:, 3] - lv[:, 1]) / 2.0
    else:
        levels[valid] = mu[valid, None] + norm.ppf(QUANTILE_LEVELS)[None, :] * sd[valid, None]
    return mu, sd, levels, valid


def mass_estimate_from_batch(
    batch: dict[str, Any],
    i: int,
    estimator: Any,
    ps: PhaseSpace | None,
    inside: np.ndarray | None,
    flags: tuple[str, ...],
) -> MassEstimate:
    """The `~astro_cnnmass.MassEstimate` of cluster ``i`` of a ``predict_packed`` output.

    Parameters
    ----------
    batch : dict
        The output of ``predict_packed``.
    i : int
        Which cluster.
    estimator : `~astro_cnnmass.DynamicalMassEstimator`
    ps : `~astro_cnnmass.PhaseSpace` or None
        Its phase space (None where it could not be built).
    inside : ndarray of bool or None
        Which galaxies of ``ps`` are inside the cylinder.
    flags : tuple of str

    Returns
    -------
    `~astro_cnnmass.MassEstimate`
    """
    z = np.array([np.nan if ps is None else float(ps.z_cluster)])
    post: dict = {}
    mu, sd, levels, valid = batch_quantiles(
        batch["log_mass"][i : i + 1], batch["log_mass_std"][i : i + 1], z, estimator, post
    )
    if valid[0]:
        quantiles = {q: 10 ** float(lv) * MSUN_H for q, lv in zip(QUANTILE_LEVELS, levels[0])}
        interval = (quantiles[0.16], quantiles[0.84])
        point = float(levels[0, 2])
    else:
        quantiles = {q: np.nan * MSUN_H for q in QUANTILE_LEVELS}
        interval = None
        point = float(mu[0])
    posterior = (post["grid"][0], post["pdf"][0]) if post else None
    ood = float(batch["ood_score"][i]) if "ood_score" in batch else float("nan")
    image = None
    if "images" in batch and batch["images"] is not None:
        image = batch["images"][i]
    return MassEstimate(
        mass=10**point * MSUN_H,
        log_mass=float(mu[0]),
        log_mass_std=float(sd[0]),
        mass_interval=interval,
        quantiles=quantiles,
        m_sigma=10 ** float(batch["log_m_sigma"][i]) * MSUN_H,
        m_sigma_evrard=10 ** float(batch["log_m_evrard"][i]) * MSUN_H,
        sigma_v=float(batch["sigma_v"][i]) * _KMS,
        n_members=int(batch["n"][i]),
        z_cluster=float(z[0]),
        flags=flags,
        method=estimator.method,
        cylinder=estimator.cylinder,
        phase_space=ps,
        in_cylinder=inside,
        image=image,
        ood_score=ood,
        out_of_distribution="out_of_distribution" in flags,
        prior=estimator.prior,
        posterior_grid=posterior,
    )


def batch_results_table(
    estimator: Any,
    ids: Sequence[Any],
    packed: PackedPhaseSpaces,
    batch: dict[str, Any],
    flags: FlagArray,
    errors: list[str],
    mass_definitions: Sequence[str] = (),
    progress: bool = False,
) -> QTable:
    """One row a cluster: the columns of ``data_spec/tables/results.yaml``.

    Parameters
    ----------
    estimator : `~astro_cnnmass.DynamicalMassEstimator`
    ids : sequence
        Cluster identifiers, in row order.
    packed : `~astro_cnnmass.observe.packed.PackedPhaseSpaces`
        The phase spaces the batch was measured on (centres, redshifts, how they were found).
    batch : dict
        The output of ``predict_packed`` for these clusters.
    flags : `~astro_cnnmass.flags.FlagArray`
        Flags of each cluster (the batch's, plus ``center_estimated`` / ``z_estimated``).
    errors : list of str
        Why a cluster has no mass (empty where it has one).
    mass_definitions : sequence of str
        Also convert to these mass definitions (``'500c'``, ...), cluster by cluster.
    progress : bool
        Show a tqdm progress bar over the clusters of the mass conversions.

    Returns
    -------
    `~astropy.table.QTable`
    """
    n = len(ids)
    z = np.where(packed.built, packed.z_cluster, np.nan)
    mu, sd, levels, valid = batch_quantiles(batch["log_mass"], batch["log_mass_std"], z, estimator)
    point = np.where(valid, levels[:, 2], mu)
    quantiles = np.where(valid[:, None], 10.0**levels, np.nan)
    ood = np.asarray(batch.get("ood_score", np.full(n, np.nan)), dtype=float)
    cols: dict[str, Any] = {
        "cluster_id": list(ids),
        "ok": np.isfinite(mu),
        "mass": 10.0**point * MSUN_H,
        "mass_lo": quantiles[:, 1] * MSUN_H,
        "mass_hi": quantiles[:, 3] * MSUN_H,
        "log_mass": mu,
        "log_mass_std": sd,
    }
    for j, q in enumerate(QUANTILE_LEVELS):
        cols[f"mass_q{round(q * 100):02d}"] = quantiles[:, j] * MSUN_H
    cols.update(
        {
            "m_sigma": 10.0 ** np.asarray(batch["log_m_sigma"], dtype=float) * MSUN_H,
            "m_sigma_evrard": 10.0 ** np.asarray(batch["log_m_evrard"], dtype=float) * MSUN_H,
            "sigma_v": np.asarray(batch["sigma_v"], dtype=float) * _KMS,
            "n_members": np.asarray(batch["n"], dtype=np.int64),
            "z_cluster": z,
            "method": [estimator.method] * n,
            "ood_score": ood,
            "out_of_distribution": flags.has("out_of_distribution"),
            "prior": [estimator.prior] * n,
            "flags": flags.joined(),
            "error": list(errors),
            "ra_center": packed.center_lon * u.deg,
            "dec_center": packed.center_lat * u.deg,
            "center_estimated": packed.center_estimated,
            "center_iterations": packed.center_iterations,
            "center_converged": packed.center_converged,
            "z_cluster_estimated": packed.z_cluster_estimated,
            "z_cluster_iterations": packed.z_cluster_iterations,
            "z_cluster_converged": packed.z_cluster_converged,
        }
    )
    relations = _converted_masses(estimator, packed, batch, flags, mass_definitions, cols, progress)
    return results_table_meta(QTable(cols, names=list(cols)), relations)


def _converted_masses(
    estimator, packed, batch, flags, mass_definitions, cols, progress=False
) -> dict[str, str]:
    """Add the ``mass_<definition>`` columns (one MassEstimate a cluster); return the relations."""
    if not mass_definitions:
        return {}
    from tqdm.auto import tqdm

    n = len(packed)
    relations: dict[str, str] = {}
    values: dict[str, list] = {}
    desc = "results + " + ", ".join(mass_definitions)
    for i in tqdm(range(n), desc=desc, unit="cluster", disable=not progress):
        est = mass_estimate_from_batch(
            batch, i, estimator, packed.phase_space(i), None, tuple(flags[i])
        )
        for mdef in mass_definitions:
            conv = est.mass_as(mdef)
            name = f"mass_{conv.mass_definition}"
            lo, hi = conv.mass_interval
            for key, q in ((name, conv.mass), (name + "_lo", lo), (name + "_hi", hi)):
                values.setdefault(key, []).append(q.to_value(MSUN_H))
            relations[name] = conv.relation
    for key, vals in values.items():
        cols[key] = np.asarray(vals, dtype=float) * MSUN_H
    return relations
