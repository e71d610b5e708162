"""Torch networks of Ho et al. (2019): CNN_1D and CNN_2D, built from a configuration dict.

The networks follow the arXiv v1 architectures (paper notes §3.1): the convolutions are 1-D along
the line-of-sight velocity axis; for CNN_2D the radial bins of the KDE image are the input
*channels*. The cluster redshift (already scaled, see :mod:`astro_cnnmass.model.bundle`) is
concatenated to the flattened convolutional features before the dense layers; with
``use_log_n`` the log10 of the number of galaxies in the cylinder is concatenated too (linearly
mapped from ``log_n_range`` to [-1, 1] inside the network), so that the network can make its
uncertainty depend on the richness of the sample explicitly (model v2, issue 13).

Two heads are available:

* ``"point"``: one output, the scaled log-mass; trained with the mean squared error;
* ``"gaussian"``: two outputs, mean ``mu`` and log-variance ``s`` of the scaled log-mass; trained
  with the Gaussian negative log-likelihood ``mean[(y - mu)^2 exp(-s) + s] / 2`` (Ho et al. 2021,
  arXiv:2006.13231).

Everything that defines a network lives in its configuration dict, which is stored in the model
file (:class:`astro_cnnmass.model.bundle.ModelBundle`), so ``build_network(config)`` rebuilds the
same
module anywhere.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = [
    "ARCHITECTURES",
    "HEADS",
    "CNNMassNet",
    "build_network",
    "default_network_config",
    "gaussian_nll",
    "loss_function",
    "validate_network_config",
]

ARCHITECTURES = ("cnn1d", "cnn2d")
HEADS = ("point", "gaussian")

_DEFAULTS: dict[str, dict[str, Any]] = {
    # Ho et al. 2019 v1, CNN_2D: Conv1d(48->24,k5) -> Conv1d(24->10,k3) -> MaxPool(4) -> Dropout
    "cnn2d": {
        "arch": "cnn2d",
        "head": "gaussian",
        "n_v": 48,
        "n_R": 48,
        "conv_channels": [24, 10],
        "kernel_sizes": [5, 3],
        "pool": 4,
        "dropout": 0.25,
        "dense": [128, 64],
        "max_norm": 3.0,
        "max_norm_dense": False,
        "use_redshift": True,
        "use_log_n": False,
        "log_n_range": [1.0, 3.0],
        "input_scale": 48.0 * 48.0,
    },
    # Ho et al. 2019 v1, CNN_1D: Conv1d(1->10,k5) -> Conv1d(10->5,k3) -> MaxPool(2) -> Dropout
    "cnn1d": {
        "arch": "cnn1d",
        "head": "gaussian",
        "n_v": 48,
        "n_R": 1,
        "conv_channels": [10, 5],
        "kernel_sizes": [5, 3],
        "pool": 2,
        "dropout": 0.25,
        "dense": [128, 64],
        "max_norm": 3.0,
        "max_norm_dense": True,
        "use_redshift": True,
        "use_log_n": False,
        "log_n_range": [1.0, 3.0],
        "input_scale": 48.0,
    },
}
_KEYS = frozenset(_DEFAULTS["cnn2d"])


def default_network_config(arch: str = "cnn2d", head: str = "gaussian", **overrides: Any) -> dict:
    """The default configuration of an architecture, with optional overrides.

    Parameters
    ----------
    arch : {"cnn2d", "cnn1d"}
        Architecture (paper §3.1).
    head : {"gaussian", "point"}
        Output head.
    **overrides
        Any configuration key (see :func:`validate_network_config`).

    Returns
    -------
    dict
        A complete, validated configuration (plain ``dict``/``list``/``float``/``int``/``str``).
    """
    if arch not in _DEFAULTS:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    config = copy.deepcopy(_DEFAULTS[arch])
    config["head"] = head
    config.update(overrides)
    return validate_network_config(config)


def validate_network_config(config: dict) -> dict:
    """Check a network configuration and fill missing keys from the architecture defaults.

    Parameters
    ----------
    config : dict
        The (possibly partial) configuration. Recognised keys:

        ``arch`` : {"cnn2d", "cnn1d"}
            Architecture.
        ``head`` : {"point", "gaussian"}
            Output head.
        ``n_v`` : int
            Number of velocity bins (sequence length of the convolutions).
        ``n_R`` : int
            Number of radial bins (input channels of CNN_2D; must be 1 for CNN_1D).
        ``conv_channels``, ``kernel_sizes`` : list of int
            Output channels and (odd) kernel sizes of the "same"-padded Conv1d layers.
        ``pool`` : int
            Max-pooling size along velocity (1 = no pooling).
        ``dropout`` : float
            Dropout probability after pooling, in [0, 1).
        ``dense`` : list of int
            Widths of the hidden dense layers.
        ``max_norm`` : float or None
            Keras-style max-norm constraint on each unit's incoming weights (None = off).
        ``max_norm_dense`` : bool
            Whether the constraint also applies to the hidden dense layers (always to the
            convolutions).
        ``use_redshift`` : bool
            Concatenate the scaled redshift to the flattened features.
        ``use_log_n`` : bool
            Concatenate log10 of the number of cylinder galaxies to the flattened features
            (default False: the v1 networks).
        ``log_n_range`` : [float, float]
            log10 N mapped linearly onto [-1, 1] before the concatenation (default [1, 3],
            i.e. 10 to 1000 galaxies; values outside are extrapolated linearly).
        ``input_scale`` : float
            Factor applied to the images (which sum to 1) before the first layer.

    Returns
    -------
    dict
        A new, complete configuration.

    Raises
    ------
    TypeError
        ``config`` is not a dict.
    ValueError
        Unknown key, unknown architecture/head, or a value of the wrong type/range.
    """
    if not isinstance(config, dict):
        raise TypeError(f"network config must be a dict, got {type(config).__name__}")
    arch = config.get("arch", "cnn2d")
    if arch not in _DEFAULTS:
        raise ValueError(f"network config 'arch' must be one of {ARCHITECTURES}, got {arch!r}")
    unknown = set(config) - _KEYS
    if unknown:
        raise ValueError(
            f"unknown network config key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}"
        )
    out = copy.deepcopy(_DEFAULTS[arch])
    out.update(copy.deepcopy(config))
    if out["head"] not in HEADS:
        raise ValueError(f"network config 'head' must be one of {HEADS}, got {out['head']!r}")
    for key in ("n_v", "n_R", "pool"):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1:
            raise ValueError(f"network config {key!r} must be a positive int, got {out[key]!r}")
    if arch == "cnn1d" and out["n_R"] != 1:
        raise ValueError(f"cnn1d takes 1-D velocity images: 'n_R' must be 1, got {out['n_R']}")
    for key in ("conv_channels", "kernel_sizes", "dense"):
        val = out[key]
        if not isinstance(val, list | tuple) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in val
        ):
            raise ValueError(f"network config {key!r} must be a list of positive ints, got {val!r}")
        out[key] = [int(x) for x in val]
    if len(out["conv_channels"]) != len(out["kernel_sizes"]) or not out["conv_channels"]:
        raise ValueError("'conv_channels' and 'kernel_sizes' must be non-empty, of equal length")
    if any(k % 2 == 0 for k in out["kernel_sizes"]):
        raise ValueError(f"'kernel_sizes' must be odd ('same' padding), got {out['kernel_sizes']}")
    if out["n_v"] // out["pool"] < 1:
        raise ValueError(f"'pool' ({out['pool']}) larger than 'n_v' ({out['n_v']})")
    if not isinstance(out["dropout"], int | float) or not 0 <= out["dropout"] < 1:
        raise ValueError(f"'dropout' must be a float in [0, 1), got {out['dropout']!r}")
    out["dropout"] = float(out["dropout"])
    if out["max_norm"] is not None:
        if not isinstance(out["max_norm"], int | float) or out["max_norm"] <= 0:
            raise ValueError(f"'max_norm' must be positive or None, not {out['max_norm']!r}")
        out["max_norm"] = float(out["max_norm"])
    lo_hi = out["log_n_range"]
    if (
        not isinstance(lo_hi, list | tuple)
        or len(lo_hi) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in lo_hi)
        or not lo_hi[1] > lo_hi[0]
    ):
        raise ValueError(f"'log_n_range' must be [lo, hi] with hi > lo, got {lo_hi!r}")
    out["log_n_range"] = [float(lo_hi[0]), float(lo_hi[1])]
    for key in ("max_norm_dense", "use_redshift", "use_log_n"):
        if not isinstance(out[key], bool):
            raise ValueError(f"network config {key!r} must be a bool, got {out[key]!r}")
    if not isinstance(out["input_scale"], int | float) or out["input_scale"] <= 0:
        raise ValueError(f"'input_scale' must be a positive float, got {out['input_scale']!r}")
    out["input_scale"] = float(out["input_scale"])
    return out


class CNNMassNet(nn.Module):
    """CNN_1D / CNN_2D of Ho et al. (2019) with a point or Gaussian head.

    Parameters
    ----------
    config : dict
        Network configuration (see :func:`validate_network_config`).

    Notes
    -----
    ``forward(images, z, log_n)`` takes ``images`` of shape ``(n, n_v, n_R)`` (CNN_2D; axis 1 =
    velocity, axis 2 = radius, as returned by :func:`astro_cnnmass.features.kde.kde_images`) or
    ``(n, n_v)`` (CNN_1D), the scaled redshift ``z`` of shape ``(n,)`` and, for a network with
    ``use_log_n``, ``log_n`` = log10 of the number of cylinder galaxies, shape ``(n,)``
    (unscaled; ignored by networks without ``use_log_n``). It returns
    ``(n, 1)`` (point head: scaled log-mass) or ``(n, 2)`` (Gaussian head: mean, log-variance,
    both for the scaled log-mass).
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = validate_network_config(config)
        c = self.config
        layers: list[nn.Module] = []
        in_ch = c["n_R"]
        self.conv_layers: list[nn.Conv1d] = []
        for out_ch, k in zip(c["conv_channels"], c["kernel_sizes"]):
            conv = nn.Conv1d(in_ch, out_ch, kernel_size=k, padding=k // 2)
            self.conv_layers.append(conv)
            layers += [conv, nn.ReLU()]
            in_ch = out_ch
        if c["pool"] > 1:
            layers.append(nn.MaxPool1d(c["pool"]))
        layers += [nn.Dropout(c["dropout"]), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        n_flat = in_ch * (c["n_v"] // c["pool"])
        dense: list[nn.Module] = []
        n_in = n_flat + (1 if c["use_redshift"] else 0) + (1 if c["use_log_n"] else 0)
        self.dense_layers: list[nn.Linear] = []
        for width in c["dense"]:
            lin = nn.Linear(n_in, width)
            self.dense_layers.append(lin)
            dense += [lin, nn.ReLU()]
            n_in = width
        self.dense = nn.Sequential(*dense)
        self.out = nn.Linear(n_in, 2 if c["head"] == "gaussian" else 1)

    def forward(
        self,
        images: torch.Tensor,
        z: torch.Tensor | None = None,
        log_n: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scaled log-mass (point head) or its mean and log-variance (Gaussian head)."""
        return self.out(self.embed(images, z, log_n))

    def embed(
        self,
        images: torch.Tensor,
        z: torch.Tensor | None = None,
        log_n: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Penultimate activations: the output of the last hidden dense layer (after its ReLU).

        ``forward(images, z, log_n) == self.out(self.embed(images, z, log_n))``. The embedding
        (64-d for the
        default configurations) is the representation the output head reads; its distance from
        the training distribution is the out-of-domain score of
        :mod:`astro_cnnmass.uncertainty`. Dropout follows the module's mode (call ``eval()``
        for a deterministic embedding).

        Parameters
        ----------
        images : torch.Tensor, shape (n, n_v, n_R) or (n, n_v)
            KDE images, as for :meth:`forward`.
        z : torch.Tensor, shape (n,), optional
            Scaled redshift (required when ``use_redshift``).
        log_n : torch.Tensor, shape (n,), optional
            log10 of the number of galaxies in the cylinder (required when ``use_log_n``;
            ignored otherwise).

        Returns
        -------
        torch.Tensor, shape (n, dense[-1])
            Dimensionless activations (>= 0).
        """
        c = self.config
        x = images * c["input_scale"]
        if c["arch"] == "cnn1d":
            x = x.reshape(x.shape[0], 1, c["n_v"])
        else:  # (n, n_v, n_R) -> (n, n_R, n_v): radial bins are channels
            x = x.transpose(1, 2)
        return self.dense_from_features(self.features(x), z, log_n)

    def dense_from_features(
        self, h: torch.Tensor, z: torch.Tensor | None, log_n: torch.Tensor | None
    ) -> torch.Tensor:
        """The dense part of :meth:`embed`: convolutional features plus z and log10 N.

        Parameters
        ----------
        h : torch.Tensor, shape (n, n_features)
            Output of ``self.features`` (flattened convolutional features).
        z, log_n : torch.Tensor, shape (n,), optional
            Scaled redshift and log10 of the galaxy count, for networks that read them.

        Returns
        -------
        torch.Tensor, shape (n, dense[-1])
            The embedding (penultimate activations).
        """
        c = self.config
        if c["use_redshift"]:
            if z is None:
                raise ValueError("this network takes the scaled redshift z as second input")
            h = torch.cat([h, z.reshape(-1, 1).to(h.dtype)], dim=1)
        if c.get("use_log_n", False):
            if log_n is None:
                raise ValueError(
                    "this network takes log10 of the number of cylinder galaxies (log_n) as an "
                    "input"
                )
            lo, hi = c["log_n_range"]
            scaled = (log_n.reshape(-1, 1).to(h.dtype) - (lo + hi) / 2) * (2.0 / (hi - lo))
            h = torch.cat([h, scaled], dim=1)
        return self.dense(h)

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        """Rescale each unit's incoming weight vector to an L2 norm <= ``max_norm`` (Keras).

        Call after every optimiser step. The constraint applies to the convolutions (norm
        over input channels and kernel taps, per output filter) and, if ``max_norm_dense``, to
        the hidden dense layers (norm over inputs, per unit).
        """
        max_norm = self.config["max_norm"]
        if max_norm is None:
            return
        layers: list[nn.Module] = list(self.conv_layers)
        if self.config["max_norm_dense"]:
            layers += self.dense_layers
        for layer in layers:
            w = layer.weight
            w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=max_norm))


def build_network(config: dict) -> CNNMassNet:
    """Build a network from its configuration dict.

    Parameters
    ----------
    config : dict
        See :func:`validate_network_config`; missing keys take the architecture's defaults.

    Returns
    -------
    CNNMassNet
        A freshly initialised module (train mode, CPU, float32).

    Raises
    ------
    ValueError
        If the configuration is invalid (for example an unknown key).
    """
    return CNNMassNet(config)


def gaussian_nll(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood of Ho et al. (2021), up to a constant.

    Parameters
    ----------
    output : torch.Tensor, shape (n, 2)
        Mean ``mu`` and log-variance ``s`` of the scaled log-mass.
    target : torch.Tensor, shape (n,)
        Scaled log-mass.

    Returns
    -------
    torch.Tensor
        ``mean[(y - mu)^2 exp(-s) + s] / 2`` (scalar).
    """
    mu, s = output[:, 0], output[:, 1]
    return 0.5 * torch.mean((target - mu) ** 2 * torch.exp(-s) + s)


def loss_function(head: str):
    """The training loss of a head: MSE for ``"point"``, :func:`gaussian_nll` for ``"gaussian"``."""
    if head == "gaussian":
        return gaussian_nll
    if head == "point":
        return lambda output, target: torch.mean((output[:, 0] - target) ** 2)
    raise ValueError(f"head must be one of {HEADS}, got {head!r}")
