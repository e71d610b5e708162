"""Small-N versions of the mock validation targets (physics note §9)."""

import numpy as np
import pytest

from astro_cnnmass.mocks import MockConfig, generate_catalog
from astro_cnnmass.mocks.halos import nfw_mu
from astro_cnnmass.mocks.members import tracer_density
from astro_cnnmass.mocks.validation import (
    cylinder_sigma,
    fit_sigma_mass,
    interloper_fraction_profile,
    member_count_slope,
    msigma_mass_scatter,
)
from astro_cnnmass.mocks.velocities import jeans_sigma_r


@pytest.fixture(scope="module")
def cat():
    return generate_catalog(400, seed=2024, progress=False)


def test_pure_member_sigma_mass(cat):
    c = cat.clusters
    fit = fit_sigma_mass(c["log_m200c"], c["z"], c["sigma_true_kms"])
    assert 0.30 <= fit["slope"] <= 0.40
    assert fit["sigma15"] == pytest.approx(1083.0, rel=0.10)
    ratio = np.nanmean(c["sigma_true_kms"] / c["v200_kms"])
    assert 0.60 < ratio < 0.72  # V4: Evrard σ_DM / V200 ≈ 0.66


def test_interlopers_inside_r200_and_rising(cat):
    prof = interloper_fraction_profile(cat)
    assert 0.10 <= prof["inside"] <= 0.40
    f = prof["fraction"]
    assert f[0] < f[2] < f[-1]


def test_member_counts_scale_with_mass(cat):
    assert 0.85 <= member_count_slope(cat)["slope"] <= 1.1


def test_cylinder_scatter_larger_than_pure(cat):
    c = cat.clusters
    sig_cyl, _ = cylinder_sigma(cat)
    pure = msigma_mass_scatter(c["log_m200c"], c["sigma_true_kms"])
    cyl = msigma_mass_scatter(c["log_m200c"], sig_cyl)
    assert 0.12 < pure < 0.26
    assert cyl > 1.3 * pure


def test_stored_galaxies_inside_storage_cylinder(cat):
    sc = cat.meta["storage_cylinder"]
    assert np.all(cat.R < sc["aperture_mpch"]) and np.all(np.abs(cat.v) < sc["v_cut_kms"])
    assert cat.n_clusters == 1200
    c = cat.clusters
    assert np.all((c["z"] >= 0.01) & (c["z"] <= 0.3))
    assert np.all((c["log_m200c"] >= 13.5) & (c["log_m200c"] <= 15.5))
    # several lines of sight per host share the host's truth
    for key in ("log_m200c", "z", "c200c", "q_ca", "f_c"):
        per_host = c[key].reshape(-1, 3)
        assert np.all(per_host == per_host[:, :1])
    assert np.array_equal(c["los_id"].reshape(-1, 3), np.tile([0, 1, 2], (400, 1)))


def test_randomized_parameters_stay_in_their_ranges(cat):
    cfg = MockConfig()
    c = cat.clusters
    for name in (
        "f_c",
        "velocity_bias",
        "sampling_fraction",
        "log_mstar_cut",
        "velocity_error_kms",
        "infall_amplitude",
        "x_turnaround",
    ):
        lo, hi = getattr(cfg, name)
        assert c[name].min() >= lo and c[name].max() <= hi, name
        assert c[name].std() > 0, name
    assert set(np.unique(c["anisotropy_model"])) == {0, 1, 2}
    assert 0.3 < c["include_centrals"].mean() < 0.7


def test_jeans_isotropic_nfw_normalisation():
    # physics note §4.1: mass-weighted σ_1D within r200 = 0.642 V200 for c = 4.3, isotropic
    h = {
        "c200c": 4.3,
        "c_gal": 4.3,
        "tracer_profile": 0,
        "einasto_alpha": np.nan,
        "anisotropy_model": 2,
        "const_beta": 0.0,
    }
    lx, sig, beta = jeans_sigma_r(h)
    x = np.exp(lx)
    m = x <= 1.0
    w = tracer_density(x[m], 4.3, None) * x[m] ** 3  # dV ∝ x³ dln x
    s1d = np.sqrt(np.trapezoid(w * sig[m] ** 2, lx[m]) / np.trapezoid(w, lx[m]))
    assert s1d == pytest.approx(0.642, abs=0.01)
    assert np.all(beta == 0.0)
    assert nfw_mu(1.0) == pytest.approx(np.log(2) - 0.5)


def test_ho2019_preset_has_no_centrals_or_survey_effects():
    cat = generate_catalog(30, seed=5, config=MockConfig.ho2019(), progress=False)
    c = cat.clusters
    assert np.all(c["z"] == 0.117)
    assert not c["include_centrals"].any()
    assert not np.isin(cat.origin, [3, 4]).any()  # no host or neighbour centrals
    assert np.all(c["velocity_error_kms"] == 0) and np.all(c["r_offset_mpch"] == 0)
