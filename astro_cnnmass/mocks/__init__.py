"""Mock cluster observations: a semi-analytic generator of projected phase space.

The generator (see ``docs/mocks.rst``) follows the steps G1–G10 of the physics note: host halos
(:mod:`.halos`), member galaxies (:mod:`.members`, :mod:`.population`), velocities
(:mod:`.velocities`), surroundings (:mod:`.surroundings`) and observation (:mod:`.observe`); the
output is a :class:`MockCatalog` (:mod:`.catalog`).
"""

from .catalog import CatalogWriter, MockCatalog, MockCatalogConverter
from .config import MockConfig, MockConfigError
from .generator import generate_catalog, simulate_host

__all__ = [
    "CatalogWriter",
    "MockCatalog",
    "MockCatalogConverter",
    "MockConfig",
    "MockConfigError",
    "generate_catalog",
    "simulate_host",
]
