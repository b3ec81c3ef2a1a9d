r"""Postsynaptic-potential normalization (Ikegawa et al., Sensors 22(8):2876, 2022).

Deep spiking nets over-fire in their hidden layers. PSP normalization rescales the
postsynaptic potential :math:`p` of each channel by the square root of its second raw
moment, **without subtracting the mean**, then applies an affine map:

.. math::

    \hat p_c = \frac{p_c}{\sqrt{\mathbb{E}[p_c^2] + \epsilon}}, \qquad
    y_c = \gamma_c\,\hat p_c + b_c

In training :math:`\mathbb{E}[p_c^2]` is the mean of :math:`p^2` over the batch and
spatial axes of channel :math:`c`, and a running estimate is updated,
:math:`m \leftarrow (1 - \mu)\,m + \mu\,\mathbb{E}[p_c^2]` (momentum :math:`\mu`; a
cumulative average when ``momentum=None``). In eval the running estimate is used.
Because the mean is kept, a positive constant input stays positive (BatchNorm would
map it to 0), so the sign pattern that decides which neurons fire is preserved.

==================  ==========================  ====================================
symbol              argument / attribute        meaning
==================  ==========================  ====================================
:math:`\epsilon`    ``eps``                     added to the moment for stability
:math:`\mu`         ``momentum``                running-estimate update rate
:math:`\gamma, b`   ``weight``, ``bias``        affine parameters (``affine=True``)
:math:`m`           ``running_sq_mean``         running :math:`\mathbb{E}[p^2]`
==================  ==========================  ====================================

Statistics are computed in float32 for float16/bfloat16 inputs (float64 stays float64).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError
from .validate import flag, loaded_finite, positive_int, positive_number, real_number

__all__ = ["PSPNorm", "PSPNorm1d", "PSPNorm2d"]


class PSPNorm(nn.Module):
    r"""PSP normalization over channel dim 1 of ``[B, C, *]`` input (module docstring).

    The API follows :class:`torch.nn.BatchNorm2d`: ``num_features``, ``eps``,
    ``momentum``, ``affine``, ``track_running_stats``; ``running_sq_mean`` replaces
    ``running_mean``/``running_var``.

    Args:
        num_features: number of channels C.
        eps: :math:`\epsilon > 0`.
        momentum: :math:`\mu \in [0, 1]`, or None for a cumulative average.
        affine: learn :math:`\gamma` (init 1) and :math:`b` (init 0).
        track_running_stats: keep ``running_sq_mean`` for eval; if False, eval uses
            batch statistics too.

    Raises:
        ConfigError: invalid argument. ShapeError (at call): wrong rank or channel count.

    Examples:
        >>> norm = PSPNorm(3)
        >>> y = norm(torch.full((4, 3, 2, 2), 5.0))
        >>> torch.allclose(y, torch.ones_like(y), atol=1e-5)  # mean kept: 5 -> 1, not 0
        True
    """

    _ndims: tuple[int, ...] = ()  # accepted input ranks; empty means any rank >= 2
    _layout = "[B, C, *]"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        positive_int("num_features", num_features, what="channels")
        eps = positive_number("eps", eps)
        if momentum is not None and not 0.0 <= real_number("momentum", momentum) <= 1.0:
            raise ConfigError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        momentum = None if momentum is None else float(momentum)
        super().__init__()
        self.num_features = int(num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = flag("affine", affine)
        self.track_running_stats = flag("track_running_stats", track_running_stats)
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_sq_mean", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_sq_mean", None)
            self.register_buffer("num_batches_tracked", None)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # a NaN/inf statistic or scale from a checkpoint would turn every output into NaN
        loaded_finite(state_dict, prefix, "running_sq_mean", "weight", "bias")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reset_running_stats(self) -> None:
        """Set ``running_sq_mean`` back to 1 and the batch counter to 0."""
        if self.track_running_stats:
            self.running_sq_mean.fill_(1.0)
            self.num_batches_tracked.zero_()

    def _check_input(self, p: Tensor) -> None:
        name = type(self).__name__
        if (self._ndims and p.ndim not in self._ndims) or p.ndim < 2:
            raise ShapeError(
                f"{name} expects input of shape {self._layout}, got shape {tuple(p.shape)}"
            )
        if p.shape[1] != self.num_features:
            raise ShapeError(
                f"{name}({self.num_features}) expects {self.num_features} channels in dim 1, "
                f"got {p.shape[1]} (input shape {tuple(p.shape)})"
            )

    def _check_batch(self, p: Tensor) -> None:
        """Batch statistics need more than one value per channel (as ``nn.BatchNorm``).

        An empty batch would make the moment NaN (and the running estimate with it, for
        good); a single value per channel would map every input to its sign.
        """
        name = type(self).__name__
        per_channel = p.numel() // p.shape[1] if p.shape[1] else 0
        if per_channel == 0:
            raise ShapeError(
                f"{name} cannot compute batch statistics of an empty batch "
                f"(input shape {tuple(p.shape)})"
            )
        if per_channel == 1:
            raise ShapeError(
                f"{name}: expected more than 1 value per channel when training (batch "
                f"statistics), got input shape {tuple(p.shape)}; use a batch of 2 or more, or "
                "eval mode with running statistics"
            )

    def forward(self, p: Tensor) -> Tensor:
        self._check_input(p)
        pf = p.float() if p.dtype in (torch.float16, torch.bfloat16) else p
        reduce_dims = [d for d in range(p.ndim) if d != 1]
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            self._check_batch(p)
            sq_mean = pf.square().mean(dim=reduce_dims)
            if self.training and self.track_running_stats:
                self._update_running(sq_mean.detach())
        else:
            sq_mean = self.running_sq_mean.to(pf.dtype)
        scale = torch.rsqrt(sq_mean + self.eps)
        shift = None
        if self.affine:
            scale = scale * self.weight.to(pf.dtype)
            shift = self.bias.to(pf.dtype)
        shape = [1, -1] + [1] * (p.ndim - 2)
        out = pf * scale.view(shape)
        if shift is not None:
            out = out + shift.view(shape)
        return out.to(p.dtype)

    @torch.no_grad()
    def _update_running(self, sq_mean: Tensor) -> None:
        self.num_batches_tracked += 1
        factor = (
            1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        )
        running = self.running_sq_mean
        running.mul_(1.0 - factor).add_(sq_mean.to(running.dtype), alpha=factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class PSPNorm1d(PSPNorm):
    """:class:`PSPNorm` for ``[B, C]`` or ``[B, C, L]`` input (like ``nn.BatchNorm1d``)."""

    _ndims = (2, 3)
    _layout = "[B, C] or [B, C, L]"


class PSPNorm2d(PSPNorm):
    """:class:`PSPNorm` for ``[B, C, H, W]`` input (like ``nn.BatchNorm2d``)."""

    _ndims = (4,)
    _layout = "[B, C, H, W]"
