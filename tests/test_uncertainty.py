"""Tests of astro_cnnmass.uncertainty: calibration, mass-function prior, out-of-domain score."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats
from toy_catalogs import toy_catalog as _toy_catalog

from astro_cnnmass.features.config import FeatureConfig
from astro_cnnmass.model.bundle import ModelBundle
from astro_cnnmass.model.metrics import interval_coverage
from astro_cnnmass.model.networks import build_network, default_network_config
from astro_cnnmass.model.predictor import Predictor
from astro_cnnmass.model.samples import prepare_features
from astro_cnnmass.model.training import train_model
from astro_cnnmass.uncertainty.calibration import (
    QUANTILE_LEVELS,
    calibration_mass_range,
    fit_std_calibration,
    gaussian_quantiles,
)
from astro_cnnmass.uncertainty.ood import embeddings, fit_ood_model, ood_scores, ood_threshold
from astro_cnnmass.uncertainty.priors import (
    log_mass_function,
    posterior_quantiles,
    posterior_samples,
    reweight_to_mass_function,
    reweighted_quantiles,
)

torch.set_num_threads(1)


# ---------------------------------------------------------------------------- helpers
def toy_catalog(n_hosts, n_los=2, seed=0, z=0.1, host0=0):
    """Concentrated toy clouds (see toy_catalogs)."""
    return _toy_catalog(n_hosts, n_los, seed, z, host0=host0, concentrated=True)


def uniform_catalog(n_clusters, seed=0, z=0.1, aperture=1.6, v_cut=2200.0):
    """Phase spaces drawn uniformly in R in [0, aperture] and v in [-v_cut, v_cut]."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(20, 40, n_clusters)
    n = int(sizes.sum())
    return SimpleNamespace(
        R=rng.uniform(0.0, aperture, n),
        v=rng.uniform(-v_cut, v_cut, n),
        offsets=np.concatenate([[0], np.cumsum(sizes)]),
        clusters={
            "host_id": np.arange(n_clusters),
            "log_m200c": np.full(n_clusters, 15.0),
            "z": np.full(n_clusters, z),
        },
    )


def _features(bundle, cat):
    return prepare_features(cat, bundle.cylinder, FeatureConfig.from_dict(bundle.feature_config))


@pytest.fixture(scope="module")
def trained():
    bundle = train_model(
        toy_catalog(400, seed=0),
        epochs=10,
        batch_size=32,
        seed=1,
        progress=False,
        val_fraction=0.25,
        patience=None,
        n_per_bin=None,
        command="pytest",
    )
    return bundle


# ---------------------------------------------------------------------------- calibration
def _gaussian_set(n, seed, inflate):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(14.0, 15.0, n)
    std = rng.uniform(0.08, 0.2, n)
    mean = truth + rng.normal(0.0, inflate * std)
    return mean, std, truth


def test_fit_std_calibration_restores_coverage():
    mean_v, std_v, m_v = _gaussian_set(4000, seed=0, inflate=1.6)  # overconfident network
    scale = fit_std_calibration(mean_v, std_v, m_v)
    assert scale == pytest.approx(1.6, rel=0.08)
    # exact on the calibration set, by construction
    cov_val = interval_coverage(m_v, mean_v, std_v * scale)["overall"]["0.68"]
    assert cov_val == pytest.approx(0.68, abs=0.005)
    # independent "test" set: targets of issue 5, overall and per 0.25-dex bin
    mean_t, std_t, m_t = _gaussian_set(4000, seed=1, inflate=1.6)
    before = interval_coverage(m_t, mean_t, std_t)
    assert before["overall"]["0.68"] < 0.5
    after = interval_coverage(m_t, mean_t, std_t * scale)
    assert 0.64 <= after["overall"]["0.68"] <= 0.72
    assert 0.87 <= after["overall"]["0.90"] <= 0.93
    assert len(after["bins"]) == 4
    for b in after["bins"]:
        assert 0.62 <= b["0.68"] <= 0.74 and 0.85 <= b["0.90"] <= 0.95


def test_fit_std_calibration_median_rule_and_errors():
    mean, std, m = _gaussian_set(500, seed=2, inflate=1.0)
    t = np.abs(m - mean) / std
    assert fit_std_calibration(mean, std, m, level=0.5) == pytest.approx(
        np.median(t) / stats.norm.ppf(0.75)
    )
    std_nan = std.copy()
    std_nan[:10] = np.nan  # ignored
    assert np.isfinite(fit_std_calibration(mean, std_nan, m))
    with pytest.raises(ValueError, match="no cluster"):
        fit_std_calibration([14.0], [np.nan], [14.0])
    with pytest.raises(ValueError, match="level"):
        fit_std_calibration(mean, std, m, level=1.2)


# ---------------------------------------------------------------------------- quantiles
def test_quantiles_are_ordered_and_match_the_gaussian():
    mean, std = np.array([14.2, 14.9, np.nan]), np.array([0.1, 0.2, 0.1])
    gq = gaussian_quantiles(mean, std)
    assert gq.shape == (3, len(QUANTILE_LEVELS))
    assert np.all(np.diff(gq[:2], axis=1) > 0) and np.all(np.isnan(gq[2]))
    np.testing.assert_allclose(gq[:2, 2], mean[:2])
    # gridded Gaussian -> the same quantiles
    grid = mean[:2, None] + std[:2, None] * np.linspace(-7, 7, 801)[None, :]
    pdf = stats.norm.pdf(grid, mean[:2, None], std[:2, None])
    pq = posterior_quantiles(grid, pdf)
    np.testing.assert_allclose(pq, gq[:2], atol=2e-3)
    assert np.all(np.diff(pq, axis=1) > 0)
    samples = posterior_samples(grid, pdf, 4000, seed=0)
    assert samples.shape == (2, 4000)
    np.testing.assert_allclose(samples.std(axis=1), std[:2], rtol=0.05)


def test_mass_function_reweighting_pulls_high_masses_down():
    z = 0.1
    lmf = log_mass_function(np.array([14.0, 14.5, 15.0]), z)
    assert np.all(np.diff(lmf) < 0)  # the mass function falls with mass
    mean, std = np.array([14.0, 15.0]), np.array([0.15, 0.15])
    grid, pdf = reweight_to_mass_function(mean, std, z, prior_range=None)
    assert grid.shape == pdf.shape == (2, 400)
    np.testing.assert_allclose(np.trapezoid(pdf, grid, axis=1), 1.0, rtol=1e-6)
    q = posterior_quantiles(grid, pdf)
    assert np.all(np.diff(q, axis=1) > 0)
    shift = q[:, 2] - mean
    assert shift[0] < -0.01 and shift[1] < shift[0]  # down, and more at 10^15 than at 10^14
    # roughly sigma^2 ln(10) dlog10(dn/dlog10M)/dlog10M (Gaussian times a local power law)
    slope = np.gradient(log_mass_function(np.array([13.95, 14.05]), z))[0] / 0.1
    assert shift[0] == pytest.approx(0.15**2 * np.log(10) * slope, rel=0.3)
    # the posterior is narrower than the flat-prior Gaussian, and stays inside the prior range
    q_trunc = reweighted_quantiles(mean, std, z, prior_range=(13.9, 15.1))
    assert np.all((q_trunc >= 13.9) & (q_trunc <= 15.1))
    # redshift dependence: the mass function is steeper at higher z
    q_hi_z = reweighted_quantiles(mean[1:], std[1:], 0.4, prior_range=None)
    assert q_hi_z[0, 2] < q[1, 2]
    # invalid rows give NaN, not an exception
    _, pdf_bad = reweight_to_mass_function([14.0, np.nan], [0.1, 0.1], [0.1, 0.1])
    assert np.isfinite(pdf_bad[0]).all() and np.isnan(pdf_bad[1]).all()


def test_reweighting_reads_the_bundle(trained):
    grid, _ = reweight_to_mass_function([14.5], [0.3], 0.1, bundle=trained)
    lo, hi = trained.target_scaling["log_m_min"], trained.target_scaling["log_m_max"]
    assert grid[0, 0] >= lo - 1e-12 and grid[0, -1] <= hi + 1e-12
    shared = np.linspace(13.5, 15.5, 201)
    _, p2 = reweight_to_mass_function([14.5], [0.3], 0.1, bundle=trained, grid=shared)
    assert np.all(p2[0][(shared < lo) | (shared > hi)] == 0)


# ---------------------------------------------------------------------------- embedding / OOD
@pytest.mark.parametrize("arch", ["cnn2d", "cnn1d"])
def test_embed_is_the_penultimate_layer(arch):
    torch.manual_seed(0)
    net = build_network(default_network_config(arch, "gaussian")).eval()
    x = torch.rand(4, 48, 48) if arch == "cnn2d" else torch.rand(4, 48)
    z = torch.zeros(4)
    with torch.no_grad():
        e = net.embed(x, z)
        assert e.shape == (4, 64) and torch.all(e >= 0)
        torch.testing.assert_close(net.out(e), net(x, z))


def test_fit_ood_model_threshold_and_scores():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2000, 8))
    train[:, 7] = 0.0  # a dead unit: still invertible thanks to the shrinkage
    val = rng.normal(size=(1000, 8))
    val[:, 7] = 0.0
    model = fit_ood_model(train, val, percentile=99.0)
    assert model["threshold_set"] == "validation" and model["n_fit"] == 2000
    assert np.asarray(model["precision"]).shape == (8, 8)
    # chi distribution with 7 degrees of freedom: 99th percentile ~ 4.3
    assert model["threshold"] == pytest.approx(np.sqrt(stats.chi2.ppf(0.99, 7)), rel=0.1)
    with pytest.raises(ValueError):
        fit_ood_model(train[:1])


def test_ood_flags_uniform_phase_spaces(trained):
    bundle = trained
    ood = bundle.domain["ood"]
    assert ood["threshold_set"] == "validation" and ood["member"] == 0
    assert len(ood["mean"]) == 64 and np.isfinite(ood["threshold"])
    held_out = _features(bundle, toy_catalog(40, seed=5, host0=10_000))
    uniform = _features(bundle, uniform_catalog(60, seed=6))
    thr = ood_threshold(bundle)
    s_in = ood_scores(bundle, held_out["images"], held_out["z"], device="cpu")
    s_out = ood_scores(bundle, uniform["images"], uniform["z"], device="cpu")
    assert np.mean(s_in > thr) <= 0.1  # in-distribution mocks pass (~1 % expected)
    # uniform phase spaces are flagged: this toy network reads only the velocity width (the toy
    # mass does not depend on R), so a minority of them look like a ~10^15 cluster to it
    assert np.mean(s_out > thr) >= 0.6
    assert np.median(s_out) > 1.5 * np.median(s_in)
    # a Predictor gives the same scores (no network rebuild); NaN images give NaN
    pred = Predictor(bundle, device="cpu")
    np.testing.assert_allclose(ood_scores(pred, uniform["images"], uniform["z"]), s_out)
    bad = held_out["images"][:3].copy()
    bad[1] = np.nan
    s_bad = ood_scores(pred, bad, 0.1)
    assert np.isnan(s_bad[1]) and np.isfinite(s_bad[[0, 2]]).all()
    assert embeddings(pred, bad, 0.1).shape == (3, 64)
    # a bundle without an OOD model: NaN scores and threshold
    bare = bundle.replace(domain={k: v for k, v in bundle.domain.items() if k != "ood"})
    assert np.isnan(ood_threshold(bare))
    assert np.isnan(ood_scores(bare, bad, 0.1, device="cpu")).all()


def test_predictor_embeddings_give_the_same_ood_scores(trained):
    from astro_cnnmass.uncertainty.ood import normalized_ood_scores

    held_out = _features(trained, toy_catalog(40, seed=7, host0=20_000))
    pred = Predictor(trained, device="cpu")
    images, z = held_out["images"], held_out["z"]
    out = pred.predict(images, z, return_embeddings=True)
    np.testing.assert_array_equal(out["mean"], pred.predict(images, z)["mean"])
    np.testing.assert_allclose(out["embeddings"], embeddings(pred, images, z), rtol=1e-5, atol=1e-6)
    summaries = held_out["summaries"]
    np.testing.assert_allclose(
        normalized_ood_scores(
            pred, images, z, embeddings=out["embeddings"], summaries=summaries, log_mass=out["mean"]
        ),
        normalized_ood_scores(pred, images, z, summaries=summaries),
        rtol=1e-5,
    )
    # the summary part of the score cannot be computed from images alone
    assert "ood_summary" in trained.domain
    with pytest.raises(ValueError, match="phase-space summaries"):
        normalized_ood_scores(pred, images, z)


def test_calibration_uses_clusters_away_from_the_edges_of_the_training_range():
    # the bundled model's range, 13.5-15.5, calibrates on 14-15 (the range of the figures)
    assert calibration_mass_range({"log_m_min": 13.5, "log_m_max": 15.5}) == (14.0, 15.0)
    assert calibration_mass_range({"log_m_min": 13.5, "log_m_max": 15.5}, 0.25) == (13.75, 15.25)
    # a margin that would leave nothing keeps the whole range
    assert calibration_mass_range({"log_m_min": 14.0, "log_m_max": 14.8}) == (14.0, 14.8)
    with pytest.raises(ValueError, match="margin"):
        calibration_mass_range({"log_m_min": 13.5, "log_m_max": 15.5}, -0.1)


# ---------------------------------------------------------------------------- in the bundle
def test_train_model_stores_calibration(trained):
    bundle = trained
    cal = bundle.metrics["calibration"]
    scale = bundle.target_scaling["calibration"]["std_scale"]
    assert scale == cal["std_scale"] > 0 and cal["fitted_on"] == "validation"
    # this toy range (1 dex) is too narrow for the 0.5-dex margins: all validation clusters
    assert cal["log_m_range"] == pytest.approx(list(calibration_mass_range(bundle.target_scaling)))
    assert cal["n"] == bundle.training["n_val"]
    assert cal["coverage_after"]["0.68"] == pytest.approx(0.68, abs=0.06)
    assert set(cal["coverage_before"]) == {"0.68", "0.90"}
    assert cal["std_fallback"] == bundle.metrics["scatter_dex"]
    # the predictor applies it
    held_out = _features(bundle, toy_catalog(10, seed=7, host0=20_000))
    unscaled = bundle.replace(
        target_scaling={**bundle.target_scaling, "calibration": {"std_scale": 1.0}}
    )
    s1 = Predictor(bundle, device="cpu").predict(held_out["images"], held_out["z"])["std"]
    s0 = Predictor(unscaled, device="cpu").predict(held_out["images"], held_out["z"])["std"]
    np.testing.assert_allclose(s1, scale * s0, rtol=1e-10)


def test_calibration_and_ood_survive_asdf_round_trip(trained, tmp_path):
    bundle = trained
    back = ModelBundle.read(bundle.write(tmp_path / "model.asdf"))
    assert back.sha256 == bundle.sha256
    assert back.target_scaling["calibration"] == bundle.target_scaling["calibration"]
    assert back.metrics["calibration"] == bundle.metrics["calibration"]
    assert back.domain["ood"] == bundle.domain["ood"]
    imgs = _features(bundle, uniform_catalog(5, seed=8))
    np.testing.assert_allclose(
        ood_scores(back, imgs["images"], imgs["z"], device="cpu"),
        ood_scores(bundle, imgs["images"], imgs["z"], device="cpu"),
    )


def test_image_ood_model_flags_images_unlike_the_training_set():
    from astro_cnnmass.features.config import FeatureConfig, pack
    from astro_cnnmass.features.kde import kde_images
    from astro_cnnmass.uncertainty.ood import _image_distance, fit_image_ood_model

    cat = toy_catalog(300, n_los=1, seed=11)
    images, ok = kde_images(cat.R, cat.v, cat.offsets, FeatureConfig())
    images = images[ok]
    model = fit_image_ood_model(images[:200], images[200:250], n_components=8)
    held_out = _image_distance(model, images[250:]) / model["threshold"]
    assert (held_out > 1).mean() < 0.1
    rng = np.random.default_rng(0)
    rings = [rng.uniform(1.45, 1.6, 60) for _ in range(10)]
    spikes = [rng.normal(0, 30, 60) for _ in range(10)]
    R, v, off = pack(rings, spikes)
    odd, _ = kde_images(R, v, off, FeatureConfig())
    assert np.all(_image_distance(model, odd) / model["threshold"] > 1)


def test_image_distance_equals_the_direct_formula_and_flags_bad_rows():
    """The expanded distance (no x - mean) equals the textbook one; bad rows give NaN."""
    from astro_cnnmass.uncertainty.ood import _image_distance, fit_image_ood_model

    rng = np.random.default_rng(5)
    images = rng.random((400, 48, 48)) ** 4
    images /= images.sum(axis=(1, 2), keepdims=True)
    model = fit_image_ood_model(images[:300], images[300:], n_components=6)
    test = images[:90].astype(np.float32)
    test[3] = np.nan
    test[7, 3, 3] = np.inf
    test[8, 0, 0] = -np.inf
    got = _image_distance(model, test)

    x = test.reshape(90, -1).astype(np.float64) * test[0].size
    with np.errstate(invalid="ignore", over="ignore"):  # the bad rows
        dx = x - model["mean"]
        proj = dx @ np.asarray(model["components"]).T
        resid = ((dx - proj @ np.asarray(model["components"])) ** 2).sum(axis=1)
        d2 = (proj**2 / model["variances"]).sum(axis=1) + resid / model["residual_scale"]
    want = np.sqrt(d2)
    bad = [3, 7, 8]
    assert np.isnan(got[bad]).all() and np.isfinite(np.delete(got, bad)).all()
    np.testing.assert_allclose(np.delete(got, bad), np.delete(want, bad), rtol=1e-10)
