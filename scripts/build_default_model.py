"""Rebuild the bundled CNN_2D model from scratch, reproducibly.

This is the documented pipeline behind ``astro_cnnmass/data/cnn2d_default.asdf``:

1. training mocks: ``--train-hosts`` 3D hosts x 3 lines of sight, flat in log10 M200c over
   [13.5, 15.5], z in [0.01, 0.3], all nuisance physics randomized (seed ``--seed``);
2. held-out test mocks: independent hosts (seed ``--seed + 1``), never seen in training, used
   only for the reported figures (no tuning);
3. robustness test sets from *other* generator settings (the variants below), never trained on;
4. the CNN_2D (Gaussian head, deep ensemble) and, for comparison, a CNN_1D, trained on the
   training mocks (early stopping and interval calibration on a validation split *by host* of
   the training mocks);
5. evaluation on the held-out mocks (paper metrics next to the M–σ baseline on the same
   clusters) and on the variant sets; metrics JSON and figures in ``--out``.

Run (about 25 minutes on 2 CPU cores)::

    python scripts/build_default_model.py --out runs/default

and copy ``runs/default/cnn2d.asdf`` to ``astro_cnnmass/data/cnn2d_default.asdf``
(``--install`` does it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from astro_cnnmass.mocks import MockConfig, generate_catalog
from astro_cnnmass.mocks.catalog import MockCatalog
from astro_cnnmass.mocks.variants import (
    GENERATOR_VARIANTS,
    TRAINING_OVERRIDES,
    VARIANT_SEED_OFFSETS,
)
from astro_cnnmass.model.bundle import ModelBundle, bundled_model_path
from astro_cnnmass.model.evaluation import evaluate_model
from astro_cnnmass.model.training import train_model


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
        default=1,
        help="thinned copies of every training image (sampling augmentation)",
    )
    p.add_argument(
        "--subsample-min",
        type=float,
        default=0.5,
        help="smallest fraction of galaxies kept in a thinned copy",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-cnn1d", action="store_true")
    p.add_argument("--skip-variants", action="store_true")
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the CNN_2D bundle to astro_cnnmass/data/cnn2d_default.asdf",
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
        config=MockConfig().replace(**TRAINING_OVERRIDES),
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
        for name, overrides in GENERATOR_VARIANTS.items():
            cfg = MockConfig().replace(**overrides)
            cat = _mocks(
                out / f"variant_{name}.asdf",
                args.variant_hosts,
                args.seed + VARIANT_SEED_OFFSETS[name],
                args.workers,
                config=cfg,
            )
            _log(f"evaluating on variant {name}")
            report["variants"][name] = evaluate_model(
                [models["cnn2d"]],
                cat,
                out / f"variant_{name}",
                seed=args.seed,
                names=["cnn2d"],
                robustness_fraction=0.0,
            )
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    _log(f"report written to {out / 'report.json'}")
    if args.install:
        shutil.copyfile(out / "cnn2d.asdf", bundled_model_path())
        _log(f"installed {out / 'cnn2d.asdf'} as {bundled_model_path()}")
    return 0


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj).__name__)


if __name__ == "__main__":
    sys.exit(main())
