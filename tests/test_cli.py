"""The astro-cnnmass command line tool."""

import json

import pytest

from astro_cnnmass import __version__
from astro_cnnmass.cli import main
from astro_cnnmass.datasets import example_cluster_path, load_example_cluster


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_demo_prints_a_cnn_mass(capsys):
    assert main(["demo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "cnn2d"
    assert out["mass_msun_h"] > 1e13
    assert abs(out["log_mass"] - out["true_log_m200c"]) < 0.3


def test_estimate_reads_a_table_file(capsys, tmp_path):
    meta = load_example_cluster().meta
    assert main(["estimate", str(example_cluster_path()), "--ra-cl", str(meta["ra_cluster"]),
                 "--dec-cl", str(meta["dec_cluster"]), "--z-cl", str(meta["z_cluster"])]) == 0
    out = capsys.readouterr().out
    assert "M200c (cnn2d)" in out and "M-sigma" in out


def test_estimate_reports_bad_input_clearly(capsys, tmp_path):
    meta = load_example_cluster().meta
    status = main(["estimate", str(example_cluster_path()), "--ra-cl", "10", "--z-cl",
                   str(meta["z_cluster"])])
    assert status == 1
    assert "--dec-cl" in capsys.readouterr().err
    assert main(["estimate", str(tmp_path / "missing.ecsv")]) == 1


def test_catalog_writes_one_row_per_cluster(tmp_path, capsys):
    from astropy.table import Table, vstack

    members = load_example_cluster()
    meta = members.meta
    a, b = members.copy(), members[:2].copy()
    a["cluster_id"], b["cluster_id"] = "A", "B"
    path = tmp_path / "members.ecsv"
    vstack([a, b]).write(path)
    clusters = Table({"cluster_id": ["A", "B"], "ra": [meta["ra_cluster"]] * 2,
                      "dec": [meta["dec_cluster"]] * 2, "z": [meta["z_cluster"]] * 2})
    cpath = tmp_path / "clusters.ecsv"
    clusters.write(cpath)
    out = tmp_path / "masses.ecsv"
    assert main(["catalog", str(path), "--clusters", str(cpath), "--out", str(out),
                 "--no-progress"]) == 0
    import astropy.cosmology.units as cu
    import astropy.units as u

    with u.add_enabled_units(cu):  # masses are in Msun / littleh
        tab = Table.read(out)
    assert list(tab["ok"]) == [True, False]
    assert tab["mass"].unit == u.Msun / cu.littleh
