"""Sampling-invariant training (issue 13): thinning helpers, the log10 N input, the report."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from toy_catalogs import toy_catalog

from astro_cnnmass.model.bundle import ModelBundle
from astro_cnnmass.model.networks import build_network, default_network_config
from astro_cnnmass.model.predictor import Predictor
from astro_cnnmass.model.robustness import sampling_robustness, slope_eps_log_n
from astro_cnnmass.model.samples import (
    prepare_features,
    thin_packed,
    thinned_counts,
    thinned_images,
    thinning_settings,
)
from astro_cnnmass.model.training import train_model

torch.set_num_threads(1)


def _catalog(n_hosts=120, seed=0):
    cat = toy_catalog(n_hosts, 2, seed, 0.1, concentrated=True)
    rng = np.random.default_rng(seed + 1)
    cat.log_mstar = rng.uniform(9.0, 11.0, cat.R.size).astype(np.float32)
    return cat


@pytest.fixture(scope="module")
def v2_bundle():
    return train_model(
        _catalog(),
        epochs=3,
        batch_size=32,
        seed=3,
        progress=False,
        patience=None,
        n_per_bin=None,
        thinning="log_uniform",
        consistency_weight=5.0,
        use_log_n=True,
        command="pytest",
    )


# ---------------------------------------------------------------------------- thinning
def test_thinned_counts_range_and_log_uniform():
    rng = np.random.default_rng(0)
    n_gal = np.full(20000, 200)
    keep = thinned_counts(n_gal, rng, n_min=10)
    assert keep.min() >= 10 and keep.max() <= 200
    # log-uniform: equal numbers per equal interval of log N'
    lo = np.mean(np.log10(keep) < np.log10(10) + 0.5 * np.log10(20))
    assert abs(lo - 0.5) < 0.03
    small = thinned_counts(np.array([3, 10, 11]), rng, n_min=10)
    assert small[0] == 3 and small[1] == 10 and 10 <= small[2] <= 11
    full = thinned_counts(n_gal, rng, n_min=10, full_fraction=1.0)
    assert np.all(full == 200)
    frac = thinned_counts(n_gal, rng, distribution="fraction", fraction=(0.5, 0.5))
    assert np.all(frac == 100)
    with pytest.raises(ValueError):
        thinned_counts(n_gal, rng, distribution="uniform")


def test_thinned_counts_do_not_depend_on_mass_at_fixed_richness():
    """The draw uses only N: two clusters with the same N get the same distribution."""
    a = thinned_counts(np.full(5000, 80), np.random.default_rng(1))
    b = thinned_counts(np.full(5000, 80), np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


def test_thin_packed_random_and_brightest():
    offsets = np.array([0, 5, 5, 12])
    keep = np.array([2, 0, 10])
    idx, new_off = thin_packed(offsets, keep, np.random.default_rng(0))
    np.testing.assert_array_equal(new_off, [0, 2, 2, 9])
    assert np.all((idx[:2] >= 0) & (idx[:2] < 5)) and np.all(idx[2:] >= 5)
    assert np.unique(idx).size == idx.size
    key = np.array([1, 5, 3, 4, 2, 0, 0, 9, 8, 7, 1, 2], dtype=float)
    idx, _ = thin_packed(offsets, np.array([2, 0, 3]), key=key)
    np.testing.assert_array_equal(idx, [1, 3, 7, 8, 9])
    with pytest.raises(ValueError):
        thin_packed(offsets, keep)


def test_prepare_features_keeps_galaxies_and_thins_them():
    from astro_cnnmass.features.config import FeatureConfig

    cat = _catalog(20)
    fc = FeatureConfig(kind="2d")
    cyl = {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}
    prep = prepare_features(cat, cyl, fc, keep_galaxies=True)
    gal = prep["galaxies"]
    np.testing.assert_array_equal(np.diff(gal["offsets"]), prep["n_gal"])
    assert gal["log_mstar"].size == gal["R"].size
    rows = np.arange(prep["n_gal"].size)
    same, n = thinned_images(gal, rows, prep["n_gal"], fc, np.random.default_rng(0))
    np.testing.assert_allclose(same, prep["images"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(n, prep["n_gal"])
    img, n = thinned_images(gal, rows, np.full(rows.size, 10), fc, np.random.default_rng(0))
    assert np.all(n == 10) and np.isfinite(img).all()


def test_thinning_settings_validate():
    s = thinning_settings("log_uniform", consistency_weight=2.0)
    assert s["fresh_draws_per_epoch"] and s["val_copies"] == 1
    with pytest.raises(ValueError):
        thinning_settings("bogus")
    with pytest.raises(ValueError):
        thinning_settings("none", consistency_weight=1.0)


# ---------------------------------------------------------------------------- log10 N input
def test_network_log_n_input():
    cfg = default_network_config("cnn2d", use_log_n=True)
    net = build_network(cfg).eval()
    old = build_network(default_network_config("cnn2d")).eval()
    assert net.dense_layers[0].in_features == old.dense_layers[0].in_features + 1
    x = torch.rand(4, 48, 48) / 2304
    z = torch.zeros(4)
    with pytest.raises(ValueError, match="log_n"):
        net(x, z)
    a = net(x, z, torch.full((4,), 1.0))
    b = net(x, z, torch.full((4,), 2.5))
    assert not torch.allclose(a, b)
    # networks without the input ignore it
    torch.testing.assert_close(old(x, z), old(x, z, torch.full((4,), 2.0)))
    with pytest.raises(ValueError):
        default_network_config("cnn2d", log_n_range=[2.0, 1.0])


def test_v2_bundle_records_training_and_needs_counts(v2_bundle, tmp_path):
    info = v2_bundle.training["sampling_invariance"]
    assert info["thinning"] == "log_uniform" and info["use_log_n"] is True
    assert info["consistency_weight"] == 5.0
    assert v2_bundle.network_config["use_log_n"] is True
    assert "validation_thinned" in v2_bundle.metrics
    pred = Predictor(v2_bundle, device="cpu")
    assert pred.uses_counts
    cat = _catalog(10, seed=5)
    from astro_cnnmass.features.config import FeatureConfig

    prep = prepare_features(
        cat, v2_bundle.cylinder, FeatureConfig.from_dict(v2_bundle.feature_config)
    )
    with pytest.raises(ValueError, match="n="):
        pred.predict(prep["images"], prep["z"])
    out = pred.predict(prep["images"], prep["z"], n=prep["n_gal"])
    assert np.isfinite(out["mean"]).all() and np.isfinite(out["std"]).all()
    chunked = pred.predict(prep["images"], prep["z"], n=prep["n_gal"], chunk_size=3)
    np.testing.assert_array_equal(out["mean"], chunked["mean"])
    bad = pred.predict(prep["images"][:2], prep["z"][:2], n=[0, np.nan])
    assert np.isnan(bad["mean"]).all()
    # round trip through the file
    v2_bundle.write(tmp_path / "v2.asdf")
    again = Predictor(ModelBundle.read(tmp_path / "v2.asdf"), device="cpu")
    np.testing.assert_array_equal(
        again.predict(prep["images"], prep["z"], n=prep["n_gal"])["mean"], out["mean"]
    )


def test_embeddings_and_estimator_pass_counts(v2_bundle):
    from astro_cnnmass.estimator import DynamicalMassEstimator
    from astro_cnnmass.uncertainty.ood import embeddings, normalized_ood_scores

    cat = _catalog(6, seed=7)
    from astro_cnnmass.features.config import FeatureConfig

    prep = prepare_features(
        cat, v2_bundle.cylinder, FeatureConfig.from_dict(v2_bundle.feature_config)
    )
    pred = Predictor(v2_bundle, device="cpu")
    with pytest.raises(ValueError, match="n="):
        embeddings(pred, prep["images"], prep["z"])
    e = embeddings(pred, prep["images"], prep["z"], n=prep["n_gal"])
    out = pred.predict(prep["images"], prep["z"], n=prep["n_gal"], return_embeddings=True)
    np.testing.assert_allclose(out["embeddings"], e, rtol=1e-5, atol=1e-6)
    s = normalized_ood_scores(
        pred, prep["images"], prep["z"], summaries=prep["summaries"], n=prep["n_gal"]
    )
    assert np.isfinite(s).all()
    # the estimator knows the counts of its cylinder and passes them
    est = DynamicalMassEstimator(v2_bundle, device="cpu")
    off = np.asarray(cat.offsets)
    from astro_cnnmass.observe.phase_space import cylinder_mask

    inside = cylinder_mask(cat.R, cat.v, 1.6, 2200.0)
    cid = np.repeat(np.arange(off.size - 1), np.diff(off))
    counts = np.bincount(cid[inside], minlength=off.size - 1)
    batch = est.predict_packed(
        cat.R[inside], cat.v[inside], np.concatenate([[0], np.cumsum(counts)]), cat.clusters["z"]
    )
    ok = counts >= 10
    np.testing.assert_allclose(
        batch["log_mass"][ok],
        pred.predict(prep["images"], prep["z"], n=prep["n_gal"])["mean"],
        rtol=0,
        atol=1e-6,
    )


# ---------------------------------------------------------------------------- report
def test_slope_eps_log_n_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    log_m = rng.uniform(14, 15, 4000)
    log_n = 1.5 + 0.8 * (log_m - 14) + rng.normal(0, 0.3, log_m.size)
    eps = 0.2 * (log_n - 2) - 0.1 * (log_m - 14.5) + rng.normal(0, 0.05, log_m.size)
    res = slope_eps_log_n(eps, log_m, log_n)
    assert abs(res["slope"] - 0.2) < 3 * res["slope_err"] + 0.01
    assert np.isnan(slope_eps_log_n(eps[:5], log_m[:5], log_n[:5])["slope"])


def test_sampling_robustness_report(v2_bundle):
    from astro_cnnmass.classical import MSigmaPowerLaw
    from astro_cnnmass.features.config import FeatureConfig

    cat = _catalog(30, seed=9)
    prep = prepare_features(
        cat,
        v2_bundle.cylinder,
        FeatureConfig.from_dict(v2_bundle.feature_config),
        keep_galaxies=True,
    )
    pred = Predictor(v2_bundle, device="cpu")
    ref = pred.predict(prep["images"], prep["z"], n=prep["n_gal"])["mean"]
    law = MSigmaPowerLaw.from_dict(v2_bundle.m_sigma)
    rob = sampling_robustness(pred, prep, ref, m_sigma=law, n_min_kept=5, seed=0)
    for key in ("random_0.7", "random_0.5", "random_0.3", "brightest_0.5"):
        assert rob[key]["cnn"]["n"] > 0
        assert np.isfinite(rob[key]["cnn"]["median"]) and np.isfinite(rob[key]["m_sigma"]["width"])
    assert set(rob["dlogm_dlogn"]) == {"cnn", "cnn_thinned", "m_sigma", "m_sigma_thinned"}
    again = sampling_robustness(pred, prep, ref, m_sigma=law, n_min_kept=5, seed=0)
    assert again["random_0.5"] == rob["random_0.5"]
    from astro_cnnmass.model.evaluation import format_summary
    from astro_cnnmass.model.robustness import _robustness_lines

    for key in ("core_0.8", "gradient_0.7"):
        assert rob[key]["cnn"]["n"] > 0 and "targeting" in rob[key]["selection"]
        assert 0 < rob[key]["fraction"] < 1  # median kept fraction
    no_targeting = sampling_robustness(
        pred, prep, ref, m_sigma=law, n_min_kept=5, seed=0, targeting={}
    )
    assert "core_0.8" not in no_targeting
    assert no_targeting["random_0.5"] == rob["random_0.5"]  # targeting draws come last
    lines = _robustness_lines(rob)
    assert any("random_0.3" in line for line in lines) and "d eps / d log10 N" in lines[-1]
    assert format_summary is not None
    with pytest.raises(ValueError, match="keep_galaxies"):
        sampling_robustness(pred, {k: v for k, v in prep.items() if k != "galaxies"}, ref)


def test_targeted_selection_keeps_only_the_core_with_a_falling_completeness():
    from astro_cnnmass.model.robustness import _pick_targeted, _subset_packed

    rng = np.random.default_rng(4)
    R = rng.uniform(0.0, 1.6, 40000)
    gal = {"R": R, "offsets": np.array([0, 10000, 20000, 30000, 40000])}
    rows = np.array([1, 3])
    idx, off = _pick_targeted(gal, rows, (0.8, 0.0), rng)
    assert np.all(R[idx] < 0.8) and np.all((idx >= 10000) & (idx < 40000))
    assert np.allclose(np.diff(off), 5000, rtol=0.05)  # every galaxy inside R_t kept
    idx, off = _pick_targeted(gal, rows, (1.6, 0.7), rng)
    inner, outer = np.mean(R[idx] < 0.4), np.mean(R[idx] > 1.2)
    # completeness 1 - 0.7 R/1.6: mean 0.9125 in [0, 0.4], 0.3875 in [1.2, 1.6]
    assert inner / outer == pytest.approx(0.9125 / 0.3875, rel=0.08)
    sub, sub_off = _subset_packed(idx, off, np.array([False, True]))
    assert np.array_equal(sub, idx[off[1] :]) and sub_off[-1] == off[2] - off[1]


def test_old_configs_without_the_new_keys_build_the_v1_network():
    cfg = {k: v for k, v in default_network_config("cnn2d").items()}
    cfg.pop("use_log_n")
    cfg.pop("log_n_range")
    net = build_network(cfg)
    assert net.config["use_log_n"] is False
    assert SimpleNamespace(n=net.dense_layers[0].in_features).n == 10 * 12 + 1


def test_consistency_richer_moves_only_the_sparser_view():
    from astro_cnnmass.model.training import _consistency

    mu_a = torch.tensor([0.1, 0.5], requires_grad=True)
    mu_b = torch.tensor([0.3, 0.2], requires_grad=True)
    log_n_a = torch.tensor([2.0, 1.0])
    log_n_b = torch.tensor([1.0, 2.0])
    _consistency(mu_a, mu_b, log_n_a, log_n_b, "richer").backward()
    # row 0: a is richer -> only b moves; row 1: b is richer -> only a moves
    assert mu_a.grad[0] == 0 and mu_b.grad[0] != 0
    assert mu_a.grad[1] != 0 and mu_b.grad[1] == 0
    mu_a.grad = mu_b.grad = None
    _consistency(mu_a, mu_b, log_n_a, log_n_b, "symmetric").backward()
    assert torch.all(mu_a.grad != 0) and torch.all(mu_b.grad != 0)
    with pytest.raises(ValueError):
        thinning_settings("log_uniform", consistency_target="both")


def test_calibration_fits_offset_and_richness_dependent_scale():
    from astro_cnnmass.model.calibrate import _calibration_for_predictor, _fit_calibration

    rng = np.random.default_rng(0)
    n = 4000
    log_m = rng.uniform(14, 15, n)
    log_n = rng.uniform(1, 2.5, n)
    std = np.full(n, 0.2)
    true_sd = 0.2 * 0.8 * np.exp(-0.5 * (log_n - 1.75))  # predicted std too wide for rich ones
    mean = log_m + 0.1 + rng.normal(0, 1, n) * true_sd
    cal = _fit_calibration(mean, std, log_m, (14.0, 15.0), fit_offset=True, log_n=log_n)
    assert abs(cal["mean_offset_dex"] - 0.1) < 0.01
    assert abs(cal["std_scale_log_n"]["slope"] + 0.5) < 0.15
    # Gaussian residuals: the 68 % and 90 % scales agree, so both levels are met
    assert abs(cal["coverage_after"]["0.68"] - 0.68) < 0.015
    assert abs(cal["coverage_after"]["0.90"] - 0.90) < 0.015
    applied = _calibration_for_predictor(cal)
    assert set(applied) == {"std_scale", "mean_offset_dex", "std_scale_log_n"}
    # without the options: the v1 calibration (a single scale)
    assert set(_calibration_for_predictor(_fit_calibration(mean, std, log_m, (14, 15)))) == {
        "std_scale"
    }
