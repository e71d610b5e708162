"""Out-of-domain scores: is this phase space like the training mocks?

* The Mahalanobis distance of the penultimate-layer embedding
  (:meth:`astro_cnnmass.model.networks.CNNMassNet.embed`, ensemble member 0) from the
  distribution of the training embeddings (:func:`fit_ood_model`, :func:`ood_scores`; Lee et al.
  2018, "A Simple Unified Framework for Detecting Out-of-Distribution Samples",
  arXiv:1807.03888), with a covariance shrunk towards a scaled identity. The threshold is the
  99th percentile of the distances of the validation mocks, so about 1 % of in-distribution
  clusters are flagged. ``train_model`` stores the model in ``bundle.domain["ood"]``.
* A principal-component model of the KDE images (:func:`fit_image_ood_model`,
  ``domain["ood_image"]``).
* A model of physical summaries of the galaxies given the predicted mass and richness
  (:mod:`astro_cnnmass.uncertainty.summary_ood`, ``domain["ood_summary"]``).

:func:`normalized_ood_scores` combines them (1 = threshold); :func:`ood_score_components` gives
each part.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "embeddings",
    "fit_image_ood_model",
    "fit_ood_model",
    "normalized_ood_scores",
    "ood_score_components",
    "ood_scores",
    "ood_threshold",
]


# ============================================================================ out-of-domain score
def _network_and_scaling(model: Any, device: Any) -> tuple[Any, dict, Any]:
    """(member-0 network in eval mode, target scaling, device) from a bundle or a Predictor."""
    from ..model.bundle import ModelBundle, _resolve_device
    from ..model.predictor import Predictor

    if isinstance(model, Predictor):
        return model.networks[0], model.scaling, model.device
    if isinstance(model, ModelBundle):
        dev = _resolve_device(device)
        net = model.build_networks(dev)[0]
        return net, model.target_scaling, dev
    raise TypeError(f"expected a ModelBundle or a Predictor, got {type(model).__name__}")


def embeddings(
    model: Any,
    images: np.ndarray,
    z: Any,
    *,
    n: Any = None,
    device: Any = None,
    chunk_size: int = 8192,
) -> np.ndarray:
    """Penultimate-layer embeddings of ensemble member 0 (dropout off).

    Parameters
    ----------
    model : ModelBundle or astro_cnnmass.model.predictor.Predictor
        A Predictor reuses its networks (no rebuild).
    images : numpy.ndarray, shape (n, n_v, n_R) or (n, n_v)
        KDE images (each summing to 1).
    z : float or array-like, shape (n,)
        Cluster redshifts (unscaled).
    n : int or array-like, shape (n,), optional
        Number of cylinder galaxies behind each image; required by networks that read it
        (``network_config["use_log_n"]``), ignored otherwise.
    device : str or torch.device, optional
        Only used with a bundle. Default: CUDA when available, else CPU.
    chunk_size : int
        Clusters per forward pass.

    Returns
    -------
    numpy.ndarray, shape (n, n_embed)
        float64 activations; NaN rows where the image or z is not finite.
    """
    import torch

    from ..model.bundle import scale_redshift

    net, scaling, dev = _network_and_scaling(model, device)
    images = np.asarray(images, dtype=np.float32)
    counts, n = n, images.shape[0]
    zz = np.broadcast_to(np.asarray(z, dtype=float), (n,)).copy()
    good = np.isfinite(images.reshape(n, -1)).all(axis=1) & np.isfinite(zz)
    zs = scale_redshift(np.where(np.isfinite(zz), zz, 0.0), scaling).astype(np.float32)
    log_n = None
    if net.config.get("use_log_n", False):
        if counts is None:
            raise ValueError(
                "this model (network_config['use_log_n']) needs the number of cylinder "
                "galaxies behind each image: pass n="
            )
        c = np.broadcast_to(np.asarray(counts, dtype=float), (n,))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_n = np.where(c >= 1, np.log10(np.where(c >= 1, c, 1.0)), np.nan)
        good &= np.isfinite(log_n)
        log_n = log_n.astype(np.float32)
    width = net.config["dense"][-1] if net.config["dense"] else None
    out = None if width is None else np.full((n, width), np.nan)
    idx = np.flatnonzero(good)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for start in range(0, idx.size, max(int(chunk_size), 1)):
                sel = idx[start : start + chunk_size]
                x = torch.from_numpy(images[sel]).to(dev)
                zt = torch.from_numpy(zs[sel]).to(dev)
                lt = None if log_n is None else torch.from_numpy(log_n[sel]).to(dev)
                e = net.embed(x, zt, lt).double().cpu().numpy()
                if out is None:
                    out = np.full((n, e.shape[1]), np.nan)
                out[sel] = e
    finally:
        net.train(was_training)
    if out is None:  # no hidden dense layer and no valid row
        out = np.full((n, 0), np.nan)
    return out


def fit_ood_model(
    train_embeddings: np.ndarray,
    val_embeddings: np.ndarray | None = None,
    *,
    percentile: float = 99.0,
    shrinkage: float = 0.05,
) -> dict[str, Any]:
    """Fit the Mahalanobis out-of-domain model on training embeddings.

    The mean ``m`` and covariance ``C`` of the training embeddings are estimated; ``C`` is shrunk
    towards a scaled identity, ``C' = (1 - shrinkage) C + shrinkage * (tr C / d) I`` (so that
    units that never fire on the training set, a common case after a ReLU, stay invertible and
    count strongly when they do fire). The score of an embedding ``x`` is the distance
    ``sqrt((x - m)^T C'^-1 (x - m))``. The threshold is the ``percentile``-th percentile of the
    scores of ``val_embeddings`` (held-out in-distribution mocks), so about ``100 - percentile``
    % of in-distribution clusters exceed it.

    Parameters
    ----------
    train_embeddings : numpy.ndarray, shape (n_train, d)
        Embeddings (:func:`embeddings`) of the training mocks; non-finite rows are ignored.
    val_embeddings : numpy.ndarray, shape (n_val, d), optional
        Embeddings of validation mocks for the threshold. Without them the training scores are
        used (an optimistic, i.e. too low, threshold).
    percentile : float
        Percentile of the validation scores taken as threshold, in (0, 100].
    shrinkage : float
        Covariance shrinkage towards the scaled identity, in (0, 1].

    Returns
    -------
    dict
        Plain-Python (list/float) entries, ready for ``bundle.domain["ood"]``: ``method``
        (``"mahalanobis_embedding"``), ``member`` (0), ``mean`` (d,), ``precision`` (d x d, the
        inverse of ``C'``), ``threshold``, ``percentile``, ``shrinkage``, ``n_fit``,
        ``n_threshold``, ``threshold_set`` (``"validation"`` or ``"training"``), and
        ``score_quantiles`` (the 50/90/99th percentiles of the threshold-set scores).
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if not 0 < shrinkage <= 1:
        raise ValueError(f"shrinkage must be in (0, 1], got {shrinkage}")
    x = np.asarray(train_embeddings, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"train_embeddings must be 2-D (n, d), got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < 2:
        raise ValueError("need at least 2 finite training embeddings to fit the OOD model")
    d = x.shape[1]
    mean = x.mean(axis=0)
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    scale = float(np.trace(cov)) / d
    if not scale > 0:
        scale = 1.0
    cov_reg = (1.0 - shrinkage) * cov + shrinkage * scale * np.eye(d)
    precision = np.linalg.inv(cov_reg)
    precision = 0.5 * (precision + precision.T)
    model: dict[str, Any] = {
        "method": "mahalanobis_embedding",
        "member": 0,
        "mean": mean.tolist(),
        "precision": precision.tolist(),
        "percentile": float(percentile),
        "shrinkage": float(shrinkage),
        "n_fit": int(x.shape[0]),
    }
    ref = x
    which = "training"
    if val_embeddings is not None:
        v = np.asarray(val_embeddings, dtype=float)
        v = v[np.isfinite(v).all(axis=1)] if v.ndim == 2 else v
        if v.ndim == 2 and v.shape[0] > 0:
            ref, which = v, "validation"
    scores = _mahalanobis(ref, mean, precision)
    model["threshold"] = float(np.percentile(scores, percentile))
    model["threshold_set"] = which
    model["n_threshold"] = int(scores.size)
    model["score_quantiles"] = {str(p): float(np.percentile(scores, p)) for p in (50, 90, 99)}
    return model


def _mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    dx = x - mean
    d2 = ((dx @ precision) * dx).sum(axis=1)  # one matrix product (a 3-operand einsum loops)
    return np.sqrt(np.clip(d2, 0.0, None))


def _ood_model(model: Any) -> dict | None:
    from ..model.predictor import Predictor

    bundle = model.bundle if isinstance(model, Predictor) else model
    ood = (getattr(bundle, "domain", None) or {}).get("ood")
    return ood if isinstance(ood, dict) and "precision" in ood else None


def ood_threshold(model: Any) -> float:
    """The out-of-domain threshold stored in a bundle (NaN if it has no OOD model).

    Parameters
    ----------
    model : ModelBundle or astro_cnnmass.model.predictor.Predictor

    Returns
    -------
    float
        Scores above it are flagged out of distribution.
    """
    ood = _ood_model(model)
    return float("nan") if ood is None else float(ood["threshold"])


def ood_scores(
    model: Any,
    images: np.ndarray,
    z: Any,
    *,
    n: Any = None,
    device: Any = None,
    chunk_size: int = 8192,
) -> np.ndarray:
    """Out-of-domain scores: Mahalanobis distance of the embeddings from the training set.

    Compare with :func:`ood_threshold` (the 99th percentile of the validation mocks' scores):
    ``ood_scores(m, images, z) > ood_threshold(m)`` flags inputs unlike the training phase
    spaces. A large score means the network is extrapolating; its mass and interval are then not
    covered by the calibration.

    Parameters
    ----------
    model : ModelBundle or astro_cnnmass.model.predictor.Predictor
        With ``domain["ood"]`` (written by ``train_model``). A Predictor reuses its networks.
    images : numpy.ndarray, shape (n, n_v, n_R) or (n, n_v)
        KDE images.
    z : float or array-like, shape (n,)
        Cluster redshifts.
    n : int or array-like, shape (n,), optional
        Number of cylinder galaxies behind each image (see :func:`embeddings`).
    device : str or torch.device, optional
        Only used with a bundle.
    chunk_size : int
        Clusters per forward pass.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Dimensionless distances (>= 0); all NaN if the bundle has no OOD model, NaN rows where
        the input is not finite.
    """
    images = np.asarray(images)
    ood = _ood_model(model)
    if ood is None:
        return np.full(images.shape[0], np.nan)
    from ..model.predictor import Predictor

    emb = embeddings(model, images, z, n=n, device=device, chunk_size=chunk_size)
    holder = model if isinstance(model, Predictor) else None
    return _mahalanobis(emb, *_model_arrays(ood, ("mean", "precision"), holder))


# ---------------------------------------------------------------------------- image-space OOD
def fit_image_ood_model(
    train_images: np.ndarray,
    val_images: np.ndarray,
    *,
    n_components: int = 12,
    percentile: float = 99.0,
) -> dict[str, Any]:
    """Out-of-domain model in the space of the KDE images themselves.

    The network's embedding can map a strange input (e.g. galaxies spread uniformly over the
    cylinder) onto the embedding of an ordinary massive cluster, so the package also scores the
    input image directly: a principal-component model of the training images (Jolliffe 2002,
    *Principal Component Analysis*), with the score

    ``d² = Σ_k p_k² / λ_k + ‖r‖² / ⟨‖r‖²⟩``,

    where ``p_k`` are the projections on the first ``n_components`` components (variances
    ``λ_k``) and ``r`` the residual outside them, normalised by its mean training value. The
    threshold is the ``percentile`` of ``d`` over the validation images.

    Parameters
    ----------
    train_images, val_images : numpy.ndarray, shape (n, ...)
        KDE images (each summing to 1) of training and validation mocks.
    n_components : int
        Principal components kept.
    percentile : float
        Percentile of the validation scores used as threshold.

    Returns
    -------
    dict
        ``mean``, ``components`` (k, d), ``variances`` (k,), ``residual_scale``,
        ``threshold``, ``percentile``, ``n_fit``, ``n_val`` (plain lists and floats).
    """
    X = _flat_images(train_images)
    if X.shape[0] <= n_components + 1:
        raise ValueError(f"need more than {n_components + 1} training images, got {X.shape[0]}")
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    comps = vt[:n_components]
    variances = s[:n_components] ** 2 / (X.shape[0] - 1)
    proj = (X - mean) @ comps.T
    resid = ((X - mean) - proj @ comps) ** 2
    residual_scale = float(resid.sum(axis=1).mean())
    model = {
        "kind": "pca_image",
        "mean": mean.tolist(),
        "components": comps.tolist(),
        "variances": variances.tolist(),
        "residual_scale": residual_scale,
        "percentile": float(percentile),
        "n_fit": int(X.shape[0]),
        "n_val": len(val_images),
    }
    model["threshold"] = float(np.nanpercentile(_image_distance(model, val_images), percentile))
    return model


def _flat_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    n = images.shape[0]
    flat = images.reshape(n, -1)
    return flat * flat.shape[1]  # mean pixel 1, as the network's input scaling


def _model_arrays(model: dict, keys: tuple[str, ...], holder: Any = None) -> tuple:
    """``model[key]`` of an out-of-domain model as arrays (they are stored as plain lists).

    The conversion is cached on ``holder`` (a Predictor), per model dict, so repeated batches
    do not convert the same lists again.
    """
    cache = getattr(holder, "_ood_array_cache", None)
    if cache is not None and id(model) in cache and cache[id(model)][0] is model:
        return cache[id(model)][1]
    arrays = tuple(np.asarray(model[key]) for key in keys)
    if holder is not None:
        if cache is None:
            cache = holder._ood_array_cache = {}
        cache[id(model)] = (model, arrays)
    return arrays


#: Rows per block of :func:`_image_distance`: the block's float64 images (1.2 MB) stay in a
#: core's cache instead of full-chunk float64 copies (75 MB for 4096 clusters); 64 rows gave
#: +4 % on ``estimate_catalog`` against 256 (2 workers, 2e4 clusters, same-process, issue 14).
IMAGE_DISTANCE_BLOCK = 64


def _image_distance(model: dict, images: np.ndarray, holder: Any = None) -> np.ndarray:
    """Image-space distance (:func:`fit_image_ood_model`), computed in blocks of rows.

    Every row's arithmetic is the same as on the whole array at once (the same products and
    sums, row by row), so blocking changes the memory traffic, not the numbers.
    """
    images = np.asarray(images)
    if images.dtype not in (np.float32, np.float64):
        images = images.astype(np.float64)
    n = images.shape[0]
    flat = images.reshape(n, -1)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    mean, comps, variances = _model_arrays(model, ("mean", "components", "variances"), holder)
    scale = flat.shape[1]  # mean pixel 1, as in _flat_images
    residual_scale = float(model["residual_scale"])
    orthonormal = _orthonormal_rows(comps, holder)
    if orthonormal:
        return _image_distance_orthonormal(model, flat, scale, holder)
    for start in range(0, n, IMAGE_DISTANCE_BLOCK):
        # float64 arithmetic block by block (float32 images are not copied whole)
        X = np.multiply(flat[start : start + IMAGE_DISTANCE_BLOCK], scale, dtype=np.float64)
        good = np.isfinite(X).all(axis=1)
        if not good.any():
            continue
        dx = X if good.all() else X[good]
        dx -= mean
        proj = dx @ comps.T
        if orthonormal:  # |dx - P dx|^2 = |dx|^2 - |P dx|^2: no reconstruction
            resid = np.einsum("ij,ij->i", dx, dx) - np.einsum("ij,ij->i", proj, proj)
            np.maximum(resid, 0.0, out=resid)
        else:
            resid = ((dx - proj @ comps) ** 2).sum(axis=1)
        d2 = (proj**2 / variances).sum(axis=1)
        d2 += resid / residual_scale
        block = out[start : start + IMAGE_DISTANCE_BLOCK]
        block[good] = np.sqrt(d2)
    return out


def _image_distance_orthonormal(
    model: dict, flat: np.ndarray, scale: float, holder: Any = None
) -> np.ndarray:
    """:func:`_image_distance` for orthonormal components, without forming ``x - mean``.

    With ``V = x @ [Cᵀ | m]`` (one product per block): ``P dx = V[:, :k] - C m`` and
    ``|dx|² = |x|² - 2 x·m + |m|²``, so a block costs one pass to scale the images to float64,
    one for ``|x|²`` and the product, instead of also subtracting the mean image and reading
    the differences twice. ``|x|²`` and ``|m|²`` are ~2304 × the mean squared pixel while
    ``|dx|²`` is of the order of the residual scale, so the expansion loses ~1e-15 relative.
    Rows with a non-finite pixel give NaN, as before: such a pixel makes ``x·m`` non-finite
    whatever the mean image (NaN, ±inf, or inf x 0 = NaN), and for finite images it is finite.
    """
    n = flat.shape[0]
    out = np.full(n, np.nan)
    W, mean_proj, mean_sq, variances = _projection_arrays(model, holder)
    k = mean_proj.size
    residual_scale = float(model["residual_scale"])
    for start in range(0, n, IMAGE_DISTANCE_BLOCK):
        X = np.multiply(flat[start : start + IMAGE_DISTANCE_BLOCK], scale, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # rows with non-finite pixels
            V = X @ W  # (rows, k + 1)
            proj = V[:, :k] - mean_proj
            resid = np.einsum("ij,ij->i", X, X) - 2.0 * V[:, k] + mean_sq
            resid -= np.einsum("ij,ij->i", proj, proj)
            np.maximum(resid, 0.0, out=resid)  # NaN stays NaN
            d2 = (proj**2 / variances).sum(axis=1)
            d2 += resid / residual_scale
        block = out[start : start + IMAGE_DISTANCE_BLOCK]
        good = np.isfinite(V[:, k])
        block[good] = np.sqrt(d2[good])
    return out


def _projection_arrays(model: dict, holder: Any = None) -> tuple[np.ndarray, ...]:
    """``([Cᵀ | m], C m, |m|², variances)`` of an image model, cached on ``holder``."""
    cache = getattr(holder, "_ood_projection_cache", None)
    if cache is not None and cache[0] is model:
        return cache[1]
    mean, comps, variances = _model_arrays(model, ("mean", "components", "variances"), holder)
    mean = np.asarray(mean, dtype=np.float64)
    comps = np.asarray(comps, dtype=np.float64)
    W = np.ascontiguousarray(np.concatenate([comps.T, mean[:, None]], axis=1))
    arrays = (W, comps @ mean, float(mean @ mean), np.asarray(variances, dtype=np.float64))
    if holder is not None:
        holder._ood_projection_cache = (model, arrays)
    return arrays


def _orthonormal_rows(comps: np.ndarray, holder: Any = None) -> bool:
    """Whether the PCA components are orthonormal rows (as fitted by SVD), cached on holder."""
    cache = getattr(holder, "_ood_orthonormal", None)
    if cache is not None and cache[0] is comps:
        return cache[1]
    k = comps.shape[0]
    result = bool(np.abs(comps @ comps.T - np.eye(k)).max() < 1e-10) if k else True
    if holder is not None:
        holder._ood_orthonormal = (comps, result)
    return result


def normalized_ood_scores(
    model: Any,
    images: np.ndarray,
    z: Any,
    *,
    embeddings: np.ndarray | None = None,
    summaries: dict[str, np.ndarray] | None = None,
    log_mass: np.ndarray | None = None,
    n: Any = None,
) -> np.ndarray:
    """Out-of-domain score in units of the thresholds: above 1 means out of distribution.

    The largest of the parts of :func:`ood_score_components` (each over its threshold, the
    99th percentile of held-out validation mocks):

    * the embedding distance (:func:`ood_scores`);
    * the image distance (:func:`fit_image_ood_model`);
    * the summary distance (:func:`astro_cnnmass.uncertainty.summary_ood.summary_distances`): the
      velocity
      shape and central concentration of the galaxies against training mocks of the same
      predicted mass and richness (bundles that carry ``domain["ood_summary"]``).

    About 2–3 % of ordinary mocks score above 1.

    Parameters
    ----------
    model, images, z, embeddings, summaries, log_mass, n
        As :func:`ood_score_components`.

    Returns
    -------
    numpy.ndarray, shape (n,)
        NaN where the bundle has no out-of-domain model or the input is not finite.

    Raises
    ------
    ValueError
        If the bundle has a summary model and ``summaries`` is not given.
    """
    parts = list(
        ood_score_components(
            model,
            images,
            z,
            embeddings=embeddings,
            summaries=summaries,
            log_mass=log_mass,
            n=n,
        ).values()
    )
    if not parts:
        return np.full(np.asarray(images).shape[0], np.nan)
    return np.fmax.reduce(parts) if len(parts) > 1 else parts[0]


def ood_score_components(
    model: Any,
    images: np.ndarray,
    z: Any,
    *,
    embeddings: np.ndarray | None = None,
    summaries: dict[str, np.ndarray] | None = None,
    log_mass: np.ndarray | None = None,
    n: Any = None,
) -> dict[str, np.ndarray]:
    """Each out-of-domain distance of a bundle over its threshold (above 1: that part flags).

    Parameters
    ----------
    model : ModelBundle or astro_cnnmass.model.predictor.Predictor
    images : numpy.ndarray, shape (n, ...)
        KDE images.
    z : float or array-like
        Cluster redshifts.
    embeddings : numpy.ndarray, shape (n, width), optional
        Member-0 embeddings already computed for these images (``Predictor.predict(...,
        return_embeddings=True)``); saves a second forward pass.
    summaries : dict, optional
        :func:`astro_cnnmass.uncertainty.summary_ood.phase_space_summaries` of the same clusters;
        required
        when the bundle has a summary model.
    log_mass : numpy.ndarray, shape (n,), optional
        The predicted log10 M200c [Msun/h] of these clusters; computed when not given.
    n : int or array-like, shape (n,), optional
        Number of cylinder galaxies behind each image; needed (unless ``embeddings`` and
        ``log_mass`` are given) by networks that read it (``network_config["use_log_n"]``).

    Returns
    -------
    dict of numpy.ndarray, shape (n,)
        ``"embedding"``, ``"image"`` and ``"summary"``, for the models the bundle has (an
        empty dict for none); NaN where the input is not finite.

    Raises
    ------
    ValueError
        If the bundle has a summary model and ``summaries`` is not given.
    """
    from ..model.predictor import Predictor
    from .summary_ood import summary_distances

    images = np.asarray(images)
    bundle = model.bundle if isinstance(model, Predictor) else model
    holder = model if isinstance(model, Predictor) else None
    domain = getattr(bundle, "domain", None) or {}
    parts: dict[str, np.ndarray] = {}
    threshold = ood_threshold(model)
    if np.isfinite(threshold):
        if embeddings is None:
            distance = ood_scores(model, images, z, n=n)
        else:
            distance = _mahalanobis(
                np.asarray(embeddings, dtype=float),
                *_model_arrays(_ood_model(model), ("mean", "precision"), holder),
            )
        parts["embedding"] = distance / threshold
    image_model = domain.get("ood_image")
    if isinstance(image_model, dict) and "components" in image_model:
        parts["image"] = _image_distance(image_model, images, holder) / float(
            image_model["threshold"]
        )
    summary_model = domain.get("ood_summary")
    if isinstance(summary_model, dict) and "precision" in summary_model:
        if summaries is None:
            raise ValueError(
                "this model's out-of-domain score needs the phase-space summaries "
                "(astro_cnnmass.uncertainty.summary_ood.phase_space_summaries) of the clusters"
            )
        if log_mass is None:
            predictor = holder if holder is not None else Predictor(bundle)
            log_mass = predictor.predict(images, z, n=n)["mean"]
        arrays = dict(
            zip(
                ("mean", "precision", "local_threshold"),
                _model_arrays(summary_model, ("mean", "precision", "local_threshold"), holder),
                strict=True,
            )
        )
        parts["summary"] = summary_distances(
            {**summary_model, **arrays}, log_mass, summaries
        ) / float(summary_model["threshold"])
    return parts
