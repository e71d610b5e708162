"""Support Distribution Machines (SDM): the machine-learning baseline of Ho et al. 2019.

Ntampaka et al. 2015 (arXiv:1410.0686) and 2016 (arXiv:1509.05409) estimate a cluster's mass
by regression on the *distribution* of its galaxies in phase space: every cluster is a sample
("bag") of points, the distance between two clusters is a nonparametric estimate of the
Kullback–Leibler divergence between the distributions their galaxies were drawn from, a kernel
is built from those divergences, and a support vector regression runs on that kernel (Póczos
et al. 2012, "Support distribution machines", arXiv:1202.0302; the divergence kernels of
Sutherland, Xiong, Póczos & Schneider 2012). Ho et al. (2019, arXiv:1902.05950) compare their
CNNs with two of them, run with ``py-sdm``'s ``NuSDR`` (paper notes §4.2):

* **SDM_1D**: features ``|v_los|``;
* **SDM_2D**: features ``(|v_los|, R_proj)``;

with K = 4 nearest neighbours in the divergence estimate and hyperparameters tuned by an inner
3-fold cross-validation on the training set.

What is implemented here
------------------------
* **Divergence estimator**: the k-nearest-neighbour estimator of Wang, Kulkarni & Verdú (2009,
  IEEE Trans. Inf. Theory 55, 2392, "Divergence estimation for multidimensional densities via
  k-nearest-neighbor distances"), with the same k in both samples: for samples
  X = {x_1..x_n} ~ P and Y = {y_1..y_m} ~ Q in d dimensions,

      D(P || Q) ≈ (d / n) Σ_i log(ν_k(i) / ρ_k(i)) + log(m / (n − 1)),

  where ρ_k(i) is the distance from x_i to its k-th nearest neighbour in X \\ {x_i} and ν_k(i)
  that to its k-th nearest neighbour in Y. It is asymptotically unbiased and mean-square
  consistent; it is the ``"kl"`` estimator of Póczos et al. 2012 and of ``py-sdm``. Distances
  are floored at ``min_dist`` (duplicate points). The k-NN searches use
  :class:`scipy.spatial.cKDTree`: one tree per sample, queried once with the points of every
  sample (no Python loop over pairs), plus a single tree and query for all the ρ_k.
* **Kernel**: divergences are symmetrised, D_s = (D(P||Q) + D(Q||P)) / 2, clipped at 0 and
  turned into K = exp(−D_s / σ²), with σ² a multiple of the median training divergence. The
  training Gram matrix is projected onto the positive semi-definite cone (negative eigenvalues
  clipped) and test kernels are transformed consistently (Chen, Garcia, Gupta, Rahimi &
  Cazzanti 2009, JMLR 10, 747: K_test → K_test V 1[λ > 0] Vᵀ), as ``py-sdm`` does.
* **Regression**: :class:`sklearn.svm.NuSVR` with ``kernel="precomputed"`` on the standardised
  target log10 M200c; (σ², C, ν) chosen on a grid by an inner K-fold (by host when host ids are
  given) on the training samples only, minimising the mean squared error.
* **Prediction** is ``K(x, train) @ w + b``, where ``w`` folds the PSD transform, the dual
  coefficients and the target scaling together; the model file stores the (standardised)
  training samples, ``w``, ``b`` and the hyperparameters as plain arrays in an ASDF file (no
  pickle): :meth:`SDM.save`, :func:`load_sdm`.

Only scikit-learn's ``NuSVR`` and scipy's ``cKDTree`` are reused; no maintained library
offers the sample-set divergence kernel (``py-sdm`` is Python-2 era and unmaintained).

Cost
----
Both the divergences and the kernel are quadratic in the number of clusters: fitting on
``n`` training clusters of ``g`` galaxies each costs about ``n² g`` k-NN queries (roughly
0.4 µs each on one CPU core) plus ``n²`` memory; predicting ``t`` clusters costs ``2 n t g``
queries. With the defaults, ``max_train=1000`` training clusters and at most
``max_galaxies=100`` galaxies per cluster (a seeded random subset of richer clusters), a fit
took 2–3 minutes (about 1 minute of divergences, 1.5 minutes of tuning) and predictions
0.14–0.24 ms per (predicted, training) cluster pair, i.e. 8–14 minutes for 3,500 clusters, on
2 CPU cores shared with other jobs; the kernel of 1,000 clusters takes 8 MB.
``scikit-learn`` is needed (the optional ``sdm`` extra: ``pip install astro_cnnmass[sdm]``); it
is imported only when an SDM is fitted.

Examples
--------
>>> from astro_cnnmass.model.sdm import SDM_2D, load_sdm      # doctest: +SKIP
>>> sdm = SDM_2D(seed=0).fit(R, v, offsets, log_m)           # doctest: +SKIP
>>> sdm.save("sdm2d.asdf"); load_sdm("sdm2d.asdf").predict(R2, v2, offsets2)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..plain import plain_python
from .divergences import DEFAULT_K, _as_bags, divergence_kernel, kl_divergence_matrix, project_psd

__all__ = ["SDM", "SDM_1D", "SDM_2D", "cluster_samples", "load_sdm"]


#: Tree key of the model in an SDM file.
SDM_FILE_KEY = "astro_cnnmass_sdm"


SDM_FILE_VERSION = 1


DEFAULT_SIGMA2_FACTORS = (0.5, 1.0, 2.0, 4.0)


DEFAULT_C_VALUES = (0.03, 0.1, 0.3, 1.0, 3.0)


DEFAULT_NU_VALUES = (0.25, 0.5, 0.75)


DEFAULT_CYLINDER = {"aperture_mpch": 1.6, "v_cut_kms": 2200.0}


#: libsvm iteration cap of the tuning fits (the final fit has none).
TUNING_MAX_ITER = 20_000


FEATURES = {"sdm1d": ("abs_v",), "sdm2d": ("abs_v", "R")}


def _sklearn_nusvr() -> Any:
    try:
        from sklearn.svm import NuSVR
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "the SDM baselines need scikit-learn: pip install 'astro_cnnmass[sdm]' "
            "(or pip install scikit-learn)"
        ) from exc
    return NuSVR


def _convergence_warning() -> type[Warning]:
    from sklearn.exceptions import ConvergenceWarning

    return ConvergenceWarning


# ---------------------------------------------------------------------------- catalogues
def cluster_samples(
    catalog: Any,
    cylinder: dict | None = None,
    *,
    rows: Any = None,
    n_min_galaxies: int = 10,
) -> dict[str, np.ndarray]:
    """Cylinder galaxies of every mock, as flat ``R``, ``v`` and ``offsets``.

    The same cylinder (:func:`astro_cnnmass.observe.phase_space.cylinder_mask`) and richness
    cut as :func:`astro_cnnmass.model.samples.prepare_features`.

    Parameters
    ----------
    catalog : MockCatalog
    cylinder : dict, optional
        ``{"aperture_mpch", "v_cut_kms"}``; default 1.6 Mpc/h, 2200 km/s.
    rows : array-like of int, optional
        Catalogue rows to take (default: all), in this order.
    n_min_galaxies : int
        Rows with fewer cylinder galaxies are dropped.

    Returns
    -------
    dict
        ``index`` (catalogue rows kept), ``R`` [Mpc/h], ``v`` [km/s], ``offsets``, ``log_m``,
        ``host_id`` (where the catalogue has them).
    """
    from ..observe.phase_space import cylinder_mask

    cyl = dict(cylinder or DEFAULT_CYLINDER)
    off = np.asarray(catalog.offsets, dtype=np.int64)
    rows = np.arange(off.size - 1) if rows is None else np.asarray(rows, dtype=np.int64)
    lens = off[rows + 1] - off[rows]
    new_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    gidx = np.repeat(off[rows] - new_off[:-1], lens) + np.arange(new_off[-1])
    R = np.asarray(catalog.R)[gidx].astype(float)
    v = np.asarray(catalog.v)[gidx].astype(float)
    cid = np.repeat(np.arange(rows.size), lens)
    inside = cylinder_mask(R, v, cyl["aperture_mpch"], cyl["v_cut_kms"])
    counts = np.bincount(cid[inside], minlength=rows.size)
    rich = counts >= n_min_galaxies
    sel = inside & rich[cid]
    out = {
        "index": rows[rich],
        "R": R[sel],
        "v": v[sel],
        "offsets": np.concatenate([[0], np.cumsum(counts[rich])]).astype(np.int64),
    }
    clusters = catalog.clusters
    for key, col in (("log_m", "log_m200c"), ("host_id", "host_id")):
        if col in clusters:
            out[key] = np.asarray(clusters[col])[rows[rich]]
    return out


# ---------------------------------------------------------------------------- estimator
def _group_folds(
    n: int, groups: np.ndarray | None, n_folds: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold split, by group when groups are given (all rows of a group in one fold)."""
    if groups is None:
        groups = np.arange(n)
    unique, inverse = np.unique(np.asarray(groups), return_inverse=True)
    if unique.size < n_folds:
        raise ValueError(f"{unique.size} groups cannot fill {n_folds} tuning folds")
    fold_of = np.empty(unique.size, dtype=int)
    fold_of[rng.permutation(unique.size)] = np.arange(unique.size) % n_folds
    fold = fold_of[inverse]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_folds)]


class SDM:
    """Support distribution machine regressor of log10 M200c (base of SDM_1D and SDM_2D).

    Parameters
    ----------
    kind : {"sdm1d", "sdm2d"}
        Features ``|v|`` or ``(|v|, R)``.
    k : int
        Neighbour order of the divergence estimate (paper: 4).
    n_folds : int
        Inner cross-validation folds for (σ², C, ν) (paper: 3).
    sigma2_factors : sequence of float
        Kernel widths σ² tried, in units of the median training divergence.
    C_values, nu_values : sequence of float
        NuSVR ``C`` and ``nu`` tried.
    max_train : int or None
        At most this many training clusters (a seeded random subset; the cost is quadratic).
    max_galaxies : int or None
        At most this many galaxies per cluster (a seeded random subset of richer clusters).
    cylinder : dict, optional
        ``{"aperture_mpch", "v_cut_kms"}`` of :meth:`predict_catalog` (default 1.6, 2200).
    min_dist : float
        Floor of the neighbour distances, in standardised feature units.
    workers : int
        Threads of the k-NN queries.
    seed : int
        Seeds the training subset, the galaxy subsets and the tuning folds.
    """

    kind = "sdm2d"

    def __init__(
        self,
        *,
        kind: str | None = None,
        k: int = DEFAULT_K,
        n_folds: int = 3,
        sigma2_factors: tuple[float, ...] = DEFAULT_SIGMA2_FACTORS,
        C_values: tuple[float, ...] = DEFAULT_C_VALUES,
        nu_values: tuple[float, ...] = DEFAULT_NU_VALUES,
        max_train: int | None = 1000,
        max_galaxies: int | None = 100,
        cylinder: dict | None = None,
        min_dist: float = 1e-6,
        workers: int = 1,
        seed: int = 0,
    ) -> None:
        kind = kind or type(self).kind
        if kind not in FEATURES:
            raise ValueError(f"kind must be one of {sorted(FEATURES)}, got {kind!r}")
        self.kind = kind
        self.k = int(k)
        self.n_folds = int(n_folds)
        self.sigma2_factors = tuple(float(s) for s in sigma2_factors)
        self.C_values = tuple(float(c) for c in C_values)
        self.nu_values = tuple(float(n) for n in nu_values)
        self.max_train = None if max_train is None else int(max_train)
        self.max_galaxies = None if max_galaxies is None else int(max_galaxies)
        self.cylinder = dict(cylinder or DEFAULT_CYLINDER)
        self.min_dist = float(min_dist)
        self.workers = int(workers)
        self.seed = int(seed)
        self._fitted = False

    # ------------------------------------------------------------------ features
    def _features(self, R: np.ndarray, v: np.ndarray) -> np.ndarray:
        cols = [np.abs(np.asarray(v, dtype=float))]
        if self.kind == "sdm2d":
            cols.append(np.asarray(R, dtype=float))
        return np.column_stack(cols)

    def _cap(
        self, points: np.ndarray, offsets: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """At most ``max_galaxies`` points per sample (random within each richer sample)."""
        counts = np.diff(offsets)
        if self.max_galaxies is None or counts.size == 0 or counts.max() <= self.max_galaxies:
            return points, offsets
        cid = np.repeat(np.arange(counts.size), counts)
        order = np.lexsort((rng.random(cid.size), cid))
        rank = np.empty(cid.size, dtype=np.int64)
        rank[order] = np.arange(cid.size) - np.repeat(offsets[:-1], counts)
        keep = rank < self.max_galaxies
        new = np.minimum(counts, self.max_galaxies)
        return points[keep], np.concatenate([[0], np.cumsum(new)]).astype(np.int64)

    def _prepare(
        self, R: Any, v: Any, offsets: Any, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        R = np.asarray(getattr(R, "value", R), dtype=float)
        v = np.asarray(getattr(v, "value", v), dtype=float)
        if R.shape != v.shape or R.ndim != 1:
            raise ValueError(f"R and v must be 1-D of the same length, got {R.shape}, {v.shape}")
        pts, off = _as_bags(self._features(R, v), offsets)
        return self._cap(pts, off, rng)

    # ------------------------------------------------------------------ fit
    def fit(self, R: Any, v: Any, offsets: Any, log_m: Any, groups: Any = None) -> SDM:
        """Fit on the cylinder galaxies of training clusters.

        Parameters
        ----------
        R, v : array-like
            Flat projected radii [Mpc/h] and LOS velocities [km/s] of every training cluster's
            galaxies, cluster after cluster.
        offsets : array-like of int, shape (n + 1,)
        log_m : array-like, shape (n,)
            True log10 M200c [Msun/h].
        groups : array-like, shape (n,), optional
            Host ids: the tuning folds keep all lines of sight of a host together.

        Returns
        -------
        self
        """
        NuSVR = _sklearn_nusvr()
        t0 = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        off = np.asarray(offsets, dtype=np.int64)
        y = np.asarray(log_m, dtype=float)
        n = off.size - 1
        if y.shape != (n,):
            raise ValueError(f"log_m must have one value per cluster ({n}), got {y.shape}")
        groups = None if groups is None else np.asarray(groups)
        counts = np.diff(off)
        ok = (counts >= self.k + 1) & np.isfinite(y)
        rows = np.flatnonzero(ok)
        if self.max_train is not None and rows.size > self.max_train:
            rows = np.sort(rng.choice(rows, size=self.max_train, replace=False))
        if rows.size < 2 * self.n_folds:
            raise ValueError(f"{rows.size} usable training clusters: too few to fit an SDM")
        R = np.asarray(getattr(R, "value", R), dtype=float)
        v = np.asarray(getattr(v, "value", v), dtype=float)
        lens = counts[rows]
        sub_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        gidx = np.repeat(off[rows] - sub_off[:-1], lens) + np.arange(sub_off[-1])
        raw, boff = self._prepare(R[gidx], v[gidx], sub_off, rng)
        self.feature_mean_ = raw.mean(axis=0)
        self.feature_scale_ = raw.std(axis=0)
        self.feature_scale_[~(self.feature_scale_ > 0)] = 1.0
        pts = (raw - self.feature_mean_) / self.feature_scale_
        y = y[rows]
        g = None if groups is None else groups[rows]
        t1 = time.perf_counter()
        D = kl_divergence_matrix(pts, boff, k=self.k, min_dist=self.min_dist, workers=self.workers)
        Ds = 0.5 * (D + D.T)
        t2 = time.perf_counter()
        off_diag = Ds[~np.eye(Ds.shape[0], dtype=bool)]
        median = float(np.median(off_diag[off_diag > 0])) if np.any(off_diag > 0) else 1.0
        y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
        ys = (y - y_mean) / y_std
        folds = _group_folds(y.size, g, self.n_folds, rng)
        grid = [
            (s, c, nu) for s in self.sigma2_factors for c in self.C_values for nu in self.nu_values
        ]
        mse = np.zeros(len(grid))
        n_unconverged = 0
        conv = _convergence_warning()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", conv)
            n_cn = len(self.C_values) * len(self.nu_values)
            for si, s in enumerate(self.sigma2_factors):
                K = divergence_kernel(Ds, s * median)
                for tr, va in folds:
                    Ktr, P = project_psd(K[np.ix_(tr, tr)])
                    Kva = K[np.ix_(va, tr)] @ P
                    for j in range(n_cn):
                        _, c, nu = grid[si * n_cn + j]
                        svr = NuSVR(kernel="precomputed", C=c, nu=nu, max_iter=TUNING_MAX_ITER)
                        svr.fit(Ktr, ys[tr])
                        mse[si * n_cn + j] += np.sum((svr.predict(Kva) - ys[va]) ** 2)
            n_unconverged = sum(issubclass(w.category, conv) for w in caught)
        best = int(np.argmin(mse))
        s_best, c_best, nu_best = grid[best]
        t3 = time.perf_counter()
        K = divergence_kernel(Ds, s_best * median)
        Kpsd, P = project_psd(K)
        svr = NuSVR(kernel="precomputed", C=c_best, nu=nu_best)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", conv)
            svr.fit(Kpsd, ys)
        w = P[:, svr.support_] @ np.asarray(svr.dual_coef_, dtype=float).ravel()
        self.points_ = pts
        self.offsets_ = boff
        self.weights_ = y_std * w
        self.intercept_ = float(y_mean + y_std * float(np.ravel(svr.intercept_)[0]))
        self.sigma2_ = float(s_best * median)
        self.C_ = float(c_best)
        self.nu_ = float(nu_best)
        self.log_m_train_ = y
        self.info_ = {
            "n_train": int(y.size),
            "n_galaxies_train": int(pts.shape[0]),
            "median_divergence": median,
            "sigma2_factor": float(s_best),
            "n_support": int(svr.support_.size),
            "tuning_rmse_dex": float(math.sqrt(mse[best] / y.size) * y_std),
            "tuning_grid": [list(p) for p in grid],
            "tuning_rmse_grid_dex": (np.sqrt(mse / y.size) * y_std).tolist(),
            "tuning_unconverged_fits": int(n_unconverged),
            "seconds": {
                "prepare": t1 - t0,
                "divergences": t2 - t1,
                "tuning": t3 - t2,
                "final_fit": time.perf_counter() - t3,
                "total": time.perf_counter() - t0,
            },
        }
        self._fitted = True
        return self

    def fit_catalog(self, catalog: Any, rows: Any = None, n_min_galaxies: int = 10) -> SDM:
        """Fit on catalogue rows (cylinder and richness cut as for the CNN; groups = hosts)."""
        s = cluster_samples(catalog, self.cylinder, rows=rows, n_min_galaxies=n_min_galaxies)
        return self.fit(s["R"], s["v"], s["offsets"], s["log_m"], groups=s.get("host_id"))

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError(f"this {type(self).__name__} is not fitted: call fit() first")

    def predict(self, R: Any, v: Any, offsets: Any) -> np.ndarray:
        """log10 M200c [Msun/h] of clusters given their galaxies.

        Parameters
        ----------
        R, v : array-like
            Flat projected radii [Mpc/h] and LOS velocities [km/s], cluster after cluster
            (only the galaxies inside the model's cylinder, as in training).
        offsets : array-like of int, shape (n + 1,)

        Returns
        -------
        numpy.ndarray, shape (n,)
            NaN for clusters with fewer than ``k + 1`` galaxies.
        """
        self._check_fitted()
        rng = np.random.default_rng([self.seed, 1])
        raw, off = self._prepare(R, v, offsets, rng)
        counts = np.diff(off)
        out = np.full(counts.size, np.nan)
        ok = counts >= self.k + 1
        if not ok.any():
            return out
        keep = np.repeat(ok, counts)
        pts = (raw[keep] - self.feature_mean_) / self.feature_scale_
        off_ok = np.concatenate([[0], np.cumsum(counts[ok])]).astype(np.int64)
        kw = {"k": self.k, "min_dist": self.min_dist, "workers": self.workers}
        d_ab = kl_divergence_matrix(pts, off_ok, self.points_, self.offsets_, **kw)
        d_ba = kl_divergence_matrix(self.points_, self.offsets_, pts, off_ok, **kw)
        K = divergence_kernel(0.5 * (d_ab + d_ba.T), self.sigma2_)
        out[ok] = K @ self.weights_ + self.intercept_
        return out

    def predict_catalog(
        self, catalog: Any, rows: Any = None, n_min_galaxies: int = 10
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict catalogue rows; returns ``(rows kept, log10 M200c)``."""
        s = cluster_samples(catalog, self.cylinder, rows=rows, n_min_galaxies=n_min_galaxies)
        return s["index"], self.predict(s["R"], s["v"], s["offsets"])

    # ------------------------------------------------------------------ I/O
    def to_tree(self) -> dict:
        """The fitted model as a dict of plain arrays and scalars (the file's tree)."""
        self._check_fitted()
        return {
            "format": "astro_cnnmass SDM",
            "format_version": SDM_FILE_VERSION,
            "kind": self.kind,
            "features": list(FEATURES[self.kind]),
            "divergence": "kl, k-NN estimator (Wang, Kulkarni & Verdu 2009), symmetrised",
            "kernel": "exp(-max(D, 0) / sigma2); PSD clip, test transform folded into weights",
            "prediction": "log10 M200c = K(x, train) @ weights + intercept",
            "hyperparameters": {
                "k": self.k,
                "sigma2": self.sigma2_,
                "C": self.C_,
                "nu": self.nu_,
                "min_dist": self.min_dist,
            },
            "settings": {
                "n_folds": self.n_folds,
                "sigma2_factors": list(self.sigma2_factors),
                "C_values": list(self.C_values),
                "nu_values": list(self.nu_values),
                "max_train": self.max_train,
                "max_galaxies": self.max_galaxies,
                "seed": self.seed,
            },
            "cylinder": dict(self.cylinder),
            "feature_mean": np.asarray(self.feature_mean_, dtype=float),
            "feature_scale": np.asarray(self.feature_scale_, dtype=float),
            "points": np.ascontiguousarray(self.points_, dtype=float),
            "offsets": np.asarray(self.offsets_, dtype=np.int64),
            "weights": np.asarray(self.weights_, dtype=float),
            "intercept": float(self.intercept_),
            "log_m_train": np.asarray(self.log_m_train_, dtype=float),
            "info": plain_python(self.info_),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ASDF file of plain arrays (atomically; no pickle); returns the path."""
        import asdf

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        try:
            asdf.AsdfFile({SDM_FILE_KEY: self.to_tree()}).write_to(tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path

    @classmethod
    def from_tree(cls, tree: dict) -> SDM:
        """Rebuild a fitted model from :meth:`to_tree` output."""
        if int(tree.get("format_version", -1)) != SDM_FILE_VERSION:
            raise ValueError(f"unsupported SDM file version {tree.get('format_version')!r}")
        hp, st = dict(tree["hyperparameters"]), dict(tree["settings"])
        kind = str(tree["kind"])
        klass = {"sdm1d": SDM_1D, "sdm2d": SDM_2D}.get(kind, cls)
        model = klass(
            kind=kind,
            k=int(hp["k"]),
            n_folds=int(st["n_folds"]),
            sigma2_factors=tuple(st["sigma2_factors"]),
            C_values=tuple(st["C_values"]),
            nu_values=tuple(st["nu_values"]),
            max_train=st["max_train"],
            max_galaxies=st["max_galaxies"],
            cylinder=dict(tree["cylinder"]),
            min_dist=float(hp["min_dist"]),
            seed=int(st["seed"]),
        )
        model.feature_mean_ = np.array(tree["feature_mean"], dtype=float)
        model.feature_scale_ = np.array(tree["feature_scale"], dtype=float)
        model.points_ = np.array(tree["points"], dtype=float)
        model.offsets_ = np.array(tree["offsets"], dtype=np.int64)
        model.weights_ = np.array(tree["weights"], dtype=float)
        model.intercept_ = float(tree["intercept"])
        model.sigma2_, model.C_, model.nu_ = float(hp["sigma2"]), float(hp["C"]), float(hp["nu"])
        model.log_m_train_ = np.array(tree["log_m_train"], dtype=float)
        model.info_ = dict(tree.get("info", {}))
        model._fitted = True
        return model

    def __repr__(self) -> str:
        state = (
            f"fitted on {self.points_.shape[0]} galaxies of {self.offsets_.size - 1} "
            f"clusters, sigma2={self.sigma2_:.3g}, C={self.C_:g}, nu={self.nu_:g}"
            if self._fitted
            else "not fitted"
        )
        return f"<{type(self).__name__} k={self.k}: {state}>"


class SDM_1D(SDM):
    """SDM on ``|v_los|`` (Ntampaka et al. 2015; Ho et al. 2019's SDM_1D). See :class:`SDM`."""

    kind = "sdm1d"


class SDM_2D(SDM):
    """SDM on ``(|v_los|, R_proj)`` (Ntampaka et al. 2016; Ho et al. 2019's SDM_2D).

    See :class:`SDM`.
    """

    kind = "sdm2d"


def load_sdm(path: str | os.PathLike) -> SDM:
    """Read an SDM model file written by :meth:`SDM.save`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not an SDM model file.
    """
    import asdf

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no SDM model file at {path}")
    with asdf.open(path, memmap=False, lazy_load=False) as af:
        if SDM_FILE_KEY not in af.tree:
            raise ValueError(f"{path} is not an SDM model file (no {SDM_FILE_KEY!r} entry)")
        tree = _materialise(af.tree[SDM_FILE_KEY])
    return SDM.from_tree(tree)


def load_sdms(items: Any, names: Any = None) -> dict[str, SDM]:
    """SDM models keyed by name from models or paths (default names: file stems or kinds)."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return {str(k): (v if isinstance(v, SDM) else load_sdm(v)) for k, v in items.items()}
    items = list(items) if isinstance(items, list | tuple) else [items]
    models = [it if isinstance(it, SDM) else load_sdm(it) for it in items]
    default = [it.kind if isinstance(it, SDM) else Path(it).stem for it in items]
    names = list(names) if names is not None else default
    if len(names) != len(models):
        raise ValueError(f"{len(names)} names for {len(models)} SDM models")
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    return dict(zip(names, models))


def type_for(kind: str) -> type[SDM]:
    """The estimator class of a kind (``"sdm1d"`` -> :class:`SDM_1D`)."""
    return {"sdm1d": SDM_1D, "sdm2d": SDM_2D}[kind]


def _materialise(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_materialise(v) for v in obj]
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return np.array(obj)
    return obj
