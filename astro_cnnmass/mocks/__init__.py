"""Mock cluster observations: a semi-analytic generator of projected phase space.

The generator (see ``docs/mocks.rst``) follows the steps G1–G10 of the physics note: host halos
(``mocks.halos``), member galaxies (``mocks.members``, ``mocks.population``), member
kinematics from distribution functions (``mocks.dflibrary``; Jeans + Gaussian velocities in
``mocks.velocities`` for the generator-1.0 variant), surroundings and infall
(``mocks.surroundings``) and observation
(``mocks.observe``); the output is a :class:`~astro_cnnmass.mocks.MockCatalog`
(``mocks.catalog``).
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
