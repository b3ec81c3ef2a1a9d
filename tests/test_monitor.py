"""FiringRateMonitor on our neurons and on the frameworks' own multi-step neurons."""

import pytest
import snntorch as snn
import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn

from snn_singlestep import S2Cell, S2Neuron, S2Node
from snn_singlestep.core.registry import is_spiking
from snn_singlestep.monitor import FiringRateMonitor


def test_rates_of_hand_set_spikes_accumulate_over_calls():
    net = nn.Sequential(S2Cell(threshold=0.5), nn.Identity(), S2Neuron(threshold=0.5, init_hidden=True))
    with FiringRateMonitor(net) as monitor:
        net(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))  # layer 0: 1/4 fire; layer 2 sees spikes
        net(torch.tensor([[1.0, 1.0, 1.0, 0.0]]))  # layer 0: 3/4 fire
    assert monitor.rates() == {"0": 0.5, "2": 0.5}
    monitor.reset()
    assert monitor.rates() == {}


def test_hooks_are_removed_on_exit():
    net = nn.Sequential(S2Cell())
    with FiringRateMonitor(net) as monitor:
        pass
    net(torch.ones(3))
    assert monitor.rates() == {}
    assert not net[0]._forward_hooks


def test_multi_step_spikingjelly_counts_every_step():
    node = S2Node(v_threshold=0.5, step_mode="m")
    net = nn.Sequential(nn.Identity(), node)
    functional.set_step_mode(net, "m")
    x = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]], [[0.0, 0.0]]])  # T=3, B=1, 2 neurons
    with FiringRateMonitor(net) as monitor:
        net(x)
    assert monitor.rates() == {"1": pytest.approx(3 / 6)}


def test_snntorch_leaky_tuple_output_uses_spikes():
    lif = snn.Leaky(beta=0.5)
    with FiringRateMonitor(nn.Sequential(lif)) as monitor:
        lif(torch.tensor([2.0, 0.0, 0.0, 0.0]))
    assert monitor.rates() == {"0": 0.25}


@pytest.mark.parametrize(
    "module,expected",
    [(S2Cell(), True), (S2Node(), True), (snn.Leaky(0.9), True), (neuron.LIFNode(), True),
     (nn.ReLU(), False), (nn.Linear(2, 2), False)],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else str(v),
)
def test_is_spiking(module, expected):
    assert is_spiking(module) is expected


def test_monitor_names_a_model_that_is_not_a_module():
    from snn_singlestep.errors import ConfigError

    with pytest.raises(ConfigError, match="model must be a torch.nn.Module, got str"):
        FiringRateMonitor("net")
