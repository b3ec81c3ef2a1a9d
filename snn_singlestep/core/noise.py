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

**Conversion (T=N).** :func:`snn_singlestep.to_multistep` replaces each single-step
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
from typing import Callable, Iterator, Optional, Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ._validate import flag, real_number
from .surrogate import S2Surrogate, s2_spike

__all__ = [
    "MAPPINGS",
    "ConvertedIF",
    "LinearNoiseSchedule",
    "MembraneNoise",
    "as_membrane_noise",
    "current_noise_std",
    "if_conversion_params",
    "if_drive",
    "if_spike_count",
    "if_step",
    "noise_kwargs",
    "noise_modules",
    "noisy_spike_probability",
    "set_noise_std",
    "step_noise_schedules",
]

#: Values accepted by ``mapping=`` (see the module docstring).
MAPPINGS = ("matched", "plain")

Scalar = Union[float, Tensor]
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _non_negative(name: str, value: object) -> float:
    out = real_number(name, value)
    if out < 0:
        raise ConfigError(f"{name} must be >= 0 (0 turns the noise off), got {value!r}")
    return out


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
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ConfigError(f"num_steps must be an int >= 1, got {num_steps!r}")
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
        learnable: make :math:`\sigma` a parameter (stored as ``log_std``, so it stays
            > 0); needs a number ``std > 0``.
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
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"seed must be an int or None, got {seed!r}")
        schedule = None
        if callable(std):
            schedule = std
            if learnable:
                raise ConfigError(
                    "learnable=True needs a fixed starting std, got a schedule; choose one"
                )
            value = _non_negative("noise_std (schedule at step 0)", schedule(0))
        else:
            value = _non_negative("noise_std", std)
            if learnable and value == 0.0:
                raise ConfigError(
                    "learnable noise needs std > 0 (it is stored as log(std)), got 0"
                )
        super().__init__()
        self.schedule = schedule
        self.seed = seed
        self.num_steps = 0
        self._generators: dict[str, torch.Generator] = {}
        if learnable:
            self.log_std = nn.Parameter(torch.tensor(value).log())
        else:
            self._std = value

    @property
    def learnable(self) -> bool:
        return "log_std" in self._parameters

    @property
    def std(self) -> Scalar:
        r"""The current :math:`\sigma`: a float, or a 0-d tensor carrying gradient if learnable."""
        if self.learnable:
            return self.log_std.exp()
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
            if value == 0.0:
                raise ConfigError("learnable noise needs std > 0, got 0")
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


def noise_modules(net: nn.Module) -> Iterator[tuple[str, MembraneNoise]]:
    """``(path, MembraneNoise)`` for every noise module in ``net``."""
    for path, module in net.named_modules():
        if isinstance(module, MembraneNoise):
            yield path, module


def set_noise_std(
    net: nn.Module,
    std: Union[float, Callable[[int], float], None],
    *,
    learnable: bool = False,
    seed: Optional[int] = None,
) -> list[str]:
    r"""Give every single-step neuron of ``net`` membrane noise :math:`\sigma` (in place).

    Neurons are the modules whose class sets ``supports_membrane_noise = True``
    (``S2Cell``, ``S2Neuron``, ``S2Node``). Each gets a new :class:`MembraneNoise`
    (``std=0`` or None removes the noise); with ``seed``, neuron number ``i`` (in
    ``named_modules`` order) gets ``seed + i``, so layers draw independent noise.

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
    changed = []
    for path, module in list(net.named_modules()):
        if getattr(type(module), "supports_membrane_noise", False):
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


# --- conversion to T=N ------------------------------------------------------------------


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
    return current * a + b


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
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ConfigError(f"num_steps must be an int >= 1, got {num_steps!r}")
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
        from .modules import threshold_tensor

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
