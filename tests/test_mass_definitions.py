"""M200c (what the network predicts) converted to M500c, M200m, Mvir, ... with the c–M scatter."""

import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM
from astropy.table import vstack

from astro_cnnmass import DynamicalMassEstimator, InputError
from astro_cnnmass.classical import MSUN_H
from astro_cnnmass.datasets import load_example_cluster
from astro_cnnmass.uncertainty.mass_definitions import (
    DEFAULT_C_SCATTER_DEX,
    convert_log_mass_samples,
)


@pytest.fixture(scope="module")
def estimator():
    return DynamicalMassEstimator.load()


@pytest.fixture(scope="module")
def result(estimator):
    members = load_example_cluster()
    return estimator.estimate(members, z_cluster=members.meta["z_cluster"])


def _log_width(conv):
    lo, hi = conv.mass_interval
    return np.log10(hi / lo).value


def test_definitions_are_ordered_as_their_overdensities(result):
    m500 = result.mass_as("500c")
    m200m = result.mass_as("200m")
    mvir = result.mass_as("vir")
    assert m500.mass < result.mass < mvir.mass < m200m.mass
    assert m500.mass_definition == "500c" and m500.label == "M500c"
    assert result.mass_as("M500c").mass == m500.mass  # the same seed, the same numbers
    assert m500.mass.unit == MSUN_H
    lo, hi = m500.mass_interval
    assert lo < m500.mass < hi


def test_relation_and_its_scatter_are_named_and_propagated(result):
    m500 = result.mass_as("500c")
    assert m500.concentration_model == "diemer19"
    assert m500.concentration_scatter_dex == DEFAULT_C_SCATTER_DEX
    assert "diemer19" in str(m500) and "0.16 dex" in m500.relation
    no_scatter = result.mass_as("500c", c_scatter_dex=0.0)
    # the c–M scatter widens the interval beyond the network's own
    assert _log_width(m500) > _log_width(no_scatter)
    # without scatter the width is the network's (M500c/M200c barely depends on mass)
    m200 = np.log10(result.mass_interval[1] / result.mass_interval[0]).value
    assert _log_width(no_scatter) == pytest.approx(m200, rel=0.1)
    other = result.mass_as("500c", cm_model="duffy08")
    assert other.concentration_model == "duffy08" and other.mass != m500.mass


def test_200c_gives_back_the_networks_distribution(result):
    same = result.mass_as("200c")
    assert same.mass.value == pytest.approx(result.mass.value, rel=0.02)


def test_conversion_matches_colossus_for_the_mean_relation():
    from colossus.cosmology import cosmology as ccosmo
    from colossus.halo import concentration, mass_defs

    log_m = np.array([14.0, 14.5, 15.0])
    z = 0.1
    ours = convert_log_mass_samples(log_m, z, "500c", c_scatter_dex=0.0)
    from astropy.cosmology import Planck18

    previous = ccosmo.getCurrent() if ccosmo.current_cosmo is not None else None
    with pytest.warns(UserWarning, match="neutrinos"):
        ccosmo.fromAstropy(Planck18, sigma8=0.8102, ns=0.9665, cosmo_name="t", persistence="")
    try:
        c = concentration.concentration(10**log_m, "200c", z, model="diemer19")
        ref = np.log10(mass_defs.changeMassDefinition(10**log_m, c, z, "200c", "500c")[0])
    finally:
        if previous is not None:
            ccosmo.setCurrent(previous)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_the_cosmology_of_the_phase_space_is_used(estimator):
    members = load_example_cluster()
    z = members.meta["z_cluster"]
    low_density = FlatLambdaCDM(H0=70, Om0=0.2, Ob0=0.04, name="low")
    res = estimator.estimate(members, z_cluster=z, cosmology=low_density)
    default = res.mass_as("200m")
    explicit = res.mass_as("200m", cosmology=low_density)
    assert default.mass == explicit.mass
    from astropy.cosmology import Planck18

    assert res.mass_as("200m", cosmology=Planck18).mass != default.mass
    with pytest.raises(InputError, match="Ob0"):
        res.mass_as("200m", cosmology=FlatLambdaCDM(H0=70, Om0=1.0))


def test_bad_definitions_name_the_choices(result):
    with pytest.raises(InputError, match=r"'500c'.*'200m'.*'vir'"):
        result.mass_as("500x")
    with pytest.raises(InputError, match="concentration model"):
        result.mass_as("500c", cm_model="nonsense")


def test_columns_on_request_in_tables(estimator):
    members = load_example_cluster()
    parts = []
    for cid in ("a", "b"):
        part = members.copy()
        part["cluster_id"] = cid
        parts.append(part)
    tab = estimator.estimate_many(vstack(parts), mass_definitions=["500c", "vir"])
    for name in ("mass_500c", "mass_500c_lo", "mass_500c_hi", "mass_vir"):
        assert tab[name].unit == MSUN_H
    assert np.all(tab["mass_500c"] < tab["mass"]) and np.all(tab["mass_vir"] > tab["mass"])
    for name in ("mass_500c", "mass_500c_lo", "mass_500c_hi"):
        assert "diemer19 c-M relation" in tab[name].info.description
    plain = estimator.estimate_many(vstack(parts))
    assert "mass_500c" not in plain.colnames
    one = estimator.estimate(members, z_cluster=members.meta["z_cluster"])
    assert one.to_table(mass_definitions=["500c"])["mass_500c"][0] == one.mass_as("500c").mass
