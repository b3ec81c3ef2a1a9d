"""``ReducedS2``: the S² surrogate as a SpikingJelly ``SurrogateFunctionBase``."""

from __future__ import annotations

from spikingjelly.activation_based import surrogate
from torch import Tensor

from ..core.validate import flag, positive_number
from ..core.surrogate import MAX_SHAPE, s2_primitive, s2_spike

__all__ = ["ReducedS2"]


class ReducedS2(surrogate.SurrogateFunctionBase):
    r"""The reduced single-step surrogate of S²NN, SpikingJelly style.

    Same maths as :mod:`snn_singlestep.core.surrogate` (:math:`g'` is
    :math:`\alpha\sigma'(\alpha x)` below 0 and :math:`\beta/(1+x)` from 0 on), with the
    continuous primitive :math:`\sigma(\alpha x)` / :math:`\beta\ln(1+x) + 1/2`, and a
    backward that never evaluates the tail at :math:`x \le -1`. SpikingJelly's own
    ``surrogate.S2NN`` computes the same gradient; this class differs in its exact
    primitive (no ``+1e-5`` inside the log), its fused backward and its NaN safety in
    double backward. It is a custom surrogate to SpikingJelly, so nodes run it through
    their torch reference path (their fused kernels know built-in surrogates only).

    Args:
        alpha: α in (0, 1e4]. beta: β in (0, 1e4] (:data:`~snn_singlestep.core.surrogate.MAX_SHAPE`).
        spiking: False makes the forward return the primitive (smooth) function.

    Examples:
        >>> from spikingjelly.activation_based import neuron
        >>> lif = neuron.LIFNode(surrogate_function=ReducedS2(alpha=4.0, beta=1.0))
    """

    def __init__(self, alpha: float = 4.0, beta: float = 1.0, spiking: bool = True) -> None:
        alpha = positive_number("alpha", alpha, maximum=MAX_SHAPE)
        beta = positive_number("beta", beta, maximum=MAX_SHAPE)
        super().__init__(spiking=flag("spiking", spiking), alpha=alpha, beta=beta)

    @staticmethod
    def spiking_function(x: Tensor, alpha: float, beta: float) -> Tensor:
        return s2_spike(x, alpha, beta)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float, beta: float) -> Tensor:
        return s2_primitive(x, alpha, beta)
