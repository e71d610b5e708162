"""All members of an ensemble evaluated in one pass, sharing the first convolution.

The members of a bundle's ensemble share their architecture and read the same input. Their
first convolution, which holds ~80 % of a CNN_2D member's FLOPs (48 input channels, 5 taps), is
fused: the members' filters are stacked along the output channels into one convolution (one
larger, better-shaped matrix product, instead of one small product per member). For CNN_2D it
runs as a 1 × k ``conv2d`` on the images' own memory, which is already the channels-last layout
of (clusters, radial bins as channels, 1, velocity bins): no transposed copy, and on the CPU
about twice as fast as the ``conv1d`` of the members in isolation (issue 14). The rest of each
member (second convolution, pooling, dense layers, head) runs as the member's own modules on a
contiguous copy of its slice of the fused output.

The two kernels sum the same products in different orders, so the grouped pass agrees with the
member-by-member pass to float32 rounding (~1e-6 relative, checked in
``tests/test_device_path.py``); for CNN_1D (a ``conv1d`` either way) it is bit-identical on the
CPU kernels of torch.

Works for networks with and without the galaxy-count input (``network_config["use_log_n"]``,
model v2) and for both architectures (CNN_1D, CNN_2D); deterministic (dropout off) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["GroupedEnsemble"]


class GroupedEnsemble(nn.Module):
    """The members of an ensemble fused into one network (evaluation only, dropout off).

    Parameters
    ----------
    networks : sequence of astro_cnnmass.model.networks.CNNMassNet
        The members (same configuration, same device); the first-layer weights are copied
        (stacked), the other modules are shared with the members.

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
        self.members = nn.ModuleList(networks)
        first = [net.conv_layers[0] for net in networks]
        self.first_channels = first[0].out_channels
        self.padding = first[0].padding
        with torch.no_grad():
            self.register_buffer("w0", torch.cat([c.weight for c in first]).detach().clone())
            self.register_buffer("b0", torch.cat([c.bias for c in first]).detach().clone())
        self.eval()

    def _rest(self, net: Any, h: torch.Tensor, z: Any, log_n: Any) -> torch.Tensor:
        """Member ``net`` after its first convolution and ReLU: the embedding (penultimate)."""
        h = net.features[2:](h)  # second convolution onwards (dropout is off in eval mode)
        return net.dense_from_features(h, z, log_n)

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
        x = images * c["input_scale"]
        if c["arch"] == "cnn1d":
            x = x.reshape(x.shape[0], 1, c["n_v"])
            h = torch.relu(F.conv1d(x, self.w0, self.b0, padding=self.padding))
        else:
            # (n, n_v, n_R) is already (n, n_R, 1, n_v) in channels-last memory (radial bins are
            # channels): a 1 x k conv2d reads it without a transposed copy (module docstring);
            # the members read their slices as contiguous (n, C, n_v)
            x = x.transpose(1, 2).unsqueeze(2).contiguous(memory_format=torch.channels_last)
            w = self.w0.unsqueeze(2)
            h = torch.relu(F.conv2d(x, w, self.b0, padding=(0, self.padding[0]))).squeeze(2)
        k = self.first_channels
        outs = []
        emb0 = None
        for j, net in enumerate(self.members):
            e = self._rest(net, h[:, j * k : (j + 1) * k].contiguous(), z, log_n)
            if j == 0:
                emb0 = e
            outs.append(net.out(e))
        return torch.stack(outs), emb0
