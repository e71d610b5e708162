"""Orchestration of the generator: hosts → lines of sight → catalogue, in parallel chunks.

Each host ``i`` draws from its own random stream ``SeedSequence(entropy, spawn_key=(i,))``, so
the output depends only on the seed and never on the number of workers or the chunking.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import version as _pkg_version
from .catalog import CatalogWriter, MockCatalog
from .config import MockConfig, MockConfigError
from .halos import draw_host, random_rotation
from .members import ORIGIN, random_directions
from .observe import draw_los_params, observe
from .population import host_population
from .surroundings import InfallModel, sample_surroundings
from .tables import C_KMS, get_tables

__all__ = [
    "GENERATOR_NAME",
    "CatalogRun",
    "assemble_catalog",
    "generate_catalog",
    "prepare_run",
    "simulate_host",
]

GENERATOR_NAME = "astro_cnnmass.mocks"
#: Version of the generator physics (bump when the output for a given seed changes).
#: 2.0 (issue 12): members from distribution functions, infalling stream, infall-driven
#: subgroups and mergers. 2.1: survey targeting (a targeting radius and a radial completeness
#: gradient per line of sight, off by default: with the default configuration every 2.0 column
#: is unchanged, two columns are added).
GENERATOR_VERSION = "2.1"
#: Extra LOS velocity window [km/s] beyond the storage v_cut that the surroundings cover.
_V_MARGIN = 2000.0

INT_COLUMNS = ("host_id", "los_id", "n_members_3d", "cm_model", "anisotropy_model",
               "tracer_profile", "n_subgroups", "n_filaments")  # fmt: skip
BOOL_COLUMNS = ("include_centrals", "merger", "miscentred")


def _cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors, the products and differences of ``np.cross`` (a tenth
    of its call overhead, which dominated for single vectors)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _perp_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = _cross3(n, a)
    e1 /= np.linalg.norm(e1)
    return e1, _cross3(n, e1)


def simulate_host(
    index: int, entropy: int, cfg: MockConfig, prior: str = "flat", lines_of_sight: int = 3
) -> MockCatalog:
    """Simulate one host halo seen along ``lines_of_sight`` directions.

    Parameters
    ----------
    index : int
        Host index (its ``host_id``; also selects the random stream).
    entropy : int
        Root seed of the catalogue.
    cfg : MockConfig
        Generator configuration.
    prior : {'flat', 'hmf'}
        Host-mass prior.
    lines_of_sight : int
        Number of lines of sight. The first three are orthogonal (the axes of a random frame,
        as in Ho et al. 2019); further ones are isotropic.
    """
    tables = get_tables(cfg.cosmology)
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(index,)))
    h = draw_host(rng, cfg, tables, prior)
    h["_no_infall"] = cfg.infall_kinematics == "none"
    infall = InfallModel(h, tables, cfg.infall_kinematics, cfg.x_turnaround)
    pop = host_population(rng, h, cfg, tables, infall)
    z = h["z"]
    chi_cl = float(tables.chi_of_z(z))
    dz = (cfg.storage_v_cut_kms + _V_MARGIN) * (1.0 + z) / C_KMS
    chi_lo = max(float(tables.chi_of_z(max(z - dz, 0.0))), 1.0)
    chi_hi = float(tables.chi_of_z(z + dz))
    frame = random_rotation(rng)
    public = {k: v for k, v in h.items() if not k.startswith("_")}
    clusters, gals = [], []
    n_host = pop["pos"].shape[0]
    for k in range(lines_of_sight):
        n = frame[:, k] if k < 3 else random_directions(rng, 1)[0]
        e1, e2 = _perp_basis(n)
        p = draw_los_params(rng, h, cfg)
        theta_max = (cfg.storage_aperture_mpch + p["r_offset_mpch"]) * (1.0 + z) / chi_cl * 1.01
        sur = sample_surroundings(
            rng, h, cfg, tables, infall, chi_cl, chi_lo, chi_hi, theta_max, los=n
        )
        gal = {
            "X": np.concatenate([pop["pos"] @ e1, sur["X"]]),
            "Y": np.concatenate([pop["pos"] @ e2, sur["Y"]]),
            "D": np.concatenate([pop["pos"] @ n, sur["D"]]),
            "vpec": np.concatenate([pop["vel"] @ n, sur["vpec"]]),
            "log_mstar": np.concatenate([pop["log_mstar"], sur["log_mstar"]]),
            "origin": np.concatenate([pop["origin"], sur["origin"]]),
            "is_member": np.concatenate([pop["is_member"], np.zeros(sur["X"].size, bool)]),
        }
        obs = observe(rng, h, p, cfg, tables, chi_cl, gal)
        row = dict(public)
        row.update({kk: vv for kk, vv in p.items() if not kk.startswith("_")})
        row["host_id"] = index
        row["los_id"] = k
        row["los_cos_major"] = float(abs(n[0]))
        row["los_cos_minor"] = float(abs(n[2]))
        row["n_gal_3d_host"] = n_host
        fil = h["_filaments"]
        row["los_filament_cos"] = float(np.max(np.abs(fil @ n))) if len(fil) else 0.0
        clusters.append(row)
        gals.append(obs)
    return _assemble(clusters, gals)


def _assemble(clusters: list[dict], gals: list[dict]) -> MockCatalog:
    lens = np.array([g["R"].size for g in gals], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    gal = {
        "R": np.concatenate([g["R"] for g in gals]).astype(np.float32),
        "v": np.concatenate([g["v"] for g in gals]).astype(np.float32),
        "is_member": np.concatenate([g["is_member"] for g in gals]).astype(bool),
        "log_mstar": np.concatenate([g["log_mstar"] for g in gals]).astype(np.float32),
        "origin": np.concatenate([g["origin"] for g in gals]).astype(np.uint8),
    }
    cl = {}
    for key in clusters[0]:
        vals = [c[key] for c in clusters]
        if key in INT_COLUMNS:
            cl[key] = np.array(vals, dtype=np.int64)
        elif key in BOOL_COLUMNS:
            cl[key] = np.array(vals, dtype=bool)
        else:
            cl[key] = np.array(vals, dtype=np.float64)
    return MockCatalog(offsets, gal, cl)


def _run_chunk(args: tuple) -> MockCatalog:
    start, stop, entropy, cfg_dict, prior, n_los = args
    cfg = MockConfig.from_dict(cfg_dict)
    cats = [simulate_host(i, entropy, cfg, prior, n_los) for i in range(start, stop)]
    return MockCatalog.concatenate(cats, renumber_hosts=False)


def _entropy(seed: Any) -> int:
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int or a numpy.random.Generator, got {type(seed)}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def _check_config(config: MockConfig | dict | None) -> MockConfig:
    if config is None:
        return MockConfig()
    if isinstance(config, MockConfig):
        return config
    if isinstance(config, dict):
        return MockConfig.from_dict(config)
    raise TypeError(f"config must be a MockConfig, a dict or None, got {type(config)}")


def _meta(cfg: MockConfig, entropy: int, prior: str, n_hosts: int, n_los: int) -> dict:
    tables = get_tables(cfg.cosmology)
    return {
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "package_version": _pkg_version,
        "seed": entropy,
        "prior": prior,
        "n_hosts": n_hosts,
        "lines_of_sight": n_los,
        "cosmology": {"name": cfg.cosmology, **tables.params},
        "storage_cylinder": {
            "aperture_mpch": float(cfg.storage_aperture_mpch),
            "v_cut_kms": float(cfg.storage_v_cut_kms),
        },
        "member_radius": cfg.member_radius,
        "mass_definition": "200c",
        "units": {
            "R": "Mpc/h (physical, at the cluster redshift)",
            "v": "km/s (cluster rest frame, c (z - z_cl) / (1 + z_cl))",
            "log_mstar": "log10 Msun",
            "log_m200c": "log10 Msun/h",
            "_kms": "km/s",
            "_mpch": "Mpc/h (physical)",
        },
        "origin_codes": dict(ORIGIN),
        "config": cfg.to_dict(),
    }


def generate_catalog(
    n_hosts: int,
    *,
    seed: int | np.random.Generator,
    lines_of_sight: int = 3,
    prior: str = "flat",
    workers: int = 1,
    out: str | os.PathLike | None = None,
    config: MockConfig | dict | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
) -> MockCatalog:
    """Generate a catalogue of mock cluster observations.

    Parameters
    ----------
    n_hosts : int
        Number of 3D host halos.
    seed : int or numpy.random.Generator
        Root seed; the same seed gives identical output whatever ``workers`` is.
    lines_of_sight : int
        Lines of sight per host (they share ``host_id``; split train/test by host).
    prior : {'flat', 'hmf'}
        Host mass prior: uniform in log10 M200c over ``config.log_m_range``, or the Tinker et al.
        2008 mass function at each host's redshift.
    workers : int
        Processes (``concurrent.futures.ProcessPoolExecutor``); 1 runs in this process.
    out : path-like, optional
        If given, write the catalogue there in chunks (bounded memory, atomic rename) and return
        it opened lazily; otherwise return an in-memory catalogue.
    config : MockConfig or dict, optional
        Generator configuration (unknown keys raise :class:`MockConfigError`).
    progress : bool
        Show a progress bar (tqdm) on stderr.
    chunk_size : int, optional
        Hosts per task (default: a few tasks per worker, at most 64 hosts).

    Returns
    -------
    MockCatalog
    """
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    run = prepare_run(
        n_hosts, seed=seed, lines_of_sight=lines_of_sight, prior=prior, config=config, out=out
    )
    workers = int(workers)
    if chunk_size is None:
        chunk_size = max(1, min(64, math.ceil(run.n_hosts / (4 * workers))))
    bounds = [*range(0, run.n_hosts, chunk_size), run.n_hosts]
    tasks = [(a, b, *run.task_args) for a, b in itertools.pairwise(bounds)]
    if workers == 1:
        return assemble_catalog(map(_run_chunk, tasks), run, progress=progress)
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        return assemble_catalog(ex.map(_run_chunk, tasks), run, progress=progress)


@dataclass(frozen=True)
class CatalogRun:
    """A checked request for a mock catalogue, shared by the serial and distributed generators.

    Attributes
    ----------
    n_hosts, lines_of_sight : int
        Hosts and lines of sight per host.
    prior : str
        ``'flat'`` or ``'hmf'``.
    config : MockConfig
    entropy : int
        Root entropy (host ``i`` draws from ``SeedSequence(entropy, spawn_key=(i,))``).
    meta : dict
        The catalogue's metadata.
    out : pathlib.Path or None
        Where to write the catalogue (None: in memory).
    """

    n_hosts: int
    lines_of_sight: int
    prior: str
    config: MockConfig
    entropy: int
    meta: dict
    out: Path | None

    @property
    def task_args(self) -> tuple:
        """``(entropy, config dict, prior, lines_of_sight)``: what a chunk of hosts needs."""
        return (self.entropy, self.config.to_dict(), self.prior, self.lines_of_sight)


def prepare_run(
    n_hosts: int,
    *,
    seed: int | np.random.Generator,
    lines_of_sight: int = 3,
    prior: str = "flat",
    config: MockConfig | dict | None = None,
    out: str | os.PathLike | None = None,
) -> CatalogRun:
    """Check the arguments of a catalogue request and derive its entropy and metadata.

    Raises
    ------
    ValueError
        Bad ``n_hosts``, ``lines_of_sight`` or ``out`` (a directory).
    MockConfigError
        Bad ``prior`` or ``config``.
    """
    if isinstance(n_hosts, bool) or not isinstance(n_hosts, int | np.integer) or n_hosts < 1:
        raise ValueError(f"n_hosts must be a positive integer, got {n_hosts!r}")
    if (
        isinstance(lines_of_sight, bool)
        or not isinstance(lines_of_sight, int | np.integer)
        or lines_of_sight < 1
    ):
        raise ValueError(f"lines_of_sight must be a positive integer, got {lines_of_sight!r}")
    if prior not in ("flat", "hmf"):
        raise MockConfigError(f"prior must be 'flat' or 'hmf', got {prior!r}")
    cfg = _check_config(config)
    entropy = _entropy(seed)
    if out is not None:
        out = Path(out)
        if out.is_dir():
            raise ValueError(f"out={out} is a directory; give a file name (*.asdf)")
    n_hosts, n_los = int(n_hosts), int(lines_of_sight)
    return CatalogRun(
        n_hosts, n_los, prior, cfg, entropy, _meta(cfg, entropy, prior, n_hosts, n_los), out
    )


def assemble_catalog(
    chunks: Iterable[MockCatalog], run: CatalogRun, *, progress: bool = False
) -> MockCatalog:
    """Collect chunks of hosts, in host order, into the requested catalogue.

    With ``run.out`` they are written one by one (bounded memory; the file appears atomically
    when complete, and nothing is left behind on error) and the catalogue is returned opened
    lazily; otherwise they are concatenated in memory.
    """
    from tqdm.auto import tqdm

    bar = tqdm(
        total=run.n_hosts * run.lines_of_sight, unit="LOS", disable=not progress, desc="mocks"
    )
    writer = CatalogWriter(run.out, run.meta) if run.out is not None else None
    parts: list[MockCatalog] = []
    try:
        for chunk in chunks:
            if writer is not None:
                writer.add(chunk)
            else:
                parts.append(chunk)
            bar.update(chunk.n_clusters)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
    if writer is not None:
        writer.finalize()
        return MockCatalog.read(run.out)
    cat = MockCatalog.concatenate(parts, renumber_hosts=False)
    cat.meta = run.meta
    return cat


def generate_hosts(indices: Sequence[int], entropy: int, cfg: MockConfig | None = None,
                   prior: str = "flat", lines_of_sight: int = 3) -> MockCatalog:  # fmt: skip
    """Simulate selected hosts of a catalogue (e.g. to regenerate one host for inspection)."""
    cfg = cfg or MockConfig()
    return MockCatalog.concatenate(
        [simulate_host(int(i), entropy, cfg, prior, lines_of_sight) for i in indices],
        renumber_hosts=False,
    )
