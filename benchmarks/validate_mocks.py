"""Validation of the mock generator against N-body results (physics note §9, V1–V8).

Generates (or reads) a catalogue, prints the statistics beside their literature targets as JSON
and as a short table, and writes diagnostic plots into ``--out``: σ–M for members and for the
cylinder, interloper fraction vs radius, member counts vs mass, stacked phase space. V2 is also
measured in the Ho et al. (2019) set-up (preset ``ho2019``: satellites only, z = 0.117, 1.6
comoving Mpc/h aperture, |v| < 2500 km/s).

    python benchmarks/validate_mocks.py --n-hosts 3000 --workers 2 --out validation_out
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.3f}" if abs(x) < 100 else f"{x:.0f}"
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    return str(x)


def table_rows(s: dict) -> list[tuple[str, str, str]]:
    v1, v2, v3 = s["V1_pure_sigma_mass"], s["V2_cylinder_sigma_mass"], s["V3_interlopers"]
    rows = [
        ("V1 pure σ–M slope", _fmt(v1["slope"]), "0.30–0.40 (Evrard 0.336, Ho 0.366)"),
        ("V1 pure σ_15 [km/s]", _fmt(v1["sigma15"]), "1083 ± 10 %"),
        ("V1 pure scatter log σ [dex]", _fmt(v1["scatter_dex"]), "≈ 0.069 (Ho)"),
        ("V1 M–σ mass scatter, members [dex]", _fmt(v1["mass_scatter_dex"]), "≈ 0.18 (Ho)"),
        ("V2 cylinder σ–M slope", _fmt(v2["slope"]), "≈ 0.24 (Ho)"),
        ("V2 cylinder σ_15 [km/s]", _fmt(v2["sigma15"]), "≈ 1000 (Ho)"),
        ("V2 M–σ mass scatter, cylinder [dex]", _fmt(v2["mass_scatter_dex"]), "≈ 0.37 (Ho)"),
    ]
    if "V2_ho2019_setup" in s:
        h = s["V2_ho2019_setup"]
        rows += [
            ("V2 (Ho set-up) slope", _fmt(h["slope"]), "≈ 0.24 ± 20 %"),
            ("V2 (Ho set-up) σ_15 [km/s]", _fmt(h["sigma15"]), "≈ 1000 ± 20 %"),
            ("V2 (Ho set-up) mass scatter [dex]", _fmt(h["mass_scatter_dex"]), "≈ 0.37"),
            ("V1 (Ho set-up) mass scatter [dex]", _fmt(h["pure_mass_scatter_dex"]), "≈ 0.18"),
        ]
    rows += [
        ("V3 interloper fraction R<R200c", _fmt(v3["inside"]), "0.10–0.40 (MBM10 0.26)"),
        (
            "V3 f_int at X=.05,.18,.38,.63,.88",
            _fmt(v3["fraction"]),
            "rising; MBM10 .04,.09,.24,.45,.76",
        ),
        ("V4 σ_LOS/V200 (members < R200c)", _fmt(s["V4_sigma_over_v200"]["mean"]), "≈ 0.66"),
    ]
    if "V5_gaussian_fraction" in s:
        rows += [
            (
                "V5 Gaussian fraction (N≥20, AD 5 %)",
                _fmt(s["V5_gaussian_fraction"]["value"]),
                "0.6–0.7 (Ribeiro+13)",
            ),
            (
                "V6 projected c of members",
                _fmt(s["V6_projected_concentration"]["value"]),
                "2.5–4.5",
            ),
            (
                "V8 gapper contamination (r>R200c)",
                _fmt(s["V8_shifting_gapper"]["contamination"]),
                "see docs",
            ),
            (
                "V8 gapper contamination (unbound)",
                _fmt(s["V8_shifting_gapper"]["contamination_unbound"]),
                "0.02–0.04 (Wojtak+07)",
            ),
        ]
    rows += [("V7 N_members ∝ M^α, α", _fmt(s["V7_member_counts"]["slope"]), "0.85–1.1")]
    return rows


def make_plots(cat, summary: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astro_cnnmass.mocks.tables import get_tables
    from astro_cnnmass.mocks.validation import cluster_index, cylinder_sigma

    t = get_tables(cat.meta.get("cosmology", {}).get("name", "multidark-planck"))
    c = cat.clusters
    lm, z = c["log_m200c"], c["z"]
    lme = lm + np.log10(t.E_of_z(z))
    sig_cyl, _ = cylinder_sigma(cat)
    files = []
    # σ–M
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(lme, np.log10(sig_cyl), s=2, alpha=0.3, c="C1", label="cylinder (R<1.6, |v|<2200)")
    ax.scatter(lme, np.log10(c["sigma_true_kms"]), s=2, alpha=0.3, c="C0", label="true members")
    xx = np.linspace(13.5, 15.6, 10)
    ax.plot(xx, np.log10(1082.9) + 0.3361 * (xx - 15), "k-", label="Evrard+08")
    ax.plot(xx, 3.001 + 0.241 * (xx - 15), "k--", label="Ho+19 cylinder")
    ax.set(xlabel="log10 E(z) M200c [Msun/h]", ylabel="log10 σ [km/s]")
    ax.legend(fontsize=7, markerscale=4)
    fig.tight_layout()
    files.append(str(out / "mocks_sigma_mass.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    # interloper fraction
    v3 = summary["V3_interlopers"]
    e = np.array(v3["edges"])
    xc = 0.5 * (e[1:] + e[:-1])
    fig, ax = plt.subplots(figsize=(5, 3.8))
    ax.plot(xc, v3["fraction"], "o-", label="mocks")
    ax.plot([0.1, 0.25, 0.5, 0.75, 0.95], [0.04, 0.09, 0.24, 0.45, 0.76], "ks--", label="MBM10")
    ax.set(xlabel="R / R200c", ylabel="interloper fraction (|v| < 4 V200)", ylim=(0, 1))
    ax.legend()
    fig.tight_layout()
    files.append(str(out / "mocks_interlopers.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    # member counts
    fig, ax = plt.subplots(figsize=(5, 3.8))
    first = c["los_id"] == 0
    ax.scatter(lm[first], np.log10(np.maximum(c["n_members_3d"][first], 0.5)), s=3, alpha=0.4)
    mc = summary["V7_member_counts"]
    ax.plot(
        xx,
        np.log10(mc["n_at_1e14"]) + mc["slope"] * (xx - 14),
        "r-",
        label=f"slope {mc['slope']:.2f}",
    )
    ax.set(xlabel="log10 M200c [Msun/h]", ylabel="log10 N members (r < R200c)")
    ax.legend()
    fig.tight_layout()
    files.append(str(out / "mocks_member_counts.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    # stacked phase space
    idx = cluster_index(cat)
    X = np.asarray(cat.R) / c["r200c_mpch"][idx]
    Y = np.asarray(cat.v) / c["v200_kms"][idx]
    mem = np.asarray(cat.is_member)
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, m, title in ((axs[0], mem, "true members"), (axs[1], ~mem, "non-members")):
        ax.hist2d(X[m], Y[m], bins=(60, 80), range=((0, 3), (-4, 4)), cmap="magma", cmin=1)
        ax.set(xlabel="R / R200c", title=title)
    axs[0].set_ylabel("v / V200")
    fig.tight_layout()
    files.append(str(out / "mocks_phase_space.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-hosts", type=int, default=3000)
    p.add_argument("--seed", type=int, default=2019)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--catalog", type=Path, default=None, help="validate this file instead")
    p.add_argument("--out", type=Path, default=Path("validation_mocks"))
    p.add_argument(
        "--ho-hosts",
        type=int,
        default=2000,
        help="hosts of the Ho et al. set-up run for V2 (0 to skip)",
    )
    args = p.parse_args(argv)

    from astro_cnnmass.mocks import MockCatalog, MockConfig, generate_catalog
    from astro_cnnmass.mocks.validation import (
        cylinder_sigma,
        fit_sigma_mass,
        msigma_mass_scatter,
        validation_summary,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    if args.catalog is not None:
        cat = MockCatalog.read(args.catalog)
    else:
        cat = generate_catalog(args.n_hosts, seed=args.seed, workers=args.workers, progress=True)
    summary = validation_summary(cat)
    if args.ho_hosts > 0:
        ho = generate_catalog(
            args.ho_hosts,
            seed=args.seed + 1,
            workers=args.workers,
            config=MockConfig.ho2019(),
            progress=True,
        )
        hc = ho.clusters
        # Ho et al.: 1.6 comoving Mpc/h (= 1.6 / 1.117 physical) and |v| < 2500 km/s
        sig, _ = cylinder_sigma(ho, aperture=1.6 / 1.117, v_cut=2500.0)
        fit = fit_sigma_mass(hc["log_m200c"], hc["z"], sig, ez_scaling=False)
        fit["mass_scatter_dex"] = msigma_mass_scatter(hc["log_m200c"], sig)
        fit["pure_mass_scatter_dex"] = msigma_mass_scatter(hc["log_m200c"], hc["sigma_true_kms"])
        summary["V2_ho2019_setup"] = {
            **fit,
            "target": {"slope": 0.241, "sigma15": 1002.0, "mass_scatter_dex": 0.369},
        }
    summary["plots"] = make_plots(cat, summary, args.out)
    summary["meta"] = {
        k: cat.meta.get(k)
        for k in ("seed", "prior", "n_hosts", "lines_of_sight", "generator_version")
    }
    (args.out / "validation.json").write_text(json.dumps(summary, indent=1, default=float))
    print(json.dumps(summary, indent=1, default=float))
    rows = table_rows(summary)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"\n{'statistic':<{w0}}  {'mocks':<{w1}}  target")
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:<{w1}}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
