"""astro_cnnmass: dynamical masses of galaxy clusters from projected phase space.

The public API::

    from astro_cnnmass import DynamicalMassEstimator, estimate_mass, phase_space

See the documentation for the data flow (member list -> phase space -> KDE image -> CNN -> M200c)
and the units conventions (M200c in Msun/h, R in physical Mpc/h, v in km/s).
"""

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - only without an install
    __version__ = "0.0.0"

from .classical import MSigmaPowerLaw, evrard_mass, evrard_sigma, velocity_dispersion
from .estimator import DynamicalMassEstimator, estimate_mass
from .exceptions import AstroCnnmassWarning, InputError, TooFewGalaxiesError
from .observe.phase_space import Cylinder, PhaseSpace, phase_space
from .result import MassEstimate

__all__ = [
    "AstroCnnmassWarning",
    "Cylinder",
    "DynamicalMassEstimator",
    "InputError",
    "MSigmaPowerLaw",
    "MassEstimate",
    "PhaseSpace",
    "TooFewGalaxiesError",
    "__version__",
    "estimate_mass",
    "evrard_mass",
    "evrard_sigma",
    "phase_space",
    "velocity_dispersion",
]
