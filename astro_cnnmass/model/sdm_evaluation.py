"""SDM baselines beside a CNN: training subsets from the CNN's own split, and their evaluation.

:func:`fit_sdm_beside` trains SDM_1D / SDM_2D on a subset of the training split of a bundled CNN
(rebuilt from its seed; never its validation or test clusters), and :func:`evaluate_sdm`
reports the paper's statistics (Ho et al. 2019, arXiv:1902.05950, §5) on held-out clusters.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .robustness import percentile_summary
from .sdm import SDM, cluster_samples, type_for

__all__ = ["evaluate_sdm", "fit_sdm_beside", "sdm_training_rows"]


#: Kept fractions of the thinning test of :func:`evaluate_sdm` (as the CNN's, issue 13).
THINNING_FRACTIONS = (0.7, 0.5, 0.3)


def sdm_training_rows(bundle: Any, catalog: Any, n: int, seed: Any = 0) -> np.ndarray:
    """Rows of ``catalog`` for an SDM trained beside a CNN bundle: a subset of its training split.

    The flat-mass sample and the training / validation split by host are rebuilt with the
    helpers and settings :func:`~astro_cnnmass.model.training.train_model` used for the bundle
    (its seed, ``flat_sampling`` and ``val_fraction``), on the catalogue it was trained on;
    ``n`` rows are then drawn at random (seeded) from the *training* rows, so neither the
    validation nor any test mock is used.

    Parameters
    ----------
    bundle : ModelBundle
    catalog : MockCatalog
        The bundle's training catalogue (regenerate it with its seed; see
        ``scripts/refit_default_uncertainty.py``).
    n : int
        Number of rows (all training rows if fewer).
    seed : int or numpy.random.Generator

    Returns
    -------
    numpy.ndarray of int
        Sorted catalogue rows.
    """
    from ..features.config import FeatureConfig
    from .samples import N_MIN_GALAXIES, prepare_features
    from .splits import _sample_and_split

    info = bundle.training
    prep = prepare_features(
        catalog,
        bundle.cylinder,
        FeatureConfig.from_dict(bundle.feature_config),
        n_min_galaxies=int(bundle.domain.get("n_min_galaxies", N_MIN_GALAXIES)),
    )
    flat = info.get("flat_sampling", {})
    _, _, tr, _ = _sample_and_split(
        prep,
        int(info["seed"]),
        flat.get("dlogm", 0.02),
        flat.get("n_per_bin", "median"),
        float(info.get("val_fraction", 0.1)),
    )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pick = tr if tr.size <= n else rng.choice(tr, size=int(n), replace=False)
    return np.sort(prep["index"][pick])


def fit_sdm_beside(
    bundle: Any,
    catalog: Any,
    *,
    kinds: tuple[str, ...] = ("sdm1d", "sdm2d"),
    n_train: int = 1000,
    seed: int = 0,
    workers: int = 1,
    **settings: Any,
) -> dict[str, SDM]:
    """Fit SDM baselines on a subset of a CNN bundle's training split (never its test mocks).

    Parameters
    ----------
    bundle : ModelBundle
        The CNN whose training split is reused (:func:`sdm_training_rows`).
    catalog : MockCatalog
        The bundle's training catalogue.
    kinds : tuple of str
        ``"sdm1d"`` and/or ``"sdm2d"``.
    n_train : int
        Training clusters, drawn at random (seeded) from the bundle's training rows; the cost
        is quadratic in it (see the module notes).
    seed, workers
        Seed of the subset and of the estimators; k-NN query threads.
    **settings
        Further :class:`~astro_cnnmass.model.sdm.SDM` arguments (``max_galaxies``, grids, ...).

    Returns
    -------
    dict
        ``{kind: fitted SDM}``, each with ``info_["training_rows"]`` (catalogue rows, sorted).
    """
    rows = sdm_training_rows(bundle, catalog, n_train, seed=seed)
    n_min = int(bundle.domain.get("n_min_galaxies", 10))
    s = cluster_samples(catalog, bundle.cylinder, rows=rows, n_min_galaxies=n_min)
    out = {}
    for kind in kinds:
        model = type_for(kind)(
            max_train=None, cylinder=dict(bundle.cylinder), seed=seed, workers=workers, **settings
        )
        model.fit(s["R"], s["v"], s["offsets"], s["log_m"], groups=s.get("host_id"))
        model.info_["training_rows"] = s["index"].tolist()
        model.info_["trained_beside"] = {
            "bundle_sha256": str(getattr(bundle, "sha256", "")),
            "split": "training rows of the bundle (flat-mass sample, validation hosts removed)",
        }
        out[kind] = model
    return out


def _thin(
    offsets: np.ndarray, keep: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``keep[i]`` random galaxies of every packed cluster, and the new offsets."""
    counts = np.diff(offsets)
    keep = np.minimum(keep, counts)
    cid = np.repeat(np.arange(counts.size), counts)
    order = np.lexsort((rng.random(cid.size), cid))
    rank = np.empty(cid.size, dtype=np.int64)
    rank[order] = np.arange(cid.size) - np.repeat(offsets[:-1], counts)
    return np.flatnonzero(rank < keep[cid]), np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)


def evaluate_sdm(
    model: SDM,
    catalog: Any,
    rows: np.ndarray,
    log_m: np.ndarray,
    *,
    mass_range: tuple[float, float] = (14.0, 15.0),
    fractions: tuple[float, ...] = THINNING_FRACTIONS,
    n_min_kept: int = 10,
    thinning_fraction: float = 0.1,
    min_mocks: int = 20,
    seed: Any = 0,
) -> dict[str, Any]:
    """An SDM on the clusters of a CNN evaluation: residuals and thinning shifts.

    Only the clusters with true mass in ``mass_range`` are predicted (those that enter the
    statistics; an SDM prediction costs 0.1–0.3 ms per training cluster).

    Parameters
    ----------
    model : SDM
    catalog : MockCatalog
        The test catalogue.
    rows : numpy.ndarray of int
        Its rows evaluated for the CNN (``prepare_features(...)["index"]``).
    log_m : numpy.ndarray
        True log10 M200c of those rows.
    mass_range : (float, float)
    fractions, n_min_kept
        Thinning test: keep a random ``round(f N)`` of the cylinder galaxies (clusters keeping
        at least ``n_min_kept``), as the CNN's robustness test
        (:mod:`astro_cnnmass.model.robustness`), and report the median and 16–84 % width of
        log M(thinned) − log M(all).
    thinning_fraction, min_mocks
        The thinning test uses this random fraction (at least ``min_mocks``) of the clusters
        in ``mass_range``.
    seed : int or numpy.random.Generator

    Returns
    -------
    dict
        ``kind``, ``residuals`` (:func:`~astro_cnnmass.model.metrics.residual_stats` over
        ``mass_range``), ``binned`` (per 0.1 dex), ``robustness`` (``random_0.7``, ... ->
        {``sdm``: summary}, ``n_mocks``), ``model`` (training size, hyperparameters, tuning
        RMSE), ``predict_seconds``; and ``prediction`` (log10 M per row of ``rows``, NaN
        outside ``mass_range``).
    """
    from .metrics import binned_residuals, residual_stats

    rows = np.asarray(rows, dtype=np.int64)
    m = np.asarray(log_m, dtype=float)
    sel = np.flatnonzero((m > mass_range[0]) & (m < mass_range[1]))
    s = cluster_samples(catalog, model.cylinder, rows=rows[sel], n_min_galaxies=0)
    t0 = time.perf_counter()
    pred = np.full(m.size, np.nan)
    pred[sel] = model.predict(s["R"], s["v"], s["offsets"])
    seconds = time.perf_counter() - t0
    eps = pred - m
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_pick = min(sel.size, max(round(thinning_fraction * sel.size), min_mocks))
    pick = np.sort(rng.choice(sel.size, size=n_pick, replace=False)) if sel.size else sel
    sub_off = s["offsets"]
    n_full = np.diff(sub_off)[pick]
    lens = n_full
    off_p = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    gidx = np.repeat(sub_off[pick] - off_p[:-1], lens) + np.arange(off_p[-1])
    Rp, vp = s["R"][gidx], s["v"][gidx]
    rob: dict[str, Any] = {
        "n_mocks": int(pick.size),
        "n_min_kept": int(n_min_kept),
        "fractions": [float(f) for f in fractions],
    }
    for f in fractions:
        keep = np.round(f * n_full).astype(np.int64)
        use = keep >= n_min_kept
        uo = np.concatenate([[0], np.cumsum(n_full[use])]).astype(np.int64)
        ug = np.repeat(off_p[:-1][use] - uo[:-1], n_full[use]) + np.arange(uo[-1])
        idx, new_off = _thin(uo, keep[use], rng)
        thinned = model.predict(Rp[ug][idx], vp[ug][idx], new_off)
        rob[f"random_{f:g}"] = {
            "fraction": float(f),
            "selection": "random",
            "sdm": percentile_summary(thinned - pred[sel][pick][use]),
        }
    info = model.info_
    return {
        "kind": model.kind,
        "mass_range": list(mass_range),
        "residuals": residual_stats(eps[sel]),
        "binned": binned_residuals(m, eps),
        "robustness": rob,
        "model": {
            "n_train": int(info.get("n_train", model.offsets_.size - 1)),
            "max_galaxies": model.max_galaxies,
            "k": model.k,
            "sigma2": model.sigma2_,
            "C": model.C_,
            "nu": model.nu_,
            "tuning_rmse_dex": info.get("tuning_rmse_dex"),
            "fit_seconds": (info.get("seconds") or {}).get("total"),
        },
        "n_predicted": int(sel.size),
        "predict_seconds": seconds,
        "prediction": pred,
    }
