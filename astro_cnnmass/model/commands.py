"""The ``train`` and ``evaluate`` sub-commands of ``astro-cnnmass``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import argtypes as at
from ..argtypes import UsageError
from .evaluation import evaluate_model, format_summary
from .samples import read_catalog
from .splits import train_test_split_by_host
from .training import train_model

__all__ = [
    "add_evaluate_subparser",
    "add_sampling_invariance_arguments",
    "add_train_subparser",
    "run_evaluate_command",
    "run_train_command",
]


# ---------------------------------------------------------------------------- CLI
def add_train_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "train",
        help="train a CNN mass model on a mock catalogue",
        description="Train a CNN_2D/CNN_1D model on MOCKS.asdf and write a model bundle.",
    )
    p.add_argument("mocks", help="mock catalogue (ASDF, from 'astro-cnnmass mocks')")
    p.add_argument("--out", type=at.new_file(), required=True, help="output model file (ASDF)")
    p.add_argument(
        "--model", choices=["cnn2d", "cnn1d"], default="cnn2d", help="network architecture"
    )
    p.add_argument(
        "--head",
        choices=["gaussian", "point"],
        default="gaussian",
        help="output head: Gaussian (mean and std of log M) or a point estimate",
    )
    p.add_argument("--ensemble", type=at.positive_int, default=1, help="number of ensemble members")
    p.add_argument("--epochs", type=at.positive_int, default=20, help="maximum training epochs")
    p.add_argument("--batch-size", type=at.positive_int, default=50, help="images per batch")
    p.add_argument("--lr", type=at.positive_float, default=1e-3, help="initial learning rate")
    p.add_argument(
        "--patience", type=at.nonnegative_int, default=5, help="early-stopping patience (epochs)"
    )
    p.add_argument(
        "--lr-schedule",
        choices=["cosine", "plateau", "constant"],
        default="cosine",
        help="learning-rate schedule",
    )
    p.add_argument(
        "--subsampled",
        type=at.nonnegative_int,
        default=0,
        help="thinned copies of each training image (sampling augmentation)",
    )
    p.add_argument("--seed", type=at.nonnegative_int, default=0, help="random seed")
    p.add_argument(
        "--val-fraction", type=at.fraction, default=0.1, help="validation hosts fraction"
    )
    p.add_argument(
        "--test-fraction",
        type=at.number_in(0.0, 1.0, hi_open=True, what="a fraction"),
        default=0.0,
        help="hold out this fraction of hosts before training (written to --test-out)",
    )
    p.add_argument(
        "--test-out", type=at.new_file(), default=None, help="write the held-out mocks here (ASDF)"
    )
    p.add_argument(
        "--aperture",
        type=at.number_in(0.0, 10.0, lo_open=True, what="an aperture in Mpc/h"),
        default=None,
        help="cylinder aperture, Mpc/h",
    )
    p.add_argument(
        "--v-cut",
        type=at.number_in(0.0, 1e4, lo_open=True, what="a velocity cut in km/s"),
        default=None,
        help="cylinder velocity cut, km/s",
    )
    p.add_argument(
        "--device", type=at.device_name, default=None, help="'cpu', 'cuda', ... (default: auto)"
    )
    add_sampling_invariance_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train_command)
    return p


def add_sampling_invariance_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of the sampling-invariant training recipe (model v2) to a parser.

    Used by ``astro-cnnmass train`` and ``scripts/build_default_model.py``, so both offer the
    same options with the same defaults (those of the bundled model v2; docs/training.rst).
    The parsed names are ``thinning``, ``thin_min``, ``thin_full_fraction``, ``consistency``,
    ``consistency_target``, ``mean_calibration`` and ``log_n``.
    """
    si = parser.add_argument_group(
        "sampling-invariant training (the recipe of the bundled model v2; docs/training.rst)"
    )
    si.add_argument(
        "--thinning",
        choices=["none", "log_uniform", "fraction"],
        default="log_uniform",
        help="fresh thinning of every training cluster at every epoch (none: v1 recipe)",
    )
    si.add_argument(
        "--thin-min", type=at.positive_int, default=10, help="smallest thinned galaxy count"
    )
    si.add_argument(
        "--thin-full-fraction",
        type=at.number_in(0.0, 1.0, what="a fraction"),
        default=0.25,
        help="probability that a cluster keeps all its galaxies at an epoch",
    )
    si.add_argument(
        "--consistency",
        type=at.number_in(0.0, 1e6, what="a non-negative weight"),
        default=20.0,
        help="weight of the consistency penalty between two thinned views (0: off)",
    )
    si.add_argument(
        "--consistency-target",
        choices=["richer", "symmetric"],
        default="richer",
        help="pull only the sparser view onto the richer one, or both views together",
    )
    si.add_argument(
        "--mean-calibration",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit a constant offset of the predicted mass on the validation clusters",
    )
    si.add_argument(
        "--log-n",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="feed log10 of the number of cylinder galaxies to the dense layers",
    )


def run_train_command(args: argparse.Namespace) -> int:
    """Run ``astro-cnnmass train`` (see :func:`add_train_subparser`); returns the exit code."""
    if args.test_fraction > 0 and not args.test_out:
        raise UsageError("--test-fraction needs --test-out to write the held-out mocks")
    catalog = read_catalog(args.mocks)
    if args.test_fraction > 0:
        tr, te = train_test_split_by_host(catalog.clusters, args.test_fraction, args.seed)
        catalog.select(te).write(args.test_out)
        catalog = catalog.select(tr)
    cylinder = None
    if args.aperture is not None or args.v_cut is not None:
        cylinder = {
            "aperture_mpch": args.aperture if args.aperture is not None else 1.6,
            "v_cut_kms": args.v_cut if args.v_cut is not None else 2200.0,
        }
    bundle = train_model(
        catalog,
        model=args.model,
        head=args.head,
        n_ensemble=args.ensemble,
        cylinder=cylinder,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        lr_schedule=args.lr_schedule,
        n_subsampled=args.subsampled,
        seed=args.seed,
        device=args.device,
        val_fraction=args.val_fraction,
        thinning=args.thinning,
        thin_min=args.thin_min,
        thin_full_fraction=args.thin_full_fraction,
        consistency_weight=args.consistency if args.thinning != "none" else 0.0,
        consistency_target=args.consistency_target,
        mean_calibration=args.mean_calibration,
        use_log_n=args.log_n,
        progress=not args.no_progress,
        command="astro-cnnmass " + " ".join(sys.argv[1:]),
    )
    bundle.write(args.out)
    scatter = bundle.metrics.get("scatter_dex", float("nan"))
    print(
        f"wrote {args.out}: {bundle.training['n_train']} training mocks, "
        f"validation scatter {scatter:.3f} dex"
    )
    return 0


# ---------------------------------------------------------------------------- CLI
def add_evaluate_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate model(s) on held-out mocks (metrics.json + figures)",
        description="Evaluate MODEL.asdf [MODEL2.asdf ...] on TEST_MOCKS.asdf.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="FILE",
        help="MODEL.asdf [MODEL2.asdf ...] TEST_MOCKS.asdf (the last is the mocks)",
    )
    p.add_argument("--out", type=at.output_dir, required=True, help="output directory")
    p.add_argument(
        "--seed", type=at.nonnegative_int, default=0, help="random seed of the sampling tests"
    )
    p.add_argument(
        "--robustness-fraction",
        type=at.fraction,
        default=0.1,
        help="fraction of the test mocks in the sampling-rate test",
    )
    p.add_argument(
        "--draws", type=at.positive_int, default=10, help="subsamples per mock (sampling test)"
    )
    p.add_argument(
        "--device", type=at.device_name, default=None, help="'cpu', 'cuda', ... (default: auto)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    sdm = p.add_argument_group(
        "SDM baselines",
        "Support Distribution Machines (astro_cnnmass.model.sdm; needs scikit-learn, the 'sdm' "
        "extra) evaluated on the clusters of the first model",
    )
    sdm.add_argument(
        "--sdm-model",
        action="append",
        default=[],
        metavar="FILE",
        help="a fitted SDM file (SDM.save); may be repeated",
    )
    sdm.add_argument(
        "--with-sdm",
        action="store_true",
        help="fit SDM_1D and SDM_2D on a subset of the first model's training "
        "split (needs --sdm-train-mocks); written to OUT/sdm1d.asdf, sdm2d.asdf",
    )
    sdm.add_argument(
        "--sdm-train-mocks",
        default=None,
        metavar="FILE",
        help="the first model's training catalogue (for --with-sdm)",
    )
    sdm.add_argument(
        "--sdm-n-train",
        type=int,
        default=1000,
        help="SDM training clusters, drawn from the model's training split "
        "(default 1000; the cost is quadratic)",
    )
    sdm.add_argument(
        "--sdm-kinds",
        nargs="+",
        choices=["sdm1d", "sdm2d"],
        default=["sdm1d", "sdm2d"],
        help="SDM kinds fitted by --with-sdm",
    )
    sdm.add_argument("--sdm-workers", type=int, default=1, help="k-NN query threads")
    p.set_defaults(func=run_evaluate_command)
    return p


def _sdm_models(args: argparse.Namespace, first_model: str) -> dict[str, Any] | None:
    """The SDM baselines of ``evaluate``: files given, and/or fitted here (``--with-sdm``)."""
    from .sdm import load_sdms

    sdms = load_sdms(args.sdm_model) if args.sdm_model else {}
    if args.with_sdm:
        if not args.sdm_train_mocks:
            raise SystemExit("--with-sdm needs --sdm-train-mocks (the model's training mocks)")
        from .bundle import ModelBundle
        from .sdm_evaluation import fit_sdm_beside

        fitted = fit_sdm_beside(
            ModelBundle.read(first_model),
            read_catalog(args.sdm_train_mocks),
            kinds=tuple(args.sdm_kinds),
            n_train=args.sdm_n_train,
            seed=args.seed,
            workers=args.sdm_workers,
        )
        for kind, model in fitted.items():
            path = model.save(Path(args.out) / f"{kind}.asdf")
            print(
                f"fitted {kind} on {model.info_['n_train']} training clusters in "
                f"{model.info_['seconds']['total']:.0f} s -> {path}"
            )
        sdms.update(fitted)
    return sdms or None


def run_evaluate_command(args: argparse.Namespace) -> int:
    """Run ``astro-cnnmass evaluate`` (see :func:`add_evaluate_subparser`); returns exit code."""
    if len(args.paths) < 2:
        raise UsageError("evaluate needs at least one MODEL.asdf and one TEST_MOCKS.asdf")
    *models, mocks = args.paths
    sdms = _sdm_models(args, models[0])
    report = evaluate_model(
        models,
        mocks,
        args.out,
        args.seed,
        robustness_fraction=args.robustness_fraction,
        n_draws=args.draws,
        device=args.device,
        sdm_models=sdms,
        progress=not args.no_progress,
    )
    for name, res in report["models"].items():
        print(format_summary(name, res))
    print(f"wrote {Path(args.out) / 'metrics.json'} and the figures")
    return 0
