"""The package's data specifications as Python objects: table columns and JSON schemas.

Every file the package reads or writes has a specification in the top-level ``data_spec/`` of
the source tree (installed as ``astro_cnnmass/data_spec``;
:func:`astro_cnnmass.extension.data_spec_path`):

* ``schemas/``, ``manifests/`` -- the ASDF schemas of the model bundle and the mock catalogue
  (used by asdf itself through the package's extension);
* ``tables/`` -- the columns of member tables, cluster tables and results tables (names, units,
  dtypes, which are required), read by :func:`table_spec` and checked by :func:`check_table`;
* ``json/`` -- the JSON Schema of :meth:`astro_cnnmass.MassEstimate.to_dict` and of
  ``astro-cnnmass estimate --json`` (:func:`json_schema`, :func:`validate_json`).

The documentation renders the table specifications from the same files.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import astropy.units as u
import numpy as np
import yaml

from .exceptions import InputError
from .extension import data_spec_path

__all__ = ["TABLE_SPECS", "check_table", "json_schema", "table_spec", "validate_json"]

#: Table specifications shipped with the package (name -> file stem in ``data_spec/tables``).
TABLE_SPECS = {
    "member_table": "member_table-1.0.0",
    "cluster_table": "cluster_table-1.0.0",
    "results_table": "results_table-1.0.0",
}
_JSON_SCHEMAS = {"mass_estimate": "mass_estimate-1.0.0"}
_DTYPE_KINDS = {"float": "fiu", "int": "iu", "bool": "b", "str": "USO"}


@cache
def _load_table_spec(name: str) -> dict[str, Any]:
    if name not in TABLE_SPECS:
        raise ValueError(f"unknown table specification {name!r}; choose from {sorted(TABLE_SPECS)}")
    path = data_spec_path() / "tables" / f"{TABLE_SPECS[name]}.yaml"
    return yaml.safe_load(path.read_text())


def table_spec(name: str) -> dict[str, Any]:
    """The specification of a table: ``id``, ``title``, ``description`` and ``columns``.

    Parameters
    ----------
    name : str
        One of ``TABLE_SPECS`` (``"member_table"``, ``"cluster_table"``,
        ``"results_table"``).

    Returns
    -------
    dict
        A fresh copy; each column is a dict with ``name``, ``dtype`` (``float``, ``int``,
        ``bool``, ``str`` or a list of them), ``required`` and, where it has one, ``unit`` (an
        astropy unit string, ``""`` for dimensionless) and ``description``.
    """
    return json.loads(json.dumps(_load_table_spec(name)))


def _dtype_ok(col: Any, dtype: str | list[str]) -> bool:
    kinds = "".join(_DTYPE_KINDS[d] for d in ([dtype] if isinstance(dtype, str) else dtype))
    return np.asarray(col).dtype.kind in kinds


def check_table(table: Any, name: str, *, rename: dict[str, str] | None = None) -> None:
    """Check a table against its specification; raise one error listing every problem.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        The table to check.
    name : str
        The specification (see :func:`table_spec`).
    rename : dict, optional
        Spec column name -> the name it has in ``table`` (e.g. ``{"ra": "RAJ2000"}``).

    Raises
    ------
    astro_cnnmass.InputError
        Naming each missing required column, each column of the wrong kind of dtype and each
        Quantity column whose unit cannot be converted to the specified one.
    """
    rename = rename or {}
    problems = []
    for spec in _load_table_spec(name)["columns"]:
        col_name = rename.get(spec["name"], spec["name"])
        if col_name not in table.colnames:
            if spec.get("required", False):
                problems.append(f"missing required column {col_name!r} ({spec['description']})")
            continue
        col = table[col_name]
        unit = spec.get("unit")
        col_unit = getattr(col, "unit", None)
        if unit is not None and isinstance(col, u.Quantity) and col_unit is not None:
            with u.add_enabled_units(_cosmology_units()):
                target = u.Unit(unit) if unit else u.dimensionless_unscaled
                if not col_unit.is_equivalent(target):
                    problems.append(f"column {col_name!r} has unit {col_unit}, expected {target}")
            continue
        if not _dtype_ok(getattr(col, "value", col), spec["dtype"]):
            problems.append(
                f"column {col_name!r} has dtype {np.asarray(col).dtype}, expected {spec['dtype']}"
            )
    if problems:
        raise InputError(
            f"{name.replace('_', ' ')} does not match its specification: " + "; ".join(problems)
        )


def _cosmology_units():
    import astropy.cosmology.units as cu

    return cu


@cache
def _load_json_schema(name: str) -> dict[str, Any]:
    if name not in _JSON_SCHEMAS:
        raise ValueError(f"unknown JSON schema {name!r}; choose from {sorted(_JSON_SCHEMAS)}")
    return json.loads((data_spec_path() / "json" / f"{_JSON_SCHEMAS[name]}.json").read_text())


def json_schema(name: str = "mass_estimate") -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the package's JSON output, as a fresh dict."""
    return json.loads(json.dumps(_load_json_schema(name)))


def validate_json(obj: Any, name: str = "mass_estimate") -> None:
    """Validate a JSON document (already parsed) against one of the package's JSON schemas.

    Needs the ``jsonschema`` package (in the ``test`` extra).

    Raises
    ------
    jsonschema.ValidationError
        If ``obj`` does not match.
    """
    try:
        import jsonschema
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("validate_json needs jsonschema: pip install jsonschema") from err
    jsonschema.Draft202012Validator(_load_json_schema(name)).validate(obj)
