"""The bundled CNN_2D through the public API: loading, accuracy on a seeded mock, consistency."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from astro_cnnmass import DynamicalMassEstimator, InputError, estimate_mass
from astro_cnnmass.classical import MSUN_H
from astro_cnnmass.datasets import load_example_cluster
from astro_cnnmass.exceptions import AstroCnnmassWarning
from astro_cnnmass.mocks import MockConfig, generate_catalog
from astro_cnnmass.model.bundle import ModelFileError
from astro_cnnmass.observe.phase_space import MPC_H, phase_space

KMS = u.km / u.s


@pytest.fixture(scope="module")
def estimator():
    return DynamicalMassEstimator.load()


@pytest.fixture(scope="module")
def seeded_mocks():
    """Fresh mocks (a seed the bundled model never saw) at three known masses."""
    cats = []
    for k, logm in enumerate((14.2, 14.6, 15.0)):
        cfg = MockConfig().replace(log_m_range=(logm - 0.02, logm + 0.02), z_range=(0.05, 0.15))
        cats.append(generate_catalog(2, seed=777 + k, lines_of_sight=3, config=cfg, progress=False))
    return cats


def test_bundled_model_loads_with_its_configuration(estimator):
    assert estimator.method == "cnn2d"
    assert estimator.cylinder.to_dict() == {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}
    assert estimator.feature_config.n_v == 48 and estimator.feature_config.n_R == 48
    assert estimator.domain["z_min"] < 0.05 and estimator.domain["z_max"] > 0.25
    assert estimator.bundle.n_members >= 3  # v2: a 3-member ensemble (v1: 5)
    assert estimator.bundle.network_config.get("use_log_n")  # v2 reads the galaxy count


def test_seeded_mock_clusters_are_measured_within_0p3_dex(estimator, seeded_mocks):
    for cat in seeded_mocks:
        residuals = []
        for i in range(cat.n_clusters):
            R, v, _ = cat.galaxies(i)
            z = float(cat.clusters["z"][i])
            res = estimator.estimate_phase_space(R * MPC_H, v * KMS, z_cluster=z)
            residuals.append(res.log_mass - float(cat.clusters["log_m200c"][i]))
        # the median over 6 lines of sight of a mass bin is within 0.3 dex
        assert abs(np.median(residuals)) < 0.3, residuals


def test_interval_and_quantiles_are_ordered(estimator, seeded_mocks):
    R, v, _ = seeded_mocks[1].galaxies(0)
    res = estimator.estimate_phase_space(R * MPC_H, v * KMS, z_cluster=0.1)
    q = [res.quantiles[k].to_value(MSUN_H) for k in (0.05, 0.16, 0.5, 0.84, 0.95)]
    assert np.all(np.diff(q) > 0)
    lo, hi = res.mass_interval
    assert lo < res.mass < hi
    assert 0.02 < res.log_mass_std < 0.6
    draws = res.samples(4000, seed=1)
    assert np.log10(draws.to_value(MSUN_H)).std() == pytest.approx(res.log_mass_std, rel=0.1)
    assert np.isfinite(res.ood_score)


def test_intervals_cover_fresh_mocks_at_their_nominal_rates(estimator):
    # 150 new hosts x 3 lines of sight from the default generator, a seed never trained on
    from astro_cnnmass.batch.streaming import estimate_catalog

    cat = generate_catalog(150, seed=8128, lines_of_sight=3, progress=False)
    out = estimate_catalog(estimator, cat, as_table=False)
    log_m = np.asarray(cat.clusters["log_m200c"])
    sel = (log_m > 14) & (log_m < 15) & np.isfinite(out["log_mass"])
    assert sel.sum() > 150
    z = np.abs(out["log_mass"][sel] - log_m[sel]) / out["log_mass_std"][sel]
    # loose: about 3.5 binomial standard deviations around 0.68 and 0.90
    assert 0.55 < np.mean(z < 0.9945) < 0.81
    assert 0.80 < np.mean(z < 1.6449) < 0.98


def test_mass_function_prior_pulls_a_massive_cluster_down(seeded_mocks):
    R, v, _ = seeded_mocks[2].galaxies(0)
    flat = DynamicalMassEstimator.load().estimate_phase_space(R * MPC_H, v * KMS, z_cluster=0.1)
    hmf = DynamicalMassEstimator.load(prior="mass_function").estimate_phase_space(
        R * MPC_H, v * KMS, z_cluster=0.1
    )
    assert hmf.prior == "mass_function"
    assert hmf.mass < flat.mass


def test_batched_and_single_paths_give_identical_masses(estimator, seeded_mocks):
    cat = seeded_mocks[0]
    singles, phase_spaces = [], []
    from astro_cnnmass import phase_space

    for i in range(cat.n_clusters):
        R, v, _ = cat.galaxies(i)
        z = float(cat.clusters["z"][i])
        singles.append(estimator.estimate_phase_space(R * MPC_H, v * KMS, z_cluster=z))
        phase_spaces.append(phase_space(R=R * MPC_H, v=v * KMS, z_cluster=z))
    table = estimator.estimate_phase_spaces(phase_spaces)
    np.testing.assert_array_equal(
        table["mass"].to_value(MSUN_H), [s.mass.to_value(MSUN_H) for s in singles]
    )
    np.testing.assert_array_equal(table["n_members"], [s.n_members for s in singles])


def test_example_cluster_end_to_end():
    members = load_example_cluster()
    meta = members.meta
    center = SkyCoord(meta["ra_cluster"] * u.deg, meta["dec_cluster"] * u.deg)
    res = estimate_mass(members, z_cluster=meta["z_cluster"], center=center)
    assert abs(res.log_mass - meta["true_log_m200c"]) < 0.3
    assert res.m_sigma.unit == MSUN_H and res.sigma_v.unit == KMS
    assert res.n_members > 30
    row = res.to_table()
    assert len(row) == 1 and row["mass"].unit == MSUN_H


def test_out_of_domain_inputs_are_flagged(estimator):
    rng = np.random.default_rng(0)
    R = rng.uniform(0, 1.5, 8) * MPC_H
    v = rng.normal(0, 600, 8) * KMS
    with pytest.warns(AstroCnnmassWarning, match="few_galaxies"):
        res = estimator.estimate_phase_space(R, v, z_cluster=0.1)
    assert "few_galaxies" in res.flags
    R = rng.uniform(0, 1.5, 80) * MPC_H
    v = rng.normal(0, 600, 80) * KMS
    with pytest.warns(AstroCnnmassWarning, match="z_outside_training"):
        res = estimator.estimate_phase_space(R, v, z_cluster=0.8)
    assert "z_outside_training" in res.flags


@pytest.mark.parametrize("kind", ["ring", "two_peaks", "cold_spike", "velocity_edges"])
def test_implausible_phase_spaces_are_flagged_out_of_distribution(estimator, kind):
    rng = np.random.default_rng(3)
    n = 100
    R = np.abs(rng.normal(0, 0.5, n))
    if kind == "ring":  # nothing at the centre
        R, v = rng.uniform(1.45, 1.6, n), rng.normal(0, 600, n)
    elif kind == "two_peaks":
        v = np.concatenate([rng.normal(-1500, 150, n // 2), rng.normal(1500, 150, n // 2)])
    elif kind == "cold_spike":
        v = rng.normal(0, 40, n)
    else:
        v = rng.choice([-1, 1], n) * rng.uniform(1900, 2200, n)
    with pytest.warns(AstroCnnmassWarning) as record:
        res = estimator.estimate_phase_space(R * MPC_H, v * KMS, z_cluster=0.1)
    assert any("out_of_distribution" in str(w.message) for w in record)
    assert res.out_of_distribution and res.ood_score > 1


def test_galaxies_scattered_at_random_through_the_cylinder_are_flagged(estimator):
    # no cluster: positions uniform on the sky disc, velocities uniform in the window
    rng = np.random.default_rng(8)
    n_draws, n = 100, 200
    phase_spaces = [
        (1.6 * np.sqrt(rng.uniform(0, 1, n)) * MPC_H, rng.uniform(-2200, 2200, n) * KMS)
        for _ in range(n_draws)
    ]
    table = estimator.estimate_phase_spaces(
        phase_space(R=R, v=v, z_cluster=0.1) for R, v in phase_spaces
    )
    flagged = np.asarray(table["ood_score"]) > 1
    # v1 flagged 0.95 of these draws, v2 0.41 (model card, 'Domain and known limits': the mocks
    # of generator 2.0 have flatter cylinder velocities, so a uniform field is less unlike the
    # most massive training clusters); ordinary mocks: ~2 %. The bound still fails if the
    # out-of-domain score stops seeing random fields at all.
    assert flagged.mean() >= 0.25
    assert all(
        ("out_of_distribution" in str(f)) == bad
        for f, bad in zip(table["flags"], flagged, strict=True)
    )


def test_ordinary_cluster_is_not_flagged(estimator):
    rng = np.random.default_rng(4)
    R = np.abs(rng.normal(0, 0.5, 100)) * MPC_H
    v = rng.normal(0, 700, 100) * KMS
    res = estimator.estimate_phase_space(R, v, z_cluster=0.1)
    assert not res.out_of_distribution and res.ood_score < 1


def test_nan_phase_space_is_rejected_or_dropped(estimator):
    rng = np.random.default_rng(5)
    R = np.abs(rng.normal(0, 0.5, 60))
    v = rng.normal(0, 700, 60)
    R[::12] = np.nan
    with pytest.warns(AstroCnnmassWarning, match="dropped 5"):
        res = estimator.estimate_phase_space(R * MPC_H, v * KMS, z_cluster=0.1)
    assert res.n_members == 55


def test_foreign_asdf_file_is_refused(tmp_path):
    import asdf

    path = tmp_path / "foreign.asdf"
    asdf.AsdfFile({"something": np.arange(3)}).write_to(path)
    with pytest.raises(ModelFileError):
        DynamicalMassEstimator.load(path)
    with pytest.raises(InputError, match="prior"):
        DynamicalMassEstimator(prior="uniform")


def test_catalogue_of_three_clusters_equals_three_single_calls(estimator):
    members = load_example_cluster()
    meta = members.meta
    center = SkyCoord(meta["ra_cluster"] * u.deg, meta["dec_cluster"] * u.deg)
    rng = np.random.default_rng(5)
    parts, singles = [], []
    for k in range(3):
        sub = members[rng.random(len(members)) < 0.8]
        singles.append(estimator.estimate(sub, z_cluster=meta["z_cluster"], center=center))
        sub["cluster_id"] = f"c{k}"
        parts.append(sub)
    all_members = Table(np.concatenate([p.as_array() for p in parts]))
    clusters = Table(
        {
            "cluster_id": ["c0", "c1", "c2"],
            "ra": [meta["ra_cluster"]] * 3,
            "dec": [meta["dec_cluster"]] * 3,
            "z": [meta["z_cluster"]] * 3,
        }
    )
    tab = estimator.estimate_many(all_members, clusters=clusters)
    np.testing.assert_allclose(
        tab["mass"].to_value(MSUN_H), [s.mass.to_value(MSUN_H) for s in singles], rtol=1e-10
    )
