"""Diagnostic figures for a dynamical mass estimate.

:func:`plot_estimate` draws, side by side, the projected phase space with the
cylinder, the KDE image the network saw, and the mass posterior with the M–σ
cross-check. It only reads attributes of the estimate (duck typing), so it works
with `astro_cnnmass.MassEstimate` and with any object that has the same
attribute names.
"""

from __future__ import annotations

import math
from typing import Any

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np

__all__ = ["plot_estimate", "plot_phase_space"]

_MPC_H = u.Mpc / cu.littleh
_KMS = u.km / u.s
_MSUN_H = u.Msun / cu.littleh


def _quantity_value(q: Any, unit: u.UnitBase) -> float:
    if q is None:
        return math.nan
    return float(u.Quantity(q).to_value(unit))


def _log_mass(q: Any) -> float:
    value = _quantity_value(q, _MSUN_H)
    return math.log10(value) if np.isfinite(value) and value > 0 else math.nan


def plot_phase_space(
    R: u.Quantity,
    v: u.Quantity,
    *,
    in_cylinder: np.ndarray | None = None,
    cylinder: Any = None,
    ax: Any = None,
):
    """Projected phase-space diagram: R vs v, the cylinder members highlighted.

    Parameters
    ----------
    R : `~astropy.units.Quantity`
        Projected radii, physical Mpc/h.
    v : `~astropy.units.Quantity`
        Line-of-sight velocities in the cluster rest frame, km/s.
    in_cylinder : ndarray of bool, optional
        True for galaxies inside the cylinder (drawn in colour); the others are
        grey. Default: all in colour.
    cylinder : object, optional
        Anything with ``aperture`` (Mpc/h) and ``v_cut`` (km/s) Quantities; its box
        is drawn.
    ax : `~matplotlib.axes.Axes`, optional
        Axes to draw on; default a new figure's axes.

    Returns
    -------
    `~matplotlib.axes.Axes`
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots()
    r_val = np.asarray(u.Quantity(R).to_value(_MPC_H), dtype=float)
    v_val = np.asarray(u.Quantity(v).to_value(_KMS), dtype=float)
    inside = (
        np.ones(r_val.shape, dtype=bool)
        if in_cylinder is None
        else np.asarray(in_cylinder, dtype=bool)
    )
    if inside.shape != r_val.shape:
        raise ValueError(
            f"in_cylinder has shape {inside.shape}, expected {r_val.shape} (one per galaxy)"
        )
    if (~inside).any():
        ax.scatter(r_val[~inside], v_val[~inside], s=10, c="0.6", label="outside / rejected")
    ax.scatter(r_val[inside], v_val[inside], s=14, c="C0", label="in cylinder")
    if cylinder is not None:
        ap = _quantity_value(cylinder.aperture, _MPC_H)
        vc = _quantity_value(cylinder.v_cut, _KMS)
        ax.add_patch(
            Rectangle((0.0, -vc), ap, 2 * vc, fill=False, ec="C3", lw=1.2, label="cylinder")
        )
    ax.axhline(0.0, color="0.3", lw=0.5)
    ax.set_xlim(left=0.0)
    ax.set_xlabel(r"$R$ [Mpc $h^{-1}$]")
    ax.set_ylabel(r"$v_{\rm los}$ [km s$^{-1}$]")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _plot_image(ax, image, cylinder) -> None:
    if image is None or not np.all(np.isfinite(image)):
        ax.text(0.5, 0.5, "no KDE image", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    if cylinder is not None:
        ap = _quantity_value(cylinder.aperture, _MPC_H)
        vc = _quantity_value(cylinder.v_cut, _KMS)
    else:  # package defaults
        ap, vc = 1.6, 2200.0
    # axis 0 of the image is velocity (rows -> y), axis 1 is radius (columns -> x)
    im = ax.imshow(
        np.asarray(image, dtype=float),
        origin="lower",
        extent=(0.0, ap, -vc, vc),
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
    )
    ax.figure.colorbar(im, ax=ax, label="density (sum = 1)")
    ax.set_xlabel(r"$R$ [Mpc $h^{-1}$]")
    ax.set_ylabel(r"$v_{\rm los}$ [km s$^{-1}$]")
    ax.set_title("KDE image (network input)", fontsize="medium")


def _plot_posterior(ax, estimate) -> None:
    log_m = float(getattr(estimate, "log_mass", math.nan))
    if not np.isfinite(log_m):
        log_m = _log_mass(getattr(estimate, "mass", None))
    std = float(getattr(estimate, "log_mass_std", math.nan))
    interval = getattr(estimate, "mass_interval", None)
    log_ms = _log_mass(getattr(estimate, "m_sigma", None))
    method = getattr(estimate, "method", "estimate")

    centres = [x for x in (log_m, log_ms) if np.isfinite(x)]
    if np.isfinite(std) and std > 0 and np.isfinite(log_m):
        grid = np.linspace(log_m - 4.5 * std, log_m + 4.5 * std, 400)
        pdf = np.exp(-0.5 * ((grid - log_m) / std) ** 2) / (std * math.sqrt(2 * math.pi))
        ax.plot(grid, pdf, color="C0", label=f"{method} posterior")
        ax.fill_between(
            grid, pdf, where=np.abs(grid - log_m) <= std, color="C0", alpha=0.3, label="68 %"
        )
    elif interval is not None:
        lo, hi = (_log_mass(q) for q in interval)
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color="C0", alpha=0.3, label="68 % interval")
            centres += [lo, hi]
    if np.isfinite(log_m):
        ax.axvline(log_m, color="C0", lw=1.5, label=rf"{method}: $\log M$ = {log_m:.2f}")
    if np.isfinite(log_ms):
        ax.axvline(
            log_ms, color="C3", ls="--", lw=1.5, label=rf"M–$\sigma$: $\log M$ = {log_ms:.2f}"
        )
    if not centres:
        ax.text(0.5, 0.5, "no mass measured", ha="center", va="center", transform=ax.transAxes)
    else:
        half = max(4.5 * std if np.isfinite(std) else 0.0, 0.5)
        ax.set_xlim(min(centres) - half, max(centres) + half)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(r"$\log_{10} M_{200c}$ [$M_\odot\,h^{-1}$]")
    ax.set_ylabel("probability density [dex$^{-1}$]")
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="upper right", fontsize="small")


def plot_estimate(estimate: Any, fig: Any = None):
    """Three-panel diagnostic figure of a mass estimate.

    Left: the projected phase space (R vs v), galaxies inside the cylinder in
    colour, the others grey, the cylinder box in red. Middle: the KDE image the
    network saw (``imshow`` over R × v). Right: the mass posterior, a Gaussian in
    log10 M200c from ``log_mass`` and ``log_mass_std`` (or the 68 % interval when no
    standard deviation is available), with the M–σ cross-check as a dashed line.

    Parameters
    ----------
    estimate : object
        A `~astro_cnnmass.MassEstimate` or any object with the
        attributes ``mass`` (Quantity, Msun/h), ``mass_interval`` (pair of
        Quantities or None), ``log_mass``, ``log_mass_std`` (dex; NaN if unknown),
        ``m_sigma`` (Quantity, Msun/h), ``sigma_v`` (Quantity, km/s),
        ``n_members``, ``flags``, ``method``, ``phase_space`` (with ``R`` [Mpc/h]
        and ``v`` [km/s] Quantities, or None), ``in_cylinder`` (bool array or
        None), ``image`` (2-D array, axis 0 velocity, axis 1 radius, or None) and
        ``cylinder`` (with ``aperture`` and ``v_cut`` Quantities).
    fig : `~matplotlib.figure.Figure`, optional
        An empty figure to draw into; default a new 15 × 4.5 inch figure.

    Returns
    -------
    `~matplotlib.figure.Figure`
        With three axes, in the order phase space, image, posterior.
    """
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(15, 4.5))
    ax_ps, ax_im, ax_post = fig.subplots(1, 3)
    cylinder = getattr(estimate, "cylinder", None)

    ps = getattr(estimate, "phase_space", None)
    if ps is not None:
        plot_phase_space(
            ps.R,
            ps.v,
            in_cylinder=getattr(estimate, "in_cylinder", None),
            cylinder=cylinder,
            ax=ax_ps,
        )
    else:
        ax_ps.text(0.5, 0.5, "no phase space", ha="center", va="center", transform=ax_ps.transAxes)
        ax_ps.set_axis_off()
    sigma = _quantity_value(getattr(estimate, "sigma_v", None), _KMS)
    n_mem = getattr(estimate, "n_members", None)
    title = f"N = {n_mem}" if n_mem is not None else ""
    if np.isfinite(sigma):
        title += rf", $\sigma_v$ = {sigma:.0f} km s$^{{-1}}$"
    ax_ps.set_title(title.strip(", "), fontsize="medium")

    _plot_image(ax_im, getattr(estimate, "image", None), cylinder)
    _plot_posterior(ax_post, estimate)

    flags = list(getattr(estimate, "flags", ()) or ())
    if flags:
        fig.suptitle("flags: " + ", ".join(flags), fontsize="small", color="C3")
    fig.tight_layout()
    return fig
