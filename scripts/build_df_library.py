"""Build the dimensionless distribution-function library of the mock generator.

Each library model is an equilibrium, spherical distribution function f(E, L) of a galaxy tracer
ν(r) in an NFW potential, in units of R200c (lengths) and V200c = sqrt(G M200c / R200c)
(velocities), sampled with galpy (Bovy 2015, ApJS 216, 29; arXiv:1412.3451):

* isotropic: Eddington inversion, ``galpy.df.eddingtondf``;
* Osipkov–Merritt (Osipkov 1979; Merritt 1985): ``galpy.df.osipkovmerrittdf``, β = r²/(r² + r_a²);
* constant β = ±1/2 (Cuddeford 1991, MNRAS 253, 414; An & Evans 2006, astro-ph/0511686):
  ``galpy.df.constantbetadf`` with ``twobeta=±1`` (the half-integer case galpy inverts in closed
  form; general β takes ~10 minutes per model there and is obtained in the generator as a mixture
  of the β = −½, 0, +½ models, which is again an equilibrium DF of the same ν in the same Φ).

Grid: c200c ∈ {2.5, 4, 6.5, 10}; tracer NFW with c_gal = f_c c200c, f_c ∈ {0.45, 0.7, 1.1}, or
Einasto (α = 0.2) with f_c ∈ {0.5, 1.0}; components iso, OM r_a ∈ {0.7, 2.0} r_s, β = ±½ (NFW
tracers only: a cored Einasto tracer admits no DF with β > 0 at the centre, An & Evans 2006 cusp
slope theorem γ ≥ 2β, and galpy's constant-β inversion needs an analytic density derivative).
Energies are cut at Φ(6 R200c) (galpy ``rmax``; no bound orbit reaches beyond the turnaround
radius, ≈ 5 R200c, Korkidis et al. 2020, arXiv:1912.08216; with Φ(3 R200c) the isotropic σ_r
inside R200c was 5–8 % below the untruncated Jeans solution, with Φ(6 R200c) it agrees to ≈ 2 %),
and 8192 particles with r < 2.5 R200c are kept per model, stored as (r, v_r, v_t) float32
sorted by r (the DF is spherical, so directions are isotropic and are drawn by the generator).

    OMP_NUM_THREADS=1 python scripts/build_df_library.py  # ~20 min on one core
    # or in two halves: --part 0 --nparts 2 and --part 1 --nparts 2, then --combine

Output: ``astro_cnnmass/data/mock_df_library-v1.npz`` (about 8 MB). Needs galpy and jax (build
time only; the generator reads the file with numpy).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

LIBRARY_VERSION = 1
C_NODES = (2.5, 4.0, 6.5, 10.0)
NFW_FC = (0.45, 0.7, 1.1)
EIN_FC = (0.5, 1.0)
EIN_ALPHA = 0.2
OM_RA_RS = (0.7, 2.0)
N_KEEP = 8192
R_KEEP = 2.5
R_MAX_DF = 6.0
#: component codes
COMP_ISO, COMP_OM, COMP_BETA = 0, 1, 2


def _mu(x):
    return np.log1p(x) - x / (1.0 + x)


def _einasto_tracer(cg: float, alpha: float):
    """galpy Einasto density (r_-2 = 1/c_gal) with the radial derivatives galpy's DFs need."""
    from galpy.potential import EinastoPotential

    class _Einasto(EinastoPotential):
        # galpy convention: ρ ∝ exp(−(r/h)^(1/n)); s = (r/h)^(1/n), ds/dr = s/(n r)
        def _ddensdr(self, r, t=0.0):
            s = (r / self.h) ** (1.0 / self.n)
            return -self._rdens(r) * s / (self.n * r)

        def _d2densdr2(self, r, t=0.0):
            s = (r / self.h) ** (1.0 / self.n)
            n = self.n
            return self._rdens(r) / r**2 * (s * s / n**2 + s / n * (1.0 - 1.0 / n))

    return _Einasto(amp=1.0, n=1.0 / alpha, rm2=1.0 / cg)


def model_list() -> list[dict]:
    out = []
    for c in C_NODES:
        tracers = [(0, f, np.nan) for f in NFW_FC] + [(1, f, EIN_ALPHA) for f in EIN_FC]
        for kind, fc, alpha in tracers:
            comps = [(COMP_ISO, 0.0)] + [(COMP_OM, ra) for ra in OM_RA_RS]
            if kind == 0:
                comps += [(COMP_BETA, 0.5), (COMP_BETA, -0.5)]
            for comp, par in comps:
                out.append({"c": c, "tracer": kind, "f_c": fc, "alpha": alpha, "comp": comp,
                            "par": par})  # fmt: skip
    return out


def sample_model(m: dict, seed: int, n_keep: int = N_KEEP) -> np.ndarray:
    """(r, v_r, v_t) of ``n_keep`` particles with r < R_KEEP, sorted by r (float64)."""
    from galpy.df import constantbetadf, eddingtondf, osipkovmerrittdf
    from galpy.potential import NFWPotential

    c = m["c"]
    pot = NFWPotential(amp=1.0 / _mu(c), a=1.0 / c)  # G = 1: M(<1) = 1, V200 = 1
    cg = m["f_c"] * c
    if m["tracer"] == 0:
        den = NFWPotential(amp=1.0, a=1.0 / cg)
    else:
        den = _einasto_tracer(cg, m["alpha"])
    if m["comp"] == COMP_ISO:
        df = eddingtondf(pot=pot, denspot=den, rmax=R_MAX_DF)
    elif m["comp"] == COMP_OM:
        df = osipkovmerrittdf(pot=pot, denspot=den, ra=m["par"] / c, rmax=R_MAX_DF)
    else:
        df = constantbetadf(pot=pot, denspot=den, twobeta=round(2 * m["par"]),
                            rmax=R_MAX_DF)  # fmt: skip
    np.random.seed(seed)  # noqa: NPY002 - galpy samples with numpy's global generator
    rows = []
    n_have = 0
    while n_have < n_keep:
        o = df.sample(n=int(1.3 * (n_keep - n_have)) + 200)
        x = np.column_stack([o.x(), o.y(), o.z()])
        v = np.column_stack([o.vx(), o.vy(), o.vz()])
        r = np.linalg.norm(x, axis=1)
        ok = (r < R_KEEP) & np.all(np.isfinite(v), axis=1)
        x, v, r = x[ok], v[ok], r[ok]
        vr = np.einsum("ij,ij->i", x, v) / r
        vt = np.sqrt(np.maximum(np.einsum("ij,ij->i", v, v) - vr * vr, 0.0))
        rows.append(np.column_stack([r, vr, vt]))
        n_have += r.size
    arr = np.concatenate(rows)[:n_keep]
    return arr[np.argsort(arr[:, 0], kind="stable")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parents[1] / "astro_cnnmass" / "data"
                   / f"mock_df_library-v{LIBRARY_VERSION}.npz")  # fmt: skip
    p.add_argument("--n-keep", type=int, default=N_KEEP)
    p.add_argument("--seed", type=int, default=20190215)
    p.add_argument("--part", type=int, default=None, help="build only models k % nparts == part")
    p.add_argument("--nparts", type=int, default=1)
    p.add_argument("--combine", action="store_true", help="merge the --part files into --out")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    models = model_list()
    data = np.zeros((len(models), args.n_keep, 3), np.float32)
    t0 = time.perf_counter()
    if args.combine:
        for part in range(args.nparts):
            d = np.load(args.out.with_suffix(f".part{part}.npy"))
            data[part :: args.nparts] = d[part :: args.nparts]
    for k, m in enumerate(models):
        if args.combine or (args.part is not None and k % args.nparts != args.part):
            continue
        t = time.perf_counter()
        data[k] = sample_model(m, args.seed + k, args.n_keep)
        print(f"[{k + 1}/{len(models)}] {m} {time.perf_counter() - t:.1f}s", flush=True)
    if args.part is not None:
        np.save(args.out.with_suffix(f".part{args.part}.npy"), data)
        return 0
    table = np.array([[m["c"], m["tracer"], m["f_c"], m["alpha"], m["comp"], m["par"]]
                      for m in models])  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez(tmp, particles=data, models=table,
             columns=np.array(["c200c", "tracer", "f_c", "alpha", "comp", "par"]),
             version=np.array(LIBRARY_VERSION), r_keep=np.array(R_KEEP),
             r_max_df=np.array(R_MAX_DF), seed=np.array(args.seed))  # fmt: skip
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MB) in "
          f"{time.perf_counter() - t0:.0f}s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
