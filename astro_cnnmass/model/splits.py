"""Training-set sampling: splits by host, k-fold by host, and the sample flat in log M200c.

All lines of sight of one host halo stay on one side of every split (Ho et al. 2019,
arXiv:1902.05950, paper notes §2), so a model is never validated or tested on a projection of a
halo it was trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["flat_mass_sample", "kfold_by_host", "train_test_split_by_host"]


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


def _sample_and_split(
    prep: dict, seed: int, dlogm: float, n_per_bin: Any, val_fraction: float
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Flat-mass sample and training / validation split by host (rows of ``prep``).

    Returns the generator too: :func:`_fit_ood_models` draws from it afterwards, so that
    :func:`refit_uncertainty` reproduces the split and the fit rows of :func:`train_model`.
    """
    rng = np.random.default_rng(seed)
    sample = flat_mass_sample(prep["log_m"], dlogm=dlogm, n_per_bin=n_per_bin, seed=rng)
    tr_rel, va_rel = train_test_split_by_host(prep["host_id"][sample], val_fraction, rng)
    return rng, sample, sample[tr_rel], sample[va_rel]
