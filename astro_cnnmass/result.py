"""The result of one mass estimate (:class:`MassEstimate`) and its table form.

A :class:`MassEstimate` holds M200c [Msun/h] with its interval and quantiles, the M–σ
cross-checks, the velocity dispersion [km/s], the galaxies used and the flags. One row of an
``estimate_many`` / ``astro-cnnmass catalog`` table is built from one estimate by the same code
(:func:`_row`), so a table and a single estimate never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable

from .classical import MSUN_H
from .exceptions import InputError
from .observe.phase_space import Cylinder, PhaseSpace
from .uncertainty.calibration import QUANTILE_LEVELS

__all__ = ["MassEstimate"]


_KMS = u.km / u.s


@dataclass
class MassEstimate:
    """The result of a dynamical mass estimate for one cluster.

    Attributes
    ----------
    mass : `~astropy.units.Quantity`
        Point estimate of M200c in Msun/h (the median of the predictive distribution), NaN if
        the cluster could not be measured.
    log_mass, log_mass_std : float
        Centre and width of the predictive distribution of log10 M200c [dex]: the Gaussian
        mean and standard deviation with the flat prior; the median and half the 16–84 %
        width of the reweighted posterior with the mass-function prior.
    mass_interval : tuple of `~astropy.units.Quantity` or None
        The central 68 % interval (16th, 84th percentiles), Msun/h.
    quantiles : dict
        Percentile level (0.05, 0.16, 0.5, 0.84, 0.95) -> M200c Quantity.
    m_sigma : `~astropy.units.Quantity`
        M–σ cross-check: the power law fitted on the model's own training mocks, applied to the
        standard deviation of all cylinder galaxies (as Ho et al. 2019), Msun/h.
    m_sigma_evrard : `~astropy.units.Quantity`
        Evrard et al. 2008 dark-matter relation applied to the same σ, Msun/h.
    sigma_v : `~astropy.units.Quantity`
        Standard deviation of the cylinder galaxies' velocities, km/s.
    n_members : int
        Galaxies inside the cylinder.
    z_cluster : float
        Cluster redshift used.
    flags : tuple of str
        Warnings about this estimate (see `~astro_cnnmass.DynamicalMassEstimator` for the list).
    method : str
        ``'cnn2d'`` (or the bundle's model name) or ``'m_sigma_evrard'`` without a network.
    phase_space : `~astro_cnnmass.PhaseSpace` or None
        All input galaxies in phase space.
    in_cylinder : ndarray of bool or None
        Which rows of ``phase_space`` are inside the cylinder.
    image : ndarray or None
        The KDE image the network saw (axis 0: velocity, axis 1: radius).
    cylinder : `~astro_cnnmass.Cylinder`
        The cylinder used.
    ood_score : float
        Out-of-domain score in units of the model's thresholds (NaN without a network): the
        larger of the Mahalanobis distance of the network's embedding and the principal-
        component distance of the KDE image from the training mocks, each divided by its
        99th percentile over held-out validation mocks
        (:func:`astro_cnnmass.uncertainty.ood.normalized_ood_scores`).
    out_of_distribution : bool
        True when ``ood_score`` exceeds 1.
    prior : str
        ``'flat'`` (the training prior, flat in log M) or ``'mass_function'``.
    """

    mass: u.Quantity
    log_mass: float
    log_mass_std: float
    mass_interval: tuple[u.Quantity, u.Quantity] | None
    quantiles: dict[float, u.Quantity]
    m_sigma: u.Quantity
    m_sigma_evrard: u.Quantity
    sigma_v: u.Quantity
    n_members: int
    z_cluster: float
    flags: tuple[str, ...]
    method: str
    cylinder: Cylinder
    phase_space: PhaseSpace | None = None
    in_cylinder: np.ndarray | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    ood_score: float = float("nan")
    out_of_distribution: bool = False
    prior: str = "flat"
    posterior_grid: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def samples(self, n: int = 1000, seed: Any = None) -> u.Quantity:
        """Draws of M200c (Msun/h) from the predictive distribution.

        With the flat prior this is the log-normal of mean ``log_mass`` and width
        ``log_mass_std``; with the mass-function prior the reweighted posterior on its grid.

        Parameters
        ----------
        n : int
            Number of samples.
        seed : int or numpy.random.Generator, optional
            Random seed.
        """
        if not (np.isfinite(self.log_mass) and np.isfinite(self.log_mass_std)):
            raise InputError("this estimate has no predictive distribution to sample")
        if self.posterior_grid is not None:
            from .uncertainty.priors import posterior_samples

            grid, pdf = self.posterior_grid
            log_m = posterior_samples(grid[None, :], pdf[None, :], n, seed)[0]
        else:
            rng = np.random.default_rng(seed)
            log_m = self.log_mass + self.log_mass_std * rng.standard_normal(n)
        return 10**log_m * MSUN_H

    @property
    def ok(self) -> bool:
        """True when a mass was measured (it may still carry warning flags)."""
        return bool(np.isfinite(self.log_mass))

    def summary(self) -> str:
        """A readable multi-line summary."""
        lines = [f"M200c ({self.method}) = {_fmt_mass(self.mass)}"]
        if self.mass_interval is not None:
            lo, hi = self.mass_interval
            lines.append(f"  68% interval: [{_fmt_mass(lo)}, {_fmt_mass(hi)}]")
            lines.append(f"  log10 M200c = {self.log_mass:.3f} +- {self.log_mass_std:.3f} dex")
        lines.append(f"M-sigma cross-check (training fit) = {_fmt_mass(self.m_sigma)}")
        lines.append(f"M-sigma (Evrard et al. 2008)      = {_fmt_mass(self.m_sigma_evrard)}")
        lines.append(
            f"sigma_v = {self.sigma_v.to_value(_KMS):.0f} km/s from "
            f"{self.n_members} galaxies in the cylinder "
            f"(R < {self.cylinder.aperture_mpch:g} Mpc/h, "
            f"|v| < {self.cylinder.v_cut_kms:g} km/s), z_cluster = {self.z_cluster:.5f}"
        )
        if np.isfinite(self.ood_score):
            lines.append(
                f"out-of-domain score = {self.ood_score:.2f}"
                + (" (OUT OF DISTRIBUTION)" if self.out_of_distribution else "")
            )
        lines.append("flags: " + (", ".join(self.flags) if self.flags else "none"))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary (masses in Msun/h)."""
        interval = self.mass_interval
        return {
            "method": self.method,
            "mass_msun_h": _val(self.mass),
            "log_mass": float(self.log_mass),
            "log_mass_std": float(self.log_mass_std),
            "mass_interval_msun_h": None if interval is None else [_val(q) for q in interval],
            "quantiles_msun_h": {str(k): _val(q) for k, q in self.quantiles.items()},
            "m_sigma_msun_h": _val(self.m_sigma),
            "m_sigma_evrard_msun_h": _val(self.m_sigma_evrard),
            "sigma_v_kms": float(self.sigma_v.to_value(_KMS)),
            "n_members": int(self.n_members),
            "z_cluster": float(self.z_cluster),
            "cylinder": self.cylinder.to_dict(),
            "ood_score": float(self.ood_score),
            "out_of_distribution": bool(self.out_of_distribution),
            "prior": self.prior,
            "flags": list(self.flags),
        }

    def to_table(self) -> QTable:
        """The estimate as a one-row QTable.

        The row has the format of the table of
        `~astro_cnnmass.DynamicalMassEstimator.estimate_many`.
        """
        return _rows_to_table([_row(self)])

    def plot(self, fig=None):
        """Phase-space diagram, KDE image and mass posterior; see `astro_cnnmass.plotting`."""
        from .plotting import plot_estimate

        return plot_estimate(self, fig=fig)


def _val(q: u.Quantity) -> float:
    return float(q.to_value(MSUN_H))


def _fmt_mass(q: u.Quantity) -> str:
    value = q.to_value(MSUN_H)
    if not np.isfinite(value):
        return "nan Msun/h"
    return f"{value:.3e} Msun/h"


def _row(est: MassEstimate) -> dict[str, Any]:
    interval = est.mass_interval or (np.nan * MSUN_H, np.nan * MSUN_H)
    row = {
        "cluster_id": "",
        "ok": est.ok,
        "mass": est.mass,
        "mass_lo": interval[0],
        "mass_hi": interval[1],
        "log_mass": est.log_mass,
        "log_mass_std": est.log_mass_std,
    }
    for q in QUANTILE_LEVELS:
        row[f"mass_q{round(q * 100):02d}"] = est.quantiles[q]
    row.update(
        {
            "m_sigma": est.m_sigma,
            "m_sigma_evrard": est.m_sigma_evrard,
            "sigma_v": est.sigma_v,
            "n_members": est.n_members,
            "z_cluster": est.z_cluster,
            "method": est.method,
            "ood_score": est.ood_score,
            "out_of_distribution": est.out_of_distribution,
            "prior": est.prior,
            "flags": ",".join(est.flags),
            "error": "",
        }
    )
    return row


def _rows_to_table(rows: list[dict[str, Any]]) -> QTable:
    names = list(rows[0])
    cols = {}
    for name in names:
        values = [r[name] for r in rows]
        if isinstance(values[0], u.Quantity):
            cols[name] = u.Quantity(values)
        else:
            cols[name] = values
    table = QTable(cols, names=names)
    table.meta["mass_definition"] = "M200c"
    return table
