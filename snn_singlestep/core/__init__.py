"""Framework-neutral core: torch only. Importing snntorch or spikingjelly here is a bug."""

from .functional import s2_neuron_step, squeeze_time
from .modules import S2Cell
from .surrogate import (
    S2Spike,
    S2Surrogate,
    get_fused_backward,
    heaviside,
    s2_grad,
    s2_primitive,
    s2_spike,
    s2nn,
    set_fused_backward,
)

__all__ = [
    "S2Cell",
    "S2Spike",
    "S2Surrogate",
    "get_fused_backward",
    "heaviside",
    "s2_grad",
    "s2_neuron_step",
    "s2_primitive",
    "s2_spike",
    "s2nn",
    "set_fused_backward",
    "squeeze_time",
]
