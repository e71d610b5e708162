"""Array-namespace shims: the same KDE kernels run on numpy arrays and on torch tensors.

:func:`_ops` returns the namespace of a backend (``"numpy"``, or ``"torch"`` on any torch
device); the kernels of :mod:`astro_cnnmass.features.kde` call only these methods, so both
backends execute the same arithmetic in the same order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_BACKENDS = ("numpy", "torch")


class _NumpyOps:
    is_torch = False

    @staticmethod
    def amax(x: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
        return np.max(x, axis=axis, keepdims=True)

    @staticmethod
    def amin(x: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
        return np.min(x, axis=axis, keepdims=True)

    @staticmethod
    def asum(x: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
        return np.sum(x, axis=axis, keepdims=True)

    @staticmethod
    def index(idx: np.ndarray) -> np.ndarray:
        return idx

    @staticmethod
    def asarray(x: np.ndarray, dtype: np.dtype = np.float64) -> np.ndarray:
        return np.asarray(x, dtype=dtype)

    @staticmethod
    def cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return x.astype(dtype, copy=False)

    @staticmethod
    def to_numpy(x: np.ndarray) -> np.ndarray:
        return x

    @staticmethod
    def exp_(x: np.ndarray) -> np.ndarray:
        return np.exp(x, out=x)

    @staticmethod
    def log_(x: np.ndarray) -> np.ndarray:
        return np.log(x, out=x)

    @staticmethod
    def clamp_min_(x: np.ndarray, lo: float) -> np.ndarray:
        return np.maximum(x, lo, out=x)


class _TorchOps:
    is_torch = True

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cpu" if device is None else device)
        self._dt = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}

    def amax(self, x: Any, axis: int | tuple[int, ...]) -> Any:
        return self.torch.amax(x, dim=axis, keepdim=True)

    def amin(self, x: Any, axis: int | tuple[int, ...]) -> Any:
        return self.torch.amin(x, dim=axis, keepdim=True)

    def asum(self, x: Any, axis: int | tuple[int, ...]) -> Any:
        return self.torch.sum(x, dim=axis, keepdim=True)

    def index(self, idx: np.ndarray) -> Any:
        return self.torch.as_tensor(idx, device=self.device)

    def asarray(self, x: np.ndarray, dtype: np.dtype = np.float64) -> Any:
        return self.torch.as_tensor(
            np.ascontiguousarray(x),
            dtype=self._dt[np.dtype(dtype)],
            device=self.device,
        )

    def cast(self, x: Any, dtype: np.dtype) -> Any:
        return x.to(self._dt[np.dtype(dtype)])

    @staticmethod
    def to_numpy(x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    @staticmethod
    def exp_(x: Any) -> Any:
        return x.exp_()

    @staticmethod
    def log_(x: Any) -> Any:
        return x.log_()

    @staticmethod
    def clamp_min_(x: Any, lo: float) -> Any:
        return x.clamp_(min=lo)


def _ops(backend: str, device: Any) -> _NumpyOps | _TorchOps:
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"backend='numpy' runs on the CPU only; got device={device!r}")
        return _NumpyOps()
    if backend == "torch":
        return _TorchOps(device)
    raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
