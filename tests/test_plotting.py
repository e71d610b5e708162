"""Tests for astro_cnnmass.plotting with a fake estimate (duck typing, Agg backend)."""

from types import SimpleNamespace

import astropy.cosmology.units as cu
import astropy.units as u
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from astro_cnnmass.plotting import plot_estimate, plot_phase_space

MSUN_H = u.Msun / cu.littleh
MPC_H = u.Mpc / cu.littleh


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def fake_estimate(**overrides):
    rng = np.random.default_rng(3)
    n = 80
    R = rng.uniform(0, 2.5, n) * MPC_H
    v = rng.normal(0, 900, n) * u.km / u.s
    cylinder = SimpleNamespace(aperture=1.6 * MPC_H, v_cut=2200 * u.km / u.s)
    inside = (R < cylinder.aperture) & (np.abs(v) < cylinder.v_cut)
    yy, xx = np.mgrid[-1:1:48j, 0:1:48j]
    image = np.exp(-(yy**2) / 0.2 - xx / 0.4)
    est = SimpleNamespace(
        mass=10**14.6 * MSUN_H,
        mass_interval=(10**14.45 * MSUN_H, 10**14.75 * MSUN_H),
        log_mass=14.6,
        log_mass_std=0.15,
        m_sigma=10**14.8 * MSUN_H,
        sigma_v=820 * u.km / u.s,
        n_members=int(inside.sum()),
        flags=[],
        method="cnn2d",
        phase_space=SimpleNamespace(R=R, v=v),
        in_cylinder=inside,
        image=image / image.sum(),
        cylinder=cylinder,
    )
    for key, value in overrides.items():
        setattr(est, key, value)
    return est


def test_plot_estimate_draws_three_panels():
    est = fake_estimate()
    fig = plot_estimate(est)
    ax_ps, ax_im, ax_post = fig.axes[:3]

    # phase space: grey outsiders + coloured members, and the cylinder box
    scatters = [c for c in ax_ps.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2
    assert sum(len(c.get_offsets()) for c in scatters) == len(est.in_cylinder)
    boxes = [p for p in ax_ps.patches if isinstance(p, Rectangle)]
    assert len(boxes) == 1
    assert boxes[0].get_width() == pytest.approx(1.6)
    assert boxes[0].get_height() == pytest.approx(4400)

    # image: extent R x v, velocity along y
    (image,) = [a for a in ax_im.get_images() if isinstance(a, AxesImage)]
    assert image.get_extent() == pytest.approx([0, 1.6, -2200, 2200])
    assert image.get_array().shape == (48, 48)

    # posterior: Gaussian curve, estimate line and the M-sigma line
    xs = [line.get_xdata() for line in ax_post.get_lines()]
    vertical = {float(np.atleast_1d(x)[0]) for x in xs if len(np.unique(x)) == 1}
    assert any(abs(x - 14.6) < 1e-9 for x in vertical)
    assert any(abs(x - 14.8) < 1e-9 for x in vertical)
    assert any(len(x) > 100 for x in xs)
    labels = ax_post.get_legend_handles_labels()[1]
    assert any("M–" in label for label in labels)
    fig.canvas.draw()


def test_plot_estimate_into_given_figure_with_interval_only_and_flags():
    fig = plt.figure()
    est = fake_estimate(log_mass_std=float("nan"), flags=["few_members"])
    out = plot_estimate(est, fig=fig)
    assert out is fig
    ax_post = fig.axes[2]
    assert len(ax_post.patches) == 1  # the shaded 68 % interval
    assert "few_members" in fig.get_suptitle()
    fig.canvas.draw()


def test_plot_estimate_without_phase_space_image_or_mass():
    est = fake_estimate(
        phase_space=None,
        in_cylinder=None,
        image=None,
        mass=float("nan") * MSUN_H,
        log_mass=float("nan"),
        log_mass_std=float("nan"),
        mass_interval=None,
        m_sigma=float("nan") * MSUN_H,
    )
    fig = plot_estimate(est)
    assert len(fig.axes) == 3
    assert fig.axes[1].get_images() == []
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no phase space" in texts and "no KDE image" in texts and "no mass measured" in texts
    fig.canvas.draw()


def test_plot_phase_space_checks_mask_length():
    R = [0.1, 0.5, 1.0] * MPC_H
    v = [100, -300, 50] * u.km / u.s
    ax = plot_phase_space(R, v)
    assert len(ax.collections) == 1
    with pytest.raises(ValueError, match="in_cylinder"):
        plot_phase_space(R, v, in_cylinder=np.array([True, False]))
