"""Classical estimators: dispersions, shifting gapper, Evrard and fitted M–σ relations."""

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM, Planck18

from astro_cnnmass import InputError, TooFewGalaxiesError
from astro_cnnmass.classical import (
    MSUN_H,
    MSigmaPowerLaw,
    evrard_mass,
    evrard_sigma,
    gapper_dispersion,
    shifting_gapper,
    velocity_dispersion,
)
from astro_cnnmass.observe.phase_space import MPC_H

KMS = u.km / u.s


def test_dispersions_recover_a_gaussian_width():
    v = np.random.default_rng(0).normal(0, 800, 4000) * KMS
    for method in ("std", "biweight", "gapper"):
        assert abs(velocity_dispersion(v, method).to_value(KMS) - 800) < 30


def test_std_is_population_std_as_in_the_paper():
    v = np.array([-300.0, 10.0, 50.0, 400.0])
    assert velocity_dispersion(v * KMS).to_value(KMS) == pytest.approx(np.std(v))


def test_gapper_matches_the_formula_on_a_small_sample():
    x = np.array([0.0, 1.0, 3.0])
    # sqrt(pi)/(3*2) * (1*2*1 + 2*1*2)
    assert gapper_dispersion(x) == pytest.approx(np.sqrt(np.pi) / 6 * 6)


def test_dispersion_bad_input():
    with pytest.raises(TooFewGalaxiesError):
        velocity_dispersion([1.0, 2.0] * KMS)
    with pytest.raises(InputError, match="NaN"):
        velocity_dispersion([1.0, np.nan, 2.0] * KMS)
    with pytest.raises(InputError, match="velocity"):
        velocity_dispersion([1.0, 2.0, 3.0] * u.m)
    with pytest.raises(InputError, match="method"):
        velocity_dispersion([1.0, 2.0, 3.0] * KMS, method="mad")


def test_shifting_gapper_removes_uniform_interlopers_and_keeps_members():
    rng = np.random.default_rng(42)
    n_mem, n_int = 300, 120
    R_mem = np.abs(rng.normal(0, 0.6, n_mem))
    v_mem = rng.normal(0, 600, n_mem)
    R_int = rng.uniform(0, 2.0, n_int)
    v_int = rng.choice([-1, 1], n_int) * rng.uniform(2500, 4000, n_int)
    R = np.concatenate([R_mem, R_int]) * MPC_H
    v = np.concatenate([v_mem, v_int]) * KMS
    members = shifting_gapper(R, v)
    assert members[:n_mem].mean() > 0.95
    assert (~members[n_mem:]).mean() > 0.8


def test_evrard_relation_values_and_round_trip():
    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    # At z = 0, E = 1: sigma(1e15 Msun/h) = 1082.9 km/s exactly.
    assert evrard_sigma(1e15 * MSUN_H, 0.0, cosmo).to_value(KMS) == pytest.approx(1082.9)
    m = evrard_mass(750 * KMS, 0.2, cosmo)
    assert evrard_sigma(m, 0.2, cosmo).to_value(KMS) == pytest.approx(750, rel=1e-10)
    assert m.unit == MSUN_H


def test_littleh_conversion_with_with_H0():
    m = evrard_mass(1000 * KMS, 0.1)
    m_sun = m.to(u.Msun, cu.with_H0(Planck18.H0))
    assert m_sun.to_value(u.Msun) == pytest.approx(m.to_value(MSUN_H) / Planck18.h)
    # A mass given in Msun is converted with the cosmology's h before the relation.
    s1 = evrard_sigma(m_sun, 0.1, Planck18)
    assert s1.to_value(KMS) == pytest.approx(1000, rel=1e-10)


def test_power_law_fit_recovers_parameters_and_inverts():
    rng = np.random.default_rng(5)
    logm = rng.uniform(14.0, 15.4, 3000)
    log_sigma = 0.33 * (logm - 15) + 3.03 + rng.normal(0, 0.05, logm.size)
    law = MSigmaPowerLaw.fit(logm, 10**log_sigma)
    assert law.alpha == pytest.approx(0.33, abs=0.03)
    assert law.log_sigma15 == pytest.approx(3.03, abs=0.01)
    assert law.scatter == pytest.approx(0.05, abs=0.01)
    sig = 10 ** (law.alpha * 0.2 + law.log_sigma15)
    assert law.predict_log_mass(sig) == pytest.approx(15.2)
    assert law.predict_mass(sig * KMS).to_value(MSUN_H) == pytest.approx(10**15.2)
    assert MSigmaPowerLaw.from_dict(law.to_dict()) == law
    with pytest.raises(InputError, match="unknown"):
        MSigmaPowerLaw.from_dict({**law.to_dict(), "beta": 1.0})


def test_power_law_fit_needs_clusters_in_range():
    with pytest.raises(InputError, match="at least 3"):
        MSigmaPowerLaw.fit([13.0, 13.1, 13.2], [300.0, 310.0, 320.0])
