"""Batched prediction with a :class:`~astro_cnnmass.model.bundle.ModelBundle`.

:class:`Predictor` turns KDE images (from :func:`astro_cnnmass.features.kde.kde_images`), cluster
redshifts and, for networks that read it (``network_config["use_log_n"]``, model v2), the number
of cylinder galaxies behind each image into log10 M200c [Msun/h] with an uncertainty in dex:

* ensemble of Gaussian heads (and/or MC-dropout samples): the mixture of the component Gaussians;
  mean = mean of the means, variance = mean of the variances + variance of the means;
* ensemble of point heads: the spread of the member predictions;
* a single point model (no MC dropout): ``std`` is NaN (use the calibrated scatter stored in
  ``bundle.metrics["scatter_dex"]``).

The standard deviation is multiplied by ``bundle.target_scaling["calibration"]["std_scale"]``
(1 unless an interval calibration has been stored), and
``bundle.target_scaling["calibration"]["mean_offset_dex"]`` (absent, i.e. 0, in v1 bundles) is
subtracted from every mean; for networks that read the galaxy counts,
``...["calibration"]["std_scale_log_n"] = {"pivot", "slope"}`` multiplies the std by
``exp(slope * (log10 N - pivot))`` as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .bundle import (
    ModelBundle,
    _resolve_device,
    scale_redshift,
    unscale_log_mass,
    unscale_log_mass_std,
)

__all__ = ["Predictor"]

#: Rows per forward pass; every pass has exactly this many rows (see Predictor.predict).
MICRO_BATCH = 512


class Predictor:
    """Run the networks of a model bundle on batches of images.

    Parameters
    ----------
    bundle : ModelBundle
        The trained model.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    mc_dropout : int, optional
        Number of Monte-Carlo dropout samples per member (0: dropout off, deterministic).
    seed : int, optional
        Seed of the MC-dropout sampling.
    """

    #: Evaluate a deterministic ensemble in one grouped pass
    #: (:class:`~astro_cnnmass.model.ensemble.GroupedEnsemble`, equal to float32 rounding);
    #: False: member by member.
    grouped_ensemble: bool = True

    def __init__(
        self,
        bundle: ModelBundle,
        device: Any = None,
        mc_dropout: int = 0,
        seed: int | None = 0,
    ) -> None:
        if not isinstance(bundle, ModelBundle):
            raise TypeError(f"bundle must be a ModelBundle, got {type(bundle).__name__}")
        if int(mc_dropout) < 0:
            raise ValueError(f"mc_dropout must be >= 0, got {mc_dropout}")
        self.bundle = bundle
        self.device = _resolve_device(device)
        self.mc_dropout = int(mc_dropout)
        self.seed = seed
        self.networks = bundle.build_networks(self.device)
        self.config = bundle.network_config
        self.scaling = bundle.target_scaling
        self.std_scale = float(self.scaling.get("calibration", {}).get("std_scale", 1.0))
        self.mean_offset = float(self.scaling.get("calibration", {}).get("mean_offset_dex", 0.0))
        self.std_scale_log_n = self.scaling.get("calibration", {}).get("std_scale_log_n")

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one input image: ``(n_v, n_R)`` (CNN_2D) or ``(n_v,)`` (CNN_1D)."""
        c = self.config
        return (c["n_v"],) if c["arch"] == "cnn1d" else (c["n_v"], c["n_R"])

    @property
    def uses_counts(self) -> bool:
        """Whether the networks read the number of cylinder galaxies (``predict(..., n=)``)."""
        return bool(self.config.get("use_log_n", False))

    def _check(self, images: np.ndarray, z: Any) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images)
        if images.dtype not in (np.float32, np.float64):  # float64 is cast per micro-batch
            images = images.astype(np.float32)
        shape = self.image_shape
        if images.ndim != len(shape) + 1 or images.shape[1:] != shape:
            raise ValueError(
                f"images must have shape (n, {', '.join(map(str, shape))}) for this "
                f"{self.config['arch']} model, got {images.shape}"
            )
        z = np.broadcast_to(np.asarray(z, dtype=float), (images.shape[0],)).copy()
        return images, z

    def log_counts(self, n: Any, size: int) -> np.ndarray | None:
        """log10 of the galaxy counts ``n`` as the networks take them (None if not used).

        Parameters
        ----------
        n : int or array-like of shape (size,), or None
            Number of galaxies inside the cylinder behind each image.
        size : int
            Number of images.

        Returns
        -------
        numpy.ndarray of float32, shape (size,), or None
            NaN where ``n`` is not finite or < 1; None when the networks do not read counts.

        Raises
        ------
        ValueError
            If the networks read counts and ``n`` is None.
        """
        if not self.uses_counts:
            return None
        if n is None:
            raise ValueError(
                "this model (network_config['use_log_n']) needs the number of cylinder galaxies "
                "behind each image: pass n= (e.g. the counts of kde_images' offsets)"
            )
        n = np.broadcast_to(np.asarray(n, dtype=float), (size,))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(np.isfinite(n) & (n >= 1), np.log10(np.where(n >= 1, n, 1.0)), np.nan)
        return out.astype(np.float32)

    @torch.no_grad()
    def _run(
        self,
        net,
        x: torch.Tensor,
        zs: torch.Tensor,
        embeddings: list | None = None,
        log_n: torch.Tensor | None = None,
    ) -> np.ndarray:
        if embeddings is None:
            return net(x, zs, log_n).double().cpu().numpy()
        e = net.embed(x, zs, log_n)  # forward == out(embed): one pass gives both
        embeddings.append(e.double().cpu().numpy())
        return net.out(e).double().cpu().numpy()

    def _padded_batch(
        self,
        images: np.ndarray,
        zs_all: np.ndarray,
        log_n_all: np.ndarray | None,
        sel: np.ndarray,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Rows ``sel`` as device tensors, padded to a multiple of :data:`MICRO_BATCH`.

        Fixed-size micro-batches (the last one padded with zero images, z = 0, log N = 1):
        float32 kernels pick batch-size dependent code paths, so this makes a cluster's result
        independent of how many others are predicted with it.
        """
        m = sel.size
        n_rows = m + (-m % MICRO_BATCH)
        # one float32 buffer, filled in one cast pass (a slice when the rows are contiguous)
        x_np = np.zeros((n_rows, *images.shape[1:]), dtype=np.float32)
        contiguous = m > 0 and int(sel[-1]) - int(sel[0]) == m - 1
        x_np[:m] = images[int(sel[0]) : int(sel[-1]) + 1] if contiguous else images[sel]
        z_np = np.zeros(n_rows, dtype=np.float32)
        z_np[:m] = zs_all[sel]
        ln_np = None
        if log_n_all is not None:
            ln_np = np.ones(n_rows, dtype=np.float32)
            ln_np[:m] = log_n_all[sel]
        x = torch.from_numpy(x_np).to(self.device)
        zt = torch.from_numpy(z_np).to(self.device)
        lt = torch.from_numpy(ln_np).to(self.device) if ln_np is not None else None
        return x, zt, lt

    def grouped(self):
        """The members as one :class:`~astro_cnnmass.model.ensemble.GroupedEnsemble` (cached)."""
        if getattr(self, "_grouped", None) is None:
            from .ensemble import GroupedEnsemble

            self._grouped = GroupedEnsemble(self.networks)
        return self._grouped

    @torch.inference_mode()
    def _predict_grouped(
        self,
        images: np.ndarray,
        zs_all: np.ndarray,
        log_n_all: np.ndarray | None,
        idx: np.ndarray,
        chunk_size: int,
        mu: np.ndarray,
        var: np.ndarray,
        return_embeddings: bool,
    ) -> np.ndarray | None:
        """Every member at once (:class:`~astro_cnnmass.model.ensemble.GroupedEnsemble`).

        Fills ``mu[:, 0]`` and ``var[:, 0]`` (scaled units) for the rows ``idx`` in the same
        fixed-size micro-batches as the member-by-member loop, reading each chunk of images
        once instead of once per member; returns member 0's embeddings (or None).
        """
        grouped = self.grouped()
        n = images.shape[0]
        gaussian = self.config["head"] == "gaussian"
        embedded = None
        # chunk_size only groups the micro-batches; each micro-batch is cast to float32 on its
        # own (one MICRO_BATCH buffer, not a float32 copy of the whole chunk)
        for start in range(0, idx.size, chunk_size):
            chunk = idx[start : start + chunk_size]
            for b in range(0, chunk.size, MICRO_BATCH):
                sel = chunk[b : b + MICRO_BATCH]
                x, zt, lt = self._padded_batch(images, zs_all, log_n_all, sel)
                o, e = grouped(x, zt, lt)
                out = o.double().cpu().numpy()[:, : sel.size]  # (members, rows, outputs)
                if return_embeddings:
                    emb = e.double().cpu().numpy()[: sel.size]
                    if embedded is None:
                        embedded = np.full((n, emb.shape[1]), np.nan)
                    embedded[sel] = emb
                mu[:, 0, sel] = out[:, :, 0]
                if gaussian:
                    var[:, 0, sel] = np.exp(out[:, :, 1])
        return embedded

    def predict(
        self,
        images: np.ndarray,
        z: Any,
        chunk_size: int = 65536,
        *,
        n: Any = None,
        return_embeddings: bool = False,
    ) -> dict[str, np.ndarray]:
        """Predict log10 M200c [Msun/h] and its standard deviation (dex).

        Parameters
        ----------
        images : numpy.ndarray, shape (n, n_v, n_R) or (n, n_v)
            KDE images (each summing to 1); rows with non-finite values give NaN.
        z : float or array-like, shape (n,)
            Cluster redshifts.
        chunk_size : int
            Number of clusters per forward pass.
        n : int or array-like, shape (n,), optional
            Number of galaxies inside the cylinder behind each image (the galaxies the KDE was
            built from). Required by networks that read it (``network_config["use_log_n"]``,
            :attr:`uses_counts`), ignored by the others (the v1 models); rows with a count
            that is not finite or < 1 give NaN.
        return_embeddings : bool
            Also return ``embeddings``, the penultimate activations of ensemble member 0
            (taken from the same forward pass; not with MC dropout), as used by the
            out-of-domain score.

        Returns
        -------
        dict
            ``mean`` (n,) log10 M200c [dex]; ``std`` (n,) dex (NaN for a single point model);
            ``member_means`` (n_members, n) dex, one row per ensemble member (averaged over
            MC-dropout samples); ``member_stds`` (n_members, n) dex (NaN for point heads);
            ``members`` (alias of ``member_means``); ``embeddings`` (n, width) if requested
            (NaN rows for non-finite input).
        """
        if return_embeddings and self.mc_dropout:
            raise ValueError("return_embeddings needs mc_dropout=0 (deterministic embeddings)")
        images, z = self._check(images, z)
        log_n_all = self.log_counts(n, images.shape[0])
        n = images.shape[0]
        good = np.isfinite(images.reshape(n, -1)).all(axis=1) & np.isfinite(z)
        if log_n_all is not None:
            good &= np.isfinite(log_n_all)
        zs_all = scale_redshift(np.where(np.isfinite(z), z, 0.0), self.scaling)
        n_samples = max(self.mc_dropout, 1)
        n_members = len(self.networks)
        mu = np.full((n_members, n_samples, n), np.nan)
        var = np.full((n_members, n_samples, n), np.nan)
        gaussian = self.config["head"] == "gaussian"
        if self.mc_dropout and self.seed is not None:
            torch.manual_seed(self.seed)
        idx = np.flatnonzero(good)
        embedded = None
        chunk_size = max(int(chunk_size), 1)
        # deterministic ensembles: all members in one grouped pass (float32 rounding apart)
        grouped = self.grouped_ensemble and not self.mc_dropout and n_members > 1
        if grouped:
            embedded = self._predict_grouped(
                images, zs_all, log_n_all, idx, chunk_size, mu, var, return_embeddings
            )
        for m, net in [] if grouped else enumerate(self.networks):
            if self.mc_dropout:
                for mod in net.modules():
                    if isinstance(mod, torch.nn.Dropout):
                        mod.train()
            try:
                for start in range(0, idx.size, chunk_size):
                    sel = idx[start : start + chunk_size]
                    x, zt, lt = self._padded_batch(images, zs_all, log_n_all, sel)
                    for t in range(n_samples):
                        parts = [] if (return_embeddings and m == 0) else None
                        out = np.concatenate(
                            [
                                self._run(
                                    net,
                                    x[b : b + MICRO_BATCH],
                                    zt[b : b + MICRO_BATCH],
                                    parts,
                                    None if lt is None else lt[b : b + MICRO_BATCH],
                                )
                                for b in range(0, x.shape[0], MICRO_BATCH)
                            ]
                        )[: sel.size]
                        if parts is not None:
                            emb = np.concatenate(parts)[: sel.size]
                            if embedded is None:
                                embedded = np.full((n, emb.shape[1]), np.nan)
                            embedded[sel] = emb
                        mu[m, t, sel] = out[:, 0]
                        if gaussian:
                            var[m, t, sel] = np.exp(out[:, 1])
            finally:
                net.eval()
        mu_dex = unscale_log_mass(mu, self.scaling)
        if self.mean_offset:  # the validation-fitted mean calibration (never in v1 bundles)
            mu_dex = mu_dex - self.mean_offset
        var_dex = unscale_log_mass_std(np.sqrt(var), self.scaling) ** 2
        member_means = mu_dex.mean(axis=1)
        mean = mu_dex.reshape(-1, n).mean(axis=0)
        n_comp = n_members * n_samples
        spread = mu_dex.reshape(-1, n).var(axis=0) if n_comp > 1 else np.zeros(n)
        if gaussian:
            total_var = var_dex.reshape(-1, n).mean(axis=0) + spread
            member_stds = np.sqrt(var_dex.mean(axis=1) + mu_dex.var(axis=1))
        else:
            total_var = spread if n_comp > 1 else np.full(n, np.nan)
            member_stds = (
                np.sqrt(mu_dex.var(axis=1)) if n_samples > 1 else np.full((n_members, n), np.nan)
            )
        std = np.sqrt(total_var) * self.std_scale
        if self.std_scale_log_n and log_n_all is not None:
            sl = self.std_scale_log_n
            std = std * np.exp(float(sl["slope"]) * (log_n_all - float(sl["pivot"])))
        std[~good] = np.nan
        result = {
            "mean": mean,
            "std": std,
            "member_means": member_means,
            "member_stds": member_stds,
            "members": member_means,
        }
        if return_embeddings:
            width = self.config["dense"][-1] if self.config["dense"] else 0
            result["embeddings"] = embedded if embedded is not None else np.full((n, width), np.nan)
        return result
