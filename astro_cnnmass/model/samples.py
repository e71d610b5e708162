"""Training samples: mock catalogue -> cylinder galaxies -> KDE images (the training side).

It applies the model's cylinder (:func:`astro_cnnmass.observe.phase_space.cylinder_mask`), drops
mocks with fewer than ``n_min_galaxies`` galaxies inside it and builds the images with
:func:`astro_cnnmass.features.kde.kde_images`, the same functions the observation side calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .splits import _floats, _rng

__all__ = ["prepare_features", "read_catalog"]


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
    return out


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
