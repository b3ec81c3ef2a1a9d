"""``S2Neuron``: the single-step neuron as a drop-in for ``snntorch.Leaky``."""

from __future__ import annotations

from typing import Callable, Optional, Union

import snntorch
import torch
from torch import Tensor

from ..core._validate import flag, real_number
from ..core.functional import s2_neuron_step
from ..core.modules import threshold_tensor
from ..core.surrogate import S2Surrogate, heaviside
from ..errors import ConfigError

__all__ = ["S2Neuron", "add_time_dim"]

_RESET_MECHANISMS = ("subtract", "zero", "none")


def _finite_scalar_or_tensor(name: str, value: Union[float, Tensor]) -> None:
    if isinstance(value, Tensor):
        threshold_tensor(value, name)
    else:
        real_number(name, value)


class S2Neuron(snntorch.Leaky):
    r"""Single-step (T=1) spiking neuron of S²NN, a subclass of :class:`snntorch.Leaky`.

    Each call is one complete time step from a zero membrane,
    :math:`v = I,\ s = H(v - \theta)` (see
    :func:`~snn_singlestep.core.functional.s2_neuron_step`): nothing is carried from one
    call to the next, so the output depends on the current input only. The backward pass
    uses the S² surrogate (:class:`~snn_singlestep.core.surrogate.S2Surrogate`) unless
    ``spike_grad`` says otherwise. A membrane exactly at threshold spikes.

    Every argument of ``snntorch.Leaky`` is accepted in the same position, so replacing
    ``snn.Leaky(beta=0.9, ...)`` by ``S2Neuron(beta=0.9, ...)`` just works, and a
    ``Leaky`` state_dict loads. What each means at T=1:

    - ``beta``, ``reset_mechanism``, ``reset_delay``: accepted, stored, no effect (there
      is no previous membrane to decay and no later step to reset).
    - ``learn_beta=True``: raises, since β can get no gradient at T=1.
    - ``threshold``, ``learn_threshold``, ``graded_spikes_factor``,
      ``learn_graded_spikes_factor``, ``inhibition``, ``state_quant``,
      ``surrogate_disable``, ``init_hidden``, ``output``: as in ``Leaky``.
    - ``spike_grad=None`` means the S² surrogate (``Leaky`` would pick atan).

    Return values follow ``Leaky``: ``(spk, mem)``, or ``spk`` alone when
    ``init_hidden=True`` and ``output=False``. ``mem`` is the membrane of this step,
    :math:`v = I`; use it as the readout of the last layer, where spikes tie too often
    at T=1. A ``mem`` argument passed by a tutorial-style loop is accepted and ignored.
    Spikes and membrane keep the input's dtype.

    Example:
        >>> import torch, torch.nn as nn
        >>> from snn_singlestep import S2Neuron
        >>> net = nn.Sequential(nn.Linear(4, 3), S2Neuron(init_hidden=True))
        >>> net(torch.ones(2, 4)).shape
        torch.Size([2, 3])
        >>> lif = S2Neuron(beta=0.9)
        >>> spk, mem = lif(torch.tensor([0.5, 1.5]))
        >>> spk
        tensor([0., 1.])
    """

    def __init__(
        self,
        beta: Union[float, Tensor] = 1.0,
        threshold: Union[float, Tensor] = 1.0,
        spike_grad: Optional[Callable[[Tensor], Tensor]] = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Union[bool, Callable[[Tensor], Tensor]] = False,
        output: bool = False,
        graded_spikes_factor: Union[float, Tensor] = 1.0,
        learn_graded_spikes_factor: bool = False,
        reset_delay: bool = True,
    ) -> None:
        # Validate everything before Leaky.__init__: snnTorch appends the instance to a
        # global list first, and a half-built neuron there breaks every later reset.
        _finite_scalar_or_tensor("beta", beta)
        _finite_scalar_or_tensor("threshold", threshold)
        _finite_scalar_or_tensor("graded_spikes_factor", graded_spikes_factor)
        for name, value in (
            ("surrogate_disable", surrogate_disable),
            ("init_hidden", init_hidden),
            ("inhibition", inhibition),
            ("learn_beta", learn_beta),
            ("learn_threshold", learn_threshold),
            ("output", output),
            ("learn_graded_spikes_factor", learn_graded_spikes_factor),
            ("reset_delay", reset_delay),
        ):
            flag(name, value)
        if learn_beta:
            raise ConfigError(
                "learn_beta=True cannot hold in S2Neuron: a single-step neuron has no "
                "previous membrane for beta to decay, so beta gets no gradient. Drop "
                "learn_beta (beta is accepted and ignored)."
            )
        if reset_mechanism not in _RESET_MECHANISMS:
            raise ConfigError(
                f"reset_mechanism must be one of {_RESET_MECHANISMS}, got {reset_mechanism!r}"
            )
        if spike_grad is not None and not callable(spike_grad):
            raise ConfigError(f"spike_grad must be callable or None, got {spike_grad!r}")
        if state_quant is not False and not callable(state_quant):
            raise ConfigError(f"state_quant must be False or callable, got {state_quant!r}")
        if spike_grad is None:
            spike_grad = S2Surrogate()
        super().__init__(
            beta,
            threshold,
            spike_grad,
            surrogate_disable,
            init_hidden,
            inhibition,
            learn_beta,
            learn_threshold,
            reset_mechanism,
            state_quant,
            output,
            graded_spikes_factor,
            learn_graded_spikes_factor,
            reset_delay,
        )
        if surrogate_disable:
            # Leaky's bypass fires on ``>`` and returns float32; keep our tie rule and dtype.
            self.spike_grad = heaviside

    def _threshold_buffer(self, threshold, learn_threshold):
        # snnTorch stores a float threshold as float32; keep it exact (float64, 0-d) so
        # float64 inputs tie exactly at v == threshold, as S2Node and s2_spike do.
        super()._threshold_buffer(threshold_tensor(threshold), learn_threshold)

    def forward(self, input_: Tensor, mem: Optional[Tensor] = None):
        if self.init_hidden and mem is not None:
            raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
        v = self.state_quant(input_) if self.state_quant else input_
        if self.inhibition:
            spk = self.fire_inhibition(v.size(0), v)
        else:
            spk, v = s2_neuron_step(v, self.threshold, self.spike_grad)
            spk = spk * self.graded_spikes_factor
        spk = spk.to(input_.dtype)
        if self.output or not self.init_hidden:
            return spk, v
        return spk


def add_time_dim(x: Tensor) -> Tensor:
    """Return ``x`` as a one-step sequence ``[1, B, ...]`` for ``snntorch.functional``.

    snnTorch's losses and accuracy functions expect ``[T, B, C]``. Note that
    ``mse_count_loss(correct_rate=0.8)`` builds an all-zero target at T=1 (it truncates
    ``0.8 * T`` to an int): use ``correct_rate=1.0`` or ``ce_rate_loss`` /
    ``ce_count_loss`` with single-step nets.

    Example:
        >>> import torch
        >>> import snntorch.functional as SF
        >>> spk = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> float(SF.accuracy_rate(add_time_dim(spk), torch.tensor([0, 1])))
        1.0
    """
    return x.unsqueeze(0)
