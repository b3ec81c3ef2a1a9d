"""SpikingJelly glue: :class:`S2Node` (a ``neuron.BaseNode``), the :class:`ReducedS2`
surrogate, PSP-normalization layers, and the collapse rules of SpikingJelly's neurons,
containers and model zoo (:mod:`.rules`).

Importing this package registers the nodes, the rules and SpikingJelly's hooks in
:mod:`snn_singlestep.core.registry`; a new SpikingJelly rule goes in :mod:`.rules`.
"""

from .._compat import check_version
from . import rules
from .node import ConvertedIFNode, S2Node
from .psp import PSPNorm1d, PSPNorm2d
from .rules import add_time_axis, reset_each_call
from .surrogate import ReducedS2

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
    "rules",
    "to_multistep",
]


def collapse(net, **options):
    r"""Convert a multi-step SpikingJelly net (or a model-zoo model) to a single-step net.

    :func:`snn_singlestep.collapse` with SpikingJelly's rules only (same keyword arguments).
    Neurons become single-step nodes computing the source's first step (``docs/collapse.md``);
    containers and stateful layers are converted in place so ``state_dict`` keys are
    unchanged (a checkpoint of the source loads with ``strict=True``); the reset cache is
    invalidated. A net with its own ``forward`` (SpikingJelly's example nets) keeps its step
    modes and is called as before (set ``net.T = 1``). An ``nn.Sequential`` of framework
    layers or a model-zoo model is set to step mode ``'s'`` (``'m'`` with ``T = 1`` inside
    models whose forward is written for ``[T, B, ...]``): it takes ``[B, ...]`` input, also
    accepts ``[1, B, ...]``, rejects T > 1 with a :class:`~snn_singlestep.errors.ShapeError`,
    and returns what the source returned at T=1 without the time dimension.

    Examples:
        >>> import torch
        >>> from spikingjelly.activation_based import functional, layer, neuron
        >>> net = torch.nn.Sequential(layer.Conv2d(1, 4, 3), neuron.LIFNode(), layer.Flatten(),
        ...                           layer.Linear(4 * 6 * 6, 3))
        >>> functional.set_step_mode(net, "m")
        >>> single = collapse(net)
        >>> x = torch.rand(2, 1, 8, 8)
        >>> bool(torch.equal(single(x), net(x.unsqueeze(0))[0]))
        True
        >>> single(x.unsqueeze(0)).shape  # [1, B, ...] is accepted too
        torch.Size([2, 3])
    """
    from ..convert import collapse as convert_collapse

    return convert_collapse(net, framework="spikingjelly", **options)


def to_multistep(net, T, **options):
    """:func:`snn_singlestep.to_multistep` with SpikingJelly IF nodes (``framework="spikingjelly"``).

    ``conv.net`` then runs with SpikingJelly's idiom: ``functional.reset_net(conv.net)``,
    ``functional.set_step_mode(conv.net, "m")`` and a ``[T, B, ...]`` input (for nets built
    from ``spikingjelly.activation_based.layer`` modules).
    """
    from ..convert import to_multistep as convert_to_multistep

    return convert_to_multistep(net, T, framework="spikingjelly", **options)
