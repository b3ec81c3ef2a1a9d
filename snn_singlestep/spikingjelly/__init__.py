"""SpikingJelly glue: :class:`S2Node` (a ``neuron.BaseNode``) and :class:`ReducedS2`."""

from .._compat import check_version
from .node import S2Node
from .surrogate import ReducedS2

check_version("spikingjelly", supported=("2.0",))

__all__ = ["ReducedS2", "S2Node"]
