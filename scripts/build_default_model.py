"""Rebuild the bundled CNN_2D model (v3) from scratch, reproducibly.

This is the documented pipeline behind ``astro_cnnmass/data/cnn2d_default.asdf`` (model v3; the
v2 and v1 bundles stay loadable from ``astro_cnnmass/data/cnn2d_v2.asdf`` and ``cnn2d_v1.asdf``):

1. training mocks: ``--train-hosts`` 3D hosts x 3 lines of sight, flat in log10 M200c over
   [13.5, 15.5], z in [0.01, 0.3], all nuisance physics randomized (seed ``--seed``), with the
   wider survey and infall ranges of ``astro_cnnmass.mocks.variants.TRAINING_OVERRIDES``
   (depth, sampling, targeting radius and radial completeness, infall normalisation);
2. held-out test mocks: independent hosts (seed ``--seed + 1``), never seen in training, used
   only for the reported figures (no tuning);
3. robustness test sets from *other* generator settings (the variants below), never trained on;
4. the CNN_2D (Gaussian head, deep ensemble) and, for comparison, a CNN_1D, trained on the
   training mocks with sampling-invariant training (issue 13, the method chosen on development
   mocks by ``benchmarks/sampling_methods.py``): every training cluster is thinned afresh at
   every epoch to a galaxy count drawn log-uniformly between 10 and what it has, independently
   of its mass (``--thinning``), and log10 N is fed to the dense layers (``--log-n``) so that
   the network widens its interval for sparse clusters instead of moving its mass; early
   stopping and interval calibration on a validation split *by host* of the training mocks
   (full clusters plus one thinned copy of each);
5. evaluation on the held-out mocks (paper metrics next to the M–σ baseline on the same
   clusters, and the sampling-robustness report: log M(thinned) − log M(all) at 70 / 50 / 30 %
   and under a stellar-mass cut, dε/dlog10 N) and on the variant sets (bias and scatter of
   CNN_2D, CNN_1D and M–σ per variant); metrics JSON and figures in ``--out``.

Run (the build of model v3; about 60 minutes on 2 CPU cores, mocks, both networks and the
evaluation included)::

    python scripts/build_default_model.py --out runs/v3 --ensemble 3 --install

``--install`` copies ``runs/v3/cnn2d.asdf`` to ``astro_cnnmass/data/cnn2d_default.asdf``, after
keeping the bundle it replaces as ``astro_cnnmass/data/cnn2d_v2.asdf`` (``--keep-previous-as``)
if that file does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from astro_cnnmass.mocks import generate_catalog
from astro_cnnmass.mocks.catalog import MockCatalog
from astro_cnnmass.mocks.variants import GENERATOR_VARIANTS, VARIANT_SEED_OFFSETS, preset_config
from astro_cnnmass.model.bundle import ModelBundle, bundled_model_path
from astro_cnnmass.model.commands import add_sampling_invariance_arguments
from astro_cnnmass.model.evaluation import evaluate_model
from astro_cnnmass.model.training import train_model

#: The command that builds the bundled model v3 (also stored in the bundle, training["command"]).
BUILD_COMMAND = "python scripts/build_default_model.py --out runs/v3 --ensemble 3 --install"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _mocks(path: Path, n_hosts: int, seed: int, workers: int, config=None) -> MockCatalog:
    if path.exists():
        _log(f"reusing {path}")
        return MockCatalog.read(path)
    _log(f"generating {n_hosts} hosts x 3 LOS -> {path}")
    return generate_catalog(
        n_hosts,
        seed=seed,
        lines_of_sight=3,
        prior="flat",
        workers=workers,
        out=path,
        config=config,
        progress=False,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/default", help="working directory")
    p.add_argument("--train-hosts", type=int, default=36000)
    p.add_argument("--test-hosts", type=int, default=2400)
    p.add_argument("--variant-hosts", type=int, default=600)
    p.add_argument("--seed", type=int, default=20190215)
    p.add_argument("--ensemble", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument(
        "--subsampled",
        type=int,
        default=0,
        help="v1 sampling augmentation: fixed thinned copies of every training image",
    )
    p.add_argument(
        "--subsample-min",
        type=float,
        default=0.5,
        help="v1 augmentation: smallest fraction of galaxies kept in a thinned copy",
    )
    add_sampling_invariance_arguments(p)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-cnn1d", action="store_true")
    p.add_argument("--skip-variants", action="store_true")
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the CNN_2D bundle to astro_cnnmass/data/cnn2d_default.asdf",
    )
    p.add_argument(
        "--keep-previous-as",
        default="cnn2d_v2.asdf",
        help="with --install: file name (next to the default) under which the bundle it "
        "replaces is kept, if that file does not exist yet",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train = _mocks(
        out / "train_mocks.asdf",
        args.train_hosts,
        args.seed,
        args.workers,
        config=preset_config("training"),
    )
    test = _mocks(out / "test_mocks.asdf", args.test_hosts, args.seed + 1, args.workers)
    timings = {"mocks_s": time.time() - t0}

    command = " ".join(["python scripts/build_default_model.py", *sys.argv[1:]])
    kinds = {"cnn2d": args.ensemble} if args.skip_cnn1d else {"cnn2d": args.ensemble, "cnn1d": 1}
    models = {}
    for kind, n_ensemble in kinds.items():
        t1 = time.time()
        path = out / f"{kind}.asdf"
        if path.exists():
            models[kind] = ModelBundle.read(path)
        else:
            _log(f"training {kind}")
            models[kind] = train_model(
                train,
                model=kind,
                head="gaussian",
                n_ensemble=n_ensemble,
                epochs=args.epochs,
                batch_size=args.batch_size,
                patience=args.patience,
                n_subsampled=args.subsampled,
                subsample_fraction=(args.subsample_min, 1.0),
                thinning=args.thinning,
                thin_min=args.thin_min,
                thin_full_fraction=args.thin_full_fraction,
                consistency_weight=args.consistency if args.thinning != "none" else 0.0,
                consistency_target=args.consistency_target,
                mean_calibration=args.mean_calibration,
                use_log_n=args.log_n,
                seed=args.seed,
                progress=False,
                command=command,
            )
            models[kind].write(path)
        timings[f"train_{kind}_s"] = time.time() - t1

    _log("evaluating on the held-out test mocks")
    names = list(models)
    metrics = evaluate_model(
        [models[n] for n in names], test, out / "evaluation", seed=args.seed, names=names
    )
    report = {"test": metrics, "timings": timings}
    if not args.skip_variants:
        report["variants"] = {}
        for name in GENERATOR_VARIANTS:
            cfg = preset_config(name)
            cat = _mocks(
                out / f"variant_{name}.asdf",
                args.variant_hosts,
                args.seed + VARIANT_SEED_OFFSETS[name],
                args.workers,
                config=cfg,
            )
            _log(f"evaluating on variant {name}")
            report["variants"][name] = evaluate_model(
                [models[n] for n in names],
                cat,
                out / f"variant_{name}",
                seed=args.seed,
                names=names,
                robustness_fraction=0.0,
                robustness=False,
            )
        report["variant_summary"] = _variant_summary(report["variants"])
    report["robustness"] = {n: metrics["models"][n].get("robustness") for n in names}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    _log(f"report written to {out / 'report.json'}")
    if args.install:
        target = bundled_model_path()
        previous = target.with_name(args.keep_previous_as)
        if target.exists() and not previous.exists():  # keep the bundle it replaces, once
            shutil.copyfile(target, previous)
            _log(f"kept the previous bundle as {previous}")
        shutil.copyfile(out / "cnn2d.asdf", target)
        _log(f"installed {out / 'cnn2d.asdf'} as {target}")
    return 0


def _variant_summary(variants: dict) -> dict:
    """Bias (mean ε) and scatter (σ_ε) per variant, for every model and its M–σ, dex."""
    out = {}
    for name, rep in variants.items():
        row = {}
        for model, res in rep["models"].items():
            row[model] = {
                "mean": res["cnn"]["mean"],
                "std": res["cnn"]["std"],
                "n": res["cnn"]["n"],
            }
            row[f"m_sigma[{model}]"] = {
                "mean": res["m_sigma"]["mean"],
                "std": res["m_sigma"]["std"],
            }
        out[name] = row
    return out


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj).__name__)


if __name__ == "__main__":
    sys.exit(main())
