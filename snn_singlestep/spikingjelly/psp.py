"""PSP normalization as SpikingJelly layers that work in step modes 's' and 'm'."""

from __future__ import annotations

from typing import Optional

from spikingjelly.activation_based import base
from torch import Tensor

from ..core import psp
from ..core.validate import STEP_MODES, choice
from ..errors import ShapeError

__all__ = ["PSPNorm1d", "PSPNorm2d"]


class _StepPSP(base.StepModule):
    """Mixin: in step mode 'm', fold ``[T, B, …]`` into ``[T·B, …]`` like ``layer.BatchNorm2d``.

    Statistics are then taken over time, batch and space, exactly as SpikingJelly's
    ``layer.BatchNorm2d`` does in 'm' mode.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
        affine: bool = True, track_running_stats: bool = True, step_mode: str = "s",
    ) -> None:
        choice("step_mode", step_mode, STEP_MODES)
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.step_mode = step_mode

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "s":
            return super().forward(x)
        if x.ndim < 3:
            raise ShapeError(
                f"{type(self).__name__} in step mode 'm' expects [T, B, C, ...], got shape "
                f"{tuple(x.shape)}"
            )
        y = super().forward(x.flatten(0, 1))
        return y.view(x.shape[0], x.shape[1], *y.shape[1:])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", step_mode={self.step_mode}"


class PSPNorm1d(_StepPSP, psp.PSPNorm1d):
    """:class:`snn_singlestep.core.psp.PSPNorm1d` with SpikingJelly's ``step_mode``.

    Examples:
        >>> import torch
        >>> norm = PSPNorm1d(4, step_mode="m")
        >>> norm(torch.randn(3, 2, 4)).shape
        torch.Size([3, 2, 4])
    """


class PSPNorm2d(_StepPSP, psp.PSPNorm2d):
    """:class:`snn_singlestep.core.psp.PSPNorm2d` with SpikingJelly's ``step_mode``.

    Examples:
        >>> import torch
        >>> from spikingjelly.activation_based import functional
        >>> norm = PSPNorm2d(3)
        >>> functional.set_step_mode(norm, "m")
        >>> norm(torch.randn(4, 2, 3, 5, 5)).shape
        torch.Size([4, 2, 3, 5, 5])
    """
