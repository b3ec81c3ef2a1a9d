r"""The reduced single-step surrogate gradient of S²NN (Suetake et al., 2023).

With :math:`x = v - \theta` (membrane potential minus threshold), the spike is the
Heaviside step and its gradient is replaced by the derivative :math:`g'` of a smooth
primitive :math:`g`:

.. math::

    s = H(x) = \begin{cases} 1, & x \ge 0 \\ 0, & x < 0 \end{cases}
    \qquad
    g'(x) = \begin{cases}
        \alpha\,\sigma(\alpha x)\,\bigl(1 - \sigma(\alpha x)\bigr), & x < 0 \\
        \dfrac{\beta}{1 + x}, & x \ge 0
    \end{cases}

.. math::

    g(x) = \begin{cases}
        \sigma(\alpha x), & x < 0 \\
        \beta \ln(1 + x) + \tfrac12, & x \ge 0
    \end{cases}

:math:`g` is continuous at 0 for every :math:`\alpha, \beta`; :math:`g'` is continuous
at 0 iff :math:`\alpha = 4\beta`. Published defaults: :math:`\alpha = 4, \beta = 1`.
``docs/theory.md`` derives the formula by reducing a multi-step surrogate to one step.

=================  ==========  =================================================
symbol             argument    meaning
=================  ==========  =================================================
:math:`\alpha`     ``alpha``   sharpness of the sigmoid branch (x < 0)
:math:`\beta`      ``beta``    height of the logarithmic tail (x ≥ 0)
=================  ==========  =================================================

When α or β are tensors that require grad (learnable surrogate), their gradients are
those of the primitive: :math:`\partial g/\partial\alpha = x\,\sigma'(\alpha x)` for
x < 0 and :math:`\partial g/\partial\beta = \ln(1+x)` for x ≥ 0.

Speed: the backward pass runs through the ahead-of-time compiled kernel of :mod:`.kernel`
when it has been built (the neurons' :class:`~.fused.S2Fire` and :class:`S2Spike`), else
through a
``torch.compile``-fused kernel for large tensors when a compiler is available (see
:func:`set_fused_backward`), and through an
eager formula otherwise: a lean one for the usual first-order backward (``ge`` into a
float tensor, ``sigmoid_backward`` and ``lerp`` instead of bool masks and ``where``, which
are the slow CPU kernels; bitwise the same numbers), and the ``where``-based one, whose autograd
is NaN-safe, for double backward. The compiled kernel evaluates the same expression, to
an ulp or two (the compiler may fuse the multiplications).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
import warnings
from typing import Callable, Iterator, Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError, SingleStepWarning
from .validate import flag, loaded_finite, positive_number, tensor

__all__ = [
    "heaviside",
    "s2_grad",
    "s2_primitive",
    "s2_spike",
    "S2Spike",
    "S2Surrogate",
    "s2nn",
    "set_fused_backward",
    "get_fused_backward",
]

Scalar = Union[float, Tensor]

_HALF_TYPES = (torch.float16, torch.bfloat16)

#: Largest α and β accepted: the peak gradient α/4 (β at 0) stays far inside float16's range
#: (65504); an α near float32's limit turns into inf and the gradient into NaN.
MAX_SHAPE = 1e4
#: Smallest learnable α and β (their logs are clamped to [log MIN_SHAPE, log MAX_SHAPE]).
MIN_SHAPE = 1e-4
_LOG_SHAPE_RANGE = (math.log(MIN_SHAPE), math.log(MAX_SHAPE))


def _opmath(x: Tensor) -> Tensor:
    """Half-precision tensors are evaluated in float32 (like PyTorch's own kernels)."""
    return x.float() if x.dtype in _HALF_TYPES else x


def heaviside(x: Tensor) -> Tensor:
    r"""Heaviside step :math:`H(x)` with :math:`H(0) = 1`, in the dtype of ``x``.

    Examples:
        >>> heaviside(torch.tensor([-0.5, 0.0, 2.0]))
        tensor([0., 1., 1.])
    """
    if not isinstance(x, Tensor) or x.is_complex():
        tensor("x", x, real=True)
    return (x >= 0).to(x.dtype)


def _split(x: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` restricted to each half-line (0 elsewhere).

    Each branch only sees the half-line it is used on, so neither overflows nor divides
    by zero (the tail never sees x <= -1, the sigmoid never sees x > 0), and autograd
    through the unused branch is exactly 0, never NaN. ``where`` rather than ``clamp``
    keeps the derivative of the used branch at x = 0 (clamp's is 0 at its bound).
    """
    return torch.where(x < 0, x, 0.0), torch.where(x >= 0, x, 0.0)


def _s2_grad_opmath(x: Tensor, alpha: Scalar, beta: Scalar) -> Tensor:
    below, above = _split(x)
    s = torch.sigmoid(alpha * below)
    return torch.where(x < 0, alpha * (1 - s) * s, beta / (1 + above))


def _check_args(x: object, alpha: object, beta: object) -> None:
    """Refuse a non-float ``x`` and an α or β that is not a finite number > 0 (or a
    one-element float tensor, e.g. a learnable parameter). Metadata only: no device sync."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        if isinstance(x, torch.fx.Proxy):  # symbolic tracing (torch.fx): no values to check
            return
        tensor("x", x, floating=True)
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, Tensor):
            if not value.is_floating_point() or value.numel() != 1:
                raise ConfigError(
                    f"{name} must be a number > 0 or a one-element float tensor, got a tensor "
                    f"of dtype {value.dtype} and shape {tuple(value.shape)}"
                )
        elif not (type(value) is float and 0.0 < value <= MAX_SHAPE):
            positive_number(name, value, maximum=MAX_SHAPE)


def s2_grad(x: Tensor, alpha: Scalar = 4.0, beta: Scalar = 1.0) -> Tensor:
    r"""The surrogate derivative :math:`g'(x)` of the module docstring, elementwise.

    Examples:
        >>> s2_grad(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([0.0707, 1.0000, 0.5000])
    """
    _check_args(x, alpha, beta)
    return _s2_grad_opmath(_opmath(x), alpha, beta).to(x.dtype)


def s2_primitive(x: Tensor, alpha: Scalar = 4.0, beta: Scalar = 1.0) -> Tensor:
    r"""The smooth primitive :math:`g(x)`; differentiable by autograd (in x, α and β).

    Examples:
        >>> s2_primitive(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([0.0180, 0.5000, 1.1931])
    """
    _check_args(x, alpha, beta)
    xf = _opmath(x)
    below, above = _split(xf)
    return torch.where(xf < 0, torch.sigmoid(alpha * below), beta * torch.log1p(above) + 0.5).to(
        x.dtype
    )


def _s2_backward(grad_out: Tensor, x: Tensor, alpha: Scalar, beta: Scalar) -> Tensor:
    """``grad_out * g'(x)``: the expression both the eager and the fused path evaluate."""
    return (_opmath(grad_out) * _s2_grad_opmath(_opmath(x), alpha, beta)).to(x.dtype)


def _s2_backward_lean(grad_out: Tensor, x: Tensor, alpha: Scalar, beta: Scalar) -> Tensor:
    r"""``grad_out * g'(x)`` without a graph: the same arithmetic, fewer and faster kernels.

    .. math::

        g'(x) = \operatorname{lerp}\bigl(\alpha s (1 - s),\ \beta / (1 + x_+),\ H(x)\bigr),
        \quad s = \sigma(\alpha x),\ x_+ = \max(x, 0)

    Each branch is evaluated as in :func:`_s2_backward` (same operations in the same
    order); on its own half-line it sees the same numbers, and elsewhere it stays finite
    (:math:`\sigma` saturates to 1 without overflow, :math:`1 + x_+ \ge 1`), so ``lerp``
    with a weight of exactly 0 or 1 returns one of its ends unchanged and the result equals
    the ``where``-based formula bit for bit (for every non-NaN ``x``; a NaN ``x`` gives NaN
    here, ``grad_out·β`` there). Comparisons to a bool mask and ``where`` are the slow CPU
    kernels (≈ 10× an ``add``); ``clamp_min``, ``ge(out=float)`` and ``lerp`` are not, and
    a 0-d tensor operand is cheaper than a Python number (:func:`_constant`). Only for the
    first-order backward: ``clamp`` has no derivative at its bound, so the double backward
    keeps :func:`_s2_backward`.
    """
    xf, gf = _opmath(x), _opmath(grad_out)
    a = alpha if isinstance(alpha, Tensor) else _constant(alpha, xf)
    # in place where a fresh tensor is being built; each product keeps its operand order up
    # to commutativity (exact): ``sigmoid_backward(a, s)`` is ``a * (1 - s) * s`` in one
    # kernel; for a float β, ``beta / y`` is ``y.reciprocal() * beta`` in torch
    # (``Tensor.__rdiv__``), and the product with 1.0 is exact
    s = torch.mul(xf, a).sigmoid_()
    below = torch.ops.aten.sigmoid_backward(a, s)
    above = xf.clamp_min(0).add_(_constant(1.0, xf))
    if isinstance(beta, Tensor):
        above = beta / above
    else:
        above = above.reciprocal_() if beta == 1.0 else above.reciprocal_().mul_(
            _constant(beta, xf))
    step = torch.ge(xf, _constant(0.0, xf), out=torch.empty_like(xf))
    out = below.lerp_(above, step).mul_(gf)
    return out if out.dtype == x.dtype else out.to(x.dtype)


@functools.lru_cache(maxsize=256)
def _constant_on(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.tensor(value, dtype=dtype, device=device)


def _constant(value: float, like: Tensor) -> Tensor:
    """``value`` as a cached 0-d tensor of ``like``'s dtype and device, never written to.

    On the CPU an elementwise kernel takes a 0-d tensor operand about 1.5 µs faster than a
    Python number (which torch wraps into a tensor on every call), a visible share of a
    16 k-element op. The value is the one torch would use for the number (rounded to the
    dtype of the computation), so results are bitwise the same.
    """
    return _constant_on(float(value), like.dtype, like.device)


# --- fused backward -------------------------------------------------------------------

_FUSED_MODES = ("auto", "on", "off")
_FUSED_MIN_NUMEL = 1 << 15  # below this, eager kernels are as fast as the fused one


def _fused_mode_from_env() -> str:
    raw = os.environ.get("SNN_SINGLESTEP_FUSED", "auto").strip().lower()
    return {"1": "on", "true": "on", "0": "off", "false": "off"}.get(raw, raw)


class _Fused:
    """The lazily compiled backward kernel and the switch that selects it."""

    mode: str = "auto"
    kernel: Callable | None = None
    broken: bool = False


def set_fused_backward(mode: str) -> str:
    """Choose how the S² backward is computed; returns the previous mode.

    Args:
        mode: ``"auto"`` (default: fused kernel for tensors of ≥ 32768 elements, when
            ``torch.compile`` works here), ``"on"`` (fused for every size) or ``"off"``
            (eager only). In ``"auto"`` and ``"on"`` the neurons' backward also uses the
            ahead-of-time compiled kernel of :mod:`.kernel` when it has been built; ``"off"``
            does not. The environment variable ``SNN_SINGLESTEP_FUSED`` sets the
            initial mode (``auto``/``on``/``off``/``1``/``0``).

    Raises:
        ConfigError: for any other value.

    Examples:
        >>> previous = set_fused_backward("off")
        >>> _ = set_fused_backward(previous)
    """
    if mode not in _FUSED_MODES:
        raise ConfigError(f"fused backward mode must be one of {_FUSED_MODES}, got {mode!r}")
    previous, _Fused.mode = _Fused.mode, mode
    return previous


def get_fused_backward() -> str:
    """The current mode set by :func:`set_fused_backward`."""
    return _Fused.mode


def _kernel_allowed() -> bool:
    """Whether a compiled kernel may replace the eager first-order backward now."""
    if _Fused.mode == "off" or torch.compiler.is_compiling():
        return False
    return not torch.is_grad_enabled()  # double backward: keep the differentiable eager graph


def _kernel_backward(
    grad_out: Tensor, v: Tensor, threshold: object, alpha: Scalar, beta: Scalar
) -> Tensor | None:
    """``grad_out * g'(v - threshold)`` through the compiled kernel of :mod:`.kernel`, or None
    when it is not built, does not apply to these tensors, or may not be used now
    (:func:`_kernel_allowed`); the callers fall back to :func:`_backward_x`."""
    if not _kernel_allowed():
        return None
    from . import kernel  # (it imports this module)

    return kernel.backward(grad_out, v, threshold, alpha, beta)


def _use_fused(x: Tensor) -> bool:
    if _Fused.broken or not _kernel_allowed():
        return False
    return _Fused.mode == "on" or x.numel() >= _FUSED_MIN_NUMEL


@contextlib.contextmanager
def _quiet_cpp_extension() -> Iterator[None]:
    """Silence torch's CUDA_HOME guess, which torch.utils.cpp_extension logs when inductor
    builds or loads a kernel on a machine with a CUDA toolkit and no GPU: noise (with a
    machine path) in every user's output, about nothing they use. The message comes once, when
    that module is imported; afterwards this is a dictionary look-up."""
    if "torch.utils.cpp_extension" in sys.modules:
        yield
        return
    logger = logging.getLogger("torch.utils.cpp_extension")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _backward_x(grad_out: Tensor, x: Tensor, alpha: Scalar, beta: Scalar) -> Tensor:
    if _use_fused(x):
        if _Fused.kernel is None:
            _Fused.kernel = torch.compile(_s2_backward, dynamic=True, fullgraph=True)
        try:
            with _quiet_cpp_extension():
                return _Fused.kernel(grad_out, x, alpha, beta)
        except Exception as err:  # no compiler, unsupported device, …: stay correct
            _Fused.broken = True
            warnings.warn(
                f"torch.compile could not build the fused S2 backward ({type(err).__name__}: "
                f"{err}); using the eager backward from now on. Set SNN_SINGLESTEP_FUSED=off "
                "to silence this.",
                SingleStepWarning,
                stacklevel=3,
            )
    if torch.is_grad_enabled():  # double backward: autograd of the where-based formula
        return _s2_backward(grad_out, x, alpha, beta)
    return _s2_backward_lean(grad_out, x, alpha, beta)


if _fused_mode_from_env() in _FUSED_MODES:
    _Fused.mode = _fused_mode_from_env()


# --- autograd Function ----------------------------------------------------------------


class S2Spike(torch.autograd.Function):
    r"""Heaviside forward, S² surrogate backward. Use :func:`s2_spike` to call it.

    ``forward(x, alpha, beta)`` where α, β are floats or tensors; gradients flow to
    α and β when they are tensors that require grad. Double backward is exact
    (autograd of the eager backward formula).
    """

    @staticmethod
    def forward(x: Tensor, alpha: Scalar, beta: Scalar) -> Tensor:
        _check_args(x, alpha, beta)
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return heaviside(x)
        # heaviside(x) in one kernel: the comparison written straight into a float tensor
        return torch.ge(x, 0, out=torch.empty_like(x))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, alpha, beta = inputs
        ctx.alpha_is_tensor = isinstance(alpha, Tensor)
        ctx.beta_is_tensor = isinstance(beta, Tensor)
        ctx.alpha = None if ctx.alpha_is_tensor else alpha
        ctx.beta = None if ctx.beta_is_tensor else beta
        saved = [x]
        if ctx.alpha_is_tensor:
            saved.append(alpha)
        if ctx.beta_is_tensor:
            saved.append(beta)
        ctx.save_for_backward(*saved)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        saved = list(ctx.saved_tensors)
        x = saved.pop(0)
        alpha = saved.pop(0) if ctx.alpha_is_tensor else ctx.alpha
        beta = saved.pop(0) if ctx.beta_is_tensor else ctx.beta
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _kernel_backward(grad_out, x, 0.0, alpha, beta)  # x - 0 is x, bit for bit
            if grad_x is None:
                grad_x = _backward_x(grad_out, x, alpha, beta)
        grad_alpha, grad_beta = _s2_param_grads(
            grad_out, x, alpha, beta, ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        )
        return grad_x, grad_alpha, grad_beta


def _s2_param_grads(
    grad_out: Tensor, x: Tensor, alpha: Scalar, beta: Scalar, need_alpha: bool, need_beta: bool
) -> tuple[Tensor | None, Tensor | None]:
    r"""Gradients for tensor α and β: :math:`\sum \text{grad}\cdot x\,\sigma'(\alpha x)`
    over x < 0 and :math:`\sum \text{grad}\cdot\ln(1 + x)` over x ≥ 0 (module doc)."""
    grad_alpha = grad_beta = None
    if need_alpha or need_beta:
        xf, gf = _opmath(x), _opmath(grad_out)
        below = xf < 0
        x_below, x_above = _split(xf)
        if need_alpha:
            s = torch.sigmoid(alpha * x_below)
            d_alpha = torch.where(below, x_below * s * (1 - s), 0.0)
            grad_alpha = (gf * d_alpha).sum_to_size(alpha.shape).to(alpha.dtype)
        if need_beta:
            d_beta = torch.where(below, 0.0, torch.log1p(x_above))
            grad_beta = (gf * d_beta).sum_to_size(beta.shape).to(beta.dtype)
    return grad_alpha, grad_beta


def s2_spike(x: Tensor, alpha: Scalar = 4.0, beta: Scalar = 1.0) -> Tensor:
    r"""Spikes :math:`H(x)` whose gradient is the S² surrogate :math:`g'(x)`.

    Examples:
        >>> x = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
        >>> s = s2_spike(x)
        >>> s
        tensor([0., 1., 1.], grad_fn=<S2SpikeBackward>)
        >>> s.sum().backward()
        >>> x.grad
        tensor([0.0707, 1.0000, 0.5000])
    """
    return S2Spike.apply(x, alpha, beta)


class S2Surrogate(nn.Module):
    r"""The S² surrogate as a picklable callable module (forward: :func:`s2_spike`).

    Pass it wherever a framework expects a surrogate: snnTorch's ``spike_grad=``,
    SpikingJelly's ``surrogate_function=`` (see also
    :class:`snn_singlestep.spikingjelly.ReducedS2`), or call it on ``v - threshold``.

    Args:
        alpha: sharpness α > 0 of the sigmoid branch (x < 0).
        beta: height β > 0 of the ``β/(1+x)`` tail (x ≥ 0).
        spiking: if False, the forward returns the smooth primitive :math:`g(x)`
            (SpikingJelly's ``spiking=False`` convention).
        learnable: if True, α and β become parameters, stored as ``log_alpha`` and
            ``log_beta``; the forward pass uses
            :math:`\alpha = \exp(\mathrm{clamp}(\log\alpha, \log 10^{-4}, \log 10^{4}))`
            (same for β), so they stay in :math:`[10^{-4}, 10^4]` whatever an optimiser
            step does to the logs (gradient 0 beyond a bound). Needs α, β in that range.

    Raises:
        ConfigError: α or β not a real number in (0, :data:`MAX_SHAPE`] (the message names
            which).

    Examples:
        >>> sg = S2Surrogate(alpha=4.0, beta=1.0)
        >>> sg
        S2Surrogate(alpha=4.0, beta=1.0)
        >>> sg(torch.tensor([-0.2, 0.3]))
        tensor([0., 1.])
    """

    def __init__(
        self,
        alpha: float = 4.0,
        beta: float = 1.0,
        *,
        spiking: bool = True,
        learnable: bool = False,
    ) -> None:
        alpha = positive_number("alpha", alpha, maximum=MAX_SHAPE)
        beta = positive_number("beta", beta, maximum=MAX_SHAPE)
        learnable = flag("learnable", learnable)
        for name, value in (("alpha", alpha), ("beta", beta)):
            if learnable and value < MIN_SHAPE:
                raise ConfigError(
                    f"a learnable {name} must be >= {MIN_SHAPE:g} (its log is clamped to "
                    f"[log {MIN_SHAPE:g}, log {MAX_SHAPE:g}]), got {value!r}"
                )
        super().__init__()
        self.spiking = flag("spiking", spiking)
        self.learnable = learnable
        if learnable:
            self.log_alpha = nn.Parameter(torch.tensor(alpha).log())
            self.log_beta = nn.Parameter(torch.tensor(beta).log())
        else:
            self._alpha, self._beta = alpha, beta

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        loaded_finite(state_dict, prefix, "log_alpha", "log_beta")  # exp(NaN) is NaN
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def alpha(self) -> Scalar:
        """α: a float, or a 0-d tensor carrying gradient when learnable."""
        return self.log_alpha.clamp(*_LOG_SHAPE_RANGE).exp() if self.learnable else self._alpha

    @property
    def beta(self) -> Scalar:
        """β: a float, or a 0-d tensor carrying gradient when learnable."""
        return self.log_beta.clamp(*_LOG_SHAPE_RANGE).exp() if self.learnable else self._beta

    def forward(self, x: Tensor) -> Tensor:
        if self.spiking:
            return S2Spike.apply(x, self.alpha, self.beta)
        return s2_primitive(x, self.alpha, self.beta)

    def extra_repr(self) -> str:
        alpha, beta = (round(float(torch.as_tensor(v).detach()), 6) for v in (self.alpha, self.beta))
        parts = [f"alpha={alpha!r}", f"beta={beta!r}"]
        if not self.spiking:
            parts.append("spiking=False")
        if self.learnable:
            parts.append("learnable=True")
        return ", ".join(parts)


def s2nn(alpha: float = 4.0, beta: float = 1.0, *, learnable: bool = False) -> S2Surrogate:
    r"""Factory named like snnTorch's surrogates: ``spike_grad=s2nn()``.

    Unlike snnTorch's factories it returns a module, not a closure, so nets using it can
    be pickled (``torch.save(model)``) and deep-copied.

    Examples:
        >>> import snntorch as snn
        >>> lif = snn.Leaky(beta=0.9, spike_grad=s2nn(alpha=4.0, beta=1.0))
    """
    return S2Surrogate(alpha, beta, learnable=learnable)
