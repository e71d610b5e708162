"""The result of one mass estimate (:class:`MassEstimate`) and its table form.

A :class:`MassEstimate` holds M200c [Msun/h] with its interval and quantiles, the M–σ
cross-checks, the velocity dispersion [km/s], the galaxies used and the flags. One row of an
``estimate_many`` / ``astro-cnnmass catalog`` table is built from one estimate by the same code
(``_row``), so a table and a single estimate never disagree.

The mass unit is ``u.Msun / cu.littleh``. Importing the package enables ``littleh`` in astropy's
unit registry (see ``astro_cnnmass.classical``), so a results table written to ECSV or FITS
reads back with the same Quantity columns; without the package,
``astropy.units.add_enabled_units(astropy.cosmology.units)`` does the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.table import QTable

from .classical import MSUN_H
from .exceptions import InputError
from .observe.phase_space import Cylinder, PhaseSpace
from .uncertainty.calibration import QUANTILE_LEVELS

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

    from .uncertainty.mass_definitions import ConvertedMass

__all__ = ["MassEstimate"]

#: How to read a results table back with its Quantity columns (stored in the table's meta).
READ_BACK_NOTE = (
    "masses in solMass / littleh (M200c unless the column says otherwise): "
    "`import astro_cnnmass` (or `astropy.units.add_enabled_units(astropy.cosmology.units)`) "
    "before QTable.read gives them back as Quantity columns"
)


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
        The KDE image the network saw (axis 0: velocity, axis 1: radius; float32, computed in
        float64 and rounded once, as the network reads it).
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

    Notes
    -----
    The centre and redshift used, and whether they were estimated from the galaxies (with the
    iterations of the estimate), are the properties ``center``, ``center_estimated``,
    ``center_iterations``, ``center_converged``, ``z_cluster_estimated``,
    ``z_cluster_iterations`` and ``z_cluster_converged`` (read from ``phase_space``).
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

    @property
    def center(self) -> SkyCoord | None:
        """The cluster centre used (given or estimated); None for a ready phase space."""
        return None if self.phase_space is None else self.phase_space.center

    @property
    def center_estimated(self) -> bool:
        """Whether the centre was estimated from the galaxies."""
        return bool(self.phase_space is not None and self.phase_space.center_estimated)

    @property
    def center_iterations(self) -> int:
        """Iterations of the centre estimate (0 when the centre was given)."""
        return 0 if self.phase_space is None else int(self.phase_space.center_iterations)

    @property
    def center_converged(self) -> bool:
        """Whether the centre estimate converged (True when the centre was given)."""
        return bool(self.phase_space is not None and self.phase_space.center_converged)

    @property
    def z_cluster_estimated(self) -> bool:
        """Whether the cluster redshift was estimated from the galaxies."""
        return bool(self.phase_space is not None and self.phase_space.z_cluster_estimated)

    @property
    def z_cluster_iterations(self) -> int:
        """Iterations of the redshift estimate, both passes (0 when z_cluster was given)."""
        return 0 if self.phase_space is None else int(self.phase_space.z_cluster_iterations)

    @property
    def z_cluster_converged(self) -> bool:
        """Whether the redshift estimate converged (True when z_cluster was given)."""
        return bool(self.phase_space is not None and self.phase_space.z_cluster_converged)

    def mass_as(
        self,
        mass_definition: str,
        *,
        cm_model: str | None = None,
        c_scatter_dex: float | None = None,
        cosmology: Any = None,
        n_samples: int = 4000,
        seed: Any = 0,
    ) -> ConvertedMass:
        """The mass in another definition (M500c, M200m, Mvir, ...), with its interval.

        The network predicts M200c. The whole predictive distribution is converted by Monte
        Carlo with a concentration–mass relation and its log-normal scatter, through an NFW
        profile (colossus), so the interval contains both the network's uncertainty and the
        scatter of the relation; see `astro_cnnmass.uncertainty.mass_definitions`.

        Parameters
        ----------
        mass_definition : str
            ``'500c'``, ``'2500c'``, ``'200m'``, ``'vir'``, ... (colossus notation; ``'M500c'``
            is accepted too).
        cm_model : str, optional
            colossus concentration model; default ``'diemer19'`` (Diemer & Joyce 2019).
        c_scatter_dex : float, optional
            Scatter of log10 c at fixed mass, dex; default 0.16 (Diemer & Kravtsov 2015).
        cosmology : `~astropy.cosmology.Cosmology`, optional
            Default: the cosmology the phase space was built with (Planck18 without one).
        n_samples : int
            Monte Carlo draws.
        seed : int or numpy.random.Generator, optional
            Random seed (default 0: the same numbers on every call).

        Returns
        -------
        `~astro_cnnmass.uncertainty.mass_definitions.ConvertedMass`
            ``mass`` (median, Msun/h), ``mass_interval`` (68 %), ``quantiles``, and the relation
            used (``concentration_model``, ``concentration_scatter_dex``, ``relation``).

        Examples
        --------
        >>> from astro_cnnmass import DynamicalMassEstimator
        >>> from astro_cnnmass.datasets import load_example_cluster
        >>> members = load_example_cluster()
        >>> res = DynamicalMassEstimator.load().estimate(
        ...     members, z_cluster=members.meta["z_cluster"])
        >>> m500 = res.mass_as("500c")
        >>> bool(m500.mass < res.mass)
        True
        >>> m500.relation
        'diemer19 c-M relation, 0.16 dex log-normal scatter, NFW profile (colossus)'
        """
        from .uncertainty.mass_definitions import (
            DEFAULT_C_SCATTER_DEX,
            DEFAULT_CM_MODEL,
            convert_estimate,
        )

        return convert_estimate(
            self,
            mass_definition,
            cosmology=cosmology,
            cm_model=DEFAULT_CM_MODEL if cm_model is None else cm_model,
            c_scatter_dex=DEFAULT_C_SCATTER_DEX if c_scatter_dex is None else c_scatter_dex,
            n_samples=n_samples,
            seed=seed,
        )

    def __repr__(self) -> str:
        interval = ""
        if self.mass_interval is not None:
            lo, hi = self.mass_interval
            interval = f", 68% [{_fmt_mass(lo)}, {_fmt_mass(hi)}]"
        return (
            f"<MassEstimate {self.method}: M200c = {_fmt_mass(self.mass)}{interval}\n"
            f"  z_cluster = {self.z_cluster:.5f}, sigma_v = {self.sigma_v.to_value(_KMS):.0f} "
            f"km/s, n_members = {self.n_members}, prior = {self.prior}\n"
            f"  flags: {', '.join(self.flags) if self.flags else 'none'}>"
        )

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
        lines.extend(self._estimation_lines())
        if np.isfinite(self.ood_score):
            lines.append(
                f"out-of-domain score = {self.ood_score:.2f}"
                + (" (OUT OF DISTRIBUTION)" if self.out_of_distribution else "")
            )
        lines.append("flags: " + (", ".join(self.flags) if self.flags else "none"))
        return "\n".join(lines)

    def _estimation_lines(self) -> list[str]:
        """Summary lines on the centre and redshift used (given or estimated)."""
        lines = []
        center = self.center
        if center is not None:
            how = "given"
            if self.center_estimated:
                how = f"estimated from the galaxies, {self.center_iterations} iterations, " + (
                    "converged" if self.center_converged else "NOT CONVERGED"
                )
            lines.append(
                f"centre: RA = {center.spherical.lon.deg:.5f} deg, "
                f"Dec = {center.spherical.lat.deg:.5f} deg ({how})"
            )
        if self.z_cluster_estimated:
            lines.append(
                f"z_cluster = {self.z_cluster:.5f} estimated from the galaxies, "
                f"{self.z_cluster_iterations} iterations, "
                + ("converged" if self.z_cluster_converged else "NOT CONVERGED")
            )
        return lines

    def _estimation_dict(self) -> dict[str, Any]:
        """The centre and redshift used and how they were found (plain types, no NaN)."""
        center = self.center
        return {
            "center_ra_deg": None if center is None else float(center.spherical.lon.deg),
            "center_dec_deg": None if center is None else float(center.spherical.lat.deg),
            "center_estimated": self.center_estimated,
            "center_iterations": self.center_iterations,
            "center_converged": self.center_converged,
            "z_cluster_estimated": self.z_cluster_estimated,
            "z_cluster_iterations": self.z_cluster_iterations,
            "z_cluster_converged": self.z_cluster_converged,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary (masses in Msun/h); NaN and inf become None."""
        interval = self.mass_interval
        d = {
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
            **self._estimation_dict(),
        }
        return _json_safe(d)  # strict JSON: json.dumps(d, allow_nan=False) works

    def to_table(self, mass_definitions: Sequence[str] = ()) -> QTable:
        """The estimate as a one-row QTable.

        The row has the format of the table of
        `~astro_cnnmass.DynamicalMassEstimator.estimate_many`.

        Parameters
        ----------
        mass_definitions : sequence of str
            Also give the mass in these definitions (``'500c'``, ``'200m'``, ``'vir'``, ...):
            columns ``mass_500c``, ``mass_500c_lo``, ``mass_500c_hi``, ... from
            :meth:`mass_as` with its defaults (the relation is named in their descriptions).
        """
        return _rows_to_table([_row(self, mass_definitions)])

    def plot(self, fig=None):
        """Phase-space diagram, KDE image and mass posterior; see `astro_cnnmass.plotting`."""
        from .plotting import plot_estimate

        return plot_estimate(self, fig=fig)


def _json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, inf) replaced by None, recursively."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _val(q: u.Quantity) -> float:
    return float(q.to_value(MSUN_H))


def _fmt_mass(q: u.Quantity) -> str:
    value = q.to_value(MSUN_H)
    if not np.isfinite(value):
        return "nan Msun/h"
    return f"{value:.3e} Msun/h"


def _row(est: MassEstimate, mass_definitions: Sequence[str] = ()) -> dict[str, Any]:
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
    center = est.center
    row["ra_center"] = (np.nan if center is None else center.spherical.lon.deg) * u.deg
    row["dec_center"] = (np.nan if center is None else center.spherical.lat.deg) * u.deg
    for key in (
        "center_estimated",
        "center_iterations",
        "center_converged",
        "z_cluster_estimated",
        "z_cluster_iterations",
        "z_cluster_converged",
    ):
        row[key] = getattr(est, key)
    for mdef in mass_definitions:
        conv = est.mass_as(mdef)
        name = f"mass_{conv.mass_definition}"
        row[name] = conv.mass
        row[f"{name}_lo"], row[f"{name}_hi"] = conv.mass_interval
        row.setdefault("_relations", {})[name] = conv.relation
    return row


def _rows_to_table(rows: list[dict[str, Any]]) -> QTable:
    relations = rows[0].get("_relations", {})
    names = [n for n in rows[0] if n != "_relations"]
    cols = {}
    for name in names:
        values = [r[name] for r in rows]
        if isinstance(values[0], u.Quantity):
            cols[name] = u.Quantity(values)
        else:
            cols[name] = values
    return results_table_meta(QTable(cols, names=names), relations)


def results_table_meta(table: QTable, relations: dict[str, str]) -> QTable:
    """Set the metadata of a results table: mass definition, units note, and the relation of
    every converted-mass column (``relations``: column name -> relation) in its description."""
    table.meta["mass_definition"] = "M200c"
    table.meta["units"] = READ_BACK_NOTE
    for name, relation in relations.items():
        # in the column descriptions (ECSV and FITS keep them; a long FITS meta key would not)
        for suffix, what in (
            ("", "median"),
            ("_lo", "16th percentile"),
            ("_hi", "84th percentile"),
        ):
            table[
                name + suffix
            ].info.description = f"M{name[5:]} ({what}), converted from M200c: {relation}"
    return table
