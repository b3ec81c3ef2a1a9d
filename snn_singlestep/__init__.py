"""Single-step (T=1) spiking neural networks for snnTorch and SpikingJelly.

``from snn_singlestep import S2Neuron`` gives a drop-in for ``snntorch.Leaky``;
``S2Node`` is the SpikingJelly node; both use the reduced S² surrogate gradient
(``s2nn`` / ``S2Surrogate`` / ``ReducedS2``). Importing the package also registers these
names in the frameworks' own namespaces (see :func:`register`).
"""

from __future__ import annotations

import os
import warnings

from . import core, errors
from ._registration import register, registered, unregister
from .core import S2Cell, S2Surrogate, s2_grad, s2_primitive, s2_spike, s2nn, squeeze_time
from .errors import (
    CheckpointError,
    ConfigError,
    ConversionError,
    RegistrationError,
    ShapeError,
    SingleStepError,
    SingleStepWarning,
)
from .snntorch import S2Neuron, add_time_dim
from .spikingjelly import ReducedS2, S2Node

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConversionError",
    "ReducedS2",
    "RegistrationError",
    "S2Cell",
    "S2Neuron",
    "S2Node",
    "S2Surrogate",
    "ShapeError",
    "SingleStepError",
    "SingleStepWarning",
    "__version__",
    "add_time_dim",
    "core",
    "errors",
    "register",
    "registered",
    "s2_grad",
    "s2_primitive",
    "s2_spike",
    "s2nn",
    "squeeze_time",
    "unregister",
]

if os.environ.get("SNN_SINGLESTEP_NO_REGISTER", "").strip().lower() not in ("1", "true", "yes"):
    try:
        register()
    except RegistrationError as err:  # never break the import over a name clash
        warnings.warn(str(err), SingleStepWarning, stacklevel=2)
