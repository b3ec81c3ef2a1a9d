"""PSPNorm as a SpikingJelly layer (both step modes) and as a plain module in snnTorch code."""

import pytest
import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

from snn_singlestep import S2Neuron, S2Node
from snn_singlestep.core import psp as core_psp
from snn_singlestep.errors import ConfigError, ShapeError
from snn_singlestep.spikingjelly.psp import PSPNorm1d, PSPNorm2d


def test_multi_step_folds_time_into_batch():
    torch.manual_seed(1)
    x_seq = torch.randn(4, 3, 2, 5, 5)
    m = PSPNorm2d(2, step_mode="m")
    folded = core_psp.PSPNorm2d(2)
    torch.testing.assert_close(m(x_seq), folded(x_seq.flatten(0, 1)).view_as(x_seq))
    torch.testing.assert_close(m.running_sq_mean, folded.running_sq_mean)


def test_single_step_is_the_core_layer():
    x = torch.randn(3, 4)
    torch.testing.assert_close(PSPNorm1d(4)(x), core_psp.PSPNorm1d(4)(x))


def test_inside_a_spikingjelly_net_with_set_step_mode_and_reset():
    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1), PSPNorm2d(4), S2Node(), layer.Flatten(),
        layer.Linear(4 * 6 * 6, 3),
    )
    functional.set_step_mode(net, "m")
    assert net[1].step_mode == "m"
    out = net(torch.rand(2, 5, 1, 6, 6))
    assert out.shape == (2, 5, 3)
    functional.reset_net(net)
    functional.set_step_mode(net, "s")
    assert net(torch.rand(5, 1, 6, 6)).shape == (5, 3)


def test_errors():
    with pytest.raises(ShapeError, match=r"'m' expects \[T, B, C, \.\.\.\]"):
        PSPNorm1d(3, step_mode="m")(torch.randn(3))
    with pytest.raises(ConfigError, match="step_mode"):
        PSPNorm2d(3, step_mode="x")
    with pytest.raises(ShapeError, match="expects 3 channels"):
        PSPNorm2d(3, step_mode="m")(torch.randn(2, 2, 4, 5, 5))


def test_plain_module_in_snntorch_code_trains():
    net = nn.Sequential(
        nn.Linear(8, 16), core_psp.PSPNorm1d(16), S2Neuron(init_hidden=True), nn.Linear(16, 2)
    )
    x = torch.randn(32, 8)
    y = (x[:, 0] > 0).long()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
