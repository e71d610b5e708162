"""The end-to-end device path (backend='torch') and the grouped ensemble, on CPU-torch.

No GPU is needed: the torch path runs the same code on any torch device, so on the CPU it must
give the numbers of the numpy reference path (masses to float32 rounding, identical flags).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.table import Table

from astro_cnnmass import DynamicalMassEstimator
from astro_cnnmass.batch.streaming import estimate_catalog
from astro_cnnmass.exceptions import InputError
from astro_cnnmass.features.config import FeatureConfig
from astro_cnnmass.features.kde import kde_images
from astro_cnnmass.features.kde_device import kde_images_device
from astro_cnnmass.model.bundle import ModelBundle, bundled_model_path
from astro_cnnmass.model.ensemble import GroupedEnsemble
from astro_cnnmass.model.networks import build_network, default_network_config

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


def _mocks(n: int, seed: int):
    """Seeded packed clusters (R [Mpc/h], v [km/s], offsets, z), a few beyond the cylinder.

    Poisson galaxy numbers (mean 40), radii uniform in area, Gaussian velocities with a
    dispersion from a flat log-mass prior, plus edge cases: too few galaxies, a degenerate
    covariance, a non-finite value and strongly correlated R-v (the KDE's safe path).
    """
    rng = np.random.default_rng(seed)
    counts = rng.poisson(40, n)
    counts[:3] = (2, 3, 12)
    log_m = rng.uniform(13.8, 15.3, n)
    sigma = 1082.9 * (10 ** (log_m - 15.0)) ** 0.3361
    R_parts, v_parts = [], []
    for i, c in enumerate(counts):
        R = 1.7 * np.sqrt(rng.random(c))
        v = rng.standard_normal(c) * sigma[i]
        if i == 3:  # all galaxies at one radius: singular covariance
            R[:] = 0.5
        if i == 4:
            v[0] = np.nan
        if i in (5, 6):  # R and v almost perfectly correlated
            v = 1000.0 * R - 800.0 + rng.normal(0, 1e-3, c)
        R_parts.append(R)
        v_parts.append(v)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    z = rng.uniform(0.02, 0.25, n)
    z[7] = 0.6  # outside the training redshifts
    return np.concatenate(R_parts), np.concatenate(v_parts), offsets, z


@pytest.fixture(scope="module")
def estimators():
    torch.manual_seed(0)
    ref = DynamicalMassEstimator.load(device="cpu", backend="numpy")
    dev = DynamicalMassEstimator.load(device="cpu", backend="torch")
    return ref, dev


def _assert_same(a: dict, b: dict) -> None:
    for key, atol in (
        ("log_mass", 1e-5),
        ("log_mass_std", 1e-5),
        ("ood_score", 1e-5),
        ("sigma_v", 1e-6),
        ("log_m_sigma", 1e-9),
        ("log_m_evrard", 1e-9),
    ):
        x, y = np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float)
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=key)
        np.testing.assert_allclose(x, y, rtol=0, atol=atol, equal_nan=True, err_msg=key)
    np.testing.assert_array_equal(a["n"], b["n"])
    assert [list(f) for f in a["flags"]] == [list(f) for f in b["flags"]]


def test_device_path_equals_numpy_path_on_seeded_mocks(estimators):
    ref, dev = estimators
    assert (ref.backend, dev.backend) == ("numpy", "torch")
    R, v, offsets, z = _mocks(300, seed=14)
    a = ref.predict_packed(R, v, offsets, z, apply_cylinder=True)
    b = dev.predict_packed(R, v, offsets, z, apply_cylinder=True)
    assert np.isfinite(a["log_mass"]).sum() > 280
    _assert_same(a, b)
    # chunking and the streaming entry point give the same numbers
    c = dev.predict_packed(R, v, offsets, z, apply_cylinder=True, chunk_size=97)
    _assert_same(a, c)
    t_ref = estimate_catalog(ref, (R, v, offsets, z), as_table=False)
    t_dev = estimate_catalog(dev, (R, v, offsets, z), as_table=False)
    _assert_same(t_ref, t_dev)
    _assert_same(a, t_ref)


def test_device_path_equals_numpy_path_on_recorded_phase_spaces(estimators):
    ref, dev = estimators
    tab = Table.read(DATA / "reference_phase_spaces.ecsv", format="ascii.ecsv")
    z = np.asarray(tab.meta["z"], dtype=float)
    R, v, cid = (np.asarray(tab[c]) for c in ("R", "v", "cluster_id"))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(cid, minlength=z.size))])
    a = ref.predict_packed(R, v, offsets, z, apply_cylinder=True, keep_images=True)
    b = dev.predict_packed(R, v, offsets, z, apply_cylinder=True, keep_images=True)
    _assert_same(a, b)
    # the host path stores its float64 images as float32 (what the networks read); the
    # device keeps float64: equal to float32 rounding
    assert a["images"].dtype == np.float32
    np.testing.assert_allclose(a["images"], b["images"], rtol=1e-6, atol=1e-15)


def test_device_kde_equals_numpy_kde_and_reports_the_safe_path():
    R, v, offsets, _ = _mocks(120, seed=3)
    cfg = FeatureConfig()
    inside = (R < cfg.aperture_mpch) & (np.abs(v) < cfg.v_cut_kms)
    kept = np.concatenate([[0], np.cumsum(inside)])
    off = kept[offsets]
    R, v = R[inside], v[inside]
    img_np, ok_np = kde_images(R, v, off, cfg)
    img_t, ok_t, fallback = kde_images_device(
        torch.as_tensor(R), torch.as_tensor(v), torch.as_tensor(off), np.diff(off), cfg
    )
    img_t, ok_t = img_t.numpy(), ok_t.numpy()
    assert set(fallback.tolist()) >= {5, 6}  # the correlated clusters go to the exact path
    rest = np.setdiff1d(np.flatnonzero(ok_np), fallback)
    np.testing.assert_array_equal(ok_np, ok_t)
    np.testing.assert_allclose(img_t[rest], img_np[rest], rtol=1e-10, atol=1e-16)


def _v2_like_bundle(n_members: int = 3):
    """An untrained bundle with the v2 network input (log10 N) and a richness-dependent std."""
    import dataclasses

    from astro_cnnmass.model.bundle import untrained_bundle

    base = untrained_bundle()
    config = default_network_config("cnn2d", use_log_n=True)
    states = []
    for net in _members(config, n_members):
        states.append({k: t.detach().numpy().copy() for k, t in net.state_dict().items()})
    scaling = dict(base.target_scaling)
    scaling["calibration"] = {
        "std_scale": 0.9,
        "mean_offset_dex": 0.01,
        "std_scale_log_n": {"pivot": 1.7, "slope": -0.2},
    }
    return dataclasses.replace(
        base, network_config=config, state_dicts=states, target_scaling=scaling
    )


def test_device_path_equals_numpy_path_for_a_model_reading_galaxy_counts():
    bundle = _v2_like_bundle()
    ref = DynamicalMassEstimator(bundle, device="cpu", backend="numpy")
    dev = DynamicalMassEstimator(bundle, device="cpu", backend="torch")
    R, v, offsets, z = _mocks(120, seed=5)
    a = ref.predict_packed(R, v, offsets, z, apply_cylinder=True)
    b = dev.predict_packed(R, v, offsets, z, apply_cylinder=True)
    assert np.isfinite(a["log_mass"]).sum() > 100
    _assert_same(a, b)


def _members(config: dict, n: int) -> list:
    nets = []
    for seed in range(n):
        torch.manual_seed(seed)
        nets.append(build_network(config).eval())
    return nets


@pytest.mark.parametrize(
    "config",
    [
        default_network_config("cnn2d"),
        default_network_config("cnn2d", use_log_n=True),  # model v2: the galaxy count input
        default_network_config("cnn1d", head="point"),
        # three convolutions, no pooling, no hidden dense layer, no redshift input
        default_network_config(
            "cnn2d",
            conv_channels=[8, 6, 4],
            kernel_sizes=[3, 3, 5],
            pool=1,
            dense=[],
            use_redshift=False,
            head="point",
        ),
        default_network_config(
            "cnn1d",
            conv_channels=[8, 6, 4],
            kernel_sizes=[3, 3, 5],
            pool=3,
            dense=[16],
            use_log_n=True,
        ),
    ],
    ids=["cnn2d", "cnn2d_log_n", "cnn1d_point", "cnn2d_deep_no_dense", "cnn1d_deep_log_n"],
)
def test_grouped_ensemble_equals_member_by_member(config):
    nets = _members(config, 4)
    grouped = GroupedEnsemble(nets)
    rng = np.random.default_rng(0)
    shape = (64, config["n_v"]) if config["arch"] == "cnn1d" else (64, config["n_v"], config["n_R"])
    x = torch.as_tensor(rng.random(shape), dtype=torch.float32)
    x = x / x.reshape(64, -1).sum(1).reshape(-1, *([1] * (x.ndim - 1)))
    z = torch.as_tensor(rng.uniform(-1, 1, 64), dtype=torch.float32)
    log_n = torch.as_tensor(np.log10(rng.integers(5, 300, 64)), dtype=torch.float32)
    with torch.inference_mode():
        out, emb = grouped(x, z, log_n)
        ref = torch.stack([net(x, z, log_n) for net in nets])
        emb_ref = nets[0].embed(x, z, log_n)
    # one network: stacked first layer, grouped later convolutions (1 x k conv2d on
    # channels-last memory for CNN_2D), dense layers batched over the members; other kernels
    # than the members' own modules, so equal to float32 rounding
    assert out.shape == ref.shape and emb.shape == emb_ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(emb, emb_ref, rtol=1e-5, atol=1e-5)


def test_grouped_ensemble_equals_members_of_the_bundled_model():
    bundle = ModelBundle.read(bundled_model_path())
    nets = bundle.build_networks("cpu")
    grouped = GroupedEnsemble(nets)
    x = torch.rand(512, 48, 48, generator=torch.Generator().manual_seed(1))
    x = x / x.sum((1, 2), keepdim=True)
    z = torch.linspace(-1, 1, 512)
    log_n = torch.full((512,), 1.7)
    with torch.inference_mode():
        out, emb = grouped(x, z, log_n)
        ref = torch.stack([net(x, z, log_n) for net in nets])
    assert out.shape == (len(nets), 512, 2)
    # fused first layer: a conv2d kernel on channels-last memory, equal to float32 rounding
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(emb, nets[0].embed(x, z, log_n), rtol=1e-5, atol=1e-5)


def test_predictor_grouped_pass_equals_member_by_member(monkeypatch):
    from astro_cnnmass.model.predictor import Predictor

    predictor = Predictor(ModelBundle.read(bundled_model_path()), device="cpu")
    rng = np.random.default_rng(2)
    images = rng.random((700, 48, 48))
    images /= images.sum((1, 2), keepdims=True)
    images[3] = np.nan
    z = rng.uniform(0.02, 0.25, 700)
    grouped = predictor.predict(images, z, n=np.full(700, 50), return_embeddings=True)
    monkeypatch.setattr(predictor, "grouped_ensemble", False)
    members = predictor.predict(images, z, n=np.full(700, 50), return_embeddings=True)
    for key in ("mean", "std", "member_means", "member_stds", "embeddings"):
        np.testing.assert_array_equal(np.isnan(grouped[key]), np.isnan(members[key]))
        # float32 network outputs, a different first-layer kernel: <= 1e-6 dex apart
        np.testing.assert_allclose(grouped[key], members[key], rtol=0, atol=1e-6, err_msg=key)


def test_unknown_device_raises_at_load():
    with pytest.raises(InputError, match="device"):
        DynamicalMassEstimator.load(device="nonexistent")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            DynamicalMassEstimator.load(device="cuda")
    with pytest.raises(InputError, match="backend"):
        DynamicalMassEstimator.load(backend="jax")


def test_default_device_is_cuda_when_present(monkeypatch):
    est = DynamicalMassEstimator.load()
    if not torch.cuda.is_available():
        assert est.backend == "numpy" and est.default_chunk_size == 2048
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    est = DynamicalMassEstimator.load()
    assert est.backend == "torch"
    assert est._resolved_device().type == "cuda"


def test_gpu_benchmark_exits_cleanly_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the benchmark would run for minutes")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["benchmark"] == "gpu" and "skipped" in result


@pytest.mark.parametrize("n_members", [2, 6])
def test_grouped_ensemble_block_diagonal_and_grouped_convolutions(n_members):
    """Few members: block-diagonal later convolutions; many: grouped ones. Both equal."""
    from astro_cnnmass.model.ensemble import BLOCK_DIAGONAL_MAX_MEMBERS

    config = default_network_config("cnn2d", use_log_n=True)
    nets = _members(config, n_members)
    grouped = GroupedEnsemble(nets)
    expected = 1 if n_members <= BLOCK_DIAGONAL_MAX_MEMBERS else n_members
    assert grouped.conv_groups == [1, expected]
    x = torch.rand(40, 48, 48, generator=torch.Generator().manual_seed(3))
    x = x / x.sum((1, 2), keepdim=True)
    z, log_n = torch.linspace(-1, 1, 40), torch.full((40,), 1.5)
    with torch.inference_mode():
        out, emb = grouped(x, z, log_n)
        ref = torch.stack([net(x, z, log_n) for net in nets])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(emb, nets[0].embed(x, z, log_n), rtol=1e-5, atol=1e-5)
