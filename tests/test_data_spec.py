"""The data specifications: one top-level data_spec/, shipped in the wheel, matched by the code."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import astropy.units as u
import pytest
from astropy.table import Table

from astro_cnnmass import DynamicalMassEstimator, InputError
from astro_cnnmass.datasets import load_example_cluster
from astro_cnnmass.extension import data_spec_path
from astro_cnnmass.specs import TABLE_SPECS, check_table, json_schema, table_spec, validate_json

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example_estimate():
    members = load_example_cluster()
    est = DynamicalMassEstimator.load()
    return est.estimate(members, z_cluster=members.meta["z_cluster"])


def test_one_copy_of_the_specifications():
    spec = data_spec_path()
    assert (spec / "schemas" / "model_bundle-1.0.0.yaml").is_file()
    assert (spec / "manifests" / "astro_cnnmass-1.0.0.yaml").is_file()
    if (REPO / "data_spec").is_dir():  # a source checkout: the top-level folder is the source
        assert spec == REPO / "data_spec"
        assert not (REPO / "astro_cnnmass" / "data_spec").exists()


def test_every_table_spec_names_its_columns():
    for name in TABLE_SPECS:
        spec = table_spec(name)
        assert spec["columns"], name
        for col in spec["columns"]:
            assert {"name", "dtype", "required", "description"} <= set(col), (name, col)
            if col.get("unit"):
                with u.add_enabled_units(__import__("astropy.cosmology.units").cosmology.units):
                    u.Unit(col["unit"])


def test_example_members_match_the_member_spec():
    check_table(load_example_cluster(), "member_table")


def test_member_spec_names_a_missing_column_and_a_wrong_unit():
    members = load_example_cluster()
    members.remove_column("z")
    with pytest.raises(InputError, match="missing required column 'z'"):
        check_table(members, "member_table")
    from astropy.table import QTable

    q = QTable(load_example_cluster())
    q["ra"] = u.Quantity(q["ra"]).value * u.km
    with pytest.raises(InputError, match="'ra' has unit km"):
        check_table(q, "member_table")
    renamed = load_example_cluster()
    renamed.rename_column("ra", "RAJ2000")
    check_table(renamed, "member_table", rename={"ra": "RAJ2000"})


def test_results_tables_match_the_results_spec(example_estimate):
    names = [c["name"] for c in table_spec("results_table")["columns"]]
    one = example_estimate.to_table()
    check_table(one, "results_table")
    assert one.colnames[: len(names)] == names
    members = load_example_cluster()
    members["cluster_id"] = 7
    many = DynamicalMassEstimator.load().estimate_many(members)
    check_table(many, "results_table")
    assert many.colnames[: len(names)] == names


def test_to_dict_and_cli_json_match_the_json_schema(example_estimate):
    pytest.importorskip("jsonschema")
    validate_json(json.loads(json.dumps(example_estimate.to_dict())))
    out = subprocess.run(
        [sys.executable, "-m", "astro_cnnmass.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    validate_json(json.loads(out))
    bad = example_estimate.to_dict()
    bad["mass_msun_h"] = -1.0
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate_json(bad)
    assert json_schema()["title"].startswith("astro_cnnmass mass estimate")


def test_built_wheel_ships_the_specifications(tmp_path):
    """Build the wheel from a copy of this checkout and look inside it.

    The copy keeps the build's egg-info out of the source tree (an egg-info there would be
    picked up as the installed distribution's metadata by this test session).
    """
    import shutil

    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    src = tmp_path / "src"
    keep = ("astro_cnnmass", "data_spec", "pyproject.toml", "README.md", "LICENSE.rst")
    for name in keep:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(
                path, src / name, ignore=shutil.ignore_patterns("__pycache__", "_version.py")
            )
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    env = dict(__import__("os").environ, SETUPTOOLS_SCM_PRETEND_VERSION="0.0.0")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    (wheel,) = tmp_path.glob("astro_cnnmass-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in (
        "schemas/model_bundle-1.0.0.yaml",
        "schemas/mock_catalog-1.0.0.yaml",
        "manifests/astro_cnnmass-1.0.0.yaml",
        "tables/member_table-1.0.0.yaml",
        "tables/results_table-1.0.0.yaml",
        "json/mass_estimate-1.0.0.json",
    ):
        assert f"astro_cnnmass/data_spec/{rel}" in names, rel
    assert "astro_cnnmass/data/cnn2d_default.asdf" in names
    # every subpackage of the source tree is in the wheel
    for init in (REPO / "astro_cnnmass").rglob("__init__.py"):
        assert init.relative_to(REPO).as_posix() in names
    # and the installed layout finds them: the wheel's data_spec sits inside the package
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import astro_cnnmass.extension as e; "
        "p = e.data_spec_path(); print(p)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert Path(found.strip()) == tmp_path / "site" / "astro_cnnmass" / "data_spec"


def test_table_spec_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown table specification"):
        table_spec("nope")
    assert isinstance(Table(), Table)
