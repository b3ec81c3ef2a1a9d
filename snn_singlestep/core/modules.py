"""Plain-PyTorch shell of the single-step neuron (no snnTorch or SpikingJelly needed)."""

from __future__ import annotations

from typing import Callable, Optional, Union

from torch import Tensor, nn

from .validate import flag, loaded_finite, spike_function, threshold_tensor
from .functional import s2_neuron_step
from .fused import check_float_input, fire
from .noise import MembraneNoise, as_membrane_noise, noise_kwargs
from .registry import NeuronKind, keep_rule, register_neuron, register_rule
from .surrogate import S2Surrogate

__all__ = ["S2Cell"]


def check_loaded_threshold(state_dict: dict, prefix: str, name: str = "threshold") -> None:
    """Refuse a non-finite threshold in ``state_dict`` (a ``_load_from_state_dict`` hook).

    The constructors refuse a NaN/inf threshold; a checkpoint must not bring one in either.
    The ConfigError names the state_dict key.
    """
    loaded_finite(state_dict, prefix, name)


def neuron_spikes(
    x: Tensor,
    threshold: Union[float, Tensor],
    spike_fn: Callable[[Tensor], Tensor],
    noise: Optional[MembraneNoise],
    training: bool,
    *,
    name: str,
    params: Optional[tuple] = None,
) -> Tensor:
    r"""A single-step neuron's spikes :math:`H(x + \sigma\varepsilon - \theta)` in ``x``'s dtype.

    The one firing rule of :class:`S2Cell` and ``S2Node``: with training noise (``noise`` in
    training mode) the equations of :func:`~snn_singlestep.core.functional.s2_neuron_step`;
    otherwise :func:`~snn_singlestep.core.fused.fire` (same result, fewer passes; a bare
    comparison when no graph is needed). ``name`` names the input in the dtype error;
    ``params`` is passed on to ``fire``.
    """
    check_float_input(x, name)
    if noise is not None and training:
        kwargs = noise_kwargs(noise, True, x)
        if kwargs:
            spike, _ = s2_neuron_step(x, threshold, spike_fn, **kwargs)
            return spike.to(x.dtype)
    spike = fire(x, threshold, spike_fn, params)
    same = isinstance(spike, Tensor) and spike.dtype == x.dtype  # (not an fx Proxy)
    return spike if same else spike.to(x.dtype)


class S2Cell(nn.Module):
    r"""Single-step spiking neuron: :math:`s = H(I - \theta)`, S² surrogate gradient.

    The equations are those of :func:`~snn_singlestep.core.functional.s2_neuron_step`.
    The membrane is not kept between calls. Spikes have the input's dtype.

    Args:
        threshold: :math:`\theta`, a float or a tensor broadcastable to the input
            (e.g. one threshold per feature).
        surrogate: callable mapping :math:`v - \theta` to spikes; defaults to a new
            :class:`~snn_singlestep.core.surrogate.S2Surrogate`.
        learn_threshold: make :math:`\theta` a parameter.
        noise_std: Gaussian membrane noise :math:`\sigma` used in ``train()`` mode only
            (noise-based training, :mod:`~snn_singlestep.core.noise`): a number ``>= 0``
            (0, the default, means none), a schedule callable, or a
            :class:`~snn_singlestep.core.noise.MembraneNoise` (learnable, seeded, …).
            Stored as the submodule ``noise`` (None without noise).

    Examples:
        >>> import torch
        >>> cell = S2Cell(threshold=1.0)
        >>> cell(torch.tensor([0.2, 1.0, 3.0]))
        tensor([0., 1., 1.])
        >>> noisy = S2Cell(noise_std=0.4)
        >>> noisy.noise
        MembraneNoise(std=0.4)
    """

    def __init__(
        self,
        threshold: Union[float, Tensor] = 1.0,
        *,
        surrogate: Optional[Callable[[Tensor], Tensor]] = None,
        learn_threshold: bool = False,
        noise_std: Union[float, MembraneNoise, Callable[[int], float]] = 0.0,
    ) -> None:
        theta = threshold_tensor(threshold)
        noise = as_membrane_noise(noise_std)
        learn_threshold = flag("learn_threshold", learn_threshold)
        surrogate = spike_function("surrogate", surrogate)
        super().__init__()
        self.surrogate = S2Surrogate() if surrogate is None else surrogate
        self.noise = noise
        if learn_threshold:
            self.threshold = nn.Parameter(theta)
        else:
            self.register_buffer("threshold", theta)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        check_loaded_threshold(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, current: Tensor) -> Tensor:
        return neuron_spikes(
            current, self.threshold, self.surrogate, getattr(self, "noise", None),
            self.training, name="S2Cell input",
        )

    def extra_repr(self) -> str:
        theta = self.threshold
        shown = f"{theta.item():.4g}" if theta.numel() == 1 else f"tensor{tuple(theta.shape)}"
        learn = ", learn_threshold=True" if isinstance(theta, nn.Parameter) else ""
        return f"threshold={shown}{learn}"


register_neuron(NeuronKind(S2Cell, "torch", "single-step", S2Cell))
# S2Cell (and its subclasses) are single-step already: collapse keeps them.
register_rule(S2Cell, keep_rule, kind="keep", framework="core", inherit=True)
