r"""Conversion of noise-trained single-step neurons to T=N integrate-and-fire neurons.

:func:`snn_singlestep.to_multistep` replaces each single-step
neuron by an integrate-and-fire (IF) neuron with reset by subtraction, run for
:math:`N` steps on the same weights. In units where its threshold is 1, with
:math:`I_t` the current the single-step neuron would receive at step :math:`t`
(:func:`if_step`, :func:`if_drive`):

.. math::

    u_0 &= c \\
    u_t &= u_{t-1} + a\,I_t + b &\quad\text{(charge)} \\
    s_t &= H(u_t - 1)           &\quad\text{(fire, } H(0) = 1\text{)} \\
    u_t &\leftarrow u_t - s_t   &\quad\text{(reset by subtraction, right after firing)}

For a constant drive :math:`d = aI + b` and :math:`0 \le c < 1` the spike count after
:math:`N` steps is :math:`\operatorname{clip}(\lfloor c + N d\rfloor, 0, N)`
(:func:`if_spike_count`), so the rate tends to the ramp :math:`\operatorname{clip}(d, 0, 1)`.
Two mappings of :math:`(a, b, c)` (:func:`if_conversion_params`):

=============  ======================  =========================  =========
``mapping``    :math:`a`               :math:`b`                  :math:`c`
=============  ======================  =========================  =========
``"matched"``  :math:`1/w`             :math:`1/2 - \theta/w`     :math:`1/2`
``"plain"``    :math:`1/\theta`        :math:`0`                  :math:`0`
=============  ======================  =========================  =========

with :math:`w = \sigma\sqrt{2\pi}`. ``"plain"`` is the textbook IF neuron with the same
threshold :math:`\theta` on the same current: its rate :math:`\operatorname{clip}(I/\theta)`
is a ramp from 0 that has little to do with the step the net was trained with.
``"matched"`` makes the rate :math:`\operatorname{clip}((I - \theta)/w + 1/2, 0, 1)`, the
ramp through :math:`(\theta, 1/2)` with the slope :math:`1/(\sigma\sqrt{2\pi})` of
:math:`\Phi((I-\theta)/\sigma)` there: the T=N net computes (a piecewise-linear version
of) the expected output of the noisy T=1 net it was trained as. The two differ by at most
:math:`1 - \Phi(\sqrt{\pi/2}) \approx 0.105`, at the corners :math:`I = \theta \pm w/2`
of the ramp (below the corner the ramp's slope :math:`1/\sqrt{2\pi}` exceeds
:math:`\varphi`, so the gap grows up to it and shrinks after). The initial potential
:math:`c = 1/2` rounds :math:`N d` to the nearest count (error :math:`\le 1/(2N)`) and
makes the converted net at :math:`N = 1` *exactly* the deterministic T=1 net
(:math:`s_1 = H(I - \theta)`); so does ``"plain"`` (:math:`s_1 = H(I/\theta - 1)`,
:math:`\theta > 0`).

==================  ===============  ===============================================
symbol              argument         meaning
==================  ===============  ===============================================
:math:`I_t`         ``current``      current of the replaced single-step neuron
:math:`\theta`      ``threshold``    its threshold
:math:`\sigma`      ``noise_std``    its training noise
:math:`u_t`         ``v``            IF membrane (threshold 1)
:math:`d`           ``drive``        :math:`a I_t + b`
:math:`c`           ``v_init``       initial membrane
==================  ===============  ===============================================
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError
from .registry import NeuronKind, register_neuron, spike_fn_of, threshold_of
from .surrogate import S2Surrogate, s2_spike
from .validate import positive_int, real_number, threshold_tensor

__all__ = [
    "MAPPINGS",
    "ConvertedIF",
    "if_conversion_params",
    "if_drive",
    "if_spike_count",
    "if_step",
]

#: Values accepted by ``mapping=`` (see the module docstring).
MAPPINGS = ("matched", "plain")

Scalar = Union[float, Tensor]
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _check_mapping(mapping: str) -> None:
    if mapping not in MAPPINGS:
        raise ConfigError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")


def _raw_params(threshold: Scalar, noise_std: float, mapping: str) -> tuple[Scalar, Scalar, float]:
    if mapping == "matched":
        width = noise_std * _SQRT_2PI
        return 1.0 / width, 0.5 - threshold / width, 0.5
    return 1.0 / threshold, 0.0, 0.0


def if_conversion_params(
    threshold: Scalar, noise_std: float, mapping: str = "matched"
) -> tuple[Scalar, Scalar, float]:
    r"""``(a, b, c)`` of the IF neuron that replaces a single-step neuron (module docstring).

    Args:
        threshold: :math:`\theta` of the single-step neuron (float or tensor).
        noise_std: its training noise :math:`\sigma` (> 0 for ``"matched"``).
        mapping: ``"matched"`` or ``"plain"``.

    Raises:
        ConfigError: unknown mapping; ``"matched"`` with :math:`\sigma \le 0`;
            ``"plain"`` with a threshold :math:`\le 0`.

    Examples:
        >>> a, b, c = if_conversion_params(1.0, 0.4)
        >>> round(a, 4), round(b, 4), c
        (0.9974, -0.4974, 0.5)
        >>> if_conversion_params(2.0, 0.0, "plain")
        (0.5, 0.0, 0.0)
    """
    _check_mapping(mapping)
    sigma = real_number("noise_std", noise_std)
    if mapping == "matched" and sigma <= 0:
        raise ConfigError(
            f"mapping='matched' needs the training noise_std > 0, got {noise_std!r}: "
            "pass noise_std= (the width to assume) or use mapping='plain'"
        )
    if mapping == "plain":
        if isinstance(threshold, Tensor):
            if bool((threshold <= 0).any()):
                raise ConfigError("mapping='plain' needs thresholds > 0")
        elif real_number("threshold", threshold) <= 0:
            raise ConfigError(f"mapping='plain' needs a threshold > 0, got {threshold!r}")
    return _raw_params(threshold, sigma, mapping)


def if_drive(
    current: Tensor, threshold: Scalar, noise_std: float, mapping: str = "matched"
) -> Tensor:
    r"""The drive :math:`d = a I + b` of the converted IF neuron (:func:`if_conversion_params`).

    Arguments are not validated here (this runs every step); validate once with
    :func:`if_conversion_params`.

    Examples:
        >>> if_drive(torch.tensor([1.0]), 1.0, 0.4)
        tensor([0.5000])
    """
    a, b, _ = _raw_params(threshold, noise_std, mapping)
    try:
        return current * a + b
    except RuntimeError as err:  # no check on the hot path: torch's broadcast is the check
        shape = tuple(threshold.shape) if isinstance(threshold, Tensor) else ()
        raise ShapeError(
            f"threshold of shape {shape} does not broadcast to the input of shape "
            f"{tuple(current.shape)}: give one threshold or one per feature, shaped to "
            "broadcast (e.g. [features] for [B, features])"
        ) from err


def if_step(
    drive: Tensor, v: Scalar, spike_fn: Callable[[Tensor], Tensor] = s2_spike
) -> tuple[Tensor, Tensor]:
    r"""One step of the converted IF neuron: charge, fire at 1, reset by subtracting 1.

    .. math::

        u = v + d,\qquad s = H(u - 1),\qquad v' = u - s

    Args:
        drive: :math:`d`. v: membrane :math:`v` before the step (a tensor or float).
        spike_fn: maps :math:`u - 1` to spikes (defines the surrogate gradient).

    Returns:
        ``(spike, v')``.

    Examples:
        >>> s, v = if_step(torch.tensor([0.3, 0.6]), torch.tensor([0.5, 0.5]))
        >>> s, v
        (tensor([0., 1.]), tensor([0.8000, 0.1000]))
    """
    u = v + drive
    spike = spike_fn(u - 1.0).to(u.dtype)
    return spike, u - spike


def if_spike_count(drive: Tensor, num_steps: int, v_init: float = 0.5) -> Tensor:
    r"""Closed-form spike count of :func:`if_step` under a constant drive.

    .. math::

        n_N = \operatorname{clip}\bigl(\lfloor c + N d\rfloor,\ 0,\ N\bigr),
        \qquad 0 \le c < 1

    (with :math:`d \le 1` the neuron fires at most once per step and
    :math:`u_N = c + N d - n_N \in [0, 1)`; with :math:`d > 1` it fires every step).

    Examples:
        >>> if_spike_count(torch.tensor([-0.2, 0.3, 0.5, 0.74, 2.0]), 4)
        tensor([0., 1., 2., 3., 4.])
    """
    positive_int("num_steps", num_steps)
    c = real_number("v_init", v_init)
    if not 0.0 <= c < 1.0:
        raise ConfigError(f"v_init must be in [0, 1), got {v_init!r}")
    return torch.floor(c + num_steps * drive).clamp(0, num_steps)


class ConvertedIF(nn.Module):
    r"""Stateful IF neuron standing in for a single-step neuron at T=N (plain PyTorch).

    Equations: module docstring and :func:`if_step`; the current :math:`I_t` is this
    module's input. The membrane is kept between calls (one call is one time step) in
    the non-persistent buffer ``v``; :meth:`reset` (called by the
    :func:`snn_singlestep.to_multistep` wrapper before each sample batch) restores
    :math:`c`. A new input shape also starts from :math:`c`.

    Args:
        threshold: :math:`\theta` of the single-step neuron (float or tensor; a
            ``Parameter`` stays one, so its key in ``state_dict`` is unchanged).
        noise_std: its training :math:`\sigma`. mapping: see :data:`MAPPINGS`.
        surrogate: maps :math:`u - 1` to spikes (default S²).

    Examples:
        >>> neuron = ConvertedIF(threshold=1.0, noise_std=0.4)
        >>> [neuron(torch.tensor([1.2])).item() for _ in range(4)]
        [1.0, 0.0, 1.0, 1.0]
    """

    def __init__(
        self,
        threshold: Scalar = 1.0,
        *,
        noise_std: float = 0.0,
        mapping: str = "matched",
        surrogate: Optional[Callable[[Tensor], Tensor]] = None,
    ) -> None:
        theta = threshold if isinstance(threshold, nn.Parameter) else threshold_tensor(threshold)
        _, _, v_init = if_conversion_params(theta.detach(), noise_std, mapping)
        super().__init__()
        self.noise_std = float(noise_std)
        self.mapping = mapping
        self.v_init = v_init
        self.surrogate = S2Surrogate() if surrogate is None else surrogate
        if isinstance(theta, nn.Parameter):
            self.threshold = theta
        else:
            self.register_buffer("threshold", theta)
        self.register_buffer("v", None, persistent=False)

    def reset(self) -> None:
        """Forget the membrane (the next call starts from :math:`c`)."""
        self.v = None

    def forward(self, current: Tensor) -> Tensor:
        if self.v is None or self.v.shape != current.shape:
            self.v = torch.full_like(current, self.v_init)
        drive = if_drive(current, self.threshold, self.noise_std, self.mapping).to(current.dtype)
        spike, self.v = if_step(drive, self.v, self.surrogate)
        return spike

    def extra_repr(self) -> str:
        theta = self.threshold
        shown = f"{theta.item():.4g}" if theta.numel() == 1 else f"tensor{tuple(theta.shape)}"
        return f"threshold={shown}, noise_std={self.noise_std}, mapping={self.mapping!r}"


def _build_if(source: nn.Module, *, noise_std: float, mapping: str) -> ConvertedIF:
    """The plain-PyTorch IF neuron standing for the single-step neuron ``source`` at T=N."""
    return ConvertedIF(
        threshold_of(source), noise_std=noise_std, mapping=mapping, surrogate=spike_fn_of(source)
    )


register_neuron(
    NeuronKind(
        ConvertedIF,
        "torch",
        "if",
        lambda: ConvertedIF(noise_std=0.4),
        build_if=_build_if,
        reset=ConvertedIF.reset,
    )
)
