"""Sampling-invariant training: compare methods on development mocks (issue 13; prints JSON).

Each method trains one CNN_2D (Gaussian head, 1 member, few epochs) on *development* mocks made
with today's generator and the training overrides (seeds of this script, never the build's test
seeds), then is measured on independent development hosts (default generator; the wide training
depths; three survey-depth variants):

* sigma_eps, mean eps (10^14-10^15 Msun/h);
* median and 16-84 % width of log M(thinned) - log M(all) at 70 / 50 / 30 % random thinning and
  for the 50 % of largest stellar mass (:func:`astro_cnnmass.model.robustness.sampling_robustness`);
* d eps / d log10 N at fixed true mass (full clusters; and pooled with the thinned ones);
* 68 / 90 % coverage overall and the worst 0.25-dex bin, on full and on 30 %-thinned clusters;
* mean eps per depth variant.

Methods (``--methods``):

``v1``            the v1 recipe: one fixed thinned copy per cluster, kept fraction U(0.5, 1);
``thin``          (1) fresh log-uniform thinning every epoch (N' between 10 and N);
``thin_consist``  (2) as ``thin``, two views per cluster and a consistency penalty on the means;
``thin_logn``     (1) + (3) log10 N fed to the dense layers;
``thin_consist_logn``  (1) + (2) + (3);
``thin_consist5_logn``, ``thin_consist5_full_logn``  second round: penalty weight 5, and 25 % of
the views keeping all their galaxies;
``richer20_full_logn``, ``richer20_logn``  third round: the penalty (weight 20) pulls only the
view with fewer galaxies onto the richer one (``consistency_target="richer"``);
``richer20_full_logn_cal``, ``richer5_full_logn_cal``  fourth round: with the validation-fitted
constant mean offset (``mean_calibration=True``), penalty weight 20 or 5.

Run (about 10-15 minutes on 2 busy CPU cores)::

    OMP_NUM_THREADS=1 python benchmarks/sampling_methods.py --out runs/sampling_methods
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from astro_cnnmass.mocks import generate_catalog
from astro_cnnmass.mocks.catalog import MockCatalog
from astro_cnnmass.mocks.variants import preset_config

#: Development seeds (the build uses 20190215 and 20190215 + 1 + offsets: never these).
DEV_SEEDS = {
    "train": 13013,
    "test_default": 13014,
    "test_wide": 13015,
    "var_deep_survey": 13016,
    "var_shallow_survey": 13017,
    "var_very_shallow_survey": 13018,
}

METHODS = {
    "v1": {"n_subsampled": 1, "subsample_fraction": (0.5, 1.0)},
    "thin": {"thinning": "log_uniform"},
    "thin_consist": {
        "thinning": "log_uniform",
        "consistency_weight": 20.0,
        "consistency_target": "symmetric",
    },
    "thin_logn": {"thinning": "log_uniform", "use_log_n": True},
    "thin_consist_logn": {
        "thinning": "log_uniform",
        "consistency_weight": 20.0,
        "consistency_target": "symmetric",
        "use_log_n": True,
    },
    # second round: a weaker penalty, and a quarter of the views at full richness
    "thin_consist5_logn": {
        "thinning": "log_uniform",
        "consistency_weight": 5.0,
        "consistency_target": "symmetric",
        "use_log_n": True,
    },
    "thin_consist5_full_logn": {
        "thinning": "log_uniform",
        "consistency_weight": 5.0,
        "consistency_target": "symmetric",
        "thin_full_fraction": 0.25,
        "use_log_n": True,
    },
    # third round: the penalty pulls only the sparser view onto the richer one (stop-gradient)
    "richer20_full_logn": {
        "thinning": "log_uniform",
        "consistency_weight": 20.0,
        "consistency_target": "richer",
        "thin_full_fraction": 0.25,
        "use_log_n": True,
    },
    "richer20_logn": {
        "thinning": "log_uniform",
        "consistency_weight": 20.0,
        "consistency_target": "richer",
        "use_log_n": True,
    },
    # fourth round: with the validation-fitted constant mean offset (mean_calibration)
    "richer20_full_logn_cal": {
        "thinning": "log_uniform",
        "consistency_weight": 20.0,
        "consistency_target": "richer",
        "thin_full_fraction": 0.25,
        "use_log_n": True,
        "mean_calibration": True,
    },
    "richer5_full_logn_cal": {
        "thinning": "log_uniform",
        "consistency_weight": 5.0,
        "consistency_target": "richer",
        "thin_full_fraction": 0.25,
        "use_log_n": True,
        "mean_calibration": True,
    },
}


def _mocks(out: Path, name: str, n_hosts: int) -> MockCatalog:
    path = out / f"{name}.asdf"
    if path.exists():
        return MockCatalog.read(path)
    preset = "default"
    if name in ("train", "test_wide"):
        preset = "training"
    elif name.startswith("var_"):
        preset = name[4:]
    return generate_catalog(
        n_hosts,
        seed=DEV_SEEDS[name],
        lines_of_sight=3,
        prior="flat",
        workers=1,
        out=path,
        config=preset_config(preset),
        progress=False,
    )


def _coverage_summary(m, mean, std) -> dict:
    from astro_cnnmass.model.metrics import interval_coverage

    cov = interval_coverage(m, mean, std, mass_range=(14.0, 15.0))
    inside = cov.get("in_range", cov["overall"])
    bins = [b for b in cov["bins"] if b["n"] >= 20 and 14.0 <= b["lo"] and b["hi"] <= 15.0]
    return {
        "68": inside["0.68"],
        "90": inside["0.90"],
        "68_bins": [round(b["0.68"], 3) for b in bins],
        "90_bins": [round(b["0.90"], 3) for b in bins],
    }


def measure(bundle, catalogs: dict, seed: int = 0) -> dict:
    """The comparison numbers of one bundle on the development catalogues."""
    from astro_cnnmass.classical import MSigmaPowerLaw
    from astro_cnnmass.features.config import FeatureConfig
    from astro_cnnmass.model.metrics import residual_stats
    from astro_cnnmass.model.predictor import Predictor
    from astro_cnnmass.model.robustness import sampling_robustness
    from astro_cnnmass.model.samples import prepare_features, thinned_images

    predictor = Predictor(bundle, device="cpu")
    law = MSigmaPowerLaw.from_dict(bundle.m_sigma)
    fconf = FeatureConfig.from_dict(bundle.feature_config)
    out: dict = {}
    for name, cat in catalogs.items():
        full_test = name in ("test_default", "test_wide")
        prep = prepare_features(cat, bundle.cylinder, fconf, keep_galaxies=full_test)
        pred = predictor.predict(prep["images"], prep["z"], n=prep["n_gal"])
        m = prep["log_m"]
        sel = (m > 14.0) & (m < 15.0)
        eps = pred["mean"] - m
        eps_ms = law.predict_log_mass(prep["sigma"]) - m
        res = {
            "cnn": {k: residual_stats(eps[sel])[k] for k in ("mean", "median", "std", "width")},
            "m_sigma_std": residual_stats(eps_ms[sel])["std"],
        }
        if full_test:
            res["coverage"] = _coverage_summary(m, pred["mean"], pred["std"])
            rob = sampling_robustness(predictor, prep, pred["mean"], m_sigma=law, seed=seed)
            res["shift"] = {
                k: {
                    "cnn_median": round(v["cnn"]["median"], 4),
                    "cnn_width": round(v["cnn"]["width"], 4),
                    "m_sigma_median": round(v["m_sigma"]["median"], 4),
                    "m_sigma_width": round(v["m_sigma"]["width"], 4),
                    "coverage68": round(v.get("coverage", {}).get("0.68", np.nan), 3),
                    "coverage90": round(v.get("coverage", {}).get("0.90", np.nan), 3),
                    "eps_mean": round(v["cnn_eps"]["mean"], 4),
                }
                for k, v in rob.items()
                if isinstance(v, dict) and "fraction" in v
            }
            res["dlogm_dlogn"] = {k: round(v["slope"], 4) for k, v in rob["dlogm_dlogn"].items()}
            # coverage per mass bin on 30 %-thinned clusters (>= 10 galaxies kept)
            rows = np.flatnonzero(sel)
            keep = np.round(0.3 * prep["n_gal"][rows]).astype(int)
            rows, keep = rows[keep >= 10], keep[keep >= 10]
            imgs, nk = thinned_images(
                prep["galaxies"], rows, keep, fconf, np.random.default_rng(seed)
            )
            pt = predictor.predict(imgs, prep["z"][rows], n=nk)
            res["coverage_thinned_0.3"] = _coverage_summary(m[rows], pt["mean"], pt["std"])
        out[name] = res
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/sampling_methods")
    p.add_argument("--methods", nargs="+", default=list(METHODS)[:5], choices=list(METHODS))
    p.add_argument("--train-hosts", type=int, default=5000)
    p.add_argument("--test-hosts", type=int, default=1500)
    p.add_argument("--variant-hosts", type=int, default=500)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from astro_cnnmass.model.training import train_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = _mocks(out, "train", args.train_hosts)
    catalogs = {
        name: _mocks(out, name, args.test_hosts if name.startswith("test") else args.variant_hosts)
        for name in DEV_SEEDS
        if name != "train"
    }
    results = {}
    for method in args.methods:
        t0 = time.time()
        bundle = train_model(
            train,
            model="cnn2d",
            head="gaussian",
            n_ensemble=1,
            epochs=args.epochs,
            batch_size=args.batch_size,
            patience=None,
            seed=args.seed,
            progress=False,
            command=f"benchmarks/sampling_methods.py {method}",
            **METHODS[method],
        )
        t_train = time.time() - t0
        bundle.write(out / f"{method}.asdf")
        res = measure(bundle, catalogs, seed=args.seed)
        res["train_seconds"] = round(t_train, 1)
        res["std_scale"] = bundle.target_scaling["calibration"]["std_scale"]
        results[method] = res
        print(json.dumps({method: res}), file=sys.stderr, flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
