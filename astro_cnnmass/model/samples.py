"""Training samples: mock catalogue -> cylinder galaxies -> KDE images (the training side).

It applies the model's cylinder (:func:`astro_cnnmass.observe.phase_space.cylinder_mask`), drops
mocks with fewer than ``n_min_galaxies`` galaxies inside it and builds the images with
:func:`astro_cnnmass.features.kde.kde_images`, the same functions the observation side calls.

It also holds the galaxy-level thinning used by sampling-invariant training (issue 13):
:func:`thinned_counts` draws, for every cluster, a number of galaxies to keep that does not
depend on its mass, :func:`thin_packed` picks them (at random, or the ones with the largest
stellar mass for a magnitude-limit-like cut) and :func:`thinned_images` builds their KDE images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .splits import _floats, _rng

__all__ = [
    "THINNING_DISTRIBUTIONS",
    "prepare_features",
    "read_catalog",
    "thin_packed",
    "thinned_counts",
    "thinned_images",
]

#: Distributions of the kept galaxy count of :func:`thinned_counts`.
THINNING_DISTRIBUTIONS = ("log_uniform", "fraction")


N_MIN_GALAXIES = 10


DEFAULT_CYLINDER = {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}


# ---------------------------------------------------------------------------- features
def _resolve_configs(model: str, cylinder: Any, feature_config: Any) -> tuple[dict, Any]:
    from ..features.config import FeatureConfig

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
    keep_galaxies: bool = False,
) -> dict[str, np.ndarray]:
    """Cylinder cut, richness cut, velocity dispersion and KDE images for every mock.

    Parameters
    ----------
    catalog : MockCatalog
        Flat galaxy arrays ``R`` [Mpc/h], ``v`` [km/s], ``offsets`` and ``clusters`` (with
        ``log_m200c``, ``z``, ``host_id``).
    cylinder : dict
        ``{"aperture_mpch", "v_cut_kms"}``.
    feature_config : astro_cnnmass.features.config.FeatureConfig
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
    keep_galaxies : bool
        Also return ``galaxies``: the cylinder galaxies of the kept rows, packed (``R``
        [Mpc/h], ``v`` [km/s], ``log_mstar`` [log10 Msun] where the catalogue has it, and
        ``offsets``: row ``i`` is ``slice(offsets[i], offsets[i + 1])``), for thinning on the
        fly (:func:`thinned_images`).

    Returns
    -------
    dict of numpy.ndarray
        ``index`` (rows of the catalogue kept), ``images`` (float32), ``images_subsampled``
        (``(n_subsampled, n, ...)`` float32, where present), ``log_m``, ``z``, ``host_id``,
        ``sigma`` (np.std of v in the cylinder, km/s), ``n_gal``, ``summaries`` (dict of arrays:
        :func:`astro_cnnmass.uncertainty.summary_ood.phase_space_summaries`), and the counts
        ``n_input``,
        ``n_dropped_richness``, ``n_dropped_invalid``. Only mocks with a valid image are kept.
    """
    from ..classical import grouped_std
    from ..features.kde import kde_images
    from ..observe.phase_space import cylinder_mask
    from ..uncertainty.summary_ood import phase_space_summaries

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
        "summaries": {
            k: a[valid]
            for k, a in phase_space_summaries(
                R2, v2, new_off, cylinder["aperture_mpch"], cylinder["v_cut_kms"]
            ).items()
        },
        "n_input": np.asarray(n),
        "n_dropped_richness": np.asarray(int((~rich).sum())),
        "n_dropped_invalid": np.asarray(int((~valid).sum())),
    }
    if n_subsampled > 0:
        rng = _rng(seed)
        versions = []
        for _ in range(int(n_subsampled)):
            thin = _thinned_images(
                R2, v2, new_off, feature_config, n_min_galaxies, subsample_fraction, rng
            )
            bad = ~np.isfinite(thin.reshape(thin.shape[0], -1)).all(axis=1)
            thin[bad] = images[bad]  # an undefined thinned KDE falls back to the full one
            versions.append(thin[valid])
        out["images_subsampled"] = np.stack(versions)
    if keep_galaxies:
        gal_valid = valid[np.repeat(np.arange(valid.size), counts[rich])]
        galaxies = {"R": R2[gal_valid], "v": v2[gal_valid]}
        if getattr(catalog, "log_mstar", None) is not None:
            galaxies["log_mstar"] = _floats(catalog.log_mstar)[sel][gal_valid]
        galaxies["offsets"] = np.concatenate([[0], np.cumsum(counts[rich][valid])]).astype(np.int64)
        out["galaxies"] = galaxies
    return out


def thinned_counts(
    n_gal: np.ndarray,
    rng: np.random.Generator,
    *,
    n_min: int = N_MIN_GALAXIES,
    distribution: str = "log_uniform",
    fraction: tuple[float, float] = (0.3, 1.0),
    full_fraction: float = 0.0,
) -> np.ndarray:
    """Number of galaxies to keep in each cluster, drawn independently of its mass.

    Parameters
    ----------
    n_gal : numpy.ndarray of int, shape (n,)
        Galaxies each cluster has (inside the cylinder).
    rng : numpy.random.Generator
    n_min : int
        Smallest count kept (a cluster with fewer keeps all of its galaxies).
    distribution : {"log_uniform", "fraction"}
        ``"log_uniform"``: log N' uniform between log ``n_min`` and log(N + 1), rounded down, so
        that every count from ``n_min`` to N is possible and the density in log N' below N is
        the same for every cluster; ``"fraction"``: N' = round(f N) with f uniform in
        ``fraction`` (at least ``n_min``).
    fraction : (float, float)
        Range of the kept fraction of the ``"fraction"`` distribution.
    full_fraction : float
        Probability that a cluster keeps all of its galaxies, in [0, 1].

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Counts in [min(n_min, N), N].
    """
    n_gal = np.asarray(n_gal, dtype=np.int64)
    if distribution not in THINNING_DISTRIBUTIONS:
        raise ValueError(
            f"distribution must be one of {THINNING_DISTRIBUTIONS}, not {distribution!r}"
        )
    if not 0.0 <= full_fraction <= 1.0:
        raise ValueError(f"full_fraction must be in [0, 1], got {full_fraction}")
    lo = np.minimum(n_min, n_gal)
    if distribution == "log_uniform":
        u = rng.random(n_gal.size)
        a, b = np.log(np.maximum(lo, 1)), np.log(n_gal + 1.0)
        keep = np.floor(np.exp(a + u * (b - a))).astype(np.int64)
    else:
        f = rng.uniform(fraction[0], fraction[1], n_gal.size)
        keep = np.round(f * n_gal).astype(np.int64)
    keep = np.clip(keep, lo, n_gal)
    if full_fraction > 0:
        keep = np.where(rng.random(n_gal.size) < full_fraction, n_gal, keep)
    return keep


def thin_packed(
    offsets: np.ndarray,
    keep: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    key: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``keep[i]`` galaxies of every packed cluster ``i``.

    Parameters
    ----------
    offsets : numpy.ndarray of int, shape (n + 1,)
        Cluster ``i`` is ``slice(offsets[i], offsets[i + 1])`` of the galaxy arrays.
    keep : numpy.ndarray of int, shape (n,)
        Galaxies to keep per cluster (clipped to what it has).
    rng : numpy.random.Generator, optional
        Random subsets (required unless ``key`` is given).
    key : numpy.ndarray, shape (offsets[-1],), optional
        Keep the galaxies with the *largest* key instead (e.g. ``log_mstar``: a
        magnitude-limit-like selection); ties in random order when ``rng`` is given.

    Returns
    -------
    index : numpy.ndarray of int64
        Indices of the kept galaxies, cluster by cluster (in their original order).
    new_offsets : numpy.ndarray of int64, shape (n + 1,)
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    keep = np.minimum(np.asarray(keep, dtype=np.int64), counts)
    cid = np.repeat(np.arange(counts.size), counts)
    if key is None:
        if rng is None:
            raise ValueError("thin_packed needs rng for random subsets")
        order = np.argsort(cid + rng.random(cid.size), kind="stable")  # random within cluster
    else:
        tie = rng.random(cid.size) if rng is not None else np.zeros(cid.size)
        order = np.lexsort((tie, -np.asarray(key, dtype=float), cid))
    rank = np.empty(cid.size, dtype=np.int64)
    rank[order] = np.arange(cid.size) - np.repeat(offsets[:-1], counts)
    index = np.flatnonzero(rank < keep[cid])
    return index, np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)


def thinned_images(
    galaxies: dict[str, np.ndarray],
    rows: np.ndarray,
    keep: np.ndarray,
    feature_config: Any,
    rng: np.random.Generator | None = None,
    *,
    key: str | None = None,
    backend: str = "numpy",
    dtype: Any = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """KDE images of clusters after keeping ``keep`` of their galaxies.

    Parameters
    ----------
    galaxies : dict
        ``prepare_features(..., keep_galaxies=True)["galaxies"]``.
    rows : numpy.ndarray of int, shape (m,)
        Rows (of the ``prepare_features`` output) to thin.
    keep : numpy.ndarray of int, shape (m,)
        Galaxies to keep per row (e.g. from :func:`thinned_counts`).
    feature_config : astro_cnnmass.features.config.FeatureConfig
    rng : numpy.random.Generator, optional
        Random subsets (see :func:`thin_packed`).
    key : str, optional
        A galaxy column (``"log_mstar"``): keep the galaxies where it is largest instead.
    backend, dtype
        Passed to :func:`astro_cnnmass.features.kde.kde_images` (training uses the faster
        ``"torch"`` / float32 path; images agree with the default to ~1e-6 relative).

    Returns
    -------
    images : numpy.ndarray of float32, shape (m, ...)
        NaN where the thinned KDE is undefined.
    n_kept : numpy.ndarray of int64, shape (m,)
        Galaxies behind each image.
    """
    from ..features.kde import kde_images

    off = np.asarray(galaxies["offsets"], dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    sizes = off[rows + 1] - off[rows]
    sub_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    gidx = np.repeat(off[rows] - sub_off[:-1], sizes) + np.arange(sub_off[-1])
    kidx, new_off = thin_packed(
        sub_off, keep, rng, key=None if key is None else galaxies[key][gidx]
    )
    pick = gidx[kidx]
    images, valid = kde_images(
        galaxies["R"][pick],
        galaxies["v"][pick],
        new_off,
        feature_config,
        backend=backend,
        dtype=dtype,
    )
    images = np.asarray(images, dtype=np.float32)
    images[~np.asarray(valid, dtype=bool)] = np.nan
    return images, np.diff(new_off)


def _thinned_images(R, v, offsets, feature_config, n_min, fraction, rng) -> np.ndarray:
    """KDE images of every cluster after keeping a random fraction of its galaxies."""
    from ..features.kde import kde_images

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


def read_catalog(path: str) -> Any:
    """Open a mock catalogue file (:meth:`astro_cnnmass.mocks.MockCatalog.read`, lazy)."""
    from ..mocks.catalog import MockCatalog

    return MockCatalog.read(path)


def thinning_settings(
    thinning: str = "none",
    *,
    n_min: int = N_MIN_GALAXIES,
    fraction: tuple[float, float] = (0.3, 1.0),
    full_fraction: float = 0.0,
    consistency_weight: float = 0.0,
    consistency_target: str = "richer",
    val_copies: int = 1,
) -> dict[str, Any]:
    """The sampling-invariance settings of a training run, as stored in ``bundle.training``.

    Parameters
    ----------
    thinning : {"none", "log_uniform", "fraction"}
        ``"none"``: train on the full galaxy lists; otherwise every training cluster is
        thinned afresh at every epoch to a count from :func:`thinned_counts` with this
        ``distribution``.
    n_min, fraction, full_fraction
        See :func:`thinned_counts`.
    consistency_weight : float
        Weight of the consistency penalty (two thinned views per cluster and epoch, penalty
        ``weight * mean((mu_a - mu_b)**2)`` on the predicted means, scaled units); 0: off.
    consistency_target : {"richer", "symmetric"}
        ``"richer"``: only the view with fewer galaxies is pulled onto the other.
    val_copies : int
        Thinned copies of every validation cluster added to the validation set (early
        stopping, interval calibration), drawn once with a fixed seed.

    Returns
    -------
    dict
        Plain values (``thinning``, ``n_min``, ``fraction``, ``full_fraction``,
        ``consistency_weight``, ``val_copies``, ``fresh_draws_per_epoch``).
    """
    if thinning not in ("none", *THINNING_DISTRIBUTIONS):
        raise ValueError(
            f"thinning must be 'none' or one of {THINNING_DISTRIBUTIONS}, got {thinning!r}"
        )
    if consistency_weight < 0:
        raise ValueError(f"consistency_weight must be >= 0, got {consistency_weight}")
    if consistency_weight > 0 and thinning == "none":
        raise ValueError("consistency_weight needs thinning (two thinned views per cluster)")
    if consistency_target not in ("richer", "symmetric"):
        raise ValueError(
            f"consistency_target must be 'richer' or 'symmetric', got {consistency_target!r}"
        )
    if int(val_copies) < 0:
        raise ValueError(f"val_copies must be >= 0, got {val_copies}")
    return {
        "thinning": thinning,
        "n_min": int(n_min),
        "fraction": [float(fraction[0]), float(fraction[1])],
        "full_fraction": float(full_fraction),
        "consistency_weight": float(consistency_weight),
        "consistency_target": str(consistency_target),
        "val_copies": int(val_copies) if thinning != "none" else 0,
        "fresh_draws_per_epoch": thinning != "none",
    }


def draw_thinned(
    prep: dict,
    rows: np.ndarray,
    feature_config: Any,
    settings: dict,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One thinned image per row, with the settings of :func:`thinning_settings`.

    Rows whose thinned KDE is undefined fall back to their full image and count.

    Returns
    -------
    images : numpy.ndarray of float32, shape (len(rows), ...)
    n_kept : numpy.ndarray of int64, shape (len(rows),)
    """
    keep = thinned_counts(
        prep["n_gal"][rows],
        rng,
        n_min=settings["n_min"],
        distribution=settings["thinning"],
        fraction=tuple(settings["fraction"]),
        full_fraction=settings["full_fraction"],
    )
    rows = np.asarray(rows, dtype=np.int64)
    images = prep["images"][rows].copy()  # a cluster that keeps everything: its full image
    n_kept = prep["n_gal"][rows].astype(np.int64)
    thin = np.flatnonzero(keep < n_kept)
    if thin.size:
        imgs, n_thin = thinned_images(
            prep["galaxies"],
            rows[thin],
            keep[thin],
            feature_config,
            rng,
            backend="torch",
            dtype=np.float32,
        )
        ok = np.isfinite(imgs.reshape(imgs.shape[0], -1)).all(axis=1)  # else keep the full one
        images[thin[ok]] = imgs[ok]
        n_kept[thin[ok]] = n_thin[ok]
    return images, n_kept


def validation_views(
    prep: dict, rows: np.ndarray, feature_config: Any, settings: dict | None, seed: int
) -> dict[str, np.ndarray]:
    """The validation set: full images of ``rows`` plus ``settings["val_copies"]`` thinned copies.

    The copies are drawn with ``numpy.random.default_rng([seed, 2])``, so that
    :func:`astro_cnnmass.model.calibrate.refit_uncertainty` rebuilds the same set.

    Returns
    -------
    dict
        ``images``, ``z``, ``log_m``, ``n_gal`` and ``row`` (the ``prep`` row of each entry);
        the first ``len(rows)`` entries are the full images.
    """
    parts = {
        "images": [prep["images"][rows]],
        "n_gal": [prep["n_gal"][rows]],
        "row": [np.asarray(rows)],
    }
    copies = int(settings.get("val_copies", 0)) if settings else 0
    if copies and settings.get("thinning", "none") != "none" and len(rows):
        rng = np.random.default_rng([seed, 2])
        for _ in range(copies):
            images, n_kept = draw_thinned(prep, rows, feature_config, settings, rng)
            parts["images"].append(images)
            parts["n_gal"].append(n_kept)
            parts["row"].append(np.asarray(rows))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["z"] = prep["z"][out["row"]]
    out["log_m"] = prep["log_m"][out["row"]]
    return out
