"""Argument checks shared by the core and the glue packages.

Each check returns the cleaned value or raises :class:`~snn_singlestep.errors.ConfigError`
naming the parameter, the value received and what is allowed.
"""

from __future__ import annotations

import math
import numbers

from typing import Collection, Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError

#: SpikingJelly's step modes: ``'s'`` single-step ``[B, ...]``, ``'m'`` multi-step ``[T, B, ...]``.
STEP_MODES = ("s", "m")

__all__ = [
    "STEP_MODES",
    "choice",
    "flag",
    "module",
    "non_negative",
    "positive_int",
    "positive_number",
    "real_number",
    "threshold_tensor",
]


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
    out = float(value)
    if not math.isfinite(out):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return out


def positive_number(name: str, value: object) -> float:
    """Return ``value`` as a finite float > 0, or raise naming ``name``."""
    out = real_number(name, value)
    if out <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
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


def positive_int(name: str, value: object, *, minimum: int = 1, what: str = "") -> int:
    """Return ``value`` if it is an int ``>= minimum`` (not a bool), or raise naming ``name``.

    ``what`` says what the number counts, for the message (e.g. ``"time steps"``).

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
