"""Exceptions and warnings raised by :mod:`snn_singlestep`.

Every exception derives from :class:`SingleStepError` *and* from the builtin that
matches its meaning, so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations

__all__ = [
    "SingleStepError",
    "ConfigError",
    "ShapeError",
    "ConversionError",
    "RegistrationError",
    "CheckpointError",
    "SingleStepWarning",
]


class SingleStepError(Exception):
    """Base class of every error raised on purpose by this package."""


class ConfigError(SingleStepError, ValueError):
    """An argument has an invalid value (α ≤ 0, NaN threshold, unknown option, …)."""


class ShapeError(SingleStepError, ValueError):
    """A tensor has the wrong shape, e.g. a time dimension > 1 given to a T=1 net."""


class ConversionError(SingleStepError, TypeError):
    """A model holds a module that a converter cannot translate.

    Attributes:
        report: the converter's report of the whole net when it has one
            (:class:`~snn_singlestep.convert.CollapseReport` for ``collapse``), else None.
    """

    def __init__(self, *args: object, report: object = None) -> None:
        super().__init__(*args)
        self.report = report


class RegistrationError(SingleStepError, RuntimeError):
    """A name we would register in a host framework is already taken by something else."""


class CheckpointError(SingleStepError, ValueError):
    """A checkpoint file is corrupt or does not match the model it is loaded into."""


class SingleStepWarning(UserWarning):
    """Warnings emitted by :mod:`snn_singlestep`."""
