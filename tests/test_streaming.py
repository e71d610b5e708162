"""Tests of astro_cnnmass.batch.streaming: chunked, memory-bounded batch inference."""

import tracemalloc

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.table import QTable

from astro_cnnmass.batch.streaming import (
    chunk_bounds,
    estimate_catalog,
    iter_chunks,
    packed_from_table,
)
from astro_cnnmass.classical import MSUN_H, evrard_mass
from astro_cnnmass.estimator import DynamicalMassEstimator, _log_evrard_mass
from astro_cnnmass.exceptions import InputError
from astro_cnnmass.model.bundle import untrained_bundle
from astro_cnnmass.observe.phase_space import MPC_H, cylinder_mask

torch.set_num_threads(1)

FLOAT_KEYS = ("log_mass", "log_mass_std", "sigma_v", "log_m_sigma", "log_m_evrard")


def tiny_bundle(seed=0):
    """An untrained CNN_2D bundle (the architecture of the bundled model, random weights)."""
    return untrained_bundle(
        seed=seed, log_m_range=(13.5, 15.3), z_range=(0.05, 0.15), scatter_dex=0.13
    )


def packed_clusters(n=400, mean=50, seed=0, dtype=np.float32):
    """Poisson(mean) galaxies per cluster, some outside the cylinder, a few degenerate clusters."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean, n)
    counts[:5] = [0, 1, 2, 3, 300]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    sigma = np.repeat(rng.uniform(300.0, 1200.0, n), counts)
    R = rng.uniform(0.0, 2.0, offsets[-1]).astype(dtype)  # some beyond the 1.6 Mpc/h aperture
    v = rng.normal(0.0, sigma).astype(dtype)  # some beyond |v| = 2200 km/s
    v[offsets[6] : offsets[7]] = 100.0  # zero dispersion: KDE undefined
    z = rng.uniform(0.03, 0.17, n)
    return R, v, offsets, z


@pytest.fixture(scope="module")
def estimator():
    return DynamicalMassEstimator(tiny_bundle(), device="cpu")


def _assert_same(a, b):
    for key in (*FLOAT_KEYS, "n", "z"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert a["flags"] == b["flags"]


def test_chunk_bounds_are_balanced():
    assert chunk_bounds(10, 4).tolist() == [0, 3, 7, 10]
    assert chunk_bounds(8, 8).tolist() == [0, 8]
    assert chunk_bounds(0, 5).tolist() == [0, 0]
    sizes = np.diff(chunk_bounds(1001, 100))
    assert sizes.max() <= 100 and sizes.min() >= 90 and sizes.sum() == 1001
    with pytest.raises(InputError, match="chunk_size"):
        chunk_bounds(10, 0)


def test_iter_chunks_applies_the_cylinder_per_chunk():
    R, v, offsets, z = packed_clusters(60)
    chunks = list(iter_chunks(R, v, offsets, 25, z=z, cylinder=DynamicalMassEstimator().cylinder))
    assert [(c.start, c.stop) for c in chunks] == [(0, 20), (20, 40), (40, 60)]
    inside = cylinder_mask(R.astype(float), v.astype(float), 1.6, 2200.0)
    for c in chunks:
        for i in range(c.n_clusters):
            s = slice(offsets[c.start + i], offsets[c.start + i + 1])
            got = slice(c.offsets[i], c.offsets[i + 1])
            np.testing.assert_array_equal(c.R[got], R[s][inside[s]].astype(float))
            np.testing.assert_array_equal(c.v[got], v[s][inside[s]].astype(float))
        np.testing.assert_array_equal(c.z, z[c.start : c.stop])
        assert c.R.dtype == np.float64


@pytest.mark.parametrize("chunk_size", [100, 150, 250])
def test_chunked_equals_unchunked(estimator, chunk_size):
    R, v, offsets, z = packed_clusters(400)
    whole = estimate_catalog(estimator, (R, v, offsets, z), chunk_size=400, as_table=False)
    chunked = estimate_catalog(estimator, (R, v, offsets, z), chunk_size=chunk_size, as_table=False)
    _assert_same(chunked, whole)
    # and both equal one predict_packed call on the cylinder-cut catalogue
    (c,) = iter_chunks(R, v, offsets, 400, cylinder=estimator.cylinder)
    ref = estimator.predict_packed(c.R, c.v, c.offsets, z)
    for key in (*FLOAT_KEYS, "n"):
        np.testing.assert_array_equal(whole[key], ref[key], err_msg=key)
    assert whole["flags"] == ref["flags"]
    assert np.isfinite(whole["log_mass"][7:]).all()
    assert whole["flags"][0] == ["too_few_galaxies"] and "kde_undefined" in whole["flags"][6]


def test_predict_packed_runs_chunk_by_chunk_with_the_same_numbers(estimator):
    R, v, offsets, z = packed_clusters(400)
    whole = estimator.predict_packed(R, v, offsets, z, chunk_size=400, apply_cylinder=True)
    chunked = estimator.predict_packed(
        R, v, offsets, z, chunk_size=96, apply_cylinder=True, keep_images=True
    )
    for key in (*FLOAT_KEYS, "n", "ood_score"):
        np.testing.assert_array_equal(chunked[key], whole[key], err_msg=key)
    assert chunked["flags"] == whole["flags"]
    assert chunked["images"].shape == (400, 48, 48)


@pytest.mark.parametrize("model", ["tiny", "bundled"])
def test_chunks_on_parallel_threads_give_the_same_numbers(model):
    est = (
        DynamicalMassEstimator(tiny_bundle(), device="cpu")
        if model == "tiny"
        else DynamicalMassEstimator.load(device="cpu")
    )
    R, v, offsets, z = packed_clusters(300)
    results = {}
    for workers in (1, 2, 3):
        est.host_workers = workers
        threads_before = torch.get_num_threads()
        packed = est.predict_packed(R, v, offsets, z, chunk_size=64, apply_cylinder=True)
        catalog = estimate_catalog(est, (R, v, offsets, z), chunk_size=64, as_table=False)
        assert torch.get_num_threads() == threads_before  # restored after the threads
        results[workers] = (packed, catalog)
    for workers in (2, 3):
        for got, ref in zip(results[workers], results[1]):
            for key in (*FLOAT_KEYS, "n", "ood_score"):
                np.testing.assert_array_equal(got[key], ref[key], err_msg=f"{workers} {key}")
            assert got["flags"] == ref["flags"]


def test_map_in_threads_keeps_the_order_and_raises():
    from astro_cnnmass.batch.threads import map_in_threads

    assert list(map_in_threads(lambda x: x * x, range(10), 3)) == [x * x for x in range(10)]

    def boom(x):
        if x == 4:
            raise ValueError("chunk 4")
        return x

    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="chunk 4"):
        list(map_in_threads(boom, range(8), 2))
    assert torch.get_num_threads() == before


def test_chunked_equals_unchunked_without_network():
    est = DynamicalMassEstimator()
    R, v, offsets, z = packed_clusters(300, seed=3)
    whole = estimate_catalog(est, (R, v, offsets, z), chunk_size=300, as_table=False)
    _assert_same(estimate_catalog(est, (R, v, offsets, z), chunk_size=7, as_table=False), whole)
    np.testing.assert_array_equal(whole["log_mass"][4:], whole["log_m_evrard"][4:])


def test_table_output(estimator):
    R, v, offsets, z = packed_clusters(50, seed=1)
    tab = estimate_catalog(estimator, (R, v, offsets, z), chunk_size=20)
    raw = estimate_catalog(estimator, (R, v, offsets, z), chunk_size=20, as_table=False)
    assert isinstance(tab, QTable) and len(tab) == 50
    assert tab["mass"].unit == MSUN_H and tab["sigma_v"].unit == u.km / u.s
    np.testing.assert_array_equal(tab["log_mass"], raw["log_mass"])
    np.testing.assert_array_equal(tab["mass"].to_value(MSUN_H), 10 ** raw["log_mass"])
    ok = tab["ok"]
    assert not ok[:3].any() and ok[10:].all()
    assert (tab["mass_lo"][ok] < tab["mass"][ok]).all()
    assert (tab["mass"][ok] < tab["mass_hi"][ok]).all()
    assert tab["flags"][0].startswith("too_few_galaxies")
    assert tab.meta["method"] == "cnn2d"


def test_table_input_unsorted_with_units(estimator):
    R, v, offsets, z = packed_clusters(40, seed=2, dtype=np.float64)
    cid = np.repeat(np.arange(40) * 10 + 5, np.diff(offsets))
    zz = np.repeat(z, np.diff(offsets))
    perm = np.random.default_rng(0).permutation(R.size)
    # clusters interleaved; the galaxies of each cluster must keep their relative order
    table = QTable(
        {
            "cluster_id": cid[perm],
            "R": R[perm] * MPC_H,
            "v": (v[perm] * u.km / u.s).to(u.m / u.s),
            "z": zz[perm],
        }
    )
    R2, v2, off2, z2, ids = packed_from_table(table)
    assert len(ids) == 39  # cluster 0 has no galaxy, so no row
    first = [np.flatnonzero(cid[perm] == i)[0] for i in ids]
    assert first == sorted(first)  # order of first appearance
    for k, i in enumerate(ids):
        s = slice(off2[k], off2[k + 1])
        sel = cid[perm] == i
        np.testing.assert_array_equal(R2[s], R[perm][sel])
        np.testing.assert_allclose(v2[s], v[perm][sel], rtol=1e-15)
        assert z2[k] == zz[perm][sel][0]
    res = estimate_catalog(estimator, (R2, v2, off2, z2), as_table=False)
    assert res["n"].size == 39
    with pytest.raises(InputError, match="'w'"):
        packed_from_table(table, v_column="w")


def test_mock_catalog_memory_mapped(tmp_path, estimator):
    from astro_cnnmass.mocks import MockCatalog

    R, v, offsets, z = packed_clusters(120, seed=4)
    n = offsets.size - 1
    ng = int(offsets[-1])
    cat = MockCatalog(
        offsets,
        {"R": R, "v": v, "is_member": np.ones(ng, bool), "log_mstar": np.zeros(ng, np.float32)},
        {
            "host_id": np.arange(n) // 3,
            "los_id": np.arange(n) % 3,
            "log_m200c": np.full(n, 14.5),
            "z": z,
            "sigma_true_kms": np.full(n, 700.0),
            "n_members_3d": np.full(n, 50),
        },
    )
    path = cat.write(tmp_path / "mocks.asdf")
    ref = estimate_catalog(estimator, (R, v, offsets, z), chunk_size=40, as_table=False)
    with MockCatalog.read(path) as lazy:
        tab = estimate_catalog(estimator, lazy, chunk_size=40)
    np.testing.assert_array_equal(tab["log_mass"], ref["log_mass"])
    np.testing.assert_array_equal(tab["host_id"], np.arange(n) // 3)
    np.testing.assert_array_equal(tab["los_id"], np.arange(n) % 3)


def test_streaming_memory_is_bounded_by_the_chunk(tmp_path, estimator):
    """A catalogue many chunks long, memory-mapped from disk: the peak follows the chunk size."""
    R, v, offsets, z = packed_clusters(1200, seed=5)
    arrays = {}
    for name, arr in (("R", R), ("v", v)):
        mm = np.lib.format.open_memmap(
            tmp_path / f"{name}.npy", mode="w+", dtype=arr.dtype, shape=arr.shape
        )
        mm[:] = arr
        mm.flush()
        del mm
        arrays[name] = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    cat = (arrays["R"], arrays["v"], offsets, z)
    estimate_catalog(estimator, cat, chunk_size=50, as_table=False)  # warm-up (torch, caches)

    def peak(chunk_size):
        tracemalloc.start()
        try:
            res = estimate_catalog(estimator, cat, chunk_size=chunk_size, as_table=False)
            return tracemalloc.get_traced_memory()[1], res
        finally:
            tracemalloc.stop()

    small, res_small = peak(100)
    big, res_big = peak(1200)
    _assert_same(res_small, res_big)
    assert small < big / 4
    # 100 clusters: ~100 images of 48 x 48 float64 (1.8 MB) and their working arrays
    assert small < 30e6


def test_bad_inputs(estimator):
    R, v, offsets, z = packed_clusters(10)
    with pytest.raises(InputError, match="shape"):
        estimate_catalog(estimator, (R, v, offsets, z[:3]))
    with pytest.raises(InputError, match="chunk_size"):
        estimate_catalog(estimator, (R, v, offsets, z), chunk_size=0)
    with pytest.raises(InputError, match="MockCatalog or a tuple"):
        estimate_catalog(estimator, {"R": R})
    with pytest.raises(InputError, match="offsets"):
        estimate_catalog(estimator, (R, v, offsets[::-1], z))
    with pytest.raises(InputError, match="redshifts"):
        estimate_catalog(estimator, (R, v, offsets))


def test_vectorised_evrard_matches_scalar_relation():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(150.0, 1500.0, 200)
    sigma[::17] = np.nan
    z = rng.uniform(0.0, 0.5, 200)
    got = _log_evrard_mass(sigma, z)
    ref = np.array(
        [
            np.log10(evrard_mass(s * u.km / u.s, zz).to_value(MSUN_H)) if np.isfinite(s) else np.nan
            for s, zz in zip(sigma, z)
        ]
    )
    np.testing.assert_allclose(got, ref, rtol=0, atol=4e-15)
    assert np.array_equal(np.isnan(got), np.isnan(sigma))
