"""Speed and memory of the mock generator: lines of sight per second per core, peak memory.

Writes ``--n-los`` lines of sight (default 1e5) to an ASDF file with ``generate_catalog`` and prints
JSON: LOS/s, LOS/s per worker, LOS per CPU second (robust on a shared machine), peak resident
memory of this process and of its workers (from ``resource.getrusage``), file size. Targets:
≥ 500 LOS/s/core, < 2 GB peak while writing 1e5.

    python benchmarks/bench_mocks.py --n-los 100000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-los", type=int, default=100_000, help="lines of sight (default 1e5)")
    p.add_argument("--lines-of-sight", type=int, default=3, help="per host (default 3)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="output file (default: temporary)")
    args = p.parse_args(argv)

    from astro_cnnmass.mocks import generate_catalog
    from astro_cnnmass.mocks.tables import get_tables

    get_tables("multidark-planck")  # one-off table set-up is not part of the rate
    n_hosts = max(1, args.n_los // args.lines_of_sight)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "bench.asdf"
        t0 = time.perf_counter()
        cat = generate_catalog(
            n_hosts,
            seed=args.seed,
            lines_of_sight=args.lines_of_sight,
            workers=args.workers,
            out=out,
            progress=False,
        )
        dt = time.perf_counter() - t0
        n_los, n_gal = cat.n_clusters, cat.n_galaxies
        cat.close()
        size = os.path.getsize(out)
    ru_self, ru_child = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    cpu_s = ru_self.ru_utime + ru_self.ru_stime + ru_child.ru_utime + ru_child.ru_stime
    scale = 1024 if sys.platform != "darwin" else 1  # ru_maxrss: KiB on Linux, bytes on macOS
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    res = {
        "n_los": n_los,
        "n_hosts": n_hosts,
        "n_galaxies": n_gal,
        "workers": args.workers,
        "wall_s": round(dt, 2),
        "los_per_s": round(n_los / dt, 1),
        "los_per_s_per_core": round(n_los / dt / args.workers, 1),
        "target_los_per_s_per_core": 500,
        # CPU seconds of this process and its workers (includes imports and table set-up): the
        # per-core rate on a shared machine, where wall time also counts other users' load
        "cpu_s": round(cpu_s, 1),
        "los_per_cpu_s": round(n_los / cpu_s, 1),
        "peak_rss_main_mb": round(self_peak / 2**20, 1),
        "peak_rss_worker_mb": round(child_peak / 2**20, 1),
        "target_peak_mb": 2048,
        "file_mb": round(size / 2**20, 1),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
