"""Configuration validation of the mock generator: bad input fails before any work."""

import numpy as np
import pytest

from astro_cnnmass.exceptions import InputError
from astro_cnnmass.mocks import MockCatalog, MockConfig, MockConfigError, generate_catalog
from astro_cnnmass.mocks.halos import convert_mass
from astro_cnnmass.mocks.tables import get_tables


def test_defaults_and_round_trip():
    cfg = MockConfig()
    assert cfg.z_range == (0.01, 0.3)
    assert cfg.log_m_range == (13.5, 15.5)
    assert MockConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(p_centrals=0.0).p_centrals == 0.0
    assert MockConfig.ho2019().z_range == (0.117, 0.117)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"not_a_parameter": 1}, "unknown MockConfig parameter"),
        ({"log_m_range": (-14.0, 15.0)}, "log_m_range"),
        ({"z_range": (0.0, 0.9)}, "z_range"),
        ({"f_c": (1.1, 0.45)}, "empty range"),
        ({"anisotropy_models": ("ml", "osipkov")}, "anisotropy_models"),
        ({"anisotropy_models": ()}, "anisotropy_models"),
        ({"sampling_fraction": (0.0, 1.0)}, "sampling_fraction"),
        ({"storage_aperture_mpch": -1.0}, "storage_aperture_mpch"),
        ({"velocity_error_kms": (float("nan"), 30.0)}, "finite"),
        ({"targeting_gradient": (0.0, 1.5)}, "targeting_gradient"),
        ({"targeting_aperture_mpch": (0.0, 1.0)}, "targeting_aperture_mpch"),
    ],
)
def test_bad_config_raises(changes, match):
    with pytest.raises(MockConfigError, match=match):
        MockConfig.from_dict(changes)
    assert issubclass(MockConfigError, InputError)


def test_generate_catalog_rejects_bad_arguments(tmp_path):
    out = tmp_path / "x.asdf"
    with pytest.raises(MockConfigError, match="unknown"):
        generate_catalog(2, seed=1, config={"bogus": 1}, out=out, progress=False)
    with pytest.raises(MockConfigError, match="prior"):
        generate_catalog(2, seed=1, prior="uniform", out=out, progress=False)
    with pytest.raises(ValueError, match="n_hosts"):
        generate_catalog(0, seed=1, out=out, progress=False)
    with pytest.raises(ValueError, match="lines_of_sight"):
        generate_catalog(2, seed=1, lines_of_sight=0, out=out, progress=False)
    with pytest.raises(ValueError, match="seed"):
        generate_catalog(2, seed=-3, out=out, progress=False)
    with pytest.raises(TypeError, match="seed"):
        generate_catalog(2, seed=1.5, out=out, progress=False)
    assert not out.exists()


def test_mass_function_and_conversions_match_physics_note():
    t = get_tables("multidark-planck")
    # physics note §1.3: N(>1e14) ≈ 17k and N(>1e15) ≈ 53 per (Gpc/h)^3 at z = 0.117
    n14 = t.number_density(0.117, 14.0, 16.0) * 1e9
    n15 = t.number_density(0.117, 15.0, 16.0) * 1e9
    assert 15e3 < n14 < 19e3
    assert 45 < n15 < 62
    # §1.5: M200m/M200c = 1.35 and Mvir/M200c = 1.21 at 1e14, c = 4.32, z = 0.117
    lm, _ = convert_mass(14.0, 4.32, 0.117, "200m", t)
    lv, _ = convert_mass(14.0, 4.32, 0.117, "vir", t)
    assert 10 ** (lm - 14) == pytest.approx(1.35, abs=0.02)
    assert 10 ** (lv - 14) == pytest.approx(1.21, abs=0.02)
    # §1.5: V200 = 769 km/s at 1e14, z = 0.117
    assert t.v200(14.0, 0.117) == pytest.approx(769, rel=0.01)
    # Tinker08 prior: sampled masses follow the HMF (steeply falling)
    lms = t.sample_masses(np.random.default_rng(0), 20000, 0.117, 13.5, 15.5)
    assert np.mean(lms < 14.0) > 0.7


def test_mocks_command_presets_give_the_training_set_and_the_variants(tmp_path):
    from astro_cnnmass.cli import main
    from astro_cnnmass.mocks.variants import (
        GENERATOR_VARIANTS,
        PRESETS,
        TRAINING_OVERRIDES,
        preset_config,
    )

    assert preset_config("training") == MockConfig().replace(**TRAINING_OVERRIDES)
    assert set(GENERATOR_VARIANTS) <= set(PRESETS)
    with pytest.raises(MockConfigError, match="unknown preset"):
        preset_config("deepest_survey")
    out = tmp_path / "core.asdf"
    argv = ["mocks", "--n-hosts", "3", "--seed", "2", "--out", str(out), "--no-progress"]
    assert main([*argv, "--preset", "central_targeting"]) == 0
    cat = MockCatalog.read(out)
    r_t = np.asarray(cat.clusters["targeting_aperture_mpch"])
    assert np.all((r_t >= 0.6) & (r_t <= 1.2))
    assert np.all(np.asarray(cat.R) < np.repeat(r_t, np.diff(cat.offsets)))
    cat.close()
