"""The ``train`` and ``evaluate`` sub-commands of ``astro-cnnmass``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .evaluation import evaluate_model, format_summary
from .samples import read_catalog
from .splits import train_test_split_by_host
from .training import train_model

__all__ = [
    "add_evaluate_subparser",
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
    p.add_argument("--out", required=True, help="output model file (ASDF)")
    p.add_argument("--model", choices=["cnn2d", "cnn1d"], default="cnn2d")
    p.add_argument("--head", choices=["gaussian", "point"], default="gaussian")
    p.add_argument("--ensemble", type=int, default=1, help="number of ensemble members")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    p.add_argument("--lr-schedule", choices=["cosine", "plateau", "constant"], default="cosine")
    p.add_argument(
        "--subsampled",
        type=int,
        default=0,
        help="thinned copies of each training image (sampling augmentation)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation hosts fraction")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.0,
        help="hold out this fraction of hosts before training (written to --test-out)",
    )
    p.add_argument("--test-out", default=None, help="write the held-out mocks here (ASDF)")
    p.add_argument("--aperture", type=float, default=None, help="cylinder aperture, Mpc/h")
    p.add_argument("--v-cut", type=float, default=None, help="cylinder velocity cut, km/s")
    p.add_argument("--device", default=None, help="'cpu', 'cuda', ... (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train_command)
    return p


def run_train_command(args: argparse.Namespace) -> int:
    """Run ``astro-cnnmass train`` (see :func:`add_train_subparser`); returns the exit code."""
    catalog = read_catalog(args.mocks)
    if args.test_fraction > 0:
        if not args.test_out:
            raise SystemExit("--test-fraction needs --test-out to write the held-out mocks")
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
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--robustness-fraction", type=float, default=0.1)
    p.add_argument("--draws", type=int, default=10, help="subsamples per mock (sampling test)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run_evaluate_command)
    return p


def run_evaluate_command(args: argparse.Namespace) -> int:
    """Run ``astro-cnnmass evaluate`` (see :func:`add_evaluate_subparser`); returns exit code."""
    if len(args.paths) < 2:
        raise SystemExit("evaluate needs at least one MODEL.asdf and one TEST_MOCKS.asdf")
    *models, mocks = args.paths
    report = evaluate_model(
        models,
        mocks,
        args.out,
        args.seed,
        robustness_fraction=args.robustness_fraction,
        n_draws=args.draws,
        device=args.device,
    )
    for name, res in report["models"].items():
        print(format_summary(name, res))
    print(f"wrote {Path(args.out) / 'metrics.json'} and the figures")
    return 0
