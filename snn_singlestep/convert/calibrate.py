r"""Threshold calibration of collapsed nets (``collapse(..., mode="calibrated")``).

A net trained at T > 1 barely fires in its first step (an LIF neuron with
:math:`\tau = 2` sees only half its input), so its exact single-step copy is nearly
silent. Calibration keeps every weight and moves each converted neuron's threshold so
that its single-step firing rate matches the multi-step net's mean rate over T steps:

.. math::

    r^{(l)} = \frac{1}{T N}\sum_{t=1}^{T}\sum_{n} s^{(l)}_{t,n},
    \qquad
    \theta'^{(l)} = \text{midpoint of the } k\text{-th and } (k{+}1)\text{-th largest }
    h_1^{(l)}, \quad k = \mathrm{round}(r^{(l)} N),

where :math:`s^{(l)}_{t,n}` are the multi-step spikes of neuron module :math:`l` over the
calibration data (:math:`N` samples × units, per layer or per channel) and :math:`h_1^{(l)}`
the single-step membranes of the converted neuron on the same data, computed layer by layer
in one forward pass so each layer sees the already calibrated layers before it. Exactly
:math:`k` membranes reach :math:`\theta'` on the calibration data. With :math:`k = 0` the
threshold is set just above the largest membrane (the layer stays silent, as it was).
Both nets are calibrated in eval mode (BatchNorm uses its running statistics).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from ..core import registry
from ..core.validate import choice, function, module, positive_int
from ..errors import ConfigError, SingleStepWarning
from .report import CalibrationEntry

__all__ = ["calibrate", "calibration_inputs", "check_calibration_args"]

GRANULARITIES = ("layer", "channel")


def calibration_inputs(data: Iterable) -> list[Tensor]:
    if isinstance(data, (Tensor, str, bytes, nn.Module)) or not isinstance(data, Iterable):
        raise ConfigError(
            f"data must be an iterable of input batches (a list of tensors, a DataLoader, ...), "
            f"got {type(data).__name__}; wrap a single batch as [x]"
        )
    xs = []
    for index, item in enumerate(data):
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, Tensor):
            raise ConfigError(
                "calibration data must yield tensors or (input, target) pairs, got "
                f"{type(item).__name__}"
            )
        if x.device.type != "meta":
            bad = int((~torch.isfinite(x)).sum())
            if bad:
                # NaN/inf thresholds would follow, and the layer would never fire again.
                raise ConfigError(
                    f"calibration data batch {index} (shape {tuple(x.shape)}) holds {bad} "
                    f"non-finite value{'s' if bad != 1 else ''} (NaN or inf) of {x.numel()}; "
                    "clean the data before calibrating"
                )
        xs.append(x)
    if not xs:
        raise ConfigError("calibration data is empty: pass at least one input batch")
    return xs


def _time_major(m: nn.Module, x: Optional[Tensor] = None) -> bool:
    """Does ``m`` take/return ``[T, B, ...]`` (for input ``x`` if given)? Asks the frameworks."""
    return any(fw.time_major(m, x) for fw in registry.frameworks())


def _rows(x: Tensor, time_major: bool, granularity: str, channel_dim: int) -> Tensor:
    """``x`` as ``[C, M]`` (channel) or ``[1, M]`` (layer) after merging a time axis into B."""
    if time_major:
        x = x.flatten(0, 1)
    if granularity == "layer":
        return x.reshape(1, -1)
    cd = channel_dim if channel_dim >= 0 else x.ndim + channel_dim
    if not 0 < cd < x.ndim:
        raise ConfigError(
            f"channel_dim={channel_dim} does not name a channel axis of a neuron input of shape "
            f"{tuple(x.shape)} ([B, C, ...]); pass channel_dim=1 or -1, or granularity='layer'"
        )
    return x.movedim(cd, 0).reshape(x.shape[cd], -1)


def _threshold_for(h: Tensor, rate: Tensor) -> Tensor:
    """Per row of ``h`` ([R, M]), the threshold letting ``round(rate * M)`` values fire."""
    n = h.shape[1]
    k = torch.round(rate.to(h.dtype) * n).long().clamp(0, n)
    top = torch.sort(h, dim=1, descending=True).values
    above = top.gather(1, (k - 1).clamp(min=0)[:, None])[:, 0]  # k-th largest
    below = top.gather(1, k.clamp(max=n - 1)[:, None])[:, 0]  # (k+1)-th largest
    theta = (above + below) / 2
    margin = top[:, 0].abs() * 1e-3 + 1e-6
    theta = torch.where(k == 0, top[:, 0] + margin, theta)
    return torch.where(k >= n, top[:, -1] - margin, theta)


def _default_runner(original: nn.Module, T: int) -> Callable[[nn.Module, Tensor], Any]:
    """The reference run of the framework the net's modules belong to."""
    names = {registry.framework_of(m) for m in original.modules()}
    for fw in registry.frameworks():
        if fw.name in names and fw.run_steps is not None:
            run_steps = fw.run_steps
            return lambda net, x: run_steps(net, x, T)
    raise ConfigError(
        f"{type(original).__name__} holds no module of a framework that knows how to run it "
        "for T steps; pass run_original=fn(net, x)"
    )


def check_calibration_args(
    original: Optional[nn.Module] = None,
    *,
    T: Optional[int],
    granularity: str,
    run_original: Optional[Callable[[nn.Module, Tensor], Any]],
    channel_dim: int = 1,
) -> Optional[int]:
    """Validate the calibration arguments; return the T to use (see :func:`calibrate`)."""
    choice("granularity", granularity, GRANULARITIES)
    function("run_original", run_original, optional=True, hint="run_original=fn(net, x)", arity=2)
    if isinstance(channel_dim, bool) or not isinstance(channel_dim, int):
        raise ConfigError(
            f"channel_dim must be an int (the channel axis of a neuron input, e.g. 1 or -1), "
            f"got {channel_dim!r}"
        )
    if T is None and run_original is None:
        if original is None:  # checked again once the net is known
            return None
        T = getattr(original, "T", None)
    if run_original is None or T is not None:
        T = positive_int(
            "T", T, what="the number of time steps the net was trained with; or pass "
            "run_original=fn(net, x)"
        )
    return T


def calibrate(
    collapsed: nn.Module,
    original: nn.Module,
    data: Iterable,
    *,
    T: Optional[int] = None,
    granularity: str = "layer",
    channel_dim: int = 1,
    run_original: Optional[Callable[[nn.Module, Tensor], Any]] = None,
) -> list[CalibrationEntry]:
    r"""Set the thresholds of ``collapsed``'s converted neurons from data (module docstring).

    Args:
        collapsed: the output of ``collapse`` (edited in place).
        original: the multi-step net it came from (run, not changed; its state is reset).
        data: input batches (tensors or ``(input, target)`` pairs), all used at once.
        T: steps of the multi-step run; defaults to ``original.T`` when the model has one.
        granularity: ``"layer"`` (one threshold per neuron module) or ``"channel"``.
        channel_dim: channel axis of a single-step neuron input ``[B, C, ...]``.
        run_original: ``fn(original, x)`` running the multi-step net on one batch for T
            steps. Default: SpikingJelly nets are reset and fed ``x`` repeated T times
            (``[T, B, ...]`` in step mode ``'m'``, T calls in ``'s'``, ``net.T = T`` for
            models that build the sequence themselves); snnTorch nets are reset
            (``snntorch.utils.reset``) and called T times.

    Returns:
        One :class:`~snn_singlestep.convert.collapse.CalibrationEntry` per calibrated neuron.

    Raises:
        ConfigError: bad ``granularity``, ``T`` or ``data``.
    """
    module("collapsed", collapsed, hint="pass the output of collapse(original)")
    module("original", original, hint="pass the multi-step net collapse was given")
    T = check_calibration_args(
        original, T=T, granularity=granularity, run_original=run_original, channel_dim=channel_dim
    )
    xs = calibration_inputs(data)
    runner = run_original or _default_runner(original, T)

    pairs = []
    for path, m in collapsed.named_modules():
        if not isinstance(m, registry.Calibratable):
            continue
        try:
            src = original.get_submodule(path)
        except AttributeError:
            continue
        pairs.append((path, m, src))
    if not pairs:
        warnings.warn(
            f"calibrate: {type(collapsed).__name__} holds no converted neuron with a counterpart "
            "in original, so no threshold was changed; pass the output of collapse(original) "
            "and the net it came from",
            SingleStepWarning,
            stacklevel=2,
        )

    # 1. target rates of the multi-step net
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}

    def record(path: str, time_major: bool):
        def hook(module, args, output):
            spikes = output[0] if isinstance(output, (tuple, list)) else output
            rows = _rows(
                (spikes.detach() != 0).to(torch.float64), time_major, granularity, channel_dim
            )
            sums[path] = sums.get(path, 0) + rows.sum(1)
            counts[path] = counts.get(path, 0) + rows.shape[1]

        return hook

    was_training = original.training
    handles = [src.register_forward_hook(record(p, _time_major(src))) for p, _, src in pairs]
    try:
        original.eval()
        with torch.no_grad():
            for x in xs:
                runner(original, x)
    finally:
        for h in handles:
            h.remove()
        original.train(was_training)

    # 2. one pass over all data through the converted net, calibrating layer by layer
    entries: dict[str, CalibrationEntry] = {}

    def calibrate_hook(path: str):
        def hook(module, args):
            if path in entries or path not in sums or not args or not isinstance(args[0], Tensor):
                return
            x = args[0]
            h = module.membrane(x).detach()
            tm = _time_major(module, x)
            rows = _rows(h, tm, granularity, channel_dim).float()
            old = torch.as_tensor(module.get_threshold(), dtype=torch.float32, device=h.device)
            old_rows = old.reshape(-1, 1) if old.numel() == rows.shape[0] else old.reshape(1, 1)
            rate_before = float((rows >= old_rows).float().mean())
            target = (sums[path] / counts[path]).to(h.device)
            theta = _threshold_for(rows, target)
            rate_after = float((rows >= theta[:, None]).float().mean())
            single = h[0] if tm else h
            if granularity == "channel":
                cd = channel_dim if channel_dim >= 0 else single.ndim + channel_dim
                theta_t = theta.reshape(-1, *([1] * (single.ndim - 1 - cd)))
            else:
                theta_t = theta.reshape(())
            module.set_threshold(theta_t.to(h.dtype))
            entries[path] = CalibrationEntry(
                path=path,
                target_rate=float(target.mean()),
                rate_before=rate_before,
                rate_after=rate_after,
                threshold_before=float(old.float().mean()),
                threshold_after=float(theta.mean()),
            )
            return

        return hook

    was_training = collapsed.training
    handles = [m.register_forward_pre_hook(calibrate_hook(p)) for p, m, _ in pairs]
    try:
        collapsed.eval()
        with torch.no_grad():
            collapsed(torch.cat(xs))
    finally:
        for h in handles:
            h.remove()
        collapsed.train(was_training)
    return [entries[p] for p, _, _ in pairs if p in entries]
