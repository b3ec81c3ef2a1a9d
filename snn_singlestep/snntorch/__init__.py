"""snnTorch glue: :class:`S2Neuron` (a ``snntorch.Leaky``), the ``s2nn`` surrogate factory,
and the collapse rules of snnTorch's neurons (:mod:`.rules`).

Importing this package registers the neurons, the rules and snnTorch's hooks in
:mod:`snn_singlestep.core.registry`; a new snnTorch neuron rule goes in :mod:`.rules`.
"""

from .._compat import check_version
from ..core.surrogate import S2Surrogate, s2nn
from . import rules
from .neuron import ConvertedIFNeuron, S2Neuron, add_time_dim

check_version("snntorch", supported=("1.0",))

__all__ = [
    "ConvertedIFNeuron",
    "S2Neuron",
    "S2Surrogate",
    "add_time_dim",
    "collapse",
    "rules",
    "s2nn",
    "to_multistep",
]


def collapse(net, **options):
    """:func:`snn_singlestep.collapse` with snnTorch's rules only (same keyword arguments).

    ``input_ndim`` defaults to None here (no input check: an snnTorch forward decides its
    own input layout). For calibration the default ``run_original`` calls
    ``snntorch.utils.reset(net)`` and then ``net(x)`` T times, which fits
    ``init_hidden=True`` nets; pass ``run_original=lambda net, x: net(x)`` for a net whose
    forward loops over time itself.

    Examples:
        >>> import torch, torch.nn as nn, snntorch as snn
        >>> lif = snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=True)
        >>> net = nn.Sequential(nn.Linear(4, 3), lif)
        >>> single = collapse(net)
        >>> x = torch.randn(2, 4)
        >>> bool(torch.equal(single(x), net(x)))  # the source's first step, spike for spike
        True
    """
    from ..convert import collapse as convert_collapse

    options.setdefault("input_ndim", None)
    return convert_collapse(net, framework="snntorch", **options)


def to_multistep(net, T, **options):
    """:func:`snn_singlestep.to_multistep` with snnTorch IF neurons (``framework="snntorch"``).

    ``conv.net`` then runs with snnTorch's idiom: ``snntorch.utils.reset(conv.net)`` and a
    loop over time steps.
    """
    from ..convert import to_multistep as convert_to_multistep

    return convert_to_multistep(net, T, framework="snntorch", **options)
