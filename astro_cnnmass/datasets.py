"""Example data shipped with astro_cnnmass."""

from __future__ import annotations

from pathlib import Path

from astropy.table import Table

__all__ = ["example_cluster_path", "load_example_cluster"]

_DATA = Path(__file__).parent / "data"


def example_cluster_path() -> Path:
    """Path of the bundled example member table (ECSV)."""
    return _DATA / "example_cluster.ecsv"


def load_example_cluster() -> Table:
    """The bundled example cluster: a **synthetic** member list (not a real cluster).

    It is one line of sight of a mock cluster made by the package's own generator
    (``astro_cnnmass.mocks``), converted to sky positions and redshifts; ``meta`` holds the
    cluster centre (``ra_cluster``, ``dec_cluster``, deg), ``z_cluster``, the true
    ``true_log_m200c`` [log10 Msun/h] and the generator seed. It is rebuilt by
    ``scripts/make_example_cluster.py``.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``ra``, ``dec`` (deg), ``z``, ``z_err`` and ``is_member`` (the truth).
    """
    return Table.read(example_cluster_path(), format="ascii.ecsv")
