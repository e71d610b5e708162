"""Fitting the astropy ecosystem: files that read back, the estimated centre reported, the user's
cosmology in every cross-check, a short repr, the package metadata."""

import json
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.cosmology import FlatLambdaCDM
from astropy.table import QTable, vstack

from astro_cnnmass import DynamicalMassEstimator, evrard_mass
from astro_cnnmass.datasets import load_example_cluster

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def estimator():
    return DynamicalMassEstimator.load()


@pytest.fixture(scope="module")
def estimated(estimator):
    """The example cluster with its centre and redshift estimated from the galaxies."""
    return estimator.estimate(load_example_cluster())


@pytest.fixture(scope="module")
def catalog_table(estimator):
    members = load_example_cluster()
    parts = []
    for cid in (3, 4):
        part = members.copy()
        part["cluster_id"] = cid
        parts.append(part)
    return estimator.estimate_many(vstack(parts))


# ------------------------------------------------------------------ item 2: tables read back
_READER = """
import json, sys
{setup}
from astropy.table import QTable
t = QTable.read(sys.argv[1])
kinds = {{n: [type(t[n]).__name__, str(getattr(t[n], "unit", None))] for n in t.colnames}}
print(json.dumps(kinds))
"""


def _read_in_fresh_process(path: Path, setup: str) -> dict:
    code = _READER.format(setup=setup)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _quantity_columns(table: QTable) -> dict:
    return {
        n: ["Quantity", str(table[n].unit)]
        for n in table.colnames
        if isinstance(table[n], u.Quantity)
    }


def _write(table: QTable, path: Path) -> None:
    with warnings.catch_warnings():
        # FITS: "solMass / littleh could not be saved in native FITS format" (astropy keeps it
        # in the serialized-columns header) and HIERARCH cards for the long meta keys
        warnings.simplefilter("ignore")
        table.write(path, overwrite=True)


@pytest.mark.parametrize("ext", ["ecsv", "fits"])
@pytest.mark.parametrize("which", ["to_table", "estimate_many"])
def test_results_read_back_as_quantities_in_a_fresh_process(
    tmp_path, ext, which, estimated, catalog_table
):
    table = estimated.to_table() if which == "to_table" else catalog_table
    path = tmp_path / f"masses.{ext}"
    _write(table, path)
    expected = _quantity_columns(table)
    assert expected["mass"] == ["Quantity", "solMass / littleh"]
    # the documented ways: import the package, or enable the cosmology units of astropy
    for setup in (
        "import astro_cnnmass",
        "import astropy.units as u, astropy.cosmology.units as cu; u.add_enabled_units(cu)",
    ):
        got = _read_in_fresh_process(path, setup)
        assert {n: got[n] for n in expected} == expected, setup
    back = QTable.read(path)
    np.testing.assert_array_equal(back["mass"].value, table["mass"].value)
    assert "QTable.read" in table.meta["units"]


# ------------------------------------------------------------------ item 3: what was estimated
def test_estimated_centre_and_redshift_are_reported(estimated, catalog_table):
    assert estimated.center_estimated and estimated.z_cluster_estimated
    assert estimated.center_iterations >= 1 and estimated.center_converged
    assert estimated.z_cluster_iterations >= 1 and estimated.z_cluster_converged
    text = estimated.summary()
    ra, dec = estimated.center.ra.deg, estimated.center.dec.deg
    assert f"RA = {ra:.5f} deg" in text and f"Dec = {dec:.5f} deg" in text
    assert "iterations, converged" in text
    assert f"z_cluster = {estimated.z_cluster:.5f} estimated" in text
    d = estimated.to_dict()
    assert d["center_ra_deg"] == pytest.approx(ra) and d["center_dec_deg"] == pytest.approx(dec)
    assert d["center_iterations"] == estimated.center_iterations and d["z_cluster_converged"]
    json.dumps(d, allow_nan=False)
    for table in (estimated.to_table(), catalog_table):
        row = table[0]
        assert row["ra_center"].to_value(u.deg) == pytest.approx(ra)
        assert row["dec_center"].to_value(u.deg) == pytest.approx(dec)
        assert row["center_estimated"] and row["z_cluster_estimated"]
        assert row["center_iterations"] == estimated.center_iterations
        assert row["z_cluster_iterations"] == estimated.z_cluster_iterations
        assert row["center_converged"] and row["z_cluster_converged"]


def test_given_centre_is_reported_as_given(estimator):
    members = load_example_cluster()
    meta = members.meta
    center = SkyCoord(meta["ra_cluster"] * u.deg, meta["dec_cluster"] * u.deg)
    res = estimator.estimate(members, center=center, z_cluster=meta["z_cluster"])
    assert not res.center_estimated and res.center_iterations == 0
    assert "(given)" in res.summary() and "estimated from the galaxies" not in res.summary()
    assert res.to_table()["ra_center"][0].to_value(u.deg) == pytest.approx(meta["ra_cluster"])


def test_iterations_and_convergence_of_the_estimators():
    from astro_cnnmass.observe.phase_space import estimate_center, estimate_redshift

    members = load_example_cluster()
    z = np.asarray(members["z"])
    z_cl, n_iter, converged = estimate_redshift(z, return_info=True)
    assert z_cl == estimate_redshift(z) and n_iter >= 1 and converged
    assert estimate_redshift(z, max_iter=1, return_info=True)[1:] == (1, False)
    coords = SkyCoord(members["ra"], members["dec"], unit="deg")
    from astropy.cosmology import Planck18

    c, n_c, conv_c = estimate_center(coords, z, z_cl, Planck18, return_info=True)
    assert conv_c and n_c >= 1 and c.separation(estimate_center(coords, z, z_cl, Planck18)) == 0


# ------------------------------------------------------------------ item 4: the user's cosmology
def test_evrard_cross_check_uses_the_users_cosmology():
    members = load_example_cluster()
    z_cl = members.meta["z_cluster"]
    eds = FlatLambdaCDM(H0=70, Om0=1.0)
    est = DynamicalMassEstimator(None)  # the M–σ path, no network
    res = est.estimate(members, z_cluster=z_cl, cosmology=eds)
    expected = evrard_mass(res.sigma_v, z_cl, cosmology=eds)
    assert res.m_sigma_evrard.value == pytest.approx(expected.value, rel=1e-12)
    planck = est.estimate(members, z_cluster=z_cl)
    assert planck.m_sigma_evrard.value != pytest.approx(res.m_sigma_evrard.value, rel=1e-3)
    members["cluster_id"] = 1
    tab = est.estimate_many(members, cosmology=eds)
    sigma = tab["sigma_v"][0]
    expected = evrard_mass(sigma, tab["z_cluster"][0], cosmology=eds)
    assert tab["m_sigma_evrard"][0].value == pytest.approx(expected.value, rel=1e-12)


def test_evrard_cross_check_per_phase_space_cosmology():
    from astro_cnnmass import phase_space

    members = load_example_cluster()
    z_cl = members.meta["z_cluster"]
    eds = FlatLambdaCDM(H0=70, Om0=1.0)
    pss = [
        phase_space(members, z_cluster=z_cl),
        phase_space(members, z_cluster=z_cl, cosmology=eds),
    ]
    tab = DynamicalMassEstimator(None).estimate_phase_spaces(pss)
    for row, ps in zip(tab, pss):
        expected = evrard_mass(row["sigma_v"], z_cl, cosmology=ps.cosmology)
        assert row["m_sigma_evrard"].value == pytest.approx(expected.value, rel=1e-12)


# ------------------------------------------------------------------ item 8: repr and metadata
def test_repr_is_a_few_lines(estimated):
    text = repr(estimated)
    assert len(text) < 400 and text.count("\n") <= 3
    assert "M200c" in text and "flags" in text


def test_package_metadata_for_an_affiliated_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["urls"] and all(u.startswith("https://") for u in project["urls"].values())
    classifiers = project["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert project["license"] == "BSD-3-Clause"  # SPDX expression (PEP 639), no classifier
    cff = (REPO / "CITATION.cff").read_text()
    assert "cff-version" in cff and "1902.05950" in cff
    assert "astro_cnnmass.observe" in (REPO / "CHANGES.rst").read_text()
    readme = (REPO / "README.md").read_text()
    assert "How to cite" in readme and "Ho et al. 2019" in readme


def test_oldest_dependency_pins_are_the_declared_floors():
    out = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "min_requirements.py"), "--extras", "test"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    pins = dict(line.split("==") for line in out)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        name, floor = spec.split(">=")
        assert pins[name] == floor
    assert "pytest" in pins and "torch" in pins
    tox = (REPO / "tox.ini").read_text()
    assert "py311-test-oldestdeps" in tox and "py311-test-devdeps" in tox
    assert "ruff format --check" in tox
    ci = (REPO / ".ci" / "run").read_text()
    assert "min_requirements.py" in ci and ci.count("python -m pytest") == 2
