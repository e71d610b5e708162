"""The estimator facade without a trained network: M–σ (Evrard) answers, flagged as such."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from astro_cnnmass import DynamicalMassEstimator, InputError, TooFewGalaxiesError
from astro_cnnmass.classical import MSUN_H, evrard_mass
from astro_cnnmass.observe.phase_space import MPC_H

KMS = u.km / u.s
C_KMS = 299792.458


CENTER = SkyCoord(150 * u.deg, 2 * u.deg)


def _cluster_table(seed, n=60, center=CENTER, z_cl=0.08, sigma=700):
    rng = np.random.default_rng(seed)
    coords = center.directional_offset_by(
        rng.uniform(0, 360, n) * u.deg, np.abs(rng.normal(0, 6, n)) * u.arcmin
    )
    z = z_cl + (1 + z_cl) * rng.normal(0, sigma, n) / C_KMS
    return Table({"ra": coords.ra.deg, "dec": coords.dec.deg, "z": z})


def test_network_free_estimator_says_what_it_is():
    est = DynamicalMassEstimator()
    center = SkyCoord(150 * u.deg, 2 * u.deg)
    res = est.estimate(_cluster_table(1), z_cluster=0.08, center=center)
    assert res.method == "m_sigma_evrard"
    assert "no_network" in res.flags
    assert res.mass_interval is None
    np.testing.assert_allclose(
        res.mass.to_value(MSUN_H), evrard_mass(res.sigma_v, 0.08).to_value(MSUN_H)
    )
    assert "m_sigma_evrard" in res.summary()


def test_too_few_galaxies_raise_for_one_cluster():
    est = DynamicalMassEstimator()
    with pytest.raises(TooFewGalaxiesError, match="cylinder"):
        est.estimate_phase_space([0.1, 0.2] * MPC_H, [0.0, 10.0] * KMS, z_cluster=0.1)


def test_batch_flags_bad_clusters_instead_of_crashing():
    est = DynamicalMassEstimator()
    good = _cluster_table(2)
    good["cluster_id"] = "A"
    tiny = _cluster_table(3, n=2)
    tiny["cluster_id"] = "B"
    members = Table(np.concatenate([good.as_array(), tiny.as_array()]))
    clusters = Table(
        {"cluster_id": ["A", "B", "C"], "ra": [150.0] * 3, "dec": [2.0] * 3, "z": [0.08] * 3}
    )
    tab = est.estimate_many(members, clusters=clusters)
    assert list(tab["cluster_id"]) == ["A", "B", "C"]
    assert list(tab["ok"]) == [True, False, False]
    assert np.isnan(tab["mass"][1]) and np.isnan(tab["mass"][2])
    assert "no members" in tab["error"][2]
    assert tab["mass"].unit == MSUN_H


def test_batch_matches_single_calls():
    est = DynamicalMassEstimator()
    center = SkyCoord(150 * u.deg, 2 * u.deg)
    parts = []
    singles = []
    for k in range(3):
        t = _cluster_table(10 + k, sigma=400 + 300 * k)
        singles.append(est.estimate(t, z_cluster=0.08, center=center).mass)
        t["cluster_id"] = k
        parts.append(t)
    members = Table(np.concatenate([p.as_array() for p in parts]))
    clusters = Table(
        {"cluster_id": [0, 1, 2], "ra": [150.0] * 3, "dec": [2.0] * 3, "z": [0.08] * 3}
    )
    tab = est.estimate_many(members, clusters=clusters)
    np.testing.assert_allclose(
        tab["mass"].to_value(MSUN_H), [s.to_value(MSUN_H) for s in singles], rtol=1e-12
    )


def test_estimate_many_needs_the_cluster_column():
    with pytest.raises(InputError, match="cluster_id"):
        DynamicalMassEstimator().estimate_many(_cluster_table(1))
