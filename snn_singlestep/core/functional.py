r"""The single-step neuron as a pure function, and shape checks for T=1 inputs.

The single-step (T=1) neuron of S²NN runs exactly one time step from a zero membrane:

.. math::

    v &= I                  &\quad\text{(charge: no leak and no state, } v_0 = 0\text{)} \\
    s &= H(v - \theta)      &\quad\text{(fire, } H(0) = 1\text{)}

There is no reset: the membrane is discarded after the step, so the next call starts
from zero again. In the backward pass :math:`\partial s/\partial v` is the surrogate
chosen by ``spike_fn`` (the S² surrogate by default, :mod:`.surrogate`).

==================  ===============  ===============================================
symbol              argument         snnTorch / SpikingJelly spelling
==================  ===============  ===============================================
:math:`I`           ``current``      ``input_`` / ``x``
:math:`\theta`      ``threshold``    ``threshold`` / ``v_threshold``
:math:`v`           returned ``v``   ``mem`` / ``v``
==================  ===============  ===============================================

Tie rule: a membrane exactly at threshold spikes (SpikingJelly's convention; snnTorch's
own surrogates fire only above threshold).
"""

from __future__ import annotations

from typing import Callable, Union

from torch import Tensor

from ..errors import ShapeError
from .surrogate import s2_spike

__all__ = ["s2_neuron_step", "squeeze_time"]


def s2_neuron_step(
    current: Tensor,
    threshold: Union[float, Tensor] = 1.0,
    spike_fn: Callable[[Tensor], Tensor] = s2_spike,
) -> tuple[Tensor, Tensor]:
    r"""One single-step neuron update; returns ``(spike, v)`` (equations in the module doc).

    Args:
        current: input current :math:`I`, any shape.
        threshold: :math:`\theta`, a float or a tensor broadcastable to ``current``.
        spike_fn: maps :math:`v - \theta` to spikes; defines the surrogate gradient.

    Example:
        >>> import torch
        >>> spike, v = s2_neuron_step(torch.tensor([0.5, 1.0, 1.5]), threshold=1.0)
        >>> spike
        tensor([0., 1., 1.])
    """
    v = current
    return spike_fn(v - threshold), v


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

    Example:
        >>> import torch
        >>> squeeze_time(torch.zeros(1, 8, 64), sample_ndim=2).shape
        torch.Size([8, 64])
    """
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
