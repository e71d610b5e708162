"""From galaxy member lists to the projected phase space of a cluster.

The projected phase space of a cluster is the set of (R, v) pairs of the galaxies around it:

* ``R``: the projected distance from the cluster centre in **physical** (proper) Mpc/h at the
  cluster redshift, ``R = D_A(z_cl) * theta`` with the angular-diameter distance of the given
  cosmology and ``h`` taken from that cosmology;
* ``v``: the line-of-sight velocity in the cluster rest frame in km/s,
  ``v = c (z_gal - z_cl) / (1 + z_cl)`` (e.g. Harrison 1974, ApJ 191, L51; Danese, de Zotti &
  di Tullio 1980, A&A 82, 322).

The *cylinder* is the selection ``R < aperture`` and ``|v| < v_cut`` used by Ho et al. 2019
(arXiv:1902.05950). :func:`cylinder_mask` is the single definition used on both the training side
(mock catalogues) and the observation side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
from astropy.constants import c as speed_of_light
from astropy.coordinates import SkyCoord
from astropy.cosmology import Cosmology
from astropy.stats import biweight_location
from astropy.table import QTable, Table
from astropy.utils.masked import Masked

from ..exceptions import InputError
from .columns import Z_GALAXY_RANGE as _Z_GALAXY_RANGE  # noqa: F401 (kept for importers)
from .columns import angle_values, float_values, redshift_values, usable_rows, warn_if_hours

__all__ = [
    "MPC_H",
    "Cylinder",
    "PhaseSpace",
    "cylinder_mask",
    "estimate_center",
    "estimate_redshift",
    "phase_space",
]

#: Unit of projected radii: physical Mpc/h.
MPC_H = u.Mpc / cu.littleh
C_KMS = speed_of_light.to_value(u.km / u.s)
#: Largest cluster redshift a phase space is made for (the range is (0, Z_CLUSTER_MAX]).
Z_CLUSTER_MAX = 5.0


def cylinder_mask(
    R_mpch: np.ndarray, v_kms: np.ndarray, aperture_mpch: float, v_cut_kms: float
) -> np.ndarray:
    """Boolean mask of the galaxies inside a phase-space cylinder.

    This is the one definition of the cylinder used by the whole package (training mocks and
    observations alike): ``R < aperture`` and ``|v| < v_cut``, both strict.

    Parameters
    ----------
    R_mpch : array-like
        Projected radii in physical Mpc/h (plain floats).
    v_kms : array-like
        Line-of-sight velocities in the cluster rest frame, km/s (plain floats).
    aperture_mpch : float
        Aperture radius in physical Mpc/h.
    v_cut_kms : float
        Half-width of the velocity window, km/s.

    Returns
    -------
    mask : ndarray of bool
        True for galaxies inside the cylinder. NaN inputs are outside.
    """
    R = np.asarray(R_mpch, dtype=float)
    v = np.asarray(v_kms, dtype=float)
    return (R < aperture_mpch) & (np.abs(v) < v_cut_kms)


def _as_quantity(value: Any, unit: u.UnitBase, name: str, equivalencies=()) -> u.Quantity:
    """Convert ``value`` to ``unit``; plain numbers are refused with a clear message."""
    if not isinstance(value, u.Quantity):
        raise InputError(f"{name} must be an astropy Quantity with units of {unit}, got {value!r}")
    try:
        return value.to(unit, equivalencies=equivalencies)
    except u.UnitConversionError as exc:
        raise InputError(f"{name} must have units convertible to {unit}, got {value.unit}") from exc


@dataclass(frozen=True)
class Cylinder:
    """A cylinder in projected phase space: ``R < aperture`` and ``|v| < v_cut``.

    Parameters
    ----------
    aperture : `~astropy.units.Quantity`
        Aperture radius, physical Mpc/h (default 1.6 Mpc/h).
    v_cut : `~astropy.units.Quantity`
        Half-width of the velocity window in km/s (default 2200 km/s).

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_cnnmass.observe.phase_space import Cylinder, MPC_H
    >>> cyl = Cylinder(1.6 * MPC_H, 2200 * u.km / u.s)
    >>> cyl.mask([0.5, 2.0, 1.0] * MPC_H, [100.0, 0.0, -3000.0] * u.km / u.s)
    array([ True, False, False])
    """

    aperture: u.Quantity = field(default_factory=lambda: 1.6 * MPC_H)
    v_cut: u.Quantity = field(default_factory=lambda: 2200.0 * u.km / u.s)

    def __post_init__(self) -> None:
        aperture = _as_quantity(self.aperture, MPC_H, "aperture")
        v_cut = _as_quantity(self.v_cut, u.km / u.s, "v_cut")
        if not (np.isfinite(aperture.value) and aperture.value > 0):
            raise InputError(f"aperture must be positive and finite, got {aperture}")
        if not (np.isfinite(v_cut.value) and v_cut.value > 0):
            raise InputError(f"v_cut must be positive and finite, got {v_cut}")
        object.__setattr__(self, "aperture", aperture)
        object.__setattr__(self, "v_cut", v_cut)

    @property
    def aperture_mpch(self) -> float:
        """Aperture in physical Mpc/h as a float."""
        return float(self.aperture.value)

    @property
    def v_cut_kms(self) -> float:
        """Velocity half-width in km/s as a float."""
        return float(self.v_cut.value)

    def mask(self, R: u.Quantity, v: u.Quantity) -> np.ndarray:
        """Boolean mask of the galaxies inside the cylinder.

        Parameters
        ----------
        R : `~astropy.units.Quantity`
            Projected radii, physical Mpc/h.
        v : `~astropy.units.Quantity`
            Line-of-sight velocities, km/s.
        """
        R_mpch = _as_quantity(R, MPC_H, "R").value
        v_kms = _as_quantity(v, u.km / u.s, "v").value
        return cylinder_mask(R_mpch, v_kms, self.aperture_mpch, self.v_cut_kms)

    def to_dict(self) -> dict[str, float]:
        """Plain-float form ``{"aperture_mpch": ..., "v_cut_kms": ...}`` (as stored in models)."""
        return {"aperture_mpch": self.aperture_mpch, "v_cut_kms": self.v_cut_kms}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Cylinder:
        """Inverse of :meth:`to_dict`; unknown keys raise `~astro_cnnmass.InputError`."""
        unknown = set(d) - {"aperture_mpch", "v_cut_kms"}
        if unknown:
            raise InputError(f"unknown cylinder keys {sorted(unknown)}")
        return cls(d["aperture_mpch"] * MPC_H, d["v_cut_kms"] * u.km / u.s)


@dataclass(frozen=True)
class PhaseSpace:
    """Projected phase space of one cluster.

    Attributes
    ----------
    R : `~astropy.units.Quantity`
        Projected radii, physical Mpc/h.
    v : `~astropy.units.Quantity`
        Line-of-sight velocities in the cluster rest frame, km/s.
    index : ndarray of int
        Row of each galaxy in the input member list.
    z_cluster : float
        Cluster redshift used for the conversion.
    center : `~astropy.coordinates.SkyCoord` or None
        Cluster centre used (None when the phase space was given directly).
    cosmology : `~astropy.cosmology.Cosmology` or None
        Cosmology used for the conversion.
    z_cluster_estimated, center_estimated : bool
        Whether the redshift / centre were estimated from the galaxies.
    z_cluster_iterations, center_iterations : int
        Iterations the estimate of the redshift (both passes: all galaxies, then those near the
        centre) / of the centre took; 0 when the value was given.
    z_cluster_converged, center_converged : bool
        Whether those iterations converged (the redshift moved by less than 1 km/s, the centre
        by less than 1 kpc/h) before ``max_iter`` or running out of galaxies; True when the
        value was given.
    """

    R: u.Quantity
    v: u.Quantity
    index: np.ndarray
    z_cluster: float
    center: SkyCoord | None = None
    cosmology: Cosmology | None = None
    z_cluster_estimated: bool = False
    center_estimated: bool = False
    z_cluster_iterations: int = 0
    center_iterations: int = 0
    z_cluster_converged: bool = True
    center_converged: bool = True

    def __len__(self) -> int:
        return len(self.index)

    def cylinder_mask(self, cylinder: Cylinder | None = None) -> np.ndarray:
        """Mask of the galaxies inside ``cylinder`` (default: `Cylinder()`)."""
        cylinder = Cylinder() if cylinder is None else cylinder
        return cylinder.mask(self.R, self.v)

    def in_cylinder(self, cylinder: Cylinder | None = None) -> PhaseSpace:
        """The subset of galaxies inside ``cylinder`` (default: `Cylinder()`), same metadata."""
        return self[self.cylinder_mask(cylinder)]

    def __getitem__(self, item) -> PhaseSpace:
        return replace(self, R=self.R[item], v=self.v[item], index=self.index[item])

    def to_table(self) -> QTable:
        """A QTable with columns ``index``, ``R`` and ``v``."""
        return QTable({"index": self.index, "R": self.R, "v": self.v})


def _velocities_kms(z: np.ndarray, z_cluster: float) -> np.ndarray:
    """Rest-frame line-of-sight velocity c (z - z_cl) / (1 + z_cl) in km/s."""
    return C_KMS * (z - z_cluster) / (1.0 + z_cluster)


def _tangent_offsets(coords: SkyCoord, center: SkyCoord) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic-frame offsets (radians) of ``coords`` around ``center``."""
    frame = center.skyoffset_frame()
    off = coords.transform_to(frame)
    return off.lon.to_value(u.rad), off.lat.to_value(u.rad)


def estimate_redshift(
    z: np.ndarray,
    *,
    window: u.Quantity = 3000 * u.km / u.s,
    z_start: float | None = None,
    max_iter: int = 50,
    return_info: bool = False,
) -> float | tuple[float, int, bool]:
    """Cluster redshift as the biweight location of the galaxies inside a velocity window.

    Starting from the median redshift (or ``z_start``), the galaxies with
    ``|c (z - z_cl) / (1 + z_cl)| < window`` are selected and ``z_cl`` is replaced by the
    biweight location (Beers, Flynn & Gebhardt 1990, AJ 100, 32) of their redshifts, until it
    changes by less than 1 km/s.

    Parameters
    ----------
    z : array-like
        Galaxy redshifts (dimensionless).
    window : `~astropy.units.Quantity`
        Velocity half-width of the selection window, km/s.
    z_start : float, optional
        Starting guess; default the median redshift.
    max_iter : int
        Maximum number of iterations.
    return_info : bool
        Also return the number of iterations and whether they converged.

    Returns
    -------
    z_cluster : float
        The cluster redshift; with ``return_info``, the tuple
        ``(z_cluster, n_iterations, converged)``.
    """
    z = np.asarray(z, dtype=float)
    z = z[np.isfinite(z)]
    if z.size < 3:
        raise InputError(f"need at least 3 finite redshifts to estimate z_cluster, got {z.size}")
    window_kms = _as_quantity(window, u.km / u.s, "window").value
    z_cl = float(np.median(z)) if z_start is None else float(z_start)
    for n_iter in range(1, max_iter + 1):
        sel = np.abs(_velocities_kms(z, z_cl)) < window_kms
        if sel.sum() < 3:
            raise InputError(
                "fewer than 3 galaxies within the velocity window while estimating z_cluster"
            )
        z_new = float(biweight_location(z[sel]))
        if abs(_velocities_kms(np.array(z_new), z_cl)) < 1.0:
            return (z_new, n_iter, True) if return_info else z_new
        z_cl = z_new
    return (z_cl, max_iter, False) if return_info else z_cl


def estimate_center(
    coords: SkyCoord,
    z: np.ndarray,
    z_cluster: float,
    cosmology: Cosmology,
    *,
    radius: u.Quantity = 1.0 * MPC_H,
    window: u.Quantity = 3000 * u.km / u.s,
    max_iter: int = 50,
    return_info: bool = False,
) -> SkyCoord | tuple[SkyCoord, int, bool]:
    """Cluster centre as the iterated biweight location of galaxy positions.

    The method: start at the biweight location (in a tangent plane) of all galaxies within
    ``|v| < window``; then repeatedly take the biweight location of the galaxies within
    ``radius`` (physical Mpc/h) of the current centre and inside the velocity window, until the
    centre moves by less than 1 kpc/h. The biweight (Beers et al. 1990, AJ 100, 32) keeps the
    centre robust against outliers and against the asymmetric background.

    Parameters
    ----------
    coords : `~astropy.coordinates.SkyCoord`
        Galaxy positions.
    z : array-like
        Galaxy redshifts.
    z_cluster : float
        Cluster redshift.
    cosmology : `~astropy.cosmology.Cosmology`
        Cosmology for the angular scale.
    radius : `~astropy.units.Quantity`
        Radius of the centring aperture, physical Mpc/h.
    window : `~astropy.units.Quantity`
        Velocity window, km/s.
    max_iter : int
        Maximum number of iterations.
    return_info : bool
        Also return the number of iterations and whether they converged (False when
        ``max_iter`` was reached or fewer than 3 galaxies were left inside ``radius``).

    Returns
    -------
    center : `~astropy.coordinates.SkyCoord`
        The centre; with ``return_info``, the tuple ``(center, n_iterations, converged)``.
    """
    z = np.asarray(z, dtype=float)
    window_kms = _as_quantity(window, u.km / u.s, "window").value
    radius_mpch = _as_quantity(radius, MPC_H, "radius").value
    in_window = np.abs(_velocities_kms(z, z_cluster)) < window_kms
    if in_window.sum() < 3:
        raise InputError("fewer than 3 galaxies inside the velocity window: cannot find a centre")
    mpch_per_rad = _mpch_per_radian(z_cluster, cosmology)
    sel = coords[in_window]
    center = SkyCoord(
        biweight_location(sel.spherical.lon.wrap_at(sel[0].spherical.lon + 180 * u.deg).deg)
        * u.deg,
        biweight_location(sel.spherical.lat.deg) * u.deg,
        frame=coords.frame,
    )
    n_iter, converged = 0, False
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
        x, y = _tangent_offsets(sel, center)
        near = np.hypot(x, y) * mpch_per_rad < radius_mpch
        if near.sum() < 3:
            break
        dx, dy = biweight_location(x[near]), biweight_location(y[near])
        frame = center.skyoffset_frame()
        center = SkyCoord(dx * u.rad, dy * u.rad, frame=frame).transform_to(coords.frame)
        if np.hypot(dx, dy) * mpch_per_rad < 1e-3:
            converged = True
            break
    center = SkyCoord(center.spherical.lon, center.spherical.lat, frame=coords.frame)
    return (center, n_iter, converged) if return_info else center


def _mpch_per_radian(z_cluster: float, cosmology: Cosmology) -> float:
    """Physical Mpc/h subtended by one radian at ``z_cluster``: D_A(z) * h."""
    return float(cosmology.angular_diameter_distance(z_cluster).to_value(u.Mpc) * cosmology.h)


def _column(table: Table, name: str, what: str) -> Any:
    if name not in table.colnames:
        raise InputError(
            f"member table has no {what} column {name!r}; columns are {table.colnames}. "
            f"Pass the right name with the {what}_column= argument."
        )
    return table[name]


def _angle_column(col: Any, name: str) -> u.Quantity:
    """Angles [deg] of a column; plain floats are degrees; masked cells become NaN."""
    return angle_values(col, name) * u.deg


def _redshift_column(col: Any, name: str) -> np.ndarray:
    """Dimensionless redshifts of a column; masked cells become NaN."""
    return redshift_values(col, name)


def _read_members(
    members: Table | SkyCoord | None,
    redshifts: Any,
    ra_column: str,
    dec_column: str,
    z_column: str,
) -> tuple[SkyCoord, np.ndarray]:
    if isinstance(members, SkyCoord):
        if redshifts is None:
            raise InputError("with a SkyCoord member list, pass redshifts= (one per galaxy)")
        coords = members.reshape(-1) if not members.isscalar else members.reshape((1,))
        z = _redshift_column(redshifts, "redshifts")
        if z.shape != (len(coords),):
            raise InputError(
                f"redshifts has shape {z.shape}, expected ({len(coords)},) to match the SkyCoord"
            )
        return coords, z
    if isinstance(members, Table):
        if len(members) == 0:
            raise InputError("member table is empty")
        skycoord_cols = [n for n in members.colnames if isinstance(members[n], SkyCoord)]
        if ra_column not in members.colnames and skycoord_cols:
            coords = members[skycoord_cols[0]]
        else:
            ra_col = _column(members, ra_column, "ra")
            ra = _angle_column(ra_col, ra_column)
            dec = _angle_column(_column(members, dec_column, "dec"), dec_column)
            if getattr(ra_col, "unit", None) is None:
                warn_if_hours(ra.value, dec.value, ra_column)
            bad = ~(np.isfinite(ra) & np.isfinite(dec))
            ra, dec = np.where(bad, 0 * u.deg, ra), np.where(bad, 0 * u.deg, dec)
            if np.any(np.abs(dec[~bad]) > 90 * u.deg):
                raise InputError(f"column {dec_column!r} has declinations beyond +-90 deg")
            coords = SkyCoord(ra, dec, frame="icrs")
            if bad.any():
                z = _redshift_column(_column(members, z_column, "z"), z_column).copy()
                z[bad] = np.nan
                return coords, z
        z = _redshift_column(_column(members, z_column, "z"), z_column)
        return coords, z
    hint = ""
    if type(members).__module__.split(".")[0] == "pandas":
        hint = "; convert a pandas DataFrame with astropy.table.Table.from_pandas(df)"
    raise InputError(
        "members must be an astropy Table/QTable or a SkyCoord "
        f"(got {type(members).__name__}); for a ready phase space pass R= and v={hint}"
    )


def _check_z_cluster(z_cluster: Any, estimated: bool = False) -> float:
    if estimated and not (np.isfinite(z_cluster) and 0.0 < z_cluster <= Z_CLUSTER_MAX):
        raise InputError(
            f"the z_cluster estimated from the galaxies is {z_cluster}, outside (0, 5]: "
            "check the z column (masked or blank cells?) or pass z_cluster="
        )
    if isinstance(z_cluster, bool | np.bool_) or np.iscomplexobj(z_cluster):
        raise InputError(f"z_cluster must be a real number, got {z_cluster!r}")
    if isinstance(z_cluster, Masked) or np.ma.is_masked(z_cluster):
        raise InputError("z_cluster is masked; pass a number or None to estimate it")
    try:
        z_cl = float(u.Quantity(z_cluster).to_value(cu.redshift))
    except (TypeError, u.UnitConversionError) as exc:
        raise InputError(f"z_cluster must be a dimensionless number, got {z_cluster!r}") from exc
    if not (np.isfinite(z_cl) and 0.0 < z_cl <= Z_CLUSTER_MAX):
        raise InputError(f"z_cluster must be finite and in (0, 5], got {z_cl}")
    return z_cl


def phase_space(
    members: Table | SkyCoord | None = None,
    *,
    center: SkyCoord | None = None,
    z_cluster: float | None = None,
    cosmology: Cosmology | None = None,
    redshifts: Sequence[float] | np.ndarray | None = None,
    R: u.Quantity | None = None,
    v: u.Quantity | None = None,
    ra_column: str = "ra",
    dec_column: str = "dec",
    z_column: str = "z",
    nan_policy: str = "drop",
) -> PhaseSpace:
    """Projected phase space (R, v) of the galaxies around a cluster.

    Three ways to call it:

    * a member ``Table``/``QTable`` with right ascension, declination (degrees, or angle
      Quantities) and redshift columns (names set by ``ra_column``, ``dec_column``,
      ``z_column``; a SkyCoord column is used when there are no ra/dec columns);
    * a `~astropy.coordinates.SkyCoord` of galaxies plus ``redshifts=``;
    * a ready phase space: ``R=`` (physical Mpc/h, or Mpc with the cosmology's h) and ``v=``
      (km/s) Quantities with ``z_cluster=``.

    Parameters
    ----------
    members : `~astropy.table.Table`, `~astropy.coordinates.SkyCoord` or None
        The galaxies.
    center : `~astropy.coordinates.SkyCoord`, optional
        Cluster centre. If omitted it is estimated with
        :func:`~astro_cnnmass.observe.phase_space.estimate_center`.
    z_cluster : float, optional
        Cluster redshift. If omitted it is estimated with
        :func:`~astro_cnnmass.observe.phase_space.estimate_redshift`.
    cosmology : `~astropy.cosmology.Cosmology`, optional
        Cosmology for D_A and h; default `~astropy.cosmology.Planck18`.
    redshifts : array-like, optional
        Galaxy redshifts when ``members`` is a SkyCoord.
    R, v : `~astropy.units.Quantity`, optional
        A ready phase space (then ``members`` must be None).
    ra_column, dec_column, z_column : str
        Column names in the member table.
    nan_policy : {'drop', 'raise'}
        What to do with galaxies whose position or redshift is not finite: drop them with an
        `~astro_cnnmass.AstroCnnmassWarning` giving the count (default), or raise
        `~astro_cnnmass.InputError`.

    Returns
    -------
    PhaseSpace
        ``R`` in physical Mpc/h, ``v`` in km/s, ``index`` the rows of ``members``.

    Raises
    ------
    InputError
        For missing columns, wrong units, empty input, absurd redshifts, a bad centre.
    """
    if cosmology is None:
        from astropy.cosmology import Planck18

        cosmology = Planck18
    if not isinstance(cosmology, Cosmology):
        raise InputError(f"cosmology must be an astropy Cosmology, got {type(cosmology).__name__}")

    if R is not None or v is not None:
        return _direct_phase_space(members, R, v, z_cluster, cosmology, nan_policy)

    if members is None:
        raise InputError("pass a member table / SkyCoord, or R= and v=")
    coords, z_all = _read_members(members, redshifts, ra_column, dec_column, z_column)
    if len(z_all) == 0:
        raise InputError("member list is empty")
    lon, lat = coords.spherical.lon.deg, coords.spherical.lat.deg
    keep = usable_rows(z_all, nan_policy, key=np.column_stack([lon, lat, z_all]))
    if keep.size == 0:
        raise InputError("no galaxy has a finite position and redshift")
    coords, z = coords[keep], z_all[keep]

    z_estimated = z_cluster is None
    center_estimated = center is None
    if center is not None and not isinstance(center, SkyCoord):
        raise InputError(f"center must be a SkyCoord, got {type(center).__name__}")
    if center is not None and not center.isscalar:
        raise InputError("center must be a single (scalar) SkyCoord")

    z_iter, z_converged, c_iter, c_converged = 0, True, 0, True
    if z_estimated:
        z_cl, z_iter, z_converged = estimate_redshift(z, return_info=True)
    else:
        z_cl = _check_z_cluster(z_cluster)
    if center_estimated:
        center, c_iter, c_converged = estimate_center(coords, z, z_cl, cosmology, return_info=True)
    if z_estimated:
        # Refine z_cluster on the galaxies near the centre.
        near = center.separation(coords).to_value(u.rad) * _mpch_per_radian(z_cl, cosmology)
        if (near < 1.5).sum() >= 3:
            z_cl, n2, conv2 = estimate_redshift(z[near < 1.5], z_start=z_cl, return_info=True)
            z_iter, z_converged = z_iter + n2, z_converged and conv2

    if z_estimated:
        z_cl = _check_z_cluster(z_cl, estimated=True)
    theta = center.separation(coords).to_value(u.rad)
    R_mpch = theta * _mpch_per_radian(z_cl, cosmology)
    v_kms = _velocities_kms(z, z_cl)
    return PhaseSpace(
        R=R_mpch * MPC_H,
        v=v_kms * u.km / u.s,
        index=keep,
        z_cluster=z_cl,
        center=center,
        cosmology=cosmology,
        z_cluster_estimated=z_estimated,
        center_estimated=center_estimated,
        z_cluster_iterations=z_iter,
        center_iterations=c_iter,
        z_cluster_converged=z_converged,
        center_converged=c_converged,
    )


def _direct_phase_space(
    members: Any,
    R: u.Quantity | None,
    v: u.Quantity | None,
    z_cluster: Any,
    cosmology: Cosmology,
    nan_policy: str,
) -> PhaseSpace:
    if members is not None:
        raise InputError("pass either members or R=/v=, not both")
    if R is None or v is None:
        raise InputError("a ready phase space needs both R= and v=")
    if z_cluster is None:
        raise InputError("a ready phase space needs z_cluster=")
    z_cl = _check_z_cluster(z_cluster)
    R_q = _as_quantity(R, MPC_H, "R", equivalencies=cu.with_H0(cosmology.H0))
    v_q = _as_quantity(v, u.km / u.s, "v")
    R_arr = np.atleast_1d(float_values(R_q.value, "R"))
    v_arr = np.atleast_1d(float_values(v_q.value, "v"))
    if R_arr.ndim != 1 or R_arr.shape != v_arr.shape:
        raise InputError(
            f"R and v must be 1-D of equal length, got {R_arr.shape} and {v_arr.shape}"
        )
    if R_arr.size == 0:
        raise InputError("R and v are empty")
    finite = np.isfinite(R_arr) & np.isfinite(v_arr)
    if np.any(R_arr[finite] < 0):
        raise InputError("projected radii R must be >= 0")
    bad = np.where(finite, 0.0, np.nan)  # masked / non-finite rows, dropped and counted
    # no duplicate check here: equal (R, v) pairs of rounded data can be distinct galaxies
    keep = usable_rows(bad, nan_policy, stacklevel=4)
    return PhaseSpace(
        R=R_arr[keep] * MPC_H,
        v=v_arr[keep] * u.km / u.s,
        index=keep,
        z_cluster=z_cl,
        center=None,
        cosmology=cosmology,
    )
