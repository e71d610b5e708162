"""Phase spaces of a whole batch at once, as packed arrays (the table front end of a batch).

:func:`packed_phase_spaces` turns the member table of a
`~astro_cnnmass.DynamicalMassEstimator.estimate_many` batch (grouped and checked by
:func:`~astro_cnnmass.observe.batch_tables.plan_batch`) into one set of packed per-galaxy arrays
(R in physical Mpc/h, v in km/s, cluster offsets) and per-cluster arrays (redshift, centre, how
they were found), a :class:`PackedPhaseSpaces`. It is the batch form of
:func:`~astro_cnnmass.phase_space`, with the same numbers (the radii to ~1e-13 relative in
blocks of 1024 clusters or more, whose angular-diameter distances are interpolated from
astropy's):

* every cluster whose centre and redshift come from the cluster table is converted together with
  all the others: one read of the member columns, the usable galaxies of each cluster chosen as
  :func:`~astro_cnnmass.observe.columns.usable_rows` does (finite position and redshift, the
  first of exact duplicates), the angular separations from the centres in one
  `~astropy.coordinates.SkyCoord.separation` call, the angular-diameter distances of all
  cluster redshifts from astropy (:func:`angular_diameter_distances_mpc`), and
  v = c (z - z_cl) / (1 + z_cl);
* a cluster whose centre or redshift must be estimated from its galaxies (an iterative fit), or
  that cannot be measured, goes through
  :func:`~astro_cnnmass.observe.batch_tables.batch_phase_spaces` on its own, exactly as before,
  and its reason ends up in ``errors``.

No per-cluster astropy object is made for the clusters converted together, which is what made a
table batch slow (about 5 ms a cluster, against ~10 µs here).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from ..exceptions import AstroCnnmassWarning, InputError
from .batch_tables import BatchPlan, batch_phase_spaces
from .columns import Z_GALAXY_RANGE
from .phase_space import MPC_H, Z_CLUSTER_MAX, PhaseSpace, _read_members, _velocities_kms

__all__ = ["PackedPhaseSpaces", "angular_diameter_distances_mpc", "packed_phase_spaces"]

_KMS = u.km / u.s

#: Finite redshifts from which :func:`angular_diameter_distances_mpc` interpolates astropy's
#: distances instead of integrating every one.
DISTANCE_INTERPOLATION_MIN = 1024

# degrees of the Chebyshev series tried in turn, and the largest relative error it may have at
# the checks (astropy's own values scatter by ~1e-14 between neighbouring redshifts)
_DISTANCE_DEGREES = (12, 24, 48)
_DISTANCE_RTOL = 1e-13


def angular_diameter_distances_mpc(cosmology: Any, z: Any) -> np.ndarray:
    """Angular-diameter distances [Mpc] of many redshifts, astropy's to 1e-13 relative.

    astropy integrates each redshift on its own (one ``scipy.integrate.quad`` a cluster for a
    cosmology with massive neutrinos such as Planck18, ~15 µs each: 1.4 s for 10^5 clusters).
    From ``DISTANCE_INTERPOLATION_MIN`` (1024) finite redshifts on, the distance is a Chebyshev
    series (:meth:`numpy.polynomial.chebyshev.Chebyshev.interpolate`) through astropy's values
    at the Chebyshev points of [min z, max z], of degree 12, else 24, else 48: the first whose
    values at 16 of the redshifts themselves (the smallest, the largest and 14 spread between)
    are astropy's to 1e-13 relative. If none is, every redshift is integrated by astropy.

    Parameters
    ----------
    cosmology : `~astropy.cosmology.Cosmology`
    z : array-like of float
        Redshifts (NaN gives NaN).

    Returns
    -------
    ndarray of float
        Angular-diameter distances in Mpc, the shape of ``z``.
    """

    def exact(zz: np.ndarray) -> np.ndarray:
        return np.asarray(cosmology.angular_diameter_distance(zz).to_value(u.Mpc), dtype=float)

    z = np.asarray(z, dtype=float)
    finite = np.isfinite(z)
    zf = z[finite]
    if zf.size < DISTANCE_INTERPOLATION_MIN or not 0 < zf.min() < zf.max():
        return exact(z) if z.size else np.zeros(z.shape)
    checks = np.unique(
        np.concatenate([[zf.argmin(), zf.argmax()], np.linspace(0, zf.size - 1, 14).astype(int)])
    )
    ref = exact(zf[checks])
    domain = [float(zf.min()), float(zf.max())]
    values = None
    for degree in _DISTANCE_DEGREES:
        # the series of D_A / z (smooth and far from 0 at z -> 0), so that its relative error
        # is that of D_A everywhere
        series = np.polynomial.Chebyshev.interpolate(
            lambda zz: exact(zz) / zz, degree, domain=domain
        )
        if np.all(np.abs(zf[checks] * series(zf[checks]) - ref) <= _DISTANCE_RTOL * np.abs(ref)):
            values = zf * series(zf)
            break
    out = np.full(z.shape, np.nan)
    out[finite] = exact(zf) if values is None else values
    return out


@dataclass
class PackedPhaseSpaces:
    """The projected phase spaces of a batch of clusters, packed.

    Attributes
    ----------
    R, v : ndarray of float64
        Projected radii (physical Mpc/h) and rest-frame velocities (km/s) of every usable
        galaxy, cluster after cluster (no cylinder cut yet).
    offsets : ndarray of int64, shape (n + 1,)
        Cluster ``k`` is ``slice(offsets[k], offsets[k + 1])`` (empty where ``built[k]`` is
        False).
    index : ndarray of int64
        Row of each galaxy among its cluster's member rows (``PhaseSpace.index``).
    built : ndarray of bool, shape (n,)
        Whether the cluster has a phase space (else its reason is in ``errors``).
    z_cluster : ndarray of float64
        Cluster redshifts used (NaN where not built).
    center_lon, center_lat : ndarray of float64
        Centre used, degrees in the centre's frame (ICRS for table batches); NaN where none.
    center_estimated, z_cluster_estimated, center_converged, z_cluster_converged : ndarray of bool
    center_iterations, z_cluster_iterations : ndarray of int64
        How the centre and redshift were found (see `~astro_cnnmass.PhaseSpace`).
    cosmologies : list
        Cosmology of each cluster's conversion (None where not built).
    errors : list of str
        Why a cluster has no phase space (empty where it has one).
    objects : list of PhaseSpace or None
        The phase-space objects where they exist already (clusters built one by one, or the
        input of :meth:`from_phase_spaces`); None for the clusters converted together (see
        :meth:`phase_space`).
    """

    R: np.ndarray
    v: np.ndarray
    offsets: np.ndarray
    index: np.ndarray
    built: np.ndarray
    z_cluster: np.ndarray
    center_lon: np.ndarray
    center_lat: np.ndarray
    center_estimated: np.ndarray
    z_cluster_estimated: np.ndarray
    center_iterations: np.ndarray
    z_cluster_iterations: np.ndarray
    center_converged: np.ndarray
    z_cluster_converged: np.ndarray
    cosmologies: list
    errors: list
    objects: list

    def __len__(self) -> int:
        return self.built.size

    def phase_space(self, k: int) -> PhaseSpace | None:
        """Cluster ``k`` as a `~astro_cnnmass.PhaseSpace` (made on demand), or None."""
        if self.objects[k] is not None or not self.built[k]:
            return self.objects[k]
        s = slice(self.offsets[k], self.offsets[k + 1])
        center = None
        if np.isfinite(self.center_lon[k]):
            center = SkyCoord(self.center_lon[k] * u.deg, self.center_lat[k] * u.deg)
        return PhaseSpace(
            R=self.R[s] * MPC_H,
            v=self.v[s] * _KMS,
            index=self.index[s],
            z_cluster=float(self.z_cluster[k]),
            center=center,
            cosmology=self.cosmologies[k],
            z_cluster_estimated=bool(self.z_cluster_estimated[k]),
            center_estimated=bool(self.center_estimated[k]),
            z_cluster_iterations=int(self.z_cluster_iterations[k]),
            center_iterations=int(self.center_iterations[k]),
            z_cluster_converged=bool(self.z_cluster_converged[k]),
            center_converged=bool(self.center_converged[k]),
        )

    @classmethod
    def from_phase_spaces(
        cls, phase_spaces: list[PhaseSpace | None], errors: list[str] | None = None
    ) -> PackedPhaseSpaces:
        """Pack ready phase spaces (None: a cluster without one, its reason in ``errors``)."""
        n = len(phase_spaces)
        errors = [""] * n if errors is None else list(errors)
        counts = np.array([0 if ps is None else len(ps) for ps in phase_spaces], dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        built_ps = [ps for ps in phase_spaces if ps is not None]

        def cat(get, dtype=float):
            parts = [np.asarray(get(ps), dtype=dtype) for ps in built_ps]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        def per_cluster(get, fill, dtype):
            return np.array([fill if ps is None else get(ps) for ps in phase_spaces], dtype=dtype)

        def lon_lat(ps):
            if ps is None or ps.center is None:
                return np.nan, np.nan
            sph = ps.center.spherical
            return float(sph.lon.deg), float(sph.lat.deg)

        centers = np.array([lon_lat(ps) for ps in phase_spaces], dtype=float).reshape(n, 2)

        return cls(
            R=cat(lambda ps: ps.R.to_value(MPC_H)),
            v=cat(lambda ps: ps.v.to_value(_KMS)),
            offsets=offsets,
            index=cat(lambda ps: ps.index, np.int64),
            built=np.array([ps is not None for ps in phase_spaces], dtype=bool),
            z_cluster=per_cluster(lambda ps: ps.z_cluster, np.nan, float),
            center_lon=centers[:, 0].copy(),
            center_lat=centers[:, 1].copy(),
            center_estimated=per_cluster(lambda ps: ps.center_estimated, False, bool),
            z_cluster_estimated=per_cluster(lambda ps: ps.z_cluster_estimated, False, bool),
            center_iterations=per_cluster(lambda ps: ps.center_iterations, 0, np.int64),
            z_cluster_iterations=per_cluster(lambda ps: ps.z_cluster_iterations, 0, np.int64),
            center_converged=per_cluster(lambda ps: ps.center_converged, False, bool),
            z_cluster_converged=per_cluster(lambda ps: ps.z_cluster_converged, False, bool),
            cosmologies=[None if ps is None else ps.cosmology for ps in phase_spaces],
            errors=errors,
            objects=list(phase_spaces),
        )


def _first_occurrences(owner: np.ndarray, *columns: np.ndarray) -> np.ndarray:
    """Mask of the rows that are not an exact repeat of an earlier row of the same owner.

    The same rule as :func:`~astro_cnnmass.observe.columns.usable_rows` (``numpy.unique`` over
    the rows, first occurrence kept), found through a 64-bit hash of the rows so that only the
    rows whose hash repeats are compared exactly.
    """
    n = owner.size
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    h = owner.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for k, col in enumerate(columns):
        bits = (np.asarray(col, dtype=np.float64) + 0.0).view(np.uint64)  # -0.0 -> 0.0
        h ^= (bits + np.uint64(k + 1)) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
    order = np.argsort(h, kind="stable")
    repeat = h[order][1:] == h[order][:-1]
    if not repeat.any():
        return keep
    cand = np.unique(np.concatenate([order[1:][repeat], order[:-1][repeat]]))
    rows = np.column_stack([owner[cand].astype(np.float64), *(c[cand] for c in columns)])
    _, first = np.unique(rows, axis=0, return_index=True)
    dup = np.ones(cand.size, dtype=bool)
    dup[first] = False
    keep[cand[dup]] = False
    return keep


def packed_phase_spaces(
    plan: BatchPlan,
    members: Any,
    *,
    cosmology: Any = None,
    columns: tuple[str, str, str] = ("ra", "dec", "z"),
    progress: bool = False,
) -> PackedPhaseSpaces:
    """The phase space of every cluster of a batch plan, packed (see the module docstring).

    Parameters
    ----------
    plan : `~astro_cnnmass.observe.batch_tables.BatchPlan`
        From :func:`~astro_cnnmass.observe.batch_tables.plan_batch`.
    members : `~astropy.table.Table`
        The member table the plan was made from.
    cosmology : `~astropy.cosmology.Cosmology`, optional
        Default Planck18.
    columns : (str, str, str)
        ``ra_column``, ``dec_column``, ``z_column``.
    progress : bool
        Show a tqdm progress bar ("phase spaces", clusters).

    Returns
    -------
    PackedPhaseSpaces
        One entry a cluster of ``plan``, in its order.
    """
    from astropy.cosmology import Cosmology, Planck18

    if cosmology is None:
        cosmology = Planck18
    if not isinstance(cosmology, Cosmology):  # the whole batch would fail: say it once
        raise InputError(f"cosmology must be an astropy Cosmology, got {type(cosmology).__name__}")
    n = len(plan.ids)
    # the plan's redshifts are floats already (redshift_values); the range is that of
    # _check_z_cluster, and a cluster outside it gets its error from phase_space() below
    z_direct = np.array([np.nan if zc is None else zc for zc in plan.redshifts], dtype=float)
    sizes = np.array([r.size for r in plan.rows], dtype=np.int64)
    with np.errstate(invalid="ignore"):
        direct = (
            np.array([not e for e in plan.errors], dtype=bool)
            & (sizes > 0)
            & np.isfinite(plan.center_deg).all(axis=1)
            & np.isfinite(z_direct)
            & (z_direct > 0.0)
            & (z_direct <= Z_CLUSTER_MAX)
        )
    from tqdm.auto import tqdm

    with tqdm(total=n, desc="phase spaces", unit="cluster", disable=not progress) as bar:
        fast = _convert_together(plan, members, cosmology, columns, direct, z_direct)
        bar.update(int(fast["done"].sum()))
        # the others one by one, exactly as phase_space() does it
        slow = np.flatnonzero(~fast["done"])
        sub_plan = BatchPlan(
            ids=[plan.ids[k] for k in slow],
            rows=[plan.rows[k] for k in slow],
            center_deg=plan.center_deg[slow],
            redshifts=[plan.redshifts[k] for k in slow],
            errors=[plan.errors[k] for k in slow],
        )
        objects, slow_errors = batch_phase_spaces(
            sub_plan, members, cosmology=cosmology, columns=columns, progress=_ticks(bar, slow.size)
        )
    return _merge(n, fast, slow, objects, slow_errors, cosmology)


def _ticks(bar: Any, n: int):
    """range(n), advancing ``bar`` by one a step."""
    for k in range(n):
        yield k
        bar.update(1)


#: Galaxies converted together per block (bounds the temporaries of a table batch to ~0.3 GB).
BLOCK_GALAXIES = 1 << 19


def _convert_together(plan, members, cosmology, columns, direct, z_direct) -> dict[str, Any]:
    """Galaxies of the ``direct`` clusters converted in blocks; ``done`` marks the clusters."""
    n = len(plan.ids)
    out: dict[str, Any] = {"done": np.zeros(n, dtype=bool)}
    ks_all = np.flatnonzero(direct)
    if ks_all.size == 0:
        return out
    sizes = np.array([plan.rows[k].size for k in ks_all], dtype=np.int64)
    block = np.cumsum(sizes) // BLOCK_GALAXIES  # block of each cluster
    # the per-galaxy results go straight into arrays sized for every galaxy of the direct
    # clusters (an upper bound: duplicates and unusable rows are dropped), so that no second,
    # concatenated copy is made; the unused tail is never written (nor resident)
    total = int(sizes.sum())
    galaxies = {"R": np.empty(total), "v": np.empty(total), "index": np.empty(total, np.int64)}
    filled = 0
    parts = []
    for b in np.unique(block):
        part = _convert_block(plan, members, cosmology, columns, ks_all[block == b], z_direct)
        if part is None:
            continue
        m = part["R"].size
        for key, arr in galaxies.items():
            arr[filled : filled + m] = part.pop(key)
        filled += m
        parts.append(part)
    if not parts:
        return out
    cat = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    cat.update({key: arr[:filled] for key, arr in galaxies.items()})
    out["done"][cat["ks"]] = True
    out.update(cat)
    return out


def _convert_block(plan, members, cosmology, columns, ks, z_direct) -> dict[str, Any] | None:
    """One block of clusters converted at once (None: the block is left to the one-by-one path)."""
    ra_column, dec_column, z_column = columns
    sizes = np.array([plan.rows[k].size for k in ks], dtype=np.int64)
    rows = np.concatenate([plan.rows[k] for k in ks])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstroCnnmassWarning)
            coords, z_gal = _read_members(members[rows], None, ra_column, dec_column, z_column)
    except Exception:  # a conversion problem: these clusters on their own
        return None
    sph = coords.spherical
    lon, lat = sph.lon.deg, sph.lat.deg
    owner = np.repeat(np.arange(ks.size), sizes)
    local = _ranks(sizes)  # row within the cluster's member rows, as PhaseSpace.index
    finite = np.isfinite(z_gal)
    absurd = finite & ((z_gal <= Z_GALAXY_RANGE[0]) | (z_gal > Z_GALAXY_RANGE[1]))
    # clusters with an absurd redshift or no usable galaxy raise in phase_space(): not here
    ok_cluster = (np.bincount(owner[absurd], minlength=ks.size) == 0) & (
        np.bincount(owner[finite], minlength=ks.size) > 0
    )
    if not ok_cluster.any():
        return None
    use = finite & ok_cluster[owner]
    first = _first_occurrences(owner[use], lon[use], lat[use], z_gal[use])
    keep = np.flatnonzero(use)[first]
    sel, owner, z_gal, local = keep, owner[keep], z_gal[keep], local[keep]
    ks, kept = ks[ok_cluster], np.flatnonzero(ok_cluster)
    remap = np.full(ok_cluster.size, -1, dtype=np.int64)
    remap[kept] = np.arange(kept.size)
    owner = remap[owner]
    z_cl = z_direct[ks]
    lon_c, lat_c = plan.center_deg[ks, 0], plan.center_deg[ks, 1]
    centers = SkyCoord(lon_c[owner] * u.deg, lat_c[owner] * u.deg)
    theta = centers.separation(coords[sel]).to_value(u.rad)
    mpch_per_rad = angular_diameter_distances_mpc(cosmology, z_cl) * cosmology.h
    return {
        "ks": ks,
        "R": theta * np.asarray(mpch_per_rad)[owner],
        "v": _velocities_kms(z_gal, z_cl[owner]),
        "index": local,
        "counts": np.bincount(owner, minlength=ks.size),
        "z_cluster": z_cl,
        "lon": lon_c,
        "lat": lat_c,
    }


def _merge(n, fast, slow, objects, slow_errors, cosmology) -> PackedPhaseSpaces:
    """One PackedPhaseSpaces from the clusters converted together and those built one by one."""
    one_by_one = PackedPhaseSpaces.from_phase_spaces(objects, slow_errors)
    counts = np.zeros(n, dtype=np.int64)
    counts[slow] = np.diff(one_by_one.offsets)
    ks = fast.get("ks", np.zeros(0, dtype=np.int64))
    counts[ks] = fast["counts"] if ks.size else 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if slow.size == 0 and ks.size:
        # every cluster converted together, in order: the galaxies are in place already
        R, v, index = fast["R"], fast["v"], fast["index"]
    else:
        total = int(offsets[-1])
        R, v = np.empty(total), np.empty(total)
        index = np.empty(total, dtype=np.int64)
        src_slow = np.repeat(offsets[slow], counts[slow]) + _ranks(counts[slow])
        R[src_slow], v[src_slow], index[src_slow] = one_by_one.R, one_by_one.v, one_by_one.index
        if ks.size:
            dst = np.repeat(offsets[ks], counts[ks]) + _ranks(counts[ks])
            R[dst], v[dst], index[dst] = fast["R"], fast["v"], fast["index"]

    def field(name, fill, dtype, fast_value=None):
        arr = np.full(n, fill, dtype=dtype)
        arr[slow] = getattr(one_by_one, name)
        if ks.size:
            arr[ks] = fill if fast_value is None else fast_value
        return arr

    built = field("built", False, bool, True)
    cosmologies: list = [None] * n
    objs: list = [None] * n
    errors = [""] * n
    for j, k in enumerate(slow):
        cosmologies[k] = one_by_one.cosmologies[j]
        objs[k] = one_by_one.objects[j]
        errors[k] = one_by_one.errors[j]
    for k in ks:
        cosmologies[k] = cosmology
    return PackedPhaseSpaces(
        R=R,
        v=v,
        offsets=offsets,
        index=index,
        built=built,
        z_cluster=field("z_cluster", np.nan, float, fast.get("z_cluster")),
        center_lon=field("center_lon", np.nan, float, fast.get("lon")),
        center_lat=field("center_lat", np.nan, float, fast.get("lat")),
        center_estimated=field("center_estimated", False, bool, False),
        z_cluster_estimated=field("z_cluster_estimated", False, bool, False),
        center_iterations=field("center_iterations", 0, np.int64, 0),
        z_cluster_iterations=field("z_cluster_iterations", 0, np.int64, 0),
        center_converged=field("center_converged", False, bool, True),
        z_cluster_converged=field("z_cluster_converged", False, bool, True),
        cosmologies=cosmologies,
        errors=errors,
        objects=objs,
    )


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., c - 1 for each count c, concatenated."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts
