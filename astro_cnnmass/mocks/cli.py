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
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from .config import MockConfigError
from .variants import PRESETS, preset_config

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
        choices=PRESETS,
        default="default",
        help="starting configuration: ho2019 (satellites only, z=0.117, no survey effects), "
        "training (the bundled model's training set: wider survey depth, sampling, targeting "
        "and infall ranges) or a generator variant of astro_cnnmass.mocks.variants",
    )
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run_mocks_command)
    return p


@contextlib.contextmanager
def _sigterm_cleans_up() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(143)`` in this process, so that the catalogue writer's
    clean-up (removing its temporary folder of ``.raw`` chunks) runs as it does on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    parent = os.getpid()

    def handler(signum, frame):
        if os.getpid() != parent:  # a forked worker: die as SIGTERM would
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise SystemExit(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_mocks_command(args: argparse.Namespace) -> int:
    """Run the ``mocks`` sub-command; returns the process exit status (1 on an error)."""
    with _sigterm_cleans_up():
        return _run_mocks(args)


def _run_mocks(args: argparse.Namespace) -> int:
    from .generator import generate_catalog

    try:
        cfg = preset_config(args.preset)
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
        return 1
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
