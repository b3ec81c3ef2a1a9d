"""Make our neuron and surrogate appear in snnTorch's and SpikingJelly's namespaces.

This is the only place that edits a host framework's namespace. For each
``(module, name, obj)``: a missing name is set; a name already holding our object (same
``__module__`` and ``__qualname__``, so a reloaded copy counts) is left alone; any other
object there is never overwritten unless ``overwrite=True`` (then it is restored by
:func:`unregister`). Foreign ``__all__`` lists are not touched.
"""

from __future__ import annotations

import importlib
from typing import Any

from .core.validate import flag
from .errors import RegistrationError

__all__ = ["register", "unregister", "registered"]

# (host module, attribute) -> previous value (``_MISSING`` if the name did not exist)
_MISSING = object()
_added: dict[tuple[str, str], Any] = {}


def _targets() -> list[tuple[str, str, Any]]:
    from .core.surrogate import s2nn
    from .snntorch import S2Neuron
    from .spikingjelly import ReducedS2, S2Node

    return [
        ("snntorch", "S2Neuron", S2Neuron),
        ("snntorch.surrogate", "s2nn", s2nn),
        ("spikingjelly.activation_based.neuron", "S2Node", S2Node),
        ("spikingjelly.activation_based.surrogate", "ReducedS2", ReducedS2),
    ]


def _same(a: Any, b: Any) -> bool:
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", 0)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", 0)
    )


def register(*, overwrite: bool = False) -> tuple[str, ...]:
    """Register ``S2Neuron``, ``s2nn``, ``S2Node`` and ``ReducedS2`` in the host frameworks.

    ``import snn_singlestep`` calls this already (set ``SNN_SINGLESTEP_NO_REGISTER=1`` to
    opt out). Afterwards ordinary framework code can write
    ``snntorch.S2Neuron``, ``snntorch.surrogate.s2nn()``,
    ``spikingjelly.activation_based.neuron.S2Node`` and
    ``spikingjelly.activation_based.surrogate.ReducedS2()``.

    Args:
        overwrite: replace a foreign object that already holds one of the names.

    Returns:
        The dotted names added by this call (empty when everything was in place).

    Raises:
        RegistrationError: a name is taken by another object and ``overwrite`` is False.

    Examples:
        >>> import snntorch
        >>> import snn_singlestep
        >>> snn_singlestep.register()  # already done by the import
        ()
        >>> snntorch.S2Neuron is snn_singlestep.S2Neuron
        True
    """
    flag("overwrite", overwrite)
    plan = []
    for module_name, name, obj in _targets():
        module = importlib.import_module(module_name)
        current = getattr(module, name, _MISSING)
        if current is _MISSING or (overwrite and not _same(current, obj)):
            plan.append((module, module_name, name, obj, current))
        elif not _same(current, obj):
            raise RegistrationError(
                f"{module_name}.{name} already exists ({current!r}) and is not ours; "
                "snn_singlestep will not overwrite it. Use snn_singlestep."
                f"{name} directly, or register(overwrite=True)."
            )
    for module, module_name, name, obj, current in plan:  # all checked: apply at once
        setattr(module, name, obj)
        key = (module_name, name)
        # Remember what we displaced; a foreign object that replaced ours after an
        # earlier register() is what unregister() must give back, not the older record.
        if current is not _MISSING or key not in _added:
            _added[key] = current
    return tuple(f"{module_name}.{name}" for _, module_name, name, _, _ in plan)


def unregister() -> tuple[str, ...]:
    """Undo :func:`register`: remove the names it added, restoring any object it replaced.

    A name that no longer holds our object (someone replaced it since) is left alone.
    Returns the dotted names removed.
    """
    removed = []
    ours = {(module_name, name): obj for module_name, name, obj in _targets()}
    for (module_name, name), previous in list(_added.items()):
        module = importlib.import_module(module_name)
        del _added[(module_name, name)]
        if not _same(getattr(module, name, _MISSING), ours[(module_name, name)]):
            continue  # someone replaced our object since: theirs stays
        if previous is _MISSING:
            if hasattr(module, name):
                delattr(module, name)
        else:
            setattr(module, name, previous)
        removed.append(f"{module_name}.{name}")
    return tuple(removed)


def registered() -> tuple[str, ...]:
    """The dotted names currently registered by this package."""
    return tuple(f"{module_name}.{name}" for module_name, name in _added)
