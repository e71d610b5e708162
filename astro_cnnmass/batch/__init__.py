"""Catalogue scale: memory-bounded streaming over member catalogues, and Dask.

* :mod:`~astro_cnnmass.batch.streaming` --
  :func:`~astro_cnnmass.batch.streaming.estimate_catalog`, chunked packed inference;
* :mod:`~astro_cnnmass.batch.results` -- the result table of a table batch (``estimate_many``),
  built column by column;
* :mod:`~astro_cnnmass.batch.threads` -- chunks of a CPU batch on parallel threads;
* :mod:`~astro_cnnmass.batch.distributed` -- the Dask bag / dataframe paths (optional ``dask``).
"""

from .distributed import estimate_many_dask, generate_catalog_dask
from .streaming import PackedChunk, estimate_catalog, iter_chunks, packed_from_table

__all__ = [
    "PackedChunk",
    "estimate_catalog",
    "estimate_many_dask",
    "generate_catalog_dask",
    "iter_chunks",
    "packed_from_table",
]
