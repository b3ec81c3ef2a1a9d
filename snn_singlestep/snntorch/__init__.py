"""snnTorch glue: :class:`S2Neuron` (a ``snntorch.Leaky``) and the ``s2nn`` surrogate factory."""

from .._compat import check_version
from ..core.surrogate import S2Surrogate, s2nn
from .._multistep import to_multistep_snntorch as to_multistep
from .neuron import ConvertedIFNeuron, S2Neuron, add_time_dim
from ._collapse import collapse

check_version("snntorch", supported=("1.0",))

__all__ = [
    "ConvertedIFNeuron",
    "S2Neuron",
    "S2Surrogate",
    "add_time_dim",
    "collapse",
    "s2nn",
    "to_multistep",
]
