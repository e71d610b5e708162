"""The dynamical mass estimator: phase space -> cylinder -> KDE image -> CNN -> M200c.

`~astro_cnnmass.DynamicalMassEstimator` wraps a trained
`~astro_cnnmass.model.bundle.ModelBundle` (by
default the CNN_2D bundled with the package) and everything needed to use it consistently with its
training: the cylinder, the feature configuration, the redshift and mass domain, and the M–σ power
law fitted on the same training mocks. Every result carries the classical cross-checks beside the
CNN mass, and flags when the input is outside the model's domain.

The module is long because it is one concept: the facade that keeps a model's cylinder,
features, calibration and domain together for every entry point (single clusters, packed
batches on the CPU or a device, tables); the heavy parts live in the subpackages
(``features``, ``model``, ``uncertainty``, ``device_path``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.cosmology import Cosmology
from astropy.table import QTable, Table

from .classical import EVRARD08_ALPHA, EVRARD08_SIGMA15, MSigmaPowerLaw, grouped_std
from .exceptions import AstroCnnmassWarning, InputError, TooFewGalaxiesError
from .flags import FlagArray
from .observe.phase_space import MPC_H, Cylinder, PhaseSpace, cylinder_mask, phase_space
from .result import _KMS, MassEstimate
from .uncertainty.ood import normalized_ood_scores
from .uncertainty.summary_ood import phase_space_summaries

__all__ = ["DynamicalMassEstimator", "estimate_mass"]


#: Minimum number of galaxies in the cylinder for any estimate (the KDE needs a covariance).
MIN_GALAXIES_HARD = 3


class DynamicalMassEstimator:
    """Estimate cluster masses M200c with a trained CNN (Ho et al. 2019, arXiv:1902.05950).

    Parameters
    ----------
    bundle : `~astro_cnnmass.model.bundle.ModelBundle` or None
        The trained model. ``None`` gives a network-free estimator that answers with the
        Evrard et al. 2008 M–σ relation only (``method='m_sigma_evrard'``); use
        :meth:`load` for the bundled CNN_2D.
    device : str or torch.device, optional
        Where the network runs; default CUDA when available, else CPU.
    backend : {None, 'numpy', 'torch'}
        Where the batch estimate runs besides the network: ``'numpy'`` (KDE images and scores
        on the CPU; the reference path) or ``'torch'`` (everything on ``device``, see
        :meth:`load`); default ``'torch'`` on a GPU, else ``'numpy'``.
    prior : {'flat', 'mass_function'}
        Prior on log10 M200c. ``'flat'`` (default) reports the network's predictive
        distribution, which was trained on mocks flat in log M: for a cluster that lies inside
        the training range it behaves like a likelihood. ``'mass_function'`` reweights it by
        the Tinker et al. 2008 mass function at the cluster redshift (as Ho et al. 2021,
        arXiv:2006.13231), which is the right prior for a cluster drawn at random from the
        population: it pulls estimates down, more at high mass. See
        :mod:`astro_cnnmass.uncertainty`.

    Notes
    -----
    Flags that a result can carry:

    ``few_galaxies``
        fewer galaxies in the cylinder than the model's minimum (10 by default);
    ``many_galaxies``
        more galaxies in the cylinder than any training mock had (the maximum of the
        model's ``domain["n_galaxies_range"]``);
    ``too_few_galaxies``
        fewer than 3: no estimate (NaN mass, batch paths only; single calls raise);
    ``z_outside_training``
        cluster redshift outside the redshift range of the training mocks;
    ``mass_at_edge``
        the prediction lies within 0.1 dex of the edge of the training mass range;
    ``kde_undefined``
        the KDE image could not be built (e.g. degenerate covariance);
    ``center_estimated`` / ``z_estimated``
        the centre / redshift were estimated from the galaxies;
    ``out_of_distribution``
        the phase space is unlike the training mocks (out-of-domain score above the
        model's threshold, the 99th percentile of held-out validation mocks);
    ``no_network``
        no trained network was used.
    """

    def __init__(
        self,
        bundle: Any = None,
        *,
        device: Any = None,
        prior: str = "flat",
        backend: str | None = None,
    ) -> None:
        if prior not in ("flat", "mass_function"):
            raise InputError(f"prior must be 'flat' or 'mass_function', got {prior!r}")
        if backend not in (None, "numpy", "torch"):
            raise InputError(f"backend must be None, 'numpy' or 'torch', got {backend!r}")
        if prior == "mass_function" and bundle is None:
            raise InputError("the mass-function prior needs a trained model bundle")
        self.bundle = bundle
        self.prior = prior
        self._predictor = None
        self._pipeline = None
        from .model.bundle import _resolve_device

        try:  # an unavailable or misspelt device fails here, not at the first estimate
            resolved = _resolve_device(device) if (device is not None or bundle) else None
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        self._device = device
        if backend is None:  # the whole estimate on the device when there is one
            backend = "numpy" if resolved is None or resolved.type == "cpu" else "torch"
        self.backend = backend if bundle is not None else "numpy"
        if bundle is None:
            self.cylinder = Cylinder()
            self.m_sigma_law = None
            self.domain: dict[str, float] = {}
            self.method = "m_sigma_evrard"
            self.feature_config = None
        else:
            from .features.config import FeatureConfig

            self.cylinder = Cylinder.from_dict(dict(bundle.cylinder))
            self.m_sigma_law = MSigmaPowerLaw.from_dict(dict(bundle.m_sigma))
            self.domain = dict(bundle.domain)
            self.method = str(bundle.network_config.get("arch", "cnn2d"))
            self.feature_config = FeatureConfig.from_dict(dict(bundle.feature_config))

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        device: Any = None,
        prior: str = "flat",
        backend: str | None = None,
    ) -> DynamicalMassEstimator:
        """Load a model bundle (default: the CNN_2D shipped with the package).

        Parameters
        ----------
        path : str or Path, optional
            An ASDF model file written by ``astro-cnnmass train``.
        device : str or torch.device, optional
            Where to run the estimate (default CUDA when available, else CPU). An unavailable
            or misspelt device raises `~astro_cnnmass.InputError` here.
        prior : {'flat', 'mass_function'}
            Prior on the mass (see the class docstring).
        backend : {None, 'numpy', 'torch'}
            ``'numpy'``: KDE images and scores with numpy on the CPU, the networks on
            ``device`` (the reference path). ``'torch'``: the whole batch estimate (cylinder,
            images, ensemble, calibration, out-of-domain scores) on ``device``
            (:mod:`astro_cnnmass.device_path`). Default: ``'torch'`` on a GPU, ``'numpy'`` on
            the CPU.
        """
        from .model.bundle import ModelBundle, bundled_model_path

        bundle = ModelBundle.read(bundled_model_path() if path is None else path)
        return cls(bundle, device=device, prior=prior, backend=backend)

    def __repr__(self) -> str:
        return (
            f"DynamicalMassEstimator(method={self.method!r}, "
            f"cylinder=({self.cylinder.aperture}, {self.cylinder.v_cut}))"
        )

    @property
    def min_galaxies(self) -> int:
        """Fewest cylinder galaxies without a ``few_galaxies`` flag."""
        return int(self.domain.get("n_min_galaxies", 10))

    # ------------------------------------------------------------------ single clusters
    def estimate(
        self,
        members: Table | SkyCoord,
        *,
        z_cluster: float | None = None,
        center: SkyCoord | None = None,
        cosmology: Cosmology | None = None,
        **phase_space_kwargs: Any,
    ) -> MassEstimate:
        """Estimate M200c of one cluster from its galaxies.

        Parameters
        ----------
        members : `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`
            Galaxies with positions and redshifts (see :func:`~astro_cnnmass.phase_space`).
        z_cluster : float, optional
            Cluster redshift (estimated from the galaxies if omitted).
        center : `~astropy.coordinates.SkyCoord`, optional
            Cluster centre (estimated from the galaxies if omitted).
        cosmology : `~astropy.cosmology.Cosmology`, optional
            Default Planck18.
        **phase_space_kwargs
            Passed to :func:`~astro_cnnmass.phase_space` (``redshifts``, ``ra_column``, ...).

        Returns
        -------
        MassEstimate

        Raises
        ------
        TooFewGalaxiesError
            Fewer than 3 galaxies inside the cylinder.
        """
        ps = phase_space(
            members, center=center, z_cluster=z_cluster, cosmology=cosmology, **phase_space_kwargs
        )
        return self._estimate_one(ps)

    def estimate_phase_space(
        self, R: u.Quantity, v: u.Quantity, z_cluster: float, *, cosmology: Cosmology | None = None
    ) -> MassEstimate:
        """Estimate M200c from a ready projected phase space.

        Parameters
        ----------
        R : `~astropy.units.Quantity`
            Projected radii, physical Mpc/h (or Mpc, converted with the cosmology's h).
        v : `~astropy.units.Quantity`
            Rest-frame line-of-sight velocities, km/s.
        z_cluster : float
            Cluster redshift.
        cosmology : `~astropy.cosmology.Cosmology`, optional
            Only used to convert R given in Mpc; default Planck18.
        """
        ps = phase_space(R=R, v=v, z_cluster=z_cluster, cosmology=cosmology)
        return self._estimate_one(ps)

    def _estimate_one(self, ps: PhaseSpace) -> MassEstimate:
        inside = ps.cylinder_mask(self.cylinder)
        n_in = int(inside.sum())
        if n_in < MIN_GALAXIES_HARD:
            raise TooFewGalaxiesError(
                f"only {n_in} galaxies inside the cylinder (R < {self.cylinder.aperture}, "
                f"|v| < {self.cylinder.v_cut}); at least {MIN_GALAXIES_HARD} are needed "
                f"and {self.min_galaxies} recommended"
            )
        R = ps.R.to_value(MPC_H)[inside]
        v = ps.v.to_value(_KMS)[inside]
        batch = self.predict_packed(
            R,
            v,
            np.array([0, n_in]),
            np.array([ps.z_cluster]),
            keep_images=True,
            cosmology=ps.cosmology,
        )
        flags = list(batch["flags"][0])
        if ps.center_estimated:
            flags.append("center_estimated")
        if ps.z_cluster_estimated:
            flags.append("z_estimated")
        for flag in flags:
            if flag in (
                "few_galaxies",
                "many_galaxies",
                "z_outside_training",
                "mass_at_edge",
                "kde_undefined",
                "out_of_distribution",
            ):
                warnings.warn(f"mass estimate flagged: {flag}", AstroCnnmassWarning, stacklevel=3)
        from .batch.results import mass_estimate_from_batch

        return mass_estimate_from_batch(batch, 0, self, ps, inside, tuple(flags))

    # ------------------------------------------------------------------ batches
    def predict_packed(
        self,
        R_mpch: np.ndarray,
        v_kms: np.ndarray,
        offsets: np.ndarray,
        z_cluster: np.ndarray,
        *,
        keep_images: bool = False,
        chunk_size: int | None = None,
        compute_ood: bool = True,
        cosmology: Cosmology | None = None,
        apply_cylinder: bool = False,
    ) -> dict[str, Any]:
        """Batched core: cylinder galaxies of many clusters (packed) -> masses.

        Parameters
        ----------
        R_mpch, v_kms : ndarray
            Flat arrays of projected radii (physical Mpc/h) and velocities (km/s) of galaxies
            *already inside the cylinder*.
        offsets : ndarray of int
            Cluster ``i`` is ``slice(offsets[i], offsets[i + 1])``.
        z_cluster : ndarray
            Cluster redshifts.
        keep_images : bool
            Also return the KDE images (float32 on the host path, as the networks read them;
            float64 on the device path).
        chunk_size : int, optional
            Clusters per chunk for features and network; sets the peak memory. Default
            ``default_chunk_size`` (2048 on the CPU; 65536 on a GPU).
        apply_cylinder : bool
            The galaxies are not cut yet: cut the model's cylinder first (on the device with
            ``backend='torch'``); ``n`` is then the number inside it.
        compute_ood : bool
            Also compute the out-of-domain score (from member 0's embeddings of the same
            forward pass, and the image model).
        cosmology : `~astropy.cosmology.Cosmology`, optional
            Cosmology of the phase spaces, for E(z) of the Evrard et al. 2008 cross-check;
            default Planck18.

        Returns
        -------
        dict
            ``log_mass``, ``log_mass_std``, ``sigma_v``, ``n``, ``log_m_sigma``,
            ``log_m_evrard``, ``ood_score``, ``flags`` (a `~astro_cnnmass.flags.FlagArray`:
            ``flags[i]`` is the list of cluster i's flag names, ``flags.bits`` the bitmasks),
            ``images`` (if requested).
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        z = np.atleast_1d(np.asarray(z_cluster, dtype=float))
        n_clusters = offsets.size - 1
        if z.shape != (n_clusters,):
            raise InputError(f"z_cluster has shape {z.shape}, expected ({n_clusters},)")
        chunk_size = self.default_chunk_size if chunk_size is None else max(int(chunk_size), 1)
        on_device = self.bundle is not None and self.backend == "torch"
        if not on_device and n_clusters > chunk_size:
            # chunk by chunk from the start, so that the float64 copies, the cut and the
            # per-cluster temporaries are those of one chunk (the numbers are the same: the
            # chunks below are the ones the single pass would use)
            kwargs = {
                "keep_images": keep_images,
                "chunk_size": chunk_size,
                "compute_ood": compute_ood,
                "cosmology": cosmology,
                "apply_cylinder": apply_cylinder,
            }
            from .batch.threads import map_in_threads

            def one_chunk(start: int) -> dict[str, Any]:
                o = offsets[start : min(start + chunk_size, n_clusters) + 1]
                return self.predict_packed(
                    R_mpch[o[0] : o[-1]],
                    v_kms[o[0] : o[-1]],
                    o - o[0],
                    z[start : start + o.size - 1],
                    **kwargs,
                )

            self._prepare_threads()
            starts = range(0, n_clusters, chunk_size)
            return _concatenate_results(list(map_in_threads(one_chunk, starts, self.host_workers)))
        R_mpch = np.asarray(R_mpch, dtype=float)
        v_kms = np.asarray(v_kms, dtype=float)
        if apply_cylinder and not on_device:
            inside = cylinder_mask(
                R_mpch, v_kms, self.cylinder.aperture_mpch, self.cylinder.v_cut_kms
            )
            kept = np.zeros(inside.size + 1, dtype=np.int64)
            np.cumsum(inside, out=kept[1:])
            offsets = kept[offsets]
            R_mpch, v_kms = R_mpch[inside], v_kms[inside]
        counts = np.diff(offsets)
        sigma = np.full(n_clusters, np.nan) if on_device else grouped_std(v_kms, offsets)
        sigma[counts < MIN_GALAXIES_HARD] = np.nan
        log_mean = np.full(n_clusters, np.nan)
        log_std = np.full(n_clusters, np.nan)
        ood_score = np.full(n_clusters, np.nan)
        images = None
        valid = counts >= MIN_GALAXIES_HARD
        if on_device:  # backend 'torch': the whole estimate on the device, chunk by chunk
            res = self._device_pipeline().predict_chunked(
                R_mpch, v_kms, offsets, z, chunk_size, apply_cylinder, compute_ood, keep_images
            )
            counts, sigma, valid = res["n"], res["sigma_v"], res["valid"]
            log_mean, log_std, ood_score = res["log_mass"], res["log_mass_std"], res["ood_score"]
            images = res.get("images")
        elif self.bundle is not None:
            from .features.kde import kde_images

            if keep_images:
                images = []
            for start in range(0, n_clusters, chunk_size):
                stop = min(start + chunk_size, n_clusters)
                o = offsets[start : stop + 1]
                imgs, ok = kde_images(
                    R_mpch[o[0] : o[-1]],
                    v_kms[o[0] : o[-1]],
                    o - o[0],
                    self.feature_config,
                    out_dtype=np.float32,  # computed in float64, stored as the networks read it
                    **self._host_kde_options(),
                )
                ok &= valid[start:stop]
                if ok.any():
                    predictor = self._get_predictor()
                    # rows of this chunk with an image (no copy of the images when all have one)
                    rows = slice(None) if ok.all() else ok
                    imgs_ok = imgs[rows]
                    n_ok = counts[start:stop][rows]  # networks with use_log_n read them
                    pred = predictor.predict(
                        imgs_ok, z[start:stop][rows], n=n_ok, return_embeddings=compute_ood
                    )
                    idx = np.arange(start, stop)[rows]
                    log_mean[idx] = pred["mean"]
                    log_std[idx] = self._calibrated_std(pred["std"])
                    if compute_ood:
                        summaries = None
                        if "ood_summary" in self.domain:  # the only part that reads galaxies
                            summaries = {
                                k: a[rows]
                                for k, a in phase_space_summaries(
                                    R_mpch[o[0] : o[-1]],
                                    v_kms[o[0] : o[-1]],
                                    o - o[0],
                                    self.cylinder.aperture_mpch,
                                    self.cylinder.v_cut_kms,
                                ).items()
                            }
                        ood_score[idx] = normalized_ood_scores(
                            predictor,
                            imgs_ok,
                            z[start:stop][rows],
                            embeddings=pred["embeddings"],
                            summaries=summaries,
                            log_mass=pred["mean"],
                            n=n_ok,
                        )
                valid[start:stop] = ok
                if keep_images:
                    images.append(imgs)
            if keep_images:
                images = np.concatenate(images) if images else None
        log_m_sigma = (
            self.m_sigma_law.predict_log_mass(sigma)
            if self.m_sigma_law is not None
            else np.full(n_clusters, np.nan)
        )
        log_m_evrard = _log_evrard_mass(sigma, z, cosmology)
        if self.bundle is None:
            log_mean = np.where(valid, log_m_evrard, np.nan)
        with np.errstate(invalid="ignore"):
            ood_flag = ood_score > 1.0  # NaN (no OOD model) never flags
        flags = self._flags(counts, z, log_mean, valid)
        flags.set("out_of_distribution", ood_flag)
        out = {
            "ood_score": ood_score,
            "log_mass": log_mean,
            "log_mass_std": log_std,
            "sigma_v": sigma,
            "n": counts,
            "log_m_sigma": log_m_sigma,
            "log_m_evrard": log_m_evrard,
            "flags": flags,
        }
        if keep_images:
            out["images"] = images
        return out

    @property
    def default_chunk_size(self) -> int:
        """Clusters per batch chunk by default: 2048 on the CPU, 65536 on a GPU.

        The CPU value is ``astro_cnnmass.batch.threads.DEFAULT_CHUNK_SIZE``.
        """
        from .batch.threads import DEFAULT_CHUNK_SIZE

        on_gpu = self.backend == "torch" and self._resolved_device().type != "cpu"
        return 65536 if on_gpu else DEFAULT_CHUNK_SIZE

    def _resolved_device(self):
        from .model.bundle import _resolve_device

        return _resolve_device(self._device)

    #: Array library of the heavy KDE products on the host path (``backend='numpy'``):
    #: ``'torch'`` (default; torch's vectorised CPU ``exp`` and batched matrix products, 2-2.5x
    #: faster on AVX2 cores, images equal to the numpy kernels to ~1e-15 relative) or
    #: ``'numpy'`` (the numpy kernels, as the training images were built).
    host_kde_backend: str = "torch"

    #: Chunks of a CPU batch evaluated at the same time, each on its own thread, sharing torch's
    #: threads (:mod:`astro_cnnmass.batch.threads`; the numbers do not depend on it). None:
    #: torch's intra-op thread count, at most 4; 1: one chunk at a time with all of them.
    host_workers: int | None = None

    def _prepare_threads(self) -> None:
        """Build what chunk threads share (predictor, grouped ensemble) before they start."""
        if self.bundle is not None and self.backend != "torch":
            self._get_predictor().grouped()

    def _host_kde_options(self) -> dict[str, Any]:
        if self.host_kde_backend == "torch":
            return {"backend": "torch", "device": "cpu"}
        return {"backend": "numpy"}

    def _device_pipeline(self):
        if self._pipeline is None:
            from .device_path import DevicePipeline

            self._pipeline = DevicePipeline(self.bundle, device=self._device)
        return self._pipeline

    def _calibrated_std(self, std: np.ndarray) -> np.ndarray:
        """The predictor's (already calibrated) std; a point model gets the validation scatter."""
        calib = dict(self.bundle.metrics.get("calibration", {})) if self.bundle else {}
        fallback = float(calib.get("std_fallback", np.nan))
        std = np.asarray(std, dtype=float)
        return np.where(np.isfinite(std), std, fallback)

    def _flags(self, counts, z, log_mean, valid) -> FlagArray:
        z_lo, z_hi = self.domain.get("z_min", -np.inf), self.domain.get("z_max", np.inf)
        m_lo = self.domain.get("log_m_min", -np.inf)
        m_hi = self.domain.get("log_m_max", np.inf)
        counts = np.asarray(counts)
        z = np.asarray(z, dtype=float)
        log_mean = np.asarray(log_mean, dtype=float)
        valid = np.asarray(valid, dtype=bool)
        n = counts.size
        hard = counts >= MIN_GALAXIES_HARD
        n_max = (self.domain.get("n_galaxies_range") or [0, np.inf])[1]
        with np.errstate(invalid="ignore"):
            in_z = (z_lo <= z) & (z <= z_hi)
            edge = np.isfinite(log_mean) & ((log_mean < m_lo + 0.1) | (log_mean > m_hi - 0.1))
        flags = FlagArray.empty(n)
        flags.set("no_network", np.full(n, self.bundle is None))
        flags.set("too_few_galaxies", ~hard)
        flags.set("few_galaxies", hard & (counts < self.min_galaxies))
        flags.set("many_galaxies", counts > n_max)
        flags.set("z_outside_training", ~in_z)
        flags.set("kde_undefined", hard & ~valid)
        flags.set("mass_at_edge", edge & (self.bundle is not None))
        return flags

    def _get_predictor(self):
        if self._predictor is None:
            from .model.predictor import Predictor

            self._predictor = Predictor(self.bundle, device=self._device)
        return self._predictor

    def estimate_many(
        self,
        members: Table,
        *,
        clusters: Table | None = None,
        cluster_column: str = "cluster_id",
        cosmology: Cosmology | None = None,
        ra_column: str = "ra",
        dec_column: str = "dec",
        z_column: str = "z",
        progress: bool = False,
        mass_definitions: Sequence[str] = (),
    ) -> QTable:
        """Estimate the masses of many clusters; one row a cluster, never a crash of the batch.

        Parameters
        ----------
        members : `~astropy.table.Table`
            Galaxies of all clusters, with a ``cluster_column`` naming the cluster of each row.
        clusters : `~astropy.table.Table`, optional
            One row a cluster with ``cluster_column``, ``ra``, ``dec`` (deg) and ``z`` columns:
            the centre and redshift of each cluster. Without it (or where a value is masked),
            the centre and redshift are estimated from the galaxies.
        cluster_column : str
            Column holding the cluster identifier in both tables.
        cosmology : `~astropy.cosmology.Cosmology`, optional
            Default Planck18.
        ra_column, dec_column, z_column : str
            Galaxy column names in ``members`` (the cluster table uses ra, dec, z).
        progress : bool
            Show tqdm progress bars: phase spaces, network, result rows.
        mass_definitions : sequence of str
            Also give the mass in these definitions (``'500c'``, ``'200m'``, ``'vir'``, ...):
            columns ``mass_500c``, ``mass_500c_lo``, ``mass_500c_hi``, ... converted from the
            predictive distribution of M200c with a concentration–mass relation and its scatter
            (`~astro_cnnmass.MassEstimate.mass_as`; the relation is named in the column
            descriptions).

        Returns
        -------
        `~astropy.table.QTable`
            Columns ``cluster_id``, ``ok``, ``mass``, ``mass_lo``, ``mass_hi``, ``log_mass``,
            ``log_mass_std``, ``mass_q05`` ... ``mass_q95``, ``m_sigma``, ``m_sigma_evrard``,
            ``sigma_v``, ``n_members``, ``z_cluster``, ``method``, ``flags``, ``error``; then the
            centre used (``ra_center``, ``dec_center``, deg) and how the centre and redshift
            were found (``center_estimated``, ``center_iterations``, ``center_converged``,
            ``z_cluster_estimated``, ``z_cluster_iterations``, ``z_cluster_converged``); then
            the ``mass_definitions`` columns. A cluster that cannot be measured has
            ``ok = False``, NaN masses and the reason in ``error``.
        """
        from .observe.batch_tables import plan_batch
        from .observe.packed import packed_phase_spaces

        # table-wide problems raise here, naming the column; per-cluster ones become rows
        plan = plan_batch(members, clusters, cluster_column, ra_column, dec_column, z_column)
        packed = packed_phase_spaces(
            plan,
            members,
            cosmology=cosmology,
            columns=(ra_column, dec_column, z_column),
            progress=progress,
        )
        ids = plan.ids
        del plan  # its per-cluster row lists (8 B a galaxy) are not needed any more
        return self._batch_table(ids, packed, progress=progress, mass_definitions=mass_definitions)

    def estimate_phase_spaces(
        self,
        phase_spaces: Iterable[PhaseSpace],
        cluster_ids: Iterable[Any] | None = None,
    ) -> QTable:
        """Batched estimate for many ready `~astro_cnnmass.PhaseSpace` objects (one row each)."""
        from .observe.packed import PackedPhaseSpaces

        phase_spaces = list(phase_spaces)
        ids = list(range(len(phase_spaces))) if cluster_ids is None else list(cluster_ids)
        return self._batch_table(ids, PackedPhaseSpaces.from_phase_spaces(phase_spaces))

    def _batch_table(self, ids, packed, *, progress: bool = False, mass_definitions=()) -> QTable:
        """Masses of packed phase spaces (all clusters in one ``predict_packed``), as a table."""
        from tqdm.auto import tqdm

        from .batch.results import batch_results_table

        zs = np.where(packed.built, packed.z_cluster, np.nan)
        built = np.flatnonzero(packed.built)
        cosmologies = list(
            {id(packed.cosmologies[k]): packed.cosmologies[k] for k in built}.values()
        )
        cosmology = cosmologies[0] if len(cosmologies) == 1 else None
        n = len(packed)
        with tqdm(total=n, desc="images + network", unit="cluster", disable=not progress) as bar:
            # the cylinder is cut chunk by chunk inside (no cut copy of every galaxy)
            batch = self.predict_packed(
                packed.R, packed.v, packed.offsets, zs, cosmology=cosmology, apply_cylinder=True
            )
            bar.update(n)
        if len(cosmologies) > 1:  # phase spaces built with different cosmologies
            for k in built:
                batch["log_m_evrard"][k] = _log_evrard_mass(
                    batch["sigma_v"][k : k + 1], zs[k : k + 1], packed.cosmologies[k]
                )[0]
        built_mask = np.asarray(packed.built, dtype=bool)
        flags = batch["flags"].copy()
        flags.clear("z_outside_training", ~built_mask)  # no redshift: the error says why
        flags.set("center_estimated", built_mask & np.asarray(packed.center_estimated, bool))
        flags.set("z_estimated", built_mask & np.asarray(packed.z_cluster_estimated, bool))
        own = np.asarray(packed.errors, dtype=str).reshape(n)
        too_few = np.where(flags.has("too_few_galaxies"), "too few galaxies in the cylinder", "")
        errors = np.where(own != "", own, too_few).tolist()
        return batch_results_table(
            self,
            ids,
            packed,
            batch,
            flags,
            errors,
            mass_definitions=mass_definitions,
            progress=progress,
        )


def _concatenate_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``predict_packed`` output from the outputs of consecutive chunks."""
    out: dict[str, Any] = {}
    for key in parts[0]:
        if key == "flags":
            out[key] = FlagArray.concatenate([part[key] for part in parts])
        elif parts[0][key] is None:
            out[key] = None
        else:
            out[key] = np.concatenate([part[key] for part in parts])
    return out


def _log_evrard_mass(
    sigma_kms: np.ndarray, z: np.ndarray, cosmology: Cosmology | None = None
) -> np.ndarray:
    """log10 of the Evrard et al. 2008 M200c [Msun/h] for many clusters (NaN where σ is not).

    Vectorised form of :func:`~astro_cnnmass.evrard_mass`, with E(z) of ``cosmology``
    (default Planck18), the cosmology the phase spaces were built with.
    """
    if cosmology is None:
        from astropy.cosmology import Planck18

        cosmology = Planck18
    sigma_kms = np.asarray(sigma_kms, dtype=float)
    z = np.asarray(z, dtype=float)
    out = np.full(sigma_kms.shape, np.nan)
    good = np.isfinite(sigma_kms)
    if good.any():
        ez = np.asarray(cosmology.efunc(z[good]), dtype=float)
        m = 1e15 * (sigma_kms[good] / EVRARD08_SIGMA15) ** (1.0 / EVRARD08_ALPHA) / ez
        with np.errstate(divide="ignore"):  # sigma = 0 (identical velocities): -inf
            out[good] = np.log10(m)
    return out


def estimate_mass(
    members: Table | SkyCoord,
    *,
    z_cluster: float | None = None,
    center: SkyCoord | None = None,
    cosmology: Cosmology | None = None,
    model: str | Path | None = None,
    **phase_space_kwargs: Any,
) -> MassEstimate:
    """One-call mass estimate with the bundled CNN_2D (or the model file ``model``).

    See `~astro_cnnmass.DynamicalMassEstimator.estimate` for the parameters.
    """
    return DynamicalMassEstimator.load(model).estimate(
        members, z_cluster=z_cluster, center=center, cosmology=cosmology, **phase_space_kwargs
    )
