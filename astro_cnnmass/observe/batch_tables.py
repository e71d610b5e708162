"""Validate the member and cluster tables of a batch once, before any cluster is measured.

:func:`plan_batch` is the front half of
`~astro_cnnmass.DynamicalMassEstimator.estimate_many`: it refuses, with an
`~astro_cnnmass.InputError` naming the table and column, whatever would make *every* cluster
fail (a pandas DataFrame, an empty member table, a missing column, a cluster redshift column
with a unit that is not dimensionless); it groups the galaxies by cluster, dropping (with one
counted warning) rows whose cluster id is masked; and it records, for each cluster, a reason it
cannot be measured (a non-numeric cell among its galaxies, a declination beyond +-90 deg in the
cluster table) so that the estimator can give that cluster a flagged NaN row and measure the
others as if it were not there.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from ..exceptions import AstroCnnmassWarning, InputError
from .columns import _split_mask, angle_values, redshift_values
from .phase_space import PhaseSpace, phase_space

__all__ = ["BatchPlan", "batch_phase_spaces", "plan_batch"]


@dataclass
class BatchPlan:
    """Which member rows make each cluster, and what is known about it before measuring.

    Attributes
    ----------
    ids : list
        Cluster identifiers, in output order (the cluster table's, else first appearance).
    rows : list of ndarray of int
        Rows of the member table of each cluster (in table order).
    center_deg : ndarray of float, shape (n, 2)
        Centre (ICRS ra, dec in degrees) from the cluster table; NaN: estimate it.
    redshifts : list of float or None
        Redshift from the cluster table (None: estimate it).
    errors : list of str
        Why a cluster cannot be measured (empty when it can).
    """

    ids: list
    rows: list
    center_deg: np.ndarray
    redshifts: list
    errors: list

    def center(self, k: int) -> SkyCoord | None:
        """Centre of cluster ``k`` as a SkyCoord (ICRS), or None when it is to be estimated."""
        ra, dec = self.center_deg[k]
        if not (np.isfinite(ra) and np.isfinite(dec)):
            return None
        return SkyCoord(ra * u.deg, dec * u.deg)


def _check_table(table: Any, what: str) -> None:
    if isinstance(table, Table):
        return
    hint = ""
    if type(table).__module__.split(".")[0] == "pandas":
        hint = "; convert a pandas DataFrame with astropy.table.Table.from_pandas(df)"
    raise InputError(f"{what} must be an astropy Table or QTable, got {type(table).__name__}{hint}")


def _cluster_ids(table: Table, column: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    if column not in table.colnames:
        raise InputError(
            f"{what} has no cluster column {column!r}; columns are {table.colnames}. "
            "Pass the right name with cluster_column="
        )
    data, mask = _split_mask(table[column])
    ids = np.asarray(data)
    if ids.ndim != 1:
        raise InputError(f"{what} column {column!r} must be 1-D, got shape {ids.shape}")
    return ids, np.zeros(ids.shape, bool) if mask is None else mask


def _bad_cells(members: Table, columns: tuple[str, ...]) -> dict[int, str]:
    """Member rows with a cell that is not a number (object/string columns only)."""
    bad: dict[int, str] = {}
    for name in columns:
        if name not in members.colnames:
            continue
        data, mask = _split_mask(members[name])
        arr = np.asarray(getattr(data, "value", data))
        if arr.dtype.kind not in "OUS":
            continue
        for i, cell in enumerate(arr.reshape(-1)):
            if (mask is not None and mask[i]) or i in bad:
                continue
            try:
                float(cell)
            except (TypeError, ValueError):
                bad[i] = f"member table column {name!r} row {i} holds {cell!r}, expected a number"
    return bad


def plan_batch(
    members: Table,
    clusters: Table | None,
    cluster_column: str,
    ra_column: str,
    dec_column: str,
    z_column: str,
) -> BatchPlan:
    """Check the tables of a batch and group the galaxies by cluster.

    Parameters
    ----------
    members : `~astropy.table.Table`
        Galaxies with ``cluster_column``, ``ra_column``, ``dec_column`` (deg; plain floats are
        degrees) and ``z_column``.
    clusters : `~astropy.table.Table` or None
        One row a cluster: ``cluster_column``, ``ra``, ``dec`` (deg) and ``z`` (dimensionless);
        masked or NaN values are estimated from the galaxies.
    cluster_column, ra_column, dec_column, z_column : str
        Column names.

    Returns
    -------
    BatchPlan

    Raises
    ------
    InputError
        A table-wide problem, naming the table and column.
    """
    _check_table(members, "members")
    if len(members) == 0:
        raise InputError("member table is empty")
    ids, id_mask = _cluster_ids(members, cluster_column, "member table")
    has_skycoord = any(isinstance(members[c], SkyCoord) for c in members.colnames)
    needed = (z_column,) if has_skycoord else (ra_column, dec_column, z_column)
    for name in needed:
        if name not in members.colnames:
            raise InputError(
                f"member table has no column {name!r}; columns are {members.colnames}. "
                "Pass the right name with ra_column=, dec_column= or z_column="
            )
    if id_mask.any():
        warnings.warn(
            f"dropped {int(id_mask.sum())} galaxies whose {cluster_column!r} is masked",
            AstroCnnmassWarning,
            stacklevel=3,
        )
    valid = np.flatnonzero(~id_mask)
    ids_v = ids if valid.size == ids.size else ids[valid]
    # one stable sort instead of one scan per cluster: within a cluster the rows stay in
    # table order, so each cluster's rows are a view of ``grouped`` (no per-cluster copy);
    # the clusters' boundaries are read off the sorted identifiers (no second sort)
    order = np.argsort(ids_v, kind="stable")
    grouped = valid[order]
    sorted_ids = ids_v[order]
    del order
    starts = np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1
    starts = np.concatenate([[0], starts]) if sorted_ids.size else starts
    stops = [*starts[1:].tolist(), sorted_ids.size]
    bounds = dict(zip(sorted_ids[starts].tolist(), zip(starts.tolist(), stops)))
    del sorted_ids
    bad = _bad_cells(members, needed)

    if clusters is None:
        out_ids = list(dict.fromkeys(ids_v.tolist()))
        ra = dec = z = np.full(len(out_ids), np.nan)
    else:
        _check_table(clusters, "clusters")
        for col in ("ra", "dec", "z"):
            if col not in clusters.colnames:
                raise InputError(
                    f"cluster table has no column {col!r}; columns are {clusters.colnames}"
                )
        cids, cmask = _cluster_ids(clusters, cluster_column, "cluster table")
        if cmask.any():
            raise InputError(f"cluster table column {cluster_column!r} has masked identifiers")
        out_ids = list(cids)
        ra = angle_values(clusters["ra"], "ra")
        dec = angle_values(clusters["dec"], "dec")
        z = redshift_values(clusters["z"], "z")

    with np.errstate(invalid="ignore"):
        given = np.isfinite(ra) & np.isfinite(dec)
        impossible = given & (np.abs(dec) > 90)
    center_deg = np.full((len(out_ids), 2), np.nan)
    center_deg[given & ~impossible] = np.column_stack([ra, dec])[given & ~impossible]
    redshifts = [float(zk) if np.isfinite(zk) else None for zk in z.tolist()]
    plan = BatchPlan(list(out_ids), [], center_deg, redshifts, [])
    for k, cid in enumerate(out_ids):
        key = cid.item() if hasattr(cid, "item") else cid
        lo, hi = bounds.get(key, (0, 0))
        rows = grouped[lo:hi]
        error = next((bad[r] for r in rows.tolist() if r in bad), "") if bad else ""
        if impossible[k]:
            error = error or f"cluster table dec = {dec[k]} deg is outside [-90, 90]"
        plan.rows.append(rows)
        plan.errors.append(error)
    return plan


def batch_phase_spaces(
    plan: BatchPlan,
    members: Table,
    *,
    cosmology: Any = None,
    columns: tuple[str, str, str] = ("ra", "dec", "z"),
    progress: Iterable[int] | None = None,
) -> tuple[list[PhaseSpace | None], list[str]]:
    """The phase space of every cluster of ``plan``, or the reason it could not be built.

    Parameters
    ----------
    plan : BatchPlan
        From :func:`plan_batch`.
    members : `~astropy.table.Table`
        The member table the plan was made from.
    cosmology : `~astropy.cosmology.Cosmology`, optional
        Default Planck18.
    columns : (str, str, str)
        ``ra_column``, ``dec_column``, ``z_column``.
    progress : iterable of int, optional
        Iterates over ``range(len(plan.ids))`` (e.g. wrapped in a progress bar).

    Returns
    -------
    phase_spaces : list of PhaseSpace or None
        None where the cluster could not be measured.
    errors : list of str
        The reason (empty where a phase space was built). Any exception of one cluster ends
        up here; the other clusters are unaffected.
    """
    ra_column, dec_column, z_column = columns
    phase_spaces: list[PhaseSpace | None] = []
    errors: list[str] = []
    for k in range(len(plan.ids)) if progress is None else progress:
        try:
            if plan.errors[k]:
                raise InputError(plan.errors[k])
            if plan.rows[k].size == 0:
                raise InputError("no members in the member table")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstroCnnmassWarning)
                ps = phase_space(
                    members[plan.rows[k]],
                    center=plan.center(k),
                    z_cluster=plan.redshifts[k],
                    cosmology=cosmology,
                    ra_column=ra_column,
                    dec_column=dec_column,
                    z_column=z_column,
                )
            phase_spaces.append(ps)
            errors.append("")
        except Exception as exc:  # one cluster's failure never ends the batch
            phase_spaces.append(None)
            errors.append(str(exc) if isinstance(exc, InputError) else repr(exc))
    return phase_spaces, errors
