"""MockCatalog: ASDF round trip, lazy reading, schema, subsets, atomic writing."""

import asdf
import numpy as np
import pytest

from astro_cnnmass.mocks import MockCatalog, generate_catalog
from astro_cnnmass.mocks import generator as gen_module
from astro_cnnmass.mocks.catalog import CatalogFileError


@pytest.fixture(scope="module")
def small():
    return generate_catalog(8, seed=7, lines_of_sight=2, progress=False)


def _assert_equal(a: MockCatalog, b: MockCatalog):
    assert np.array_equal(a.offsets, b.offsets)
    for k in ("R", "v", "is_member", "log_mstar", "origin"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert set(a.clusters) == set(b.clusters)
    for k in a.clusters:
        assert np.array_equal(a.clusters[k], b.clusters[k], equal_nan=True), k


def test_round_trip_lazy(small, tmp_path):
    path = small.write(tmp_path / "cat.asdf")
    with MockCatalog.read(path) as cat:
        assert "lazy" in repr(cat)
        _assert_equal(small, cat)
        assert cat.meta["storage_cylinder"] == {"aperture_mpch": 2.5, "v_cut_kms": 4000.0}
        assert cat.meta["prior"] == "flat" and cat.meta["cosmology"]["name"] == "multidark-planck"
        assert cat.R.dtype == np.float32 and cat.offsets.dtype == np.int64
        R, _, m = cat.galaxies(3)
        assert R.size == cat.n_gal[3] and m.dtype == bool
    eager = MockCatalog.read(path, lazy=False)
    _assert_equal(small, eager)
    with asdf.open(path) as af:  # the tagged object comes back through the converter
        assert isinstance(af["catalog"], MockCatalog)


def test_generate_to_file_is_chunked_and_identical(tmp_path):
    out = tmp_path / "gen.asdf"
    lazy = generate_catalog(8, seed=7, lines_of_sight=2, out=out, progress=False, chunk_size=3)
    mem = generate_catalog(8, seed=7, lines_of_sight=2, progress=False)
    _assert_equal(lazy, mem)
    lazy.close()
    assert [p.name for p in tmp_path.iterdir()] == ["gen.asdf"]  # no temporary files left


def test_select_concatenate_table(small):
    sub = small.select([5, 1])
    assert sub.n_clusters == 2
    _, v5, _ = small.galaxies(5)
    assert np.array_equal(sub.galaxies(0)[1], v5)
    assert sub.clusters["host_id"].tolist() == small.clusters["host_id"][[5, 1]].tolist()
    mask = small.clusters["los_id"] == 0
    assert small.select(mask).n_clusters == 8
    both = MockCatalog.concatenate([small, small])
    assert both.n_clusters == 32 and both.n_galaxies == 2 * small.n_galaxies
    assert len(np.unique(both.clusters["host_id"])) == 16  # hosts renumbered
    t = small.to_table()
    assert len(t) == 16 and t["sigma_true_kms"].unit == "km / s"
    assert np.array_equal(t["n_gal"], small.n_gal)
    with pytest.raises(IndexError):
        small.galaxies(99)


def test_constructor_validates():
    gal = {
        "R": np.zeros(3),
        "v": np.zeros(3),
        "is_member": np.zeros(3, bool),
        "log_mstar": np.zeros(3),
    }
    cl = {
        k: np.zeros(1)
        for k in ("host_id", "los_id", "log_m200c", "z", "sigma_true_kms", "n_members_3d")
    }
    MockCatalog([0, 3], gal, cl)
    with pytest.raises(ValueError, match="length"):
        MockCatalog([0, 2], gal, cl)
    with pytest.raises(ValueError, match="per-cluster"):
        MockCatalog([0, 3], gal, {"host_id": np.zeros(1)})


def test_schema_rejects_malformed_file(small, tmp_path):
    good = small.write(tmp_path / "good.asdf")
    raw = good.read_bytes()
    # same-length edits of the YAML header keep the binary blocks readable
    for old, new in [(b"  clusters:", b"  clustexs:"), (b"    R: !core", b"    Q: !core")]:
        assert old in raw
        bad = tmp_path / "bad.asdf"
        bad.write_bytes(raw.replace(old, new, 1))
        # the reader wraps schema errors in CatalogFileError (naming the file); the schema
        # error is kept as its cause
        with pytest.raises((asdf.ValidationError, CatalogFileError)) as info:
            MockCatalog.read(bad)
        if info.type is CatalogFileError:
            assert isinstance(info.value.__cause__, asdf.ValidationError)


def test_interrupted_run_leaves_no_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = gen_module.simulate_host

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(gen_module, "simulate_host", failing)
    out = tmp_path / "partial.asdf"
    with pytest.raises(KeyboardInterrupt):
        generate_catalog(10, seed=1, out=out, progress=False, chunk_size=2)
    assert list(tmp_path.iterdir()) == []


def test_mock_catalogues_are_written_and_read_without_torch(tmp_path):
    """asdf loads every extension on first use; ours must not drag torch in for a catalogue."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from astro_cnnmass.mocks import MockCatalog, generate_catalog\n"
        f"cat = generate_catalog(2, seed=3, out={str(tmp_path / 'c.asdf')!r}, progress=False)\n"
        "cat.close()\n"
        f"with MockCatalog.read({str(tmp_path / 'c.asdf')!r}) as back:\n"
        "    assert back.n_clusters == 6\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
