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
import importlib
import json
import os
import sys
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Light imports only: ``astro-cnnmass --help`` must not pull in torch (the train / evaluate
# sub-commands are built only when used, see _LAZY_COMMANDS); astropy is imported where needed.
if TYPE_CHECKING:
    from astropy.table import Table

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - only without an install
    __version__ = "0.0.0"
from . import argtypes
from .argtypes import UsageError
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
    p.add_argument(
        "--ra-cl", type=argtypes.right_ascension, help="cluster centre right ascension, deg"
    )
    p.add_argument("--dec-cl", type=argtypes.declination, help="cluster centre declination, deg")
    p.add_argument(
        "--z-cl",
        type=argtypes.number_in(0.0, 5.0, lo_open=True, what="a redshift"),
        help="cluster redshift (estimated if omitted)",
    )
    p.add_argument(
        "--cosmology",
        type=argtypes.cosmology_name,
        default="Planck18",
        help="astropy built-in cosmology name",
    )
    _add_column_options(p)
    p.add_argument("--model", default=None, help="ASDF model file (default: bundled CNN_2D)")
    p.add_argument(
        "--prior",
        choices=("flat", "mass_function"),
        default="flat",
        help="prior on log M200c: the training prior (flat) or the "
        "Tinker08 mass function at the cluster redshift",
    )
    _add_mass_def_option(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    p.set_defaults(func=_run_estimate)


def _add_column_options(p: argparse.ArgumentParser) -> None:
    """--ra-column, --dec-column, --z-column, --format of the member table."""
    for flag, default, what in (
        ("--ra-column", "ra", "right ascension [deg]"),
        ("--dec-column", "dec", "declination [deg]"),
        ("--z-column", "z", "spectroscopic redshift"),
    ):
        p.add_argument(
            flag,
            default=default,
            help=f"member-table column of the {what}: a name, or a 1-based column number "
            "for a headerless table (e.g. with --format ascii.no_header)",
        )
    p.add_argument(
        "--format",
        type=argtypes.table_format,
        default=None,
        help="member-table format passed to astropy's Table.read (ascii.ecsv, ascii.csv, "
        "ascii.no_header, fits, votable, ...); by default guessed from the file",
    )


def _add_mass_def_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mass-def",
        action="append",
        default=[],
        metavar="DEF",
        help="also give the mass in this definition (500c, 2500c, 200m, vir, ...; may be "
        "repeated): the predictive distribution of M200c, which the network predicts, "
        "converted with the diemer19 c-M relation and its 0.16 dex scatter (colossus)",
    )


def _add_catalog(subparsers) -> None:
    p = subparsers.add_parser(
        "catalog",
        help="estimate the masses of many clusters (one output row a cluster)",
        description="Estimate M200c for every cluster of a member table that has a cluster "
        "identifier column (--cluster-column, default cluster_id); a cluster table with "
        "columns cluster_id (the same --cluster-column), ra, dec [deg] and z gives centres and "
        "redshifts, which are estimated from the galaxies otherwise. Clusters that cannot be "
        "measured get ok=False and the reason in 'error'.",
    )
    p.add_argument("members", help="member table file (with the cluster identifier column)")
    p.add_argument(
        "--clusters",
        default=None,
        help="cluster table file with columns cluster_id (the --cluster-column), ra, dec [deg] "
        "and z (default: centres and redshifts estimated from the galaxies)",
    )
    p.add_argument(
        "--cluster-column",
        default="cluster_id",
        help="column of the cluster identifier, in the member table and the cluster table "
        "(a name, or a 1-based column number in the member table)",
    )
    _add_column_options(p)
    p.add_argument(
        "--cosmology",
        type=argtypes.cosmology_name,
        default="Planck18",
        help="astropy built-in cosmology name",
    )
    p.add_argument("--model", default=None, help="ASDF model file (default: bundled CNN_2D)")
    p.add_argument(
        "--out",
        type=argtypes.table_output,
        required=True,
        help="output table (ECSV, FITS, ... by extension)",
    )
    _add_mass_def_option(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_catalog)


def _run_catalog(args) -> int:
    from .estimator import DynamicalMassEstimator

    if Path(args.out).exists() and not args.overwrite:  # before the work, not after
        raise UsageError(f"--out {args.out} exists; pass --overwrite to replace it")
    members = _read_table(args.members, args.format, "member table")
    clusters = _read_table(args.clusters, None, "--clusters table") if args.clusters else None
    columns = _member_columns(members, args)
    cluster_column = _column(members, args.cluster_column, "--cluster-column")
    if clusters is not None:
        needed = (cluster_column, "ra", "dec", "z")
        missing = [c for c in needed if c not in clusters.colnames]
        if missing:
            raise InputError(
                f"the --clusters table has no column {', '.join(map(repr, missing))}: it needs "
                f"{', '.join(needed)} (the first is the --cluster-column); it has "
                f"{', '.join(clusters.colnames)}"
            )
    _check_mass_defs(args.mass_def)
    if not args.no_progress:
        print("loading the model ...", file=sys.stderr)
    estimator = DynamicalMassEstimator.load(args.model)
    table = estimator.estimate_many(
        members,
        clusters=clusters,
        cluster_column=cluster_column,
        cosmology=_cosmology(args.cosmology),
        progress=not args.no_progress,
        mass_definitions=args.mass_def,
        **columns,
    )
    from astropy.io.fits.verify import VerifyWarning

    with warnings.catch_warnings():
        # FITS: astropy keeps solMass / littleh in its own header record (read back with
        # QTable.read after `import astro_cnnmass`) and writes long meta keys as HIERARCH cards
        warnings.filterwarnings("ignore", message="The unit .* could not be saved in native FITS")
        warnings.simplefilter("ignore", VerifyWarning)
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


def _read_table(path: str, fmt: str | None, what: str) -> Table:
    """Read a table file; an unreadable file is an `InputError` naming it."""
    from astropy.io.registry import IORegistryError
    from astropy.table import Table

    if Path(path).is_dir():
        raise InputError(f"{what} {path} is a directory, expected a table file")
    try:
        return Table.read(path, format=fmt)
    except IORegistryError as exc:
        raise InputError(
            f"cannot read the {what} {path}: {exc} Name the format with --format "
            "(ascii.ecsv, ascii.csv, fits, votable, ...) or use a known extension"
        ) from exc


def _column(table: Table, value: str, flag: str) -> str:
    """The column a CLI flag names: a column name, or a 1-based number (headerless tables)."""
    names = table.colnames
    if value in names:
        return value
    if value.strip().isdigit():
        k = int(value)
        if 1 <= k <= len(names):
            return names[k - 1]
        raise InputError(
            f"{flag} {value}: the table has {len(names)} columns, numbered 1 to {len(names)}"
        )
    headerless = all(n == f"col{i}" for i, n in enumerate(names, start=1))
    raise InputError(
        f"{flag} {value!r}: the table has no such column; its columns are "
        f"{', '.join(names)}. Give a name or a 1-based column number (e.g. {flag} 1)"
        + ("" if headerless else "; a headerless text table needs --format ascii.no_header")
    )


def _member_columns(members: Table, args) -> dict[str, str]:
    """ra_column, dec_column, z_column from the CLI flags (names or column numbers)."""
    from astropy.coordinates import SkyCoord

    has_skycoord = any(isinstance(members[c], SkyCoord) for c in members.colnames)
    out = {}
    for key, flag, default in (
        ("ra_column", "--ra-column", "ra"),
        ("dec_column", "--dec-column", "dec"),
        ("z_column", "--z-column", "z"),
    ):
        value = getattr(args, key)
        if key != "z_column" and value == default and has_skycoord and value not in members:
            out[key] = value  # positions from the table's SkyCoord column
        else:
            out[key] = _column(members, value, flag)
    return out


def _check_mass_defs(mass_defs: Sequence[str]) -> None:
    if not mass_defs:
        return
    from .uncertainty.mass_definitions import _check_mdef

    for mdef in mass_defs:
        try:
            _check_mdef(mdef)
        except InputError as exc:
            raise UsageError(f"--mass-def {mdef}: {exc}") from None


def _print_result(result, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        from .result import _json_safe

        d = result.to_dict()
        if extra:
            d.update(_json_safe(extra))
        print(json.dumps(d, indent=2, allow_nan=False))  # strict JSON: null, never NaN
    else:
        print(result.summary())
        for key, value in (extra or {}).items():
            print(f"{key}: {value}")


def _run_estimate(args) -> int:
    from .estimator import DynamicalMassEstimator

    if (args.ra_cl is None) != (args.dec_cl is None):
        raise UsageError("give both --ra-cl and --dec-cl, or neither")
    _check_mass_defs(args.mass_def)
    members = _read_table(args.members, args.format, "member table")
    columns = _member_columns(members, args)
    center = None
    if args.ra_cl is not None:
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        center = SkyCoord(args.ra_cl * u.deg, args.dec_cl * u.deg)
    estimator = DynamicalMassEstimator.load(args.model, prior=args.prior)
    result = estimator.estimate(
        members,
        z_cluster=args.z_cl,
        center=center,
        cosmology=_cosmology(args.cosmology),
        **columns,
    )
    extra = None
    if args.mass_def:
        converted = [result.mass_as(mdef) for mdef in args.mass_def]
        if args.json:
            extra = {"other_mass_definitions": [c.to_dict() for c in converted]}
        else:
            extra = {c.label: str(c).split(" = ", 1)[1] for c in converted}
    _print_result(result, args.json, extra)
    return 0


def _run_demo(args) -> int:
    import astropy.units as u
    from astropy.coordinates import SkyCoord

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


#: Sub-commands defined in other modules, imported only when used (the model's import torch):
#: name -> (module, function that adds the sub-parser, its one-line help in ``--help``).
_LAZY_COMMANDS = {
    "mocks": (
        "astro_cnnmass.mocks.cli",
        "add_mocks_subparser",
        "generate a catalogue of mock cluster observations (ASDF)",
    ),
    "train": (
        "astro_cnnmass.model.commands",
        "add_train_subparser",
        "train a CNN mass model on a mock catalogue",
    ),
    "evaluate": (
        "astro_cnnmass.model.commands",
        "add_evaluate_subparser",
        "evaluate model(s) on held-out mocks (metrics.json + figures)",
    ),
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows the default of every option whose help does not already state it.

    Required options and options without a value by default (None, an empty list) are left
    as they are: their help says what happens when they are not given.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or action.required
            or default is argparse.SUPPRESS
            or default is None
            or default == []
        ):
            return text
        return super()._get_help_string(action)


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``astro-cnnmass`` command.

    Parameters
    ----------
    commands : collection of str, optional
        The sub-commands defined in other modules (``mocks``, ``train``, ``evaluate``) to build
        in full; the others only get their one-line help, so that ``astro-cnnmass --help`` and
        ``astro-cnnmass estimate ...`` do not import torch. Default: all.
    """
    parser = argparse.ArgumentParser(
        prog="astro-cnnmass",
        description="Dynamical masses of galaxy clusters with a CNN (Ho et al. 2019).",
    )
    parser.add_argument("--version", action="version", version=f"astro-cnnmass {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_estimate(subparsers)
    _add_catalog(subparsers)
    _add_demo(subparsers)
    for name, (module, adder, help_text) in _LAZY_COMMANDS.items():
        if commands is None or name in commands:
            getattr(importlib.import_module(module), adder)(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    for sub in subparsers.choices.values():
        sub.formatter_class = _HelpFormatter
    return parser


def _requested_command(argv: Sequence[str]) -> set[str]:
    """The sub-command named on the command line (the first argument not an option)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return {first} if first else set()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``astro-cnnmass`` command; returns the exit status.

    Every sub-command runs inside one wrapper: an expected error (bad input, an unreadable or
    refused file, a device that is not there) prints one line, ``astro-cnnmass COMMAND: error:
    ...``, naming the flag or file, and returns 1; a usage error returns 2, as argparse's own
    do. Set ``ASTRO_CNNMASS_TRACEBACK=1`` to see the traceback instead.
    """
    from astropy.io.registry import IORegistryError

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(commands=_requested_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    prog = f"{parser.prog} {args.command}"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AstroCnnmassWarning)
            try:
                status = args.func(args)
            finally:
                for w in caught:
                    if issubclass(w.category, AstroCnnmassWarning):
                        print(f"warning: {w.message}", file=sys.stderr)
        return int(status or 0)
    except UsageError as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, IORegistryError) as exc:  # InputError, ModelFileError, ...
        if os.environ.get("ASTRO_CNNMASS_TRACEBACK"):
            raise
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
