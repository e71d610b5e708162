"""Convert M200c, the mass the network predicts, to other spherical-overdensity definitions.

The CNN predicts M200c (the mass inside the radius where the mean density is 200 times the
critical density at the cluster redshift). X-ray and SZ catalogues quote M500c, lensing often
M200m or Mvir. A conversion needs the halo's concentration, which a phase space does not measure:
it is taken from a concentration–mass relation (colossus ``concentration``, default Diemer &
Joyce 2019, arXiv:1809.07326) with its log-normal scatter at fixed mass, and the NFW profile of
that concentration is integrated to the new overdensity (colossus
``mass_defs.changeMassDefinition``; Diemer 2018, ApJS 239, 35, arXiv:1712.04512).

The whole predictive distribution is converted by Monte Carlo: draws of M200c from the estimate,
one concentration per draw from the c–M relation times a log-normal scatter, one converted mass
per draw. The reported interval therefore contains the network's uncertainty and the scatter of
the c–M relation; the relation, its scatter and the profile are named in the result.

The scatter: 0.16 dex in log10 c200c at fixed mass (Diemer & Kravtsov 2015, arXiv:1407.4730,
§3.4; nearly independent of mass and redshift for relaxed and unrelaxed haloes together). The
package's own mocks draw 0.11–0.16 dex (``astro_cnnmass.mocks.halos``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.cosmology import Cosmology

from ..classical import MSUN_H
from ..exceptions import InputError
from .calibration import QUANTILE_LEVELS

__all__ = [
    "DEFAULT_CM_MODEL",
    "DEFAULT_C_SCATTER_DEX",
    "ConvertedMass",
    "convert_estimate",
    "convert_log_mass_samples",
]

#: Default concentration–mass relation (colossus model name): Diemer & Joyce 2019.
DEFAULT_CM_MODEL = "diemer19"
#: Log-normal scatter of log10 c200c at fixed mass [dex] (Diemer & Kravtsov 2015, §3.4).
DEFAULT_C_SCATTER_DEX = 0.16
#: sigma8 and n_s used for a cosmology whose ``meta`` does not give them (Planck18 values).
_PLANCK18_SIGMA8, _PLANCK18_NS = 0.8102, 0.9665


@dataclass(frozen=True)
class ConvertedMass:
    """The predictive distribution of an estimate, converted to another mass definition.

    Attributes
    ----------
    mass_definition : str
        The definition, colossus notation: ``'500c'``, ``'200m'``, ``'vir'``, ...
    mass : `~astropy.units.Quantity`
        Median of the converted distribution, Msun/h.
    mass_interval : tuple of `~astropy.units.Quantity`
        Its 16th and 84th percentiles, Msun/h (network uncertainty and c–M scatter).
    quantiles : dict
        Percentile level (0.05, 0.16, 0.5, 0.84, 0.95) -> mass Quantity, Msun/h.
    concentration_model : str
        The colossus c–M relation used (for c200c).
    concentration_scatter_dex : float
        Log-normal scatter of c at fixed mass that was propagated, dex.
    profile : str
        Density profile of the conversion (``'nfw'``).
    n_samples : int
        Monte Carlo draws.
    """

    mass_definition: str
    mass: u.Quantity
    mass_interval: tuple[u.Quantity, u.Quantity]
    quantiles: dict[float, u.Quantity]
    concentration_model: str
    concentration_scatter_dex: float
    profile: str
    n_samples: int

    @property
    def label(self) -> str:
        """``'M500c'``, ``'Mvir'``, ..."""
        return "M" + self.mass_definition

    @property
    def relation(self) -> str:
        """One line naming the conversion: c–M relation, scatter, profile."""
        return (
            f"{self.concentration_model} c-M relation, {self.concentration_scatter_dex:g} dex "
            f"log-normal scatter, {self.profile.upper()} profile (colossus)"
        )

    def __str__(self) -> str:
        lo, hi = self.mass_interval
        return (
            f"{self.label} = {self.mass.to_value(MSUN_H):.3e} Msun/h, 68% interval "
            f"[{lo.to_value(MSUN_H):.3e}, {hi.to_value(MSUN_H):.3e}] ({self.relation})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary (masses in Msun/h; None where undefined)."""

        def val(q: u.Quantity) -> float | None:
            v = float(q.to_value(MSUN_H))
            return v if np.isfinite(v) else None

        return {
            "mass_definition": self.mass_definition,
            "mass_msun_h": val(self.mass),
            "mass_interval_msun_h": [val(q) for q in self.mass_interval],
            "quantiles_msun_h": {str(k): val(q) for k, q in self.quantiles.items()},
            "concentration_model": self.concentration_model,
            "concentration_scatter_dex": self.concentration_scatter_dex,
            "profile": self.profile,
            "n_samples": self.n_samples,
        }


def _check_mdef(mdef: str) -> str:
    from colossus.halo import mass_so

    if not isinstance(mdef, str):
        raise InputError(f"mass definition must be a string such as '500c', got {mdef!r}")
    mdef = mdef.strip()
    if (mdef.startswith("M") and mdef[1:2].isdigit()) or mdef in ("Mvir",):
        mdef = mdef[1:]  # accept 'M500c' and 'Mvir' too
    try:
        mass_so.parseMassDefinition(mdef)
    except Exception as exc:  # colossus raises a bare Exception
        raise InputError(
            f"unknown mass definition {mdef!r}: use an overdensity with respect to the critical "
            "('500c', '2500c', '200c') or mean ('200m', '500m') density, or 'vir'"
        ) from exc
    return mdef


#: colossus cosmologies made from astropy ones, by their repr and sigma8, n_s (a colossus
#: cosmology keeps the interpolation tables the c–M relation needs: building them is most of
#: the cost of a conversion)
_COLOSSUS_COSMOLOGIES: dict[str, Any] = {}


class _ColossusCosmology:
    """Context manager: colossus's global cosmology set from an astropy one, then restored."""

    def __init__(self, cosmology: Cosmology) -> None:
        self.cosmology = cosmology

    def __enter__(self) -> None:
        from colossus.cosmology import cosmology as ccosmo

        try:
            self.previous = ccosmo.getCurrent()
        except Exception:  # no cosmology set yet
            self.previous = None
        meta = dict(getattr(self.cosmology, "meta", {}) or {})
        if not (self.cosmology.Ob0 or 0) > 0:
            raise InputError(
                "converting mass definitions needs a cosmology with baryons (Ob0 > 0) for the "
                f"power spectrum of the c-M relation; {self.cosmology.name or 'the cosmology'} "
                "has none"
            )
        cosmo, extra = self.cosmology, {}
        if not cosmo.Tcmb0.value > 0:
            # no radiation (astropy's default Tcmb0 = 0): colossus still needs a CMB temperature
            # for the transfer function; keep radiation out of its densities
            cosmo = cosmo.clone(Tcmb0=2.7255 * u.K, m_nu=0 * u.eV, name=cosmo.name or "user")
            extra = {"relspecies": False}
        sigma8 = float(meta.get("sigma8", _PLANCK18_SIGMA8))
        ns = float(meta.get("n", _PLANCK18_NS))
        key = f"{self.cosmology!r} sigma8={sigma8} ns={ns}"
        if key in _COLOSSUS_COSMOLOGIES:  # its interpolation tables are already built
            ccosmo.setCurrent(_COLOSSUS_COSMOLOGIES[key])
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "massive neutrinos are not taken into account"
            try:
                _COLOSSUS_COSMOLOGIES[key] = ccosmo.fromAstropy(
                    cosmo,
                    sigma8=sigma8,
                    ns=ns,
                    cosmo_name=f"astro_cnnmass-{self.cosmology.name or 'user'}",
                    persistence="",
                    **extra,
                )
            except Exception as exc:  # colossus raises bare Exceptions
                raise InputError(f"colossus cannot use this cosmology: {exc}") from exc

    def __exit__(self, *exc: Any) -> None:
        from colossus.cosmology import cosmology as ccosmo

        if self.previous is not None:
            ccosmo.setCurrent(self.previous)


def convert_log_mass_samples(
    log_m200c: np.ndarray,
    z: float,
    mass_definition: str,
    *,
    cosmology: Cosmology | None = None,
    cm_model: str = DEFAULT_CM_MODEL,
    c_scatter_dex: float = DEFAULT_C_SCATTER_DEX,
    seed: Any = None,
) -> np.ndarray:
    """Convert draws of log10 M200c [Msun/h] to log10 M of another definition [Msun/h].

    Each draw gets its own concentration: the mean c200c of ``cm_model`` at its mass and ``z``
    times ``10**(c_scatter_dex * N(0, 1))``; the NFW profile of that concentration gives the
    mass of the new definition.

    Parameters
    ----------
    log_m200c : ndarray
        Draws of log10(M200c / (Msun/h)).
    z : float
        Cluster redshift.
    mass_definition : str
        Target definition in colossus notation (``'500c'``, ``'200m'``, ``'vir'``, ...).
    cosmology : `~astropy.cosmology.Cosmology`, optional
        Cosmology of the densities and of the c–M relation (its ``meta`` ``sigma8`` and ``n``
        when present, else Planck18's); default Planck18.
    cm_model : str
        colossus concentration model for c200c (``'diemer19'``, ``'ishiyama21'``,
        ``'duffy08'``, ...).
    c_scatter_dex : float
        Log-normal scatter of c at fixed mass, dex (0 for the mean relation only).
    seed : int or numpy.random.Generator, optional
        Random seed of the concentration draws.

    Returns
    -------
    ndarray
        log10(M / (Msun/h)) of the new definition, one per draw.
    """
    from colossus.halo import concentration, mass_defs

    mdef = _check_mdef(mass_definition)
    if cm_model not in concentration.models:
        raise InputError(
            f"unknown concentration model {cm_model!r}; choose from {list(concentration.models)}"
        )
    if not (np.isfinite(c_scatter_dex) and c_scatter_dex >= 0):
        raise InputError(f"c_scatter_dex must be >= 0 dex, got {c_scatter_dex!r}")
    if cosmology is None:
        from astropy.cosmology import Planck18

        cosmology = Planck18
    log_m = np.asarray(log_m200c, dtype=float)
    if mdef == "200c":
        return log_m.copy()
    rng = np.random.default_rng(seed)
    m = 10.0**log_m
    with _ColossusCosmology(cosmology), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colossus notices outside a model's calibrated range
        c_mean = np.asarray(concentration.concentration(m, "200c", float(z), model=cm_model))
        c = c_mean * 10.0 ** (c_scatter_dex * rng.standard_normal(m.shape))
        m_new = np.asarray(mass_defs.changeMassDefinition(m, c, float(z), "200c", mdef)[0])
    return np.log10(m_new)


def convert_estimate(
    estimate: Any,
    mass_definition: str,
    *,
    cosmology: Cosmology | None = None,
    cm_model: str = DEFAULT_CM_MODEL,
    c_scatter_dex: float = DEFAULT_C_SCATTER_DEX,
    n_samples: int = 4000,
    seed: Any = 0,
) -> ConvertedMass:
    """Convert a `~astro_cnnmass.MassEstimate` (see `~astro_cnnmass.MassEstimate.mass_as`)."""
    mdef = _check_mdef(mass_definition)
    if cosmology is None and estimate.phase_space is not None:
        cosmology = estimate.phase_space.cosmology
    n_samples = int(n_samples)
    if n_samples < 100:
        raise InputError(f"n_samples must be at least 100, got {n_samples}")
    if estimate.ok and np.isfinite(estimate.log_mass_std):
        rng = np.random.default_rng(seed)
        draws = np.log10(estimate.samples(n_samples, seed=rng).to_value(MSUN_H))
        log_new = convert_log_mass_samples(
            draws,
            estimate.z_cluster,
            mdef,
            cosmology=cosmology,
            cm_model=cm_model,
            c_scatter_dex=c_scatter_dex,
            seed=rng,
        )
        levels = np.quantile(log_new, QUANTILE_LEVELS)
    else:
        levels = np.full(len(QUANTILE_LEVELS), np.nan)
    quantiles = {q: 10 ** float(lv) * MSUN_H for q, lv in zip(QUANTILE_LEVELS, levels)}
    return ConvertedMass(
        mass_definition=mdef,
        mass=quantiles[0.5],
        mass_interval=(quantiles[0.16], quantiles[0.84]),
        quantiles=quantiles,
        concentration_model=cm_model,
        concentration_scatter_dex=float(c_scatter_dex),
        profile="nfw",
        n_samples=n_samples,
    )
