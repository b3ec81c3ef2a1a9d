"""The command line's model builders: :data:`MODELS` by name, and SpikingJelly model-zoo nets."""

from __future__ import annotations

import math
from typing import Sequence

from torch import nn

from ..errors import ConfigError
from ..models import (
    FRAMEWORKS,
    SingleStepCNN,
    SingleStepMLP,
    _check_framework,
    preact_resnet,
    swap_neurons,
)

__all__ = [
    "FRAMEWORKS",
    "MODELS",
    "ZOO_NEURONS",
    "build_model",
    "build_zoo_model",
    "check_framework",
    "check_model",
    "single_step_zoo_model",
    "zoo_names",
]

#: Names accepted by :func:`build_model` / ``--model``.
MODELS = ("mlp", "cnn", "preact-resnet")


def check_model(name: str) -> str:
    """Return ``name`` if it is one of :data:`MODELS`, or raise a :class:`ConfigError` listing them.

    Examples:
        >>> check_model("cnn")
        'cnn'
    """
    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}; got {name!r}")
    return name


def check_framework(framework: str) -> str:
    """Return ``framework`` if it is one of :data:`FRAMEWORKS`, or raise a :class:`ConfigError`."""
    _check_framework(framework)
    return framework


def build_model(
    name: str,
    *,
    in_shape: Sequence[int],
    num_classes: int,
    framework: str = "snntorch",
    hidden: Sequence[int] = (256, 256),
    channels: Sequence[int] = (16, 32),
    depth: int = 20,
    width: int = 16,
) -> nn.Module:
    """Build one of :data:`MODELS` for images of ``in_shape = (C, H, W)``.

    ``hidden`` sizes the ``mlp``, ``channels`` the ``cnn``, ``depth`` and ``width`` the
    ``preact-resnet`` (:func:`snn_singlestep.models.preact_resnet`, PSP-normalized
    pre-activation residual blocks, whose neurons are rebuilt with ``framework``).

    Raises:
        ConfigError: unknown name or framework, or sizes the model cannot take.

    Examples:
        >>> import torch
        >>> net = build_model("cnn", in_shape=(1, 8, 8), num_classes=10, channels=(4,))
        >>> net(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    check_model(name)
    _check_framework(framework)
    in_shape = tuple(int(d) for d in in_shape)
    if name == "mlp":
        return SingleStepMLP(
            math.prod(in_shape), num_classes, hidden, framework=framework, in_shape=in_shape
        )
    if name == "cnn":
        return SingleStepCNN(in_shape, num_classes, channels, framework=framework)
    net = preact_resnet(depth, num_classes, in_channels=in_shape[0], width=width)
    return swap_neurons(net, framework)


# --------------------------------------------------------------------------- SpikingJelly zoo
#: Neurons a model-zoo net can be built with (``--neuron`` of ``snn-singlestep convert``).
ZOO_NEURONS = {"if": "IFNode", "lif": "LIFNode", "plif": "ParametricLIFNode"}
# parametric_lif_net classes that take still images, with their fixed input shape.
_ZOO_CLASSES = {"MNISTNet": (1, 28, 28), "FashionMNISTNet": (1, 28, 28),
                "CIFAR10Net": (3, 32, 32)}
_ZOO_MODULES = ("spiking_resnet", "sew_resnet", "spiking_vgg")


def _zoo() -> dict[str, object]:
    import importlib

    found: dict[str, object] = {}
    for mod_name in _ZOO_MODULES:
        mod = importlib.import_module(f"spikingjelly.activation_based.model.{mod_name}")
        found.update({n: getattr(mod, n) for n in mod.__all__ if n[:1].islower()})
    from spikingjelly.activation_based.model import parametric_lif_net

    found.update({n: getattr(parametric_lif_net, n) for n in _ZOO_CLASSES})
    return found


def zoo_names() -> list[str]:
    """Names of the SpikingJelly model-zoo nets :func:`build_zoo_model` knows.

    Examples:
        >>> {"spiking_resnet18", "sew_resnet18", "spiking_vgg11_bn", "CIFAR10Net"} <= set(zoo_names())
        True
    """
    return sorted(_zoo())


def zoo_in_shape(name: str) -> tuple[int, ...] | None:
    """``(C, H, W)`` a zoo net requires, or None for ImageNet-style nets (3 × any size)."""
    return _ZOO_CLASSES.get(name)


def build_zoo_model(
    name: str, *, num_classes: int = 10, neuron: str = "if", cnf: str = "ADD"
) -> nn.Module:
    """A multi-step SpikingJelly model-zoo net (random weights, step mode ``'s'``).

    Args:
        name: a function of ``spiking_resnet``, ``sew_resnet`` or ``spiking_vgg``
            (``spiking_resnet18``, ``sew_resnet34``, ``spiking_vgg11_bn``, …) or one of
            ``MNISTNet``, ``FashionMNISTNet``, ``CIFAR10Net`` of ``parametric_lif_net``
            (those have 10 classes).
        num_classes: size of the readout.
        neuron: one of :data:`ZOO_NEURONS`.
        cnf: connect function of the SEW ResNets (``ADD``, ``IAND``, ``AND``).

    Raises:
        ConfigError: unknown name or neuron (close names are suggested), or
            ``num_classes`` the net cannot have.

    Examples:
        >>> type(build_zoo_model("spiking_vgg11", num_classes=3)).__name__
        'SpikingVGG'
    """
    import difflib

    from spikingjelly.activation_based import neuron as sj_neuron

    zoo = _zoo()
    if name not in zoo:
        close = difflib.get_close_matches(str(name), list(zoo), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"unknown SpikingJelly model-zoo net {name!r}{hint}; valid: {', '.join(sorted(zoo))}"
        )
    if neuron not in ZOO_NEURONS:
        raise ConfigError(f"neuron must be one of {', '.join(ZOO_NEURONS)}; got {neuron!r}")
    node = getattr(sj_neuron, ZOO_NEURONS[neuron])
    if name in _ZOO_CLASSES:
        if num_classes != 10:
            raise ConfigError(f"{name} has a fixed 10-class voting readout; got num_classes={num_classes}")
        return zoo[name](spiking_neuron=node)
    extra = {"cnf": cnf} if name.startswith("sew_") else {}
    return zoo[name](spiking_neuron=node, num_classes=num_classes, **extra)


def single_step_zoo_model(net: nn.Module, *, return_report: bool = False):
    """Collapse a (zoo) SpikingJelly net to T=1 with ``snn_singlestep.spikingjelly.collapse``.

    ``state_dict`` keys are unchanged, so weights of the multi-step net load into the
    result and the other way round.
    """
    from ..spikingjelly import collapse

    return collapse(net, inplace=False, return_report=return_report)
