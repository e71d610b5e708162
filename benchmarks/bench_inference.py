"""Catalogue-scale inference speed: packed phase-space arrays -> CNN_2D masses (prints JSON).

Usage::

    python benchmarks/bench_inference.py                       # 1e3 and 1e4 clusters, < 1 min
    python benchmarks/bench_inference.py --n 1000 10000 100000  # the issue-7 targets
    python benchmarks/bench_inference.py --device cuda          # GPU, whole path (skips if none)
    python benchmarks/bench_inference.py --backend torch        # the device path on CPU-torch

Synthetic clusters (fixed seed): Poisson-distributed galaxy numbers (mean ``--mean``, 50 by
default), projected radii uniform in area inside the aperture and Gaussian velocities (a few
beyond v_cut) with a dispersion drawn from a flat log-mass prior, stored as float32 packed arrays
like a `MockCatalog`. Each run goes end to end through
:func:`astro_cnnmass.batch.streaming.estimate_catalog` (cylinder cut per chunk, KDE images, network,
M–σ cross-checks, flags, output QTable). A second pass over the same chunks times the KDE images
and the network separately. Peak memory: ``tracemalloc`` (numpy/Python allocations, in a third,
separately timed pass) and the process's maximum resident set size so far (``ru_maxrss``; sizes
run in increasing order, so it is the peak up to and including that size).

The model is the bundled ``astro_cnnmass/data/cnn2d_default.asdf`` (an ensemble, three members
in v3, with its out-of-domain models), ``--model FILE``, or with ``--untrained`` one freshly
initialised member without out-of-domain models
(:func:`astro_cnnmass.model.bundle.untrained_bundle`; the cost of the bare network path).
``--members K`` keeps only the first K members of the model (its out-of-domain models and
calibration unchanged): the speed that a smaller ensemble or a single network of the same
architecture (e.g. a distilled one) would reach on this path; its masses are not the model's.
``--backend numpy`` (the default on the CPU) builds the features with numpy and runs the network
on ``--device``; ``--backend torch`` (the default on a GPU) runs the whole estimate on
``--device`` (:mod:`astro_cnnmass.device_path`; ``benchmarks/bench_gpu.py`` is the
GPU benchmark). The default chunk size is the estimator's ``default_chunk_size``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from typing import Any

import numpy as np
import torch

from astro_cnnmass.batch.streaming import estimate_catalog, iter_chunks
from astro_cnnmass.estimator import DynamicalMassEstimator
from astro_cnnmass.features.kde import kde_images
from astro_cnnmass.model.bundle import ModelBundle, bundled_model_path, untrained_bundle
from astro_cnnmass.observe.phase_space import cylinder_mask


def synthetic_catalog(n: int, mean: float = 50.0, seed: int = 0):
    """Packed float32 (R [Mpc/h], v [km/s]), int64 offsets and redshifts of ``n`` clusters."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    log_m = rng.uniform(14.0, 15.3, n)
    sigma = 1082.9 * (10 ** (log_m - 15.0)) ** 0.3361
    ng = int(offsets[-1])
    R = (1.6 * np.sqrt(rng.random(ng))).astype(np.float32)  # inside the 1.6 Mpc/h aperture
    v = (rng.standard_normal(ng) * np.repeat(sigma, counts)).astype(np.float32)
    z = rng.uniform(0.03, 0.15, n)
    return R, v, offsets, z


def load_estimator(
    device: str,
    model: str | None,
    untrained: bool = False,
    backend: str | None = None,
    members: int | None = None,
) -> tuple[DynamicalMassEstimator, str]:
    if untrained:
        return (
            DynamicalMassEstimator(untrained_bundle(), device=device, backend=backend),
            "untrained CNN_2D bundle (default architecture, one member, random weights, "
            "no out-of-domain model)",
        )
    path = model if model is not None else bundled_model_path()
    what = f"file: {model}" if model is not None else f"bundled: {path.name}"
    if members is None:
        return DynamicalMassEstimator.load(path, device=device, backend=backend), what
    full = ModelBundle.read(path)
    if not 1 <= members <= full.n_members:
        raise SystemExit(f"--members must be between 1 and {full.n_members}, got {members}")
    bundle = full.replace(state_dicts=full.state_dicts[:members])
    what += f", its first {members} of {full.n_members} members only"
    return DynamicalMassEstimator(bundle, device=device, backend=backend), what


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def breakdown(est: DynamicalMassEstimator, cat, chunk_size: int, device: str) -> dict:
    """Seconds spent in the cylinder cut, the KDE images and the network, chunk by chunk."""
    R, v, offsets, z = cat
    if est.backend == "torch":  # the device pipeline times its own stages
        pipe = est._device_pipeline()
        pipe.timed, pipe.timings = True, dict.fromkeys(pipe.timings, 0.0)
        estimate_catalog(est, cat, chunk_size=chunk_size)
        pipe.timed = False
        return {f"{k}_s": round(x, 4) for k, x in pipe.timings.items()}
    predictor = est._get_predictor()
    t = {"cylinder_s": 0.0, "features_s": 0.0, "network_s": 0.0}
    t0 = time.perf_counter()
    for chunk in iter_chunks(R, v, offsets, chunk_size, z=z, cylinder=est.cylinder):
        t1 = time.perf_counter()
        t["cylinder_s"] += t1 - t0
        # the images as the host path builds them (its KDE kernels, stored as float32)
        imgs, ok = kde_images(
            chunk.R,
            chunk.v,
            chunk.offsets,
            est.feature_config,
            out_dtype=np.float32,
            **est._host_kde_options(),
        )
        t2 = time.perf_counter()
        t["features_s"] += t2 - t1
        predictor.predict(imgs[ok], chunk.z[ok], n=np.diff(chunk.offsets)[ok])
        _sync(device)
        t0 = time.perf_counter()
        t["network_s"] += t0 - t2
    return {k: round(x, 4) for k, x in t.items()}


def run_size(est, n: int, args) -> dict[str, Any]:
    cat = synthetic_catalog(n, args.mean, args.seed)
    R, v, offsets, z = cat
    inside = cylinder_mask(R, v, est.cylinder.aperture_mpch, est.cylinder.v_cut_kms)
    n_in = np.add.reduceat(inside, offsets[:-1]) if n else np.zeros(0)
    best = np.inf
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        table = estimate_catalog(est, cat, chunk_size=args.chunk_size)
        _sync(args.device)
        best = min(best, time.perf_counter() - t0)
    out: dict[str, Any] = {
        "n_clusters": n,
        "mean_galaxies_input": round(float(np.diff(offsets).mean()), 2),
        "mean_galaxies_in_cylinder": round(float(n_in.mean()), 2),
        "seconds": round(best, 4),
        "clusters_per_s": round(n / best, 1),
        "n_ok": int(np.count_nonzero(table["ok"])),
        "breakdown": breakdown(est, cat, args.chunk_size, args.device),
    }
    if not args.no_tracemalloc:
        tracemalloc.start()
        estimate_catalog(est, cat, chunk_size=args.chunk_size)
        out["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 1)
        tracemalloc.stop()
    out["input_mb"] = round((R.nbytes + v.nbytes + offsets.nbytes + z.nbytes) / 1e6, 1)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB (Linux), bytes (macOS)
    out["ru_maxrss_mb_so_far"] = round(maxrss * (1 if sys.platform == "darwin" else 1024) / 1e6, 1)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=[1000, 10000],
        help="catalogue sizes (clusters), run in increasing order",
    )
    p.add_argument("--mean", type=float, default=50.0, help="mean galaxies per cluster")
    p.add_argument("--chunk-size", type=int, default=None, help="default: the estimator's")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:k]")
    p.add_argument(
        "--backend",
        choices=("numpy", "torch"),
        default=None,
        help="numpy: features on the CPU; torch: the whole estimate on --device",
    )
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--repeat", type=int, default=1, help="timed runs per size (best kept)")
    p.add_argument("--model", default=None, help="model bundle (ASDF); default: the bundled one")
    p.add_argument(
        "--untrained",
        action="store_true",
        help="one untrained member, no out-of-domain models (bare network cost)",
    )
    p.add_argument(
        "--members",
        type=int,
        default=None,
        metavar="K",
        help="keep only the first K ensemble members (speed of a smaller ensemble)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tracemalloc", action="store_true")
    args = p.parse_args(argv)
    if args.untrained and args.members is not None:
        p.error("--members applies to a trained model, not to --untrained (one member)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        result = {
            "benchmark": "inference",
            "device": args.device,
            "skipped": "no CUDA device available",
        }
        print(json.dumps(result, indent=2))
        return result
    torch.set_num_threads(args.threads)
    est, model = load_estimator(args.device, args.model, args.untrained, args.backend, args.members)
    if args.chunk_size is None:
        args.chunk_size = est.default_chunk_size
    # warm-up: build the predictor, first torch calls
    estimate_catalog(est, synthetic_catalog(256, args.mean, args.seed + 1), chunk_size=256)
    runs = [run_size(est, n, args) for n in sorted(args.n)]
    result = {
        "benchmark": "inference",
        "what": "end-to-end packed phase-space arrays -> CNN_2D masses (estimate_catalog)",
        "model": model,
        "device": args.device,
        "backend": est.backend,
        "device_name": (
            torch.cuda.get_device_name(args.device)
            if args.device.startswith("cuda")
            else platform.processor() or "cpu"
        ),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "chunk_size": args.chunk_size,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
