r"""Noise-based training of single-step neurons, and their conversion to T=N IF neurons.

**Training (T=1).** Following the idea of Jiang & Zhang (Neural Computation 2023, arXiv
2211.05453), a single-step neuron is trained with Gaussian noise on its membrane before
the threshold (:func:`~snn_singlestep.core.functional.s2_neuron_step`):

.. math::

    v = I + \sigma\varepsilon,\quad \varepsilon \sim \mathcal N(0, 1), \qquad
    s = H(v - \theta), \qquad
    \mathbb E[s] = \Phi\!\left(\frac{I - \theta}{\sigma}\right)

(:func:`noisy_spike_probability`). The noise is on in ``train()`` mode only; in
``eval()`` the T=1 net is deterministic. :class:`MembraneNoise` holds :math:`\sigma`:

* **fixed** (the default, and our recommendation): the conversion below needs the
  :math:`\sigma` the downstream weights were trained against, and a fixed value is that
  value with no ambiguity;
* **scheduled** (``MembraneNoise(LinearNoiseSchedule(0.0, 0.4, 20))``, advanced by
  :meth:`MembraneNoise.step` / :func:`step_noise_schedules`, e.g. once per epoch): a
  warm-up; the conversion uses the value at the end of training;
* **learnable** (``learnable=True``, stored as :math:`\log\sigma`): offered, but noise
  only hurts the training loss, so gradient descent shrinks :math:`\sigma` and with it
  the benefit of the noise (``docs/noise_and_multifield.md`` reports a run).

Seeding: ``MembraneNoise(seed=...)`` gives the neuron its own generator (one per device);
without a seed the noise comes from torch's global generator (``torch.manual_seed``).

The conversion of such a net to T=N integrate-and-fire neurons is in
:mod:`snn_singlestep.core.ifconvert`.
"""


from __future__ import annotations

import math
from typing import Callable, Iterator, Optional, Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from . import registry
from .validate import (
    flag,
    function,
    loaded_finite,
    non_negative,
    optional_seed,
    positive_int,
    real_number,
)
from .validate import module as as_module

__all__ = [
    "LinearNoiseSchedule",
    "MembraneNoise",
    "as_membrane_noise",
    "current_noise_std",
    "noise_kwargs",
    "noise_modules",
    "noisy_spike_probability",
    "set_noise_std",
    "step_noise_schedules",
    "takes_membrane_noise",
]

Scalar = Union[float, Tensor]


def _non_negative(name: str, value: object) -> float:
    return non_negative(name, value, hint="0 turns the noise off")


#: The range of a learnable σ: ``log_std`` is clamped to its logs in the forward pass.
LEARNABLE_STD_RANGE = (1e-6, 1e3)
_LOG_STD_RANGE = tuple(math.log(v) for v in LEARNABLE_STD_RANGE)


def _learnable_start(value: float) -> float:
    lo, hi = LEARNABLE_STD_RANGE
    if not lo <= value <= hi:
        raise ConfigError(
            f"learnable noise needs std > 0, within [{lo:g}, {hi:g}] (it is stored as log(std), "
            f"clamped to that range), got {value!r}"
        )
    return value


# --- noise ------------------------------------------------------------------------------


class LinearNoiseSchedule:
    r"""A noise level that moves linearly from ``start`` to ``end`` over ``num_steps`` steps.

    .. math::

        \sigma(k) = \sigma_0 + (\sigma_1 - \sigma_0)\,\frac{\min(k, K)}{K}

    A plain picklable class (unlike a lambda, it survives ``torch.save(model)``).

    Args:
        start: :math:`\sigma_0 \ge 0`. end: :math:`\sigma_1 \ge 0`.
        num_steps: :math:`K \ge 1`, the step (e.g. epoch) at which ``end`` is reached.

    Examples:
        >>> schedule = LinearNoiseSchedule(0.0, 0.4, num_steps=4)
        >>> [round(schedule(k), 2) for k in range(6)]
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.4]
    """

    def __init__(self, start: float, end: float, num_steps: int) -> None:
        self.start = _non_negative("start", start)
        self.end = _non_negative("end", end)
        num_steps = positive_int("num_steps", num_steps)
        self.num_steps = num_steps

    def __call__(self, step: int) -> float:
        frac = min(max(step, 0), self.num_steps) / self.num_steps
        return self.start + (self.end - self.start) * frac

    def __repr__(self) -> str:
        return (
            f"LinearNoiseSchedule(start={self.start}, end={self.end}, "
            f"num_steps={self.num_steps})"
        )


class MembraneNoise(nn.Module):
    r"""The noise level :math:`\sigma` of a neuron's membrane noise (fixed, scheduled or learnable).

    Not called on tensors itself: neurons read :attr:`std` and :meth:`generator` through
    :func:`noise_kwargs` and pass them to
    :func:`~snn_singlestep.core.functional.s2_neuron_step`. See the module docstring for
    why fixed is the default.

    Args:
        std: :math:`\sigma \ge 0` (a number), or a schedule: a callable ``step -> σ``
            such as :class:`LinearNoiseSchedule`, read at :attr:`num_steps`.
        learnable: make :math:`\sigma` a parameter, stored as ``log_std``; the value used
            is :math:`\exp(\mathrm{clamp}(\log\sigma, \log 10^{-6}, \log 10^{3}))`
            (:data:`LEARNABLE_STD_RANGE`), so no optimiser step takes it to 0, inf or NaN
            (gradient 0 beyond a bound); needs a number ``std`` in that range.
        seed: seed of this neuron's own generator (one per device, created on first use);
            None draws from torch's global generator.

    Raises:
        ConfigError: ``std`` negative, non-finite or of the wrong type; ``learnable``
            with ``std = 0`` or with a schedule; ``seed`` not an int.

    Examples:
        >>> MembraneNoise(0.4)
        MembraneNoise(std=0.4)
        >>> noise = MembraneNoise(LinearNoiseSchedule(0.0, 0.4, 2), seed=3)
        >>> noise.std, noise.step(), noise.step(), noise.std
        (0.0, None, None, 0.4)
    """

    def __init__(
        self,
        std: Union[float, Callable[[int], float]] = 0.0,
        *,
        learnable: bool = False,
        seed: Optional[int] = None,
    ) -> None:
        flag("learnable", learnable)
        optional_seed("seed", seed)
        schedule = None
        if callable(std):
            schedule = function("std", std, hint="a schedule step -> σ, e.g. LinearNoiseSchedule")
            if learnable:
                raise ConfigError(
                    "learnable=True needs a fixed starting std, got a schedule; choose one"
                )
            value = _non_negative("noise_std (schedule at step 0)", schedule(0))
        else:
            value = _non_negative("noise_std", std)
            if learnable:
                _learnable_start(value)
        super().__init__()
        self.schedule = schedule
        self.seed = seed
        self.num_steps = 0
        self._generators: dict[str, torch.Generator] = {}
        if learnable:
            self.log_std = nn.Parameter(torch.tensor(value).log())
        else:
            self._std = value

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        loaded_finite(state_dict, prefix, "log_std")  # exp(NaN) is NaN
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def learnable(self) -> bool:
        return "log_std" in self._parameters

    @property
    def std(self) -> Scalar:
        r"""The current :math:`\sigma`: a float, or a 0-d tensor carrying gradient if learnable."""
        if self.learnable:
            return self.log_std.clamp(*_LOG_STD_RANGE).exp()
        if self.schedule is not None:
            return _non_negative(f"noise_std (schedule at step {self.num_steps})",
                                 self.schedule(self.num_steps))
        return self._std

    def is_active(self) -> bool:
        """False when :math:`\\sigma` is exactly 0 (nothing to draw)."""
        return self.learnable or float(self.std) > 0.0

    def step(self) -> None:
        """Advance the schedule by one step (no effect on a fixed or learnable σ)."""
        self.num_steps += 1

    def set_std(self, std: float) -> None:
        """Replace :math:`\\sigma` by a fixed value (drops a schedule; keeps learnability)."""
        value = _non_negative("noise_std", std)
        if self.learnable:
            _learnable_start(value)
            with torch.no_grad():
                self.log_std.fill_(math.log(value))
        else:
            self.schedule = None
            self._std = value

    def generator(self, device: torch.device) -> Optional[torch.Generator]:
        """This neuron's generator on ``device`` (None without a seed)."""
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def extra_repr(self) -> str:
        if self.learnable:
            parts = [f"std={round(float(self.std.detach()), 6)}", "learnable=True"]
        elif self.schedule is not None:
            parts = [f"std={self.schedule!r}", f"num_steps={self.num_steps}"]
        else:
            parts = [f"std={self._std!r}"]
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ", ".join(parts)


def as_membrane_noise(value: Union[None, float, MembraneNoise]) -> Optional[MembraneNoise]:
    """What a neuron stores for its ``noise_std=`` argument: None (no noise) or a module.

    A number becomes a fixed :class:`MembraneNoise` (0 becomes None); a
    :class:`MembraneNoise` is kept as given; a schedule callable is wrapped.

    Raises:
        ConfigError: a negative, non-finite or non-numeric value.

    Examples:
        >>> as_membrane_noise(0.0) is None, as_membrane_noise(0.3)
        (True, MembraneNoise(std=0.3))
    """
    if value is None or isinstance(value, MembraneNoise):
        return value
    if callable(value):
        return MembraneNoise(value)
    if _non_negative("noise_std", value) == 0.0:
        return None
    return MembraneNoise(float(value))


def noise_kwargs(noise: Optional[MembraneNoise], training: bool, like: Tensor) -> dict:
    """Keyword arguments for ``s2_neuron_step``: the noise of a neuron in this mode.

    Empty (no noise) when ``noise`` is None, in ``eval()`` mode, or when σ is 0.

    Examples:
        >>> x = torch.zeros(2)
        >>> noise_kwargs(MembraneNoise(0.5), training=False, like=x)
        {}
        >>> noise_kwargs(MembraneNoise(0.5), training=True, like=x)
        {'noise_std': 0.5, 'generator': None}
    """
    if noise is None or not training or not noise.is_active():
        return {}
    return {"noise_std": noise.std, "generator": noise.generator(like.device)}


#: The neuron roles that take training noise on their membrane (the T=N IF neurons of role
#: ``"if"`` do not: their σ is a fixed conversion parameter, not a noise source).
NOISE_ROLES = ("single-step", "collapsed")


def takes_membrane_noise(module: nn.Module) -> bool:
    """True for a neuron of ours that draws membrane noise from its ``noise`` in ``train()``.

    Decided by the registry (:func:`~snn_singlestep.core.registry.neuron_kind`): the
    registered classes of role ``"single-step"`` (``S2Cell``, ``S2Neuron``, ``S2Node``) or
    ``"collapsed"`` (the neurons :func:`~snn_singlestep.collapse` builds), and their
    subclasses.
    """
    kind = registry.neuron_kind(module)
    return kind is not None and kind.role in NOISE_ROLES


def noise_modules(net: nn.Module) -> Iterator[tuple[str, MembraneNoise]]:
    """``(path, MembraneNoise)`` for the noise of every neuron of ``net`` that takes one.

    ``path`` is that of the noise module itself (``"<neuron path>.noise"``); neurons are
    those of :func:`takes_membrane_noise`.
    """
    for path, module in as_module("net", net).named_modules():
        noise = getattr(module, "noise", None)
        if isinstance(noise, MembraneNoise) and takes_membrane_noise(module):
            yield (f"{path}.noise" if path else "noise"), noise


def set_noise_std(
    net: nn.Module,
    std: Union[float, Callable[[int], float], None],
    *,
    learnable: bool = False,
    seed: Optional[int] = None,
) -> list[str]:
    r"""Give every single-step neuron of ``net`` membrane noise :math:`\sigma` (in place).

    Neurons are the modules for which :func:`takes_membrane_noise` holds: the registered
    neuron classes of role ``"single-step"`` (``S2Cell``, ``S2Neuron``, ``S2Node``) and
    ``"collapsed"`` (``CollapsedLeaky``, ``CollapsedLIFNode``, …), not the T=N IF neurons.
    Each gets a new :class:`MembraneNoise` (``std=0`` or None removes the noise); with
    ``seed``, neuron number ``i`` (in ``named_modules`` order) gets ``seed + i``, so layers
    draw independent noise.

    Returns:
        The dotted paths of the neurons changed.

    Examples:
        >>> from snn_singlestep.core import S2Cell
        >>> net = nn.Sequential(nn.Linear(3, 4), S2Cell(), nn.Linear(4, 2), S2Cell())
        >>> set_noise_std(net, 0.4, seed=0)
        ['1', '3']
        >>> net[3].noise
        MembraneNoise(std=0.4, seed=1)
    """
    as_module("net", net)
    if callable(std):
        function("std", std, hint="a schedule step -> σ, e.g. LinearNoiseSchedule")
    elif std is not None:
        _non_negative("noise_std", std)
    learnable = flag("learnable", learnable)
    optional_seed("seed", seed)
    changed = []
    for path, module in list(net.named_modules()):
        if takes_membrane_noise(module):
            if std is None or (not callable(std) and _non_negative("noise_std", std) == 0.0):
                module._modules.pop("noise", None)  # a plain None, not a "(noise): None" child
                module.noise = None
            else:
                module.noise = MembraneNoise(
                    std, learnable=learnable, seed=None if seed is None else seed + len(changed)
                )
            changed.append(path)
    return changed


def step_noise_schedules(net: nn.Module) -> None:
    """Call :meth:`MembraneNoise.step` on every noise module of ``net`` (e.g. once per epoch)."""
    for _, noise in noise_modules(net):
        noise.step()


def current_noise_std(module: nn.Module) -> float:
    """The σ a neuron trains with right now, as a float (0 without noise)."""
    noise = getattr(module, "noise", None)
    if not isinstance(noise, MembraneNoise):
        return 0.0
    std = noise.std
    return float(std.detach()) if isinstance(std, Tensor) else float(std)


def noisy_spike_probability(current: Tensor, threshold: Scalar, noise_std: float) -> Tensor:
    r"""The expected spike of the noisy single-step neuron, :math:`\Phi((I - \theta)/\sigma)`.

    .. math::

        \Pr[I + \sigma\varepsilon \ge \theta] = \Phi\!\left(\frac{I-\theta}{\sigma}\right)
        = \tfrac12\operatorname{erfc}\!\left(-\frac{I-\theta}{\sigma\sqrt2}\right)

    Examples:
        >>> noisy_spike_probability(torch.tensor([1.0]), 1.0, 0.4)
        tensor([0.5000])
    """
    sigma = real_number("noise_std", noise_std)
    if sigma <= 0:
        raise ConfigError(f"noise_std must be > 0 here, got {noise_std!r}")
    return 0.5 * torch.special.erfc(-(current - threshold) / (sigma * math.sqrt(2.0)))
