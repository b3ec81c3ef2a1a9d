"""Calibrated collapse: thresholds set from data so single-step rates match multi-step rates."""

from __future__ import annotations

import copy
import importlib.util
import pathlib

import pytest
import snntorch as snn
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

import snn_singlestep as ss
from snn_singlestep import ConfigError
from snn_singlestep.convert.calibrate import _threshold_for
from snn_singlestep.spikingjelly import rules as jc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_threshold_for_lets_exactly_k_values_fire():
    torch.manual_seed(0)
    h = torch.randn(3, 1000)
    rate = torch.tensor([0.0, 0.137, 1.0])
    theta = _threshold_for(h, rate)
    fired = (h >= theta[:, None]).sum(1).tolist()
    assert fired == [0, 137, 1000]


def _sj_net():
    net = nn.Sequential(
        layer.Conv2d(2, 6, 3, padding=1),
        layer.BatchNorm2d(6),
        neuron.LIFNode(tau=2.0),
        layer.Conv2d(6, 6, 3, padding=1),
        layer.BatchNorm2d(6),
        neuron.ParametricLIFNode(init_tau=3.0),
        layer.Flatten(),
        layer.Linear(6 * 5 * 5, 4),
        neuron.IFNode(),
    )
    functional.set_step_mode(net, "m")
    return net


def _multi_step_rates(net, x, T, granularity):
    """Mean spike rate of each node over T steps, computed independently of _calibrate."""
    rates = {}
    hooks = []
    for name, m in net.named_modules():
        if isinstance(m, neuron.BaseNode):

            def hook(mod, inp, out, name=name):
                s = (out != 0).float().flatten(0, 1)  # [T*B, C, ...]
                rates[name] = (
                    s.mean()
                    if granularity == "layer"
                    else s.transpose(0, 1).reshape(s.shape[1], -1).mean(1)
                )

            hooks.append(m.register_forward_hook(hook))
    net.eval()
    with torch.no_grad():
        functional.reset_net(net)
        net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1))
        functional.reset_net(net)
    for h in hooks:
        h.remove()
    return rates


@pytest.mark.parametrize("granularity", ["layer", "channel"])
def test_calibrated_rates_match_multi_step_rates(granularity):
    torch.manual_seed(0)
    src = _sj_net()
    x = torch.rand(64, 2, 5, 5) * 3
    T = 5
    target = _multi_step_rates(src, x, T, granularity)
    weights = {k: v.clone() for k, v in src.state_dict().items()}
    net, report = ss.spikingjelly.collapse(
        src,
        mode="calibrated",
        data=[(x[:32], None), (x[32:], None)],
        T=T,
        granularity=granularity,
        return_report=True,
    )
    # weights untouched (in the source and the copy); thresholds are the only change
    for k, v in net.state_dict().items():
        if k.endswith("v_threshold_calibrated"):
            continue
        assert torch.equal(v, weights[k]), k
    assert all(torch.equal(v, weights[k]) for k, v in src.state_dict().items())
    assert [c.path for c in report.calibration] == ["2", "5", "8"]
    # single-step rates on the calibration data now equal the multi-step rates
    got = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, name=name: got.__setitem__(name, o))
        for name, m in net.named_modules()
        if isinstance(m, jc.CollapsedNode)
    ]
    net.eval()
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    for name, out in got.items():
        theta = net.get_submodule(name).v_threshold_calibrated
        if granularity == "layer":
            assert theta.shape == ()
            assert abs(float(out.mean()) - float(target[name])) <= 1.0 / out.numel() + 1e-6
        else:
            assert theta.shape[0] == out.shape[1]
            per_channel = out.transpose(0, 1).reshape(out.shape[1], -1).mean(1)
            n = out.numel() // out.shape[1]
            torch.testing.assert_close(
                per_channel, target[name].float(), rtol=0, atol=1.0 / n + 1e-6
            )
    for c in report.calibration:
        assert abs(c.rate_after - c.target_rate) < 0.02
    assert "calibrated   2:" in str(report)


def test_calibration_of_a_time_structured_model_uses_its_T():
    from spikingjelly.activation_based.model import ms_resnet

    torch.manual_seed(0)
    src = ms_resnet.ms_resnet18(T=3, num_classes=4, base_channels=8)
    x = torch.rand(8, 3, 16, 16)
    net, report = ss.spikingjelly.collapse(src, mode="calibrated", data=[x], return_report=True)
    assert net.T == 1 and src.T == 3 and len(report.calibration) == 17
    assert all(abs(c.rate_after - c.target_rate) < 0.05 for c in report.calibration)
    assert net(x).shape == (8, 4)


def test_snntorch_calibration_keeps_learnable_threshold():
    torch.manual_seed(0)
    src = nn.Sequential(
        nn.Linear(10, 32),
        snn.Leaky(beta=0.9, init_hidden=True, learn_threshold=True),
        nn.Linear(32, 8),
        snn.Synaptic(alpha=0.9, beta=0.9, init_hidden=True),
    )
    x = torch.rand(128, 10)
    net, report = ss.snntorch.collapse(
        src, mode="calibrated", data=[x], T=6, granularity="channel", return_report=True
    )
    assert isinstance(net[1].threshold, nn.Parameter) and net[1].threshold.shape == (32,)
    assert net[3].threshold.shape == (8,)
    for c in report.calibration:
        assert c.target_rate > 0 and abs(c.rate_after - c.target_rate) < 0.02
    net(x).sum().backward()
    assert net[1].threshold.grad is not None
    # The gradient's values, against the first step written out by hand (float64): v = W x + b
    # for both neurons (Leaky: β·0 + I; Synaptic: syn = I, v = syn), spikes H(v - θ) with the
    # documented S² derivative (α = 4, β = 1) as their gradient, loss = sum of the output spikes.
    net = net.double()
    net.zero_grad()
    xd = x.double()
    out = net(xd)
    out.sum().backward()
    got = net[1].threshold.grad
    theta1 = net[1].threshold.detach().clone().requires_grad_()
    w1, b1, w2, b2 = (t.detach() for t in (net[0].weight, net[0].bias, net[2].weight, net[2].bias))
    s1 = _s2_straight_through(nn.functional.linear(xd, w1, b1) - theta1)
    s2 = _s2_straight_through(nn.functional.linear(s1, w2, b2) - net[3].threshold.detach())
    (want,) = torch.autograd.grad(s2.sum(), theta1)
    torch.testing.assert_close(out.detach(), s2.detach())  # same spikes
    assert 0 < float(s1.detach().mean()) < 1 and 0 < float(s2.detach().mean()) < 1  # not all
    assert bool((want != 0).all())  # every threshold of layer 1 gets a gradient
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def _s2_straight_through(z: torch.Tensor, alpha: float = 4.0, beta: float = 1.0) -> torch.Tensor:
    """H(z) forward (H(0) = 1); backward: the documented S² derivative, written out here
    without the package (sigmoid branch below 0, β/(1+z) at and above 0)."""
    below, above = torch.clamp(z, max=0.0), torch.clamp(z, min=0.0)
    primitive = torch.where(z < 0, torch.sigmoid(alpha * below), beta * torch.log1p(above) + 0.5)
    return (z >= 0).to(z) + (primitive - primitive.detach())


def test_calibration_errors():
    src = _sj_net()
    x = torch.rand(4, 2, 5, 5)
    with pytest.raises(ConfigError, match="T must be"):
        ss.spikingjelly.collapse(src, mode="calibrated", data=[x])
    with pytest.raises(ConfigError, match="granularity"):
        ss.spikingjelly.collapse(src, mode="calibrated", data=[x], T=4, granularity="neuron")
    with pytest.raises(ConfigError, match="empty"):
        ss.spikingjelly.collapse(src, mode="calibrated", data=[], T=4)
    with pytest.raises(ConfigError, match="tensors or"):
        ss.spikingjelly.collapse(src, mode="calibrated", data=["x"], T=4)
    with pytest.raises(ConfigError, match="channel_dim"):
        ss.spikingjelly.collapse(
            src, mode="calibrated", data=[x], T=4, granularity="channel", channel_dim=5
        )


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "collapse_benchmark", ROOT / "benchmarks" / "collapse.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digits_evidence_calibration_beats_chance_and_finetunes_to_multi_step_accuracy(seed):
    """A conv net trained at T=4 on digits, collapsed: the numbers docs/collapse.md reports."""
    r = _benchmark().digits_evidence(T=4, epochs=8, seed=seed)
    assert r["multi_step"] >= 0.95
    assert r["calibrated"] >= 0.85  # far above chance (10 %) without fine-tuning
    assert r["calibrated"] > r["exact"]
    assert r["calibrated_finetuned"] >= r["multi_step"] - 0.01  # within 1 pt after one epoch at T=1
    # the exact copy under-fires; calibration restores the multi-step rates
    assert sum(r["exact_rates"]) < 0.8 * sum(r["target_rates"])
    for calibrated, target in zip(r["calibrated_rates"], r["target_rates"]):
        assert abs(calibrated - target) < 0.1 * target


def test_calibrated_inplace_keeps_a_reference_and_bad_args_leave_net_intact():
    torch.manual_seed(0)
    src = _sj_net()
    twin = copy.deepcopy(src)
    x = torch.rand(16, 2, 5, 5) * 3
    with pytest.raises(ConfigError, match="T must be"):
        ss.spikingjelly.collapse(src, mode="calibrated", data=(b for b in [x]), inplace=True)
    assert type(src[2]) is neuron.LIFNode  # validated before anything was converted
    net, report = ss.spikingjelly.collapse(
        src, mode="calibrated", data=(b for b in [x]), T=4, inplace=True, return_report=True
    )
    assert net is src and isinstance(src[2], jc.CollapsedNode)
    assert report.calibration[0].target_rate > 0
    # the multi-step reference was a copy of the source, as without inplace
    other = ss.spikingjelly.collapse(twin, mode="calibrated", data=[x], T=4)
    for name in ("2", "5", "8"):
        assert torch.equal(
            net.get_submodule(name).v_threshold_calibrated,
            other.get_submodule(name).v_threshold_calibrated,
        )
