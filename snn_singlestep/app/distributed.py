"""Multi-process training on ``torch.distributed`` (what ``torchrun`` starts).

``torchrun --nproc_per_node=N -m snn_singlestep train …`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` for each process;
:func:`setup` reads them, joins the process group (``nccl`` on CUDA, ``gloo`` on CPU)
and picks the process's device. Without those variables everything runs in one
process and nothing here touches ``torch.distributed``.

The training loop then wraps the model in ``DistributedDataParallel``, shards every
epoch with a ``DistributedSampler`` and lets only rank 0 log and write files.
BatchNorm and PSP-normalization statistics are synchronised over all processes
(:func:`sync_batchnorm`: ``nn.BatchNorm*d`` → :class:`GlooSyncBatchNorm` or
``nn.SyncBatchNorm``, :class:`~snn_singlestep.core.psp.PSPNorm` → :class:`SyncPSPNorm`), so
N processes with a global batch B train the same net as one process with batch B.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..core.psp import PSPNorm, PSPNorm1d, PSPNorm2d
from ..errors import ConfigError

__all__ = [
    "DistContext",
    "GlooSyncBatchNorm",
    "SyncPSPNorm",
    "all_reduce_sum",
    "barrier",
    "resolve_device",
    "setup",
    "sync_batchnorm",
    "sync_psp_norm",
    "teardown",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, on ``device``.

    Examples:
        >>> ctx = DistContext()
        >>> ctx.is_main, ctx.distributed, ctx.device
        (True, False, device(type='cpu'))
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True if :func:`setup` initialised the process group

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:<local_rank>`` if CUDA is available, else ``cpu``; otherwise ``name``.

    Raises:
        ConfigError: unknown device string, or CUDA asked for but not available.

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    elif name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"device must be auto, cpu, cuda or cuda:N (or another torch device), got {name!r}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {text!r}") from None


def setup(device: str = "auto") -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    With ``WORLD_SIZE`` unset or 1 this only resolves ``device``. Otherwise it calls
    ``init_process_group`` (``nccl`` for CUDA devices, ``gloo`` for CPU) unless a group
    is already initialised, and binds the process to ``cuda:LOCAL_RANK`` on GPUs.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    resolved = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(0, 1, 0, resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, resolved, owns_group)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` joined it (a caller's group is kept)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op for one process)."""
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def all_reduce_sum(values: Tensor, ctx: DistContext) -> Tensor:
    """Sum ``values`` over all processes (returns them unchanged for one process)."""
    if ctx.distributed:
        values = values.to(ctx.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of every process's input is the summed gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def _all_reduce(x: Tensor) -> Tensor:
    return _AllReduceSum.apply(x)


class GlooSyncBatchNorm(_BatchNorm):
    r"""BatchNorm whose training statistics are taken over the batches of all processes.

    ``torch.nn.SyncBatchNorm`` runs on GPUs only; this one uses differentiable
    all-reduces (sum forward, sum of the gradients backward), so it works with ``gloo``
    on CPU too. Mean and biased variance are computed in two passes over the
    global batch, exactly as one process would see it; the backward pass carries the
    gradient through the statistics of every process. Outside training, or without an
    initialised process group, it is a plain BatchNorm. Parameters, buffers and
    ``state_dict`` keys are those of ``nn.BatchNorm1d/2d/3d``.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and _group_is_distributed()):
            return super().forward(x)
        all_reduce = _all_reduce
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        local_count = x.numel() // x.shape[1]
        count = all_reduce(torch.tensor([float(local_count)], device=x.device, dtype=x.dtype))
        mean = all_reduce(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = all_reduce(centred.square().sum(dims)) / count
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum
                )
                n = float(count)
                unbiased = var * (n / max(n - 1.0, 1.0))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), momentum)
        return y


def _group_is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class SyncPSPNorm(PSPNorm):
    r"""PSP normalization whose training statistic is taken over the batches of all processes.

    :math:`\mathbb{E}[p_c^2]` is the sum of :math:`p_c^2` over the batch and spatial axes
    of every process divided by the total count: one differentiable all-reduce of the
    per-channel sums and the local count (sum forward, sum of the gradients backward, as
    in ``nn.SyncBatchNorm``), so the gradient flows through the shared statistic to the
    inputs of every process, and N processes with batch b compute what one process
    computes with batch N·b. The running estimate is updated with the shared statistic,
    so it stays the same on every process.

    Outside training, or without an initialised process group of more than one process,
    it is the plain :class:`~snn_singlestep.core.psp.PSPNorm` (eval never communicates:
    processes may evaluate different numbers of batches). Made by :func:`sync_psp_norm`
    from a ``PSPNorm``/``PSPNorm1d``/``PSPNorm2d``, whose accepted input ranks it keeps;
    parameters, buffers and ``state_dict`` keys are those of ``PSPNorm``.

    Examples:
        >>> norm = SyncPSPNorm(3)  # no process group: a plain PSPNorm
        >>> y = norm(torch.full((4, 3, 2, 2), 5.0))
        >>> torch.allclose(y, torch.ones_like(y), atol=1e-5)
        True
    """

    def forward(self, p: Tensor) -> Tensor:
        if not (self.training and _group_is_distributed()):
            return super().forward(p)
        self._check_input(p)
        pf = p.float() if p.dtype in (torch.float16, torch.bfloat16) else p
        reduce_dims = [d for d in range(p.ndim) if d != 1]
        local_count = torch.tensor([p.numel() // p.shape[1]], dtype=pf.dtype, device=pf.device)
        # One all-reduce: per-channel sums of p² and, in the last slot, the sample count.
        totals = _all_reduce(torch.cat([pf.square().sum(dim=reduce_dims), local_count]))
        sq_mean = totals[:-1] / totals[-1]
        if self.track_running_stats:
            self._update_running(sq_mean.detach())
        scale = torch.rsqrt(sq_mean + self.eps)
        shape = [1, -1] + [1] * (p.ndim - 2)
        if self.affine:
            scale = scale * self.weight.to(pf.dtype)
            out = pf * scale.view(shape) + self.bias.to(pf.dtype).view(shape)
        else:
            out = pf * scale.view(shape)
        return out.to(p.dtype)


def sync_psp_norm(module: nn.Module) -> nn.Module:
    """Make every PSP normalization of ``module`` synchronise its statistic across processes.

    Each ``PSPNorm``, ``PSPNorm1d`` and ``PSPNorm2d`` (exact types) becomes a
    :class:`SyncPSPNorm` sharing its parameters and buffers, so ``state_dict`` keys and
    values are unchanged; it works with ``gloo`` and ``nccl``. Returns the converted module
    (the root itself may be replaced). :func:`sync_batchnorm` calls it.

    Examples:
        >>> from snn_singlestep.core.psp import PSPNorm2d
        >>> net = sync_psp_norm(nn.Sequential(nn.Conv2d(1, 2, 1), PSPNorm2d(2)))
        >>> type(net[1]).__name__, sorted(net.state_dict())
        ('SyncPSPNorm', ['0.bias', '0.weight', '1.bias', '1.num_batches_tracked', '1.running_sq_mean', '1.weight'])
    """
    return _replace_exact(module, (PSPNorm, PSPNorm1d, PSPNorm2d), _sync_psp)


def _sync_psp(module: PSPNorm) -> "SyncPSPNorm":
    new = SyncPSPNorm(
        module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
    )
    new._ndims, new._layout = module._ndims, module._layout  # the input shapes it accepts
    return new


def _replace_exact(
    module: nn.Module, types: tuple[type, ...], make: Callable[[nn.Module], nn.Module]
) -> nn.Module:
    """Replace every submodule whose exact type is in ``types`` by ``make(submodule)``.

    The replacement shares the original's parameters and buffers (same objects), so
    ``state_dict`` keys and values are unchanged. Exact types only: subclasses (e.g.
    SpikingJelly's multi-step layers) behave differently. Returns the (maybe new) root.
    """
    if type(module) in types:
        new = make(module)
        new._parameters.update(module._parameters)
        new._buffers.update(module._buffers)
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new_child = _replace_exact(child, types, make)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


def sync_batchnorm(module: nn.Module, device: Optional[torch.device] = None) -> nn.Module:
    """Make every BatchNorm and PSPNorm of ``module`` synchronise its statistics across processes.

    On CUDA BatchNorm is converted with ``nn.SyncBatchNorm.convert_sync_batchnorm``;
    elsewhere each ``nn.BatchNorm*d`` becomes a :class:`GlooSyncBatchNorm` sharing its
    parameters and buffers, so ``state_dict`` keys and values are unchanged. PSP
    normalizations become :class:`SyncPSPNorm` (:func:`sync_psp_norm`) on every device.
    Returns the converted module (the root itself may be replaced).

    Examples:
        >>> net = sync_batchnorm(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)))
        >>> type(net[1]).__name__, sorted(net.state_dict())[:2]
        ('GlooSyncBatchNorm', ['0.bias', '0.weight'])
    """
    module = sync_psp_norm(module)
    if device is not None and torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _sync_batchnorm_cpu(module)


def _sync_batchnorm_cpu(module: nn.Module) -> nn.Module:
    def make(bn: nn.Module) -> nn.Module:
        return GlooSyncBatchNorm(
            bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats
        )

    return _replace_exact(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), make)

