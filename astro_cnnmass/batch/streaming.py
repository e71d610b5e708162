"""Chunked, streaming batch inference over catalogues of any size.

:func:`estimate_catalog` runs a `~astro_cnnmass.DynamicalMassEstimator` over a catalogue of
clusters given as packed per-galaxy arrays (``R``, ``v``, ``offsets``, ``z``), a
`~astro_cnnmass.mocks.MockCatalog` (typically opened lazily with ``MockCatalog.read(path)``, whose
arrays are memory-mapped) or a galaxy table. It reads one chunk of clusters at a time, applies the
model's cylinder (:func:`~astro_cnnmass.observe.phase_space.cylinder_mask`) to that chunk only,
calls
:meth:`~astro_cnnmass.DynamicalMassEstimator.predict_packed` on it, and writes the results into
preallocated per-cluster output arrays. Peak memory is therefore set by ``chunk_size`` (KDE
images stored as float32: ``chunk_size`` × 48 × 48 × 4 bytes, 19 MB for 2048 clusters, plus the
float64 temporaries of the KDE and the network's activations), not by the catalogue size; the
outputs cost about 100 bytes per cluster.

Units at this boundary are plain floats (see the developer contracts): R in physical Mpc/h at the
cluster redshift, v in km/s in the cluster rest frame, masses as log10(M200c / (Msun/h)) in the
raw arrays and `~astropy.units.Quantity` in Msun/h in the returned table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table
from scipy.stats import norm

from ..classical import MSUN_H
from ..exceptions import InputError
from ..flags import FlagArray
from ..observe.phase_space import MPC_H, cylinder_mask
from .threads import DEFAULT_CHUNK_SIZE, map_in_threads

if TYPE_CHECKING:
    from ..estimator import DynamicalMassEstimator

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "PackedChunk",
    "chunk_bounds",
    "estimate_catalog",
    "iter_chunks",
    "packed_from_table",
]


_KMS = u.km / u.s
#: Names of the float result arrays (log10 masses in dex, sigma_v in km/s), in table order.
RESULT_FLOATS = ("log_mass", "log_mass_std", "sigma_v", "log_m_sigma", "log_m_evrard")
#: Per-cluster floats that ``predict_packed`` may add (out-of-domain score), kept when present.
OPTIONAL_FLOATS = ("ood_score",)


@dataclass(frozen=True)
class PackedChunk:
    """One chunk of a packed catalogue, ready for ``predict_packed``.

    Attributes
    ----------
    start, stop : int
        The chunk holds clusters ``start:stop`` of the catalogue.
    R, v : ndarray of float64
        Projected radii (physical Mpc/h) and rest-frame velocities (km/s) of the chunk's
        galaxies (inside the cylinder when one was applied), owned by the chunk (not views of
        the catalogue's memory map).
    offsets : ndarray of int64, shape ``(stop - start + 1,)``
        Local offsets: cluster ``start + i`` is ``slice(offsets[i], offsets[i + 1])``.
    z : ndarray of float64 or None
        Cluster redshifts of the chunk, when they were given.
    """

    start: int
    stop: int
    R: np.ndarray
    v: np.ndarray
    offsets: np.ndarray
    z: np.ndarray | None = None

    @property
    def n_clusters(self) -> int:
        """Number of clusters in the chunk."""
        return self.stop - self.start


def chunk_bounds(n_clusters: int, chunk_size: int) -> np.ndarray:
    """Balanced chunk boundaries: ``ceil(n / chunk_size)`` chunks of nearly equal size.

    Chunks of equal size (instead of full chunks and a small remainder) keep every network batch
    large, where the CPU kernels give per-row results independent of the batch composition.

    Parameters
    ----------
    n_clusters : int
        Number of clusters.
    chunk_size : int
        Largest number of clusters per chunk (>= 1).

    Returns
    -------
    ndarray of int64
        ``bounds`` with chunk ``k`` = clusters ``bounds[k]:bounds[k + 1]``.

    Examples
    --------
    >>> chunk_bounds(10, 4).tolist()
    [0, 3, 7, 10]
    """
    chunk_size = _check_chunk_size(chunk_size)
    n_clusters = int(n_clusters)
    n_chunks = max(1, -(-n_clusters // chunk_size))
    return np.linspace(0, n_clusters, n_chunks + 1).round().astype(np.int64)


def _check_chunk_size(chunk_size: Any) -> int:
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int | np.integer)
        or (chunk_size < 1)
    ):
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def _check_packed(R: Any, v: Any, offsets: Any) -> tuple[Any, Any, np.ndarray]:
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or offsets.size < 1 or not np.issubdtype(offsets.dtype, np.integer):
        raise InputError("offsets must be a 1-D integer array of length n_clusters + 1")
    offsets = offsets.astype(np.int64)
    if np.ndim(R) != 1 or np.ndim(v) != 1 or len(R) != len(v):
        raise InputError(
            f"R and v must be 1-D arrays of equal length, got shapes "
            f"{np.shape(R)} and {np.shape(v)}"
        )
    if offsets[0] < 0 or offsets[-1] > len(R) or np.any(np.diff(offsets) < 0):
        raise InputError(f"offsets must be non-decreasing within [0, len(R)={len(R)}]")
    return R, v, offsets


def iter_chunks(
    R: Any,
    v: Any,
    offsets: Any,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    z: Any = None,
    cylinder: Any = None,
) -> Iterator[PackedChunk]:
    """Iterate over a packed catalogue in chunks of clusters, optionally cutting a cylinder.

    Only one chunk of galaxies is read (and converted to float64) at a time, so ``R`` and ``v``
    may be memory-mapped arrays of any size.

    Parameters
    ----------
    R, v : array-like, shape ``(n_galaxies,)``
        Projected radii (physical Mpc/h) and rest-frame velocities (km/s), all clusters
        concatenated; numpy arrays or memory maps (any float dtype).
    offsets : array-like of int, shape ``(n_clusters + 1,)``
        Cluster ``i`` is ``slice(offsets[i], offsets[i + 1])``.
    chunk_size : int
        Largest number of clusters per chunk (chunks are balanced, see :func:`chunk_bounds`).
    z : array-like, shape ``(n_clusters,)``, optional
        Cluster redshifts, sliced along.
    cylinder : `~astro_cnnmass.Cylinder`, optional
        Keep only the galaxies inside it (``R < aperture`` and ``|v| < v_cut``).

    Yields
    ------
    PackedChunk

    Examples
    --------
    >>> import numpy as np
    >>> R, v = np.array([0.1, 0.2, 2.0, 0.3]), np.array([10.0, -20.0, 5.0, 3000.0])
    >>> [c.offsets.tolist() for c in iter_chunks(R, v, [0, 2, 4], 1)]
    [[0, 2], [0, 2]]
    """
    R, v, offsets = _check_packed(R, v, offsets)
    n = offsets.size - 1
    if z is not None:
        z = np.atleast_1d(np.asarray(z, dtype=float))
        if z.shape != (n,):
            raise InputError(f"z has shape {z.shape}, expected ({n},)")
    bounds = chunk_bounds(n, chunk_size)
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if stop == start:
            continue
        o = offsets[start : stop + 1]
        g0, g1 = int(o[0]), int(o[-1])
        Rc = np.array(R[g0:g1], dtype=np.float64)
        vc = np.array(v[g0:g1], dtype=np.float64)
        local = o - g0
        if cylinder is not None:
            inside = cylinder_mask(Rc, vc, cylinder.aperture_mpch, cylinder.v_cut_kms)
            kept = np.zeros(inside.size + 1, dtype=np.int64)
            np.cumsum(inside, out=kept[1:])
            local = kept[local]
            Rc, vc = Rc[inside], vc[inside]
        yield PackedChunk(start, stop, Rc, vc, local, None if z is None else z[start:stop])


def packed_from_table(
    galaxies: Table,
    *,
    cluster_column: str = "cluster_id",
    R_column: str = "R",
    v_column: str = "v",
    z_column: str | None = "z",
    z: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Packed arrays from a table of galaxies in projected phase space.

    Parameters
    ----------
    galaxies : `~astropy.table.Table` or `~astropy.table.QTable`
        One row a galaxy: ``cluster_column``, ``R_column`` (physical Mpc/h; a Quantity in
        Mpc/h or plain floats), ``v_column`` (km/s) and optionally ``z_column`` (the cluster
        redshift, repeated on every row of a cluster). Rows of a cluster need not be contiguous
        (a stable sort groups them, keeping their order).
    cluster_column, R_column, v_column, z_column : str
        Column names. ``z_column=None`` takes the redshifts from ``z``.
    z : array-like, optional
        Cluster redshifts in the order of the returned ``cluster_ids``.

    Returns
    -------
    R, v : ndarray of float64
        Packed radii (Mpc/h) and velocities (km/s).
    offsets : ndarray of int64
        Cluster boundaries.
    z : ndarray of float64
        Cluster redshifts.
    cluster_ids : ndarray
        Cluster identifiers in order of first appearance in the table.

    Raises
    ------
    InputError
        A column is missing or the redshifts are not given.
    """
    for col in (cluster_column, R_column, v_column):
        if col not in galaxies.colnames:
            raise InputError(f"galaxy table has no column {col!r}")
    ids = np.asarray(galaxies[cluster_column])
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    # clusters in order of first appearance; galaxies grouped by a stable sort
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(uniq.size)
    order = np.argsort(rank[inverse.ravel()], kind="stable")
    counts = np.bincount(rank[inverse.ravel()], minlength=uniq.size)
    offsets = np.zeros(uniq.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    R = _column_value(galaxies[R_column], MPC_H, R_column)[order]
    v = _column_value(galaxies[v_column], _KMS, v_column)[order]
    cluster_ids = uniq[np.argsort(rank)]
    if z is None:
        if z_column is None or z_column not in galaxies.colnames:
            raise InputError(f"galaxy table has no redshift column {z_column!r}; pass z=")
        z = _column_value(galaxies[z_column], None, z_column)[order][offsets[:-1]]
    z = np.atleast_1d(np.asarray(z, dtype=float))
    if z.shape != (uniq.size,):
        raise InputError(f"z has shape {z.shape}, expected ({uniq.size},)")
    return R, v, offsets, z, cluster_ids


def _column_value(col: Any, unit: u.UnitBase | None, name: str = "") -> np.ndarray:
    """Float64 values of a column in ``unit``; masked cells become NaN, non-numbers raise."""
    from ..observe.columns import float_values

    return float_values(col, f"galaxy table column {name!r}", unit)


def _unpack_catalog(catalog: Any, z: Any) -> tuple[Any, Any, np.ndarray, np.ndarray, dict]:
    """(R, v, offsets, z, id columns) of a MockCatalog-like object or an (R, v, offsets, z)."""
    if isinstance(catalog, tuple | list):
        if len(catalog) == 4:
            R, v, offsets, z_in = catalog
        elif len(catalog) == 3:
            (R, v, offsets), z_in = catalog, z
        else:
            raise InputError("a packed catalogue is a tuple (R, v, offsets, z)")
        if z_in is None:
            raise InputError("cluster redshifts are missing: pass (R, v, offsets, z)")
        return R, v, offsets, np.asarray(z_in, dtype=float), {}
    if all(hasattr(catalog, a) for a in ("R", "v", "offsets", "clusters")):
        clusters = catalog.clusters
        if z is None:
            if "z" not in clusters:
                raise InputError("the catalogue has no per-cluster 'z' column; pass z=")
            z = clusters["z"]
        ids = {k: np.asarray(clusters[k]) for k in ("host_id", "los_id") if k in clusters}
        return catalog.R, catalog.v, catalog.offsets, np.asarray(z, dtype=float), ids
    raise InputError(
        f"catalog must be a MockCatalog or a tuple (R, v, offsets, z), got {type(catalog)}"
    )


def estimate_catalog(
    estimator: DynamicalMassEstimator,
    catalog: Any,
    *,
    z: Any = None,
    chunk_size: int | None = None,
    cylinder_already_applied: bool = False,
    progress: bool = False,
    as_table: bool = True,
) -> QTable | dict[str, Any]:
    """Masses of every cluster of a (possibly memory-mapped) catalogue, chunk by chunk.

    Parameters
    ----------
    estimator : `~astro_cnnmass.DynamicalMassEstimator`
        The model (its cylinder and features are used).
    catalog : `~astro_cnnmass.mocks.MockCatalog` or tuple
        A mock catalogue (read lazily: ``MockCatalog.read(path)``), or a tuple
        ``(R, v, offsets, z)`` of packed arrays: R in physical Mpc/h, v in km/s (flat, any float
        dtype, memory maps welcome), int offsets of length n_clusters + 1, z of length n_clusters.
        Use :func:`packed_from_table` for a galaxy table.
    z : array-like, optional
        Cluster redshifts overriding the catalogue's ``clusters['z']``.
    chunk_size : int, optional
        Largest number of clusters processed at once; sets the peak memory. Default the
        estimator's ``default_chunk_size`` (``DEFAULT_CHUNK_SIZE`` = 2048 on the CPU,
        65536 on a GPU).
    cylinder_already_applied : bool
        Skip the cylinder cut (the galaxies are already inside the model's cylinder).
    progress : bool
        Show a tqdm progress bar (clusters).
    as_table : bool
        Return a QTable (default) or the raw dict of arrays.

    Returns
    -------
    `~astropy.table.QTable` or dict
        One row a cluster, in catalogue order: ``index``, (``host_id``, ``los_id`` for mock
        catalogues), ``ok``, ``mass``, ``mass_lo``, ``mass_hi`` (16th/84th percentiles),
        ``log_mass``, ``log_mass_std`` (dex), ``m_sigma``, ``m_sigma_evrard`` (Msun/h),
        ``sigma_v`` (km/s), ``n_members`` (galaxies in the cylinder), ``z_cluster``, ``flags``
        (comma-separated). With ``as_table=False``: ``log_mass``, ``log_mass_std``, ``sigma_v``,
        ``log_m_sigma``, ``log_m_evrard`` (float arrays), ``n``, ``z`` and ``flags`` (a
        `~astro_cnnmass.flags.FlagArray`), as returned by ``predict_packed``.

    Notes
    -----
    The result does not depend on ``chunk_size`` beyond what the network's CPU/GPU kernels
    guarantee for batches of different sizes (identical for batches of more than a few dozen
    clusters on CPU; see the performance documentation).
    """
    from tqdm.auto import tqdm

    R, v, offsets, z_all, ids = _unpack_catalog(catalog, z)
    R, v, offsets = _check_packed(R, v, offsets)
    n = offsets.size - 1
    if z_all.shape != (n,):
        raise InputError(f"z has shape {z_all.shape}, expected ({n},)")
    if chunk_size is None:
        chunk_size = getattr(estimator, "default_chunk_size", DEFAULT_CHUNK_SIZE)
    chunk_size = _check_chunk_size(chunk_size)
    out: dict[str, Any] = {k: np.full(n, np.nan) for k in RESULT_FLOATS}
    out["n"] = np.zeros(n, dtype=np.int64)
    out["z"] = z_all
    flag_bits = np.zeros(n, dtype=np.uint16)
    # with the torch backend the cut runs on the device, inside predict_packed
    on_device = getattr(estimator, "backend", "numpy") == "torch"
    cut_here = not (cylinder_already_applied or on_device)
    cylinder = estimator.cylinder if cut_here else None

    def one_chunk(chunk: PackedChunk) -> tuple[PackedChunk, dict[str, Any]]:
        res = estimator.predict_packed(
            chunk.R,
            chunk.v,
            chunk.offsets,
            chunk.z,
            chunk_size=max(chunk.n_clusters, 1),
            apply_cylinder=on_device and not cylinder_already_applied,
        )
        return chunk, res

    # CPU: a few chunks at once, one torch thread each (batch.threads); the device path: one
    workers = 1 if on_device else getattr(estimator, "host_workers", None)
    if workers != 1 and hasattr(estimator, "_prepare_threads"):
        estimator._prepare_threads()
    chunks = iter_chunks(R, v, offsets, chunk_size, z=z_all, cylinder=cylinder)
    with tqdm(total=n, disable=not progress, unit="cluster", desc="masses") as bar:
        for chunk, res in map_in_threads(one_chunk, chunks, workers):
            sl = slice(chunk.start, chunk.stop)
            for key in (*RESULT_FLOATS, "n"):
                out[key][sl] = res[key]
            for key in OPTIONAL_FLOATS:
                if key in res:
                    out.setdefault(key, np.full(n, np.nan))[sl] = res[key]
            flag_bits[sl] = res["flags"].bits
            bar.update(chunk.n_clusters)
    out["flags"] = FlagArray(flag_bits)
    out.update(ids)
    if not as_table:
        return out
    return results_table(out, method=estimator.method, ids=ids)


def results_table(
    res: dict[str, Any], *, method: str, ids: dict[str, np.ndarray] | None = None
) -> QTable:
    """Per-cluster QTable from the arrays of ``predict_packed`` (plus ``z``).

    Parameters
    ----------
    res : dict
        ``log_mass``, ``log_mass_std``, ``sigma_v``, ``log_m_sigma``, ``log_m_evrard``
        (dex, km/s), ``n``, ``z`` and ``flags`` (a `~astro_cnnmass.flags.FlagArray`, or one
        string or list of str a row).
    method : str
        Name of the method (``estimator.method``), stored in ``meta``.
    ids : dict of ndarray, optional
        Identifier columns placed after ``index`` (e.g. ``host_id``, ``los_id``).

    Returns
    -------
    `~astropy.table.QTable`
    """
    mu = np.asarray(res["log_mass"], dtype=float)
    sd = np.asarray(res["log_mass_std"], dtype=float)
    n = mu.size
    with np.errstate(invalid="ignore"):
        has_sd = np.isfinite(mu) & np.isfinite(sd) & (sd > 0)
    z16 = norm.ppf(0.16)
    lo = np.where(has_sd, 10 ** np.where(has_sd, mu + z16 * sd, 0.0), np.nan)
    hi = np.where(has_sd, 10 ** np.where(has_sd, mu - z16 * sd, 0.0), np.nan)
    table = QTable()
    table["index"] = np.arange(n)
    for key, col in (ids or {}).items():
        table[key] = col
    table["ok"] = np.isfinite(mu)
    table["mass"] = 10**mu * MSUN_H
    table["mass_lo"] = lo * MSUN_H
    table["mass_hi"] = hi * MSUN_H
    table["log_mass"] = mu
    table["log_mass_std"] = sd
    table["m_sigma"] = 10 ** np.asarray(res["log_m_sigma"], dtype=float) * MSUN_H
    table["m_sigma_evrard"] = 10 ** np.asarray(res["log_m_evrard"], dtype=float) * MSUN_H
    table["sigma_v"] = np.asarray(res["sigma_v"], dtype=float) * _KMS
    table["n_members"] = np.asarray(res["n"], dtype=np.int64)
    table["z_cluster"] = np.asarray(res["z"], dtype=float)
    for key in OPTIONAL_FLOATS:
        if key in res:
            table[key] = np.asarray(res[key], dtype=float)
    flags = res["flags"]
    if isinstance(flags, FlagArray):
        table["flags"] = flags.joined()
    else:  # one string or list of names a row (records of the distributed path)
        table["flags"] = (
            np.array([f if isinstance(f, str) else ",".join(f) for f in flags], dtype=str)
            if n
            else np.zeros(0, dtype=str)
        )
    table.meta["mass_definition"] = "M200c"
    table.meta["method"] = method
    return table
