"""The observation side: member lists -> projected phase space.

* :mod:`~astro_cnnmass.observe.phase_space` -- (R, v) from a Table / QTable / SkyCoord and
  redshifts, centre and cluster-redshift estimation, the cylinder (handed on here);
* :mod:`~astro_cnnmass.observe.batch_tables` and :mod:`~astro_cnnmass.observe.packed` -- the
  member and cluster tables of a batch, checked, grouped and converted at once;
* :mod:`~astro_cnnmass.observe.query` -- astroquery front end (SDSS, NED);
* :mod:`~astro_cnnmass.observe.spectra` -- redshifts from spectra with specutils.

``query`` and ``spectra`` are imported on demand (``from astro_cnnmass.observe.query import
query_sdss_members``), so that importing the package does not import astroquery or specutils.
"""

from .phase_space import (
    MPC_H,
    Cylinder,
    PhaseSpace,
    cylinder_mask,
    estimate_center,
    estimate_redshift,
    phase_space,
)

__all__ = [
    "MPC_H",
    "Cylinder",
    "PhaseSpace",
    "cylinder_mask",
    "estimate_center",
    "estimate_redshift",
    "phase_space",
]
