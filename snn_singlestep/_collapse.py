r"""Collapse multi-step snnTorch / SpikingJelly nets to single-step (T=1) nets.

This module holds the framework-neutral parts: the rule table (source class → rule),
the conversion report, the tree walk that applies the rules, and :func:`collapse`, which
dispatches on the frameworks a net contains. The rules themselves live in the glue
packages (:mod:`snn_singlestep.snntorch._collapse`,
:mod:`snn_singlestep.spikingjelly._collapse`); ``docs/collapse.md`` lists them.

A *rule* is ``fn(module, ctx) -> module``. It returns a replacement module (recorded as
*replaced*), or the same module after editing it in place (recorded as *adapted*), or
raises :class:`~snn_singlestep.errors.ConversionError` with the reason the module cannot
be converted (recorded as *unconverted*; :func:`collapse` then raises one error that lists
every such module). ``ctx`` is a :class:`RuleContext`.

Rules are looked up along the method resolution order of a module's class. A built-in
neuron rule found on a base class is *not* used for a subclass that overrides one of the
base class's methods (its first step may differ): register a rule for the subclass.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from torch import Tensor, nn

from ._nettools import copy_net as _copy_net
from .core.functional import squeeze_time
from .errors import ConfigError, ConversionError, SingleStepWarning

__all__ = [
    "CalibrationEntry",
    "CollapseReport",
    "ReportEntry",
    "Rule",
    "RuleContext",
    "SingleStepInput",
    "collapse",
    "get_rule",
    "list_rules",
    "register_rule",
    "unregister_rule",
]

MODES = ("exact", "calibrated")
STEP_MODES = ("auto", "s", "m")
ERRORS = ("raise", "keep")
RULE_KINDS = ("neuron", "keep", "refuse", "container", "layer", "model")

RuleFn = Callable[..., Optional[nn.Module]]


# --- report ---------------------------------------------------------------------------


def _qualname(obj: Union[type, object]) -> str:
    """``module.QualName`` of a class (or of an object's class)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class ReportEntry:
    """One line of a :class:`CollapseReport`.

    Attributes:
        path: dotted path of the module in the net (``""`` is the net itself).
        source: qualified name of the module's class before conversion.
        action: ``"replaced"``, ``"adapted"`` (edited in place, same class), ``"kept"``
            (already single-step) or ``"unconverted"``.
        target: qualified class name after conversion (replaced modules).
        detail: the rule that was applied, or why the module could not be converted.
    """

    path: str
    source: str
    action: str
    target: str = ""
    detail: str = ""


@dataclass
class CalibrationEntry:
    """Threshold calibration of one converted neuron (mode ``"calibrated"``).

    Attributes:
        path: dotted path of the neuron.
        target_rate: mean firing rate of the multi-step neuron over T steps.
        rate_before: single-step firing rate on the calibration data before calibration.
        rate_after: the same after calibration.
        threshold_before: mean threshold before calibration.
        threshold_after: mean threshold after calibration.
    """

    path: str
    target_rate: float
    rate_before: float
    rate_after: float
    threshold_before: float
    threshold_after: float


@dataclass
class CollapseReport:
    """What :func:`collapse` did to a net.

    ``str(report)`` renders a table; ``collapse(..., verbose=True)`` prints it.

    Attributes:
        frameworks: the frameworks whose rules were applied.
        mode: ``"exact"`` or ``"calibrated"``.
        entries: one :class:`ReportEntry` per module replaced, adapted, kept or left
            unconverted, in the order the net was walked.
        notes: remarks about single modules (``"path: text"``) or the whole net.
        input_ndim: number of dims of a ``[B, ...]`` input when the net checks its input
            (a ``[1, B, ...]`` input is squeezed, ``[T>1, B, ...]`` raises), else None.
        calibration: per-neuron calibration results (mode ``"calibrated"``).
    """

    frameworks: tuple[str, ...] = ()
    mode: str = "exact"
    entries: list[ReportEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    input_ndim: Optional[int] = None
    calibration: list[CalibrationEntry] = field(default_factory=list)

    def _select(self, action: str) -> list[ReportEntry]:
        return [e for e in self.entries if e.action == action]

    @property
    def replaced(self) -> list[ReportEntry]:
        """Modules replaced by a single-step module."""
        return self._select("replaced")

    @property
    def adapted(self) -> list[ReportEntry]:
        """Modules edited in place (containers, stateful layers, time-structured models)."""
        return self._select("adapted")

    @property
    def kept(self) -> list[ReportEntry]:
        """Modules that were single-step already."""
        return self._select("kept")

    @property
    def unconverted(self) -> list[ReportEntry]:
        """Spiking or stateful modules that could not be converted, with the reason."""
        return self._select("unconverted")

    def __str__(self) -> str:
        lines = [
            f"collapse report: frameworks={'+'.join(self.frameworks) or '-'}, mode={self.mode}, "
            f"{len(self.replaced)} replaced, {len(self.adapted)} adapted, {len(self.kept)} kept, "
            f"{len(self.unconverted)} unconverted"
        ]
        for entry in self.entries:
            path = entry.path or "<net>"
            if entry.action == "replaced":
                lines.append(
                    f"  replaced     {path}: {entry.source} -> {entry.target} ({entry.detail})"
                )
            else:
                lines.append(f"  {entry.action:<12} {path}: {entry.source} ({entry.detail})")
        if self.input_ndim is not None:
            lines.append(
                f"  input: [B, ...] with {self.input_ndim} dims; [1, B, ...] accepted, T > 1 raises"
            )
        for note in self.notes:
            lines.append(f"  note: {note}")
        for c in self.calibration:
            lines.append(
                f"  calibrated   {c.path}: rate {c.rate_before:.4f} -> {c.rate_after:.4f} "
                f"(multi-step target {c.target_rate:.4f}), threshold {c.threshold_before:.4g} "
                f"-> {c.threshold_after:.4g}"
            )
        return "\n".join(lines)


# --- rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A conversion rule (see the module docstring).

    Attributes:
        source: the class the rule converts.
        fn: ``fn(module, ctx)`` (or ``fn(module)``).
        kind: ``"neuron"`` (a spiking neuron replaced by a single-step one), ``"keep"``
            (already single-step), ``"refuse"`` (documented refusal), ``"container"``,
            ``"layer"`` (stateful or multi-step-only layer) or ``"model"`` (a whole model
            edited in place).
        framework: ``"snntorch"``, ``"spikingjelly"``, ``"core"`` or ``"user"``.
        note: one line describing the rule (shown in reports and ``docs/collapse.md``).
        exact: whether the converted module reproduces the first step of the source.
        inherit: also apply to subclasses that override methods of ``source``.
    """

    source: type
    fn: RuleFn
    kind: str = "neuron"
    framework: str = "user"
    note: str = ""
    exact: bool = True
    inherit: bool = False

    def __call__(self, module: nn.Module, ctx: "RuleContext") -> Optional[nn.Module]:
        if _takes_context(self.fn):
            return self.fn(module, ctx)
        return self.fn(module)


_RULES: dict[type, Rule] = {}


def _takes_context(fn: Callable) -> bool:
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):  # builtins without a signature
        return True
    return len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def register_rule(
    cls: type,
    fn: RuleFn,
    *,
    kind: str = "neuron",
    note: str = "",
    exact: bool = True,
    inherit: bool = False,
    framework: str = "user",
    overwrite: bool = True,
) -> Rule:
    r"""Register how :func:`collapse` converts modules of class ``cls``.

    Args:
        cls: the module class (subclass of ``torch.nn.Module``).
        fn: ``fn(module)`` or ``fn(module, ctx)`` returning the single-step module (a new
            one, or ``module`` edited in place). Raise
            :class:`~snn_singlestep.errors.ConversionError` to refuse a module.
        kind: see :class:`Rule`; ``"neuron"`` for a spiking neuron.
        note: one line describing the rule, shown in reports.
        exact: whether the rule reproduces the source's first step exactly.
        inherit: also use the rule for subclasses of ``cls`` that override its methods.
        framework: the rule's origin (``"user"`` rules apply in every ``collapse``).
        overwrite: replace an existing rule for ``cls`` (the default), else raise.

    Returns:
        The registered :class:`Rule`.

    Raises:
        ConfigError: ``cls`` is not a module class, ``fn`` is not callable, ``kind`` is
            unknown, or a rule exists and ``overwrite=False``.

    Examples:
        >>> import torch
        >>> from snn_singlestep import S2Cell, collapse, register_rule, unregister_rule
        >>> class MyNeuron(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.theta = 0.5
        ...     def forward(self, x):  # a stateful multi-step neuron in real life
        ...         return (x >= self.theta).to(x.dtype)
        >>> rule = register_rule(MyNeuron, lambda m: S2Cell(threshold=m.theta))
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), MyNeuron())
        >>> type(collapse(net)[1]).__name__
        'S2Cell'
        >>> unregister_rule(MyNeuron)
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"cls must be a subclass of torch.nn.Module, got {cls!r}")
    if not callable(fn):
        raise ConfigError(f"fn must be callable as fn(module) or fn(module, ctx), got {fn!r}")
    if kind not in RULE_KINDS:
        raise ConfigError(f"kind must be one of {RULE_KINDS}, got {kind!r}")
    if not overwrite and cls in _RULES:
        raise ConfigError(
            f"a collapse rule for {_qualname(cls)} exists already; pass overwrite=True to "
            "replace it"
        )
    rule = Rule(cls, fn, kind, framework, note or getattr(fn, "__doc__", "") or "", exact, inherit)
    rule = dataclasses.replace(rule, note=_first_line(rule.note))
    _RULES[cls] = rule
    return rule


def _first_line(text: str) -> str:
    text = inspect.cleandoc(text or "")
    return text.split("\n\n")[0].replace("\n", " ").strip()


def unregister_rule(cls: type) -> None:
    """Remove the rule registered for exactly ``cls`` (no error if there is none)."""
    _RULES.pop(cls, None)


_OVERRIDE_OK_PREFIXES = ("init_", "reset", "detach", "_init_", "extra_repr", "_get_name")
_OVERRIDE_OK = {"__init__", "__repr__", "__str__", "__init_subclass__", "__doc__", "__module__"}


def _overridden_methods(cls: type, base: type) -> list[str]:
    """Methods of ``base`` that ``cls`` (a strict subclass) redefines."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is base:
            break
        for name, attr in vars(klass).items():
            if name in _OVERRIDE_OK or name.startswith(_OVERRIDE_OK_PREFIXES):
                continue
            if not (callable(attr) or isinstance(attr, (staticmethod, classmethod, property))):
                continue
            if hasattr(base, name) and name not in names:
                names.append(name)
    return names


def get_rule(cls: type, frameworks: Optional[Iterable[str]] = None) -> Optional[Rule]:
    """The rule :func:`collapse` uses for modules of class ``cls``, or None.

    Walks ``cls.__mro__``. A neuron rule of a base class is skipped for a subclass that
    overrides one of the base's methods (raises nothing: the module is then unknown).

    Args:
        cls: a module class.
        frameworks: only consider rules of these frameworks (``"user"`` and ``"core"``
            rules always count); None for all.
    """
    _load_glue()
    allowed = None if frameworks is None else set(frameworks) | {"user", "core"}
    for klass in cls.__mro__:
        rule = _RULES.get(klass)
        if rule is None or (allowed is not None and rule.framework not in allowed):
            continue
        if klass is not cls and rule.kind == "neuron" and not rule.inherit:
            if _overridden_methods(cls, klass):
                return None
        return rule
    return None


def list_rules(framework: Optional[str] = None) -> list[Rule]:
    """Registered rules (of one framework if given), sorted by source class name."""
    _load_glue()
    rules = [r for r in _RULES.values() if framework is None or r.framework == framework]
    return sorted(rules, key=lambda r: (r.framework, _qualname(r.source)))


# --- frameworks -----------------------------------------------------------------------


@dataclass
class Framework:
    """What the tree walk needs to know about one host framework (set by the glue).

    Attributes:
        name: ``"snntorch"`` or ``"spikingjelly"``.
        entry_point: the per-framework ``collapse`` to name in error messages.
        is_spiking: does a module count as a spiking neuron of this framework.
        unknown_reason: why a module with no rule cannot stay as it is (None if it can).
        finalize: called on the converted net (step modes, reset caches, …).
        default_input_ndim: infer the ``[B, ...]`` input ndim from a net (or None).
    """

    name: str
    entry_point: str
    is_spiking: Callable[[nn.Module], bool]
    unknown_reason: Callable[[nn.Module, str], Optional[str]]
    finalize: Callable[[nn.Module, "_Walk"], None] = lambda net, walk: None
    default_input_ndim: Callable[[nn.Module], Optional[int]] = lambda net: None


_FRAMEWORKS: dict[str, Framework] = {}


def _register_framework(fw: Framework) -> None:
    _FRAMEWORKS[fw.name] = fw


def _load_glue() -> None:
    from .snntorch import _collapse as _snntorch_collapse  # noqa: F401  (registers rules)
    from .spikingjelly import _collapse as _sj_collapse

    _sj_collapse._ensure_model_rules()


# --- the walk -------------------------------------------------------------------------


@dataclass
class RuleContext:
    """What a rule may read or set while converting one module.

    Attributes:
        path: dotted path of the module in the net.
        mode: ``"exact"`` or ``"calibrated"``.
        step_mode: ``"s"`` (single-step layout ``[B, ...]``) or ``"m"`` (the module sits in
            a model whose forward is written for ``[T, B, ...]``; it runs with T=1).
        surrogate: the surrogate chosen by the caller (None: the S² default).
    """

    path: str
    mode: str
    step_mode: str
    surrogate: Optional[Callable[[Tensor], Tensor]]
    _notes: list[str] = field(default_factory=list)
    _child_step_mode: Optional[str] = None

    def note(self, text: str) -> None:
        """Add a remark about this module to the report."""
        self._notes.append(f"{self.path or '<net>'}: {text}")

    def set_step_mode(self, step_mode: str) -> None:
        """Run this module's children in ``step_mode`` (``"m"`` for time-structured models)."""
        if step_mode not in ("s", "m"):
            raise ConfigError(f"step_mode must be 's' or 'm', got {step_mode!r}")
        self._child_step_mode = step_mode

    def make_surrogate(self, default: Callable[[], Callable[[Tensor], Tensor]]):
        """A fresh copy of the caller's surrogate, or ``default()``."""
        return default() if self.surrogate is None else copy.deepcopy(self.surrogate)


@dataclass
class _Walk:
    frameworks: tuple[str, ...]
    mode: str
    surrogate: Optional[Callable]
    report: CollapseReport
    step_modes: dict[int, str] = field(default_factory=dict)  # id(module) -> 's' / 'm'
    done: dict[int, nn.Module] = field(default_factory=dict)  # shared modules convert once
    spiking_paths: list[str] = field(default_factory=list)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _unknown_reason(module: nn.Module, step_mode: str, frameworks: Sequence[str]) -> Optional[str]:
    for fw in _FRAMEWORKS.values():
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


def _visit(module: nn.Module, path: str, step_mode: str, walk: _Walk) -> nn.Module:
    if id(module) in walk.done:
        return walk.done[id(module)]
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
                ReportEntry(path, _qualname(module), "unconverted", "", str(err))
            )
            result, descend = module, False
        else:
            out = module if result is None else result
            if not isinstance(out, nn.Module):
                raise ConfigError(
                    f"the collapse rule for {_qualname(module)} returned {out!r}, not a module"
                )
            action = (
                "replaced" if out is not module else ("kept" if rule.kind == "keep" else "adapted")
            )
            detail = rule.note + ("" if rule.exact else " [not first-step exact]")
            walk.report.entries.append(
                ReportEntry(
                    path,
                    _qualname(module),
                    action,
                    _qualname(out) if action == "replaced" else "",
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
                ReportEntry(path, _qualname(module), "unconverted", "", reason)
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
        if any(fw.is_spiking(m) for fw in _FRAMEWORKS.values()):
            return True
    return False


def _check_choice(name: str, value: object, allowed: Sequence[object]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


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
        if isinstance(sample_ndim, bool) or not isinstance(sample_ndim, int) or sample_ndim < 1:
            raise ConfigError(f"sample_ndim must be an int >= 1, got {sample_ndim!r}")
        self.sample_ndim = sample_ndim
        self.add_time = bool(add_time)

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


def run_collapse(
    net: nn.Module,
    *,
    frameworks: Sequence[str],
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
    return_report: bool = False,
    verbose: bool = False,
):
    """The implementation behind every ``collapse`` (arguments: see :func:`collapse`)."""
    _load_glue()
    if not isinstance(net, nn.Module):
        raise ConversionError(
            f"collapse expects a torch.nn.Module, got {type(net).__name__} ({net!r:.80}); "
            "pass the network object itself"
        )
    _check_choice("mode", mode, MODES)
    _check_choice("step_mode", step_mode, STEP_MODES)
    _check_choice("errors", errors, ERRORS)
    if not isinstance(inplace, bool):
        raise ConfigError(f"inplace must be True or False, got {inplace!r}")
    ndim_ok = isinstance(input_ndim, int) and not isinstance(input_ndim, bool) and input_ndim >= 1
    if not (ndim_ok or input_ndim in ("auto", None)):
        raise ConfigError(f"input_ndim must be 'auto', None or an int >= 1, got {input_ndim!r}")
    if surrogate is not None and not callable(surrogate):
        raise ConfigError(f"surrogate must be callable or None, got {surrogate!r}")
    if mode == "calibrated" and data is None:
        raise ConfigError(
            "mode='calibrated' needs data: pass data=<a few input batches (tensors or "
            "(input, target) pairs)> and T=<the number of steps the net was trained with>"
        )
    if mode == "exact" and data is not None:
        raise ConfigError(
            "data is only used with mode='calibrated'; drop it or set mode='calibrated'"
        )
    if mode == "calibrated":  # checked before anything is converted
        from ._calibrate import _inputs, check_calibration_args

        check_calibration_args(net, T=T, granularity=granularity, run_original=run_original)
        data = _inputs(data)  # a generator is read once, here

    report = CollapseReport(frameworks=tuple(frameworks), mode=mode)
    if not _is_spiking(net):
        warnings.warn(
            f"{type(net).__name__} contains no spiking neuron: nothing to collapse, the net "
            "is returned unchanged",
            SingleStepWarning,
            stacklevel=3,
        )
        return (net, report) if return_report else net

    # calibration runs the multi-step original: keep one when converting in place
    original = _copy_net(net) if (inplace and mode == "calibrated") else net
    work = net if inplace else _copy_net(net)
    walk = _Walk(tuple(frameworks), mode, surrogate, report)
    root_mode = "m" if step_mode == "m" else "s"
    work = _visit(work, "", root_mode, walk)

    if report.unconverted:
        lines = "\n".join(
            f"  {e.path or '<net>'} ({e.source}): {e.detail}" for e in report.unconverted
        )
        if errors == "raise":
            err = ConversionError(
                f"cannot collapse {len(report.unconverted)} module(s) to single-step:\n{lines}\n"
                "Register a rule with snn_singlestep.register_rule(cls, fn), or pass "
                "errors='keep' to leave them multi-step (they then keep state between calls)."
            )
            err.report = report
            raise err
        warnings.warn(
            f"left {len(report.unconverted)} module(s) multi-step (errors='keep'):\n{lines}",
            SingleStepWarning,
            stacklevel=3,
        )

    for name in frameworks:
        fw = _FRAMEWORKS.get(name)
        if fw is not None:
            fw.finalize(work, walk)

    ndim = input_ndim
    if ndim == "auto":
        ndim = None
        for name in frameworks:
            fw = _FRAMEWORKS.get(name)
            if fw is not None and ndim is None:
                ndim = fw.default_input_ndim(work)
    if ndim is not None:
        add_time = walk.step_modes.get(id(work)) == "m" and not _has_own_time_axis(work)
        _install_input_hook(work, ndim, add_time)
        report.input_ndim = ndim
    elif "spikingjelly" in frameworks:
        report.notes.append(
            "input check off: could not infer the [B, ...] input ndim from the first layer; "
            "pass input_ndim=<int> to accept [1, B, ...] input and reject T > 1"
        )

    if mode == "calibrated":
        from ._calibrate import calibrate

        report.calibration = calibrate(
            work,
            original,
            data,
            T=T,
            granularity=granularity,
            channel_dim=channel_dim,
            run_original=run_original,
        )

    if verbose:
        print(report)
    return (work, report) if return_report else work


def _has_own_time_axis(net: nn.Module) -> bool:
    """A time-structured model that builds its own ``[T, B, ...]`` from ``[B, ...]``."""
    return isinstance(getattr(net, "T", None), int) and callable(getattr(net, "_to_sequence", None))


def _frameworks_in(net: nn.Module) -> tuple[str, ...]:
    found = []
    for name, fw in _FRAMEWORKS.items():
        if any(fw.is_spiking(m) or fw.unknown_reason(m, "s") is not None for m in net.modules()):
            found.append(name)
    return tuple(found)


def collapse(
    net: nn.Module,
    *,
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
    return_report: bool = False,
    verbose: bool = False,
):
    r"""Convert a multi-step snnTorch and/or SpikingJelly net to a single-step (T=1) net.

    Dispatches on what ``net`` contains and applies the rules of every framework found
    (:func:`snn_singlestep.snntorch.collapse` and
    :func:`snn_singlestep.spikingjelly.collapse` restrict themselves to one framework).
    ``docs/collapse.md`` has the rule table and the first-step equations.

    Args:
        net: the network (a ``torch.nn.Module``); left untouched unless ``inplace``.
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
            steps (calibration; the default depends on the framework, see
            :func:`snn_singlestep._calibrate.calibrate`).
        step_mode: SpikingJelly only. ``"auto"``: single-step ``'s'`` everywhere, except in
            models whose forward is written for ``[T, B, ...]`` (MS-ResNet, Spikformer, …),
            which keep ``'m'`` with T=1. ``"s"`` / ``"m"`` force one layout for the net.
        input_ndim: number of dims of a ``[B, ...]`` input. The converted net then also
            accepts ``[1, B, ...]`` and raises :class:`~snn_singlestep.errors.ShapeError` for
            T > 1. ``"auto"`` infers it from the first convolution of a SpikingJelly net;
            None turns the check off.
        surrogate: spike function of the converted neurons (default: the S² surrogate).
        errors: ``"raise"`` (default): raise one ConversionError listing every module that
            cannot be converted. ``"keep"``: leave them as they are, with a warning.
        return_report: return ``(net, report)`` instead of ``net``.
        verbose: print the report.

    Returns:
        The single-step net, or ``(net, report)`` with a ``CollapseReport`` when
        ``return_report`` is set. A net without any spiking neuron is returned as it is,
        with a SingleStepWarning.

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
    _load_glue()
    if not isinstance(net, nn.Module):
        raise ConversionError(
            f"collapse expects a torch.nn.Module, got {type(net).__name__} ({net!r:.80}); "
            "pass the network object itself"
        )
    frameworks = _frameworks_in(net) or tuple(_FRAMEWORKS)
    return run_collapse(
        net,
        frameworks=frameworks,
        mode=mode,
        inplace=inplace,
        data=data,
        T=T,
        granularity=granularity,
        channel_dim=channel_dim,
        run_original=run_original,
        step_mode=step_mode,
        input_ndim=input_ndim,
        surrogate=surrogate,
        errors=errors,
        return_report=return_report,
        verbose=verbose,
    )


def keep_rule(module: nn.Module) -> nn.Module:
    """Already single-step: kept."""
    return module


def refuse_rule(reason: str) -> Callable[[nn.Module], nn.Module]:
    """A rule that refuses its module with ``ConversionError(reason)``."""

    def rule(module: nn.Module) -> nn.Module:
        raise ConversionError(reason)

    rule.__doc__ = reason
    return rule


# The S2 modules of the core are single-step already.
def _register_core_rules() -> None:
    from .core.modules import S2Cell

    register_rule(S2Cell, keep_rule, kind="keep", framework="core", inherit=True)


_register_core_rules()
