"""Tests of astro_cnnmass.model.evaluation: metrics on known residuals and the full report."""

import argparse
import json

import numpy as np
import pytest
import torch
from scipy import stats

from astro_cnnmass.model.commands import add_evaluate_subparser
from astro_cnnmass.model.evaluation import evaluate_model, format_summary
from astro_cnnmass.model.metrics import (
    binned_residuals,
    interval_coverage,
    pit_histogram,
    pit_values,
    residual_stats,
)

torch.set_num_threads(1)


def test_residual_stats_known_numbers():
    s = residual_stats([-2.0, -1.0, 0.0, 1.0, 2.0, np.nan])
    assert s["n"] == 5
    assert s["mean"] == 0 and s["median"] == 0
    assert s["p16"] == pytest.approx(-1.36) and s["p84"] == pytest.approx(1.36)
    assert s["width"] == pytest.approx(2.72)
    assert s["std"] == pytest.approx(np.sqrt(2.0))
    assert s["skew"] == pytest.approx(0.0)
    assert s["kurtosis"] == pytest.approx(-1.3)
    empty = residual_stats([])
    assert empty["n"] == 0 and np.isnan(empty["std"])


def test_residual_stats_gaussian_sample():
    eps = stats.norm.ppf(np.linspace(0.0005, 0.9995, 2000), loc=0.02, scale=0.13)
    s = residual_stats(eps)
    assert s["mean"] == pytest.approx(0.02, abs=1e-6)
    assert s["std"] == pytest.approx(0.13, rel=0.01)
    assert s["width"] == pytest.approx(2 * 0.13 * 0.9945, rel=0.01)
    assert abs(s["skew"]) < 1e-6 and abs(s["kurtosis"]) < 0.1


def test_binned_residuals():
    m = np.array([14.05, 14.05, 14.05, 14.55, 15.2])
    eps = np.array([0.1, 0.2, 0.3, -0.5, 9.0])
    rows = binned_residuals(m, eps)
    assert len(rows) == 10 and rows[0]["lo"] == 14.0 and rows[-1]["hi"] == 15.0
    assert rows[0]["n"] == 3 and rows[0]["median"] == pytest.approx(0.2)
    assert rows[5]["n"] == 1 and rows[5]["p16"] == pytest.approx(-0.5)
    assert rows[1]["n"] == 0 and np.isnan(rows[1]["median"])
    assert sum(r["n"] for r in rows) == 4  # 15.2 is outside


def test_interval_coverage_known_and_calibrated():
    m = np.array([14.1, 14.3, 14.6])
    mean = np.array([14.1 + 0.05, 14.3 + 0.15, 14.6 - 0.2])
    cov = interval_coverage(m, mean, np.full(3, 0.1))
    assert cov["overall"]["0.68"] == pytest.approx(1 / 3)
    assert cov["overall"]["0.90"] == pytest.approx(2 / 3)
    assert [b["n"] for b in cov["bins"]] == [1, 1, 1, 0]

    rng = np.random.default_rng(0)
    m = rng.uniform(14, 15, 20000)
    sd = rng.uniform(0.05, 0.3, m.size)
    mean = m + sd * rng.standard_normal(m.size)
    cov = interval_coverage(m, mean, sd)
    assert cov["overall"]["0.68"] == pytest.approx(0.68, abs=0.01)
    assert cov["overall"]["0.90"] == pytest.approx(0.90, abs=0.01)
    hist = pit_histogram(pit_values(m, mean, sd))
    assert np.allclose(hist["density"], 1.0, atol=0.08)
    assert sum(hist["counts"]) == m.size
    # overconfident intervals under-cover
    assert interval_coverage(m, mean, sd / 2)["overall"]["0.68"] < 0.5


@pytest.fixture(scope="module")
def small_model_and_mocks():
    from test_training import synthetic_catalog

    from astro_cnnmass.model.training import train_model

    bundle = train_model(
        synthetic_catalog(n_hosts=60, n_los=1, seed=1),
        epochs=3,
        batch_size=20,
        seed=0,
        progress=False,
        n_per_bin=None,
    )
    return bundle, synthetic_catalog(n_hosts=60, n_los=1, seed=2)


def test_evaluate_model_writes_report(tmp_path, small_model_and_mocks):
    bundle, test = small_model_and_mocks
    report = evaluate_model(
        [bundle, bundle.replace(metrics={})],
        test,
        tmp_path,
        seed=0,
        names=["a", "b"],
        robustness_fraction=0.2,
        n_draws=3,
    )
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == report
    res = report["models"]["a"]
    assert res["n_in_mass_range"] > 40
    for key in ("cnn", "m_sigma"):
        assert res[key]["n"] == res["n_in_mass_range"]
        assert res[key]["std"] > 0
    assert len(res["cnn_binned"]) == 10
    assert res["coverage"]["overall"]["0.68"] is not None
    sr = res["sampling_rate"]
    assert sr["n_mocks"] == 20 and sr["cnn"]["delta_eps68"] > 0 and sr["m_sigma"]["n"] > 0
    assert report["models"]["b"]["cnn"] == res["cnn"]  # same weights, same numbers
    for name in ("a_pred_vs_true", "a_residuals", "a_sampling_rate", "a_pit", "b_pit"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    # the calibration report covers 10^14-10^15 overall and per 0.25-dex bin, and OOD flags
    cov = res["coverage"]
    assert cov["n_in_range"] == res["n_in_mass_range"] and len(cov["bins"]) == 4
    assert sum(b["n"] for b in cov["bins"]) == cov["n_in_range"]
    text = format_summary("a", res)
    assert f"{cov['in_range']['0.68']:.3f}" in text and "14.25-14.50" in text
    assert "out-of-domain flagged" in text


def test_evaluate_subparser():
    parser = argparse.ArgumentParser()
    add_evaluate_subparser(parser.add_subparsers())
    args = parser.parse_args(["evaluate", "m1.asdf", "m2.asdf", "t.asdf", "--out", "d"])
    assert args.paths == ["m1.asdf", "m2.asdf", "t.asdf"] and str(args.out) == "d"
    assert args.draws == 10 and callable(args.func)
