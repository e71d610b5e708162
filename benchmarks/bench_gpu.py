"""The whole estimate on a GPU: clusters/s end to end at 1e5 and 1e6 clusters (prints JSON).

Usage::

    python benchmarks/bench_gpu.py                      # cuda, 1e5 and 1e6 clusters
    python benchmarks/bench_gpu.py --n 100000           # one size
    python benchmarks/bench_gpu.py --device cpu --n 2000 --allow-cpu   # smoke test on CPU-torch

Needs only the installed package (and torch with CUDA). Without a CUDA device it prints a JSON
document with ``"skipped"`` and exits with status 0. Designed to finish in well under 4 minutes
on an H100/H200-class card: the 1e6 run is skipped (and says so) if the 1e5 run was slower than
``--budget-s`` / 20.

What is timed: :func:`astro_cnnmass.batch.streaming.estimate_catalog` with the bundled model
and ``DynamicalMassEstimator.load(device=..., backend="torch")`` (cylinder cut, KDE images, the
5-member ensemble, calibration and the three out-of-domain scores on the device; M–σ and flags
on the host; the output QTable), on synthetic float32 packed clusters like a mock catalogue
(Poisson galaxy numbers with mean 50, radii uniform in area, Gaussian velocities from a flat
log-mass prior). The split into ``transfer`` (host <-> device copies), ``cylinder`` (cut, counts,
σ_v), ``features`` (KDE images), ``network`` (ensemble + calibration) and ``ood`` comes from a
second, synchronised pass over the 1e5 catalogue (``DevicePipeline.timings``); the remainder of
the end-to-end time is host work (chunking, M–σ, flags, table). Peak device memory is
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np


def synthetic_catalog(n: int, mean: float = 50.0, seed: int = 0):
    """Packed float32 (R [Mpc/h], v [km/s]), int64 offsets and redshifts of ``n`` clusters."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    log_m = rng.uniform(14.0, 15.3, n)
    sigma = 1082.9 * (10 ** (log_m - 15.0)) ** 0.3361
    ng = int(offsets[-1])
    R = (1.6 * np.sqrt(rng.random(ng, dtype=np.float32))).astype(np.float32)
    v = (rng.standard_normal(ng, dtype=np.float32) * np.repeat(sigma, counts)).astype(np.float32)
    z = rng.uniform(0.03, 0.15, n)
    return R, v, offsets, z


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--mean", type=float, default=50.0, help="mean galaxies per cluster")
    p.add_argument("--chunk-size", type=int, default=None, help="default: the estimator's")
    p.add_argument("--repeat", type=int, default=2, help="timed runs per size (best kept)")
    p.add_argument("--budget-s", type=float, default=200.0)
    p.add_argument("--allow-cpu", action="store_true", help="run on a CPU device (smoke test)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result: dict[str, Any] = {"benchmark": "gpu", "device": args.device}
    try:
        import torch
    except ImportError:  # pragma: no cover
        result["skipped"] = "torch is not installed"
        print(json.dumps(result, indent=2))
        return result
    is_cuda = args.device.startswith("cuda")
    if is_cuda and not torch.cuda.is_available():
        result["skipped"] = "no CUDA device available"
        print(json.dumps(result, indent=2))
        return result
    if not is_cuda and not args.allow_cpu:
        result["skipped"] = f"device {args.device!r} is not a GPU (pass --allow-cpu to run)"
        print(json.dumps(result, indent=2))
        return result

    from astro_cnnmass.batch.streaming import estimate_catalog
    from astro_cnnmass.estimator import DynamicalMassEstimator

    t_start = time.perf_counter()
    est = DynamicalMassEstimator.load(device=args.device, backend="torch")
    pipe = est._device_pipeline()

    def sync() -> None:
        if is_cuda:
            torch.cuda.synchronize()

    estimate_catalog(est, synthetic_catalog(2048, args.mean, args.seed + 1))  # warm-up
    sync()
    runs = []
    for n in sorted(args.n):
        if runs and runs[-1]["seconds"] * n / runs[-1]["n_clusters"] > args.budget_s / 2:
            runs.append({"n_clusters": n, "skipped": "projected time over the budget"})
            continue
        cat = synthetic_catalog(n, args.mean, args.seed)
        if is_cuda:
            torch.cuda.reset_peak_memory_stats()
        best = np.inf
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            table = estimate_catalog(est, cat, chunk_size=args.chunk_size)
            sync()
            best = min(best, time.perf_counter() - t0)
        run: dict[str, Any] = {
            "n_clusters": n,
            "mean_galaxies_input": round(float(np.diff(cat[2]).mean()), 2),
            "seconds": round(best, 4),
            "clusters_per_s": round(n / best, 1),
            "n_ok": int(np.count_nonzero(table["ok"])),
        }
        if is_cuda:
            run["peak_device_memory_mb"] = round(torch.cuda.max_memory_allocated() / 1e6, 1)
        if not any("breakdown_s" in r for r in runs):  # one synchronised pass, smallest size
            pipe.timed = True
            pipe.timings = dict.fromkeys(pipe.timings, 0.0)
            t0 = time.perf_counter()
            estimate_catalog(est, cat, chunk_size=args.chunk_size)
            sync()
            total = time.perf_counter() - t0
            pipe.timed = False
            run["breakdown_s"] = {k: round(x, 4) for k, x in pipe.timings.items()}
            run["breakdown_s"]["host_rest"] = round(total - sum(pipe.timings.values()), 4)
            run["breakdown_s"]["total_synchronised"] = round(total, 4)
        runs.append(run)
        del cat, table
    result.update(
        {
            "what": "end-to-end packed phase-space arrays -> CNN_2D masses + OOD scores on the "
            "device (estimate_catalog, backend='torch')",
            "model": f"bundled: {est.bundle.network_config.get('arch')}, "
            f"{len(est.bundle.state_dicts)} members",
            "device_name": torch.cuda.get_device_name(args.device)
            if is_cuda
            else (platform.processor() or "cpu"),
            "chunk_size": args.chunk_size or est.default_chunk_size,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "runs": runs,
            "wall_s": round(time.perf_counter() - t_start, 1),
        }
    )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
