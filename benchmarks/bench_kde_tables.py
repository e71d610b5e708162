"""Same-process A/B of the KDE's exponential tables against the direct exponentials (JSON).

Usage::

    python benchmarks/bench_kde_tables.py                 # 2e4 clusters, ~2 min
    python benchmarks/bench_kde_tables.py --n 100000 --repeats 3

The feature builder (:func:`astro_cnnmass.features.kde.kde_images`) assembles the exponential
matrices of most clusters from exponentials of small tables
(:mod:`astro_cnnmass.features.exp_tables`); ``kde._USE_TABLES = False`` restores the direct
exponentials of every matrix element. Between two processes this machine's speed drifts by
more than the difference, so both variants run in one process, interleaved, and the best of
``--repeats`` runs of each is reported: ``kde_images`` alone (float64, one thread, numpy and
torch backends) and ``estimate_catalog`` end to end (bundled model with out-of-domain scores,
``--threads`` torch threads), on the clusters of ``benchmarks/bench_inference.py``. The
largest image difference between the variants (relative to each image's maximum) and the
largest mass difference (dex) are reported with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_inference import synthetic_catalog

from astro_cnnmass.batch.streaming import estimate_catalog
from astro_cnnmass.estimator import DynamicalMassEstimator
from astro_cnnmass.features import kde


def best_of(repeats: int, variants: dict, run) -> dict:
    """Best wall time (s) of each variant (interleaved runs) and each variant's last output."""
    times = {name: [] for name in variants}
    outputs = {}
    for _ in range(repeats):
        for name, use_tables in variants.items():
            kde._USE_TABLES = use_tables
            t0 = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - t0)
    kde._USE_TABLES = True
    return {name: min(t) for name, t in times.items()}, outputs


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="clusters")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads of estimate_catalog")
    args = p.parse_args(argv)
    R, v, offsets, z = synthetic_catalog(args.n)
    variants = {"direct": False, "tables": True}
    report: dict = {
        "n_clusters": args.n,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "torch": torch.__version__,
    }

    est = DynamicalMassEstimator.load(device="cpu")
    # the cylinder cut, as the estimator applies it before the KDE
    keep = (R < est.cylinder.aperture_mpch) & (np.abs(v) < est.cylinder.v_cut_kms)
    cluster = np.repeat(np.arange(args.n), np.diff(offsets))[keep]
    oc = np.searchsorted(cluster, np.arange(args.n + 1))
    Rc, vc = R[keep].astype(np.float64), v[keep].astype(np.float64)
    torch.set_num_threads(1)
    for backend in ("numpy", "torch"):
        opts = {"backend": backend} if backend == "numpy" else {"backend": "torch", "device": "cpu"}

        def images(o: dict = opts) -> np.ndarray:
            return kde.kde_images(Rc, vc, oc, **o)[0]

        best, out = best_of(args.repeats, variants, images)
        peak = out["direct"].max(axis=(1, 2), keepdims=True)
        report[f"kde_images_{backend}_1thread"] = {
            "us_per_cluster": {k: round(t / args.n * 1e6, 2) for k, t in best.items()},
            "speedup": round(best["direct"] / best["tables"], 3),
            "max_image_difference_over_peak": float(
                np.nanmax(np.abs(out["tables"] - out["direct"]) / peak)
            ),
        }

    torch.set_num_threads(args.threads)
    best, out = best_of(args.repeats, variants, lambda: estimate_catalog(est, (R, v, offsets, z)))
    lm = {k: np.asarray(t["log_mass"], dtype=float) for k, t in out.items()}
    report["estimate_catalog"] = {
        "threads": args.threads,
        "clusters_per_s": {k: round(args.n / t) for k, t in best.items()},
        "speedup": round(best["direct"] / best["tables"], 3),
        "max_log_mass_difference_dex": float(np.nanmax(np.abs(lm["tables"] - lm["direct"]))),
        "flags_identical": bool(
            np.array_equal(np.asarray(out["tables"]["flags"]), np.asarray(out["direct"]["flags"]))
        ),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
