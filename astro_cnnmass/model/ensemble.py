"""All members of an ensemble evaluated as one network: grouped convolutions, batched dense layers.

The members of a bundle's ensemble share their architecture and read the same input, so the
whole ensemble runs as one network with the members side by side along the channels:

* the first convolution (~80 % of a CNN_2D member's FLOPs: 48 input channels, 5 taps) is one
  convolution with the members' filters stacked along its output channels (one larger,
  better-shaped matrix product instead of one small product per member);
* every later convolution is a *grouped* convolution (``groups`` = number of members): member
  ``j``'s filters read only member ``j``'s channels (for up to ``BLOCK_DIAGONAL_MAX_MEMBERS``
  members, one dense convolution with block-diagonal weights, which is faster there);
* pooling runs on all channels at once; the dense layers and the head are batched matrix
  products over the members (``baddbmm`` with the members' stacked weights).

For CNN_2D the convolutions run as 1 × k ``conv2d`` on channels-last memory, which is the
images' own layout of (clusters, radial bins as channels, 1, velocity bins): no transposed
copy of the input, and no copy of each member's slice between the layers. On the 2-core CPU
the network alone (512-image micro-batches of the bundled three-member model) runs ~1.8× as
fast as the previous grouped pass, which evaluated the members' own modules after the fused
first layer on contiguous copies of their slices; ``estimate_catalog`` gained ~15 % (issue
14, ``docs/performance.rst``).

The kernels sum the same products in other orders than the members' own modules, so the
grouped pass agrees with the member-by-member pass to float32 rounding (~1e-6 relative,
checked in ``tests/test_device_path.py``).

Works for networks with and without the galaxy-count input (``network_config["use_log_n"]``,
model v2), with any number of convolutions and dense layers, and for both architectures
(CNN_1D, CNN_2D); deterministic (dropout off) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BLOCK_DIAGONAL_MAX_MEMBERS", "GroupedEnsemble"]

#: Ensembles of at most this many members run their later convolutions as one dense convolution
#: with block-diagonal weights rather than a grouped one: on the 2-core CPU, for the bundled
#: CNN_2D's second layer (24 -> 10 channels, 3 taps), 13 vs 18 us a cluster for 3 members,
#: equal for 5, 61 vs 43 for 8 (torch 2.13 oneDNN kernels, channels-last).
BLOCK_DIAGONAL_MAX_MEMBERS = 4


class GroupedEnsemble(nn.Module):
    """The members of an ensemble fused into one network (evaluation only, dropout off).

    Parameters
    ----------
    networks : sequence of astro_cnnmass.model.networks.CNNMassNet
        The members (same configuration, same device); all their weights are copied into
        stacked buffers (on the members' device), so later changes to the members are not
        seen.

    Notes
    -----
    ``forward(images, z, log_n)`` takes the inputs of
    :meth:`~astro_cnnmass.model.networks.CNNMassNet.forward` (``images`` (n, n_v, n_R) or
    (n, n_v), scaled redshift ``z`` (n,), ``log_n`` = log10 of the cylinder galaxy count (n,)
    for networks that read it) and returns ``(outputs, embedding0)``: ``outputs`` of shape
    ``(n_members, n, n_out)`` (scaled log-mass, or its mean and log-variance) and the
    penultimate activations of member 0, shape ``(n, width)`` (the out-of-domain embedding).
    """

    def __init__(self, networks: Sequence[Any]) -> None:
        super().__init__()
        networks = list(networks)
        if not networks:
            raise ValueError("an ensemble needs at least one network")
        self.config = dict(networks[0].config)
        for net in networks[1:]:
            if net.config != networks[0].config:
                raise ValueError("all members of a grouped ensemble must share their config")
        self.n_members = len(networks)
        convs = [net.conv_layers for net in networks]
        self.paddings = [int(layer.padding[0]) for layer in convs[0]]
        self.n_dense = len(networks[0].dense_layers)
        with torch.no_grad():
            self.conv_groups = [1] * len(convs[0])
            for i in range(len(convs[0])):
                # (members x out, in, k): stacked along the output channels; layers after the
                # first read their own member's channels only (grouped convolution) or, for
                # few members, a block-diagonal dense one (its zero blocks add exact zeros)
                w = torch.cat([c[i].weight for c in convs]).detach().clone()
                if i > 0 and self.n_members > BLOCK_DIAGONAL_MAX_MEMBERS:
                    self.conv_groups[i] = self.n_members
                elif i > 0:
                    w = torch.block_diag(
                        *(m.reshape(m.shape[0], -1) for m in w.split(convs[0][i].out_channels))
                    ).reshape(w.shape[0], self.n_members * w.shape[1], w.shape[2])
                self.register_buffer(f"conv_w{i}", w)
                self.register_buffer(f"conv_b{i}", torch.cat([c[i].bias for c in convs]).clone())
            dense = [[*net.dense_layers, net.out] for net in networks]
            for i in range(self.n_dense + 1):
                # (members, in, out) and (members, 1, out), for baddbmm over the members
                w = torch.stack([d[i].weight.t() for d in dense]).contiguous()
                self.register_buffer(f"dense_w{i}", w)
                self.register_buffer(
                    f"dense_b{i}", torch.stack([d[i].bias for d in dense])[:, None]
                )
        self.eval()

    def _convolutions(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional features of every member, shape (n, members, channels x length)."""
        c = self.config
        n, groups = x.shape[0], self.n_members
        if c["arch"] == "cnn1d":
            h = x.reshape(n, 1, c["n_v"])
            for i, pad in enumerate(self.paddings):
                w, b = getattr(self, f"conv_w{i}"), getattr(self, f"conv_b{i}")
                h = F.conv1d(h, w, b, padding=pad, groups=self.conv_groups[i]).relu_()
            if c["pool"] > 1:
                h = F.max_pool1d(h, c["pool"])
        else:
            # (n, n_v, n_R) is already (n, n_R, 1, n_v) in channels-last memory (radial bins are
            # channels): 1 x k conv2d read it, and each other's output, without copies
            h = x.transpose(1, 2).unsqueeze(2).contiguous(memory_format=torch.channels_last)
            for i, pad in enumerate(self.paddings):
                w, b = getattr(self, f"conv_w{i}").unsqueeze(2), getattr(self, f"conv_b{i}")
                h = F.conv2d(h, w, b, padding=(0, pad), groups=self.conv_groups[i]).relu_()
            if c["pool"] > 1:
                h = F.max_pool2d(h, (1, c["pool"]))
            h = h.squeeze(2).contiguous()  # (n, members x channels, length): members' flatten
        return h.reshape(n, groups, -1)

    def forward(
        self,
        images: torch.Tensor,
        z: torch.Tensor | None = None,
        log_n: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs of every member, ``(n_members, n, n_out)``, and member 0's embedding.

        Parameters
        ----------
        images : torch.Tensor, shape (n, n_v, n_R) or (n, n_v), float32
            KDE images (each summing to 1).
        z : torch.Tensor, shape (n,), optional
            Scaled redshift (required when the networks use it).
        log_n : torch.Tensor, shape (n,), optional
            log10 of the number of cylinder galaxies (networks with ``use_log_n``).

        Returns
        -------
        outputs : torch.Tensor, shape (n_members, n, n_out)
        embedding0 : torch.Tensor, shape (n, width)
        """
        c = self.config
        h = self._convolutions(images * c["input_scale"])
        n = h.shape[0]
        extra = []
        if c["use_redshift"]:
            if z is None:
                raise ValueError("this network takes the scaled redshift z as second input")
            extra.append(z.reshape(-1, 1).to(h.dtype))
        if c.get("use_log_n", False):
            if log_n is None:
                raise ValueError("this network takes log10 of the number of cylinder galaxies")
            lo, hi = c["log_n_range"]
            extra.append((log_n.reshape(-1, 1).to(h.dtype) - (lo + hi) / 2) * (2.0 / (hi - lo)))
        if extra:
            inputs = torch.cat(extra, dim=1)[:, None, :].expand(n, self.n_members, len(extra))
            h = torch.cat([h, inputs], dim=2)
        h = h.transpose(0, 1)  # (members, n, features)
        for i in range(self.n_dense):
            w, b = getattr(self, f"dense_w{i}"), getattr(self, f"dense_b{i}")
            h = torch.baddbmm(b, h, w).relu_()
        w, b = getattr(self, f"dense_w{self.n_dense}"), getattr(self, f"dense_b{self.n_dense}")
        return torch.baddbmm(b, h, w), h[0]
