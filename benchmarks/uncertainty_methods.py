"""Compare the predictive uncertainties of a bundle: deep ensemble vs one member with MC dropout.

Issue: ship the uncertainty method that calibrates best. On mocks that were used neither for
training nor for the reported test figures (a separate "development" catalogue, seed below), it
measures for the bundled CNN_2D: the 5-member deep ensemble (Lakshminarayanan et al. 2017,
arXiv:1612.01474), its member 0 alone (heteroscedastic Gaussian head, Ho et al. 2021,
arXiv:2006.13231) and member 0 with MC dropout (Gal & Ghahramani 2016, arXiv:1506.02142).
The bundle's std scale was fitted for the ensemble, so for a fair comparison every method is
measured raw (no scale) and with its own scale, fitted on one half of the development hosts and
applied to the other half. Prints JSON: scatter, raw coverage, the fitted scale and the 68/90 %
coverage over 10^14-10^15 Msun/h (overall and per 0.25-dex bin) of the held-out half, and the
cost relative to one forward pass.

Run::

    python benchmarks/uncertainty_methods.py [--hosts 1500] [--mc 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

DEV_SEED = 99991


def main(argv: list[str] | None = None) -> int:
    from astro_cnnmass.features.config import FeatureConfig
    from astro_cnnmass.mocks import generate_catalog
    from astro_cnnmass.model.bundle import ModelBundle, bundled_model_path
    from astro_cnnmass.model.metrics import interval_coverage
    from astro_cnnmass.model.predictor import Predictor
    from astro_cnnmass.model.samples import prepare_features
    from astro_cnnmass.uncertainty.calibration import fit_std_calibration

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--hosts", type=int, default=1500)
    p.add_argument("--seed", type=int, default=DEV_SEED)
    p.add_argument("--mc", type=int, default=20, help="MC-dropout samples")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    bundle = ModelBundle.read(args.model or bundled_model_path())
    cat = generate_catalog(args.hosts, seed=args.seed, workers=args.workers, progress=False)
    prep = prepare_features(cat, bundle.cylinder, FeatureConfig.from_dict(bundle.feature_config))
    sel = (prep["log_m"] > 14) & (prep["log_m"] < 15)
    images, z, log_m = prep["images"][sel], prep["z"][sel], prep["log_m"][sel]
    member0 = bundle.replace(state_dicts=bundle.state_dicts[:1])
    methods = {
        "deep_ensemble_5": Predictor(bundle),
        "single_gaussian": Predictor(member0),
        f"mc_dropout_{args.mc}": Predictor(member0, mc_dropout=args.mc, seed=0),
    }
    scale = float(bundle.target_scaling.get("calibration", {}).get("std_scale", 1.0))
    half = prep["host_id"][sel] % 2 == 0  # fit the scale on even hosts, measure on odd ones
    out: dict = {
        "n_clusters": int(sel.sum()),
        "dev_seed": args.seed,
        "n_fit": int(half.sum()),
        "n_measured": int((~half).sum()),
        "methods": {},
    }
    for name, pred in methods.items():
        t0 = time.perf_counter()
        res = pred.predict(images, z)
        dt = time.perf_counter() - t0
        eps = res["mean"] - log_m
        raw = res["std"] / scale  # the predictor applied the bundle's (ensemble) scale
        own = fit_std_calibration(res["mean"][half], raw[half], log_m[half])
        cov = interval_coverage(log_m[~half], res["mean"][~half], own * raw[~half])
        bins68 = [b["0.68"] for b in cov["bins"]]
        out["methods"][name] = {
            "std_eps": float(np.std(eps)),
            "mean_eps": float(np.mean(eps)),
            "raw_coverage": interval_coverage(log_m, res["mean"], raw)["overall"],
            "own_std_scale": own,
            "mean_calibrated_std": float(np.mean(own * raw)),
            "coverage": cov["overall"],
            "coverage_bins": cov["bins"],
            "spread_of_bin_coverage_68": float(max(bins68) - min(bins68)),
            "seconds": dt,
        }
    single = out["methods"]["single_gaussian"]["seconds"]
    for m in out["methods"].values():
        m["cost_vs_single"] = m["seconds"] / single
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
