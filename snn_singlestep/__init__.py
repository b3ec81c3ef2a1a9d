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
from .core import S2Cell, S2Surrogate, s2_grad, s2_primitive, s2_spike, s2nn, squeeze_time
from .core.multifield import MultiFieldBlock
from .core.noise import LinearNoiseSchedule, MembraneNoise, set_noise_std, step_noise_schedules
from .core.psp import PSPNorm, PSPNorm1d, PSPNorm2d
from .errors import (
    CheckpointError,
    ConfigError,
    ConversionError,
    RegistrationError,
    ShapeError,
    SingleStepError,
    SingleStepWarning,
)

# The glue packages register their neurons, rules and hooks in core.registry on import.
from .snntorch import S2Neuron, add_time_dim
from .spikingjelly import ReducedS2, S2Node

from ._registration import register, registered, unregister
from .convert import (
    CollapseReport,
    MultiStepNet,
    collapse,
    list_rules,
    register_rule,
    to_multistep,
    unregister_rule,
)
from .models import preact_resnet

__version__ = "0.1.0"

__all__ = [
    "add_time_dim",
    "CheckpointError",
    "collapse",
    "CollapseReport",
    "ConfigError",
    "ConversionError",
    "core",
    "errors",
    "LinearNoiseSchedule",
    "list_rules",
    "MembraneNoise",
    "MultiFieldBlock",
    "MultiStepNet",
    "preact_resnet",
    "PSPNorm",
    "PSPNorm1d",
    "PSPNorm2d",
    "ReducedS2",
    "register",
    "register_rule",
    "registered",
    "RegistrationError",
    "s2_grad",
    "s2_primitive",
    "s2_spike",
    "S2Cell",
    "S2Neuron",
    "s2nn",
    "S2Node",
    "S2Surrogate",
    "set_noise_std",
    "ShapeError",
    "SingleStepError",
    "SingleStepWarning",
    "squeeze_time",
    "step_noise_schedules",
    "to_multistep",
    "unregister",
    "unregister_rule",
    "__version__",
]

if os.environ.get("SNN_SINGLESTEP_NO_REGISTER", "").strip().lower() not in ("1", "true", "yes"):
    try:
        register()
    except RegistrationError as err:  # never break the import over a name clash
        warnings.warn(str(err), SingleStepWarning, stacklevel=2)
