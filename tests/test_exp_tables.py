"""The split KDE's exponential matrices from exponentials of small tables.

``kde_images`` builds the three exponential matrices of most clusters from two small tables
each (:mod:`astro_cnnmass.features.exp_tables`); these tests hold them to the direct
exponentials of the same split, cluster by cluster, on both backends.
"""

import numpy as np
import pytest

from astro_cnnmass.features import kde
from astro_cnnmass.features.config import FeatureConfig, pack
from astro_cnnmass.features.exp_tables import grid_factors


def mock_clusters(n, seed=0, corr_max=0.995):
    """Clusters of 3-400 galaxies with R-v correlations from 0 to ``corr_max``."""
    rng = np.random.default_rng(seed)
    Rs, vs = [], []
    for rho in rng.uniform(0.0, corr_max, n) ** 2:
        size = int(rng.integers(3, 400)) if rng.random() < 0.2 else int(rng.integers(30, 80))
        a = rng.standard_normal(size)
        b = rho * a + np.sqrt(1 - rho**2) * rng.standard_normal(size)
        Rs.append(np.clip(np.abs(0.8 + 0.35 * a), 0, 1.59))
        vs.append(np.clip(rng.uniform(150, 1200) * b * rng.choice([-1, 1]), -2199, 2199))
    return pack(Rs, vs)


@pytest.mark.parametrize("n", [2, 3, 7, 12, 48, 49, 50, 97])
def test_grid_factors_split_any_grid(n):
    n_hi, n_lo = grid_factors(n)
    assert n_hi * n_lo == n and n_lo * n_lo >= n and n_hi <= n_lo


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_tables_equal_direct_exponentials(backend, monkeypatch):
    if backend == "torch":
        pytest.importorskip("torch")
    R, v, off = mock_clusters(400)
    tables, valid_t = kde.kde_images(R, v, off, backend=backend)
    monkeypatch.setattr(kde, "_USE_TABLES", False)
    direct, valid_d = kde.kde_images(R, v, off, backend=backend)
    assert valid_t.all() and np.array_equal(valid_t, valid_d)
    peak = direct.max(axis=(1, 2), keepdims=True)
    assert np.max(np.abs(tables - direct) / peak) < 1e-12
    significant = direct > 1e-100 * peak
    np.testing.assert_allclose(tables[significant], direct[significant], rtol=1e-11)


def test_clusters_outside_the_tables_range_take_the_direct_exponentials(monkeypatch):
    """Strong correlations and narrow kernels give factors beyond exp(+-700): direct path."""
    from astro_cnnmass.features import exp_tables

    fitted = []
    original = exp_tables.exp_tables

    def spy(*args):
        tables, fits = original(*args)
        fitted.append(fits.copy())
        return tables, fits

    monkeypatch.setattr(kde, "exp_tables", spy)
    R, v, off = mock_clusters(60, seed=3)
    images, valid = kde.kde_images(R, v, off)
    fits = np.concatenate(fitted)
    assert fits.any() and not fits.all()  # both kinds in one batch
    monkeypatch.setattr(kde, "_USE_TABLES", False)
    direct, _ = kde.kde_images(R, v, off)
    assert valid.all()
    peak = direct.max(axis=(1, 2), keepdims=True)
    assert np.max(np.abs(images - direct) / peak) < 1e-12


@pytest.mark.parametrize("shape", [(48, 48), (37, 20), (2, 64)])
def test_tables_on_other_grids(shape, monkeypatch):
    cfg = FeatureConfig(n_v=shape[0], n_R=shape[1])
    R, v, off = mock_clusters(80, seed=5, corr_max=0.5)
    images, valid = kde.kde_images(R, v, off, cfg)
    monkeypatch.setattr(kde, "_USE_TABLES", False)
    direct, _ = kde.kde_images(R, v, off, cfg)
    assert valid.all() and images.shape == (80, *shape)
    peak = direct.max(axis=(1, 2), keepdims=True)
    assert np.max(np.abs(images - direct) / peak) < 1e-12
