"""Contract shared by every single-step neuron we ship (plain torch, snnTorch, SpikingJelly)."""

import io

import pytest
import torch
from torch import nn

from snn_singlestep import S2Cell, S2Neuron, S2Node, s2_grad

NEURONS = {
    "S2Cell": lambda: S2Cell(threshold=0.5),
    "S2Neuron": lambda: S2Neuron(threshold=0.5, init_hidden=True),
    "S2Node": lambda: S2Node(v_threshold=0.5),
}


@pytest.fixture(params=sorted(NEURONS), ids=str)
def make(request):
    return NEURONS[request.param]


def _net(make):
    return nn.Sequential(nn.Linear(6, 8), make(), nn.Linear(8, 3))


def test_spike_rule_and_surrogate_gradient(make):
    neuron = make()
    x = torch.tensor([0.0, 0.49, 0.5, 0.51, 3.0], requires_grad=True)
    spikes = neuron(x)
    assert spikes.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # v >= threshold fires
    spikes.sum().backward()
    torch.testing.assert_close(x.grad, s2_grad(x.detach() - 0.5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_output_follows_input_dtype(make, dtype):
    x = torch.tensor([[0.2, 0.7]], dtype=dtype)
    assert make()(x).dtype == dtype


def test_no_state_between_calls(make):
    neuron = make()
    x = torch.tensor([0.3, 0.6])
    first = neuron(x)
    neuron(torch.full((7, 3), 9.0))  # another batch size and shape in between
    assert torch.equal(neuron(x), first)


def test_torch_save_roundtrip(make):
    net = _net(make)
    x = torch.randn(4, 6)
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.load(buffer, weights_only=False)(x), net(x))


def test_torch_compile_smoke(make):
    net = _net(make)
    x = torch.randn(4, 6, requires_grad=True)
    compiled = torch.compile(net, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, net(x))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
