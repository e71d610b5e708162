"""Load-time checks of a model bundle that passed its digest: can it give meaningful masses?

A digest only proves that a file is the one that was written; a file re-digested after an edit
(NaN weights, a negative ``std_scale``, ``v_cut_kms = 1e9``) passes it. These checks run in
:meth:`astro_cnnmass.model.bundle.ModelBundle.read`, which raises
:class:`~astro_cnnmass.model.bundle.ModelFileError` with the message returned here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["CUT_LIMITS", "usability_problem"]

#: Physical ceilings of a cylinder: aperture [physical Mpc/h] and velocity cut [km/s].
CUT_LIMITS = {"aperture_mpch": 10.0, "v_cut_kms": 1e4}


class _Problem(Exception):
    pass


def usability_problem(bundle: Any) -> str | None:
    """The first reason why ``bundle`` cannot be used, or None when it can.

    Checks, in order: every weight is a finite number; the cylinder and the feature grid's cuts
    are positive and physical (aperture in (0, 10] Mpc/h, v_cut in (0, 10^4] km/s); the target
    scaling is finite and ordered (10 <= log_m_min < log_m_max <= 17 in log10 Msun/h,
    -0.01 < z_min <= z_max <= 10) and the interval calibration ``std_scale`` is in (0, 1000];
    the stored domain is finite and ``n_galaxies_range`` is ``[min, max]``; the feature grid
    matches the network's input; and one dry forward pass of every ensemble member on a blank
    image, on the CPU (torch's random state untouched), gives finite outputs.

    Parameters
    ----------
    bundle : `~astro_cnnmass.model.bundle.ModelBundle`

    Returns
    -------
    str or None
    """
    try:
        _check_weights(bundle)
        _check_scales(bundle)
        _dry_forward_pass(bundle)
    except _Problem as exc:
        return str(exc)
    return None


def _check_weights(bundle: Any) -> None:
    for i, sd in enumerate(bundle.state_dicts):
        for key, arr in sd.items():
            if arr.dtype.kind not in "fiub":
                raise _Problem(f"weight {i}:{key} has dtype {arr.dtype}, expected numbers")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise _Problem(f"weight {i}:{key} holds NaN or infinite values")


def _check_number(value: Any, name: str, lo: float, hi: float, closed: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (lo <= value if closed else lo < value) and value <= hi
    if not ok:
        bracket = "[" if closed else "("
        raise _Problem(f"{name} must be a finite number in {bracket}{lo}, {hi}], got {value!r}")


def _check_scales(bundle: Any) -> None:
    fc = bundle.feature_config
    for key, hi in CUT_LIMITS.items():
        _check_number(bundle.cylinder.get(key), f"cylinder.{key}", 0.0, hi)
        if key in fc:
            _check_number(fc[key], f"feature_config.{key}", 0.0, hi)
    ts = bundle.target_scaling
    _check_number(ts["log_m_min"], "target_scaling.log_m_min", 10.0, 17.0, closed=True)
    _check_number(ts["log_m_max"], "target_scaling.log_m_max", ts["log_m_min"], 17.0)
    _check_number(ts["z_min"], "target_scaling.z_min", -0.01, 10.0)
    _check_number(ts["z_max"], "target_scaling.z_max", ts["z_min"], 10.0, closed=True)
    std_scale = dict(ts.get("calibration") or {}).get("std_scale", 1.0)
    _check_number(std_scale, "target_scaling.calibration.std_scale", 0.0, 1e3)
    dom = bundle.domain
    for key in ("z_min", "z_max", "log_m_min", "log_m_max"):
        if key in dom:
            _check_number(dom[key], f"domain.{key}", -math.inf, math.inf)
    n_range = dom.get("n_galaxies_range")
    if n_range is not None and not (
        isinstance(n_range, list)
        and len(n_range) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in n_range)
        and 0 <= n_range[0] <= n_range[1]
    ):
        raise _Problem(f"domain.n_galaxies_range must be [min, max] counts, got {n_range!r}")


def _dry_forward_pass(bundle: Any) -> None:
    """Build the networks on the CPU and run one blank image through them."""
    import torch

    cfg, fc = bundle.network_config, bundle.feature_config
    arch = cfg.get("arch")
    grid_keys = ("n_v", "n_R") if arch == "cnn2d" else ("n_v",)
    for key in grid_keys:
        if key in fc and fc[key] != cfg.get(key):
            raise _Problem(
                f"feature_config.{key} = {fc[key]!r} but the network expects {cfg.get(key)!r}"
            )
    shape = (1, *(int(cfg.get(k, 48)) for k in grid_keys))
    with torch.random.fork_rng(devices=[]):  # building a network draws initial weights
        try:
            nets = bundle.build_networks("cpu")
        except Exception as exc:
            raise _Problem(f"the network cannot be built: {exc}") from exc
        x = torch.full(shape, 1.0 / math.prod(shape[1:]))
        args = (x, torch.zeros(1)) + ((torch.ones(1),) if cfg.get("use_log_n") else ())
        with torch.no_grad():
            for i, net in enumerate(nets):
                try:
                    out = net(*args)
                except Exception as exc:
                    raise _Problem(
                        f"network {i} does not run on a {shape[1:]} image: {exc}"
                    ) from exc
                if not torch.isfinite(out).all():
                    raise _Problem(f"network {i} gives non-finite outputs on a blank image")
