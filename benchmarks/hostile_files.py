"""Hostile model and catalogue files: how long, and how much memory, does refusing each take?

Builds every hostile file of issue 15 in a temporary folder, then opens each one in a fresh
Python process (``ModelBundle.read`` or ``MockCatalog.read``, as the package would), after
opening one valid file of the same kind (so that asdf's one-time loading of extensions and
schemas is not counted), and reports, as JSON, the time to the refusal, the growth of the
process's peak RSS during it, the peak of traced Python/numpy memory (tracemalloc, a second,
untimed attempt), and the error it gave. Target: every refusal in < 2 s and < 200 MB.

Files (``kind`` = model or catalog):

* ``alias_bomb``: 600 bytes of YAML anchors and aliases expanding to 10^9 leaves;
* ``deep_tree`` / ``wide_tree``: nesting 10^4 deep / 6 x 10^5 nodes;
* ``zlib_bomb``: a 2 GiB block of zeros compressed to ~2 MB, declared as a matching array;
* ``inflating_block``: a compressed block larger than the array that uses it;
* ``truncated``: a model file cut in the middle of a block;
* ``nan_weights``, ``negative_std_scale``, ``negative_aperture``, ``huge_v_cut``,
  ``grid_mismatch``: model files re-digested after an edit (they pass the SHA-256 check);
* ``bit_flip``: a catalogue with one flipped bit in a galaxy block;
* ``model_as_catalog`` / ``catalog_as_model``: the wrong kind of file.

Run ``python benchmarks/hostile_files.py [--quick]`` (``--quick``: a 256 MiB zlib bomb instead
of 2 GiB, for tests). Helpers are importable (the tests in ``tests/test_bad_input.py`` use them).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

HEADER = (
    b"#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n"
    b"--- !core/asdf-1.1.0\n"
)
MODEL_TAG = "asdf://astro-cnnmass.org/tags/model_bundle-1.0.0"
CATALOG_TAG = "asdf://astro-cnnmass.org/tags/mock_catalog-1.0.0"


def _top(kind: str) -> str:
    return f"model: !<{MODEL_TAG}>" if kind == "model" else f"catalog: !<{CATALOG_TAG}>"


def alias_bomb(path: Path, kind: str = "model", levels: int = 9) -> Path:
    """A "billion laughs" tree: ``levels`` of 10 aliases each (10^levels leaves)."""
    lines = ["  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    tree = f"{_top(kind)}\n" + "\n".join(lines) + "\n...\n"
    path.write_bytes(HEADER + tree.encode())
    return path


def deep_tree(path: Path, kind: str = "model", depth: int = 10_000) -> Path:
    """A tree nested ``depth`` levels deep (flow sequences)."""
    tree = f"{_top(kind)}\n  x: " + "[" * depth + "]" * depth + "\n...\n"
    path.write_bytes(HEADER + tree.encode())
    return path


def wide_tree(path: Path, kind: str = "model", n: int = 600_000) -> Path:
    """A tree with ``n`` scalar nodes (one long flow sequence)."""
    tree = f"{_top(kind)}\n  x: [" + ",".join(["0"] * n) + "]\n...\n"
    path.write_bytes(HEADER + tree.encode())
    return path


def _block(compressed: bytes, data_size: int, compression: bytes = b"zlib") -> bytes:
    head = struct.pack(">I4sQQQ16s", 0, compression, len(compressed), len(compressed),
                       data_size, b"\0" * 16)  # fmt: skip
    return b"\xd3BLK" + struct.pack(">H", len(head)) + head + compressed


def _zeros_zlib(n_bytes: int) -> bytes:
    comp = zlib.compressobj(1)
    chunk = bytes(1 << 24)
    parts, left = [], n_bytes
    while left > 0:
        parts.append(comp.compress(chunk[: min(left, len(chunk))]))
        left -= len(chunk)
    parts.append(comp.flush())
    return b"".join(parts)


def zlib_bomb(
    path: Path, kind: str = "model", n_bytes: int = 2**31, declared_bytes: int | None = None
) -> Path:
    """A zlib block of ``n_bytes`` zeros; the tree declares an array of ``declared_bytes``."""
    declared = n_bytes if declared_bytes is None else declared_bytes
    arr = (f"!core/ndarray-1.0.0 {{source: 0, datatype: float64, byteorder: little, "
           f"shape: [{declared // 8}]}}")  # fmt: skip
    if kind == "model":
        tree = f"{_top(kind)}\n  state_dicts:\n  - {{w: {arr}}}\n...\n"
    else:
        tree = f"{_top(kind)}\n  offsets: {arr}\n...\n"
    path.write_bytes(HEADER + tree.encode() + _block(_zeros_zlib(n_bytes), n_bytes))
    return path


def good_model(path: Path) -> Path:
    """A valid (untrained, random-weight) model file."""
    from astro_cnnmass.model.bundle import untrained_bundle

    return untrained_bundle().write(path)


def truncated(path: Path) -> Path:
    """A valid model file cut in the middle of its blocks."""
    good = good_model(path.with_name("good_for_truncation.asdf")).read_bytes()
    first = good.find(b"\xd3BLK")
    path.write_bytes(good[: first + (len(good) - first) // 2])
    return path


def redigested(path: Path, what: str) -> Path:
    """A model file edited (``what``) and re-digested, written without schema validation."""
    import asdf

    from astro_cnnmass.model.bundle import untrained_bundle

    b = untrained_bundle()
    if what == "nan_weights":
        sd = {k: v.copy() for k, v in b.state_dicts[0].items()}
        key = sorted(k for k in sd if sd[k].dtype.kind == "f")[0]
        sd[key].flat[0] = np.nan
        b = b.replace(state_dicts=[sd])
    elif what == "negative_std_scale":
        b = b.replace(target_scaling={**b.target_scaling, "calibration": {"std_scale": -1.0}})
    elif what == "negative_aperture":
        b = b.replace(cylinder={**b.cylinder, "aperture_mpch": -1.0})
    elif what == "huge_v_cut":
        b = b.replace(cylinder={**b.cylinder, "v_cut_kms": 1e9})
    elif what == "grid_mismatch":
        b = b.replace(feature_config={**b.feature_config, "n_v": 32})
    else:
        raise ValueError(f"unknown edit {what!r}")
    from unittest import mock

    with mock.patch.object(asdf.schema, "validate", lambda *a, **k: None):  # write it anyway
        b.write(path)
    return path


def small_catalog(path: Path, n: int = 4, per: int = 30) -> Path:
    """A valid small MockCatalog file (uniform R, Gaussian v)."""
    from astro_cnnmass.mocks.catalog import MockCatalog

    rng = np.random.default_rng(0)
    off = np.arange(n + 1, dtype=np.int64) * per
    m = int(off[-1])
    gal = {
        "R": rng.uniform(0, 2, m).astype("f4"),
        "v": rng.normal(0, 800, m).astype("f4"),
        "is_member": rng.random(m) < 0.7,
        "log_mstar": rng.uniform(9, 11, m).astype("f4"),
        "origin": np.zeros(m, np.uint8),
    }
    cl = {
        "host_id": np.arange(n, dtype=np.int64),
        "los_id": np.zeros(n, np.int64),
        "log_m200c": rng.uniform(14, 15, n),
        "z": np.full(n, 0.1),
        "sigma_true_kms": np.full(n, 800.0),
        "n_members_3d": np.full(n, per, np.int64),
    }
    meta = {"generator": "test", "storage_cylinder": {"aperture_mpch": 2.5, "v_cut_kms": 4e3}}
    return MockCatalog(off, gal, cl, meta).write(path)


def bit_flip(path: Path) -> Path:
    """A valid catalogue with one bit flipped in the data of its ``galaxies/R`` block."""
    from astro_cnnmass.safe_asdf import prescan

    src = small_catalog(path.with_name("good_for_flip.asdf"))
    data = bytearray(src.read_bytes())
    block = prescan(src).blocks[1]  # offsets is block 0, then the galaxy columns
    data[block.offset + 6 + 48 + 5] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def build_all(folder: Path, quick: bool = False) -> dict[str, tuple[str, Path]]:
    """Every hostile file: name -> (reader ``"model"`` or ``"catalog"``, path)."""
    f = Path(folder)
    bomb = 2**28 if quick else 2**31
    files = {
        "model_alias_bomb": ("model", alias_bomb(f / "alias_bomb.asdf")),
        "model_deep_tree": ("model", deep_tree(f / "deep.asdf")),
        "model_wide_tree": ("model", wide_tree(f / "wide.asdf")),
        "model_zlib_bomb": ("model", zlib_bomb(f / "zlib_bomb.asdf", n_bytes=bomb)),
        "model_inflating_block": (
            "model",
            zlib_bomb(f / "inflating.asdf", n_bytes=2**26, declared_bytes=80),
        ),
        "model_truncated": ("model", truncated(f / "truncated.asdf")),
        "catalog_alias_bomb": ("catalog", alias_bomb(f / "cat_alias.asdf", "catalog")),
        "catalog_zlib_bomb": ("catalog", zlib_bomb(f / "cat_zlib.asdf", "catalog", bomb)),
        "catalog_bit_flip": ("catalog", bit_flip(f / "cat_flip.asdf")),
        "model_as_catalog": ("catalog", good_model(f / "good_model.asdf")),
        "catalog_as_model": ("model", small_catalog(f / "good_catalog.asdf")),
    }
    for what in ("nan_weights", "negative_std_scale", "negative_aperture", "huge_v_cut",
                 "grid_mismatch"):  # fmt: skip
        files[f"model_{what}"] = ("model", redigested(f / f"{what}.asdf", what))
    return files


_CHILD = r"""
import json, resource, sys, time, tracemalloc, warnings
warnings.simplefilter("ignore")
import torch  # noqa: F401  (imported before the baseline, as a real session would)
from astro_cnnmass.model.bundle import ModelBundle
from astro_cnnmass.mocks.catalog import MockCatalog
kind, path, warmup = sys.argv[1], sys.argv[2], sys.argv[3]
read = ModelBundle.read if kind == "model" else MockCatalog.read
t0 = time.perf_counter()
read(warmup)  # one-time costs (asdf extensions and schemas, torch kernels) are not the refusal
warm = time.perf_counter() - t0

def attempt():
    try:
        read(path)
    except Exception as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return None

rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
error = attempt()
seconds = time.perf_counter() - t0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()  # a second attempt, traced (tracing slows it down: not timed)
attempt()
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"seconds": round(seconds, 3), "peak_traced_mb": round(peak / 2**20, 1),
                  "rss_growth_mb": round((rss1 - rss0) / 1024, 1), "refused": error is not None,
                  "error": error, "warmup_seconds": round(warm, 2)}))
"""


def measure(kind: str, path: Path, warmup: Path, timeout: float = 300.0) -> dict:
    """Open ``path`` in a fresh process (after a valid ``warmup`` file): time, memory, error."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, kind, str(path), str(warmup)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "refused": False, "error": f"timed out after {timeout} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"refused": False, "error": f"child failed: {out.stderr.strip()[-300:]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB zlib bombs, not 2 GiB")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = build_all(Path(tmp), quick=args.quick)
        warmups = {"model": files["model_as_catalog"][1], "catalog": files["catalog_as_model"][1]}
        results = {}
        for name, (kind, path) in files.items():
            r = measure(kind, path, warmups[kind])
            r["file_bytes"] = os.path.getsize(path)
            r["within_target"] = bool(
                r.get("refused")
                and r.get("seconds", 1e9) < 2.0
                and r.get("peak_traced_mb", 1e9) < 200
                and r.get("rss_growth_mb", 1e9) < 200
            )
            results[name] = r
    report = {
        "target": {"seconds": 2.0, "memory_mb": 200},
        "all_within_target": all(r["within_target"] for r in results.values()),
        "files": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
