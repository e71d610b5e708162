"""pytest configuration shared by the test suite, the module doctests and the docs."""

import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

try:
    from pytest_astropy_header.display import PYTEST_HEADER_MODULES, TESTED_VERSIONS
except ImportError:  # pragma: no cover
    PYTEST_HEADER_MODULES, TESTED_VERSIONS = {}, {}


def pytest_configure(config):
    """Report the versions of the packages that matter in the pytest header."""
    config.option.astropy_header = True
    for name in ("Pandas", "h5py", "Matplotlib"):
        PYTEST_HEADER_MODULES.pop(name, None)
    PYTEST_HEADER_MODULES.update(
        {
            "astropy": "astropy",
            "asdf": "asdf",
            "torch": "torch",
            "colossus": "colossus",
            "matplotlib": "matplotlib",
        }
    )
    from astro_cnnmass import __version__

    TESTED_VERSIONS["astro_cnnmass"] = __version__
