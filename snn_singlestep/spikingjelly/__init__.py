"""SpikingJelly glue: :class:`S2Node` (a ``neuron.BaseNode``) and :class:`ReducedS2`."""

from .._compat import check_version
from .._multistep import to_multistep_spikingjelly as to_multistep
from .node import ConvertedIFNode, S2Node
from .psp import PSPNorm1d, PSPNorm2d
from .surrogate import ReducedS2
from ._collapse import add_time_axis, collapse, reset_each_call

check_version("spikingjelly", supported=("2.0",))

__all__ = [
    "ConvertedIFNode",
    "PSPNorm1d",
    "PSPNorm2d",
    "ReducedS2",
    "S2Node",
    "add_time_axis",
    "collapse",
    "reset_each_call",
    "to_multistep",
]
