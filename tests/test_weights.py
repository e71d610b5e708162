"""Tests of astro_cnnmass.model.bundle: ModelBundle ASDF round trip and refusal of bad files."""

from pathlib import Path

import asdf
import numpy as np
import pytest
import torch

from astro_cnnmass.model.bundle import (
    ModelBundle,
    ModelFileError,
    bundled_model_path,
    scale_log_mass,
    scale_redshift,
    unscale_log_mass,
)
from astro_cnnmass.model.networks import build_network, default_network_config

torch.set_num_threads(1)


def make_bundle(n_members=2, head="gaussian", seed=0):
    cfg = default_network_config("cnn2d", head)
    state_dicts = []
    for m in range(n_members):
        torch.manual_seed(seed + m)
        net = build_network(cfg)
        state_dicts.append({k: v.numpy().copy() for k, v in net.state_dict().items()})
    return ModelBundle(
        network_config=cfg,
        state_dicts=state_dicts,
        feature_config={
            "kind": "2d",
            "n_v": 48,
            "n_R": 48,
            "aperture_mpch": 1.6,
            "v_cut_kms": 2200.0,
            "bandwidth": 0.25,
        },
        cylinder={"aperture_mpch": 1.6, "v_cut_kms": 2200.0},
        target_scaling={"log_m_min": 13.5, "log_m_max": 15.3, "z_min": 0.05, "z_max": 0.15},
        training={"n_train": 100, "n_val": 10, "generator": {"version": "0.1", "seed": 3}},
        m_sigma={"alpha": 0.33, "log_sigma15": 3.0, "pivot_log_mass": 15.0, "scatter": 0.07},
        metrics={"scatter_dex": 0.13, "note": float("nan")},
        domain={
            "z_min": 0.05,
            "z_max": 0.15,
            "log_m_min": 13.5,
            "log_m_max": 15.3,
            "n_min_galaxies": 10,
        },
    )


@pytest.fixture
def bundle():
    return make_bundle()


@pytest.fixture
def model_file(tmp_path, bundle):
    return bundle.write(tmp_path / "model.asdf")


def test_round_trip(model_file, bundle):
    back = ModelBundle.read(model_file)
    assert isinstance(back, ModelBundle)
    assert back.sha256 == bundle.sha256 == back.compute_sha256()
    assert back.n_members == 2
    for sd0, sd1 in zip(bundle.state_dicts, back.state_dicts):
        assert sd0.keys() == sd1.keys()
        for k in sd0:
            np.testing.assert_array_equal(sd0[k], sd1[k])
            assert sd0[k].dtype == sd1[k].dtype
    for name in ("network_config", "feature_config", "cylinder", "training", "m_sigma", "domain"):
        assert getattr(back, name) == getattr(bundle, name)
    assert np.isnan(back.metrics["note"])
    assert back.target_scaling["calibration"] == {"std_scale": 1.0}
    assert back.package_version == bundle.package_version


def test_asdf_open_gives_a_bundle(model_file):
    with asdf.open(model_file) as af:
        assert isinstance(af["model"], ModelBundle)


def test_networks_rebuilt_identically(model_file, bundle):
    x, z = torch.rand(3, 48, 48), torch.zeros(3)
    nets0 = bundle.build_networks("cpu")
    nets1 = ModelBundle.read(model_file).build_networks("cpu")
    assert len(nets1) == 2 and not nets1[0].training
    for n0, n1 in zip(nets0, nets1):
        with torch.no_grad():
            torch.testing.assert_close(n0(x, z), n1(x, z))


def test_write_is_atomic_and_overwrites(tmp_path, bundle):
    path = tmp_path / "m.asdf"
    bundle.write(path)
    bundle.replace(metrics={"scatter_dex": 0.2}).write(path)
    assert ModelBundle.read(path).metrics == {"scatter_dex": 0.2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.asdf"]


def test_replace_recomputes_digest(bundle):
    new = bundle.replace(metrics={"scatter_dex": 0.5})
    assert new.sha256 != bundle.sha256
    new.verify()


def test_refuses_foreign_file(tmp_path):
    path = tmp_path / "foreign.asdf"
    asdf.AsdfFile({"data": np.arange(4)}).write_to(path)
    with pytest.raises(ModelFileError, match="no 'model' entry"):
        ModelBundle.read(path)
    asdf.AsdfFile({"model": {"weights": np.arange(4)}}).write_to(path)
    with pytest.raises(ModelFileError, match="not a ModelBundle"):
        ModelBundle.read(path)
    path.write_text("this is not an ASDF file\n")
    with pytest.raises(ModelFileError):
        ModelBundle.read(path)


def test_refuses_truncated_file(model_file):
    data = Path(model_file).read_bytes()
    end_of_blocks = data.find(b"#ASDF BLOCK INDEX")
    assert end_of_blocks > 0
    for n in (len(data) // 2, end_of_blocks - 10, 200):
        Path(model_file).write_bytes(data[:n])
        with pytest.raises(ModelFileError):
            ModelBundle.read(model_file)


def test_refuses_altered_array(tmp_path, bundle):
    # the arrays change but the stored digest does not (block checksums are valid)
    key = next(iter(bundle.state_dicts[0]))
    bundle.state_dicts[0][key] = bundle.state_dicts[0][key] + 1e-3
    path = tmp_path / "altered.asdf"
    asdf.AsdfFile({"model": bundle}).write_to(path)
    with pytest.raises(ModelFileError, match="digest"):
        ModelBundle.read(path)


def test_refuses_flipped_bytes(model_file):
    data = bytearray(Path(model_file).read_bytes())
    data[data.find(b"\xd3BLK") + 200] ^= 0xFF
    Path(model_file).write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        ModelBundle.read(model_file)


def test_refuses_altered_config(model_file):
    data = Path(model_file).read_bytes()
    Path(model_file).write_bytes(data.replace(b"log_sigma15: 3.0", b"log_sigma15: 3.1"))
    with pytest.raises(ModelFileError, match="digest"):
        ModelBundle.read(model_file)


@pytest.mark.parametrize("key", [b"cylinder", b"sha256", b"state_dicts"])
def test_refuses_missing_key(model_file, key):
    data = Path(model_file).read_bytes()
    assert b"  " + key + b":" in data
    Path(model_file).write_bytes(data.replace(b"  " + key + b":", b"  x" + key[1:] + b":", 1))
    with pytest.raises(ModelFileError):
        ModelBundle.read(model_file)


def test_missing_file_and_bad_fields(tmp_path, bundle):
    with pytest.raises(FileNotFoundError):
        ModelBundle.read(tmp_path / "nope.asdf")
    assert issubclass(ModelFileError, ValueError)
    with pytest.raises(ModelFileError, match="target_scaling"):
        ModelBundle(bundle.network_config, bundle.state_dicts, {}, {}, {"log_m_min": 14})
    with pytest.raises(ModelFileError, match="state_dicts"):
        ModelBundle(bundle.network_config, [], {}, {}, bundle.target_scaling)


def test_weights_not_matching_config(bundle):
    bad = bundle.replace(network_config=default_network_config("cnn1d"))
    with pytest.raises(ModelFileError, match="do not match"):
        bad.build_networks("cpu")


def test_bundled_model_path():
    try:
        path = bundled_model_path()
    except FileNotFoundError as exc:
        assert "astro-cnnmass train" in str(exc)
    else:
        assert path.name == "cnn2d_default.asdf" and path.exists()


def test_scaling_helpers():
    s = {"log_m_min": 14.0, "log_m_max": 15.0, "z_min": 0.1, "z_max": 0.1}
    np.testing.assert_allclose(scale_log_mass([14.0, 14.5, 15.0], s), [-1, 0, 1])
    np.testing.assert_allclose(unscale_log_mass(scale_log_mass([14.3], s), s), [14.3])
    np.testing.assert_array_equal(scale_redshift([0.1, 0.2], s), [0.0, 0.0])
    s2 = {**s, "z_max": 0.3}
    np.testing.assert_allclose(scale_redshift([0.1, 0.3], s2), [-1, 1])
