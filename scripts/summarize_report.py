"""Summarize the report of ``scripts/build_default_model.py`` (JSON and a Markdown table).

The model card and the README quote these numbers. Run::

    python scripts/summarize_report.py runs/default/report.json --figures docs/_static/model_card
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def _row(name: str, m: dict) -> dict:
    cnn, ms = m["cnn"], m["m_sigma"]
    row = {
        "set": name,
        "n": cnn["n"],
        "cnn_mean": cnn["mean"],
        "cnn_median": cnn["median"],
        "cnn_width_16_84": cnn["width"],
        "cnn_std": cnn["std"],
        "m_sigma_mean": ms["mean"],
        "m_sigma_std": ms["std"],
        "std_ratio": cnn["std"] / ms["std"],
    }
    coverage = m.get("coverage", {})
    # the targets are stated over 10^14-10^15 Msun/h; "overall" spans every test mass
    cov = coverage.get("in_range") or coverage.get("overall")
    if cov:
        row["coverage_68"] = cov["0.68"]
        row["coverage_90"] = cov["0.90"]
    if coverage.get("overall"):
        row["coverage_68_all_masses"] = coverage["overall"]["0.68"]
        row["coverage_90_all_masses"] = coverage["overall"]["0.90"]
    if "ood" in m:
        row["ood_flagged"] = m["ood"]["fraction_flagged"]
    return row


def summarize(report: dict) -> dict:
    """Compact summary: held-out test rows per model, coverage bins, robustness, variants."""
    out: dict = {"test": [], "variants": [], "timings_s": report.get("timings", {})}
    for name, m in report["test"]["models"].items():
        row = _row(name, m)
        sr = m.get("sampling_rate")
        if sr:
            row["sampling_delta_eps68_cnn"] = sr["cnn"]["delta_eps68"]
            row["sampling_delta_eps68_m_sigma"] = sr["m_sigma"]["delta_eps68"]
        row["coverage_bins"] = m.get("coverage", {}).get("bins", [])
        row["binned"] = m.get("cnn_binned", [])
        row["m_sigma_binned"] = m.get("m_sigma_binned", [])
        out["test"].append(row)
    for name, rep in report.get("variants", {}).items():
        out["variants"].append(_row(name, rep["models"]["cnn2d"]))
    return out


def markdown(summary: dict) -> str:
    """Markdown tables of the summary."""
    lines = [
        "| model | clusters | mean ε | median ε | 16–84 % width | σ_ε | M–σ σ_ε | ratio |"
        " 68 % cov. | 90 % cov. | Δε68 (r=0.6–0.8) CNN / M–σ |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["test"]:
        lines.append(
            f"| {r['set']} | {r['n']} | {r['cnn_mean']:+.3f} | {r['cnn_median']:+.3f} | "
            f"{r['cnn_width_16_84']:.3f} | {r['cnn_std']:.3f} | {r['m_sigma_std']:.3f} | "
            f"{r['std_ratio']:.2f} | {r.get('coverage_68', float('nan')):.3f} | "
            f"{r.get('coverage_90', float('nan')):.3f} | "
            f"{r.get('sampling_delta_eps68_cnn', float('nan')):.3f} / "
            f"{r.get('sampling_delta_eps68_m_sigma', float('nan')):.3f} |"
        )
    lines += [
        "",
        "| variant (CNN_2D) | clusters | mean ε | σ_ε | M–σ mean | M–σ σ_ε | 68 % cov. |"
        " 90 % cov. | OOD flagged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["variants"]:
        lines.append(
            f"| {r['set']} | {r['n']} | {r['cnn_mean']:+.3f} | {r['cnn_std']:.3f} | "
            f"{r['m_sigma_mean']:+.3f} | {r['m_sigma_std']:.3f} | "
            f"{r.get('coverage_68', float('nan')):.3f} | {r.get('coverage_90', float('nan')):.3f}"
            f" | {r.get('ood_flagged', float('nan')):.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", help="report.json of build_default_model.py")
    p.add_argument("--figures", default=None, help="copy the CNN_2D figures to this folder")
    args = p.parse_args(argv)
    path = Path(args.report)
    summary = summarize(json.loads(path.read_text()))
    (path.parent / "summary.json").write_text(json.dumps(summary, indent=2))
    print(markdown(summary))
    if args.figures:
        dest = Path(args.figures)
        dest.mkdir(parents=True, exist_ok=True)
        for png in sorted((path.parent / "evaluation").glob("*.png")):
            shutil.copyfile(png, dest / png.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
