"""What :func:`~snn_singlestep.collapse` did to a net: :class:`CollapseReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..core import validate

__all__ = ["CalibrationEntry", "CollapseReport", "ReportEntry"]


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

    def __post_init__(self) -> None:
        validate.record(self)


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

    def __post_init__(self) -> None:
        validate.record(self)


@dataclass
class CollapseReport:
    """What :func:`~snn_singlestep.collapse` did to a net.

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

    def __post_init__(self) -> None:
        validate.record(self)

    def _select(self, action: str) -> list[ReportEntry]:
        return [e for e in self.entries if e.action == action]

    replaced = property(
        lambda self: self._select("replaced"), doc="Modules replaced by a single-step module."
    )
    adapted = property(
        lambda self: self._select("adapted"),
        doc="Modules edited in place (containers, stateful layers, time-structured models).",
    )
    kept = property(lambda self: self._select("kept"), doc="Modules that were single-step already.")
    unconverted = property(
        lambda self: self._select("unconverted"),
        doc="Spiking or stateful modules that could not be converted, with the reason.",
    )

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
