"""Tests of astro_cnnmass.model.networks: shapes, configuration validation, max-norm, losses."""

import numpy as np
import pytest
import torch

from astro_cnnmass.model.networks import (
    build_network,
    default_network_config,
    gaussian_nll,
    loss_function,
    validate_network_config,
)

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", ["cnn2d", "cnn1d"])
@pytest.mark.parametrize(("head", "n_out"), [("point", 1), ("gaussian", 2)])
def test_output_shapes(arch, head, n_out):
    net = build_network(default_network_config(arch, head))
    x = torch.rand(5, 48, 48) if arch == "cnn2d" else torch.rand(5, 48)
    assert net(x, torch.zeros(5)).shape == (5, n_out)


def test_cnn2d_layers_follow_the_paper():
    net = build_network({"arch": "cnn2d", "head": "point"})
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (48, 24, 5),
        (24, 10, 3),
    ]
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool1d)]
    assert pools[0].kernel_size == 4
    dense = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    # 10 channels x 12 velocity bins + the redshift input
    assert [(d.in_features, d.out_features) for d in dense] == [(121, 128), (128, 64), (64, 1)]


def test_cnn1d_layers_follow_the_paper():
    net = build_network({"arch": "cnn1d", "use_redshift": False})
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 10), (10, 5)]
    dense = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert dense[0].in_features == 5 * 24
    assert net(torch.rand(3, 48)).shape == (3, 2)


def test_redshift_changes_the_output():
    torch.manual_seed(0)
    net = build_network(default_network_config()).eval()
    x = torch.rand(4, 48, 48)
    assert not torch.allclose(net(x, torch.zeros(4)), net(x, torch.ones(4)))
    with pytest.raises(ValueError, match="redshift"):
        net(x)


@pytest.mark.parametrize(
    "bad",
    [
        {"arch": "cnn3d"},
        {"head": "poisson"},
        {"n_layers": 3},
        {"kernel_sizes": [4, 3]},
        {"conv_channels": [24]},
        {"dropout": 1.5},
        {"pool": 0},
        {"max_norm": -1.0},
        {"arch": "cnn1d", "n_R": 48},
        {"use_redshift": "yes"},
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        build_network(bad)


def test_config_is_complete_and_plain():
    cfg = validate_network_config({"arch": "cnn2d"})
    assert cfg == default_network_config("cnn2d")
    assert all(isinstance(v, int | float | str | bool | list) or v is None for v in cfg.values())


def test_max_norm_holds_after_a_step():
    torch.manual_seed(0)
    net = build_network(default_network_config("cnn1d", "point", max_norm=0.5))
    opt = torch.optim.SGD(net.parameters(), lr=10.0)
    x, y = torch.rand(16, 48), torch.rand(16)
    loss = loss_function("point")(net(x, torch.zeros(16)), y)
    loss.backward()
    opt.step()
    net.apply_max_norm()
    for layer in [*net.conv_layers, *net.dense_layers]:
        norms = layer.weight.detach().flatten(1).norm(dim=1)
        assert float(norms.max()) <= 0.5 + 1e-5
    # the output layer is not constrained (as in Keras: no constraint on the last Dense)
    assert net.out.weight.shape == (1, 64)


def test_max_norm_dense_off_for_cnn2d():
    net = build_network(default_network_config("cnn2d", max_norm=1e-3))
    with torch.no_grad():
        net.dense_layers[0].weight.fill_(1.0)
    net.apply_max_norm()
    with torch.no_grad():
        assert float(net.conv_layers[0].weight.flatten(1).norm(dim=1).max()) <= 1e-3 + 1e-9
        assert float(net.dense_layers[0].weight.max()) == 1.0


def test_gaussian_nll_known_value():
    out = torch.tensor([[0.0, 0.0], [1.0, np.log(4.0)]])
    y = torch.tensor([1.0, 1.0])
    # ((1 - 0)^2 * 1 + 0 + 0 * 1/4 + log 4) / 2 / 2
    expected = (1.0 + np.log(4.0)) / 4
    assert float(gaussian_nll(out, y)) == pytest.approx(expected)
    assert loss_function("gaussian") is gaussian_nll
    with pytest.raises(ValueError):
        loss_function("quantile")
