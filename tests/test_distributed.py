"""Tests of astro_cnnmass.batch.distributed on a local two-worker dask.distributed cluster."""

import sys

import numpy as np
import pytest
import torch
from test_streaming import packed_clusters, tiny_bundle

from astro_cnnmass.batch.streaming import estimate_catalog
from astro_cnnmass.estimator import DynamicalMassEstimator

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
import dask.bag as db  # noqa: E402

torch.set_num_threads(1)

FLOAT_KEYS = ("log_mass", "log_mass_std", "sigma_v", "m_sigma", "m_sigma_evrard", "z_cluster")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def estimator():
    return DynamicalMassEstimator(tiny_bundle(), device="cpu")


@pytest.fixture(scope="module")
def catalog():
    return packed_clusters(240, seed=11)


def _records(R, v, offsets, z, ids):
    return [
        (ids[i], R[offsets[i] : offsets[i + 1]], v[offsets[i] : offsets[i + 1]], z[i])
        for i in range(offsets.size - 1)
    ]


def _assert_same(tab, ref):
    for key in FLOAT_KEYS:
        np.testing.assert_array_equal(np.asarray(tab[key]), np.asarray(ref[key]), err_msg=key)
    np.testing.assert_array_equal(tab["n_members"], ref["n_members"])
    np.testing.assert_array_equal(tab["ok"], ref["ok"])
    assert list(tab["flags"]) == list(ref["flags"])


def test_bag_equals_serial(client, estimator, catalog):
    from astro_cnnmass.batch.distributed import estimate_many_dask

    assert distributed.default_client() is client  # the computation runs on the two workers
    R, v, offsets, z = catalog
    ids = [f"cl{i:03d}" for i in range(240)]
    serial = estimate_catalog(estimator, catalog, chunk_size=240)
    bag = db.from_sequence(_records(R, v, offsets, z, ids), npartitions=2)
    tab = estimate_many_dask(estimator, bag)
    assert list(tab["cluster_id"]) == ids
    _assert_same(tab, serial)


def test_bag_of_dicts_and_precut_cylinder(client, estimator, catalog):
    from astro_cnnmass.batch.distributed import estimate_many_dask
    from astro_cnnmass.batch.streaming import iter_chunks

    R, v, offsets, z = catalog
    (cut,) = iter_chunks(R, v, offsets, 240, cylinder=estimator.cylinder)
    serial = estimate_catalog(
        estimator, (cut.R, cut.v, cut.offsets, z), chunk_size=120, cylinder_already_applied=True
    )
    recs = [
        {"cluster_id": i, "R": r, "v": w, "z": zz}
        for i, r, w, zz in _records(cut.R, cut.v, cut.offsets, z, list(range(240)))
    ]
    tab = estimate_many_dask(
        estimator, db.from_sequence(recs, npartitions=2), cylinder_already_applied=True
    )
    _assert_same(tab, serial)
    lazy = estimate_many_dask(
        estimator,
        db.from_sequence(recs[:3], npartitions=1),
        cylinder_already_applied=True,
        compute=False,
    )
    assert isinstance(lazy, db.Bag)
    assert [r["cluster_id"] for r in lazy.compute()] == [0, 1, 2]


def test_dataframe_equals_serial(client, estimator, catalog):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    from astro_cnnmass.batch.distributed import estimate_many_dask

    R, v, offsets, z = catalog
    counts = np.diff(offsets)
    keep = counts > 0  # a cluster without galaxies has no row in a galaxy table
    serial = estimate_catalog(estimator, catalog, chunk_size=240)[keep]
    frame = pd.DataFrame(
        {"cluster_id": np.repeat(np.arange(240), counts), "R": R, "v": v, "z": np.repeat(z, counts)}
    )
    ddf = dd.from_pandas(frame.set_index("cluster_id"), npartitions=2, sort=True)
    assert ddf.known_divisions
    tab = estimate_many_dask(estimator, ddf)
    np.testing.assert_array_equal(tab["cluster_id"], np.arange(240)[keep])
    _assert_same(tab, serial)
    # a plain column: re-indexed by the cluster (a shuffle), same numbers to rounding
    tab2 = estimate_many_dask(estimator, dd.from_pandas(frame, npartitions=3))
    order = np.argsort(np.asarray(tab2["cluster_id"]))
    for key in ("log_mass", "sigma_v", "m_sigma_evrard"):
        np.testing.assert_allclose(
            np.asarray(tab2[key])[order], np.asarray(serial[key]), rtol=1e-6, err_msg=key
        )


def test_generate_catalog_dask_equals_serial(client, tmp_path):
    from astro_cnnmass.batch.distributed import generate_catalog_dask
    from astro_cnnmass.mocks import generate_catalog

    serial = generate_catalog(4, seed=7, lines_of_sight=1, progress=False)
    par = generate_catalog_dask(4, seed=7, lines_of_sight=1, client=client, n_chunks=3)
    assert par.meta == serial.meta
    np.testing.assert_array_equal(par.offsets, serial.offsets)
    for key, col in serial.galaxy_columns.items():
        np.testing.assert_array_equal(par.galaxy_columns[key], col, err_msg=key)
    for key, col in serial.clusters.items():
        np.testing.assert_array_equal(par.clusters[key], col, err_msg=key)
    on_disk = generate_catalog_dask(
        4, seed=7, lines_of_sight=1, client=client, n_chunks=2, out=tmp_path / "m.asdf"
    )
    with on_disk:
        np.testing.assert_array_equal(on_disk.R, serial.R)


def test_missing_dask_gives_install_hint(monkeypatch):
    from astro_cnnmass.batch import distributed as mod

    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"pip install astro_cnnmass\[dask\]"):
        mod.estimate_many_dask(None, None)
    with pytest.raises(ImportError, match=r"pip install astro_cnnmass\[dask\]"):
        mod.generate_catalog_dask(1, seed=0)


def test_rejects_other_collections(estimator):
    from astro_cnnmass.batch.distributed import estimate_many_dask
    from astro_cnnmass.exceptions import InputError

    pytest.importorskip("dask.dataframe")
    with pytest.raises(InputError, match="Bag or DataFrame"):
        estimate_many_dask(estimator, [1, 2, 3])
