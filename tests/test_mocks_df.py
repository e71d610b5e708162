"""Distribution-function members, infall stream and kinematics variants (issue 12)."""

import itertools

import numpy as np
import pytest

from astro_cnnmass.mocks import MockConfig
from astro_cnnmass.mocks.dflibrary import get_library, mixture_weights, sample_df_members
from astro_cnnmass.mocks.validation import host_phase_space_3d
from astro_cnnmass.mocks.variants import GENERATOR_VARIANTS, VARIANT_SEED_OFFSETS
from astro_cnnmass.mocks.velocities import jeans_sigma_r


def _moments(r, vr, vt, edges):
    """σ_r and β = 1 − σ_t²/(2 σ_r²) in radial bins, with the standard errors of σ_r."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        m = (r >= lo) & (r < hi)
        n = m.sum()
        s2r = np.mean(vr[m] ** 2)
        s2t = np.mean(vt[m] ** 2)
        out.append((np.sqrt(lo * hi), np.sqrt(s2r), 1.0 - s2t / (2.0 * s2r), n))
    return out


@pytest.mark.parametrize("twobeta", [0, 1])
def test_galpy_df_sampling_reproduces_jeans(twobeta):
    """10^5 particles of a galpy DF follow the Jeans σ_r(r) and β of their model."""
    pytest.importorskip("galpy")
    if twobeta:
        pytest.importorskip("jax")
    import sys
    import warnings
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import build_df_library as bdl

    warnings.simplefilter("ignore")
    m = {"c": 4.0, "tracer": 0, "f_c": 0.7, "alpha": np.nan,
         "comp": bdl.COMP_BETA if twobeta else bdl.COMP_ISO, "par": twobeta / 2.0}  # fmt: skip
    old = bdl.R_MAX_DF, bdl.R_KEEP
    try:
        bdl.R_MAX_DF, bdl.R_KEEP = 20.0, 1e3  # energies far beyond the tested radii
        p = bdl.sample_model(m, seed=11, n_keep=100_000)
    finally:
        bdl.R_MAX_DF, bdl.R_KEEP = old
    h = {"c200c": 4.0, "c_gal": 2.8, "tracer_profile": 0, "einasto_alpha": np.nan,
         "anisotropy_model": 2, "const_beta": twobeta / 2.0}  # fmt: skip
    lx, sig, _beta = jeans_sigma_r(h)
    for xc, sr, b, n in _moments(p[:, 0], p[:, 1], p[:, 2], np.geomspace(0.05, 1.0, 6)):
        expected = np.interp(np.log(xc), lx, sig)
        tol = 4.0 / np.sqrt(2.0 * n) + 0.02  # 4σ sampling noise + 2 % bin/interpolation
        assert sr == pytest.approx(expected, rel=tol), (xc, sr, expected)
        assert b == pytest.approx(twobeta / 2.0, abs=4.0 * 2.0 / np.sqrt(n) + 0.03), (xc, b)


def _host(**kw):
    h = {"c200c": 4.3, "f_c": 0.8, "tracer_profile": 0, "anisotropy_model": 0,
         "ml_ra_rs": 1.0, "tiret_beta_inf": np.nan, "tiret_rb_rs": np.nan,
         "const_beta": np.nan, "om_ra_rs": np.nan}  # fmt: skip
    h.update(kw)
    return h


def test_library_scales_exactly_between_masses():
    """The same random stream gives the same members in R200c, V200c units at any mass."""
    lo = _host(log_m200c=13.6, v200_kms=560.0, r200c_mpch=0.55)
    hi = _host(log_m200c=15.2, v200_kms=1900.0, r200c_mpch=1.9)
    a = sample_df_members(np.random.default_rng(5), lo, 400, 2.0)
    b = sample_df_members(np.random.default_rng(5), hi, 400, 2.0)
    for xa, xb in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(xa, xb)
    assert a[0].size == 400 and a[0].max() < 2.0


def test_library_members_are_not_duplicated_and_mixture_weights_sum_to_one():
    lib = get_library()
    x, _, v, s = sample_df_members(np.random.default_rng(1), _host(), 3000, 2.3)
    rows = np.unique(np.column_stack([x, np.linalg.norm(v, axis=1)]), axis=0)
    assert rows.shape[0] == x.size and s["df_n_reused"] == 0
    for am, extra in ((0, {}), (1, {"tiret_beta_inf": 0.6, "tiret_rb_rs": 1.3}),
                      (2, {"const_beta": -0.3}), (3, {"om_ra_rs": 0.9})):  # fmt: skip
        _, w, summ = mixture_weights(_host(anisotropy_model=am, **extra), lib)
        assert w.sum() == pytest.approx(1.0) and np.all(w > 0)
        assert summ["df_w_iso"] + summ["df_w_om"] + summ["df_w_beta_pos"] + summ[
            "df_w_beta_neg"] == pytest.approx(1.0)  # fmt: skip


@pytest.fixture(scope="module")
def default_3d():
    return host_phase_space_3d(40, seed=3, config=MockConfig().replace(log_m_range=(14.3, 14.8)))


def _variant_3d(name):
    cfg = MockConfig().replace(log_m_range=(14.3, 14.8), **GENERATOR_VARIANTS[name])
    return host_phase_space_3d(40, seed=3 + VARIANT_SEED_OFFSETS[name], config=cfg)


def _beta(ps, sel):
    return 1.0 - np.mean(ps["vt"][sel] ** 2) / (2.0 * np.mean(ps["vr"][sel] ** 2))


def _orbiting(ps, lo=0.3, hi=1.0):
    return (ps["origin"] == 0) & (ps["x"] > lo) & (ps["x"] < hi)


def test_orbit_variants_change_anisotropy(default_3d):
    b0 = _beta(default_3d, _orbiting(default_3d))
    rad = _variant_3d("radial_orbits")
    tan = _variant_3d("tangential_orbits")
    assert _beta(rad, _orbiting(rad)) > b0 + 0.2
    assert _beta(tan, _orbiting(tan)) < min(b0 - 0.2, -0.15)


def test_gaussian_variant_has_gaussian_radial_velocities(default_3d):
    """DF members have non-Gaussian (flat-topped) v_r; the generator-1.0 variant is Gaussian."""

    def kurt(ps):
        sel = _orbiting(ps, 0.5, 1.0)
        z = ps["vr"][sel] / ps["sigma_ref"][sel]
        return np.mean(z**4) / np.mean(z**2) ** 2 - 3.0

    g = _variant_3d("gaussian_velocities")
    assert abs(kurt(g)) < 0.15
    assert kurt(default_3d) < kurt(g) - 0.15


def test_infall_variants_change_the_infall_velocity(default_3d):
    def mean_vr(ps):
        sel = (ps["origin"] >= 4) & (ps["x"] > 1.5) & (ps["x"] < 3.0)
        return np.mean(ps["vr_tot"][sel])

    v0 = mean_vr(default_3d)
    assert v0 < -0.4  # infalling stream (units of V200, Hubble flow included)
    assert abs(mean_vr(_variant_3d("no_infall")) - 0.2) < 0.15  # Hubble flow 0.1 x only
    assert mean_vr(_variant_3d("strong_infall")) < v0 - 0.1


def test_merger_rich_variant_has_more_mergers(default_3d):
    mr = _variant_3d("merger_rich")
    assert mr["host_merger"].mean() > default_3d["host_merger"].mean() + 0.15
    frac = [np.mean(ps["origin"][ps["origin"] <= 2] == 2) for ps in (mr, default_3d)]
    assert frac[0] > frac[1]


def test_central_targeting_variant_observes_only_the_core_and_thins_its_outskirts():
    from astro_cnnmass.mocks.generator import generate_hosts

    default = generate_hosts(range(30), 5, MockConfig())
    survey = MockConfig().replace(**GENERATOR_VARIANTS["central_targeting"])
    targeted = generate_hosts(range(30), 5, survey)
    c = targeted.clusters
    assert np.all((c["targeting_aperture_mpch"] >= 0.6) & (c["targeting_aperture_mpch"] <= 1.2))
    assert np.all(default.clusters["targeting_gradient"] == 0.0)
    r_t = np.repeat(c["targeting_aperture_mpch"], np.diff(targeted.offsets))
    x = np.asarray(targeted.R) / r_t
    assert x.max() < 1.0
    # completeness 1 - g x inside R_t (g in [0.3, 0.7]): the outer half holds fewer galaxies
    # than in the same annuli of the default, relative to the inner half
    d_r_t = np.repeat(c["targeting_aperture_mpch"], np.diff(default.offsets))
    xd = np.asarray(default.R) / d_r_t
    ratio_t = np.mean(x > 0.5) / np.mean(x < 0.5)
    ratio_d = np.mean((xd > 0.5) & (xd < 1)) / np.mean(xd < 0.5)
    assert ratio_t < 0.85 * ratio_d
    # everything else is the default's: the same hosts, truth and 3D members
    assert np.array_equal(c["log_m200c"], default.clusters["log_m200c"])
    assert np.array_equal(c["n_members_3d"], default.clusters["n_members_3d"])


def test_every_variant_has_a_seed_offset_and_builds():
    for name, over in GENERATOR_VARIANTS.items():
        assert name in VARIANT_SEED_OFFSETS
        MockConfig().replace(**over)
