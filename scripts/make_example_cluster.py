"""Rebuild the bundled example cluster ``astro_cnnmass/data/example_cluster.ecsv``.

The example is **synthetic**: one line of sight of a mock cluster made by the package's own
generator (``astro_cnnmass.mocks``, seed below; M200c near 10^14.6 Msun/h at z near 0.05, no
major merger and no miscentring), with its projected phase space (R, v) turned into
sky positions and redshifts around a made-up centre with Planck18:

* position angles are drawn uniformly, ``theta = R / (D_A(z_cl) h)``;
* ``z = z_cl + v (1 + z_cl) / c``; a redshift error column holds the mock velocity error.

Run::

    python scripts/make_example_cluster.py
"""

from __future__ import annotations

import argparse

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.cosmology import Planck18
from astropy.table import Table

from astro_cnnmass.datasets import example_cluster_path
from astro_cnnmass.mocks import MockConfig, generate_catalog

C_KMS = 299792.458
SEED = 20260101
CENTER = SkyCoord(210.2590 * u.deg, 2.8789 * u.deg)


def build(seed: int = SEED) -> Table:
    """The example member table (see the module docstring)."""
    # a relaxed, well-centred cluster (no major merger, no miscentring), so that the first
    # example shows the typical case; the held-out test mocks cover mergers and miscentring
    config = MockConfig().replace(
        log_m_range=(14.55, 14.65),
        z_range=(0.045, 0.055),
        p_merger=(0.0, 0.0),
        miscentring_fraction=(0.0, 0.0),
    )
    cat = generate_catalog(1, seed=seed, lines_of_sight=1, config=config, progress=False)
    R, v, is_member = (np.asarray(a, dtype=float) for a in cat.galaxies(0))
    clusters = cat.clusters
    z_cl = float(clusters["z"][0])
    rng = np.random.default_rng(seed)
    theta = R / (Planck18.angular_diameter_distance(z_cl).to_value(u.Mpc) * Planck18.h)
    coords = CENTER.directional_offset_by(rng.uniform(0, 360, R.size) * u.deg, theta * u.rad)
    z = z_cl + v * (1 + z_cl) / C_KMS
    err = float(clusters["velocity_error_kms"][0]) * (1 + z_cl) / C_KMS
    table = Table(
        {
            "ra": coords.ra.deg,
            "dec": coords.dec.deg,
            "z": z,
            "z_err": np.full(R.size, err),
            "is_member": np.asarray(is_member, dtype=bool),
        }
    )
    table["ra"].unit = table["dec"].unit = u.deg
    table.meta.update(
        {
            "description": "SYNTHETIC example cluster (astro_cnnmass mock generator), "
            "not a real cluster; is_member is the generator's truth (within r200c)",
            "ra_cluster": float(CENTER.ra.deg),
            "dec_cluster": float(CENTER.dec.deg),
            "z_cluster": z_cl,
            "true_log_m200c": float(clusters["log_m200c"][0]),
            "generator_seed": seed,
            "cosmology": "Planck18 (positions); multidark-planck (generator)",
        }
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    table = build(args.seed)
    table.write(example_cluster_path(), format="ascii.ecsv", overwrite=True)
    meta = table.meta
    print(
        f"wrote {len(table)} galaxies to {example_cluster_path()} "
        f"(true log10 M200c = {meta['true_log_m200c']:.3f}, z = {meta['z_cluster']:.4f})"
    )


if __name__ == "__main__":
    main()
