"""The uncertainty layer of a trained bundle: interval calibration and out-of-domain models.

:func:`refit_uncertainty` fits them (again) for a trained bundle, from the same split that
:func:`astro_cnnmass.model.training.train_model` used; ``train_model`` fits them with the same
helpers.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..uncertainty.calibration import CALIBRATION_MARGIN_DEX, calibration_mass_range
from .samples import N_MIN_GALAXIES, prepare_features, validation_views
from .splits import _sample_and_split

__all__ = ["refit_uncertainty"]


def _fit_ood_models(
    predictor: Any,
    prep: dict,
    tr: np.ndarray,
    va: np.ndarray,
    rng: np.random.Generator,
    ood_max_fit: int,
    val_mean: np.ndarray,
) -> dict[str, dict]:
    """The three out-of-domain models: fit on training rows, thresholds on validation rows.

    ``val_mean`` is the ensemble's predicted log mass of the validation rows (already computed
    for the calibration).
    """
    from ..uncertainty.summary_ood import fit_summary_ood_model

    n_fit = min(tr.size, ood_max_fit)
    fit_rows = np.sort(rng.choice(tr, size=n_fit, replace=False)) if n_fit else tr
    models = {
        "ood": _fit_ood(predictor, prep, fit_rows, va),
        "ood_image": _fit_image_ood(prep, fit_rows, va),
    }
    k = min(500, fit_rows.size // 4)
    if k >= 20:  # enough training mocks for a local (conditional) covariance

        def summaries(r):
            return {key: a[r] for key, a in prep["summaries"].items()}

        fit_mean = predictor.predict(
            prep["images"][fit_rows], prep["z"][fit_rows], n=prep["n_gal"][fit_rows]
        )["mean"]
        models["ood_summary"] = fit_summary_ood_model(
            fit_mean, summaries(fit_rows), val_mean, summaries(va), k=k
        )
    return models


def _fit_calibration(
    mean: np.ndarray,
    std: np.ndarray,
    log_m: np.ndarray,
    log_m_range: tuple[float, float],
    fit_offset: bool = False,
    log_n: np.ndarray | None = None,
) -> dict[str, Any]:
    """Std scale fitted on the validation clusters inside ``log_m_range``, with coverage.

    With ``fit_offset``, first a constant ``mean_offset_dex`` (the mean residual of those
    clusters, dex) that the predictor subtracts from every mean; the std scale is then fitted to
    the corrected residuals. With ``log_n`` (log10 of the galaxy counts, for networks that read
    them), the scale may change with richness: ``std_scale_log_n = {"pivot", "slope"}``, the
    std being multiplied by ``exp(slope * (log10 N - pivot))`` before ``std_scale`` (a
    least-squares line through the scales fitted in five quantile bins of log10 N). With
    ``fit_offset`` the final ``std_scale`` is the geometric mean of the scales that give 68 % and
    90 % coverage (the residuals have heavier tails than a Gaussian; one 68 % scale leaves the
    90 % interval short).
    """
    from ..uncertainty.calibration import fit_std_calibration
    from .metrics import interval_coverage

    ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
    inside = ok & (log_m >= log_m_range[0]) & (log_m <= log_m_range[1])
    note = None
    if inside.sum() < 10 and ok.sum() > inside.sum():  # too few away from the edges: use all
        inside, log_m_range = ok, (float(np.min(log_m[ok])), float(np.max(log_m[ok])))
        note = "fewer than 10 validation clusters inside the margins: fitted on all of them"
    out: dict[str, Any] = {
        "fitted_on": "validation",
        "n": int(inside.sum()),
        "level": 0.68,
        "mc_dropout": 0,
        "log_m_range": [float(log_m_range[0]), float(log_m_range[1])],
    }
    if note:
        out["note"] = note
    if inside.sum() < 10:
        out["std_scale"] = 1.0
        out["note"] = "no calibration: fewer than 10 validation clusters with a predicted std"
        return out
    if fit_offset:
        out["mean_offset_dex"] = float(np.mean(mean[inside] - log_m[inside]))
        mean = mean - out["mean_offset_dex"]
    raw_std = std
    if log_n is not None and inside.sum() >= 250:
        ln = np.asarray(log_n, dtype=float)
        pivot = float(np.median(ln[inside]))
        edges = np.quantile(ln[inside], np.linspace(0, 1, 6))
        centres, logs, weights = [], [], []
        for lo, hi in itertools.pairwise(edges):
            b = inside & (ln >= lo) & (ln <= hi)
            if b.sum() >= 50:
                s_b = fit_std_calibration(mean[b], std[b], log_m[b], level=0.68)
                centres.append(float(np.median(ln[b])) - pivot)
                logs.append(np.log(s_b))
                weights.append(float(b.sum()))
        if len(centres) >= 3 and np.ptp(centres) > 0:
            slope = float(np.polyfit(centres, logs, 1, w=np.sqrt(weights))[0])
            out["std_scale_log_n"] = {"pivot": pivot, "slope": slope}
            std = std * np.exp(slope * (ln - pivot))
    scale = fit_std_calibration(mean[inside], std[inside], log_m[inside], level=0.68)
    if fit_offset:
        s90 = fit_std_calibration(mean[inside], std[inside], log_m[inside], level=0.90)
        scale = float(np.sqrt(scale * s90))
        out["level"] = [0.68, 0.90]
    out["std_scale"] = scale
    out["coverage_before"] = interval_coverage(log_m[inside], mean[inside], raw_std[inside])[
        "overall"
    ]
    out["coverage_after"] = interval_coverage(log_m[inside], mean[inside], std[inside] * scale)[
        "overall"
    ]
    return out


def _calibration_for_predictor(calibration: dict) -> dict[str, Any]:
    """The part of a fitted calibration the predictor applies (``target_scaling``)."""
    out = {"std_scale": float(calibration["std_scale"])}
    if "mean_offset_dex" in calibration:
        out["mean_offset_dex"] = float(calibration["mean_offset_dex"])
    if "std_scale_log_n" in calibration:
        out["std_scale_log_n"] = {k: float(v) for k, v in calibration["std_scale_log_n"].items()}
    return out


def _fit_ood(predictor: Any, prep: dict, fit_rows: np.ndarray, va: np.ndarray) -> dict:
    """Mahalanobis OOD model on member-0 embeddings: fit on training, threshold on validation."""
    from ..uncertainty.ood import embeddings, fit_ood_model

    e_fit = embeddings(
        predictor, prep["images"][fit_rows], prep["z"][fit_rows], n=prep["n_gal"][fit_rows]
    )
    e_val = embeddings(predictor, prep["images"][va], prep["z"][va], n=prep["n_gal"][va])
    return fit_ood_model(e_fit, e_val, percentile=99.0)


def _fit_image_ood(prep: dict, fit_rows: np.ndarray, va: np.ndarray) -> dict:
    """Image-space (PCA) OOD model: fit on training images, threshold on validation images."""
    from ..uncertainty.ood import fit_image_ood_model

    return fit_image_ood_model(prep["images"][fit_rows], prep["images"][va], percentile=99.0)


def refit_uncertainty(bundle: Any, catalog: Any, *, ood_max_fit: int = 20000) -> Any:
    """Fit (again) the interval calibration and out-of-domain models of a trained bundle.

    It rebuilds the training / validation split of
    :func:`~astro_cnnmass.model.training.train_model` from the bundle's seed and settings, then
    fits the interval calibration on the validation predictions and the out-of-domain models
    exactly as :func:`~astro_cnnmass.model.training.train_model` does; the networks are
    untouched, so the point estimates do not change (except for a refitted ``mean_offset_dex``
    of a bundle trained with ``mean_calibration``). Useful to bring a bundle trained by an
    earlier version of the package up to date.

    Parameters
    ----------
    bundle : ModelBundle
        A bundle written by :func:`~astro_cnnmass.model.training.train_model`.
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
    from ..features.config import FeatureConfig
    from .predictor import Predictor

    tr_info = bundle.training
    seed = int(tr_info["seed"])
    sampling = tr_info.get("sampling_invariance")
    fconf = FeatureConfig.from_dict(bundle.feature_config)
    prep = prepare_features(
        catalog,
        bundle.cylinder,
        fconf,
        n_min_galaxies=int(bundle.domain.get("n_min_galaxies", N_MIN_GALAXIES)),
        keep_galaxies=bool(sampling) and sampling.get("thinning", "none") != "none",
    )
    flat = tr_info.get("flat_sampling", {})
    rng, _, tr, va = _sample_and_split(
        prep,
        seed,
        flat.get("dlogm", 0.02),
        flat.get("n_per_bin", "median"),
        float(tr_info.get("val_fraction", 0.1)),
    )
    scaling = dict(bundle.target_scaling)
    scaling["calibration"] = {"std_scale": 1.0}
    raw = bundle.replace(target_scaling=scaling)
    views = validation_views(prep, va, fconf, sampling, seed)  # full, then thinned copies
    pred = Predictor(raw).predict(views["images"], views["z"], n=views["n_gal"])
    metrics = dict(bundle.metrics)
    calibration = {"std_scale": 1.0, "std_fallback": metrics.get("scatter_dex", float("nan"))}
    margin = float(tr_info.get("calibration_margin_dex", CALIBRATION_MARGIN_DEX))
    calibration.update(
        _fit_calibration(
            pred["mean"],
            pred["std"],
            views["log_m"],
            calibration_mass_range(scaling, margin),
            fit_offset=bool(tr_info.get("mean_calibration", False)),
            log_n=(
                np.log10(views["n_gal"]) if bundle.network_config.get("use_log_n", False) else None
            ),
        )
    )
    metrics["calibration"] = calibration
    scaling["calibration"] = _calibration_for_predictor(calibration)
    training = dict(tr_info)
    training["calibration_margin_dex"] = margin
    calibrated = bundle.replace(target_scaling=scaling, metrics=metrics, training=training)
    domain = dict(bundle.domain)
    domain.update(
        _fit_ood_models(
            Predictor(calibrated), prep, tr, va, rng, ood_max_fit, pred["mean"][: va.size]
        )
    )
    return calibrated.replace(domain=domain)
