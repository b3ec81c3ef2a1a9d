"""Conversion of existing nets: multi-step → single-step (:func:`collapse`, with threshold
calibration) and single-step → T=N (:func:`to_multistep`).

Framework-neutral: the engines walk a net and ask :mod:`snn_singlestep.core.registry` what
each module is and how to convert it. The rules and hooks of snnTorch and SpikingJelly
are registered by their glue packages (:mod:`snn_singlestep.snntorch.rules`,
:mod:`snn_singlestep.spikingjelly.rules`); a rule for a user's own neuron class goes
through :func:`register_rule`.
"""

from ..core.registry import Rule, RuleContext, get_rule, list_rules, register_rule, unregister_rule
from .calibrate import calibrate
from .collapse import CollapseOptions, MembraneReadout, SingleStepInput, collapse
from .multistep import MultiStepNet, to_multistep
from .report import CalibrationEntry, CollapseReport, ReportEntry

__all__ = [
    "CalibrationEntry",
    "CollapseOptions",
    "CollapseReport",
    "MembraneReadout",
    "MultiStepNet",
    "ReportEntry",
    "Rule",
    "RuleContext",
    "SingleStepInput",
    "calibrate",
    "collapse",
    "get_rule",
    "list_rules",
    "register_rule",
    "to_multistep",
    "unregister_rule",
]
