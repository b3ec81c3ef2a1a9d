"""snnTorch glue: :class:`S2Neuron` (a ``snntorch.Leaky``) and the ``s2nn`` surrogate factory."""

from .._compat import check_version
from ..core.surrogate import S2Surrogate, s2nn
from .neuron import S2Neuron, add_time_dim

check_version("snntorch", supported=("1.0",))

__all__ = ["S2Neuron", "S2Surrogate", "add_time_dim", "s2nn"]
