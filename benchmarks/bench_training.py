"""Training speed of the CNN mass models: seconds per epoch for N samples (prints JSON).

Usage::

    python benchmarks/bench_training.py [--n 2000 5000] [--model cnn2d] [--head gaussian]
        [--batch-size 50] [--epochs 2] [--threads 2] [--device cpu]

Synthetic KDE-like images (Gaussian blobs normalised to sum 1) are used, so the numbers measure
the training loop only (features: see the features benchmark). Fixed seeds.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from astro_cnnmass.model.bundle import _resolve_device
from astro_cnnmass.model.networks import default_network_config
from astro_cnnmass.model.training import fit_networks


def synthetic_images(n: int, arch: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.uniform(-1, 1, n)
    width = 4.0 + 3.0 * (y + 1)
    grid = np.arange(48) - 23.5
    prof_v = np.exp(-0.5 * (grid[None, :] / width[:, None]) ** 2)
    if arch == "cnn1d":
        img = prof_v
    else:
        prof_R = np.exp(-np.arange(48) / 15.0)
        img = prof_v[:, :, None] * prof_R[None, None, :]
    img = img + 0.02 * rng.random(img.shape)
    img /= img.reshape(n, -1).sum(axis=1).reshape((n,) + (1,) * (img.ndim - 1))
    return img.astype(np.float32), y


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[2000])
    p.add_argument("--model", default="cnn2d", choices=["cnn2d", "cnn1d"])
    p.add_argument("--head", default="gaussian", choices=["gaussian", "point"])
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = default_network_config(args.model, args.head)
    results = []
    for n in args.n:
        x, y = synthetic_images(n, args.model)
        t0 = time.perf_counter()
        _, hist = fit_networks(
            x,
            np.zeros(n),
            y,
            cfg,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=0,
            device=args.device,
            progress=False,
            patience=None,
        )
        total = time.perf_counter() - t0
        results.append(
            {
                "n_samples": n,
                "seconds_per_epoch": total / args.epochs,
                "microseconds_per_sample_epoch": 1e6 * total / args.epochs / n,
                "final_train_loss": hist[0]["train_loss"][-1],
            }
        )
    report = {
        "benchmark": "training",
        "model": args.model,
        "head": args.head,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "threads": args.threads,
        "device": str(_resolve_device(args.device)),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
