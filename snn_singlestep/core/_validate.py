"""Argument checks shared by the core and the glue packages.

Each check returns the cleaned value or raises :class:`~snn_singlestep.errors.ConfigError`
naming the parameter, the value received and what is allowed.
"""

from __future__ import annotations

import math
import numbers

import torch

from ..errors import ConfigError

__all__ = ["real_number", "positive_number", "flag"]


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


def flag(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, or raise naming ``name``."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return value
