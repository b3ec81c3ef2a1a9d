"""Small single-step nets used by the command line, the examples and the tests."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .core.functional import squeeze_time
from .errors import ConfigError

__all__ = ["FRAMEWORKS", "SingleStepMLP", "make_neuron"]

FRAMEWORKS = ("torch", "snntorch", "spikingjelly")


def make_neuron(framework: str, threshold: float = 1.0) -> nn.Module:
    """A single-step S² neuron from the named glue: ``S2Cell``, ``S2Neuron`` or ``S2Node``."""
    if framework == "torch":
        from .core.modules import S2Cell

        return S2Cell(threshold)
    if framework == "snntorch":
        from .snntorch import S2Neuron

        return S2Neuron(threshold=threshold, init_hidden=True)
    if framework == "spikingjelly":
        from .spikingjelly import S2Node

        return S2Node(v_threshold=threshold)
    raise ConfigError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")


class SingleStepMLP(nn.Module):
    r"""``Linear → BatchNorm1d → S² neuron`` per hidden layer, then a membrane readout.

    Hidden layers exchange binary spikes. The output layer is a plain ``Linear``: its
    result is the membrane potential of non-spiking output neurons, which ties far less
    often than output spikes at T=1 (see the README's note on readout).

    Args:
        in_features: input size. num_classes: output size.
        hidden: sizes of the hidden spiking layers.
        framework: which glue provides the neuron (``torch``, ``snntorch`` or
            ``spikingjelly``); the maths is identical.
        threshold: firing threshold of the hidden neurons.

    Example:
        >>> import torch
        >>> net = SingleStepMLP(64, 10, hidden=(32,))
        >>> net(torch.rand(5, 64)).shape
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
    ) -> None:
        if framework not in FRAMEWORKS:
            raise ConfigError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ConfigError(f"hidden must be a non-empty list of positive sizes, got {hidden!r}")
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), make_neuron(framework, threshold)]
            width = h
        self.features = nn.Sequential(*layers)
        self.readout = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = squeeze_time(x, sample_ndim=2)
        return self.readout(self.features(x))
