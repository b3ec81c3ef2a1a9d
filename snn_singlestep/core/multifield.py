r"""A single-step block that reads several receptive fields of a feature map in sequence.

After Yao, Wu, Chen & Zhang, *General T=1 SNN with multiple receptive fields* (ACML 2023,
arXiv 2401.10843): within one time step, :math:`K` windows of the input are passed one
after the other through one shared module :math:`f` and one LIF neuron whose membrane
is carried from field to field (recurrence inside T=1), and the :math:`K` responses are
merged by a projection function. In the order the code runs, for
:math:`k = 1, \dots, K`:

.. math::

    I_k &= f\bigl(x^{(k)}\bigr)                  &\quad\text{(field } k
                                                  \text{ through the shared module)} \\
    u_k &= \lambda\,u_{k-1}\,(1 - s_{k-1}) + I_k  &\quad\text{(charge; }
                                                  u_0 = 0,\ s_0 = 0\text{)} \\
    s_k &= H(u_k - \theta)                            &\quad\text{(fire, } H(0) = 1\text{)}

The reset is hard and happens when the membrane is carried to the next field: a unit
that fired on field :math:`k` starts field :math:`k+1` from :math:`I_{k+1}` alone.
With ``recurrent=False`` the fields are independent, :math:`u_k = I_k`. The output is
:math:`y = \mathrm{proj}(s_1, \dots, s_K)`, with the paper's projection folded over
the fields (:func:`paper_projection`, :func:`fold_projection`)

.. math::

    P(c_1, c_2) = 2\sin\!\Bigl(\frac\pi4\,c_1\cos\bigl(\frac\pi4\,c_2\bigr)\Bigr),
    \qquad r_1 = s_1,\quad r_k = P(r_{k-1}, s_k),\quad y = r_K,

or the mean :math:`y = \frac1K\sum_k s_k` (the block's default, see
:func:`fold_projection` for why), or a user callable. The backward pass of
:math:`H` is the S² surrogate by default, or the paper's rectangular surrogate
:math:`\partial s/\partial u = \mathbb 1\{|u - \theta| < 1/2\}` (:class:`RectangularSurrogate`).

Fields (:func:`corner_offsets`, :func:`sliding_offsets`): by default the four corner
windows (top-left, top-right, bottom-left, bottom-right) of size
:math:`\lceil H/2\rceil \times \lceil W/2\rceil`, in that order (the paper processes four
corner windows; the window size is our default); with a ``stride``, every window of the
sliding grid, in raster order.

==================  ================  ==========================================
symbol              argument          meaning
==================  ================  ==========================================
:math:`x^{(k)}`     ``window``        the :math:`k`-th window of the input map
:math:`f`           ``module``        shared module (conv, linear, …)
:math:`\lambda`     ``decay``         membrane carry-over factor (learnable)
:math:`\theta`      ``threshold``     firing threshold (learnable)
:math:`I_k, u_k`    ``currents``      current and membrane on field :math:`k`
==================  ================  ==========================================
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError
from .surrogate import S2Surrogate, heaviside, s2_spike
from .validate import flag, loaded_finite, real_number, spike_function
from .validate import module as as_module

__all__ = [
    "MultiFieldBlock",
    "PROJECTIONS",
    "RectangularSurrogate",
    "corner_offsets",
    "extract_fields",
    "fold_projection",
    "mean_projection",
    "multifield_lif",
    "paper_projection",
    "rectangular_grad",
    "rectangular_spike",
    "sliding_offsets",
]

#: Names accepted by ``projection=`` (a callable is accepted too).
PROJECTIONS = ("mean", "paper")

Pair = tuple[int, int]


# --- rectangular surrogate ---------------------------------------------------------------


def rectangular_grad(x: Tensor, width: float = 1.0) -> Tensor:
    r""":math:`g'(x) = \frac1w\,\mathbb 1\{|x| < w/2\}`, the rectangular surrogate derivative.

    With :math:`w = 1` and :math:`x = u - \theta` this is the paper's
    :math:`\mathbb 1\{|u - \theta| < 0.5\}`.

    Examples:
        >>> rectangular_grad(torch.tensor([-0.6, -0.5, 0.0, 0.49, 0.5]))
        tensor([0., 0., 1., 1., 0.])
    """
    return ((x.abs() < width / 2) / width).to(x.dtype)


class _RectangularSpike(torch.autograd.Function):
    @staticmethod
    def forward(x: Tensor, width: float) -> Tensor:
        return heaviside(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, width = inputs
        ctx.width = width
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * rectangular_grad(x, ctx.width), None


def rectangular_spike(x: Tensor, width: float = 1.0) -> Tensor:
    r"""Spikes :math:`H(x)` whose gradient is :func:`rectangular_grad`.

    Examples:
        >>> x = torch.tensor([-0.7, 0.2], requires_grad=True)
        >>> rectangular_spike(x).sum().backward()
        >>> x.grad
        tensor([0., 1.])
    """
    return _RectangularSpike.apply(x, width)


class RectangularSurrogate(nn.Module):
    r"""The rectangular surrogate as a picklable module (forward: :func:`rectangular_spike`).

    Args:
        width: :math:`w > 0`; the gradient is :math:`1/w` on :math:`|x| < w/2`.

    Examples:
        >>> RectangularSurrogate()
        RectangularSurrogate(width=1.0)
    """

    def __init__(self, width: float = 1.0) -> None:
        width = real_number("width", width)
        if width <= 0:
            raise ConfigError(f"width must be > 0, got {width!r}")
        super().__init__()
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        return rectangular_spike(x, self.width)

    def extra_repr(self) -> str:
        return f"width={self.width!r}"


# --- fields -------------------------------------------------------------------------------


def _pair(name: str, value: object) -> Pair:
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(
        isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in items
    ):
        raise ConfigError(f"{name} must be an int >= 1 or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def _check_window(window: Pair, height: int, width: int) -> None:
    if window[0] > height or window[1] > width:
        raise ShapeError(
            f"window {window[0]}×{window[1]} is larger than the input map {height}×{width}; "
            "use a window of at most the map's size"
        )


def corner_offsets(height: int, width: int, window: Pair) -> list[Pair]:
    r"""``(top, left)`` of the four corner windows: top-left, top-right, bottom-left, bottom-right.

    Examples:
        >>> corner_offsets(8, 8, (5, 5))
        [(0, 0), (0, 3), (3, 0), (3, 3)]
    """
    _check_window(window, height, width)
    bottom, right = height - window[0], width - window[1]
    return [(0, 0), (0, right), (bottom, 0), (bottom, right)]


def sliding_offsets(height: int, width: int, window: Pair, stride: Pair) -> list[Pair]:
    r"""``(top, left)`` of every window of a sliding grid, in raster order.

    Examples:
        >>> sliding_offsets(4, 6, (2, 2), (2, 2))
        [(0, 0), (0, 2), (0, 4), (2, 0), (2, 2), (2, 4)]
    """
    _check_window(window, height, width)
    rows = range(0, height - window[0] + 1, stride[0])
    cols = range(0, width - window[1] + 1, stride[1])
    return [(r, c) for r in rows for c in cols]


def extract_fields(x: Tensor, window: Pair, offsets: Sequence[Pair]) -> Tensor:
    r"""The windows :math:`x^{(k)}` of a ``[N, C, H, W]`` map, stacked: ``[K, N, C, h, w]``.

    Examples:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> extract_fields(x, (2, 2), [(0, 0), (2, 2)])[:, 0, 0].tolist()
        [[[0.0, 1.0], [4.0, 5.0]], [[10.0, 11.0], [14.0, 15.0]]]
    """
    h, w = window
    return torch.stack([x[..., top : top + h, left : left + w] for top, left in offsets])


# --- neuron over fields ------------------------------------------------------------------


def multifield_lif(
    currents: Tensor,
    decay: Union[float, Tensor],
    threshold: Union[float, Tensor],
    spike_fn: Callable[[Tensor], Tensor] = s2_spike,
    *,
    recurrent: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""The LIF neuron carried over the fields (equations in the module docstring).

    Args:
        currents: ``[K, N, *]``, :math:`I_k` along the first axis.
        decay: :math:`\lambda`. threshold: :math:`\theta` (floats or tensors).
        spike_fn: maps :math:`u - \theta` to spikes (its backward is the surrogate).
        recurrent: False makes the fields independent (:math:`u_k = I_k`).

    Returns:
        ``(spikes, membranes)``, both ``[K, N, *]``.

    Examples:
        >>> s, u = multifield_lif(torch.tensor([[0.4], [0.4], [0.4]]), 0.4, 0.5)
        >>> s.flatten().tolist(), [round(v, 3) for v in u.flatten().tolist()]
        ([0.0, 1.0, 0.0], [0.4, 0.56, 0.4])
    """
    spikes, membranes = [], []
    u: Optional[Tensor] = None
    s: Optional[Tensor] = None
    for current in currents:
        u = current if (u is None or not recurrent) else decay * u * (1 - s) + current
        s = spike_fn(u - threshold).to(u.dtype)
        spikes.append(s)
        membranes.append(u)
    return torch.stack(spikes), torch.stack(membranes)


# --- projections --------------------------------------------------------------------------


def paper_projection(c1: Tensor, c2: Tensor) -> Tensor:
    r""":math:`P(c_1, c_2) = 2\sin\bigl(\frac\pi4 c_1 \cos(\frac\pi4 c_2)\bigr)`.

    Examples:
        >>> one, zero = torch.tensor(1.0), torch.tensor(0.0)
        >>> pairs = [(zero, one), (one, zero), (one, one)]
        >>> [round(float(paper_projection(a, b)), 4) for a, b in pairs]
        [0.0, 1.4142, 1.0545]
    """
    quarter_pi = math.pi / 4
    return 2 * torch.sin(quarter_pi * c1 * torch.cos(quarter_pi * c2))


def fold_projection(responses: Tensor) -> Tensor:
    r"""Left fold of :func:`paper_projection` over the first axis: :math:`r_k = P(r_{k-1}, s_k)`.

    Note that :math:`P(0, \cdot) = 0`: a unit whose first field stays silent outputs 0.
    On binary spikes the fold also starves the gradient:
    :math:`\partial P/\partial c_2 = -\tfrac{\pi^2}{8} c_1 \sin(\tfrac\pi4 c_2)
    \cos(\cdot)` vanishes when :math:`c_1 = 0` or :math:`c_2 = 0`, so field :math:`k \ge 2`
    of a unit receives gradient only where that unit fired on field :math:`k` and its
    running projection is non-zero (and :math:`\lambda` only through those). The mean
    passes gradient to every field, which is why :class:`MultiFieldBlock` defaults to it.

    Examples:
        >>> fold_projection(torch.tensor([[1.0], [0.0], [1.0]])).item() == paper_projection(
        ...     paper_projection(torch.tensor(1.0), torch.tensor(0.0)), torch.tensor(1.0)).item()
        True
    """
    out = responses[0]
    for response in responses[1:]:
        out = paper_projection(out, response)
    return out


def mean_projection(responses: Tensor) -> Tensor:
    r""":math:`\frac1K\sum_k s_k` over the first axis."""
    return responses.mean(0)


# --- the block ----------------------------------------------------------------------------


def _is_multistep(module: nn.Module) -> bool:
    """True if ``module`` holds a SpikingJelly-style module in step mode ``'m'``."""
    return any(getattr(m, "step_mode", None) == "m" for m in module.modules())


class MultiFieldBlock(nn.Module):
    r"""Single-step block over :math:`K` receptive fields with a membrane carried between them.

    Equations: module docstring (:func:`multifield_lif`, :func:`fold_projection`). The
    shared ``module`` is applied to all :math:`K` windows in one batched call
    (``[K·N, C, h, w]``), so it must not keep state between calls (plain layers and
    single-step neurons don't); the recurrence is in the block's own LIF neuron, over
    the fields of one time step. Nothing is carried from one call to the next.

    Input ``[N, C, H, W]`` gives ``[N, *out]`` where ``*out`` is the shape ``module``
    returns for one window. A ``[T, N, C, H, W]`` input (SpikingJelly's ``'m'`` step
    mode, e.g. T=1) gives ``[T, N, *out]``, each step computed on its own; if
    ``module`` holds SpikingJelly layers in step mode ``'m'`` it is called on
    ``[T, K·N, C, h, w]``.

    Args:
        module: the shared module :math:`f` (e.g. ``nn.Conv2d``, or ``Flatten`` +
            ``Linear``).
        window: ``(h, w)`` or an int; default :math:`\lceil H/2\rceil \times \lceil W/2\rceil`.
        stride: None for the four corner windows (default); an int or pair for every
            window of a sliding grid, in raster order.
        projection: ``"mean"`` (default, :func:`mean_projection`), ``"paper"``
            (:func:`fold_projection`; see there for how it gates the gradient on binary
            spikes), or a callable mapping the spikes ``[K, N, *out]`` to ``[N, *out]``.
        decay: initial :math:`\lambda \in [0, 1]` (0.4, as in the paper's code); the
            forward pass uses it clamped to :math:`[0, 1]` (:meth:`carry`), so a learnable
            :math:`\lambda` stays in range after any optimiser step.
        threshold: initial :math:`\theta` (0.5, as in the paper's code).
        learn_decay: make :math:`\lambda` a parameter (default True; otherwise a buffer).
        learn_threshold: make :math:`\theta` a parameter (default True; otherwise a buffer).
        surrogate: ``"s2"`` (default, :class:`~snn_singlestep.core.surrogate.S2Surrogate`),
            ``"rectangular"`` (:class:`RectangularSurrogate`, the paper's) or a callable
            mapping :math:`u - \theta` to spikes.
        recurrent: carry the membrane between fields (default); False gives independent
            fields (the ablation).

    Raises:
        ConfigError: a bad window, stride, projection name, surrogate or number.
        ShapeError: (in ``forward``) an input that is not ``[N, C, H, W]`` or
            ``[T, N, C, H, W]``, a window larger than the input, or a projection callable
            returning the wrong shape.

    Examples:
        >>> block = MultiFieldBlock(nn.Conv2d(1, 4, 3, padding=1), window=6)
        >>> block(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 4, 6, 6])
        >>> block(torch.rand(1, 2, 1, 8, 8)).shape  # SpikingJelly 'm' layout, T=1
        torch.Size([1, 2, 4, 6, 6])
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        window: Union[None, int, Pair] = None,
        stride: Union[None, int, Pair] = None,
        projection: Union[str, Callable[[Tensor], Tensor]] = "mean",
        decay: float = 0.4,
        threshold: float = 0.5,
        learn_decay: bool = True,
        learn_threshold: bool = True,
        surrogate: Union[str, Callable[[Tensor], Tensor]] = "s2",
        recurrent: bool = True,
    ) -> None:
        as_module("module", module, hint="the shared layer applied to every field")
        window = None if window is None else _pair("window", window)
        stride = None if stride is None else _pair("stride", stride)
        named = isinstance(projection, str) and projection in PROJECTIONS
        if isinstance(projection, type) or not (named or callable(projection)):
            raise ConfigError(
                f"projection must be one of {PROJECTIONS} or a callable, got {projection!r}"
            )
        decay = real_number("decay", decay)
        if not 0.0 <= decay <= 1.0:
            raise ConfigError(f"decay must be in [0, 1] (the membrane carry-over λ), got {decay!r}")
        threshold = real_number("threshold", threshold)
        for name, value in (
            ("learn_decay", learn_decay),
            ("learn_threshold", learn_threshold),
            ("recurrent", recurrent),
        ):
            flag(name, value)
        if surrogate == "s2":
            spike_fn: Callable[[Tensor], Tensor] = S2Surrogate()
        elif surrogate == "rectangular":
            spike_fn = RectangularSurrogate()
        elif callable(surrogate) and not isinstance(surrogate, (str, type)):
            spike_fn = spike_function("surrogate", surrogate, optional=False)
        else:
            raise ConfigError(
                f"surrogate must be 's2', 'rectangular' or a callable, got {surrogate!r}"
            )
        super().__init__()
        self.module = module
        self.surrogate = spike_fn
        self.window = window
        self.stride = stride
        self.projection = projection
        self.recurrent = recurrent
        for name, value, learn in (
            ("decay", decay, learn_decay),
            ("threshold", threshold, learn_threshold),
        ):
            tensor = torch.tensor(value)
            if learn:
                setattr(self, name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        loaded_finite(state_dict, prefix, "decay", "threshold")  # clamp(NaN) is NaN
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def carry(self) -> Tensor:
        r"""The :math:`\lambda` the forward pass uses: ``decay`` clamped to :math:`[0, 1]`.

        A learnable ``decay`` is an unconstrained parameter; an optimiser step may push it
        below 0 or above 1, where the recurrence would flip the sign of the membrane or
        let it grow from field to field. The forward pass uses :math:`\min(\max(\lambda,
        0), 1)` instead (gradient 0 beyond a bound, as ``snntorch.Leaky`` treats its β).

        Examples:
            >>> block = MultiFieldBlock(nn.Identity(), decay=0.4)
            >>> with torch.no_grad():
            ...     _ = block.decay.fill_(1.7)
            >>> block.carry().item()
            1.0
        """
        return self.decay.clamp(0.0, 1.0)

    def offsets(self, height: int, width: int) -> tuple[Pair, list[Pair]]:
        """``(window, offsets)`` of the fields of an ``height × width`` map."""
        window = self.window or ((height + 1) // 2, (width + 1) // 2)
        if self.stride is None:
            return window, corner_offsets(height, width, window)
        return window, sliding_offsets(height, width, window, self.stride)

    def _currents(self, x: Tensor) -> Tensor:
        """:math:`I_k` for a ``[N, C, H, W]`` (or, multi-step module, ``[T, N, C, H, W]``) input."""
        window, offsets = self.offsets(x.shape[-2], x.shape[-1])
        fields = extract_fields(x, window, offsets)  # [K, (T,) N, C, h, w]
        k = fields.shape[0]
        if x.ndim == 4:
            if _is_multistep(self.module):
                out = self.module(fields.flatten(0, 1).unsqueeze(0))[0]
            else:
                out = self.module(fields.flatten(0, 1))
            return out.unflatten(0, (k, x.shape[0]))
        # [K, T, N, ...] -> [T, K*N, ...] -> module -> [K, T*N, ...]
        n = x.shape[1]
        out = self.module(fields.transpose(0, 1).flatten(1, 2))
        return out.unflatten(1, (k, n)).transpose(0, 1).flatten(1, 2)

    def forward_with_spikes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(output, spikes)``; ``spikes`` is ``[K, N, *out]`` (``[K, T·N, *out]``, 5-d input)."""
        if x.ndim == 4:
            currents = self._currents(x)
        elif x.ndim == 5:
            if _is_multistep(self.module):
                currents = self._currents(x)
            else:
                currents = self._currents(x.flatten(0, 1))
        else:
            raise ShapeError(
                f"MultiFieldBlock takes a feature map [N, C, H, W] or [T, N, C, H, W], got "
                f"shape {tuple(x.shape)}"
            )
        spikes, _ = multifield_lif(
            currents, self.carry(), self.threshold, self.surrogate, recurrent=self.recurrent
        )
        out = self._project(spikes)
        if x.ndim == 5:
            out = out.unflatten(0, (x.shape[0], x.shape[1]))
        return out, spikes

    def _project(self, spikes: Tensor) -> Tensor:
        if self.projection == "paper":
            return fold_projection(spikes)
        if self.projection == "mean":
            return mean_projection(spikes)
        out = self.projection(spikes)
        if not isinstance(out, Tensor) or out.shape != spikes.shape[1:]:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ShapeError(
                f"the projection callable must map the spikes [K, N, *] = "
                f"{tuple(spikes.shape)} to one response {tuple(spikes.shape[1:])}, got {got}"
            )
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_spikes(x)[0]

    def extra_repr(self) -> str:
        fields = "corners" if self.stride is None else f"stride={self.stride}"
        proj = self.projection if isinstance(self.projection, str) else "callable"
        return (
            f"window={self.window or 'half'}, fields={fields}, projection={proj!r}, "
            f"recurrent={self.recurrent}"
        )
