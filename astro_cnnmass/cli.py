"""The ``astro-cnnmass`` command line tool.

Sub-commands::

    astro-cnnmass estimate MEMBERS_FILE --ra-cl DEG --dec-cl DEG --z-cl Z [--json]
    astro-cnnmass catalog MEMBERS_FILE --clusters CLUSTERS_FILE --out OUT.ecsv
    astro-cnnmass demo [--json]
    astro-cnnmass mocks --n-hosts N --seed S --out FILE.asdf [--prior flat|hmf] [--workers K]
    astro-cnnmass train MOCKS.asdf --model cnn2d --out MODEL.asdf
    astro-cnnmass evaluate MODEL.asdf TEST_MOCKS.asdf --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - only without an install
    __version__ = "0.0.0"
from .exceptions import AstroCnnmassWarning, InputError

__all__ = ["build_parser", "main"]


def _add_estimate(subparsers) -> None:
    p = subparsers.add_parser(
        "estimate",
        help="estimate the mass of one cluster from a member table",
        description="Estimate M200c of a cluster from a table of galaxies (any format astropy "
        "reads: ECSV, FITS, CSV, VOTable) with ra, dec (deg) and z columns.",
    )
    p.add_argument("members", help="member table file")
    p.add_argument("--ra-cl", type=float, help="cluster centre right ascension, deg")
    p.add_argument("--dec-cl", type=float, help="cluster centre declination, deg")
    p.add_argument("--z-cl", type=float, help="cluster redshift (estimated if omitted)")
    p.add_argument(
        "--cosmology", default="Planck18", help="astropy built-in cosmology name (default Planck18)"
    )
    p.add_argument("--ra-column", default="ra")
    p.add_argument("--dec-column", default="dec")
    p.add_argument("--z-column", default="z")
    p.add_argument("--format", default=None, help="table format passed to Table.read")
    p.add_argument("--model", default=None, help="ASDF model file (default: bundled CNN_2D)")
    p.add_argument(
        "--prior",
        choices=("flat", "mass_function"),
        default="flat",
        help="prior on log M200c: the training prior (flat, default) or the "
        "Tinker08 mass function at the cluster redshift",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    p.set_defaults(func=_run_estimate)


def _add_catalog(subparsers) -> None:
    p = subparsers.add_parser(
        "catalog",
        help="estimate the masses of many clusters (one output row a cluster)",
        description="Estimate M200c for every cluster of a member table that has a cluster "
        "identifier column; a cluster table (id, ra, dec, z) gives centres and redshifts. "
        "Clusters that cannot be measured get ok=False and the reason in 'error'.",
    )
    p.add_argument("members", help="member table file (with the cluster identifier column)")
    p.add_argument("--clusters", default=None, help="cluster table file: id, ra, dec, z")
    p.add_argument("--cluster-column", default="cluster_id")
    p.add_argument("--cosmology", default="Planck18")
    p.add_argument("--model", default=None, help="ASDF model file (default: bundled CNN_2D)")
    p.add_argument("--out", required=True, help="output table (ECSV, FITS, ... by extension)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_catalog)


def _run_catalog(args) -> int:
    from .estimator import DynamicalMassEstimator

    members = Table.read(args.members)
    clusters = Table.read(args.clusters) if args.clusters else None
    estimator = DynamicalMassEstimator.load(args.model)
    table = estimator.estimate_many(
        members,
        clusters=clusters,
        cluster_column=args.cluster_column,
        cosmology=_cosmology(args.cosmology),
        progress=not args.no_progress,
    )
    table.write(args.out, overwrite=args.overwrite)
    n_ok = int(sum(table["ok"]))
    print(
        f"wrote {len(table)} clusters ({n_ok} measured, {len(table) - n_ok} flagged) to {args.out}"
    )
    return 0


def _add_demo(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="estimate the mass of the bundled (synthetic) example cluster"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    p.set_defaults(func=_run_demo)


def _cosmology(name: str):
    from astropy.cosmology import realizations

    if name not in realizations.available:
        raise InputError(f"unknown cosmology {name!r}; choose from {list(realizations.available)}")
    return getattr(realizations, name)


def _print_result(result, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        d = result.to_dict()
        if extra:
            d.update(extra)
        print(json.dumps(d, indent=2))
    else:
        print(result.summary())
        for key, value in (extra or {}).items():
            print(f"{key}: {value}")


def _run_estimate(args) -> int:
    from .estimator import DynamicalMassEstimator

    members = Table.read(args.members, format=args.format)
    center = None
    if (args.ra_cl is None) != (args.dec_cl is None):
        raise InputError("give both --ra-cl and --dec-cl, or neither")
    if args.ra_cl is not None:
        center = SkyCoord(args.ra_cl * u.deg, args.dec_cl * u.deg)
    estimator = DynamicalMassEstimator.load(args.model, prior=args.prior)
    result = estimator.estimate(
        members,
        z_cluster=args.z_cl,
        center=center,
        cosmology=_cosmology(args.cosmology),
        ra_column=args.ra_column,
        dec_column=args.dec_column,
        z_column=args.z_column,
    )
    _print_result(result, args.json)
    return 0


def _run_demo(args) -> int:
    from .datasets import load_example_cluster
    from .estimator import DynamicalMassEstimator

    members = load_example_cluster()
    meta = members.meta
    center = SkyCoord(meta["ra_cluster"] * u.deg, meta["dec_cluster"] * u.deg)
    estimator = DynamicalMassEstimator.load()
    result = estimator.estimate(members, z_cluster=meta["z_cluster"], center=center)
    extra = {
        "example": "synthetic mock cluster bundled with astro_cnnmass (not a real cluster)",
        "true_log_m200c": meta["true_log_m200c"],
    }
    _print_result(result, args.json, extra)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``astro-cnnmass`` command."""
    parser = argparse.ArgumentParser(
        prog="astro-cnnmass",
        description="Dynamical masses of galaxy clusters with a CNN (Ho et al. 2019).",
    )
    parser.add_argument("--version", action="version", version=f"astro-cnnmass {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_estimate(subparsers)
    _add_catalog(subparsers)
    _add_demo(subparsers)
    from .mocks.cli import add_mocks_subparser
    from .model.commands import add_evaluate_subparser, add_train_subparser

    add_mocks_subparser(subparsers)
    add_train_subparser(subparsers)
    add_evaluate_subparser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``astro-cnnmass`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AstroCnnmassWarning)
            status = args.func(args)
        for w in caught:
            if issubclass(w.category, AstroCnnmassWarning):
                print(f"warning: {w.message}", file=sys.stderr)
        return int(status or 0)
    except (InputError, FileNotFoundError, OSError) as exc:
        print(f"astro-cnnmass: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
