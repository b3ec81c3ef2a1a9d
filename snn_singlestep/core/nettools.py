"""Small helpers on module trees shared by the converters and exporters."""

from __future__ import annotations

import copy
from typing import Any

from torch import Tensor, nn

__all__ = ["copy_net"]


def copy_net(net: nn.Module) -> nn.Module:
    """``copy.deepcopy(net)`` that also works after the net has run.

    A net that ran keeps hidden state that is part of the autograd graph (snnTorch's
    ``mem`` with ``init_hidden=True``, SpikingJelly memories); such non-leaf tensors cannot
    be deep-copied, so the copy gets detached clones of them.
    """
    memo: dict[int, Any] = {}
    for m in net.modules():
        values = list(m._buffers.values()) + list(vars(m).values())
        # state a framework keeps in a dict attribute (e.g. SpikingJelly's memories)
        values += [v for d in vars(m).values() if isinstance(d, dict) for v in d.values()]
        for value in values:
            if isinstance(value, Tensor) and not value.is_leaf and id(value) not in memo:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(net, memo)
