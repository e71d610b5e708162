"""Support Distribution Machines (astro_cnnmass.model.sdm): divergences, fit, predict, files."""

import asdf
import numpy as np
import pytest
from toy_catalogs import toy_catalog

from astro_cnnmass.model.divergences import (
    divergence_kernel,
    kl_divergence_matrix,
    knn_kl_divergence,
    project_psd,
)
from astro_cnnmass.model.sdm import SDM_1D, SDM_2D, load_sdm


def _kl_gauss_diag(mu1, s1, mu2, s2):
    """Analytic KL(N(mu1, diag s1^2) || N(mu2, diag s2^2)) in nats."""
    mu1, s1, mu2, s2 = (np.atleast_1d(np.asarray(a, float)) for a in (mu1, s1, mu2, s2))
    return float(np.sum(np.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5))


def _replicates(n_rep, n, mu1, s1, mu2, s2, seed):
    rng = np.random.default_rng(seed)
    d = np.atleast_1d(mu1).size
    est = [
        knn_kl_divergence(rng.normal(mu1, s1, (n, d)), rng.normal(mu2, s2, (n, d)), k=4)
        for _ in range(n_rep)
    ]
    return np.mean(est), np.std(est, ddof=1) / np.sqrt(n_rep)


# ---------------------------------------------------------------------------- divergences
@pytest.mark.parametrize("d", [1, 2])
def test_divergence_of_one_gaussian_is_near_zero(d):
    mean, se = _replicates(6, 1500, np.zeros(d), np.ones(d), np.zeros(d), np.ones(d), seed=d)
    # the estimator is asymptotically unbiased: 0 within 4 standard errors (se ~ 0.01)
    assert abs(mean) < max(4 * se, 0.02)


@pytest.mark.parametrize(
    ("mu1", "s1", "mu2", "s2", "bias_allowance"),
    [
        ([0.0], [1.0], [1.0], [2.0], 0.02),  # KL = 0.443
        ([0.0], [1.0], [1.0], [1.0], 0.02),  # equal widths: KL = 0.5
        ([0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 2.0], 0.05),  # 2-D: KL = 0.818
    ],
)
def test_divergence_of_two_gaussians_matches_analytic(mu1, s1, mu2, s2, bias_allowance):
    truth = _kl_gauss_diag(mu1, s1, mu2, s2)
    mean, se = _replicates(6, 1500, mu1, s1, mu2, s2, seed=7)
    # within the sampling error of 6 replicates (plus the finite-sample bias of k-NN estimates
    # at n = 1500, a few hundredths of a nat). Not tested: P much wider than Q, where the
    # estimate converges slowly (KL(N(1, 2^2) || N(0, 1)) = 1.31 comes out 0.81 at n = 1500,
    # 0.94 at 6000 and 1.06 at 24000): Q's sparse tails hide how far out P's points are.
    assert abs(mean - truth) < 4 * se + bias_allowance, (mean, se, truth)


def test_divergence_matrix_equals_pairwise_estimates():
    rng = np.random.default_rng(3)
    sizes_a, sizes_b = [12, 30, 7], [9, 25]
    a = [rng.normal(i, 1 + i, (n, 2)) for i, n in enumerate(sizes_a)]
    b = [rng.normal(0.5 * j, 1.0, (n, 2)) for j, n in enumerate(sizes_b)]
    off_a = np.concatenate([[0], np.cumsum(sizes_a)])
    off_b = np.concatenate([[0], np.cumsum(sizes_b)])
    D = kl_divergence_matrix(np.concatenate(a), off_a, np.concatenate(b), off_b, k=4)
    assert D.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert D[i, j] == pytest.approx(knn_kl_divergence(a[i], b[j], k=4), rel=1e-12)
    # one set against itself: zero diagonal, the off-diagonal terms are the pairwise estimates
    Daa = kl_divergence_matrix(np.concatenate(a), off_a, k=4)
    assert np.all(np.diag(Daa) == 0)
    assert Daa[0, 1] == pytest.approx(knn_kl_divergence(a[0], a[1], k=4), rel=1e-12)


def test_divergence_needs_k_plus_one_points():
    with pytest.raises(ValueError, match="k \\+ 1"):
        kl_divergence_matrix(np.zeros(4), [0, 4], k=4)
    with pytest.raises(ValueError, match="offsets"):
        kl_divergence_matrix(np.zeros(10), [0, 4], k=2)


def test_kernel_and_psd_projection():
    rng = np.random.default_rng(0)
    D = np.abs(rng.normal(size=(20, 20)))
    D = 0.5 * (D + D.T)
    np.fill_diagonal(D, 0)
    K = divergence_kernel(D, 0.5)
    assert np.allclose(np.diag(K), 1) and np.all(K > 0) and np.all(K <= 1)
    Kp, P = project_psd(K)
    assert np.linalg.eigvalsh(Kp).min() > -1e-10
    assert np.allclose(Kp, Kp.T)
    assert np.allclose(P @ P, P, atol=1e-10)  # an orthogonal projector
    with pytest.raises(ValueError, match="sigma2"):
        divergence_kernel(D, 0.0)


# ---------------------------------------------------------------------------- estimators
def _split(cat):
    hosts = cat.clusters["host_id"]
    test = hosts % 4 == 0
    off = cat.offsets

    def part(mask):
        rows = np.flatnonzero(mask)
        lens = off[rows + 1] - off[rows]
        new = np.concatenate([[0], np.cumsum(lens)])
        gidx = np.repeat(off[rows] - new[:-1], lens) + np.arange(new[-1])
        return (cat.R[gidx], cat.v[gidx], new, cat.clusters["log_m200c"][rows], hosts[rows])

    return part(~test), part(test)


@pytest.fixture(scope="module")
def toy_split():
    return _split(toy_catalog(n_hosts=100, n_los=2, seed=11))


@pytest.fixture(scope="module")
def fitted(toy_split):
    pytest.importorskip("sklearn")
    (R, v, off, y, hosts), _ = toy_split
    return {
        cls.kind: cls(seed=1, max_train=200).fit(R, v, off, y, groups=hosts)
        for cls in (SDM_1D, SDM_2D)
    }


@pytest.mark.parametrize("kind", ["sdm1d", "sdm2d"])
def test_sdm_beats_the_mean_mass(fitted, toy_split, kind):
    (_, _, _, y_tr, _), (R, v, off, y, _) = toy_split
    model = fitted[kind]
    pred = model.predict(R, v, off)
    assert pred.shape == y.shape and np.all(np.isfinite(pred))
    rmse = np.sqrt(np.mean((pred - y) ** 2))
    rmse_mean = np.sqrt(np.mean((y_tr.mean() - y) ** 2))
    # the toy's ideal estimator (the known sigma-mass law on the sample std) reaches ~0.6
    assert rmse < 0.75 * rmse_mean, (rmse, rmse_mean)
    info = model.info_
    assert info["n_train"] == 150 and info["tuning_rmse_dex"] > 0
    assert model.sigma2_ > 0 and model.C_ in model.C_values and model.nu_ in model.nu_values


def test_same_seed_same_numbers(fitted, toy_split):
    (R, v, off, y, hosts), (Rt, vt, ot, _, _) = toy_split
    again = SDM_2D(seed=1, max_train=200).fit(R, v, off, y, groups=hosts)
    assert np.array_equal(again.weights_, fitted["sdm2d"].weights_)
    assert np.array_equal(again.predict(Rt, vt, ot), fitted["sdm2d"].predict(Rt, vt, ot))


def test_training_subset_and_galaxy_cap(toy_split):
    pytest.importorskip("sklearn")
    (R, v, off, y, hosts), (Rt, vt, ot, _, _) = toy_split
    model = SDM_1D(
        seed=2,
        max_train=60,
        max_galaxies=15,
        n_folds=3,
        sigma2_factors=(1.0,),
        C_values=(0.3,),
        nu_values=(0.5,),
    )
    model.fit(R, v, off, y, groups=hosts)
    assert model.offsets_.size - 1 == 60
    assert np.diff(model.offsets_).max() <= 15
    assert np.all(np.isfinite(model.predict(Rt, vt, ot)))


def test_save_load_round_trip(fitted, toy_split, tmp_path):
    _, (R, v, off, _, _) = toy_split
    for kind, model in fitted.items():
        path = model.save(tmp_path / f"{kind}.asdf")
        # plain arrays and scalars in a plain ASDF tree: readable without this package
        with asdf.open(path) as af:
            tree = af.tree["astro_cnnmass_sdm"]
            assert tree["kind"] == kind
            assert tree["weights"].shape == (model.offsets_.size - 1,)
        loaded = load_sdm(path)
        assert type(loaded) is type(model)
        assert np.array_equal(loaded.predict(R, v, off), model.predict(R, v, off))
        assert (loaded.sigma2_, loaded.C_, loaded.nu_) == (model.sigma2_, model.C_, model.nu_)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_sdm(tmp_path / "missing.asdf")
    asdf.AsdfFile({"something": 1}).write_to(tmp_path / "other.asdf")
    with pytest.raises(ValueError, match="not an SDM model file"):
        load_sdm(tmp_path / "other.asdf")


def test_poor_clusters_get_nan_and_bad_input_raises(fitted):
    model = fitted["sdm2d"]
    rng = np.random.default_rng(0)
    R, v = rng.uniform(0, 1.5, 33), rng.normal(0, 600, 33)
    pred = model.predict(R, v, [0, 3, 33])  # 3 galaxies < k + 1
    assert np.isnan(pred[0]) and np.isfinite(pred[1])
    with pytest.raises(ValueError, match="same length"):
        model.predict(R[:-1], v, [0, 33])
    with pytest.raises(RuntimeError, match="not fitted"):
        SDM_2D().predict(R, v, [0, 33])
    with pytest.raises(ValueError, match="kind"):
        SDM_2D(kind="sdm3d")


def test_missing_scikit_learn_gives_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.svm", None)
    rng = np.random.default_rng(0)
    with pytest.raises(ImportError, match=r"astro_cnnmass\[sdm\]"):
        SDM_1D().fit(rng.normal(size=60), rng.normal(size=60), np.arange(0, 61, 10), np.arange(6.0))


# ---------------------------------------------------------------------------- catalogues
def test_cluster_samples_match_the_cnn_training_rows():
    from astro_cnnmass.features.config import FeatureConfig
    from astro_cnnmass.model.samples import prepare_features
    from astro_cnnmass.model.sdm import cluster_samples

    cat = toy_catalog(n_hosts=30, n_los=2, seed=4, poor_last_host=True)
    cyl = {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}
    prep = prepare_features(cat, cyl, FeatureConfig(kind="1d"))
    s = cluster_samples(cat, cyl)
    assert np.array_equal(s["index"], prep["index"])
    assert np.array_equal(np.diff(s["offsets"]), prep["n_gal"])
    assert np.all(s["R"] < 1.6) and np.all(np.abs(s["v"]) < 2200)
    rows = np.array([5, 2, 59])  # the last host is too poor: dropped, the order is kept
    assert np.array_equal(cluster_samples(cat, cyl, rows=rows)["index"], [5, 2])


def test_sdm_training_rows_are_a_subset_of_the_bundle_training_split():
    from astro_cnnmass.features.config import FeatureConfig
    from astro_cnnmass.model.bundle import untrained_bundle
    from astro_cnnmass.model.samples import prepare_features
    from astro_cnnmass.model.sdm_evaluation import sdm_training_rows
    from astro_cnnmass.model.splits import _sample_and_split

    cat = toy_catalog(n_hosts=60, n_los=2, seed=5)
    training = {"seed": 3, "flat_sampling": {"dlogm": 0.02, "n_per_bin": None}, "val_fraction": 0.2}
    bundle = untrained_bundle().replace(training=training)
    rows = sdm_training_rows(bundle, cat, n=40, seed=0)
    prep = prepare_features(cat, bundle.cylinder, FeatureConfig.from_dict(bundle.feature_config))
    _, _, tr, va = _sample_and_split(prep, 3, 0.02, None, 0.2)
    assert rows.size == 40 and np.all(np.diff(rows) > 0)
    assert set(rows) <= set(prep["index"][tr])
    assert not set(rows) & set(prep["index"][va])
    assert np.array_equal(rows, sdm_training_rows(bundle, cat, n=40, seed=0))


def test_fit_and_predict_catalog():
    pytest.importorskip("sklearn")
    cat = toy_catalog(n_hosts=40, n_los=2, seed=6, concentrated=True)
    model = SDM_2D(seed=0, sigma2_factors=(1.0,), C_values=(0.3,), nu_values=(0.5,))
    model.fit_catalog(cat, rows=np.arange(0, 60))
    rows, pred = model.predict_catalog(cat, rows=np.arange(60, 80))
    assert np.array_equal(rows, np.arange(60, 80))
    truth = cat.clusters["log_m200c"][rows]
    # plumbing check (60 training clusters, no tuning): better than the mean mass
    assert np.sqrt(np.mean((pred - truth) ** 2)) < 0.9 * np.std(truth)


# ---------------------------------------------------------------------------- evaluation
def test_evaluate_model_reports_sdm_rows(fitted, tmp_path):
    import json

    from astro_cnnmass.model.bundle import untrained_bundle
    from astro_cnnmass.model.evaluation import evaluate_model, format_summary

    test = toy_catalog(n_hosts=40, n_los=2, seed=9, concentrated=True)
    path = fitted["sdm2d"].save(tmp_path / "s2.asdf")
    report = evaluate_model(
        untrained_bundle(),
        test,
        tmp_path / "eval",
        seed=0,
        names=["cnn"],
        robustness_fraction=0.3,
        n_draws=3,
        sdm_models=[path, fitted["sdm1d"]],
        sdm_names=["s2", "s1"],
    )
    res = report["models"]["cnn"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == report
    assert set(res["sdm"]) == {"s2", "s1"}
    for name in ("s2", "s1"):
        r = res["sdm"][name]
        assert r["residuals"]["n"] == res["cnn"]["n"]  # the same clusters
        assert r["residuals"]["std"] > 0 and r["sampling_rate"]["n"] > 0
        assert r["sampling_rate"]["delta_eps68"] > 0
        rob = r["robustness"]
        assert rob["n_mocks"] >= 20 and rob["random_0.7"]["sdm"]["n"] > 0
        assert r["model"]["n_train"] == 150
    assert res["sdm"]["s2"]["kind"] == "sdm2d" and res["sdm"]["s1"]["kind"] == "sdm1d"
    text = format_summary("cnn", res)
    assert "s2" in text and "thinning median shift" in text


def test_evaluate_subcommand_sdm_options():
    import argparse

    from astro_cnnmass.model.commands import add_evaluate_subparser

    parser = argparse.ArgumentParser()
    add_evaluate_subparser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "evaluate",
            "m.asdf",
            "t.asdf",
            "--out",
            "d",
            "--sdm-model",
            "a.asdf",
            "--sdm-model",
            "b.asdf",
            "--with-sdm",
            "--sdm-train-mocks",
            "tr.asdf",
            "--sdm-n-train",
            "300",
        ]
    )
    assert args.sdm_model == ["a.asdf", "b.asdf"] and args.with_sdm
    assert args.sdm_train_mocks == "tr.asdf" and args.sdm_n_train == 300
    assert args.sdm_kinds == ["sdm1d", "sdm2d"]


def test_fit_sdm_beside_uses_the_bundle_training_split(tmp_path):
    pytest.importorskip("sklearn")
    from astro_cnnmass.model.bundle import untrained_bundle
    from astro_cnnmass.model.sdm_evaluation import fit_sdm_beside, sdm_training_rows

    cat = toy_catalog(n_hosts=60, n_los=2, seed=5, concentrated=True)
    training = {"seed": 3, "flat_sampling": {"dlogm": 0.02, "n_per_bin": None}, "val_fraction": 0.2}
    bundle = untrained_bundle().replace(training=training)
    models = fit_sdm_beside(
        bundle,
        cat,
        kinds=("sdm1d",),
        n_train=50,
        seed=1,
        sigma2_factors=(1.0,),
        C_values=(0.3,),
        nu_values=(0.5,),
    )
    model = models["sdm1d"]
    assert isinstance(model, SDM_1D) and model.info_["n_train"] == 50
    assert model.info_["training_rows"] == sdm_training_rows(bundle, cat, 50, seed=1).tolist()
    loaded = load_sdm(model.save(tmp_path / "m.asdf"))
    assert loaded.info_["training_rows"] == model.info_["training_rows"]
