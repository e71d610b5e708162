"""Classical dynamical-mass estimators: velocity dispersions, interloper removal, M–σ.

These are the baselines the CNN is compared with (Ho et al. 2019, arXiv:1902.05950, §4):

* velocity dispersion of the line-of-sight velocities: the population standard deviation
  (``np.std``, ddof = 0, as in the paper), the biweight scale (Beers, Flynn & Gebhardt 1990,
  AJ 100, 32) and the gapper (Wainer & Thissen 1976; Beers et al. 1990);
* the shifting gapper interloper removal (Fadda et al. 1996, ApJ 473, 670, arXiv:astro-ph/9607070);
* the M–σ relation of dark matter from Evrard et al. 2008 (ApJ 672, 122, arXiv:astro-ph/0702241)
  and a power law ``log10 σ = α (log10 M − 15) + log10 σ_15`` fitted to labelled data (the paper's
  M–σ baseline).

Masses are returned in ``Msun / littleh`` (M200c).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
from astropy.cosmology import Cosmology
from astropy.stats import biweight_scale

from .exceptions import InputError, TooFewGalaxiesError

__all__ = [
    "EVRARD08_ALPHA",
    "EVRARD08_SIGMA15",
    "MSUN_H",
    "MSigmaPowerLaw",
    "evrard_mass",
    "evrard_sigma",
    "gapper_dispersion",
    "grouped_std",
    "shifting_gapper",
    "velocity_dispersion",
]

#: Unit of cluster masses: Msun/h.
MSUN_H = u.Msun / cu.littleh
# Enable littleh in astropy's unit registry (astropy leaves the cosmology units off): the
# results tables the package writes (ECSV, FITS) have columns in solMass / littleh, and with
# the unit enabled ``QTable.read`` gives them back as Quantity columns once astro_cnnmass is
# imported. Only ``littleh`` is added, nothing is redefined. Without the package,
# ``u.add_enabled_units(astropy.cosmology.units)`` does the same.
u.add_enabled_units([cu.littleh])
#: Evrard et al. 2008 (arXiv:astro-ph/0702241) normalisation, km/s, for h(z) M200c = 1e15 Msun.
EVRARD08_SIGMA15 = 1082.9
#: Evrard et al. 2008 slope of sigma_DM against h(z) M200c.
EVRARD08_ALPHA = 0.3361

_KMS = u.km / u.s


def _velocities(v: u.Quantity | np.ndarray, name: str = "v") -> np.ndarray:
    if isinstance(v, u.Quantity):
        try:
            arr = v.to_value(_KMS)
        except u.UnitConversionError as exc:
            raise InputError(f"{name} must be a velocity, got unit {v.unit}") from exc
    else:
        raise InputError(f"{name} must be a Quantity in km/s")
    arr = np.atleast_1d(np.asarray(arr, dtype=float))
    if arr.ndim != 1:
        raise InputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


def gapper_dispersion(v_kms: np.ndarray) -> float:
    """Gapper estimate of the velocity dispersion (km/s) of plain float velocities.

    ``σ_G = sqrt(π) / (n (n − 1)) Σ_{i=1}^{n−1} i (n − i) g_i``, with ``g_i`` the gaps of the
    sorted velocities (Wainer & Thissen 1976; Beers, Flynn & Gebhardt 1990, AJ 100, 32, eq. 10).
    """
    x = np.sort(np.asarray(v_kms, dtype=float))
    n = x.size
    if n < 2:
        raise TooFewGalaxiesError(f"the gapper needs at least 2 velocities, got {n}")
    i = np.arange(1, n)
    return float(np.sqrt(np.pi) / (n * (n - 1)) * np.sum(i * (n - i) * np.diff(x)))


def grouped_std(v_kms: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Population standard deviation (``np.std``, ddof = 0) of each packed group, km/s.

    The σ of the M–σ baseline for many clusters at once (group ``i`` is
    ``v_kms[offsets[i]:offsets[i + 1]]``); used alike when the power law is fitted on training
    mocks and when it is applied to observations. Empty groups give NaN.

    Parameters
    ----------
    v_kms : ndarray
        Flat line-of-sight velocities, km/s.
    offsets : ndarray of int
        Group boundaries, length ``n_groups + 1``.

    Returns
    -------
    ndarray
        One dispersion per group, km/s.
    """
    values = np.asarray(v_kms, dtype=float)
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    if values.size == 0:
        return np.full(counts.size, np.nan)
    n = np.maximum(counts, 1)
    starts = offsets[:-1]
    nonempty = counts > 0
    s1 = np.zeros(counts.size)
    s1[nonempty] = np.add.reduceat(values, starts[nonempty])
    dev = values - np.repeat(s1 / n, counts)
    s2 = np.zeros(counts.size)
    s2[nonempty] = np.add.reduceat(dev * dev, starts[nonempty])
    out = np.sqrt(s2 / n)
    out[~nonempty] = np.nan
    return out


def velocity_dispersion(v: u.Quantity, method: str = "std") -> u.Quantity:
    """Line-of-sight velocity dispersion.

    Parameters
    ----------
    v : `~astropy.units.Quantity`
        Rest-frame line-of-sight velocities (km/s), at least 3.
    method : {'std', 'biweight', 'gapper'}
        ``'std'``: population standard deviation about the mean (``np.std``, ddof=0), as Ho et
        al. 2019; ``'biweight'``: biweight scale with tuning constant 9 (Beers et al. 1990);
        ``'gapper'``: the gapper estimator. Ferragamo et al. 2020 (arXiv:2006.05949) compare
        their bias and variance for small samples.

    Returns
    -------
    sigma : `~astropy.units.Quantity`
        Velocity dispersion in km/s.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astro_cnnmass.classical import velocity_dispersion
    >>> velocity_dispersion([-100.0, 0.0, 100.0] * u.km / u.s)
    <Quantity 81.64965809 km / s>
    """
    arr = _velocities(v)
    if arr.size < 3:
        raise TooFewGalaxiesError(f"need at least 3 velocities for a dispersion, got {arr.size}")
    if method == "std":
        sigma = float(np.std(arr))
    elif method == "biweight":
        sigma = float(biweight_scale(arr, c=9.0))
    elif method == "gapper":
        sigma = gapper_dispersion(arr)
    else:
        raise InputError(f"method must be 'std', 'biweight' or 'gapper', got {method!r}")
    return sigma * _KMS


def shifting_gapper(
    R: u.Quantity,
    v: u.Quantity,
    *,
    gap: u.Quantity = 1000 * _KMS,
    bin_min_galaxies: int = 15,
    bin_min_width: u.Quantity = 0.4 * u.Mpc / cu.littleh,
    v_max: u.Quantity = 4000 * _KMS,
    max_iter: int = 20,
) -> np.ndarray:
    """Shifting-gapper membership (Fadda et al. 1996, arXiv:astro-ph/9607070).

    Galaxies with ``|v| < v_max`` are sorted by projected radius and split into radial bins that
    hold at least ``bin_min_galaxies`` galaxies and span at least ``bin_min_width`` (the last bin
    absorbs a remainder that is too small). Inside each bin the velocities are sorted; the "main
    body" is the run of consecutive velocities, separated by gaps smaller than ``gap``, that
    contains the cluster velocity (v = 0, or the velocity closest to it). Galaxies outside the
    main body are interlopers. The procedure is repeated with the member velocities re-centred
    on their median until the membership stops changing.

    Parameters
    ----------
    R : `~astropy.units.Quantity`
        Projected radii, physical Mpc/h.
    v : `~astropy.units.Quantity`
        Rest-frame line-of-sight velocities, km/s.
    gap : `~astropy.units.Quantity`
        Velocity gap that separates the main body from interlopers (Fadda et al. 1996: 1000 km/s).
    bin_min_galaxies : int
        Minimum number of galaxies per radial bin (Fadda et al. 1996: 15).
    bin_min_width : `~astropy.units.Quantity`
        Minimum radial width of a bin, physical Mpc/h (Fadda et al. 1996: 0.4 Mpc/h).
    v_max : `~astropy.units.Quantity`
        Initial velocity cut, km/s.
    max_iter : int
        Maximum number of iterations.

    Returns
    -------
    members : ndarray of bool
        True for galaxies kept as members.
    """
    R_arr = _velocities_or_radii(R, u.Mpc / cu.littleh, "R")
    v_arr = _velocities(v)
    if R_arr.shape != v_arr.shape:
        raise InputError(f"R and v must have the same shape, got {R_arr.shape} and {v_arr.shape}")
    gap_kms = gap.to_value(_KMS)
    width = bin_min_width.to_value(u.Mpc / cu.littleh)
    members = np.abs(v_arr) < v_max.to_value(_KMS)
    v_zero = 0.0
    for _ in range(max_iter):
        new = np.zeros_like(members)
        candidates = np.flatnonzero(np.abs(v_arr - v_zero) < v_max.to_value(_KMS))
        order = candidates[np.argsort(R_arr[candidates])]
        for bin_idx in _radial_bins(R_arr[order], bin_min_galaxies, width):
            idx = order[bin_idx]
            new[idx[_main_body(v_arr[idx] - v_zero, gap_kms)]] = True
        if new.sum() >= 3:
            v_zero = float(np.median(v_arr[new]))
        if np.array_equal(new, members):
            break
        members = new
    return members


def _velocities_or_radii(x: u.Quantity, unit: u.UnitBase, name: str) -> np.ndarray:
    if not isinstance(x, u.Quantity):
        raise InputError(f"{name} must be a Quantity in {unit}")
    try:
        arr = np.atleast_1d(x.to_value(unit)).astype(float)
    except u.UnitConversionError as exc:
        raise InputError(f"{name} must have units of {unit}, got {x.unit}") from exc
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


def _radial_bins(R_sorted: np.ndarray, n_min: int, width: float) -> list[np.ndarray]:
    """Split sorted radii into bins of >= n_min galaxies and >= width (indices into R_sorted)."""
    bins: list[np.ndarray] = []
    start = 0
    n = R_sorted.size
    while start < n:
        stop = min(start + n_min, n)
        while stop < n and R_sorted[stop - 1] - R_sorted[start] < width:
            stop += 1
        if n - stop < n_min:
            stop = n  # a remainder too small for its own bin joins this one
        bins.append(np.arange(start, stop))
        start = stop
    return bins


def _main_body(v_rel: np.ndarray, gap_kms: float) -> np.ndarray:
    """Mask of the run of gap-connected velocities that contains (or is closest to) zero."""
    order = np.argsort(v_rel)
    vs = v_rel[order]
    breaks = np.flatnonzero(np.diff(vs) > gap_kms)
    group = np.zeros(vs.size, dtype=int)
    group[breaks + 1] = 1
    group = np.cumsum(group)
    centre = group[np.argmin(np.abs(vs))]
    mask = np.zeros(vs.size, dtype=bool)
    mask[order[group == centre]] = True
    return mask


def _efunc(z: float, cosmology: Cosmology | None) -> float:
    if cosmology is None:
        from astropy.cosmology import Planck18

        cosmology = Planck18
    return float(cosmology.efunc(z))


def evrard_sigma(m200c: u.Quantity, z: float, cosmology: Cosmology | None = None) -> u.Quantity:
    """Dark-matter velocity dispersion for a halo mass (Evrard et al. 2008, arXiv:astro-ph/0702241).

    ``σ_DM = σ_15 [h(z) M200c / 1e15 Msun]^α`` with ``σ_15 = 1082.9 km/s`` and ``α = 0.3361``.
    With M200c in Msun/h, ``h(z) M200c[Msun] = E(z) M200c[Msun/h]``.

    Parameters
    ----------
    m200c : `~astropy.units.Quantity`
        M200c in Msun/h (or Msun, converted with the cosmology's h).
    z : float
        Redshift.
    cosmology : `~astropy.cosmology.Cosmology`, optional
        For E(z) and h; default Planck18.

    Returns
    -------
    sigma : `~astropy.units.Quantity`
        One-dimensional velocity dispersion, km/s.
    """
    m = _mass_msunh(m200c, cosmology)
    return EVRARD08_SIGMA15 * (_efunc(z, cosmology) * m / 1e15) ** EVRARD08_ALPHA * _KMS


def evrard_mass(sigma: u.Quantity, z: float, cosmology: Cosmology | None = None) -> u.Quantity:
    """M200c from a velocity dispersion, inverting :func:`evrard_sigma`.

    Parameters
    ----------
    sigma : `~astropy.units.Quantity`
        One-dimensional velocity dispersion, km/s.
    z : float
        Cluster redshift.
    cosmology : `~astropy.cosmology.Cosmology`, optional
        For E(z); default Planck18.

    Returns
    -------
    m200c : `~astropy.units.Quantity`
        Mass in Msun/h.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_cnnmass.classical import evrard_mass, evrard_sigma
    >>> m = evrard_mass(1000 * u.km / u.s, z=0.1)
    >>> evrard_sigma(m, z=0.1).round(6)
    <Quantity 1000. km / s>
    """
    s = np.asarray(sigma.to_value(_KMS), dtype=float)
    m = 1e15 * (s / EVRARD08_SIGMA15) ** (1.0 / EVRARD08_ALPHA) / _efunc(z, cosmology)
    return m * MSUN_H


def _mass_msunh(m: u.Quantity, cosmology: Cosmology | None) -> np.ndarray:
    if not isinstance(m, u.Quantity):
        raise InputError("mass must be a Quantity in Msun/h")
    if cosmology is None:
        from astropy.cosmology import Planck18

        cosmology = Planck18
    try:
        return np.asarray(m.to_value(MSUN_H, equivalencies=cu.with_H0(cosmology.H0)))
    except u.UnitConversionError as exc:
        raise InputError(f"mass must be in Msun/h or Msun, got {m.unit}") from exc


@dataclass(frozen=True)
class MSigmaPowerLaw:
    """The paper's M–σ power law, ``log10 σ = α (log10 M − pivot) + log10 σ_15``.

    Ho et al. 2019 (arXiv:1902.05950, §4 of paper_notes) fit it by ordinary least squares of
    log10 σ on log10 M200c over 10^14.5 < M200c < 10^15.3 Msun/h (pivot 15) and predict masses
    by inverting it.

    Parameters
    ----------
    alpha : float
        Slope.
    log_sigma15 : float
        log10 of σ (km/s) at the pivot mass.
    pivot_log_mass : float
        Pivot, log10 M200c [Msun/h].
    scatter : float
        RMS scatter of log10 σ about the fit (dex), NaN if unknown.
    """

    alpha: float
    log_sigma15: float
    pivot_log_mass: float = 15.0
    scatter: float = float("nan")

    @classmethod
    def fit(
        cls,
        log_m200c: np.ndarray,
        sigma_kms: np.ndarray,
        *,
        mass_range: tuple[float, float] = (14.5, 15.3),
        pivot_log_mass: float = 15.0,
    ) -> MSigmaPowerLaw:
        """Least-squares fit of log10 σ on log10 M over ``mass_range``.

        Parameters
        ----------
        log_m200c : array-like
            log10 M200c [Msun/h] of the training clusters.
        sigma_kms : array-like
            Their velocity dispersions, km/s.
        mass_range : (float, float)
            Fit range in log10 M200c (paper: 14.5–15.3).
        pivot_log_mass : float
            Pivot mass.
        """
        logm = np.asarray(log_m200c, dtype=float)
        sig = np.asarray(sigma_kms, dtype=float)
        if logm.shape != sig.shape:
            raise InputError("log_m200c and sigma_kms must have the same shape")
        sel = (logm > mass_range[0]) & (logm < mass_range[1]) & np.isfinite(sig) & (sig > 0)
        if sel.sum() < 3:
            raise InputError(
                f"need at least 3 clusters in {mass_range} to fit M–σ, got {sel.sum()}"
            )
        x = logm[sel] - pivot_log_mass
        y = np.log10(sig[sel])
        alpha, intercept = np.polyfit(x, y, 1)
        scatter = float(np.std(y - (alpha * x + intercept)))
        return cls(float(alpha), float(intercept), float(pivot_log_mass), scatter)

    def predict_log_mass(self, sigma_kms: np.ndarray) -> np.ndarray:
        """log10 M200c [Msun/h] from σ in km/s (plain floats; NaN where σ <= 0)."""
        sig = np.asarray(sigma_kms, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(sig > 0, np.log10(np.where(sig > 0, sig, 1.0)), np.nan)
        return (logs - self.log_sigma15) / self.alpha + self.pivot_log_mass

    def predict_mass(self, sigma: u.Quantity) -> u.Quantity:
        """M200c (Msun/h) from a velocity dispersion Quantity."""
        s = _velocities(u.Quantity(sigma).reshape(-1), "sigma")
        out = 10 ** self.predict_log_mass(s) * MSUN_H
        return out[0] if np.ndim(sigma) == 0 else out

    def to_dict(self) -> dict[str, float]:
        """Plain dictionary (as stored in model bundles)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> MSigmaPowerLaw:
        """Inverse of :meth:`to_dict`; unknown keys raise `~astro_cnnmass.InputError`."""
        unknown = set(d) - {"alpha", "log_sigma15", "pivot_log_mass", "scatter"}
        if unknown:
            raise InputError(f"unknown M–σ keys {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in d.items()})
