r"""The registry: what the converters, exporters and monitors know about neurons and frameworks.

The framework-neutral packages (:mod:`snn_singlestep.convert`, :mod:`snn_singlestep.export`,
:mod:`snn_singlestep.energy`, :mod:`snn_singlestep.monitor`) never import snnTorch, SpikingJelly
or the glue packages. They walk a net and ask this registry about each module. The glue
packages (:mod:`snn_singlestep.snntorch`, :mod:`snn_singlestep.spikingjelly`) fill it when they
are imported (``import snn_singlestep`` imports both), and users may add to it.

Three tables:

* **Neuron kinds** (:class:`NeuronKind`, :func:`register_neuron`): one record per neuron class
  of ours: the single-step neurons (``S2Cell``, ``S2Neuron``, ``S2Node``), the collapsed
  neurons that :func:`~snn_singlestep.collapse` builds, and the integrate-and-fire neurons that
  :func:`~snn_singlestep.to_multistep` builds. A record says which framework the class belongs
  to, where its threshold and spike function live, whether it keeps state between calls, how
  to build a small example (the contract tests construct every registered class from it), how
  it exports and how it becomes an IF neuron for T=N.
* **Frameworks** (:class:`Framework`, :func:`register_framework`): the hooks the engines need
  about a host framework's own modules: is this a spiking neuron of yours, does it keep state,
  how do I reset a net, run it for T steps, set its step mode.
* **Collapse rules** (:class:`Rule`, :func:`register_rule`): how :func:`~snn_singlestep.collapse`
  turns a module of a multi-step class into a single-step one. The rule's docstring is the
  single place its first-step equation is written (``docs/collapse.md`` is generated from
  :func:`list_rules`).

Lookups follow the method resolution order, so a subclass of a registered class is found.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Protocol, Union, runtime_checkable

from torch import Tensor, nn

from ..errors import ConfigError, ConversionError
from . import validate
from .validate import STEP_MODES, choice

__all__ = [
    "Calibratable",
    "Framework",
    "NeuronKind",
    "ROLES",
    "RULE_KINDS",
    "Rule",
    "RuleContext",
    "framework_of",
    "frameworks",
    "get_framework",
    "get_rule",
    "is_neuron",
    "is_spiking",
    "keep_rule",
    "list_rules",
    "neuron_kind",
    "neuron_kinds",
    "qualname",
    "refuse_rule",
    "register_framework",
    "register_neuron",
    "register_rule",
    "register_rules",
    "reset_all",
    "spike_fn_of",
    "stateful_reason",
    "threshold_of",
    "unregister_rule",
]


def qualname(obj: Union[type, object]) -> str:
    """``module.QualName`` of a class (or of an object's class)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _none(*args: Any) -> None:
    return None


def _false(*args: Any) -> bool:
    return False


def _first_line(text: Optional[str]) -> str:
    """The first paragraph of a docstring, on one line."""
    text = inspect.cleandoc(text or "")
    return text.split("\n\n")[0].replace("\n", " ").strip()


# --- protocols -----------------------------------------------------------------------------


@runtime_checkable
class Calibratable(Protocol):
    """A collapsed neuron whose threshold ``collapse(mode="calibrated")`` can set.

    ``membrane(x)`` is the single-step membrane :math:`h_1` for the input ``x`` (what is
    compared with the threshold), ``get_threshold()`` the threshold as a tensor and
    ``set_threshold(theta)`` replaces it (a scalar, or one value per channel).
    """

    def membrane(self, x: Tensor) -> Tensor: ...

    def get_threshold(self) -> Tensor: ...

    def set_threshold(self, theta: Tensor) -> None: ...


# --- neuron kinds --------------------------------------------------------------------------

#: ``"single-step"``: a T=1 neuron (no state between calls). ``"collapsed"``: a single-step
#: neuron built by ``collapse`` from a multi-step one. ``"if"``: the stateful T=N
#: integrate-and-fire neuron ``to_multistep`` builds.
ROLES = ("single-step", "collapsed", "if")


@dataclass(frozen=True)
class NeuronKind:
    """What the library knows about one neuron class of ours.

    Attributes:
        cls: the neuron class (subclasses are found through it).
        framework: ``"torch"`` (core), ``"snntorch"`` or ``"spikingjelly"``.
        role: one of :data:`ROLES`.
        example: builds a small instance with default settings (contract tests, docs).
        threshold_attr: the attribute holding the threshold :math:`\\theta`.
        spike_fn_attr: the attribute holding the spike function (surrogate).
        firing_methods: methods whose override in a subclass makes its firing rule unknown to
            the exporters (they then refuse the module).
        export_refusal: ``fn(module)`` → why this instance has no export, or None.
        spike_gain: ``fn(module)`` → the factor spikes are multiplied by (snnTorch's graded
            spikes), or None when spikes are 0/1.
        multistep_refusal: ``fn(module, target_framework)`` → why this instance cannot become
            that framework's IF neuron, or None (role ``"single-step"``).
        build_if: ``fn(source, *, noise_std, mapping)`` → an IF neuron of this class standing
            for the single-step neuron ``source`` at T=N (role ``"if"``).
        reset: ``fn(module)`` puts a stateful neuron back to its initial membrane (role
            ``"if"``; the others keep no state).
    """

    cls: type
    framework: str
    role: str
    example: Callable[[], nn.Module]
    threshold_attr: str = "threshold"
    spike_fn_attr: str = "surrogate"
    firing_methods: tuple[str, ...] = ("forward",)
    export_refusal: Callable[[nn.Module], Optional[str]] = _none
    spike_gain: Callable[[nn.Module], Optional[Tensor]] = _none
    multistep_refusal: Callable[[nn.Module, str], Optional[str]] = _none
    build_if: Optional[Callable[..., nn.Module]] = None
    reset: Callable[[nn.Module], None] = _none

    @property
    def stateful(self) -> bool:
        """Whether the neuron keeps state between calls (role ``"if"``)."""
        return self.role == "if"

    @property
    def single_step(self) -> bool:
        """Whether the neuron runs one step per call without state."""
        return self.role != "if"


_NEURONS: dict[type, NeuronKind] = {}


def register_neuron(kind: NeuronKind) -> NeuronKind:
    """Add (or replace) the record of ``kind.cls``. Returns ``kind``.

    Raises:
        ConfigError: ``kind.cls`` is not a module class or ``kind.role`` is unknown.
    """
    if not (isinstance(kind.cls, type) and issubclass(kind.cls, nn.Module)):
        raise ConfigError(f"NeuronKind.cls must be a torch.nn.Module subclass, got {kind.cls!r}")
    if kind.role not in ROLES:
        raise ConfigError(f"NeuronKind.role must be one of {ROLES}, got {kind.role!r}")
    if kind.role == "if" and kind.build_if is None:
        raise ConfigError(f"{qualname(kind.cls)}: an 'if' neuron kind needs build_if")
    _NEURONS[kind.cls] = kind
    return kind


def neuron_kind(module: Union[nn.Module, type]) -> Optional[NeuronKind]:
    """The record of ``module``'s class (or of its nearest registered base), or None."""
    cls = module if isinstance(module, type) else type(module)
    for klass in cls.__mro__:
        kind = _NEURONS.get(klass)
        if kind is not None:
            return kind
    return None


def neuron_kinds(role: Optional[str] = None, framework: Optional[str] = None) -> list[NeuronKind]:
    """Every registered record (of one role / framework if given), ordered by class name."""
    kinds = [
        k
        for k in _NEURONS.values()
        if (role is None or k.role == role) and (framework is None or k.framework == framework)
    ]
    return sorted(kinds, key=lambda k: (k.framework, qualname(k.cls)))


def is_neuron(module: nn.Module, role: Optional[str] = None) -> bool:
    """True for a neuron of ours (of the given role if set)."""
    kind = neuron_kind(module)
    return kind is not None and (role is None or kind.role == role)


def is_spiking(module: nn.Module) -> bool:
    """True for a neuron of ours and for any registered framework's spiking neuron."""
    if neuron_kind(module) is not None:
        return True
    return any(fw.is_spiking(module) for fw in _FRAMEWORKS.values())


def threshold_of(module: nn.Module) -> Any:
    """The threshold of a neuron of ours (calibrated value first, then the attribute)."""
    get = getattr(module, "get_threshold", None)
    if isinstance(module, Calibratable) and callable(get):
        return get()
    kind = neuron_kind(module)
    if kind is None:
        raise ConfigError(
            f"{qualname(module)} is not a registered neuron: it has no known threshold"
        )
    return getattr(module, kind.threshold_attr)


def spike_fn_of(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """The spike function (surrogate) of a neuron of ours."""
    kind = neuron_kind(module)
    if kind is None:
        raise ConfigError(f"{qualname(module)} is not a registered neuron")
    return getattr(module, kind.spike_fn_attr)


# --- frameworks ----------------------------------------------------------------------------


@dataclass
class Framework:
    """What the engines need to know about one host framework (set by its glue package).

    Attributes:
        name: ``"snntorch"`` or ``"spikingjelly"``.
        entry_point: the framework's own ``collapse``, named in error messages.
        is_spiking: ``fn(module)``: a spiking neuron of this framework (ours included).
        owns: ``fn(module)``: a module of this framework (neuron or not).
        stateful_reason: ``fn(module)`` → why a module of this framework keeps state between
            calls, or None (our single-step neurons are never asked).
        unknown_reason: ``fn(module, step_mode)`` → why a module without collapse rule cannot
            stay as it is in a single-step net, or None if it can.
        finalize: ``fn(net, walk)`` after collapse (step modes, reset caches, …).
        default_input_ndim: ``fn(net)`` → ndim of a ``[B, ...]`` input, or None.
        load_rules: registers rules that are costly to import (model zoo) on first use.
        reset: ``fn(net)`` resets every state of the framework's modules in ``net``.
        run_steps: ``fn(net, x, T)`` runs a multi-step net for T steps on the static input
            ``x`` from its reset state (the reference run of calibration).
        time_major: ``fn(module, x)``: does ``module`` take and return ``[T, B, ...]`` (for
            input ``x`` if given; ``x`` may be None).
        step_modes: whether the framework's modules have step modes ``'s'`` / ``'m'``.
        set_step_mode: ``fn(net, step_mode)`` sets ``'s'`` / ``'m'`` on the framework's
            modules (frameworks without step modes: nothing).
        step_mode_of: ``fn(module)`` → the step mode (``'s'`` / ``'m'``) ``module`` runs in
            as its user set it, or None for a module without one (``collapse`` keeps it for
            nets with their own forward).
        modules_replaced: ``fn(net)`` after modules of ``net`` were replaced (e.g. to clear
            a cached list of stateful modules).
        step_native: ``fn(net)``: ``net`` is built from layers that take ``[T, B, ...]``
            natively once set to ``'m'`` (``to_multistep`` then keeps that layout).
        is_heaviside: ``fn(spike_fn)``: the framework's spike function fires with
            ``(x >= 0)`` in its forward pass (exported as a comparison).
    """

    name: str
    entry_point: str
    is_spiking: Callable[[nn.Module], bool]
    owns: Callable[[nn.Module], bool] = _false
    stateful_reason: Callable[[nn.Module], Optional[str]] = _none
    unknown_reason: Callable[[nn.Module, str], Optional[str]] = _none
    finalize: Callable[[nn.Module, Any], None] = _none
    default_input_ndim: Callable[[nn.Module], Optional[int]] = _none
    load_rules: Callable[[], None] = _none
    reset: Callable[[nn.Module], None] = _none
    run_steps: Optional[Callable[[nn.Module, Tensor, int], None]] = None
    time_major: Callable[[nn.Module, Optional[Tensor]], bool] = _false
    step_modes: bool = False
    set_step_mode: Callable[[nn.Module, str], None] = _none
    step_mode_of: Callable[[nn.Module], Optional[str]] = _none
    modules_replaced: Callable[[nn.Module], None] = _none
    step_native: Callable[[nn.Module], bool] = _false
    is_heaviside: Callable[[Any], bool] = _false


_FRAMEWORKS: dict[str, Framework] = {}


def register_framework(fw: Framework) -> Framework:
    """Add (or replace) the hooks of a host framework. Returns ``fw``."""
    _FRAMEWORKS[fw.name] = fw
    return fw


def frameworks() -> tuple[Framework, ...]:
    """The registered host frameworks, in registration order."""
    return tuple(_FRAMEWORKS.values())


def get_framework(name: str) -> Optional[Framework]:
    """The hooks registered under ``name``, or None."""
    return _FRAMEWORKS.get(name)


def framework_of(module: nn.Module) -> Optional[str]:
    """The framework a module belongs to: its neuron kind's, else the first that owns it."""
    kind = neuron_kind(module)
    if kind is not None:
        return kind.framework
    for fw in _FRAMEWORKS.values():
        if fw.owns(module) or fw.is_spiking(module):
            return fw.name
    return None


def stateful_reason(module: nn.Module) -> Optional[str]:
    """Why ``module`` keeps state between calls, or None (asks every framework)."""
    kind = neuron_kind(module)
    if kind is not None:
        return "a stateful T=N neuron" if kind.stateful else None
    for fw in _FRAMEWORKS.values():
        reason = fw.stateful_reason(module)
        if reason is not None:
            return reason
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        return "a recurrent torch layer"
    return None


def reset_all(net: nn.Module) -> None:
    """Reset the state of every framework's modules in ``net``."""
    for fw in _FRAMEWORKS.values():
        fw.reset(net)


# --- collapse rules ------------------------------------------------------------------------

#: ``"neuron"``: a spiking neuron replaced by a single-step one; ``"keep"``: single-step
#: already; ``"refuse"``: a documented refusal; ``"container"``; ``"layer"``: a stateful or
#: multi-step-only layer; ``"model"``: a whole model edited in place.
RULE_KINDS = ("neuron", "keep", "refuse", "container", "layer", "model")

RuleFn = Callable[..., Optional[nn.Module]]


@dataclass
class RuleContext:
    """What a collapse rule may read or set while converting one module.

    Attributes:
        path: dotted path of the module in the net.
        mode: ``"exact"`` or ``"calibrated"``.
        step_mode: ``"s"`` (single-step layout ``[B, ...]``) or ``"m"`` (the module sits in
            a model whose forward is written for ``[T, B, ...]``; it runs with T=1).
        surrogate: the spike function chosen by the caller (None: the S² default).
    """

    path: str
    mode: str
    step_mode: str
    surrogate: Optional[Callable[[Tensor], Tensor]]
    _notes: list[str] = field(default_factory=list)
    _child_step_mode: Optional[str] = None

    def __post_init__(self) -> None:
        validate.record(self)
        choice("mode", self.mode, ("exact", "calibrated"))
        choice("step_mode", self.step_mode, STEP_MODES)

    def note(self, text: str) -> None:
        """Add a remark about this module to the report."""
        self._notes.append(f"{self.path or '<net>'}: {text}")

    def set_step_mode(self, step_mode: str) -> None:
        """Run this module's children in ``step_mode`` (``"m"`` for time-structured models)."""
        choice("step_mode", step_mode, STEP_MODES)
        self._child_step_mode = step_mode

    def make_surrogate(self, default: Callable[[], Callable[[Tensor], Tensor]]):
        """A fresh copy of the caller's spike function, or ``default()``."""
        return default() if self.surrogate is None else copy.deepcopy(self.surrogate)


@dataclass(frozen=True)
class Rule:
    """A collapse rule: ``fn(module, ctx)`` (or ``fn(module)``) → the single-step module.

    It returns a replacement module (reported as *replaced*), or the same module after
    editing it in place (*adapted*), or raises
    :class:`~snn_singlestep.errors.ConversionError` with the reason the module cannot be
    converted (*unconverted*).

    Attributes:
        source: the class the rule converts.
        fn: ``fn(module, ctx)`` (or ``fn(module)``).
        kind: one of :data:`RULE_KINDS`.
        framework: ``"snntorch"``, ``"spikingjelly"``, ``"core"`` or ``"user"``.
        note: one line describing the rule (the first paragraph of ``fn``'s docstring by
            default), shown in reports and ``docs/collapse.md``.
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

    def __post_init__(self) -> None:
        validate.record(self)
        validate.module_class("source", self.source)
        choice("kind", self.kind, RULE_KINDS)

    def __call__(self, module: nn.Module, ctx: RuleContext) -> Optional[nn.Module]:
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
    r"""Register how :func:`~snn_singlestep.collapse` converts modules of class ``cls``.

    Args:
        cls: the module class (subclass of ``torch.nn.Module``).
        fn: ``fn(module)`` or ``fn(module, ctx)`` returning the single-step module (a new
            one, or ``module`` edited in place). Raise
            :class:`~snn_singlestep.errors.ConversionError` to refuse a module.
        kind: see :class:`Rule`; ``"neuron"`` for a spiking neuron.
        note: one line describing the rule, shown in reports (default: the first paragraph
            of ``fn``'s docstring).
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
    validate.module_class("cls", cls)
    validate.function("fn", fn, hint="fn(module) or fn(module, ctx)")
    choice("kind", kind, RULE_KINDS)
    validate.text("note", note)
    validate.text("framework", framework)
    for name, value in (("exact", exact), ("inherit", inherit), ("overwrite", overwrite)):
        validate.flag(name, value)
    if not overwrite and cls in _RULES:
        raise ConfigError(
            f"a collapse rule for {qualname(cls)} exists already; pass overwrite=True to "
            "replace it"
        )
    rule = Rule(
        cls, fn, kind, framework, _first_line(note or getattr(fn, "__doc__", "")), exact, inherit
    )
    _RULES[cls] = rule
    return rule


def register_rules(
    table: dict[type, RuleFn], *, framework: str, kind: str = "neuron", **options: Any
) -> list[Rule]:
    """:func:`register_rule` for every ``cls: fn`` of ``table`` (a glue package's rule table)."""
    return [
        register_rule(cls, fn, kind=kind, framework=framework, **options)
        for cls, fn in table.items()
    ]


def unregister_rule(cls: type) -> None:
    """Remove the rule registered for exactly ``cls`` (no error if there is none)."""
    _RULES.pop(validate.module_class("cls", cls), None)


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


def _load_rules() -> None:
    for fw in _FRAMEWORKS.values():
        fw.load_rules()


def get_rule(cls: type, frameworks: Optional[Iterable[str]] = None) -> Optional[Rule]:
    """The rule :func:`~snn_singlestep.collapse` uses for modules of class ``cls``, or None.

    Walks ``cls.__mro__``. A neuron rule of a base class is skipped for a subclass that
    overrides one of the base's methods (its first step may differ): the module is then
    unknown.

    Args:
        cls: a module class.
        frameworks: only consider rules of these frameworks (``"user"`` and ``"core"``
            rules always count); None for all.
    """
    validate.module_class("cls", cls)
    if frameworks is not None:
        if isinstance(frameworks, str):
            frameworks = (frameworks,)
        if isinstance(frameworks, (set, frozenset)):
            frameworks = sorted(frameworks, key=str)
        for name in validate.items("frameworks", frameworks, kind=str, what="a framework name"):
            choice("frameworks item", name, rule_frameworks())
    _load_rules()
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
    """Registered collapse rules (of one framework if given), sorted by source class name."""
    if framework is not None:
        choice("framework", framework, rule_frameworks())
    _load_rules()
    rules = [r for r in _RULES.values() if framework is None or r.framework == framework]
    return sorted(rules, key=lambda r: (r.framework, qualname(r.source)))


def rule_frameworks() -> tuple[str, ...]:
    """The names a rule's ``framework`` can have: the registered frameworks, core and user."""
    return (*(fw.name for fw in frameworks()), "core", "user")


def keep_rule(module: nn.Module) -> nn.Module:
    """Already single-step: kept."""
    return module


def refuse_rule(reason: str) -> Callable[[nn.Module], nn.Module]:
    """A rule that refuses its module with ``ConversionError(reason)``."""

    def rule(module: nn.Module) -> nn.Module:
        raise ConversionError(reason)

    rule.__doc__ = reason
    return rule
