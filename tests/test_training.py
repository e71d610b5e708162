"""Tests of astro_cnnmass.model.training and .predictor on small synthetic catalogues."""

import argparse
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from toy_catalogs import toy_catalog

from astro_cnnmass.model.bundle import ModelBundle, scale_log_mass
from astro_cnnmass.model.commands import add_train_subparser
from astro_cnnmass.model.networks import build_network, default_network_config
from astro_cnnmass.model.predictor import Predictor
from astro_cnnmass.model.splits import flat_mass_sample, kfold_by_host, train_test_split_by_host
from astro_cnnmass.model.training import fit_networks, train_model

torch.set_num_threads(1)


def synthetic_catalog(n_hosts=150, n_los=2, seed=0, z=0.1):
    """Toy clouds (see toy_catalogs); the last host has only 5 galaxies per line of sight."""
    return toy_catalog(n_hosts, n_los, seed, z, poor_last_host=True)


@pytest.fixture(scope="module")
def trained():
    cat = synthetic_catalog()
    train, test = train_test_split_by_host(cat.clusters, 0.2, seed=0)
    bundle = train_model(
        _select(cat, train),
        epochs=15,
        batch_size=32,
        seed=1,
        progress=False,
        val_fraction=0.15,
        patience=None,
        n_per_bin=None,
        command="pytest",
    )
    return bundle, cat, test


def _select(cat, rows):
    off = cat.offsets
    R = np.concatenate([cat.R[off[i] : off[i + 1]] for i in rows])
    v = np.concatenate([cat.v[off[i] : off[i + 1]] for i in rows])
    sizes = np.diff(off)[rows]
    return SimpleNamespace(
        R=R,
        v=v,
        offsets=np.concatenate([[0], np.cumsum(sizes)]),
        clusters={k: c[rows] for k, c in cat.clusters.items()},
        meta=cat.meta,
    )


# ---------------------------------------------------------------------------- splits
def test_split_by_host_has_no_shared_host():
    hosts = np.repeat(np.arange(50), 3)
    train, test = train_test_split_by_host({"host_id": hosts}, 0.2, seed=3)
    assert np.intersect1d(hosts[train], hosts[test]).size == 0
    assert train.size + test.size == hosts.size
    assert np.unique(hosts[test]).size == 10
    again = train_test_split_by_host(hosts, 0.2, seed=3)
    np.testing.assert_array_equal(again[1], test)
    with pytest.raises(ValueError):
        train_test_split_by_host(hosts, 1.0)


def test_kfold_by_host():
    rng = np.random.default_rng(0)
    hosts = np.repeat(np.arange(40), 3)
    log_m = np.repeat(rng.uniform(14, 15, 40), 3)
    folds = kfold_by_host({"host_id": hosts}, n_folds=4, seed=0, log_m=log_m)
    seen = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(seen), np.arange(hosts.size))
    for tr, te in folds:
        assert np.intersect1d(hosts[tr], hosts[te]).size == 0
        assert np.unique(hosts[te]).size == 10  # stratified: one host per mass block
    assert len(kfold_by_host(hosts, seed=0)) == 10


def test_flat_mass_sample_caps_bins():
    rng = np.random.default_rng(1)
    log_m = np.concatenate([rng.uniform(14.0, 14.1, 500), rng.uniform(14.1, 14.2, 25)])
    idx = flat_mass_sample(log_m, dlogm=0.02, n_per_bin=20, seed=0)
    counts = np.bincount(np.floor((log_m[idx] - log_m.min()) / 0.02).astype(int))
    assert counts.max() <= 20
    assert (log_m[idx] >= 14.1).sum() >= 20  # sparse bins keep (nearly) everything
    assert np.array_equal(idx, np.unique(idx))
    assert flat_mass_sample(log_m, n_per_bin=None).size == log_m.size
    assert flat_mass_sample(log_m, n_per_bin="median").size < log_m.size
    with pytest.raises(ValueError):
        flat_mass_sample(log_m, n_per_bin=-3)


# ---------------------------------------------------------------------------- training
def test_fit_networks_learns_two_classes():
    rng = np.random.default_rng(0)
    n, n_v = 200, 48
    width = np.where(rng.random(n) < 0.5, 3.0, 8.0)  # two mass classes, two velocity widths
    grid = np.arange(n_v) - n_v / 2 + 0.5
    img = np.exp(-0.5 * (grid[None, :] / width[:, None]) ** 2)
    img += 0.05 * rng.random((n, n_v))
    img /= img.sum(axis=1, keepdims=True)
    y = np.where(width > 5, 1.0, -1.0)
    cfg = default_network_config("cnn1d", "point")
    states, hist = fit_networks(
        img[:160],
        np.zeros(160),
        y[:160],
        cfg,
        val=(img[160:], np.zeros(40), y[160:]),
        epochs=8,
        batch_size=20,
        seed=0,
        progress=False,
        patience=3,
    )
    h = hist[0]
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert min(h["val_loss"]) < 0.3
    assert h["val_loss"][h["best_epoch"]] == min(h["val_loss"])  # best weights restored
    assert set(states[0]) == set(build_network(cfg).state_dict())


def test_train_model_smoke(trained):
    bundle = trained[0]
    assert isinstance(bundle, ModelBundle)
    assert bundle.network_config["arch"] == "cnn2d"
    assert bundle.cylinder == {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}
    assert bundle.feature_config["kind"] == "2d"
    tr = bundle.training
    assert tr["n_train"] + tr["n_val"] == tr["n_after_flat_sampling"]
    assert tr["n_val"] > 0 and tr["command"] == "pytest"
    assert tr["generator"]["generator_version"] == "toy"
    assert len(tr["history"][0]["train_loss"]) == 15
    # the 5-galaxy host is dropped if it was in the training split
    assert tr["n_dropped_richness"] in (0, 2)
    assert bundle.domain["n_min_galaxies"] == 10
    assert 14.0 <= bundle.domain["log_m_min"] < bundle.domain["log_m_max"] <= 15.0
    assert bundle.target_scaling["z_min"] == bundle.target_scaling["z_max"] == 0.1
    # M-sigma on sigma ∝ M^(1/3)
    assert bundle.m_sigma["alpha"] == pytest.approx(1 / 3, abs=0.1)
    assert bundle.m_sigma["log_sigma15"] == pytest.approx(3.0, abs=0.1)
    assert 0 < bundle.metrics["scatter_dex"] < 0.3
    assert bundle.metrics["calibration"]["std_fallback"] == bundle.metrics["scatter_dex"]
    bundle.verify()


def test_trained_model_predicts_held_out_hosts(trained):
    from astro_cnnmass.features.config import FeatureConfig
    from astro_cnnmass.model.samples import prepare_features

    bundle, cat, test = trained
    prep = prepare_features(
        _select(cat, test), bundle.cylinder, FeatureConfig.from_dict(bundle.feature_config)
    )
    pred = Predictor(bundle, device="cpu").predict(prep["images"], prep["z"])
    r = np.corrcoef(pred["mean"], prep["log_m"])[0, 1]
    assert r > 0.5
    assert np.all(np.isfinite(pred["std"])) and np.all(pred["std"] > 0)


def test_sampling_augmentation_thins_clusters_reproducibly():
    from astro_cnnmass.features.config import FeatureConfig
    from astro_cnnmass.model.samples import prepare_features

    cat = synthetic_catalog(n_hosts=30, n_los=1)
    cyl = {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}
    prep = prepare_features(cat, cyl, FeatureConfig(), n_subsampled=2, seed=3)
    again = prepare_features(cat, cyl, FeatureConfig(), n_subsampled=2, seed=3)
    thin = prep["images_subsampled"]
    assert thin.shape == (2, *prep["images"].shape)
    np.testing.assert_array_equal(thin, again["images_subsampled"])
    np.testing.assert_allclose(thin.sum(axis=(2, 3)), 1.0, rtol=1e-5)
    # thinning changes the images but keeps them close to the full-sample ones
    diff = np.abs(thin - prep["images"][None]).sum(axis=(2, 3))
    assert (diff > 0).mean() > 0.8 and np.median(diff) < 1.0
    bundle = train_model(
        cat,
        epochs=2,
        batch_size=16,
        seed=0,
        progress=False,
        n_subsampled=1,
        n_per_bin=None,
        command="pytest",
    )
    assert bundle.training["sampling_augmentation"]["n_subsampled"] == 1


def test_train_model_rejects_bad_arguments():
    cat = synthetic_catalog(n_hosts=10, n_los=1)
    with pytest.raises(ValueError, match="model"):
        train_model(cat, model="cnn3d", progress=False)
    with pytest.raises(ValueError, match="cylinder"):
        train_model(
            cat,
            cylinder={"aperture_mpch": 1.0, "v_cut_kms": 2200.0},
            feature_config={"kind": "2d"},
            progress=False,
        )


def test_train_subparser():
    parser = argparse.ArgumentParser()
    add_train_subparser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "train",
            "m.asdf",
            "--out",
            "o.asdf",
            "--epochs",
            "3",
            "--ensemble",
            "2",
            "--head",
            "point",
            "--seed",
            "7",
        ]
    )
    assert (str(args.mocks), str(args.out), args.epochs, args.ensemble, args.head, args.seed) == (
        "m.asdf",
        "o.asdf",
        3,
        2,
        "point",
        7,
    )
    assert args.model == "cnn2d" and callable(args.func)


# ---------------------------------------------------------------------------- predictor
def _bundle(head="gaussian", n_members=1, arch="cnn2d"):
    cfg = default_network_config(arch, head)
    sds = []
    for m in range(n_members):
        torch.manual_seed(m)
        sds.append({k: v.numpy().copy() for k, v in build_network(cfg).state_dict().items()})
    return ModelBundle(
        cfg,
        sds,
        {"kind": "2d"},
        {"aperture_mpch": 1.6, "v_cut_kms": 2200.0},
        {"log_m_min": 13.5, "log_m_max": 15.5, "z_min": 0.0, "z_max": 0.2},
    )


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    img = rng.random((37, 48, 48)).astype(np.float32)
    return img / img.sum(axis=(1, 2), keepdims=True), rng.uniform(0, 0.2, 37)


def test_predictor_batched_equals_single(images):
    img, z = images
    pred = Predictor(_bundle(n_members=2), device="cpu")
    full = pred.predict(img, z)
    small = pred.predict(img, z, chunk_size=5)
    for key in ("mean", "std", "member_means"):
        np.testing.assert_allclose(full[key], small[key], rtol=1e-5, atol=1e-6)
    one = pred.predict(img[7:8], z[7])
    np.testing.assert_allclose(one["mean"], full["mean"][7:8], rtol=1e-5)
    assert full["member_means"].shape == (2, 37)


def test_predictor_gaussian_mixture(images):
    img, z = images
    bundle = _bundle(n_members=3)
    pred = Predictor(bundle, device="cpu").predict(img, z)
    s = bundle.target_scaling
    half = 0.5 * (s["log_m_max"] - s["log_m_min"])
    mus, variances = [], []
    for net in bundle.build_networks("cpu"):
        with torch.no_grad():
            out = net(torch.from_numpy(img), torch.from_numpy(2 * z / 0.2 - 1).float()).numpy()
        mus.append(out[:, 0] * half + 14.5)
        variances.append(np.exp(out[:, 1]) * half**2)
    mus, variances = np.array(mus), np.array(variances)
    np.testing.assert_allclose(pred["mean"], mus.mean(0), rtol=1e-5)
    np.testing.assert_allclose(pred["std"] ** 2, variances.mean(0) + mus.var(0), rtol=1e-4)
    np.testing.assert_allclose(pred["member_means"], mus, rtol=1e-5)


def test_predictor_point_heads(images):
    img, z = images
    single = Predictor(_bundle("point"), device="cpu").predict(img, z)
    assert np.all(np.isnan(single["std"])) and np.all(np.isfinite(single["mean"]))
    ens = Predictor(_bundle("point", n_members=2), device="cpu").predict(img, z)
    np.testing.assert_allclose(ens["std"], ens["member_means"].std(axis=0), rtol=1e-6)
    mc = Predictor(_bundle("point"), device="cpu", mc_dropout=8, seed=1)
    a, b = mc.predict(img, z), mc.predict(img, z)
    assert np.all(a["std"] > 0)
    np.testing.assert_array_equal(a["mean"], b["mean"])


def test_predictor_calibration_nan_and_shapes(images):
    img, z = images
    bundle = _bundle()
    base = Predictor(bundle, device="cpu").predict(img, z)
    scaled_bundle = bundle.replace(
        target_scaling={**bundle.target_scaling, "calibration": {"std_scale": 2.0}}
    )
    scaled = Predictor(scaled_bundle, device="cpu").predict(img, z)
    np.testing.assert_allclose(scaled["std"], 2 * base["std"], rtol=1e-6)
    bad = img.copy()
    bad[3] = np.nan
    out = Predictor(bundle, device="cpu").predict(bad, z)
    assert np.isnan(out["mean"][3]) and np.isnan(out["std"][3])
    np.testing.assert_allclose(np.delete(out["mean"], 3), np.delete(base["mean"], 3), rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        Predictor(bundle, device="cpu").predict(img[:, :, :10], z)
    assert scale_log_mass(14.5, bundle.target_scaling) == 0.0
