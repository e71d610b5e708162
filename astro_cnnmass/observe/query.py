"""Query spectroscopic galaxies around a cluster centre (astroquery front end).

The functions here turn "a cluster centre and redshift" into a member table with
the columns the rest of the package reads (``ra``, ``dec`` [deg], ``z``,
``z_err``), ready for :func:`astro_cnnmass.phase_space` or
:meth:`~astro_cnnmass.DynamicalMassEstimator.estimate`.

* :func:`query_sdss_members` sends one SQL query to the SDSS SkyServer
  (``astroquery.sdss.SDSS.query_sql``). The sky search is an explicit
  great-circle condition on the SpecObj unit vectors, so the search radius is not
  limited by the 3 arcmin cone of ``SDSS.query_region``.
* :func:`query_ned_members` is the NED alternative
  (``astroquery.ipac.ned.Ned.query_region``), for fields outside the SDSS footprint.
* :func:`load_canned_sdss_example` returns the same kind of table offline, from a
  bundled, *synthetic* SDSS-like response around Abell 2199 (for docs and tests).

The search radius is given as a physical (proper) projected radius in Mpc/h at the
cluster redshift and converted to an angle with the angular diameter distance of
the chosen cosmology (``h`` taken from the same cosmology); an angle is also
accepted.
"""

from __future__ import annotations

import math
import warnings
from importlib import resources

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
from astropy.constants import c as speed_of_light
from astropy.coordinates import SkyCoord
from astropy.cosmology import Cosmology
from astropy.table import Table

from ..exceptions import AstroCnnmassWarning, InputError

__all__ = [
    "NoMembersError",
    "build_sdss_members_sql",
    "load_canned_sdss_example",
    "query_ned_members",
    "query_sdss_members",
    "search_radius_angle",
]

#: Abell 2199 centre and redshift used by the bundled synthetic example.
CANNED_EXAMPLE_CENTER = SkyCoord(247.1594 * u.deg, 39.5513 * u.deg, frame="icrs")
CANNED_EXAMPLE_Z = 0.0302
_CANNED_FILE = "sdss_canned_example.csv"

_C_KMS = speed_of_light.to_value(u.km / u.s)


class NoMembersError(ValueError):
    """No usable galaxy was found around the centre (no coverage, or all rows bad)."""


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------
def _default_cosmology(cosmology: Cosmology | None) -> Cosmology:
    if cosmology is None:
        from astropy.cosmology import Planck18

        return Planck18
    if not isinstance(cosmology, Cosmology):
        raise TypeError(
            f"cosmology must be an astropy.cosmology.Cosmology instance, got {type(cosmology)!r}"
        )
    return cosmology


def _check_center(center: SkyCoord) -> SkyCoord:
    if not isinstance(center, SkyCoord):
        raise TypeError(f"center must be a scalar astropy SkyCoord, got {type(center)!r}")
    if not center.isscalar:
        raise InputError(f"center must be a scalar SkyCoord, got shape {center.shape}")
    return center.icrs


def _check_z_cluster(z_cluster: float) -> float:
    try:
        z = float(z_cluster)
    except (TypeError, ValueError) as exc:
        raise InputError(f"z_cluster must be a number, got {z_cluster!r}") from exc
    if not np.isfinite(z) or z <= 0:
        raise InputError(f"z_cluster must be finite and > 0, got {z_cluster!r}")
    return z


def _check_velocity_window(velocity_window: u.Quantity) -> float:
    try:
        v = u.Quantity(velocity_window).to_value(u.km / u.s)
    except u.UnitConversionError as exc:
        raise InputError(
            f"velocity_window must be a velocity Quantity (e.g. 4000 km/s), got {velocity_window!r}"
        ) from exc
    if not np.isscalar(v) or not np.isfinite(v) or v <= 0:
        raise InputError(f"velocity_window must be a positive scalar, got {velocity_window!r}")
    return float(v)


def search_radius_angle(
    radius: u.Quantity, z_cluster: float, cosmology: Cosmology | None = None
) -> u.Quantity:
    """Convert a projected search radius into an angle on the sky.

    Parameters
    ----------
    radius : `~astropy.units.Quantity`
        Projected radius: physical (proper) ``Mpc / littleh`` at ``z_cluster``
        (``h`` from ``cosmology``), a physical length without ``h`` (e.g. ``Mpc``),
        or directly an angle (returned unchanged, in arcmin).
    z_cluster : float
        Cluster redshift (> 0).
    cosmology : `~astropy.cosmology.Cosmology`, optional
        Cosmology for the angular diameter distance; default
        `~astropy.cosmology.Planck18`.

    Returns
    -------
    `~astropy.units.Quantity`
        The radius as an angle, in arcmin.

    Examples
    --------
    >>> import astropy.units as u
    >>> import astropy.cosmology.units as cu
    >>> r = search_radius_angle(3.0 * u.Mpc / cu.littleh, 0.0302)
    >>> print(f"{r:.1f}")
    118.2 arcmin
    """
    cosmo = _default_cosmology(cosmology)
    z = _check_z_cluster(z_cluster)
    if not isinstance(radius, u.Quantity):
        raise InputError(
            "radius must be a Quantity: Mpc/littleh (physical), a length, or an angle; "
            f"got {radius!r}"
        )
    if not radius.isscalar or not np.isfinite(radius.value) or radius.value <= 0:
        raise InputError(f"radius must be a positive finite scalar, got {radius!r}")
    if radius.unit.physical_type == "angle":
        return radius.to(u.arcmin)
    try:
        r_mpc = radius.to(u.Mpc, equivalencies=cu.with_H0(cosmo.H0))
    except u.UnitConversionError as exc:
        raise InputError(
            f"radius must be in Mpc/littleh, a length unit, or an angle unit; got unit "
            f"{radius.unit}"
        ) from exc
    d_a = cosmo.angular_diameter_distance(z)
    return (r_mpc / d_a * u.rad).to(u.arcmin)


def _z_window(z_cluster: float, v_kms: float) -> tuple[float, float]:
    dz = (1.0 + z_cluster) * v_kms / _C_KMS
    return z_cluster - dz, z_cluster + dz


# --------------------------------------------------------------------------------------
# SDSS
# --------------------------------------------------------------------------------------
def build_sdss_members_sql(
    center: SkyCoord, radius_arcmin: float, z_min: float, z_max: float
) -> str:
    """Build the SkyServer SQL used by :func:`query_sdss_members`.

    The sky condition is the exact great circle ``n . n0 >= cos(radius)`` on the
    SpecObj unit vectors (``cx, cy, cz``), preceded by a declination band that
    lets the server use its index; no cone-size limit applies.

    Parameters
    ----------
    center : `~astropy.coordinates.SkyCoord`
        Search centre (ICRS).
    radius_arcmin : float
        Search radius [arcmin].
    z_min, z_max : float
        Redshift window (inclusive).

    Returns
    -------
    str
        The SQL statement (one line per clause, no ``--`` comments).
    """
    c = _check_center(center)
    ra0 = c.ra.deg
    dec0 = c.dec.deg
    r_deg = radius_arcmin / 60.0
    cx0 = math.cos(math.radians(dec0)) * math.cos(math.radians(ra0))
    cy0 = math.cos(math.radians(dec0)) * math.sin(math.radians(ra0))
    cz0 = math.sin(math.radians(dec0))
    cos_r = math.cos(math.radians(r_deg))
    dec_lo = max(dec0 - r_deg, -90.0)
    dec_hi = min(dec0 + r_deg, 90.0)
    return "\n".join(
        [
            "SELECT s.specObjID AS specobjid, s.bestObjID AS objid,",
            "  s.ra AS ra, s.dec AS dec, s.z AS z, s.zErr AS z_err,",
            "  s.zWarning AS zWarning, s.class AS class,",
            "  s.plate AS plate, s.mjd AS mjd, s.fiberID AS fiberID,",
            "  p.petroMag_r AS petroMag_r",
            "FROM SpecObj AS s",
            "  JOIN PhotoObj AS p ON s.bestObjID = p.objID",
            "WHERE s.class = 'GALAXY'",
            f"  AND s.z BETWEEN {z_min:.8f} AND {z_max:.8f}",
            f"  AND s.dec BETWEEN {dec_lo:.8f} AND {dec_hi:.8f}",
            f"  AND (s.cx * ({cx0:.15f}) + s.cy * ({cy0:.15f}) + s.cz * ({cz0:.15f}))"
            f" >= {cos_r:.15f}",
        ]
    )


def _clean_members(
    raw: Table,
    *,
    center: SkyCoord,
    max_z_err: float | None,
    source: str,
    check_z_err: bool = True,
    extra_bad: np.ndarray | None = None,
    extra_label: str = "",
) -> Table:
    """Drop bad redshifts (with one warning giving the count), set units, add ``sep``."""
    if raw is None or len(raw) == 0:
        raise NoMembersError(
            f"{source} returned no galaxy in the search cylinder: the field may lie outside "
            "the spectroscopic footprint, or the radius / velocity window is too small."
        )
    tab = Table(raw, copy=True)
    for col in ("ra", "dec", "z", "z_err"):
        if col not in tab.colnames:
            raise InputError(f"{source} result has no column {col!r} (columns: {tab.colnames})")

    def _finite(name: str) -> np.ndarray:
        col = tab[name]
        vals = np.asarray(np.ma.filled(np.ma.asarray(col, dtype=float), np.nan), dtype=float)
        return np.isfinite(vals)

    good = _finite("ra") & _finite("dec") & _finite("z")
    reasons = {"non-finite position or z": int((~good).sum())}
    if "zWarning" in tab.colnames:
        zw = np.ma.filled(np.ma.asarray(tab["zWarning"]), 1).astype(np.int64)
        bad_zw = good & (zw != 0)
        reasons["zWarning != 0"] = int(bad_zw.sum())
        good &= ~bad_zw
    if extra_bad is not None:
        bad_extra = good & np.asarray(extra_bad, bool)
        reasons[extra_label] = int(bad_extra.sum())
        good &= ~bad_extra
    if check_z_err:
        zerr = np.asarray(np.ma.filled(np.ma.asarray(tab["z_err"], dtype=float), np.nan))
        bad_err = good & ~(np.isfinite(zerr) & (zerr >= 0))
        reasons["z_err < 0 or non-finite"] = int(bad_err.sum())
        good &= ~bad_err
    if max_z_err is not None:
        zerr = np.asarray(np.ma.filled(np.ma.asarray(tab["z_err"], dtype=float), np.nan))
        bad_big = good & (zerr > max_z_err)
        reasons[f"z_err > {max_z_err:g}"] = int(bad_big.sum())
        good &= ~bad_big
    n_bad = int((~good).sum())
    if n_bad:
        detail = ", ".join(f"{k}: {v}" for k, v in reasons.items() if v)
        warnings.warn(
            f"dropped {n_bad} of {len(tab)} {source} rows with bad redshifts ({detail})",
            AstroCnnmassWarning,
            stacklevel=3,
        )
    tab = tab[good]
    if len(tab) == 0:
        raise NoMembersError(
            f"all {n_bad} {source} rows in the search cylinder had bad redshifts; "
            "no usable member is left."
        )
    tab["ra"].unit = u.deg
    tab["dec"].unit = u.deg
    pos = SkyCoord(np.asarray(tab["ra"], float) * u.deg, np.asarray(tab["dec"], float) * u.deg)
    tab["sep"] = pos.separation(center).to(u.arcmin)
    tab["sep"].info.description = "angular separation from the search centre"
    tab.meta["n_dropped"] = n_bad
    return tab


def query_sdss_members(
    center: SkyCoord,
    z_cluster: float,
    *,
    radius: u.Quantity = 3.0 * u.Mpc / cu.littleh,
    velocity_window: u.Quantity = 4000.0 * u.km / u.s,
    data_release: int = 17,
    cosmology: Cosmology | None = None,
    max_z_err: float | None = None,
    timeout: float | None = None,
    cache: bool = True,
) -> Table:
    """Spectroscopic SDSS galaxies around a cluster centre, for a dynamical-mass estimate.

    One SQL query is sent to the SDSS SkyServer through
    ``astroquery.sdss.SDSS.query_sql``. It selects science-primary spectra
    (``SpecObj``) of ``class = 'GALAXY'`` joined with their photometric object
    (``PhotoObj``, for ``petroMag_r``), inside an exact great-circle radius and a
    redshift window ``z_cluster ± (1 + z_cluster) velocity_window / c``. Rows with
    bad redshifts (``zWarning != 0``, ``z_err < 0``, non-finite values, or
    ``z_err > max_z_err``) are dropped locally and counted in one
    `~astro_cnnmass.AstroCnnmassWarning`.

    Parameters
    ----------
    center : `~astropy.coordinates.SkyCoord`
        Cluster centre (scalar; any frame, converted to ICRS).
    z_cluster : float
        Cluster redshift (> 0).
    radius : `~astropy.units.Quantity`, optional
        Projected search radius. Default 3 Mpc/h, physical (proper) at
        ``z_cluster``, converted to arcmin with the angular diameter distance of
        ``cosmology`` and its ``h``. A length without ``h`` (``u.Mpc``) or an angle
        is also accepted. Use a radius larger than the model's aperture
        (1.6 Mpc/h by default) so the centre can be refined.
    velocity_window : `~astropy.units.Quantity`, optional
        Half-width of the line-of-sight velocity window in the cluster rest frame
        [km/s]; default 4000 km/s (wider than the default ``v_cut`` of 2200 km/s).
    data_release : int, optional
        SDSS data release passed to astroquery (default 17).
    cosmology : `~astropy.cosmology.Cosmology`, optional
        Default `~astropy.cosmology.Planck18`.
    max_z_err : float, optional
        Drop galaxies whose redshift error exceeds this (dimensionless z units).
    timeout : float, optional
        Seconds; default astroquery's ``SDSS.TIMEOUT``.
    cache : bool, optional
        Let astroquery cache the response (default True).

    Returns
    -------
    `~astropy.table.Table`
        One row per galaxy: ``specobjid``, ``objid``, ``ra``, ``dec`` [deg], ``z``,
        ``z_err``, ``zWarning``, ``class``, ``plate``, ``mjd``, ``fiberID``,
        ``petroMag_r`` [mag], ``sep`` [arcmin from the centre]. ``meta`` holds
        ``sql``, ``data_release``, ``center``, ``z_cluster``, ``radius``,
        ``radius_arcmin``, ``velocity_window``, ``z_min``, ``z_max``,
        ``cosmology`` (name), ``n_dropped`` and ``source``.

    Raises
    ------
    NoMembersError
        The query returned nothing (no spectroscopic coverage) or only bad rows.
    astro_cnnmass.InputError
        Bad ``radius``, ``z_cluster``, ``velocity_window`` or ``center``.

    Warns
    -----
    astro_cnnmass.AstroCnnmassWarning
        When rows with bad redshifts are dropped (the count is in the message).

    Examples
    --------
    .. code-block:: python

        from astropy.coordinates import SkyCoord
        import astropy.units as u
        from astro_cnnmass.observe.query import query_sdss_members

        a2199 = SkyCoord(247.1594 * u.deg, 39.5513 * u.deg)
        members = query_sdss_members(a2199, 0.0302)
    """
    from astroquery.sdss import SDSS

    c = _check_center(center)
    z = _check_z_cluster(z_cluster)
    v = _check_velocity_window(velocity_window)
    cosmo = _default_cosmology(cosmology)
    r_arcmin = float(search_radius_angle(radius, z, cosmo).to_value(u.arcmin))
    z_min, z_max = _z_window(z, v)
    sql = build_sdss_members_sql(c, r_arcmin, z_min, z_max)

    kwargs = {"data_release": int(data_release), "cache": cache}
    if timeout is not None:
        kwargs["timeout"] = timeout
    raw = SDSS.query_sql(sql, **kwargs)

    tab = _clean_members(raw, center=c, max_z_err=max_z_err, source=f"SDSS DR{data_release}")
    tab.meta.update(
        {
            "source": f"SDSS DR{data_release} SkyServer SQL",
            "sql": sql,
            "data_release": int(data_release),
            "center": c,
            "z_cluster": z,
            "radius": u.Quantity(radius),
            "radius_arcmin": r_arcmin,
            "velocity_window": v * u.km / u.s,
            "z_min": z_min,
            "z_max": z_max,
            "cosmology": str(cosmo.name),
        }
    )
    return tab


def load_canned_sdss_example(*, raw: bool = False) -> Table:
    """The bundled synthetic SDSS-like response around Abell 2199, as a member table.

    The file ``astro_cnnmass/data/sdss_canned_example.csv`` is **synthetic**: it
    imitates the CSV that the SkyServer returns for the query built by
    :func:`query_sdss_members` around Abell 2199 (centre
    ``CANNED_EXAMPLE_CENTER``, ``z_cluster = 0.0302``, radius 3 Mpc/h, ±4000 km/s,
    DR17), but the galaxies are drawn from a toy model (≈45 members with
    σ ≈ 750 km/s plus interlopers and a few rows with bad redshifts). Use it for
    tutorials and offline tests, never for science.

    Parameters
    ----------
    raw : bool, optional
        If True, return the table as read from the file (bad rows included, no
        units). If False (default) return it cleaned exactly as
        :func:`query_sdss_members` would, which drops the bad rows with a warning.

    Returns
    -------
    `~astropy.table.Table`
        Same columns and ``meta`` as :func:`query_sdss_members`; ``meta["source"]``
        says it is the synthetic example.

    Warns
    -----
    astro_cnnmass.AstroCnnmassWarning
        When ``raw=False``: the example contains bad-redshift rows on purpose.
    """
    text = resources.files("astro_cnnmass").joinpath("data", _CANNED_FILE).read_text()
    tab = Table.read(text, format="ascii.csv", comment="#")
    for col in ("objid", "specobjid"):
        tab[col] = tab[col].astype(np.uint64)
    if raw:
        return tab
    from astropy.cosmology import Planck18

    radius = 3.0 * u.Mpc / cu.littleh
    r_arcmin = float(search_radius_angle(radius, CANNED_EXAMPLE_Z, Planck18).to_value(u.arcmin))
    z_min, z_max = _z_window(CANNED_EXAMPLE_Z, 4000.0)
    out = _clean_members(
        tab, center=CANNED_EXAMPLE_CENTER, max_z_err=None, source="SDSS DR17 (synthetic)"
    )
    out.meta.update(
        {
            "source": "synthetic SDSS-like example (astro_cnnmass/data/sdss_canned_example.csv)",
            "sql": build_sdss_members_sql(CANNED_EXAMPLE_CENTER, r_arcmin, z_min, z_max),
            "data_release": 17,
            "center": CANNED_EXAMPLE_CENTER,
            "z_cluster": CANNED_EXAMPLE_Z,
            "radius": radius,
            "radius_arcmin": r_arcmin,
            "velocity_window": 4000.0 * u.km / u.s,
            "z_min": z_min,
            "z_max": z_max,
            "cosmology": "Planck18",
        }
    )
    return out


# --------------------------------------------------------------------------------------
# NED
# --------------------------------------------------------------------------------------
def _first_column(tab: Table, names: tuple[str, ...]) -> str:
    for name in names:
        if name in tab.colnames:
            return name
    raise InputError(f"NED result has none of the columns {names} (columns: {tab.colnames})")


def query_ned_members(
    center: SkyCoord,
    z_cluster: float,
    *,
    radius: u.Quantity = 3.0 * u.Mpc / cu.littleh,
    velocity_window: u.Quantity = 4000.0 * u.km / u.s,
    cosmology: Cosmology | None = None,
    object_types: tuple[str, ...] = ("G",),
    drop_photometric: bool = True,
) -> Table:
    """Galaxies with redshifts around a cluster centre from NED.

    Calls ``astroquery.ipac.ned.Ned.query_region`` (a "near position" search) with
    the radius converted to arcmin as in :func:`query_sdss_members`, then keeps
    objects whose NED type is in ``object_types`` and whose redshift lies inside
    ``z_cluster ± (1 + z_cluster) velocity_window / c``. NED's main table carries
    no per-object redshift error: ``z_err`` is NaN.

    Parameters
    ----------
    center : `~astropy.coordinates.SkyCoord`
        Cluster centre (scalar).
    z_cluster : float
        Cluster redshift (> 0).
    radius : `~astropy.units.Quantity`, optional
        Projected radius, physical Mpc/h at ``z_cluster`` (default 3 Mpc/h), a
        length, or an angle.
    velocity_window : `~astropy.units.Quantity`, optional
        Half-width of the velocity window [km/s] (default 4000 km/s).
    cosmology : `~astropy.cosmology.Cosmology`, optional
        Default `~astropy.cosmology.Planck18`.
    object_types : tuple of str, optional
        NED preferred object types to keep (default ``("G",)``: galaxies).
    drop_photometric : bool, optional
        Drop redshifts whose NED ``Redshift Flag`` marks them photometric
        (contains ``PHOT``); they are counted in the warning. Default True.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``name``, ``ra``, ``dec`` [deg], ``z``, ``z_err`` (NaN), ``type``,
        ``redshift_flag``, ``sep`` [arcmin]; ``meta`` as in
        :func:`query_sdss_members` (without ``sql``/``data_release``).

    Raises
    ------
    NoMembersError
        No object with a usable redshift in the window.

    Warns
    -----
    astro_cnnmass.AstroCnnmassWarning
        When galaxies in the window are dropped (photometric or non-finite redshift).
    """
    from astroquery.ipac.ned import Ned

    c = _check_center(center)
    z = _check_z_cluster(z_cluster)
    v = _check_velocity_window(velocity_window)
    cosmo = _default_cosmology(cosmology)
    r = search_radius_angle(radius, z, cosmo)
    z_min, z_max = _z_window(z, v)

    raw = Ned.query_region(c, radius=r)
    if raw is None or len(raw) == 0:
        raise NoMembersError("NED returned no object around the centre.")

    ra_col = _first_column(raw, ("RA", "RA(deg)"))
    dec_col = _first_column(raw, ("DEC", "DEC(deg)"))
    zcol = _first_column(raw, ("Redshift",))
    type_col = _first_column(raw, ("Type",))
    zvals = np.asarray(np.ma.filled(np.ma.asarray(raw[zcol], dtype=float), np.nan))
    types = np.char.strip(np.asarray(raw[type_col]).astype(str))
    if "Redshift Flag" in raw.colnames:
        flags = np.char.strip(np.asarray(np.ma.filled(raw["Redshift Flag"], "")).astype(str))
    else:
        flags = np.full(len(raw), "", dtype=str)
    names = (
        np.asarray(raw["Object Name"]).astype(str)
        if "Object Name" in raw.colnames
        else np.full(len(raw), "", dtype=str)
    )

    is_type = np.isin(types, list(object_types))
    in_window = is_type & (zvals >= z_min) & (zvals <= z_max)
    if not in_window.any():
        raise NoMembersError(
            f"NED returned {len(raw)} objects but none of type {object_types} with a redshift "
            f"in [{z_min:.5f}, {z_max:.5f}]."
        )
    tab = Table(
        {
            "name": names[in_window],
            "ra": np.asarray(raw[ra_col], float)[in_window],
            "dec": np.asarray(raw[dec_col], float)[in_window],
            "z": zvals[in_window],
            "z_err": np.full(int(in_window.sum()), np.nan),
            "type": types[in_window],
            "redshift_flag": flags[in_window],
        }
    )
    phot = None
    if drop_photometric:
        phot = np.char.find(np.char.upper(np.asarray(tab["redshift_flag"]).astype(str)), "PHOT")
        phot = phot >= 0
    out = _clean_members(
        tab,
        center=c,
        max_z_err=None,
        source="NED",
        check_z_err=False,
        extra_bad=phot,
        extra_label="photometric redshift",
    )
    out.meta.update(
        {
            "source": "NED near-position search (astroquery.ipac.ned.Ned.query_region)",
            "center": c,
            "z_cluster": z,
            "radius": u.Quantity(radius),
            "radius_arcmin": float(r.to_value(u.arcmin)),
            "velocity_window": v * u.km / u.s,
            "z_min": z_min,
            "z_max": z_max,
            "cosmology": str(cosmo.name),
        }
    )
    return out
