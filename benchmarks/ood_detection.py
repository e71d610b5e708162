"""How often the out-of-domain score flags implausible phase spaces, and ordinary mocks (JSON).

For the bundled CNN_2D (or ``--model``) it draws, for each galaxy count N, ``--draws`` phase
spaces of each kind inside the model's cylinder, estimates them in one batch and prints the
fraction with ``ood_score > 1``, the median estimated log10 M200c and which of the three
out-of-domain models flagged them:

* ``random_field``: galaxies scattered at random through the cylinder volume (uniform on the
  sky disc and in velocity): no cluster at all;
* ``uniform_in_R``: uniform in R and in v. Uniform in R means a surface density falling as 1/R,
  the projected singular isothermal sphere, so this *is* cluster-like in R; with velocities
  filling the window it resembles the most massive training clusters;
* ``ring``, ``two_peaks``, ``cold_spike``, ``velocity_edges``: the implausible shapes of the
  estimator tests (nothing at the centre; two velocity peaks at +-1500 km/s; sigma = 40 km/s;
  all galaxies within 300 km/s of the window edges);

and, for comparison, the flagged fraction of ordinary mocks (``--hosts`` fresh hosts from the
default generator, seed ``--seed``, never used in training) with 10^14 < M200c < 10^15 Msun/h.

Run::

    python benchmarks/ood_detection.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from astro_cnnmass.estimator import DynamicalMassEstimator
from astro_cnnmass.features.config import pack
from astro_cnnmass.uncertainty.ood import ood_score_components
from astro_cnnmass.uncertainty.summary_ood import phase_space_summaries

KINDS = ("random_field", "uniform_in_R", "ring", "two_peaks", "cold_spike", "velocity_edges")


def draw(kind: str, n: int, rng: np.random.Generator, aperture: float, v_cut: float):
    """One phase space of the given kind (R in Mpc/h, v in km/s)."""
    if kind == "random_field":
        return aperture * np.sqrt(rng.uniform(0, 1, n)), rng.uniform(-v_cut, v_cut, n)
    if kind == "uniform_in_R":
        return rng.uniform(0, aperture, n), rng.uniform(-v_cut, v_cut, n)
    R = np.minimum(np.abs(rng.normal(0, 0.3 * aperture, n)), 0.999 * aperture)
    if kind == "ring":
        return rng.uniform(0.9 * aperture, aperture, n), rng.normal(0, 600, n)
    if kind == "two_peaks":
        return R, np.concatenate(
            [rng.normal(-1500, 150, n // 2), rng.normal(1500, 150, n - n // 2)]
        )
    if kind == "cold_spike":
        return R, rng.normal(0, 40, n)
    if kind == "velocity_edges":
        return R, rng.choice([-1, 1], n) * rng.uniform(v_cut - 300, v_cut, n)
    raise ValueError(kind)


def components(est: DynamicalMassEstimator, R, v, offsets, z, res) -> dict[str, np.ndarray]:
    """Which of the out-of-domain models flags each cluster (its part of the score > 1)."""
    ok = np.isfinite(res["log_mass"])
    summaries = phase_space_summaries(
        R, v, offsets, est.cylinder.aperture_mpch, est.cylinder.v_cut_kms
    )
    parts = ood_score_components(
        est.bundle,
        res["images"][ok],
        z[ok],
        summaries={k: a[ok] for k, a in summaries.items()},
        log_mass=res["log_mass"][ok],
        n=np.asarray(res["n"])[ok],  # models with the galaxy-count input (v2 on) need it
    )
    out = {}
    for name, part in parts.items():
        out[name] = np.zeros(ok.size, dtype=bool)
        out[name][ok] = part > 1
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="ASDF model (default: the bundled CNN_2D)")
    p.add_argument("--draws", type=int, default=200, help="phase spaces per kind and N")
    p.add_argument("--n", type=int, nargs="+", default=[20, 50, 100, 200, 400])
    p.add_argument("--hosts", type=int, default=600, help="fresh default mocks (0: skip)")
    p.add_argument("--seed", type=int, default=4242)
    args = p.parse_args(argv)
    t0 = time.time()
    est = DynamicalMassEstimator.load(args.model) if args.model else DynamicalMassEstimator.load()
    aperture, v_cut = est.cylinder.aperture_mpch, est.cylinder.v_cut_kms
    rng = np.random.default_rng(args.seed)
    result: dict = {"model": args.model or "bundled", "draws": args.draws, "kinds": {}}
    for kind in KINDS:
        rows = {}
        for n in args.n:
            Rs, vs = zip(
                *(draw(kind, n, rng, aperture, v_cut) for _ in range(args.draws)), strict=True
            )
            R, v, offsets = pack(Rs, vs)
            z = rng.uniform(0.02, 0.25, args.draws)
            res = est.predict_packed(R, v, offsets, z, keep_images=True)
            flagged_by = components(est, R, v, offsets, z, res)
            rows[str(n)] = {
                "flagged": float(np.mean(res["ood_score"] > 1)),
                "median_log_mass": float(np.nanmedian(res["log_mass"])),
                "flagged_by": {k: float(np.mean(f)) for k, f in flagged_by.items()},
            }
        result["kinds"][kind] = rows
    if args.hosts:
        from astro_cnnmass.batch.streaming import estimate_catalog
        from astro_cnnmass.mocks import generate_catalog

        cat = generate_catalog(args.hosts, seed=args.seed, lines_of_sight=3, progress=False)
        tab = estimate_catalog(est, cat, as_table=False)
        log_m = np.asarray(cat.clusters["log_m200c"])
        score = np.asarray(tab["ood_score"])
        sel = (log_m > 14) & (log_m < 15) & np.isfinite(score)
        result["ordinary_mocks"] = {
            "n": int(sel.sum()),
            "seed": args.seed,
            "flagged": float(np.mean(score[sel] > 1)),
        }
    result["wall_s"] = time.time() - t0
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
