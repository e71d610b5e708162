"""Chunks of a CPU batch on parallel threads that share torch's intra-op threads.

On a few CPU cores the intra-op parallelism of torch scales poorly on the small operations of
one chunk (the batched 48 × P KDE products, 512-row network micro-batches): on the 2-core
development machine two intra-op threads give ~1.1× one thread. Two chunks evaluated at the
same time, each on its own Python thread with one torch thread (torch and numpy release the GIL
in their kernels), give 1.15–1.35× the two intra-op threads. On more cores, up to
``MAX_DEFAULT_WORKERS`` chunks run at once by default, sharing torch's threads.
:func:`map_in_threads` runs a function over chunks that way, returning the results in order;
every chunk is computed exactly as alone, so the numbers do not depend on the number of
workers (checked in ``tests/test_streaming.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["DEFAULT_CHUNK_SIZE", "MAX_DEFAULT_WORKERS", "default_workers", "map_in_threads"]


#: Clusters per chunk of a CPU batch by default (the estimator's ``default_chunk_size`` on the
#: CPU and :func:`~astro_cnnmass.batch.streaming.estimate_catalog`). On two cores 2048 is as
#: fast as 4096 and, with two chunks in flight, lowers the peak resident memory by ~50 MB
#: (issue 14); the numbers do not depend on it.
DEFAULT_CHUNK_SIZE = 2048

#: Most chunks in flight by default (each holds ~0.1 GB at the default chunk size).
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """Workers of a CPU batch by default: torch's intra-op thread count, at most 4."""
    import torch

    return max(1, min(int(torch.get_num_threads()), MAX_DEFAULT_WORKERS))


def map_in_threads(
    fn: Callable[[Any], Any], items: Iterable[Any], n_workers: int | None = None
) -> Iterator[Any]:
    """``map(fn, items)`` on ``n_workers`` threads sharing torch's threads, in order.

    Parameters
    ----------
    fn : callable
        Applied to every item (a chunk); must not change shared state.
    items : iterable
        Read lazily: at most ``n_workers + 1`` items are in flight, so the memory is that of a
        few chunks whatever the length.
    n_workers : int, optional
        Default :func:`default_workers`; 1 runs ``map`` in the calling thread.

    Yields
    ------
    The results of ``fn``, in the order of ``items``. While the threads run, torch's intra-op
    thread count is its previous value divided by ``n_workers`` (at least 1: one thread each on
    a 2-core machine); it is restored afterwards (also on an error, which is re-raised).
    """
    import torch

    n_workers = default_workers() if n_workers is None else max(1, int(n_workers))
    if n_workers == 1:
        yield from map(fn, items)
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, previous // n_workers))
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            pending: deque = deque()
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > n_workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        torch.set_num_threads(previous)
