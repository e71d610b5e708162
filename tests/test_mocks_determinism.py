"""Same seed, same catalogue: independent of the number of workers and of the chunking."""

import numpy as np

from astro_cnnmass.mocks import generate_catalog


def _digest(cat):
    return [
        cat.offsets,
        cat.R,
        cat.v,
        cat.is_member,
        cat.log_mstar,
        *[cat.clusters[k] for k in sorted(cat.clusters)],
    ]


def test_same_seed_identical_across_workers_and_chunks():
    a = generate_catalog(6, seed=42, workers=1, progress=False)
    b = generate_catalog(6, seed=42, workers=2, progress=False, chunk_size=2)
    c = generate_catalog(6, seed=42, workers=1, progress=False, chunk_size=1)
    for x, y, z in zip(_digest(a), _digest(b), _digest(c)):
        assert np.array_equal(x, y, equal_nan=True)
        assert np.array_equal(x, z, equal_nan=True)


def test_host_streams_do_not_depend_on_n_hosts_and_seed_matters():
    a = generate_catalog(3, seed=42, progress=False)
    b = generate_catalog(5, seed=42, progress=False)
    sel = b.select(np.arange(a.n_clusters))
    assert np.array_equal(a.v, sel.v)
    d = generate_catalog(3, seed=43, progress=False)
    assert not np.array_equal(a.clusters["log_m200c"], d.clusters["log_m200c"])
    g = generate_catalog(2, seed=np.random.default_rng(1), progress=False)
    assert g.n_clusters == 6 and g.meta["seed"] >= 0
