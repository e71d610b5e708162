"""Write the oldest-dependency pins of pyproject.toml: every ``name>=X`` becomes ``name==X``.

The constraints of the ``py311-test-oldestdeps`` tox environment and of the second suite in
.ci/run, generated from the floors declared in pyproject.toml (the runtime dependencies and
the ``test`` extra) so that the floors are what is tested. It does what astropy's
``minimum_dependencies`` does, without asking the package index (only the declared floors,
which must be released versions, are used).

Usage: ``python .ci/min_requirements.py [--extras test] [--out FILE]`` (default: stdout). Only
the standard library is used, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(extras: list[str]) -> list[str]:
    """``name==floor`` lines (extras dropped: pip constraints cannot carry them)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    out = []
    for spec in specs:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(?:>=|==|~=)\s*([^,;\s]+)", spec)
        if match is None:
            sys.exit(f"{spec!r} in pyproject.toml has no floor (>=): declare one")
        out.append(f"{match.group(1)}=={match.group(3)}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", nargs="*", default=[], help="optional-dependency groups")
    parser.add_argument("--out", default=None, help="output file (default: stdout)")
    args = parser.parse_args(argv)
    text = "\n".join(pins(args.extras)) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
