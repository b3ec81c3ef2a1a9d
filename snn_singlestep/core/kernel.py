r"""The S² backward as one ahead-of-time compiled CPU kernel, built once and kept on disk.

The eager first-order backward of :class:`~.fused.S2Fire` (:func:`.surrogate._s2_backward_lean`)
runs about ten elementwise kernels; on the small tensors of a small net (16 k elements) each
costs more in dispatch than in arithmetic, and ``torch.compile`` adds ≈ 40 µs of guards and
wrappers per call, more than it saves there. This module compiles

.. math::

    \text{grad}_v = \text{grad} \cdot g'(v - \theta)

(:math:`g'` the S² surrogate, α, β and θ given as 0-d tensors) with AOTInductor
(``torch._inductor.aoti_compile_and_package``) into one C++ loop over flat float32 tensors of
any length, and calls it through the package's loader: one pass over memory and a few
microseconds of overhead. The build takes 20–40 s and needs a C++ compiler; it is done
once per machine and torch version, never implicitly:

    snn-singlestep build-kernel        # or, in Python: snn_singlestep.core.kernel.build_kernel()

and written atomically to :func:`kernel_path` (``$SNN_SINGLESTEP_KERNEL_DIR``, else
``$XDG_CACHE_HOME/snn_singlestep`` or ``~/.cache/snn_singlestep``). When the package is
there, every process loads it on the first S² backward (≈ 4 ms) and uses it, in
:class:`~.fused.S2Fire` (the neurons) and :class:`~.surrogate.S2Spike` (``s2_spike``,
``S2Surrogate``, e.g. as snnTorch's ``spike_grad``), for contiguous CPU float32 membranes
with one threshold (a number or 0-d tensor) and scalar α, β; everything else, no package,
double backward or ``set_fused_backward("off")`` keeps the eager path.
The compiled kernel evaluates the same expression as the eager one, to an ulp or two (the
compiler may fuse multiplications); the tests compare them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import platform
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from ..errors import ConfigError, SingleStepWarning
from . import surrogate

__all__ = ["build_kernel", "kernel_path", "loaded_kernel"]

_DTYPE = torch.float32


class _S2BackwardModule(torch.nn.Module):
    """``grad * g'(v - θ)`` on flat tensors; α, β, θ as 0-d tensors (the exported graph)."""

    def forward(self, grad: Tensor, v: Tensor, threshold: Tensor, alpha: Tensor,
                beta: Tensor) -> Tensor:
        return surrogate._s2_backward(grad, v - threshold, alpha, beta)


def _source_key() -> str:
    """A hash of what the kernel is compiled from: the formula, torch, the machine."""
    try:
        source = [inspect.getsource(f) for f in (
            surrogate._s2_backward, surrogate._s2_grad_opmath, surrogate._split, _S2BackwardModule)]
    except (OSError, TypeError):  # no source files (a zipped or frozen install)
        try:
            source = [f"snn_singlestep {importlib.metadata.version('snn_singlestep')}"]
        except importlib.metadata.PackageNotFoundError:
            source = ["snn_singlestep"]
    text = "\n".join([*source, torch.__version__, platform.machine(), platform.system(),
                      sys.version.split()[0]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kernel_path() -> Path:
    """Where the compiled package of this torch version and formula lives (it may not exist)."""
    root = os.environ.get("SNN_SINGLESTEP_KERNEL_DIR")
    if not root:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        root = os.path.join(cache, "snn_singlestep")
    return Path(root) / f"s2_backward-{_source_key()}.pt2"


def build_kernel(path: Optional[os.PathLike] = None, *, overwrite: bool = False) -> Path:
    """Compile the kernel and write it atomically to ``path`` (default :func:`kernel_path`).

    Returns the path. Does nothing if the file exists and ``overwrite`` is False. A process
    that has already looked for the kernel keeps what it found; new processes load it.

    Raises:
        ConfigError: the build failed (no C++ compiler, unsupported platform, …); the
            message carries torch's error.
    """
    path = Path(kernel_path() if path is None else path)
    if path.suffix != ".pt2":
        raise ConfigError(f"the kernel file must end in .pt2, got {str(path)!r}")
    if path.exists() and not overwrite:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    n = torch.export.Dim("n", min=2, max=sys.maxsize - 1)
    example = (torch.randn(64), torch.randn(64), *(torch.tensor(v) for v in (0.5, 4.0, 1.0)))
    build_dir = tempfile.mkdtemp(prefix=".build-", dir=path.parent)
    try:
        program = torch.export.export(
            _S2BackwardModule(), example, dynamic_shapes=({0: n}, {0: n}, {}, {}, {}))
        staged = os.path.join(build_dir, "kernel.pt2")
        with surrogate._quiet_cpp_extension():
            torch._inductor.aoti_compile_and_package(program, package_path=staged)
        os.replace(staged, path)
    except Exception as err:
        raise ConfigError(
            f"could not build the S2 backward kernel ({type(err).__name__}: {err}); the eager "
            "backward is used instead (it gives the same gradients, more slowly)"
        ) from err
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return path


class _Loaded:
    """The kernel of this process: not looked for yet (``looked`` False), absent, or loaded."""

    looked: bool = False
    run: Optional[Callable[[list], list]] = None


def loaded_kernel() -> Optional[Callable[[list], list]]:
    """The loader's ``run`` of the package at :func:`kernel_path`, or None if there is none.

    Looked for once per process; a package that cannot be loaded (corrupt, built for another
    machine) gives one warning and the eager path.
    """
    if not _Loaded.looked:
        _Loaded.looked = True
        try:
            path = kernel_path()
        except (OSError, RuntimeError, KeyError):  # no home directory to look in
            return None
        if path.exists():
            try:
                with surrogate._quiet_cpp_extension():
                    _Loaded.run = torch._inductor.aoti_load_package(str(path)).loader.run
            except Exception as err:  # corrupt or foreign package: stay correct, say so
                warnings.warn(
                    f"could not load the S2 backward kernel {path} ({type(err).__name__}: "
                    f"{err}); using the eager backward. Rebuild it with "
                    "`snn-singlestep build-kernel --overwrite`.",
                    SingleStepWarning, stacklevel=2,
                )
    return _Loaded.run


def _reset() -> None:
    """Forget what this process found (tests, or after :func:`build_kernel`)."""
    _Loaded.looked, _Loaded.run = False, None


def backward(grad: Tensor, v: Tensor, threshold: object, alpha: object,
             beta: object) -> Optional[Tensor]:
    """``grad * g'(v - threshold)`` through the compiled kernel, or None when it does not
    apply (no package; not CPU float32; fewer than 2 elements; shapes differ or not
    contiguous; a threshold, α or β with more than one element). Gradients for θ, α and β
    are the caller's business.

    Runs once per neuron per backward: checks are attribute reads, in the cheapest order."""
    run = _Loaded.run if _Loaded.looked else loaded_kernel()
    if run is None or v.dtype is not _DTYPE or grad.dtype is not _DTYPE or not v.is_cpu:
        return None
    if grad.shape != v.shape or v.numel() < 2 or not (v.is_contiguous() and grad.is_contiguous()):
        return None  # (the kernel was exported for lengths >= 2)
    theta, a, b = _as_scalar(threshold, v), _as_scalar(alpha, v), _as_scalar(beta, v)
    if theta is None or a is None or b is None:  # (not `None in [...]`: that calls Tensor.__eq__)
        return None
    (out,) = run([grad.view(-1), v.view(-1), theta, a, b])
    return out.view(v.shape)


def _as_scalar(value: object, like: Tensor) -> Optional[Tensor]:
    """``value`` as the kernel's 0-d float32 CPU input, or None if it has several elements."""
    if not isinstance(value, Tensor):
        return surrogate._constant(value, like)
    if value.dim() == 0 and value.dtype is _DTYPE and value.is_cpu:
        return value  # (grad mode is off in backward: nothing is recorded)
    if value.numel() != 1 or not value.is_cpu:
        return None
    return value.detach().reshape(()).to(_DTYPE)
