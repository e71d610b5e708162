"""Same-process speed comparison of this tree's batch entry points with an earlier commit's (JSON).

Usage::

    python benchmarks/compare_commits.py 851c103                 # 3e4 clusters, ~3 min
    python benchmarks/compare_commits.py 851c103 --n 100000 --repeats 5 --threads 1

On a shared machine the speed drifts by 15–30 % between processes (``docs/performance.rst``),
more than most single changes; two benchmark runs in two processes cannot resolve them. This
script extracts the earlier commit's package (``git archive``) into a temporary directory
under another name (``astro_cnnmass_<commit>``), imports it beside the installed package, and
times both on the same synthetic clusters (``benchmarks/bench_inference.py``), interleaved,
best of ``--repeats``: ``predict_packed``, ``estimate_catalog`` and ``estimate_many`` (from the
member and cluster tables of ``benchmarks/bench_entry_points.py``), each with its defaults and
the bundled model. The earlier package reads the model through the installed one (the model
file's ASDF tag belongs to the installed package); its features, networks' grouping,
calibration and out-of-domain code are its own. Reported: clusters/s of both, the speed-up,
and the largest difference of the masses (dex) and whether the flags agree.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_entry_points import sky_tables
from bench_inference import synthetic_catalog

from astro_cnnmass.batch.streaming import estimate_catalog
from astro_cnnmass.estimator import DynamicalMassEstimator
from astro_cnnmass.model import bundle as installed_bundle

REPO = Path(__file__).resolve().parents[1]


def import_commit(commit: str, where: Path):
    """The package of ``commit`` as a module named ``astro_cnnmass_<commit>``."""
    name = f"astro_cnnmass_{commit}"
    tar = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "astro_cnnmass"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(where, filter="data")
    (where / "astro_cnnmass").rename(where / name)
    # the model file's tag is the installed package's: the earlier copy reads it through that
    bundle_py = where / name / "model" / "bundle.py"
    bundle_py.write_text(
        bundle_py.read_text() + "\nfrom astro_cnnmass.model.bundle import ModelBundle  # noqa\n"
    )
    sys.path.insert(0, str(where))
    return importlib.import_module(name)


def flag_strings(out) -> list[str]:
    """Each cluster's flags as one string (a FlagArray or a table's ``flags`` column)."""
    flags = out["flags"]
    if hasattr(flags, "joined"):
        return [str(f) for f in flags.joined().tolist()]
    return [str(f) for f in np.asarray(flags).tolist()]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("commit", help="the earlier commit (hash or ref)")
    p.add_argument("--n", type=int, default=30000, help="clusters")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", args.commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    R, v, offsets, z = synthetic_catalog(args.n)
    members, clusters = sky_tables(R, v, offsets, z, 0)
    with tempfile.TemporaryDirectory() as tmp:
        old = import_commit(commit, Path(tmp))
        old_streaming = importlib.import_module(f"{old.__name__}.batch.streaming")
        old_estimator = importlib.import_module(f"{old.__name__}.estimator")
        now = DynamicalMassEstimator.load(device="cpu")
        before = old_estimator.DynamicalMassEstimator(now.bundle, device="cpu")
        assert isinstance(before.bundle, installed_bundle.ModelBundle)
        sides = {"before": (before, old_streaming.estimate_catalog), "now": (now, estimate_catalog)}
        warm = synthetic_catalog(256, 50.0, 1)
        for est, catalog in sides.values():
            catalog(est, warm)
        calls = {
            "predict_packed": lambda est, cat: est.predict_packed(
                R, v, offsets, z, apply_cylinder=True
            ),
            "estimate_catalog": lambda est, cat: cat(est, (R, v, offsets, z)),
            "estimate_many": lambda est, cat: est.estimate_many(members, clusters=clusters),
        }
        report: dict = {
            "benchmark": "compare_commits",
            "before": commit,
            "now": "working tree",
            "n_clusters": args.n,
            "threads": args.threads,
            "repeats": args.repeats,
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
        }
        for entry, call in calls.items():
            best = {side: np.inf for side in sides}
            masses = {}
            for _ in range(args.repeats):
                for side, (est, cat) in sides.items():
                    t0 = time.perf_counter()
                    out = call(est, cat)
                    best[side] = min(best[side], time.perf_counter() - t0)
                    masses[side] = (np.asarray(out["log_mass"], dtype=float), flag_strings(out))
                    del out
            (lm_b, fl_b), (lm_n, fl_n) = masses["before"], masses["now"]
            report[entry] = {
                "clusters_per_s": {side: round(args.n / t) for side, t in best.items()},
                "speedup": round(best["before"] / best["now"], 3),
                "max_log_mass_difference_dex": float(np.nanmax(np.abs(lm_b - lm_n))),
                "flags_identical": fl_b == fl_n,
            }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
