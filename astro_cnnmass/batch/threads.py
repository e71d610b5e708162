"""Chunks of a CPU batch on parallel threads, one torch thread each.

On a few CPU cores the intra-op parallelism of torch scales poorly on the small operations of
one chunk (the batched 48 × P KDE products, 512-row network micro-batches): on the 2-core
development machine two intra-op threads give ~1.1× one thread. Two chunks evaluated at the
same time, each on its own Python thread with one torch thread (torch and numpy release the GIL
in their kernels), give ~1.4×. :func:`map_in_threads` runs a function over chunks that way,
returning the results in order; every chunk is computed exactly as alone, so the numbers do not
depend on the number of workers (checked in ``tests/test_streaming.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["default_workers", "map_in_threads"]


def default_workers() -> int:
    """Workers of a CPU batch by default: torch's intra-op thread count (the cores it uses)."""
    import torch

    return max(1, int(torch.get_num_threads()))


def map_in_threads(
    fn: Callable[[Any], Any], items: Iterable[Any], n_workers: int | None = None
) -> Iterator[Any]:
    """``map(fn, items)`` on ``n_workers`` threads with one torch thread each, in order.

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
    thread count is 1; it is restored afterwards (also on an error, which is re-raised).
    """
    import torch

    n_workers = default_workers() if n_workers is None else max(1, int(n_workers))
    if n_workers == 1:
        yield from map(fn, items)
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
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
