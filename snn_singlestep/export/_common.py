"""Shared by the NIR and ONNX exporters: optional imports, net preparation, output paths.

What the exporters know about neurons and host frameworks comes from
:mod:`snn_singlestep.core.registry` (filled by the glue packages when ``snn_singlestep`` is
imported); nothing here imports snnTorch, SpikingJelly or the glue. Files are written with
:func:`snn_singlestep.core.io.atomic_path`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from ..core import registry
from ..core.nettools import copy_net as _copy_net
from ..errors import ConfigError, ConversionError, ShapeError, SingleStepError

__all__ = [
    "DEPLOY_HINT",
    "EXPORT_DTYPES",
    "call_quietly",
    "check_out_path",
    "check_stateless",
    "describe",
    "prepare",
    "require",
    "stateful_modules",
]

PathLike = Union[str, os.PathLike]

#: What to install when a deployment dependency is missing.
DEPLOY_HINT = "pip install snn_singlestep[deploy]"

#: Supported export dtypes (the dtype of the sample input).
EXPORT_DTYPES = (torch.float32, torch.float64)


def require(module: str, feature: str) -> Any:
    """Import an optional dependency or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{feature} needs the optional package {module!r}, which is not installed "
            f"({err}). Install the deployment extra: {DEPLOY_HINT}"
        ) from err


def describe(module: nn.Module, path: str) -> str:
    """``module 'features.0' (torch.nn.modules.linear.Linear)`` for error messages."""
    cls = type(module)
    where = f"module {path!r}" if path else "the top-level module"
    return f"{where} ({cls.__module__}.{cls.__qualname__})"


def stateful_modules(net: nn.Module) -> list[str]:
    """``"'path' (Class): reason"`` for every module that keeps state between calls.

    The registry answers (:func:`snn_singlestep.core.registry.stateful_reason`): our
    single-step and collapsed neurons never keep state, our T=N integrate-and-fire neurons
    do, and each registered framework says which of its modules do (snnTorch neurons,
    SpikingJelly modules with memories); recurrent torch layers do too.
    """
    found = []
    for path, module in net.named_modules():
        reason = registry.stateful_reason(module)
        if reason is not None:
            cls = type(module)
            found.append(f"{path or '<root>'!r} ({cls.__module__}.{cls.__qualname__}: {reason})")
    return found


def check_stateless(net: nn.Module, what: str) -> None:
    """Raise ConversionError listing every stateful module of ``net``."""
    found = stateful_modules(net)
    if found:
        raise ConversionError(
            f"cannot {what}: the net keeps state between calls in "
            + "; ".join(found)
            + ". An exported single-step graph has no state: convert the net first with "
            "snn_singlestep.collapse(net) (then fine-tune or calibrate it), or build it "
            "with S2Cell / S2Neuron / S2Node."
        )


def _time_major(net: nn.Module) -> list[str]:
    """Paths of the modules a registered framework runs time-major (``[T, B, ...]``)."""
    fws = registry.frameworks()
    return [
        path or "<root>"
        for path, m in net.named_modules()
        if any(fw.time_major(m, None) for fw in fws)
    ]


def _set_single_step(net: nn.Module) -> None:
    """Switch every framework with step modes to ``'s'`` (``[B, ...]``) in ``net``."""
    for fw in registry.frameworks():
        if fw.step_modes:
            fw.set_step_mode(net, "s")


def _check_sample(sample_input: object) -> Tensor:
    if not isinstance(sample_input, Tensor):
        raise ConfigError(
            f"sample_input must be a torch.Tensor holding one batch [B, ...], got "
            f"{type(sample_input).__name__}"
        )
    if sample_input.dtype not in EXPORT_DTYPES:
        raise ConfigError(
            f"sample_input must be float32 or float64 (the exported graph takes that dtype), "
            f"got {sample_input.dtype}"
        )
    if sample_input.ndim < 2 or sample_input.shape[0] < 1 or sample_input.numel() == 0:
        raise ShapeError(
            f"sample_input must be a non-empty batch [B, ...] with B >= 1 and at least one "
            f"feature dimension, got shape {tuple(sample_input.shape)}"
        )
    return sample_input.detach()


def _same_structure(a: Any, b: Any) -> bool:
    la, lb = tree_leaves(a), tree_leaves(b)
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb):
        if isinstance(x, Tensor) != isinstance(y, Tensor):
            return False
        if isinstance(x, Tensor) and (x.shape != y.shape or not torch.equal(x, y)):
            return False
    return True


def _run(net: nn.Module, x: Tensor) -> Any:
    try:
        with torch.no_grad():
            return net(x)
    except SingleStepError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ShapeError(
            f"the net cannot run on sample_input of shape {tuple(x.shape)} "
            f"({type(err).__name__}: {first}). Pass one batch in the layout the net takes, "
            "[B, ...] without a time dimension."
        ) from err


#: Layers whose batched input rank is known: ``[B, features]`` or ``[B, C, *spatial]``.
_RANKED_LAYERS: tuple[tuple[type, str], ...] = (
    (nn.Linear, "[B, F]"),
    (nn.Conv1d, "[B, C, L]"),
    (nn.Conv2d, "[B, C, H, W]"),
    (nn.Conv3d, "[B, C, D, H, W]"),
)


def _first_layer_input(net: nn.Module, x: Tensor) -> tuple[Any, Any]:
    """Run ``net`` on ``x``: its output and ``(path, module, input shape)`` of the first
    Linear/Conv layer called (None when no such layer runs)."""
    seen: list[tuple[str, nn.Module, torch.Size]] = []

    def hook_for(path: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple) -> None:
            if not seen and args and isinstance(args[0], Tensor):
                seen.append((path, module, args[0].shape))

        return hook

    handles = [
        m.register_forward_pre_hook(hook_for(path))
        for path, m in net.named_modules()
        if isinstance(m, tuple(cls for cls, _ in _RANKED_LAYERS))
    ]
    try:
        out = _run(net, x)
    finally:
        for h in handles:
            h.remove()
    return out, (seen[0] if seen else None)


def _check_leading_axis(x: Tensor, what: str, first: Any) -> None:
    """Refuse a sample with an extra leading axis (``[T, B, ...]``) that the net's first
    Linear/Conv layer only accepted by broadcasting over it.

    ``nn.Linear`` runs on ``[T, B, F]`` as on a batch of batches, so a single-step MLP
    "works" on a time-major sample, and the exported graph would then take ``[batch, B, F]``.
    The first layer's input rank is known (Linear ``[B, F]``, ConvNd ``[B, C, *N dims]``);
    when that layer receives the sample's shape unchanged with more dims, the extra leading
    axis is not a batch axis of the net.
    """
    if first is None:
        return
    path, module, shape = first
    batch = next(layout for cls, layout in _RANKED_LAYERS if isinstance(module, cls))
    rank = batch.count(",") + 1
    if tuple(shape) != tuple(x.shape) or x.ndim <= rank:
        return
    extra = x.ndim - rank
    lead = tuple(x.shape[:extra])
    raise ShapeError(
        f"{what}: sample_input has shape {tuple(x.shape)}, but the net takes one batch "
        f"[B, ...] of {rank} dims: its first layer, {describe(module, path)}, takes {batch} "
        f"and only ran on the sample by broadcasting over the leading "
        f"{'axis' if extra == 1 else 'axes'} {lead}"
        + (f" (a time axis T={x.shape[0]}?)" if extra == 1 else "")
        + f". Pass one batch [B, ...] of shape {tuple(x.shape[extra:])}, e.g. "
        "sample_input[0] for one time step; the exported graph is single-step."
    )


def prepare(net: nn.Module, sample_input: Tensor, what: str) -> tuple[nn.Module, Tensor, Any]:
    """An eval-mode copy of ``net`` in single-step layout, the ``[B, ...]`` sample, its output.

    - ``net`` must be a module without stateful neurons (ConversionError otherwise).
    - Modules that a registered framework runs time-major (SpikingJelly step mode ``'m'``:
      :attr:`~snn_singlestep.core.registry.Framework.time_major`) take ``[T, B, ...]``: T
      must be 1 (ShapeError otherwise); the copy is switched to step mode ``'s'``
      (:attr:`~snn_singlestep.core.registry.Framework.set_step_mode`) and the sample loses
      its T axis.
    - A leading time axis of size 1 that the net removes itself (``[1, B, ...]`` given to a
      net that accepts ``[B, ...]`` too, e.g. through
      :func:`~snn_singlestep.core.functional.squeeze_time`) is dropped from the sample, so
      that axis 0 of the exported graph is the batch.
    - The net must run on the sample (ShapeError with the underlying message otherwise).
    - The first Linear/Conv layer that runs must not receive the sample unchanged with
      more dims than it takes (``[B, F]``, ``[B, C, H, W]``, …): ``nn.Linear`` broadcasts
      over a leading time axis ``[T, B, F]``, which would become the graph's batch axis
      (ShapeError).
    """
    if not isinstance(net, nn.Module):
        raise ConversionError(
            f"{what} expects a torch.nn.Module, got {type(net).__name__}; pass the network"
        )
    x = _check_sample(sample_input)
    check_stateless(net, what)
    work = _copy_net(net).eval()
    multi = _time_major(work)
    if multi:
        if x.shape[0] != 1:
            raise ShapeError(
                f"{what}: the net runs multi-step (time-major [T, B, ...], e.g. SpikingJelly "
                f"step mode 'm', in {', '.join(multi[:3])}{' …' if len(multi) > 3 else ''}) "
                f"and sample_input has T={x.shape[0]} time steps (shape {tuple(x.shape)}). "
                "The exported graph is single-step: pass one step, sample_input[:1] (T=1), "
                "or set step mode 's'."
            )
        _set_single_step(work)
        x = x[0]
        if x.ndim < 2:
            raise ShapeError(
                f"sample_input [T, B, ...] has no batch axis: {tuple(sample_input.shape)}"
            )
    out, first = _first_layer_input(work, x)
    _check_leading_axis(x, what, first)
    if x.shape[0] == 1 and x.ndim >= 3:
        # [1, B, ...]: a time axis the net squeezes itself, or a batch of one?
        try:
            inner = _run(work, x[0])
        except SingleStepError:
            inner = None
        if inner is not None and _same_structure(inner, out):
            x, out = x[0], inner
    return work, x, out


def check_out_path(path: PathLike, what: str) -> Path:
    """The output path as a Path, after checking that its directory takes a new file.

    Raises:
        ConfigError: ``path`` is a directory, its directory does not exist or is not a
            directory, or no file can be created there (the message gives the OS reason).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"{what}: path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what}: {str(path)!r} is a directory; give a file name")
    parent = path.parent
    if not parent.exists():
        raise ConfigError(
            f"{what}: cannot write {str(path)!r}: directory {str(parent)!r} does not exist"
        )
    if not parent.is_dir():
        raise ConfigError(f"{what}: cannot write {str(path)!r}: {str(parent)!r} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as err:
        raise ConfigError(
            f"{what}: cannot write {str(path)!r}: {err.strerror or err} (directory "
            f"{str(parent)!r} is not writable)"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def call_quietly(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with stdout silenced (torch.onnx prints progress lines)."""
    import io
    import warnings

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()
