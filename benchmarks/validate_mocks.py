"""Validation of the mock generator against N-body results (physics note §9, V1–V8).

Generates (or reads) a catalogue, prints the statistics beside their literature targets as JSON
and as a short table, and writes diagnostic plots into ``--out``: σ–M for members and for the
cylinder, interloper fraction vs radius, member counts vs mass, stacked phase space. V2 is also
measured in the Ho et al. (2019) set-up (preset ``ho2019``: satellites only, z = 0.117, 1.6
comoving Mpc/h aperture, |v| < 2500 km/s).

    python benchmarks/validate_mocks.py --n-hosts 3000 --workers 2 --out validation_out

Issue 12 added the kinematics statistics K1–K4: LOS kurtosis and Gaussian fraction of members,
gapper members and cylinders; stacked σ_LOS(R)/σ200; σ(all)/σ(members) against the MBM10
interloper fit; mean and dispersion of 3D radial velocities to 6 R200c (``--n-3d`` hosts)
against the literature anchors of the adopted infall model. ``--config NAME`` validates a
generator variant of :mod:`astro_cnnmass.mocks.variants`.
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
    if "K1_los_shape" in s:
        k1 = s["K1_los_shape"]
        rows += [
            (
                "K1 members: Gaussian fraction (N≥20)",
                _fmt(k1["members"]["gaussian_fraction"]),
                "0.5–0.7 (Ribeiro+13, Sampaio & Ribeiro 14)",
            ),
            (
                "K1 members: median LOS kurtosis",
                _fmt(k1["members"]["kurtosis_median"]),
                "< 0, ≈ −0.6 (Faltenbacher & Diemand 06)",
            ),
            ("K1 members: kurtosis 16–84 %", _fmt(k1["members"]["kurtosis_p16_p84"]), ""),
            (
                "K1 gapper members R<R200: Gaussian fr.",
                _fmt(k1["gapper"]["gaussian_fraction"]),
                "0.5–0.7 (observed members)",
            ),
            ("K1 gapper members: median kurtosis", _fmt(k1["gapper"]["kurtosis_median"]), "< 0"),
            (
                "K1 cylinder: Gaussian fraction (N≥20)",
                _fmt(k1["cylinder"]["gaussian_fraction"]),
                "0.5–0.7",
            ),
            ("K1 cylinder: median LOS kurtosis", _fmt(k1["cylinder"]["kurtosis_median"]), ""),
        ]
        k2 = s["K2_sigma_profile"]
        rows += [
            (
                "K2 σ_los(R)/σ200 members",
                _fmt(k2["members"]),
                "NFW+ML " + _fmt(k2["reference_nfw_ml"]),
            ),
            ("K2 σ_los(R)/σ200 all (|v|<3 V200)", _fmt(k2["all"]), "hotter than members"),
        ]
        k3 = s["K3_cylinder_over_members"]
        rows += [
            (
                "K3 σ(all,R<R200,|v|<3V200)/σ(mem)",
                _fmt(k3["median_r200"]),
                f"MBM10 fit {_fmt(k3['mbm10_expected'])}; > 1 observed",
            ),
            ("K3 σ(cylinder 1.6)/σ(members,R<R200)", _fmt(k3["median_cylinder_1.6"]), "> 1"),
        ]
    if "K4_radial_velocity" in s:
        k4 = s["K4_radial_velocity"]
        rows += [
            (
                "K4 mean v_r,tot/V200 (all) vs r",
                _fmt(k4["all"]["mean_vr_tot"]),
                "≈0 inside ≈1.3 (Cuesta+08); 0 at x_ta (Korkidis+20)",
            ),
            ("K4 σ_r/V200 (all) vs r", _fmt(k4["all"]["sigma_vr"]), "falls to field (Wojtak+05)"),
            (
                "K4 mean v_r,tot/V200 (infalling)",
                _fmt(k4["infalling"]["mean_vr_tot"]),
                "adopted stream model",
            ),
            (
                "K4 v_r kurtosis (all) vs r",
                _fmt(k4["all"]["kurtosis_vr"]),
                "<0 inside r_vir, >0 outside (Wojtak+05)",
            ),
            (
                "K4 radius σ_r = |v_r| [R200c]",
                _fmt(k4["x_sigma_eq_vrad"]),
                f"≈ R_sp = {_fmt(k4.get('r_sp_r200c', float('nan')))} (Pizzardo+24)",
            ),
            (
                "K4 outer zero of mean v_r [R200c]",
                _fmt(k4["x_zero_mean_outer"]),
                f"x_ta (δ̄≈11, Korkidis+20): {_fmt(k4.get('x_ta_median', float('nan')))}",
            ),
        ]
    return rows


def _splashback_r200c(c) -> float:
    """Median R_sp/R200c of the hosts from colossus (Diemer 2020 model, 'sp-apr-p75')."""
    try:
        from colossus.cosmology import cosmology
        from colossus.halo import splashback

        cosmology.setCosmology("multidark-planck", persistence="")
        sel = np.arange(0, c["z"].size, 3)[:200]
        out = []
        for i in sel:
            m = 10 ** c["log_m200c"][i]
            rsp, _, ok = splashback.splashbackRadius(
                float(c["z"][i]), "200c", M=m, model="diemer20", rspdef="sp-apr-p75"
            )
            if ok:
                r200 = c["r200c_mpch"][i] * 1000.0  # kpc/h physical
                out.append(rsp / r200)
        return float(np.median(out)) if out else float("nan")
    except Exception:  # pragma: no cover - diagnostics only
        return float("nan")


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
    # stacked σ_LOS(R) / σ200 (K2)
    if "K2_sigma_profile" in summary:
        k2 = summary["K2_sigma_profile"]
        e = np.array(k2["edges"])
        xc = 0.5 * (e[1:] + e[:-1])
        fig, ax = plt.subplots(figsize=(5, 3.8))
        ax.plot(xc, k2["members"], "o-", label="true members")
        ax.plot(xc, k2["all"], "s-", label="all galaxies, |v| < 3 V200")
        ax.plot(xc, k2["reference_nfw_ml"], "k--", label="NFW + ML(r_a = r_s), projected Jeans")
        ax.set(xlabel="R / R200c", ylabel="σ_LOS(R) / σ200 (Evrard+08)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        files.append(str(out / "mocks_sigma_profile.png"))
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)
    # radial velocity profile (K4)
    if "K4_radial_velocity" in summary:
        k4 = summary["K4_radial_velocity"]
        e = np.array(k4["edges"])
        xc = 0.5 * (e[1:] + e[:-1])
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        ax.plot(xc, k4["all"]["mean_vr_tot"], "o-", c="C0", label="mean v_r, all galaxies")
        ax.plot(xc, k4["all"]["sigma_vr"], "o--", c="C0", label="σ_r, all galaxies")
        ax.plot(xc, k4["infalling"]["mean_vr_tot"], "s-", c="C1", label="mean v_r, infalling")
        ax.plot(xc, k4["infalling"]["sigma_vr"], "s--", c="C1", label="σ_r, infalling")
        ax.axhline(0, c="k", lw=0.5)
        ax.axvline(k4.get("x_ta_median", np.nan), c="k", ls=":", label="x_ta (δ̄ = δ_ta)")
        ax.axvline(k4.get("r_sp_r200c", np.nan), c="g", ls=":", label="R_sp (colossus)")
        ax.set(xlabel="r / R200c", ylabel="v_r / V200 (Hubble flow included)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        files.append(str(out / "mocks_radial_velocity.png"))
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)
    return files


def main(argv: list[str] | None = None) -> int:
    from astro_cnnmass.mocks.variants import PRESETS, preset_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-hosts", type=int, default=3000)
    p.add_argument("--seed", type=int, default=2019)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--catalog", type=Path, default=None, help="validate this file instead")
    p.add_argument("--out", type=Path, default=Path("validation_mocks"))
    p.add_argument(
        "--n-3d",
        type=int,
        default=300,
        help="hosts of the 3D radial-velocity diagnostics (0 to skip)",
    )
    p.add_argument(
        "--config",
        default=None,
        choices=PRESETS,
        help="a named set-up of astro_cnnmass.mocks.variants.PRESETS: a generator variant, "
        "'training' (the bundled model's training set) or 'ho2019' (default: the default "
        "generator)",
    )
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
        host_phase_space_3d,
        msigma_mass_scatter,
        radial_velocity_profile,
        validation_summary,
    )

    cfg = preset_config(args.config or "default")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.catalog is not None:
        cat = MockCatalog.read(args.catalog)
    else:
        cat = generate_catalog(args.n_hosts, seed=args.seed, workers=args.workers, progress=True,
                               config=cfg)  # fmt: skip
    summary = validation_summary(cat)
    if args.n_3d > 0:
        ps = host_phase_space_3d(args.n_3d, seed=args.seed, config=cfg)
        k4 = radial_velocity_profile(ps)
        c = cat.clusters
        k4["x_ta_median"] = float(np.median(c["x_turnaround"]))
        k4["r_sp_r200c"] = _splashback_r200c(c)
        summary["K4_radial_velocity"] = k4
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
