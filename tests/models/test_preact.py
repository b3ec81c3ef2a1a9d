"""Pre-activation residual S²NNs: construction, spikes into every conv, 110-layer training."""

import pytest
import torch
from torch import nn

from snn_singlestep.models.preact import PreActBlock, PreActBottleneck, preact_resnet
from snn_singlestep.core import S2Cell
from snn_singlestep.app.data import load_digits_split
from snn_singlestep.errors import ConfigError, ShapeError


def _count(net, cls):
    return sum(isinstance(m, cls) for m in net.modules())


@pytest.mark.parametrize("norm", ["psp", "batch", "none"])
@pytest.mark.parametrize(
    "depth,bottleneck,block", [(20, False, PreActBlock), (29, True, PreActBottleneck)]
)
@pytest.mark.parametrize("size,channels", [(8, 1), (32, 3)])
def test_shapes_and_layer_count(norm, depth, bottleneck, block, size, channels):
    net = preact_resnet(depth, 7, in_channels=channels, width=4, norm=norm, bottleneck=bottleneck)
    assert net(torch.rand(2, channels, size, size)).shape == (2, 7)
    weighted = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    shortcuts = [b.shortcut for b in net.blocks if b.shortcut is not None]
    assert len(weighted) - len(shortcuts) == depth  # He et al. count: no projections
    assert _count(net, block) == len(net.blocks)


def test_every_conv_after_the_stem_receives_binary_spikes():
    net = preact_resnet(20, in_channels=1, width=4, norm="psp")
    seen = []

    def record(module, inputs, output):
        seen.append(torch.unique(inputs[0]))

    for module in net.modules():
        if isinstance(module, nn.Conv2d) and module is not net.stem:
            module.register_forward_hook(record)
    net(torch.rand(3, 1, 8, 8))
    assert len(seen) == 18 + 2  # 9 blocks x 2 convs, and the 2 projection shortcuts
    for values in seen:
        assert set(values.tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depth": 21}, r"depth must be 6n\+2 .*20, 32, 44"),
        ({"depth": 30, "bottleneck": True}, r"depth must be 9n\+2 for bottleneck blocks \(29, 56, 110"),
        ({"depth": 2}, "depth"),
        ({"norm": "layer"}, r"norm must be one of \('psp', 'batch', 'none'\)"),
        ({"width": 0}, "width"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        preact_resnet(**kwargs)


def test_time_dimension_above_one_is_refused():
    net = preact_resnet(20, width=4)
    assert net(torch.rand(1, 2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ShapeError, match="T=4"):
        net(torch.rand(4, 2, 1, 8, 8))


@pytest.mark.slow
def test_110_layer_psp_net_trains_on_digits_with_healthy_firing():
    torch.manual_seed(0)
    train, _ = load_digits_split()
    images, labels = train.tensors[0].view(-1, 1, 8, 8), train.tensors[1]
    net = preact_resnet(110, in_channels=1, width=8, norm="psp")
    rates = {}
    for name, module in net.named_modules():
        if isinstance(module, S2Cell):
            module.register_forward_hook(
                lambda m, i, o, name=name: rates.__setitem__(name, o.float().mean().item())
            )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        idx = torch.randint(0, len(images), (64,), generator=generator)
        loss = nn.functional.cross_entropy(net(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        for name, rate in rates.items():
            assert 0.01 < rate < 0.9, (name, rate)
    assert len(rates) == 109  # two per block (54 blocks) and the final one
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < first - 0.3, (first, last)
