"""Hostile inputs, as a checklist: every input gets a right answer or a clear error (issue 15).

Each row of ``CHECKLIST`` is one bad input and what must happen to it; the test ids read as
``item-N: what goes in -> what comes out``. Items follow the numbering of issue 15:

1 masks · 2 broken model files · 3 catalogue integrity · 4 training flags · 5 duplicates and
richness · 6 RA in hours · 7 odd redshifts / R · 8 batch isolation · 9 files that stall or swamp
the loader · 10 SIGTERM · 11 CLI errors · 12 strict JSON · 13 devices.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table, vstack
from astropy.utils.masked import Masked

from astro_cnnmass import DynamicalMassEstimator, InputError, phase_space
from astro_cnnmass.cli import main
from astro_cnnmass.datasets import load_example_cluster
from astro_cnnmass.exceptions import AstroCnnmassWarning
from astro_cnnmass.mocks.catalog import CatalogFileError, MockCatalog
from astro_cnnmass.model.bundle import ModelBundle, ModelFileError
from astro_cnnmass.observe.phase_space import MPC_H

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import hostile_files as hostile

KMS = u.km / u.s


@dataclass
class Ctx:
    est: DynamicalMassEstimator
    members: Table
    center: SkyCoord
    z: float
    tmp: Path
    capsys: pytest.CaptureFixture


@pytest.fixture(scope="module")
def estimator():
    return DynamicalMassEstimator.load()


@pytest.fixture
def ctx(estimator, tmp_path, capsys):
    m = load_example_cluster()
    center = SkyCoord(m.meta["ra_cluster"] * u.deg, m.meta["dec_cluster"] * u.deg)
    return Ctx(estimator, m, center, float(m.meta["z_cluster"]), tmp_path, capsys)


CHECKLIST: list = []


def case(item: int, what: str):
    """Register a checklist row: issue item and 'input -> expected outcome'."""

    def register(fn):
        CHECKLIST.append(pytest.param(fn, id=f"item-{item}: {what}"))
        return fn

    return register


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCnnmassWarning)
        return fn(*args, **kwargs)


def _masked_z(
    m: Table, n_masked: int = 150, seed: int = 0, fill: float | None = None
) -> tuple[Table, np.ndarray]:
    """``m`` with ``n_masked`` redshifts masked; under the mask the real values (``fill=None``:
    a mask that is ignored uses them) or ``fill`` (0.0: what blank cells held)."""
    mask = np.zeros(len(m), bool)
    mask[np.random.default_rng(seed).choice(len(m), n_masked, replace=False)] = True
    out = m.copy()
    z = np.asarray(m["z"], dtype=float)
    out["z"] = MaskedColumn(z if fill is None else np.where(mask, fill, z), mask=mask)
    return out, mask


# ----------------------------------------------------------------------------- 1 masks
@case(1, "MaskedColumn z (150 of 253 masked) -> rows dropped with a counted warning")
def _(c: Ctx):
    masked, mask = _masked_z(c.members)
    with pytest.warns(AstroCnnmassWarning, match="dropped 150 galaxies with masked"):
        res = c.est.estimate(masked, z_cluster=c.z, center=c.center)
    ref = _quiet(c.est.estimate, c.members[~mask], z_cluster=c.z, center=c.center)
    full = _quiet(c.est.estimate, c.members, z_cluster=c.z, center=c.center)
    assert res.mass == ref.mass and res.n_members == ref.n_members
    assert res.n_members < full.n_members  # the masked galaxies were not used


@case(1, "blank CSV cells -> masked, dropped (never read as 0)")
def _(c: Ctx):
    m = c.members
    lines = ["ra,dec,z"] + [
        f"{r},{d},{'' if i % 3 == 0 else z}"
        for i, (r, d, z) in enumerate(zip(m["ra"], m["dec"], m["z"]))
    ]
    path = c.tmp / "blanks.csv"
    path.write_text("\n".join(lines) + "\n")
    tab = Table.read(path, format="ascii.csv")
    with pytest.warns(AstroCnnmassWarning, match="masked"):
        ps = phase_space(tab, z_cluster=c.z, center=c.center)
    assert len(ps) == len(m) - len(range(0, len(m), 3))


@case(1, "astropy Masked Quantity ra in a QTable -> masked rows dropped")
def _(c: Ctx):
    q = QTable(c.members)
    mask = np.zeros(len(q), bool)
    mask[:40] = True
    q["ra"] = Masked(q["ra"], mask=mask)
    with pytest.warns(AstroCnnmassWarning, match="dropped 40"):
        ps = phase_space(q, z_cluster=c.z, center=c.center)
    assert ps.index.min() == 40


@case(1, "SkyCoord + np.ma redshifts -> masked rows dropped")
def _(c: Ctx):
    coords = SkyCoord(c.members["ra"], c.members["dec"])
    z = np.ma.array(np.asarray(c.members["z"]), mask=np.arange(len(coords)) < 10)
    with pytest.warns(AstroCnnmassWarning, match="dropped 10"):
        ps = phase_space(coords, redshifts=z, z_cluster=c.z, center=c.center)
    assert len(ps) == len(coords) - 10


@case(1, "estimate_phase_space with masked R -> masked rows dropped")
def _(c: Ctx):
    rng = np.random.default_rng(1)
    R, v = rng.uniform(0, 1.5, 80), rng.normal(0, 700, 80)
    Rm = Masked(R * MPC_H, mask=np.arange(80) < 5)
    with pytest.warns(AstroCnnmassWarning, match="dropped 5"):
        res = c.est.estimate_phase_space(Rm, v * KMS, z_cluster=0.1)
    ref = _quiet(c.est.estimate_phase_space, R[5:] * MPC_H, v[5:] * KMS, z_cluster=0.1)
    assert res.mass == ref.mass


@case(1, "estimate_many with masked z and masked cluster ids -> masks honoured")
def _(c: Ctx):
    masked, mask = _masked_z(c.members, 50)
    masked["cluster_id"] = MaskedColumn(["A"] * len(masked), mask=np.arange(len(masked)) < 3)
    with pytest.warns(AstroCnnmassWarning, match="dropped 3 galaxies whose 'cluster_id'"):
        tab = c.est.estimate_many(masked)
    keep = ~mask & (np.arange(len(masked)) >= 3)
    ref = _quiet(c.est.estimate, c.members[keep])
    assert tab["mass"][0] == ref.mass


# ----------------------------------------------------------------------------- 2 models
@pytest.mark.parametrize(
    "what, message",
    [
        ("nan_weights", "NaN or infinite"),
        ("negative_std_scale", "std_scale"),
        ("negative_aperture", "aperture"),
        ("huge_v_cut", "v_cut"),
        ("grid_mismatch", "n_v"),
    ],
)
def test_item_2_re_digested_broken_models_are_refused(tmp_path, what, message):
    path = hostile.redigested(tmp_path / f"{what}.asdf", what)
    with pytest.raises(ModelFileError, match=message):
        ModelBundle.read(path)


def test_item_2_schema_exclusive_minimum_is_enforced(tmp_path):
    """asdf's draft-01 meta-schema is draft-04: exclusiveMinimum is a boolean modifier."""
    import asdf

    path = hostile.redigested(tmp_path / "neg.asdf", "negative_aperture")
    with asdf.config_context() as cfg, pytest.raises(Exception, match="minimum of 0"):
        cfg.validate_on_read = True
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            af["model"]


def test_item_2_a_good_untrained_model_still_loads(tmp_path):
    b = ModelBundle.read(hostile.good_model(tmp_path / "ok.asdf"))
    assert b.n_members == 1


# ----------------------------------------------------------------------------- 3 catalogues
@case(3, "mock catalogue with one flipped bit in a galaxy block -> CatalogFileError")
def _(c: Ctx):
    with pytest.raises(CatalogFileError, match="digest mismatch"):
        MockCatalog.read(hostile.bit_flip(c.tmp / "flip.asdf"))


@case(3, "clean catalogue -> reads back with its digest, lazily and eagerly")
def _(c: Ctx):
    path = hostile.small_catalog(c.tmp / "ok.asdf")
    with MockCatalog.read(path) as cat:
        assert cat._sha256 and cat.n_clusters == 4
    assert MockCatalog.read(path, lazy=False).n_galaxies == 120


@case(3, "a model file given as a catalogue -> CatalogFileError naming it")
def _(c: Ctx):
    with pytest.raises(CatalogFileError, match="model file"):
        MockCatalog.read(hostile.good_model(c.tmp / "m.asdf"))


# ----------------------------------------------------------------------------- 4 training flags
@pytest.mark.parametrize(
    "flags, named",
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lr", "-1"], "--lr"),
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--val-fraction", "0"], "--val-fraction"),
        (["--test-fraction", "1"], "--test-fraction"),
        (["--ensemble", "0"], "--ensemble"),
        (["--aperture", "-1"], "--aperture"),
    ],
)
def test_item_4_train_refuses_flags_that_would_not_train(tmp_path, capsys, flags, named):
    mocks = hostile.small_catalog(tmp_path / "m.asdf")
    out = tmp_path / "model.asdf"
    with pytest.raises(SystemExit) as exc:
        main(["train", str(mocks), "--out", str(out), *flags])
    assert exc.value.code == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------------------------------------- 5 richness
@case(5, "every row repeated 10x -> duplicates dropped and counted, same n_members")
def _(c: Ctx):
    rep = Table(np.repeat(np.asarray(c.members), 10))
    with pytest.warns(AstroCnnmassWarning, match=f"dropped {9 * len(c.members)} exact duplicate"):
        res = c.est.estimate(rep, z_cluster=c.z, center=c.center)
    ref = _quiet(c.est.estimate, c.members, z_cluster=c.z, center=c.center)
    assert res.n_members == ref.n_members and res.mass == ref.mass


@case(5, "more cylinder galaxies than the training maximum -> 'many_galaxies' flag")
def _(c: Ctx):
    n_max = c.est.domain["n_galaxies_range"][1]
    rng = np.random.default_rng(2)
    n = n_max + 500
    R, v = 1.6 * rng.uniform(0, 1, n) ** 2, rng.normal(0, 900, n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstroCnnmassWarning)
        res = c.est.estimate_phase_space(R * MPC_H, v * KMS, z_cluster=0.1)
    assert "many_galaxies" in res.flags
    assert any("many_galaxies" in str(w.message) for w in caught)


# ----------------------------------------------------------------------------- 6 RA in hours
@case(6, "plain-float RA in hours -> warning that plain floats are degrees")
def _(c: Ctx):
    m = c.members
    hours = Table({"ra": np.asarray(m["ra"]) / 15, "dec": np.asarray(m["dec"]), "z": m["z"]})
    with pytest.warns(AstroCnnmassWarning, match="hours.*plain floats are read as degrees"):
        _quiet_except_hours(phase_space, hours, z_cluster=c.z)


def _quiet_except_hours(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "^(?!.*hours).*", AstroCnnmassWarning)
        return fn(*args, **kwargs)


@case(6, "plain-float RA in degrees -> no warning")
def _(c: Ctx):
    m = c.members
    deg = Table({"ra": np.asarray(m["ra"]), "dec": np.asarray(m["dec"]), "z": m["z"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstroCnnmassWarning)
        phase_space(deg, z_cluster=c.z, center=c.center)


# ----------------------------------------------------------------------------- 7 odd values
@case(7, "blank-heavy z with estimated z_cluster -> never z_cluster = 0.0")
def _(c: Ctx):
    masked, mask = _masked_z(c.members, fill=0.0)
    ps = _quiet(phase_space, masked)
    ref = _quiet(phase_space, c.members[~mask])
    assert ps.z_cluster == ref.z_cluster and ps.z_cluster > 0.01


@case(7, "z_cluster=True -> InputError (not taken as 1)")
def _(c: Ctx):
    with pytest.raises(InputError, match="real number"):
        phase_space(c.members, z_cluster=True, center=c.center)


@case(7, "complex R -> InputError (no numpy ComplexWarning)")
def _(c: Ctx):
    with pytest.raises(InputError, match="complex"):
        phase_space(R=np.array([0.1 + 1j, 0.2]) * MPC_H, v=[1.0, 2.0] * KMS, z_cluster=0.1)


@case(7, "all galaxies masked -> InputError, not a crash")
def _(c: Ctx):
    masked, _ = _masked_z(c.members, len(c.members))
    with pytest.raises(InputError), warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCnnmassWarning)
        phase_space(masked, z_cluster=c.z, center=c.center)


# ----------------------------------------------------------------------------- 8 batches
def _two_clusters(c: Ctx) -> tuple[Table, Table]:
    a, b = c.members.copy(), c.members.copy()
    a["cluster_id"], b["cluster_id"] = "A", "B"
    clusters = Table(
        {"cluster_id": ["A", "B"], "ra": [c.center.ra.deg] * 2, "dec": [c.center.dec.deg] * 2,
         "z": [c.z] * 2}
    )  # fmt: skip
    return vstack([a, b]), clusters


def _assert_good_row_unchanged(c: Ctx, tab: QTable, members_a: Table, clusters: Table):
    clean = c.est.estimate_many(members_a, clusters=clusters[:1])
    for col in ("mass", "mass_lo", "mass_hi", "log_mass", "ood_score", "n_members"):
        assert np.array_equal(np.asarray(tab[col][:1]), np.asarray(clean[col]), equal_nan=True)


@case(8, "a non-numeric string in one cluster's object z column -> that row flagged, named")
def _(c: Ctx):
    members, clusters = _two_clusters(c)
    z = np.asarray(members["z"]).astype(object)
    z[len(c.members) + 5] = "n/a"
    members["z"] = z
    tab = c.est.estimate_many(members, clusters=clusters)
    assert list(tab["ok"]) == [True, False]
    assert "'z'" in tab["error"][1] and "n/a" in tab["error"][1]
    good = members[: len(c.members)]
    good["z"] = good["z"].astype(float)
    _assert_good_row_unchanged(c, tab, good, clusters)


@case(8, "cluster-table declination 95 -> that row flagged, the other bit-identical")
def _(c: Ctx):
    members, clusters = _two_clusters(c)
    clusters["dec"][1] = 95.0
    tab = c.est.estimate_many(members, clusters=clusters)
    assert list(tab["ok"]) == [True, False] and "dec" in tab["error"][1]
    _assert_good_row_unchanged(c, tab, members[: len(c.members)], clusters)


@case(8, "cluster-table z as a dimensionless Quantity -> used as a redshift")
def _(c: Ctx):
    members, clusters = _two_clusters(c)
    q = QTable(clusters)
    q["z"] = q["z"] * u.dimensionless_unscaled
    tab = c.est.estimate_many(members, clusters=q)
    ref = c.est.estimate_many(members, clusters=clusters)
    assert np.array_equal(np.asarray(tab["mass"]), np.asarray(ref["mass"]))


@case(8, "cluster-table z in km/s -> InputError naming the column, before any work")
def _(c: Ctx):
    members, clusters = _two_clusters(c)
    q = QTable(clusters)
    q["z"] = [6000.0, 6000.0] * KMS
    with pytest.raises(InputError, match="'z'"):
        c.est.estimate_many(members, clusters=q)


@case(8, "an empty member table -> InputError")
def _(c: Ctx):
    members, _ = _two_clusters(c)
    with pytest.raises(InputError, match="empty"):
        c.est.estimate_many(members[:0])


@case(8, "a pandas DataFrame -> InputError saying how to convert it")
def _(c: Ctx):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({k: np.asarray(c.members[k]) for k in ("ra", "dec", "z")})
    df["cluster_id"] = "A"
    for fn in (c.est.estimate, c.est.estimate_many):
        with pytest.raises(InputError, match="from_pandas"):
            fn(df)


@case(8, "a cluster of the cluster table with no members -> flagged row")
def _(c: Ctx):
    members, clusters = _two_clusters(c)
    tab = c.est.estimate_many(members[members["cluster_id"] == "A"], clusters=clusters)
    assert list(tab["ok"]) == [True, False] and "no members" in tab["error"][1]


# ----------------------------------------------------------------------------- 9 files
@pytest.mark.parametrize("reader", ["model", "catalog"])
@pytest.mark.parametrize(
    "build, message",
    [
        (hostile.alias_bomb, "alias|anchor"),
        (hostile.deep_tree, "nesting depth"),  # libyaml's own limit (1000)
        (lambda p, k: hostile.deep_tree(p, k, depth=500), "deeper than 100"),  # ours
        (hostile.wide_tree, "nodes"),
        (lambda p, k: hostile.zlib_bomb(p, k, n_bytes=2**22, declared_bytes=80), "inflate"),
    ],
    ids=["alias_bomb", "deep_tree_10000", "deep_tree_500", "wide_tree", "inflating_block"],
)
def test_item_9_files_that_would_stall_or_swamp_are_refused_quickly(
    tmp_path, reader, build, message
):
    path = build(tmp_path / "hostile.asdf", reader)
    read = ModelBundle.read if reader == "model" else MockCatalog.read
    error = ModelFileError if reader == "model" else CatalogFileError
    t0 = time.perf_counter()
    with pytest.raises(error, match=message):
        read(path)
    assert time.perf_counter() - t0 < 60  # a sanity bound, not a benchmark (hung before)


def test_item_9_compressed_blocks_have_a_ceiling(tmp_path):
    from astro_cnnmass.safe_asdf import UnsafeFileError, prescan

    path = hostile.zlib_bomb(tmp_path / "z.asdf", n_bytes=2**22)  # consistent with its shape
    assert prescan(path).decompressed_bytes == 2**22
    with pytest.raises(UnsafeFileError, match="inflate"):
        prescan(path, max_decompressed_bytes=2**20)


def test_item_9_truncated_model_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="truncated"):
        ModelBundle.read(hostile.truncated(tmp_path / "t.asdf"))


# ----------------------------------------------------------------------------- 10 SIGTERM
def test_item_10_sigterm_during_mocks_leaves_no_temporary_folder(tmp_path):
    script = f"""
import os, signal, sys, time
import numpy as np
sys.path.insert(0, {str(Path(__file__).parent.parent / "benchmarks")!r})
import hostile_files
from astro_cnnmass.mocks import cli, generator
from astro_cnnmass.mocks.catalog import MockCatalog

def slow_generate(n_hosts, *, out, **kw):
    from astro_cnnmass.mocks.catalog import CatalogWriter
    hostile_files.small_catalog({str(tmp_path / "src.asdf")!r})
    chunk = MockCatalog.read({str(tmp_path / "src.asdf")!r}, lazy=False)
    with CatalogWriter(out) as w:
        w.add(chunk)
        print("WRITING", flush=True)
        time.sleep(60)
        w.finalize()

generator.generate_catalog = slow_generate
import argparse
p = argparse.ArgumentParser(); sub = p.add_subparsers(dest="command")
cli.add_mocks_subparser(sub)
args = p.parse_args(["mocks", "--n-hosts", "2", "--seed", "0", "--out",
                     {str(tmp_path / "out.asdf")!r}, "--no-progress"])
sys.exit(cli.run_mocks_command(args))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        assert any(p.name.startswith(".out.asdf.") for p in tmp_path.iterdir())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["good_for_flip.asdf", "src.asdf"] or left == ["src.asdf"], left


# ----------------------------------------------------------------------------- 11 CLI
def _cli(c: Ctx, argv: list[str]) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse usage errors
        status = exc.code
    err = c.capsys.readouterr().err
    return status, err


def _example_file(c: Ctx) -> str:
    from astro_cnnmass.datasets import example_cluster_path

    return str(example_cluster_path())


@case(11, "estimate --model pointing at a catalogue -> one line, exit 1")
def _(c: Ctx):
    cat = hostile.small_catalog(c.tmp / "cat.asdf")
    status, err = _cli(c, ["estimate", _example_file(c), "--z-cl", str(c.z), "--model", str(cat)])
    assert status == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1


@case(11, "estimate on a directory / a .txt file -> one line naming the file, exit 1")
def _(c: Ctx):
    txt = c.tmp / "members.txt"
    txt.write_text("not a table\n")
    for bad in (str(c.tmp), str(txt)):
        status, err = _cli(c, ["estimate", bad, "--z-cl", str(c.z)])
        assert status == 1 and bad in err and "Traceback" not in err


@case(11, "--format bogus / --dec-cl 100 / --cosmology Nope -> usage error, exit 2")
def _(c: Ctx):
    for flags, named in (
        (["--format", "bogus"], "--format"),
        (["--ra-cl", "10", "--dec-cl", "100"], "--dec-cl"),
        (["--cosmology", "Nope"], "--cosmology"),
    ):
        status, err = _cli(c, ["estimate", _example_file(c), *flags])
        assert status == 2 and named in err


@case(11, "catalog --out x.xyz -> refused before any mass is computed, exit 2")
def _(c: Ctx):
    status, err = _cli(c, ["catalog", _example_file(c), "--out", str(c.tmp / "x.xyz")])
    assert status == 2 and "--out" in err and "x.xyz" in err


@case(11, "catalog --out an existing file without --overwrite -> exit 2 before the work")
def _(c: Ctx):
    out = c.tmp / "masses.ecsv"
    out.write_text("keep me")
    status, err = _cli(c, ["catalog", _example_file(c), "--out", str(out)])
    assert status == 2 and "--overwrite" in err and out.read_text() == "keep me"


@case(11, "train / evaluate given a model file as mocks -> one line, exit 1")
def _(c: Ctx):
    model = hostile.good_model(c.tmp / "m.asdf")
    status, err = _cli(c, ["train", str(model), "--out", str(c.tmp / "o.asdf"), "--epochs", "1"])
    assert status == 1 and "model file" in err and "KeyError" not in err
    status, err = _cli(c, ["evaluate", str(model), str(model), "--out", str(c.tmp / "ev")])
    assert status == 1 and "Traceback" not in err


@case(11, "mocks with a bad value -> exit 1 (a runtime error), not 2")
def _(c: Ctx):
    status, _ = _cli(c, ["mocks", "--n-hosts", "-3", "--seed", "0", "--out",
                         str(c.tmp / "m.asdf"), "--no-progress"])  # fmt: skip
    assert status == 1


# ----------------------------------------------------------------------------- 12 JSON
@case(12, "estimate --json with NaN fields -> strict JSON (null), to_dict JSON-safe")
def _(c: Ctx):
    res = _quiet(c.est.estimate, c.members, z_cluster=c.z, center=c.center)
    res.ood_score = float("nan")
    d = res.to_dict()
    assert d["ood_score"] is None
    json.dumps(d, allow_nan=False)
    model = hostile.good_model(c.tmp / "no_ood.asdf")  # no out-of-domain model: NaN score
    c.capsys.readouterr()
    status = main(["estimate", _example_file(c), "--z-cl", str(c.z), "--json", "--model",
                   str(model)])  # fmt: skip
    out = c.capsys.readouterr().out
    assert status == 0 and "NaN" not in out
    json.loads(out, parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))


# ----------------------------------------------------------------------------- 13 devices
@case(13, "load(device='bogus') -> InputError at load")
def _(c: Ctx):
    with pytest.raises(InputError, match="bogus"):
        DynamicalMassEstimator(c.est.bundle, device="bogus")


@case(13, "load(device='cuda') without CUDA -> InputError at load")
def _(c: Ctx):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InputError, match="CUDA is not available"):
        DynamicalMassEstimator(c.est.bundle, device="cuda")
    status, err = _cli(c, ["train", "x.asdf", "--out", str(c.tmp / "o.asdf"), "--device", "cuda"])
    assert status == 2 and "--device" in err


@pytest.mark.parametrize("check", CHECKLIST)
def test_checklist(check, ctx):
    check(ctx)
