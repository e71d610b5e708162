"""Optional Dask back end: masses of Dask collections of clusters, mocks on a Dask cluster.

Install with ``pip install astro_cnnmass[dask]``. Both functions give the same numbers as the
serial path: :func:`estimate_many_dask` runs
:meth:`~astro_cnnmass.DynamicalMassEstimator.predict_packed` on each partition (whole clusters
per partition) exactly as :func:`~astro_cnnmass.batch.streaming.estimate_catalog` does on each
chunk,
and :func:`generate_catalog_dask` submits chunks of host indices whose random streams depend only
on the seed and the host index (as in :func:`~astro_cnnmass.mocks.generate_catalog`).
"""

from __future__ import annotations

import itertools
import math
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import InputError
from .streaming import RESULT_FLOATS, packed_from_table, results_table

if TYPE_CHECKING:
    from astropy.table import QTable

    from ..estimator import DynamicalMassEstimator
    from ..mocks import MockCatalog

__all__ = ["estimate_many_dask", "generate_catalog_dask"]

_MISSING = (
    "this feature needs the optional dependency dask[distributed]: pip install astro_cnnmass[dask]"
)


def _import_dask():
    try:
        import dask
        import dask.bag
    except ImportError as exc:  # pragma: no cover - exercised only without dask
        raise ImportError(_MISSING) from exc
    return dask


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - exercised only without dask
        raise ImportError(_MISSING) from exc
    return distributed


# ---------------------------------------------------------------------------------- masses
def _predict_records(records: list, estimator: Any, apply_cylinder: bool) -> list[dict]:
    """Partition function of the Bag path: (cluster_id, R, v, z) records -> result records."""
    records = list(records)
    if not records:
        return []
    ids, Rs, vs, zs = [], [], [], []
    for rec in records:
        if isinstance(rec, dict):
            rec = (rec["cluster_id"], rec["R"], rec["v"], rec["z"])
        cid, R, v, z = rec
        ids.append(cid)
        Rs.append(np.asarray(R, dtype=np.float64).ravel())
        vs.append(np.asarray(v, dtype=np.float64).ravel())
        zs.append(float(z))
    offsets = np.zeros(len(Rs) + 1, dtype=np.int64)
    np.cumsum([r.size for r in Rs], out=offsets[1:])
    res = _predict(
        estimator, np.concatenate(Rs), np.concatenate(vs), offsets, np.asarray(zs), apply_cylinder
    )
    flags = res["flags"].joined().tolist()
    return [
        {
            "cluster_id": cid,
            **{k: float(res[k][i]) for k in RESULT_FLOATS},
            "n": int(res["n"][i]),
            "z": zs[i],
            "flags": flags[i],
        }
        for i, cid in enumerate(ids)
    ]


def _predict(estimator: Any, R, v, offsets, z, apply_cylinder: bool) -> dict:
    from .streaming import iter_chunks

    cyl = estimator.cylinder if apply_cylinder else None
    (chunk,) = list(iter_chunks(R, v, offsets, max(offsets.size - 1, 1), z=z, cylinder=cyl))
    return estimator.predict_packed(
        chunk.R, chunk.v, chunk.offsets, chunk.z, chunk_size=max(chunk.n_clusters, 1)
    )


def _predict_frame(
    pdf: Any,
    estimator: Any,
    cluster_column: str,
    R_column: str,
    v_column: str,
    z_column: str,
    apply_cylinder: bool,
) -> Any:
    """Partition function of the DataFrame path: galaxies of whole clusters -> one row each."""
    import pandas as pd
    from astropy.table import Table

    cols = ["cluster_id", *RESULT_FLOATS, "n", "z", "flags"]
    if len(pdf) == 0:
        return pd.DataFrame({c: pd.Series(dtype=_META_DTYPES[c]) for c in cols})
    pdf = pdf.reset_index() if cluster_column not in pdf.columns else pdf
    table = Table({c: pdf[c].to_numpy() for c in (cluster_column, R_column, v_column, z_column)})
    R, v, offsets, z, ids = packed_from_table(
        table,
        cluster_column=cluster_column,
        R_column=R_column,
        v_column=v_column,
        z_column=z_column,
    )
    res = _predict(estimator, R, v, offsets, z, apply_cylinder)
    data = {
        "cluster_id": ids,
        **{k: res[k] for k in RESULT_FLOATS},
        "n": res["n"],
        "z": z,
        "flags": res["flags"].joined().tolist(),
    }
    return pd.DataFrame(data, columns=cols)


_META_DTYPES = {
    "cluster_id": "object",
    **dict.fromkeys(RESULT_FLOATS, "float64"),
    "n": "int64",
    "z": "float64",
    "flags": "object",
}


def estimate_many_dask(
    estimator: DynamicalMassEstimator,
    collection: Any,
    *,
    cluster_column: str = "cluster_id",
    R_column: str = "R",
    v_column: str = "v",
    z_column: str = "z",
    cylinder_already_applied: bool = False,
    compute: bool = True,
    **compute_kwargs: Any,
) -> QTable | Any:
    """Masses of the clusters of a Dask Bag or Dask DataFrame, one partition at a time.

    Parameters
    ----------
    estimator : `~astro_cnnmass.DynamicalMassEstimator`
        The model; it is sent to the workers with the task graph.
    collection : `dask.bag.Bag` or `dask.dataframe.DataFrame`
        A Bag of clusters, each a tuple ``(cluster_id, R, v, z)`` or a dict with those keys
        (R: physical Mpc/h, v: km/s, arrays of the cluster's galaxies; z: its redshift); or a
        DataFrame of galaxies with ``cluster_column``, ``R_column`` (Mpc/h), ``v_column``
        (km/s) and ``z_column`` (cluster redshift on every row). The galaxies of a cluster must
        lie in one partition: true when ``cluster_column`` is the index with known divisions;
        otherwise the frame is re-indexed with ``set_index(cluster_column)`` (a shuffle).
    cluster_column, R_column, v_column, z_column : str
        DataFrame column names.
    cylinder_already_applied : bool
        Skip the model's cylinder cut.
    compute : bool
        Compute and return a QTable (default), or return the lazy Dask collection of result
        records (Bag of dicts, or DataFrame with one row a cluster).
    **compute_kwargs
        Passed to ``.compute()`` (e.g. ``scheduler=``); a running ``distributed.Client`` is
        used automatically.

    Returns
    -------
    `~astropy.table.QTable`
        One row a cluster, as :func:`~astro_cnnmass.batch.streaming.estimate_catalog`, with a
        ``cluster_id`` column; Bag order is kept, DataFrame results follow the partitions
        (sorted by cluster when the frame is indexed by it).
    """
    _import_dask()
    import dask.bag as db

    apply_cylinder = not cylinder_already_applied
    if isinstance(collection, db.Bag):
        lazy = collection.map_partitions(_predict_records, estimator, apply_cylinder)
        if not compute:
            return lazy
        records = lazy.compute(**compute_kwargs)
        return _table_from_records(records, estimator.method)
    try:
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover
        raise ImportError(_MISSING) from exc
    if not isinstance(collection, dd.DataFrame):
        raise InputError(
            f"collection must be a dask Bag or DataFrame, got {type(collection).__name__}"
        )
    frame = collection
    index_name = frame.index.name
    if not (index_name == cluster_column and frame.known_divisions):
        if cluster_column not in frame.columns:
            raise InputError(f"the DataFrame has no column or index {cluster_column!r}")
        frame = frame.set_index(cluster_column)
    for col in (R_column, v_column, z_column):
        if col not in frame.columns:
            raise InputError(f"the DataFrame has no column {col!r}")
    import pandas as pd

    meta = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _META_DTYPES.items()})
    lazy = frame.map_partitions(
        _predict_frame,
        estimator,
        cluster_column,
        R_column,
        v_column,
        z_column,
        apply_cylinder,
        meta=meta,
    )
    if not compute:
        return lazy
    result = lazy.compute(**compute_kwargs)
    return _table_from_records(result.to_dict("records"), estimator.method)


def _table_from_records(records: list[dict], method: str) -> QTable:
    n = len(records)
    res: dict[str, Any] = {
        k: np.array([r[k] for r in records], dtype=float).reshape(n) for k in (*RESULT_FLOATS, "z")
    }
    res["n"] = np.array([r["n"] for r in records], dtype=np.int64).reshape(n)
    res["flags"] = [r["flags"] for r in records]
    ids = np.array([r["cluster_id"] for r in records])
    table = results_table(res, method=method, ids={"cluster_id": ids})
    table.remove_column("index")
    return table


# ---------------------------------------------------------------------------------- mocks
@contextmanager
def _client_or_local(client: Any, n_workers: int):
    if client is not None:
        yield client
        return
    distributed = _import_distributed()
    with distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        with distributed.Client(cluster) as local:
            yield local


def _hosts_task(
    start: int, stop: int, entropy: int, cfg_dict: dict, prior: str, n_los: int
) -> MockCatalog:
    from ..mocks.config import MockConfig
    from ..mocks.generator import generate_hosts

    cfg = MockConfig.from_dict(cfg_dict)
    return generate_hosts(range(start, stop), entropy, cfg, prior, n_los)


def generate_catalog_dask(
    n_hosts: int,
    *,
    seed: int | np.random.Generator,
    lines_of_sight: int = 3,
    prior: str = "flat",
    config: Any = None,
    client: Any = None,
    n_chunks: int | None = None,
    n_workers: int = 2,
    out: str | os.PathLike | None = None,
    progress: bool = False,
) -> MockCatalog:
    """:func:`~astro_cnnmass.mocks.generate_catalog` on a ``dask.distributed`` cluster.

    The output is identical to ``generate_catalog(n_hosts, seed=seed, ...)`` for any client and
    any ``n_chunks``: host ``i`` always draws from ``SeedSequence(entropy, spawn_key=(i,))``.

    Parameters
    ----------
    n_hosts : int
        Number of 3D host halos.
    seed : int or numpy.random.Generator
        Root seed (as ``generate_catalog``).
    lines_of_sight : int
        Lines of sight per host.
    prior : {'flat', 'hmf'}
        Host-mass prior.
    config : MockConfig or dict, optional
        Generator configuration.
    client : distributed.Client, optional
        Where to run; default a temporary ``LocalCluster`` of ``n_workers`` single-threaded
        worker processes, closed on return.
    n_chunks : int, optional
        Number of tasks (default: 4 per worker, at most 64 hosts each).
    n_workers : int
        Workers of the default local cluster.
    out : path-like, optional
        Write the catalogue there chunk by chunk (bounded memory) and return it opened lazily.
    progress : bool
        Show a progress bar (hosts' lines of sight).

    Returns
    -------
    MockCatalog
    """
    _import_dask()
    from ..mocks.generator import assemble_catalog, prepare_run

    run = prepare_run(
        n_hosts, seed=seed, lines_of_sight=lines_of_sight, prior=prior, config=config, out=out
    )
    with _client_or_local(client, n_workers) as cl:
        if n_chunks is None:
            workers = max(1, len(cl.scheduler_info().get("workers", {})))
            n_chunks = max(math.ceil(run.n_hosts / 64), min(run.n_hosts, 4 * workers))
        n_chunks = max(1, min(int(n_chunks), run.n_hosts))
        bounds = np.linspace(0, run.n_hosts, n_chunks + 1).round().astype(int).tolist()
        futures = [
            cl.submit(_hosts_task, a, b, *run.task_args, pure=False)
            for a, b in itertools.pairwise(bounds)
        ]

        def in_host_order():  # whatever order the tasks finish in
            for fut in futures:
                part = fut.result()
                fut.release()
                yield part

        try:
            return assemble_catalog(in_host_order(), run, progress=progress)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
