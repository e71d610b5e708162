"""The whole estimate on a torch device: cylinder, KDE images, ensemble, calibration, OOD scores.

:class:`DevicePipeline` is the ``backend="torch"`` path of
:meth:`astro_cnnmass.DynamicalMassEstimator.predict_packed`. A chunk of packed galaxies is copied
to the device once; there the cylinder cut, the galaxy counts and σ_v, the KDE images
(:func:`astro_cnnmass.features.kde_device.kde_images_device`), every ensemble member (one
:class:`~astro_cnnmass.model.ensemble.GroupedEnsemble` pass), the combination of the members and
the interval calibration, and the three out-of-domain scores (embedding, image and phase-space
summaries) are computed in batches; the per-cluster results come back in one copy. Only the
galaxy counts (8 bytes a cluster, to size the padded KDE buckets) and the indices of the rare
clusters that need the exact numpy KDE (see :mod:`astro_cnnmass.features.kde_device`) are read
back in between. The M–σ cross-checks and the flags, which need σ_v only, are computed on the
host from the returned arrays.

Numbers: the same formulas as the numpy path in float64 (KDE, calibration, OOD) and float32
(networks), so masses agree with the CPU path to float32 rounding (~1e-7 dex; tested to 1e-5
dex on CPU-torch in ``tests/test_device_path.py``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .features.kde import kde_images
from .features.kde_device import kde_images_device
from .model.bundle import _resolve_device
from .model.ensemble import GroupedEnsemble
from .uncertainty.summary_ood import EDGE_VELOCITY_FRACTION, INNER_RADIUS_FRACTION
from .uncertainty.summary_ood import MIN_GALAXIES as SUMMARY_MIN_GALAXIES

__all__ = ["DevicePipeline"]

#: Galaxies below this count give no estimate (as ``estimator.MIN_GALAXIES_HARD``).
_MIN_GALAXIES_HARD = 3


class DevicePipeline:
    """Packed galaxies -> per-cluster masses, uncertainties and OOD scores on one device.

    Parameters
    ----------
    bundle : astro_cnnmass.model.bundle.ModelBundle
        The trained model (deterministic ensemble; MC dropout is not supported here).
    device : str or torch.device, optional
        Default CUDA when available, else CPU.

    Attributes
    ----------
    timings : dict of float
        Seconds spent so far in ``transfer``, ``cylinder``, ``features``, ``network`` and
        ``ood`` (synchronised on CUDA; filled only when ``timed`` is True).
    """

    def __init__(self, bundle: Any, device: Any = None) -> None:
        import torch

        from .features.config import FeatureConfig

        self.torch = torch
        self.device = _resolve_device(device)
        self.bundle = bundle
        self.config = bundle.network_config
        self.feature_config = FeatureConfig.from_dict(dict(bundle.feature_config))
        self.cylinder = dict(bundle.cylinder)
        self.scaling = bundle.target_scaling
        calib = self.scaling.get("calibration", {})
        self.std_scale = float(calib.get("std_scale", 1.0))
        self.mean_offset = float(calib.get("mean_offset_dex", 0.0))
        self.std_scale_log_n = calib.get("std_scale_log_n")
        self.std_fallback = float(
            dict(bundle.metrics.get("calibration", {})).get("std_fallback", np.nan)
        )
        self.ensemble = GroupedEnsemble(bundle.build_networks(self.device))
        self.domain = dict(bundle.domain)
        self.timed = False
        self.timings = {k: 0.0 for k in ("transfer", "cylinder", "features", "network", "ood")}
        f64 = torch.float64

        def t(a: Any) -> Any:
            return torch.as_tensor(np.asarray(a, dtype=float), dtype=f64, device=self.device)

        ood = self.domain.get("ood")
        self._emb = None
        if isinstance(ood, dict) and "precision" in ood:
            self._emb = (t(ood["mean"]), t(ood["precision"]), float(ood["threshold"]))
        img = self.domain.get("ood_image")
        self._img = None
        if isinstance(img, dict) and "components" in img:
            self._img = (
                t(img["mean"]),
                t(img["components"]),
                t(img["variances"]),
                float(img["residual_scale"]),
                float(img["threshold"]),
            )
        summ = self.domain.get("ood_summary")
        self._summ = None
        if isinstance(summ, dict) and "precision" in summ:
            self._summ = {
                "mean": t(summ["mean"]),
                "precision": t(summ["precision"]),
                "local": t(summ["local_threshold"]),
                "m_axis": [float(x) for x in summ["log_mass_axis"]],
                "n_axis": [float(x) for x in summ["log_n_axis"]],
                "threshold": float(summ["threshold"]),
            }

    # ------------------------------------------------------------------ helpers
    def _tick(self, key: str, t0: float) -> float:
        if not self.timed:
            return t0
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
        t1 = time.perf_counter()
        self.timings[key] += t1 - t0
        return t1

    def predict(
        self,
        R_mpch: np.ndarray,
        v_kms: np.ndarray,
        offsets: np.ndarray,
        z: np.ndarray,
        *,
        apply_cylinder: bool = False,
        compute_ood: bool = True,
        keep_images: bool = False,
    ) -> dict[str, np.ndarray]:
        """Per-cluster results of one chunk (all arrays on the host).

        Parameters
        ----------
        R_mpch, v_kms : numpy.ndarray, shape (n_galaxies,)
            Packed projected radii (physical Mpc/h) and rest-frame velocities (km/s).
        offsets : numpy.ndarray of int, shape (n_clusters + 1,)
            Cluster boundaries.
        z : numpy.ndarray, shape (n_clusters,)
            Cluster redshifts.
        apply_cylinder : bool
            Cut the model's cylinder on the device first (else the galaxies are inside it).
        compute_ood : bool
            Also the combined out-of-domain score.
        keep_images : bool
            Also return the KDE images (float64, on the host).

        Returns
        -------
        dict of numpy.ndarray
            ``log_mass``, ``log_mass_std`` (dex, calibrated, with the point-model fallback),
            ``sigma_v`` (km/s), ``n`` (cylinder galaxies), ``valid`` (image and network input
            defined), ``ood_score`` (NaN without OOD models or ``compute_ood=False``), and
            ``images`` when asked.
        """
        torch = self.torch
        dev, f64 = self.device, torch.float64
        t0 = time.perf_counter()
        offsets = np.asarray(offsets, dtype=np.int64)
        n = offsets.size - 1
        R = torch.as_tensor(np.ascontiguousarray(R_mpch), device=dev).to(f64)
        v = torch.as_tensor(np.ascontiguousarray(v_kms), device=dev).to(f64)
        off = torch.as_tensor(offsets, device=dev)
        zt = torch.as_tensor(np.asarray(z, dtype=float), dtype=f64, device=dev)
        t0 = self._tick("transfer", t0)
        if apply_cylinder:
            inside = (R < self.cylinder["aperture_mpch"]) & (v.abs() < self.cylinder["v_cut_kms"])
            kept = torch.zeros(inside.numel() + 1, dtype=torch.int64, device=dev)
            kept[1:] = torch.cumsum(inside, 0)
            off = kept[off]
            R, v = R[inside], v[inside]
        counts_t = off[1:] - off[:-1]
        counts = counts_t.cpu().numpy()
        sigma = self._grouped_std(v, off, counts_t)
        t0 = self._tick("cylinder", t0)

        images, ok, fallback = kde_images_device(R, v, off, counts, self.feature_config)
        if fallback.size:  # rare: the exact numpy KDE on the host for these clusters
            o = offsets if not apply_cylinder else off.cpu().numpy()
            R_h, v_h = R.cpu().numpy(), v.cpu().numpy()
            parts_R = [R_h[o[i] : o[i + 1]] for i in fallback]
            parts_v = [v_h[o[i] : o[i + 1]] for i in fallback]
            sub_off = np.concatenate([[0], np.cumsum([p.size for p in parts_R])])
            img_fb, ok_fb = kde_images(
                np.concatenate(parts_R), np.concatenate(parts_v), sub_off, self.feature_config
            )
            fb_t = torch.as_tensor(fallback, device=dev)
            images[fb_t] = torch.as_tensor(img_fb, dtype=f64, device=dev)
            ok[fb_t] = torch.as_tensor(ok_fb, device=dev)
        ok &= counts_t >= _MIN_GALAXIES_HARD
        valid = ok.clone()  # the image is defined (a NaN redshift is not a KDE problem)
        ok &= torch.isfinite(zt)
        t0 = self._tick("features", t0)

        log_mean = torch.full((n,), math.nan, dtype=f64, device=dev)
        log_std = torch.full((n,), math.nan, dtype=f64, device=dev)
        ood = torch.full((n,), math.nan, dtype=f64, device=dev)
        log_n = None
        if self.config.get("use_log_n", False):
            log_n = torch.log10(counts_t.clamp(min=1).to(f64)).to(torch.float32)
        idx = torch.nonzero(ok).reshape(-1)
        if idx.numel():
            x = images[idx].to(torch.float32)
            lo, hi = self.scaling["z_min"], self.scaling["z_max"]
            zi = zt[idx]
            zs = (2.0 * zi - lo - hi) / (hi - lo) if hi > lo else torch.zeros_like(zi)
            with torch.inference_mode():
                out, emb = self.ensemble(
                    x, zs.to(torch.float32), None if log_n is None else log_n[idx]
                )
            mean, std = self._combine(out.to(f64), None if log_n is None else log_n[idx])
            log_mean[idx] = mean
            log_std[idx] = torch.where(torch.isfinite(std), std, self.std_fallback)
            t0 = self._tick("network", t0)
            if compute_ood:
                ood[idx] = self._ood(images[idx], emb.to(f64), mean, R, v, off, idx)
                t0 = self._tick("ood", t0)
        packed = torch.stack([log_mean, log_std, ood, sigma, valid.to(f64), counts_t.to(f64)])
        host = packed.cpu().numpy()
        result = {
            "log_mass": host[0],
            "log_mass_std": host[1],
            "ood_score": host[2],
            "sigma_v": host[3],
            "valid": host[4] > 0,
            "n": counts,
        }
        if keep_images:
            result["images"] = images.cpu().numpy()
        self._tick("transfer", t0)
        return result

    def predict_chunked(
        self,
        R: np.ndarray,
        v: np.ndarray,
        offsets: np.ndarray,
        z: np.ndarray,
        chunk_size: int,
        apply_cylinder: bool = False,
        compute_ood: bool = True,
        keep_images: bool = False,
    ) -> dict[str, np.ndarray]:
        """:meth:`predict` over chunks of ``chunk_size`` clusters, results concatenated."""
        parts = []
        n = offsets.size - 1
        for start in range(0, max(n, 1), chunk_size):
            stop = min(start + chunk_size, n)
            o = offsets[start : stop + 1]
            parts.append(
                self.predict(
                    R[o[0] : o[-1]],
                    v[o[0] : o[-1]],
                    o - o[0],
                    z[start:stop],
                    apply_cylinder=apply_cylinder,
                    compute_ood=compute_ood,
                    keep_images=keep_images,
                )
            )
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _grouped_std(self, v: Any, off: Any, counts: Any) -> Any:
        """Population σ of each cluster's velocities (``classical.grouped_std``), km/s."""
        torch = self.torch
        n = counts.numel()
        cid = torch.repeat_interleave(torch.arange(n, device=v.device), counts)
        nf = counts.clamp(min=1).to(v.dtype)
        s1 = torch.zeros(n, dtype=v.dtype, device=v.device).index_add_(0, cid, v)
        dev = v - (s1 / nf)[cid]
        s2 = torch.zeros(n, dtype=v.dtype, device=v.device).index_add_(0, cid, dev * dev)
        out = torch.sqrt(s2 / nf)
        out[counts < _MIN_GALAXIES_HARD] = math.nan
        return out

    def _combine(self, out: Any, log_n: Any = None) -> tuple[Any, Any]:
        """Ensemble mean and calibrated std (dex) from the members' scaled outputs (float64).

        The formulas of :meth:`astro_cnnmass.model.predictor.Predictor.predict` for a
        deterministic ensemble: mean of the means; variance = mean of the variances + the
        (population) variance of the means; times the stored ``std_scale`` and, for networks
        that read the galaxy count (``log_n``, float32 log10 N), the richness-dependent factor
        ``exp(slope (log10 N - pivot))`` of ``calibration["std_scale_log_n"]``.
        """
        torch = self.torch
        lo, hi = self.scaling["log_m_min"], self.scaling["log_m_max"]
        mu = 0.5 * (out[..., 0] * (hi - lo) + lo + hi)
        if self.mean_offset:
            mu = mu - self.mean_offset
        n_members = mu.shape[0]
        mean = mu.mean(0)
        spread = mu.var(0, correction=0) if n_members > 1 else torch.zeros_like(mean)
        if self.config["head"] == "gaussian":
            var = (torch.sqrt(torch.exp(out[..., 1])) * (0.5 * (hi - lo))) ** 2
            total = var.mean(0) + spread
        else:
            total = spread if n_members > 1 else torch.full_like(mean, math.nan)
        std = torch.sqrt(total) * self.std_scale
        if self.std_scale_log_n and log_n is not None:
            sl = self.std_scale_log_n
            std = std * torch.exp(float(sl["slope"]) * (log_n - float(sl["pivot"])))
        return mean, std

    def _ood(self, images: Any, emb: Any, log_mass: Any, R: Any, v: Any, off: Any, idx: Any) -> Any:
        """Combined out-of-domain score (largest part over its threshold) of clusters ``idx``."""
        torch = self.torch
        parts = []
        if self._emb is not None:
            mean, prec, thr = self._emb
            dx = emb - mean
            d2 = torch.einsum("ij,jk,ik->i", dx, prec, dx)
            parts.append(torch.sqrt(d2.clamp(min=0.0)) / thr)
        if self._img is not None:
            mean, comps, variances, rscale, thr = self._img
            X = images.reshape(images.shape[0], -1)
            dx = X * X.shape[1] - mean
            proj = dx @ comps.T
            resid = ((dx - proj @ comps) ** 2).sum(1)
            d2 = (proj**2 / variances).sum(1) + resid / rscale
            d = torch.sqrt(d2)
            d[~torch.isfinite(X).all(1)] = math.nan
            parts.append(d / thr)
        if self._summ is not None:
            parts.append(self._summary(log_mass, R, v, off, idx) / self._summ["threshold"])
        if not parts:
            return torch.full((idx.numel(),), math.nan, dtype=torch.float64, device=idx.device)
        score = parts[0]
        for p in parts[1:]:
            score = torch.fmax(score, p)
        return score

    def _summary(self, log_mass: Any, R: Any, v: Any, off: Any, idx: Any) -> Any:
        """Summary distances (:mod:`astro_cnnmass.uncertainty.summary_ood`) on the device."""
        torch = self.torch
        f64 = torch.float64
        counts = off[1:] - off[:-1]
        n_all = counts.numel()
        cid = torch.repeat_interleave(torch.arange(n_all, device=v.device), counts)
        nf = counts.to(f64)
        u = v / float(self.cylinder["v_cut_kms"])
        x = R / float(self.cylinder["aperture_mpch"])

        def mean_of(values: Any) -> Any:
            return torch.zeros(n_all, dtype=f64, device=v.device).index_add_(0, cid, values) / nf

        centred = u - mean_of(u)[cid]
        sq = centred * centred
        m2 = mean_of(sq)
        m4 = mean_of(sq * sq)
        stats = torch.stack(
            [
                mean_of((u.abs() > EDGE_VELOCITY_FRACTION).to(f64)),
                m4 / m2**2 - 3.0,
                mean_of((x < INNER_RADIUS_FRACTION).to(f64)),
            ],
            dim=1,
        )[idx]
        bad = ((counts < SUMMARY_MIN_GALAXIES) | ~(m2 > 1e-10))[idx]
        log_n = torch.log10(nf[idx])
        cond = torch.stack([log_mass, log_n], dim=1)
        good = torch.isfinite(cond).all(1) & torch.isfinite(stats).all(1) & ~bad
        index = torch.zeros(idx.numel(), dtype=torch.int64, device=v.device)
        m = self._summ
        for col, (start, step, size) in enumerate((m["m_axis"], m["n_axis"])):
            i = torch.round((torch.where(good, cond[:, col], start) - start) / step)
            i = i.clamp(0, int(size) - 1).to(torch.int64)
            index = index * int(m["n_axis"][2]) + i if col else i
        r = stats - m["mean"][index]
        d2 = torch.einsum(
            "qi,qij,qj->q",
            torch.where(good[:, None], r, 0.0),
            m["precision"][index],
            torch.where(good[:, None], r, 0.0),
        )
        out = torch.sqrt(d2.clamp(min=0)) / m["local"][index]
        out[~good] = math.nan
        return out
