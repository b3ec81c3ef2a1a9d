r"""Operation counts, firing rates and an energy estimate for ANNs and SNNs.

For one forward pass on an example input, per layer and in total:

* **MACs**: multiply-accumulates of matmuls/convolutions whose input is *not* binary;
* **SynOps**: synaptic operations of matmuls/convolutions whose input *is* binary
  (0/1 spikes): :math:`\text{SynOps} = \sum_\text{nonzero inputs} \text{fan-out}`,
  each one an accumulate (AC) with no multiply;
* **firing rate** of every spiking layer (fraction of ones in its output);
* **parameter memory** in bytes;
* **energy** :math:`E = N_\text{MAC} e_\text{MAC} + N_\text{SynOp} e_\text{AC}`, by default
  with the 45 nm table of Horowitz (ISSCC 2014), :math:`e_\text{MAC} = 4.6` pJ and
  :math:`e_\text{AC} = 0.9` pJ (32-bit float), the table used across the SNN literature.

The counting is SpikingJelly's own: :class:`~spikingjelly.activation_based.op_counter.MACCounter`
and :class:`~spikingjelly.activation_based.op_counter.SynOpCounter` under a
``DispatchCounterMode``, which see every aten matmul/convolution and decide per call
whether an operand is binary. We add only what they do not give: attribution of the counts
to layers by their dotted names, firing rates, parameter memory, the per-operation energy
table, and running a net for T steps. Like SpikingJelly's counters, a call where *either*
operand is binary counts as synaptic; trained weights are never all 0/1 in practice.
SpikingJelly's MAC counter also charges the affine of a batch norm (one MAC per element,
a cost that disappears when the norm is folded into the preceding layer for inference);
other elementwise work (neuron updates, additions) is not counted. The estimate is the
usual "synaptic compute" comparison, not a hardware model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Optional

import torch
from torch import Tensor, nn

from .core import registry
from .core import validate
from .core.validate import positive_int
from .errors import ConfigError, ShapeError
from .monitor import FiringRateMonitor

__all__ = ["ENERGY_45NM", "EnergyReport", "LayerEnergy", "energy_report"]

ENERGY_45NM: dict[str, float] = {"mac": 4.6, "ac": 0.9}
"""Energy per operation in pJ, 45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014)."""


@dataclass
class LayerEnergy:
    """One row of an :class:`EnergyReport` (counts are for the whole example input)."""

    name: str
    kind: str
    macs: int = 0
    synops: int = 0
    firing_rate: Optional[float] = None
    param_bytes: int = 0
    energy_pj: float = 0.0

    def __post_init__(self) -> None:
        validate.record(self)


@dataclass
class EnergyReport:
    """Per-layer and total operation counts and energy for one example input.

    ``str(report)`` prints a table (per-sample totals at the bottom); ``to_dict()`` gives
    plain types for JSON.
    """

    layers: list[LayerEnergy]
    batch_size: int
    steps: int
    table: dict[str, float] = field(default_factory=lambda: dict(ENERGY_45NM))

    def __post_init__(self) -> None:
        validate.record(self)
        positive_int("batch_size", self.batch_size)
        positive_int("steps", self.steps, what="time steps")
        self.table = _check_table(self.table)

    def _total(self, field_name: str):
        return sum(getattr(layer, field_name) for layer in self.layers)

    macs = property(lambda self: self._total("macs"), doc="MACs of every layer, summed.")
    synops = property(lambda self: self._total("synops"), doc="SynOps of every layer, summed.")
    param_bytes = property(lambda self: self._total("param_bytes"), doc="Parameter memory.")
    energy_pj = property(lambda self: self._total("energy_pj"), doc="Estimated energy, pJ.")

    @property
    def mean_firing_rate(self) -> Optional[float]:
        """Mean over spiking layers (unweighted), or None for a net without spikes."""
        rates = [layer.firing_rate for layer in self.layers if layer.firing_rate is not None]
        return sum(rates) / len(rates) if rates else None

    def energy_per_sample_pj(self) -> float:
        return self.energy_pj / self.batch_size

    def to_dict(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "steps": self.steps,
            "table_pj": dict(self.table),
            "layers": [asdict(layer) for layer in self.layers],
            "total": {
                "macs": self.macs,
                "synops": self.synops,
                "param_bytes": self.param_bytes,
                "energy_pj": self.energy_pj,
                "energy_per_sample_pj": self.energy_per_sample_pj(),
                "mean_firing_rate": self.mean_firing_rate,
            },
        }

    def __str__(self) -> str:
        head = f"{'layer':<28} {'kind':<14} {'MACs':>12} {'SynOps':>12} {'rate':>6} {'params B':>9} {'energy pJ':>12}"
        lines = [head, "-" * len(head)]
        for r in self.layers:
            rate = "" if r.firing_rate is None else f"{r.firing_rate:.3f}"
            lines.append(
                f"{r.name[:28]:<28} {r.kind[:14]:<14} {r.macs:>12,} {r.synops:>12,} {rate:>6} "
                f"{r.param_bytes:>9,} {r.energy_pj:>12,.1f}"
            )
        lines.append("-" * len(head))
        mean = self.mean_firing_rate
        lines.append(
            f"{'total':<28} {'':<14} {self.macs:>12,} {self.synops:>12,} "
            f"{'' if mean is None else f'{mean:.3f}':>6} {self.param_bytes:>9,} {self.energy_pj:>12,.1f}"
        )
        lines.append(
            f"per sample ({self.batch_size} in batch, T={self.steps}): "
            f"{self.energy_per_sample_pj() / 1e3:,.3f} nJ "
            f"(MAC {self.table['mac']} pJ, AC {self.table['ac']} pJ)"
        )
        return "\n".join(lines)


def _check_table(table: Optional[Mapping[str, float]]) -> dict[str, float]:
    merged = dict(ENERGY_45NM)
    for key, value in (validate.mapping("table", table, optional=True) or {}).items():
        if key not in ENERGY_45NM:
            raise ConfigError(
                f"unknown energy table key {key!r}; valid keys are {sorted(ENERGY_45NM)} "
                "(pJ per MAC and per accumulate)"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0
        ):
            raise ConfigError(f"energy table value for {key!r} must be a finite number >= 0, got {value!r}")
        merged[key] = float(value)
    return merged


def _reset_state(model: nn.Module) -> None:
    registry.reset_all(model)


def _own_counts(model: nn.Module, records: Mapping[str, Mapping]) -> dict[str, int]:
    """Counts of each module minus those of its children (SpikingJelly records every scope)."""
    root = type(model).__name__
    total = lambda name: sum(records.get(f"{root}.{name}" if name else root, {}).values())  # noqa: E731
    own = {}
    for name, module in model.named_modules():
        children = sum(total(f"{name}.{c}" if name else c) for c, _ in module.named_children())
        own[name] = total(name) - children
    return own


def energy_report(
    model: nn.Module,
    example_input: Tensor,
    *,
    steps: Optional[int] = None,
    table: Optional[Mapping[str, float]] = None,
    forward: Optional[Callable[[nn.Module, Tensor], object]] = None,
) -> EnergyReport:
    r"""Count MACs and SynOps of one forward pass and estimate its energy.

    Args:
        model: any ``nn.Module``: a plain ANN, a single-step S²NN, a SpikingJelly net (in
            'm' mode give ``[T, B, …]`` input), or a snnTorch/SpikingJelly net run step by
            step (give ``steps=T`` and ``[T, B, …]`` input: the net is reset and called on
            each ``example_input[t]``).
        example_input: the input batch.
        steps: run ``model(example_input[t])`` for ``t < steps`` (state reset first).
        table: energy per operation in pJ, keys ``"mac"`` and ``"ac"``; missing keys
            take the 45 nm defaults (:data:`ENERGY_45NM`).
        forward: custom call ``forward(model, example_input)`` replacing the default.

    Returns:
        An :class:`EnergyReport` whose counts are for the whole ``example_input``.

    Raises:
        ConfigError: model without parameters, unknown table key, bad ``steps``.
        ShapeError: the example input does not fit the model (names the shape).

    Examples:
        >>> import torch
        >>> from snn_singlestep import S2Cell
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), S2Cell(), torch.nn.Linear(3, 2))
        >>> report = energy_report(net, torch.rand(1, 4))
        >>> report.macs  # the first layer sees real-valued pixels: 4 * 3 MACs
        12
        >>> report.synops == 2 * int(report.layers[1].firing_rate * 3)  # spikes x fan-out
        True
    """
    from spikingjelly.activation_based.op_counter import (
        DispatchCounterMode,
        MACCounter,
        SynOpCounter,
    )

    validate.module("model", model)
    if not any(True for _ in model.parameters()):
        raise ConfigError(
            f"model {type(model).__name__} has no parameters: there are no synaptic "
            "operations to count"
        )
    validate.tensor("example_input", example_input)
    validate.function(
        "forward", forward, optional=True, hint="forward(model, example_input)", arity=2
    )
    if steps is not None:
        positive_int("steps", steps, what="time steps, or None for one call")
    if steps is not None and (example_input.ndim < 2 or example_input.shape[0] != steps):
        raise ShapeError(
            f"with steps={steps} the example input must be [T={steps}, B, ...], got shape "
            f"{tuple(example_input.shape)}"
        )
    table = _check_table(table)
    if forward is None:
        if steps is None:
            forward = lambda m, x: m(x)  # noqa: E731
        else:
            def forward(m, x):
                _reset_state(m)
                return [m(x[t]) for t in range(steps)]

    macs, synops = MACCounter(), SynOpCounter()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FiringRateMonitor(model) as monitor, DispatchCounterMode([macs, synops]):
            forward(model, example_input)
    except (RuntimeError, ValueError, IndexError) as err:
        raise ShapeError(
            f"the example input of shape {tuple(example_input.shape)} does not fit "
            f"{type(model).__name__}: {err}"
        ) from err
    finally:
        model.train(was_training)

    own_macs = _own_counts(model, macs.records)
    own_synops = _own_counts(model, synops.records)
    rates = monitor.rates()
    layers = []
    for name, module in model.named_modules():
        n_mac, n_syn = own_macs.get(name, 0), own_synops.get(name, 0)
        param_bytes = sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
        if n_mac or n_syn or name in rates or param_bytes:
            layers.append(
                LayerEnergy(
                    name=name or "(root)",
                    kind=type(module).__name__,
                    macs=n_mac,
                    synops=n_syn,
                    firing_rate=rates.get(name),
                    param_bytes=param_bytes,
                    energy_pj=n_mac * table["mac"] + n_syn * table["ac"],
                )
            )
    batch = example_input.shape[1] if steps is not None else example_input.shape[0]
    return EnergyReport(layers=layers, batch_size=int(batch), steps=steps or 1, table=table)


def compare(reports: Mapping[str, EnergyReport]) -> str:
    """A one-line-per-model table of per-sample MACs, SynOps, rate and energy."""
    validate.mapping("reports", reports)
    for name, r in reports.items():
        if not isinstance(r, EnergyReport):
            raise ConfigError(
                f"reports[{name!r}] must be an EnergyReport (from energy_report), got "
                f"{type(r).__name__}"
            )
    rows = [f"{'model':<24} {'MACs/sample':>14} {'SynOps/sample':>14} {'rate':>6} {'energy nJ':>10}"]
    for name, r in reports.items():
        rate = "" if r.mean_firing_rate is None else f"{r.mean_firing_rate:.3f}"
        rows.append(
            f"{name:<24} {r.macs / r.batch_size:>14,.0f} {r.synops / r.batch_size:>14,.0f} "
            f"{rate:>6} {r.energy_per_sample_pj() / 1e3:>10,.3f}"
        )
    return "\n".join(rows)


__all__ += ["compare"]
