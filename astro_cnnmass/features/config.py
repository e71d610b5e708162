"""What a feature image is: :class:`FeatureConfig` (grid, kernel, cylinder); the flat input.

A model stores its :class:`FeatureConfig` in its ASDF file, and the estimator rebuilds it from
there, so an image is always made with the settings the model was trained with. :func:`pack`
turns per-cluster arrays into the flat ``(R, v, offsets)`` form every batched function takes.

Units: R in physical (proper) Mpc/h at the cluster redshift, v in km/s in the cluster rest frame.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FeatureConfig", "pack"]


#: Minimum number of galaxies for which a KDE image is defined.
MIN_GALAXIES = 3


_KINDS = ("2d", "1d")


_KERNELS = ("sample_covariance", "fixed")


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
def _as_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"FeatureConfig.{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"FeatureConfig.{name} must be >= {minimum}, got {value}")
    return int(value)


def _as_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"FeatureConfig.{name} must be a positive finite number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"FeatureConfig.{name} must be a positive finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class FeatureConfig:
    """How a cluster's projected phase space is turned into a KDE image.

    A model bundle stores this configuration (:meth:`to_dict`) so that inference builds exactly
    the features the model was trained on.

    Parameters
    ----------
    kind : {"2d", "1d"}
        ``"2d"``: joint KDE of (v, R) on an ``(n_v, n_R)`` grid (CNN_2D input).
        ``"1d"``: KDE of v alone on ``n_v`` points (CNN_1D input).
    n_v : int
        Number of velocity bins on [−v_cut, v_cut] (image axis 0).
    n_R : int
        Number of radius bins on [0, aperture] (image axis 1; unused for ``kind="1d"``).
    aperture_mpch : float
        Outer edge of the radius grid, physical Mpc/h.
    v_cut_kms : float
        Half-width of the velocity grid, km/s.
    bandwidth : float
        Bandwidth factor of the ``"sample_covariance"`` kernel (scipy ``bw_method``): the kernel
        covariance is ``bandwidth**2`` × the cluster's unbiased sample covariance.
    kernel : {"sample_covariance", "fixed"}
        ``"sample_covariance"`` (the paper's choice) or ``"fixed"``: an axis-aligned Gaussian of
        fixed widths ``fixed_sigma_v_kms`` and ``fixed_sigma_R_mpch``.
    fixed_sigma_v_kms : float or None
        Kernel standard deviation in v (km/s); required with ``kernel="fixed"``, else None.
    fixed_sigma_R_mpch : float or None
        Kernel standard deviation in R (physical Mpc/h); required with ``kernel="fixed"`` and
        ``kind="2d"``, else None.

    Raises
    ------
    ValueError
        If a field is out of range or inconsistent with the others.

    Examples
    --------
    >>> from astro_cnnmass.features.config import FeatureConfig
    >>> cfg = FeatureConfig()
    >>> cfg.v_centres.shape, float(cfg.R_centres[0])
    ((48,), 0.016666666666666666)
    >>> FeatureConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    kind: str = "2d"
    n_v: int = 48
    n_R: int = 48
    aperture_mpch: float = 1.6
    v_cut_kms: float = 2200.0
    bandwidth: float = 0.25
    kernel: str = "sample_covariance"
    fixed_sigma_v_kms: float | None = None
    fixed_sigma_R_mpch: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"FeatureConfig.kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kernel not in _KERNELS:
            raise ValueError(f"FeatureConfig.kernel must be one of {_KERNELS}, got {self.kernel!r}")
        setattr_ = object.__setattr__
        setattr_(self, "n_v", _as_int("n_v", self.n_v, 2))
        setattr_(self, "n_R", _as_int("n_R", self.n_R, 2))
        for name in ("aperture_mpch", "v_cut_kms", "bandwidth"):
            setattr_(self, name, _as_positive_float(name, getattr(self, name)))
        if self.kernel == "fixed":
            setattr_(
                self,
                "fixed_sigma_v_kms",
                _as_positive_float("fixed_sigma_v_kms", self.fixed_sigma_v_kms),
            )
            if self.kind == "2d":
                setattr_(
                    self,
                    "fixed_sigma_R_mpch",
                    _as_positive_float("fixed_sigma_R_mpch", self.fixed_sigma_R_mpch),
                )
            elif self.fixed_sigma_R_mpch is not None:
                raise ValueError(
                    "FeatureConfig.fixed_sigma_R_mpch must be None for kind='1d' "
                    f"(got {self.fixed_sigma_R_mpch!r})"
                )
        else:
            for name in ("fixed_sigma_v_kms", "fixed_sigma_R_mpch"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"FeatureConfig.{name} is only used with kernel='fixed'; "
                        f"got {getattr(self, name)!r} with kernel={self.kernel!r}"
                    )

    @property
    def v_centres(self) -> np.ndarray:
        """Velocity bin centres, km/s, shape ``(n_v,)``, on [−v_cut, v_cut]."""
        width = 2.0 * self.v_cut_kms / self.n_v
        return -self.v_cut_kms + (np.arange(self.n_v) + 0.5) * width

    @property
    def R_centres(self) -> np.ndarray:
        """Radius bin centres, physical Mpc/h, shape ``(n_R,)``, on [0, aperture]."""
        width = self.aperture_mpch / self.n_R
        return (np.arange(self.n_R) + 0.5) * width

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image: ``(n_v, n_R)`` for ``"2d"``, ``(n_v,)`` for ``"1d"``."""
        return (self.n_v, self.n_R) if self.kind == "2d" else (self.n_v,)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a plain dict (JSON / ASDF serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureConfig:
        """Build a configuration from :meth:`to_dict` output; missing keys take defaults.

        Raises
        ------
        ValueError
            If ``d`` has keys that are not fields of `FeatureConfig` (they are named).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"unknown FeatureConfig key(s): {unknown}; expected a subset of {sorted(names)}"
            )
        return cls(**dict(d))


# ---------------------------------------------------------------------------------------------
# input helpers
# ---------------------------------------------------------------------------------------------
def pack(
    list_of_R: Sequence[Any], list_of_v: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-cluster arrays into the flat form of batched features.

    The form that :func:`~astro_cnnmass.features.kde.kde_images` takes.

    Parameters
    ----------
    list_of_R, list_of_v : sequence of array-like
        One 1-D array per cluster: projected radii (physical Mpc/h) and line-of-sight
        velocities (km/s). Cluster i must have ``len(list_of_R[i]) == len(list_of_v[i])``.

    Returns
    -------
    R, v : ndarray of float64, shape ``(n_galaxies,)``
    offsets : ndarray of int64, shape ``(n_clusters + 1,)``
        Cluster i is ``slice(offsets[i], offsets[i + 1])``.
    """
    if len(list_of_R) != len(list_of_v):
        raise ValueError(
            f"list_of_R and list_of_v must have the same length, got {len(list_of_R)} "
            f"and {len(list_of_v)}"
        )
    Rs = [np.asarray(r, dtype=np.float64).ravel() for r in list_of_R]
    vs = [np.asarray(x, dtype=np.float64).ravel() for x in list_of_v]
    for i, (r, x) in enumerate(zip(Rs, vs)):
        if r.size != x.size:
            raise ValueError(f"cluster {i}: R has {r.size} values but v has {x.size}")
    offsets = np.zeros(len(Rs) + 1, dtype=np.int64)
    np.cumsum([r.size for r in Rs], out=offsets[1:])
    R = np.concatenate(Rs) if Rs else np.zeros(0)
    v = np.concatenate(vs) if vs else np.zeros(0)
    return R, v, offsets


def _check_flat(R: Any, v: Any, offsets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    R = np.asarray(R, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if R.ndim != 1 or v.ndim != 1 or R.shape != v.shape:
        raise ValueError(
            f"R and v must be 1-D arrays of the same length, got shapes {R.shape} and {v.shape}"
        )
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or offsets.size < 1 or not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError("offsets must be a 1-D integer array of length n_clusters + 1")
    offsets = offsets.astype(np.int64)
    if offsets[0] < 0 or offsets[-1] > R.size or np.any(np.diff(offsets) < 0):
        raise ValueError(
            "offsets must be non-decreasing and within [0, len(R)]; "
            f"got offsets[0]={offsets[0]}, offsets[-1]={offsets[-1]}, len(R)={R.size}"
        )
    return R, v, offsets


def _normalise_dtype(dtype: Any) -> np.dtype:
    name = str(dtype).replace("torch.", "")
    try:
        dt = np.dtype(name if name in ("float32", "float64") else dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
    return dt
