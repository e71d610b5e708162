"""A table batch gives, row for row, what one estimate a cluster gives (issue 14).

``estimate_many`` converts the clusters whose centre and redshift are known all together and
builds its table column by column; these tests hold it to the one-cluster path
(``estimate(...)``, ``MassEstimate.to_table()``) on a batch that mixes every kind of cluster.
"""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table, vstack

from astro_cnnmass import DynamicalMassEstimator
from astro_cnnmass.classical import MSUN_H
from astro_cnnmass.datasets import load_example_cluster
from astro_cnnmass.exceptions import AstroCnnmassWarning
from astro_cnnmass.observe.batch_tables import batch_phase_spaces, plan_batch
from astro_cnnmass.observe.packed import (
    DISTANCE_INTERPOLATION_MIN,
    PackedPhaseSpaces,
    _first_occurrences,
    angular_diameter_distances_mpc,
    packed_phase_spaces,
)


@pytest.fixture(scope="module")
def estimator():
    return DynamicalMassEstimator.load()


@pytest.fixture(scope="module")
def example():
    members = load_example_cluster()
    meta = members.meta
    return members, meta["ra_cluster"], meta["dec_cluster"], meta["z_cluster"]


def _mixed_batch(example):
    """Eight clusters: known centre and z, an estimated centre, an estimated z, duplicates,
    NaN redshifts, an absurd redshift, an impossible centre, a cluster without members."""
    members, ra, dec, z = example
    rng = np.random.default_rng(11)
    parts, rows = [], []
    for k in range(7):
        part = members[rng.random(len(members)) < 0.75].copy()
        part["z"] = np.asarray(part["z"], dtype=float)
        part["cluster_id"] = f"c{k}"
        parts.append(part)
        rows.append((f"c{k}", ra + 0.01 * k, dec, z))
    rows[1] = ("c1", np.nan, np.nan, z)  # centre estimated from the galaxies
    rows[2] = ("c2", ra, dec, np.nan)  # redshift estimated
    parts[3] = vstack([parts[3], parts[3][:5]])  # five exact duplicates
    parts[4]["z"][:4] = np.nan  # four galaxies without a redshift
    parts[5]["z"][0] = -3.0  # an absurd redshift: the cluster cannot be measured
    rows[6] = ("c6", ra, 95.0, z)  # a declination beyond 90 deg
    rows.append(("c7", ra, dec, z))  # no galaxy in the member table
    clusters = Table(rows=rows, names=("cluster_id", "ra", "dec", "z"))
    clusters["ra"] = MaskedColumn(clusters["ra"], mask=~np.isfinite(clusters["ra"]))
    clusters["dec"] = MaskedColumn(clusters["dec"], mask=~np.isfinite(clusters["dec"]))
    clusters["z"] = MaskedColumn(clusters["z"], mask=~np.isfinite(clusters["z"]))
    return vstack(parts), clusters


def _assert_rows_equal(a, b, rtol=1e-12):
    assert a.colnames == b.colnames
    for name in a.colnames:
        x, y = a[name], b[name]
        if isinstance(x, u.Quantity):
            assert x.unit == y.unit, name
            x, y = x.value, y.to_value(x.unit)
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=rtol, atol=0, equal_nan=True, err_msg=name)
        else:
            assert x.tolist() == y.tolist(), name


def test_batch_rows_equal_single_estimates(estimator, example):
    members, clusters = _mixed_batch(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCnnmassWarning)
        tab = estimator.estimate_many(members, clusters=clusters)
    assert tab["cluster_id"].tolist() == [f"c{k}" for k in range(8)]
    assert tab["ok"].tolist() == [True, True, True, True, True, False, False, False]
    assert "outside" in tab["error"][5] and "dec" in tab["error"][6]
    assert tab["error"][7] == "no members in the member table"
    assert tab["center_estimated"].tolist() == [False, True] + [False] * 6
    assert tab["z_cluster_estimated"].tolist() == [False, False, True] + [False] * 5
    for k in range(5):
        part = members[members["cluster_id"] == f"c{k}"]
        row = clusters[k]
        center = None
        if not np.ma.is_masked(row["ra"]):
            center = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
        z_cl = None if np.ma.is_masked(row["z"]) else float(row["z"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstroCnnmassWarning)
            single = estimator.estimate(part, center=center, z_cluster=z_cl).to_table()
        single["cluster_id"] = [f"c{k}"]
        _assert_rows_equal(tab[k : k + 1], single)


def test_packed_phase_spaces_equal_the_one_by_one_builder(example):
    members, clusters = _mixed_batch(example)
    plan = plan_batch(members, clusters, "cluster_id", "ra", "dec", "z")
    packed = packed_phase_spaces(plan, members)
    objects, errors = batch_phase_spaces(plan, members)
    ref = PackedPhaseSpaces.from_phase_spaces(objects, errors)
    assert packed.built.tolist() == ref.built.tolist()
    assert packed.errors == ref.errors
    np.testing.assert_array_equal(packed.offsets, ref.offsets)
    np.testing.assert_array_equal(packed.index, ref.index)
    np.testing.assert_allclose(packed.R, ref.R, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(packed.v, ref.v)
    np.testing.assert_array_equal(packed.z_cluster, ref.z_cluster)
    # a cluster converted together becomes the same PhaseSpace object on demand
    ps0 = packed.phase_space(0)
    assert ps0.center.separation(objects[0].center).to_value(u.arcsec) < 1e-9
    np.testing.assert_allclose(ps0.R.to_value(ps0.R.unit), objects[0].R.value, rtol=1e-13)


def test_a_batch_of_known_centres_is_packed_in_place(example, monkeypatch):
    """Every cluster converted together (the common case): no one-by-one cluster, several
    blocks, duplicates dropped; the galaxies equal the one-by-one builder's."""
    from astro_cnnmass.observe import packed as packed_module

    members, clusters = _mixed_batch(example)
    keep = [0, 3, 4]  # known centre and z; one with duplicates, one with NaN redshifts
    ids = [f"c{k}" for k in keep]
    members = members[np.isin(members["cluster_id"], ids)]
    clusters = clusters[np.isin(clusters["cluster_id"], ids)]
    plan = plan_batch(members, clusters, "cluster_id", "ra", "dec", "z")
    monkeypatch.setattr(packed_module, "BLOCK_GALAXIES", 150)
    packed = packed_phase_spaces(plan, members)
    ref = PackedPhaseSpaces.from_phase_spaces(*batch_phase_spaces(plan, members))
    assert packed.built.all() and not any(packed.errors)
    assert packed.objects == [None] * 3  # none was built one by one
    np.testing.assert_array_equal(packed.offsets, ref.offsets)
    np.testing.assert_array_equal(packed.index, ref.index)
    np.testing.assert_allclose(packed.R, ref.R, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(packed.v, ref.v)


def test_mass_function_prior_batch_equals_single(example):
    members, ra, dec, z = example
    est = DynamicalMassEstimator.load(prior="mass_function")
    members = members.copy()
    members["cluster_id"] = "x"
    clusters = Table({"cluster_id": ["x"], "ra": [ra], "dec": [dec], "z": [z]})
    tab = est.estimate_many(members, clusters=clusters)
    single = est.estimate(members, center=SkyCoord(ra * u.deg, dec * u.deg), z_cluster=z)
    np.testing.assert_allclose(tab["mass"].to_value(MSUN_H), single.mass.to_value(MSUN_H))
    np.testing.assert_allclose(tab["log_mass_std"], single.log_mass_std, rtol=1e-12)
    assert tab["prior"][0] == "mass_function"


def test_exact_duplicates_are_found_per_cluster_only():
    owner = np.array([0, 0, 0, 1, 1, 1])
    lon = np.array([10.0, 10.0, 11.0, 10.0, -0.0, 0.0])
    lat = np.array([5.0, 5.0, 5.0, 5.0, 1.0, 1.0])
    z = np.array([0.1, 0.1, 0.1, 0.1, 0.2, 0.2])
    # row 1 repeats row 0; row 3 equals row 0 but in another cluster; -0.0 == 0.0
    assert _first_occurrences(owner, lon, lat, z).tolist() == [True, False, True, True, True, False]


def test_estimate_phase_spaces_takes_ready_phase_spaces(estimator, example):
    members, ra, dec, z = example
    center = SkyCoord(ra * u.deg, dec * u.deg)
    from astro_cnnmass import phase_space

    ps = phase_space(members, center=center, z_cluster=z)
    tab = estimator.estimate_phase_spaces([ps, ps], cluster_ids=["a", "b"])
    single = estimator.estimate(members, center=center, z_cluster=z)
    assert isinstance(tab, QTable) and tab["cluster_id"].tolist() == ["a", "b"]
    np.testing.assert_allclose(tab["mass"].to_value(MSUN_H), single.mass.to_value(MSUN_H))
    assert tab["n_members"][0] == single.n_members


def test_blocks_of_galaxies_do_not_change_the_numbers(example, monkeypatch):
    from astro_cnnmass.observe import packed as packed_module

    members, clusters = _mixed_batch(example)
    plan = plan_batch(members, clusters, "cluster_id", "ra", "dec", "z")
    whole = packed_phase_spaces(plan, members)
    monkeypatch.setattr(packed_module, "BLOCK_GALAXIES", 100)  # a block every cluster or so
    blocked = packed_phase_spaces(plan, members)
    np.testing.assert_array_equal(blocked.offsets, whole.offsets)
    np.testing.assert_array_equal(blocked.R, whole.R)
    np.testing.assert_array_equal(blocked.v, whole.v)
    assert blocked.errors == whole.errors


def test_a_cosmology_that_is_not_one_is_refused_once(estimator, example):
    from astro_cnnmass.exceptions import InputError

    members, ra, dec, z = example
    members = members.copy()
    members["cluster_id"] = "x"
    clusters = Table({"cluster_id": ["x"], "ra": [ra], "dec": [dec], "z": [z]})
    with pytest.raises(InputError, match="astropy Cosmology"):
        estimator.estimate_many(members, clusters=clusters, cosmology="Planck18")


@pytest.mark.parametrize("z_range", [(0.02, 0.3), (1e-4, 2.5)])
def test_distances_of_many_clusters_are_astropys(z_range):
    """Interpolated from astropy's own values (many redshifts): to 2e-13, NaN kept."""
    from astropy.cosmology import Planck18, w0waCDM

    rng = np.random.default_rng(3)
    z = rng.uniform(*z_range, 3 * DISTANCE_INTERPOLATION_MIN)
    z[7] = np.nan
    for cosmology in (Planck18, w0waCDM(70, 0.3, 0.65, -0.9, 0.2)):
        ref = cosmology.angular_diameter_distance(np.nan_to_num(z, nan=0.1)).to_value(u.Mpc)
        ref[7] = np.nan
        d = angular_diameter_distances_mpc(cosmology, z)
        assert np.isnan(d[7]) and np.isfinite(np.delete(d, 7)).all()
        np.testing.assert_allclose(d, ref, rtol=2e-13, atol=0, equal_nan=True)


def test_distances_of_few_clusters_are_integrated_one_by_one():
    from astropy.cosmology import Planck18

    z = np.linspace(0.01, 0.2, DISTANCE_INTERPOLATION_MIN - 1)
    ref = Planck18.angular_diameter_distance(z).to_value(u.Mpc)
    np.testing.assert_array_equal(angular_diameter_distances_mpc(Planck18, z), ref)
    same = np.full(DISTANCE_INTERPOLATION_MIN * 2, 0.1)  # one redshift: nothing to interpolate
    d_same = angular_diameter_distances_mpc(Planck18, same)
    assert np.all(d_same == Planck18.angular_diameter_distance(0.1).to_value(u.Mpc))
