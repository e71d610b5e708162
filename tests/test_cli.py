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
    assert (
        main(
            [
                "estimate",
                str(example_cluster_path()),
                "--ra-cl",
                str(meta["ra_cluster"]),
                "--dec-cl",
                str(meta["dec_cluster"]),
                "--z-cl",
                str(meta["z_cluster"]),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "M200c (cnn2d)" in out and "M-sigma" in out


def test_estimate_reports_bad_input_clearly(capsys, tmp_path):
    meta = load_example_cluster().meta
    status = main(
        ["estimate", str(example_cluster_path()), "--ra-cl", "10", "--z-cl", str(meta["z_cluster"])]
    )
    assert status == 2  # a usage error, as argparse's own (issue 15)
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
    clusters = Table(
        {
            "cluster_id": ["A", "B"],
            "ra": [meta["ra_cluster"]] * 2,
            "dec": [meta["dec_cluster"]] * 2,
            "z": [meta["z_cluster"]] * 2,
        }
    )
    cpath = tmp_path / "clusters.ecsv"
    clusters.write(cpath)
    out = tmp_path / "masses.ecsv"
    assert (
        main(["catalog", str(path), "--clusters", str(cpath), "--out", str(out), "--no-progress"])
        == 0
    )
    import astropy.cosmology.units as cu
    import astropy.units as u

    with u.add_enabled_units(cu):  # masses are in Msun / littleh
        tab = Table.read(out)
    assert list(tab["ok"]) == [True, False]
    assert tab["mass"].unit == u.Msun / cu.littleh


# ------------------------------------------------------------------ the CLI an observer types
def _headerless_members(tmp_path):
    from astropy.table import Table

    m = load_example_cluster()
    path = tmp_path / "members.txt"
    Table([m["ra"], m["dec"], m["z"]]).write(path, format="ascii.no_header")
    return path


def test_headerless_table_with_column_numbers(tmp_path, capsys):
    path = _headerless_members(tmp_path)
    args = ["estimate", str(path), "--format", "ascii.no_header"]
    assert main([*args, "--ra-column", "1", "--dec-column", "2", "--z-column", "3"]) == 0
    assert "M200c (cnn2d)" in capsys.readouterr().out
    # without column numbers: the error names the flag and the columns there are
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "--ra-column 'ra'" in err and "col1, col2, col3" in err and "ra_column" not in err
    assert main([*args, "--ra-column", "4"]) == 1
    assert "--ra-column 4: the table has 3 columns" in capsys.readouterr().err


def test_estimate_json_reports_the_estimated_centre_and_other_definitions(capsys):
    assert main(["estimate", str(example_cluster_path()), "--json", "--mass-def", "500c"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["center_estimated"] and out["center_converged"] and out["z_cluster_estimated"]
    assert 0 <= out["center_ra_deg"] < 360 and out["center_iterations"] >= 1
    (m500,) = out["other_mass_definitions"]
    assert m500["mass_definition"] == "500c" and m500["concentration_model"] == "diemer19"
    assert m500["mass_msun_h"] < out["mass_msun_h"]
    assert main(["estimate", str(example_cluster_path()), "--mass-def", "500x"]) == 2
    assert "--mass-def 500x" in capsys.readouterr().err


def test_catalog_names_its_cluster_columns_and_flags(tmp_path, capsys):
    from astropy.table import Table

    with pytest.raises(SystemExit):
        main(["catalog", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "cluster_id" in help_text and "ra, dec [deg] and z" in help_text
    members = load_example_cluster()
    members["cluster_id"] = "A"
    mpath = tmp_path / "members.ecsv"
    members.write(mpath)
    meta = members.meta
    cpath = tmp_path / "clusters.ecsv"
    Table(
        {
            "id": ["A"],
            "ra": [meta["ra_cluster"]],
            "dec": [meta["dec_cluster"]],
            "z": [meta["z_cluster"]],
        }
    ).write(cpath)
    out = tmp_path / "masses.fits"
    assert main(["catalog", str(mpath), "--clusters", str(cpath), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "'cluster_id'" in err and "--cluster-column" in err and "id, ra, dec, z" in err
    # progress bars for every long step, and mass definitions on request
    assert main(["catalog", str(mpath), "--out", str(out), "--mass-def", "500c"]) == 0
    err = capsys.readouterr().err
    for step in ("phase spaces", "images + network", "results + 500c"):
        assert step in err, step
    from astropy.table import QTable

    tab = QTable.read(out)  # FITS reads back with its units (astro_cnnmass is imported)
    assert tab["mass_500c"][0] < tab["mass"][0]
    assert main(["catalog", str(mpath), "--out", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from astro_cnnmass.cli import main\n"
        "for argv in (['--help'], ['estimate', '--help'], ['catalog', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "TORCH False" in out.stdout
    assert "train" in out.stdout and "evaluate" in out.stdout  # still listed in --help


def test_every_option_has_help_and_shows_its_default():
    import argparse

    from astro_cnnmass.cli import build_parser

    full, light = build_parser(), build_parser(commands=set())
    (sub,) = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    (light_sub,) = [a for a in light._actions if isinstance(a, argparse._SubParsersAction)]
    # the one-line help of the lazily built sub-commands is the real one
    assert [(a.dest, a.help) for a in sub._choices_actions] == [
        (a.dest, a.help) for a in light_sub._choices_actions
    ]
    for name, parser in sub.choices.items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help"
            default = action.default
            if action.option_strings and default not in (None, [], argparse.SUPPRESS):
                shown = f"default: {default}" in text or f"default {default}" in text
                assert shown, f"{name} {action.option_strings[0]}: default {default} not shown"


def test_evaluate_summary_prints_a_dash_for_empty_bins():
    from astro_cnnmass.model.evaluation import format_summary

    stats = {"n": 3, "mean": 0.01, "std": 0.2, "width": 0.3}
    res = {
        "cnn": stats,
        "m_sigma": {"n": 3, "mean": None, "std": None, "width": None},
        "mass_range": [14.0, 15.0],
        "coverage": {
            "overall": {"0.68": 0.7, "0.90": 0.9},
            "bins": [
                {"lo": 14.0, "hi": 14.25, "n": 3, "0.68": 0.67, "0.90": 1.0},
                {"lo": 14.25, "hi": 14.5, "n": 0, "0.68": None, "0.90": float("nan")},
            ],
        },
    }
    text = format_summary("tiny", res)
    assert "14.25-14.50: n=    0  68% –  90% –" in text
    assert "M-sigma  mean –" in text
