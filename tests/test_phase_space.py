"""Member lists -> projected phase space: conversions, cylinder and bad input."""

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.cosmology import FlatLambdaCDM, Planck18
from astropy.table import QTable, Table
from hypothesis import given, settings
from hypothesis import strategies as st

from astro_cnnmass import Cylinder, InputError, phase_space
from astro_cnnmass.exceptions import AstroCnnmassWarning
from astro_cnnmass.observe.phase_space import (
    MPC_H,
    cylinder_mask,
    estimate_center,
    estimate_redshift,
)

C_KMS = 299792.458
CENTER = SkyCoord(194.95 * u.deg, 27.98 * u.deg)


def _members_at(offsets_arcmin, z, center=CENTER):
    """Galaxies at given angular offsets (arcmin, due north) from the centre."""
    coords = center.directional_offset_by(0 * u.deg, np.asarray(offsets_arcmin) * u.arcmin)
    return Table({"ra": coords.ra.deg, "dec": coords.dec.deg, "z": np.asarray(z, dtype=float)})


@pytest.mark.parametrize(
    "cosmo", [Planck18, FlatLambdaCDM(H0=70, Om0=0.3)], ids=["Planck18", "flat70"]
)
def test_known_galaxy_has_exact_radius_and_velocity(cosmo):
    z_cl = 0.0231
    theta = np.array([1.0, 10.0, 30.0])  # arcmin
    z_gal = np.array([0.0231, 0.025, 0.020])
    ps = phase_space(_members_at(theta, z_gal), center=CENTER, z_cluster=z_cl, cosmology=cosmo)
    expected_R = (
        (theta * u.arcmin).to_value(u.rad)
        * cosmo.angular_diameter_distance(z_cl).to_value(u.Mpc)
        * cosmo.h
    )
    expected_v = C_KMS * (z_gal - z_cl) / (1 + z_cl)
    np.testing.assert_allclose(ps.R.to_value(MPC_H), expected_R, rtol=1e-9)
    np.testing.assert_allclose(ps.v.to_value(u.km / u.s), expected_v, rtol=1e-9, atol=1e-9)
    assert ps.R.unit == MPC_H
    np.testing.assert_array_equal(ps.index, [0, 1, 2])


def test_skycoord_input_and_quantity_columns_agree_with_plain_table():
    tab = _members_at([2.0, 5.0, 8.0], [0.1, 0.101, 0.099])
    coords = SkyCoord(tab["ra"] * u.deg, tab["dec"] * u.deg)
    ps_table = phase_space(tab, center=CENTER, z_cluster=0.1)
    ps_coords = phase_space(coords, redshifts=tab["z"], center=CENTER, z_cluster=0.1)
    qt = QTable({"RA": (tab["ra"] * u.deg).to(u.rad), "DEC": tab["dec"] * u.deg, "zspec": tab["z"]})
    ps_qtable = phase_space(
        qt, center=CENTER, z_cluster=0.1, ra_column="RA", dec_column="DEC", z_column="zspec"
    )
    for other in (ps_coords, ps_qtable):
        np.testing.assert_allclose(other.R, ps_table.R, rtol=1e-9)
        np.testing.assert_allclose(other.v, ps_table.v, rtol=1e-9)


def test_ready_phase_space_accepts_mpc_with_cosmology_h():
    ps = phase_space(
        R=[1.0, 2.0] * u.Mpc, v=[0, 100] * u.km / u.s, z_cluster=0.1, cosmology=Planck18
    )
    np.testing.assert_allclose(ps.R.to_value(MPC_H), [Planck18.h, 2 * Planck18.h])


def test_redshift_estimate_is_biweight_of_window():
    rng = np.random.default_rng(1)
    z_cl = 0.05
    z_members = z_cl + (1 + z_cl) * rng.normal(0, 700, 200) / C_KMS
    z_field = rng.uniform(0.02, 0.12, 40)
    z_hat = estimate_redshift(np.concatenate([z_members, z_field]))
    assert abs(C_KMS * (z_hat - z_cl) / (1 + z_cl)) < 150


def test_center_estimate_finds_the_cluster():
    rng = np.random.default_rng(2)
    true = SkyCoord(150.0 * u.deg, 2.0 * u.deg)
    n = 150
    pa = rng.uniform(0, 360, n) * u.deg
    sep = np.abs(rng.normal(0, 4, n)) * u.arcmin
    coords = true.directional_offset_by(pa, sep)
    z = 0.1 + rng.normal(0, 0.002, n)
    center = estimate_center(coords, z, 0.1, Planck18)
    assert center.separation(true) < 1.5 * u.arcmin


def test_estimated_center_and_redshift_are_flagged():
    rng = np.random.default_rng(3)
    n = 80
    coords = CENTER.directional_offset_by(
        rng.uniform(0, 360, n) * u.deg, np.abs(rng.normal(0, 5, n)) * u.arcmin
    )
    tab = Table({"ra": coords.ra.deg, "dec": coords.dec.deg, "z": 0.03 + rng.normal(0, 0.003, n)})
    ps = phase_space(tab)
    assert ps.center_estimated and ps.z_cluster_estimated
    assert abs(ps.z_cluster - 0.03) < 0.002


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_results_do_not_depend_on_row_order(rnd):
    rng = np.random.default_rng(rnd.randint(0, 2**31))
    tab = _members_at(rng.uniform(0, 40, 30), 0.05 + rng.normal(0, 0.003, 30))
    perm = rng.permutation(len(tab))
    ps = phase_space(tab, center=CENTER, z_cluster=0.05)
    ps_perm = phase_space(tab[perm], center=CENTER, z_cluster=0.05)
    np.testing.assert_allclose(ps_perm.R[np.argsort(perm)], ps.R, rtol=1e-12)
    np.testing.assert_allclose(ps_perm.v[np.argsort(perm)], ps.v, rtol=1e-12)
    np.testing.assert_array_equal(perm[ps_perm.index], np.arange(len(tab))[perm])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 5), min_size=1, max_size=40),
    st.floats(0.1, 3.0),
    st.floats(100, 5000),
    st.randoms(use_true_random=False),
)
def test_cylinder_keeps_exactly_the_galaxies_inside(R, aperture, v_cut, rnd):
    R = np.asarray(R)
    v = np.array([rnd.uniform(-6000, 6000) for _ in R])
    cyl = Cylinder(aperture * MPC_H, v_cut * u.km / u.s)
    ps = phase_space(R=R * MPC_H, v=v * u.km / u.s, z_cluster=0.1)
    inside = ps.in_cylinder(cyl)
    expected = [i for i in range(R.size) if R[i] < aperture and abs(v[i]) < v_cut]
    np.testing.assert_array_equal(inside.index, expected)
    np.testing.assert_array_equal(cylinder_mask(R, v, aperture, v_cut), cyl.mask(ps.R, ps.v))


def test_default_cylinder_is_the_documented_one():
    cyl = Cylinder()
    assert cyl.to_dict() == {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}
    assert Cylinder.from_dict(cyl.to_dict()) == cyl


# --------------------------------------------------------------------------- bad input
def test_missing_column_is_named():
    tab = Table({"RA": [1.0], "dec": [1.0], "z": [0.1]})
    with pytest.raises(InputError, match="ra"):
        phase_space(tab, center=CENTER, z_cluster=0.1)


def test_non_angle_units_are_refused():
    tab = QTable({"ra": [1.0] * u.km, "dec": [1.0] * u.deg, "z": [0.1]})
    with pytest.raises(InputError, match="angle"):
        phase_space(tab, center=CENTER, z_cluster=0.1)


def test_velocity_units_in_redshift_column_are_refused():
    tab = QTable({"ra": [1.0] * u.deg, "dec": [1.0] * u.deg, "z": [30000.0] * u.km / u.s})
    with pytest.raises(InputError, match="dimensionless"):
        phase_space(tab, center=CENTER, z_cluster=0.1)


def test_nan_rows_are_dropped_with_a_counted_warning_or_rejected():
    tab = _members_at([1.0, 2.0, 3.0, 4.0], [0.1, np.nan, 0.1, 0.1])
    tab["ra"][2] = np.inf
    with pytest.warns(AstroCnnmassWarning, match="dropped 2"):
        ps = phase_space(tab, center=CENTER, z_cluster=0.1)
    np.testing.assert_array_equal(ps.index, [0, 3])
    with pytest.raises(InputError, match="non-finite"):
        phase_space(tab, center=CENTER, z_cluster=0.1, nan_policy="raise")


@pytest.mark.parametrize("z", [-0.5, 25.0])
def test_absurd_galaxy_redshifts_are_refused(z):
    with pytest.raises(InputError, match="redshift"):
        phase_space(_members_at([1.0, 2.0], [0.1, z]), center=CENTER, z_cluster=0.1)


@pytest.mark.parametrize("z_cl", [-0.1, 0.0, np.nan, 7.0])
def test_bad_cluster_redshift_is_refused(z_cl):
    with pytest.raises(InputError, match="z_cluster"):
        phase_space(_members_at([1.0], [0.1]), center=CENTER, z_cluster=z_cl)


def test_empty_table_is_refused():
    with pytest.raises(InputError, match="empty"):
        phase_space(Table({"ra": [], "dec": [], "z": []}), center=CENTER, z_cluster=0.1)


def test_bad_center_and_cosmology_are_refused():
    tab = _members_at([1.0], [0.1])
    with pytest.raises(InputError, match="SkyCoord"):
        phase_space(tab, center=(194.9, 27.9), z_cluster=0.1)
    with pytest.raises(InputError, match="Cosmology"):
        phase_space(tab, center=CENTER, z_cluster=0.1, cosmology="Planck18")


def test_ready_phase_space_needs_units():
    with pytest.raises(InputError, match="Quantity"):
        phase_space(R=[1.0, 2.0], v=[0.0, 1.0] * u.km / u.s, z_cluster=0.1)
    with pytest.raises(InputError, match="km / s"):
        phase_space(R=[1.0] * MPC_H, v=[1.0] * u.Mpc, z_cluster=0.1)
    with pytest.raises(InputError, match=">= 0"):
        phase_space(R=[-1.0] * MPC_H, v=[1.0] * u.km / u.s, z_cluster=0.1)


def test_littleh_unit_is_astropy_littleh():
    assert MPC_H == u.Mpc / cu.littleh
