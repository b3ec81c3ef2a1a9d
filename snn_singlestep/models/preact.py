r"""Pre-activation residual S²NNs of any depth (He et al. 2016 layout, S² spikes).

A block applies ``norm → S² spike → conv`` twice and adds its input back:

.. math::

    x_{l+1} = x_l + W_2 * H\bigl(N_2(W_1 * H(N_1(x_l)) ) - \theta\bigr)

where :math:`N` is the normalization (PSP norm by default, :mod:`.core.psp`), :math:`H`
the single-step spike with the S² surrogate and :math:`*` a convolution. Every
convolution therefore receives binary spikes; the residual stream carries the real-valued
sum of postsynaptic potentials. A projection shortcut (1×1 conv) is applied to the
spikes of the first half when the shape changes. The bottleneck variant uses
1×1 → 3×3 → 1×1 convolutions with expansion 4.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..core.functional import squeeze_time
from ..core.modules import S2Cell
from ..core.psp import PSPNorm2d
from ..core.validate import choice, flag, positive_int
from ..errors import ConfigError

__all__ = ["NORMS", "PreActBlock", "PreActBottleneck", "PreActResNet", "preact_resnet"]

NORMS = ("psp", "batch", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    choice("norm", kind, NORMS)
    if kind == "psp":
        return PSPNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, norm: str) -> nn.Conv2d:
    # With a following normalization the conv bias is redundant (the norm has its own).
    return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=norm == "none")


class _PreActUnits(nn.Module):
    """``norm{i} → spike{i} → conv{i}`` units applied in sequence, plus a shortcut.

    The shortcut (a strided 1×1 conv when the shape changes, else the identity) reads the
    first unit's spikes, as in pre-activation ResNets.
    """

    def _build(self, convs, stride: int, norm: str, threshold: float) -> None:
        """``convs``: ``(in, out, kernel, stride)`` per unit, the first input is the block's."""
        for i, (cin, cout, kernel, s) in enumerate(convs, 1):
            setattr(self, f"norm{i}", _norm(norm, cin))
            setattr(self, f"spike{i}", S2Cell(threshold))
            setattr(self, f"conv{i}", _conv(cin, cout, kernel, s, norm))
        in_channels, out_channels = convs[0][0], convs[-1][1]
        self.shortcut = (
            _conv(in_channels, out_channels, 1, stride, norm)
            if stride != 1 or in_channels != out_channels
            else None
        )
        self.units = len(convs)

    def forward(self, x: Tensor) -> Tensor:
        s = self.spike1(self.norm1(x))
        identity = x if self.shortcut is None else self.shortcut(s)
        out = self.conv1(s)
        for i in range(2, self.units + 1):
            spikes = getattr(self, f"spike{i}")(getattr(self, f"norm{i}")(out))
            out = getattr(self, f"conv{i}")(spikes)
        return out + identity


class PreActBlock(_PreActUnits):
    """Basic pre-activation block: (norm → spike → 3×3 conv) × 2 + shortcut.

    Args:
        in_channels, out_channels: channel counts; stride: of the first conv.
        norm: ``"psp"``, ``"batch"`` or ``"none"``. threshold: of the S² neurons.
    """

    expansion = 1

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, *,
        norm: str = "psp", threshold: float = 1.0,
    ) -> None:
        super().__init__()
        convs = [(in_channels, out_channels, 3, stride), (out_channels, out_channels, 3, 1)]
        self._build(convs, stride, norm, threshold)


class PreActBottleneck(_PreActUnits):
    """Bottleneck pre-activation block: 1×1 → 3×3 → 1×1 convs, output ``4 × channels``."""

    expansion = 4

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, *,
        norm: str = "psp", threshold: float = 1.0,
    ) -> None:
        super().__init__()
        convs = [
            (in_channels, channels, 1, 1),
            (channels, channels, 3, stride),
            (channels, channels * self.expansion, 1, 1),
        ]
        self._build(convs, stride, norm, threshold)


class PreActResNet(nn.Module):
    """Stem conv, three stages (widths w, 2w, 4w; strides 1, 2, 2), norm → spike →
    global average pool → linear membrane readout. Built by :func:`preact_resnet`."""

    def __init__(
        self, block: Callable[..., nn.Module], blocks_per_stage: int, *,
        num_classes: int, in_channels: int, width: int, norm: str, threshold: float,
    ) -> None:
        super().__init__()
        self.stem = _conv(in_channels, width, 3, 1, norm)
        layers: list[nn.Module] = []
        channels = width
        for stage, stride in enumerate((1, 2, 2)):
            planes = width * 2**stage
            for i in range(blocks_per_stage):
                layers.append(
                    block(channels, planes, stride if i == 0 else 1, norm=norm, threshold=threshold)
                )
                channels = planes * block.expansion
        self.blocks = nn.Sequential(*layers)
        self.norm = _norm(norm, channels)
        self.spike = S2Cell(threshold)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.readout = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = squeeze_time(x, sample_ndim=4)
        out = self.blocks(self.stem(x))
        out = self.pool(self.spike(self.norm(out))).flatten(1)
        return self.readout(out)


def preact_resnet(
    depth: int = 20,
    num_classes: int = 10,
    *,
    in_channels: int = 1,
    width: int = 16,
    norm: str = "psp",
    bottleneck: bool = False,
    threshold: float = 1.0,
) -> PreActResNet:
    """A pre-activation residual S²NN for ``[B, C, H, W]`` images (8×8 to 32×32).

    Depth counts weighted layers as in He et al.: ``6n + 2`` for basic blocks
    (20, 32, 44, 56, 110, …), ``9n + 2`` with ``bottleneck=True`` (29, 56, 110, 164, …).

    Args:
        depth: number of weighted layers. num_classes: readout size.
        in_channels: image channels. width: channels of the first stage.
        norm: ``"psp"`` (PSP normalization), ``"batch"`` (BatchNorm2d) or ``"none"``.
        bottleneck: use :class:`PreActBottleneck` blocks.
        threshold: firing threshold θ of every S² neuron.

    Raises:
        ConfigError: depth not of the form above, unknown norm, non-positive sizes.

    Examples:
        >>> import torch
        >>> net = preact_resnet(20, num_classes=10, in_channels=1, width=4)
        >>> net(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    choice("norm", norm, NORMS)
    flag("bottleneck", bottleneck)
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("width", width)):
        positive_int(name, value)
    per_block = 9 if bottleneck else 6
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < per_block + 2 or (depth - 2) % per_block:
        valid = ", ".join(str(per_block * n + 2) for n in ((3, 6, 12, 18) if bottleneck else (3, 5, 7, 9, 18)))
        raise ConfigError(
            f"depth must be {per_block}n+2 for {'bottleneck' if bottleneck else 'basic'} "
            f"blocks ({valid}, …), got {depth!r}"
        )
    block = PreActBottleneck if bottleneck else PreActBlock
    return PreActResNet(
        block, (depth - 2) // per_block, num_classes=num_classes, in_channels=in_channels,
        width=width, norm=norm, threshold=threshold,
    )
