"""Models: MLP, CNN, pre-activation ResNet from any glue; the SpikingJelly model zoo."""

import pytest
import torch
from torch import nn

from snn_singlestep import S2Cell, S2Neuron, S2Node
from snn_singlestep.core import registry
from snn_singlestep.errors import ConfigError
from snn_singlestep.app.models import (
    MODELS,
    ZOO_NEURONS,
    build_model,
    build_zoo_model,
    single_step_zoo_model,
    zoo_in_shape,
    zoo_names,
)
from snn_singlestep.models import (
    FRAMEWORKS,
    SingleStepCNN,
    SingleStepMLP,
    make_neuron,
    swap_neurons,
)

NEURON_TYPES = {"torch": S2Cell, "snntorch": S2Neuron, "spikingjelly": S2Node}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_make_neuron(framework):
    neuron = make_neuron(framework, threshold=0.5)
    assert type(neuron) is NEURON_TYPES[framework] and registry.is_neuron(neuron)
    out = neuron(torch.tensor([[0.25, 0.5, 0.75]]))
    assert torch.equal(out, torch.tensor([[0.0, 1.0, 1.0]]))  # v = θ spikes
    with pytest.raises(ConfigError, match="framework must be one of torch, snntorch, "
                                          "spikingjelly; got 'jax'"):
        make_neuron("jax")


@pytest.mark.parametrize("in_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name", MODELS)
def test_every_model_takes_every_image_size(name, in_shape):
    net = build_model(name, in_shape=in_shape, num_classes=10, hidden=(8,), channels=(4, 8),
                      depth=8, width=4)
    x = torch.rand(3, *in_shape)
    assert net(x).shape == (3, 10)
    assert net(x.unsqueeze(0)).shape == (3, 10)  # [1, B, ...] is accepted


@pytest.mark.parametrize("name", MODELS)
def test_the_three_glues_build_the_same_net(name):
    outputs, grads, keys = {}, {}, {}
    for framework in FRAMEWORKS:
        torch.manual_seed(0)
        net = build_model(name, in_shape=(1, 8, 8), num_classes=10, framework=framework,
                          hidden=(16,), channels=(4, 8), depth=8, width=4)
        neurons = [m for m in net.modules() if isinstance(m, (S2Cell, S2Neuron, S2Node))]
        assert neurons and all(type(m) is NEURON_TYPES[framework] for m in neurons)
        torch.manual_seed(1)
        x = torch.randn(6, 1, 8, 8) * 3
        out = net(x)
        out.square().sum().backward()
        outputs[framework] = out.detach()
        grads[framework] = [p.grad.clone() for p in net.parameters()]
        keys[framework] = [name for name, _ in net.named_parameters()]
    for framework in FRAMEWORKS[1:]:
        assert torch.equal(outputs[framework], outputs["torch"])
        assert all(torch.equal(a, b) for a, b in zip(grads[framework], grads["torch"]))
        assert keys[framework] == keys["torch"]


def test_models_use_a_membrane_readout():
    mlp = build_model("mlp", in_shape=(1, 8, 8), num_classes=10, hidden=(8,))
    cnn = build_model("cnn", in_shape=(1, 8, 8), num_classes=10, channels=(4,))
    assert isinstance(mlp.readout, nn.Linear) and isinstance(cnn.readout, nn.Linear)
    cnn_layers = [type(m).__name__ for m in cnn.features]
    assert cnn_layers == ["Conv2d", "BatchNorm2d", "S2Neuron", "MaxPool2d"]
    assert cnn.readout.in_features == 4 * 4 * 4
    assert build_model("cnn", in_shape=(3, 32, 32), num_classes=10).readout.in_features == 32 * 8 * 8


def test_model_errors_are_clear():
    with pytest.raises(ConfigError, match="model must be one of mlp, cnn, preact-resnet; got 'x'"):
        build_model("x", in_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ConfigError, match="too small for 4 pooling blocks"):
        SingleStepCNN((1, 8, 8), 10, channels=(2, 2, 2, 2))
    with pytest.raises(ConfigError, match="in_shape must be"):
        SingleStepCNN((8, 8), 10)
    with pytest.raises(ConfigError, match=r"in_shape \(1, 8, 8\) holds 64 values, not in_features=63"):
        SingleStepMLP(63, 10, in_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="depth must be 6n"):
        build_model("preact-resnet", in_shape=(1, 8, 8), num_classes=10, depth=10)


def test_swap_neurons_keeps_thresholds_and_refuses_learnable_ones():
    net = nn.Sequential(nn.Linear(2, 2), S2Cell(0.25), nn.Sequential(S2Cell(2.0)))
    swap_neurons(net, "spikingjelly")
    assert type(net[1]) is S2Node and net[1].v_threshold == 0.25
    assert type(net[2][0]) is S2Node and net[2][0].v_threshold == 2.0
    swap_neurons(net, "snntorch")
    assert float(net[1].threshold) == 0.25
    with pytest.raises(ConfigError, match="neuron at '0' with another framework: its "
                                          "threshold is learnable"):
        swap_neurons(nn.Sequential(S2Cell(1.0, learn_threshold=True)), "snntorch")


def test_preact_resnet_neurons_follow_the_framework():
    for framework in FRAMEWORKS:
        net = build_model("preact-resnet", in_shape=(3, 32, 32), num_classes=10,
                          framework=framework, depth=8, width=4)
        types = {type(m) for m in net.modules() if isinstance(m, (S2Cell, S2Neuron, S2Node))}
        assert types == {NEURON_TYPES[framework]}


# ----------------------------------------------------------------------------- model zoo
def test_zoo_names_and_shapes():
    names = zoo_names()
    for name in ("spiking_resnet18", "spiking_resnet50", "sew_resnet18", "spiking_vgg11_bn",
                 "MNISTNet", "FashionMNISTNet", "CIFAR10Net"):
        assert name in names
    assert "SpikingResNet" not in names and "SEWResNet34Config" not in names
    assert zoo_in_shape("MNISTNet") == (1, 28, 28) and zoo_in_shape("CIFAR10Net") == (3, 32, 32)
    assert zoo_in_shape("spiking_resnet18") is None


@pytest.mark.parametrize("neuron", list(ZOO_NEURONS))
def test_zoo_neurons(neuron):
    from spikingjelly.activation_based import neuron as sj

    net = build_zoo_model("sew_resnet18", neuron=neuron, cnf="IAND", num_classes=7)
    kinds = {type(m) for m in net.modules() if isinstance(m, sj.BaseNode)}
    assert kinds == {getattr(sj, ZOO_NEURONS[neuron])}
    assert net.fc.out_features == 7
    assert {b.cnf for b in net.modules() if hasattr(b, "cnf") and hasattr(b, "conv1")} == {"IAND"}


def test_zoo_errors():
    with pytest.raises(ConfigError, match=r"unknown SpikingJelly model-zoo net 'sew_resnet19' "
                                          r"\(did you mean sew_resnet18"):
        build_zoo_model("sew_resnet19")
    with pytest.raises(ConfigError, match="neuron must be one of if, lif, plif; got 'izh'"):
        build_zoo_model("spiking_resnet18", neuron="izh")
    with pytest.raises(ConfigError, match="MNISTNet has a fixed 10-class voting readout"):
        build_zoo_model("MNISTNet", num_classes=5)


def test_collapsed_zoo_net_keeps_its_weights_and_takes_one_frame():
    torch.manual_seed(0)
    net = build_zoo_model("spiking_resnet18", num_classes=10)
    single = single_step_zoo_model(net)
    assert single is not net and list(single.state_dict()) == list(net.state_dict())
    assert any(isinstance(m, S2Node) for m in single.modules())
    single.eval()
    assert single(torch.rand(2, 3, 32, 32)).shape == (2, 10)
