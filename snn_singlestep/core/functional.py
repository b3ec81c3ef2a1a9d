r"""The single-step neuron as a pure function, and shape checks for T=1 inputs.

The single-step (T=1) neuron of S²NN runs exactly one time step from a zero membrane:

.. math::

    v &= I + \sigma\,\varepsilon &\quad\text{(charge: no leak and no state, } v_0 = 0\text{;
        } \varepsilon \sim \mathcal N(0, 1)\text{ i.i.d.)} \\
    s &= H(v - \theta)      &\quad\text{(fire, } H(0) = 1\text{)}

There is no reset: the membrane is discarded after the step, so the next call starts
from zero again. In the backward pass :math:`\partial s/\partial v` is the surrogate
chosen by ``spike_fn`` (the S² surrogate by default, :mod:`.surrogate`).

The noise term :math:`\sigma\varepsilon` is the *noise-based training* option (Jiang &
Zhang, 2023): with :math:`\sigma > 0` the expected spike is
:math:`\mathbb E[s] = \Phi((I - \theta)/\sigma)`, the quantity a T=N integrate-and-fire
neuron approximates after conversion (:mod:`.noise`). :math:`\sigma = 0` (the default)
draws nothing and returns ``v`` as the very tensor ``current``. Whether noise is on is
the caller's decision (the neuron modules pass :math:`\sigma = 0` in ``eval()`` mode).

==================  ===============  ===============================================
symbol              argument         snnTorch / SpikingJelly spelling
==================  ===============  ===============================================
:math:`I`           ``current``      ``input_`` / ``x``
:math:`\theta`      ``threshold``    ``threshold`` / ``v_threshold``
:math:`\sigma`      ``noise_std``    ``noise_std``
:math:`v`           returned ``v``   ``mem`` / ``v``
==================  ===============  ===============================================

Tie rule: a membrane exactly at threshold spikes (SpikingJelly's convention; snnTorch's
own surrogates fire only above threshold).
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError
from .fused import fire
from .surrogate import s2_spike
from .validate import function, positive_int, real_number, tensor, text
from .validate import generator as check_generator

__all__ = ["s2_neuron_step", "squeeze_time"]


def s2_neuron_step(
    current: Tensor,
    threshold: Union[float, Tensor] = 1.0,
    spike_fn: Callable[[Tensor], Tensor] = s2_spike,
    *,
    noise_std: Union[float, Tensor] = 0.0,
    generator: Optional[torch.Generator] = None,
) -> tuple[Tensor, Tensor]:
    r"""One single-step neuron update; returns ``(spike, v)`` (equations in the module doc).

    Args:
        current: input current :math:`I`, any shape.
        threshold: :math:`\theta`, a float or a tensor broadcastable to ``current``.
        spike_fn: maps :math:`v - \theta` to spikes; defines the surrogate gradient.
        noise_std: :math:`\sigma \ge 0` of the Gaussian noise added to the membrane
            before the threshold; a float, or a tensor (e.g. a learnable 0-d parameter,
            which then receives the gradient :math:`\varepsilon\,\partial L/\partial v`).
            0 adds nothing.
        generator: random generator for :math:`\varepsilon` (on ``current``'s device);
            None uses torch's global generator (seeded by ``torch.manual_seed``).

    Returns:
        ``(spike, v)``: spikes in ``spike_fn``'s dtype and the (noisy) membrane :math:`v`.

    Raises:
        ConfigError: ``current`` not a tensor, ``threshold`` not a finite number or a float
            tensor, ``spike_fn`` not callable, ``generator`` not a ``torch.Generator``,
            ``noise_std`` a negative or non-finite number or a tensor of more than one value
            (tensor values are not read back from the device, so not checked for NaN),
            ``spike_fn`` returning something other than a tensor.
        ShapeError: ``threshold`` does not broadcast to ``current``.

    Examples:
        >>> import torch
        >>> spike, v = s2_neuron_step(torch.tensor([0.5, 1.0, 1.5]), threshold=1.0)
        >>> spike
        tensor([0., 1., 1.])
        >>> g = torch.Generator().manual_seed(0)
        >>> spike, v = s2_neuron_step(torch.zeros(3), 0.0, noise_std=0.5, generator=g)
        >>> v.shape, bool((spike == (v >= 0)).all())
        (torch.Size([3]), True)
    """
    if not isinstance(current, Tensor) and not isinstance(current, torch.fx.Proxy):
        tensor("current", current)  # (a torch.fx Proxy is symbolic tracing: traced as is)
    if not isinstance(threshold, Tensor):
        real_number("threshold", threshold)
    elif not threshold.is_floating_point():
        tensor("threshold", threshold, floating=True)
    if not callable(spike_fn) or isinstance(spike_fn, type):
        function("spike_fn", spike_fn)
    if generator is not None:
        check_generator("generator", generator)
    v = current
    if isinstance(noise_std, Tensor):
        _check_noise_tensor(noise_std)
        v = current + noise_std * _standard_normal(current, generator)
    else:
        sigma = _noise_std_value(noise_std)
        if sigma > 0.0:
            v = current + sigma * _standard_normal(current, generator)
    # spike_fn(v - threshold), through the fused paths of .fused where they give the same
    # result (S² surrogate: one autograd node; no graph needed: one comparison). A
    # threshold that does not broadcast to the input raises ShapeError there.
    spike = fire(v, threshold, spike_fn)
    if not isinstance(spike, (Tensor, torch.fx.Proxy)):  # a Proxy: torch.fx tracing
        raise ConfigError(
            f"spike_fn must return a tensor of spikes, got {type(spike).__name__} ({spike!r:.40})"
        )
    return spike, v


def _check_noise_tensor(noise_std: Tensor) -> None:
    """A tensor σ must be one float (metadata only: its value is not read back from the
    device; the learnable σ of MembraneNoise is exp(log σ) > 0 by construction)."""
    if not noise_std.is_floating_point() or noise_std.numel() != 1:
        raise ConfigError(
            f"noise_std must be a number or a one-element float tensor, got a tensor of dtype "
            f"{noise_std.dtype} and shape {tuple(noise_std.shape)}"
        )


def _noise_std_value(noise_std: object) -> float:
    if isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real):
        raise ConfigError(
            f"noise_std must be a real number >= 0 or a tensor, got {noise_std!r} of type "
            f"{type(noise_std).__name__}"
        )
    sigma = float(noise_std)
    if not (math.isfinite(sigma) and sigma >= 0.0):
        raise ConfigError(
            f"noise_std must be a finite number >= 0 (0 turns the noise off), got {noise_std!r}"
        )
    return sigma


def _standard_normal(like: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    r""":math:`\varepsilon \sim \mathcal N(0, 1)` with ``like``'s shape, dtype and device."""
    if not like.is_floating_point():
        raise ConfigError(f"membrane noise needs a floating-point current, got {like.dtype}")
    return torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator)


def squeeze_time(x: Tensor, sample_ndim: int, *, name: str = "input") -> Tensor:
    """Return ``x`` without a leading time dimension of size 1.

    A single-step net takes ``[B, *sample]`` input; ``[1, B, *sample]`` (the multi-step
    layout with T=1) is accepted too. A leading time dimension T > 1 is an error:
    averaging it silently would change the model.

    Args:
        x: the tensor to check.
        sample_ndim: number of dimensions of one batch, ``B`` included
            (2 for ``[B, features]``, 4 for ``[B, C, H, W]``).
        name: what to call ``x`` in the error message.

    Raises:
        ShapeError: ``x`` has neither ``sample_ndim`` nor ``sample_ndim + 1`` dims, or it
            has a leading time dimension larger than 1.

    Examples:
        >>> import torch
        >>> squeeze_time(torch.zeros(1, 8, 64), sample_ndim=2).shape
        torch.Size([8, 64])
    """
    if not isinstance(name, str):
        text("name", name)
    if not isinstance(x, Tensor):
        tensor(name, x)
    if not isinstance(sample_ndim, int) or isinstance(sample_ndim, bool) or sample_ndim < 1:
        positive_int("sample_ndim", sample_ndim)
    if x.ndim == sample_ndim:
        return x
    if x.ndim == sample_ndim + 1:
        if x.shape[0] == 1:
            return x[0]
        raise ShapeError(
            f"{name} has a leading time dimension T={x.shape[0]} (shape {tuple(x.shape)}), "
            "but this net is single-step (T=1). Pass one frame, x[t], or the mean over "
            "time, x.mean(0), with shape [B, ...]."
        )
    raise ShapeError(
        f"{name} must have {sample_ndim} dims ([B, ...]) or {sample_ndim + 1} dims "
        f"([1, B, ...]), got shape {tuple(x.shape)}"
    )
