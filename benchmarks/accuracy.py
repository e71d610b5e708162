"""Accuracy of a model on held-out mock clusters, next to the M–σ baseline (prints JSON).

By default it evaluates the bundled CNN_2D on the held-out test mocks of
``scripts/build_default_model.py`` (the same seed, so the same hosts; none of them was used in
training), over 10^14 < M200c < 10^15 Msun/h, the way Ho et al. 2019 report it: residuals
ε = log10 M_pred − log10 M_true (mean, median, 16–84 % width, standard deviation), the M–σ
power law (fitted on the model's own training mocks) on all cylinder galaxies of the same
clusters, the sampling-rate robustness Δε68 (paper §5.3) and the interval coverage.

Run::

    python benchmarks/accuracy.py                       # bundled model, 2400 hosts x 3 LOS
    python benchmarks/accuracy.py --model runs/default/cnn1d.asdf --out runs/acc_cnn1d
    python benchmarks/accuracy.py --variant ho_like     # 600 hosts of another generator set-up
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from astro_cnnmass.mocks import MockConfig, generate_catalog
from astro_cnnmass.mocks.variants import GENERATOR_VARIANTS, VARIANT_SEED_OFFSETS
from astro_cnnmass.model.bundle import ModelBundle, bundled_model_path
from astro_cnnmass.model.evaluation import evaluate_model

#: Seed of scripts/build_default_model.py; its held-out test mocks use BUILD_SEED + 1 and the
#: variant catalogues BUILD_SEED + VARIANT_SEED_OFFSETS[name].
BUILD_SEED = 20190215


def summarize(metrics: dict) -> dict:
    """The headline numbers of one model's evaluation."""
    cnn, ms = metrics["cnn"], metrics["m_sigma"]
    out = {
        "n_clusters_1e14_1e15": cnn["n"],
        "cnn": {k: cnn[k] for k in ("mean", "median", "p16", "p84", "width", "std")},
        "m_sigma": {k: ms[k] for k in ("mean", "median", "p16", "p84", "width", "std")},
        "std_ratio_cnn_over_m_sigma": cnn["std"] / ms["std"],
    }
    if "coverage" in metrics:
        cov = metrics["coverage"]
        # the targets are over 10^14-10^15 Msun/h, overall and per 0.25-dex bin of true mass
        out["coverage"] = cov.get("in_range", cov["overall"])
        out["coverage_bins"] = cov["bins"]
        out["coverage_all_masses"] = cov["overall"]
    sr = metrics.get("sampling_rate")
    if sr:
        out["sampling_rate_delta_eps68"] = {
            "cnn": sr["cnn"]["delta_eps68"],
            "m_sigma": sr["m_sigma"]["delta_eps68"],
            "ratio": sr["cnn"]["delta_eps68"] / sr["m_sigma"]["delta_eps68"],
        }
    if "ood" in metrics:
        out["ood_fraction_flagged"] = metrics["ood"]["fraction_flagged"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="ASDF model (default: the bundled CNN_2D)")
    p.add_argument("--test-mocks", default=None, help="an existing held-out MockCatalog")
    p.add_argument(
        "--test-hosts",
        type=int,
        default=None,
        help="hosts to generate (default 2400, or 600 with --variant)",
    )
    p.add_argument(
        "--variant",
        choices=sorted(GENERATOR_VARIANTS),
        default=None,
        help="generate the test mocks with this other generator set-up",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the generated mocks (default: that of the build script)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="runs/accuracy")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.test_mocks:
        from astro_cnnmass.mocks.catalog import MockCatalog

        test = MockCatalog.read(args.test_mocks)
    else:
        config = None
        seed, n_hosts = BUILD_SEED + 1, 2400
        if args.variant:
            config = MockConfig().replace(**GENERATOR_VARIANTS[args.variant])
            seed, n_hosts = BUILD_SEED + VARIANT_SEED_OFFSETS[args.variant], 600
        seed = seed if args.seed is None else args.seed
        n_hosts = n_hosts if args.test_hosts is None else args.test_hosts
        test = generate_catalog(
            n_hosts,
            seed=seed,
            lines_of_sight=3,
            config=config,
            workers=args.workers,
            progress=False,
        )
    model_path = Path(args.model) if args.model else bundled_model_path()
    bundle = ModelBundle.read(model_path)
    name = str(bundle.network_config.get("arch", "model"))
    metrics = evaluate_model([bundle], test, out, seed=0, names=[name])
    result = {
        "model": str(model_path),
        "test_mocks": {
            "n": int(test.n_clusters),
            "variant": args.variant or "default",
            "source": args.test_mocks or "generated",
            "meta_seed": test.meta.get("seed"),
        },
        "mass_range_log10": [14.0, 15.0],
        name: summarize(metrics["models"][name]),
        "wall_s": time.time() - t0,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
