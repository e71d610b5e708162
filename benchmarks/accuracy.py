"""Accuracy of a model on held-out mock clusters, next to the M–σ baseline (prints JSON).

By default it evaluates the bundled CNN_2D on the held-out test mocks of
``scripts/build_default_model.py`` (the same seed, so the same hosts; none of them was used in
training), over 10^14 < M200c < 10^15 Msun/h, the way Ho et al. 2019 report it: residuals
ε = log10 M_pred − log10 M_true (mean, median, 16–84 % width, standard deviation), the M–σ
power law (fitted on the model's own training mocks) on all cylinder galaxies of the same
clusters, the sampling-rate robustness Δε68 (paper §5.3), the interval coverage, and the
sampling robustness of issue 13 (log M(thinned) − log M(all) at 70 / 50 / 30 % random thinning
and for the 50 % of largest stellar mass, dε/dlog10 N at fixed mass; CNN and M–σ on the same
subsets; ``robustness`` per model).

With ``--sdm-model FILE`` or ``--with-sdm`` it adds the paper's other baseline, Support
Distribution Machines (:mod:`astro_cnnmass.model.sdm`, needs scikit-learn) on the same clusters:
``--with-sdm`` fits SDM_1D and SDM_2D on ``--sdm-n-train`` clusters drawn from the first
model's *training* split (rebuilt from its training mocks: ``--train-mocks``, or regenerated
from the seed and settings stored in the model, as ``scripts/refit_default_uncertainty.py``
does), never from the test mocks, and writes them to OUT/sdm1d.asdf and OUT/sdm2d.asdf.

Run::

    python benchmarks/accuracy.py                       # bundled model, 2400 hosts x 3 LOS
    python benchmarks/accuracy.py --model runs/default/cnn1d.asdf --out runs/acc_cnn1d
    python benchmarks/accuracy.py --variant ho_like     # 600 hosts of another generator set-up
    python benchmarks/accuracy.py --with-sdm --sdm-n-train 1000   # + SDM_1D, SDM_2D
    python benchmarks/accuracy.py --model A.asdf --model B.asdf --sdm-model runs/accuracy/sdm2d.asdf
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from astro_cnnmass.mocks import generate_catalog
from astro_cnnmass.mocks.variants import GENERATOR_VARIANTS, VARIANT_SEED_OFFSETS, preset_config
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
    rob = metrics.get("robustness")
    if rob:
        out["thinning_median_shift"] = {
            who: {
                k.split("_", 1)[1]: r[who]["median"]
                for k, r in rob.items()
                if k.startswith("random_") and who in r
            }
            for who in ("cnn", "m_sigma")
        }
        out["robustness"] = robustness_summary(rob)
    if metrics.get("sdm"):
        out["sdm"] = {name: summarize_sdm(r) for name, r in metrics["sdm"].items()}
    return out


def robustness_summary(rob: dict) -> dict:
    """Sampling robustness (issue 13) of one model: shift of log M when galaxies are removed.

    Per test (``random_0.7``, ``random_0.5``, ``random_0.3``: that fraction of the cylinder
    galaxies kept at random; ``brightest_0.5``: the half with the largest stellar mass), for the
    CNN and for M–σ on the same subsets: median and 16–84 % width of
    log M(thinned) − log M(all) [dex], and the CNN's mean ε and 68 / 90 % coverage on the thinned
    clusters; ``dlogm_dlogn``: dε/dlog10 N at fixed true mass (full clusters, and pooled with
    the randomly thinned ones).
    """
    out = {}
    for key, r in rob.items():
        if not isinstance(r, dict) or "fraction" not in r:
            continue
        row = {
            who: {"median": r[who]["median"], "width": r[who]["width"], "n": r[who]["n"]}
            for who in ("cnn", "m_sigma")
            if who in r
        }
        row["cnn_eps_mean"] = r["cnn_eps"]["mean"]
        if "coverage" in r:
            row["cnn_coverage"] = r["coverage"]
        out[key] = row
    out["dlogm_dlogn"] = {
        k: {"slope": v["slope"], "slope_err": v["slope_err"]}
        for k, v in rob.get("dlogm_dlogn", {}).items()
    }
    return out


def summarize_sdm(r: dict) -> dict:
    """The headline numbers of one SDM baseline (see model.sdm_evaluation.evaluate_sdm)."""
    e = r["residuals"]
    rob = r.get("robustness", {})
    return {
        "kind": r["kind"],
        **{k: e[k] for k in ("n", "mean", "median", "p16", "p84", "width", "std")},
        "delta_eps68": (r.get("sampling_rate") or {}).get("delta_eps68"),
        "sampling_rate_median": (r.get("sampling_rate") or {}).get("median"),
        "thinning_median_shift": {
            k.split("_", 1)[1]: v["sdm"]["median"]
            for k, v in rob.items()
            if k.startswith("random_")
        },
        "thinning_n_mocks": rob.get("n_mocks"),
        "model": r["model"],
        "predict_seconds": r["predict_seconds"],
    }


def comparison_rows(result: dict, names: list[str]) -> list[dict]:
    """One row per estimator on the same clusters: CNN(s), M–σ (of the first model), SDM(s)."""

    def row(label, stats, d68, thin):
        return {
            "model": label,
            **{k: stats.get(k) for k in ("mean", "median", "p16", "p84", "width", "std")},
            "delta_eps68": d68,
            "thinning_median_shift": thin,
        }

    rows = []
    for i, name in enumerate(names):
        s = result[name]
        thin = s.get("thinning_median_shift", {})
        d68 = s.get("sampling_rate_delta_eps68", {})
        rows.append(row(name, s["cnn"], d68.get("cnn"), thin.get("cnn")))
        if i == 0:
            first_ms = row("m_sigma", s["m_sigma"], d68.get("m_sigma"), thin.get("m_sigma"))
    rows.append(first_ms)
    for sname, r in result[names[0]].get("sdm", {}).items():
        rows.append(row(sname, r, r["delta_eps68"], r["thinning_median_shift"]))
    return rows


def _training_mocks(bundle, path: str | None, out: Path, workers: int):
    """The bundle's training mocks: a file, or regenerated from the bundle's seed and settings."""
    from astro_cnnmass.mocks.catalog import MockCatalog

    if path:
        return MockCatalog.read(path)
    target = out / "train_mocks.asdf"
    if target.exists():
        return MockCatalog.read(target)
    info = bundle.training  # as scripts/refit_default_uncertainty.py regenerates them
    return generate_catalog(
        int(info["generator"]["n_hosts"]),
        seed=int(info["seed"]),
        lines_of_sight=3,
        prior="flat",
        workers=workers,
        out=target,
        config=preset_config("training"),
        progress=False,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        action="append",
        default=None,
        help="ASDF model (default: the bundled CNN_2D); repeat for several (the "
        "SDM baselines use the first one's clusters and training split)",
    )
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
    p.add_argument(
        "--sdm-model",
        action="append",
        default=[],
        metavar="FILE",
        help="a fitted SDM baseline (astro_cnnmass.model.sdm); may be repeated",
    )
    p.add_argument(
        "--with-sdm",
        action="store_true",
        help="fit SDM_1D and SDM_2D on a subset of the first model's training split",
    )
    p.add_argument(
        "--train-mocks",
        default=None,
        help="the first model's training mocks (--with-sdm; default: regenerated "
        "from its seed into OUT/train_mocks.asdf)",
    )
    p.add_argument(
        "--sdm-n-train",
        type=int,
        default=1000,
        help="SDM training clusters (default 1000; the SDM cost is quadratic)",
    )
    p.add_argument("--sdm-kinds", nargs="+", choices=["sdm1d", "sdm2d"], default=["sdm1d", "sdm2d"])
    p.add_argument("--sdm-workers", type=int, default=2, help="k-NN query threads of the SDMs")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (they go to stderr, the JSON report to stdout)",
    )
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
            config = preset_config(args.variant)
            seed, n_hosts = BUILD_SEED + VARIANT_SEED_OFFSETS[args.variant], 600
        seed = seed if args.seed is None else args.seed
        n_hosts = n_hosts if args.test_hosts is None else args.test_hosts
        test = generate_catalog(
            n_hosts,
            seed=seed,
            lines_of_sight=3,
            config=config,
            workers=args.workers,
            progress=not args.no_progress,
        )
    model_paths = [Path(m) for m in args.model] if args.model else [bundled_model_path()]
    bundles = [ModelBundle.read(path) for path in model_paths]
    names = [str(b.network_config.get("arch", "model")) for b in bundles]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    timings, sdms, sdm_sources = {}, {}, {}
    if args.sdm_model:
        from astro_cnnmass.model.sdm import load_sdms

        sdms.update(load_sdms(args.sdm_model))
        sdm_sources.update(zip(sdms, args.sdm_model))
    if args.with_sdm:
        from astro_cnnmass.model.sdm_evaluation import fit_sdm_beside

        t1 = time.time()
        train = _training_mocks(bundles[0], args.train_mocks, out, args.workers)
        timings["training_mocks_s"] = time.time() - t1
        fitted = fit_sdm_beside(
            bundles[0],
            train,
            kinds=tuple(args.sdm_kinds),
            n_train=args.sdm_n_train,
            seed=0,
            workers=args.sdm_workers,
        )
        for kind, model in fitted.items():
            sdm_sources[kind] = str(model.save(out / f"{kind}.asdf"))
            timings[f"fit_{kind}_s"] = model.info_["seconds"]["total"]
        sdms.update(fitted)
    t1 = time.time()
    metrics = evaluate_model(
        bundles,
        test,
        out,
        seed=0,
        names=names,
        sdm_models=sdms or None,
        progress=not args.no_progress,
    )
    timings["evaluate_s"] = time.time() - t1
    result = {
        "model": str(model_paths[0]),
        "test_mocks": {
            "n": int(test.n_clusters),
            "variant": args.variant or "default",
            "source": args.test_mocks or "generated",
            "meta_seed": test.meta.get("seed"),
        },
        "mass_range_log10": [14.0, 15.0],
        **{n: summarize(metrics["models"][n]) for n in names},
        "wall_s": time.time() - t0,
    }
    if len(names) > 1:
        result["models"] = {n: str(path) for n, path in zip(names, model_paths)}
    if sdms:
        result["sdm_models"] = sdm_sources
    result["comparison"] = comparison_rows(result, names)
    result["timings_s"] = timings
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
