"""Evaluation of trained models on held-out mocks, beside the M-sigma baseline.

The statistics are those of :mod:`astro_cnnmass.model.metrics` (Ho et al. 2019 §5). The M-sigma
power law stored in the model (fitted on its training mocks; sigma = ``np.std`` of every cylinder
galaxy's velocity) is evaluated on the same clusters. The sampling-rate robustness test (paper
§5.3) subsamples the cylinder galaxies of test mocks and reports the width of
``log M(r) - log M(r = 1)`` for 0.6 < r < 0.8. When the model gives a standard deviation, the
coverage of its 68 % and 90 % intervals and the PIT histogram are reported too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import ModelBundle, plain
from .metrics import (
    MASS_RANGE,
    binned_residuals,
    interval_coverage,
    pit_histogram,
    pit_values,
    residual_stats,
)
from .robustness import _robustness_lines, sampling_robustness, slope_eps_log_n

__all__ = [
    "evaluate_model",
    "format_summary",
    "sampling_rate_test",
    "sampling_robustness",
    "slope_eps_log_n",
]


# ---------------------------------------------------------------------------- robustness
def _cylinder_galaxies(catalog: Any, rows: np.ndarray, cylinder: dict) -> list[np.ndarray]:
    from ..observe.phase_space import cylinder_mask
    from .splits import _floats

    offsets = np.asarray(catalog.offsets, dtype=np.int64)
    R_all, v_all = catalog.R, catalog.v
    out = []
    for i in rows:
        sl = slice(int(offsets[i]), int(offsets[i + 1]))
        R, v = _floats(R_all[sl]), _floats(v_all[sl])
        inside = cylinder_mask(R, v, cylinder["aperture_mpch"], cylinder["v_cut_kms"])
        out.append(np.stack([R[inside], v[inside]]))
    return out


def sampling_rate_test(
    predictor: Any,
    catalog: Any,
    prep: dict[str, np.ndarray],
    reference: np.ndarray,
    *,
    m_sigma: Any = None,
    fraction: float = 0.1,
    n_draws: int = 10,
    r_range: tuple[float, float] = (0.6, 0.8),
    seed: Any = 0,
    min_mocks: int = 20,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sampling-rate robustness (paper §5.3).

    A random ``fraction`` of the test mocks (at least ``min_mocks``) is taken; for each,
    ``n_draws`` random subsets of its cylinder galaxies of size N' uniform in [3, N) are drawn,
    the images rebuilt with the model's feature configuration and the mass predicted again.

    Parameters
    ----------
    predictor : astro_cnnmass.model.predictor.Predictor
    catalog : MockCatalog
    prep : dict
        Output of :func:`astro_cnnmass.model.samples.prepare_features` for this model.
    reference : numpy.ndarray
        Full-sample CNN predictions (log10 M) of the rows of ``prep``.
    m_sigma : astro_cnnmass.MSigmaPowerLaw, optional
        Baseline evaluated on the same subsamples.
    fraction, n_draws, r_range, seed, min_mocks
        See above; ``r_range`` selects the sampling rates r = N'/N of the Δε68 statistic.
    extra : dict, optional
        Other mass models evaluated on the same subsamples, ``{name: f}`` with
        ``f(R, v, offsets) -> log10 M`` on packed cylinder galaxies (e.g. an SDM's
        ``predict``); only the subsamples with r in ``r_range`` are predicted. Each gives an
        entry ``name`` like ``cnn``.

    Returns
    -------
    dict
        ``cnn`` and ``m_sigma``: {``median``, ``delta_eps68`` (84th - 16th percentile of
        eps(r) = log M(r) - log M(1) for r in ``r_range``), ``n``}; ``r``, ``eps_cnn`` and
        ``eps_m_sigma`` (lists, for plots); ``n_mocks``.
    """
    from ..features.config import FeatureConfig
    from ..features.kde import kde_images

    rng = np.random.default_rng(seed)
    n = prep["log_m"].size
    n_pick = min(n, max(round(fraction * n), min_mocks))
    rows = np.sort(rng.choice(n, size=n_pick, replace=False)) if n else np.zeros(0, int)
    gals = _cylinder_galaxies(catalog, prep["index"][rows], predictor.bundle.cylinder)
    Rs, vs, sizes, parent, r = [], [], [], [], []
    for j, g in enumerate(gals):
        n_gal = g.shape[1]
        if n_gal <= 3:
            continue
        for _ in range(n_draws):
            k = int(rng.integers(3, n_gal))
            pick = rng.choice(n_gal, size=k, replace=False)
            Rs.append(g[0, pick])
            vs.append(g[1, pick])
            sizes.append(k)
            parent.append(j)
            r.append(k / n_gal)
    result: dict[str, Any] = {"n_mocks": len(gals), "r_range": list(r_range)}
    if not sizes:
        empty = {"median": math.nan, "delta_eps68": math.nan, "n": 0}
        result.update(cnn=empty, m_sigma=dict(empty), r=[], eps_cnn=[], eps_m_sigma=[])
        return result
    parent_a, r_a = np.asarray(parent), np.asarray(r)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    config = FeatureConfig.from_dict(predictor.bundle.feature_config)
    images, valid = kde_images(np.concatenate(Rs), np.concatenate(vs), offsets, config)
    images = np.asarray(images)
    z = prep["z"][rows][parent_a]
    pred = predictor.predict(images, z, n=np.asarray(sizes))["mean"]
    pred[~np.asarray(valid, dtype=bool)] = np.nan
    eps_cnn = pred - reference[rows][parent_a]
    if m_sigma is not None:
        sig = np.array([np.std(v) for v in vs])
        full = m_sigma.predict_log_mass(prep["sigma"][rows])
        eps_ms = m_sigma.predict_log_mass(sig) - full[parent_a]
    else:
        eps_ms = np.full_like(eps_cnn, np.nan)
    in_r = (r_a > r_range[0]) & (r_a < r_range[1])

    def summary(e: np.ndarray) -> dict[str, float]:
        e = e[in_r & np.isfinite(e)]
        if e.size == 0:
            return {"median": math.nan, "delta_eps68": math.nan, "n": 0}
        p16, p50, p84 = np.percentile(e, [16, 50, 84])
        return {"median": float(p50), "delta_eps68": float(p84 - p16), "n": int(e.size)}

    result.update(
        cnn=summary(eps_cnn),
        m_sigma=summary(eps_ms),
        r=r_a.tolist(),
        eps_cnn=eps_cnn.tolist(),
        eps_m_sigma=eps_ms.tolist(),
    )
    for key, fn in (extra or {}).items():
        full_off = np.concatenate([[0], np.cumsum([g.shape[1] for g in gals])]).astype(np.int64)
        full = fn(
            np.concatenate([g[0] for g in gals]), np.concatenate([g[1] for g in gals]), full_off
        )
        idx = np.flatnonzero(in_r)
        sub_off = np.concatenate([[0], np.cumsum(np.asarray(sizes)[idx])]).astype(np.int64)
        eps = np.full(r_a.size, np.nan)
        if idx.size:
            eps[idx] = (
                fn(
                    np.concatenate([Rs[i] for i in idx]),
                    np.concatenate([vs[i] for i in idx]),
                    sub_off,
                )
                - full[parent_a[idx]]
            )
        result[key] = summary(eps)
    return result


def _evaluate_sdms(
    sdms,
    bundle,
    catalog,
    prep,
    predictor,
    law,
    reference,
    mass_range,
    robustness_fraction,
    n_draws,
    seed,
) -> dict[str, Any]:
    """SDM baselines on the clusters of this CNN evaluation.

    See :func:`~astro_cnnmass.model.sdm_evaluation.evaluate_sdm`.

    Their Δε68 comes from the CNN's sampling-rate subsamples (:func:`sampling_rate_test` with
    ``extra``; same seed, same draws), when the SDM's cylinder is the CNN's.
    """
    from .sdm_evaluation import evaluate_sdm

    out = {}
    for name, model in sdms.items():
        r = evaluate_sdm(
            model,
            catalog,
            prep["index"],
            prep["log_m"],
            mass_range=mass_range,
            thinning_fraction=robustness_fraction,
            seed=seed,
        )
        r.pop("prediction")
        out[name] = r
    same = {n: m for n, m in sdms.items() if dict(m.cylinder) == dict(bundle.cylinder)}
    if same:
        sr = sampling_rate_test(
            predictor,
            catalog,
            prep,
            reference,
            fraction=robustness_fraction,
            n_draws=n_draws,
            seed=seed,
            extra={n: m.predict for n, m in same.items()},
        )
        empty = {"median": math.nan, "delta_eps68": math.nan, "n": 0}
        for name in same:
            out[name]["sampling_rate"] = sr.get(name, empty)
    return out


# ---------------------------------------------------------------------------- figures
def _figure(**kw):
    from matplotlib.figure import Figure

    return Figure(**kw)


def _band(ax, x_edges, rows, color, label):
    centres = 0.5 * (np.asarray(x_edges[:-1]) + np.asarray(x_edges[1:]))
    med = np.array([b["median"] for b in rows])
    lo = np.array([b["p16"] for b in rows])
    hi = np.array([b["p84"] for b in rows])
    ax.plot(centres, med, color=color, label=label)
    ax.fill_between(centres, lo, hi, color=color, alpha=0.25, lw=0)


def _plot_pred_vs_true(path, m, pred_cnn, pred_ms, name):
    edges = np.round(np.arange(13.9, 15.1 + 1e-9, 0.1), 10)
    fig = _figure(figsize=(5, 5))
    ax = fig.add_subplot()
    for pred, color, label in ((pred_ms, "C1", "M–σ"), (pred_cnn, "C0", name)):
        rows = binned_residuals(m, pred, edges)
        _band(ax, edges, rows, color, label)
    ax.plot([13.9, 15.1], [13.9, 15.1], "k--", lw=1)
    ax.set(
        xlabel=r"$\log_{10} M_{\rm true}$ [$M_\odot/h$]",
        ylabel=r"$\log_{10} M_{\rm pred}$ [$M_\odot/h$]",
        xlim=(13.9, 15.1),
    )
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _plot_residuals(path, m, eps_cnn, eps_ms, name):
    edges = np.round(np.arange(MASS_RANGE[0], MASS_RANGE[1] + 1e-9, 0.1), 10)
    fig = _figure(figsize=(6, 4))
    ax = fig.add_subplot()
    _band(ax, edges, binned_residuals(m, eps_ms, edges), "C1", "M–σ")
    _band(ax, edges, binned_residuals(m, eps_cnn, edges), "C0", name)
    ax.axhline(0, color="k", lw=1, ls="--")
    ax.set(
        xlabel=r"$\log_{10} M_{\rm true}$ [$M_\odot/h$]",
        ylabel=r"$\epsilon = \log_{10}(M_{\rm pred}/M_{\rm true})$ [dex]",
    )
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _plot_sampling(path, sr, name):
    fig = _figure(figsize=(6, 4))
    ax = fig.add_subplot()
    r = np.asarray(sr["r"])
    edges = np.linspace(0, 1, 11)
    for key, color, label in (("eps_m_sigma", "C1", "M–σ"), ("eps_cnn", "C0", name)):
        e = np.asarray(sr[key], dtype=float)
        if r.size and np.isfinite(e).any():
            _band(ax, edges, binned_residuals(r, e, edges), color, label)
    ax.axvspan(*sr["r_range"], color="0.9", zorder=0)
    ax.axhline(0, color="k", lw=1, ls="--")
    ax.set(xlabel="sampling rate r = N'/N", ylabel=r"$\log M(r) - \log M(1)$ [dex]")
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _plot_pit(path, hist, name):
    fig = _figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    edges = np.asarray(hist["edges"])
    ax.stairs(hist["density"], edges, fill=True, alpha=0.6, label=name)
    ax.axhline(1, color="k", lw=1, ls="--")
    ax.set(xlabel="PIT", ylabel="density", xlim=(0, 1))
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


# ---------------------------------------------------------------------------- main entry
def _json_safe(obj: Any) -> Any:
    obj = plain(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _evaluate_one(
    bundle: ModelBundle,
    name: str,
    catalog: Any,
    out_dir: Path,
    seed: Any,
    mass_range: tuple[float, float],
    robustness_fraction: float,
    n_draws: int,
    device: Any,
    robustness: bool = True,
    sdms: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from ..classical import MSigmaPowerLaw
    from ..features.config import FeatureConfig
    from .predictor import Predictor
    from .samples import prepare_features

    # one bar over the long steps of this model's evaluation
    steps = ["KDE images", "network", "out-of-domain", "sampling rate"]
    steps += ["SDM"] * bool(sdms) + ["robustness"] * bool(robustness) + ["figures"]
    bar = tqdm(total=len(steps), desc=f"evaluate {name}", unit="step", disable=not progress)

    def step(label: str) -> None:
        bar.set_postfix_str(label)
        if bar.n < bar.total and label != steps[0]:
            bar.update()

    step(steps[0])
    prep = prepare_features(
        catalog,
        bundle.cylinder,
        FeatureConfig.from_dict(bundle.feature_config),
        n_min_galaxies=int(bundle.domain.get("n_min_galaxies", 10)),
        keep_galaxies=robustness,
    )
    step("network")
    predictor = Predictor(bundle, device=device)
    pred = predictor.predict(prep["images"], prep["z"], n=prep["n_gal"])
    m = prep["log_m"]
    law = MSigmaPowerLaw.from_dict(bundle.m_sigma)
    pred_ms = law.predict_log_mass(prep["sigma"])
    eps, eps_ms = pred["mean"] - m, pred_ms - m
    sel = (m > mass_range[0]) & (m < mass_range[1])
    res: dict[str, Any] = {
        "n_test_mocks": int(m.size),
        "n_in_mass_range": int(sel.sum()),
        "mass_range": list(mass_range),
        "cnn": residual_stats(eps[sel]),
        "m_sigma": residual_stats(eps_ms[sel]),
        "cnn_binned": binned_residuals(m, eps),
        "m_sigma_binned": binned_residuals(m, eps_ms),
    }
    res["std_ratio_m_sigma_over_cnn"] = res["m_sigma"]["std"] / res["cnn"]["std"]
    has_std = np.isfinite(pred["std"][sel]).any()
    if has_std:
        res["coverage"] = interval_coverage(m, pred["mean"], pred["std"], mass_range=mass_range)
        pit = pit_values(m[sel], pred["mean"][sel], pred["std"][sel])
        res["pit"] = pit_histogram(pit)
        res["mean_predicted_std"] = float(np.nanmean(pred["std"][sel]))
    step("out-of-domain")
    if any(k in bundle.domain for k in ("ood", "ood_image", "ood_summary")):
        from ..uncertainty.ood import normalized_ood_scores

        # in units of the thresholds: > 1 is flagged (embedding and image models combined)
        scores = normalized_ood_scores(
            predictor,
            prep["images"],
            prep["z"],
            summaries=prep["summaries"],
            log_mass=pred["mean"],
            n=prep["n_gal"],
        )
        ok = np.isfinite(scores)
        res["ood"] = {
            "threshold": 1.0,
            "score": "normalized (astro_cnnmass.uncertainty.ood.normalized_ood_scores)",
            "n": int(ok.sum()),
            "fraction_flagged": float(np.mean(scores[ok] > 1.0)) if ok.any() else math.nan,
            "score_quantiles": {
                str(p): float(np.percentile(scores[ok], p)) if ok.any() else math.nan
                for p in (50, 90, 99)
            },
        }
    step("sampling rate")
    sr = sampling_rate_test(
        predictor,
        catalog,
        prep,
        pred["mean"],
        m_sigma=law,
        fraction=robustness_fraction,
        n_draws=n_draws,
        seed=seed,
    )
    res["sampling_rate"] = {k: sr[k] for k in ("cnn", "m_sigma", "n_mocks", "r_range")}
    if sdms:
        step("SDM")
        res["sdm"] = _evaluate_sdms(
            sdms,
            bundle,
            catalog,
            prep,
            predictor,
            law,
            pred["mean"],
            mass_range,
            robustness_fraction,
            n_draws,
            seed,
        )
    if robustness:
        step("robustness")
        res["robustness"] = sampling_robustness(
            predictor, prep, pred["mean"], m_sigma=law, mass_range=mass_range, seed=seed
        )
    step("figures")
    _plot_pred_vs_true(out_dir / f"{name}_pred_vs_true.png", m, pred["mean"], pred_ms, name)
    _plot_residuals(out_dir / f"{name}_residuals.png", m, eps, eps_ms, name)
    _plot_sampling(out_dir / f"{name}_sampling_rate.png", sr, name)
    if has_std:
        _plot_pit(out_dir / f"{name}_pit.png", res["pit"], name)
    bar.update(bar.total - bar.n)
    bar.close()
    return res


def evaluate_model(
    bundle_or_list: Any,
    test_catalog: Any,
    out_dir: str | Path,
    seed: Any = 0,
    *,
    names: list[str] | None = None,
    mass_range: tuple[float, float] = MASS_RANGE,
    robustness_fraction: float = 0.1,
    n_draws: int = 10,
    device: Any = None,
    robustness: bool = True,
    sdm_models: Any = None,
    sdm_names: list[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate one or several models on held-out mocks; write metrics.json and figures.

    Parameters
    ----------
    bundle_or_list : ModelBundle, path, or list of them
        Model(s) to evaluate (each separately, with its own cylinder, features and M-sigma fit).
    test_catalog : MockCatalog or path
        Held-out mocks (hosts not used in training).
    out_dir : str or pathlib.Path
        Created if needed; receives ``metrics.json`` and ``<name>_pred_vs_true.png``,
        ``<name>_residuals.png``, ``<name>_sampling_rate.png``, ``<name>_pit.png`` (the last only
        when the model predicts a standard deviation).
    seed : int or numpy.random.Generator
        Seed of the sampling-rate test.
    names : list of str, optional
        Model names (default: file stems, or ``model0``, ``model1``, ...).
    mass_range : (float, float)
        log10 M200c range of the summary statistics (paper: 14–15).
    robustness_fraction, n_draws
        Sampling-rate test: fraction of test mocks and subsamples per mock.
    device : str or torch.device, optional
    robustness : bool
        Also run :func:`sampling_robustness` (every test cluster in ``mass_range`` thinned to
        70 / 50 / 30 % at random and to the 50 % of largest stellar mass; dε/dlog10 N),
        stored as ``robustness`` per model.
    sdm_models : SDM, path, list or dict of them, optional
        SDM baselines (:mod:`astro_cnnmass.model.sdm`, e.g. files written by
        ``SDM.save``), evaluated on the clusters of the *first* model: residuals over
        ``mass_range``, Δε68 on its sampling-rate subsamples and the median shift under
        random thinning to 70 / 50 / 30 % (on a ``robustness_fraction`` of the clusters);
        stored as ``sdm`` in that model's entry.
    sdm_names : list of str, optional
        Their names (default: file stems, or the kinds).
    progress : bool
        Show a tqdm progress bar over the steps of each model's evaluation.

    Returns
    -------
    dict
        ``{"models": {name: metrics}, "seed": ..., "test_catalog": ...}`` as written to
        metrics.json (NaN written as null). Per model: ``cnn`` and ``m_sigma`` residual
        statistics (see :func:`~astro_cnnmass.model.metrics.residual_stats`),
        ``cnn_binned``/``m_sigma_binned`` per 0.1 dex,
        ``sampling_rate``, and if available ``coverage`` (68 % and 90 % intervals, overall and
        per 0.25-dex bin of true mass, see
        :func:`~astro_cnnmass.model.metrics.interval_coverage`), ``pit`` and ``ood``
        (out-of-domain threshold and the fraction of test mocks above it, expected near 1 %;
        see :mod:`astro_cnnmass.uncertainty`).
    """
    items = bundle_or_list if isinstance(bundle_or_list, list | tuple) else [bundle_or_list]
    bundles, default_names = [], []
    for i, item in enumerate(items):
        if isinstance(item, ModelBundle):
            bundles.append(item)
            default_names.append(f"model{i}" if len(items) > 1 else "model")
        else:
            bundles.append(ModelBundle.read(item))
            default_names.append(Path(item).stem)
    names = list(names) if names is not None else default_names
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    if isinstance(test_catalog, str | Path):
        from .samples import read_catalog

        test_catalog = read_catalog(str(test_catalog))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sdms = None
    if sdm_models is not None:
        from .sdm import load_sdms

        sdms = load_sdms(sdm_models, sdm_names)
    results = {
        name: _evaluate_one(
            b,
            name,
            test_catalog,
            out_dir,
            seed,
            mass_range,
            robustness_fraction,
            n_draws,
            device,
            robustness,
            sdms=sdms if i == 0 else None,
            progress=progress,
        )
        for i, (b, name) in enumerate(zip(bundles, names))
    }
    report = _json_safe(
        {
            "models": results,
            "seed": seed if isinstance(seed, int | None) else str(seed),
            "test_catalog": {
                "n_mocks": int(np.asarray(test_catalog.offsets).size - 1),
                "meta": dict(getattr(test_catalog, "meta", None) or {}),
            },
        }
    )
    with open(out_dir / "metrics.json", "w") as fh:
        json.dump(report, fh, indent=1)
    return report


def format_summary(name: str, res: dict[str, Any]) -> str:
    """Plain-text summary of one model's evaluation: accuracy, calibration, out-of-domain.

    Parameters
    ----------
    name : str
        Model name.
    res : dict
        One entry of ``evaluate_model(...)["models"]``.

    Returns
    -------
    str
        Several lines: residuals of the CNN and of M–σ over the mass range (dex), interval
        coverage over the range and per 0.25-dex bin of true mass, and the out-of-domain
        flagged fraction.
    """
    cnn, ms = res["cnn"], res["m_sigma"]
    lo, hi = res["mass_range"]
    lines = [f"{name}: {cnn['n']} clusters with {lo} < log10 M200c < {hi}"]
    for label, r in (("CNN", cnn), ("M-sigma", ms)):
        lines.append(
            f"  {label:8s} mean {_num(r.get('mean'), '+.3f')}  std {_num(r.get('std'))}"
            f"  16-84% width {_num(r.get('width'))} dex"
        )
    cov = res.get("coverage")
    if cov:
        inside = cov.get("in_range", cov["overall"])
        lines.append(
            f"  interval coverage 68% {_num(inside.get('0.68'))}  90% {_num(inside.get('0.90'))}"
            "  (targets 0.64-0.72, 0.87-0.93)"
        )
        for b in cov["bins"]:  # a bin without clusters (small test sets) prints '–'
            lines.append(
                f"    {b['lo']:.2f}-{b['hi']:.2f}: n={b['n']:5d}  68% {_num(b.get('0.68'))}"
                f"  90% {_num(b.get('0.90'))}"
            )
    ood = res.get("ood")
    if ood:
        lines.append(f"  out-of-domain flagged: {ood['fraction_flagged']:.3f} of {ood['n']} mocks")
    lines += _robustness_lines(res.get("robustness"))
    lines += _sdm_lines(res.get("sdm"))
    return "\n".join(lines)


def _sdm_lines(sdms: dict[str, Any] | None) -> list[str]:
    """Summary lines of the SDM baselines evaluated on the same clusters."""
    lines = []
    for name, r in (sdms or {}).items():
        e, sr, rob = r["residuals"], r.get("sampling_rate") or {}, r.get("robustness", {})
        shifts = "  ".join(
            f"{f:g}: {rob.get(f'random_{f:g}', {}).get('sdm', {}).get('median', math.nan):+.3f}"
            for f in rob.get("fractions", [])
        )
        lines.append(
            f"  {name:8s} mean {e['mean']:+.3f}  std {e['std']:.3f}  16-84% width "
            f"{e['width']:.3f} dex  (SDM, {r['model']['n_train']} training clusters)"
        )
        lines.append(
            f"           Δε68 {sr.get('delta_eps68', math.nan):.3f}  thinning median shift {shifts}"
        )
    return lines


def _num(value: Any, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``; '–' when it is missing (None or NaN: an empty bin)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)
