"""Energy / SynOps report: exact counts on hand-set spikes, ANN vs SNN, T scaling, errors."""

import json

import pytest
import snntorch as snn
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from snn_singlestep import S2Cell
from snn_singlestep.energy import ENERGY_45NM, compare, energy_report
from snn_singlestep.errors import ConfigError, ShapeError


def test_linear_on_hand_set_spikes_counts_nonzero_inputs_times_fan_out():
    net = nn.Sequential(nn.Linear(4, 3))
    spikes = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])  # 3 spikes
    report = energy_report(net, spikes)
    assert (report.macs, report.synops) == (0, 3 * 3)
    assert report.energy_pj == pytest.approx(9 * ENERGY_45NM["ac"])


def test_linear_on_real_input_counts_macs():
    report = energy_report(nn.Sequential(nn.Linear(4, 3)), torch.full((2, 4), 0.5))
    assert (report.macs, report.synops) == (2 * 4 * 3, 0)
    assert report.energy_pj == pytest.approx(24 * 4.6)


def test_conv_fan_out_of_a_single_spike_depends_on_its_position():
    conv = nn.Conv2d(1, 2, 3, padding=0, bias=False)
    with torch.no_grad():
        conv.weight.normal_()
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0  # the centre pixel feeds all 3x3 output positions
    assert energy_report(nn.Sequential(conv), x).synops == 9 * 2
    corner = torch.zeros(1, 1, 5, 5)
    corner[0, 0, 0, 0] = 1.0  # a corner pixel feeds one output position
    assert energy_report(nn.Sequential(conv), corner).synops == 1 * 2


def test_ann_and_snn_with_the_same_weights():
    torch.manual_seed(0)
    first, second = nn.Linear(6, 5), nn.Linear(5, 2)
    x = torch.rand(3, 6)
    ann = energy_report(nn.Sequential(first, nn.ReLU(), second), x)
    snn_net = nn.Sequential(first, S2Cell(threshold=0.1), second)
    spikes = (first(x) >= 0.1).sum().item()
    report = energy_report(snn_net, x)
    assert ann.macs == 3 * (6 * 5 + 5 * 2) and ann.synops == 0
    assert report.macs == 3 * 6 * 5  # real-valued input still needs MACs
    assert report.synops == spikes * 2
    assert report.layers[1].firing_rate == pytest.approx(spikes / 15)
    assert report.energy_pj < ann.energy_pj


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_snntorch_net_run_for_t_steps_scales_with_t(steps):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 6), snn.Leaky(beta=0.5, init_hidden=True), nn.Linear(6, 2))
    x = torch.rand(1, 2, 8).repeat(steps, 1, 1)
    report = energy_report(net, x, steps=steps)
    assert report.macs == steps * 2 * 8 * 6
    assert report.steps == steps and report.batch_size == 2


def test_spikingjelly_multi_step_mode():
    net = nn.Sequential(layer.Linear(4, 3), neuron.IFNode(), layer.Linear(3, 2))
    functional.set_step_mode(net, "m")
    x = torch.rand(5, 2, 4)  # T=5, B=2
    report = energy_report(net, x)
    spikes_rate = report.layers[1].firing_rate
    assert report.macs == 5 * 2 * 4 * 3
    assert report.synops == round(spikes_rate * 5 * 2 * 3) * 2


def test_report_prints_and_serialises():
    net = nn.Sequential(nn.Linear(4, 3), S2Cell(), nn.Linear(3, 2))
    report = energy_report(net, torch.rand(2, 4), table={"ac": 0.03})
    text = str(report)
    assert "total" in text and "per sample" in text and "S2Cell" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["table_pj"] == {"mac": 4.6, "ac": 0.03}
    assert data["total"]["macs"] == report.macs
    assert "ANN" in compare({"ANN": report})


def test_bad_inputs():
    with pytest.raises(ConfigError, match="no parameters"):
        energy_report(nn.Sequential(nn.ReLU()), torch.rand(2, 3))
    with pytest.raises(ShapeError, match=r"shape \(2, 5\) does not fit Sequential"):
        energy_report(nn.Sequential(nn.Linear(4, 3)), torch.rand(2, 5))
    with pytest.raises(ConfigError, match=r"unknown energy table key 'mul'.*\['ac', 'mac'\]"):
        energy_report(nn.Sequential(nn.Linear(4, 3)), torch.rand(2, 4), table={"mul": 1.0})
    with pytest.raises(ConfigError, match="must be a finite number"):
        energy_report(nn.Sequential(nn.Linear(4, 3)), torch.rand(2, 4), table={"mac": -1.0})
    with pytest.raises(ShapeError, match=r"steps=3 .* \[T=3, B, \.\.\.\]"):
        energy_report(nn.Sequential(nn.Linear(4, 3)), torch.rand(2, 4), steps=3)
    with pytest.raises(ConfigError, match="steps"):
        energy_report(nn.Sequential(nn.Linear(4, 3)), torch.rand(2, 4), steps=0)


def test_model_mode_is_restored():
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    net.train()
    energy_report(net, torch.rand(4, 4))
    assert net.training
