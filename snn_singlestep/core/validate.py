"""Argument checks shared by the core and the glue packages.

Each check returns the cleaned value or raises :class:`~snn_singlestep.errors.ConfigError`
naming the parameter, the value received and what is allowed.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import math
import numbers
import typing

from typing import Any, Collection, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError

#: SpikingJelly's step modes: ``'s'`` single-step ``[B, ...]``, ``'m'`` multi-step ``[T, B, ...]``.
STEP_MODES = ("s", "m")

__all__ = [
    "MAX_SIZE",
    "STEP_MODES",
    "choice",
    "flag",
    "flags",
    "function",
    "generator",
    "int_sequence",
    "items",
    "loaded_finite",
    "mapping",
    "module",
    "module_class",
    "non_negative",
    "optional_seed",
    "positive_int",
    "positive_number",
    "real_number",
    "real_or_tensor",
    "record",
    "spike_function",
    "tensor",
    "text",
    "threshold_tensor",
]

#: The largest size, count or number of steps :func:`positive_int` accepts by default
#: (the largest int32): beyond it torch's size arguments overflow or the memory runs out.
MAX_SIZE = 2**31 - 1


def _shown(value: object) -> str:
    """``value`` for a message: its repr (cut to 60 characters) and its type."""
    text_ = repr(value)
    if len(text_) > 60:
        text_ = text_[:57] + "..."
    return f"{text_} of type {type(value).__name__}"


def real_number(name: str, value: object) -> float:
    """Return ``value`` as a finite Python float, or raise naming ``name``."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ConfigError(
                f"{name} must be a single real number, got a tensor of shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(
            f"{name} must be a real number (float or int), got {value!r} of type "
            f"{type(value).__name__}"
        )
    if isinstance(value, numbers.Integral) and abs(value) >= 2**63:
        raise ConfigError(f"{name} must be within ±2**63 (torch's int64), got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return out


def positive_number(name: str, value: object, *, maximum: Optional[float] = None) -> float:
    """Return ``value`` as a finite float > 0 (and <= ``maximum`` if given), or raise naming ``name``."""
    out = real_number(name, value)
    if out <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    if maximum is not None and out > maximum:
        raise ConfigError(f"{name} must be <= {maximum:g}, got {value!r}")
    return out


def non_negative(name: str, value: object, *, hint: str = "") -> float:
    """Return ``value`` as a finite float >= 0, or raise naming ``name`` (``hint`` explains 0)."""
    out = real_number(name, value)
    if out < 0:
        about = f" ({hint})" if hint else ""
        raise ConfigError(f"{name} must be >= 0{about}, got {value!r}")
    return out


def module(name: str, value: object, *, hint: str = "pass the network itself") -> nn.Module:
    """Return ``value`` if it is a ``torch.nn.Module``, or raise naming ``name`` and its type."""
    if not isinstance(value, nn.Module):
        raise ConfigError(
            f"{name} must be a torch.nn.Module, got {type(value).__name__} ({value!r:.60}); {hint}"
        )
    return value


def flag(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, or raise naming ``name``."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return value


def flags(**values: object) -> None:
    """:func:`flag` for every ``name=value`` (a constructor's boolean options at once).

    Examples:
        >>> flags(init_hidden=False, output=True)
        >>> flags(output="no")
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.ConfigError: output must be True or False, got 'no'
    """
    for name, value in values.items():
        flag(name, value)


def positive_int(
    name: str, value: object, *, minimum: int = 1, what: str = "", maximum: int = MAX_SIZE
) -> int:
    """Return ``value`` if it is an int in ``[minimum, maximum]`` (not a bool), or raise naming ``name``.

    ``what`` says what the number counts, for the message (e.g. ``"time steps"``);
    ``maximum`` defaults to :data:`MAX_SIZE`.

    Examples:
        >>> positive_int("T", 4)
        4
        >>> positive_int("T", 0, what="time steps")
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.ConfigError: T must be an int >= 1 (time steps), got 0
    """
    about = f" ({what})" if what else ""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "" if isinstance(value, int) else f" of type {type(value).__name__}"
        raise ConfigError(f"{name} must be an int >= {minimum}{about}, got {value!r}{kind}")
    if value > maximum:
        raise ConfigError(f"{name} must be an int <= {maximum}{about}, got {value!r}")
    return int(value)


def choice(name: str, value: object, allowed: Collection[object]) -> object:
    """Return ``value`` if it is one of ``allowed``, or raise naming ``name`` and the options.

    Examples:
        >>> choice("mode", "exact", ("exact", "calibrated"))
        'exact'
    """
    try:
        ok = value in allowed
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def threshold_tensor(threshold: Union[float, Tensor], name: str = "threshold") -> Tensor:
    """Validate a threshold (finite float or tensor of finite floats) and return a tensor.

    A Python number becomes a float64 0-d tensor (exact); a tensor is copied as it is.
    """
    if isinstance(threshold, Tensor):
        if threshold.numel() == 0:
            raise ConfigError(
                f"{name} must not be an empty tensor (shape {tuple(threshold.shape)}); give one "
                "value, or one per feature"
            )
        if not threshold.is_floating_point():
            raise ConfigError(
                f"{name} must be a floating-point tensor, got dtype {threshold.dtype}"
            )
        if threshold.device.type != "meta" and not bool(torch.isfinite(threshold).all()):
            raise ConfigError(f"{name} must be finite, got {threshold!r}")
        return threshold.detach().clone()
    # float64 keeps a Python float exact, so float64 inputs tie exactly at v == threshold;
    # a 0-d tensor does not change the dtype of ``v - threshold`` for float32/16 inputs.
    return torch.tensor(real_number(name, threshold), dtype=torch.float64)


def real_or_tensor(name: str, value: object, *, one: bool = False) -> Union[float, Tensor]:
    """Return a finite real number as a float, or a tensor of finite floats as it is
    (with ``one``, a tensor must hold exactly one value).

    Examples:
        >>> real_or_tensor("beta", 2)
        2.0
    """
    if isinstance(value, Tensor):
        if one and value.numel() != 1:
            raise ConfigError(
                f"{name} must be a number or a one-element tensor, got a tensor of shape "
                f"{tuple(value.shape)}"
            )
        threshold_tensor(value, name)
        return value
    return real_number(name, value)


def tensor(
    name: str, value: object, *, floating: bool = False, real: bool = False, hint: str = ""
) -> Tensor:
    """Return ``value`` if it is a ``torch.Tensor`` (of a floating dtype if ``floating``, of a
    real, i.e. not complex, dtype if ``real``).

    Examples:
        >>> tensor("x", [1.0])
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.ConfigError: x must be a torch.Tensor, got [1.0] of type list
    """
    about = f"; {hint}" if hint else ""
    if not isinstance(value, Tensor):
        raise ConfigError(f"{name} must be a torch.Tensor, got {_shown(value)}{about}")
    if floating and not value.is_floating_point():
        raise ConfigError(
            f"{name} must be a floating-point tensor, got dtype {value.dtype}; convert it with "
            f"{name}.float(){about}"
        )
    if real and value.is_complex():
        raise ConfigError(f"{name} must be a real tensor, got dtype {value.dtype}{about}")
    return value


def function(
    name: str, value: object, *, optional: bool = False, hint: str = "", arity: Optional[int] = None
) -> Any:
    """Return ``value`` if it is callable and not a class (None too if ``optional``).

    A class is refused because passing ``S2Surrogate`` where ``S2Surrogate()`` is meant is
    the usual slip; a class that is meant as a factory can be wrapped in a lambda. With
    ``arity``, the callable must accept that many positional arguments (checked on its
    signature when it has one).
    """
    if value is None and optional:
        return None
    about = f"; {hint}" if hint else ""
    if isinstance(value, type) or not callable(value):
        allowed = "a callable or None" if optional else "a callable"
        extra = " (an instance, not the class itself)" if isinstance(value, type) else ""
        raise ConfigError(f"{name} must be {allowed}{extra}, got {_shown(value)}{about}")
    if arity is not None:
        try:  # a module is called through forward (its __call__ takes *args, **kwargs)
            signature = inspect.signature(value.forward if isinstance(value, nn.Module) else value)
        except (TypeError, ValueError):  # builtins without a signature
            return value
        try:
            signature.bind(*([None] * arity))
        except TypeError:
            raise ConfigError(
                f"{name} must take {arity} positional arguments, got {_shown(value)} with "
                f"signature {signature}{about}"
            ) from None
    return value


def spike_function(name: str, value: object, *, optional: bool = True) -> Any:
    """Return ``value`` if it is a spike function: a callable mapping a tensor to a tensor of
    the same shape (checked on a 3-element float32 tensor); None too if ``optional``."""
    fn = function(name, value, optional=optional, hint="e.g. S2Surrogate() or s2nn()")
    if fn is None:
        return None
    probe = torch.tensor([-0.5, 0.0, 0.5])
    try:
        out = fn(probe)
    except Exception as err:  # the user's function: report, with its own error chained
        raise ConfigError(
            f"{name} must map a tensor (v - threshold) to spikes; calling it on {probe} raised "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(out, Tensor) or out.shape != probe.shape:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else _shown(out)
        raise ConfigError(
            f"{name} must map a tensor (v - threshold) to spikes of the same shape; on a "
            f"tensor of shape (3,) it returned {got}"
        )
    return fn


def text(name: str, value: object) -> str:
    """Return ``value`` if it is a ``str``, or raise naming ``name``."""
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a str, got {_shown(value)}")
    return value


def mapping(name: str, value: object, *, optional: bool = False) -> Optional[Mapping]:
    """Return ``value`` if it is a mapping (a dict; None too if ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        allowed = "a dict (mapping) or None" if optional else "a dict (mapping)"
        raise ConfigError(f"{name} must be {allowed}, got {_shown(value)}")
    return value


def module_class(name: str, value: object) -> type:
    """Return ``value`` if it is a subclass of ``torch.nn.Module`` (the class, not an instance)."""
    if not (isinstance(value, type) and issubclass(value, nn.Module)):
        extra = "; pass the class, type(module)" if isinstance(value, nn.Module) else ""
        raise ConfigError(
            f"{name} must be a subclass of torch.nn.Module, got {_shown(value)}{extra}"
        )
    return value


def int_sequence(name: str, value: object, *, minimum: int = 1) -> tuple[int, ...]:
    """Return ``value`` (a list or tuple of ints ``>= minimum``) as a tuple, naming the bad item."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list or tuple of ints, got {_shown(value)}")
    return tuple(positive_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(value))


def optional_seed(name: str, value: object) -> Optional[int]:
    """Return ``value`` if it is None or an int in ``[0, 2**63)`` (a torch seed)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ConfigError(f"{name} must be None or an int in [0, 2**63), got {_shown(value)}")
    return value


def generator(name: str, value: object) -> Optional[torch.Generator]:
    """Return ``value`` if it is None or a ``torch.Generator``."""
    if value is not None and not isinstance(value, torch.Generator):
        raise ConfigError(
            f"{name} must be a torch.Generator or None, got {_shown(value)}; "
            "e.g. torch.Generator().manual_seed(0)"
        )
    return value


def items(name: str, value: object, *, kind: type, what: str) -> list:
    """Return ``value`` as a list if it is a list or tuple whose items are all ``kind``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of {what}, got {_shown(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, kind):
            raise ConfigError(f"{name}[{i}] must be {what}, got {_shown(item)}")
    return list(value)


@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, hints[f.name]) for f in dataclasses.fields(cls) if not f.name.startswith("_")
    )


def record(obj: object) -> None:
    """Check every public field of the dataclass instance ``obj`` against its annotation.

    Understood annotations: ``str``, ``bool``, ``int`` (>= 0), ``float`` (finite), ``type``,
    a class, ``Optional[...]``/``Union[...]``, ``list[X]``, ``tuple[X, ...]``,
    ``dict[K, V]`` and ``Callable``; anything else (``Any``) is not checked. Called from
    ``__post_init__`` of the public records (report rows and the like), so a record never
    holds a value its annotation rules out.

    Examples:
        >>> @dataclasses.dataclass
        ... class Row:
        ...     name: str
        ...     rate: float
        >>> record(Row("a", float("nan")))
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.ConfigError: Row.rate must be finite, got nan
    """
    cls = type(obj)
    for name, hint in _field_types(cls):
        _check_annotated(f"{cls.__name__}.{name}", getattr(obj, name), hint)


def _check_annotated(name: str, value: object, hint: Any) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        if value is None and type(None) in args:
            return
        options = [a for a in args if a is not type(None)]
        failures = []
        for option in options:
            try:
                return _check_annotated(name, value, option)
            except ConfigError as err:
                failures.append(str(err))
        raise ConfigError(" / ".join(failures) + ("" if value is not None else " (or None)"))
    if hint is str:
        text(name, value)
    elif hint is bool:
        flag(name, value)
    elif hint is int:
        positive_int(name, value, minimum=0, maximum=2**63 - 1)
    elif hint is float:
        real_number(name, value)
    elif origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list or tuple, got {_shown(value)}")
        for i, item in enumerate(value):
            _check_annotated(f"{name}[{i}]", item, args[0] if args else Any)
    elif origin is dict or hint is dict:
        mapping(name, value)
        for key, item in value.items():
            if args:
                _check_annotated(f"{name} key", key, args[0])
                _check_annotated(f"{name}[{key!r}]", item, args[1])
    elif origin is collections.abc.Callable:
        function(name, value)
    elif hint is type or origin is type:
        if not isinstance(value, type):
            raise ConfigError(f"{name} must be a class, got {_shown(value)}")
    elif isinstance(hint, type) and hint is not object and not isinstance(value, hint):
        raise ConfigError(f"{name} must be a {hint.__name__}, got {_shown(value)}")


def loaded_finite(state_dict: Mapping, prefix: str, *names: str) -> None:
    """Refuse non-finite values under ``prefix + name`` in ``state_dict`` (a
    ``_load_from_state_dict`` hook): a checkpoint must not bring in what the constructor
    refuses. The ConfigError names the state_dict key."""
    for name in names:
        value = state_dict.get(prefix + name)
        if isinstance(value, Tensor):
            threshold_tensor(value, name=f"state_dict key {prefix + name!r}")
