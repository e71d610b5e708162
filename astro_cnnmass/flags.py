"""The quality flags of a batch of clusters, held as the bits of one integer array.

A batch of 10^5 - 10^6 clusters must not hold one Python list per cluster: on the 2-core
development machine building 10^5 small lists costs ~0.4 s, most of it in the garbage
collector, more than a tenth of a whole batch estimate (issue 14). :class:`FlagArray` keeps one
``uint16`` bitmask per cluster, with one bit per name of :data:`FLAG_NAMES`, and reads like the
list of lists of names that ``predict_packed`` returned before: ``flags[i]`` is the list of
cluster ``i``'s flags, in the fixed order of :data:`FLAG_NAMES`. :meth:`FlagArray.joined` gives
the comma-separated strings of a table's ``flags`` column with one Python operation per
distinct combination of flags, not per cluster.

The meaning of each flag is documented in ``docs/bad_input.rst`` and
``data_spec/tables/results.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["FLAG_NAMES", "FlagArray"]


#: Every flag a batch row can carry, in the order in which a row lists them.
FLAG_NAMES: tuple[str, ...] = (
    "no_network",
    "too_few_galaxies",
    "few_galaxies",
    "many_galaxies",
    "z_outside_training",
    "kde_undefined",
    "mass_at_edge",
    "out_of_distribution",
    "center_estimated",
    "z_estimated",
)

_BIT = {name: np.uint16(1 << k) for k, name in enumerate(FLAG_NAMES)}


def _bit(name: str) -> np.uint16:
    try:
        return _BIT[name]
    except KeyError:
        raise ValueError(f"unknown flag {name!r}; the flags are {FLAG_NAMES}") from None


class FlagArray(Sequence):
    """Flags of ``n`` clusters as a ``uint16`` bitmask array that reads as lists of names.

    Parameters
    ----------
    bits : array-like of int, shape (n,)
        Bit ``k`` set = the cluster carries ``FLAG_NAMES[k]``.

    Examples
    --------
    >>> import numpy as np
    >>> flags = FlagArray.empty(3)
    >>> flags.set("few_galaxies", np.array([True, False, True]))
    >>> flags.set("out_of_distribution", np.array([True, False, False]))
    >>> flags[0], flags[1]
    (['few_galaxies', 'out_of_distribution'], [])
    >>> flags.joined().tolist()
    ['few_galaxies,out_of_distribution', '', 'few_galaxies']
    >>> flags.has("few_galaxies").tolist()
    [True, False, True]
    """

    def __init__(self, bits: Any) -> None:
        bits = np.asarray(bits)
        if bits.ndim != 1 or not (bits.size == 0 or np.issubdtype(bits.dtype, np.integer)):
            raise ValueError(f"bits must be a 1-D integer array, got {bits.dtype} {bits.shape}")
        if bits.size and (bits.min() < 0 or bits.max() >= 1 << len(FLAG_NAMES)):
            raise ValueError("bits has values outside the flag bits")
        self.bits = bits.astype(np.uint16)

    @classmethod
    def empty(cls, n: int) -> FlagArray:
        """``n`` clusters without any flag."""
        return cls(np.zeros(int(n), dtype=np.uint16))

    @classmethod
    def concatenate(cls, parts: Sequence[FlagArray]) -> FlagArray:
        """The flags of consecutive batches, in order."""
        return cls(np.concatenate([p.bits for p in parts]) if parts else np.zeros(0, np.uint16))

    def set(self, name: str, where: Any) -> None:
        """Give flag ``name`` to the clusters where ``where`` (bool, shape (n,)) is True."""
        self.bits[np.asarray(where, dtype=bool)] |= _bit(name)

    def clear(self, name: str, where: Any) -> None:
        """Remove flag ``name`` from the clusters where ``where`` (bool, shape (n,)) is True."""
        self.bits[np.asarray(where, dtype=bool)] &= ~_bit(name)

    def has(self, name: str) -> np.ndarray:
        """Bool array, shape (n,): which clusters carry flag ``name``."""
        return (self.bits & _bit(name)) != 0

    def copy(self) -> FlagArray:
        return FlagArray(self.bits.copy())

    def joined(self) -> np.ndarray:
        """Comma-separated names of each cluster's flags (``''`` for none), a str array."""
        codes, inverse = np.unique(self.bits, return_inverse=True)
        names = np.array([",".join(_names(int(c))) for c in codes] or [""], dtype=str)
        return names[inverse.reshape(-1)] if self.bits.size else np.zeros(0, dtype=str)

    def tolist(self) -> list[list[str]]:
        """One list of names per cluster (one Python list each: for small batches)."""
        return [_names(int(b)) for b in self.bits]

    def __len__(self) -> int:
        return int(self.bits.size)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int | np.integer):
            return _names(int(self.bits[index]))
        return FlagArray(self.bits[index])

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FlagArray):
            return bool(np.array_equal(self.bits, other.bits))
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self.tolist() == [list(f) for f in other]
        return NotImplemented

    __hash__ = None  # mutable, like a list

    def __repr__(self) -> str:
        head = ", ".join(repr(f) for f in self[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"FlagArray([{head}{more}], n={len(self)})"


def _names(code: int) -> list[str]:
    return [name for k, name in enumerate(FLAG_NAMES) if code >> k & 1]
