"""The benchmark scripts run against the installed package (they are not imported elsewhere).

A script that no longer imports (a module moved, a name renamed) would otherwise only be found
when someone next measures with it; ``bench_features.py`` was broken that way for a while.
Every script must answer ``--help``; the two throughput scripts, the inference benchmark with a
smaller ensemble and the out-of-domain benchmark also run end to end on a tiny catalogue and
print their JSON (``ood_detection.py`` failed on the models with the galaxy-count input until it
passed the counts).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=BENCHMARKS
    )


def test_there_are_benchmarks():
    assert {"bench_entry_points.py", "bench_features.py", "bench_gpu.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_answers_help(script):
    proc = _run(script, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:")


def test_feature_benchmark_runs_and_prints_json():
    args = ("--n-clusters", "40", "--n-scipy", "10", "--means", "50", "--repeat", "1")
    proc = _run("bench_features.py", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = json.loads(proc.stdout)["runs"]
    # the batched float64 images agree with the paper's scipy loop on the same clusters
    assert run["variants"]["numpy_float64"]["all_valid"]
    assert run["variants"]["numpy_float64"]["max_rel_err_vs_scipy"] < 1e-10


def test_entry_point_benchmark_runs_every_entry_point():
    proc = _run("bench_entry_points.py", "--n", "300", "--scipy", "20", "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = json.loads(proc.stdout)["runs"]
    assert set(runs) == {"predict_packed", "estimate_catalog", "estimate_many",
                         "estimate_phase_spaces"}  # fmt: skip
    assert all(r["n_ok"] > 250 and r["clusters_per_s"] > 0 for r in runs.values())


def test_ood_benchmark_runs_on_the_bundled_model():
    proc = _run("ood_detection.py", "--draws", "4", "--n", "50", "--hosts", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    kinds = json.loads(proc.stdout)["kinds"]
    assert set(kinds) >= {"random_field", "ring", "cold_spike"}
    # a velocity spike colder than any halo is flagged whatever the model
    assert kinds["cold_spike"]["50"]["flagged"] == 1.0


def test_inference_benchmark_times_a_smaller_ensemble():
    from astro_cnnmass.model.bundle import ModelBundle, bundled_model_path

    n_members = ModelBundle.read(bundled_model_path()).n_members
    args = ("--n", "300", "--members", "1", "--threads", "1", "--no-tracemalloc")
    proc = _run("bench_inference.py", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert f"first 1 of {n_members} members only" in result["model"]
    assert result["runs"][0]["n_ok"] > 250
    too_many = _run("bench_inference.py", "--n", "300", "--members", str(n_members + 1))
    assert too_many.returncode != 0 and f"between 1 and {n_members}" in too_many.stderr
