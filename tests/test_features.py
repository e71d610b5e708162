"""Tests of astro_cnnmass.features.config: batched KDE images vs scipy.stats.gaussian_kde."""

import numpy as np
import pytest
from scipy.stats import gaussian_kde

from astro_cnnmass.features.config import FeatureConfig, pack
from astro_cnnmass.features.kde import kde_image, kde_images

CFG = FeatureConfig()


def scipy_image(R, v, config):
    """The paper's reference: scipy gaussian_kde on the grid, normalised to sum 1."""
    if config.kind == "1d":
        kde = gaussian_kde(v, bw_method=config.bandwidth)
        d = kde(config.v_centres)
        return d / d.sum()
    kde = gaussian_kde(np.vstack([v, R]), bw_method=config.bandwidth)
    V, RR = np.meshgrid(config.v_centres, config.R_centres, indexing="ij")
    d = kde(np.vstack([V.ravel(), RR.ravel()])).reshape(V.shape)
    return d / d.sum()


def make_cluster(rng, N, corr=0.0, config=CFG):
    """A cylinder-cut cluster: R flat in area, Gaussian v with a linear R-v trend ``corr``."""
    sigma = rng.uniform(250.0, 1100.0)
    R = config.aperture_mpch * np.sqrt(rng.uniform(0, 1, N))
    v = rng.normal(0.0, sigma, N) + corr * sigma * (R - 0.5 * config.aperture_mpch) * 3
    v = np.clip(v, -0.999 * config.v_cut_kms, 0.999 * config.v_cut_kms)
    return R, v


def assert_matches(img, ref, rtol=1e-10, floor=1e-200):
    """Relative agreement on every pixel above ``floor`` x the image maximum."""
    assert img.shape == ref.shape
    sig = ref > floor * ref.max()
    np.testing.assert_allclose(img[sig], ref[sig], rtol=rtol, atol=0)
    np.testing.assert_allclose(img[~sig], ref[~sig], rtol=0, atol=floor * ref.max())


@pytest.fixture(scope="module")
def clusters():
    rng = np.random.default_rng(1902)
    sizes = [3, 4, 5, 8, 13, 30, 50, 80, 81, 120, 200, 500]
    out = [make_cluster(rng, N) for N in sizes for _ in range(2)]
    # strongly correlated (R, v): these exercise the direct (safe) path
    out += [make_cluster(rng, N, corr) for N in (10, 60, 300) for corr in (1.0, 3.0, 10.0)]
    return out


@pytest.fixture(scope="module")
def packed(clusters):
    return pack([c[0] for c in clusters], [c[1] for c in clusters])


def test_2d_matches_scipy(clusters, packed):
    R, v, off = packed
    images, valid = kde_images(R, v, off, CFG)
    assert images.shape == (len(clusters), 48, 48) and images.dtype == np.float64
    assert valid.all()
    for img, (r, x) in zip(images, clusters):
        assert_matches(img, scipy_image(r, x, CFG))


def test_safe_path_is_used_and_matches(clusters, monkeypatch):
    import astro_cnnmass.features.kde as F

    calls = []
    orig = F._direct_2d
    monkeypatch.setattr(F, "_direct_2d", lambda *a: calls.append(1) or orig(*a))
    rng = np.random.default_rng(5)
    R = rng.uniform(0, 1.6, 200)
    v = 1300.0 * (R - 0.8) + rng.normal(0, 120.0, 200)  # rho ~ 0.98
    img = kde_image(R, v, CFG)
    assert calls, "a strongly correlated cluster should take the direct path"
    assert_matches(img, scipy_image(R, v, CFG))


def test_1d_matches_scipy(clusters, packed):
    cfg = FeatureConfig(kind="1d")
    R, v, off = packed
    images, valid = kde_images(R, v, off, cfg)
    assert images.shape == (len(clusters), 48) and valid.all()
    for img, (r, x) in zip(images, clusters):
        assert_matches(img, scipy_image(r, x, cfg))


@pytest.mark.parametrize("kind", ["2d", "1d"])
def test_batched_equals_single(clusters, packed, kind):
    cfg = FeatureConfig(kind=kind)
    R, v, off = packed
    images, _ = kde_images(R, v, off, cfg, chunk_size=300)
    for img, (r, x) in zip(images, clusters):
        np.testing.assert_allclose(img, kde_image(r, x, cfg), rtol=1e-12, atol=1e-300)


def test_normalisation_and_grid(packed):
    R, v, off = packed
    images, _ = kde_images(R, v, off, CFG)
    np.testing.assert_allclose(images.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    assert np.all(images >= 0)
    np.testing.assert_allclose(CFG.v_centres[[0, -1]], [-2200 + 2200 / 48, 2200 - 2200 / 48])
    np.testing.assert_allclose(CFG.R_centres[[0, -1]], [0.8 / 48, 1.6 - 0.8 / 48])


def test_axes_orientation():
    # galaxies at large positive v and small R: the mass sits at high axis-0, low axis-1 index
    rng = np.random.default_rng(3)
    R = rng.uniform(0.05, 0.3, 40)
    v = rng.uniform(1500, 2000, 40)
    img = kde_image(R, v)
    iv, iR = np.unravel_index(img.argmax(), img.shape)
    assert iv > 36 and iR < 10


@pytest.mark.parametrize("kind", ["2d", "1d"])
def test_float32_option(clusters, packed, kind):
    cfg = FeatureConfig(kind=kind)
    R, v, off = packed
    ref, _ = kde_images(R, v, off, cfg)
    img, valid = kde_images(R, v, off, cfg, dtype=np.float32)
    assert img.dtype == np.float32 and valid.all()
    sig = ref > 1e-20 * ref.max(axis=tuple(range(1, ref.ndim)), keepdims=True)
    np.testing.assert_allclose(img[sig], ref[sig], rtol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float32_storage_of_float64_images_is_one_rounding(packed, backend):
    """out_dtype=float32: computed in float64, each image rounded once as it is stored."""
    if backend == "torch":
        pytest.importorskip("torch")
    R, v, off = packed
    # a cluster with too few galaxies and one with a NaN velocity stay NaN rows
    R, v = (
        np.concatenate([R, [0.1, 0.2], [0.3, 0.4, 0.5]]),
        np.concatenate([v, [1, 2], [3, np.nan, 5]]),
    )
    off = np.concatenate([off, [off[-1] + 2, off[-1] + 5]])
    ref, vref = kde_images(R, v, off, backend=backend)
    img, valid = kde_images(R, v, off, backend=backend, out_dtype=np.float32)
    assert img.dtype == np.float32
    np.testing.assert_array_equal(valid, vref)
    assert valid[:-2].all() and not valid[-2:].any()
    np.testing.assert_array_equal(img, ref.astype(np.float32))  # NaN rows included


@pytest.mark.parametrize("kind", ["2d", "1d"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_backend_equals_numpy(packed, kind, dtype):
    pytest.importorskip("torch")
    cfg = FeatureConfig(kind=kind)
    R, v, off = packed
    ref, vref = kde_images(R, v, off, cfg, dtype=dtype)
    img, valid = kde_images(R, v, off, cfg, backend="torch", device="cpu", dtype=dtype)
    assert img.dtype == ref.dtype and np.array_equal(valid, vref)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    sig = ref > 1e-30 * ref.max()
    np.testing.assert_allclose(img[sig], ref[sig], rtol=rtol)


def test_invalid_clusters_flagged_without_breaking_neighbours():
    rng = np.random.default_rng(11)
    good = [make_cluster(rng, 40) for _ in range(3)]
    bad = [
        (np.array([0.1, 0.2]), np.array([10.0, -30.0])),  # 2 galaxies
        (np.zeros(0), np.zeros(0)),  # empty
        (np.full(20, 0.5), rng.normal(0, 500, 20)),  # all at one R: singular
        (rng.uniform(0, 1.6, 20), np.full(20, 120.0)),  # all at one v: singular
        (np.r_[rng.uniform(0, 1.6, 19), np.nan], rng.normal(0, 500, 20)),  # NaN
        (rng.uniform(0, 1.6, 20), np.r_[rng.normal(0, 500, 19), np.inf]),  # inf
        (np.linspace(0.1, 1.5, 20), np.linspace(-900, 900, 20)),  # collinear: singular
    ]
    order = [good[0], *bad[:4], good[1], *bad[4:], good[2]]
    R, v, off = pack([c[0] for c in order], [c[1] for c in order])
    for kind in ("2d", "1d"):
        cfg = FeatureConfig(kind=kind)
        images, valid = kde_images(R, v, off, cfg)
        expect_1d = kind == "1d"
        expected = [True, False, False, expect_1d, False, True, False, False, expect_1d, True]
        assert valid.tolist() == expected
        assert np.isnan(images[~valid]).all()
        for i, c in zip([0, 5, 9], good):
            assert_matches(images[i], scipy_image(c[0], c[1], cfg))


def test_kde_image_raises_clearly():
    with pytest.raises(ValueError, match="at least 3"):
        kde_image([0.1, 0.2], [0.0, 100.0])
    with pytest.raises(ValueError, match="singular"):
        kde_image(np.full(10, 0.4), np.linspace(-500, 500, 10))
    with pytest.raises(ValueError, match="not finite"):
        kde_image([0.1, 0.2, np.nan, 0.5], [0.0, 100.0, 3.0, 4.0])


def test_fixed_kernel_matches_direct_sum():
    cfg = FeatureConfig(kernel="fixed", fixed_sigma_v_kms=150.0, fixed_sigma_R_mpch=0.1)
    rng = np.random.default_rng(2)
    R, v = make_cluster(rng, 70)
    V, RR = np.meshgrid(cfg.v_centres, cfg.R_centres, indexing="ij")
    d = np.exp(
        -0.5 * ((V[..., None] - v) / 150.0) ** 2 - 0.5 * ((RR[..., None] - R) / 0.1) ** 2
    ).sum(-1)
    assert_matches(kde_image(R, v, cfg), d / d.sum())


def test_input_validation():
    R, v, off = pack([np.ones(3)], [np.ones(3)])
    with pytest.raises(ValueError, match="offsets"):
        kde_images(R, v, np.array([0, 5]))
    with pytest.raises(ValueError, match="same length"):
        kde_images(R, v[:2], off)
    with pytest.raises(ValueError, match="backend"):
        kde_images(R, v, off, backend="jax")
    with pytest.raises(ValueError, match="dtype"):
        kde_images(R, v, off, dtype=np.int32)
    with pytest.raises(ValueError, match="cluster 0"):
        pack([np.ones(3)], [np.ones(4)])
    images, valid = kde_images(np.zeros(0), np.zeros(0), np.array([0]))
    assert images.shape == (0, 48, 48) and valid.shape == (0,)


def test_config_round_trip_and_validation():
    cfg = FeatureConfig(kind="1d", n_v=32, v_cut_kms=3000, bandwidth=0.15)
    d = cfg.to_dict()
    assert d["v_cut_kms"] == 3000.0 and isinstance(d["v_cut_kms"], float)
    assert FeatureConfig.from_dict(d) == cfg
    fixed = FeatureConfig(kernel="fixed", fixed_sigma_v_kms=100, fixed_sigma_R_mpch=0.05)
    assert FeatureConfig.from_dict(fixed.to_dict()) == fixed
    with pytest.raises(ValueError, match="bogus"):
        FeatureConfig.from_dict({**d, "bogus": 1})
    bad = [
        dict(kind="3d"),
        dict(n_v=0),
        dict(n_R=1.5),
        dict(n_v=True),
        dict(aperture_mpch=-1),
        dict(v_cut_kms=np.inf),
        dict(bandwidth=0),
        dict(kernel="tophat"),
        dict(kernel="fixed"),
        dict(kernel="fixed", fixed_sigma_v_kms=100.0),
        dict(fixed_sigma_v_kms=100.0),
        dict(kind="1d", kernel="fixed", fixed_sigma_v_kms=1.0, fixed_sigma_R_mpch=1.0),
    ]
    for kwargs in bad:
        with pytest.raises(ValueError, match="FeatureConfig"):
            FeatureConfig(**kwargs)


@pytest.mark.parametrize("chunk_size", [1, 64])
def test_small_chunks_and_blocked_safe_path(clusters, chunk_size):
    # chunk_size below a cluster's size: one cluster per chunk, and the direct path runs over
    # galaxy blocks (running log-sum-exp)
    sub = clusters[-6:]
    R, v, off = pack([c[0] for c in sub], [c[1] for c in sub])
    images, valid = kde_images(R, v, off, CFG, chunk_size=chunk_size)
    assert valid.all()
    for img, (r, x) in zip(images, sub):
        assert_matches(img, scipy_image(r, x, CFG))


def test_dtype_spellings():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    R, v = make_cluster(rng, 30)
    for dt in (np.float32, "float32", torch.float32):
        assert kde_image(R, v, dtype=dt).dtype == np.float32


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float32_images_of_strongly_correlated_clusters_stay_exact(backend):
    """dtype=float32 on R-v correlations up to 0.995: valid, finite, equal to float64.

    Only the batched product runs in float32 (the exponentials and guards stay float64), and
    a cluster whose float32 product may have lost terms to underflow is redone in float64, so
    strong correlations (large split exponents) cannot give non-finite images.
    """
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    Rs, vs, counts = [], [], []
    for rho in np.linspace(0.0, 0.995, 120):
        n = int(rng.integers(10, 300))
        a = rng.standard_normal(n)
        b = rho * a + np.sqrt(1 - rho**2) * rng.standard_normal(n)
        Rs.append(np.clip(np.abs(0.8 + 0.35 * a), 0, 1.59))
        vs.append(np.clip(600 * b * rng.choice([-1, 1]), -2199, 2199))
        counts.append(n)
    off = np.concatenate([[0], np.cumsum(counts)])
    R, v = np.concatenate(Rs), np.concatenate(vs)
    ref, v_ref = kde_images(R, v, off, backend=backend)
    img, valid = kde_images(R, v, off, backend=backend, dtype=np.float32)
    assert valid.all() and np.array_equal(valid, v_ref) and np.isfinite(img).all()
    peak = ref.max(axis=(1, 2), keepdims=True)
    assert np.max(np.abs(img - ref) / peak) < 3e-6
    sig = ref > 1e-20 * peak
    np.testing.assert_allclose(img[sig], ref[sig], rtol=1e-5)
