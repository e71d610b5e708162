"""Tests of astro_cnnmass.uncertainty.summary_ood: phase-space summaries and their OOD model."""

import numpy as np
import pytest

from astro_cnnmass.features.config import pack
from astro_cnnmass.uncertainty.summary_ood import (
    SUMMARY_NAMES,
    fit_summary_ood_model,
    phase_space_summaries,
    summary_distances,
)

APERTURE, V_CUT = 1.6, 2200.0


def summaries_of(Rs, vs):
    R, v, offsets = pack(Rs, vs)
    return phase_space_summaries(R, v, offsets, APERTURE, V_CUT)


def cluster_like(rng, log_mass, n):
    """A toy cluster: Gaussian members (sigma grows with mass) plus 15 % uniform interlopers."""
    n_int = rng.binomial(n, 0.15)
    sigma = 700.0 * 10 ** ((log_mass - 14.5) / 3)
    v = np.concatenate([rng.normal(0, sigma, n - n_int), rng.uniform(-V_CUT, V_CUT, n_int)])
    R = np.concatenate(
        [np.abs(rng.normal(0, 0.5, n - n_int)), APERTURE * np.sqrt(rng.uniform(0, 1, n_int))]
    )
    inside = (np.abs(v) < V_CUT) & (R < APERTURE)
    return R[inside], v[inside]


def population(rng, n_clusters):
    log_mass = rng.uniform(14.0, 15.0, n_clusters)
    sizes = np.round(10 ** rng.uniform(np.log10(20), np.log10(300), n_clusters)).astype(int)
    Rs, vs = zip(
        *(cluster_like(rng, m, n) for m, n in zip(log_mass, sizes, strict=True)), strict=True
    )
    return log_mass, summaries_of(Rs, vs)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    return fit_summary_ood_model(*population(rng, 3000), *population(rng, 1000), k=200)


def test_summaries_of_known_distributions():
    rng = np.random.default_rng(1)
    n = 20000
    gaussian_v = rng.normal(0, 500, n)
    uniform_v = rng.uniform(-V_CUT, V_CUT, n)
    disc_R = APERTURE * np.sqrt(rng.uniform(0, 1, n))  # uniform on the sky
    line_R = rng.uniform(0, APERTURE, n)  # uniform in R
    s = summaries_of([disc_R, line_R], [gaussian_v, uniform_v])
    assert s["n"].tolist() == [n, n]
    # Gaussian: no galaxy beyond 3.3 sigma to speak of, excess kurtosis 0
    assert s["edge_fraction"][0] < 0.01 and abs(s["velocity_kurtosis"][0]) < 0.1
    # uniform velocities: a quarter at the edges, kurtosis -1.2
    assert s["edge_fraction"][1] == pytest.approx(0.25, abs=0.01)
    assert s["velocity_kurtosis"][1] == pytest.approx(-1.2, abs=0.05)
    # a quarter of the aperture holds 1/16 of a uniform disc and 1/4 of a uniform line
    assert s["inner_fraction"][0] == pytest.approx(1 / 16, abs=0.01)
    assert s["inner_fraction"][1] == pytest.approx(0.25, abs=0.01)


def test_summaries_are_per_cluster_and_undefined_for_tiny_or_cold_clusters():
    rng = np.random.default_rng(2)
    a = (rng.uniform(0, 1.6, 50), rng.normal(0, 600, 50))
    b = (rng.uniform(0, 1.6, 3), rng.normal(0, 600, 3))  # too few for a kurtosis
    c = (rng.uniform(0, 1.6, 10), np.full(10, 100.0))  # no velocity spread
    both = summaries_of([a[0], b[0], c[0]], [a[1], b[1], c[1]])
    alone = summaries_of([a[0]], [a[1]])
    for name in SUMMARY_NAMES:
        assert both[name][0] == pytest.approx(alone[name][0])
        assert np.isnan(both[name][1]) and np.isnan(both[name][2])


def test_validation_clusters_pass_and_flat_or_empty_phase_spaces_are_flagged(model):
    rng = np.random.default_rng(3)
    log_mass, held_out = population(rng, 500)
    ratio = summary_distances(model, log_mass, held_out) / model["threshold"]
    assert np.mean(ratio > 1) < 0.05  # ~1 % expected
    # same masses and richnesses, but velocities uniform over the window
    n = 150
    flat = summaries_of(
        [np.abs(rng.normal(0, 0.5, n)) for _ in range(50)],
        [rng.uniform(-V_CUT, V_CUT, n) for _ in range(50)],
    )
    assert np.mean(summary_distances(model, np.full(50, 14.5), flat) > model["threshold"]) > 0.9
    # a Gaussian velocity distribution but no galaxy near the centre
    ring = summaries_of(
        [rng.uniform(1.2, 1.6, n) for _ in range(50)], [rng.normal(0, 700, n) for _ in range(50)]
    )
    assert np.mean(summary_distances(model, np.full(50, 14.5), ring) > model["threshold"]) > 0.9


def test_model_is_plain_data_and_gives_nan_for_undefined_input(model):
    import json

    json.dumps(model)  # storable in a model bundle
    assert model["statistics"] == list(SUMMARY_NAMES)
    assert model["n_fit"] == 3000 and model["n_threshold"] == 1000
    n_nodes = model["log_mass_axis"][2] * model["log_n_axis"][2]
    assert np.asarray(model["precision"]).shape == (n_nodes, 3, 3)
    s = summaries_of([np.linspace(0.1, 1.5, 40)] * 2, [np.linspace(-900, 900, 40)] * 2)
    d = summary_distances(model, np.array([14.5, np.nan]), s)
    assert np.isfinite(d[0]) and np.isnan(d[1])


def test_fit_needs_enough_mocks():
    rng = np.random.default_rng(4)
    log_mass, s = population(rng, 30)
    with pytest.raises(ValueError, match="at least k=50"):
        fit_summary_ood_model(log_mass, s, log_mass, s, k=50)
