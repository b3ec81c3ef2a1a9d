r"""Fast paths of the single-step neuron: threshold and S² surrogate in one autograd node.

The neuron modules (:class:`~snn_singlestep.core.modules.S2Cell`, ``S2Neuron``,
``S2Node``) fire through :func:`fire`, which computes exactly what
``spike_fn(v - threshold)`` computes,

.. math::

    s = H(v - \theta), \qquad
    \frac{\partial s}{\partial v} = g'(v - \theta), \qquad
    \frac{\partial s}{\partial \theta} = -g'(v - \theta)

(:math:`H(0) = 1`, :math:`g'` the S² surrogate of :mod:`.surrogate`), with fewer passes
over memory and less per-call overhead:

- **no graph needed** (``torch.no_grad()``, or nothing requires grad): the spikes are one
  comparison written straight into a float tensor, ``ge(v, θ, out=…)``. No autograd
  Function, no surrogate module call.
- **S² surrogate, graph needed**: one autograd node, :class:`S2Fire`, whose forward is
  that same comparison and which saves the membrane ``v`` (not a new ``v − θ`` tensor;
  when ``v`` is a BatchNorm's output, not even ``v``: :func:`set_norm_recompute`); its
  backward recomputes ``x = v − θ`` and evaluates :math:`g'(x)` with the backward of
  :mod:`.surrogate` (fused kernel for large tensors, lean eager formula otherwise).
- **any other spike function**: ``spike_fn(v - threshold)``, as before.

Inside :func:`~snn_singlestep.core.bitpack.spike_bits`, the spikes made here are also
registered so that the layers after the neuron save them as bits.

All three give the same spikes and the same gradients, bit for bit, as
``spike_fn(v - threshold)`` with the S² surrogate: for a finite :math:`\theta` and any
:math:`v` (±inf included), :math:`\mathrm{fl}(v - \theta) \ge 0 \iff v \ge \theta` in
IEEE arithmetic with gradual underflow (the rounded difference of two floats is zero only
when they are equal, and keeps its sign), and the comparison happens in the dtype in which
the difference would be computed (``torch.result_type(v, θ)``). A NaN membrane does not
fire on either path. The backward evaluates the same ``v − θ`` (same op, same dtypes) and
the gradient for θ is ``-g'``, reduced to θ's shape and dtype by autograd exactly as the
subtraction's backward would.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError
from . import bitpack
from .surrogate import (
    S2Spike,
    S2Surrogate,
    Scalar,
    _backward_x,
    _kernel_backward,
    _s2_param_grads,
    heaviside,
    s2_spike,
)
from .validate import choice, tensor

__all__ = [
    "S2Fire",
    "check_float_input",
    "fire",
    "norm_terms",
    "s2_params",
    "set_norm_recompute",
    "spike_step",
]

Threshold = Union[float, Tensor]


def check_float_input(x: object, name: str = "input") -> Tensor:
    """Refuse an input that is not a real floating-point tensor (bool, int, complex, …).

    Two attribute reads on the hot path. The message names ``name`` and the dtype, e.g.
    ``S2Cell input must be a real floating-point tensor, got dtype torch.int64``.

    Raises:
        ConfigError: ``x`` is not a tensor, or not of a real floating-point dtype.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        if isinstance(x, torch.fx.Proxy):  # symbolic tracing: no values to check
            return x
        tensor(name, x)
        raise ConfigError(
            f"{name} must be a real floating-point tensor, got dtype {x.dtype}; convert it "
            "with .float()"
        )
    return x


def s2_params(spike_fn: object) -> Optional[tuple[Scalar, Scalar]]:
    """``(alpha, beta)`` when ``spike_fn`` is the S² surrogate in spiking mode, else None.

    Recognised: :func:`~.surrogate.s2_spike` (α=4, β=1) and an :class:`~.surrogate.S2Surrogate`
    instance of exactly that class with ``spiking=True`` (a subclass may override the
    forward, so it keeps the generic path). Framework glue recognises its own wrappers
    (e.g. SpikingJelly's ``ReducedS2``) and passes the parameters to :func:`fire`.
    """
    if type(spike_fn) is S2Surrogate:
        return (spike_fn.alpha, spike_fn.beta) if spike_fn.spiking else None
    if spike_fn is s2_spike:
        return 4.0, 1.0
    return None


def spike_step(v: Tensor, threshold: Threshold) -> Tensor:
    r""":math:`H(v - \theta)` as one comparison, in ``result_type(v, threshold)``.

    Equal, bit for bit, to ``heaviside(v - threshold)`` for a finite threshold (see the
    module docstring).

    Examples:
        >>> spike_step(torch.tensor([0.5, 1.0, 2.0]), 1.0)
        tensor([0., 1., 1.])
    """
    dtype = torch.result_type(v, threshold)
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return (v >= threshold).to(dtype)  # out= is for eager mode
    if isinstance(threshold, Tensor) and threshold.dim() > 0:
        shape = torch.broadcast_shapes(v.shape, threshold.shape)
        if shape != v.shape:
            out = torch.empty(shape, dtype=dtype, device=v.device)
            return torch.ge(v, threshold, out=out)
    # empty_like is the cheapest allocation (≈ 1 µs less than empty(shape, …) per call)
    out = torch.empty_like(v) if dtype == v.dtype else torch.empty_like(v, dtype=dtype)
    return torch.ge(v, threshold, out=out)


def _heaviside_forward(spike_fn: object) -> bool:
    """True for the spike functions whose forward is exactly ``heaviside`` (ours)."""
    if type(spike_fn) is S2Surrogate:
        return spike_fn.spiking
    return spike_fn is s2_spike or spike_fn is heaviside


def _functorch_active() -> bool:
    """True inside torch.func transforms (grad, vmap, …), which need setup_context Functions."""
    check = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(check()) if check is not None else False


def _needs_graph(v: Tensor, threshold: Threshold, params: tuple) -> bool:
    if not torch.is_grad_enabled():
        return False
    if v.requires_grad or (isinstance(threshold, Tensor) and threshold.requires_grad):
        return True
    return any(isinstance(p, Tensor) and p.requires_grad for p in params)


class S2Fire(torch.autograd.Function):
    r"""``forward(v, threshold, alpha, beta)``: spikes :math:`H(v - \theta)` with the S²
    surrogate gradient for ``v``, ``threshold``, α and β (equations in the module doc).

    Saves ``v`` (and the tensors among θ, α, β); the backward recomputes ``v − θ``. When
    ``v`` is the output of a BatchNorm in training mode, it saves nothing of ``v``: the
    backward recomputes it from what the BatchNorm saves anyway (see
    :func:`set_norm_recompute`). Double backward is exact (autograd of the eager surrogate
    backward) when ``v`` is saved.
    """

    # ctx-in-forward style on purpose: with a separate setup_context, torch binds the
    # arguments through inspect.signature on every call (≈ 30 µs, more than the kernel on
    # small tensors). Under torch.func transforms, fire() takes the S2Spike path instead.
    @staticmethod
    def forward(ctx, v: Tensor, threshold: Threshold, alpha: Scalar, beta: Scalar) -> Tensor:
        # (spelled out, not looped: this runs once per neuron per step)
        kinds = isinstance(threshold, Tensor), isinstance(alpha, Tensor), isinstance(beta, Tensor)
        ctx.kinds = kinds
        ctx.scalars = (None if kinds[0] else threshold, None if kinds[1] else alpha,
                       None if kinds[2] else beta)
        tensors = [a for is_t, a in zip(kinds, (threshold, alpha, beta)) if is_t]
        terms = norm_terms(v) if _recompute_wanted(v) else None
        ctx.norm = terms is not None
        ctx.save_for_backward(*(terms if ctx.norm else (v,)), *tensors)
        return spike_step(v, threshold)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        saved = list(ctx.saved_tensors)
        if ctx.norm:
            if torch.is_grad_enabled():
                raise ConfigError(
                    "double backward through a BatchNorm -> S2 neuron pair needs the membrane "
                    "kept in the graph: call snn_singlestep.core.fused.set_norm_recompute('off') "
                    "before the forward"
                )
            x_in, scale, shift = saved[:3]
            del saved[:3]
            v = torch.addcmul(shift, x_in, scale)  # the BatchNorm's output, bit for bit
        else:
            v = saved.pop(0)
        threshold, alpha, beta = (
            saved.pop(0) if is_t else scalar for is_t, scalar in zip(ctx.kinds, ctx.scalars)
        )
        need_x = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_x = _kernel_backward(grad_out, v, threshold, alpha, beta) if need_x else None
        x = None
        if (need_x and grad_x is None) or ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            x = v - threshold  # the tensor spike_fn(v - threshold) would have saved
        if need_x and grad_x is None:
            grad_x = _backward_x(grad_out, x, alpha, beta)
        grad_alpha, grad_beta = _s2_param_grads(
            grad_out, x, alpha, beta, ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        )
        grad_v = grad_x if ctx.needs_input_grad[0] else None
        # autograd reduces -grad_x to θ's shape and dtype, as for the subtraction
        grad_theta = -grad_x if ctx.needs_input_grad[1] else None
        return grad_v, grad_theta, grad_alpha, grad_beta


# --- the membrane recomputed from the BatchNorm that produced it ------------------------------

_NORM_MODES = ("auto", "on", "off")
_BN_NODE = "NativeBatchNormBackward0"  # torch's autograd node of a BatchNorm on the CPU
#: With "auto", membranes below this many elements are saved: the copy is at most 128 KiB in
#: float32, and reading the BatchNorm's node and recomputing cost ≈ 25 µs per neuron per
#: step, a fifth of a small net's neuron time (benchmarks/train_step.py, CLI net).
_RECOMPUTE_MIN_NUMEL = 1 << 15


class _NormRecompute:
    mode: str = "auto"
    exact: dict = {}  # (device type, dtype) -> result of the self-check


def _recompute_wanted(v: Tensor) -> bool:
    mode = _NormRecompute.mode
    return mode == "on" or (mode == "auto" and v.numel() >= _RECOMPUTE_MIN_NUMEL)


def set_norm_recompute(mode: str) -> str:
    r"""Choose whether :class:`S2Fire` recomputes a BatchNorm's output; returns the old mode.

    With ``"on"``, when the membrane ``v`` is the output of a BatchNorm in
    training mode (CPU, float32/float64, contiguous, affine with learnable weight and
    bias), the S² node keeps no copy of ``v``: its backward recomputes

    .. math::

        v = x\,a_c + b_c, \qquad a_c = w_c\,\hat\sigma_c^{-1}, \qquad
        b_c = \beta_c - \mu_c\,a_c

    from what the BatchNorm's own node saves anyway (its input :math:`x`, batch mean
    :math:`\mu_c` and inverse std :math:`\hat\sigma_c^{-1}`, weight :math:`w_c`; bias
    :math:`\beta_c`), with fused multiply-adds, in the order of torch's CPU kernel, so
    the result is bitwise the BatchNorm's output. A self-check per device type and dtype
    (a few small BatchNorms, compared bit for bit) decides whether this torch build computes
    it that way; where it does not, ``v`` is saved as before. The graph then holds one
    float tensor per unit less. The cost: double backward through such a pair raises
    (``"off"`` keeps ``v`` and makes it exact again). ``"auto"`` (default) does the same
    for membranes of at least 32768 elements and keeps smaller ones, where the memory saved
    is at most 128 KiB per neuron and the recompute's fixed cost outweighs it.

    Raises:
        ConfigError: mode not ``"auto"``, ``"on"`` or ``"off"``.
    """
    choice("mode", mode, _NORM_MODES)
    previous, _NormRecompute.mode = _NormRecompute.mode, mode
    return previous


def _affine_leaf(node: object) -> Optional[Tensor]:
    """The parameter behind an ``AccumulateGrad`` node, or None."""
    return getattr(node, "variable", None) if type(node).__name__ == "AccumulateGrad" else None


def norm_terms(v: Tensor, *, check: bool = True) -> Optional[tuple[Tensor, Tensor, Tensor]]:
    """``(x, a, b)`` with ``v == addcmul(b, x, a)`` bit for bit, from the BatchNorm node that
    produced ``v`` (``a``, ``b`` shaped to broadcast over ``v``: ``[C]`` or ``[C, 1, …]``);
    None if ``v`` was made otherwise
    or the recompute is not known to be exact here (equations: :func:`set_norm_recompute`).
    Reads the node's saved tensors (``_saved_input``, ``_saved_result1/2``, ``_saved_weight``),
    torch internals pinned by the tests."""
    fn = v.grad_fn
    if type(fn).__name__ != _BN_NODE or v.dim() < 2:
        return None
    if v.device.type != "cpu" or v.dtype not in (torch.float32, torch.float64):
        return None
    if not fn._saved_training:
        return None
    nexts = fn.next_functions
    weight, bias = _affine_leaf(nexts[1][0]), _affine_leaf(nexts[2][0])
    if weight is None or bias is None:
        return None
    x = fn._saved_input
    if x.shape != v.shape or x.dtype != v.dtype or not x.is_contiguous():
        return None
    if check and not _recompute_is_exact(v.device.type, v.dtype):
        return None
    # (inside S2Fire.forward grad mode is off, so a and b carry no graph)
    a = fn._saved_result2 * fn._saved_weight  # invstd * weight, as the kernel does
    b = torch.addcmul(bias, fn._saved_result1, a, value=-1)  # fma(-mean, a, bias)
    if v.dim() > 2:  # [C] broadcasts over [N, C] as it is; [N, C, *] needs [C, 1, …]
        view = [-1] + [1] * (v.dim() - 2)
        a, b = a.view(view), b.view(view)
    return x.detach(), a, b


def _recompute_is_exact(device: str, dtype: torch.dtype) -> bool:
    key = (device, dtype)
    if key not in _NormRecompute.exact:
        g = torch.Generator().manual_seed(0)
        ok = True
        for shape in ((37, 21), (6, 5, 3, 7), (3, 4, 9), (128, 300)):
            c = shape[1]
            x = (torch.randn(shape, generator=g, dtype=dtype) * 3 + 1).to(device)
            w = (torch.rand(c, generator=g, dtype=dtype) + 0.5).to(device).requires_grad_()
            b = torch.randn(c, generator=g, dtype=dtype).to(device).requires_grad_()
            with torch.enable_grad():
                v = torch.nn.functional.batch_norm(x, None, None, w, b, training=True)
            terms = norm_terms(v, check=False)
            again = None if terms is None else torch.addcmul(terms[2], terms[0], terms[1])
            ok = ok and again is not None and torch.equal(again, v)
        _NormRecompute.exact[key] = ok
    return _NormRecompute.exact[key]


def fire(
    v: Tensor,
    threshold: Threshold,
    spike_fn: Callable[[Tensor], Tensor],
    params: Optional[tuple[Scalar, Scalar]] = None,
) -> Tensor:
    r"""``spike_fn(v - threshold)``, through the fastest path that gives the same result.

    Args:
        v: membrane potential (floating point).
        threshold: :math:`\theta`, a float or a tensor broadcastable to ``v``.
        spike_fn: the neuron's spike function.
        params: ``(alpha, beta)`` when the caller knows ``spike_fn`` is the S² surrogate
            (glue-level wrappers); by default :func:`s2_params` decides.

    Returns:
        spikes in ``result_type(v, threshold)`` (in ``spike_fn``'s dtype on the generic path).

    Examples:
        >>> v = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
        >>> s = fire(v, 1.0, s2_spike)
        >>> s
        tensor([0., 1., 1.], grad_fn=<S2FireBackward>)
        >>> s.sum().backward(); v.grad
        tensor([0.4200, 1.0000, 0.5000])
    """
    if not isinstance(v, Tensor):  # a torch.fx Proxy: trace the plain expression
        return spike_fn(v - threshold)
    if not torch.is_grad_enabled() and (params is not None or _heaviside_forward(spike_fn)):
        try:  # no graph: a bare comparison (inference)
            return spike_step(v, threshold)
        except RuntimeError as err:
            _raise_if_not_broadcastable(v, threshold, err)
            raise
    try:
        if params is None:
            params = s2_params(spike_fn)
            if params is None:
                if spike_fn is heaviside:
                    return spike_step(v, threshold)
                x = v - threshold
        if params is not None:
            if not _needs_graph(v, threshold, params):
                return spike_step(v, threshold)
            if _functorch_active():
                return S2Spike.apply(v - threshold, *params)
            spikes = S2Fire.apply(v, threshold, *params)
            if bitpack.active():  # the next layers may save these 0/1 values as bits
                bitpack.register_spikes(spikes)
            return spikes
    except RuntimeError as err:
        _raise_if_not_broadcastable(v, threshold, err)
        raise
    return spike_fn(x)


def _raise_if_not_broadcastable(v: Tensor, threshold: Threshold, err: Exception) -> None:
    """Turn torch's broadcast failure into a ShapeError that says what to pass."""
    if not isinstance(threshold, Tensor):
        return
    try:
        torch.broadcast_shapes(v.shape, threshold.shape)
    except RuntimeError:
        raise ShapeError(
            f"threshold of shape {tuple(threshold.shape)} does not broadcast to the input of "
            f"shape {tuple(v.shape)}: give one threshold (a number or a 0-d tensor) or "
            "one per feature, shaped to broadcast (e.g. [features] for [B, features])"
        ) from err
