"""Small synthetic catalogues shared by the training and uncertainty tests."""

from types import SimpleNamespace

import numpy as np


def toy_catalog(
    n_hosts=150, n_los=2, seed=0, z=0.1, *, host0=0, concentrated=False, poor_last_host=False
):
    """Gaussian velocity clouds with sigma = 1000 km/s (M / 1e15)^(1/3), 20-40 galaxies each.

    Parameters
    ----------
    concentrated : bool
        R = 1.6 u^2 Mpc/h (centrally concentrated, as real clusters) instead of uniform in
        [0, 1.8] Mpc/h (some galaxies then fall outside the 1.6 Mpc/h aperture).
    poor_last_host : bool
        Give the last host only 5 galaxies per line of sight (dropped by the richness cut).
    """
    rng = np.random.default_rng(seed)
    log_m = rng.uniform(14.0, 15.0, n_hosts)
    R, v, offsets = [], [], [0]
    cols = {"host_id": [], "los_id": [], "log_m200c": [], "z": []}
    for h in range(n_hosts):
        sigma = 1000.0 * 10 ** ((log_m[h] - 15.0) / 3)
        for los in range(n_los):
            n = 5 if poor_last_host and h == n_hosts - 1 else int(rng.integers(20, 40))
            if concentrated:
                R.append(1.6 * rng.uniform(0.0, 1.0, n) ** 2)
            else:
                R.append(rng.uniform(0.0, 1.8, n))
            v.append(rng.normal(0.0, sigma, n))
            offsets.append(offsets[-1] + n)
            for key, val in zip(cols, (host0 + h, los, log_m[h], z)):
                cols[key].append(val)
    return SimpleNamespace(
        R=np.concatenate(R),
        v=np.concatenate(v),
        offsets=np.asarray(offsets),
        clusters={k: np.asarray(val) for k, val in cols.items()},
        meta={"generator_version": "toy", "seed": seed, "cosmology": {"name": "multidark-planck"}},
    )
