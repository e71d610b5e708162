"""Throughput of every public batch entry point on the same clusters, in one run (prints JSON).

Usage::

    python benchmarks/bench_entry_points.py                     # 2e4 clusters, ~1 min
    python benchmarks/bench_entry_points.py --n 100000          # the issue-14 size
    python benchmarks/bench_entry_points.py --n 20000 --scipy 2000

One synthetic catalogue (fixed seed; the clusters of ``benchmarks/bench_inference.py``: ~50
galaxies each, Poisson numbers, radii uniform in area inside the 1.6 Mpc/h aperture, Gaussian
velocities with a dispersion from a flat log-mass prior) is run through

* ``predict_packed``: ``est.predict_packed(R, v, offsets, z, apply_cylinder=True)``;
* ``estimate_catalog``: :func:`astro_cnnmass.batch.streaming.estimate_catalog` on ``(R, v,
  offsets, z)``;
* ``estimate_many``: the same galaxies placed on the sky (a cluster centre per cluster, each
  galaxy at its projected radius and a random position angle, its redshift from its velocity,
  Planck18) as a member table with ``cluster_id``, ``ra``, ``dec``, ``z``, and a cluster table
  with the centres and redshifts, as an observer would pass them;
* ``estimate_phase_spaces``: ready `~astro_cnnmass.PhaseSpace` objects of the same clusters
  (built outside the timing);

each with its defaults, bundled model with its out-of-domain scores. The reference is the
per-cluster ``scipy.stats.gaussian_kde(bw_method=0.25)`` loop of the paper's code (KDE images
only, no network) on the first ``--scipy`` clusters of the same catalogue, in the same run, so
the ratio does not depend on how loaded the machine is. Memory: the resident set size just
before each call (inputs, model, torch) and its peak during the call (sampled every 5 ms), and
the process's ``ru_maxrss`` so far.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import threading
import time
from typing import Any

import astropy.units as u
import numpy as np
import torch
from astropy.cosmology import Planck18
from astropy.table import Table

sys.path.insert(0, os.path.dirname(__file__))
from bench_inference import synthetic_catalog

from astro_cnnmass.batch.streaming import estimate_catalog
from astro_cnnmass.estimator import DynamicalMassEstimator
from astro_cnnmass.features.config import FeatureConfig
from astro_cnnmass.observe.phase_space import C_KMS, MPC_H, phase_space


def sky_tables(R, v, offsets, z, seed: int = 0) -> tuple[Table, Table]:
    """Member and cluster tables (ra, dec in deg; z) that give back (R, v) with Planck18."""
    rng = np.random.default_rng(seed)
    n = offsets.size - 1
    counts = np.diff(offsets)
    ra_c = rng.uniform(0.0, 360.0, n)
    dec_c = np.degrees(np.arcsin(rng.uniform(-0.85, 0.85, n)))
    mpch_per_rad = Planck18.angular_diameter_distance(z).to_value(u.Mpc) * Planck18.h
    owner = np.repeat(np.arange(n), counts)
    theta = np.asarray(R, dtype=float) / mpch_per_rad[owner]  # radians
    pa = rng.uniform(0.0, 2 * np.pi, theta.size)
    # offsets on the sphere: destination point at angular distance theta, position angle pa
    d0, r0 = np.radians(dec_c[owner]), np.radians(ra_c[owner])
    dec = np.arcsin(np.sin(d0) * np.cos(theta) + np.cos(d0) * np.sin(theta) * np.cos(pa))
    ra = r0 + np.arctan2(
        np.sin(pa) * np.sin(theta) * np.cos(d0), np.cos(theta) - np.sin(d0) * np.sin(dec)
    )
    z_gal = z[owner] + np.asarray(v, dtype=float) * (1 + z[owner]) / C_KMS
    members = Table(
        {
            "cluster_id": owner,
            "ra": np.degrees(ra) % 360.0,
            "dec": np.degrees(dec),
            "z": z_gal,
        }
    )
    clusters = Table({"cluster_id": np.arange(n), "ra": ra_c, "dec": dec_c, "z": z})
    return members, clusters


def scipy_loop(R, v, offsets, n: int) -> float:
    """Clusters/s of the paper's per-cluster scipy gaussian_kde images (first n clusters)."""
    from scipy.stats import gaussian_kde

    cfg = FeatureConfig()
    gv, gR = np.meshgrid(cfg.v_centres, cfg.R_centres, indexing="ij")
    grid = np.vstack([gv.ravel(), gR.ravel()])
    t0 = time.perf_counter()
    for i in range(n):
        s = slice(offsets[i], offsets[i + 1])
        keep = (np.abs(v[s]) < cfg.v_cut_kms) & (R[s] < cfg.aperture_mpch)
        kde = gaussian_kde(np.vstack([v[s][keep], R[s][keep]]), bw_method=cfg.bandwidth)
        img = kde(grid).reshape(cfg.n_v, cfg.n_R)
        img /= img.sum()
    return n / (time.perf_counter() - t0)


def _maxrss_gb() -> float:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(maxrss * (1 if sys.platform == "darwin" else 1024) / 1e9, 3)


def _rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class RssSampler:
    """Peak resident set size while a block runs (sampled every 5 ms in a thread)."""

    def __enter__(self) -> RssSampler:
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="clusters")
    p.add_argument("--scipy", type=int, default=1000, help="clusters of the scipy reference")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--entry",
        nargs="+",
        default=["predict_packed", "estimate_catalog", "estimate_many", "estimate_phase_spaces"],
        help="entry points to time",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    R, v, offsets, z = synthetic_catalog(args.n, 50.0, args.seed)
    est = DynamicalMassEstimator.load()
    warm = synthetic_catalog(256, 50.0, args.seed + 1)
    estimate_catalog(est, warm)
    runs: dict[str, Any] = {}
    scipy_rate = scipy_loop(np.asarray(R, float), np.asarray(v, float), offsets, args.scipy)
    for entry in args.entry:
        if entry in ("estimate_many", "estimate_phase_spaces"):
            members, clusters = sky_tables(R, v, offsets, z, args.seed)
        if entry == "estimate_phase_spaces":
            pss = [
                phase_space(R=R[a:b] * MPC_H, v=v[a:b] * u.km / u.s, z_cluster=zc)
                for a, b, zc in zip(offsets[:-1], offsets[1:], z)
            ]
        gc.collect()
        sampler = RssSampler().__enter__()
        t0 = time.perf_counter()
        if entry == "predict_packed":
            out = est.predict_packed(R, v, offsets, z, apply_cylinder=True)
            n_ok = int(np.isfinite(out["log_mass"]).sum())
        elif entry == "estimate_catalog":
            out = estimate_catalog(est, (R, v, offsets, z))
            n_ok = int(np.count_nonzero(out["ok"]))
        elif entry == "estimate_many":
            out = est.estimate_many(members, clusters=clusters)
            n_ok = int(np.count_nonzero(out["ok"]))
        elif entry == "estimate_phase_spaces":
            out = est.estimate_phase_spaces(pss)
            n_ok = int(np.count_nonzero(out["ok"]))
        else:
            raise SystemExit(f"unknown entry point {entry!r}")
        seconds = time.perf_counter() - t0
        sampler.__exit__(None, None, None)
        runs[entry] = {
            "seconds": round(seconds, 3),
            "clusters_per_s": round(args.n / seconds, 1),
            "ratio_to_scipy_loop": round(args.n / seconds / scipy_rate, 2),
            "n_ok": n_ok,
            "rss_before_gb": round(sampler.start / 1e9, 3),
            "rss_peak_gb": round(sampler.peak / 1e9, 3),
            "ru_maxrss_gb_so_far": _maxrss_gb(),
        }
        del out
    result = {
        "benchmark": "entry_points",
        "n_clusters": args.n,
        "mean_galaxies": round(float(np.diff(offsets).mean()), 2),
        "scipy_gaussian_kde_loop_clusters_per_s": round(scipy_rate, 1),
        "scipy_clusters": args.scipy,
        "model": "bundled",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
