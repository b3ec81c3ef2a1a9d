"""Every SpikingJelly 2.0 model-zoo constructor collapses: same output at T=1, same state_dict keys.

Small inputs (batch 2, 32×32 unless the model fixes its input size), no pretrained weights,
10 classes. Models whose forward is written for ``[T, B, ...]`` (MS-ResNet, the
transformers) keep step mode 'm' with T=1; all others run in step mode 's'.
"""

from __future__ import annotations

import gc
import inspect

import pytest
import torch
from spikingjelly.activation_based import base, functional, neuron
from spikingjelly.activation_based.model import (
    ms_resnet,
    parametric_lif_net,
    qkformer,
    sew_resnet,
    spike_driven_transformer,
    spikformer,
    spiking_resnet,
    spiking_vgg,
    spiking_vggws_ottt,
)
from torch import nn

import snn_singlestep as ss
from snn_singlestep.spikingjelly import rules as jc

# input shape of the parametric_lif_net models, whose flatten sizes fix the image size
PLIF_NET_SHAPES = {
    "MNISTNet": (1, 28, 28),
    "FashionMNISTNet": (1, 28, 28),
    "NMNISTNet": (2, 34, 34),
    "CIFAR10Net": (3, 32, 32),
    "CIFAR10DVSNet": (2, 128, 128),
    "DVSGestureNet": (2, 128, 128),
}


def _constructors(module):
    """The public model builders of a zoo module (functions; classes for parametric_lif_net)."""
    out = []
    for name in module.__all__:
        obj = getattr(module, name)
        if module is parametric_lif_net:
            if inspect.isclass(obj) and issubclass(obj, nn.Module):
                out.append(name)
        elif inspect.isfunction(obj):
            out.append(name)
    return out


def _build(module, name):
    """``(net, input_shape, layout)``: layout 'm' (multi-step), 's', or 'own' (builds [T, B])."""
    fn = getattr(module, name)
    if module in (spiking_resnet, spiking_vgg):
        return fn(spiking_neuron=neuron.LIFNode, num_classes=10), (3, 32, 32), "m"
    if module is sew_resnet:
        return fn(spiking_neuron=neuron.LIFNode, num_classes=10, cnf="ADD"), (3, 32, 32), "m"
    if module is parametric_lif_net:
        return fn(channels=8, spiking_neuron=neuron.ParametricLIFNode), PLIF_NET_SHAPES[name], "m"
    if module is spiking_vggws_ottt:  # OTTTLIFNode, single-step by construction
        return fn(num_classes=10), (3, 32, 32), "s"
    if module is spikformer and name != "spikformer_cifar10":
        return fn(img_size_h=32, img_size_w=32, num_classes=10), (3, 32, 32), "own"
    return fn(num_classes=10), (3, 32, 32), "own"


ZOO = [
    pytest.param(module, name, id=f"{module.__name__.rsplit('.', 1)[1]}.{name}")
    for module in (
        spiking_resnet,
        sew_resnet,
        spiking_vgg,
        parametric_lif_net,
        spiking_vggws_ottt,
        ms_resnet,
        spikformer,
        spike_driven_transformer,
        qkformer,
    )
    for name in _constructors(module)
]

# a few models are also checked in training mode, with a copy (inplace=False) and a strict
# checkpoint load
THOROUGH = {
    "spiking_resnet18",
    "sew_resnet18",
    "MNISTNet",
    "ottt_spiking_vggws",
    "ms_resnet18",
    "spikformer_ti",
    "sdt_8_384",
    "qkformer_10_384",
}


def test_every_listed_zoo_constructor_is_covered():
    names = {p.values[1] for p in ZOO}
    assert len(names) == len(ZOO) == 49  # 9 + 9 + 8 + 6 + 9 + 3 + 3 + 1 + 1
    assert {
        "spiking_resnet18",
        "sew_wide_resnet101_2",
        "spiking_vgg19_bn",
        "DVSGestureNet",
    } <= names
    assert {
        "ottt_spiking_vggws",
        "max_resnet18",
        "spikformer_cifar10",
        "sdt_8_384",
        "qkformer_10_384",
    } <= names


def _reference(net, x, layout):
    functional.reset_net(net)
    if layout == "m":
        out = net(x.unsqueeze(0))[0]
    elif layout == "own":
        net.T = 1
        out = net(x)
    else:
        out = net(x)
    functional.reset_net(net)
    return out


@pytest.mark.parametrize("module,name", ZOO)
def test_zoo_model_collapses(module, name):
    torch.manual_seed(0)
    net, shape, layout = _build(module, name)
    if layout == "m":
        functional.set_step_mode(net, "m")
    thorough = name in THOROUGH
    x = torch.rand(2, *shape) * 8
    # Training mode: BatchNorm uses batch statistics, so a freshly initialised net fires.
    # The OTTT VGGs have no BatchNorm and run twice per layer in training (spike and
    # trace paths), so they are checked in eval mode.
    first = module is not spiking_vggws_ottt
    modes = (first, not first) if thorough else (first,)
    refs = {}
    with torch.no_grad():
        for training in modes:
            net.train(training)
            torch.manual_seed(1)
            refs[training] = _reference(net, x, layout)
    keys = list(net.state_dict())
    n_nodes = sum(isinstance(m, (neuron.BaseNode, neuron.SimpleBaseNode)) for m in net.modules())
    checkpoint = net.state_dict() if thorough else None

    single, report = ss.spikingjelly.collapse(net, inplace=not thorough, return_report=True)
    assert (single is net) != thorough
    assert not report.unconverted
    assert list(single.state_dict()) == keys
    if thorough:
        single.load_state_dict(checkpoint, strict=True)
    nodes = [m for m in single.modules() if isinstance(m, (neuron.BaseNode, neuron.SimpleBaseNode))]
    assert len(nodes) == n_nodes and all(isinstance(m, jc.CollapsedNode) for m in nodes)
    expected = "m" if layout == "own" else "s"
    assert {
        m.step_mode
        for m in single.modules()
        if isinstance(m, base.StepModule) and "s" in m.supported_step_mode()
    } == {expected}

    fired = []
    hooks = [m.register_forward_hook(lambda m, i, o: fired.append(float(o.sum()))) for m in nodes]
    with torch.no_grad():
        for training in modes:
            single.train(training)
            torch.manual_seed(1)
            out = single(x)
            torch.testing.assert_close(out, refs[training], rtol=0, atol=0)
        if thorough:
            torch.testing.assert_close(single(x.unsqueeze(0)), out, rtol=0, atol=0)
    for h in hooks:
        h.remove()
    assert sum(fired) > 0  # spikes happened: the equality is not between silent nets
    del net, single, checkpoint
    gc.collect()


def test_transformer_time_dimension_error():
    net = spike_driven_transformer.sdt_8_384(num_classes=10)
    single = ss.spikingjelly.collapse(net)
    with pytest.raises(ss.ShapeError, match="single-step"):
        single(torch.rand(4, 2, 3, 32, 32))
    assert single.T == 1 and net.T == 4
