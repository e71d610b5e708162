"""Tests for astro_cnnmass.observe.spectra: template cross-correlation redshifts.

The observed spectra are synthetic: the built-in template shifted to a known
redshift plus Gaussian noise (``make_galaxy_spectrum``), so the right answer is
known exactly.
"""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from specutils import Spectrum

from astro_cnnmass.exceptions import AstroCnnmassWarning, InputError
from astro_cnnmass.observe.spectra import (
    GALAXY_ABSORPTION_LINES,
    RedshiftFitError,
    galaxy_template,
    make_galaxy_spectrum,
    members_from_spectra,
    redshift_from_spectrum,
)


def test_galaxy_template_has_the_listed_absorption_lines():
    tmpl = galaxy_template()
    wave = tmpl.spectral_axis.to_value(u.AA)
    flux = tmpl.flux.value
    assert wave[0] == pytest.approx(2500, rel=1e-3) and wave[-1] > 10000
    assert np.all(np.isfinite(flux)) and np.all(flux > 0)
    for name in ("Ca II K", "Ca II H", "G band", "Mg b 5184", "Na D2"):
        lam = GALAXY_ABSORPTION_LINES[name][0]
        at_line = np.interp(lam, wave, flux)
        nearby = np.interp([lam - 60, lam + 60], wave, flux).mean()
        assert at_line < 0.95 * nearby, name


@pytest.mark.parametrize(("z_true", "seed"), [(0.0302, 0), (0.1, 1), (0.3, 3), (0.45, 4)])
def test_redshift_recovered_within_error(z_true, seed):
    spec = make_galaxy_spectrum(z_true, snr=15, seed=seed)
    z, z_err = redshift_from_spectrum(spec)
    assert 0 < z_err < 3e-4  # < 90 km/s
    assert abs(z - z_true) < 3 * z_err


def test_redshift_errors_are_calibrated_over_noise_realisations():
    # Tonry & Davis errors: close to the true scatter at high S/N, too small by up
    # to ~2x at S/N ~ 10 (documented in astro_cnnmass.observe.spectra).
    z_true = 0.08
    for snr, max_std in [(40, 1.5), (12, 2.5)]:
        pulls, errs = [], []
        for seed in range(20):
            spec = make_galaxy_spectrum(z_true, snr=snr, seed=100 + seed)
            z, z_err = redshift_from_spectrum(spec)
            pulls.append((z - z_true) / z_err)
            errs.append(z_err)
        pulls = np.array(pulls)
        assert np.mean(np.abs(pulls) < 3) >= 0.85
        assert 0.4 < np.std(pulls) < max_std
        assert np.median(errs) < 2e-4
    # more noise, larger error
    _, z_err_noisy = redshift_from_spectrum(make_galaxy_spectrum(z_true, snr=6, seed=7))
    assert z_err_noisy > np.median(errs)


def test_explicit_template_log_grid_and_details():
    # an SDSS-like log-linear grid, a template with a different velocity dispersion
    wave = 10 ** np.arange(np.log10(3800), np.log10(9200), 1e-4) * u.AA
    spec = make_galaxy_spectrum(0.15, wavelength=wave, snr=20, seed=2)
    template = galaxy_template(velocity_dispersion=150 * u.km / u.s)
    z, z_err, details = redshift_from_spectrum(
        spec, template, z_range=(0.05, 0.3), return_details=True
    )
    assert abs(z - 0.15) < 3 * z_err
    assert details["r"] > 5
    assert 100 < details["fwhm_kms"] < 2000
    assert details["lags"].shape == details["corr"].shape


def test_wavelength_in_nm_and_decreasing_axis_are_accepted():
    spec = make_galaxy_spectrum(0.05, snr=20, seed=1)
    z_ref, _ = redshift_from_spectrum(spec)
    wave_nm = spec.spectral_axis.to(u.nm)[::-1]
    flipped = Spectrum(flux=spec.flux[::-1], spectral_axis=wave_nm)
    z, z_err = redshift_from_spectrum(flipped)
    assert abs(z - 0.05) < 3 * z_err
    assert z == pytest.approx(z_ref, abs=1e-7)


def test_frequency_axis_is_rejected_with_advice():
    spec = make_galaxy_spectrum(0.05, snr=20, seed=5)
    freq = spec.spectral_axis.to(u.GHz, equivalencies=u.spectral())[::-1]
    in_freq = Spectrum(flux=spec.flux[::-1], spectral_axis=freq)
    with pytest.raises(InputError, match=r"wavelength units.*frequency"):
        redshift_from_spectrum(in_freq)


def test_pixel_axis_is_rejected():
    no_axis = Spectrum(flux=np.ones(500) * u.Jy)
    with pytest.raises(ValueError, match="wavelength calibration"):
        redshift_from_spectrum(no_axis)


def test_two_dimensional_flux_is_rejected():
    wave = np.linspace(4000, 8000, 200) * u.AA
    spec = Spectrum(flux=np.ones((3, 200)) * u.Jy, spectral_axis=wave)
    with pytest.raises(InputError, match="1-D"):
        redshift_from_spectrum(spec)


def test_pure_noise_has_no_significant_peak():
    rng = np.random.default_rng(0)
    wave = np.arange(3800.0, 9200.0, 1.5) * u.AA
    noise = Spectrum(flux=(1 + 0.05 * rng.normal(size=wave.size)) * u.Jy, spectral_axis=wave)
    with pytest.raises(RedshiftFitError):
        redshift_from_spectrum(noise)


def test_members_from_spectra_builds_member_table():
    z_true = np.array([0.030, 0.0315, 0.0290])
    spectra = [make_galaxy_spectrum(z, snr=15, seed=i) for i, z in enumerate(z_true)]
    rng = np.random.default_rng(0)
    noise = Spectrum(
        flux=(1 + 0.05 * rng.normal(size=3600)) * u.Jy,
        spectral_axis=np.arange(3800.0, 9200.0, 1.5) * u.AA,
    )
    coords = SkyCoord(
        [247.10, 247.20, 247.15, 247.16] * u.deg, [39.50, 39.55, 39.60, 39.52] * u.deg
    )
    with pytest.warns(AstroCnnmassWarning, match="no redshift for 1 of 4"):
        members = members_from_spectra([*spectra, noise], coords)
    assert members.colnames == ["ra", "dec", "z", "z_err", "xcorr_r"]
    assert members["ra"].unit == u.deg
    assert np.all(np.abs(members["z"][:3] - z_true) < 3 * members["z_err"][:3])
    assert np.isnan(members["z"][3]) and np.isnan(members["z_err"][3])


def test_members_from_spectra_length_mismatch():
    spec = make_galaxy_spectrum(0.03, snr=15, seed=0)
    coords = SkyCoord([1, 2] * u.deg, [3, 4] * u.deg)
    with pytest.raises(InputError, match="2 positions but 1 spectra"):
        members_from_spectra([spec], coords)


def test_members_from_spectra_rejects_frequency_axes():
    spec = make_galaxy_spectrum(0.03, snr=15, seed=0)
    freq = spec.spectral_axis.to(u.Hz, equivalencies=u.spectral())[::-1]
    bad = Spectrum(flux=spec.flux[::-1], spectral_axis=freq)
    with pytest.raises(InputError, match="wavelength"):
        members_from_spectra([bad], SkyCoord(1 * u.deg, 2 * u.deg))
