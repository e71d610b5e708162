"""MockCatalog: mock cluster observations as flat per-galaxy arrays plus per-cluster truth.

Layout (ASDF tag ``asdf://astro-cnnmass.org/tags/mock_catalog-1.0.0``, schema
``mock_catalog-1.0.0.yaml`` in ``astro_cnnmass/data_spec/schemas``):

* ``offsets`` (int64, n_clusters + 1): the galaxies of cluster ``i`` are
  ``slice(offsets[i], offsets[i + 1])`` of every per-galaxy array;
* ``galaxies``: ``R`` (float32, projected radius, physical Mpc/h at the cluster redshift),
  ``v`` (float32, LOS velocity in the cluster rest frame, km/s), ``is_member`` (bool, 3D true
  member), ``log_mstar`` (float32, log10 M*/Msun), ``origin`` (uint8, see
  :data:`~astro_cnnmass.mocks.members.ORIGIN`);
* ``clusters``: dict of 1-D arrays, one entry per cluster (line of sight): ids, labels, truth and
  every randomized nuisance parameter;
* ``meta``: generator version, seed, prior, cosmology, storage cylinder, configuration, units.

Files are read lazily (memory-mapped blocks, the file stays open until :meth:`MockCatalog.close`),
written atomically (temporary name + ``os.replace``), and large catalogues are written in chunks
with :class:`CatalogWriter` so that memory stays bounded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
from asdf.extension import Converter
from astropy.table import QTable

from ..plain import plain_python
from ..tags import MOCK_CATALOG_TAG

__all__ = [
    "GALAXY_COLUMNS",
    "CatalogFileError",
    "CatalogWriter",
    "MockCatalog",
    "MockCatalogConverter",
]

#: Per-galaxy columns and their stored dtypes.
GALAXY_COLUMNS: dict[str, np.dtype] = {
    "R": np.dtype("float32"),
    "v": np.dtype("float32"),
    "is_member": np.dtype("bool"),
    "log_mstar": np.dtype("float32"),
    "origin": np.dtype("uint8"),
}
#: Per-cluster columns every catalogue must have.
REQUIRED_CLUSTER_COLUMNS = ("host_id", "los_id", "log_m200c", "z", "sigma_true_kms", "n_members_3d")
#: Ceiling on the decompressed size of a catalogue's *compressed* blocks, bytes.
MAX_COMPRESSED_CATALOG_BYTES = 2**30


class CatalogFileError(ValueError):
    """A file that cannot be read as a mock catalogue: foreign, altered, truncated or unsafe."""


def content_digest(offsets: Any, galaxies: dict, clusters: dict, meta: dict) -> str:
    """SHA-256 over the arrays (name, dtype, shape, bytes) and the canonical JSON of ``meta``.

    Arrays are hashed in 16 MB pieces, so a memory-mapped catalogue of any size is digested
    with bounded memory.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    import hashlib
    import json

    h = hashlib.sha256()
    items = [("offsets", offsets)]
    items += [(f"galaxies/{k}", galaxies[k]) for k in sorted(galaxies)]
    items += [(f"clusters/{k}", clusters[k]) for k in sorted(clusters)]
    for name, arr in items:
        arr = np.asarray(arr)
        le = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        h.update(f"{name}:{le.str}:{list(arr.shape)};".encode())
        flat = arr.reshape(-1)
        step = max(1, (16 << 20) // max(arr.dtype.itemsize, 1))
        for s in range(0, flat.size, step):
            h.update(np.ascontiguousarray(flat[s : s + step], dtype=le).tobytes())

    def _default(obj: Any) -> Any:  # arrays in meta hash by value, whatever their type
        return np.asarray(obj).tolist() if hasattr(obj, "__array__") else str(obj)

    h.update(json.dumps(plain_python(meta), sort_keys=True, default=_default).encode())
    return h.hexdigest()


class MockCatalog:
    """Mock cluster observations (flat per-galaxy arrays + offsets, per-cluster truth).

    Parameters
    ----------
    offsets : array_like of int
        Length ``n_clusters + 1``, starting at 0, non-decreasing.
    galaxies : dict of array_like
        Per-galaxy arrays (at least ``R``, ``v``, ``is_member``, ``log_mstar``), all of length
        ``offsets[-1]``.
    clusters : dict of array_like
        Per-cluster 1-D arrays of length ``n_clusters`` (at least the columns of
        ``REQUIRED_CLUSTER_COLUMNS``: ``host_id``, ``los_id``, ``log_m200c``, ``z``,
        ``sigma_true_kms``, ``n_members_3d``).
    meta : dict, optional
        Metadata (generator, seed, prior, cosmology, storage cylinder, ...).
    """

    def __init__(
        self,
        offsets: Any,
        galaxies: dict[str, Any],
        clusters: dict[str, Any],
        meta: dict | None = None,
    ) -> None:
        self._offsets = np.asarray(offsets)
        self._gal = dict(galaxies)
        self._cl = dict(clusters)
        self.meta: dict = dict(meta or {})
        self._file = None
        self._sha256: str | None = None
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        off = self._offsets
        if off.ndim != 1 or off.size < 1 or not np.issubdtype(off.dtype, np.integer):
            raise ValueError("MockCatalog 'offsets' must be a 1-D integer array of n_clusters + 1")
        if off[0] != 0 or (off.size > 1 and np.any(np.diff(off) < 0)):
            raise ValueError("MockCatalog 'offsets' must start at 0 and be non-decreasing")
        n_gal = int(off[-1])
        for name in ("R", "v", "is_member", "log_mstar"):
            if name not in self._gal:
                raise ValueError(f"MockCatalog lacks the per-galaxy column {name!r}")
        for name, arr in self._gal.items():
            if len(arr) != n_gal:
                raise ValueError(
                    f"per-galaxy column {name!r} has length {len(arr)}, expected {n_gal}"
                )
        missing = [c for c in REQUIRED_CLUSTER_COLUMNS if c not in self._cl]
        if missing:
            raise ValueError(f"MockCatalog lacks the per-cluster column(s) {missing}")
        n = off.size - 1
        for name, arr in self._cl.items():
            if np.ndim(arr) != 1 or len(arr) != n:
                raise ValueError(f"per-cluster column {name!r} must be 1-D of length {n}")

    # ------------------------------------------------------------------ access
    @property
    def offsets(self) -> np.ndarray:
        """int64 array of length n_clusters + 1."""
        return np.asarray(self._offsets, dtype=np.int64)

    def _g(self, name: str) -> np.ndarray:
        return np.asarray(self._gal[name])

    @property
    def R(self) -> np.ndarray:
        """Projected radius [physical Mpc/h at the cluster redshift], flat float32."""
        return self._g("R")

    @property
    def v(self) -> np.ndarray:
        """LOS velocity in the cluster rest frame [km/s], flat float32."""
        return self._g("v")

    @property
    def is_member(self) -> np.ndarray:
        """True-member flag (3D radius < member radius, default R200c), flat bool."""
        return self._g("is_member")

    @property
    def log_mstar(self) -> np.ndarray:
        """log10 stellar mass [Msun], flat float32."""
        return self._g("log_mstar")

    @property
    def origin(self) -> np.ndarray:
        """Origin code of each galaxy (uint8; see ``meta['origin_codes']``)."""
        if "origin" in self._gal:
            return self._g("origin")
        return np.full(self.n_galaxies, 255, np.uint8)

    @property
    def galaxy_columns(self) -> dict[str, np.ndarray]:
        """All per-galaxy arrays (memory-mapped when read lazily)."""
        return {k: np.asarray(a) for k, a in self._gal.items()}

    @property
    def clusters(self) -> dict[str, np.ndarray]:
        """Per-cluster 1-D arrays (truth, ids, nuisance parameters)."""
        return {k: np.asarray(a) for k, a in self._cl.items()}

    @property
    def n_clusters(self) -> int:
        return int(len(self._offsets) - 1)

    @property
    def n_galaxies(self) -> int:
        return int(self._offsets[-1])

    @property
    def n_gal(self) -> np.ndarray:
        """Number of stored galaxies per cluster."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.n_clusters

    def galaxies(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(R, v, is_member)`` of cluster ``i`` (copies; R in Mpc/h, v in km/s)."""
        if not -self.n_clusters <= i < self.n_clusters:
            raise IndexError(f"cluster index {i} out of range for {self.n_clusters} clusters")
        i = i % self.n_clusters
        s = slice(int(self._offsets[i]), int(self._offsets[i + 1]))
        return np.array(self.R[s]), np.array(self.v[s]), np.array(self.is_member[s])

    def __repr__(self) -> str:
        return (
            f"<MockCatalog: {self.n_clusters} clusters, {self.n_galaxies} galaxies, "
            f"{len(self._cl)} cluster columns{', lazy' if self._file is not None else ''}>"
        )

    # ------------------------------------------------------------------ subsets
    def select(self, indices: Any) -> MockCatalog:
        """An in-memory catalogue of the clusters ``indices`` (int indices or boolean mask)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_clusters,):
                raise ValueError(f"boolean mask must have shape ({self.n_clusters},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).ravel()
        if idx.size and (idx.min() < -self.n_clusters or idx.max() >= self.n_clusters):
            raise IndexError("cluster index out of range")
        idx = idx % max(self.n_clusters, 1)
        off = self.offsets
        lens = off[idx + 1] - off[idx]
        new_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        gidx = np.repeat(off[idx] - new_off[:-1], lens) + np.arange(new_off[-1])
        gal = {k: np.asarray(a)[gidx] for k, a in self._gal.items()}
        cl = {k: np.asarray(a)[idx] for k, a in self._cl.items()}
        return MockCatalog(new_off, gal, cl, dict(self.meta))

    def __getitem__(self, item: Any) -> MockCatalog:
        if isinstance(item, slice):
            return self.select(np.arange(self.n_clusters)[item])
        return self.select(item)

    @classmethod
    def concatenate(
        cls, catalogs: Sequence[MockCatalog], renumber_hosts: bool = True
    ) -> MockCatalog:
        """Join catalogues (in memory).

        Parameters
        ----------
        catalogs : sequence of MockCatalog
            Catalogues with the same per-galaxy and per-cluster columns.
        renumber_hosts : bool
            Shift ``host_id`` of each catalogue past the previous ones, so that hosts of
            different catalogues never share an id (train/test splits by host stay valid).
        """
        cats = list(catalogs)
        if not cats:
            raise ValueError("concatenate needs at least one catalogue")
        gkeys, ckeys = list(cats[0]._gal), list(cats[0]._cl)
        for c in cats[1:]:
            if set(c._gal) != set(gkeys) or set(c._cl) != set(ckeys):
                raise ValueError("catalogues to concatenate must have the same columns")
        lens = np.concatenate([c.n_gal for c in cats])
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        gal = {k: np.concatenate([np.asarray(c._gal[k]) for c in cats]) for k in gkeys}
        cl = {}
        for k in ckeys:
            parts = [np.asarray(c._cl[k]) for c in cats]
            if k == "host_id" and renumber_hosts:
                shift, shifted = 0, []
                for p in parts:
                    shifted.append(p + shift)
                    shift = int(shifted[-1].max()) + 1 if p.size else shift
                parts = shifted
            cl[k] = np.concatenate(parts)
        meta = dict(cats[0].meta)
        if len(cats) > 1:
            meta["concatenated_from"] = [
                {k: c.meta.get(k) for k in ("seed", "prior", "n_hosts")} for c in cats
            ]
        return cls(offsets, gal, cl, meta)

    def to_table(self) -> QTable:
        """One row per cluster: every per-cluster column, plus ``n_gal``; units attached."""
        t = QTable()
        for k, a in self.clusters.items():
            if k.endswith("_kms"):
                t[k] = a * (u.km / u.s)
            elif k.endswith("_mpch"):
                t[k] = a * (u.Mpc / cu.littleh)
            else:
                t[k] = a
        t["n_gal"] = self.n_gal
        t.meta.update({k: v for k, v in self.meta.items() if k != "config"})
        return t

    # ------------------------------------------------------------------ I/O
    def write(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write to an ASDF file atomically (a temporary name, then ``os.replace``)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists (overwrite=False)")
        _atomic_asdf_write(self, path)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike, lazy: bool = True, verify: bool = True) -> MockCatalog:
        """Read a catalogue; ``lazy=True`` memory-maps the arrays and keeps the file open.

        Before asdf parses the file, its YAML tree and block headers are checked against cost
        limits (``astro_cnnmass.safe_asdf.prescan``: no YAML anchors/aliases, bounded node
        count, compressed blocks no larger than their arrays); after, the content digest
        written with the file is checked (``verify=True``; streamed, bounded memory).

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        CatalogFileError
            The file is unsafe, not an ASDF mock catalogue, fails the schema, or its content
            does not match its digest (a flipped bit, an edit).
        """
        import asdf

        from ..safe_asdf import UnsafeFileError, prescan

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no mock catalogue at {path}")
        if path.is_dir():
            raise CatalogFileError(f"{path} is a directory, expected an ASDF mock catalogue")
        try:
            prescan(path, max_decompressed_bytes=MAX_COMPRESSED_CATALOG_BYTES)
            with asdf.config_context() as cfg:
                cfg.validate_on_read = True  # schema check (asdf >= 4 skips it by default)
                af = asdf.open(path, memmap=lazy, lazy_load=lazy)
        except UnsafeFileError as exc:
            raise CatalogFileError(f"refusing the mock catalogue: {exc}") from exc
        except Exception as exc:  # asdf / yaml / schema errors
            raise CatalogFileError(
                f"{path} is not a readable mock catalogue: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            if "catalog" not in af.tree:
                kind = " (it is a model file)" if "model" in af.tree else ""
                raise CatalogFileError(
                    f"{path} holds no 'catalog' entry{kind}: expected an ASDF mock catalogue "
                    "written by 'astro-cnnmass mocks'"
                )
            try:
                cat = af["catalog"]
            except Exception as exc:
                raise CatalogFileError(f"{path}: cannot read the catalogue: {exc}") from exc
            if not isinstance(cat, MockCatalog):
                raise CatalogFileError(f"{path} does not hold a mock_catalog-1.0.0 object")
            if verify and cat._sha256 is not None:
                actual = content_digest(cat._offsets, cat._gal, cat._cl, cat.meta)
                if actual != cat._sha256:
                    raise CatalogFileError(
                        f"{path}: content digest mismatch (stored {cat._sha256[:12]}..., content "
                        f"{actual[:12]}...): the file was altered or corrupted"
                    )
        except Exception:
            af.close()
            raise
        if lazy:
            cat._file = af
        else:
            cat._gal = {k: np.array(a) for k, a in cat._gal.items()}
            cat._cl = {k: np.array(a) for k, a in cat._cl.items()}
            cat._offsets = np.array(cat._offsets)
            af.close()
        return cat

    def close(self) -> None:
        """Close the underlying file of a lazily read catalogue (arrays become invalid)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MockCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tree_arrays(d: dict) -> dict:
    return {k: np.ascontiguousarray(v) for k, v in d.items()}


def _atomic_asdf_write(cat: MockCatalog, path: Path) -> None:
    import asdf

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        asdf.AsdfFile({"catalog": cat}).write_to(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class CatalogWriter:
    """Write a catalogue chunk by chunk with bounded memory.

    Per-galaxy arrays of each chunk are appended to raw temporary files; per-cluster columns are
    kept in memory (they are small). :meth:`finalize` memory-maps the raw files, writes the ASDF
    file under a temporary name and renames it into place, so an interrupted run never leaves a
    file that reads as a valid catalogue.
    """

    def __init__(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.meta = dict(meta or {})
        self._dir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self._files = {k: open(self._dir / f"{k}.raw", "wb") for k in GALAXY_COLUMNS}
        self._lens: list[np.ndarray] = []
        self._cl: dict[str, list[np.ndarray]] = {}
        self._n_gal = 0

    def add(self, cat: MockCatalog) -> None:
        """Append the clusters of ``cat`` (an in-memory chunk)."""
        for k, dt in GALAXY_COLUMNS.items():
            self._files[k].write(np.ascontiguousarray(cat._gal[k], dtype=dt).tobytes())
        if self._cl and set(self._cl) != set(cat._cl):
            raise ValueError("chunks must have the same per-cluster columns")
        for k, a in cat._cl.items():
            self._cl.setdefault(k, []).append(np.asarray(a))
        self._lens.append(cat.n_gal)
        self._n_gal += cat.n_galaxies

    def finalize(self) -> Path:
        """Write the ASDF file and remove the temporary files; returns the path."""
        try:
            for f in self._files.values():
                f.close()
            gal = {}
            for k, dt in GALAXY_COLUMNS.items():
                fn = self._dir / f"{k}.raw"
                gal[k] = (
                    np.memmap(fn, dtype=dt, mode="r", shape=(self._n_gal,))
                    if self._n_gal
                    else np.empty(0, dt)
                )
            lens = np.concatenate(self._lens) if self._lens else np.empty(0, np.int64)
            offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
            cl = {k: np.concatenate(v) for k, v in self._cl.items()}
            if not cl:
                raise ValueError("no clusters were added to the catalogue")
            _atomic_asdf_write(MockCatalog(offsets, gal, cl, self.meta), self.path)
            del gal
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Remove the temporary files (the target file is not touched)."""
        for f in self._files.values():
            if not f.closed:
                f.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> CatalogWriter:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is not None:
            self.abort()


class MockCatalogConverter(Converter):
    """ASDF converter for :class:`MockCatalog` (tag ``mock_catalog-1.0.0``)."""

    tags = (MOCK_CATALOG_TAG,)
    types = ("astro_cnnmass.mocks.catalog.MockCatalog",)

    def to_yaml_tree(self, obj: MockCatalog, tag: str, ctx: Any) -> dict:
        gal = {}
        for k, a in obj._gal.items():
            dt = GALAXY_COLUMNS.get(k)
            arr = np.asarray(a)
            gal[k] = arr if dt is None or arr.dtype == dt else arr.astype(dt)
        offsets, clusters, meta = obj.offsets, _tree_arrays(obj.clusters), plain_python(obj.meta)
        return {
            "n_clusters": obj.n_clusters,
            "offsets": offsets,
            "galaxies": gal,
            "clusters": clusters,
            "meta": meta,
            "sha256": content_digest(offsets, gal, clusters, meta),
        }

    def from_yaml_tree(self, node: dict, tag: str, ctx: Any) -> MockCatalog:
        missing = [k for k in ("offsets", "galaxies", "clusters", "n_clusters") if k not in node]
        if missing:
            raise ValueError(f"mock catalogue node lacks {missing}")
        cat = MockCatalog.__new__(MockCatalog)
        cat._offsets = np.asarray(node["offsets"])
        cat._gal = dict(node["galaxies"])
        cat._cl = dict(node["clusters"])
        cat.meta = plain_python(node.get("meta", {}))
        cat._file = None
        sha = node.get("sha256")  # absent in catalogues written before the digest existed
        cat._sha256 = str(sha) if sha is not None else None
        if int(node["n_clusters"]) != cat._offsets.size - 1:
            raise ValueError("mock catalogue: n_clusters does not match len(offsets) - 1")
        cat._validate()
        return cat


def iter_chunks(cat: MockCatalog, size: int) -> Iterable[MockCatalog]:
    """In-memory sub-catalogues of at most ``size`` clusters (for streaming processing)."""
    for s in range(0, cat.n_clusters, size):
        yield cat.select(np.arange(s, min(s + size, cat.n_clusters)))
