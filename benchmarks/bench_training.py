"""Training speed of the CNN mass models: seconds per epoch for N samples (prints JSON).

Usage::

    python benchmarks/bench_training.py [--n 2000 5000] [--model cnn2d] [--head gaussian]
        [--batch-size 50] [--epochs 2] [--threads 2] [--device cpu]

Synthetic KDE-like images (Gaussian blobs normalised to sum 1) are used, so the numbers measure
the training loop only (features: see the features benchmark). Fixed seeds.

``--compare-sdm`` instead times the paper's speed claim (Ho et al. 2019: CNN training plus
evaluation ~30 times faster than SDM): CNN_2D (``train_model``: cylinder, KDE images,
flat-mass sample, one network for ``--epochs`` epochs, M–σ, calibration and out-of-domain fits;
then features and prediction of the test mocks) and SDM_2D (``astro_cnnmass.model.sdm``:
divergences, inner 3-fold tuning and fit on the same training mocks after the same cylinder and
richness cut; then prediction of the same test mocks), on ``--train-hosts`` and
``--test-hosts`` hosts x 3 lines of sight of the default generator (fixed seeds; mock generation
is not timed)::

    python benchmarks/bench_training.py --compare-sdm [--train-hosts 400] [--test-hosts 200]
        [--epochs 20] [--batch-size 50] [--threads 2]
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


def compare_sdm(args: argparse.Namespace) -> dict:
    """Training and evaluation wall time of CNN_2D and SDM_2D on the same mocks."""
    from astro_cnnmass.features.config import FeatureConfig
    from astro_cnnmass.mocks import generate_catalog
    from astro_cnnmass.model.metrics import residual_stats
    from astro_cnnmass.model.predictor import Predictor
    from astro_cnnmass.model.samples import prepare_features
    from astro_cnnmass.model.sdm import SDM_2D, cluster_samples
    from astro_cnnmass.model.training import train_model

    def mocks(n_hosts, seed):
        return generate_catalog(
            n_hosts, seed=seed, lines_of_sight=3, workers=args.workers, progress=False
        )

    train, test = mocks(args.train_hosts, args.seed), mocks(args.test_hosts, args.seed + 1)
    t0 = time.perf_counter()
    bundle = train_model(
        train,
        model="cnn2d",
        head=args.head,
        n_ensemble=1,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=None,
        n_per_bin=None,
        seed=0,
        device=args.device,
        progress=False,
    )
    cnn_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    prep = prepare_features(
        test, bundle.cylinder, FeatureConfig.from_dict(bundle.feature_config), n_min_galaxies=10
    )
    predictor = Predictor(bundle, device=args.device)
    kw = {"n": prep["n_gal"]} if getattr(predictor, "uses_counts", False) else {}
    cnn_pred = predictor.predict(prep["images"], prep["z"], **kw)["mean"]
    cnn_eval = time.perf_counter() - t0

    s = cluster_samples(train, bundle.cylinder, n_min_galaxies=10)
    t0 = time.perf_counter()
    sdm = SDM_2D(max_train=None, seed=0, workers=args.threads)
    sdm.fit(s["R"], s["v"], s["offsets"], s["log_m"], groups=s["host_id"])
    sdm_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    st = cluster_samples(test, bundle.cylinder, n_min_galaxies=10)
    sdm_pred = sdm.predict(st["R"], st["v"], st["offsets"])
    sdm_eval = time.perf_counter() - t0

    def scatter(pred, log_m):
        sel = (log_m > 14.0) & (log_m < 15.0)
        r = residual_stats(pred[sel] - log_m[sel])
        return {k: r[k] for k in ("n", "mean", "std", "width")}

    cnn_total, sdm_total = cnn_train + cnn_eval, sdm_train + sdm_eval
    return {
        "benchmark": "training_and_evaluation_cnn2d_vs_sdm2d",
        "train_mocks": {
            "hosts": args.train_hosts,
            "clusters_after_cuts": int(s["index"].size),
            "galaxies_per_cluster_median": float(np.median(np.diff(s["offsets"]))),
        },
        "test_mocks": {"hosts": args.test_hosts, "clusters_after_cuts": int(prep["index"].size)},
        "cnn2d": {
            "train_s": cnn_train,
            "network_fit_s": float(bundle.training.get("seconds", float("nan"))),
            "n_train": int(bundle.training["n_train"]),
            "n_val": int(bundle.training["n_val"]),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "head": args.head,
            "eval_s": cnn_eval,
            "total_s": cnn_total,
            "test_residuals_1e14_1e15": scatter(cnn_pred, prep["log_m"]),
        },
        "sdm2d": {
            "train_s": sdm_train,
            "train_breakdown_s": sdm.info_["seconds"],
            "n_train": int(sdm.info_["n_train"]),
            "max_galaxies": sdm.max_galaxies,
            "tuning_grid_points": len(sdm.info_["tuning_grid"]),
            "tuning_folds": sdm.n_folds,
            "eval_s": sdm_eval,
            "total_s": sdm_total,
            "test_residuals_1e14_1e15": scatter(sdm_pred, st["log_m"]),
        },
        "ratio_sdm_over_cnn": {
            "train": sdm_train / cnn_train,
            "eval": sdm_eval / cnn_eval,
            "total": sdm_total / cnn_total,
        },
        "paper_ratio_total": 30,
        "threads": args.threads,
        "device": str(_resolve_device(args.device)),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[2000])
    p.add_argument("--model", default="cnn2d", choices=["cnn2d", "cnn1d"])
    p.add_argument("--head", default="gaussian", choices=["gaussian", "point"])
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default 2; 20, the paper's, with --compare-sdm)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--compare-sdm",
        action="store_true",
        help="time CNN_2D against SDM_2D, training and evaluation (see above)",
    )
    p.add_argument("--train-hosts", type=int, default=400, help="--compare-sdm training hosts")
    p.add_argument("--test-hosts", type=int, default=200, help="--compare-sdm test hosts")
    p.add_argument("--seed", type=int, default=1902, help="--compare-sdm mock seed")
    p.add_argument("--workers", type=int, default=2, help="mock generation processes")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.epochs is None:
        args.epochs = 20 if args.compare_sdm else 2
    if args.compare_sdm:
        report = compare_sdm(args)
        print(json.dumps(report, indent=1))
        return report
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
