"""Training of the CNN mass models on mock catalogues.

The pipeline (Ho et al. 2019; paper notes §1.5, §2, §3, §4.1):

1. apply the model's cylinder (:func:`astro_cnnmass.phase_space.cylinder_mask`) to every mock
   and drop mocks with fewer than ``n_min_galaxies`` (10) galaxies inside it;
2. build the KDE images with :func:`astro_cnnmass.features.kde_images`;
3. sample a training set flat in log M200c (0.02-dex bins, a cap per bin);
4. split off a validation set *by host* (all lines of sight of a host stay together);
5. fit the M-sigma power law on the same training mocks (sigma = ``np.std`` of the cylinder
   velocities; :class:`astro_cnnmass.MSigmaPowerLaw`);
6. train the networks (Adam, velocity-flip augmentation, max-norm constraint, early stopping on
   the validation loss with the best weights restored), one per ensemble member;
7. return a :class:`~astro_cnnmass.weights.ModelBundle` with everything filled in.

The same code runs on CUDA when available and on the CPU otherwise.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any

import numpy as np
import torch

from .networks import build_network, default_network_config, loss_function
from .weights import ModelBundle, _resolve_device, plain, scale_log_mass, scale_redshift

__all__ = [
    "add_train_subparser",
    "calibration_mass_range",
    "fit_networks",
    "flat_mass_sample",
    "kfold_by_host",
    "prepare_features",
    "refit_uncertainty",
    "run_train_command",
    "train_model",
    "train_test_split_by_host",
]

N_MIN_GALAXIES = 10
#: Interval calibration uses validation clusters this far (dex) inside the training mass range
#: (:func:`calibration_mass_range`): 13.5-15.5 -> 14-15, the range of the paper's figures.
CALIBRATION_MARGIN_DEX = 0.5
DEFAULT_CYLINDER = {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}


# ---------------------------------------------------------------------------- helpers
def _floats(x: Any) -> np.ndarray:
    """Plain float64 array from an array or a Quantity (assumed in the package's units)."""
    if hasattr(x, "unit") and hasattr(x, "value"):
        x = x.value
    return np.asarray(x, dtype=float)


def _host_ids(catalog_clusters: Any) -> np.ndarray:
    if hasattr(catalog_clusters, "clusters"):
        catalog_clusters = catalog_clusters.clusters
    if isinstance(catalog_clusters, dict):
        if "host_id" not in catalog_clusters:
            raise ValueError("catalog clusters need a 'host_id' column to split by host")
        return np.asarray(catalog_clusters["host_id"])
    return np.asarray(catalog_clusters)


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# ---------------------------------------------------------------------------- splits
def train_test_split_by_host(
    catalog_clusters: Any, test_fraction: float = 0.1, seed: Any = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split clusters (lines of sight) into train and test sets by host halo.

    Parameters
    ----------
    catalog_clusters : dict, MockCatalog or array-like
        ``MockCatalog.clusters`` (a dict with a ``host_id`` column), a catalogue, or the host ids.
    test_fraction : float
        Fraction of *hosts* in the test set, in [0, 1).
    seed : int or numpy.random.Generator

    Returns
    -------
    train_idx, test_idx : numpy.ndarray of int
        Sorted row indices; no host appears in both.
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    hosts = _host_ids(catalog_clusters)
    unique = np.unique(hosts)
    n_test = round(test_fraction * unique.size)
    test_hosts = _rng(seed).choice(unique, size=n_test, replace=False)
    is_test = np.isin(hosts, test_hosts)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def kfold_by_host(
    catalog_clusters: Any,
    n_folds: int = 10,
    seed: Any = 0,
    log_m: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold splits by host: every line of sight of a host falls in the same fold.

    Parameters
    ----------
    catalog_clusters : dict, MockCatalog or array-like
        As in :func:`train_test_split_by_host`.
    n_folds : int
        Number of folds (paper: 10).
    seed : int or numpy.random.Generator
    log_m : array-like, optional
        log10 M200c per row. If given, folds are stratified by host mass rank (each block of
        ``n_folds`` consecutive hosts in mass gives one host to each fold), as in the paper.

    Returns
    -------
    list of (train_idx, test_idx)
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    rng = _rng(seed)
    hosts = _host_ids(catalog_clusters)
    unique, inverse = np.unique(hosts, return_inverse=True)
    if unique.size < n_folds:
        raise ValueError(f"{unique.size} hosts cannot fill {n_folds} folds")
    if log_m is not None:
        host_m = np.bincount(inverse, weights=_floats(log_m)) / np.bincount(inverse)
        order = np.argsort(host_m, kind="stable")
    else:
        order = rng.permutation(unique.size)
    fold_of_host = np.empty(unique.size, dtype=int)
    for start in range(0, unique.size, n_folds):
        block = order[start : start + n_folds]
        fold_of_host[block] = rng.permutation(n_folds)[: block.size]
    fold = fold_of_host[inverse]
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_folds)]


def flat_mass_sample(
    log_m: np.ndarray,
    *,
    dlogm: float = 0.02,
    n_per_bin: int | str | None = "median",
    seed: Any = 0,
) -> np.ndarray:
    """Indices of a subsample flat in log M (paper §1.5: 0.02-dex bins, capped counts).

    Parameters
    ----------
    log_m : array-like
        log10 M200c [Msun/h].
    dlogm : float
        Bin width in dex.
    n_per_bin : int, "median" or None
        Cap per bin (the paper used 126 for the MDPL2 box); ``"median"``: the median count of
        the non-empty bins; None: no cap (all rows).
    seed : int or numpy.random.Generator

    Returns
    -------
    numpy.ndarray of int
        Sorted indices of the selected rows. Bins with fewer rows than the cap keep all of them.
    """
    log_m = _floats(log_m)
    if n_per_bin is None or log_m.size == 0:
        return np.arange(log_m.size)
    rng = _rng(seed)
    bins = np.floor((log_m - np.nanmin(log_m)) / dlogm).astype(int)
    counts = np.bincount(bins)
    if n_per_bin == "median":
        cap = max(int(np.median(counts[counts > 0])), 1)
    elif isinstance(n_per_bin, int | np.integer) and n_per_bin > 0:
        cap = int(n_per_bin)
    else:
        raise ValueError(f"n_per_bin must be a positive int, 'median' or None, got {n_per_bin!r}")
    # random priority within each bin: keep the `cap` rows of lowest priority
    priority = rng.random(log_m.size)
    order = np.lexsort((priority, bins))
    rank = np.empty(log_m.size, dtype=int)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(log_m.size) - starts[bins[order]]
    return np.flatnonzero(rank < cap)


# ---------------------------------------------------------------------------- features
def _resolve_configs(
    model: str, cylinder: Any, feature_config: Any
) -> tuple[dict, Any]:
    from .features import FeatureConfig

    if cylinder is not None and not isinstance(cylinder, dict):
        cylinder = cylinder.to_dict()
    kind = {"cnn2d": "2d", "cnn1d": "1d"}[model]
    if feature_config is None:
        cyl = dict(cylinder or DEFAULT_CYLINDER)
        feature_config = FeatureConfig(
            kind=kind, aperture_mpch=cyl["aperture_mpch"], v_cut_kms=cyl["v_cut_kms"]
        )
    elif isinstance(feature_config, dict):
        feature_config = FeatureConfig.from_dict(feature_config)
    fc = feature_config.to_dict()
    if fc.get("kind", kind) != kind:
        raise ValueError(f"model {model!r} needs {kind!r} features, got kind={fc.get('kind')!r}")
    from_fc = {"aperture_mpch": float(fc["aperture_mpch"]), "v_cut_kms": float(fc["v_cut_kms"])}
    if cylinder is None:
        cylinder = from_fc
    cylinder = {k: float(cylinder[k]) for k in ("aperture_mpch", "v_cut_kms")}
    if cylinder != from_fc:
        raise ValueError(f"cylinder {cylinder} differs from the feature grid {from_fc}")
    return cylinder, feature_config


def prepare_features(
    catalog: Any,
    cylinder: dict,
    feature_config: Any,
    *,
    n_min_galaxies: int = N_MIN_GALAXIES,
    n_subsampled: int = 0,
    subsample_fraction: tuple[float, float] = (0.3, 1.0),
    seed: Any = 0,
) -> dict[str, np.ndarray]:
    """Cylinder cut, richness cut, velocity dispersion and KDE images for every mock.

    Parameters
    ----------
    catalog : MockCatalog
        Flat galaxy arrays ``R`` [Mpc/h], ``v`` [km/s], ``offsets`` and ``clusters`` (with
        ``log_m200c``, ``z``, ``host_id``).
    cylinder : dict
        ``{"aperture_mpch", "v_cut_kms"}``.
    feature_config : astro_cnnmass.features.FeatureConfig
    n_min_galaxies : int
        Mocks with fewer galaxies in the cylinder are dropped.
    n_subsampled : int
        Number of extra, randomly thinned versions of every image (sampling augmentation):
        in each, a cluster keeps a random fraction ``f ~ U(subsample_fraction)`` of its
        cylinder galaxies (at least ``n_min_galaxies``). They teach the network that the
        same cluster observed by a shallower or sparser survey has the same mass.
    subsample_fraction : (float, float)
        Range of the kept fraction.
    seed : int or numpy.random.Generator
        Seed of the thinning.

    Returns
    -------
    dict of numpy.ndarray
        ``index`` (rows of the catalogue kept), ``images`` (float32), ``images_subsampled``
        (``(n_subsampled, n, ...)`` float32, where present), ``log_m``, ``z``, ``host_id``,
        ``sigma`` (np.std of v in the cylinder, km/s), ``n_gal``, ``summaries`` (dict of arrays:
        :func:`astro_cnnmass.summary_ood.phase_space_summaries`), and the counts ``n_input``,
        ``n_dropped_richness``, ``n_dropped_invalid``. Only mocks with a valid image are kept.
    """
    from .classical import grouped_std
    from .features import kde_images
    from .phase_space import cylinder_mask
    from .summary_ood import phase_space_summaries

    R, v = _floats(catalog.R), _floats(catalog.v)
    offsets = np.asarray(catalog.offsets, dtype=np.int64)
    n = offsets.size - 1
    cid = np.repeat(np.arange(n), np.diff(offsets))
    inside = cylinder_mask(R, v, cylinder["aperture_mpch"], cylinder["v_cut_kms"])
    counts = np.bincount(cid[inside], minlength=n)
    rich = counts >= n_min_galaxies
    sel = inside & rich[cid]
    R2, v2 = R[sel], v[sel]
    new_off = np.concatenate([[0], np.cumsum(counts[rich])]).astype(np.int64)
    idx = np.flatnonzero(rich)
    sigma = grouped_std(v2, new_off)  # the M–σ baseline's σ, as in the estimator
    images, valid = kde_images(R2, v2, new_off, feature_config)
    valid = np.asarray(valid, dtype=bool)
    images = np.asarray(images, dtype=np.float32)
    clusters = catalog.clusters
    out = {
        "index": idx[valid],
        "images": images[valid],
        "log_m": _floats(clusters["log_m200c"])[idx][valid],
        "z": _floats(clusters["z"])[idx][valid],
        "host_id": np.asarray(clusters["host_id"])[idx][valid],
        "sigma": sigma[valid],
        "n_gal": counts[rich][valid],
        "summaries": {k: a[valid] for k, a in phase_space_summaries(
            R2, v2, new_off, cylinder["aperture_mpch"], cylinder["v_cut_kms"]).items()},
        "n_input": np.asarray(n),
        "n_dropped_richness": np.asarray(int((~rich).sum())),
        "n_dropped_invalid": np.asarray(int((~valid).sum())),
    }
    if n_subsampled > 0:
        rng = _rng(seed)
        versions = []
        for _ in range(int(n_subsampled)):
            thin = _thinned_images(R2, v2, new_off, feature_config, n_min_galaxies,
                                   subsample_fraction, rng)
            bad = ~np.isfinite(thin.reshape(thin.shape[0], -1)).all(axis=1)
            thin[bad] = images[bad]  # an undefined thinned KDE falls back to the full one
            versions.append(thin[valid])
        out["images_subsampled"] = np.stack(versions)
    return out


def _thinned_images(R, v, offsets, feature_config, n_min, fraction, rng) -> np.ndarray:
    """KDE images of every cluster after keeping a random fraction of its galaxies."""
    from .features import kde_images

    counts = np.diff(offsets)
    n = counts.size
    f = rng.uniform(fraction[0], fraction[1], n)
    keep = np.minimum(counts, np.maximum(n_min, np.round(f * counts))).astype(np.int64)
    cid = np.repeat(np.arange(n), counts)
    order = np.lexsort((rng.random(cid.size), cid))  # random order within each cluster
    rank = np.empty(cid.size, dtype=np.int64)
    rank[order] = np.arange(cid.size) - np.repeat(offsets[:-1], counts)
    sel = rank < keep[cid]
    new_off = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
    images, _ = kde_images(R[sel], v[sel], new_off, feature_config)
    return np.asarray(images, dtype=np.float32)


# ---------------------------------------------------------------------------- training loop
def _state_to_numpy(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


@torch.no_grad()
def _eval_loss(net, loss_fn, x, z, y, batch: int = 4096) -> float:
    net.eval()
    total = 0.0
    for s in range(0, x.shape[0], batch):
        out = net(x[s : s + batch], z[s : s + batch])
        total += float(loss_fn(out, y[s : s + batch])) * out.shape[0]
    net.train()
    return total / max(x.shape[0], 1)


def fit_networks(
    images: np.ndarray,
    z_scaled: np.ndarray,
    y_scaled: np.ndarray,
    network_config: dict,
    *,
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    images_subsampled: np.ndarray | None = None,
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
        Scaled redshift and scaled log-mass (see :mod:`astro_cnnmass.weights`).
    network_config : dict
        See :func:`astro_cnnmass.networks.build_network`.
    val : (images, z_scaled, y_scaled), optional
        Validation set for early stopping; without it the last epoch is kept.
    images_subsampled : numpy.ndarray, shape (k, n, ...), optional
        Thinned versions of the training images (see :func:`prepare_features`); at every
        epoch each sample is drawn from its original or one of its thinned versions.
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
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
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
    if val is not None and len(val[0]):
        xv, zv, yv = (
            torch.as_tensor(np.asarray(a, dtype=np.float32), device=device) for a in val
        )
    else:
        xv = None
    n = x.shape[1]
    if n == 0:
        raise ValueError("no training samples")
    states, histories = [], []
    for m in range(n_ensemble):
        torch.manual_seed(seed + m)
        rng = np.random.default_rng([seed, m])
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
        hist: dict[str, Any] = {"train_loss": [], "val_loss": [], "member": m}
        best, best_state, best_epoch, wait = np.inf, None, -1, 0
        t0 = time.perf_counter()
        bar = tqdm(
            range(epochs),
            desc=f"member {m + 1}/{n_ensemble}",
            disable=not progress,
            leave=False,
            file=sys.stderr,
        )
        for epoch in bar:
            perm = torch.as_tensor(rng.permutation(n), device=device)
            flips = torch.as_tensor(rng.random(n) < 0.5, device=device) if flip else None
            version = torch.as_tensor(rng.integers(0, n_versions, n), device=device)
            total = 0.0
            for s in range(0, n, batch_size):
                b = perm[s : s + batch_size]
                xb = x[version[b], b]
                if flips is not None:
                    fb = flips[b]
                    xb = torch.where(fb.reshape(-1, *([1] * (xb.ndim - 1))), xb.flip(1), xb)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(xb, zt[b]), yt[b])
                loss.backward()
                opt.step()
                net.apply_max_norm()
                total += float(loss.detach()) * b.shape[0]
            hist["train_loss"].append(total / n)
            if xv is not None:
                vloss = _eval_loss(net, loss_fn, xv, zv, yv)
                hist["val_loss"].append(vloss)
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(vloss)
                if vloss < best:
                    best, best_epoch, wait = vloss, epoch, 0
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    wait += 1
                bar.set_postfix(loss=f"{total / n:.4f}", val=f"{vloss:.4f}")
                if patience is not None and wait >= patience:
                    break
            else:
                bar.set_postfix(loss=f"{total / n:.4f}")
            if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
                scheduler.step()
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            best_epoch = len(hist["train_loss"]) - 1
        hist["best_epoch"] = int(best_epoch)
        hist["epochs_run"] = len(hist["train_loss"])
        hist["seconds"] = time.perf_counter() - t0
        states.append(_state_to_numpy(net))
        histories.append(hist)
    return states, histories


# ---------------------------------------------------------------------------- main entry
def _fit_m_sigma(log_m: np.ndarray, sigma: np.ndarray) -> tuple[dict, dict]:
    from .classical import MSigmaPowerLaw

    fit_range = (14.5, 15.3)
    n_fit = int(((log_m > fit_range[0]) & (log_m < fit_range[1])).sum())
    info: dict[str, Any] = {
        "mass_range": list(fit_range), "n_fit": n_fit, "sigma": "np.std of cylinder v"
    }
    try:
        m_sigma = MSigmaPowerLaw.fit(
            log_m, sigma, mass_range=fit_range, pivot_log_mass=15.0
        ).to_dict()
    except ValueError as exc:  # too few clusters in the fit range
        m_sigma = {"alpha": np.nan, "log_sigma15": np.nan, "pivot_log_mass": 15.0,
                   "scatter": np.nan}
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
        :func:`train_test_split_by_host` and ``catalog.select``).
    model : {"cnn2d", "cnn1d"}
        Architecture (paper §3.1).
    head : {"gaussian", "point"}
        Output head (Gaussian: per-cluster uncertainty, Ho et al. 2021).
    n_ensemble : int
        Number of independently initialised members.
    cylinder : dict or astro_cnnmass.Cylinder, optional
        Default: that of ``feature_config``, else 1.6 Mpc/h and 2200 km/s.
    feature_config : astro_cnnmass.features.FeatureConfig or dict, optional
        Default: ``FeatureConfig(kind=...)`` with the cylinder's aperture and v_cut.
    network_config : dict, optional
        Overrides of :func:`astro_cnnmass.networks.default_network_config`.
    epochs, batch_size, lr, patience, lr_schedule, lr_decay, lr_patience, flip, device, progress
        See :func:`fit_networks`.
    n_subsampled, subsample_fraction
        Sampling augmentation: thinned versions of every training image (see
        :func:`prepare_features`); 0 turns it off.
    seed : int
        Seed of the sampling, the split and the networks.
    val_fraction : float
        Fraction of training *hosts* used for early stopping and validation metrics.
    dlogm, n_per_bin
        Flat-mass sampling (see :func:`flat_mass_sample`).
    n_min_galaxies : int
        Minimum number of galaxies in the cylinder (paper: 10).
    command : str, optional
        Command line recorded in the bundle.
    ood_max_fit : int
        At most this many training mocks (a seeded random subset) are embedded to fit the
        out-of-domain model.
    calibration_margin : float
        The interval calibration is fitted on the validation clusters whose true log mass lies
        at least this far (dex) inside the training range (see :func:`calibration_mass_range`).

    Returns
    -------
    ModelBundle
        With ``metrics["validation"]`` (residual statistics on the validation set),
        ``metrics["scatter_dex"]`` (their standard deviation, dex) and ``metrics["calibration"]``
        (``std_scale``, ``std_fallback`` = scatter_dex, ``fitted_on``, ``n``, ``log_m_range``,
        ``coverage_before``/``coverage_after`` of the 68 % and 90 % intervals on those
        validation clusters). When there is a validation set, the std scale fitted on it
        (:func:`astro_cnnmass.uncertainty.fit_std_calibration`) is stored in
        ``target_scaling["calibration"]["std_scale"]`` (applied by the predictor) and the three
        out-of-domain models, each fitted on training mocks with its threshold at the 99th
        percentile of the validation scores, in ``domain["ood"]`` (embeddings,
        :func:`astro_cnnmass.uncertainty.fit_ood_model`), ``domain["ood_image"]`` (KDE images,
        :func:`astro_cnnmass.uncertainty.fit_image_ood_model`) and ``domain["ood_summary"]``
        (phase-space summaries given the predicted mass and richness,
        :func:`astro_cnnmass.summary_ood.fit_summary_ood_model`).
    """
    from .evaluation import residual_stats
    from .inference import Predictor

    if model not in ("cnn2d", "cnn1d"):
        raise ValueError(f"model must be 'cnn2d' or 'cnn1d', got {model!r}")
    if n_ensemble < 1:
        raise ValueError(f"n_ensemble must be >= 1, got {n_ensemble}")
    cyl, fconf = _resolve_configs(model, cylinder, feature_config)
    fc = fconf.to_dict()
    n_R = 1 if model == "cnn1d" else int(fc.get("n_R", 48))
    net_cfg = default_network_config(
        model, head, n_v=int(fc.get("n_v", 48)), n_R=n_R, **(network_config or {})
    )
    prep = prepare_features(catalog, cyl, fconf, n_min_galaxies=n_min_galaxies,
                            n_subsampled=n_subsampled, subsample_fraction=subsample_fraction,
                            seed=[seed, 1])
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

    states, histories = fit_networks(
        *arrays(tr),
        net_cfg,
        val=arrays(va) if va.size else None,
        images_subsampled=(prep["images_subsampled"][:, tr]
                           if "images_subsampled" in prep else None),
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
        "patience": patience,
        "flip_augmentation": bool(flip),
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "calibration_margin_dex": float(calibration_margin),
        "flat_sampling": {"dlogm": float(dlogm), "n_per_bin": n_per_bin},
        "m_sigma_fit": m_sigma_info,
        "device": str(_resolve_device(device)),
        "torch_version": torch.__version__,
        "seconds": float(sum(h["seconds"] for h in histories)),
        "history": [
            {"train_loss": h["train_loss"], "val_loss": h["val_loss"]} for h in histories
        ],
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
        pred = predictor.predict(prep["images"][va], prep["z"][va])
        eps = pred["mean"] - prep["log_m"][va]
        metrics["validation"] = residual_stats(eps)
        metrics["scatter_dex"] = metrics["validation"]["std"]
        # read by the estimator: std_fallback replaces a missing (single point model) std
        metrics["calibration"] = {"std_scale": 1.0, "std_fallback": metrics["scatter_dex"]}
        # interval calibration and out-of-domain model, both on the validation split
        # (astro_cnnmass.uncertainty); the test mocks are never used here
        metrics["calibration"].update(_fit_calibration(
            pred["mean"], pred["std"], prep["log_m"][va],
            calibration_mass_range(scaling, calibration_margin),
        ))
        scaling["calibration"] = _calibration_for_predictor(metrics["calibration"])
        domain.update(_fit_ood_models(predictor, prep, tr, va, rng, ood_max_fit, pred["mean"]))
    return bundle.replace(metrics=metrics, target_scaling=scaling, domain=domain)


def _sample_and_split(prep: dict, seed: int, dlogm: float, n_per_bin: Any,
                      val_fraction: float) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Flat-mass sample and training / validation split by host (rows of ``prep``).

    Returns the generator too: :func:`_fit_ood_models` draws from it afterwards, so that
    :func:`refit_uncertainty` reproduces the split and the fit rows of :func:`train_model`.
    """
    rng = np.random.default_rng(seed)
    sample = flat_mass_sample(prep["log_m"], dlogm=dlogm, n_per_bin=n_per_bin, seed=rng)
    tr_rel, va_rel = train_test_split_by_host(prep["host_id"][sample], val_fraction, rng)
    return rng, sample, sample[tr_rel], sample[va_rel]


def _fit_ood_models(predictor: Any, prep: dict, tr: np.ndarray, va: np.ndarray,
                    rng: np.random.Generator, ood_max_fit: int,
                    val_mean: np.ndarray) -> dict[str, dict]:
    """The three out-of-domain models: fit on training rows, thresholds on validation rows.

    ``val_mean`` is the ensemble's predicted log mass of the validation rows (already computed
    for the calibration).
    """
    from .summary_ood import fit_summary_ood_model

    n_fit = min(tr.size, ood_max_fit)
    fit_rows = np.sort(rng.choice(tr, size=n_fit, replace=False)) if n_fit else tr
    models = {"ood": _fit_ood(predictor, prep, fit_rows, va),
              "ood_image": _fit_image_ood(prep, fit_rows, va)}
    k = min(500, fit_rows.size // 4)
    if k >= 20:  # enough training mocks for a local (conditional) covariance
        def summaries(r):
            return {key: a[r] for key, a in prep["summaries"].items()}

        fit_mean = predictor.predict(prep["images"][fit_rows], prep["z"][fit_rows])["mean"]
        models["ood_summary"] = fit_summary_ood_model(
            fit_mean, summaries(fit_rows), val_mean, summaries(va), k=k)
    return models


def calibration_mass_range(scaling: dict, margin: float = CALIBRATION_MARGIN_DEX
                           ) -> tuple[float, float]:
    """True log-mass range whose validation clusters calibrate the intervals.

    The flat training prior stops at the edges of the training range, so estimates within a few
    tenths of a dex of them are pulled inwards and their residuals are larger. Ho et al. 2019
    (arXiv:1902.05950) therefore train from 10^13.5 Msun/h and report on 10^14–10^15 Msun/h,
    and so does this package. A std scale fitted over the whole range would widen every
    interval to cover those edge effects, so the calibration uses the validation clusters at
    least ``margin`` dex inside the edges.

    Parameters
    ----------
    scaling : dict
        ``bundle.target_scaling`` (``log_m_min``, ``log_m_max``: the training range, log10
        Msun/h).
    margin : float
        Dex; 0 uses the whole training range.

    Returns
    -------
    (float, float)
        ``(low, high)`` in log10 Msun/h; the whole range if the margin leaves nothing.
    """
    lo, hi = float(scaling["log_m_min"]), float(scaling["log_m_max"])
    if margin < 0:
        raise ValueError(f"calibration margin must be >= 0, got {margin}")
    if hi - lo <= 2 * margin:
        return lo, hi
    return lo + margin, hi - margin


def _fit_calibration(mean: np.ndarray, std: np.ndarray, log_m: np.ndarray,
                     log_m_range: tuple[float, float]) -> dict[str, Any]:
    """Std scale fitted on the validation clusters inside ``log_m_range``, with coverage."""
    from .evaluation import interval_coverage
    from .uncertainty import fit_std_calibration

    ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
    inside = ok & (log_m >= log_m_range[0]) & (log_m <= log_m_range[1])
    note = None
    if inside.sum() < 10 and ok.sum() > inside.sum():  # too few away from the edges: use all
        inside, log_m_range = ok, (float(np.min(log_m[ok])), float(np.max(log_m[ok])))
        note = "fewer than 10 validation clusters inside the margins: fitted on all of them"
    out: dict[str, Any] = {
        "fitted_on": "validation", "n": int(inside.sum()), "level": 0.68, "mc_dropout": 0,
        "log_m_range": [float(log_m_range[0]), float(log_m_range[1])],
    }
    if note:
        out["note"] = note
    if inside.sum() < 10:
        out["std_scale"] = 1.0
        out["note"] = "no calibration: fewer than 10 validation clusters with a predicted std"
        return out
    scale = fit_std_calibration(mean[inside], std[inside], log_m[inside], level=0.68)
    out["std_scale"] = scale
    out["coverage_before"] = interval_coverage(log_m[inside], mean[inside],
                                               std[inside])["overall"]
    out["coverage_after"] = interval_coverage(log_m[inside], mean[inside],
                                              std[inside] * scale)["overall"]
    return out


def _calibration_for_predictor(calibration: dict) -> dict[str, Any]:
    """The part of a fitted calibration the predictor applies (``target_scaling``)."""
    return {"std_scale": float(calibration["std_scale"])}


def _fit_ood(predictor: Any, prep: dict, fit_rows: np.ndarray, va: np.ndarray) -> dict:
    """Mahalanobis OOD model on member-0 embeddings: fit on training, threshold on validation."""
    from .uncertainty import embeddings, fit_ood_model

    e_fit = embeddings(predictor, prep["images"][fit_rows], prep["z"][fit_rows])
    e_val = embeddings(predictor, prep["images"][va], prep["z"][va])
    return fit_ood_model(e_fit, e_val, percentile=99.0)


def _fit_image_ood(prep: dict, fit_rows: np.ndarray, va: np.ndarray) -> dict:
    """Image-space (PCA) OOD model: fit on training images, threshold on validation images."""
    from .uncertainty import fit_image_ood_model

    return fit_image_ood_model(prep["images"][fit_rows], prep["images"][va], percentile=99.0)


def refit_uncertainty(bundle: Any, catalog: Any, *, ood_max_fit: int = 20000) -> Any:
    """Fit (again) the interval calibration and out-of-domain models of a trained bundle.

    It rebuilds the training / validation split of :func:`train_model` from the bundle's seed
    and settings, then fits the interval calibration on the validation predictions and the
    out-of-domain models exactly as :func:`train_model` does; the networks are untouched, so
    the point estimates do not change. Useful to bring a bundle trained by an earlier version
    of the package up to date.

    Parameters
    ----------
    bundle : ModelBundle
        A bundle written by :func:`train_model`.
    catalog : MockCatalog
        The catalogue it was trained on.
    ood_max_fit : int
        At most this many training mocks are used for the out-of-domain fit.

    Returns
    -------
    ModelBundle
        A copy with ``target_scaling["calibration"]``, ``metrics["calibration"]``,
        ``training["calibration_margin_dex"]``, ``domain["ood"]``, ``domain["ood_image"]`` and
        ``domain["ood_summary"]`` replaced.
    """
    from .features import FeatureConfig
    from .inference import Predictor

    tr_info = bundle.training
    seed = int(tr_info["seed"])
    prep = prepare_features(catalog, bundle.cylinder,
                            FeatureConfig.from_dict(bundle.feature_config),
                            n_min_galaxies=int(bundle.domain.get("n_min_galaxies",
                                                                 N_MIN_GALAXIES)))
    flat = tr_info.get("flat_sampling", {})
    rng, _, tr, va = _sample_and_split(prep, seed, flat.get("dlogm", 0.02),
                                       flat.get("n_per_bin", "median"),
                                       float(tr_info.get("val_fraction", 0.1)))
    scaling = dict(bundle.target_scaling)
    scaling["calibration"] = {"std_scale": 1.0}
    raw = bundle.replace(target_scaling=scaling)
    pred = Predictor(raw).predict(prep["images"][va], prep["z"][va])
    metrics = dict(bundle.metrics)
    calibration = {"std_scale": 1.0, "std_fallback": metrics.get("scatter_dex", float("nan"))}
    margin = float(tr_info.get("calibration_margin_dex", CALIBRATION_MARGIN_DEX))
    calibration.update(_fit_calibration(pred["mean"], pred["std"], prep["log_m"][va],
                                        calibration_mass_range(scaling, margin)))
    metrics["calibration"] = calibration
    scaling["calibration"] = _calibration_for_predictor(calibration)
    training = dict(tr_info)
    training["calibration_margin_dex"] = margin
    calibrated = bundle.replace(target_scaling=scaling, metrics=metrics, training=training)
    domain = dict(bundle.domain)
    domain.update(_fit_ood_models(Predictor(calibrated), prep, tr, va, rng, ood_max_fit,
                                  pred["mean"]))
    return calibrated.replace(domain=domain)


# ---------------------------------------------------------------------------- CLI
def add_train_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "train",
        help="train a CNN mass model on a mock catalogue",
        description="Train a CNN_2D/CNN_1D model on MOCKS.asdf and write a model bundle.",
    )
    p.add_argument("mocks", help="mock catalogue (ASDF, from 'astro-cnnmass mocks')")
    p.add_argument("--out", required=True, help="output model file (ASDF)")
    p.add_argument("--model", choices=["cnn2d", "cnn1d"], default="cnn2d")
    p.add_argument("--head", choices=["gaussian", "point"], default="gaussian")
    p.add_argument("--ensemble", type=int, default=1, help="number of ensemble members")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    p.add_argument("--lr-schedule", choices=["cosine", "plateau", "constant"], default="cosine")
    p.add_argument("--subsampled", type=int, default=0,
                   help="thinned copies of each training image (sampling augmentation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation hosts fraction")
    p.add_argument(
        "--test-fraction", type=float, default=0.0,
        help="hold out this fraction of hosts before training (written to --test-out)",
    )
    p.add_argument("--test-out", default=None, help="write the held-out mocks here (ASDF)")
    p.add_argument("--aperture", type=float, default=None, help="cylinder aperture, Mpc/h")
    p.add_argument("--v-cut", type=float, default=None, help="cylinder velocity cut, km/s")
    p.add_argument("--device", default=None, help="'cpu', 'cuda', ... (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train_command)
    return p


def _read_catalog(path: str) -> Any:
    try:
        from .mocks.catalog import MockCatalog
    except ImportError:  # pragma: no cover - layout fallback
        from .mocks import MockCatalog
    return MockCatalog.read(path)


def run_train_command(args: argparse.Namespace) -> int:
    """Run ``astro-cnnmass train`` (see :func:`add_train_subparser`); returns the exit code."""
    catalog = _read_catalog(args.mocks)
    if args.test_fraction > 0:
        if not args.test_out:
            raise SystemExit("--test-fraction needs --test-out to write the held-out mocks")
        tr, te = train_test_split_by_host(catalog.clusters, args.test_fraction, args.seed)
        catalog.select(te).write(args.test_out)
        catalog = catalog.select(tr)
    cylinder = None
    if args.aperture is not None or args.v_cut is not None:
        cylinder = {
            "aperture_mpch": args.aperture if args.aperture is not None else 1.6,
            "v_cut_kms": args.v_cut if args.v_cut is not None else 2200.0,
        }
    bundle = train_model(
        catalog,
        model=args.model,
        head=args.head,
        n_ensemble=args.ensemble,
        cylinder=cylinder,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        lr_schedule=args.lr_schedule,
        n_subsampled=args.subsampled,
        seed=args.seed,
        device=args.device,
        val_fraction=args.val_fraction,
        progress=not args.no_progress,
        command="astro-cnnmass " + " ".join(sys.argv[1:]),
    )
    bundle.write(args.out)
    scatter = bundle.metrics.get("scatter_dex", float("nan"))
    print(
        f"wrote {args.out}: {bundle.training['n_train']} training mocks, "
        f"validation scatter {scatter:.3f} dex"
    )
    return 0
