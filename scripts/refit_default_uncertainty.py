"""Refit the interval calibration and out-of-domain models of the bundled CNN_2D.

The networks of ``astro_cnnmass/data/cnn2d_default.asdf`` were trained by
``scripts/build_default_model.py``; the package's uncertainty layer (interval calibration on
the validation clusters 0.5 dex inside the training range, and the embedding, image and summary
out-of-domain models) changed after that. This script regenerates the same training mocks (the
build script's seed and settings), rebuilds the same training / validation split and refits
that layer with :func:`astro_cnnmass.model.calibrate.refit_uncertainty`, exactly as ``train_model``
now does; the point estimates do not change. A fresh ``build_default_model.py`` run gives the
same result directly.

Run (about 2 minutes on 2 CPU cores)::

    python scripts/refit_default_uncertainty.py --out runs/default --install

For model v2 use the build's working directory (``--out runs/v2``), which holds its training
mocks; the refit reproduces the thinned validation copies, the mean offset and the
richness-dependent std scale of a bundle trained with ``mean_calibration``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from astro_cnnmass.mocks import generate_catalog
from astro_cnnmass.mocks.catalog import MockCatalog
from astro_cnnmass.mocks.variants import preset_config
from astro_cnnmass.model.bundle import ModelBundle, bundled_model_path
from astro_cnnmass.model.calibrate import refit_uncertainty


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/default", help="working directory")
    p.add_argument("--model", default=None, help="bundle to refit (default: the bundled model)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the result to astro_cnnmass/data/cnn2d_default.asdf",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = ModelBundle.read(args.model or bundled_model_path())
    training = bundle.training
    mocks = out / "train_mocks.asdf"
    t0 = time.time()
    if mocks.exists():
        catalog = MockCatalog.read(mocks)
    else:
        # the build script's training mocks: its seed, host count and overrides
        n_hosts = int(training["generator"]["n_hosts"])
        catalog = generate_catalog(
            n_hosts,
            seed=int(training["seed"]),
            lines_of_sight=3,
            prior="flat",
            workers=args.workers,
            out=mocks,
            config=preset_config("training"),
            progress=False,
        )
    t1 = time.time()
    refitted = refit_uncertainty(bundle, catalog)
    arch = str(refitted.network_config.get("arch", "model"))
    path = refitted.write(out / f"{arch}_refit.asdf")
    summary = {
        "calibration": refitted.metrics["calibration"],
        "ood_thresholds": {
            k: refitted.domain[k]["threshold"]
            for k in ("ood", "ood_image", "ood_summary")
            if k in refitted.domain
        },
        "mocks_s": t1 - t0,
        "refit_s": time.time() - t1,
    }
    print(json.dumps(summary, indent=2))
    if args.install:
        shutil.copyfile(path, bundled_model_path())
        print(f"installed {path} as {bundled_model_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
