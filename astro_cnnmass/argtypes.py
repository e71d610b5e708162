"""Argument types and errors of the ``astro-cnnmass`` command line, shared by its sub-commands.

Each type is an ``argparse`` ``type=`` callable: a bad value becomes a usage error naming the
flag and what was expected (exit status 2), before any work is done. Errors found later, while
the command runs, go through the one wrapper of ``astro_cnnmass.cli.main`` (one line, exit 1).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from .exceptions import InputError

__all__ = [
    "UsageError",
    "cosmology_name",
    "declination",
    "device_name",
    "fraction",
    "new_file",
    "nonnegative_int",
    "number_in",
    "output_dir",
    "positive_float",
    "positive_int",
    "right_ascension",
    "table_format",
    "table_output",
]


class UsageError(InputError):
    """A command-line usage error found after parsing (exit status 2, like argparse's)."""


def _fail(text: str) -> None:
    raise argparse.ArgumentTypeError(text)


def _number(value: str, kind: type = float) -> float:
    try:
        x = kind(value)
    except ValueError:
        _fail(f"expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if kind is float and not math.isfinite(x):
        _fail(f"expected a finite number, got {value!r}")
    return x


def positive_int(value: str) -> int:
    """An integer >= 1."""
    x = _number(value, int)
    if x < 1:
        _fail(f"must be a positive integer, got {value}")
    return x


def nonnegative_int(value: str) -> int:
    """An integer >= 0."""
    x = _number(value, int)
    if x < 0:
        _fail(f"must be an integer >= 0, got {value}")
    return x


def positive_float(value: str) -> float:
    """A finite number > 0."""
    x = _number(value)
    if x <= 0:
        _fail(f"must be a positive number, got {value}")
    return x


def number_in(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False, what=""):
    """A type accepting finite numbers in the interval from ``lo`` to ``hi``."""

    def check(value: str) -> float:
        x = _number(value)
        if (x < lo or (lo_open and x == lo)) or (x > hi or (hi_open and x == hi)):
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            _fail(f"must be {what or 'a number'} in {interval}, got {value}")
        return x

    return check


def fraction(value: str) -> float:
    """A fraction strictly between 0 and 1."""
    return number_in(0.0, 1.0, lo_open=True, hi_open=True, what="a fraction")(value)


right_ascension = number_in(0.0, 360.0, what="a right ascension in degrees")
declination = number_in(-90.0, 90.0, what="a declination in degrees")


def cosmology_name(value: str) -> str:
    """The name of an astropy built-in cosmology (``Planck18``, ``WMAP9``, ...)."""
    from astropy.cosmology import realizations

    if value not in realizations.available:
        _fail(f"unknown cosmology {value!r}; choose from {', '.join(realizations.available)}")
    return value


def device_name(value: str) -> str:
    """A torch device that exists on this machine (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    from .model.bundle import _resolve_device

    try:
        _resolve_device(value)
    except ValueError as exc:
        _fail(str(exc))
    return value


def table_format(value: str) -> str:
    """A table format astropy can read (``ascii.ecsv``, ``fits``, ``votable``, ...)."""
    from astropy.io import registry
    from astropy.table import Table

    names = [str(n) for n in registry.get_formats(Table, "Read")["Format"]]
    if value not in names:
        _fail(f"unknown table format {value!r}; astropy reads {', '.join(names)}")
    return value


def _parent_exists(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"the folder {str(parent)!r} does not exist")
    if path.is_dir():
        _fail(f"{str(path)!r} is a directory, expected a file name")


def table_output(value: str) -> str:
    """An output table path whose extension astropy can write (``.ecsv``, ``.fits``, ...)."""
    from astropy.io import registry
    from astropy.table import Table

    path = Path(value)
    _parent_exists(path)
    if not registry.identify_format("write", Table, value, None, [], {}):
        _fail(
            f"cannot tell a table format from {value!r}; use an extension astropy writes "
            "(.ecsv, .fits, .csv, .vot, .hdf5, ...)"
        )
    return value


def new_file(suffixes: tuple[str, ...] = (".asdf",)) -> Callable[[str], Path]:
    """A type for an output file in an existing folder, with one of ``suffixes``."""

    def check(value: str) -> Path:
        path = Path(value)
        _parent_exists(path)
        if suffixes and path.suffix.lower() not in suffixes:
            _fail(f"expected a file name ending in {' or '.join(suffixes)}, got {value!r}")
        return path

    return check


def output_dir(value: str) -> Path:
    """An output folder (created if missing) that is not an existing file."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        _fail(f"{value!r} exists and is not a directory")
    return path
