"""Slow checks (``python -m pytest -m slow``): the bundled model on a few thousand fresh mocks."""

import numpy as np
import pytest

from astro_cnnmass import DynamicalMassEstimator
from astro_cnnmass.batch.streaming import estimate_catalog
from astro_cnnmass.mocks import generate_catalog


@pytest.mark.slow
def test_bundled_model_beats_m_sigma_on_fresh_mocks():
    cat = generate_catalog(1000, seed=31415, lines_of_sight=3, progress=False)
    est = DynamicalMassEstimator.load()
    out = estimate_catalog(est, cat, as_table=False)
    log_m = np.asarray(cat.clusters["log_m200c"])
    sel = (log_m > 14) & (log_m < 15) & np.isfinite(out["log_mass"])
    eps_cnn = out["log_mass"][sel] - log_m[sel]
    eps_ms = out["log_m_sigma"][sel] - log_m[sel]
    assert sel.sum() > 1000
    assert np.std(eps_cnn) < 0.2
    assert abs(np.mean(eps_cnn)) < 0.1
    assert np.std(eps_cnn) < 0.65 * np.std(eps_ms)
    z = (out["log_mass"][sel] - log_m[sel]) / out["log_mass_std"][sel]
    assert 0.6 < np.mean(np.abs(z) < 1) < 0.8
