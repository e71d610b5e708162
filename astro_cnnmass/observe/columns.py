"""Reading galaxy columns safely: masks, non-numbers, units, duplicates, RA in hours.

Every member-table column goes through :func:`float_values` before it is used, so that

* masked entries (`~astropy.table.MaskedColumn`, `numpy.ma` arrays, astropy ``Masked``
  Quantities; blank CSV/ECSV cells read as masked) become NaN and are dropped, counted, with
  the rows whose value is not finite;
* a cell that is not a number (``'n/a'`` in an object column), a complex or a boolean column is
  refused with an `~astro_cnnmass.InputError` naming the column and the first bad row;
* plain floats of an angle column mean **degrees**; a right ascension that looks like hours
  (values within [0, 24] spanning on the sky far less than the declinations) is warned about.

:func:`usable_rows` then drops the non-finite rows and exact duplicate galaxies, each with one
counted `~astro_cnnmass.AstroCnnmassWarning`.
"""

from __future__ import annotations

import warnings
from typing import Any

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
from astropy.utils.masked import Masked

from ..exceptions import AstroCnnmassWarning, InputError

__all__ = ["angle_values", "float_values", "redshift_values", "usable_rows", "warn_if_hours"]

#: Galaxies with redshifts outside this range are treated as bad input.
Z_GALAXY_RANGE = (-0.01, 10.0)


def _split_mask(values: Any) -> tuple[Any, np.ndarray | None]:
    """(data without mask, boolean mask or None) of a masked array / column / Quantity."""
    if isinstance(values, Masked):
        return values.unmasked, np.asarray(values.mask, dtype=bool)
    if isinstance(values, np.ma.MaskedArray):
        return np.ma.getdata(values), np.ma.getmaskarray(values)
    return values, None


def float_values(values: Any, name: str, unit: u.UnitBase | None = None, equivalencies=()):
    """Float64 values of a column, masked entries as NaN.

    Parameters
    ----------
    values : array-like, `~astropy.table.Column`, `~astropy.units.Quantity`
        The column (masked or not).
    name : str
        Name used in error messages (``"column 'z'"``, ``"R"``).
    unit : `~astropy.units.UnitBase`, optional
        Convert a column that carries a unit to this unit (plain numbers are taken as is).
    equivalencies : list
        Unit equivalencies for the conversion.

    Returns
    -------
    ndarray of float64

    Raises
    ------
    InputError
        A value is not a real number (naming the first bad row), or the unit does not convert.
    """
    data, mask = _split_mask(values)
    col_unit = getattr(values, "unit", None)
    raw = data.value if isinstance(data, u.Quantity) else data
    arr = np.asarray(raw)
    if arr.dtype.kind == "c":
        raise InputError(f"{name} holds complex numbers, expected real numbers")
    if arr.dtype.kind == "b":
        raise InputError(f"{name} holds booleans, expected numbers")
    if arr.dtype.kind in "OUS":
        out = np.empty(arr.shape, dtype=float)
        flat_in, flat_out = arr.reshape(-1), out.reshape(-1)
        skip = None if mask is None else mask.reshape(-1)
        for i, cell in enumerate(flat_in):
            if skip is not None and skip[i]:
                flat_out[i] = np.nan
                continue
            try:
                flat_out[i] = float(cell)
                if isinstance(cell, complex | np.complexfloating):
                    raise TypeError
            except (TypeError, ValueError):
                raise InputError(
                    f"{name} row {i} holds {cell!r}, expected a number "
                    "(mask or blank the cell to drop the galaxy)"
                ) from None
    else:
        out = np.array(arr, dtype=float)
    if unit is not None and col_unit is not None and col_unit != unit:
        try:
            out = (out * col_unit).to_value(unit, equivalencies=equivalencies)
        except u.UnitConversionError as exc:
            raise InputError(
                f"{name} must have units convertible to {unit}, got {col_unit}"
            ) from exc
    if mask is not None and mask.any():
        out = np.array(out, dtype=float)
        out[np.broadcast_to(mask, out.shape)] = np.nan
    return out


def angle_values(col: Any, name: str) -> np.ndarray:
    """Angles in degrees; plain floats (no unit) **are degrees**."""
    unit = getattr(col, "unit", None)
    if unit is not None and unit.physical_type != "angle":
        raise InputError(
            f"column {name!r} must be an angle (deg, rad or hourangle), got unit {unit}; "
            "plain floats are read as degrees"
        )
    return float_values(col, f"column {name!r}", u.deg)


def redshift_values(col: Any, name: str) -> np.ndarray:
    """Dimensionless redshifts (a column with a redshift or dimensionless unit)."""
    unit = getattr(col, "unit", None)
    if unit is not None and unit != u.dimensionless_unscaled:
        try:
            u.Quantity(1.0, unit).to(cu.redshift)
        except u.UnitConversionError as exc:
            raise InputError(
                f"column {name!r} must hold dimensionless redshifts, got unit {unit} "
                "(for recession velocities cz, divide by the speed of light first)"
            ) from exc
        return float_values(col, f"column {name!r}", cu.redshift)
    return float_values(col, f"column {name!r}")


def warn_if_hours(ra_deg: np.ndarray, dec_deg: np.ndarray, name: str) -> None:
    """Warn when plain-float right ascensions look like hours rather than degrees.

    The evidence: at least 10 finite positions, every RA within [0, 24], and the RA spread on
    the sky (``span(ra) cos(dec)``) less than a quarter of the declination spread; in hours it
    is 15 times smaller for a round cluster.
    """
    good = np.isfinite(ra_deg) & np.isfinite(dec_deg)
    if good.sum() < 10:
        return
    ra, dec = ra_deg[good], dec_deg[good]
    if ra.min() < 0 or ra.max() > 24:
        return
    ra_span = np.subtract(*np.percentile(ra, [95, 5])) * np.cos(np.deg2rad(np.median(dec)))
    dec_span = np.subtract(*np.percentile(dec, [95, 5]))
    if dec_span > 0 and ra_span < 0.25 * dec_span:
        warnings.warn(
            f"column {name!r} looks like right ascension in hours (values within [0, 24], "
            f"spanning {dec_span / max(ra_span, 1e-300):.0f}x less on the sky than the "
            "declinations): plain floats are read as degrees; multiply by 15 or give the "
            "column a unit (u.hourangle)",
            AstroCnnmassWarning,
            stacklevel=4,
        )


def usable_rows(
    z: np.ndarray, nan_policy: str, key: np.ndarray | None = None, stacklevel: int = 3
) -> np.ndarray:
    """Indices of the usable galaxies: finite, with a sane redshift, no exact duplicate.

    Parameters
    ----------
    z : ndarray
        Redshifts (NaN where the position or redshift is masked or not finite).
    nan_policy : {'drop', 'raise'}
        Drop non-finite rows with a counted warning, or raise.
    key : ndarray, shape (n, k), optional
        Values that identify a galaxy (e.g. ra, dec, z); rows equal to an earlier row are
        dropped with a counted warning.
    stacklevel : int
        Stack level of the warnings.

    Returns
    -------
    ndarray of int
    """
    if nan_policy not in ("drop", "raise"):
        raise InputError(f"nan_policy must be 'drop' or 'raise', got {nan_policy!r}")
    finite = np.isfinite(z)
    absurd = finite & ((z <= Z_GALAXY_RANGE[0]) | (z > Z_GALAXY_RANGE[1]))
    if absurd.any():
        raise InputError(
            f"{int(absurd.sum())} galaxy redshift(s) outside {Z_GALAXY_RANGE}: "
            "check the z column (negative or absurd redshifts)"
        )
    n_bad = int((~finite).sum())
    if n_bad:
        if nan_policy == "raise":
            raise InputError(f"{n_bad} galaxies have masked or non-finite positions or redshifts")
        warnings.warn(
            f"dropped {n_bad} galaxies with masked or non-finite positions or redshifts",
            AstroCnnmassWarning,
            stacklevel=stacklevel,
        )
    keep = np.flatnonzero(finite)
    if key is not None and keep.size > 1:
        rows = np.ascontiguousarray(np.asarray(key, dtype=float)[keep])
        _, first = np.unique(rows, axis=0, return_index=True)
        n_dup = keep.size - first.size
        if n_dup:
            warnings.warn(
                f"dropped {n_dup} exact duplicate galaxies (same position and redshift as an "
                "earlier row)",
                AstroCnnmassWarning,
                stacklevel=stacklevel,
            )
            keep = keep[np.sort(first)]
    return keep
