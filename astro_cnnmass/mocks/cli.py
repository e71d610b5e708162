"""Command-line front end of the mock generator: ``astro-cnnmass mocks ...``.

The package's ``cli.py`` wires these in::

    from .mocks.cli import add_mocks_subparser, run_mocks_command
    add_mocks_subparser(subparsers)   # adds the "mocks" sub-command
    ...
    if args.command == "mocks":
        return run_mocks_command(args)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_mocks_subparser", "run_mocks_command"]


def add_mocks_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``mocks`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "mocks",
        help="generate a catalogue of mock cluster observations (ASDF)",
        description=(
            "Generate mock projected phase spaces of galaxy clusters (several lines of sight per "
            "3D host) and write them to an ASDF MockCatalog. The same --seed gives identical "
            "output whatever --workers is."
        ),
    )
    p.add_argument("--n-hosts", type=int, required=True, help="number of 3D host halos")
    p.add_argument("--seed", type=int, required=True, help="random seed (int >= 0)")
    p.add_argument("--out", type=Path, required=True, help="output file (.asdf)")
    p.add_argument(
        "--prior",
        choices=("flat", "hmf"),
        default="flat",
        help="host-mass prior: flat in log10 M200c or Tinker08 (default flat)",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--lines-of-sight", type=int, default=3, help="lines of sight per host (default 3)"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="JSON file of MockConfig overrides (unknown keys are an error)",
    )
    p.add_argument(
        "--preset",
        choices=("default", "ho2019"),
        default="default",
        help="starting configuration (ho2019: satellites only, z=0.117, no survey effects)",
    )
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run_mocks_command)
    return p


def run_mocks_command(args: argparse.Namespace) -> int:
    """Run the ``mocks`` sub-command; returns the process exit status."""
    from .config import MockConfig, MockConfigError
    from .generator import generate_catalog

    try:
        cfg = MockConfig.ho2019() if args.preset == "ho2019" else MockConfig()
        if args.config is not None:
            overrides = json.loads(Path(args.config).read_text())
            if not isinstance(overrides, dict):
                raise MockConfigError("--config must hold a JSON object of MockConfig fields")
            cfg = cfg.replace(**overrides)
        cat = generate_catalog(
            args.n_hosts,
            seed=args.seed,
            lines_of_sight=args.lines_of_sight,
            prior=args.prior,
            workers=args.workers,
            out=args.out,
            config=cfg,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError, OSError) as exc:
        print(f"astro-cnnmass mocks: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {cat.n_clusters} clusters ({cat.n_galaxies} galaxies) to {args.out}")
    cat.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m astro_cnnmass.mocks.cli``)."""
    parser = argparse.ArgumentParser(prog="astro-cnnmass")
    sub = parser.add_subparsers(dest="command", required=True)
    add_mocks_subparser(sub)
    args = parser.parse_args(argv)
    return run_mocks_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
