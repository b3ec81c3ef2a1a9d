"""Small single-step nets used by the command line, the examples and the tests.

Each net reads its class from the membrane of a non-spiking output layer (a final
``nn.Linear``): at T=1 output spikes tie too often (see the README's note on readout).
The S² neuron comes from whichever glue ``framework`` names, so the same net can be
built from plain PyTorch (``S2Cell``), snnTorch (``S2Neuron``) or SpikingJelly
(``S2Node``); the maths and the parameters are identical (the ``state_dict`` differs only
in the buffers each glue's neuron keeps, e.g. snnTorch's ``beta`` and ``threshold``).
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from ..core import registry
from ..core.functional import squeeze_time
from ..core.validate import int_sequence, positive_int
from ..core.validate import module as as_module
from ..errors import ConfigError
from .preact import preact_resnet

__all__ = [
    "FRAMEWORKS",
    "SingleStepCNN",
    "SingleStepMLP",
    "make_neuron",
    "preact_resnet",
    "swap_neurons",
]

#: Names accepted by ``framework=`` / ``--framework``.
FRAMEWORKS = ("torch", "snntorch", "spikingjelly")


def _check_framework(framework: str) -> None:
    if not isinstance(framework, str) or framework not in FRAMEWORKS:
        raise ConfigError(f"framework must be one of {', '.join(FRAMEWORKS)}; got {framework!r}")


def make_neuron(framework: str, threshold: float = 1.0) -> nn.Module:
    """A single-step S² neuron from the named glue: ``S2Cell``, ``S2Neuron`` or ``S2Node``.

    Examples:
        >>> type(make_neuron("spikingjelly")).__name__
        'S2Node'
    """
    _check_framework(framework)
    if framework == "torch":
        from ..core.modules import S2Cell

        return S2Cell(threshold)
    if framework == "snntorch":
        from ..snntorch import S2Neuron

        return S2Neuron(threshold=threshold, init_hidden=True)
    from ..spikingjelly import S2Node

    return S2Node(v_threshold=threshold)


def _scalar_threshold(module: nn.Module, path: str) -> float:
    theta = registry.threshold_of(module)
    if isinstance(theta, nn.Parameter) or getattr(theta, "numel", lambda: 1)() != 1:
        raise ConfigError(
            f"cannot rebuild the neuron at {path!r} with another framework: its threshold is "
            "learnable or per-unit; build the net with that framework directly"
        )
    return float(theta)


def swap_neurons(net: nn.Module, framework: str) -> nn.Module:
    """Replace every S² neuron in ``net`` (in place) by the one of ``framework``.

    Thresholds are kept; they must be plain scalars. Returns ``net``.

    Examples:
        >>> net = swap_neurons(nn.Sequential(nn.Linear(2, 2), make_neuron("torch")), "snntorch")
        >>> type(net[1]).__name__
        'S2Neuron'
    """
    as_module("net", net)
    _check_framework(framework)
    target = type(make_neuron(framework))
    for path, module in list(net.named_modules()):
        for name, child in list(module.named_children()):
            if registry.is_neuron(child, role="single-step") and type(child) is not target:
                where = f"{path}.{name}" if path else name
                setattr(module, name, make_neuron(framework, _scalar_threshold(child, where)))
    return net


def _sizes(name: str, values: Sequence[int]) -> list[int]:
    """A non-empty list of layer sizes, each an int >= 1 (named ``name[i]`` in errors)."""
    sizes = list(int_sequence(name, values))
    if not sizes:
        raise ConfigError(f"{name} must be a non-empty list of positive sizes, got {values!r}")
    return sizes


class SingleStepMLP(nn.Module):
    r"""``Linear (no bias) → BatchNorm1d → S² neuron`` per hidden layer, then a membrane readout.

    Hidden layers exchange binary spikes. The output layer is a plain ``Linear``: its
    result is the membrane potential of non-spiking output neurons, which ties far less
    often than output spikes at T=1 (see the README's note on readout).

    Args:
        in_features: input size. num_classes: output size.
        hidden: sizes of the hidden spiking layers.
        framework: which glue provides the neuron (``torch``, ``snntorch`` or
            ``spikingjelly``); the maths is identical.
        threshold: firing threshold of the hidden neurons.
        in_shape: shape of one input sample, flattened on entry (default
            ``(in_features,)``); e.g. ``(1, 8, 8)`` takes images ``[B, 1, 8, 8]``.

    Examples:
        >>> import torch
        >>> net = SingleStepMLP(64, 10, hidden=(32,))
        >>> net(torch.rand(5, 64)).shape
        torch.Size([5, 10])
        >>> SingleStepMLP(64, 10, hidden=(32,), in_shape=(1, 8, 8))(torch.rand(5, 1, 8, 8)).shape
        torch.Size([5, 10])
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (256, 256),
        *,
        framework: str = "snntorch",
        threshold: float = 1.0,
        in_shape: Sequence[int] | None = None,
    ) -> None:
        _check_framework(framework)
        positive_int("in_features", in_features)
        positive_int("num_classes", num_classes)
        hidden = _sizes("hidden", hidden)
        in_shape = (in_features,) if in_shape is None else int_sequence("in_shape", in_shape)
        if math.prod(in_shape) != in_features:
            raise ConfigError(
                f"in_shape {in_shape} holds {math.prod(in_shape)} values, not in_features="
                f"{in_features}"
            )
        super().__init__()
        self.in_shape = in_shape
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            # No bias before BatchNorm: it would cancel it, leaving Adam to amplify noise.
            layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h),
                       make_neuron(framework, threshold)]
            width = h
        self.features = nn.Sequential(*layers)
        self.readout = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = squeeze_time(x, sample_ndim=1 + len(self.in_shape))
        return self.readout(self.features(x.flatten(1)))


class SingleStepCNN(nn.Module):
    r"""``Conv3×3 → BatchNorm2d → S² neuron → MaxPool2d(2)`` blocks, then a membrane readout.

    Sized for 1×8×8 digits, 1×28×28 (Fashion-)MNIST and 3×32×32 CIFAR-10: each block
    halves height and width (max-pooling binary spikes keeps them binary), and the
    final ``Linear`` reads the flattened spike map.

    Args:
        in_shape: ``(C, H, W)`` of one image; H and W at least ``2 ** len(channels)``.
        num_classes: output size.
        channels: output channels of the conv blocks.
        framework: which glue provides the neuron.
        threshold: firing threshold of the spiking neurons.

    Examples:
        >>> import torch
        >>> net = SingleStepCNN((1, 8, 8), 10, channels=(4, 8), framework="spikingjelly")
        >>> net(torch.rand(3, 1, 8, 8)).shape
        torch.Size([3, 10])
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (16, 32),
        *,
        framework: str = "snntorch",
        threshold: float = 1.0,
    ) -> None:
        _check_framework(framework)
        in_shape = int_sequence("in_shape", in_shape)
        if len(in_shape) != 3:
            raise ConfigError(f"in_shape must be (C, H, W), got {in_shape!r}")
        positive_int("num_classes", num_classes)
        channels = _sizes("channels", channels)
        c, h, w = in_shape
        if min(h, w) < 2 ** len(channels):
            raise ConfigError(
                f"a {h}×{w} image is too small for {len(channels)} pooling blocks; "
                f"use at most {max(1, int(math.log2(min(h, w))))} channel sizes"
            )
        super().__init__()
        self.in_shape = in_shape
        layers: list[nn.Module] = []
        for out in channels:
            layers += [
                nn.Conv2d(c, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                make_neuron(framework, threshold),
                nn.MaxPool2d(2),
            ]
            c, h, w = out, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.readout = nn.Linear(c * h * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = squeeze_time(x, sample_ndim=4)
        return self.readout(self.features(x).flatten(1))
