"""Training of the CNN mass models on mock catalogues.

The pipeline (Ho et al. 2019; paper notes §1.5, §2, §3, §4.1):

1. apply the model's cylinder and build the KDE images (:mod:`astro_cnnmass.model.samples`);
2. sample a training set flat in log M200c (0.02-dex bins, a cap per bin) and split off a
   validation set *by host* (:mod:`astro_cnnmass.model.splits`);
3. fit the M-sigma power law on the same training mocks (sigma = ``np.std`` of the cylinder
   velocities; :class:`astro_cnnmass.MSigmaPowerLaw`);
4. train the networks (Adam, velocity-flip augmentation, max-norm constraint, early stopping on
   the validation loss with the best weights restored), one per ensemble member; optionally
   with sampling-invariant training (issue 13): every training cluster thinned afresh at every
   epoch to a galaxy count drawn independently of its mass, a consistency penalty between two
   thinned views, and log10 N as an explicit network input;
5. fit the interval calibration and out-of-domain models (:mod:`astro_cnnmass.model.calibrate`);
6. return a :class:`~astro_cnnmass.model.bundle.ModelBundle` with everything filled in.

The same code runs on CUDA when available and on the CPU otherwise.

The module is long because it holds one concept, the training run: the loop of
:func:`fit_networks` (ensemble in lockstep, thinned views, consistency penalty, early stopping)
and :func:`train_model`, which assembles everything a bundle records about how it was trained.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..uncertainty.calibration import CALIBRATION_MARGIN_DEX, calibration_mass_range
from .bundle import ModelBundle, _resolve_device, plain, scale_log_mass, scale_redshift
from .calibrate import _calibration_for_predictor, _fit_calibration, _fit_ood_models
from .networks import build_network, default_network_config, loss_function
from .samples import (
    N_MIN_GALAXIES,
    _resolve_configs,
    draw_thinned,
    prepare_features,
    thinning_settings,
    validation_views,
)
from .splits import _sample_and_split

__all__ = ["fit_networks", "train_model"]


# ---------------------------------------------------------------------------- training loop
def _state_to_numpy(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


@torch.no_grad()
def _eval_loss(net, loss_fn, x, z, y, log_n=None, batch: int = 4096) -> float:
    net.eval()
    total = 0.0
    for s in range(0, x.shape[0], batch):
        ln = None if log_n is None else log_n[s : s + batch]
        out = net(x[s : s + batch], z[s : s + batch], ln)
        total += float(loss_fn(out, y[s : s + batch])) * out.shape[0]
    net.train()
    return total / max(x.shape[0], 1)


def _consistency(
    mu_a: torch.Tensor,
    mu_b: torch.Tensor,
    log_n_a: torch.Tensor,
    log_n_b: torch.Tensor,
    target: str,
) -> torch.Tensor:
    """Mean squared difference of two views' predicted means (see :func:`fit_networks`)."""
    if target == "symmetric":
        return torch.mean((mu_a - mu_b) ** 2)
    a_richer = log_n_a >= log_n_b
    rich = torch.where(a_richer, mu_a, mu_b).detach()
    sparse = torch.where(a_richer, mu_b, mu_a)
    return torch.mean((sparse - rich) ** 2)


def _flip(xb: torch.Tensor, fb: torch.Tensor | None) -> torch.Tensor:
    if fb is None:
        return xb
    return torch.where(fb.reshape(-1, *([1] * (xb.ndim - 1))), xb.flip(1), xb)


def fit_networks(
    images: np.ndarray,
    z_scaled: np.ndarray,
    y_scaled: np.ndarray,
    network_config: dict,
    *,
    val: tuple[np.ndarray, ...] | None = None,
    images_subsampled: np.ndarray | None = None,
    log_n: np.ndarray | None = None,
    resample: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]] | None = None,
    consistency_weight: float = 0.0,
    consistency_target: str = "richer",
    n_ensemble: int = 1,
    epochs: int = 20,
    batch_size: int = 50,
    lr: float = 1e-3,
    patience: int | None = 5,
    lr_schedule: str = "cosine",
    lr_decay: float | None = 0.5,
    lr_patience: int = 2,
    flip: bool = True,
    seed: int = 0,
    device: Any = None,
    progress: bool = True,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, Any]]]:
    """Train ``n_ensemble`` networks on prepared arrays.

    Parameters
    ----------
    images : numpy.ndarray, shape (n, n_v, n_R) or (n, n_v)
        Training images (velocity along axis 1).
    z_scaled, y_scaled : numpy.ndarray, shape (n,)
        Scaled redshift and scaled log-mass (see :mod:`astro_cnnmass.model.bundle`).
    network_config : dict
        See :func:`astro_cnnmass.model.networks.build_network`.
    val : (images, z_scaled, y_scaled) or (images, z_scaled, y_scaled, log_n), optional
        Validation set for early stopping; without it the last epoch is kept.
    images_subsampled : numpy.ndarray, shape (k, n, ...), optional
        Thinned versions of the training images (see
        :func:`~astro_cnnmass.model.samples.prepare_features`); at every epoch each sample is
        drawn from its original or one of its thinned versions.
    log_n : numpy.ndarray, shape (n,), optional
        log10 of the number of cylinder galaxies behind each training image (read by networks
        with ``use_log_n``; ignored by the others). With ``images_subsampled`` the thinned
        versions are given the same count, so do not combine the two with ``use_log_n``.
    resample : callable, optional
        ``resample(rng) -> (images, n_galaxies)``: fresh thinned images of the *same* training
        clusters (same order) and their galaxy counts, called at the start of every epoch
        (twice with ``consistency_weight``) and shared by the ensemble members (trained in
        lockstep; the draws use ``numpy.random.default_rng([seed, 1000])``); replaces
        ``images`` for that epoch.
    consistency_weight : float
        With ``resample``: two thinned views of every cluster per epoch, loss = mean of their
        losses + ``consistency_weight * mean((mu_a - mu_b)**2)`` (predicted means, scaled units).
    consistency_target : {"richer", "symmetric"}
        ``"richer"``: the gradient of the penalty flows only through the view with fewer
        galaxies (the richer view's mean is the target, ``detach``-ed), so the penalty moves
        sparse predictions onto rich ones and never rewards shrinking the output range;
        ``"symmetric"``: through both.
    n_ensemble : int
        Number of members (different initialisations and batch orders).
    epochs, batch_size, lr : int, int, float
        Adam with learning rate ``lr``; at most ``epochs`` passes.
    patience : int or None
        Stop after this many epochs without a better validation loss (None: never stop early);
        the best weights are restored.
    lr_schedule : {"cosine", "plateau", "constant"}
        ``"cosine"``: cosine annealing from ``lr`` to ``lr / 100`` over ``epochs``
        (Loshchilov & Hutter 2017, arXiv:1608.03983); ``"plateau"``: multiply by ``lr_decay``
        after ``lr_patience`` epochs without a better validation loss; ``"constant"``: the
        paper's setting.
    lr_decay : float or None
        Factor of the ``"plateau"`` schedule.
    lr_patience : int
        Epochs without improvement before the ``"plateau"`` schedule reduces the rate.
    flip : bool
        Velocity-flip augmentation: each training image is flipped along v with probability 1/2
        at each epoch (the paper doubled the set with flipped copies instead).
    seed : int
        Member ``m`` uses ``torch.manual_seed(seed + m)`` and
        ``numpy.random.default_rng([seed, m])``.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    progress : bool
        Show a tqdm progress bar over epochs.

    Returns
    -------
    state_dicts : list of dict of str to numpy.ndarray
    histories : list of dict
        Per member: ``train_loss`` and ``val_loss`` per epoch, ``best_epoch``, ``epochs_run``,
        ``seconds``.
    """
    from tqdm.auto import tqdm

    device = _resolve_device(device)
    loss_fn = loss_function(network_config["head"])
    if lr_schedule not in ("cosine", "plateau", "constant"):
        raise ValueError(
            f"lr_schedule must be 'cosine', 'plateau' or 'constant', got {lr_schedule!r}"
        )
    if consistency_weight > 0 and resample is None:
        raise ValueError("consistency_weight needs resample (two thinned views per cluster)")
    if consistency_target not in ("richer", "symmetric"):
        raise ValueError(
            f"consistency_target must be 'richer' or 'symmetric', got {consistency_target!r}"
        )
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
    n_views = 2 if consistency_weight > 0 else 1
    lt_full = (
        None
        if log_n is None
        else torch.as_tensor(np.asarray(log_n, dtype=np.float32), device=device)
    )
    n_versions = 1
    if images_subsampled is not None and len(images_subsampled):
        extra = np.asarray(images_subsampled, dtype=np.float32)
        if extra.shape[1:] != tuple(x.shape):
            raise ValueError(
                f"images_subsampled has shape {extra.shape}, expected (k, *{tuple(x.shape)})"
            )
        x = torch.cat([x[None], torch.as_tensor(extra, device=device)])
        n_versions = x.shape[0]
    else:
        x = x[None]
    zt = torch.as_tensor(np.asarray(z_scaled, dtype=np.float32), device=device)
    yt = torch.as_tensor(np.asarray(y_scaled, dtype=np.float32), device=device)
    lv = None
    if val is not None and len(val[0]):
        xv, zv, yv = (
            torch.as_tensor(np.asarray(a, dtype=np.float32), device=device) for a in val[:3]
        )
        if len(val) > 3 and val[3] is not None:
            lv = torch.as_tensor(np.asarray(val[3], dtype=np.float32), device=device)
    else:
        xv = None
    n = x.shape[1]
    if n == 0:
        raise ValueError("no training samples")
    # The members are trained in lockstep (epoch outer, member inner) so that the thinned views
    # of an epoch are drawn once and shared; each member keeps its own torch and numpy random
    # streams, so without resampling the result equals training the members one after another.
    cuda = device.type == "cuda"
    members = []
    for m in range(n_ensemble):
        torch.manual_seed(seed + m)
        net = build_network(network_config).to(device)
        net.apply_max_norm()
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        scheduler: Any = None
        if lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=max(epochs, 1), eta_min=lr / 100
            )
        elif lr_schedule == "plateau" and lr_decay is not None and xv is not None:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=lr_decay, patience=lr_patience
            )
        members.append(
            {
                "net": net,
                "opt": opt,
                "scheduler": scheduler,
                "rng": np.random.default_rng([seed, m]),
                "torch_state": torch.get_rng_state(),
                "cuda_state": torch.cuda.get_rng_state(device) if cuda else None,
                "hist": {"train_loss": [], "val_loss": [], "member": m},
                "best": np.inf,
                "best_state": None,
                "best_epoch": -1,
                "wait": 0,
                "done": False,
                "seconds": 0.0,
            }
        )
    view_rng = np.random.default_rng([seed, 1000])
    bar = tqdm(
        range(epochs),
        desc=f"{n_ensemble} member(s)",
        disable=not progress,
        leave=False,
        file=sys.stderr,
    )
    for epoch in bar:
        active = [mem for mem in members if not mem["done"]]
        if not active:
            break
        t_views = time.perf_counter()
        views: list[tuple[torch.Tensor, torch.Tensor]] = []
        if resample is not None:
            for _ in range(n_views):
                imgs, counts = resample(view_rng)
                views.append(
                    (
                        torch.as_tensor(np.asarray(imgs, dtype=np.float32), device=device),
                        torch.as_tensor(
                            np.log10(np.asarray(counts, dtype=np.float32)), device=device
                        ),
                    )
                )
        t_views = (time.perf_counter() - t_views) / len(active)
        for mem in active:
            t0 = time.perf_counter()
            torch.set_rng_state(mem["torch_state"])
            if cuda:
                torch.cuda.set_rng_state(mem["cuda_state"], device)
            net, opt, rng, hist = mem["net"], mem["opt"], mem["rng"], mem["hist"]
            scheduler = mem["scheduler"]
            perm = torch.as_tensor(rng.permutation(n), device=device)
            flips = [
                torch.as_tensor(rng.random(n) < 0.5, device=device) if flip else None
                for _ in range(max(len(views), 1))
            ]
            version = torch.as_tensor(rng.integers(0, n_versions, n), device=device)
            total = 0.0
            for s in range(0, n, batch_size):
                b = perm[s : s + batch_size]
                opt.zero_grad(set_to_none=True)
                if views:
                    outs = []
                    for (xv_, lv_), fl in zip(views, flips):
                        xb = _flip(xv_[b], None if fl is None else fl[b])
                        outs.append(net(xb, zt[b], lv_[b]))
                    loss = sum(loss_fn(o, yt[b]) for o in outs) / len(outs)
                    if len(outs) > 1:
                        loss = loss + consistency_weight * _consistency(
                            outs[0][:, 0],
                            outs[1][:, 0],
                            views[0][1][b],
                            views[1][1][b],
                            consistency_target,
                        )
                else:
                    xb = _flip(x[version[b], b], None if flips[0] is None else flips[0][b])
                    lb = None if lt_full is None else lt_full[b]
                    loss = loss_fn(net(xb, zt[b], lb), yt[b])
                loss.backward()
                opt.step()
                net.apply_max_norm()
                total += float(loss.detach()) * b.shape[0]
            hist["train_loss"].append(total / n)
            if xv is not None:
                vloss = _eval_loss(net, loss_fn, xv, zv, yv, lv)
                hist["val_loss"].append(vloss)
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(vloss)
                if vloss < mem["best"]:
                    mem["best"], mem["best_epoch"], mem["wait"] = vloss, epoch, 0
                    mem["best_state"] = copy.deepcopy(net.state_dict())
                else:
                    mem["wait"] += 1
                bar.set_postfix(loss=f"{total / n:.4f}", val=f"{vloss:.4f}")
                if patience is not None and mem["wait"] >= patience:
                    mem["done"] = True
            else:
                bar.set_postfix(loss=f"{total / n:.4f}")
            if not mem["done"] and isinstance(
                scheduler, torch.optim.lr_scheduler.CosineAnnealingLR
            ):
                scheduler.step()
            mem["torch_state"] = torch.get_rng_state()
            if cuda:
                mem["cuda_state"] = torch.cuda.get_rng_state(device)
            mem["seconds"] += time.perf_counter() - t0 + t_views
    states, histories = [], []
    for mem in members:
        net, hist = mem["net"], mem["hist"]
        best_epoch = mem["best_epoch"]
        if mem["best_state"] is not None:
            net.load_state_dict(mem["best_state"])
        else:
            best_epoch = len(hist["train_loss"]) - 1
        hist["best_epoch"] = int(best_epoch)
        hist["epochs_run"] = len(hist["train_loss"])
        hist["seconds"] = mem["seconds"]
        states.append(_state_to_numpy(net))
        histories.append(hist)
    return states, histories


# ---------------------------------------------------------------------------- main entry
def _fit_m_sigma(log_m: np.ndarray, sigma: np.ndarray) -> tuple[dict, dict]:
    from ..classical import MSigmaPowerLaw

    fit_range = (14.5, 15.3)
    n_fit = int(((log_m > fit_range[0]) & (log_m < fit_range[1])).sum())
    info: dict[str, Any] = {
        "mass_range": list(fit_range),
        "n_fit": n_fit,
        "sigma": "np.std of cylinder v",
    }
    try:
        m_sigma = MSigmaPowerLaw.fit(
            log_m, sigma, mass_range=fit_range, pivot_log_mass=15.0
        ).to_dict()
    except ValueError as exc:  # too few clusters in the fit range
        m_sigma = {
            "alpha": np.nan,
            "log_sigma15": np.nan,
            "pivot_log_mass": 15.0,
            "scatter": np.nan,
        }
        info["error"] = str(exc)
    return m_sigma, info


def _generator_summary(catalog: Any) -> dict:
    meta = getattr(catalog, "meta", None) or {}
    return plain(dict(meta))


def train_model(
    catalog: Any,
    *,
    model: str = "cnn2d",
    head: str = "gaussian",
    n_ensemble: int = 1,
    cylinder: Any = None,
    feature_config: Any = None,
    network_config: dict | None = None,
    epochs: int = 20,
    batch_size: int = 50,
    lr: float = 1e-3,
    patience: int | None = 5,
    lr_schedule: str = "cosine",
    lr_decay: float | None = 0.5,
    lr_patience: int = 2,
    n_subsampled: int = 0,
    subsample_fraction: tuple[float, float] = (0.3, 1.0),
    thinning: str = "none",
    thin_min: int = N_MIN_GALAXIES,
    thin_fraction: tuple[float, float] = (0.3, 1.0),
    thin_full_fraction: float = 0.0,
    consistency_weight: float = 0.0,
    consistency_target: str = "richer",
    use_log_n: bool = False,
    val_thinned_copies: int = 1,
    mean_calibration: bool = False,
    seed: int = 0,
    device: Any = None,
    val_fraction: float = 0.1,
    dlogm: float = 0.02,
    n_per_bin: int | str | None = "median",
    n_min_galaxies: int = N_MIN_GALAXIES,
    flip: bool = True,
    progress: bool = True,
    command: str | None = None,
    ood_max_fit: int = 20000,
    calibration_margin: float = CALIBRATION_MARGIN_DEX,
) -> ModelBundle:
    """Train a CNN mass model on a mock catalogue and return the complete model bundle.

    Parameters
    ----------
    catalog : MockCatalog
        Training mocks (hold the test hosts out beforehand with
        :func:`~astro_cnnmass.model.splits.train_test_split_by_host` and ``catalog.select``).
    model : {"cnn2d", "cnn1d"}
        Architecture (paper §3.1).
    head : {"gaussian", "point"}
        Output head (Gaussian: per-cluster uncertainty, Ho et al. 2021).
    n_ensemble : int
        Number of independently initialised members.
    cylinder : dict or astro_cnnmass.Cylinder, optional
        Default: that of ``feature_config``, else 1.6 Mpc/h and 2200 km/s.
    feature_config : astro_cnnmass.features.config.FeatureConfig or dict, optional
        Default: ``FeatureConfig(kind=...)`` with the cylinder's aperture and v_cut.
    network_config : dict, optional
        Overrides of :func:`astro_cnnmass.model.networks.default_network_config`.
    epochs, batch_size, lr, patience, lr_schedule, lr_decay, lr_patience, flip, device, progress
        See :func:`fit_networks`.
    n_subsampled, subsample_fraction
        Sampling augmentation of model v1: a fixed bank of thinned versions of every training
        image (see :func:`~astro_cnnmass.model.samples.prepare_features`); 0 turns it off.
    thinning : {"none", "log_uniform", "fraction"}
        Sampling-invariant training (issue 13): at every epoch every training cluster is thinned
        afresh to a galaxy count drawn independently of its mass
        (:func:`astro_cnnmass.model.samples.thinned_counts`; ``"log_uniform"``: log N' uniform
        between log ``thin_min`` and log N). ``"none"``: full galaxy lists only.
    thin_min : int
        Smallest thinned count (galaxies).
    thin_fraction : (float, float)
        Kept-fraction range of ``thinning="fraction"``.
    thin_full_fraction : float
        Probability that a cluster keeps all its galaxies at an epoch.
    consistency_weight : float
        With thinning: two thinned views per cluster and epoch and a penalty
        ``consistency_weight * mean((mu_a - mu_b)**2)`` on their predicted means (scaled units,
        about 1 dex per unit); 0 turns it off.
    consistency_target : {"richer", "symmetric"}
        Whether the penalty pulls only the sparser view onto the richer one (default) or both
        views together (see :func:`fit_networks`).
    use_log_n : bool
        Feed log10 of the number of cylinder galaxies to the dense layers
        (``network_config["use_log_n"]``), so that the network can widen its uncertainty for
        sparse clusters; prediction then needs the counts (``Predictor.predict(..., n=)``).
    val_thinned_copies : int
        With thinning: thinned copies (fixed seed) of every validation cluster added to the
        validation set used for early stopping and for the interval calibration, so that the
        intervals hold for thinned clusters too.
    mean_calibration : bool
        Also fit a constant offset of the predicted log mass on the validation clusters (full
        and thinned; ``target_scaling["calibration"]["mean_offset_dex"]``, subtracted by the
        predictor). The consistency penalty ties every thinned view to a richer one, which
        moves all predictions by a nearly constant amount; this removes it. The std scale is
        then the geometric mean of the 68 % and 90 % scales.
    seed : int
        Seed of the sampling, the split and the networks.
    val_fraction : float
        Fraction of training *hosts* used for early stopping and validation metrics.
    dlogm, n_per_bin
        Flat-mass sampling (see :func:`~astro_cnnmass.model.splits.flat_mass_sample`).
    n_min_galaxies : int
        Minimum number of galaxies in the cylinder (paper: 10).
    command : str, optional
        Command line recorded in the bundle.
    ood_max_fit : int
        At most this many training mocks (a seeded random subset) are embedded to fit the
        out-of-domain model.
    calibration_margin : float
        The interval calibration is fitted on the validation clusters whose true log mass lies
        at least this far (dex) inside the training range (see
        :func:`~astro_cnnmass.uncertainty.calibration.calibration_mass_range`).

    Returns
    -------
    ModelBundle
        With ``metrics["validation"]`` (residual statistics on the validation set),
        ``metrics["scatter_dex"]`` (their standard deviation, dex) and ``metrics["calibration"]``
        (``std_scale``, ``std_fallback`` = scatter_dex, ``fitted_on``, ``n``, ``log_m_range``,
        ``coverage_before``/``coverage_after`` of the 68 % and 90 % intervals on those
        validation clusters). When there is a validation set, the std scale fitted on it
        (:func:`astro_cnnmass.uncertainty.calibration.fit_std_calibration`) is stored in
        ``target_scaling["calibration"]["std_scale"]`` (applied by the predictor) and the three
        out-of-domain models, each fitted on training mocks with its threshold at the 99th
        percentile of the validation scores, in ``domain["ood"]`` (embeddings,
        :func:`astro_cnnmass.uncertainty.ood.fit_ood_model`), ``domain["ood_image"]`` (KDE images,
        :func:`astro_cnnmass.uncertainty.ood.fit_image_ood_model`) and ``domain["ood_summary"]``
        (phase-space summaries given the predicted mass and richness,
        :func:`astro_cnnmass.uncertainty.summary_ood.fit_summary_ood_model`).
    """
    from .metrics import residual_stats
    from .predictor import Predictor

    if model not in ("cnn2d", "cnn1d"):
        raise ValueError(f"model must be 'cnn2d' or 'cnn1d', got {model!r}")
    if n_ensemble < 1:
        raise ValueError(f"n_ensemble must be >= 1, got {n_ensemble}")
    cyl, fconf = _resolve_configs(model, cylinder, feature_config)
    fc = fconf.to_dict()
    n_R = 1 if model == "cnn1d" else int(fc.get("n_R", 48))
    overrides = dict(network_config or {})
    if use_log_n:
        overrides["use_log_n"] = True
    net_cfg = default_network_config(model, head, n_v=int(fc.get("n_v", 48)), n_R=n_R, **overrides)
    sampling = thinning_settings(
        thinning,
        n_min=thin_min,
        fraction=thin_fraction,
        full_fraction=thin_full_fraction,
        consistency_weight=consistency_weight,
        consistency_target=consistency_target,
        val_copies=val_thinned_copies,
    )
    if net_cfg["use_log_n"] and n_subsampled > 0:
        raise ValueError("n_subsampled (fixed thinned bank) cannot give counts: use thinning=")
    prep = prepare_features(
        catalog,
        cyl,
        fconf,
        n_min_galaxies=n_min_galaxies,
        n_subsampled=n_subsampled,
        subsample_fraction=subsample_fraction,
        seed=[seed, 1],
        keep_galaxies=sampling["thinning"] != "none",
    )
    if prep["log_m"].size < 2:
        raise ValueError("fewer than 2 usable mocks after the cylinder and richness cuts")
    rng, sample, tr, va = _sample_and_split(prep, seed, dlogm, n_per_bin, val_fraction)
    log_m_all = prep["log_m"][sample]
    z_all = prep["z"][sample]
    scaling = {
        "kind": "minmax",
        "range": [-1.0, 1.0],
        "log_m_min": float(log_m_all.min()),
        "log_m_max": float(log_m_all.max()),
        "z_min": float(z_all.min()),
        "z_max": float(z_all.max()),
        "calibration": {"std_scale": 1.0},
    }
    if not scaling["log_m_max"] > scaling["log_m_min"]:
        raise ValueError("the training mocks span no range in log M")
    m_sigma, m_sigma_info = _fit_m_sigma(log_m_all, prep["sigma"][sample])

    def arrays(rows):
        return (
            prep["images"][rows],
            scale_redshift(prep["z"][rows], scaling),
            scale_log_mass(prep["log_m"][rows], scaling),
        )

    views = validation_views(prep, va, fconf, sampling, seed)
    val_arrays = (
        views["images"],
        scale_redshift(views["z"], scaling),
        scale_log_mass(views["log_m"], scaling),
        np.log10(views["n_gal"]),
    )

    def resample(gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return draw_thinned(prep, tr, fconf, sampling, gen)

    states, histories = fit_networks(
        *arrays(tr),
        net_cfg,
        val=val_arrays if va.size else None,
        images_subsampled=(
            prep["images_subsampled"][:, tr] if "images_subsampled" in prep else None
        ),
        log_n=np.log10(prep["n_gal"][tr]),
        resample=resample if sampling["thinning"] != "none" else None,
        consistency_weight=sampling["consistency_weight"],
        consistency_target=sampling["consistency_target"],
        n_ensemble=n_ensemble,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        lr_schedule=lr_schedule,
        lr_decay=lr_decay,
        lr_patience=lr_patience,
        flip=flip,
        seed=seed,
        device=device,
        progress=progress,
    )
    n_gal = prep["n_gal"][sample]
    domain = {
        "z_min": scaling["z_min"],
        "z_max": scaling["z_max"],
        "log_m_min": scaling["log_m_min"],
        "log_m_max": scaling["log_m_max"],
        "n_min_galaxies": int(n_min_galaxies),
        "n_galaxies_range": [int(n_gal.min()), int(n_gal.max())],
    }
    training = {
        "n_train": int(tr.size),
        "n_val": int(va.size),
        "n_mocks_input": int(prep["n_input"]),
        "n_dropped_richness": int(prep["n_dropped_richness"]),
        "n_dropped_invalid": int(prep["n_dropped_invalid"]),
        "n_after_flat_sampling": int(sample.size),
        "n_hosts_train": int(np.unique(prep["host_id"][tr]).size),
        "n_hosts_val": int(np.unique(prep["host_id"][va]).size),
        "log_m_range": [scaling["log_m_min"], scaling["log_m_max"]],
        "z_range": [scaling["z_min"], scaling["z_max"]],
        "generator": _generator_summary(catalog),
        "command": command if command is not None else " ".join(sys.argv),
        "epochs": int(epochs),
        "epochs_run": [h["epochs_run"] for h in histories],
        "best_epoch": [h["best_epoch"] for h in histories],
        "batch_size": int(batch_size),
        "optimizer": {
            "name": "Adam",
            "lr": float(lr),
            "lr_schedule": {
                "cosine": "CosineAnnealingLR(T_max=epochs, eta_min=lr/100)",
                "plateau": f"ReduceLROnPlateau(factor={lr_decay}, patience={lr_patience})",
                "constant": "constant",
            }[lr_schedule],
        },
        "sampling_augmentation": {
            "n_subsampled": int(n_subsampled),
            "fraction": [float(f) for f in subsample_fraction],
        },
        "sampling_invariance": {**sampling, "use_log_n": bool(net_cfg["use_log_n"])},
        "patience": patience,
        "flip_augmentation": bool(flip),
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "calibration_margin_dex": float(calibration_margin),
        "mean_calibration": bool(mean_calibration),
        "flat_sampling": {"dlogm": float(dlogm), "n_per_bin": n_per_bin},
        "m_sigma_fit": m_sigma_info,
        "device": str(_resolve_device(device)),
        "torch_version": torch.__version__,
        "seconds": float(sum(h["seconds"] for h in histories)),
        "history": [{"train_loss": h["train_loss"], "val_loss": h["val_loss"]} for h in histories],
    }
    bundle = ModelBundle(
        network_config=net_cfg,
        state_dicts=states,
        feature_config=fc,
        cylinder=cyl,
        target_scaling=scaling,
        training=training,
        m_sigma=m_sigma,
        metrics={},
        domain=domain,
    )
    metrics: dict[str, Any] = {}
    if va.size:
        predictor = Predictor(bundle, device=device)
        # full validation clusters first, then their thinned copies (validation_views)
        pred = predictor.predict(views["images"], views["z"], n=views["n_gal"])
        full = slice(0, va.size)
        eps = pred["mean"] - views["log_m"]
        metrics["validation"] = residual_stats(eps[full])
        if views["log_m"].size > va.size:
            metrics["validation_thinned"] = residual_stats(eps[va.size :])
        metrics["scatter_dex"] = metrics["validation"]["std"]
        # read by the estimator: std_fallback replaces a missing (single point model) std
        metrics["calibration"] = {"std_scale": 1.0, "std_fallback": metrics["scatter_dex"]}
        # interval calibration and out-of-domain model, both on the validation split
        # (astro_cnnmass.uncertainty.calibration); the test mocks are never used here
        metrics["calibration"].update(
            _fit_calibration(
                pred["mean"],
                pred["std"],
                views["log_m"],
                calibration_mass_range(scaling, calibration_margin),
                fit_offset=mean_calibration,
                log_n=np.log10(views["n_gal"]) if net_cfg["use_log_n"] else None,
            )
        )
        pred = {k: pred[k][full] for k in ("mean", "std")}
        scaling["calibration"] = _calibration_for_predictor(metrics["calibration"])
        domain.update(_fit_ood_models(predictor, prep, tr, va, rng, ood_max_fit, pred["mean"]))
    return bundle.replace(metrics=metrics, target_scaling=scaling, domain=domain)
