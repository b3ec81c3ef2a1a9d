r"""Collapse multi-step snnTorch / SpikingJelly nets to single-step (T=1) nets.

The engine: :func:`collapse` validates its options once (:class:`CollapseOptions`), walks the
net and asks :mod:`snn_singlestep.core.registry` for each module's rule
(:func:`~snn_singlestep.core.registry.get_rule`) and, for modules without one, each framework's
hooks (is it spiking, why can it not stay). It imports neither framework nor the glue: the
rules live in :mod:`snn_singlestep.snntorch.rules` and :mod:`snn_singlestep.spikingjelly.rules`,
which register them on import; ``docs/collapse.md`` renders them.

A *rule* is ``fn(module, ctx) -> module``. It returns a replacement module (recorded as
*replaced*), or the same module after editing it in place (recorded as *adapted*), or
raises :class:`~snn_singlestep.errors.ConversionError` with the reason the module cannot
be converted (recorded as *unconverted*; :func:`collapse` then raises one error that lists
every such module and carries the report). ``ctx`` is a
:class:`~snn_singlestep.core.registry.RuleContext`.

Rules are looked up along the method resolution order of a module's class. A built-in
neuron rule found on a base class is *not* used for a subclass that overrides one of the
base class's methods (its first step may differ): register a rule for the subclass.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Collection, Iterable, Optional, Sequence, Union

from torch import Tensor, nn

from ..core import registry
from ..core.functional import squeeze_time
from ..core.nettools import copy_net
from ..core.registry import RuleContext, get_rule, qualname
from ..core.validate import STEP_MODES, choice, flag, positive_int, spike_function
from ..errors import ConfigError, ConversionError, SingleStepWarning
from .calibrate import calibrate, calibration_inputs, check_calibration_args
from .report import CalibrationEntry, CollapseReport, ReportEntry

__all__ = [
    "CalibrationEntry",
    "CollapseOptions",
    "CollapseReport",
    "MembraneReadout",
    "ReportEntry",
    "SingleStepInput",
    "collapse",
]

MODES = ("exact", "calibrated")
#: Values of ``step_mode=``: ``"auto"`` or one of SpikingJelly's step modes.
STEP_MODE_CHOICES = ("auto", *STEP_MODES)
ERRORS = ("raise", "keep")
#: Values of ``readout=``: ``"auto"`` (keep the output, warn when it is spikes), ``"spikes"``
#: (keep it, no warning), ``"membrane"`` (the output neuron returns its membrane).
READOUTS = ("auto", "spikes", "membrane")


# --- the walk -------------------------------------------------------------------------


@dataclass
class _Walk:
    frameworks: tuple[str, ...]
    mode: str
    surrogate: Optional[Callable]
    report: CollapseReport
    keep: bool = False  # keep each module's own step mode (nets with their own forward)
    step_modes: dict[int, str] = field(default_factory=dict)  # id(module) -> 's' / 'm'
    done: dict[int, nn.Module] = field(default_factory=dict)  # shared modules convert once
    spiking_paths: list[str] = field(default_factory=list)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _unknown_reason(module: nn.Module, step_mode: str, frameworks: Sequence[str]) -> Optional[str]:
    for fw in registry.frameworks():
        reason = fw.unknown_reason(module, step_mode)
        if reason is None:
            continue
        if fw.name not in frameworks:
            return (
                f"a {fw.name} module, but this collapse applies {'/'.join(frameworks)} rules "
                f"only: use {fw.entry_point} or snn_singlestep.collapse"
            )
        return reason
    return None


def _own_step_mode(module: nn.Module) -> Optional[str]:
    for fw in registry.frameworks():
        mode = fw.step_mode_of(module)
        if mode is not None:
            return mode
    return None


def _visit(module: nn.Module, path: str, step_mode: str, walk: _Walk) -> nn.Module:
    if id(module) in walk.done:
        return walk.done[id(module)]
    if walk.keep:
        step_mode = _own_step_mode(module) or step_mode
    rule = get_rule(type(module), walk.frameworks)
    out = module
    child_step_mode = step_mode
    descend = True
    if rule is not None:
        ctx = RuleContext(path, walk.mode, step_mode, walk.surrogate)
        try:
            result = rule(module, ctx)
        except ConversionError as err:
            walk.report.entries.append(
                ReportEntry(path, qualname(module), "unconverted", "", str(err))
            )
            result, descend = module, False
        else:
            out = module if result is None else result
            if not isinstance(out, nn.Module):
                raise ConfigError(
                    f"the collapse rule for {qualname(module)} returned {out!r}, not a module"
                )
            action = (
                "replaced" if out is not module else ("kept" if rule.kind == "keep" else "adapted")
            )
            detail = rule.note + ("" if rule.exact else " [not first-step exact]")
            walk.report.entries.append(
                ReportEntry(
                    path,
                    qualname(module),
                    action,
                    qualname(out) if action == "replaced" else "",
                    detail,
                )
            )
            walk.report.notes.extend(ctx._notes)
            descend = rule.kind not in ("neuron", "keep", "refuse")
            child_step_mode = ctx._child_step_mode or step_mode
        if rule.kind in ("neuron", "keep", "refuse"):
            walk.spiking_paths.append(path)
    else:
        reason = _unknown_reason(module, step_mode, walk.frameworks)
        if reason is not None:
            walk.report.entries.append(
                ReportEntry(path, qualname(module), "unconverted", "", reason)
            )
            walk.spiking_paths.append(path)
            descend = False
    walk.step_modes[id(out)] = step_mode
    walk.done[id(module)] = out
    if descend:
        for name, child in list(out._modules.items()):
            if child is None:
                continue
            new = _visit(child, _join(path, name), child_step_mode, walk)
            if new is not child:
                out._modules[name] = new
    return out


def _is_spiking(net: nn.Module) -> bool:
    for m in net.modules():
        rule = get_rule(type(m))
        if rule is not None and rule.kind in ("neuron", "keep", "refuse"):
            return True
        if any(fw.is_spiking(m) for fw in registry.frameworks()):
            return True
    return False


class SingleStepInput:
    """Forward pre-hook that makes a net take ``[B, ...]`` input (and ``[1, B, ...]``).

    A leading time dimension of size 1 is removed; T > 1 raises
    :class:`~snn_singlestep.errors.ShapeError` (see
    :func:`~snn_singlestep.core.functional.squeeze_time`). With ``add_time=True`` the
    squeezed input gets a time dimension of size 1 back, for nets whose forward is written
    for ``[T, B, ...]``.

    Args:
        sample_ndim: number of dims of a ``[B, ...]`` input.
        add_time: give the net ``x.unsqueeze(0)``.

    Examples:
        >>> import torch
        >>> net = torch.nn.Linear(4, 2)
        >>> handle = net.register_forward_pre_hook(SingleStepInput(2))
        >>> net(torch.ones(1, 3, 4)).shape
        torch.Size([3, 2])
    """

    def __init__(self, sample_ndim: int, add_time: bool = False) -> None:
        self.sample_ndim = positive_int("sample_ndim", sample_ndim)
        self.add_time = flag("add_time", add_time)

    def __call__(self, module: nn.Module, args: tuple) -> Optional[tuple]:
        if not args or not isinstance(args[0], Tensor):
            return None
        x = squeeze_time(args[0], self.sample_ndim, name="input")
        if self.add_time:
            x = x.unsqueeze(0)
        return (x, *args[1:])

    def __repr__(self) -> str:
        return f"SingleStepInput(sample_ndim={self.sample_ndim}, add_time={self.add_time})"


def _install_input_hook(net: nn.Module, ndim: int, add_time: bool) -> None:
    for key, hook in list(net._forward_pre_hooks.items()):
        if isinstance(hook, SingleStepInput):  # collapsing twice: replace, not stack
            del net._forward_pre_hooks[key]
    net.register_forward_pre_hook(SingleStepInput(ndim, add_time))


class MembraneReadout(nn.Module):
    r"""A collapsed output neuron read out as its first-step membrane :math:`h_1` (no spikes).

    Built by ``collapse(net, readout="membrane")`` for the spiking neuron the net's output
    comes from. It returns ``neuron.membrane(x)`` where the neuron returned spikes; a neuron
    returning a tuple (snnTorch's ``spk, mem``) gets its first element replaced, the rest is
    kept. The neuron's parameters, buffers and children are this module's own, under the
    same names, so ``state_dict`` keys are unchanged (a checkpoint of the source loads with
    ``strict=True``); parameters entering :math:`h_1` (``ParametricLIFNode.w``, …) learn.

    Args:
        neuron: a collapsed neuron with ``membrane(x)`` (see
            :class:`~snn_singlestep.core.registry.Calibratable`).

    Examples:
        >>> import torch
        >>> from spikingjelly.activation_based import neuron
        >>> from snn_singlestep import collapse
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), neuron.LIFNode(tau=2.0))
        >>> single = collapse(net, readout="membrane")
        >>> x = torch.ones(1, 3)
        >>> torch.equal(single(x), single[0](x) / 2)  # h1 = x / tau
        True
    """

    def __init__(self, neuron: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(neuron, "membrane", None)):
            raise ConfigError(
                f"{qualname(neuron)} has no membrane(x): it cannot be read out as a membrane"
            )
        # the neuron is not a child: its state is this module's own (same state_dict keys)
        self.__dict__["neuron"] = neuron
        self._parameters = neuron._parameters
        self._buffers = neuron._buffers
        self._non_persistent_buffers_set = neuron._non_persistent_buffers_set
        self._modules = neuron._modules
        self.training = neuron.training

    #: The threshold methods of the neuron are not forwarded: a membrane readout does not
    #: fire, so ``collapse(mode="calibrated")`` leaves it alone (it is not ``Calibratable``).
    _NOT_FORWARDED = frozenset({"get_threshold", "set_threshold"})

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            neuron = self.__dict__.get("neuron")
            if neuron is None or name in self._NOT_FORWARDED:
                raise
            return getattr(neuron, name)  # the neuron's API (init_leaky, v_threshold, …)

    def train(self, mode: bool = True) -> "MembraneReadout":
        super().train(mode)
        self.neuron.training = mode
        return self

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.neuron._load_from_state_dict(*args, **kwargs)

    def forward(self, x: Tensor, *args, **kwargs):
        v = self.neuron.membrane(x)
        out = self.neuron(x, *args, **kwargs)
        if isinstance(out, tuple):
            return (v, *out[1:])
        return v

    def extra_repr(self) -> str:
        return f"neuron={type(self.neuron).__name__}"


def _has_own_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def _spiking_output(
    net: nn.Module, spiking_paths: Collection[str] = ()
) -> tuple[Optional[str], Optional[str]]:
    """``(path, None)`` of the spiking neuron the net's output comes straight from, or
    ``(None, why_not)``.

    Run-free: the last spiking module in registration order, unless a module with weights
    of its own (a ``Linear``, a convolution, a norm, …) is registered after it. Parameter-free
    modules after it (pooling, ``mean``, ``Flatten``, dropout) keep spikes spikes. A module is
    spiking if the registry knows its class or if collapse converted it with a neuron rule
    (``spiking_paths``: a user's neuron registered with ``register_rule`` only).
    """
    spiking = set(spiking_paths)
    last: Optional[str] = None
    after: Optional[str] = None
    for path, m in net.named_modules():
        if last is not None and (last == "" or path.startswith(last + ".")):
            continue  # inside the neuron
        if path in spiking or registry.is_spiking(m):
            last, after = path, None
        elif last is not None and after is None and _has_own_parameters(m):
            after = path
    if last is None:
        return None, "it has no spiking neuron"
    if after is not None:
        return None, f"the last spiking neuron {last!r} is followed by the layer {after!r}"
    return last, None


def _membrane_readout(work: nn.Module, path: str, report: CollapseReport) -> nn.Module:
    neuron = work.get_submodule(path)
    if not isinstance(neuron, registry.Calibratable):
        raise ConversionError(
            f"readout='membrane': the output neuron {path or '<net>'!r} ({qualname(neuron)}) "
            "has no membrane(x) (it is not a collapsed neuron); drop readout='membrane'",
            report=report,
        )
    readout = MembraneReadout(neuron)
    if path:
        parent_path, _, name = path.rpartition(".")
        work.get_submodule(parent_path)._modules[name] = readout
    else:
        work = readout
    for e in report.entries:
        if e.path == path and e.action in ("replaced", "kept", "adapted"):
            e.action, e.target = "replaced", qualname(readout)
            e.detail = f"{e.detail} Read out as its first-step membrane (readout='membrane')."
    return work


def _spike_output_warning(net: nn.Module, path: str, report: CollapseReport) -> None:
    text = (
        f"the output of {type(net).__name__} comes straight from the spiking neuron "
        f"{path or '<net>'!r}: at T=1 it emits at most one spike per unit, so class scores "
        "read from it tie often (an exactly collapsed firing-rate classifier can score near "
        "chance before fine-tuning). What helps: collapse(..., readout='membrane') (that "
        "layer returns its first-step membrane instead), mode='calibrated', or fine-tuning "
        "at T=1; readout='spikes' keeps the spikes without this warning"
    )
    report.notes.append(f"{path or '<net>'}: spiking output layer (ties at T=1)")
    warnings.warn(text, SingleStepWarning, stacklevel=4)


def _library_forward(net: nn.Module, names: Sequence[str]) -> bool:
    """Whether the library owns ``net``'s forward: an ``nn.Sequential`` (or another torch
    container), a framework's class (model zoo, layers, neurons) or a class with a rule.
    A user's class that defines its own ``forward`` does not."""
    if get_rule(type(net), names) is not None:
        return True
    owner = next((k for k in type(net).__mro__ if "forward" in vars(k)), nn.Module)
    if owner.__module__.split(".")[0] in ("torch", __name__.split(".")[0]):
        return True
    return any(fw.owns(net) or fw.is_spiking(net) for fw in registry.frameworks())


#: The options only ``mode="calibrated"`` reads, with their defaults (any other value in
#: mode ``"exact"`` is refused: it would be ignored).
_CALIBRATION_DEFAULTS = (
    ("data", None), ("T", None), ("granularity", "layer"), ("channel_dim", 1), ("run_original", None)
)


def _is_default(value: object, default: object) -> bool:
    """``value`` is ``default`` (same type and equal; a tensor or 1.0 for 1 is not)."""
    return value is default or (type(value) is type(default) and value == default)


@dataclass(frozen=True)
class CollapseOptions:
    """The options of :func:`collapse`, checked once when the object is built.

    Fields and defaults as the keyword arguments of :func:`collapse`. ``data`` is read
    once into a list of input batches (a generator can be passed).

    Raises:
        ConfigError: a field has an invalid value, or two fields do not fit together.
    """

    mode: str = "exact"
    inplace: bool = False
    data: Optional[Iterable] = None
    T: Optional[int] = None
    granularity: str = "layer"
    channel_dim: int = 1
    run_original: Optional[Callable[[nn.Module, Tensor], Any]] = None
    step_mode: str = "auto"
    input_ndim: Union[str, int, None] = "auto"
    surrogate: Optional[Callable[[Tensor], Tensor]] = None
    errors: str = "raise"
    readout: str = "auto"
    return_report: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        choice("mode", self.mode, MODES)
        choice("step_mode", self.step_mode, STEP_MODE_CHOICES)
        choice("errors", self.errors, ERRORS)
        choice("readout", self.readout, READOUTS)
        for name in ("inplace", "return_report", "verbose"):
            flag(name, getattr(self, name))
        if self.input_ndim not in ("auto", None):
            positive_int("input_ndim", self.input_ndim)
        spike_function("surrogate", self.surrogate)
        if self.mode == "calibrated":
            if self.data is None:
                raise ConfigError(
                    "mode='calibrated' needs data: pass data=<a few input batches (tensors or "
                    "(input, target) pairs)> and T=<the number of steps the net was trained with>"
                )
            check_calibration_args(
                T=self.T,
                granularity=self.granularity,
                run_original=self.run_original,
                channel_dim=self.channel_dim,
            )
            object.__setattr__(self, "data", calibration_inputs(self.data))
        else:
            unused = [
                name
                for name, default in _CALIBRATION_DEFAULTS
                if not _is_default(getattr(self, name), default)
            ]
            if unused:
                raise ConfigError(
                    f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} only used with "
                    f"mode='calibrated'; drop {'it' if len(unused) == 1 else 'them'} or set "
                    "mode='calibrated'"
                )


def _frameworks_in(net: nn.Module) -> tuple[str, ...]:
    found = []
    for fw in registry.frameworks():
        if any(fw.is_spiking(m) or fw.unknown_reason(m, "s") is not None for m in net.modules()):
            found.append(fw.name)
    return tuple(found)


def _has_own_time_axis(net: nn.Module, names: Sequence[str]) -> bool:
    """A net that builds its own ``[T, B, ...]`` from ``[B, ...]``: a time-structured model,
    or a user's net with an int ``T`` and its own forward (SpikingJelly's examples)."""
    if not isinstance(getattr(net, "T", None), int):
        return False
    return any(fw.time_major(net, None) for fw in registry.frameworks()) or not _library_forward(
        net, names
    )


def collapse(
    net: nn.Module,
    *,
    framework: Optional[str] = None,
    mode: str = "exact",
    inplace: bool = False,
    data: Optional[Iterable] = None,
    T: Optional[int] = None,
    granularity: str = "layer",
    channel_dim: int = 1,
    run_original: Optional[Callable[[nn.Module, Tensor], Any]] = None,
    step_mode: str = "auto",
    input_ndim: Union[str, int, None] = "auto",
    surrogate: Optional[Callable[[Tensor], Tensor]] = None,
    errors: str = "raise",
    readout: str = "auto",
    return_report: bool = False,
    verbose: bool = False,
):
    r"""Convert a multi-step snnTorch and/or SpikingJelly net to a single-step (T=1) net.

    Applies the collapse rules (:func:`~snn_singlestep.list_rules`) of every framework
    found in ``net``, or of ``framework`` only
    (:func:`snn_singlestep.snntorch.collapse` and :func:`snn_singlestep.spikingjelly.collapse`
    pass it). ``docs/collapse.md`` has the rule table and the first-step equations.

    Args:
        net: the network (a ``torch.nn.Module``); left untouched unless ``inplace``.
        framework: apply the rules of this framework only (``"snntorch"`` or
            ``"spikingjelly"``); None: every framework the net contains.
        mode: ``"exact"``: each converted neuron computes exactly the first time step of
            the source neuron from its reset state (spike for spike; ties ``v = θ`` fire in
            single-step neurons, snnTorch's do not). ``"calibrated"``: the same, then every
            converted neuron's threshold is set from ``data`` so that its single-step firing
            rate matches the multi-step net's mean rate over ``T`` steps.
        inplace: convert ``net`` itself instead of a deep copy.
        data: calibration batches (tensors or ``(input, target)`` pairs), mode
            ``"calibrated"`` only.
        T: number of steps of the multi-step reference run (calibration).
        granularity: ``"layer"`` (one threshold per neuron module) or ``"channel"``.
        channel_dim: channel dimension of a ``[B, C, ...]`` neuron input (``"channel"``).
        run_original: ``fn(original_net, x)`` running the multi-step net on one batch for T
            steps (calibration; the default is the framework's own reference run, see
            :func:`snn_singlestep.convert.calibrate.calibrate`).
        step_mode: SpikingJelly only. ``"auto"``: collapse replaces neurons, not the way
            the net is called. A net whose class defines its own ``forward`` (SpikingJelly's
            example CSNN: ``x.unsqueeze(0).repeat(self.T, ...)``, layers in ``'m'``,
            ``.mean(0)``; or a Python loop over T in ``'s'``) keeps every module's step mode
            and gets no input adapter: call it as before, with ``net.T = 1``. An
            ``nn.Sequential`` of framework layers and the model zoo go single-step ``'s'``
            everywhere (they then take ``[B, ...]``), except models whose forward is written
            for ``[T, B, ...]`` (MS-ResNet, Spikformer, …), which keep ``'m'`` with T=1.
            ``"s"`` / ``"m"`` force one layout for the whole net (and install the input
            adapter, see ``input_ndim``).
        input_ndim: number of dims of a ``[B, ...]`` input. The converted net then also
            accepts ``[1, B, ...]`` and raises :class:`~snn_singlestep.errors.ShapeError` for
            T > 1. ``"auto"`` infers it from the first convolution of a SpikingJelly net
            whose forward the library owns (none for a net with its own forward); None turns
            the check off. In step mode ``'m'`` the input gets a time axis of size 1 back,
            unless the net builds its own (a model with an int ``T``).
        surrogate: spike function of the converted neurons (default: the S² surrogate).
        errors: ``"raise"`` (default): raise one ConversionError listing every module that
            cannot be converted (the error's ``report`` attribute holds the full report).
            ``"keep"``: leave them as they are, with a warning.
        readout: how to treat a net whose output comes straight from a spiking neuron (the
            last spiking module in registration order with no weighted layer after it; at
            T=1 its spikes tie often). ``"auto"``: keep it, with a SingleStepWarning naming
            the layer. ``"spikes"``: keep it, no warning. ``"membrane"``: replace that
            neuron by a :class:`MembraneReadout` returning its first-step membrane
            :math:`h_1` (``state_dict`` keys unchanged); ConversionError if the output is
            not spiking.
        return_report: return ``(net, report)`` instead of ``net``.
        verbose: print the report.

    Returns:
        The single-step net, or ``(net, report)`` with a ``CollapseReport`` when
        ``return_report`` is set. A net without any spiking neuron is returned as it is,
        with a SingleStepWarning.

    Warns:
        SingleStepWarning: the output comes straight from a spiking neuron (``readout``).

    Raises:
        ConversionError: ``net`` is not a module, or some spiking module cannot be
            converted (the message names each module path and class).
        ConfigError: an argument is invalid.

    Examples:
        >>> import torch, snntorch as snn
        >>> from snn_singlestep import collapse
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True))
        >>> single, report = collapse(net, return_report=True)
        >>> [(e.path, e.source.split(".")[-1], e.target.split(".")[-1]) for e in report.replaced]
        [('1', 'Leaky', 'CollapsedLeaky')]
    """
    if not isinstance(net, nn.Module):
        raise ConversionError(
            f"collapse expects a torch.nn.Module, got {type(net).__name__} ({net!r:.80}); "
            "pass the network object itself"
        )
    arguments = locals()  # every keyword below is a field of CollapseOptions, checked there
    options = CollapseOptions(**{f.name: arguments[f.name] for f in fields(CollapseOptions)})
    known = tuple(fw.name for fw in registry.frameworks())
    if framework is not None:
        choice("framework", framework, known)
    names = (framework,) if framework is not None else (_frameworks_in(net) or known)
    return _run(net, names, options)


_STEP_ATTRS = ("T", "num_steps", "time_steps", "timesteps", "n_steps")


def _note_own_forward(net: nn.Module, root: str, report: CollapseReport) -> None:
    """Report notes for a net whose forward is its own (step modes kept, no input adapter)."""
    if any(_own_step_mode(m) is not None for m in net.modules()):
        report.notes.append(
            f"{type(net).__name__} has its own forward: every step mode is kept as you set it "
            f"({'multi-step' if root == 'm' else 'single-step'} layout) and the net is called "
            "as before; step_mode='s' / 'm' and input_ndim=<int> make collapse choose the layout "
            "and check the input instead"
        )
    for attr in _STEP_ATTRS:
        steps = getattr(net, attr, None)
        if isinstance(steps, int) and not isinstance(steps, bool) and steps > 1:
            report.notes.append(
                f"{type(net).__name__}.{attr} = {steps}: its forward still runs {steps} steps "
                f"(each the same first step); set net.{attr} = 1"
            )


def _run(net: nn.Module, names: tuple[str, ...], opt: CollapseOptions):
    report = CollapseReport(frameworks=names, mode=opt.mode)
    if not _is_spiking(net):
        warnings.warn(
            f"{type(net).__name__} contains no spiking neuron: nothing to collapse, the net "
            "is returned unchanged",
            SingleStepWarning,
            stacklevel=3,
        )
        return (net, report) if opt.return_report else net

    # calibration runs the multi-step original: keep one when converting in place
    calibrated = opt.mode == "calibrated"
    if calibrated:  # T may come from the net (net.T): checked before anything changes
        steps = check_calibration_args(
            net, T=opt.T, granularity=opt.granularity, run_original=opt.run_original
        )
    original = copy_net(net) if (opt.inplace and calibrated) else net
    work = net if opt.inplace else copy_net(net)
    # step_mode="auto": a net whose forward is the user's own keeps every module's step mode
    # (it is called as before); the library's own forwards (nn.Sequential, model zoo) go 's'
    keep = opt.step_mode == "auto" and not _library_forward(work, names)
    walk = _Walk(names, opt.mode, opt.surrogate, report, keep=keep)
    if keep:
        root = "m" if any(_own_step_mode(m) == "m" for m in work.modules()) else "s"
    else:
        root = "m" if opt.step_mode == "m" else "s"
    work = _visit(work, "", root, walk)

    if report.unconverted:
        lines = "\n".join(
            f"  {e.path or '<net>'} ({e.source}): {e.detail}" for e in report.unconverted
        )
        if opt.errors == "raise":
            raise ConversionError(
                f"cannot collapse {len(report.unconverted)} module(s) to single-step:\n{lines}\n"
                "Register a rule with snn_singlestep.register_rule(cls, fn), or pass "
                "errors='keep' to leave them multi-step (they then keep state between calls).",
                report=report,
            )
        warnings.warn(
            f"left {len(report.unconverted)} module(s) multi-step (errors='keep'):\n{lines}",
            SingleStepWarning,
            stacklevel=3,
        )

    out_path, no_spike_output = _spiking_output(work, walk.spiking_paths)
    if opt.readout == "membrane":
        if out_path is None:
            raise ConversionError(
                f"readout='membrane': the output of {type(net).__name__} does not come "
                f"straight from a spiking neuron ({no_spike_output}); drop readout='membrane'",
                report=report,
            )
        work = _membrane_readout(work, out_path, report)
    elif opt.readout == "auto" and out_path is not None:
        _spike_output_warning(net, out_path, report)

    hooks = [fw for fw in registry.frameworks() if fw.name in names]
    for fw in hooks:
        fw.finalize(work, walk)

    ndim = opt.input_ndim
    if keep:
        _note_own_forward(work, root, report)
    if ndim == "auto" and keep:
        ndim = None  # collapse replaces neurons, not the way the net is called
    elif ndim == "auto":
        ndim = next((n for n in (fw.default_input_ndim(work) for fw in hooks) if n), None)
        if ndim is None and any(fw.step_modes for fw in hooks):
            report.notes.append(
                "input check off: could not infer the [B, ...] input ndim from the first "
                "layer; pass input_ndim=<int> to accept [1, B, ...] input and reject T > 1"
            )
    if ndim is not None:
        add_time = walk.step_modes.get(id(work)) == "m" and not _has_own_time_axis(work, names)
        _install_input_hook(work, ndim, add_time)
        report.input_ndim = ndim

    if calibrated:
        report.calibration = calibrate(
            work,
            original,
            opt.data,
            T=steps,
            granularity=opt.granularity,
            channel_dim=opt.channel_dim,
            run_original=opt.run_original,
        )

    if opt.verbose:
        print(report)
    return (work, report) if opt.return_report else work
